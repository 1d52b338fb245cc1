/* replay_internal.h - the parts of the replay (replay.h) and what they share. Internal
 * to the replay: the public interface is replay.h.
 *
 * One replay is one replay_run, in one thread, split by concern:
 *   replay.c           the phases: closed-loop and open-loop (scheduled) sending, the
 *                      concurrency cap, the hook, the metrics and requests.csv at the end
 *                      (replay_metrics.c, replay_rows.h), and ke_replay itself;
 *   replay_curl.c      the slots (one curl easy handle each, made on first use) and the
 *                      curl multi handle: curl_multi_perform, or for streaming,
 *                      curl_multi_socket_action driven by epoll, socket by socket;
 *   replay_response.c  the OpenAI response reader: SSE chunks and JSON bodies, usage,
 *                      error objects, output token counts, and each request's outcome
 *                      (its row);
 *   replay_rx.c        receive timestamps (streaming): which socket a request uses, its
 *                      data's arrival peeked (SO_TIMESTAMPNS, rxtime.h) right before curl
 *                      reads it, and the read lag.
 *
 * Ownership: the replay_run owns everything here (rows, slots, handles, buffers); each
 * part's setup allocates its share and its cleanup frees it, NULL members included,
 * so a failed setup is cleaned up like a finished replay. curl's callbacks get the slot
 * or the replay_state they were registered with, never anything they must free.
 * Errors: setups return 0, or -1 with a message in err ("out of memory", "bad URL ...",
 * "epoll: ..."); a request's own failure is recorded in its slot and row (slot.error),
 * never returned; running out of memory while recording sets replay_state.oom, which
 * fails the replay at its end. */
#ifndef KNOB_REPLAY_INTERNAL_H
#define KNOB_REPLAY_INTERNAL_H
#include <curl/curl.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/epoll.h>

#include "fsutil.h"
#include "json.h"
#include "replay_rows.h"
#include "sse.h"

typedef ke_request_row request_row;

typedef struct { float *v; size_t n, cap; } float_vec;

/* Receive timestamps (replay_rx.c); all NULL / 0 without streaming. */
typedef struct {
  /* which socket each connection is, by local port (see kr_rx_socket_of) */
  int *fd_port;  /* per fd: local port, 0 = ours but not looked up yet, -1 = not ours */
  double *fd_rx; /* per fd: arrival of the data curl is reading from it now, 0 = unknown */
  int fd_cap;
  int *port_fd;  /* per local port: the fd last seen with it */
  char *peek_buf; /* KR_PEEK_SIZE bytes */
  /* how long dated data waited before curl read it, in steps (the last: that or
   * more), since the measured phase began */
  uint32_t *lag_hist;
  double lag_max;
} kr_rx;

typedef struct {
  const ke_replay_opts *o;
  request_row *rows;
  float_vec gaps; /* every inter-token gap of the measured requests (ms) */
  int oom;
  CURLU *url;
  kr_rx rx;
  kj_doc scratch; /* parses one response or chunk at a time, reset after each */
  int completed;  /* measured requests finished so far */
  int stopped;    /* the hook asked to stop */
  double next_tick;
} replay_state;

typedef struct {
  CURL *easy;
  replay_state *rs;
  int busy;      /* a request is in flight on it */
  int measured;  /* counts toward metrics */
  int index;     /* row index when measured */
  double t_start, t_sent, t_first, t_last;
  double t_first_output; /* its first content chunk (reasoning not counted), 0 = none */
  int conv_next, conv_end; /* multi-turn: its conversation's next request and last one */
  double due;              /* multi-turn: when its next turn is sent (0 = none waiting) */
  double t_last_data; /* arrival time of the data being parsed / last written to us */
  int fd;             /* the connection's socket (streaming only), -1 = unknown */
  int chunks;    /* token chunks seen (content or reasoning) */
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

/* ---- replay_curl.c: slots and the multi handle ---- */

/* rr->nslots slots (all free, slot 0 first), the multi handle, the parsed URL, and for
 * streaming the epoll set curl's sockets are watched in. */
int kr_curl_setup(replay_run *rr, char *err, size_t errlen);
void kr_curl_cleanup(replay_run *rr);
/* Sends body body_index (mod n_bodies) on s; row is its row when measured. 0 or -1. */
int kr_slot_start(slot *s, CURLM *multi, int body_index, int measured, int row);
/* The next request curl reports done, finished (kr_slot_finish) and taken off the
 * multi handle; NULL when there is none. */
slot *kr_next_done(replay_run *rr);
/* Lets curl do what is due without waiting. */
void kr_curl_work(replay_run *rr);
/* Waits until curl has work, at most timeout_ms, and (streaming) hands curl each socket
 * that became ready. */
void kr_wait_for_data(replay_run *rr, int timeout_ms);
/* Takes every request in flight off the multi handle, uncounted. */
void kr_abandon_in_flight(replay_run *rr);

/* ---- replay_response.c: the OpenAI response reader ---- */

/* Clears what the reader knows of the slot's previous request. */
void kr_response_reset(slot *s);
/* curl's write callback (CURLOPT_WRITEFUNCTION, data: the slot). */
size_t kr_on_write(char *ptr, size_t size, size_t nmemb, void *ud);
/* A request ended (result: curl's, t_end: when): decides its outcome and, when it was
 * measured, records its row. */
void kr_slot_finish(slot *s, CURLcode result, double t_end);

/* ---- replay_rx.c: receive timestamps (streaming) ---- */

int kr_rx_setup(kr_rx *rx, char *err, size_t errlen);
void kr_rx_free(kr_rx *rx);
/* curl opened socket fd (before connecting) / is closing it. */
void kr_rx_socket_opened(kr_rx *rx, int fd);
void kr_rx_socket_closed(kr_rx *rx, int fd);
/* The socket whose local port is port, or -1 (not streaming, or not found). */
int kr_rx_socket_of(kr_rx *rx, int port);
/* Before curl reads a readable fd: dates its unread data (clock_offset:
 * ke_rxtime_clock_offset()). Returns 1 when fd is dated, to be undone with
 * kr_rx_after_read once curl has read it. */
int kr_rx_before_read(kr_rx *rx, int fd, double clock_offset);
void kr_rx_after_read(kr_rx *rx, int fd);
/* When the data curl is reading from fd now arrived (ke_now()'s clock), 0 = unknown. */
double kr_rx_arrival(const kr_rx *rx, int fd);
/* The measured phase begins: the read lags so far (the warmup's) are forgotten. */
void kr_rx_lag_reset(kr_rx *rx);
/* The read_lag_ metrics: NaN without streaming. */
void kr_rx_lag_metrics(const kr_rx *rx, ke_metrics *out);

#endif
