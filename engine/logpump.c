/* logpump.c - see logpump.h. */
#include "logpump.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct ke_logpump {
  int in, out;
  size_t head_max, tail_max;
  size_t head;            /* bytes written to the file as they came */
  char *ring;             /* the tail, once the head is full */
  size_t ring_len, ring_pos;
  unsigned long long cut; /* bytes dropped between the head and the tail */
  pthread_mutex_t lock;   /* guards ring and head against ke_logpump_tail */
  atomic_int stop;
  atomic_int busy;        /* between a poll that saw data and writing it out */
  pthread_t thread;
};

static void write_all(int fd, const char *b, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, b, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return; /* a full disk loses log lines, never the run */
    b += w;
    n -= (size_t)w;
  }
}

/* Appends to the ring, overwriting (and counting as cut) its oldest bytes. */
static void ring_add(ke_logpump *p, const char *b, size_t n) {
  if (!p->ring) return;
  if (n >= p->tail_max) { /* only the newest tail_max bytes survive */
    p->cut += p->ring_len + (n - p->tail_max);
    memcpy(p->ring, b + (n - p->tail_max), p->tail_max);
    p->ring_len = p->tail_max;
    p->ring_pos = 0;
    return;
  }
  size_t cap = p->tail_max, end = (p->ring_pos + p->ring_len) % cap;
  size_t first = n < cap - end ? n : cap - end;
  memcpy(p->ring + end, b, first);
  memcpy(p->ring, b + first, n - first);
  size_t len = p->ring_len + n;
  if (len > cap) { /* the oldest bytes were overwritten */
    p->ring_pos = (p->ring_pos + (len - cap)) % cap;
    p->cut += len - cap;
    len = cap;
  }
  p->ring_len = len;
}

static void consume(ke_logpump *p, const char *b, size_t n) {
  pthread_mutex_lock(&p->lock);
  if (p->head < p->head_max) {
    size_t take = n < p->head_max - p->head ? n : p->head_max - p->head;
    write_all(p->out, b, take);
    p->head += take;
    b += take;
    n -= take;
  }
  if (n) ring_add(p, b, n);
  pthread_mutex_unlock(&p->lock);
}

/* The ring's bytes in order into a new buffer. */
static char *ring_copy(const ke_logpump *p, size_t *len) {
  char *c = malloc(p->ring_len + 1);
  if (!c) return NULL;
  for (size_t i = 0; i < p->ring_len; i++) c[i] = p->ring[(p->ring_pos + i) % p->tail_max];
  c[p->ring_len] = '\0';
  *len = p->ring_len;
  return c;
}

static void *pump(void *arg) {
  ke_logpump *p = arg;
  char buf[65536];
  for (;;) {
    struct pollfd pfd = {p->in, POLLIN, 0};
    int r = poll(&pfd, 1, 50);
    if (r > 0) {
      atomic_store(&p->busy, 1);
      ssize_t n = read(p->in, buf, sizeof buf);
      if (n > 0) consume(p, buf, (size_t)n);
      atomic_store(&p->busy, 0);
      if (n > 0) continue;
      if (n < 0 && errno == EINTR) continue;
      break; /* every writer is gone */
    }
    if (r < 0 && errno == EINTR) continue;
    if (atomic_load(&p->stop)) break; /* quiet for 50 ms after the owner asked */
  }
  return NULL;
}

ke_logpump *ke_logpump_start(int in, int out, size_t head_max, size_t tail_max) {
  ke_logpump *p = calloc(1, sizeof *p);
  if (!p) return NULL;
  p->in = in;
  p->out = out;
  p->head_max = head_max;
  p->tail_max = tail_max ? tail_max : 1;
  p->ring = malloc(p->tail_max);
  pthread_mutex_init(&p->lock, NULL);
  if (!p->ring || pthread_create(&p->thread, NULL, pump, p) != 0) {
    int e = errno;
    pthread_mutex_destroy(&p->lock);
    free(p->ring);
    free(p);
    errno = e ? e : ENOMEM;
    return NULL;
  }
  return p;
}

void ke_logpump_drain(ke_logpump *p, double timeout_s) {
  for (int waited_ms = 0; waited_ms < (int)(timeout_s * 1000); waited_ms++) {
    struct pollfd pfd = {p->in, POLLIN, 0};
    if (poll(&pfd, 1, 0) <= 0 && !atomic_load(&p->busy)) return;
    usleep(1000);
  }
}

char *ke_logpump_tail(ke_logpump *p, int max_lines) {
  pthread_mutex_lock(&p->lock);
  size_t n = 0;
  char *text = p->ring_len ? ring_copy(p, &n) : NULL;
  pthread_mutex_unlock(&p->lock);
  if (!text) return NULL; /* the file holds everything so far */
  for (size_t k = 0; k < n; k++)
    if (text[k] == '\0') text[k] = ' '; /* a NUL in the log would end the text early */
  while (n > 0 && (text[n - 1] == '\n' || text[n - 1] == '\r')) text[--n] = '\0';
  int lines = 0;
  size_t i = n;
  while (i > 0) {
    if (text[i - 1] == '\n' && ++lines >= max_lines) break;
    i--;
  }
  memmove(text, text + i, n - i + 1);
  return text;
}

void ke_logpump_finish(ke_logpump *p) {
  if (!p) return;
  atomic_store(&p->stop, 1);
  pthread_join(p->thread, NULL);
  if (p->cut) {
    char line[256];
    int n = snprintf(line, sizeof line,
                     "\n[knobengine: %llu bytes of this log were cut here; the first %zu and the last %zu bytes are "
                     "kept]\n", p->cut, p->head_max, p->tail_max);
    write_all(p->out, line, (size_t)n);
  }
  size_t len = 0;
  char *tail = p->ring_len ? ring_copy(p, &len) : NULL;
  if (tail) write_all(p->out, tail, len);
  free(tail);
  close(p->in);
  close(p->out);
  pthread_mutex_destroy(&p->lock);
  free(p->ring);
  free(p);
}
