/* replay_response.c - see replay_internal.h: the OpenAI response reader.
 *
 * A streaming answer is parsed as SSE (sse.h) as it arrives, one chunk at a time; a
 * non-streamed one (or a JSON answer to a streaming request) is held, up to
 * KE_RESPONSE_BODY_MAX, and parsed at the end. Content chunks date TTFT and the
 * inter-token gaps (by their arrival, replay_rx.c); usage and error objects are read
 * from either; a finished request is judged and its row recorded (kr_slot_finish). */
#include <ctype.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "replay_internal.h"
#include "text.h"

#define ERROR_BODY_MAX 512

static int push_gap(float_vec *g, double v) {
  if (g->n == g->cap) {
    size_t cap = g->cap ? g->cap * 2 : 4096;
    float *nv = realloc(g->v, cap * sizeof *nv);
    if (!nv) return -1;
    g->v = nv;
    g->cap = cap;
  }
  g->v[g->n++] = (float)v;
  return 0;
}

static void slot_fail(slot *s, const char *msg) {
  if (!s->failed) {
    s->failed = 1;
    snprintf(s->error, sizeof s->error, "%s", msg);
  }
}

static long response_code(slot *s) {
  long code = 0;
  curl_easy_getinfo(s->easy, CURLINFO_RESPONSE_CODE, &code);
  return code;
}

/* What one parsed chunk or response object carries: content (a choice's text, or its
 * delta's / message's content: what TTFT and the fallback token count go by), and the
 * bytes of generated output of any kind (content, reasoning, tool-call names and
 * arguments): what a usage count is checked against. */
typedef struct { int content, reasoning; double bytes; } chunk_output;

static size_t str_len(const kj_value *v) { return v && v->type == KJ_STR ? v->len : 0; }

static size_t tool_call_bytes(const kj_value *calls) {
  size_t n = 0;
  if (!calls || calls->type != KJ_ARR) return 0;
  for (const kj_value *c = calls->child; c; c = c->next) {
    const kj_value *f = kj_get(c, "function");
    n += str_len(kj_get(f, "name")) + str_len(kj_get(f, "arguments"));
  }
  return n;
}

static chunk_output read_output(const kj_value *root, int streaming) {
  chunk_output out = {0, 0, 0};
  const kj_value *choices = kj_get(root, "choices");
  if (!choices || choices->type != KJ_ARR) return out;
  for (const kj_value *c = choices->child; c; c = c->next) {
    const kj_value *holder = kj_get(c, streaming ? "delta" : "message");
    const kj_value *text = kj_get(c, "text");
    if (!text) text = kj_get(holder, "content");
    if (str_len(text) > 0) out.content = 1;
    size_t reasoning = str_len(kj_get(holder, "reasoning_content")) + str_len(kj_get(holder, "reasoning"));
    if (reasoning > 0) out.reasoning = 1;
    out.bytes += (double)(str_len(text) + reasoning + tool_call_bytes(kj_get(holder, "tool_calls")));
  }
  return out;
}

static void read_usage(slot *s, const kj_value *root) {
  const kj_value *usage = kj_get(root, "usage");
  if (!usage || usage->type != KJ_OBJ) return;
  const kj_value *ct = kj_get(usage, "completion_tokens");
  const kj_value *pt = kj_get(usage, "prompt_tokens");
  if (ct && ct->type == KJ_NUM) s->usage_completion = ct->num; /* judged at the end */
  if (pt && pt->type == KJ_NUM && pt->num >= 0 && pt->num <= INT_MAX) s->usage_prompt = (long)pt->num;
}

/* The server's error in a 200 answer: an `error` object (or string). */
static const kj_value *error_of(const kj_value *root) {
  const kj_value *e = kj_get(root, "error");
  return e && (e->type == KJ_OBJ || (e->type == KJ_STR && e->len > 0)) ? e : NULL;
}

/* Fails the request with what the server's error says: its message (on one line, as
 * much as the error holds), or its type or code when it has no message. */
static void slot_fail_error(slot *s, const char *where, const kj_value *e) {
  const kj_value *m = e->type == KJ_STR ? e : kj_get(e, "message");
  if (!m || m->type != KJ_STR || m->len == 0) m = kj_get(e, "type");
  char msg[sizeof s->error];
  int n = snprintf(msg, sizeof msg, "error in %s: ", where);
  if (m && m->type == KJ_STR && m->len > 0) {
    ke_text_line(m->str, m->len, msg + n, sizeof msg - (size_t)n);
  } else {
    const kj_value *code = kj_get(e, "code");
    if (code && code->type == KJ_NUM) snprintf(msg + n, sizeof msg - (size_t)n, "(no message, code %.0f)", code->num);
    else snprintf(msg + n, sizeof msg - (size_t)n, "(no message)");
  }
  slot_fail(s, msg);
}

/* Data that is only blank (an empty event is never dispatched, sse.h): no chunk. */
static int blank(const char *data, size_t len) {
  for (size_t i = 0; i < len; i++)
    if (!isspace((unsigned char)data[i])) return 0;
  return 1;
}

