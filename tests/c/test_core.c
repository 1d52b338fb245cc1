/* Unit tests for the C core: JSON reader, SSE parser, statistics, the metric table,
 * file helpers, supervision, port checks and socket receive timestamps. Linked with the core
 * library alone (no Lua). Waits poll for the event with a deadline. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "clock.h"
#include "fsutil.h"
#include "json.h"
#include "metrics.h"
#include "prom.h"
#include "replay.h"
#include "rxtime.h"
#include "sha256.h"
#include "sse.h"
#include "text.h"
#include "stats.h"
#include "supervise.h"

static void test_json(void) {
  kj_doc doc = {0};
  char err[128];
  const char *text = "{\"a\": [1, 2.5, -3e2], \"s\": \"x\\ny\\u00e9\\ud83d\\ude00\", \"t\": true, \"n\": null}";
  kj_value *v = kj_parse(&doc, text, strlen(text), err, sizeof err);
  CHECK(v && v->type == KJ_OBJ && v->len == 4);
  const kj_value *a = kj_get(v, "a");
  CHECK(a && a->type == KJ_ARR && a->len == 3);
  CHECK_NEAR(a->child->next->next->num, -300, 0);
  CHECK_STR(kj_get(v, "s")->str, "x\ny\xc3\xa9\xf0\x9f\x98\x80");
  CHECK(kj_get(v, "t")->boolean == 1);
  CHECK(kj_get(v, "n")->type == KJ_NULL);
  CHECK(kj_get(v, "missing") == NULL);
  kj_doc_free(&doc);

  /* escaped quotes and backslash runs next to the closing quote; numbers on both paths
   * (integers of up to 15 digits are read without strtod, the rest with it) */
  text = "[\"a\\\"b\", \"c\\\\\", \"\\\\\\\"\", \"plain text, no escapes\", 0, -0, 42, -17, "
         "999999999999999, 1234567890123456789, 0.5, 1e3, -2.5E-1]";
  v = kj_parse(&doc, text, strlen(text), err, sizeof err);
  CHECK(v && v->type == KJ_ARR && v->len == 13);
  const kj_value *e = v ? v->child : NULL;
  const char *want_str[] = {"a\"b", "c\\", "\\\"", "plain text, no escapes"};
  for (int i = 0; i < 4 && e; i++, e = e->next) CHECK_STR(e->str, want_str[i]);
  const double want_num[] = {0, -0.0, 42, -17, 999999999999999.0, 1234567890123456789.0, 0.5, 1000, -0.25};
  for (int i = 0; i < 9 && e; i++, e = e->next) CHECK(e->type == KJ_NUM && e->num == want_num[i]);
  kj_doc_free(&doc);

  const char *bad[] = {"{", "[1,]", "{\"a\" 1}", "\"abc", "tru", "1 2", "{\"a\":\"\x01\"}", "-", "[01x]",
                       "\"ab\\\"", "[\"a\\q\"]", "[\"\\u12\"]", "[1-2]"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    CHECK(kj_parse(&doc, bad[i], strlen(bad[i]), err, sizeof err) == NULL);
    CHECK(strstr(err, "at byte") != NULL);
    kj_doc_free(&doc);
  }
  /* a reset doc parses again (one kept block; a large one is dropped, leak checks see it) */
  for (int round = 0; round < 3; round++) {
    char big[100000];
    size_t n = 0;
    big[n++] = '[';
    int items = round == 1 ? 5000 : 2;
    for (int i = 0; i < items; i++) n += (size_t)snprintf(big + n, sizeof big - n, "%s\"s%d\"", i ? "," : "", i);
    big[n++] = ']';
    v = kj_parse(&doc, big, n, err, sizeof err);
    CHECK(v && v->type == KJ_ARR && (int)v->len == items);
    CHECK_STR(v ? v->child->str : "", "s0");
    kj_doc_reset(&doc);
  }
  kj_doc_free(&doc);
  /* nesting is bounded rather than recursing without end */
  char deep[300];
  memset(deep, '[', sizeof deep);
  CHECK(kj_parse(&doc, deep, sizeof deep, err, sizeof err) == NULL);
  kj_doc_free(&doc);

  kbuf b = {0};
  kbuf_json_string(&b, "a\"b\\c\n\x01", 7);
  CHECK_STR(b.data, "\"a\\\"b\\\\c\\n\\u0001\"");
  kbuf_free(&b);
}

