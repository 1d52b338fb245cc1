/* sysinfo.h - the machine and the libraries this process runs with (for provenance).
 *
 * Ownership: fills caller-owned structs; the strings are copied into fixed buffers
 * (truncated when longer). Errors: none; a value that cannot be read is "". */
#ifndef KNOB_SYSINFO_H
#define KNOB_SYSINFO_H

typedef struct {
  char hostname[256], os_name[64], kernel_release[128], kernel_version[256], machine[64];
  long online_cpus; /* -1 when unknown */
  char curl_version[64], sqlite_version[64];
} ke_sysinfo;

void ke_sysinfo_read(ke_sysinfo *out);

#endif