static int on_event(void *ud, const char *data, size_t len) {
  slot *s = ud;
  if (s->done || blank(data, len)) return 0; /* data after [DONE] is ignored */
  if (len == 6 && memcmp(data, "[DONE]", 6) == 0) {
    s->done = 1;
    return 0;
  }
  kj_doc *doc = &s->rs->scratch;
  char perr[96];
  kj_value *root = kj_parse(doc, data, len, perr, sizeof perr);
  if (!root || root->type != KJ_OBJ) {
    char msg[128];
    snprintf(msg, sizeof msg, "malformed stream: %s", root ? "chunk is not an object" : perr);
    slot_fail(s, msg);
    kj_doc_reset(doc);
    return 1;
  }
  const kj_value *e = error_of(root);
  if (e) {
    slot_fail_error(s, "stream", e);
    kj_doc_reset(doc);
    return 1;
  }
  chunk_output out = read_output(root, 1);
  if (out.bytes > 0) {
    s->out_chunks++;
    s->out_bytes += out.bytes;
  }
  if (out.content && s->t_first_output == 0) s->t_first_output = s->t_last_data;
  if (out.content || out.reasoning) { /* a token chunk: TTFT, ITL and the count go by these */
    double now = s->t_last_data;
    if (s->chunks == 0) s->t_first = now;
    else {
      if (now - s->t_last > s->max_gap) s->max_gap = now - s->t_last;
      if (s->measured && push_gap(&s->rs->gaps, (now - s->t_last) * 1000.0)) s->rs->oom = 1;
    }
    s->t_last = now;
    s->chunks++;
  }
  read_usage(s, root);
  kj_doc_reset(doc);
  return 0;
}

/* Holds body bytes, up to KE_RESPONSE_BODY_MAX: 0, or -1 with the request failed. */
static int hold_body(slot *s, const char *ptr, size_t n) {
  if (n > KE_RESPONSE_BODY_MAX - s->body.len) {
    char msg[64];
    snprintf(msg, sizeof msg, "response body over %zu MiB", KE_RESPONSE_BODY_MAX >> 20);
    slot_fail(s, msg);
    return -1;
  }
  if (kbuf_append(&s->body, ptr, n) == 0) return 0;
  slot_fail(s, "out of memory holding the response body");
  return -1;
}

/* Streaming: an answer that opens with '{' is a JSON body (an error, most likely), not
 * an event stream, whose lines never start with one. Decided at its first non-blank
 * byte; the blanks before it are harmless to either. */
static void decide_body(slot *s, const char *ptr, size_t n) {
  for (size_t i = 0; i < n && !s->decided; i++) {
    if (isspace((unsigned char)ptr[i])) continue;
    s->decided = 1;
    s->json_body = ptr[i] == '{';
  }
}

size_t kr_on_write(char *ptr, size_t size, size_t nmemb, void *ud) {
  slot *s = ud;
  size_t n = size * nmemb;
  long code = response_code(s);
  int ok = code >= 200 && code < 300;
  if (ok && s->rs->o->stream && !s->decided) decide_body(s, ptr, n);
  if (!ok) {
    if (s->body.len < ERROR_BODY_MAX) {
      size_t take = ERROR_BODY_MAX - s->body.len;
      if (kbuf_append(&s->body, ptr, n < take ? n : take)) return 0;
    }
    return n;
  }
  if (!s->rs->o->stream || s->json_body) return hold_body(s, ptr, n) ? 0 : n;
  /* the data's arrival: from the kernel, looked up just before curl read it, else
   * now; every event of this read shares it */
  double rx = kr_rx_arrival(&s->rs->rx, s->fd);
  s->t_last_data = rx > s->t_start ? rx : ke_now();
  int rc = sse_feed(&s->sse, ptr, n, on_event, s);
  if (rc == -1) {
    char msg[64];
    if (s->sse.too_long)
      snprintf(msg, sizeof msg, "malformed stream: %s over %u MiB",
               s->sse.too_long == SSE_LINE_TOO_LONG ? "line" : "event", SSE_MAX_LINE >> 20);
    else
      snprintf(msg, sizeof msg, "out of memory parsing the stream");
    slot_fail(s, msg);
  }
  return rc ? 0 : n;
}

void kr_response_reset(slot *s) {
  s->t_first = s->t_last = s->t_last_data = s->t_first_output = 0;
  s->chunks = 0;
  s->out_chunks = 0;
  s->out_bytes = 0;
  s->max_gap = 0;
  s->usage_completion = NAN;
  s->usage_prompt = -1;
  s->json_body = s->decided = 0;
  s->done = s->failed = 0;
  s->error[0] = '\0';
  sse_free(&s->sse);
  sse_init(&s->sse);
  s->body.len = 0;
}

/* A non-2xx answer: the status and what the server said (its first 200 bytes, on one
 * line), so the cause is in the error, not only a number. */