typedef struct { char events[16][64]; int n; } sse_log;

static int collect(void *ud, const char *data, size_t len) {
  sse_log *l = ud;
  if (l->n < 16) snprintf(l->events[l->n++], 64, "%.*s", (int)len, data);
  return 0;
}

/* Empty events are not dispatched (WHATWG); a line or an event over SSE_MAX_LINE is an
 * error that says which. */
static void test_sse_edges(void) {
  const char *empties = "data:\n\ndata: \n\ndata\r\n\r\ndata:\r\rdata: x\n\n";
  size_t n = strlen(empties);
  for (size_t split = 0; split <= n; split++) {
    sse_parser p;
    sse_init(&p);
    sse_log l = {0};
    CHECK(sse_feed(&p, empties, split, collect, &l) == 0);
    CHECK(sse_feed(&p, empties + split, n - split, collect, &l) == 0);
    CHECK(l.n == 1);
    CHECK_STR(l.events[0], "x");
    CHECK(!sse_pending(&p));
    sse_free(&p);
  }
  size_t big = SSE_MAX_LINE / 2 + 16;
  char *line = malloc(big + 8);
  CHECK(line != NULL);
  if (!line) return;
  memcpy(line, "data: ", 6);
  memset(line + 6, 'x', big - 6);
  line[big] = '\n';
  sse_parser p;
  sse_init(&p);
  sse_log l = {0};
  CHECK(sse_feed(&p, line, big + 1, collect, &l) == 0); /* half the limit: fine */
  CHECK(sse_feed(&p, line, big + 1, collect, &l) == -1 && p.too_long == SSE_EVENT_TOO_LONG);
  sse_free(&p);
  sse_init(&p);
  CHECK(sse_feed(&p, line, big, collect, &l) == 0);
  CHECK(sse_feed(&p, line, big, collect, &l) == -1 && p.too_long == SSE_LINE_TOO_LONG);
  CHECK(l.n == 0);
  sse_free(&p);
  free(line);
}

/* When a server's usage.completion_tokens is believed (replay.h). */
static void test_usage_plausible(void) {
  CHECK(ke_usage_plausible(4, 4, 20));
  CHECK(ke_usage_plausible(8 * 4 + 16, 4, 20));     /* several tokens per chunk */
  CHECK(!ke_usage_plausible(8 * 4 + 17, 4, 20));
  CHECK(ke_usage_plausible(400, 4, 400));            /* at most one a byte, whichever allows more */
  CHECK(!ke_usage_plausible(1e9, 4, 20));
  CHECK(ke_usage_plausible(42, 100, 400) && !ke_usage_plausible(41, 100, 400)); /* too few for the chunks */
  CHECK(ke_usage_plausible(0, 16, 16));
  CHECK(!ke_usage_plausible(-1, 4, 20) && !ke_usage_plausible(2.5, 4, 20) && !ke_usage_plausible(1e300, 4, 1e300));
  CHECK(ke_usage_plausible(30, 0, 14) && !ke_usage_plausible(31, 0, 14)); /* not streamed: the text alone */
}

/* The metric table (metrics.h): each row's type fits its combine and push rules, groups
 * are consecutive, keys are unique, objectives are top-level numbers. */
static int combine_fits(const ke_metric_desc *d) {
  switch (d->combine) {
  case KE_COMBINE_SUM: return d->type != KE_TYPE_TEXT;
  case KE_COMBINE_MEDIAN: case KE_COMBINE_FAILED_SHARE: return d->type == KE_TYPE_NUM;
  case KE_COMBINE_ALL_MET: return d->type == KE_TYPE_INT;
  case KE_COMBINE_FIRST_MISMATCH: return d->type != KE_TYPE_TEXT;
  case KE_COMBINE_FIRST_TEXT: return d->type == KE_TYPE_TEXT;
  }
  return 0;
}

