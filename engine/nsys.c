/* nsys.c - see nsys.h. */
#include "nsys.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "clock.h"
#include "fsutil.h"
#include "supervise.h"

/* The environment nsys commands run with: TMPDIR set to the trial's capture directory
 * (nsys keeps the raw capture there until it writes the report). */
typedef struct {
  char var[PATH_MAX + 8];
  const char *env[2];
} nsys_env_buf;

static const char *const *nsys_env(const ke_nsys_opts *o, nsys_env_buf *b) {
  if (!o->tmp_dir) return NULL;
  snprintf(b->var, sizeof b->var, "TMPDIR=%s", o->tmp_dir);
  b->env[0] = b->var;
  b->env[1] = NULL;
  return b->env;
}

static size_t count_args(const char *const *a) {
  size_t n = 0;
  while (a && a[n]) n++;
  return n;
}

static char *format_opt(const char *name, const char *value) {
  size_t n = strlen(name) + strlen(value) + 2;
  char *s = malloc(n);
  if (s) snprintf(s, n, "%s=%s", name, value);
  return s;
}

void ke_nsys_argv_free(ke_nsys_argv *a) {
  free(a->argv);
  for (int i = 0; i < 4; i++) free(a->owned[i]);
  memset(a, 0, sizeof *a);
}

int ke_nsys_wrap_argv(const ke_nsys_opts *o, const char *const *server_argv, ke_nsys_argv *out) {
  memset(out, 0, sizeof *out);
  size_t n = count_args(o->extra_args) + count_args(o->capture_args) + count_args(server_argv) + 8;
  int process = o->capture == KE_CAPTURE_PROCESS;
  const char **a = out->argv = calloc(n, sizeof *a);
  out->owned[0] = format_opt("--trace", o->trace);
  out->owned[1] = process ? format_opt("--output", o->output) : format_opt("--session-new", o->session);
  if (o->cuda_graph_trace) out->owned[2] = format_opt("--cuda-graph-trace", o->cuda_graph_trace);
  if (!a || !out->owned[0] || !out->owned[1] || (o->cuda_graph_trace && !out->owned[2])) {
    ke_nsys_argv_free(out);
    return -1;
  }
  size_t i = 0;
  a[i++] = o->bin;
  a[i++] = process ? "profile" : "launch";
  a[i++] = out->owned[1];
  a[i++] = out->owned[0];
  if (out->owned[2]) a[i++] = out->owned[2];
  if (process) {
    a[i++] = "--force-overwrite=true";
    for (size_t k = 0; o->capture_args && o->capture_args[k]; k++) a[i++] = o->capture_args[k];
  }
  for (size_t k = 0; o->extra_args && o->extra_args[k]; k++) a[i++] = o->extra_args[k];
  for (size_t k = 0; server_argv[k]; k++) a[i++] = server_argv[k];
  a[i] = NULL;
  return 0;
}

static int nsys_session_cmd(const ke_nsys_opts *o, const char *verb, int starting, char *err,
                            size_t errlen) {
  char session_opt[300], output_opt[1100];
  snprintf(session_opt, sizeof session_opt, "--session=%s", o->session);
  snprintf(output_opt, sizeof output_opt, "--output=%s", o->output);
  const char *argv[64] = {o->bin, verb, session_opt};
  size_t n = 3;
  if (starting) {
    argv[n++] = output_opt;
    argv[n++] = "--force-overwrite=true";
    for (size_t k = 0; o->capture_args && o->capture_args[k] && n < 63; k++) argv[n++] = o->capture_args[k];
  }
  argv[n] = NULL;
  char cerr[512] = "";
  nsys_env_buf envbuf;
  int st = ke_run_command(argv, nsys_env(o, &envbuf), NULL, o->log_path, o->timeout_s, cerr, sizeof cerr);
  if (st == 0) return 0;
  if (st < 0) snprintf(err, errlen, "nsys %s: %s", verb, cerr);
  else snprintf(err, errlen, "'nsys %s' exited with status %d (see %s)", verb, st, o->log_path);
  return -1;
}

