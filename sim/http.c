/* http.c - see http.h. */
#include "http.h"
#include "rxtime.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "json.h"

#define MAX_HEADER_BYTES (64 * 1024)
#define MAX_BODY_BYTES (64u << 20)

typedef struct {
  int fd;
  kbuf in, out;
  size_t out_sent;
  int busy;        /* a request is being answered */
  int close_after; /* Connection: close, or HTTP/1.0 */
  int streaming;
  double rx_time;  /* kernel arrival time of the last bytes read, 0 = unknown */
  double rx_first; /* ... of the first bytes of the request in `in` */
} conn_t;

struct http_server {
  http_handlers h;
  int listen_fd;
  conn_t *conns;
  int nconns, cap;
  struct pollfd *pfds;
};

static const char *reason(int status) {
  switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 413: return "Payload Too Large";
    case 500: return "Internal Server Error";
    default: return "Status";
  }
}

http_server *http_server_new(const http_handlers *h) {
  http_server *s = calloc(1, sizeof *s);
  if (!s) return NULL;
  s->h = *h;
  s->listen_fd = -1;
  return s;
}

int http_listen(http_server *s, const char *host, int port) {
  struct addrinfo hints, *res = NULL;
  memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  char ps[16];
  snprintf(ps, sizeof ps, "%d", port);
  if (getaddrinfo(host, ps, &hints, &res) != 0) { errno = EINVAL; return -1; }
  int fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) { freeaddrinfo(res); return -1; }
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (bind(fd, res->ai_addr, res->ai_addrlen) != 0 || listen(fd, 1024) != 0) {
    int e = errno;
    close(fd);
    freeaddrinfo(res);
    errno = e;
    return -1;
  }
  freeaddrinfo(res);
  /* timestamps on from the listener on: a request's first bytes can arrive before its
   * connection is accepted, and the kernel stamps a packet only while some socket asks
   * for stamps (accepted sockets inherit the setting) */
  ke_rxtime_enable(fd);
  s->listen_fd = fd;
  return 0;
}

int http_port(const http_server *s) {
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;
  if (getsockname(s->listen_fd, (struct sockaddr *)&ss, &len) != 0) return -1;
  if (ss.ss_family == AF_INET) return ntohs(((struct sockaddr_in *)&ss)->sin_port);
  if (ss.ss_family == AF_INET6) return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
  return -1;
}

static int find_free(http_server *s) {
  for (int i = 0; i < s->nconns; i++)
    if (s->conns[i].fd < 0) return i;
  if (s->nconns == s->cap) {
    int cap = s->cap ? s->cap * 2 : 64;
    conn_t *c = realloc(s->conns, (size_t)cap * sizeof *c);
    struct pollfd *p = realloc(s->pfds, (size_t)(cap + 1) * sizeof *p);
    if (c) s->conns = c;
    if (p) s->pfds = p;
    if (!c || !p) return -1;
    s->cap = cap;
  }
  memset(&s->conns[s->nconns], 0, sizeof(conn_t));
  s->conns[s->nconns].fd = -1;
  return s->nconns++;
}

static void close_conn(http_server *s, int id) {
  conn_t *c = &s->conns[id];
  if (c->fd < 0) return;
  close(c->fd);
  c->fd = -1;
  kbuf_free(&c->in);
  kbuf_free(&c->out);
  c->out_sent = 0;
  int was_busy = c->busy;
  c->busy = c->streaming = 0;
  if (was_busy && s->h.on_close) s->h.on_close(s->h.ud, id);
}

static void flush_out(http_server *s, int id) {
  conn_t *c = &s->conns[id];
  while (c->out_sent < c->out.len) {
    ssize_t w = send(c->fd, c->out.data + c->out_sent, c->out.len - c->out_sent, MSG_NOSIGNAL);
    if (w < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) return;
      if (errno == EINTR) continue;
      close_conn(s, id);
      return;
    }
    c->out_sent += (size_t)w;
  }
  c->out.len = 0;
  c->out_sent = 0;
  if (!c->busy && c->close_after) close_conn(s, id);
}