static int push_fits(const ke_metric_desc *d) {
  int integer = d->type == KE_TYPE_INT || d->type == KE_TYPE_I64 || d->type == KE_TYPE_LONG;
  switch (d->push) {
  case KE_PUSH_INT: case KE_PUSH_COUNT: return integer;
  case KE_PUSH_NUM: case KE_PUSH_WHOLE: return d->type == KE_TYPE_NUM;
  case KE_PUSH_MET: return d->type == KE_TYPE_INT;
  case KE_PUSH_TEXT: return d->type == KE_TYPE_TEXT;
  case KE_PUSH_NONE: return 1;
  }
  return 0;
}

static void test_metric_table_shape(void) {
  int group_seen[KE_GROUP_COUNT] = {0};
  char objectives[512] = "";
  for (size_t i = 0; i < ke_metric_count; i++) {
    const ke_metric_desc *d = &ke_metric_table[i];
    if (!combine_fits(d) || !push_fits(d)) fprintf(stderr, "metric %s: its type does not fit its rules\n", d->member);
    CHECK(combine_fits(d) && push_fits(d));
    CHECK(d->key && d->key[0] && d->group >= 0 && d->group < KE_GROUP_COUNT);
    /* a group's rows are consecutive: one seen before must be the previous row's */
    if (d->group != KE_GROUP_TOP && group_seen[d->group]) CHECK(ke_metric_table[i - 1].group == d->group);
    group_seen[d->group] = 1;
    for (size_t j = 0; j < i; j++)
      if (ke_metric_table[j].group == d->group) CHECK(strcmp(ke_metric_table[j].key, d->key) != 0);
    if (d->objective) {
      CHECK(d->group == KE_GROUP_TOP && d->push == KE_PUSH_NUM);
      snprintf(objectives + strlen(objectives), sizeof objectives - strlen(objectives), "%s ", d->key);
    }
    if (i > 0) CHECK(d->offset > ke_metric_table[i - 1].offset); /* the struct follows the table */
  }
  CHECK(ke_metric_groups[KE_GROUP_TOP].key == NULL);
  for (int g = 1; g < KE_GROUP_COUNT; g++) {
    CHECK(ke_metric_groups[g].key != NULL && group_seen[g]);
    for (size_t j = 0; j < ke_metric_count; j++) /* a group's key is no metric's */
      if (ke_metric_table[j].group == KE_GROUP_TOP) CHECK(strcmp(ke_metric_table[j].key, ke_metric_groups[g].key) != 0);
  }
  CHECK_STR(objectives, "error_rate p50_latency_ms p95_latency_ms p99_latency_ms mean_latency_ms tokens_per_s "
                        "requests_per_s goodput slo_attainment_pct joules_per_output_token tokens_per_joule ");
}

/* Three repeats with distinct values in every metric (30, 10, 20 plus the row number),
 * token_mismatch 0, 2, 5 and slo_met as given; every text "", "second", "third". */
static void fill_repeats(ke_metrics *reps, int n, const int *slo_met) {
  static const double base[3] = {30, 10, 20};
  memset(reps, 0, sizeof *reps * (size_t)n);
  for (int k = 0; k < n; k++) {
    for (size_t i = 0; i < ke_metric_count; i++) ke_metric_set(&reps[k], &ke_metric_table[i], base[k] + (double)i);
    reps[k].token_mismatch = (int[]){0, 2, 5}[k];
    reps[k].slo_met = slo_met[k];
    for (size_t i = 0; i < ke_metric_count; i++)
      if (ke_metric_table[i].type == KE_TYPE_TEXT)
        snprintf((char *)&reps[k] + ke_metric_table[i].offset, sizeof(ke_metric_text), "%s",
                 (const char *[]){"", "second", "third"}[k]);
  }
}

/* What a row's rule gives for the repeats, worked out here independently. */
static double expected_combine(const ke_metrics *reps, int n, const ke_metric_desc *d) {
  double v[3], sum = 0;
  for (int k = 0; k < n; k++) sum += (v[k] = ke_metric_num(&reps[k], d));
  switch (d->combine) {
  case KE_COMBINE_SUM: return sum;
  case KE_COMBINE_MEDIAN:
    ke_sort_doubles(v, (size_t)n);
    return n == 3 ? v[1] : (v[0] + v[1]) / 2;
  case KE_COMBINE_FAILED_SHARE: {
    double failed = 0, all = 0;
    for (int k = 0; k < n; k++) failed += reps[k].failed, all += reps[k].request_count;
    return failed / all;
  }
  case KE_COMBINE_ALL_MET: {
    double met = v[0];
    for (int k = 0; k < n; k++) met = v[k] == 0 ? 0 : met;
    return met;
  }
  case KE_COMBINE_FIRST_MISMATCH:
    for (int k = 0; k < n; k++)
      if (reps[k].token_mismatch) return v[k];
    return 0;
  case KE_COMBINE_FIRST_TEXT: return NAN; /* checked as text */
  }
  CHECK(!"a combine rule without a test");
  return NAN;
}

