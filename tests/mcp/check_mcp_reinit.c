/* check_mcp_reinit.c: the HTTP client after its session is re-established
 * (tests/mcp/fake_restart_server.js: a server that "restarts" with another
 * revision and other capabilities): everything after the restart follows
 * the most recent initialize (its session id, MCP-Protocol-Version,
 * server:info() and server.version), nothing of the old session. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util_common.h"
#include "util_lua.h"
#include "util_mcp.h"

static char out[8192], err[4096];

START_TEST(http_reinit_uses_latest_initialize) {
  char log[] = "/tmp/lc_mcp_reinit_XXXXXX";
  int fd = mkstemp(log);
  ck_assert_int_ge(fd, 0);
  close(fd);
  pid_t pid;
  int port = lc_test_node_server_start(&pid, "fake_restart_server.js", log, NULL);
  char code[1500];
  snprintf(code, sizeof code,
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
  int rc = lc_test_lua_run_once(NULL, LC_TEST_LUA_CHECK, code, out, sizeof out, err, sizeof err);
  lc_test_node_server_stop(pid);
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
