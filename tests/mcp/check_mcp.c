/* check_mcp.c: luact.mcp against real MCP servers from npm (installed by
 * scripts/test with npm ci in tests/mcp): server-everything over stdio and
 * Streamable HTTP, server-filesystem, server-memory, a ReAct agent through
 * the mock LLM; and against tests/mcp/fake_server.js for what a hostile or
 * broken server does (junk, malformed JSON-RPC, unknown ids, floods,
 * oversize messages, bad schemas, exits, a tool that changes). */
#include <arpa/inet.h>
#include <check.h>
#include <cjson/cJSON.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "child.h"
#include "util_common.h"
#include "util_lua.h"
#include "util_mcp.h"
#include "util_mock.h"

static char out[8192], err[4096];
static char prelude[4096];
static struct lc_mock mock;

static void make_prelude(void) {
  const char *src = lc_test_source_dir();
  char nm[600];
  snprintf(nm, sizeof nm, "%s/tests/mcp/node_modules/@modelcontextprotocol", src);
  struct stat st;
  ck_assert_msg(stat(nm, &st) == 0,
                "%s is missing: run 'npm ci' in tests/mcp (scripts/test does)", nm);
  snprintf(prelude, sizeof prelude,
           "NODE_MODULES = '%s'\n"
           "EVERYTHING = {'%s/server-everything/dist/index.js', 'stdio'}\n"
           "FS = '%s/server-filesystem/dist/index.js'\n"
           "MEMORY = '%s/server-memory/dist/index.js'\n"
           "FAKE = '%s/tests/mcp/fake_server.js'\n"
           "function fake(mode, extra)\n"
           "  local t = {command='node', args={FAKE, mode, LOG}, connect_timeout=20}\n"
           "  for k, v in pairs(extra or {}) do t[k] = v end\n"
           "  return luact.mcp.connect(t)\n"
           "end\n" LC_TEST_LUA_CHECK,
           nm, nm, nm, nm, src);
}

static int run(const char *code) {
  return lc_test_lua_run_once(mock.pid ? mock.base_url : NULL, prelude, code, out,
                              sizeof out, err, sizeof err);
}

static void setup(void) {
  memset(&mock, 0, sizeof mock);
  make_prelude();
}

/* ---- server-everything over stdio ---- */

START_TEST(everything_stdio) {
  ck_assert_msg(run("local s, e = luact.mcp.connect{command='node', args=EVERYTHING}\n"
                    "check(s, e)\n"
                    "check(s.version == '2025-11-25', 'version', s.version)\n"
                    "check(#s.tools >= 10, 'tools', #s.tools)\n"
                    "local echo, sum = s.tool.echo, s.tool['get-sum']\n"
                    "check(luact.is_tool(echo))\n"
                    "check(echo.effect == 'pure' and s.tool['toggle-simulated-logging'].effect == 'at_most_once')\n"
                    "local r = echo{message='hi'}\n"
                    "check(r:find('Echo: hi', 1, true) and r:find('<mcp%-tool%-output'), r)\n"
                    "local x, m, c = sum{a='x', b=1}\n"
                    "check(x == nil and c == 'invalid_arguments', m)\n"
                    "check(sum{a=2, b=3}:find('5'))\n"
                    /* structured content through the raw call */
                    "local raw = s:call('get-structured-content', {location='New York'})\n"
                    "check(type(raw.structuredContent) == 'table' and raw.structuredContent.temperature)\n"
                    /* the same session served every call */
                    "check(s.restarts == 0)\n"
                    "s:close()\n"
                    "return 'ok'") == 0,
                "%s", err);
  ck_assert_str_eq(out, "ok");
}
END_TEST

/* Session and op methods, and a schema's validate, check self against
 * the metatable they hold as an upvalue (lc_lua_checkud_up): any other
 * value as self (another type's userdata, a table with the same methods,
 * a session for an op and back) still raises the type's error, and the
 * right self still works after. */
START_TEST(methods_refuse_a_wrong_self) {
  ck_assert_msg(run("local s, e = luact.mcp.connect{command='node', args=EVERYTHING}\n"
                    "check(s, e)\n"
                    "local ses = s._s\n"
                    "local op = ses:_call('echo', {message='a'}, 30)\n"
                    "local OP, SES = getmetatable(op).__index, getmetatable(ses).__index\n"
                    "local V = getmetatable(luact.schema.compile{type='object'}).__index\n"
                    "local function refused(f, self, want)\n"
                    "  local ok, m = pcall(f, self)\n"
                    "  check(not ok and tostring(m):find(want, 1, true), tostring(m))\n"
                    "end\n"
                    "refused(OP.wait, ses, 'luact.McpOp expected')\n"
                    "refused(OP.wait, {}, 'luact.McpOp expected')\n"
                    "refused(OP.wait, io.stdout, 'luact.McpOp expected')\n"
                    "refused(getmetatable(op).__gc, ses, 'luact.McpOp expected')\n"
                    "refused(SES._plain, op, 'luact.McpSession expected')\n"
                    "refused(SES._call, op, 'luact.McpSession expected')\n"
                    "refused(SES._plain, setmetatable({}, getmetatable(ses)), 'luact.McpSession expected')\n"
                    "refused(V.validate, ses, 'luact.Schema expected')\n"
                    "local k, text = op:wait()\n"
                    "check(k == 'text' and text == 'Echo: a', k, text)\n"
                    "check(type(ses:_plain()) == 'boolean')\n"
                    "check(s.tool.echo{message='b'}:find('Echo: b', 1, true))\n"
                    "s:close()\n"
                    "return 'ok'") == 0,
                "%s", err);
  ck_assert_str_eq(out, "ok");
}
END_TEST

/* An MCP tool's own fn never reads its ctx, so an unjournaled call makes
 * none (tool.lua's _noctx); a fn the script puts in its place gets the
 * ctx every tool fn gets (its effect_id), and the calls' effect numbers
 * run on as before: the third call is #3 whichever fn ran the others. */
START_TEST(replaced_fn_still_gets_its_ctx) {
  char dir[] = "/tmp/lc_mcp_ctx_XXXXXX";
  ck_assert_ptr_nonnull(mkdtemp(dir));
  char script[700], cmd[2048];
  snprintf(script, sizeof script, "%s/agent.lua", dir);
  FILE *f = fopen(script, "w");
  ck_assert_ptr_nonnull(f);
  fprintf(f,
          "local s = assert(luact.mcp.connect{command='node', args={'%s/tests/mcp/node_modules/"
          "@modelcontextprotocol/server-everything/dist/index.js', 'stdio'}})\n"
          "local echo = s.tool.echo\n"
          "assert(echo{message='a'}:find('Echo: a', 1, true))\n"
          "local body, seen = echo.fn\n"
          "local function spy(args, ctx) seen = ctx; return body(args, ctx) end\n"
          "echo.fn = spy\n"
          "assert(echo{message='b'}:find('Echo: b', 1, true))\n"
          "print('first', seen.effect_id)\n"
          "echo.fn = body\n"
          "assert(echo{message='c'}:find('Echo: c', 1, true))\n"
          "echo.fn = spy\n"
          "assert(echo{message='d'}:find('Echo: d', 1, true))\n"
          "print('second', seen.effect_id)\n"
          "s:close()\n",
          lc_test_source_dir());
  fclose(f);
  snprintf(cmd, sizeof cmd, "%s/luact run --no-store %s 2>&1", LC_BINARY_DIR, script);
  FILE *p = popen(cmd, "r");
  ck_assert_ptr_nonnull(p);
  size_t n = fread(out, 1, sizeof out - 1, p);
  out[n] = '\0';
  ck_assert_msg(pclose(p) == 0, "%s", out);
  /* one listing (1#1), then the calls 1#2 .. 1#5 */
  ck_assert_msg(strstr(out, "first\t1#3\n") && strstr(out, "second\t1#5\n"), "%s", out);
  unlink(script);
  rmdir(dir);
}
END_TEST

/* The child's environment is what the script gave plus PATH and HOME. */
START_TEST(everything_env_is_only_given) {
  setenv("LUACT_MCP_SECRET_CANARY", "leak", 1);
  ck_assert_msg(run("local s, e = luact.mcp.connect{command='node', args=EVERYTHING,\n"
                    "  env={GIVEN='yes'}}\n"
                    "check(s, e)\n"
                    "local r = s:call('get-env', {})\n"
                    "local t = r.content[1].text\n"
                    "check(t:find('GIVEN'), t)\n"
                    "check(t:find('PATH'), t)\n"
                    "check(not t:find('LUACT_MCP_SECRET_CANARY'), 'leaked: ' .. t)\n"
                    "return 'ok'") == 0,
                "%s", err);
  unsetenv("LUACT_MCP_SECRET_CANARY");
}
END_TEST

/* Progress arrives while the call runs; resources and prompts read. */
START_TEST(everything_progress_resources_prompts) {
  ck_assert_msg(run("local s = check(luact.mcp.connect{command='node', args=EVERYTHING})\n"
                    "local seen = {}\n"
                    "local r = s:call('trigger-long-running-operation', {duration=1, steps=3},\n"
                    "  {on_progress=function(p) seen[#seen+1] = p.progress end})\n"
                    "check(r, 'no result')\n"
                    /* reports may be coalesced on a loaded machine: the newest counts */
                    "check(#seen >= 1 and seen[#seen] == 3, 'progress ' .. #seen)\n"
                    "local res = check(s:resources())\n"
                    "check(#res > 0)\n"
                    "local c = check(s:read(res[1].uri))\n"
                    "check(type(c[1].text) == 'string' or type(c[1].blob) == 'string')\n"
                    "local ps = check(s:prompts())\n"
                    "check(#ps > 0)\n"
                    "local p = check(s:prompt('simple-prompt'))\n"
                    "check(type(p.messages) == 'table')\n"
                    "return 'ok'") == 0,
                "%s", err);
}
END_TEST

/* A task killed while its call waits sends notifications/cancelled. */
START_TEST(cancel_on_kill) {
  char log[] = "/tmp/lc_mcp_log_XXXXXX";
  int fd = mkstemp(log);
  ck_assert_int_ge(fd, 0);
  close(fd);
  char code[2048];
  snprintf(code, sizeof code,
           "LOG = '%s'\n"
           "local s = check(fake('ok'))\n"
           "local r, m, c = luact.timeout(0.2, function() return s:call('slow', {}) end)\n"
           "check(r == nil and c == 'timeout', m, c)\n"
           /* the session still works after the cancel */
           "check(s:call('ok', {}).content[1].text == 'ok from ok')\n"
           "s:close()\n"
           "return 'ok'",
           log);
  ck_assert_msg(run(code) == 0, "%s", err);
  size_t n;
  char *t = lc_test_read_file(log, &n);
  ck_assert_ptr_nonnull(t);
  ck_assert_msg(strstr(t, "\"method\":\"notifications/cancelled\""), "%s", t);
  ck_assert_msg(strstr(t, "\"requestId\":4"), "%s", t);
  free(t);
  unlink(log);
}
END_TEST

/* A tool call whose server never answers times out through the tool
 * layer (luact.timeout's child task, the scheduler's pass) with the tool's
 * own message, cancels the request on the server, and leaves the session
 * working for the next call. */
START_TEST(tool_timeout_fires_and_cancels) {
  char log[] = "/tmp/lc_mcp_log_XXXXXX";
  int fd = mkstemp(log);
  ck_assert_int_ge(fd, 0);
  close(fd);
  char code[2048];
  snprintf(code, sizeof code,
           "LOG = '%s'\n"
           "local s = check(fake('ok', {timeout = 0.2}))\n"
           "local r, m, c = s.tool.slow{}\n"
           "check(r == nil and c == 'timeout' and m == 'tool slow timed out after 0.2 s', m, c)\n"
           "check(s.tool.ok{}:find('ok from ok', 1, true))\n"
           "s:close()\n"
           "return 'ok'",
           log);
  ck_assert_msg(run(code) == 0, "%s", err);
  size_t n;
  char *t = lc_test_read_file(log, &n);
  ck_assert_ptr_nonnull(t);
  ck_assert_msg(strstr(t, "\"method\":\"notifications/cancelled\""), "%s", t);
  free(t);
  unlink(log);
}
END_TEST

/* A tool call that is one request runs without luact.timeout's child task
 * (mcp.lua's _direct): the request's own deadline is the tool's timeout.
 * A server that never answers: the tool's own timeout message and code,
 * notifications/cancelled for that request (reason "timed out"), and calls
 * from other tasks on the same session answered meanwhile and after. A
 * task killed in such a call cancels it too ("the luact task was killed").
 * The callers wait for the slow call's end: no timing assumption. */