static void simple_error(http_server *s, int id, int status, const char *msg) {
  char body[256];
  snprintf(body, sizeof body,
           "{\"object\":\"error\",\"message\":\"%s\",\"type\":\"BadRequestError\",\"param\":null,"
           "\"code\":%d}",
           msg, status);
  s->conns[id].busy = 1;
  s->conns[id].close_after = 1;
  http_respond(s, id, status, "application/json", body, strlen(body));
}

/* Parses one complete request from the input buffer, if there is one. */
static void try_parse(http_server *s, int id) {
  conn_t *c = &s->conns[id];
  if (c->busy || c->fd < 0 || c->in.len == 0) return;
  char *end = c->in.data ? strstr(c->in.data, "\r\n\r\n") : NULL;
  if (!end) {
    if (c->in.len > MAX_HEADER_BYTES) simple_error(s, id, 400, "request header too large");
    return;
  }
  size_t header_len = (size_t)(end - c->in.data) + 4;
  /* request line */
  char method[16], path[1024], version[16];
  if (sscanf(c->in.data, "%15s %1023s %15s", method, path, version) != 3) {
    simple_error(s, id, 400, "malformed request line");
    return;
  }
  size_t content_length = 0;
  int close_after = strcmp(version, "HTTP/1.0") == 0;
  for (char *line = strstr(c->in.data, "\r\n") + 2; line < end; line = strstr(line, "\r\n") + 2) {
    if (strncasecmp(line, "Content-Length:", 15) == 0) {
      content_length = (size_t)strtoull(line + 15, NULL, 10);
    } else if (strncasecmp(line, "Connection:", 11) == 0) {
      const char *v = line + 11;
      while (*v == ' ') v++;
      if (strncasecmp(v, "close", 5) == 0) close_after = 1;
      if (strncasecmp(v, "keep-alive", 10) == 0) close_after = 0;
    } else if (strncasecmp(line, "Transfer-Encoding:", 18) == 0) {
      simple_error(s, id, 400, "chunked request bodies are not supported");
      return;
    }
  }
  if (content_length > MAX_BODY_BYTES) {
    simple_error(s, id, 413, "request body too large");
    return;
  }
  if (c->in.len < header_len + content_length) return; /* body still arriving */
  /* take the request out of the buffer before handling it: a handler that responds at
   * once makes the connection parse the next pipelined request */
  char *body = malloc(content_length + 1);
  if (!body) { close_conn(s, id); return; }
  memcpy(body, c->in.data + header_len, content_length);
  body[content_length] = '\0';
  size_t used = header_len + content_length;
  memmove(c->in.data, c->in.data + used, c->in.len - used + 1);
  c->in.len -= used;
  http_request req = {method, path, body, content_length, c->rx_first};
  c->rx_first = c->rx_time; /* a pipelined request's bytes came with the last read */
  c->busy = 1;
  c->close_after = close_after;
  s->h.on_request(s->h.ud, id, &req);
  free(body);
}