int ke_nsys_start(const ke_nsys_opts *o, char *err, size_t errlen) {
  return nsys_session_cmd(o, "start", 1, err, errlen);
}

int ke_nsys_stop(const ke_nsys_opts *o, char *err, size_t errlen) {
  return nsys_session_cmd(o, "stop", 0, err, errlen);
}

void ke_nsys_shutdown(const ke_nsys_opts *o) {
  char err[256];
  char session_opt[300];
  snprintf(session_opt, sizeof session_opt, "--session=%s", o->session);
  const char *argv[] = {o->bin, "shutdown", session_opt, "--kill=none", NULL};
  nsys_env_buf envbuf;
  ke_run_command(argv, nsys_env(o, &envbuf), NULL, o->log_path, o->timeout_s, err, sizeof err);
}

/* Resolves `bin` through PATH when it has no slash. */
static int which(const char *bin, char *out, size_t outlen) {
  if (strchr(bin, '/')) {
    snprintf(out, outlen, "%s", bin);
    return access(out, X_OK) == 0 ? 0 : -1;
  }
  const char *path = getenv("PATH");
  if (!path) return -1;
  const char *p = path;
  while (*p) {
    const char *colon = strchr(p, ':');
    size_t n = colon ? (size_t)(colon - p) : strlen(p);
    snprintf(out, outlen, "%.*s/%s", (int)n, p, bin);
    if (n && access(out, X_OK) == 0) return 0;
    if (!colon) break;
    p = colon + 1;
  }
  return -1;
}

/* The directory of path with its last component removed, into out. */
static void dir_of(const char *path, char *out, size_t outlen) {
  snprintf(out, outlen, "%s", path);
  char *s = strrchr(out, '/');
  if (s) *s = '\0';
}

/* Looks for QdstrmImporter where an nsys installation keeps it, relative to `dir` (the
 * directory of nsys, or of the real file behind its links): beside it, and in every
 * sibling directory (host-linux-x64; linux-desktop-glibc_2_11_3-x64 in the copy
 * bundled with Nsight Compute; ...), host-* ones first. */
static int importer_near(const char *dir, char *out, size_t outlen) {
  snprintf(out, outlen, "%s/QdstrmImporter", dir);
  if (access(out, X_OK) == 0) return 0;
  char parent[PATH_MAX];
  snprintf(parent, sizeof parent, "%s/..", dir);
  for (int pass = 0; pass < 2; pass++) {
    DIR *d = opendir(parent);
    if (!d) return -1;
    struct dirent *de;
    int found = 0;
    while (!found && (de = readdir(d))) {
      if (de->d_name[0] == '.' || (pass == 0) != (strncmp(de->d_name, "host-", 5) == 0)) continue;
      snprintf(out, outlen, "%s/%s/QdstrmImporter", parent, de->d_name);
      found = access(out, X_OK) == 0;
    }
    closedir(d);
    if (found) return 0;
  }
  return -1;
}

int ke_nsys_importer_visible(const char *bin) {
  char path[PATH_MAX], real[PATH_MAX], dir[PATH_MAX], cand[PATH_MAX + 64];
  if (which(bin, path, sizeof path) || !realpath(path, real)) return 0;
  dir_of(real, dir, sizeof dir);
  /* nsys itself looks only beside its real binary and in ../host-linux-x64 */
  snprintf(cand, sizeof cand, "%s/QdstrmImporter", dir);
  if (access(cand, X_OK) == 0) return 1;
  snprintf(cand, sizeof cand, "%s/../host-linux-x64/QdstrmImporter", dir);
  return access(cand, X_OK) == 0;
}

/* Finds the QdstrmImporter that ships with this nsys: near the nsys it runs, near the
 * real file behind its links, and where the same installation keeps it apart (Debian's
 * package puts it in /usr/lib/nsight-systems, not beside the real nsys). */