START_TEST(tool_timeout_direct_path) {
  char log[] = "/tmp/lc_mcp_log_XXXXXX";
  int fd = mkstemp(log);
  ck_assert_int_ge(fd, 0);
  close(fd);
  char code[3072];
  snprintf(code, sizeof code,
           "LOG = '%s'\n"
           "local s = check(fake('ok', {timeout = 0.3}))\n"
           "check(s.tool.ok{}:find('ok from ok', 1, true))\n" /* the session is open */
           "local over = false\n"
           "local ts = {}\n"
           "for i = 1, 4 do ts[i] = luact.spawn(function()\n"
           "  local n = 0\n"
           "  repeat\n"
           "    local r, m, c = s.tool.ok{}\n"
           "    check(r and r:find('ok from ok', 1, true), m, c)\n"
           "    n = n + 1\n"
           "  until over\n"
           "  return n\n"
           "end) end\n"
           "local r, m, c = s.tool.slow{}\n"
           "over = true\n"
           "check(r == nil and c == 'timeout' and m == 'tool slow timed out after 0.3 s', m, c)\n"
           "for i = 1, 4 do\n"
           "  local ok, n = luact.wait(ts[i])\n"
           "  check(ok and n >= 1, tostring(n))\n"
           "end\n"
           /* killed mid-call: the request is out once the task waits */
           "local started = false\n"
           "local k = luact.spawn(function() started = true; return s.tool.slow{} end)\n"
           /* a yield: the child runs until its request is out and it waits */
           "while not started do luact.sleep(0) end\n"
           "luact.kill(k)\n"
           "check(not luact.wait(k))\n"
           /* answered after the lines before it: the cancel is in the log */
           "check(s.tool.ok{}:find('ok from ok', 1, true))\n"
           "s:close()\n"
           "return 'ok'",
           log);
  ck_assert_msg(run(code) == 0, "%s", err);
  ck_assert_str_eq(out, "ok");
  size_t n;
  char *t = lc_test_read_file(log, &n);
  ck_assert_ptr_nonnull(t);
  /* the slow calls' ids: each cancelled, the first by its deadline */
  int slow = 0;
  char id[32];
  for (const char *p = t; (p = strstr(p, "\"name\":\"slow\"")); p++) {
    const char *line = p;
    while (line > t && line[-1] != '\n') line--;
    const char *q = strstr(line, "\"id\":");
    ck_assert_ptr_nonnull(q);
    snprintf(id, sizeof id, "\"requestId\":%ld", strtol(q + 5, NULL, 10));
    const char *c = strstr(t, id);
    ck_assert_msg(c, "no notifications/cancelled with %s in %s", id, t);
    const char *want = slow == 0 ? "\"reason\":\"timed out\"" : "\"reason\":\"the luact task was killed\"";
    const char *end = strchr(c, '\n');
    const char *r = strstr(c, want);
    ck_assert_msg(r && (!end || r < end), "%s not in the cancel of %s: %s", want, id, t);
    slow++;
  }
  ck_assert_int_eq(slow, 2);
  free(t);
  unlink(log);
}
END_TEST

/* The call without a child task keeps the journal as it was: the tool's
 * effect records the two spawn numbers luact.timeout took, so a task
 * spawned after it keeps its name; a call that goes on under the timeout
 * mid-way (an elicitation: luact.ask inside, a journaled effect) asks in
 * the child the old path had (1.3), not in the caller. */
START_TEST(direct_path_keeps_journal_names) {
  char dir[] = "/tmp/lc_mcp_dj_XXXXXX";
  ck_assert_ptr_nonnull(mkdtemp(dir));
  char script[700], journal[700], answers[700], cmd[4096];
  snprintf(script, sizeof script, "%s/agent.lua", dir);
  snprintf(journal, sizeof journal, "%s/run.jsonl", dir);
  snprintf(answers, sizeof answers, "%s/answers.txt", dir);
  FILE *f = fopen(answers, "w");
  ck_assert_ptr_nonnull(f);
  fputs("Oslo\n\n", f);
  fclose(f);
  f = fopen(script, "w");
  ck_assert_ptr_nonnull(f);
  fprintf(f,
          "local fs = '%s/tests/mcp/fake_server.js'\n"
          "local a = assert(luact.mcp.connect{command='node', args={fs, 'ok'}})\n"
          "local b = assert(luact.mcp.connect{command='node', args={fs, 'elicit'}})\n"
          "assert(a.tool.ok{}:find('ok from ok', 1, true))\n"
          "assert(b.tool.ok{}:find('elicited accept', 1, true))\n"
          "local t = luact.spawn(function()\n"
          "  return luact.effect('probe', 'after', {}, 'pure', function(ctx) return ctx.effect_id end)\n"
          "end)\n"
          "print(select(2, luact.wait(t)))\n",
          lc_test_source_dir());
  fclose(f);
  snprintf(cmd, sizeof cmd, "%s/luact run --input %s --record %s %s 2>&1", LC_BINARY_DIR,
           answers, journal, script);
  FILE *p = popen(cmd, "r");
  ck_assert_ptr_nonnull(p);
  size_t n = fread(out, 1, sizeof out - 1, p);
  out[n] = '\0';
  ck_assert_msg(pclose(p) == 0, "%s", out);
  /* root: two listings (1#1, 1#2), two tool calls (1#3: children 1.1 and
   * 1.2 taken; 1#4: its work 1.3, 1.4 taken), then the probe's task 1.5 */
  ck_assert_msg(strstr(out, "1.5#1"), "%s", out);
  char *j = lc_test_read_file(journal, &n);
  ck_assert_ptr_nonnull(j);
  ck_assert_msg(strstr(j, "\"id\":\"1.3#1\",\"kind\":\"input\""), "%s", j);
  ck_assert_msg(strstr(j, "\"id\":\"1.3#2\",\"kind\":\"input\""), "%s", j);
  const char *r3 = strstr(j, "{\"type\":\"result\",\"id\":\"1#3\"");
  const char *r4 = strstr(j, "{\"type\":\"result\",\"id\":\"1#4\"");
  ck_assert_msg(r3 && r4, "%s", j);
  for (int i = 0; i < 2; i++) {
    const char *at = strstr(i ? r4 : r3, "\"nested\":{\"effects\":0,\"spawned\":2}");
    ck_assert_msg(at && at < strchr(i ? r4 : r3, '\n'), "%s", j);
  }
  free(j);
  unlink(journal);
  unlink(answers);
  unlink(script);
  rmdir(dir);
}
END_TEST

/* No head-of-line blocking on a shared session: 50 calls the server holds
 * do not hold up a fast one on the same pipe. The server answers the held
 * calls only when told to, after the fast call's answer was seen here, so
 * the order is fixed by the server, not by timing. The 60 s timeout only
 * turns a blocked session into a failure instead of a hang. */
START_TEST(slow_calls_do_not_block_a_fast_one) {
  ck_assert_msg(run("LOG = nil\n"
                    "local s = check(fake('ok'))\n"
                    "local done, ts = 0, {}\n"
                    "for i = 1, 50 do ts[i] = luact.spawn(function()\n"
                    "  local r = check(s:call('held', {}))\n"
                    "  done = done + 1\n"
                    "  return r.content[1].text\n"
                    "end) end\n"
                    /* fast calls (the server says how many it holds) until all
                     * 50 are held: each is answered with held ones before it */
                    "local n, k = '0', 0\n"
                    "while n ~= '50' do\n"
                    "  k = k + 1\n"
                    "  check(k <= 1000, 'the held calls never all arrived: ' .. n)\n"
                    "  local r, m, c = luact.timeout(60, function() return s:call('holding', {}) end)\n"
                    "  check(r, 'a fast call behind held ones:', m, c)\n"
                    "  n = r.content[1].text\n"
                    "end\n"
                    "check(s:call('ok', {}).content[1].text == 'ok from ok')\n"
                    "check(done == 0, 'held calls answered before release: ' .. done)\n"
                    "check(s:call('release', {}))\n"
                    "for i = 1, 50 do\n"
                    "  local ok, text = luact.wait(ts[i])\n"
                    "  check(ok and text == 'ok from held', tostring(text))\n"
                    "end\n"
                    "check(done == 50)\n"
                    "s:close()\n"
                    "return 'ok'") == 0,
                "%s", err);
}
END_TEST

/* A server that dies mid-call: that call fails clearly, the next restarts.
 * Run twice: the child watched through its pidfd, then polled as where the
 * kernel gives none (child.c). */
START_TEST(server_dies_mid_call) {
  lc_child_force_poll(_i);
  ck_assert_msg(run("LOG = nil\n"
                    "local s = check(fake('die_on_call'))\n"
                    "local r, m, c = s:call('ok', {})\n"
                    "check(r == nil and c == 'server_died', m, c)\n"
                    "check(m:find('exited with status 7'), m)\n"
                    /* the tool form: a pure tool is run once more on a fresh server */
                    "local r2, m2 = s.tool.ok{}\n"
                    "check(r2 == nil and m2:find('status 7'), m2)\n"
                    "check(s.restarts >= 1, 'restarts ' .. s.restarts)\n"
                    "return 'ok'") == 0,
                "%s", err);
  lc_child_force_poll(0);
}
END_TEST

/* A killed server (SIGKILL from outside) mid-call is reported, no hang
 * (pidfd, then polled). */
START_TEST(server_killed_mid_call) {
  lc_child_force_poll(_i);
  /* Killed on its first progress report: the call is surely in flight. */
  ck_assert_msg(run("local s = check(luact.mcp.connect{command='node', args=EVERYTHING})\n"
                    "local r, m, c = s:call('trigger-long-running-operation', {duration=30, steps=30},\n"
                    "  {on_progress=function() os.execute('kill -9 ' .. s:stats().pid) end})\n"
                    "check(r == nil and c == 'server_died', m, c)\n"
                    "check(m:find('signal 9'), m)\n"
                    "check(s.tool.echo{message='again'}:find('again'))\n"
                    "check(s.restarts == 1)\n"
                    "return 'ok'") == 0,
                "%s", err);
  lc_child_force_poll(0);
}
END_TEST

static const struct bad {
  const char *mode, *want_code, *want_msg;
} bads[] = {
    {"exit_now", "mcp_connect", "exited with status 3; stderr: fake: cannot start"},
    {"junk_exit", "mcp_connect", "non-JSON-RPC line"},
    {"old", "mcp_connect", "speaks protocol revision 2024-11-05"},
    {"oversize", "server_died", "over 4194304 bytes"},
    {"flood", "server_died", "flooded"},
    {"malformed", "server_died", "broke the protocol"},
};

/* Each broken server gives a clear error for itself, and another server
 * opened beside it keeps working. */
START_TEST(bad_servers) {
  const struct bad *b = &bads[_i];
  char code[2048];
  snprintf(code, sizeof code,
           "LOG = nil\n"
           "local good = check(fake('ok'))\n"
           "local s, m, c = fake('%s')\n"
           "if s then\n"
           "  local r\n"
           "  r, m, c = s:call('ok', {})\n"
           "  check(r == nil, 'call worked')\n"
           "end\n"
           "check(c == '%s', 'code', tostring(c), tostring(m))\n"
           "check(m:find('%s', 1, true), m)\n"
           "check(good:call('ok', {}).content[1].text == 'ok from ok')\n"
           "return 'ok'",
           b->mode, b->want_code, b->want_msg);
  ck_assert_msg(run(code) == 0, "%s: %s", b->mode, err);
}
END_TEST

/* Junk before valid lines, answers to unknown ids and progress for unknown
 * tokens are tolerated (the first two counted); a 2025-06-18 server is
 * accepted; pagination is followed. */
START_TEST(tolerated_input) {
  ck_assert_msg(run("LOG = nil\n"
                    "local s = check(fake('junk'))\n"
                    "check(s:call('ok', {}))\n"
                    "check(s:stats().bad == 1)\n"
                    "local u = check(fake('unknown_ids'))\n"
                    "check(u:call('ok', {}))\n"
                    "check(u:stats().unknown_ids == 5)\n"
                    "local v = check(fake('v0618'))\n"
                    "check(v.version == '2025-06-18', v.version)\n"
                    "local p = check(fake('paged'))\n"
                    "check(#p.tools == 9, #p.tools)\n"
                    /* progress for a token no call has, past every integer type:
                     * ignored, never cast (float-cast-overflow before) */
                    "local hp = check(fake('hostile_progress'))\n"
                    "check(hp:call('ok', {}).content[1].text == 'ok from ok')\n"
                    "local st = check(fake('stateless'))\n"
                    /* NaN is no timeout (it passed a '<= 0' check) */
                    "for _, f in ipairs{'timeout', 'connect_timeout', 'max_message'} do\n"
                    "  local ok, e = pcall(luact.mcp.connect, {command = 'node', args = {'x'}, [f] = 0/0})\n"
                    "  check(not ok and tostring(e):find('must be a positive number'), tostring(e))\n"
                    "end\n"
                    "check(st.version == '2026-07-28', st.version)\n"
                    "return 'ok'") == 0,
                "%s", err);
}
END_TEST

/* An error answer's code is range-checked before its cast to int: 2^32 -
 * 32601 wrapped to -32601 (a real code) and went out without a word. */
START_TEST(respond_error_code_range) {
  ck_assert_msg(run("LOG = nil\n"
                    "local s = check(fake('ok'))\n"
                    "local ok, e = pcall(s._s._respond_error, s._s, 1, (1 << 32) - 32601, 'x')\n"
                    "s:close()\n"
                    "check(not ok and tostring(e):find('not a JSON%-RPC error code'), tostring(e))\n"
                    "return 'ok'") == 0,
                "%s", err);
}
END_TEST

