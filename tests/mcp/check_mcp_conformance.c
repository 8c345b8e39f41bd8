/* check_mcp_conformance.c: the official MCP conformance suite
 * (@modelcontextprotocol/conformance, pinned in tests/mcp/package-lock.json)
 * against luact's client (tests/mcp/conformance_client.lua, through
 * luact.mcp.connect) and against `luact mcp serve --http` (serving
 * tests/mcp/conformance_server/). Every scenario the suite lists for a
 * revision luact speaks runs; a scenario fails the test unless it is in
 * the expected-failure tables below, each explained in
 * tests/mcp/CONFORMANCE.md, and an expected failure that passes fails the
 * test too (the table must be kept true).
 *
 * The suite is built for Node 22; tests/mcp/node20-compat.mjs lets it run
 * on Node 20 (see CONFORMANCE.md). A scenario's verdict is the suite's own
 * checks.json: FAILURE or WARNING fails it, with one exception: the
 * sse-retry timing check's "reconnected late" (an upper bound on time,
 * which a shared machine cannot promise); "too early" still fails. A
 * client that exits with an error (a sanitizer report included) fails
 * its scenario too. */
#include <check.h>
#include <cjson/cJSON.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util_common.h"

struct expected {
  const char *scenario;
  const char *why; /* the short form; CONFORMANCE.md has the long one */
};

/* Empty: every client scenario of a claimed revision passes (the auth/
 * ones through runtime/mcp/oauth.c), and every server scenario. A scenario
 * that starts failing must be explained in CONFORMANCE.md and listed here.
 * The NULL entries keep the arrays legal (C has no empty array). */
static const struct expected client_expected[] = {
    {NULL, NULL},
};
static const struct expected server_expected[] = {
    {NULL, NULL},
};

/* The revisions luact speaks (2025-03-26 it accepts from a server); a
 * scenario for none of them (draft, extension) is not run. */
static int claimed(const char *versions) {
  return strstr(versions, "2025-03-26") || strstr(versions, "2025-06-18") ||
         strstr(versions, "2025-11-25") || strstr(versions, "2026-07-28");
}

static const struct expected *find_expected(const struct expected *t, size_t n,
                                            const char *scenario) {
  for (size_t i = 0; i < n; i++) {
    if (!t[i].scenario) continue;
    size_t k = strlen(t[i].scenario);
    /* an entry ending in '/' or '-' is a family (auth/..., resources-...) */
    int family = t[i].scenario[k - 1] == '/' || t[i].scenario[k - 1] == '-';
    if (family ? !strncmp(scenario, t[i].scenario, k) : !strcmp(scenario, t[i].scenario))
      return &t[i];
  }
  return NULL;
}

static char suite_cmd[1200];

static void setup(void) {
  const char *src = lc_test_source_dir();
  char p[700];
  snprintf(p, sizeof p,
           "%s/tests/mcp/node_modules/@modelcontextprotocol/conformance/dist/index.js", src);
  struct stat st;
  ck_assert_msg(stat(p, &st) == 0,
                "%s is missing: run 'npm ci' in tests/mcp (scripts/test does)", p);
  snprintf(suite_cmd, sizeof suite_cmd,
           "node --import %s/tests/mcp/node20-compat.mjs %s", src, p);
}

/* Scenario names the suite lists for side ("client" or "server") and a
 * claimed revision; returns how many (names are malloc'd). */
static int list_scenarios(const char *side, char **names, int max) {
  char cmd[1400];
  snprintf(cmd, sizeof cmd, "%s list --%s 2>&1", suite_cmd, side);
  FILE *f = popen(cmd, "r");
  ck_assert_ptr_nonnull(f);
  char line[512];
  int n = 0;
  while (fgets(line, sizeof line, f)) {
    char name[200], versions[200];
    if (sscanf(line, " - %199s [%199[^]]]", name, versions) == 2 && claimed(versions) &&
        n < max)
      names[n++] = strdup(name);
  }
  int rc = pclose(f);
  ck_assert_msg(rc == 0 && n > 0, "'conformance list --%s' failed or listed nothing", side);
  return n;
}

/* Runs one scenario in dir (a template, made here); 1 if it passed. why
 * gets what failed. */
