/* fsutil.c - see fsutil.h. */
#include "fsutil.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