/* The script can ask for an older revision. */
START_TEST(protocol_option) {
  ck_assert_msg(run("local s = check(luact.mcp.connect{command='node', args=EVERYTHING,\n"
                    "  protocol='2025-06-18'})\n"
                    "check(s.version == '2025-06-18', s.version)\n"
                    "return 'ok'") == 0,
                "%s", err);
}
END_TEST

/* A tool whose schema is not JSON Schema is skipped with the reason; the
 * others are there. */
START_TEST(invalid_tool_schema) {
  ck_assert_msg(run("LOG = nil\n"
                    "local s = check(fake('bad_schema'))\n"
                    "check(s.tool.ok and not s.tool.broken)\n"
                    "check(s.skipped.broken and s.skipped.broken:find('schema'), s.skipped.broken)\n"
                    "return 'ok'") == 0,
                "%s", err);
}
END_TEST

/* Output is bounded, screened, and marked; a closing marker inside it is
 * defused. */
START_TEST(untrusted_output) {
  ck_assert_msg(run("LOG = nil\n"
                    "local s = check(fake('big_text', {max_output=1000}))\n"
                    /* twice each: later calls mark the text without _present's
                     * calls (mcp.lua's _direct), and must bound and defuse alike */
                    "for _ = 1, 2 do\n"
                    "  local r = s.tool.ok{}\n"
                    "  check(#r < 1200 and r:find('bytes cut'), #r)\n"
                    "end\n"
                    "local i = check(fake('inject', {screen=function(t)\n"
                    "  if t:find('ignore all previous') then return nil, 'injection' end\n"
                    "  return t end}))\n"
                    "local x, m = i.tool.ok{}\n"
                    "check(x == nil and m:find('withheld by the screen: injection'), m)\n"
                    "local j = check(fake('inject'))\n"
                    "for _ = 1, 2 do\n"
                    "  local y = j.tool.ok{}\n"
                    "  local _, closes = y:gsub('</mcp%-tool%-output>', '')\n"
                    "  check(closes == 1, y)\n"
                    "end\n"
                    /* the mark names the server's label as it is now */
                    "local k = check(fake('ok'))\n"
                    "check(k.tool.ok{}:find('<mcp-tool-output server=\"node\"', 1, true))\n"
                    "k.label = 'renamed'\n"
                    "check(k.tool.ok{}:find('<mcp-tool-output server=\"renamed\"', 1, true))\n"
                    "return 'ok'") == 0,
                "%s", err);
}
END_TEST

/* A tool call's result of one text item skips the result table (l_mcp.c
 * one_text): every other shape, and duplicate keys (the last one wins in
 * the table), must read as the table path reads them. */
START_TEST(result_shapes_read_as_tables_read_them) {
  ck_assert_msg(run("LOG = nil\n"
                    "local s = check(fake('shapes'))\n"
                    "local function inner(r) return (r:match('<mcp%-tool%-output[^>]*>\\n(.*)\\n</mcp%-tool%-output>$')) end\n"
                    "local r = check(s.tool.ok{shape='dup_type'})\n"
                    "check(inner(r) == '[image image/png, 4 bytes base64]', r)\n"
                    "local x, m, c = s.tool.ok{shape='error'}\n"
                    "check(x == nil and c == 'tool_error' and inner(m) == 'bad thing', m)\n"
                    "r = check(s.tool.ok{shape='dup_iserror'})\n"
                    "check(inner(r) == 'fine', r)\n"
                    "r = check(s.tool.ok{shape='two'})\n"
                    "check(inner(r) == 'a\\nb', r)\n"
                    "r = check(s.tool.ok{shape='dup_content'})\n"
                    "check(inner(r) == 'second', r)\n"
                    "r = check(s.tool.ok{shape='dup_text'})\n"
                    "check(inner(r) == 'two', r)\n"
                    "r = check(s.tool.ok{shape='structured'})\n"
                    "check(inner(r) == '{\"n\":1}', r)\n"
                    "return 'ok'") == 0,
                "%s", err);
}
END_TEST

/* The usual answer to a tool call is read without a cJSON tree when it is
 * byte for byte the SDK servers' line (mcp.c fast_text_answer); every line
 * must read as the general path reads it. Each line is answered twice on
 * a fresh session: as it is, and with a space after its '{' (never the
 * fast line, the same JSON): results, messages, codes and the session's
 * message and bad-line counts must be the same. Timeouts stand for lines
 * the general path refuses (bad JSON, bad ids, unknown ids). */
START_TEST(fast_answers_read_as_the_general_path) {
  ck_assert_msg(run("LOG = nil\n"
                    "local function latin1(b) return (b:gsub('.', function(c) return utf8.char(c:byte()) end)) end\n"
                    "local H = '{\"result\":{\"content\":[{\"type\":\"text\",\"text\":\"'\n"
                    "local M = '\"}]},\"jsonrpc\":\"2.0\",\"id\":'\n"
                    "local lines = {\n"
                    "  H .. 'Echo: x' .. M .. '@ID@}', H .. M .. '@ID@}',\n"
                    "  H .. 'caf\\xc3\\xa9 \\xf0\\x9f\\x98\\x80' .. M .. '@ID@}',\n"
                    "  H .. 'bad \\xff' .. M .. '@ID@}', H .. 'sur \\xed\\xa0\\x80' .. M .. '@ID@}',\n"
                    "  H .. 'over \\xc0\\xaf' .. M .. '@ID@}',\n"
                    "  H .. 'q \\\\\" n \\\\n u \\\\u00e9 s \\\\/' .. M .. '@ID@}',\n"
                    "  H .. 'nul \\\\u0000 x' .. M .. '@ID@}', H .. 'tab \\t x' .. M .. '@ID@}',\n"
                    "  H .. 'raw nul \\0 x' .. M .. '@ID@}',\n"
                    "  H .. '</mcp-tool-output> x' .. M .. '@ID@}',\n"
                    "  H .. 'x' .. M .. '0@ID@}', H .. 'x' .. M .. '@ID@.0}', H .. 'x' .. M .. '@ID@e0}',\n"
                    "  H .. 'x' .. M .. '@ID@0000000000000000}', H .. 'x' .. M .. '-@ID@}',\n"
                    "  H .. 'x' .. M .. '}', H .. 'x' .. M .. '@ID@}x', H .. 'x' .. M .. '@ID@}}',\n"
                    "  H .. 'x' .. M .. '@ID@,\"id\":999}', H .. 'x' .. M .. '@ID@,\"x\":1}',\n"
                    "  H .. 'x' .. '\"}],\"isError\":true},\"jsonrpc\":\"2.0\",\"id\":@ID@}',\n"
                    "  H .. 'x' .. '\"}]},\"jsonrpc\":\"2.1\",\"id\":@ID@}',\n"
                    "  H .. 'x' .. '\"}]},\"jsonrpc\":\"2.0\",\"id\":\"@ID@\"}',\n"
                    "  H .. 'x\"' .. M .. '@ID@}',\n"
                    "}\n"
                    "local answered = 0\n"
                    "for i, l in ipairs(lines) do\n"
                    "  local s = check(fake('raw', {timeout = 0.5}))\n"
                    "  local st0 = s:stats()\n"
                    "  local r1, m1, c1 = s.tool.ok{line = latin1(l)}\n"
                    "  local st1 = s:stats()\n"
                    "  local r2, m2, c2 = s.tool.ok{line = latin1('{ ' .. l:sub(2))}\n"
                    "  local st2 = s:stats()\n"
                    "  check(r1 == r2 and m1 == m2 and c1 == c2, i, r1, m1, c1, r2, m2, c2)\n"
                    "  check(st2.bad - st1.bad == st1.bad - st0.bad and\n"
                    "    st2.messages - st1.messages == st1.messages - st0.messages,\n"
                    "    i, st0.bad, st1.bad, st2.bad, st0.messages, st1.messages, st2.messages)\n"
                    "  if r1 then answered = answered + 1 end\n"
                    "  s:close()\n"
                    "end\n"
                    "return tostring(answered)") == 0,
                "%s", err);
  /* neither all answered nor all refused: both kinds were compared */
  ck_assert_msg(strcmp(out, "0") && atoi(out) < 25, "%s", out);
}
END_TEST

/* A plain call of an MCP tool (a live session, no screen, no progress
 * callback, no journal) runs in C (l_mcp.c's mcp._fast, the tool's call):
 * not one Lua function runs for it, counted with a call hook (the
 * session is open and the output mark made by the first call). Before
 * the C path: Tool:call, the validator, effect_run, _direct, ... */
START_TEST(plain_call_runs_no_lua) {
  ck_assert_msg(run("local s = check(luact.mcp.connect{command='node', args=EVERYTHING})\n"
                    "local echo = s.tool.echo\n"
                    "check(echo{message='warm'})\n"
                    "local calls = 0\n"
                    "debug.sethook(function()\n"
                    "  if debug.getinfo(2, 'S').what == 'Lua' then calls = calls + 1 end\n"
                    "end, 'c')\n"
                    "local r = echo:call{message='x'}\n"
                    "debug.sethook()\n"
                    "check(r and r:find('Echo: x', 1, true), r)\n"
                    "check(calls == 0, 'Lua functions run: ' .. calls)\n"
                    /* the same with a screen: Lua (the screen itself, at least) */
                    "s.screen = function(t) return t end\n"
                    "calls = 0\n"
                    "debug.sethook(function()\n"
                    "  if debug.getinfo(2, 'S').what == 'Lua' then calls = calls + 1 end\n"
                    "end, 'c')\n"
                    "local r2 = echo:call{message='x'}\n"
                    "debug.sethook()\n"
                    "check(r2 == r and calls > 0, r2, calls)\n"
                    "s:close()\n"
                    "return 'ok'") == 0,
                "%s", err);
  ck_assert_str_eq(out, "ok");
}
END_TEST

/* The C path answers every call as the Lua path does (Tool.call, the
 * tool's metatable's, with _direct): the same tool called both ways on
 * the same kind of session, results, messages and codes compared: the
 * schema's refusals (and arguments that are not JSON), a tool error, each
 * result shape, text over max_output, a closing mark inside, text that is
 * not UTF-8 or holds a NUL, a request that times out, a server that dies
 * on the call, a label changed after the first call. */
START_TEST(c_path_answers_as_the_lua_path) {
  ck_assert_msg(run("LOG = nil\n"
                    "local function latin1(b) return (b:gsub('.', function(c) return utf8.char(c:byte()) end)) end\n"
                    "local function same(name, a, b)\n"
                    "  for i = 1, 3 do\n"
                    "    check(a[i] == b[i], name, i, tostring(a[i]), tostring(b[i]))\n"
                    "  end\n"
                    "end\n"
                    /* two sessions of one kind: the C path on one, the Lua path on the other */
                    "local function pair(mode, extra)\n"
                    "  local a, b = check(fake(mode, extra)), check(fake(mode, extra))\n"
                    "  local w = mode == 'shapes' and {shape = 'dup_text'} or {}\n"
                    "  if mode ~= 'raw' then a.tool.ok(w) b.tool.ok(w) end\n" /* open, mark made */
                    "  return {a, b}\n"
                    "end\n"
                    "local function both(p, tool, args, name)\n"
                    "  local t, t2 = p[1].tool[tool], p[2].tool[tool]\n"
                    "  local c = table.pack(t:call(args))\n"
                    "  local l = table.pack(getmetatable(t2).call(t2, args))\n"
                    "  same(name, c, l)\n"
                    "  return table.unpack(c, 1, 3)\n"
                    "end\n"
                    "local function mk(mode, extra) return pair(mode, extra) end\n"
                    "local sh = pair('shapes')\n"
                    "for _, shape in ipairs{'dup_type', 'error', 'dup_iserror', 'two', 'dup_content',\n"
                    "    'dup_text', 'structured'} do\n"
                    "  both(sh, 'ok', {shape = shape}, shape)\n"
                    "end\n"
                    "local _, m, c = both(sh, 'ok', {shape = 'error'}, 'error')\n"
                    "check(c == 'tool_error', m, c)\n"
                    "local r = both(mk('big_text', {max_output = 1000}), 'ok', {}, 'big')\n"
                    "check(r:find('bytes cut', 1, true), r)\n"
                    /* whole, and longer than the C path's stack buffer */
                    "r = both(pair('big_text', {max_output = 200000}), 'ok', {}, 'big whole')\n"
                    "check(#r > 100000 and not r:find('bytes cut', 1, true), #r)\n"
                    "r = both(mk('inject'), 'ok', {}, 'inject')\n"
                    "check(r:find('</mcp-tool-output_>', 1, true), r)\n"
                    "local H = '{\"result\":{\"content\":[{\"type\":\"text\",\"text\":\"'\n"
                    "local M = '\"}]},\"jsonrpc\":\"2.0\",\"id\":@ID@}'\n"
                    "local raw = pair('raw', {timeout = 0.5})\n"
                    "for i, l in ipairs{H .. 'plain' .. M, H .. 'plain' .. M, H .. M, H .. 'bad \\xff' .. M,\n"
                    "    H .. 'nul \\\\u0000 x' .. M, H .. 'x' .. '\"}],\"isError\":true},\"jsonrpc\":\"2.0\",\"id\":@ID@}'} do\n"
                    "  both(raw, 'ok', {line = latin1(l)}, 'raw ' .. i)\n"
                    "end\n"
                    "_, m, c = both(mk('ok', {timeout = 0.2}), 'slow', {}, 'slow')\n"
                    "check(c == 'timeout', m, c)\n"
                    /* EVERYTHING's echo: message is a required string */
                    "local function ev() return check(luact.mcp.connect{command='node', args=EVERYTHING}) end\n"
                    "local e1, e2 = ev(), ev()\n"
                    "local echo1, echo2 = e1.tool.echo, e2.tool.echo\n"
                    "check(echo1{message='warm'} and echo2{message='warm'})\n"
                    "local T = getmetatable(echo1)\n"
                    "for i, a in ipairs{{message=1}, {}, {message='x', extra=print}, {message='a\\0b'},\n"
                    "    {message='\\xff'}, setmetatable({message='x'}, {}), {message='ok'}} do\n"
                    "  local x = table.pack(echo1:call(a))\n"
                    "  local y = table.pack(T.call(echo2, a))\n"
                    "  same('echo ' .. i, x, y)\n"
                    "end\n"
                    "_, m, c = echo1:call{message=1}\n"
                    "check(c == 'invalid_arguments', m, c)\n"
                    "local x = table.pack(echo1:call(nil))\n"
                    "local y = table.pack(T.call(echo2, nil))\n"
                    "same('echo nil', x, y)\n"
                    /* the label changed: the mark says the new one */
                    "e1.label, e2.label = 'renamed', 'renamed'\n"
                    "x = table.pack(echo1:call{message='l'})\n"
                    "y = table.pack(T.call(echo2, {message='l'}))\n"
                    "same('label', x, y)\n"
                    "check(x[1]:find('server=\"renamed\"', 1, true), x[1])\n"
                    /* max_output set by the script to what connect refuses */
                    "for _, mo in ipairs{0/0, '100000', 3, 16384} do\n"
                    "  e1.max_output, e2.max_output = mo, mo\n"
                    "  x = table.pack(echo1:call{message='mo'})\n"
                    "  y = table.pack(T.call(echo2, {message='mo'}))\n"
                    "  same('max_output ' .. tostring(mo), x, y)\n"
                    "end\n"
                    "e1:close() e2:close()\n"
                    /* a server that dies on the call: a fresh one each side */
                    "_, m, c = both(mk('die_on_call'), 'ok', {}, 'die')\n"
                    "check(c == 'tool_error' or c == 'server_died', m, c)\n"
                    "return 'ok'") == 0,
                "%s", err);
  ck_assert_str_eq(out, "ok");
}
END_TEST