static int run_scenario(const char *args, const char *scenario, char *dir, char *why,
                        size_t whylen) {
  ck_assert_ptr_nonnull(mkdtemp(dir));
  char cmd[3000], log[300];
  snprintf(log, sizeof log, "%s/log.txt", dir);
  snprintf(cmd, sizeof cmd, "%s %s --scenario '%s' -o %s/out >%s 2>&1", suite_cmd, args,
           scenario, dir, log);
  int rc = system(cmd);
  (void)rc; /* the verdict is read from checks.json below */
  char *text = lc_test_read_file(log, NULL);
  int client_error = text && strstr(text, "CLIENT EXITED WITH ERROR") != NULL;
  free(text);
  snprintf(cmd, sizeof cmd, "find %s/out -name checks.json", dir);
  FILE *f = popen(cmd, "r");
  char path[600] = "";
  if (f) {
    if (!fgets(path, sizeof path, f)) path[0] = '\0';
    pclose(f);
  }
  path[strcspn(path, "\n")] = '\0';
  char *checks = path[0] ? lc_test_read_file(path, NULL) : NULL;
  cJSON *root = checks ? cJSON_Parse(checks) : NULL;
  free(checks);
  int ok = cJSON_IsArray(root) && cJSON_GetArraySize(root) > 0;
  size_t w = 0;
  why[0] = '\0';
  if (!ok) w += (size_t)snprintf(why, whylen, "no checks.json (see %s)", log);
  const cJSON *c;
  cJSON_ArrayForEach(c, root) {
    const char *st = cJSON_GetStringValue(cJSON_GetObjectItem(c, "status"));
    const char *id = cJSON_GetStringValue(cJSON_GetObjectItem(c, "id"));
    if (!st || (strcmp(st, "FAILURE") && strcmp(st, "WARNING"))) continue;
    if (id && !strcmp(id, "client-sse-retry-timing")) {
      /* late is the machine's load; early is the client ignoring retry: */
      const cJSON *d = cJSON_GetObjectItem(c, "details");
      if (d && cJSON_IsFalse(cJSON_GetObjectItem(d, "tooEarly"))) continue;
    }
    ok = 0;
    const char *msg = cJSON_GetStringValue(cJSON_GetObjectItem(c, "errorMessage"));
    if (w < whylen)
      w += (size_t)snprintf(why + w, whylen - w, "%s%s %s: %.200s", w ? "; " : "",
                            id ? id : "?", st, msg ? msg : "");
  }
  cJSON_Delete(root);
  if (client_error) {
    ok = 0;
    if (w < whylen)
      snprintf(why + w, whylen - w, "%sthe client exited with an error (see %s)",
               w ? "; " : "", log);
  }
  return ok;
}

/* Runs every listed scenario of side with args and checks the verdicts
 * against the expected table. */
static void run_side(const char *side, const char *args, const struct expected *exp,
                     size_t nexp) {
  char *names[128];
  int n = list_scenarios(side, names, 128);
  static char report[16384];
  size_t r = 0;
  int bad = 0, passed = 0, expected_failed = 0;
  report[0] = '\0';
  for (int i = 0; i < n; i++) {
    char why[2048], dir[] = "/tmp/lc_mcpconf_XXXXXX", rm[64];
    int ok = run_scenario(args, names[i], dir, why, sizeof why);
    const struct expected *e = find_expected(exp, nexp, names[i]);
    /* the output of an unexpected result is kept for a look */
    snprintf(rm, sizeof rm, "rm -rf %s", dir);
    if (!ok == !!e && system(rm) != 0) {
      /* a leftover temporary directory is harmless */
    }
    fprintf(stderr, "mcp conformance %s: %-40s %s%s%s\n", side, names[i],
            ok ? "pass" : e ? "expected failure" : "FAIL", ok || !e ? "" : ": ",
            ok || !e ? "" : e->why);
    if (ok && !e) passed++;
    else if (!ok && e) expected_failed++;
    else {
      bad++;
      if (r < sizeof report)
        r += (size_t)snprintf(report + r, sizeof report - r, "\n  %s: %s", names[i],
                              ok ? "passes but is listed as an expected failure: "
                                   "update the table and CONFORMANCE.md"
                                 : why);
    }
    free(names[i]);
  }
  fprintf(stderr, "mcp conformance %s: %d passed, %d expected failures, %d unexpected\n",
          side, passed, expected_failed, bad);
  ck_assert_msg(bad == 0, "%s scenarios off the expected results:%s", side, report);
}

