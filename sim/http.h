/* http.h - a minimal HTTP/1.1 server core for the simulated server: non-blocking
 * connections in a poll() loop, keep-alive, Content-Length request bodies, responses
 * with Content-Length or chunked transfer encoding (for SSE streams).
 * Ownership: the server owns connections; handlers get a connection id that stays
 * valid until on_close is called for it. Errors: http_listen returns -1 with errno. */
#ifndef KNOB_SIM_HTTP_H
#define KNOB_SIM_HTTP_H
#include <stddef.h>

typedef struct http_server http_server;

typedef struct {
  const char *method, *path;
  const char *body;
  size_t body_len;
  /* when its first bytes reached the socket (monotonic s), 0 = unknown: a client's
   * clock starts when it begins to send, so a large body's upload is inside the
   * fixed latencies, as it is inside the client's TTFT */
  double arrived;
} http_request;

typedef struct {
  /* A complete request arrived on connection `conn`; respond now or later. */
  void (*on_request)(void *ud, int conn, const http_request *req);
  /* The connection closed (client gone or error) before or after responding. */
  void (*on_close)(void *ud, int conn);
  void *ud;
} http_handlers;

http_server *http_server_new(const http_handlers *h);
int http_listen(http_server *s, const char *host, int port);
/* The port the server listens on (the kernel's choice after listening on port 0). */
int http_port(const http_server *s);
/* One poll round: waits at most timeout_s (< 0 = forever) for I/O, handles it.
 * Sub-millisecond timeouts are honoured (ppoll), so step timing stays exact. */
void http_poll(http_server *s, double timeout_s);
void http_server_free(http_server *s);

/* Responses. A connection handles one request at a time; the next request is read
 * once the response is complete. */
void http_respond(http_server *s, int conn, int status, const char *content_type, const char *body,
                  size_t len);
void http_stream_begin(http_server *s, int conn, const char *content_type);
void http_stream_write(http_server *s, int conn, const char *data, size_t len);
void http_stream_end(http_server *s, int conn);

#endif