static void check_combine(int n, const int *slo_met) {
  ke_metrics reps[3], out;
  fill_repeats(reps, n, slo_met);
  ke_metrics_combine(reps, n, &out);
  for (size_t i = 0; i < ke_metric_count; i++) {
    const ke_metric_desc *d = &ke_metric_table[i];
    if (d->combine == KE_COMBINE_FIRST_TEXT) {
      CHECK_STR(ke_metric_str(&out, d), "second");
      continue;
    }
    double want = expected_combine(reps, n, d), got = ke_metric_num(&out, d);
    if (!(fabs(got - want) < 1e-9)) fprintf(stderr, "metric %s over %d repeats: %g, not %g\n", d->member, n, got, want);
    CHECK_NEAR(got, want, 1e-9);
  }
}

/* Every metric combines over repeats by its rule: medians are the middle repeat (the
 * mean of two), counts sum, the token-mismatch example is the second repeat's, the SLO
 * holds only when it held in every repeat. */
static void test_metric_combine(void) {
  check_combine(3, (int[]){1, 1, 1});
  check_combine(3, (int[]){1, 0, 1});
  check_combine(3, (int[]){-1, -1, -1});
  check_combine(2, (int[]){1, 1, 1});
  ke_metrics reps[3], out;
  fill_repeats(reps, 3, (int[]){1, 0, 1});
  ke_metrics_combine(reps, 3, &out);
  CHECK(out.request_count == 30 + 10 + 20 + 3 * 0 && out.slo_met == 0);
  CHECK(out.mismatch_chunks == reps[1].mismatch_chunks && out.token_mismatch == 7);
  CHECK_NEAR(out.latency_p50, reps[2].latency_p50, 0);
  ke_metrics_combine(reps, 0, &out);
  CHECK(out.request_count == 0 && out.first_error[0] == '\0');
}

static void test_sse(void) {
  const char *stream =
      ": comment\r\n"
      "data: {\"a\":1}\r\n\r\n"
      "event: x\ndata:first\ndata: second\n\n"
      "id: 3\n\n"      /* no data: no event */
      "data: [DONE]\r\r";
  /* every split point gives the same events */
  size_t n = strlen(stream);
  for (size_t split = 0; split <= n; split++) {
    sse_parser p;
    sse_init(&p);
    sse_log l = {0};
    CHECK(sse_feed(&p, stream, split, collect, &l) == 0);
    CHECK(sse_feed(&p, stream + split, n - split, collect, &l) == 0);
    CHECK(l.n == 3);
    CHECK_STR(l.events[0], "{\"a\":1}");
    CHECK_STR(l.events[1], "first\nsecond");
    CHECK_STR(l.events[2], "[DONE]");
    CHECK(!sse_pending(&p));
    sse_free(&p);
  }
  /* byte by byte */
  sse_parser p;
  sse_init(&p);
  sse_log l = {0};
  for (size_t i = 0; i < n; i++) sse_feed(&p, stream + i, 1, collect, &l);
  CHECK(l.n == 3);
  sse_free(&p);
  /* a cut-off stream is reported as pending */
  sse_init(&p);
  sse_feed(&p, "data: {\"a\"", 10, collect, &l);
  CHECK(sse_pending(&p));
  sse_free(&p);
  test_sse_edges();
}

static void test_stats(void) {
  double x[] = {5, 1, 4, 2, 3};
  ke_sort_doubles(x, 5);
  CHECK_NEAR(ke_percentile_sorted(x, 5, 50), 3, 1e-12);
  CHECK_NEAR(ke_percentile_sorted(x, 5, 95), 4.8, 1e-12);
  CHECK_NEAR(ke_percentile_sorted(x, 5, 0), 1, 1e-12);
  CHECK_NEAR(ke_percentile_sorted(x, 5, 100), 5, 1e-12);
  double y[] = {10, 20};
  CHECK_NEAR(ke_percentile_sorted(y, 2, 99), 19.9, 1e-12);
  CHECK(isnan(ke_percentile_sorted(y, 0, 50)));
  CHECK_NEAR(ke_mean(x, 5), 3, 1e-12);
}

