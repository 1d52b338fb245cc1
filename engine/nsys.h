/* nsys.h - running a server under Nsight Systems and exporting the report.
 *
 * capture "session" (default): the server starts under `nsys launch --session-new`,
 * and only the workload window is recorded (`nsys start` ... `nsys stop`). capture
 * "process": the whole server runs under `nsys profile`. Export: `nsys export --type
 * sqlite`. When nsys leaves only a .qdstrm (its importer is not where it looks, as
 * with Debian's package), the QdstrmImporter shipped beside nsys converts it.
 * Ownership: strings in ke_nsys_opts are the caller's; ke_nsys_result is plain data.
 * Errors: failures are reported in ke_nsys_result.error, never by exiting. */
#ifndef KNOB_NSYS_H
#define KNOB_NSYS_H
#include <stddef.h>

typedef enum {
  KE_CAPTURE_SESSION, /* `nsys launch` + `nsys start`/`stop`: only the workload window */
  KE_CAPTURE_PROCESS  /* `nsys profile` around the whole server */
} ke_nsys_capture;

typedef struct {
  const char *bin;     /* "nsys" or a path */
  const char *trace;   /* -t value, e.g. "cuda,nvtx,osrt" */
  const char *const *extra_args;   /* for `nsys launch` / `nsys profile` */
  const char *const *capture_args; /* for `nsys start` / `nsys profile` */
  ke_nsys_capture capture;
  const char *output;  /* report path without extension: <output>.nsys-rep */
  const char *session; /* unique session name */
  const char *log_path;
  double timeout_s;    /* for each nsys command */
  const char *cuda_graph_trace; /* "node" or "graph" (--cuda-graph-trace), or NULL */
  const char *tmp_dir; /* TMPDIR of nsys and the server it runs, an existing directory
                          (absolute: ke_evaluate makes it so): where nsys keeps the capture
                          until it writes the report (the size guard watches it) */
  int capture_requests; /* > 0: capture only the first N measured requests */
  double max_trace_mb;  /* > 0: stop the capture once its files pass this size */
} ke_nsys_opts;

typedef struct {
  int ok;               /* report and sqlite exist */
  char error[1024];
  char note[512];       /* what was done differently (e.g. capture fallback), or "" */
  char partial[256];    /* why the capture was stopped early (size guard, capture_requests), or "" */
  int size_limited;     /* the size guard (max_trace_mb) stopped the capture */
  long long capture_bytes; /* the largest size the capture reached while it ran */
  char rep_path[1024], sqlite_path[1024];
  double export_s;
} ke_nsys_result;

/* The server argv wrapped to run under nsys. argv borrows from opts and server_argv
 * and owns the option strings; free with ke_nsys_argv_free. Returns 0 or -1 (OOM). */
typedef struct {
  const char **argv;
  char *owned[4];
} ke_nsys_argv;
int ke_nsys_wrap_argv(const ke_nsys_opts *o, const char *const *server_argv, ke_nsys_argv *out);
void ke_nsys_argv_free(ke_nsys_argv *a);
/* 1 if nsys will find its QdstrmImporter itself (it looks beside the real nsys
 * binary and in ../host-linux-x64). Without it, `nsys stop` of a session hangs after
 * writing the .qdstrm, so the engine captures the whole process instead. */
int ke_nsys_importer_visible(const char *bin);
/* Before a capture: finds the QdstrmImporter that ships with nsys (beside it, in every
 * sibling directory of its installation such as host-linux-x64 or the Nsight Compute
 * bundle's linux-desktop-glibc_2_11_3-x64, and the usual install roots) and checks
 * that it starts (`--help`). Returns 0 with its path in importer, or -1 with one line
 * saying what is missing: the importer, or the shared library it cannot load and the
 * Debian/Ubuntu package that provides it. */
int ke_nsys_check_importer(const char *bin, char *importer, size_t len, char *err, size_t errlen);
/* Bytes the capture occupies now: the files under tmp_dir and <output>.* (nsys keeps
 * the raw capture in its TMPDIR until it writes the report). */
long long ke_nsys_capture_bytes(const ke_nsys_opts *o);
/* Session mode: starts and stops the capture of the running session. */
int ke_nsys_start(const ke_nsys_opts *o, char *err, size_t errlen);
int ke_nsys_stop(const ke_nsys_opts *o, char *err, size_t errlen);
/* Ends the session, leaving the server running for the caller to stop (best effort). */
void ke_nsys_shutdown(const ke_nsys_opts *o);
/* Makes <output>.nsys-rep exist (importing a leftover .qdstrm) and exports it to sqlite. */
int ke_nsys_finish(const ke_nsys_opts *o, ke_nsys_result *r);
/* Exports rep to sqlite (replacing it). */
int ke_nsys_export(const char *bin, const char *rep, const char *sqlite, const char *log_path,
                   double timeout_s, char *err, size_t errlen);

#endif