START_TEST(client_scenarios) {
  char args[1200];
  snprintf(args, sizeof args, "client --timeout 30000 --command '%s/luact run %s/tests/mcp/conformance_client.lua'",
           LC_BINARY_DIR, lc_test_source_dir());
  run_side("client", args, client_expected, sizeof client_expected / sizeof client_expected[0]);
}
END_TEST

/* Starts argv with stdin a pipe (its write end in *stdin_w) and stdout and
 * stderr one pipe, read through *out (kept open while the child runs). */
static pid_t start_child(char *const argv[], int *stdin_w, FILE **out) {
  int in[2], o[2];
  ck_assert_int_eq(pipe(in), 0);
  ck_assert_int_eq(pipe(o), 0);
  pid_t pid = fork();
  if (pid == 0) {
    dup2(in[0], 0);
    dup2(o[1], 1);
    dup2(o[1], 2);
    close(in[1]);
    close(o[0]);
    execvp(argv[0], argv);
    _exit(127);
  }
  close(in[0]);
  close(o[1]);
  *stdin_w = in[1];
  *out = fdopen(o[0], "r");
  return pid;
}

static int read_port(FILE *f, const char *fmt) {
  char line[512];
  int port = 0;
  while (fgets(line, sizeof line, f))
    if (sscanf(line, fmt, &port) == 1) break;
  return port;
}

START_TEST(server_scenarios) {
  char dir[600], bin[600], proxy[600], target[100];
  snprintf(dir, sizeof dir, "%s/tests/mcp/conformance_server", lc_test_source_dir());
  snprintf(bin, sizeof bin, "%s/luact", LC_BINARY_DIR);
  snprintf(proxy, sizeof proxy, "%s/tests/mcp/bearer_proxy.mjs", lc_test_source_dir());
  setenv("LUACT_MCP_TOKEN", "conformance-token-0123456789", 1);
  int sin, pin;
  FILE *sout, *pout;
  char *sargv[] = {bin, "mcp", "serve", "--http", "0", dir, NULL};
  pid_t spid = start_child(sargv, &sin, &sout);
  int port = read_port(sout, "luact mcp: listening on http://127.0.0.1:%d/mcp");
  ck_assert_msg(port > 0, "luact mcp serve did not start");
  snprintf(target, sizeof target, "http://127.0.0.1:%d", port);
  char *pargv[] = {"node", proxy, target, NULL};
  pid_t ppid = start_child(pargv, &pin, &pout);
  int pport = read_port(pout, "proxy listening on http://127.0.0.1:%d/mcp");
  ck_assert_msg(pport > 0, "the bearer proxy did not start");
  char args[300];
  snprintf(args, sizeof args, "server --url http://127.0.0.1:%d/mcp", pport);
  run_side("server", args, server_expected, sizeof server_expected / sizeof server_expected[0]);
  /* luact survived every scenario (a sanitizer report aborts it) */
  int st = 0;
  pid_t gone = waitpid(spid, &st, WNOHANG);
  /* the proxy ends with its stdin, the server with SIGTERM */
  close(pin);
  waitpid(ppid, NULL, 0);
  if (gone == 0) {
    kill(spid, SIGTERM);
    waitpid(spid, &st, 0);
  }
  close(sin);
  fclose(sout);
  fclose(pout);
  unsetenv("LUACT_MCP_TOKEN");
  ck_assert_msg(gone == 0, "luact mcp serve exited during the scenarios (status %d)", st);
}
END_TEST

Suite *mcp_conformance_suite(void) {
  Suite *s = suite_create("mcp_conformance");
  TCase *tc = tcase_create("client_scenarios");
  tcase_add_checked_fixture(tc, setup, NULL);
  tcase_set_timeout(tc, 1150);
  tcase_add_test(tc, client_scenarios);
  suite_add_tcase(s, tc);
  tc = tcase_create("server_scenarios");
  tcase_add_checked_fixture(tc, setup, NULL);
  tcase_set_timeout(tc, 1150);
  tcase_add_test(tc, server_scenarios);
  suite_add_tcase(s, tc);
  return s;
}
