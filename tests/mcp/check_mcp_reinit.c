/* check_mcp_reinit.c: the HTTP client after its session is re-established
 * (tests/mcp/fake_restart_server.js: a server that "restarts" with another
 * revision and other capabilities): everything after the restart follows
 * the most recent initialize (its session id, MCP-Protocol-Version,
 * server:info() and server.version), nothing of the old session. */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util_common.h"
#include "util_lua.h"

static char out[8192], err[4096];

START_TEST(http_reinit_uses_latest_initialize) {
  char log[] = "/tmp/lc_mcp_reinit_XXXXXX";
  int fd = mkstemp(log);
  ck_assert_int_ge(fd, 0);
  close(fd);
  int p[2];
  ck_assert_int_eq(pipe(p), 0);
  pid_t pid = fork();
  if (pid == 0) {
    char js[600];
    snprintf(js, sizeof js, "%s/tests/mcp/fake_restart_server.js", lc_test_source_dir());
    dup2(p[1], 1);
    close(p[0]);
    execlp("node", "node", js, log, (char *)NULL);
    _exit(127);
  }
  close(p[1]);
  FILE *f = fdopen(p[0], "r");
  char line[128];
  int port = 0;
  while (fgets(line, sizeof line, f))
    if (sscanf(line, "listening %d", &port) == 1) break;
  fclose(f);
  ck_assert_msg(port > 0, "fake_restart_server.js did not start");
  char code[1500];
  snprintf(code, sizeof code,
           "local function check(c, ...) if not c then error(table.concat({...}, ' '), 2) end end\n"
           "local s = assert(luact.mcp.connect{url='http://127.0.0.1:%d/mcp'})\n"
           "check(s.version == '2025-06-18', s.version)\n"
           "check(s:info().capabilities.logging == nil)\n"
           "-- the call finds the session gone (404): a read-only tool is\n"
           "-- called again on a new session\n"
           "local r, e = s.tool.look{}\n"
           "check(r and r:find('from s2', 1, true), r, e)\n"
           "check(s.version == '2025-11-25', s.version)\n"
           "local info = s:info()\n"
           "check(info.serverInfo.version == '2', info.serverInfo.version)\n"
           "check(info.capabilities.logging and info.capabilities.tools.listChanged == true,\n"
           "  luact.json.encode(info.capabilities))\n"
           "r, e = s:call('look', {})\n"
           "check(r and r.content[1].text == 'from s2', e)\n"
           "s:close()\n"
           "return 'ok'",
           port);
  int rc = lc_test_lua_run_once(NULL, NULL, code, out, sizeof out, err, sizeof err);
  kill(pid, SIGKILL);
  waitpid(pid, NULL, 0);
  char *text = lc_test_read_file(log, NULL);
  unlink(log);
  ck_assert_msg(rc == 0, "%s\n%s", err, text ? text : "");
  ck_assert_ptr_nonnull(text);
  /* after the second initialize, only the new session and revision */
  const char *first = strstr(text, "\ninitialize ");
  const char *second = first ? strstr(first + 1, "\ninitialize ") : NULL;
  ck_assert_msg(second, "%s", text);
  ck_assert_msg(!strstr(second, "session=s1") && !strstr(second, "version=2025-06-18"), "%s",
                text);
  ck_assert_msg(strstr(second, "tools/call session=s2 version=2025-11-25"), "%s", text);
  free(text);
}
END_TEST

Suite *mcp_reinit_suite(void) {
  Suite *s = suite_create("mcp_reinit");
  TCase *tc = tcase_create("http");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, http_reinit_uses_latest_initialize);
  suite_add_tcase(s, tc);
  return s;
}
