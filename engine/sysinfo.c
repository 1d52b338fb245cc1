/* sysinfo.c - see sysinfo.h. */
#include "sysinfo.h"

#include <curl/curl.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

void ke_sysinfo_read(ke_sysinfo *out) {
  memset(out, 0, sizeof *out);
  struct utsname u;
  if (uname(&u) == 0) {
    snprintf(out->hostname, sizeof out->hostname, "%s", u.nodename);
    snprintf(out->os_name, sizeof out->os_name, "%s", u.sysname);
    snprintf(out->kernel_release, sizeof out->kernel_release, "%s", u.release);
    snprintf(out->kernel_version, sizeof out->kernel_version, "%s", u.version);
    snprintf(out->machine, sizeof out->machine, "%s", u.machine);
  }
  out->online_cpus = sysconf(_SC_NPROCESSORS_ONLN);
  const curl_version_info_data *c = curl_version_info(CURLVERSION_NOW);
  if (c && c->version) snprintf(out->curl_version, sizeof out->curl_version, "%s", c->version);
  snprintf(out->sqlite_version, sizeof out->sqlite_version, "%s", sqlite3_libversion());
}