static void test_fs(void) {
  char dir[] = "/tmp/knobtest.XXXXXX";
  CHECK(mkdtemp(dir) != NULL);
  char path[256], err[256];
  snprintf(path, sizeof path, "%s/a/b/c", dir);
  CHECK(ke_mkdir_p(path, err, sizeof err) == 0);
  CHECK(ke_is_dir(path));
  snprintf(path, sizeof path, "%s/a/file.txt", dir);
  CHECK(ke_write_atomic(path, "one\ntwo\nthree\n", 14, 0600, err, sizeof err) == 0);
  struct stat st;
  CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600);
  char *tail = ke_tail_lines(path, 2);
  CHECK_STR(tail, "two\nthree");
  free(tail);
  /* a link replaced atomically: it points at the new target afterwards */
  char link[256], target[256];
  snprintf(link, sizeof link, "%s/latest", dir);
  CHECK(ke_symlink_atomic("a", link, err, sizeof err) == 0);
  CHECK(ke_symlink_atomic("a/b", link, err, sizeof err) == 0);
  ssize_t tn = readlink(link, target, sizeof target - 1);
  CHECK(tn == 3 && memcmp(target, "a/b", 3) == 0);
  snprintf(path, sizeof path, "%s/missing/x", dir);
  CHECK(ke_write_atomic(path, "x", 1, 0644, err, sizeof err) == -1);
  CHECK(strstr(err, "missing/x") != NULL);
  CHECK(ke_remove_tree(dir, err, sizeof err) == 0);
  CHECK(!ke_exists(dir));
}

/* Polls until exactly `want` processes carry the marker (deadline 10 s). */
static int wait_for_marked(const char *marker, int want) {
  double deadline = ke_now() + 10;
  while (ke_signal_marked(marker, 0) != want) {
    if (ke_now() > deadline) return 0;
    ke_sleep(0.005);
  }
  return 1;
}

/* Polls until the log holds `text` (deadline 10 s). */
static int wait_for_log(const char *log, const char *text) {
  double deadline = ke_now() + 10;
  for (;;) {
    char *tail = ke_tail_lines(log, 50);
    int found = tail && strstr(tail, text);
    free(tail);
    if (found) return 1;
    if (ke_now() > deadline) return 0;
    ke_sleep(0.005);
  }
}

