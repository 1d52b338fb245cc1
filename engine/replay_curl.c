/* replay_curl.c - see replay_internal.h: the slots and the curl multi handle.
 *
 * A slot is one curl easy handle, made the first time it is used, with the options
 * every request shares set once; a request only changes the body. Without streaming,
 * curl_multi_perform and curl_multi_poll drive every transfer. Streaming: curl's
 * sockets are watched with epoll (CURLMOPT_SOCKETFUNCTION, CURLMOPT_TIMERFUNCTION) and
 * handed to curl_multi_socket_action one at a time, each dated just before curl reads
 * it (replay_rx.c). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "replay_internal.h"
#include "rxtime.h"

#define MAX_EVENTS 256

static int on_sockopt(void *ud, curl_socket_t fd, curlsocktype purpose) {
  (void)purpose;
  replay_state *rs = ud;
  kr_rx_socket_opened(&rs->rx, fd);
  return CURL_SOCKOPT_OK;
}

static int on_close_socket(void *ud, curl_socket_t fd) {
  replay_state *rs = ud;
  kr_rx_socket_closed(&rs->rx, fd);
  return close(fd);
}

/* curl is about to send the request, on a connection made or reused: the request's
 * clock starts here, and (streaming) its socket is found by the local port. */
static int on_prereq(void *ud, char *primary_ip, char *local_ip, int primary_port, int port) {
  (void)primary_ip; (void)local_ip; (void)primary_port;
  slot *s = ud;
  s->t_sent = ke_now();
  s->fd = kr_rx_socket_of(&s->rs->rx, port);
  return CURL_PREREQFUNC_OK;
}

/* The options every request of a slot shares. */
static void slot_init(slot *s) {
  const ke_replay_opts *o = s->rs->o;
  curl_easy_setopt(s->easy, CURLOPT_CURLU, s->rs->url);
  curl_easy_setopt(s->easy, CURLOPT_HTTPHEADER, s->headers);
  curl_easy_setopt(s->easy, CURLOPT_WRITEFUNCTION, kr_on_write);
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

int kr_slot_start(slot *s, CURLM *multi, int body_index, int measured, int row) {
  const ke_replay_opts *o = s->rs->o;
  size_t bi = (size_t)body_index % o->n_bodies;
  if (slot_ready(s)) return -1;
  s->measured = measured;
  s->busy = 1;
  s->index = row;
  s->t_sent = 0;
  s->fd = -1;
  kr_response_reset(s);
  /* only the body changes between requests: the rest is set once (slot_init) */
  curl_easy_setopt(s->easy, CURLOPT_POSTFIELDS, o->bodies[bi]);
  curl_easy_setopt(s->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)o->body_lens[bi]);
  s->t_start = ke_now();
  return curl_multi_add_handle(multi, s->easy) == CURLM_OK ? 0 : -1;
}

slot *kr_next_done(replay_run *rr) {
  CURLMsg *m;
  int q;
  while ((m = curl_multi_info_read(rr->multi, &q))) {
    if (m->msg != CURLMSG_DONE) continue;
    double t_end = ke_now();
    slot *s;
    curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&s);
    CURLcode result = m->data.result;
    curl_multi_remove_handle(rr->multi, m->easy_handle);
    kr_slot_finish(s, result, t_end);
    return s;
  }
  return NULL;
}

void kr_abandon_in_flight(replay_run *rr) {
  for (int i = 0; i < rr->nslots; i++) {
    if (!rr->slots[i].busy) continue;
    curl_multi_remove_handle(rr->multi, rr->slots[i].easy);
    rr->slots[i].busy = 0;
    rr->slots[i].fd = -1;
  }
}

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

/* Streaming: one ready socket. Its unread data is dated (peeked) just before curl
 * reads it, so everything curl hands us from this read arrived by then. */
