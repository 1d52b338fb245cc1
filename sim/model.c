/* model.c - see model.h. */
#include "model.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define BLOCK_TOKENS 16

/* Modelled costs in milliseconds (before time_scale). */
#define STEP_OVERHEAD_MS 3.0      /* scheduler + launch with CUDA graphs */
#define EAGER_OVERHEAD_MS 4.0     /* extra per step without CUDA graphs */
#define EAGER_DECODE_FACTOR 1.35  /* per-sequence decode cost without graphs */
#define DECODE_PER_SEQ_MS 0.25
#define ATTN_PER_CTX_TOKEN_MS 0.0006
#define PREFILL_PER_TOKEN_MS 0.03
#define PREFIX_CACHE_STEP_MS 0.25 /* block hashing and lookup */
#define CHUNKED_STEP_FACTOR 1.04  /* mixed batches are a little less efficient */
#define FP8_STEP_FACTOR 1.06      /* dequantising the KV cache */
#define FLASHINFER_ATTN_FACTOR 0.6
#define FLASHINFER_PREFILL_FACTOR 1.12
#define FLASHINFER_STEP_MS 0.4    /* per-step planning */

uint64_t sim_rng_next(uint64_t *s) {
  /* splitmix64: small, fast, good enough for noise and token choice */
  uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

static double rng_unit(uint64_t *s) { return (double)(sim_rng_next(s) >> 11) / 9007199254740992.0; }

int sim_model_init(sim_model *m, const sim_params *p) {
  memset(m, 0, sizeof *m);
  m->p = *p;
  m->rng = p->seed ^ 0x5EEDull;
  m->kv_capacity = p->kv_capacity_tokens * (p->kv_fp8 ? 2 : 1);
  if (p->prefix_caching) {
    /* the cache lives in the KV cache's free blocks: it holds at most as many blocks as
     * the KV cache (a hash table twice that size) */
    m->cache_max = m->kv_capacity / BLOCK_TOKENS > 0 ? (size_t)(m->kv_capacity / BLOCK_TOKENS) : 1;
    m->cache_cap = 64;
    while (m->cache_cap < 2 * m->cache_max) m->cache_cap *= 2;
    m->cache = calloc(m->cache_cap, sizeof *m->cache);
    if (!m->cache) return -1;
  }
  return 0;
}

static void free_list(sim_seq *s) {
  while (s) {
    sim_seq *n = s->next;
    free(s->blocks);
    free(s);
    s = n;
  }
}

void sim_model_free(sim_model *m) {
  free_list(m->waiting);
  free_list(m->running);
  free(m->cache);
  memset(m, 0, sizeof *m);
}

static int cache_has(const sim_model *m, uint64_t h) {
  if (!h) h = 1;
  for (size_t i = h & (m->cache_cap - 1);; i = (i + 1) & (m->cache_cap - 1)) {
    if (m->cache[i] == 0) return 0;
    if (m->cache[i] == h) return 1;
  }
}

static void cache_put(sim_model *m, uint64_t h) {
  if (!h) h = 1;
  if (m->cache_used >= m->cache_max) { /* as full as the KV cache: start over, like an eviction */
    memset(m->cache, 0, m->cache_cap * sizeof *m->cache);
    m->cache_used = 0;
  }
  size_t i = h & (m->cache_cap - 1);
  while (m->cache[i] != 0) {
    if (m->cache[i] == h) return;
    i = (i + 1) & (m->cache_cap - 1);
  }
  m->cache[i] = h;
  m->cache_used++;
}

sim_seq *sim_seq_new(sim_model *m, const uint64_t *tokens, int n, int max_tokens, int ignore_eos,
                     uint64_t seed, void *owner) {
  sim_seq *s = calloc(1, sizeof *s);
  if (!s) return NULL;
  s->prompt_tokens = n > 0 ? n : 1;
  s->max_tokens = max_tokens;
  s->rng = seed;
  s->owner = owner;
  s->n_blocks = n / BLOCK_TOKENS;
  if (s->n_blocks) {
    s->blocks = malloc((size_t)s->n_blocks * sizeof *s->blocks);
    if (!s->blocks) { free(s); return NULL; }
    uint64_t h = 1469598103934665603ull;
    for (int b = 0; b < s->n_blocks; b++) {
      for (int k = 0; k < BLOCK_TOKENS; k++) h = (h ^ tokens[b * BLOCK_TOKENS + k]) * 1099511628211ull;
      s->blocks[b] = h;
    }
  }
  /* without ignore_eos the "model" stops at a seeded length, as a real one would */
  s->target_tokens = max_tokens;
  if (!ignore_eos && max_tokens > 1) {
    uint64_t r = seed ^ 0xE05ull;
    s->target_tokens = 1 + (int)(sim_rng_next(&r) % (uint64_t)max_tokens);
  }
  (void)m;
  return s;
}

void sim_model_submit(sim_model *m, sim_seq *s) {
  sim_seq **t = &m->waiting;
  while (*t) t = &(*t)->next;
  *t = s;
}

void sim_model_abort(sim_model *m, sim_seq *s) {
  (void)m;
  s->aborted = 1;
  s->owner = NULL;
}

static int kv_need(const sim_seq *s) { return s->prompt_tokens + s->max_tokens; }

static void drop_aborted(sim_model *m) {
  for (sim_seq **pp = &m->waiting; *pp;) {
    sim_seq *s = *pp;
    if (s->aborted) { *pp = s->next; free(s->blocks); free(s); }
    else pp = &s->next;
  }
  for (sim_seq **pp = &m->running; *pp;) {
    sim_seq *s = *pp;
    if (s->aborted) {
      *pp = s->next;
      m->kv_used -= kv_need(s);
      m->n_running--;
      free(s->blocks);
      free(s);
    } else {
      pp = &s->next;
    }
  }
}

int sim_model_waiting(const sim_model *m) {
  int n = 0;
  for (const sim_seq *s = m->waiting; s; s = s->next) n++;
  return n;
}

void sim_model_reset_prefix_cache(sim_model *m) {
  if (m->cache) memset(m->cache, 0, m->cache_cap * sizeof *m->cache);
  m->cache_used = 0;
}

static void admit(sim_model *m) {
  sim_seq **tail = &m->running;
  while (*tail) tail = &(*tail)->next;
  while (m->waiting && m->n_running < m->p.max_num_seqs) {
    sim_seq *s = m->waiting;
    /* a sequence larger than the whole cache still runs alone rather than forever wait */
    if (m->kv_used + kv_need(s) > m->kv_capacity && m->n_running > 0) break;
    m->waiting = s->next;
    s->next = NULL;
    s->running = 1;
    m->kv_used += kv_need(s);
    m->n_running++;
    m->prompt_tokens_total += s->prompt_tokens;
    if (m->p.prefix_caching) {
      int hit = 0;
      while (hit < s->n_blocks && cache_has(m, s->blocks[hit])) hit++;
      s->cached = hit * BLOCK_TOKENS;
      if (s->cached >= s->prompt_tokens) s->cached = s->prompt_tokens - 1;
      s->prefilled = s->cached;
      m->prefix_queries_total += s->prompt_tokens;
      m->prefix_hits_total += s->cached;
    }
    *tail = s;
    tail = &s->next;
  }
}

/* Plans the next step: which tokens it processes and how long it takes. */
static void plan_step(sim_model *m, double now, sim_phase_fn phase) {
  if (phase) phase("get_batch", 1);
  drop_aborted(m);
  admit(m);
  if (phase) phase("get_batch", 0);
  if (!m->running) return;
  const sim_params *p = &m->p;
  int prefill_tokens = 0, decodes = 0;
  long ctx_tokens = 0;
  int any_prefill = 0;
  for (sim_seq *s = m->running; s; s = s->next)
    if (s->prefilled < s->prompt_tokens) any_prefill = 1;
  int budget = p->max_batched_tokens;
  for (sim_seq *s = m->running; s; s = s->next) {
    if (s->prefilled >= s->prompt_tokens) {
      /* without chunked prefill, a step with new prompts runs only their prefill */
      if (p->chunked_prefill || !any_prefill) {
        decodes++;
        budget--;
        ctx_tokens += s->prompt_tokens + s->generated;
      }
    }
  }
  for (sim_seq *s = m->running; s; s = s->next) {
    int left = s->prompt_tokens - s->prefilled;
    if (left <= 0) continue;
    int take = left;
    if (p->chunked_prefill) {
      if (budget <= 0) break;
      if (take > budget) take = budget;
      budget -= take;
    }
    prefill_tokens += take;
  }
  m->step_prefill_tokens = prefill_tokens;
  m->step_decodes = decodes;

  double overhead = STEP_OVERHEAD_MS + (p->enforce_eager ? EAGER_OVERHEAD_MS : 0) +
                    (p->prefix_caching ? PREFIX_CACHE_STEP_MS : 0) +
                    (p->flashinfer ? FLASHINFER_STEP_MS : 0);
  double prefill_ms = prefill_tokens * PREFILL_PER_TOKEN_MS * (p->flashinfer ? FLASHINFER_PREFILL_FACTOR : 1);
  double decode_ms = decodes * DECODE_PER_SEQ_MS * (p->enforce_eager ? EAGER_DECODE_FACTOR : 1) +
                   (double)ctx_tokens * ATTN_PER_CTX_TOKEN_MS * (p->flashinfer ? FLASHINFER_ATTN_FACTOR : 1);
  double factor = (p->kv_fp8 ? FP8_STEP_FACTOR : 1) * (p->chunked_prefill ? CHUNKED_STEP_FACTOR : 1);
  /* the fixed overhead is spent in whichever phase the step has */
  if (prefill_tokens) prefill_ms += overhead;
  else decode_ms += overhead;
  prefill_ms *= factor;
  decode_ms *= factor;
  if (p->jitter_pct > 0) {
    double j = 1 + p->jitter_pct / 100.0 * (2 * rng_unit(&m->rng) - 1);
    prefill_ms *= j;
    decode_ms *= j;
  }
  m->step_active = 1;
  m->step_start = now;
  m->prefill_end = now + prefill_ms * p->time_scale / 1000.0;
  m->step_end = m->prefill_end + decode_ms * p->time_scale / 1000.0;
}

/* Applies the planned step: prefill progress and one token per decoding sequence. */
static void finish_step(sim_model *m, sim_emit_fn emit, void *ud) {
  const sim_params *p = &m->p;
  int any_prefill = 0;
  for (sim_seq *s = m->running; s; s = s->next)
    if (s->prefilled < s->prompt_tokens) any_prefill = 1;
  int budget = p->max_batched_tokens - m->step_decodes;
  sim_seq **pp = &m->running;
  while (*pp) {
    sim_seq *s = *pp;
    int emit_token = 0;
    if (s->prefilled < s->prompt_tokens) {
      int take = s->prompt_tokens - s->prefilled;
      if (p->chunked_prefill) {
        if (budget < take) take = budget > 0 ? budget : 0;
        budget -= take;
      }
      s->prefilled += take;
      if (s->prefilled >= s->prompt_tokens) {
        emit_token = 1; /* prefill yields the first token */
        if (p->prefix_caching)
          for (int b = 0; b < s->n_blocks; b++) cache_put(m, s->blocks[b]);
      }
    } else if (p->chunked_prefill || !any_prefill) {
      emit_token = 1;
    }
    int finished = 0;
    if (emit_token && !s->aborted) {
      s->generated++;
      m->generation_tokens_total++;
      finished = s->generated >= s->target_tokens;
      emit(ud, s, finished);
    }
    if (finished || s->aborted) {
      *pp = s->next;
      m->kv_used -= kv_need(s);
      m->n_running--;
      free(s->blocks);
      free(s);
    } else {
      pp = &s->next;
    }
  }
  m->step_active = 0;
}

/* Moves the NVTX-style phase markers to what the step in flight is doing at `now`. */
static void update_phase(sim_model *m, double now, sim_phase_fn phase) {
  if (!phase) return;
  if (m->open_phase == 1 && (now >= m->prefill_end || !m->step_active)) {
    phase("prefill", 0);
    m->open_phase = 0;
    if (m->step_active && m->step_decodes && now < m->step_end) {
      phase("decode", 1);
      m->open_phase = 2;
    }
  }
  if (m->open_phase == 2 && (!m->step_active || now >= m->step_end)) {
    phase("decode", 0);
    m->open_phase = 0;
  }
}

/* Fixed-latency mode: each sequence on its own exact schedule (first token after
 * fixed_ttft_ms, then one every fixed_tpot_ms), whatever else runs. */
static double advance_fixed(sim_model *m, double now, sim_emit_fn emit, void *ud) {
  double ttft = m->p.fixed_ttft_ms * m->p.time_scale / 1000.0;
  double tpot = m->p.fixed_tpot_ms * m->p.time_scale / 1000.0;
  while (m->waiting) {
    sim_seq *s = m->waiting;
    m->waiting = s->next;
    /* on the request's own clock: time spent reading other requests does not count */
    s->next_at = (s->arrived_at > 0 && s->arrived_at <= now ? s->arrived_at : now) + ttft;
    s->next = m->running;
    m->running = s;
  }
  double next = -1;
  for (sim_seq **pp = &m->running; *pp;) {
    sim_seq *s = *pp;
    int finished = 0;
    while (!s->aborted && !finished && s->next_at <= now) {
      s->generated++;
      m->generation_tokens_total++;
      finished = s->generated >= s->target_tokens;
      emit(ud, s, finished);
      s->next_at += tpot;
    }
    if (finished || s->aborted) {
      *pp = s->next;
      free(s->blocks);
      free(s);
      continue;
    }
    if (next < 0 || s->next_at < next) next = s->next_at;
    pp = &s->next;
  }
  return next;
}

double sim_model_advance(sim_model *m, double now, sim_emit_fn emit, void *ud, sim_phase_fn phase) {
  if (m->p.fixed_ttft_ms > 0 || m->p.fixed_tpot_ms > 0) return advance_fixed(m, now, emit, ud);
  for (;;) {
    if (m->step_active) {
      update_phase(m, now, phase);
      if (now < m->step_end) return m->open_phase == 1 ? m->prefill_end : m->step_end;
      m->step_active = 0;
      update_phase(m, now, phase);
      m->step_active = 1;
      finish_step(m, emit, ud);
    }
    if (!m->waiting && !m->running) return -1;
    plan_step(m, now, phase);
    if (!m->step_active) return -1;
    if (phase) {
      m->open_phase = m->step_prefill_tokens ? 1 : 2;
      phase(m->open_phase == 1 ? "prefill" : "decode", 1);
    }
    if (m->step_end > now) return m->open_phase == 1 ? m->prefill_end : m->step_end;
  }
}