static void slot_fail_http(slot *s, long code) {
  char said[201];
  size_t n = ke_text_line(s->body.data ? s->body.data : "", s->body.len < 200 ? s->body.len : 200, said, sizeof said);
  char msg[256];
  if (n) snprintf(msg, sizeof msg, "HTTP %ld: %s", code, said);
  else snprintf(msg, sizeof msg, "HTTP %ld", code);
  slot_fail(s, msg);
}

/* The output tokens of a request that carried `fallback` by its own count (content
 * or reasoning chunks; 1 for a non-streamed text): the server's usage.completion_tokens when it said
 * so and it is plausible (ke_usage_plausible), else the fallback (*mismatch set when
 * the usage was not believed). */
static int output_tokens(const slot *s, int fallback, int *mismatch) {
  *mismatch = 0;
  if (isnan(s->usage_completion)) return fallback;
  long chunks = s->rs->o->stream ? s->out_chunks : 0;
  if (ke_usage_plausible(s->usage_completion, chunks, s->out_bytes)) return (int)s->usage_completion;
  *mismatch = 1;
  return fallback;
}

/* A held body (non-streaming, or a JSON answer to a streaming request): its error, or
 * (non-streaming) its output. Returns its fallback token count (see output_tokens). */
static int finish_body(slot *s) {
  kj_doc *doc = &s->rs->scratch;
  char perr[96];
  kj_value *root = kj_parse(doc, s->body.data ? s->body.data : "", s->body.len, perr, sizeof perr);
  const kj_value *e = root && root->type == KJ_OBJ ? error_of(root) : NULL;
  int fallback = 0;
  if (!root || root->type != KJ_OBJ) {
    char msg[96];
    snprintf(msg, sizeof msg, "malformed response: %s", root ? "not an object" : perr);
    slot_fail(s, msg);
  } else if (e) {
    slot_fail_error(s, "response", e);
  } else if (s->json_body) {
    slot_fail(s, "malformed stream: a JSON body, not an event stream");
  } else {
    read_usage(s, root);
    chunk_output out = read_output(root, 0);
    s->out_bytes = out.bytes;
    fallback = out.content || out.reasoning;
  }
  kj_doc_reset(doc);
  return fallback;
}

/* Decides a finished request's outcome; returns its output tokens. */
static int judge(slot *s, CURLcode result, long code, int *mismatch) {
  *mismatch = 0;
  if (result != CURLE_OK) {
    if (!s->failed) {
      char msg[96];
      snprintf(msg, sizeof msg, "%s", result == CURLE_OPERATION_TIMEDOUT ? "timeout" : curl_easy_strerror(result));
      slot_fail(s, msg);
    }
    return 0;
  }
  if (code < 200 || code >= 300) {
    slot_fail_http(s, code);
    return 0;
  }
  int fallback;
  if (s->rs->o->stream && !s->json_body) {
    if (!s->failed && !s->done) slot_fail(s, "malformed stream: ended without [DONE]");
    fallback = s->chunks;
  } else {
    fallback = finish_body(s);
  }
  int tokens = output_tokens(s, fallback, mismatch);
  if (!s->failed && tokens <= 0) slot_fail(s, "zero output tokens");
  return tokens;
}

/* Finishes a request: decides success and records its row. */
void kr_slot_finish(slot *s, CURLcode result, double t_end) {
  replay_state *rs = s->rs;
  s->fd = -1; /* its connection is parked or another slot's now: not ours to watch */
  s->busy = 0;
  const ke_replay_opts *o = rs->o;
  long code = response_code(s);
  int mismatch;
  int tokens = judge(s, result, code, &mismatch);
  if (!s->measured) return;
  request_row *r = &rs->rows[s->index];
  /* the clock starts when the request is sent, not when it was queued in the client
   * (on_prereq, replay_curl.c); a request that never got a connection counts from its
   * queueing */
  double t_sent = s->t_sent > 0 ? s->t_sent : s->t_start;
  /* streaming: the request ends when its last data arrived, not when we got to it */
  double t_last = (o->stream && s->t_last_data > t_sent && s->t_last_data < t_end) ? s->t_last_data : t_end;
  r->latency_ms = (t_last - t_sent) * 1000.0;
  r->ttft_ms = (o->stream && s->chunks > 0) ? (s->t_first - t_sent) * 1000.0 : NAN;
  r->ttfot_ms = (o->stream && s->t_first_output > 0) ? (s->t_first_output - t_sent) * 1000.0 : NAN;
  r->tokens = s->failed ? 0 : tokens;
  r->status = code;
  r->sent = t_sent;
  r->scheduled = o->schedule ? o->schedule[s->index] : NAN;
  r->max_gap_ms = s->chunks > 1 ? s->max_gap * 1000.0 : NAN;
  r->input_tokens = s->usage_prompt >= 0 ? (int)s->usage_prompt : -1;
  r->token_mismatch = mismatch;
  r->usage = s->usage_completion;
  r->out_chunks = o->stream ? s->out_chunks : -1;
  r->out_bytes = s->out_bytes;
  r->done = 1;
  r->error = s->error[0] ? strdup(s->error) : NULL;
  if (s->error[0] && !r->error) rs->oom = 1;
}
