/* replay.c - see replay.h. */
#include "replay.h"

#include <curl/curl.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <sys/epoll.h>
#include <unistd.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "fsutil.h"
#include "json.h"
#include "replay_rows.h"
#include "rxtime.h"
#include "sse.h"
#include "supervise.h"

#define ERROR_BODY_MAX 512

typedef ke_request_row request_row;

typedef struct { float *v; size_t n, cap; } float_vec;

typedef struct replay_state replay_state;

typedef struct {
  CURL *easy;
  replay_state *rs;
  int busy;      /* a request is in flight on it */
  int measured;  /* counts toward metrics */
  int index;     /* row index when measured */
  double t_start, t_sent, t_first, t_last;
  double t_last_data; /* arrival time of the data being parsed / last written to us */
  int fd;             /* the connection's socket (streaming only), -1 = unknown */
  int chunks;    /* content chunks seen */
  long out_chunks;  /* chunks with generated output of any kind (content, reasoning, tools) */
  double out_bytes; /* bytes of that output (non-streaming: of the response) */
  double max_gap; /* its largest gap between content chunks (s) */
  double usage_completion; /* usage.completion_tokens as the server said it, NaN = not said */
  long usage_prompt;
  int json_body; /* streaming: the server answered with a JSON body, not an event stream */
  int decided;   /* streaming: the body's first non-blank byte was seen (json_body set) */
  int done;      /* [DONE] seen */
  int failed;    /* our own failure already recorded */
  char error[256];
  sse_parser sse;
  kbuf body;     /* non-streaming (or JSON) body, or the error body of a non-2xx */
  struct curl_slist *headers;
} slot;

struct replay_state {
  const ke_replay_opts *o;
  request_row *rows;
  float_vec gaps;
  int oom;
  CURLU *url;
  /* streaming: which socket each connection is, by local port (see on_prereq) */
  int *fd_port;  /* per fd: local port, 0 = ours but not looked up yet, -1 = not ours */
  double *fd_rx; /* per fd: arrival of the data curl is reading from it now, 0 = unknown */
  int fd_cap;
  int *port_fd;  /* per local port: the fd last seen with it */
  char *peek_buf; /* PEEK_SIZE bytes */
  /* how long dated data waited before curl read it, in LAG_STEP_MS steps (the last:
   * that or more), since the measured phase began */
  uint32_t *lag_hist;
  double lag_max;
  kj_doc scratch; /* parses one response or chunk at a time, reset after each */
  int completed;  /* measured requests finished so far */
  int stopped;    /* the hook asked to stop */
  double next_tick;
};