static int find_importer(const char *bin, char *out, size_t outlen) {
  char path[PATH_MAX], real[PATH_MAX] = "", dir[PATH_MAX];
  if (which(bin, path, sizeof path)) return -1;
  dir_of(path, dir, sizeof dir);
  if (importer_near(dir, out, outlen) == 0) return 0;
  if (realpath(path, real)) {
    dir_of(real, dir, sizeof dir);
    if (importer_near(dir, out, outlen) == 0) return 0;
  }
  static const char *const apart[][2] = {
      {"/usr/lib/", "/usr/lib/nsight-systems/host-linux-x64/QdstrmImporter"},
      {"/opt/nvidia/nsight-systems/", "/opt/nvidia/nsight-systems/host-linux-x64/QdstrmImporter"}};
  for (size_t i = 0; i < sizeof apart / sizeof apart[0]; i++) {
    if (strncmp(real, apart[i][0], strlen(apart[i][0])) != 0) continue;
    snprintf(out, outlen, "%s", apart[i][1]);
    if (access(out, X_OK) == 0) return 0;
  }
  return -1;
}

/* Debian/Ubuntu packages of the libraries an importer is known to need. */
static const char *package_of(const char *lib) {
  static const char *const map[][2] = {{"libdw.so.1", "libdw1"}, {"libelf.so.1", "libelf1"},
                                       {"libstdc++.so.6", "libstdc++6"}, {"libz.so.1", "zlib1g"}};
  for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
    if (strcmp(lib, map[i][0]) == 0) return map[i][1];
  return NULL;
}

/* "error while loading shared libraries: X: cannot open..." in the importer's output:
 * the message naming X and its package. */
static int loader_error(const char *out, const char *importer, char *err, size_t errlen) {
  const char *p = out ? strstr(out, "error while loading shared libraries: ") : NULL;
  if (!p) return 0;
  p += strlen("error while loading shared libraries: ");
  char lib[128];
  snprintf(lib, sizeof lib, "%.*s", (int)strcspn(p, ":\n"), p);
  const char *pkg = package_of(lib);
  if (pkg)
    snprintf(err, errlen, "nsys's report importer %s cannot start: %s is missing (install the package %s)", importer,
             lib, pkg);
  else
    snprintf(err, errlen, "nsys's report importer %s cannot start: %s is missing (find its package with "
             "'dpkg -S %s' or 'apt-file search %s')", importer, lib, lib, lib);
  return 1;
}

int ke_nsys_check_importer(const char *bin, char *importer, size_t len, char *err, size_t errlen) {
  if (find_importer(bin, importer, len)) {
    snprintf(err, errlen, "nsys's report importer (QdstrmImporter) was not found near '%s': without it nsys "
             "records a capture it cannot turn into a report; install a complete Nsight Systems", bin);
    return -1;
  }
  char log[] = "/tmp/knobengine-importer.XXXXXX";
  int fd = mkstemp(log);
  if (fd < 0) {
    snprintf(err, errlen, "cannot check the report importer: %s", strerror(errno));
    return -1;
  }
  close(fd);
  const char *argv[] = {importer, "--help", NULL};
  char cerr[512] = "";
  int st = ke_run_command(argv, NULL, NULL, log, 30, cerr, sizeof cerr);
  char *out = ke_tail_lines(log, 20);
  unlink(log);
  int rc = 0;
  if (loader_error(out, importer, err, errlen)) rc = -1;
  else if (st != 0) {
    snprintf(err, errlen, "nsys's report importer %s cannot start (%s): %s", importer,
             st < 0 ? cerr : "it exited with an error", out && out[0] ? out : "no output");
    rc = -1;
  }
  free(out);
  return rc;
}