static void test_supervise(void) {
  char log[] = "/tmp/knobtest-log.XXXXXX";
  int fd = mkstemp(log);
  CHECK(fd >= 0);
  close(fd);
  char err[1024];
  ke_proc *p;
  const char *missing[] = {"/nonexistent/server", NULL};
  CHECK(ke_spawn(missing, NULL, log, &p, err, sizeof err) == -1);
  CHECK(strstr(err, "cannot execute '/nonexistent/server'") != NULL);

  /* a process that exits at once: wait_ready reports its status and log */
  const char *fails[] = {"sh", "-c", "echo boom-from-server; exit 3", NULL};
  CHECK(ke_spawn(fails, NULL, log, &p, err, sizeof err) == 0);
  CHECK(ke_wait_ready(p, "http://127.0.0.1:9/health", 5, err, sizeof err) == -1);
  CHECK(strstr(err, "exited with status 3") != NULL);
  CHECK(strstr(err, "boom-from-server") != NULL);
  ke_proc_free(p);

  /* env reaches the child; a marked grandchild that ignores SIGTERM is still stopped */
  const char *env[] = {"KNOB_TEST_MARK=unit-42", NULL};
  const char *sleeper[] = {"sh", "-c", "trap '' TERM; sleep 30 & wait", NULL};
  CHECK(ke_spawn(sleeper, env, log, &p, err, sizeof err) == 0);
  CHECK(wait_for_marked("KNOB_TEST_MARK=unit-42", 2)); /* the shell and its sleep */
  CHECK(ke_stop_marked("KNOB_TEST_MARK=unit-42", 0.3) >= 1);
  CHECK(wait_for_marked("KNOB_TEST_MARK=unit-42", 0));
  CHECK(ke_proc_exited(p));
  ke_proc_free(p);

  /* stop escalates to SIGKILL for a process that ignores SIGTERM */
  const char *stubborn[] = {"sh", "-c", "trap '' TERM; echo trap-set; while :; do sleep 0.05; done", NULL};
  CHECK(ke_spawn(stubborn, NULL, log, &p, err, sizeof err) == 0);
  CHECK(wait_for_log(log, "trap-set"));
  CHECK(ke_proc_stop(p, 0.2) == 1);
  ke_proc_free(p);

  /* a command run to completion: its status, and the log it wrote */
  const char *cmd[] = {"sh", "-c", "echo ran-to-completion; exit 4", NULL};
  CHECK(ke_run_command(cmd, NULL, NULL, log, 10, err, sizeof err) == 4);
  CHECK(wait_for_log(log, "ran-to-completion"));
  const char *slow[] = {"sleep", "30", NULL};
  CHECK(ke_run_command(slow, NULL, NULL, log, 0.2, err, sizeof err) == -1);
  CHECK(strstr(err, "'sleep 30' did not finish within") != NULL);
  /* ... in a working directory of its own (no path ever goes into its arguments) */
  const char *pwd[] = {"sh", "-c", "test \"$(pwd)\" = /tmp", NULL};
  CHECK(ke_run_command(pwd, NULL, "/tmp", log, 10, err, sizeof err) == 0);
  CHECK(ke_run_command(pwd, NULL, "/nonexistent-dir", log, 10, err, sizeof err) == -1);
  CHECK(strstr(err, "cannot enter '/nonexistent-dir' for 'sh'") != NULL);

  /* markers are unique and carry our pid */
  char m1[64], m2[64], want[64];
  ke_marker_new(m1, sizeof m1);
  ke_marker_new(m2, sizeof m2);
  snprintf(want, sizeof want, "%s=%ld-", KE_MARKER_NAME, (long)getpid());
  CHECK(strncmp(m1, want, strlen(want)) == 0 && strcmp(m1, m2) != 0);
  unlink(log);
}

static void test_ports(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  CHECK(bind(fd, (struct sockaddr *)&a, sizeof a) == 0 && listen(fd, 1) == 0);
  socklen_t len = sizeof a;
  getsockname(fd, (struct sockaddr *)&a, &len);
  int port = ntohs(a.sin_port);
  CHECK(ke_port_in_use("127.0.0.1", port) == 1);
  /* the listener's owner: this process, which does not carry the marker asked for */
  long pid = 0;
  char cmd[256] = "";
  CHECK(ke_port_owner(port, "KNOBENGINE_TRIAL=not-this-one", &pid, cmd, sizeof cmd) == 0);
  CHECK(pid == (long)getpid() && strstr(cmd, "test_core") != NULL);
  close(fd);
  CHECK(ke_port_in_use("127.0.0.1", port) == 0);
  CHECK(ke_port_owner(port, "KNOBENGINE_TRIAL=not-this-one", &pid, cmd, sizeof cmd) == -1);
  CHECK(ke_wait_port_free("127.0.0.1", port, 1) == 0);
}

/* The kernel turns receive stamping on a moment after the first socket asks for it:
 * sends a byte until one arrives with a time (deadline 10 s). */
static int wait_for_stamping(int cfd, int sfd) {
  double deadline = ke_now() + 10;
  char peek[64], b;
  for (;;) {
    size_t got = 0;
    if (write(sfd, "s", 1) != 1) return 0;
    double t = 0;
    while (got == 0 && ke_now() < deadline) t = ke_rxtime_peek(cfd, peek, sizeof peek, &got, ke_rxtime_clock_offset());
    if (read(cfd, &b, 1) != 1) return 0;
    if (t > 0) return 1;
    if (ke_now() > deadline) return 0;
    ke_sleep(0.001);
  }
}

/* Data that waited in the socket is dated when it arrived, not when it is looked at,
 * and looking does not consume it. Arrival is bracketed by clock readings taken
 * around the write (loopback delivers within the write call); 1 ms allows for
 * converting the kernel's wall-clock stamp to the monotonic clock. */
