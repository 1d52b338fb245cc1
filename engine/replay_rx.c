/* replay_rx.c - see replay_internal.h: kernel receive timestamps (streaming only).
 *
 * Why: a server emits the tokens of a whole batch at once, and one client thread
 * parses them one after another, so the last stream of a burst would be stamped
 * late by the time spent on the others (about 1 ms at concurrency 64). Instead the
 * sockets carry SO_TIMESTAMPNS, and streaming replays drive curl socket by socket
 * (curl_multi_socket_action on epoll events, replay_curl.c): each readable socket is
 * peeked (MSG_PEEK) for the arrival time of its unread data right before curl reads
 * that socket, and the data curl then hands us is dated by it (rxtime.h). Handing curl
 * every socket at once (curl_multi_perform) would let it read data that arrived
 * after the peeks, dated only when read: at 1024 streams, 58% of the chunks, 2-4 ms
 * late. Data that waited while more came is dated by the newest arrival (the kernel
 * merges queued segments), which is never earlier than the truth and is exact for
 * the end of a request. curl does not say which socket a transfer uses; the
 * pre-request callback gives the local port, and the socket with that port is found
 * with getsockname (once per connection). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "replay_internal.h"
#include "rxtime.h"

/* What curl reads from a socket at once (its default CURLOPT_BUFFERSIZE). */
#define KR_PEEK_SIZE 16384
#define LAG_STEP_MS 0.01
#define LAG_BUCKETS 100001 /* up to 1 s */

int kr_rx_setup(kr_rx *rx, char *err, size_t errlen) {
  rx->port_fd = malloc(sizeof *rx->port_fd * 65536);
  rx->peek_buf = malloc(KR_PEEK_SIZE);
  rx->lag_hist = calloc(LAG_BUCKETS, sizeof *rx->lag_hist);
  if (!rx->port_fd || !rx->peek_buf || !rx->lag_hist) {
    snprintf(err, errlen, "out of memory");
    return -1;
  }
  for (int i = 0; i < 65536; i++) rx->port_fd[i] = -1;
  return 0;
}

void kr_rx_free(kr_rx *rx) {
  free(rx->fd_port);
  free(rx->fd_rx);
  free(rx->port_fd);
  free(rx->peek_buf);
  free(rx->lag_hist);
}

static int fd_reserve(kr_rx *rx, int fd) {
  if (fd < rx->fd_cap) return 0;
  int cap = rx->fd_cap ? rx->fd_cap : 256;
  while (cap <= fd) cap *= 2;
  int *np = realloc(rx->fd_port, sizeof *np * (size_t)cap);
  if (!np) return -1;
  rx->fd_port = np;
  double *nr = realloc(rx->fd_rx, sizeof *nr * (size_t)cap);
  if (!nr) return -1;
  rx->fd_rx = nr;
  for (int i = rx->fd_cap; i < cap; i++) {
    np[i] = -1;
    nr[i] = 0;
  }
  rx->fd_cap = cap;
  return 0;
}

void kr_rx_socket_opened(kr_rx *rx, int fd) {
  /* without timestamps the socket still works: its data is stamped when read */
  if (ke_rxtime_enable(fd) == 0 && fd_reserve(rx, fd) == 0)
    rx->fd_port[fd] = 0;
}

void kr_rx_socket_closed(kr_rx *rx, int fd) {
  if (fd < rx->fd_cap) rx->fd_port[fd] = -1; /* its number may come back as anything */
}

int kr_rx_socket_of(kr_rx *rx, int port) {
  if (port <= 0 || port > 65535 || !rx->port_fd) return -1;
  int fd = rx->port_fd[port];
  if (fd >= 0 && fd < rx->fd_cap && rx->fd_port[fd] == port) return fd;
  int found = -1;
  for (fd = 0; fd < rx->fd_cap; fd++) { /* new connections: look each up once */
    if (rx->fd_port[fd] != 0) continue;
    int p = ke_local_port(fd);
    rx->fd_port[fd] = p > 0 ? p : -1;
    if (p > 0) rx->port_fd[p] = fd;
    if (p == port) found = fd;
  }
  return found;
}

static void note_lag(kr_rx *rx, double ms) {
  double b = ms / LAG_STEP_MS;
  rx->lag_hist[b < LAG_BUCKETS - 1 ? (size_t)b : LAG_BUCKETS - 1]++;
  if (ms > rx->lag_max) rx->lag_max = ms;
}

int kr_rx_before_read(kr_rx *rx, int fd, double clock_offset) {
  if (!(fd < rx->fd_cap && rx->fd_port[fd] >= 0)) return 0;
  size_t got;
  double t = ke_rxtime_peek(fd, rx->peek_buf, KR_PEEK_SIZE, &got, clock_offset);
  /* a clock step between the two readings cannot put data in the future */
  double now = ke_now();
  rx->fd_rx[fd] = t > 0 && t <= now ? t : 0;
  if (rx->fd_rx[fd] > 0) note_lag(rx, (now - t) * 1000.0);
  return 1;
}

void kr_rx_after_read(kr_rx *rx, int fd) { rx->fd_rx[fd] = 0; }

double kr_rx_arrival(const kr_rx *rx, int fd) {
  return fd >= 0 && fd < rx->fd_cap ? rx->fd_rx[fd] : 0;
}

void kr_rx_lag_reset(kr_rx *rx) {
  if (!rx->lag_hist) return;
  memset(rx->lag_hist, 0, LAG_BUCKETS * sizeof *rx->lag_hist);
  rx->lag_max = 0;
}

/* Percentile p of the read lags (the top of its step), NaN when there are none. */
static double lag_percentile(const kr_rx *rx, double p) {
  uint64_t total = 0, seen = 0;
  for (size_t i = 0; i < LAG_BUCKETS; i++) total += rx->lag_hist[i];
  if (!total) return NAN;
  uint64_t want = (uint64_t)ceil(p / 100.0 * (double)total);
  for (size_t i = 0; i < LAG_BUCKETS; i++) {
    seen += rx->lag_hist[i];
    if (seen >= want && seen > 0) return fmin((double)(i + 1) * LAG_STEP_MS, rx->lag_max);
  }
  return rx->lag_max;
}

void kr_rx_lag_metrics(const kr_rx *rx, ke_metrics *out) {
  int dated = rx->lag_hist != NULL;
  out->read_lag_p50 = dated ? lag_percentile(rx, 50) : NAN;
  out->read_lag_p99 = dated ? lag_percentile(rx, 99) : NAN;
  out->read_lag_max = dated ? lag_percentile(rx, 100) : NAN;
}
