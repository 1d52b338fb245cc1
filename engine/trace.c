/* trace.c - see trace.h. */
#include "trace.h"

#include <stdio.h>

int ke_trace_summary(const char *sqlite_path, const ke_trace_opts *opts, char **json_out,
                     char *err, size_t errlen) {
  (void)opts;
  *json_out = NULL;
  snprintf(err, errlen, "%s: trace parsing is not available in this build", sqlite_path);
  return -1;
}
