/* trace.h - summary of an Nsight Systems SQLite export.
 *
 * Reads the file read-only (immutable=1), selects columns by name and treats a
 * missing table as no data. The summary is produced as JSON text (the object written
 * to trace_summary.json, with nvtx_phases inside), so the CLI and Lua share it.
 * Ownership: *json_out is malloc'd; the caller frees it. Errors: -1 with a message
 * naming the file in err when it cannot be opened or is not an SQLite database. */
#ifndef KNOB_TRACE_H
#define KNOB_TRACE_H
#include <stddef.h>

typedef struct {
  const char *const *phases; /* NVTX labels to report, NULL-terminated */
  int short_kernel_names;    /* group by base name rather than demangled name */
  int top_kernels;           /* how many kernels to list (default 5) */
} ke_trace_opts;

int ke_trace_summary(const char *sqlite_path, const ke_trace_opts *opts, char **json_out,
                     char *err, size_t errlen);

#endif
