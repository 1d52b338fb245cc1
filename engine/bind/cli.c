/* cli.c - knobengine's entry point: process-wide setup, then the Lua entry module
 * (lua/knobengine/main.lua) parses the command line and runs the mode. */
#include <curl/curl.h>
#include <lua.h>
#include <stdio.h>

#include "host.h"
#include "supervise.h"

int main(int argc, char **argv) {
  /* stdout carries the strict result format. Fully buffered: the engine flushes after
   * every complete line itself (so a crash or a kill never leaves a partial line behind
   * complete ones) and sees the flush fail on a full disk or a closed pipe, which line
   * buffering would hide inside the write */
  setvbuf(stdout, NULL, _IOFBF, 1 << 16);
  if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
    fprintf(stderr, "knobengine: cannot initialise libcurl\n");
    return 1;
  }
  ke_signals_install();
  /* servers a killed knobengine could not stop (see ke_reap_orphans) */
  int reaped = ke_reap_orphans();
  if (reaped > 0)
    fprintf(stderr, "knobengine: killed %d process(es) left running by an earlier knobengine that was killed\n", reaped);
  char err[1024];
  lua_State *L = ke_host_open(err, sizeof err);
  if (!L) {
    fprintf(stderr, "knobengine: %s\n", err);
    return 1;
  }
  int code = ke_host_run(L, "knobengine.main", argc, argv);
  lua_close(L); /* collects process handles: any server still running is stopped */
  curl_global_cleanup();
  return code;
}