void http_poll(http_server *s, double timeout_s) {
  int n = 0;
  s->pfds = s->pfds ? s->pfds : calloc(1, sizeof *s->pfds);
  if (!s->pfds) return;
  s->pfds[n].fd = s->listen_fd;
  s->pfds[n].events = POLLIN;
  n++;
  for (int i = 0; i < s->nconns; i++) {
    conn_t *c = &s->conns[i];
    s->pfds[n].fd = c->fd; /* negative fds are ignored by poll */
    s->pfds[n].events = (short)(POLLIN | (c->out.len > c->out_sent ? POLLOUT : 0));
    s->pfds[n].revents = 0;
    n++;
  }
  struct timespec ts, *tsp = NULL;
  if (timeout_s >= 0) {
    ts.tv_sec = (time_t)timeout_s;
    ts.tv_nsec = (long)((timeout_s - (double)ts.tv_sec) * 1e9);
    tsp = &ts;
  }
  int r = ppoll(s->pfds, (nfds_t)n, tsp, NULL);
  if (r <= 0) return;
  int nconns_before = s->nconns;
  if (s->pfds[0].revents & POLLIN) {
    for (;;) {
      int fd = accept4(s->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) break;
      int one = 1;
      setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      ke_rxtime_enable(fd); /* requests are dated on arrival, not when the loop reads them */
      int id = find_free(s);
      if (id < 0) { close(fd); break; }
      s->conns[id].fd = fd;
    }
  }
  for (int i = 0; i < nconns_before; i++) {
    short ev = s->pfds[i + 1].revents;
    conn_t *c = &s->conns[i];
    if (!ev || c->fd < 0 || s->pfds[i + 1].fd != c->fd) continue;
    if (ev & POLLOUT) flush_out(s, i);
    if (c->fd >= 0 && (ev & (POLLIN | POLLHUP | POLLERR))) {
      char buf[16384];
      double offset = ke_rxtime_clock_offset();
      for (;;) {
        double t;
        long got = ke_rxtime_recv(c->fd, buf, sizeof buf, 0, offset, &t);
        if (got > 0) {
          c->rx_time = t;
          if (c->in.len == 0) c->rx_first = t;
          if (kbuf_append(&c->in, buf, (size_t)got)) { close_conn(s, i); break; }
          continue;
        }
        if (got == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) close_conn(s, i);
        break;
      }
      if (c->fd >= 0) try_parse(s, i);
    }
  }
}

static void queue(http_server *s, int id, const char *data, size_t len) {
  conn_t *c = &s->conns[id];
  if (c->fd < 0) return;
  if (kbuf_append(&c->out, data, len)) { close_conn(s, id); return; }
  flush_out(s, id);
}

void http_respond(http_server *s, int id, int status, const char *ctype, const char *body, size_t len) {
  conn_t *c = &s->conns[id];
  if (c->fd < 0) return;
  char head[256];
  int n = snprintf(head, sizeof head,
                   "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s\r\n", status,
                   reason(status), ctype, len, c->close_after ? "Connection: close\r\n" : "");
  c->busy = 0; /* complete after this write; flush_out closes if asked */
  kbuf_append(&c->out, head, (size_t)n);
  queue(s, id, body, len);
  if (s->conns[id].fd >= 0) try_parse(s, id);
}

void http_stream_begin(http_server *s, int id, const char *ctype) {
  char head[256];
  int n = snprintf(head, sizeof head,
                   "HTTP/1.1 200 OK\r\nContent-Type: %s\r\nCache-Control: no-cache\r\n"
                   "Transfer-Encoding: chunked\r\n%s\r\n",
                   ctype, s->conns[id].close_after ? "Connection: close\r\n" : "");
  s->conns[id].streaming = 1;
  queue(s, id, head, (size_t)n);
}

void http_stream_write(http_server *s, int id, const char *data, size_t len) {
  conn_t *c = &s->conns[id];
  if (c->fd < 0 || len == 0) return;
  char size[32];
  int n = snprintf(size, sizeof size, "%zx\r\n", len);
  kbuf_append(&c->out, size, (size_t)n);
  kbuf_append(&c->out, data, len);
  queue(s, id, "\r\n", 2);
}

void http_stream_end(http_server *s, int id) {
  conn_t *c = &s->conns[id];
  if (c->fd < 0) return;
  c->busy = 0;
  c->streaming = 0;
  queue(s, id, "0\r\n\r\n", 5);
  if (s->conns[id].fd >= 0) try_parse(s, id);
}

void http_server_free(http_server *s) {
  if (!s) return;
  for (int i = 0; i < s->nconns; i++) {
    if (s->conns[i].fd >= 0) close(s->conns[i].fd);
    kbuf_free(&s->conns[i].in);
    kbuf_free(&s->conns[i].out);
  }
  if (s->listen_fd >= 0) close(s->listen_fd);
  free(s->conns);
  free(s->pfds);
  free(s);
}