static long long tree_bytes(const char *path, int depth) {
  struct stat st;
  if (lstat(path, &st) != 0) return 0;
  if (!S_ISDIR(st.st_mode)) return S_ISREG(st.st_mode) ? (long long)st.st_size : 0;
  if (depth > 8) return 0;
  DIR *d = opendir(path);
  if (!d) return 0;
  long long total = 0;
  struct dirent *de;
  while ((de = readdir(d))) {
    if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
    char child[PATH_MAX];
    snprintf(child, sizeof child, "%s/%s", path, de->d_name);
    total += tree_bytes(child, depth + 1);
  }
  closedir(d);
  return total;
}

long long ke_nsys_capture_bytes(const ke_nsys_opts *o) {
  long long total = o->tmp_dir ? tree_bytes(o->tmp_dir, 0) : 0;
  static const char *const ext[] = {".qdstrm", ".nsys-rep"};
  for (size_t i = 0; i < 2; i++) {
    char p[PATH_MAX];
    snprintf(p, sizeof p, "%s%s", o->output, ext[i]);
    total += tree_bytes(p, 0);
  }
  return total;
}

int ke_nsys_export(const char *bin, const char *rep, const char *sqlite, const char *log_path,
                   double timeout_s, char *err, size_t errlen) {
  char output_opt[1100];
  snprintf(output_opt, sizeof output_opt, "--output=%s", sqlite);
  const char *argv[] = {bin, "export", "--type=sqlite", "--force-overwrite=true", output_opt, rep, NULL};
  char cerr[512] = "";
  int st = ke_run_command(argv, NULL, NULL, log_path, timeout_s, cerr, sizeof cerr);
  if (st != 0) {
    if (st < 0) snprintf(err, errlen, "nsys export: %s", cerr);
    else snprintf(err, errlen, "'nsys export' exited with status %d (see %s)", st, log_path);
    return -1;
  }
  if (!ke_exists(sqlite)) {
    snprintf(err, errlen, "'nsys export' wrote no '%s' (see %s)", sqlite, log_path);
    return -1;
  }
  return 0;
}

int ke_nsys_finish(const ke_nsys_opts *o, ke_nsys_result *r) {
  snprintf(r->rep_path, sizeof r->rep_path, "%s.nsys-rep", o->output);
  snprintf(r->sqlite_path, sizeof r->sqlite_path, "%s.sqlite", o->output);
  char qdstrm[1100];
  snprintf(qdstrm, sizeof qdstrm, "%s.qdstrm", o->output);
  if (!ke_exists(r->rep_path) && ke_exists(qdstrm)) {
    char importer[PATH_MAX];
    if (find_importer(o->bin, importer, sizeof importer)) {
      snprintf(r->error, sizeof r->error,
               "nsys left only '%s': its QdstrmImporter was not found beside '%s'; convert it with "
               "'<nsys-install>/host-linux-x64/QdstrmImporter -i %s' and run 'knobengine summarize' "
               "on the export, or install a complete Nsight Systems",
               qdstrm, o->bin, qdstrm);
      return -1;
    }
    const char *argv[] = {importer, "-i", qdstrm, NULL};
    char cerr[512] = "";
    nsys_env_buf envbuf;
    int st = ke_run_command(argv, nsys_env(o, &envbuf), NULL, o->log_path, o->timeout_s, cerr, sizeof cerr);
    if (st != 0 || !ke_exists(r->rep_path)) {
      snprintf(r->error, sizeof r->error, "'%s -i %s' failed (%s; see %s)", importer, qdstrm,
               st < 0 ? cerr : "no report written", o->log_path);
      return -1;
    }
    unlink(qdstrm);
  }
  if (!ke_exists(r->rep_path)) {
    snprintf(r->error, sizeof r->error, "nsys wrote no report '%s' (see %s)", r->rep_path, o->log_path);
    return -1;
  }
  double t0 = ke_now();
  if (ke_nsys_export(o->bin, r->rep_path, r->sqlite_path, o->log_path, o->timeout_s, r->error,
                     sizeof r->error))
    return -1;
  r->export_s = ke_now() - t0;
  r->ok = 1;
  return 0;
}
