/* model.h - the simulated engine: continuous batching in steps, like vLLM's scheduler.
 *
 * Each step admits waiting sequences (FCFS) while fewer than max_num_seqs run and
 * their KV reservation (prompt + max output tokens) fits the KV capacity, then spends
 * modelled time on prefill tokens and on one decode token per running sequence. The
 * step's duration is computed up front; the server sleeps (in poll) until it ends and
 * then emits the tokens. See README "The simulated server (knobsim)" for the latency table.
 * Ownership: the model owns its sequences; the server creates them with
 * sim_seq_new, the model frees them after the server acknowledges completion.
 * Errors: none beyond allocation failure (NULL). */
#ifndef KNOB_SIM_MODEL_H
#define KNOB_SIM_MODEL_H
#include <stddef.h>
#include <stdint.h>

typedef struct {
  int prefix_caching, chunked_prefill, enforce_eager, kv_fp8;
  int flashinfer;          /* VLLM_ATTENTION_BACKEND=FLASHINFER */
  int max_num_seqs;
  int max_batched_tokens;  /* chunked prefill token budget per step */
  int kv_capacity_tokens;  /* with the default (16-bit) KV cache */
  double time_scale;       /* multiplies every modelled time; 0 = no latency */
  double jitter_pct;
  uint64_t seed;
  double fixed_ttft_ms, fixed_tpot_ms; /* > 0: every request gets exactly these latencies,
                                          no batching (for measuring clients) */
} sim_params;

typedef struct sim_seq {
  int prompt_tokens, max_tokens, target_tokens; /* target: tokens before EOS */
  int prefilled, cached, generated;
  uint64_t *blocks; /* chained hashes of the prompt's full 16-token blocks */
  int n_blocks;
  uint64_t rng;
  int running, aborted;
  double arrived_at;     /* when the request was read (0: unknown, use the first step) */
  double next_at;        /* fixed-latency mode: when its next token is due */
  void *owner;           /* the server's request */
  struct sim_seq *next;  /* in the waiting or running list */
} sim_seq;

typedef struct {
  sim_params p;
  sim_seq *waiting, *running;
  int n_running, kv_used, kv_capacity;
  uint64_t rng;
  /* prefix cache: open-addressed set of block hashes */
  uint64_t *cache;
  size_t cache_cap, cache_used, cache_max;
  /* the step in flight */
  int step_active;
  double step_start, prefill_end, step_end;
  int step_prefill_tokens, step_decodes;
  int open_phase; /* 0 none, 1 prefill, 2 decode: the phase range now open */
  /* what the server's /metrics says (vLLM's counters): prompt tokens admitted, tokens
   * generated, prompt tokens looked up in / found in the prefix cache, preemptions
   * (none: a sequence is admitted only when its whole KV reservation fits) */
  double prompt_tokens_total, generation_tokens_total, prefix_queries_total, prefix_hits_total;
  double preemptions_total;
} sim_model;

/* Called for each token a step produced (finished = last token of the sequence). */
typedef void (*sim_emit_fn)(void *ud, sim_seq *s, int finished);

int sim_model_init(sim_model *m, const sim_params *p);
void sim_model_free(sim_model *m);
/* tokens: prompt token hashes (for prefix caching), n of them. */
sim_seq *sim_seq_new(sim_model *m, const uint64_t *tokens, int n, int max_tokens, int ignore_eos,
                     uint64_t seed, void *owner);
void sim_model_submit(sim_model *m, sim_seq *s);
/* Sequences waiting for admission. */
int sim_model_waiting(const sim_model *m);
/* Forgets every cached prefix (vLLM's POST /reset_prefix_cache). */
void sim_model_reset_prefix_cache(sim_model *m);
/* Marks a sequence aborted (client gone); the model drops it at the next step. */
void sim_model_abort(sim_model *m, sim_seq *s);
/* Advances time: finishes the step in flight when due, starts the next when there is
 * work. Returns the time (monotonic seconds) of the next event, or -1 when idle.
 * phase_fn is told when phases begin and end (for NVTX ranges). */
typedef void (*sim_phase_fn)(const char *phase, int begin);
double sim_model_advance(sim_model *m, double now, sim_emit_fn emit, void *ud, sim_phase_fn phase);
/* Next pseudo-random 64-bit value of a sequence's generator. */
uint64_t sim_rng_next(uint64_t *state);

#endif
