/* supervise_ports.c - see supervise.h: whether a port is taken, waiting until it is
 * free, and who holds it (/proc/net/tcp or the kernel's socket diagnostics, then the
 * sockets in /proc/PID/fd). */
#include <arpa/inet.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "clock.h"
#include "supervise.h"
#include "supervise_internal.h"

int ke_port_in_use(const char *host, int port) {
  struct addrinfo hints, *res = NULL;
  memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV | AI_PASSIVE;
  char ps[16];
  snprintf(ps, sizeof ps, "%d", port);
  if (getaddrinfo(host, ps, &hints, &res) != 0 || !res) return -1;
  int in_use = 0;
  int fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd >= 0) {
    int one = 1;
    /* SO_REUSEADDR: sockets in TIME_WAIT do not count, a listener does */
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, res->ai_addr, res->ai_addrlen) != 0) in_use = (errno == EADDRINUSE) ? 1 : 0;
    close(fd);
  }
  freeaddrinfo(res);
  return in_use;
}

int ke_wait_port_free(const char *host, int port, double timeout_s) {
  double deadline = ke_now() + timeout_s;
  for (;;) {
    if (ke_port_in_use(host, port) != 1) return 0;
    if (ke_now() >= deadline) return -1;
    ke_sleep(0.005);
  }
}

/* Inodes of the listening TCP sockets on `port` in one /proc/net table. */
static size_t listening_inodes(const char *table, int port, unsigned long *inodes, size_t n, size_t max) {
  FILE *f = fopen(table, "r");
  if (!f) return n;
  char line[512];
  if (!fgets(line, sizeof line, f)) { fclose(f); return n; } /* the header */
  while (n < max && fgets(line, sizeof line, f)) {
    char local[128];
    unsigned state;
    unsigned long inode;
    /* sl local rem st tx:rx tr:when retrnsmt uid timeout inode */
    if (sscanf(line, " %*s %127s %*s %x %*s %*s %*s %*s %*s %lu", local, &state, &inode) != 3) continue;
    const char *colon = strrchr(local, ':');
    if (state != 0x0A || !colon || (int)strtol(colon + 1, NULL, 16) != port || inode == 0) continue;
    inodes[n++] = inode;
  }
  fclose(f);
  return n;
}

/* The same from the kernel's socket diagnostics (netlink): only listening sockets are
 * listed, where /proc/net/tcp also lists every connection in TIME_WAIT (thousands
 * after a sweep, milliseconds to read). -1 when the interface is not available. */
static int diag_listening(int family, int port, unsigned long *inodes, size_t *n, size_t max) {
  int fd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
  if (fd < 0) return -1;
  struct timeval limit = {1, 0}; /* the kernel answers at once; never hang on it */
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
  struct {
    struct nlmsghdr nlh;
    struct inet_diag_req_v2 r;
  } req;
  memset(&req, 0, sizeof req);
  req.nlh.nlmsg_len = sizeof req;
  req.nlh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
  req.nlh.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
  req.r.sdiag_family = (unsigned char)family;
  req.r.sdiag_protocol = IPPROTO_TCP;
  req.r.idiag_states = 1u << 10; /* TCP_LISTEN */
  int rc = send(fd, &req, sizeof req, 0) == (ssize_t)sizeof req ? 1 : -1;
  union {
    struct nlmsghdr align;
    char bytes[16384];
  } buf;
  while (rc == 1) {
    ssize_t got = recv(fd, buf.bytes, sizeof buf.bytes, 0);
    if (got <= 0) rc = -1;
    size_t len = got > 0 ? (size_t)got : 0;
    for (size_t at = 0; rc == 1 && at + sizeof(struct nlmsghdr) <= len;) {
      const struct nlmsghdr *h = (const struct nlmsghdr *)(buf.bytes + at);
      if (h->nlmsg_len < sizeof *h || h->nlmsg_len > len - at) {
        rc = -1;
        break;
      }
      at += NLMSG_ALIGN(h->nlmsg_len);
      if (h->nlmsg_type == NLMSG_DONE) rc = 0;
      else if (h->nlmsg_type == NLMSG_ERROR) rc = -1;
      else if (h->nlmsg_len >= NLMSG_LENGTH(sizeof(struct inet_diag_msg))) {
        const struct inet_diag_msg *m = NLMSG_DATA(h);
        if (ntohs(m->id.idiag_sport) == port && m->idiag_inode && *n < max) inodes[(*n)++] = m->idiag_inode;
      }
    }
  }
  close(fd);
  return rc;
}