static void test_rxtime(void) {
  int lfd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  CHECK(bind(lfd, (struct sockaddr *)&a, sizeof a) == 0 && listen(lfd, 1) == 0);
  getsockname(lfd, (struct sockaddr *)&a, &len);
  int cfd = socket(AF_INET, SOCK_STREAM, 0);
  CHECK(connect(cfd, (struct sockaddr *)&a, sizeof a) == 0);
  int sfd = accept(lfd, NULL, NULL);
  CHECK(sfd >= 0);
  CHECK(ke_rxtime_enable(cfd) == 0);
  char peek[64];
  size_t got = 1;
  CHECK(ke_rxtime_peek(cfd, peek, sizeof peek, &got, ke_rxtime_clock_offset()) == 0 && got == 0);
  CHECK(wait_for_stamping(cfd, sfd));
  struct sockaddr_in local;
  len = sizeof local;
  getsockname(cfd, (struct sockaddr *)&local, &len);
  CHECK(ke_local_port(cfd) == ntohs(local.sin_port));
  const double eps = 0.001;
  double before = ke_now();
  CHECK(write(sfd, "data: x\n\n", 9) == 9);
  double after = ke_now();
  ke_sleep(0.05); /* the test's subject: the data waits before it is looked at */
  double t1 = ke_rxtime_peek(cfd, peek, sizeof peek, &got, ke_rxtime_clock_offset());
  CHECK(got == 9 && t1 >= before - eps && t1 <= after + eps && ke_now() - t1 >= 0.05 - eps);
  double before2 = ke_now();
  CHECK(write(sfd, "data: y\n\n", 9) == 9);
  double after2 = ke_now();
  ke_sleep(0.05);
  /* data that waited while more came: dated by the newest arrival */
  double t2 = ke_rxtime_peek(cfd, peek, sizeof peek, &got, ke_rxtime_clock_offset());
  CHECK(got == 18 && t2 >= before2 - eps && t2 <= after2 + eps);
  char buf[32];
  CHECK(read(cfd, buf, sizeof buf) == 18 && memcmp(buf, "data: x\n\ndata: y\n\n", 18) == 0);
  int pipefd[2];
  CHECK(pipe(pipefd) == 0);
  CHECK(ke_local_port(pipefd[0]) == -1 && ke_rxtime_enable(pipefd[0]) == -1);
  close(pipefd[0]);
  close(pipefd[1]);
  close(sfd);
  close(cfd);
  close(lfd);
}

