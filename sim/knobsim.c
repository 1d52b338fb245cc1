/* knobsim - a simulated vLLM-compatible server.
 *
 *   knobsim serve MODEL --port P [--host H] [options]
 *
 * Real HTTP on a real port, OpenAI-compatible /v1/completions and /v1/chat/completions
 * (streaming and not), /health and /v1/models, with latencies from a continuous-
 * batching model (model.h) that reacts to vLLM's own knobs. One thread: a poll() loop
 * serves connections and sleeps until the next engine step ends. Faults can be
 * injected for tests (--fail-start, --hang-start, --crash-after-requests,
 * --error-rate, --malformed-after-tokens, --stall-after-tokens, --ignore-sigterm).
 * See README "The simulated server (knobsim)". */
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#include "http.h"
#include "json.h"
#include "model.h"

#ifdef KNOB_HAVE_NVTX
#include <nvtx3/nvToolsExt.h>
#endif

typedef struct {
  const char *host, *model;
  int port;
  const char *port_file; /* where to write the port once listening (for --port 0) */
  double load_time_s;
  int fail_start, hang_start;
  long crash_after_requests;
  double error_rate;
  int malformed_after_tokens; /* > 0: a broken chunk after this many tokens */
  int stall_after_tokens;     /* > 0: a stream goes silent after this many tokens */
  int ignore_sigterm;
  double slow_under_profiler; /* > 1: every modelled time multiplied when run under nsys */
  long log_lines;             /* > 0: that many lines of chatter before loading (tests of log caps) */
  const char *first_token_log; /* a CSV line per streamed request's first token (measuring clients) */
  double usage_factor;         /* > 0: usage.completion_tokens reported x this (tests of a client's count check) */
  int no_usage;                /* streams carry no usage whatever stream_options asks (as llama-cpp-python's) */
  int reasoning_tokens;        /* chat: the first N tokens are reasoning_content, as a reasoning parser sends them */
  sim_params p;
} options;

typedef struct request {
  int conn;
  int chat, stream, include_usage;
  int prompt_tokens;
  char id[40];
  char user[64]; /* the request's `user` field, names it in --first-token-log */
  long created;
  kbuf text; /* non-streaming: the completion so far */
  kbuf reasoning; /* non-streaming chat: its reasoning so far (--reasoning-tokens) */
  sim_seq *seq;
} request;

typedef struct {
  options o;
  http_server *http;
  sim_model model;
  request **by_conn; /* the request in flight on each connection */
  int by_conn_cap;
  unsigned long next_id;
  double request_arrived; /* when the request being handled was read */
  /* fixed-latency mode: how late tokens were written, in 1 us buckets (the last is
   * "that or later"); [0] first tokens, [1] every token */
  uint32_t *lateness[2];
  FILE *first_token_log;
  double unix_minus_monotonic; /* dates --first-token-log arrivals on the wall clock */
  long completed;
  uint64_t fault_rng;
} app;

static volatile sig_atomic_t g_stop;
static void on_term(int sig) { (void)sig; g_stop = 1; }

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void log_line(const char *fmt, const char *arg) {
  fprintf(stderr, "INFO knobsim: ");
  fprintf(stderr, fmt, arg);
  fputc('\n', stderr);
}

/* ---------- command line ---------- */

static void usage_error(const char *fmt, const char *arg) {
  fprintf(stderr,
          "usage: knobsim serve MODEL [--host HOST] [--port PORT] [--max-num-seqs N]\n"
          "                       [--max-num-batched-tokens N] [--enable-prefix-caching]\n"
          "                       [--enable-chunked-prefill] [--enforce-eager]\n"
          "                       [--kv-cache-dtype {auto,fp8,fp8_e4m3,fp8_e5m2}] ...\n"
          "knobsim serve: error: ");
  fprintf(stderr, fmt, arg);
  fputc('\n', stderr);
  exit(2);
}

static double num_arg(const char *name, const char *v) {
  char *end;
  errno = 0;
  double d = strtod(v, &end);
  if (errno || *end || end == v || !isfinite(d)) usage_error("argument %s: invalid value", name);
  return d;
}

/* Nsight Systems injects itself through LD_PRELOAD and QUADD_* variables. */
static int under_profiler(void) {
  const char *preload = getenv("LD_PRELOAD");
  return getenv("QUADD_INJECTION_PROXY") != NULL || (preload && strstr(preload, "libToolsInjection"));
}

/* What the environment changes: a profiler's slowdown (tests), the attention backend. */
static void apply_environment(options *o) {
  if (o->slow_under_profiler > 0 && under_profiler()) {
    /* for tests of profiling overhead: a server that a profiler slows down a lot */
    o->p.time_scale *= o->slow_under_profiler;
    fprintf(stderr, "INFO knobsim: running under a profiler: every modelled time x%g\n", o->slow_under_profiler);
  }
  const char *backend = getenv("VLLM_ATTENTION_BACKEND");
  if (backend && *backend) {
    if (strcmp(backend, "FLASHINFER") == 0) o->p.flashinfer = 1;
    else if (strcmp(backend, "FLASH_ATTN") && strcmp(backend, "XFORMERS") && strcmp(backend, "TORCH_SDPA")) {
      fprintf(stderr, "ValueError: Invalid attention backend: '%s'\n", backend);
      exit(1);
    }
  }
}

