/* rxtime.c - see rxtime.h. */
#include "rxtime.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

int ke_rxtime_enable(int fd) {
  int one = 1;
  return setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof one);
}

double ke_rxtime_clock_offset(void) {
  struct timespec rt, mono;
  clock_gettime(CLOCK_REALTIME, &rt);
  clock_gettime(CLOCK_MONOTONIC, &mono);
  return ((double)rt.tv_sec - (double)mono.tv_sec) + ((double)rt.tv_nsec - (double)mono.tv_nsec) * 1e-9;
}

long ke_rxtime_recv(int fd, char *buf, size_t cap, int flags, double clock_offset, double *arrived) {
  struct iovec iov = {buf, cap};
  union {
    char buf[CMSG_SPACE(sizeof(struct timespec))];
    struct cmsghdr align;
  } control;
  struct msghdr msg;
  memset(&msg, 0, sizeof msg);
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control.buf;
  msg.msg_controllen = sizeof control.buf;
  *arrived = 0;
  ssize_t n = recvmsg(fd, &msg, flags);
  if (n <= 0) return (long)n;
  for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_TIMESTAMPNS) {
      struct timespec ts;
      memcpy(&ts, CMSG_DATA(c), sizeof ts);
      *arrived = (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9 - clock_offset;
    }
  }
  return (long)n;
}

double ke_rxtime_peek(int fd, char *buf, size_t cap, size_t *got, double clock_offset) {
  double arrived;
  long n = ke_rxtime_recv(fd, buf, cap, MSG_PEEK | MSG_DONTWAIT, clock_offset, &arrived);
  *got = n > 0 ? (size_t)n : 0;
  return n > 0 ? arrived : 0;
}

int ke_local_port(int fd) {
  struct sockaddr_storage sa;
  socklen_t len = sizeof sa;
  if (getsockname(fd, (struct sockaddr *)&sa, &len)) return -1;
  if (sa.ss_family == AF_INET) return ntohs(((struct sockaddr_in *)&sa)->sin_port);
  if (sa.ss_family == AF_INET6) return ntohs(((struct sockaddr_in6 *)&sa)->sin6_port);
  return -1;
}