/* The C path writes a call's params itself (a flat table checked and
 * written in one walk, l_schema.c's lc_l_schema_valid_text; anything else
 * through conv): the bytes must be the Lua path's (l_call). The same
 * arguments sent both ways, each request line as the server logged it,
 * compared without its id: key order, numbers, escapes, UTF-8 keys, more
 * keys than the flat writer takes, nested, empty and non-JSON arguments. */
START_TEST(c_path_request_bytes_as_the_lua_path) {
  char log[] = "/tmp/lc_mcp_log_XXXXXX";
  int fd = mkstemp(log);
  ck_assert_int_ge(fd, 0);
  close(fd);
  char code[4096];
  snprintf(code, sizeof code,
           "LOG = '%s'\n"
           "local s = check(fake('ok'))\n"
           "local t = s.tool.ok\n"
           "check(t{})\n"
           "local T = getmetatable(t)\n"
           "local many = {}\n"
           "for i = 1, 17 do many['k' .. i] = i end\n"
           "local cases = {\n"
           "  {a = 1}, {a = 1.5, b = -0.0, c = 1e300, d = 9007199254740993, e = math.mininteger, f = 0.1},\n"
           "  {z = 'x', a = 'y', m = '\\u{e9}\\u{1F600}', q = '\"\\\\\\n\\t\\1\\127'},\n"
           "  {b = true, a = false}, {ab = 1, a = 2, [''] = 3, ['a\\u{e9}'] = 4, B = 5, ['a b'] = 6},\n"
           "  many, {a = {1, 2}, b = {c = 'd'}}, {}, {a = 0/0}, {a = math.huge}, {[1] = 'x'},\n"
           "}\n"
           "local n = 0\n"
           "for i, a in ipairs(cases) do\n"
           "  local x = table.pack(t:call(a))\n"
           "  local y = table.pack(T.call(t, a))\n"
           "  for k = 1, 3 do check(x[k] == y[k], i, k, tostring(x[k]), tostring(y[k])) end\n"
           "  if x[1] then n = n + 1 end\n"
           "end\n"
           "local calls = {}\n"
           "for l in io.lines(LOG) do\n"
           "  if l:find('\"tools/call\"', 1, true) then calls[#calls + 1] = (l:gsub('\"id\":%%d+', '')) end\n"
           "end\n"
           "check(#calls == 1 + 2 * n, #calls, n)\n"
           "for i = 2, #calls, 2 do check(calls[i] == calls[i + 1], calls[i], calls[i + 1]) end\n"
           "s:close()\n"
           "return tostring(n)",
           log);
  ck_assert_msg(run(code) == 0, "%s", err);
  /* NaN, infinity and an array refused on both paths, the others sent */
  ck_assert_str_eq(out, "8");
  unlink(log);
}
END_TEST

/* A tool whose description changes during the run is refused until the
 * script accepts it. */
START_TEST(rug_pull_refused) {
  ck_assert_msg(run("LOG = nil\n"
                    "local s = check(fake('rugpull'))\n"
                    "check(s.tool.ok{})\n" /* this call makes the server send list_changed */
                    "local r, m, c = s.tool.ok{}\n"
                    "check(r == nil and m:find('changed its description'), m)\n"
                    "check(s:accept('ok'))\n"
                    "check(s.tool.ok{})\n"
                    /* the new listing's new tool was added */
                    "check(s.tool.extra and s.tools[#s.tools] == s.tool.extra, 'no extra tool')\n"
                    "check(s.tool.extra{}:find('ok from extra'))\n"
                    "local s2 = check(fake('rugpull', {on_change=function(n, old, new) return true end}))\n"
                    "check(s2.tool.ok{}) check(s2.tool.ok{})\n"
                    "return 'ok'") == 0,
                "%s", err);
}
END_TEST

/* ---- filesystem and memory servers ---- */

START_TEST(filesystem_server) {
  char dir[] = "/tmp/lc_mcp_fs_XXXXXX";
  ck_assert_ptr_nonnull(mkdtemp(dir));
  char p[600];
  snprintf(p, sizeof p, "%s/notes.txt", dir);
  FILE *f = fopen(p, "w");
  ck_assert_ptr_nonnull(f);
  fputs("the launch code is 1234\n", f);
  fclose(f);
  char code[2048];
  snprintf(code, sizeof code,
           "local s = check(luact.mcp.connect{command='node', args={FS, '%s'}})\n"
           "local read = check(s.tool.read_text_file or s.tool.read_file, 'no read tool')\n"
           "check(read.effect == 'pure', read.effect)\n"
           "local r = check(read{path='%s/notes.txt'})\n"
           "check(r:find('launch code is 1234'), r)\n"
           "local x, m, c = read{path='/etc/passwd'}\n"
           "check(x == nil and c == 'tool_error', m)\n"
           "return 'ok'",
           dir, dir);
  ck_assert_msg(run(code) == 0, "%s", err);
  unlink(p);
  rmdir(dir);
}
END_TEST

/* server-memory keeps a graph per process: one session across calls. */
START_TEST(memory_server_session_reused) {
  char dir[] = "/tmp/lc_mcp_mem_XXXXXX";
  ck_assert_ptr_nonnull(mkdtemp(dir));
  char code[2048];
  snprintf(code, sizeof code,
           "local s = check(luact.mcp.connect{command='node', args={MEMORY},\n"
           "  env={MEMORY_FILE_PATH='%s/m.jsonl'}})\n"
           "check(s.tool.create_entities{entities={{name='Ada', entityType='person',\n"
           "  observations={'wrote the first program'}}}})\n"
           "local g = check(s.tool.read_graph{})\n"
           "check(g:find('Ada') and g:find('first program'), g)\n"
           "check(s.restarts == 0)\n"
           "return 'ok'",
           dir);
  ck_assert_msg(run(code) == 0, "%s", err);
  char p[600];
  snprintf(p, sizeof p, "%s/m.jsonl", dir);
  unlink(p);
  rmdir(dir);
}
END_TEST

/* ---- a ReAct agent over MCP tools, through the mock LLM ---- */

START_TEST(react_over_mcp) {
  const char *script =
      "{\"rules\":["
      "{\"match\":{\"body_contains\":\"Echo: luact\"},"
      " \"reply\":{\"openai\":{\"text\":\"The server said Echo: luact.\"}}},"
      "{\"reply\":{\"openai\":{\"tool_calls\":[{\"id\":\"c1\",\"name\":\"echo\","
      " \"arguments\":{\"message\":\"luact\"}}]}}}]}";
  ck_assert_int_eq(lc_mock_start(&mock, script), 0);
  int rc = run("local s = check(luact.mcp.connect{command='node', args=EVERYTHING})\n"
               "local r = luact.react{model='openai:mock-gpt', base_url=BASE .. '/v1', retries=0,\n"
               "  question='What does echo say?', tools={s.tool.echo}, verbose=false}\n"
               "check(r.status == 'finished', r.status, tostring(r.reason))\n"
               "check(r.steps[1].action == 'echo', r.steps[1].action)\n"
               "check(r.steps[1].observation:find('<mcp%-tool%-output'), r.steps[1].observation)\n"
               "return r.answer");
  lc_mock_stop(&mock);
  ck_assert_msg(rc == 0, "%s", err);
  ck_assert_str_eq(out, "The server said Echo: luact.");
}
END_TEST

/* ---- Streamable HTTP ---- */

static pid_t http_pid;
static int http_port;

/* Starts server-everything's Streamable HTTP transport on a free port and
 * waits (reading its stderr, no sleep) until it listens. */
static pthread_t http_drain;

/* Reads a server's output until it ends, then closes it. */
static void *drain_stream(void *arg) {
  FILE *f = arg;
  char buf[4096];
  while (fread(buf, 1, sizeof buf, f) > 0) {
  }
  fclose(f);
  return NULL;
}

static void http_start(void) {
  char js[700];
  snprintf(js, sizeof js,
           "%s/tests/mcp/node_modules/@modelcontextprotocol/server-everything/dist/index.js",
           lc_test_source_dir());
  for (int attempt = 0; attempt < 5; attempt++) {
    /* Below Linux's ephemeral range (32768-60999): a port there may be
     * some other test's client socket at the moment the server binds. */
    http_port = 20000 + (int)((getpid() * 7919 + attempt * 104729) % 12000);
    int p[2];
    ck_assert_int_eq(pipe(p), 0);
    http_pid = fork();
    if (http_pid == 0) {
      char port[16];
      snprintf(port, sizeof port, "%d", http_port);
      setenv("PORT", port, 1);
      dup2(p[1], 2);
      int devnull = open("/dev/null", O_RDWR);
      dup2(devnull, 0);
      dup2(devnull, 1);
      close(p[0]);
      execlp("node", "node", js, "streamableHttp", (char *)NULL);
      _exit(127);
    }
    close(p[1]);
    FILE *f = fdopen(p[0], "r");
    char line[512];
    int ok = 0;
    while (fgets(line, sizeof line, f)) {
      if (strstr(line, "listening on port")) {
        ok = 1;
        break;
      }
    }
    if (ok) {
      /* Its stderr stays read until it exits: node dies of EPIPE when it
       * logs to a pipe nobody reads (seen as a "couldn't connect" later). */
      ck_assert_int_eq(pthread_create(&http_drain, NULL, drain_stream, f), 0);
      /* And it takes a connection: CI once saw "connection refused" right
       * after the listening line. */
      for (int k = 0; k < 200; k++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)http_port)};
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        int up = fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
        if (fd >= 0) close(fd);
        if (up) return;
        ck_assert_msg(waitpid(http_pid, NULL, WNOHANG) == 0,
                      "server-everything exited after its listening line");
        lc_test_nap_ms(50);
      }
      ck_abort_msg("server-everything said it listens on %d but refuses connections", http_port);
    }
    fclose(f);
    waitpid(http_pid, NULL, 0);
  }
  ck_abort_msg("server-everything did not start over HTTP");
}

static void http_stop(void) {
  kill(http_pid, SIGKILL);
  waitpid(http_pid, NULL, 0);
  pthread_join(http_drain, NULL);
}