static void parse_args(int argc, char **argv, options *o) {
  memset(o, 0, sizeof *o);
  o->host = "127.0.0.1";
  o->port = 8000;
  o->load_time_s = 0.2;
  o->p.max_num_seqs = 256;
  o->p.max_batched_tokens = 512;
  o->p.kv_capacity_tokens = 4096;
  o->p.time_scale = 1.0;
  if (argc < 3 || strcmp(argv[1], "serve") != 0) usage_error("%s", "the command is 'serve MODEL'");
  o->model = argv[2];
  for (int i = 3; i < argc; i++) {
    char name[128];
    const char *a = argv[i];
    const char *eq = strchr(a, '=');
    const char *val = NULL;
    if (eq && strncmp(a, "--", 2) == 0) {
      snprintf(name, sizeof name, "%.*s", (int)(eq - a), a);
      val = eq + 1;
    } else {
      snprintf(name, sizeof name, "%s", a);
    }
#define FLAG(s) (strcmp(name, s) == 0)
#define VALUE() (val ? val : (i + 1 < argc ? argv[++i] : (usage_error("argument %s: expected one argument", name), "")))
    if (FLAG("--enable-prefix-caching")) o->p.prefix_caching = 1;
    else if (FLAG("--no-enable-prefix-caching")) o->p.prefix_caching = 0;
    else if (FLAG("--enable-chunked-prefill")) o->p.chunked_prefill = 1;
    else if (FLAG("--enforce-eager")) o->p.enforce_eager = 1;
    else if (FLAG("--disable-log-requests")) {}
    else if (FLAG("--fail-start")) o->fail_start = 1;
    else if (FLAG("--hang-start")) o->hang_start = 1;
    else if (FLAG("--host")) o->host = VALUE();
    else if (FLAG("--port")) o->port = (int)num_arg(name, VALUE());
    else if (FLAG("--port-file")) o->port_file = VALUE();
    else if (FLAG("--load-time-s")) o->load_time_s = num_arg(name, VALUE());
    else if (FLAG("--max-num-seqs")) o->p.max_num_seqs = (int)num_arg(name, VALUE());
    else if (FLAG("--max-num-batched-tokens")) o->p.max_batched_tokens = (int)num_arg(name, VALUE());
    else if (FLAG("--kv-capacity-tokens")) o->p.kv_capacity_tokens = (int)num_arg(name, VALUE());
    else if (FLAG("--time-scale")) o->p.time_scale = num_arg(name, VALUE());
    else if (FLAG("--seed")) o->p.seed = (uint64_t)num_arg(name, VALUE());
    else if (FLAG("--jitter-pct")) o->p.jitter_pct = num_arg(name, VALUE());
    else if (FLAG("--crash-after-requests")) o->crash_after_requests = (long)num_arg(name, VALUE());
    else if (FLAG("--error-rate")) o->error_rate = num_arg(name, VALUE());
    else if (FLAG("--malformed-after-tokens")) o->malformed_after_tokens = (int)num_arg(name, VALUE());
    else if (FLAG("--usage-factor")) o->usage_factor = num_arg(name, VALUE());
    else if (FLAG("--no-usage")) o->no_usage = 1;
    else if (FLAG("--reasoning-tokens")) o->reasoning_tokens = (int)num_arg(name, VALUE());
    else if (FLAG("--stall-after-tokens")) o->stall_after_tokens = (int)num_arg(name, VALUE());
    else if (FLAG("--ignore-sigterm")) o->ignore_sigterm = 1;
    else if (FLAG("--slow-under-profiler")) o->slow_under_profiler = num_arg(name, VALUE());
    else if (FLAG("--log-lines")) o->log_lines = (long)num_arg(name, VALUE());
    else if (FLAG("--first-token-log")) o->first_token_log = VALUE();
    else if (FLAG("--fixed-ttft-ms")) o->p.fixed_ttft_ms = num_arg(name, VALUE());
    else if (FLAG("--fixed-tpot-ms")) o->p.fixed_tpot_ms = num_arg(name, VALUE());
    else if (FLAG("--kv-cache-dtype")) {
      const char *v = VALUE();
      if (strcmp(v, "auto") == 0) o->p.kv_fp8 = 0;
      else if (strncmp(v, "fp8", 3) == 0 && (v[3] == '\0' || !strcmp(v, "fp8_e4m3") || !strcmp(v, "fp8_e5m2"))) o->p.kv_fp8 = 1;
      else usage_error("argument --kv-cache-dtype: invalid choice: '%s' (choose from 'auto', 'fp8', 'fp8_e4m3', 'fp8_e5m2')", v);
    } else usage_error("unrecognized arguments: %s", a);
#undef FLAG
#undef VALUE
  }
  if (o->port < 0 || o->port > 65535) usage_error("argument --port: invalid value %s", "(0-65535; 0: any free port)");
  if (o->p.max_num_seqs < 1 || o->p.max_batched_tokens < 1 || o->p.kv_capacity_tokens < 1)
    usage_error("%s", "--max-num-seqs, --max-num-batched-tokens and --kv-capacity-tokens must be >= 1");
  if (o->p.time_scale < 0 || o->error_rate < 0 || o->error_rate > 1 || o->p.jitter_pct < 0 || o->usage_factor < 0)
    usage_error("%s", "--time-scale, --jitter-pct and --usage-factor must be >= 0, --error-rate in [0, 1]");
  apply_environment(o);
}

