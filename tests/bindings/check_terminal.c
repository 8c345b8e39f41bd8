/* check_terminal.c: what luact shows on a terminal while it waits (issue
 * 13, item 4): the status line of an LLM call in flight (waiting, retry N
 * of M, streaming), its colour (TERM, NO_COLOR), nothing of it on a pipe
 * or with --quiet, workflows' live lines by default, and an unknown cost
 * printed as unknown. The built luact runs on a pseudo-terminal against
 * lc-mockllm; every wait is on output, never on time. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util_common.h"
#include "util_mock.h"

static char lua_path[128];
static char buf[65536];
static size_t len;

static void setup(void) {
  snprintf(lua_path, sizeof lua_path, "/tmp/lc_term_%ld.lua", (long)getpid());
  buf[0] = '\0';
  len = 0;
}

static void teardown(void) { unlink(lua_path); }

static void write_script(const char *code) {
  FILE *f = fopen(lua_path, "w");
  ck_assert_ptr_nonnull(f);
  fputs(code, f);
  ck_assert_int_eq(fclose(f), 0);
}

/* Reads fd into buf until it holds want (NULL: until EOF). Returns 0, or
 * -1 at EOF (a pty master reads EIO once the child has gone). */
static int read_until(int fd, const char *want) {
  while (!want || !strstr(buf, want)) {
    struct pollfd p = {fd, POLLIN, 0};
    if (poll(&p, 1, -1) < 0 && errno == EINTR) continue;
    ssize_t n = read(fd, buf + len, sizeof buf - 1 - len);
    if (n <= 0) return -1;
    len += (size_t)n;
    buf[len] = '\0';
  }
  return 0;
}

/* Starts `luact run [--quiet] script` with stdin, stdout and stderr on a
 * new pseudo-terminal (tty) or stdout and stderr on a pipe; env is the
 * whole environment (NULL-terminated). Returns the child, *fd the reading
 * end. */
static pid_t start(int tty, int quiet, char *const *env, int *fd) {
  int m, s = -1, pp[2];
  char slave[128];
  if (tty) {
    m = posix_openpt(O_RDWR | O_NOCTTY);
    ck_assert_int_ge(m, 0);
    ck_assert_int_eq(grantpt(m), 0);
    ck_assert_int_eq(unlockpt(m), 0);
    ck_assert_int_eq(ptsname_r(m, slave, sizeof slave), 0);
  } else {
    ck_assert_int_eq(pipe(pp), 0);
    m = pp[0];
  }
  pid_t pid = fork();
  ck_assert_int_ge(pid, 0);
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL); /* a failed assertion leaves no luact behind */
    if (tty) {
      setsid();
      s = open(slave, O_RDWR);
      if (s < 0) _exit(127);
      dup2(s, 0);
    } else {
      s = pp[1];
      int nul = open("/dev/null", O_RDONLY);
      dup2(nul, 0);
    }
    dup2(s, 1);
    dup2(s, 2);
    char bin[512];
    snprintf(bin, sizeof bin, "%s/luact", LC_BINARY_DIR);
    char *argv[] = {"luact", "run", quiet ? "--quiet" : lua_path, quiet ? lua_path : NULL, NULL};
    execve(bin, argv, env);
    _exit(127);
  }
  if (!tty) close(pp[1]);
  *fd = m;
  return pid;
}

