/* fsutil.c - see fsutil.h. */
#include "fsutil.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/sysmacros.h>
#include <sys/stat.h>
#include <unistd.h>

int ke_mkdir_p(const char *dir, char *err, size_t errlen) {
  size_t n = strlen(dir);
  if (n == 0) return 0;
  char *p = malloc(n + 1);
  if (!p) { snprintf(err, errlen, "out of memory"); return -1; }
  memcpy(p, dir, n + 1);
  for (size_t i = 1; i <= n; i++) {
    if (p[i] != '/' && p[i] != '\0') continue;
    char saved = p[i];
    p[i] = '\0';
    if (mkdir(p, 0755) != 0 && errno != EEXIST) {
      snprintf(err, errlen, "cannot create directory '%s': %s", p, strerror(errno));
      free(p);
      return -1;
    }
    p[i] = saved;
  }
  free(p);
  if (!ke_is_dir(dir)) {
    snprintf(err, errlen, "'%s' exists and is not a directory", dir);
    return -1;
  }
  return 0;
}

int ke_write_atomic(const char *path, const void *data, size_t len, int mode, char *err,
                    size_t errlen) {
  size_t n = strlen(path) + 32;
  char *tmp = malloc(n);
  if (!tmp) { snprintf(err, errlen, "out of memory"); return -1; }
  snprintf(tmp, n, "%s.tmp.%ld", path, (long)getpid());
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, (mode_t)mode);
  if (fd < 0) {
    snprintf(err, errlen, "cannot write '%s': %s", path, strerror(errno));
    free(tmp);
    return -1;
  }
  const char *p = data;
  size_t left = len;
  while (left > 0) {
    ssize_t w = write(fd, p, left);
    if (w < 0) {
      if (errno == EINTR) continue;
      snprintf(err, errlen, "cannot write '%s': %s", path, strerror(errno));
      goto fail;
    }
    p += w;
    left -= (size_t)w;
  }
  if (fchmod(fd, (mode_t)mode) != 0 || (fsync(fd) != 0 && errno != EINVAL)) {
    snprintf(err, errlen, "cannot write '%s': %s", path, strerror(errno));
    goto fail;
  }
  if (close(fd) != 0) {
    fd = -1;
    snprintf(err, errlen, "cannot write '%s': %s", path, strerror(errno));
    goto fail;
  }
  fd = -1;
  if (rename(tmp, path) != 0) {
    snprintf(err, errlen, "cannot write '%s': %s", path, strerror(errno));
    goto fail;
  }
  free(tmp);
  return 0;
fail:
  if (fd >= 0) close(fd);
  unlink(tmp);
  free(tmp);
  return -1;
}

int ke_exists(const char *path) {
  struct stat st;
  return lstat(path, &st) == 0;
}

int ke_is_executable(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 && S_ISREG(st.st_mode) && access(path, X_OK) == 0;
}

char **ke_list_dir(const char *dir) {
  DIR *d = opendir(dir);
  if (!d) return NULL;
  size_t n = 0, cap = 16;
  char **list = malloc(cap * sizeof *list);
  struct dirent *de;
  while (list && (de = readdir(d))) {
    if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
    if (n + 2 > cap) {
      char **nl = realloc(list, (cap *= 2) * sizeof *nl);
      if (!nl) { list[n] = NULL; ke_free_list(list); list = NULL; break; }
      list = nl;
    }
    if (!(list[n] = strdup(de->d_name))) { ke_free_list(list); list = NULL; break; }
    list[++n] = NULL;
  }
  if (list) list[n] = NULL;
  closedir(d);
  return list;
}

void ke_free_list(char **list) {
  for (size_t i = 0; list && list[i]; i++) free(list[i]);
  free(list);
}

int ke_is_dir(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
  (void)st; (void)flag; (void)ftw;
  return remove(path);
}

int ke_remove_tree(const char *path, char *err, size_t errlen) {
  if (!ke_exists(path)) return 0;
  if (nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS) != 0) {
    snprintf(err, errlen, "cannot remove '%s': %s", path, strerror(errno));
    return -1;
  }
  return 0;
}

char *ke_tail_lines(const char *path, int max_lines) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  long want = 64 * 1024;
  if (fseek(f, 0, SEEK_END) != 0) { fclose(f); return NULL; }
  long size = ftell(f);
  long start = size > want ? size - want : 0;
  fseek(f, start, SEEK_SET);
  size_t n = (size_t)(size - start);
  char *buf = malloc(n + 1);
  if (!buf) { fclose(f); return NULL; }
  n = fread(buf, 1, n, f);
  fclose(f);
  for (size_t k = 0; k < n; k++)
    if (buf[k] == '\0') buf[k] = ' '; /* a NUL in the log would end the text early */
  buf[n] = '\0';
  while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r')) buf[--n] = '\0';
  int lines = 0;
  size_t i = n;
  while (i > 0) {
    if (buf[i - 1] == '\n' && ++lines >= max_lines) break;
    i--;
  }
  if (i > 0) memmove(buf, buf + i, n - i + 1);
  return buf;
}

int ke_symlink_atomic(const char *target, const char *link, char *err, size_t errlen) {
  size_t n = strlen(link) + 32;
  char *tmp = malloc(n);
  if (!tmp) { snprintf(err, errlen, "out of memory"); return -1; }
  snprintf(tmp, n, "%s.tmp.%ld", link, (long)getpid());
  unlink(tmp);
  int rc = 0;
  if (symlink(target, tmp) != 0 || rename(tmp, link) != 0) {
    snprintf(err, errlen, "cannot point '%s' at '%s': %s", link, target, strerror(errno));
    unlink(tmp);
    rc = -1;
  }
  free(tmp);
  return rc;
}

/* The pid holding an flock on the file with this device and inode, from /proc/locks
 * ("1: FLOCK  ADVISORY  WRITE 1234 08:01:5678 0 EOF"); 0 when not found. */
static long flock_holder(dev_t dev, ino_t ino) {
  FILE *f = fopen("/proc/locks", "r");
  if (!f) return 0;
  char line[256];
  long found = 0;
  while (!found && fgets(line, sizeof line, f)) {
    char kind[16];
    long pid;
    unsigned maj, min;
    unsigned long long inode;
    if (sscanf(line, "%*s %15s %*s %*s %ld %x:%x:%llu", kind, &pid, &maj, &min, &inode) != 5) continue;
    if (strcmp(kind, "FLOCK") == 0 && inode == (unsigned long long)ino && maj == major(dev) && min == minor(dev))
      found = pid;
  }
  fclose(f);
  return found;
}

int ke_lock_dir(const char *dir, long *holder, char *err, size_t errlen) {
  *holder = 0;
  int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) {
    snprintf(err, errlen, "cannot open '%s': %s", dir, strerror(errno));
    return -1;
  }
  if (flock(fd, LOCK_EX | LOCK_NB) == 0) return 0; /* fd stays open: the lock lasts until this process exits */
  int e = errno;
  struct stat st;
  if (e == EWOULDBLOCK && fstat(fd, &st) == 0) *holder = flock_holder(st.st_dev, st.st_ino);
  if (e != EWOULDBLOCK) snprintf(err, errlen, "cannot lock '%s': %s", dir, strerror(e));
  close(fd);
  return e == EWOULDBLOCK ? 1 : -1;
}