/* ---------- responses ---------- */

static void send_error(app *a, int conn, int status, const char *type, const char *msg) {
  kbuf b = {0};
  kbuf_puts(&b, "{\"object\":\"error\",\"message\":");
  kbuf_json_string(&b, msg, strlen(msg));
  kbuf_printf(&b, ",\"type\":\"%s\",\"param\":null,\"code\":%d}", type, status);
  http_respond(a->http, conn, status, "application/json", b.data, b.len);
  kbuf_free(&b);
}

static const char *const VOCAB[] = {
    " the", " model", " token", " serving", " batch", " latency", " cache", " kernel",
    " prefill", " decode", " request", " engine", " memory", " graph", " stream", " queue",
    " a", " of", " and", " to", " is", " in", " for", " on",
    " GPU", " throughput", " schedule", " block", " attention", " layer", " step", "."};

static void chunk_head(kbuf *b, const app *a, const request *r) {
  kbuf_puts(b, "data: {\"id\":");
  kbuf_json_string(b, r->id, strlen(r->id));
  kbuf_printf(b, ",\"object\":\"%s\",\"created\":%ld,\"model\":",
              r->chat ? "chat.completion.chunk" : "text_completion", r->created);
  kbuf_json_string(b, a->o.model, strlen(a->o.model));
}

static void usage_json(kbuf *b, const app *a, int prompt, int generated) {
  double factor = a->o.usage_factor > 0 ? a->o.usage_factor : 1.0; /* 0: not given */
  long completion = (long)(generated * factor + 0.5);
  kbuf_printf(b, "{\"prompt_tokens\":%d,\"total_tokens\":%ld,\"completion_tokens\":%ld}", prompt,
              prompt + completion, completion);
}

static void free_request(app *a, request *r) {
  if (r->conn >= 0 && r->conn < a->by_conn_cap && a->by_conn[r->conn] == r) a->by_conn[r->conn] = NULL;
  kbuf_free(&r->text);
  kbuf_free(&r->reasoning);
  free(r);
}

#define LATENESS_BUCKETS 100000

/* Fixed-latency mode: a token was written; s->next_at is still the time it was due. */
static void note_lateness(app *a, const sim_seq *s) {
  if (!a->lateness[0]) return;
  double late_us = (now_s() - s->next_at) * 1e6;
  int bucket = late_us <= 0 ? 0 : late_us < LATENESS_BUCKETS - 1 ? (int)late_us : LATENESS_BUCKETS - 1;
  if (s->generated == 1) a->lateness[0][bucket]++;
  a->lateness[1][bucket]++;
}

/* Percentile p (0-100) of a lateness histogram in microseconds, -1 when empty. */
static int lateness_us(const uint32_t *h, double p) {
  uint64_t total = 0, seen = 0;
  for (int i = 0; i < LATENESS_BUCKETS; i++) total += h[i];
  if (!total) return -1;
  uint64_t want = (uint64_t)(p / 100.0 * (double)(total - 1));
  for (int i = 0; i < LATENESS_BUCKETS; i++) {
    seen += h[i];
    if (seen > want) return i;
  }
  return LATENESS_BUCKETS - 1;
}

/* One streamed token as its SSE chunk(s); the last one also carries the usage chunk
 * (when asked for) and [DONE]. */