/* FIPS 180-2 examples, a multi-block input, and a 1 MB file read in chunks. */
static void test_sha256(void) {
  struct { const char *in, *hex; } v[] = {
      {"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
      {"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
      {"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
       "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"}};
  for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
    ke_sha256 s;
    char hex[65];
    ke_sha256_init(&s);
    ke_sha256_update(&s, v[i].in, strlen(v[i].in));
    ke_sha256_hex(&s, hex);
    CHECK_STR(hex, v[i].hex);
  }
  char path[] = "/tmp/knob-sha-XXXXXX", hex[65], err[256];
  int fd = mkstemp(path);
  CHECK(fd >= 0);
  static char a[1000000];
  memset(a, 'a', sizeof a);
  CHECK(write(fd, a, sizeof a) == (ssize_t)sizeof a);
  close(fd);
  CHECK(ke_sha256_file(path, hex, err, sizeof err) == 0);
  CHECK_STR(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
  unlink(path);
  CHECK(ke_sha256_file(path, hex, err, sizeof err) == -1 && strstr(err, path) != NULL);
}

/* Text from a server made one line of valid UTF-8: controls to spaces, bad bytes to
 * U+FFFD, never a character cut at the end of the buffer. */
static void test_text_line(void) {
  char out[64];
  const char in[] = "ok \xC3\xA9 \xFF\x01\x1B[2J\n\xC0\xAF \xED\xA0\x80 \xF4\x90\x80\x80 \xE2\x82";
  ke_text_line(in, sizeof in - 1, out, sizeof out);
  CHECK_STR(out, "ok \xC3\xA9 \xEF\xBF\xBD  [2J \xEF\xBF\xBD\xEF\xBF\xBD "
                 "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD \xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD "
                 "\xEF\xBF\xBD\xEF\xBF\xBD");
  /* a two-byte character that does not fit whole is left out */
  CHECK(ke_text_line("ab\xC3\xA9", 4, out, 4) == 2 && strcmp(out, "ab") == 0);
  CHECK(ke_utf8_sequence((const unsigned char *)"\xF0\x9F\x98\x80", 4) == 4);
  CHECK(ke_utf8_sequence((const unsigned char *)"\xE0\x80\x80", 3) == 0); /* overlong */
}

/* The Prometheus text format (prom.h): types, labels and their escapes, special values,
 * timestamps, comments; a malformed line refuses the document, naming the line. */
typedef struct { kbuf out; int n; } prom_seen;

static int prom_collect(void *ud, const ke_prom_sample *s) {
  prom_seen *p = ud;
  kbuf_printf(&p->out, "%s|%s|%s|%g|%lld\n", ke_prom_type_name(s->type), s->name, s->labels, s->value,
              s->has_timestamp ? s->timestamp_ms : -1);
  p->n++;
  return 0;
}

static void test_prom(void) {
  const char *doc =
      "# HELP vllm:num_requests_running Number of requests in model execution batches.\n"
      "# TYPE vllm:num_requests_running gauge\n"
      "vllm:num_requests_running{model_name=\"m\",engine=\"0\"} 3\n"
      "# TYPE vllm:prompt_tokens counter\n"
      "vllm:prompt_tokens_total{model_name=\"a \\\"q\\\" \\\\ \\n b\",} 1.5e3 1700000000000\n"
      "# TYPE lat histogram\n"
      "lat_bucket{le=\"0.1\"} 2\r\n"
      "lat_bucket{le=\"+Inf\"} 5\n"
      "lat_sum 0.75\n"
      "lat_count 5\n"
      "   \n"
      "# a comment\n"
      "other NaN\n"
      "neg -Inf\n";
  prom_seen p = {{0}, 0};
  char err[128] = "";
  CHECK(ke_prom_parse(doc, strlen(doc), prom_collect, &p, err, sizeof err) == 0);
  CHECK_STR(err, "");
  CHECK(p.n == 8);
  CHECK_STR(p.out.data,
            "gauge|vllm:num_requests_running|model_name=\"m\",engine=\"0\"|3|-1\n"
            "counter|vllm:prompt_tokens_total|model_name=\"a \\\"q\\\" \\\\ \\n b\"|1500|1700000000000\n"
            "histogram|lat_bucket|le=\"0.1\"|2|-1\n"
            "histogram|lat_bucket|le=\"+Inf\"|5|-1\n"
            "histogram|lat_sum||0.75|-1\n"
            "histogram|lat_count||5|-1\n"
            "untyped|other||nan|-1\n"
            "untyped|neg||-inf|-1\n");
  kbuf_free(&p.out);
  const char *bad[][2] = {{"a 1\nb{x=1} 2\n", "line 2: a label value must be quoted"},
                          {"a{x=\"1} 1\n", "line 1: unterminated label value"},
                          {"a{x=\"\\q\"} 1\n", "line 1: unknown escape in a label value"},
                          {"a\n", "line 1: bad or missing value"},
                          {"a 1 2 3\n", "line 1: text after the timestamp"},
                          {"a 1 NaN\n", "line 1: bad timestamp"},
                          {"a 1 1e300\n", "line 1: bad timestamp"},
                          {"a one\n", "line 1: bad or missing value"},
                          {"# TYPE a gaugeish\n", "line 1: unknown metric type"},
                          {"9a 1\n", "line 1: bad metric name"},
                          {"a{x=\"1\" y=\"2\"} 1\n", "line 1: labels must be separated by ',' and closed by '}'"}};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    prom_seen q = {{0}, 0};
    CHECK(ke_prom_parse(bad[i][0], strlen(bad[i][0]), prom_collect, &q, err, sizeof err) == -1);
    CHECK_STR(err, bad[i][1]);
    kbuf_free(&q.out);
  }
}

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  test_text_line();
  test_json();
  test_sse();
  test_prom();
  test_usage_plausible();
  test_stats();
  test_metric_table_shape();
  test_metric_combine();
  test_fs();
  test_supervise();
  test_ports();
  test_rxtime();
  test_sha256();
  CHECK_DONE();
}