/* What curl reads from a socket at once (its default CURLOPT_BUFFERSIZE). */
#define PEEK_SIZE 16384
#define LAG_STEP_MS 0.01
#define LAG_BUCKETS 100001 /* up to 1 s */

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
typedef struct { int content; double bytes; } chunk_output;

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
  chunk_output out = {0, 0};
  const kj_value *choices = kj_get(root, "choices");
  if (!choices || choices->type != KJ_ARR) return out;
  for (const kj_value *c = choices->child; c; c = c->next) {
    const kj_value *holder = kj_get(c, streaming ? "delta" : "message");
    const kj_value *text = kj_get(c, "text");
    if (!text) text = kj_get(holder, "content");
    if (str_len(text) > 0) out.content = 1;
    out.bytes += (double)(str_len(text) + str_len(kj_get(holder, "reasoning_content")) +
                          str_len(kj_get(holder, "reasoning")) + tool_call_bytes(kj_get(holder, "tool_calls")));
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
    size_t i = 0, at = (size_t)n;
    for (; i < m->len && at + 1 < sizeof msg; i++) {
      unsigned char ch = (unsigned char)m->str[i];
      msg[at++] = ch < 0x20 || ch == 0x7f ? ' ' : (char)ch;
    }
    msg[at] = '\0';
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
  if (out.content) {
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

static size_t on_write(char *ptr, size_t size, size_t nmemb, void *ud) {
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
  double rx = s->fd >= 0 && s->fd < s->rs->fd_cap ? s->rs->fd_rx[s->fd] : 0;
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

/* Kernel receive timestamps (streaming only).
 *
 * Why: a server emits the tokens of a whole batch at once, and one client thread
 * parses them one after another, so the last stream of a burst would be stamped
 * late by the time spent on the others (about 1 ms at concurrency 64). Instead the
 * sockets carry SO_TIMESTAMPNS, and streaming replays drive curl socket by socket
 * (curl_multi_socket_action on epoll events): each readable socket is peeked
 * (MSG_PEEK) for the arrival time of its unread data right before curl reads that
 * socket, and the data curl then hands us is dated by it (rxtime.h). Handing curl
 * every socket at once (curl_multi_perform) would let it read data that arrived
 * after the peeks, dated only when read: at 1024 streams, 58% of the chunks, 2-4 ms
 * late. Data that waited while more came is dated by the newest arrival (the kernel
 * merges queued segments), which is never earlier than the truth and is exact for
 * the end of a request. curl does not say which socket a transfer uses; the
 * pre-request callback gives the local port, and the socket with that port is found
 * with getsockname (once per connection). */
static int fd_reserve(replay_state *rs, int fd) {
  if (fd < rs->fd_cap) return 0;
  int cap = rs->fd_cap ? rs->fd_cap : 256;
  while (cap <= fd) cap *= 2;
  int *np = realloc(rs->fd_port, sizeof *np * (size_t)cap);
  if (!np) return -1;
  rs->fd_port = np;
  double *nr = realloc(rs->fd_rx, sizeof *nr * (size_t)cap);
  if (!nr) return -1;
  rs->fd_rx = nr;
  for (int i = rs->fd_cap; i < cap; i++) {
    np[i] = -1;
    nr[i] = 0;
  }
  rs->fd_cap = cap;
  return 0;
}

static int on_sockopt(void *ud, curl_socket_t fd, curlsocktype purpose) {
  (void)purpose;
  replay_state *rs = ud;
  /* without timestamps the socket still works: its data is stamped when read */
  if (ke_rxtime_enable(fd) == 0 && fd_reserve(rs, fd) == 0)
    rs->fd_port[fd] = 0;
  return CURL_SOCKOPT_OK;
}

static int on_close_socket(void *ud, curl_socket_t fd) {
  replay_state *rs = ud;
  if (fd < rs->fd_cap) rs->fd_port[fd] = -1; /* its number may come back as anything */
  return close(fd);
}

/* curl is about to send the request, on a connection made or reused: the request's
 * clock starts here, and (streaming) its socket is found by the local port. */
static int on_prereq(void *ud, char *primary_ip, char *local_ip, int primary_port, int port) {
  (void)primary_ip; (void)local_ip; (void)primary_port;
  slot *s = ud;
  replay_state *rs = s->rs;
  s->t_sent = ke_now();
  s->fd = -1;
  if (port <= 0 || port > 65535 || !rs->port_fd) return CURL_PREREQFUNC_OK;
  int fd = rs->port_fd[port];
  if (fd >= 0 && fd < rs->fd_cap && rs->fd_port[fd] == port) {
    s->fd = fd;
    return CURL_PREREQFUNC_OK;
  }
  for (fd = 0; fd < rs->fd_cap; fd++) { /* new connections: look each up once */
    if (rs->fd_port[fd] != 0) continue;
    int p = ke_local_port(fd);
    rs->fd_port[fd] = p > 0 ? p : -1;
    if (p > 0) rs->port_fd[p] = fd;
    if (p == port) s->fd = fd;
  }
  return CURL_PREREQFUNC_OK;
}

/* The options every request of a slot shares. */
static void slot_init(slot *s) {
  const ke_replay_opts *o = s->rs->o;
  curl_easy_setopt(s->easy, CURLOPT_CURLU, s->rs->url);
  curl_easy_setopt(s->easy, CURLOPT_HTTPHEADER, s->headers);
  curl_easy_setopt(s->easy, CURLOPT_WRITEFUNCTION, on_write);
  curl_easy_setopt(s->easy, CURLOPT_WRITEDATA, s);
  curl_easy_setopt(s->easy, CURLOPT_PRIVATE, s);
  curl_easy_setopt(s->easy, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(s->easy, CURLOPT_PROXY, "");
  curl_easy_setopt(s->easy, CURLOPT_TIMEOUT_MS, (long)(o->request_timeout_s * 1000.0));
  curl_easy_setopt(s->easy, CURLOPT_PREREQFUNCTION, on_prereq);
  curl_easy_setopt(s->easy, CURLOPT_PREREQDATA, s);
  if (o->stream) {
    curl_easy_setopt(s->easy, CURLOPT_SOCKOPTFUNCTION, on_sockopt);
    curl_easy_setopt(s->easy, CURLOPT_SOCKOPTDATA, s->rs);
    curl_easy_setopt(s->easy, CURLOPT_CLOSESOCKETFUNCTION, on_close_socket);
    curl_easy_setopt(s->easy, CURLOPT_CLOSESOCKETDATA, s->rs);
  }
}

/* A slot's handle is made the first time it is used (an open loop may have many more
 * slots than it ever fills). */
static int slot_ready(slot *s) {
  if (s->easy) return 0;
  s->easy = curl_easy_init();
  s->headers = curl_slist_append(NULL, "Content-Type: application/json");
  if (!s->easy || !s->headers) return -1;
  slot_init(s);
  return 0;
}

static int slot_start(slot *s, CURLM *multi, int body_index, int measured, int row) {
  const ke_replay_opts *o = s->rs->o;
  size_t bi = (size_t)body_index % o->n_bodies;
  if (slot_ready(s)) return -1;
  s->measured = measured;
  s->busy = 1;
  s->index = row;
  s->t_sent = s->t_first = s->t_last = s->t_last_data = 0;
  s->fd = -1;
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
  /* only the body changes between requests: the rest is set once (slot_init) */
  curl_easy_setopt(s->easy, CURLOPT_POSTFIELDS, o->bodies[bi]);
  curl_easy_setopt(s->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)o->body_lens[bi]);
  s->t_start = ke_now();
  return curl_multi_add_handle(multi, s->easy) == CURLM_OK ? 0 : -1;
}

/* A non-2xx answer: the status and what the server said (its first 200 bytes, on one
 * line), so the cause is in the error, not only a number. */
static void slot_fail_http(slot *s, long code) {
  char said[201];
  size_t n = s->body.len < 200 ? s->body.len : 200;
  for (size_t i = 0; i < n; i++) {
    unsigned char ch = (unsigned char)s->body.data[i];
    said[i] = ch < 0x20 || ch == 0x7f ? ' ' : (char)ch;
  }
  said[n] = '\0';
  char msg[256];
  if (n) snprintf(msg, sizeof msg, "HTTP %ld: %s", code, said);
  else snprintf(msg, sizeof msg, "HTTP %ld", code);
  slot_fail(s, msg);
}

/* The output tokens of a request that carried `fallback` by its own count (content
 * chunks; 1 for a non-streamed text): the server's usage.completion_tokens when it said
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
    fallback = out.content;
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
static void slot_finish(slot *s, CURLcode result, double t_end) {
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
   * (on_prereq); a request that never got a connection counts from its queueing */
  double t_sent = s->t_sent > 0 ? s->t_sent : s->t_start;
  /* streaming: the request ends when its last data arrived, not when we got to it */
  double t_last = (o->stream && s->t_last_data > t_sent && s->t_last_data < t_end) ? s->t_last_data : t_end;
  r->latency_ms = (t_last - t_sent) * 1000.0;
  r->ttft_ms = (o->stream && s->chunks > 0) ? (s->t_first - t_sent) * 1000.0 : NAN;
  r->tokens = s->failed ? 0 : tokens;
  r->status = code;
  r->sent = t_sent;
  r->scheduled = o->schedule ? o->schedule[s->index] : NAN;
  r->max_gap_ms = s->chunks > 1 ? s->max_gap * 1000.0 : NAN;
  r->input_tokens = s->usage_prompt > 0 ? (int)s->usage_prompt : 0;
  r->token_mismatch = mismatch;
  r->usage = s->usage_completion;
  r->out_chunks = o->stream ? s->out_chunks : -1;
  r->out_bytes = s->out_bytes;
  r->done = 1;
  r->error = s->error[0] ? strdup(s->error) : NULL;
  if (s->error[0] && !r->error) rs->oom = 1;
}

/* Everything one replay allocates. */
typedef struct {
  replay_state rs;
  slot *slots;
  int nslots;
  CURLM *multi;
  int epfd;                    /* streaming: curl's sockets (socket_action), else -1 */
  double timer_at;             /* streaming: when curl wants its timeout action */
  struct epoll_event *events;
  int *free_slots;             /* open loop: the slots with nothing in flight */
  int nfree;
} replay_run;

/* One phase (the warmup or the measured requests) in progress. */
typedef struct {
  replay_run *rr;
  int measured, total;
  int next;    /* the next request to send */
  int running; /* in flight */
  int open;    /* sent on the schedule, not when a request ends */
  double t0;   /* when the phase began (the schedule's zero) */
  int cap_hits, last_capped;
} phase_run;

#define MAX_EVENTS 256

/* Streaming: curl says which sockets to watch for what (CURLMOPT_SOCKETFUNCTION). */
static int on_socket(CURL *easy, curl_socket_t fd, int what, void *ud, void *socketp) {
  (void)easy;
  (void)socketp;
  replay_run *rr = ud;
  if (what == CURL_POLL_REMOVE) {
    epoll_ctl(rr->epfd, EPOLL_CTL_DEL, fd, NULL); /* fails harmlessly when it is closed */
    return 0;
  }
  struct epoll_event ev;
  memset(&ev, 0, sizeof ev);
  ev.data.fd = fd;
  if (what & CURL_POLL_IN) ev.events |= EPOLLIN;
  if (what & CURL_POLL_OUT) ev.events |= EPOLLOUT;
  if (epoll_ctl(rr->epfd, EPOLL_CTL_MOD, fd, &ev) != 0 && errno == ENOENT)
    epoll_ctl(rr->epfd, EPOLL_CTL_ADD, fd, &ev);
  return 0;
}

/* Streaming: when curl wants to act on its timeouts (CURLMOPT_TIMERFUNCTION). */
static int on_timer(CURLM *multi, long timeout_ms, void *ud) {
  (void)multi;
  replay_run *rr = ud;
  rr->timer_at = timeout_ms < 0 ? INFINITY : ke_now() + (double)timeout_ms / 1000.0;
  return 0;
}

static void note_lag(replay_state *rs, double ms) {
  double b = ms / LAG_STEP_MS;
  rs->lag_hist[b < LAG_BUCKETS - 1 ? (size_t)b : LAG_BUCKETS - 1]++;
  if (ms > rs->lag_max) rs->lag_max = ms;
}

/* Percentile p of the read lags (the top of its step), NaN when there are none. */
static double lag_percentile(const replay_state *rs, double p) {
  uint64_t total = 0, seen = 0;
  for (size_t i = 0; i < LAG_BUCKETS; i++) total += rs->lag_hist[i];
  if (!total) return NAN;
  uint64_t want = (uint64_t)ceil(p / 100.0 * (double)total);
  for (size_t i = 0; i < LAG_BUCKETS; i++) {
    seen += rs->lag_hist[i];
    if (seen >= want && seen > 0) return fmin((double)(i + 1) * LAG_STEP_MS, rs->lag_max);
  }
  return rs->lag_max;
}

/* Streaming: one ready socket. Its unread data is dated (peeked) just before curl
 * reads it, so everything curl hands us from this read arrived by then. */
static void socket_ready(replay_run *rr, int fd, uint32_t events, double offset) {
  replay_state *rs = &rr->rs;
  int flags = (events & EPOLLOUT ? CURL_CSELECT_OUT : 0) | (events & EPOLLERR ? CURL_CSELECT_ERR : 0);
  if (events & (EPOLLIN | EPOLLHUP)) flags |= CURL_CSELECT_IN;
  int dated = (flags & CURL_CSELECT_IN) && fd < rs->fd_cap && rs->fd_port[fd] >= 0;
  if (dated) {
    size_t got;
    double t = ke_rxtime_peek(fd, rs->peek_buf, PEEK_SIZE, &got, offset);
    /* a clock step between the two readings cannot put data in the future */
    double now = ke_now();
    rs->fd_rx[fd] = t > 0 && t <= now ? t : 0;
    if (rs->fd_rx[fd] > 0) note_lag(rs, (now - t) * 1000.0);
  }
  int still;
  curl_multi_socket_action(rr->multi, fd, flags, &still);
  if (dated) rs->fd_rx[fd] = 0;
}

/* Streaming: hands curl every socket that is ready now. */
static void drain_ready(replay_run *rr, int timeout_ms) {
  int n = epoll_wait(rr->epfd, rr->events, MAX_EVENTS, timeout_ms);
  double offset = ke_rxtime_clock_offset();
  for (int i = 0; i < n; i++) socket_ready(rr, rr->events[i].data.fd, rr->events[i].events, offset);
}

/* Lets curl do what is due without waiting: its timeouts (streaming; new requests
 * start there), or everything (curl_multi_perform). A timeout action may read any
 * socket, so the ready ones are handed over (and dated) first. */
static void curl_work(replay_run *rr) {
  int still;
  if (rr->epfd < 0) {
    curl_multi_perform(rr->multi, &still);
  } else if (ke_now() >= rr->timer_at) {
    rr->timer_at = INFINITY; /* curl sets the next one, in either call */
    drain_ready(rr, 0);
    curl_multi_socket_action(rr->multi, CURL_SOCKET_TIMEOUT, 0, &still);
  }
}

/* Waits until curl has work, at most timeout_ms (100 to notice an interrupt), and
 * (streaming) hands curl each socket that became ready. */
static void wait_for_data(replay_run *rr, int timeout_ms) {
  if (rr->epfd < 0) {
    curl_multi_poll(rr->multi, NULL, 0, timeout_ms, NULL);
    return;
  }
  if (rr->timer_at < INFINITY) {
    double ms = ceil((rr->timer_at - ke_now()) * 1000.0);
    if (ms < timeout_ms) timeout_ms = ms > 0 ? (int)ms : 0;
  }
  drain_ready(rr, timeout_ms);
}

/* Asks the hook (when there is one) whether to go on; 1 = stop. */
static int hook_says_stop(replay_state *rs, ke_replay_event ev) {
  const ke_replay_opts *o = rs->o;
  if (!o->hook || rs->stopped) return rs->stopped;
  if (o->hook(o->hook_ud, ev, rs->completed)) rs->stopped = 1;
  return rs->stopped;
}

/* The hook stopped the replay: requests in flight are abandoned (not counted). */
static void abandon_in_flight(replay_run *rr) {
  for (int i = 0; i < rr->nslots; i++) {
    if (!rr->slots[i].busy) continue;
    curl_multi_remove_handle(rr->multi, rr->slots[i].easy);
    rr->slots[i].busy = 0;
    rr->slots[i].fd = -1;
  }
}

static int start_request(phase_run *ph, slot *s, char *err, size_t errlen) {
  if (slot_start(s, ph->rr->multi, ph->next, ph->measured, ph->next)) {
    snprintf(err, errlen, "cannot add request to curl");
    return -1;
  }
  ph->next++;
  ph->running++;
  return 0;
}

/* Finishes whatever curl reports done. Closed loop: the slot sends the next request at
 * once; open loop: it waits for its turn on the schedule. Returns 0 or -1. */
static int collect_done(phase_run *ph, char *err, size_t errlen) {
  replay_run *rr = ph->rr;
  CURLMsg *m;
  int q;
  while ((m = curl_multi_info_read(rr->multi, &q))) {
    if (m->msg != CURLMSG_DONE) continue;
    double t_end = ke_now();
    slot *s;
    curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&s);
    CURLcode result = m->data.result;
    curl_multi_remove_handle(rr->multi, m->easy_handle);
    slot_finish(s, result, t_end);
    ph->running--;
    if (ph->measured) {
      rr->rs.completed++;
      if (hook_says_stop(&rr->rs, KE_REPLAY_COMPLETED)) return 0;
    }
    if (ph->open) rr->free_slots[rr->nfree++] = (int)(s - rr->slots);
    else if (ph->next < ph->total && start_request(ph, s, err, errlen)) return -1;
  }
  return 0;
}

/* Open loop: sends every request that is due, while a slot is free. Returns how long
 * until the next one is due (s; 0.1 when none is waiting on time). */
static double send_due(phase_run *ph, char *err, size_t errlen, int *rc) {
  replay_run *rr = ph->rr;
  const double *sched = rr->rs.o->schedule;
  while (ph->next < ph->total) {
    double due = ph->t0 + sched[ph->next] - ke_now();
    if (due > 0) return due;
    if (rr->nfree == 0) { /* every slot busy: it waits for one (max_concurrency) */
      if (ph->next > ph->last_capped) { /* each request kept waiting counts once */
        ph->cap_hits++;
        ph->last_capped = ph->next;
      }
      return 0.1;
    }
    slot *s = &rr->slots[rr->free_slots[--rr->nfree]];
    if (start_request(ph, s, err, errlen)) { *rc = -1; return 0; }
  }
  return 0.1;
}

/* Sleeps until the next request is due: in curl's wait for whole milliseconds, the
 * last fraction with nanosleep (curl's wait counts only whole milliseconds). */
static void wait_until_due(replay_run *rr, double due_in) {
  if (due_in > 0.1) due_in = 0.1;
  if (due_in >= 0.001) wait_for_data(rr, (int)(due_in * 1000));
  else {
    wait_for_data(rr, 0);
    if (due_in > 0) ke_sleep(due_in);
  }
}

/* Runs one phase to its end. Closed loop: the slots start with the first requests and
 * each sends the next when one ends. Open loop: requests are sent on the schedule. */
static int run_phase(phase_run *ph, char *err, size_t errlen) {
  replay_run *rr = ph->rr;
  replay_state *rs = &rr->rs;
  int rc = 0;
  for (int i = 0; !ph->open && i < rs->o->concurrency && ph->next < ph->total; i++)
    if (start_request(ph, &rr->slots[i], err, errlen)) return -1;
  while (ph->running > 0 || (ph->open && ph->next < ph->total)) {
    double due_in = ph->open ? send_due(ph, err, errlen, &rc) : 0.1;
    if (rc) return rc;
    curl_work(rr);
    if (collect_done(ph, err, errlen)) return -1;
    if (ke_interrupted()) {
      snprintf(err, errlen, "interrupted during the workload");
      return KE_INTERRUPTED;
    }
    double now = ke_now();
    if (now >= rs->next_tick) { /* the hook's chance to watch (every 100 ms) */
      rs->next_tick = now + 0.1;
      hook_says_stop(rs, KE_REPLAY_TICK);
    }
    if (rs->stopped) {
      abandon_in_flight(rr);
      return 0;
    }
    if (ph->running > 0 || ph->next < ph->total) wait_until_due(rr, ph->open ? due_in : 0.1);
  }
  return 0;
}

/* Open loop without a cap: as many slots as requests could be in flight at once. */
#define OPEN_LOOP_SLOTS 16384

static int replay_setup(replay_run *rr, const ke_replay_opts *o, char *err, size_t errlen) {
  rr->rs.o = o;
  rr->epfd = -1;
  rr->timer_at = INFINITY;
  rr->rs.rows = calloc((size_t)o->request_count, sizeof(request_row));
  rr->nslots = o->concurrency;
  if (o->schedule) {
    int open = o->max_concurrency > 0 ? o->max_concurrency : o->request_count;
    if (open > OPEN_LOOP_SLOTS) open = OPEN_LOOP_SLOTS;
    if (open > rr->nslots) rr->nslots = open;
  }
  rr->slots = calloc((size_t)rr->nslots, sizeof *rr->slots);
  rr->free_slots = calloc((size_t)rr->nslots, sizeof *rr->free_slots);
  rr->multi = curl_multi_init();
  /* parsed once: handing curl the parsed URL saves a parse per request (~5% of the
   * client's CPU at zero server latency) */
  rr->rs.url = curl_url();
  if (!rr->rs.rows || !rr->slots || !rr->free_slots || !rr->multi || !rr->rs.url) {
    snprintf(err, errlen, "out of memory");
    return -1;
  }
  CURLUcode uc = curl_url_set(rr->rs.url, CURLUPART_URL, o->url, 0);
  if (uc != CURLUE_OK) {
    snprintf(err, errlen, "bad URL '%s': %s", o->url, curl_url_strerror(uc));
    return -1;
  }
  curl_multi_setopt(rr->multi, CURLMOPT_MAXCONNECTS, (long)rr->nslots + 4);
  if (o->stream) {
    rr->epfd = epoll_create1(EPOLL_CLOEXEC);
    rr->events = calloc(MAX_EVENTS, sizeof *rr->events);
    rr->rs.port_fd = malloc(sizeof *rr->rs.port_fd * 65536);
    rr->rs.peek_buf = malloc(PEEK_SIZE);
    rr->rs.lag_hist = calloc(LAG_BUCKETS, sizeof *rr->rs.lag_hist);
    if (rr->epfd < 0) {
      snprintf(err, errlen, "epoll: %s", strerror(errno));
      return -1;
    }
    if (!rr->events || !rr->rs.port_fd || !rr->rs.peek_buf || !rr->rs.lag_hist) {
      snprintf(err, errlen, "out of memory");
      return -1;
    }
    for (int i = 0; i < 65536; i++) rr->rs.port_fd[i] = -1;
    curl_multi_setopt(rr->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
    curl_multi_setopt(rr->multi, CURLMOPT_SOCKETDATA, rr);
    curl_multi_setopt(rr->multi, CURLMOPT_TIMERFUNCTION, on_timer);
    curl_multi_setopt(rr->multi, CURLMOPT_TIMERDATA, rr);
  }
  for (int i = 0; i < rr->nslots; i++) {
    rr->slots[i].rs = &rr->rs;
    rr->slots[i].fd = -1;
    sse_init(&rr->slots[i].sse);
    rr->free_slots[rr->nfree++] = rr->nslots - 1 - i; /* slot 0 first */
  }
  return 0;
}

static void replay_cleanup(replay_run *rr) {
  for (int i = 0; rr->slots && i < rr->nslots; i++) {
    slot *s = &rr->slots[i];
    if (s->easy) {
      curl_multi_remove_handle(rr->multi, s->easy);
      curl_easy_cleanup(s->easy);
    }
    curl_slist_free_all(s->headers);
    sse_free(&s->sse);
    kbuf_free(&s->body);
  }
  if (rr->multi) curl_multi_cleanup(rr->multi);
  curl_url_cleanup(rr->rs.url);
  if (rr->epfd >= 0) close(rr->epfd);
  free(rr->events);
  free(rr->free_slots);
  free(rr->rs.fd_port);
  free(rr->rs.fd_rx);
  free(rr->rs.port_fd);
  free(rr->rs.peek_buf);
  free(rr->rs.lag_hist);
  kj_doc_free(&rr->rs.scratch);
  free(rr->slots);
  for (int i = 0; rr->rs.rows && i < rr->rs.o->request_count; i++) free(rr->rs.rows[i].error);
  free(rr->rs.rows);
  free(rr->rs.gaps.v);
}

/* The measured phase: its requests, then its metrics and requests.csv. */
static int measured_phase(replay_run *rr, ke_metrics *out, char *err, size_t errlen) {
  const ke_replay_opts *o = rr->rs.o;
  hook_says_stop(&rr->rs, KE_REPLAY_MEASURING);
  if (rr->rs.lag_hist) { /* the warmup's reads do not count */
    memset(rr->rs.lag_hist, 0, LAG_BUCKETS * sizeof *rr->rs.lag_hist);
    rr->rs.lag_max = 0;
  }
  phase_run ph = {.rr = rr, .measured = 1, .total = o->request_count, .open = o->schedule != NULL, .t0 = ke_now(),
                  .last_capped = -1};
  int rc = run_phase(&ph, err, errlen);
  double t1 = ke_now();
  if (rc == 0 && rr->rs.oom) {
    snprintf(err, errlen, "out of memory recording the requests");
    rc = -1;
  }
  if (rc == 0)
    rc = ke_replay_aggregate(o, rr->rs.rows, rr->rs.gaps.v, rr->rs.gaps.n, ph.t0, t1, ph.cap_hits, out, err, errlen);
  if (rc == 0) {
    int dated = rr->rs.lag_hist != NULL;
    out->read_lag_p50 = dated ? lag_percentile(&rr->rs, 50) : NAN;
    out->read_lag_p99 = dated ? lag_percentile(&rr->rs, 99) : NAN;
    out->read_lag_max = dated ? lag_percentile(&rr->rs, 100) : NAN;
  }
  if (rc == 0 && o->requests_csv && ke_replay_write_csv(o->requests_csv, rr->rs.rows, o->request_count, ph.t0, err, errlen))
    rc = KE_OUTPUT_FAILED;
  return rc;
}

int ke_replay(const ke_replay_opts *o, ke_metrics *out, char *err, size_t errlen) {
  memset(out, 0, sizeof *out);
  if (o->n_bodies == 0 || o->concurrency < 1 || o->request_count < 1) {
    snprintf(err, errlen, "replay needs at least one body, concurrency >= 1 and request_count >= 1");
    return -1;
  }
  replay_run rr;
  memset(&rr, 0, sizeof rr);
  int rc = replay_setup(&rr, o, err, errlen);
  if (rc == 0 && o->warmup > 0) {
    /* the warmup is a closed loop in every mode: it only readies the server */
    phase_run warm = {.rr = &rr, .measured = 0, .total = o->warmup};
    rc = run_phase(&warm, err, errlen);
  }
  if (rc == 0) rc = measured_phase(&rr, out, err, errlen);
  replay_cleanup(&rr);
  return rc;
}