static void stream_token(app *a, request *r, sim_seq *s, const char *tok, const char *reason, int finished) {
  kbuf b = {0};
  if (r->chat && s->generated == 1) { /* vLLM opens a chat stream with the role */
    chunk_head(&b, a, r);
    kbuf_puts(&b, ",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},"
                  "\"logprobs\":null,\"finish_reason\":null}]");
    if (r->include_usage) kbuf_puts(&b, ",\"usage\":null");
    kbuf_puts(&b, "}\n\n");
  }
  chunk_head(&b, a, r);
  if (r->chat) {
    int reasoning = s->generated <= a->o.reasoning_tokens;
    kbuf_puts(&b, reasoning ? ",\"choices\":[{\"index\":0,\"delta\":{\"reasoning_content\":"
                            : ",\"choices\":[{\"index\":0,\"delta\":{\"content\":");
    kbuf_json_string(&b, tok, strlen(tok));
    kbuf_printf(&b, "},\"logprobs\":null,\"finish_reason\":%s}]", finished ? reason : "null");
  } else {
    kbuf_puts(&b, ",\"choices\":[{\"index\":0,\"text\":");
    kbuf_json_string(&b, tok, strlen(tok));
    kbuf_printf(&b, ",\"logprobs\":null,\"finish_reason\":%s,\"stop_reason\":null}]",
                finished ? reason : "null");
  }
  if (r->include_usage) kbuf_puts(&b, ",\"usage\":null");
  kbuf_puts(&b, "}\n\n");
  if (finished && r->include_usage) {
    chunk_head(&b, a, r);
    kbuf_puts(&b, ",\"choices\":[],\"usage\":");
    usage_json(&b, a, r->prompt_tokens, s->generated);
    kbuf_puts(&b, "}\n\n");
  }
  if (finished) kbuf_puts(&b, "data: [DONE]\n\n");
  http_stream_write(a->http, r->conn, b.data, b.len);
  note_lateness(a, s);
  if (s->generated == 1 && a->first_token_log) /* the server's own TTFT, from its first byte in, and when
                                                  * that byte came on the wall clock (to pair any client) */
    fprintf(a->first_token_log, "%s,%.1f,%.0f\n", r->user[0] ? r->user : "-", (now_s() - s->arrived_at) * 1e6,
            (s->arrived_at + a->unix_minus_monotonic) * 1e6);
  kbuf_free(&b);
  if (finished) http_stream_end(a->http, r->conn);
}