START_TEST(everything_http) {
  http_start();
  char code[3000];
  snprintf(code, sizeof code,
           "local s, e = luact.mcp.connect{url='http://127.0.0.1:%d/mcp',\n"
           "  headers={['X-Test']='1'}}\n"
           "check(s, e)\n"
           "check(s.version == '2025-11-25', s.version)\n"
           "check(s.tool.echo{message='over http'}:find('Echo: over http'))\n"
           "local seen, last = 0\n"
           "local r = s:call('trigger-long-running-operation', {duration=1, steps=2},\n"
           "  {on_progress=function(p) seen = seen + 1; last = p.progress end})\n"
           "check(r and seen >= 1 and last == 2, 'progress', seen)\n"
           /* concurrent calls on one session */
           "local ts = {}\n"
           "for i = 1, 8 do ts[i] = luact.spawn(function() return s.tool['get-sum']{a=i, b=1} end) end\n"
           "for i = 1, 8 do local ok, v = luact.wait(ts[i]); check(v:find(tostring(i+1)), v) end\n"
           "local x, m, c = luact.timeout(0.3, function()\n"
           "  return s:call('trigger-long-running-operation', {duration=20, steps=2}) end)\n"
           "check(x == nil and c == 'timeout', m, c)\n"
           "check(s.tool.echo{message='after'}:find('after'))\n"
           "return 'ok'",
           http_port);
  int rc = run(code);
  http_stop();
  ck_assert_msg(rc == 0, "%s", err);
}
END_TEST

/* The server gone (connection refused) is a clear error, not a hang. */
START_TEST(http_refused) {
  ck_assert_msg(run("local s, m, c = luact.mcp.connect{url='http://127.0.0.1:9/mcp',\n"
                    "  connect_timeout=10}\n"
                    "check(s == nil and c == 'mcp_connect', m, c)\n"
                    "check(m:find('HTTP transfer failed'), m)\n"
                    "return 'ok'") == 0,
                "%s", err);
}
END_TEST

/* luact run --record JOURNAL SCRIPT (--replay with replay), its output
 * in out; it must exit 0. */
static void run_journaled(int replay, const char *journal, const char *script) {
  char cmd[4096];
  snprintf(cmd, sizeof cmd, "%s/luact run %s %s %s 2>&1", LC_BINARY_DIR,
           replay ? "--replay" : "--record", journal, script);
  FILE *p = popen(cmd, "r");
  ck_assert_ptr_nonnull(p);
  size_t n = fread(out, 1, sizeof out - 1, p);
  out[n] = '\0';
  ck_assert_msg(pclose(p) == 0, "%s", out);
}

/* A run that records journals a plain call in C too (l_mcp.c: the effect
 * begun and ended there, or handed to a Lua token when the rest of the
 * call is Lua's): every line must be the one Tool.call's Lua path writes.
 * Twin sessions of one kind, each call made both ways in turn; the
 * journal's tool lines compared in pairs without their id, order and
 * latency: arguments of every shape (the request text is the params'
 * arguments, not made again), each result shape, a tool error, text over
 * max_output, a closing mark inside, a request that times out, a call
 * killed mid-flight (its cancelled line), a server that dies on the call.
 * A journaled plain call runs no Lua function. The journal then replays
 * (the Lua path's checks of request and schema hash pass on the C path's
 * lines) and gives the same results. */
