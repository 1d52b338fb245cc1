/* lua_host - runs a Lua test file in the same Lua host as knobengine (knob, cjson and
 * the bundled modules available): lua_host FILE [ARGS...]. Exit 0 when it ran without
 * error. */
#include <curl/curl.h>
#include <stdio.h>

#include "host.h"
#include "supervise.h"

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: lua_host FILE [ARGS...]\n");
    return 2;
  }
  curl_global_init(CURL_GLOBAL_DEFAULT);
  ke_signals_install();
  char err[1024];
  lua_State *L = ke_host_open(err, sizeof err);
  if (!L) {
    fprintf(stderr, "lua_host: %s\n", err);
    return 1;
  }
  int rc = ke_host_run_file(L, argv[1], argc - 1, argv + 1);
  lua_close(L);
  curl_global_cleanup();
  return rc;
}