/* The whole non-streaming response, once the last token is generated. */
static void respond_complete(app *a, request *r, const sim_seq *s, const char *reason) {
  kbuf b = {0};
  kbuf_puts(&b, "{\"id\":");
  kbuf_json_string(&b, r->id, strlen(r->id));
  if (r->chat) {
    kbuf_printf(&b, ",\"object\":\"chat.completion\",\"created\":%ld,\"model\":", r->created);
    kbuf_json_string(&b, a->o.model, strlen(a->o.model));
    kbuf_puts(&b, ",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":");
    kbuf_json_string(&b, r->text.data ? r->text.data : "", r->text.len);
    if (r->reasoning.len) {
      kbuf_puts(&b, ",\"reasoning_content\":");
      kbuf_json_string(&b, r->reasoning.data, r->reasoning.len);
    }
    kbuf_printf(&b, "},\"logprobs\":null,\"finish_reason\":%s}],\"usage\":", reason);
  } else {
    kbuf_printf(&b, ",\"object\":\"text_completion\",\"created\":%ld,\"model\":", r->created);
    kbuf_json_string(&b, a->o.model, strlen(a->o.model));
    kbuf_puts(&b, ",\"choices\":[{\"index\":0,\"text\":");
    kbuf_json_string(&b, r->text.data, r->text.len);
    kbuf_printf(&b, ",\"logprobs\":null,\"finish_reason\":%s,\"stop_reason\":null}],\"usage\":", reason);
  }
  usage_json(&b, a, r->prompt_tokens, s->generated);
  kbuf_puts(&b, "}");
  http_respond(a->http, r->conn, 200, "application/json", b.data, b.len);
  kbuf_free(&b);
}

static void on_token(void *ud, sim_seq *s, int finished) {
  app *a = ud;
  request *r = s->owner;
  if (!r) return;
  const char *tok = VOCAB[sim_rng_next(&s->rng) % (sizeof VOCAB / sizeof VOCAB[0])];
  const char *reason = s->generated >= s->max_tokens ? "\"length\"" : "\"stop\"";
  if (r->stream && a->o.stall_after_tokens > 0 && s->generated > a->o.stall_after_tokens) {
    /* fault: the stream goes silent and never ends; the client must time out */
    if (finished) { /* the model frees the sequence; the request stays open with its connection */
      s->owner = NULL;
      r->seq = NULL;
    }
    return;
  }
  if (r->stream && a->o.malformed_after_tokens > 0 && s->generated == a->o.malformed_after_tokens + 1) {
    static const char broken[] = "data: {\"id\": \"broken\", \"choices\": [\n\n";
    http_stream_write(a->http, r->conn, broken, sizeof broken - 1);
  }
  if (r->stream) {
    stream_token(a, r, s, tok, reason, finished);
  } else {
    kbuf_puts(r->chat && s->generated <= a->o.reasoning_tokens ? &r->reasoning : &r->text, tok);
    if (finished) respond_complete(a, r, s, reason);
  }
  if (finished) {
    free_request(a, r);
    s->owner = NULL;
    if (a->o.crash_after_requests > 0 && ++a->completed >= a->o.crash_after_requests) {
      fprintf(stderr, "ERROR knobsim: simulated crash after %ld requests\n", a->completed);
      abort();
    }
  }
}

/* Splits text on whitespace into token hashes (appended to *toks). */
static int tokenize(const char *s, size_t n, uint64_t **toks, int *count, int *cap) {
  size_t i = 0;
  while (i < n) {
    while (i < n && (s[i] == ' ' || s[i] == '\n' || s[i] == '\t' || s[i] == '\r')) i++;
    if (i >= n) break;
    uint64_t h = 1469598103934665603ull;
    while (i < n && !(s[i] == ' ' || s[i] == '\n' || s[i] == '\t' || s[i] == '\r'))
      h = (h ^ (unsigned char)s[i++]) * 1099511628211ull;
    if (*count == *cap) {
      int nc = *cap ? *cap * 2 : 256;
      uint64_t *t = realloc(*toks, (size_t)nc * sizeof *t);
      if (!t) return -1;
      *toks = t;
      *cap = nc;
    }
    (*toks)[(*count)++] = h;
  }
  return 0;
}

static int is_int(const kj_value *v) { return v && v->type == KJ_NUM && v->num == floor(v->num); }

/* A message's content: a string, or (as OpenAI's chat API allows) an array of parts
 * whose "text" parts are the text; other parts count no tokens. -1 when memory ran
 * out, 1 when it is neither, 0 when tokenized. */
static int content_tokens(const kj_value *content, uint64_t **toks, int *ntok, int *cap) {
  if (content->type == KJ_STR) return tokenize(content->str, content->len, toks, ntok, cap) ? -1 : 0;
  if (content->type != KJ_ARR) return 1;
  for (const kj_value *part = content->child; part; part = part->next) {
    const kj_value *type = kj_get(part, "type"), *text = kj_get(part, "text");
    if (!type || type->type != KJ_STR) return 1;
    if (strcmp(type->str, "text") != 0) continue;
    if (!text || text->type != KJ_STR) return 1;
    if (tokenize(text->str, text->len, toks, ntok, cap)) return -1;
  }
  return 0;
}

/* The prompt's tokens (chat: every message's role and content). Returns NULL, or the
 * 400 message for a bad body; *oom is set when memory ran out. */
static const char *prompt_tokens(const kj_value *root, int chat, uint64_t **toks, int *ntok, int *oom) {
  int cap = 0;
  if (chat) {
    const kj_value *msgs = kj_get(root, "messages");
    if (!msgs || msgs->type != KJ_ARR || msgs->len == 0) return "'messages' must be a non-empty array";
    for (const kj_value *m = msgs->child; m; m = m->next) {
      const kj_value *role = kj_get(m, "role"), *content = kj_get(m, "content");
      if (!role || role->type != KJ_STR || !content) return "each message needs string 'role' and 'content'";
      int rc = tokenize(role->str, role->len, toks, ntok, &cap) ? -1 : content_tokens(content, toks, ntok, &cap);
      if (rc > 0) return "a message's 'content' must be a string or an array of parts";
      if (rc < 0) {
        *oom = 1;
        return NULL;
      }
    }
    return NULL;
  }
  const kj_value *prompt = kj_get(root, "prompt");
  if (prompt && prompt->type == KJ_ARR && prompt->len == 1 && prompt->child->type == KJ_STR) prompt = prompt->child;
  if (!prompt || prompt->type != KJ_STR) return "'prompt' must be a string";
  if (tokenize(prompt->str, prompt->len, toks, ntok, &cap)) *oom = 1;
  return NULL;
}

/* max_tokens (default 16) and the types of the sampling fields; NULL or the 400
 * message. */
static const char *check_sampling(const kj_value *root, int *max_tokens) {
  const kj_value *mt = kj_get(root, "max_tokens");
  if (!mt) mt = kj_get(root, "max_completion_tokens");
  *max_tokens = 16;
  if (mt && mt->type != KJ_NULL) {
    if (!is_int(mt) || mt->num < 1 || mt->num > 1e6) return "max_tokens must be an integer >= 1";
    *max_tokens = (int)mt->num;
  }
  const kj_value *stream = kj_get(root, "stream"), *ignore = kj_get(root, "ignore_eos");
  const kj_value *temp = kj_get(root, "temperature"), *seed = kj_get(root, "seed");
  if ((stream && stream->type != KJ_BOOL && stream->type != KJ_NULL) ||
      (ignore && ignore->type != KJ_BOOL && ignore->type != KJ_NULL))
    return "'stream' and 'ignore_eos' must be booleans";
  if (temp && temp->type != KJ_NULL && (temp->type != KJ_NUM || temp->num < 0)) return "temperature must be a number >= 0";
  if (seed && seed->type != KJ_NULL && !is_int(seed)) return "seed must be an integer";
  return NULL;
}

/* Starts generating for a validated request: its sequence joins the model's queue. */
static int start_request(app *a, int conn, const kj_value *root, int chat, const uint64_t *toks, int ntok,
                         int max_tokens) {
  const kj_value *stream = kj_get(root, "stream"), *ignore = kj_get(root, "ignore_eos");
  const kj_value *temp = kj_get(root, "temperature"), *seed = kj_get(root, "seed");
  request *r = calloc(1, sizeof *r);
  if (!r) return -1;
  r->conn = conn;
  r->chat = chat;
  r->stream = stream && stream->boolean;
  const kj_value *iu = kj_get(kj_get(root, "stream_options"), "include_usage");
  r->include_usage = !a->o.no_usage && iu && iu->type == KJ_BOOL && iu->boolean;
  r->prompt_tokens = ntok > 0 ? ntok : 1;
  r->created = (long)time(NULL);
  const kj_value *user = kj_get(root, "user");
  if (user && user->type == KJ_STR)
    for (size_t i = 0; user->str[i] && i + 1 < sizeof r->user; i++) r->user[i] = user->str[i] == ',' ? ';' : user->str[i];
  snprintf(r->id, sizeof r->id, "%s-%lx", chat ? "chatcmpl" : "cmpl", ++a->next_id);
  /* greedy decoding (temperature 0) with no seed: the text depends on the prompt only */
  uint64_t rs = a->o.p.seed;
  if (seed && seed->type == KJ_NUM) rs ^= (uint64_t)(int64_t)seed->num * 0x9E3779B97F4A7C15ull;
  else if (!temp || temp->type == KJ_NULL || temp->num == 0) for (int i = 0; i < ntok; i++) rs = (rs ^ toks[i]) * 1099511628211ull;
  else rs ^= a->next_id * 0x9E3779B97F4A7C15ull;
  r->seq = sim_seq_new(&a->model, toks, ntok, max_tokens, ignore && ignore->boolean, rs, r);
  if (!r->seq) { free(r); return -1; }
  r->seq->arrived_at = a->request_arrived;
  a->by_conn[conn] = r;
  if (r->stream) http_stream_begin(a->http, conn, "text/event-stream; charset=utf-8");
  sim_model_submit(&a->model, r->seq);
  return 0;
}

static void handle_generate(app *a, int conn, const http_request *req, int chat) {
  kj_doc doc = {0};
  char perr[128], msg[256];
  kj_value *root = kj_parse(&doc, req->body, req->body_len, perr, sizeof perr);
  uint64_t *toks = NULL;
  int ntok = 0, oom = 0, max_tokens = 0;
  const kj_value *model = root ? kj_get(root, "model") : NULL;
  const char *bad = NULL;
  if (!root || root->type != KJ_OBJ) {
    snprintf(msg, sizeof msg, "Invalid JSON body: %s", root ? "expected an object" : perr);
    send_error(a, conn, 400, "BadRequestError", msg);
  } else if (model && (model->type != KJ_STR || strcmp(model->str, a->o.model) != 0)) {
    snprintf(msg, sizeof msg, "The model `%s` does not exist.", model->type == KJ_STR ? model->str : "?");
    send_error(a, conn, 404, "NotFoundError", msg);
  } else if ((bad = prompt_tokens(root, chat, &toks, &ntok, &oom)) || (!oom && (bad = check_sampling(root, &max_tokens)))) {
    send_error(a, conn, 400, "BadRequestError", bad);
  } else if (!oom && a->o.error_rate > 0 &&
             (double)(sim_rng_next(&a->fault_rng) >> 11) / 9007199254740992.0 < a->o.error_rate) {
    send_error(a, conn, 500, "InternalServerError", "simulated internal error");
  } else if (oom || start_request(a, conn, root, chat, toks, ntok, max_tokens)) {
    send_error(a, conn, 500, "InternalServerError", "out of memory");
  }
  free(toks);
  kj_doc_free(&doc);
}

/* One metric of /metrics in Prometheus text, with vLLM's name, labels and help. */
static void metric_line(kbuf *b, const char *labels, const char *name, const char *type, const char *help, double v) {
  int counter = strcmp(type, "counter") == 0;
  size_t base = counter ? strlen(name) - strlen("_total") : strlen(name); /* a counter's family drops _total */
  kbuf_printf(b, "# HELP %.*s %s\n# TYPE %.*s %s\n%s{%s} %.1f\n", (int)base, name, help, (int)base, name, type, name,
              labels, v);
}

/* GET /metrics: the engine's state as vLLM names it. */
static void send_metrics(app *a, int conn) {
  kbuf labels = {0}, b = {0};
  kbuf_puts(&labels, "engine=\"0\",model_name=\"");
  for (const char *p = a->o.model; *p; p++) { /* a label value's escapes */
    if (*p == '\\' || *p == '"') kbuf_printf(&labels, "\\%c", *p);
    else if (*p == '\n') kbuf_puts(&labels, "\\n");
    else kbuf_append(&labels, p, 1);
  }
  kbuf_puts(&labels, "\"");
  const sim_model *m = &a->model;
  const char *l = labels.data;
  metric_line(&b, l, "vllm:num_requests_running", "gauge", "Number of requests in model execution batches.", m->n_running);
  metric_line(&b, l, "vllm:num_requests_waiting", "gauge", "Number of requests waiting to be processed.", sim_model_waiting(m));
  metric_line(&b, l, "vllm:kv_cache_usage_perc", "gauge", "KV-cache usage. 1 means 100 percent usage.",
              m->kv_capacity > 0 ? (double)m->kv_used / m->kv_capacity : 0);
  metric_line(&b, l, "vllm:num_preemptions_total", "counter", "Cumulative number of preemption from the engine.", m->preemptions_total);
  metric_line(&b, l, "vllm:prefix_cache_queries_total", "counter", "Prefix cache queries, in terms of number of queried tokens.",
              m->prefix_queries_total);
  metric_line(&b, l, "vllm:prefix_cache_hits_total", "counter", "Prefix cache hits, in terms of number of cached tokens.",
              m->prefix_hits_total);
  metric_line(&b, l, "vllm:prompt_tokens_total", "counter", "Number of prefill tokens processed.", m->prompt_tokens_total);
  metric_line(&b, l, "vllm:generation_tokens_total", "counter", "Number of generation tokens processed.", m->generation_tokens_total);
  http_respond(a->http, conn, 200, "text/plain; version=0.0.4; charset=utf-8", b.data, b.len);
  kbuf_free(&labels);
  kbuf_free(&b);
}

static void on_request(void *ud, int conn, const http_request *req) {
  app *a = ud;
  a->request_arrived = req->arrived > 0 ? req->arrived : now_s();
  if (conn >= a->by_conn_cap) {
    int cap = a->by_conn_cap ? a->by_conn_cap : 64;
    while (cap <= conn) cap *= 2;
    request **n = realloc(a->by_conn, (size_t)cap * sizeof *n);
    if (!n) { send_error(a, conn, 500, "InternalServerError", "out of memory"); return; }
    memset(n + a->by_conn_cap, 0, (size_t)(cap - a->by_conn_cap) * sizeof *n);
    a->by_conn = n;
    a->by_conn_cap = cap;
  }
  int is_get = strcmp(req->method, "GET") == 0, is_post = strcmp(req->method, "POST") == 0;
  if (strcmp(req->path, "/health") == 0) {
    if (is_get) http_respond(a->http, conn, 200, "application/json", "", 0);
    else send_error(a, conn, 405, "MethodNotAllowed", "Method Not Allowed");
  } else if (strcmp(req->path, "/v1/models") == 0 && is_get) {
    kbuf b = {0};
    kbuf_puts(&b, "{\"object\":\"list\",\"data\":[{\"id\":");
    kbuf_json_string(&b, a->o.model, strlen(a->o.model));
    kbuf_puts(&b, ",\"object\":\"model\",\"created\":0,\"owned_by\":\"vllm\",\"root\":");
    kbuf_json_string(&b, a->o.model, strlen(a->o.model));
    kbuf_puts(&b, ",\"parent\":null,\"max_model_len\":32768}]}");
    http_respond(a->http, conn, 200, "application/json", b.data, b.len);
    kbuf_free(&b);
  } else if (strcmp(req->path, "/metrics") == 0 && is_get) {
    send_metrics(a, conn);
  } else if (strcmp(req->path, "/reset_prefix_cache") == 0 && is_post) {
    sim_model_reset_prefix_cache(&a->model);
    http_respond(a->http, conn, 200, "application/json", "", 0);
  } else if (strcmp(req->path, "/v1/completions") == 0 && is_post) {
    handle_generate(a, conn, req, 0);
  } else if (strcmp(req->path, "/v1/chat/completions") == 0 && is_post) {
    handle_generate(a, conn, req, 1);
  } else {
    send_error(a, conn, 404, "NotFoundError", "Not Found");
  }
}

static void on_close(void *ud, int conn) {
  app *a = ud;
  if (conn >= a->by_conn_cap || !a->by_conn[conn]) return;
  request *r = a->by_conn[conn];
  if (r->seq) sim_model_abort(&a->model, r->seq); /* the model frees the sequence */
  r->conn = -1;
  a->by_conn[conn] = NULL;
  kbuf_free(&r->text);
  kbuf_free(&r->reasoning);
  free(r);
}

#ifdef KNOB_HAVE_NVTX
static nvtxRangeId_t g_phase_range;
static void on_phase(const char *phase, int begin) {
  if (strcmp(phase, "get_batch") == 0) {
    if (begin) nvtxRangePushA(phase);
    else nvtxRangePop();
  } else if (begin) {
    g_phase_range = nvtxRangeStartA(phase);
  } else {
    nvtxRangeEnd(g_phase_range);
  }
}
#define PHASE_FN on_phase
#else
#define PHASE_FN NULL
#endif

/* Writes "PORT\n" to path atomically (a reader never sees a partial number). */
static int write_port_file(const char *path, int port) {
  char tmp[4200];
  snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
  FILE *f = fopen(tmp, "w");
  if (!f) return -1;
  int ok = fprintf(f, "%d\n", port) > 0;
  if (fclose(f) != 0 || !ok || rename(tmp, path) != 0) {
    unlink(tmp);
    return -1;
  }
  return 0;
}

/* Reports how late the server itself was (fixed latencies) and frees everything. */
static void shut_down(app *a) {
  if (a->lateness[0] && lateness_us(a->lateness[1], 50) >= 0)
    /* how far the server itself missed the schedule: a client's error comes on top */
    fprintf(stderr, "INFO knobsim: fixed-latency lateness (us): first token p50 %d p95 %d, "
            "every token p50 %d p95 %d\n", lateness_us(a->lateness[0], 50), lateness_us(a->lateness[0], 95),
            lateness_us(a->lateness[1], 50), lateness_us(a->lateness[1], 95));
  log_line("%s", "Shutting down");
  http_server_free(a->http);
  sim_model_free(&a->model);
  free(a->by_conn);
  free(a->lateness[0]);
  free(a->lateness[1]);
  if (a->first_token_log) fclose(a->first_token_log);
}

int main(int argc, char **argv) {
  app a;
  memset(&a, 0, sizeof a);
  parse_args(argc, argv, &a.o);
  a.fault_rng = a.o.p.seed ^ 0xFA17ull;
  setvbuf(stderr, NULL, _IOLBF, 0);
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_term;
  if (a.o.ignore_sigterm) signal(SIGTERM, SIG_IGN); /* fault: only SIGKILL stops it */
  else sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  signal(SIGPIPE, SIG_IGN);
  /* tokens are due at exact times: wake from ppoll on time, not up to the default
   * 50 us timer slack late */
  prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL);

  for (long i = 0; i < a.o.log_lines; i++) /* a chatty server, for tests of log caps */
    fprintf(stderr, "DEBUG knobsim: chatter line %ld of %ld, padded to about a hundred bytes ..............\n", i + 1,
            a.o.log_lines);
  log_line("loading model %s", a.o.model);
  double load_end = now_s() + (a.o.fail_start ? a.o.load_time_s / 2 : a.o.load_time_s);
  while (!g_stop && (a.o.hang_start || now_s() < load_end)) usleep(10000);
  if (g_stop) return 0;
  if (a.o.fail_start) {
    fprintf(stderr, "ERROR knobsim: RuntimeError: simulated failure while loading the model\n");
    return 1;
  }
  if (sim_model_init(&a.model, &a.o.p)) {
    fprintf(stderr, "ERROR knobsim: out of memory\n");
    return 1;
  }
  if (a.o.p.fixed_ttft_ms > 0 || a.o.p.fixed_tpot_ms > 0) {
    for (int i = 0; i < 2; i++) {
      a.lateness[i] = calloc(LATENESS_BUCKETS, sizeof *a.lateness[i]);
      if (!a.lateness[i]) {
        fprintf(stderr, "ERROR knobsim: out of memory\n");
        return 1;
      }
    }
  }
  http_handlers h = {on_request, on_close, &a};
  a.http = http_server_new(&h);
  if (!a.http || http_listen(a.http, a.o.host, a.o.port)) {
    fprintf(stderr, "ERROR knobsim: [Errno %d] error while attempting to bind on address ('%s', %d): %s\n",
            errno, a.o.host, a.o.port, strerror(errno));
    return 1;
  }
  if (a.o.first_token_log && !(a.first_token_log = fopen(a.o.first_token_log, "w"))) {
    fprintf(stderr, "ERROR knobsim: cannot write --first-token-log %s: %s\n", a.o.first_token_log, strerror(errno));
    return 1;
  }
  struct timespec wall;
  clock_gettime(CLOCK_REALTIME, &wall);
  a.unix_minus_monotonic = (double)wall.tv_sec + (double)wall.tv_nsec * 1e-9 - now_s();
  if (a.o.port_file && write_port_file(a.o.port_file, http_port(a.http))) {
    fprintf(stderr, "ERROR knobsim: cannot write --port-file %s: %s\n", a.o.port_file, strerror(errno));
    return 1;
  }
  char where[300];
  snprintf(where, sizeof where, "http://%s:%d", a.o.host, http_port(a.http));
  log_line("Started server process, listening on %s", where);
  while (!g_stop) {
    double next = sim_model_advance(&a.model, now_s(), on_token, &a, PHASE_FN);
    double wait = 0.2; /* when idle, wake up now and then to notice SIGTERM */
    if (next >= 0) {
      wait = next - now_s();
      if (wait < 0) wait = 0;
      if (wait > 0.2) wait = 0.2;
    }
    http_poll(a.http, wait);
  }
  shut_down(&a);
  return 0;
}