START_TEST(journaled_c_path_lines_as_the_lua_path) {
  char dir[] = "/tmp/lc_mcp_jc_XXXXXX";
  ck_assert_ptr_nonnull(mkdtemp(dir));
  char script[700], journal[700];
  snprintf(script, sizeof script, "%s/agent.lua", dir);
  snprintf(journal, sizeof journal, "%s/run.jsonl", dir);
  const char *src = lc_test_source_dir();
  FILE *f = fopen(script, "w");
  ck_assert_ptr_nonnull(f);
  fprintf(f,
          "local FAKE = '%s/tests/mcp/fake_server.js'\n"
          "local EV = {'%s/tests/mcp/node_modules/@modelcontextprotocol/server-everything/dist/index.js', 'stdio'}\n"
          "local function fake(mode, extra)\n"
          "  local t = {command='node', args={FAKE, mode}, connect_timeout=20}\n"
          "  for k, v in pairs(extra or {}) do t[k] = v end\n"
          "  return assert(luact.mcp.connect(t))\n"
          "end\n"
          "local function pair(mode, extra) return {fake(mode, extra), fake(mode, extra)} end\n"
          "local function latin1(b) return (b:gsub('.', function(c) return utf8.char(c:byte()) end)) end\n"
          "local n = 0\n"
          "local function same(x, y, what)\n"
          "  for i = 1, 4 do assert(x[i] == y[i], what .. ': ' .. tostring(x[i]) .. ' / ' .. tostring(y[i])) end\n"
          "  n = n + 1\n"
          "end\n"
          "local function both(p, tool, args, what)\n"
          "  local t, t2 = p[1].tool[tool], p[2].tool[tool]\n"
          "  same(table.pack(pcall(t.call, t, args)), table.pack(pcall(getmetatable(t2).call, t2, args)), what)\n"
          "end\n"
          "local ev = {assert(luact.mcp.connect{command='node', args=EV}), assert(luact.mcp.connect{command='node', args=EV})}\n"
          "for i, a in ipairs{{message='warm'}, {message=1}, {message='a\\0b'}, {message='\\xff'}, {message='q\"\\\\\\n'}} do\n"
          "  both(ev, 'echo', a, 'echo ' .. i)\n"
          "end\n"
          "local ok = pair('ok')\n"
          "local many = {}\n"
          "for i = 1, 17 do many['k' .. i] = i end\n"
          "for i, a in ipairs{{a = 1}, {a = 1.5, b = -0.0, c = 1e300, d = 9007199254740993, e = math.mininteger, f = 0.1},\n"
          "    {z = 'x', a = 'y', m = '\\u{e9}\\u{1F600}', q = '\"\\\\\\n\\t\\1\\127'},\n"
          "    {b = true, a = false}, {ab = 1, a = 2, [''] = 3, ['a\\u{e9}'] = 4, B = 5, ['a b'] = 6},\n"
          "    many, {a = {1, 2}, b = {c = 'd'}}, {}, {a = 0/0}, {[1] = 'x'}} do\n"
          "  both(ok, 'ok', a, 'args ' .. i)\n"
          "end\n"
          "both(ok, 'ok', nil, 'nil args')\n"
          "local sh = pair('shapes')\n"
          "for _, shape in ipairs{'dup_type', 'error', 'two', 'structured', 'dup_text'} do both(sh, 'ok', {shape = shape}, shape) end\n"
          "both(pair('big_text', {max_output = 1000}), 'ok', {}, 'big')\n"
          "both(pair('inject'), 'ok', {}, 'inject')\n"
          "local H = '{\"result\":{\"content\":[{\"type\":\"text\",\"text\":\"'\n"
          "local M = '\"}]},\"jsonrpc\":\"2.0\",\"id\":@ID@}'\n"
          "local raw = pair('raw', {timeout = 0.5})\n"
          "for i, l in ipairs{H .. 'plain' .. M, H .. 'bad \\xff' .. M, H .. 'x\"}],\"isError\":true},\"jsonrpc\":\"2.0\",\"id\":@ID@}'} do\n"
          "  both(raw, 'ok', {line = latin1(l)}, 'raw ' .. i)\n"
          "end\n"
          /* the usual answer runs no Lua (the fake server sends nothing
           * unasked: server-everything may send list_changed, which a
           * call reads in Lua) */
          "local calls = 0\n"
          "local plain = {line = latin1(H .. 'plain' .. M)}\n"
          /* (no collector meanwhile: a finalizer of earlier garbage
           * written in Lua would count) */
          "collectgarbage() collectgarbage('stop')\n"
          "debug.sethook(function() if debug.getinfo(2, 'S').what == 'Lua' then calls = calls + 1 end end, 'c')\n"
          "local x = table.pack(pcall(raw[1].tool.ok.call, raw[1].tool.ok, plain))\n"
          "debug.sethook()\n"
          "collectgarbage('restart')\n"
          /* a replay answers from the journal: no C path there */
          "local c_path = rawget(raw[1].tool.ok, 'call') ~= nil\n"
          "print(c_path and 'c path' or 'lua path')\n"
          "assert(x[2]:find('plain', 1, true) and (calls == 0) == c_path, 'Lua functions run: ' .. calls)\n"
          "same(x, table.pack(pcall(getmetatable(raw[2].tool.ok).call, raw[2].tool.ok, plain)), 'hooked')\n"
          /* a line that answers nothing (a notification): the call
           * times out (raw's 0.5 s), or is killed mid-flight first
           * (luact.timeout's child, the call in it) */
          "local note = {line = '{\"jsonrpc\":\"2.0\",\"method\":\"notifications/message\",\"params\":{\"level\":\"info\",\"data\":\"x\"}}'}\n"
          "both(raw, 'ok', note, 'timeout')\n"
          "same(table.pack(luact.timeout(0.2, function() return raw[1].tool.ok:call(note) end)),\n"
          "  table.pack(luact.timeout(0.2, function() return getmetatable(raw[2].tool.ok).call(raw[2].tool.ok, note) end)), 'killed')\n"
          "both(pair('die_on_call'), 'ok', {}, 'die')\n"
          "print('pairs ' .. n)\n",
          src, src);
  fclose(f);
  for (int replay = 0; replay < 2; replay++) {
    run_journaled(replay, journal, script);
    ck_assert_msg(strstr(out, "pairs 30\n"), "%s", out);
    ck_assert_msg(strstr(out, replay ? "lua path\n" : "c path\n"), "%s", out);
  }
  size_t len;
  char *j = lc_test_read_file(journal, &len);
  ck_assert_ptr_nonnull(j);
  char *lines[128];
  int nl = 0, cancelled = 0;
  for (char *save = NULL, *l = strtok_r(j, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
    cJSON *o = cJSON_Parse(l);
    ck_assert_msg(o, "%s", l);
    const cJSON *kind = cJSON_GetObjectItemCaseSensitive(o, "kind");
    if (cJSON_IsString(kind) && !strcmp(kind->valuestring, "tool")) {
      cJSON_DeleteItemFromObjectCaseSensitive(o, "id");
      cJSON_DeleteItemFromObjectCaseSensitive(o, "order");
      cJSON_DeleteItemFromObjectCaseSensitive(o, "latency_ms");
      cancelled += cJSON_GetObjectItemCaseSensitive(o, "cancelled") != NULL;
      ck_assert_int_lt(nl, 128);
      lines[nl++] = cJSON_PrintUnformatted(o);
    }
    cJSON_Delete(o);
  }
  /* the arguments refused before the effect (a number for echo's string,
   * an array) or that cannot be journaled (a NUL, not UTF-8, NaN) journal
   * nothing on either path: 30 pairs, 25 with lines */
  ck_assert_int_eq(nl, 2 * 25);
  ck_assert_int_eq(cancelled, 2);
  for (int i = 0; i < nl; i += 2)
    ck_assert_msg(!strcmp(lines[i], lines[i + 1]), "pair %d:\n%s\n%s", i / 2, lines[i], lines[i + 1]);
  for (int i = 0; i < nl; i++) free(lines[i]);
  free(j);
  unlink(journal);
  unlink(script);
  rmdir(dir);
}
END_TEST

/* A replay of a recorded run answers the listing and the calls from the
 * journal: the server is never started (its log file stays absent). */
START_TEST(replay_starts_no_server) {
  char dir[] = "/tmp/lc_mcp_rep_XXXXXX";
  ck_assert_ptr_nonnull(mkdtemp(dir));
  char script[700], journal[700], log[700];
  snprintf(script, sizeof script, "%s/agent.lua", dir);
  snprintf(journal, sizeof journal, "%s/run.jsonl", dir);
  snprintf(log, sizeof log, "%s/server.log", dir);
  FILE *f = fopen(script, "w");
  ck_assert_ptr_nonnull(f);
  fprintf(f,
          "local s = assert(luact.mcp.connect{command='node', args={'%s/tests/mcp/fake_server.js',"
          " 'ok', '%s'}})\n"
          "print(s.tool.ok{})\n",
          lc_test_source_dir(), log);
  fclose(f);
  for (int replay = 0; replay < 2; replay++) {
    run_journaled(replay, journal, script);
    ck_assert_msg(strstr(out, "ok from ok"), "%s", out);
    struct stat st;
    if (!replay) {
      ck_assert_int_eq(stat(log, &st), 0); /* the recording ran the server */
      unlink(log);
    } else {
      ck_assert_msg(stat(log, &st) != 0, "the replay started the server");
    }
  }
  unlink(script);
  unlink(journal);
  rmdir(dir);
}
END_TEST

/* examples/mcp_files runs offline against its own mock script. */
START_TEST(example_mcp_files) {
  char script[512], cmd[2048];
  snprintf(script, sizeof script, "%s/examples/mcp_files/mock.json", lc_test_source_dir());
  ck_assert_int_eq(lc_mock_start_file(&mock, script, NULL), 0);
  snprintf(cmd, sizeof cmd,
           "OPENAI_BASE_URL='%s/v1' LUACT_MODEL=openai:mock-gpt %s/luact run --json --quiet "
           "%s/examples/mcp_files/agent.lua 2>/dev/null",
           mock.base_url, LC_BINARY_DIR, lc_test_source_dir());
  FILE *p = popen(cmd, "r");
  ck_assert_ptr_nonnull(p);
  size_t n = fread(out, 1, sizeof out - 1, p);
  out[n] = '\0';
  int rc = pclose(p);
  int llm = lc_mock_count_requests(&mock, "/v1/chat/completions");
  lc_mock_stop(&mock);
  ck_assert_msg(rc == 0, "%s", out);
  ck_assert_msg(strstr(out, "\"answer\":\"Grace owns the MCP server work; it ships in Q2.\""), "%s", out);
  ck_assert_msg(strstr(out, "\"status\":\"finished\""), "%s", out);
  ck_assert_int_eq(llm, 3);
}
END_TEST

/* ---- luact mcp serve ---- */

/* The official TypeScript SDK client drives `luact mcp serve`. */
START_TEST(serve_driven_by_sdk_client) {
  char cmd[2048];
  snprintf(cmd, sizeof cmd, "cd %s/tests/mcp && node sdk_client.mjs %s/luact agents 2>&1",
           lc_test_source_dir(), LC_BINARY_DIR);
  FILE *p = popen(cmd, "r");
  ck_assert_ptr_nonnull(p);
  size_t n = fread(out, 1, sizeof out - 1, p);
  out[n] = '\0';
  ck_assert_msg(pclose(p) == 0, "%s", out);
  const char *want[] = {
      "\"version\":{\"name\":\"luact\"",
      "\"name\":\"add\",\"description\":\"Adds two numbers.\"",
      "\"annotations\":{\"readOnlyHint\":true}",
      "\"name\":\"shout\"",
      "\"add\":{\"content\":[{\"type\":\"text\",\"text\":\"{\\\"sum\\\":42}\"}],\"structuredContent\":{\"sum\":42}}",
      "\"shout\":{\"content\":[{\"type\":\"text\",\"text\":\"HELLO MCP\"}]}",
      "expected number, got string",
      "\"isError\":true",
      "unknown tool: nope",
  };
  for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
    ck_assert_msg(strstr(out, want[i]), "missing %s in %s", want[i], out);
}
END_TEST

/* luact's client against luact's server: the stateless revision is
 * negotiated (server/discover), and a killed call is cancelled there. */
START_TEST(serve_driven_by_luact) {
  char code[2048];
  snprintf(code, sizeof code,
           "local s = check(luact.mcp.connect{command='%s/luact',\n"
           "  args={'mcp', 'serve', '%s/tests/mcp/agents'}})\n"
           "check(s.version == '2026-07-28', s.version)\n"
           "check(s.tool.add.effect == 'pure' and s.tool.shout.effect == 'at_most_once')\n"
           "check(s.tool.add{a=1, b=2}:find('\"sum\":3'))\n"
           "check(s.tool.shout{question='x'}:find('X'))\n"
           /* progress from a served run */
           "local seen = {}\n"
           "check(s:call('count', {}, {on_progress=function(p) seen[#seen+1] = p.message end}))\n"
           /* reports that arrive together are coalesced: the newest counts */
           "check(#seen >= 1 and seen[#seen] == 'step 3', table.concat(seen, ','))\n"
           /* a cancelled call kills the served task (its guard runs); the
            * kill comes once the tool reports that it runs */
           "local marker = os.tmpname() os.remove(marker)\n"
           "local started = false\n"
           "local t = luact.spawn(function() return s:call('wait', {marker=marker},\n"
           "  {on_progress=function() started = true end}) end)\n"
           "while not started do luact.sleep(0.01) end\n"
           "luact.kill(t)\n"
           "check(s:call('count', {}))\n" /* the server went on; the cancel came before this */
           "local f = io.open(marker)\n"
           "check(f and f:read('a') == 'cancelled', 'the served task was not cancelled')\n"
           "f:close() os.remove(marker)\n"
           "return 'ok'",
           LC_BINARY_DIR, lc_test_source_dir());
  ck_assert_msg(run(code) == 0, "%s", err);
}
END_TEST

/* Elicitation from a server goes through luact.ask (here --input, the
 * journaled path); no answer declines. */
START_TEST(elicitation_through_ask) {
  char dir[] = "/tmp/lc_mcp_el_XXXXXX";
  ck_assert_ptr_nonnull(mkdtemp(dir));
  char script[700], answers[700], cmd[4096];
  snprintf(script, sizeof script, "%s/el.lua", dir);
  snprintf(answers, sizeof answers, "%s/answers.txt", dir);
  FILE *f = fopen(script, "w");
  ck_assert_ptr_nonnull(f);
  fprintf(f,
          "local s = assert(luact.mcp.connect{command='node', args={'%s/tests/mcp/fake_server.js',"
          " 'elicit'}})\n"
          "print(s.tool.ok{})\n",
          lc_test_source_dir());
  fclose(f);
  const char *inputs[] = {"Oslo\n\n", ""};
  const char *want[] = {"elicited accept {\"city\":\"Oslo\",\"days\":3}", "elicited decline null"};
  for (int i = 0; i < 2; i++) {
    f = fopen(answers, "w");
    ck_assert_ptr_nonnull(f);
    fputs(inputs[i], f);
    fclose(f);
    snprintf(cmd, sizeof cmd, "%s/luact run --input %s %s 2>&1", LC_BINARY_DIR, answers, script);
    FILE *p = popen(cmd, "r");
    ck_assert_ptr_nonnull(p);
    size_t n = fread(out, 1, sizeof out - 1, p);
    out[n] = '\0';
    ck_assert_msg(pclose(p) == 0, "%s", out);
    ck_assert_msg(strstr(out, want[i]), "%s", out);
  }
  unlink(script);
  unlink(answers);
  rmdir(dir);
}
END_TEST

/* server-everything's elicitation answered by the script's on_elicit. */
START_TEST(elicitation_on_elicit) {
  ck_assert_msg(run("local asked\n"
                    "local s = check(luact.mcp.connect{command='node', args=EVERYTHING,\n"
                    "  on_elicit=function(p) asked = p.message; return {name='Ada'} end})\n"
                    "local r = check(s:call('trigger-elicitation-request', {}))\n"
                    "local t = r.content[2] and r.content[2].text or r.content[1].text\n"
                    "check(t:find('Name: Ada'), t)\n"
                    "check(asked and asked:find('Please provide'), tostring(asked))\n"
                    "return 'ok'") == 0,
                "%s", err);
}
END_TEST

/* With a 2026-07-28 server every request carries the version and the
 * capabilities in _meta, and no initialize is sent. */
START_TEST(stateless_meta) {
  char log[] = "/tmp/lc_mcp_log_XXXXXX";
  int fd = mkstemp(log);
  ck_assert_int_ge(fd, 0);
  close(fd);
  char code[1024];
  snprintf(code, sizeof code,
           "LOG = '%s'\n"
           "local s = check(fake('stateless', {on_elicit=function(p) return {city='Oslo'} end}))\n"
           "check(s.version == '2026-07-28')\n"
           /* a multi round-trip: input_required, answered, sent again */
           "local r = check(s:call('ask', {}))\n"
           "local t = r.content[1].text\n"
           "check(t:find('state opaque-1 answer', 1, true) and t:find('Oslo') and t:find('accept'), t)\n"
           /* sampling asked in a round: a clear error at once, not 8 rounds */
           "local x, m, c = s:call('sample', {})\n"
           "check(x == nil and c == 'mcp_error' and m:find('sampling/createMessage', 1, true), m)\n"
           "return 'ok'", log);
  ck_assert_msg(run(code) == 0, "%s", err);
  size_t n;
  char *t = lc_test_read_file(log, &n);
  ck_assert_ptr_nonnull(t);
  ck_assert_msg(!strstr(t, "\"initialize\""), "%s", t);
  const char *list = strstr(t, "\"tools/list\"");
  ck_assert_msg(list && strstr(list, "\"io.modelcontextprotocol/protocolVersion\":\"2026-07-28\""),
                "%s", t);
  ck_assert_msg(strstr(list, "io.modelcontextprotocol/clientCapabilities"), "%s", t);
  free(t);
  unlink(log);
}
END_TEST

/* The line of text holding needle, as its own string (NULL if none). */
static char *line_with(const char *t, const char *needle) {
  const char *p = strstr(t, needle);
  if (!p) return NULL;
  const char *b = p, *e = strchr(p, '\n');
  while (b > t && b[-1] != '\n') b--;
  size_t n = e ? (size_t)(e - b) : strlen(b);
  char *l = malloc(n + 1);
  memcpy(l, b, n);
  l[n] = '\0';
  return l;
}

/* Tool calls are written as text (lc_mcp_call_text): _meta (the stateless
 * revision's fields, a progress token) is added to the params' text as its
 * last member, and a _meta of the caller's own is merged, not doubled. */
START_TEST(text_requests_carry_meta) {
  char log[] = "/tmp/lc_mcp_log_XXXXXX";
  int fd = mkstemp(log);
  ck_assert_int_ge(fd, 0);
  close(fd);
  char code[1024];
  snprintf(code, sizeof code,
           "LOG = '%s'\n"
           "local s = check(fake('stateless'))\n"
           "check(s:call('ok', {}, {on_progress=function() end}).content[1].text == 'ok from ok')\n"
           "check(s:call('ok', {a=1}).content[1].text == 'ok from ok')\n"
           "check(s:request('tools/call', {name='ok', arguments={}, _meta={mine='x'}})"
           ".content[1].text == 'ok from ok')\n"
           "s:close()\n"
           "return 'ok'", log);
  ck_assert_msg(run(code) == 0, "%s", err);
  size_t n;
  char *t = lc_test_read_file(log, &n);
  ck_assert_ptr_nonnull(t);
  char *l1 = line_with(t, "\"progressToken\":");
  ck_assert_msg(l1 && strstr(l1, "\"name\":\"ok\"") &&
                    strstr(l1, "\"io.modelcontextprotocol/protocolVersion\":\"2026-07-28\""),
                "%s", t);
  char *l2 = line_with(t, "\"arguments\":{\"a\":1}");
  ck_assert_msg(l2 && strstr(l2, "\"_meta\":{\"io.modelcontextprotocol/protocolVersion\""), "%s",
                t);
  char *l3 = line_with(t, "\"mine\":\"x\"");
  /* one _meta, holding the caller's field and luact's */
  ck_assert_msg(l3 && strstr(l3, "\"io.modelcontextprotocol/protocolVersion\"") &&
                    !strstr(strstr(l3, "\"_meta\"") + 1, "\"_meta\""),
                "%s", t);
  free(l1);
  free(l2);
  free(l3);
  free(t);
  unlink(log);
}
END_TEST

/* A tool call's request is written without a params table (session:_call)
 * and must be the bytes _start wrote for {name =, arguments =}: keys in
 * order, nested values, no arguments as {}, and the stateless revision's
 * _meta merged in; its errors name the same place. */
START_TEST(tool_call_request_text) {
  for (int stateless = 0; stateless < 2; stateless++) {
    char log[] = "/tmp/lc_mcp_log_XXXXXX";
    int fd = mkstemp(log);
    ck_assert_int_ge(fd, 0);
    close(fd);
    char code[1536];
    snprintf(code, sizeof code,
             "LOG = '%s'\n"
             "local s = check(fake('%s'))\n"
             "check(s.tool.ok{z=1.5, b={1, 2, {c=true}}, a='x\\u{e9}'}:find('ok from ok', 1, true))\n"
             "check(s.tool.ok():find('ok from ok', 1, true))\n"
             "local ok, e = pcall(s._s._call, s._s, 'ok', {a=print}, 1)\n"
             "check(not ok and e == 'MCP params: cannot encode a function at $.arguments.a', e)\n"
             "ok, e = pcall(s._s._call, s._s, 'o\\0k', {}, 1)\n"
             "check(not ok and e == 'MCP params: string contains a NUL byte at $.name', e)\n"
             "s:close()\n"
             "return 'ok'",
             log, stateless ? "stateless" : "ok");
    ck_assert_msg(run(code) == 0, "%s", err);
    size_t n;
    char *t = lc_test_read_file(log, &n);
    ck_assert_ptr_nonnull(t);
    const char *meta = stateless ? ",\"_meta\":{\"io.modelcontextprotocol/protocolVersion\"" : "}}";
    const char *want[] = {
        "\"params\":{\"arguments\":{\"a\":\"x\xc3\xa9\",\"b\":[1,2,{\"c\":true}],\"z\":1.5},"
        "\"name\":\"ok\"",
        "\"params\":{\"arguments\":{},\"name\":\"ok\""};
    for (int i = 0; i < 2; i++) {
      char *l = line_with(t, want[i]);
      ck_assert_msg(l, "%s not in %s", want[i], t);
      ck_assert_msg(strstr(l, want[i]) && !strncmp(strstr(l, want[i]) + strlen(want[i]), meta,
                                                   strlen(meta)),
                    "%s", l);
      free(l);
    }
    free(t);
    unlink(log);
  }
}
END_TEST

/* MCP tools in a workflow state's allowed set: a tool not allowed in the
 * state is refused, an allowed one runs. */
START_TEST(workflow_allowed_set) {
  ck_assert_int_eq(lc_mock_start(&mock,
      "[{\"times\":1,\"reply\":{\"openai\":{\"tool_calls\":[{\"id\":\"c1\",\"name\":\"get-sum\","
      "   \"arguments\":{\"a\":1,\"b\":2}}]}}},"
      " {\"times\":1,\"reply\":{\"openai\":{\"tool_calls\":[{\"id\":\"c2\",\"name\":\"echo\","
      "   \"arguments\":{\"message\":\"wf\"}}]}}},"
      " {\"times\":1,\"reply\":{\"openai\":{\"tool_calls\":[{\"id\":\"c3\",\"name\":\"finish\","
      "   \"arguments\":{\"summary\":\"done\"}}]}}}]"), 0);
  int rc = run("local s = check(luact.mcp.connect{command='node', args=EVERYTHING})\n"
               "local wf = luact.workflow{name='w', initial='a',\n"
               "  tools={echo=s.tool.echo, ['get-sum']=s.tool['get-sum']},\n"
               "  states={a={description='Echo only.', tools={'echo'}, finish=true}}}\n"
               "local r = wf:run{model='openai:m', base_url=BASE .. '/v1', retries=0, message='go'}\n"
               "check(r.status == 'finished', r.status, tostring(r.reason))\n"
               "local seen = {}\n"
               "for _, e in ipairs(r.transcript) do\n"
               "  if e.kind == 'action' then seen[#seen+1] = e.action .. (e.refused and '!' or '') end\n"
               "end\n"
               "return table.concat(seen, ' ')");
  char *log = lc_mock_requests(&mock);
  lc_mock_stop(&mock);
  ck_assert_msg(rc == 0, "%s", err);
  ck_assert_str_eq(out, "get-sum! echo finish");
  ck_assert_msg(log && strstr(log, "Echo: wf"), "%s", log ? log : "(no log)");
  free(log);
}
END_TEST

/* The child gets its three descriptors only: a file the script has open
 * (Lua's io.open is not close-on-exec) is not among its fds. */
START_TEST(child_inherits_no_descriptors) {
  ck_assert_msg(run("local probe = os.tmpname()\n"
                    "local f = assert(io.open(probe, 'w'))\n"
                    "local s = check(luact.mcp.connect{command='node', args=EVERYTHING})\n"
                    "local p = io.popen('ls -l /proc/' .. s:stats().pid .. '/fd')\n"
                    "local fds = p:read('a') p:close()\n"
                    "f:close() os.remove(probe)\n"
                    "check(fds:find('socket:'), fds)\n" /* its stdin */
                    "check(not fds:find(probe, 1, true), 'inherited: ' .. fds)\n"
                    "return 'ok'") == 0,
                "%s", err);
}
END_TEST

/* `luact mcp serve --http`: the SDK client over Streamable HTTP with the
 * bearer token, luact's client too; no token is 401. */
START_TEST(serve_http_bearer) {
  int port;
  FILE *f;
  pid_t pid = lc_test_mcp_serve_http("agents", "test-token-0123456789", &port, &f);
  char cmd[2048];
  snprintf(cmd, sizeof cmd,
           "cd %s/tests/mcp && node sdk_client.mjs --http http://127.0.0.1:%d/mcp "
           "test-token-0123456789 2>&1",
           lc_test_source_dir(), port);
  FILE *c = popen(cmd, "r");
  ck_assert_ptr_nonnull(c);
  static char nout[8192];
  size_t n = fread(nout, 1, sizeof nout - 1, c);
  nout[n] = '\0';
  int crc = pclose(c);
  char code[4096];
  snprintf(code, sizeof code,
           "local url = 'http://127.0.0.1:%d/mcp'\n"
           "local s = check(luact.mcp.connect{url=url,\n"
           "  headers={Authorization='Bearer test-token-0123456789'}})\n"
           "check(s.version == '2026-07-28', s.version)\n"
           "check(s.tool.add{a=20, b=22}:find('\"sum\":42'))\n"
           /* progress over HTTP: the answer becomes an SSE stream */
           "local seen = {}\n"
           "check(s:call('count', {}, {on_progress=function(p) seen[#seen+1] = p.progress end}))\n"
           "check(#seen >= 1 and seen[#seen] == 3, 'progress over http: ' .. #seen)\n"
           /* a cancelled call's POST ends (it was an SSE stream: progress) */
           "local dir = os.tmpname(); os.remove(dir); os.execute('mkdir ' .. dir)\n"
           "local function put(name, text) local f = io.open(dir .. '/' .. name, 'w') f:write(text) f:close() end\n"
           "put('call', '{\"jsonrpc\":\"2.0\",\"id\":77,\"method\":\"tools/call\",\"params\":"
           "{\"name\":\"wait\",\"arguments\":{\"marker\":\"' .. dir .. '/marker\"},\"_meta\":{\"progressToken\":1}}}')\n"
           "put('cancel', '{\"jsonrpc\":\"2.0\",\"method\":\"notifications/cancelled\",\"params\":{\"requestId\":77}}')\n"
           "local curl = \"curl -sN -H 'Authorization: Bearer test-token-0123456789' \" ..\n"
           "  \"-H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream' \"\n"
           "local call = io.popen(curl .. '-d @' .. dir .. '/call ' .. url)\n"
           "local first = call:read('l')\n"
           "check(first and first:find('started'), tostring(first))\n"
           "os.execute(curl .. '-d @' .. dir .. '/cancel ' .. url)\n"
           "call:read('a')\n" /* returns when the server ends the response */
           "call:close()\n"
           "check(io.open(dir .. '/marker'), 'the cancelled task was not killed')\n"
           "os.execute('rm -rf ' .. dir)\n"
           "local x, m, c = luact.mcp.connect{url=url, headers={Authorization='Bearer wrong-token-000000000'}}\n"
           "check(x == nil and m:find('HTTP 401'), m)\n"
           "return 'ok'",
           port);
  int lrc = run(code);
  kill(pid, SIGTERM);
  waitpid(pid, NULL, 0);
  fclose(f);
  ck_assert_msg(crc == 0, "%s", nout);
  ck_assert_msg(strstr(nout, "\"structuredContent\":{\"sum\":42}"), "%s", nout);
  ck_assert_msg(strstr(nout, "HELLO MCP"), "%s", nout);
  ck_assert_msg(lrc == 0, "%s", err);
}
END_TEST

/* sampling/createMessage and roots/list from a server (luact declares
 * neither capability) are answered at once with "Method not found", never
 * left waiting. */
START_TEST(sampling_and_roots_refused) {
  ck_assert_msg(run("local s = check(fake('asks'))\n"
                    "local r = check(s:call('ok', {}, {timeout=20}))\n"
                    "local t = r.content[1].text\n"
                    "check(t == 'sampling: error -32601; roots: error -32601', t)\n"
                    "return 'ok'") == 0,
                "%s", err);
}
END_TEST

/* ---- Streamable HTTP streams (tests/mcp/fake_http_server.js) ---- */

static pid_t fake_http_pid;

/* Starts the scripted HTTP server in mode, logging to log; its port. */
static int fake_http_start(const char *mode, const char *log) {
  return lc_test_node_server_start(&fake_http_pid, "fake_http_server.js", mode, log, NULL);
}

static void fake_http_stop(void) { lc_test_node_server_stop(fake_http_pid); }

/* An SSE answer stream the server closes before the answer, after an event
 * id and `retry: 300`, is resumed with GET and Last-Event-ID, no sooner
 * than the server asked; a 2025-03-26 server is accepted. */
START_TEST(http_sse_resumed) {
  char log[] = "/tmp/lc_mcp_log_XXXXXX";
  int fd = mkstemp(log);
  ck_assert_int_ge(fd, 0);
  close(fd);
  int port = fake_http_start("resume", log);
  char code[1024];
  snprintf(code, sizeof code,
           "local s = check(luact.mcp.connect{url='http://127.0.0.1:%d/mcp'})\n"
           "check(s.version == '2025-03-26', s.version)\n"
           "local r, e = s:call('go', {})\n"
           "check(r, e)\n"
           "check(r.content[1].text == 'resumed answer', r.content[1].text)\n"
           "return 'ok'",
           port);
  int rc = run(code);
  fake_http_stop();
  char *text = lc_test_read_file(log, NULL);
  unlink(log);
  ck_assert_msg(rc == 0, "%s", err);
  ck_assert_ptr_nonnull(text);
  const char *g = strstr(text, "GET last-event-id=ev-1 waited=");
  ck_assert_msg(g, "no resuming GET: %s", text);
  /* only a lower bound: the client waited the retry it was given */
  int waited = atoi(g + strlen("GET last-event-id=ev-1 waited="));
  ck_assert_msg(waited >= 280, "resumed after %d ms, before the server's retry: 300", waited);
  free(text);
}
END_TEST

/* Without an event id the stream cannot be resumed: the call fails clearly
 * (and no GET asks for a stream by id). */
START_TEST(http_sse_not_resumable) {
  char log[] = "/tmp/lc_mcp_log_XXXXXX";
  int fd = mkstemp(log);
  ck_assert_int_ge(fd, 0);
  close(fd);
  int port = fake_http_start("noid", log);
  char code[1024];
  snprintf(code, sizeof code,
           "local s = check(luact.mcp.connect{url='http://127.0.0.1:%d/mcp'})\n"
           "local r, e = s:call('go', {})\n"
           "check(r == nil and e:find('without an answer'), tostring(e))\n"
           "return 'ok'",
           port);
  int rc = run(code);
  fake_http_stop();
  char *text = lc_test_read_file(log, NULL);
  unlink(log);
  ck_assert_msg(rc == 0, "%s", err);
  ck_assert_ptr_nonnull(text);
  ck_assert_msg(!strstr(text, "GET last-event-id=ev"), "%s", text);
  free(text);
}
END_TEST

/* A server request sent on the standalone GET stream (outside the call's
 * own stream) is answered; fields the answer leaves out take the schema's
 * defaults (SEP-1034). */
START_TEST(http_elicit_on_get_stream_defaults) {
  char log[] = "/tmp/lc_mcp_log_XXXXXX";
  int fd = mkstemp(log);
  ck_assert_int_ge(fd, 0);
  close(fd);
  int port = fake_http_start("elicit", log);
  char code[1024];
  snprintf(code, sizeof code,
           "local s = check(luact.mcp.connect{url='http://127.0.0.1:%d/mcp',\n"
           "  on_elicit=function(p) return {age=41} end})\n"
           "local r, e = s:call('go', {}, {timeout=20})\n"
           "check(r, e)\n"
           "local a = luact.json.decode(r.content[1].text)\n"
           "check(a.action == 'accept', r.content[1].text)\n"
           "check(a.content.name == 'John Doe' and a.content.age == 41 and a.content.ok == true,\n"
           "  r.content[1].text)\n"
           "return 'ok'",
           port);
  int rc = run(code);
  fake_http_stop();
  unlink(log);
  ck_assert_msg(rc == 0, "%s", err);
}
END_TEST

/* One case per test, named after it, so CK_RUN_CASE picks one. */
#define CASE(name, add)                                   \
  do {                                                    \
    TCase *tc = tcase_create(#name);                      \
    tcase_add_checked_fixture(tc, setup, NULL);           \
    tcase_set_timeout(tc, 120);                           \
    add;                                                  \
    suite_add_tcase(s, tc);                               \
  } while (0)

/* ---- luact mcp serve: a served run's luact.ask as elicitation ---- */

/* Runs cmd (in tests/mcp), its output in buf; returns its exit status. */
static int node_out(const char *cmd, char *buf, size_t len) {
  char full[2048];
  snprintf(full, sizeof full, "cd %s/tests/mcp && %s 2>&1", lc_test_source_dir(), cmd);
  FILE *p = popen(full, "r");
  ck_assert_ptr_nonnull(p);
  size_t n = fread(buf, 1, len - 1, p);
  buf[n] = '\0';
  return pclose(p);
}

static void want_all(const char *got, const char *const *want, size_t n) {
  for (size_t i = 0; i < n; i++) ck_assert_msg(strstr(got, want[i]), "missing %s in %s", want[i], got);
}

#define ASK_SCHEMA                                                                            \
  "\"requestedSchema\":{\"type\":\"object\",\"properties\":{\"answer\":{\"type\":\"string\"," \
  "\"title\":\"Answer\"}},\"required\":[\"answer\"]}"

/* Accept (from the call's task, a child task of it, ctx.elicit), decline,
 * cancel and a client without the capability, checked on one transport:
 * while a run waits for its answer, the same client's other call runs. */
static void elicit_modes(const char *target) {
  static char buf[16384];
  char cmd[1024];
  snprintf(cmd, sizeof cmd, "node sdk_elicit.mjs accept %s", target);
  ck_assert_msg(node_out(cmd, buf, sizeof buf) == 0, "%s", buf);
  const char *acc[] = {
      "{\"message\":\"What is your name?\"," ASK_SCHEMA "}",
      "\"during\":{\"content\":[{\"type\":\"text\",\"text\":\"meanwhile\"}]}",
      "\"greet\":{\"content\":[{\"type\":\"text\",\"text\":\"Hello, Ada!\"}]}",
      "\"child\":{\"content\":[{\"type\":\"text\",\"text\":\"Hello, Ada!\"}]}",
      "\"message\":\"Your details?\",\"requestedSchema\":{\"type\":\"object\",\"properties\":"
      "{\"age\":{\"type\":\"integer\",\"default\":30}}}",
      "\"structuredContent\":{\"action\":\"accept\",\"content\":{\"age\":41}}",
      "\"text\":\"nil: a secret cannot be asked through MCP elicitation (no_input)\"",
      "\"asked_count\":3",
      "\"after\":{\"content\":[{\"type\":\"text\",\"text\":\"still here\"}]}",
  };
  want_all(buf, acc, sizeof acc / sizeof acc[0]);
  snprintf(cmd, sizeof cmd, "node sdk_elicit.mjs decline %s", target);
  ck_assert_msg(node_out(cmd, buf, sizeof buf) == 0, "%s", buf);
  ck_assert_msg(strstr(buf, "ask failed: the user declined to answer (declined)"), "%s", buf);
  ck_assert_msg(strstr(buf, "\"text\":\"still here\""), "%s", buf);
  snprintf(cmd, sizeof cmd, "node sdk_elicit.mjs cancel %s", target);
  ck_assert_msg(node_out(cmd, buf, sizeof buf) == 0, "%s", buf);
  ck_assert_msg(strstr(buf, "ask failed: the user cancelled the question (cancelled)"), "%s", buf);
  snprintf(cmd, sizeof cmd, "node sdk_elicit.mjs none %s", target);
  ck_assert_msg(node_out(cmd, buf, sizeof buf) == 0, "%s", buf);
  ck_assert_msg(strstr(buf, "\"asked\":[]"), "%s", buf);
  ck_assert_msg(strstr(buf, "\"text\":\"still here\""), "%s", buf);
}

/* luact's own client negotiates 2026-07-28 with luact's server: a served
 * run's questions come back as input_required results (one round per
 * question), answered by on_elicit and sent again with the server's state;
 * the suspended run goes on. conn is the connect table's transport part. */
static void elicit_mrtr(const char *conn) {
  char code[3072];
  snprintf(code, sizeof code,
           "local asked, answer = {}, {answer='Ada'}\n"
           "local s = check(luact.mcp.connect{%s,\n"
           "  on_elicit=function(p) asked[#asked+1] = p.message return answer end})\n"
           "check(s.version == '2026-07-28', s.version)\n"
           "check(s.tool.greet{}:find('Hello, Ada!'))\n"
           "check(s.tool.greet_child{}:find('Hello, Ada!'))\n"
           "check(s.tool.greet_twice{}:find('Hello, Ada Ada!'))\n"
           "answer = {}\n" /* the client fills the default (SEP-1034) */
           "local r = check(s:call('form', {}))\n"
           "check(r.structuredContent.content.age == 30, luact.json.encode(r))\n"
           "answer = nil\n" /* on_elicit's nil declines */
           "check(s.tool.greet{}:find('declined'))\n"
           "local a = table.concat(asked, '|')\n"
           "check(a == 'What is your name?|What is your name?|First name?|Last name?|"
           "Your details?|What is your name?', a)\n"
           "return 'ok'",
           conn);
  ck_assert_msg(run(code) == 0, "%s", err);
}

START_TEST(serve_elicit_mrtr_stdio) {
  char conn[1024];
  snprintf(conn, sizeof conn, "command='%s/luact', args={'mcp', 'serve', '%s/tests/mcp/agents_elicit'}",
           LC_BINARY_DIR, lc_test_source_dir());
  elicit_mrtr(conn);
}
END_TEST

/* Over stdio with the official SDK client. Without the capability the ask
 * fails at once: stdin is the MCP channel, so reading the answer there (as
 * before) took the client's next messages and the call never ended. */
START_TEST(serve_elicit_stdio) {
  char target[1024];
  snprintf(target, sizeof target, "%s/luact agents_elicit", LC_BINARY_DIR);
  elicit_modes(target);
  static char buf[4096];
  char cmd[1200];
  snprintf(cmd, sizeof cmd, "node sdk_elicit.mjs none %s", target);
  ck_assert_msg(node_out(cmd, buf, sizeof buf) == 0, "%s", buf);
  ck_assert_msg(strstr(buf, "ask failed: the MCP client cannot be asked: it did not declare "
                            "elicitation (no_input)"), "%s", buf);
}
END_TEST

/* Over Streamable HTTP: the request is an event of the call's SSE stream,
 * the answer a POST. Without the capability luact.ask reads the server's
 * stdin as before (here /dev/null: no input). */
START_TEST(serve_elicit_http) {
  int port;
  FILE *f;
  pid_t pid = lc_test_mcp_serve_http("agents_elicit", "test-token-0123456789", &port, &f);
  char target[256];
  snprintf(target, sizeof target, "--http http://127.0.0.1:%d/mcp test-token-0123456789", port);
  elicit_modes(target);
  char conn[256];
  snprintf(conn, sizeof conn, "url='http://127.0.0.1:%d/mcp', "
           "headers={Authorization='Bearer test-token-0123456789'}", port);
  elicit_mrtr(conn);
  static char buf[4096];
  char cmd[512];
  snprintf(cmd, sizeof cmd, "node sdk_elicit.mjs none %s", target);
  int rc = node_out(cmd, buf, sizeof buf);
  kill(pid, SIGTERM);
  waitpid(pid, NULL, 0);
  fclose(f);
  ck_assert_msg(rc == 0, "%s", buf);
  ck_assert_msg(strstr(buf, "ask failed: no input (eof)"), "%s", buf);
}
END_TEST

/* A hostile client (tests/mcp/raw_elicit.mjs, raw lines over stdio): a
 * response with the wrong id is not taken as the answer (the right one
 * after it is), malformed results and an error fail the ask with a clear
 * error, an unanswered question ends with the tool's timeout, a cancelled
 * call is not answered, late answers are dropped, and the server goes on. */
START_TEST(serve_elicit_hostile) {
  static char buf[8192];
  char cmd[1024];
  snprintf(cmd, sizeof cmd, "node raw_elicit.mjs %s/luact agents_elicit", LC_BINARY_DIR);
  ck_assert_msg(node_out(cmd, buf, sizeof buf) == 0, "%s", buf);
  const char *want[] = {
      "\"id_is_string\":true",
      "\"pending_after_wrong_ids\":true",
      "\"wrong_id\":\"Hello, Ada!\"",
      "\"malformed\":[\"ask failed: the MCP client answered the elicitation with a malformed "
      "result (mcp_error)\",\"ask failed: the MCP client answered the elicitation with a "
      "malformed result (mcp_error)\",\"ask failed: the MCP client answered the elicitation "
      "with a malformed result (mcp_error)\",\"ask failed: the MCP client accepted the "
      "elicitation without an answer (mcp_error)\",\"ask failed: the MCP client refused the "
      "elicitation: no forms here (mcp_error)\"]",
      "\"never\":{\"text\":\"tool greet_soon timed out after 1 s\",\"isError\":true}",
      "\"after_cancel\":\"still here\"",
      "\"cancelled_call_answered\":false",
      "\"mrtr_first\":{\"resultType\":\"input_required\",\"methods\":[\"elicitation/create\"]}",
      "\"mrtr_forged\":{\"code\":-32602,\"message\":\"unknown or expired requestState\"}",
      "\"mrtr_no_answer\":\"ask failed: the MCP client refused the elicitation: no answer in "
      "inputResponses (mcp_error)\"",
      "\"mrtr_reused\":{\"code\":-32602,\"message\":\"unknown or expired requestState\"}",
      "\"exit\":0",
  };
  want_all(buf, want, sizeof want / sizeof want[0]);
}
END_TEST

/* A client session and a server channel in one state: both are closed
 * before the loop goes. Each had a close list of its own, hooked into the
 * scheduler's one at-free slot, so the second replaced the first and left
 * its watchers on a freed loop (ASan: heap-use-after-free at exit). */
START_TEST(client_and_server_close_before_the_loop) {
  ck_assert_msg(run("local h, e = luact.mcp._http(0, 'tok-0123456789abcdef')\n"
                    "check(h, e)\n"
                    "local s, e2 = luact.mcp.connect{command='node', args=EVERYTHING}\n"
                    "check(s, e2)\n"
                    "local h2 = check(luact.mcp._http(0, 'tok-0123456789abcdef'))\n"
                    "return 'both open'") == 0,
                "%s", err);
  ck_assert_str_eq(out, "both open");
}
END_TEST

Suite *mcp_suite(void) {
  Suite *s = suite_create("mcp");
  CASE(everything_stdio, tcase_add_test(tc, everything_stdio));
  CASE(client_and_server_close_before_the_loop,
       tcase_add_test(tc, client_and_server_close_before_the_loop));
  CASE(child_inherits_no_descriptors, tcase_add_test(tc, child_inherits_no_descriptors));
  CASE(methods_refuse_a_wrong_self, tcase_add_test(tc, methods_refuse_a_wrong_self));
  CASE(replaced_fn_still_gets_its_ctx, tcase_add_test(tc, replaced_fn_still_gets_its_ctx));
  CASE(everything_env_is_only_given, tcase_add_test(tc, everything_env_is_only_given));
  CASE(everything_progress_resources_prompts, tcase_add_test(tc, everything_progress_resources_prompts));
  CASE(cancel_on_kill, tcase_add_test(tc, cancel_on_kill));
  CASE(tool_timeout_fires_and_cancels, tcase_add_test(tc, tool_timeout_fires_and_cancels));
  CASE(tool_timeout_direct_path, tcase_add_test(tc, tool_timeout_direct_path));
  CASE(direct_path_keeps_journal_names, tcase_add_test(tc, direct_path_keeps_journal_names));
  CASE(slow_calls_do_not_block_a_fast_one, tcase_add_test(tc, slow_calls_do_not_block_a_fast_one));
  CASE(text_requests_carry_meta, tcase_add_test(tc, text_requests_carry_meta));
  CASE(tool_call_request_text, tcase_add_test(tc, tool_call_request_text));
  CASE(server_dies_mid_call, tcase_add_loop_test(tc, server_dies_mid_call, 0, 2));
  CASE(server_killed_mid_call, tcase_add_loop_test(tc, server_killed_mid_call, 0, 2));
  CASE(bad_servers, tcase_add_loop_test(tc, bad_servers, 0, (int)(sizeof bads / sizeof bads[0])));
  CASE(tolerated_input, tcase_add_test(tc, tolerated_input));
  CASE(respond_error_code_range, tcase_add_test(tc, respond_error_code_range));
  CASE(protocol_option, tcase_add_test(tc, protocol_option));
  CASE(invalid_tool_schema, tcase_add_test(tc, invalid_tool_schema));
  CASE(untrusted_output, tcase_add_test(tc, untrusted_output));
  CASE(fast_answers_read_as_the_general_path,
       tcase_add_test(tc, fast_answers_read_as_the_general_path));
  CASE(result_shapes_read_as_tables_read_them,
       tcase_add_test(tc, result_shapes_read_as_tables_read_them));
  CASE(rug_pull_refused, tcase_add_test(tc, rug_pull_refused));
  CASE(plain_call_runs_no_lua, tcase_add_test(tc, plain_call_runs_no_lua));
  CASE(c_path_request_bytes_as_the_lua_path,
       tcase_add_test(tc, c_path_request_bytes_as_the_lua_path));
  CASE(c_path_answers_as_the_lua_path, tcase_add_test(tc, c_path_answers_as_the_lua_path));
  CASE(filesystem_server, tcase_add_test(tc, filesystem_server));
  CASE(memory_server_session_reused, tcase_add_test(tc, memory_server_session_reused));
  CASE(react_over_mcp, tcase_add_test(tc, react_over_mcp));
  CASE(everything_http, tcase_add_test(tc, everything_http));
  CASE(http_refused, tcase_add_test(tc, http_refused));
  CASE(replay_starts_no_server, tcase_add_test(tc, replay_starts_no_server));
  CASE(journaled_c_path_lines_as_the_lua_path,
       tcase_add_test(tc, journaled_c_path_lines_as_the_lua_path));
  CASE(example_mcp_files, tcase_add_test(tc, example_mcp_files));
  CASE(serve_driven_by_sdk_client, tcase_add_test(tc, serve_driven_by_sdk_client));
  CASE(serve_http_bearer, tcase_add_test(tc, serve_http_bearer));
  CASE(serve_driven_by_luact, tcase_add_test(tc, serve_driven_by_luact));
  CASE(elicitation_through_ask, tcase_add_test(tc, elicitation_through_ask));
  CASE(elicitation_on_elicit, tcase_add_test(tc, elicitation_on_elicit));
  CASE(stateless_meta, tcase_add_test(tc, stateless_meta));
  CASE(workflow_allowed_set, tcase_add_test(tc, workflow_allowed_set));
  CASE(sampling_and_roots_refused, tcase_add_test(tc, sampling_and_roots_refused));
  CASE(http_sse_resumed, tcase_add_test(tc, http_sse_resumed));
  CASE(http_sse_not_resumable, tcase_add_test(tc, http_sse_not_resumable));
  CASE(http_elicit_on_get_stream_defaults, tcase_add_test(tc, http_elicit_on_get_stream_defaults));
  CASE(serve_elicit_stdio, tcase_add_test(tc, serve_elicit_stdio));
  CASE(serve_elicit_http, tcase_add_test(tc, serve_elicit_http));
  CASE(serve_elicit_hostile, tcase_add_test(tc, serve_elicit_hostile));
  CASE(serve_elicit_mrtr_stdio, tcase_add_test(tc, serve_elicit_mrtr_stdio));
  return s;
}