static void socket_ready(replay_run *rr, int fd, uint32_t events, double offset) {
  int flags = (events & EPOLLOUT ? CURL_CSELECT_OUT : 0) | (events & EPOLLERR ? CURL_CSELECT_ERR : 0);
  if (events & (EPOLLIN | EPOLLHUP)) flags |= CURL_CSELECT_IN;
  int dated = (flags & CURL_CSELECT_IN) && kr_rx_before_read(&rr->rs.rx, fd, offset);
  int still;
  curl_multi_socket_action(rr->multi, fd, flags, &still);
  if (dated) kr_rx_after_read(&rr->rs.rx, fd);
}

/* Streaming: hands curl every socket that is ready now. */
static void drain_ready(replay_run *rr, int timeout_ms) {
  int n = epoll_wait(rr->epfd, rr->events, MAX_EVENTS, timeout_ms);
  double offset = ke_rxtime_clock_offset();
  for (int i = 0; i < n; i++) socket_ready(rr, rr->events[i].data.fd, rr->events[i].events, offset);
}

/* Its timeouts (streaming; new requests start there), or everything
 * (curl_multi_perform). A timeout action may read any socket, so the ready ones are
 * handed over (and dated) first. */
void kr_curl_work(replay_run *rr) {
  int still;
  if (rr->epfd < 0) {
    curl_multi_perform(rr->multi, &still);
  } else if (ke_now() >= rr->timer_at) {
    rr->timer_at = INFINITY; /* curl sets the next one, in either call */
    drain_ready(rr, 0);
    curl_multi_socket_action(rr->multi, CURL_SOCKET_TIMEOUT, 0, &still);
  }
}

void kr_wait_for_data(replay_run *rr, int timeout_ms) {
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

/* Streaming: the epoll set, and curl told to use it. */
static int watch_sockets(replay_run *rr, char *err, size_t errlen) {
  rr->epfd = epoll_create1(EPOLL_CLOEXEC);
  rr->events = calloc(MAX_EVENTS, sizeof *rr->events);
  if (rr->epfd < 0) {
    snprintf(err, errlen, "epoll: %s", strerror(errno));
    return -1;
  }
  if (!rr->events) {
    snprintf(err, errlen, "out of memory");
    return -1;
  }
  curl_multi_setopt(rr->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
  curl_multi_setopt(rr->multi, CURLMOPT_SOCKETDATA, rr);
  curl_multi_setopt(rr->multi, CURLMOPT_TIMERFUNCTION, on_timer);
  curl_multi_setopt(rr->multi, CURLMOPT_TIMERDATA, rr);
  return 0;
}

int kr_curl_setup(replay_run *rr, char *err, size_t errlen) {
  const ke_replay_opts *o = rr->rs.o;
  rr->epfd = -1;
  rr->timer_at = INFINITY;
  rr->slots = calloc((size_t)rr->nslots, sizeof *rr->slots);
  rr->free_slots = calloc((size_t)rr->nslots, sizeof *rr->free_slots);
  rr->multi = curl_multi_init();
  /* parsed once: handing curl the parsed URL saves a parse per request (~5% of the
   * client's CPU at zero server latency) */
  rr->rs.url = curl_url();
  if (!rr->slots || !rr->free_slots || !rr->multi || !rr->rs.url) {
    snprintf(err, errlen, "out of memory");
    return -1;
  }
  CURLUcode uc = curl_url_set(rr->rs.url, CURLUPART_URL, o->url, 0);
  if (uc != CURLUE_OK) {
    snprintf(err, errlen, "bad URL '%s': %s", o->url, curl_url_strerror(uc));
    return -1;
  }
  curl_multi_setopt(rr->multi, CURLMOPT_MAXCONNECTS, (long)rr->nslots + 4);
  if (o->stream && watch_sockets(rr, err, errlen)) return -1;
  for (int i = 0; i < rr->nslots; i++) {
    rr->slots[i].rs = &rr->rs;
    rr->slots[i].fd = -1;
    sse_init(&rr->slots[i].sse);
    rr->free_slots[rr->nfree++] = rr->nslots - 1 - i; /* slot 0 first */
  }
  return 0;
}

void kr_curl_cleanup(replay_run *rr) {
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
  free(rr->slots);
}