static int by_pid_descending(const void *a, const void *b) {
  long x = *(const long *)a, y = *(const long *)b;
  return (x < y) - (x > y);
}

/* The process ids under /proc, newest (highest) first: a trial's server is among the
 * newest processes, so its sockets are usually found after a few. NULL on failure. */
static long *proc_pids(size_t *count) {
  DIR *d = opendir("/proc");
  if (!d) return NULL;
  size_t n = 0, cap = 256;
  long *pids = malloc(cap * sizeof *pids);
  struct dirent *de;
  while (pids && (de = readdir(d))) {
    if (!isdigit((unsigned char)de->d_name[0])) continue;
    if (n == cap) {
      long *np = realloc(pids, (cap *= 2) * sizeof *pids);
      if (!np) free(pids);
      pids = np;
      if (!pids) break;
    }
    pids[n++] = atol(de->d_name);
  }
  closedir(d);
  if (pids) qsort(pids, n, sizeof *pids, by_pid_descending);
  *count = n;
  return pids;
}

/* Whether process pid holds the socket named `want` ("socket:[inode]"). */
static int holds_socket(long pid, const char *want) {
  char fdpath[64];
  snprintf(fdpath, sizeof fdpath, "/proc/%ld/fd", pid);
  DIR *fds = opendir(fdpath);
  if (!fds) return 0;
  int found = 0;
  struct dirent *fe;
  while (!found && (fe = readdir(fds))) {
    char link[300], target[128];
    snprintf(link, sizeof link, "%s/%s", fdpath, fe->d_name);
    ssize_t n = readlink(link, target, sizeof target - 1);
    if (n > 0 && (target[n] = '\0', strcmp(target, want) == 0)) found = 1;
  }
  closedir(fds);
  return found;
}

/* The pid of a process holding socket inode, or 0 when none is visible. */
static long socket_holder(unsigned long inode) {
  char want[64];
  snprintf(want, sizeof want, "socket:[%lu]", inode);
  size_t n = 0;
  long *pids = proc_pids(&n), found = 0;
  for (size_t i = 0; pids && i < n && !found; i++)
    if (holds_socket(pids[i], want)) found = pids[i];
  free(pids);
  return found;
}

static void command_line(long pid, char *cmd, size_t len) {
  char path[64];
  snprintf(path, sizeof path, "/proc/%ld/cmdline", pid);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  ssize_t n = fd >= 0 ? read(fd, cmd, len - 1) : -1;
  if (fd >= 0) close(fd);
  if (n <= 0) { snprintf(cmd, len, "?"); return; }
  for (ssize_t i = 0; i < n; i++)
    if (cmd[i] == '\0') cmd[i] = ' ';
  while (n > 0 && cmd[n - 1] == ' ') n--;
  cmd[n] = '\0';
}

int ke_port_owner(int port, const char *marker, long *other_pid, char *cmd, size_t cmdlen) {
  unsigned long inodes[16];
  size_t n = 0;
  if (diag_listening(AF_INET, port, inodes, &n, 16) != 0) n = listening_inodes("/proc/net/tcp", port, inodes, 0, 16);
  size_t n4 = n;
  if (diag_listening(AF_INET6, port, inodes, &n, 16) != 0) n = listening_inodes("/proc/net/tcp6", port, inodes, n4, 16);
  if (n == 0) return -1;
  for (size_t i = 0; i < n; i++) {
    long pid = socket_holder(inodes[i]);
    char spid[32];
    snprintf(spid, sizeof spid, "%ld", pid);
    if (pid > 0 && ke_pid_has_marker(spid, marker)) continue;
    *other_pid = pid > 0 ? pid : -1;
    if (pid > 0) command_line(pid, cmd, cmdlen);
    else snprintf(cmd, cmdlen, "not visible to us");
    return 0;
  }
  return 1;
}