/* Reads to the end and reaps the child; returns its exit status. */
static int finish(pid_t pid, int fd) {
  read_until(fd, NULL);
  close(fd);
  int st;
  ck_assert_int_eq(waitpid(pid, &st, 0), pid);
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* Runs the script to the end; returns the exit status, output in buf. */
static int run(int tty, int quiet, char *const *env) {
  int fd;
  pid_t pid = start(tty, quiet, env, &fd);
  return finish(pid, fd);
}

#define ENV(term, nocolor) \
  {"PATH=/usr/bin:/bin", term, nocolor, base, NULL}

static char base[160];

static void set_base(const struct lc_mock *m) {
  snprintf(base, sizeof base, "OPENAI_BASE_URL=%s/v1", m->base_url);
}

static const char react_script[] =
    "local r = luact.react{model = 'openai:mock', question = 'go', retries = 3}\n"
    "return r\n";

/* A server that accepts and does not answer: the line says so, and counts
 * the seconds (before: nothing, for minutes). */
START_TEST(status_line_while_waiting) {
  struct lc_mock m;
  ck_assert_int_eq(lc_mock_start(&m, "[{\"reply\": {\"delay_ms\": 100000, \"openai\": "
                                     "{\"text\": \"late\"}}}]"),
                   0);
  set_base(&m);
  write_script(react_script);
  char *env[] = ENV("TERM=xterm", "NO_COLOR=");
  int fd;
  pid_t pid = start(1, 0, env, &fd);
  ck_assert_int_eq(read_until(fd, "waiting for mock, 1 s"), 0);
  kill(pid, SIGTERM);
  finish(pid, fd);
  lc_mock_stop(&m);
  ck_assert_msg(strstr(buf, "\r\033[K\033[36mluact: waiting for mock"), "%s", buf);
}
END_TEST

/* A 429 with Retry-After: "retry 1 of 3 in 1.0 s", why, then the answer;
 * the line is cleared before the end line. */
START_TEST(status_line_shows_retries) {
  struct lc_mock m;
  ck_assert_int_eq(lc_mock_start(&m, "[{\"times\": 1, \"reply\": {\"status\": 429, "
                                     "\"retry_after\": 1, \"body\": \"{}\"}},"
                                     "{\"reply\": {\"openai\": {\"text\": \"done\"}}}]"),
                   0);
  set_base(&m);
  write_script(react_script);
  char *env[] = ENV("TERM=xterm", "NO_COLOR=");
  int rc = run(1, 0, env);
  lc_mock_stop(&m);
  ck_assert_msg(rc == 0, "exit %d: %s", rc, buf);
  ck_assert_msg(strstr(buf, "luact: mock: rate_limit (HTTP 429), retry 1 of 3 in "), "%s",
                buf);
  ck_assert_msg(strstr(buf, "\033[33m"), "no colour for the retry: %s", buf);
  ck_assert_msg(strstr(buf, "waiting for mock (attempt 2 of 4)"), "%s", buf);
  /* Erased when the call ended: after the last erase, no status text,
   * and the live end line. */
  const char *last = NULL;
  for (const char *p = buf; (p = strstr(p, "\r\033[K")); p++) last = p;
  ck_assert_ptr_nonnull(last);
  ck_assert_msg(!strstr(last, "luact: ") && strstr(last, "finished after 1 step: done"), "%s",
                buf);
}
END_TEST

/* NO_COLOR (any non-empty value) and TERM=dumb: the same line, no colour. */
START_TEST(no_colour_when_asked) {
  struct lc_mock m;
  ck_assert_int_eq(lc_mock_start(&m, "[{\"times\": 1, \"reply\": {\"status\": 429, "
                                     "\"retry_after\": 1, \"body\": \"{}\"}},"
                                     "{\"reply\": {\"openai\": {\"text\": \"done\"}}}]"),
                   0);
  set_base(&m);
  write_script(react_script);
  char *env1[] = ENV("TERM=xterm", "NO_COLOR=1");
  ck_assert_int_eq(run(1, 0, env1), 0);
  ck_assert_msg(strstr(buf, "retry 1 of 3"), "%s", buf);
  ck_assert_msg(!strstr(buf, "\033[3") && !strstr(buf, "\033[0m"), "colour with NO_COLOR: %s",
                buf);
  ck_assert_int_eq(lc_mock_reset(&m), 0);
  buf[0] = '\0';
  len = 0;
  char *env2[] = ENV("TERM=dumb", "X=1");
  ck_assert_int_eq(run(1, 0, env2), 0);
  lc_mock_stop(&m);
  ck_assert_msg(strstr(buf, "retry 1 of 3"), "%s", buf);
  ck_assert_msg(!strstr(buf, "\033[3"), "colour with TERM=dumb: %s", buf);
}
END_TEST

/* On a pipe and with --quiet: no status line, no escapes at all. */
START_TEST(nothing_on_a_pipe_or_quiet) {
  struct lc_mock m;
  ck_assert_int_eq(lc_mock_start(&m, "[{\"times\": 1, \"reply\": {\"status\": 429, "
                                     "\"retry_after\": 1, \"body\": \"{}\"}},"
                                     "{\"reply\": {\"openai\": {\"text\": \"done\"}}}]"),
                   0);
  set_base(&m);
  write_script(react_script);
  char *env[] = ENV("TERM=xterm", "X=1");
  ck_assert_int_eq(run(0, 0, env), 0);
  ck_assert_msg(!strstr(buf, "luact: ") && !strstr(buf, "\033"), "on a pipe: %s", buf);
  ck_assert_int_eq(lc_mock_reset(&m), 0);
  buf[0] = '\0';
  len = 0;
  ck_assert_int_eq(run(1, 1, env), 0);
  lc_mock_stop(&m);
  ck_assert_msg(!strstr(buf, "luact: ") && !strstr(buf, "\033"), "--quiet: %s", buf);
}
END_TEST

/* A streamed reply: the first token shows at once ("streaming"). */
START_TEST(status_line_shows_streaming) {
  struct lc_mock m;
  ck_assert_int_eq(lc_mock_start(&m, "[{\"reply\": {\"gap_ms\": 1500, \"openai\": "
                                     "{\"text\": \"a slow answer\", \"fragment_bytes\": 2}}}]"),
                   0);
  set_base(&m);
  write_script("return luact.react{model = 'openai:mock', question = 'go', stream = true}\n");
  char *env[] = ENV("TERM=xterm", "NO_COLOR=");
  int fd;
  pid_t pid = start(1, 0, env, &fd);
  ck_assert_int_eq(read_until(fd, "luact: mock streaming, 1 token in"), 0);
  kill(pid, SIGTERM);
  finish(pid, fd);
  lc_mock_stop(&m);
  ck_assert_msg(strstr(buf, "\033[32mluact: mock streaming"), "%s", buf);
}
END_TEST

/* No price for the model: the end line says "cost unknown", not $0.0000;
 * with a price it gives the amount. */
START_TEST(unknown_cost_prints_as_unknown) {
  struct lc_mock m;
  ck_assert_int_eq(lc_mock_start(&m, "[{\"reply\": {\"openai\": {\"text\": \"done\", \"usage\": "
                                     "{\"prompt_tokens\": 1000, \"completion_tokens\": 10, "
                                     "\"total_tokens\": 1010}}}}]"),
                   0);
  set_base(&m);
  char *env[] = ENV("TERM=xterm", "NO_COLOR=1");
  write_script(react_script);
  ck_assert_int_eq(run(1, 0, env), 0);
  ck_assert_msg(strstr(buf, "finished after 1 step: done  (1010 tok, cost unknown)"), "%s", buf);
  ck_assert_msg(!strstr(buf, "$0.0000"), "%s", buf);
  buf[0] = '\0';
  len = 0;
  write_script("return luact.react{model = 'openai:mock', question = 'go', prices = "
               "{mock = {input = 1, output = 2}}}\n");
  ck_assert_int_eq(run(1, 0, env), 0);
  ck_assert_msg(strstr(buf, "(1010 tok, $0.0010)"), "%s", buf);
  buf[0] = '\0';
  len = 0;
  write_script("return luact.pal{model = 'openai:mock', question = 'go', repairs = 0}\n");
  run(1, 0, env);
  lc_mock_stop(&m);
  ck_assert_msg(strstr(buf, "(1010 tok, cost unknown)"), "%s", buf);
}
END_TEST

static const char workflow_script[] =
    "local wf = luact.workflow{name = 'w', initial = 'a', model = 'openai:mock',\n"
    "  states = {a = {description = 'the only step', finish = true}}}\n"
    "local r = wf:run{message = 'hi', input = function() return nil end%s}\n"
    "io.stdout:write('status=', r.status, '\\n')\n";

/* A workflow prints its events live on a terminal by default, like react;
 * not on a pipe, not with verbose = false. */
START_TEST(workflow_live_lines_by_default) {
  struct lc_mock m;
  ck_assert_int_eq(lc_mock_start(&m, "[{\"reply\": {\"openai\": {\"tool_calls\": [{\"id\": "
                                     "\"c1\", \"name\": \"finish\", \"arguments\": "
                                     "{\"summary\": \"all done\"}}]}}}]"),
                   0);
  set_base(&m);
  char code[1024];
  snprintf(code, sizeof code, workflow_script, "");
  write_script(code);
  char *env[] = ENV("TERM=xterm", "NO_COLOR=1");
  ck_assert_int_eq(run(1, 0, env), 0);
  ck_assert_msg(strstr(buf, "status=finished"), "%s", buf);
  ck_assert_msg(strstr(buf, "  [a] finish "), "%s", buf);
  ck_assert_msg(strstr(buf, "workflow finished in step a after 1 action"), "%s", buf);
  ck_assert_msg(strstr(buf, "cost unknown"), "%s", buf);
  buf[0] = '\0';
  len = 0;
  ck_assert_int_eq(run(0, 0, env), 0);
  ck_assert_msg(strstr(buf, "status=finished") && !strstr(buf, "workflow finished"), "%s", buf);
  buf[0] = '\0';
  len = 0;
  snprintf(code, sizeof code, workflow_script, ", verbose = false");
  write_script(code);
  ck_assert_int_eq(run(1, 0, env), 0);
  lc_mock_stop(&m);
  ck_assert_msg(strstr(buf, "status=finished") && !strstr(buf, "workflow finished"), "%s", buf);
}
END_TEST

Suite *terminal_suite(void) {
  Suite *s = suite_create("terminal");
  TCase *tc = tcase_create("terminal");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, status_line_while_waiting);
  tcase_add_test(tc, status_line_shows_retries);
  tcase_add_test(tc, no_colour_when_asked);
  tcase_add_test(tc, nothing_on_a_pipe_or_quiet);
  tcase_add_test(tc, status_line_shows_streaming);
  tcase_add_test(tc, unknown_cost_prints_as_unknown);
  tcase_add_test(tc, workflow_live_lines_by_default);
  suite_add_tcase(s, tc);
  return s;
}
