/* check_lua_oom.c: every binding scenario under Lua allocation failures.
 * Each loop test fails the Nth allocation the Lua allocator sees while the
 * script runs, for N = 1, 2, ... until a run meets no failure: every run
 * must end with a clear out-of-memory error (or succeed, when the failure
 * hit something the script survives), never a crash, a panic or a leak
 * (lc_malloc blocks counted here; the ASan build checks the rest). */
#include <check.h>
#include <signal.h>
#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "effect.h"
#include "http.h"
#include "l_effect.h"
#include "l_luact.h"
#include "l_state.h"
#include "lc.h"
#include "loop.h"
#include "sched.h"
#include "util_mcp.h"
#include "util_mock.h"

/* Upper bound on N: every scenario completes well before it. */
#define MAX_FAILS 20000

struct scenario {
  const char *name;
  const char *code;
};

static const struct scenario scenarios[] = {
    {"spawn_wait",
     "local h = luact.spawn(function(a, b) luact.sleep(0) return a + b, 'x' end, 1, 2)\n"
     "local ok, v = luact.wait(h)\n"
     "if not ok then error(v, 0) end\n"
     "return tostring(v)"},
    {"child_error_traceback",
     "local h = luact.spawn(function() local function f() error('boom') end f() end)\n"
     "local ok, e = luact.wait(h)\n"
     "if ok or not tostring(e):find('boom') then error(e, 0) end\n"
     "return 'ok'"},
    {"kill_with_reason",
     "local closed = false\n"
     "local h = luact.spawn(function()\n"
     "  local c <close> = setmetatable({}, {__close = function() closed = true end})\n"
     "  luact.sleep(3600)\n"
     "end)\n"
     "luact.sleep(0)\n"
     "assert(luact.kill(h, 'stopped by the test, with a long reason ' .. string.rep('r', 64)))\n"
     "return 'ok'"},
    {"kill_self_and_parent",
     "local ph\n"
     "ph = luact.spawn(function()\n"
     "  local c = luact.spawn(function() luact.sleep(0) luact.kill(ph, 'up') luact.sleep(3600) end)\n"
     "  luact.wait(c)\n"
     "end)\n"
     "luact.wait(ph)\n"
     "luact.sleep(0) luact.sleep(0)\n"
     "local me\n"
     "me = luact.spawn(function() luact.sleep(0) luact.kill(me, 'me') luact.sleep(3600) end)\n"
     "luact.sleep(0) luact.sleep(0)\n"
     "return 'ok'"},
    {"select",
     "local a = luact.spawn(function() luact.sleep(0) return 1 end)\n"
     "local b = luact.spawn(function() luact.sleep(0) luact.sleep(0) return 2 end)\n"
     "local i = luact.select({a, b})\n"
     "local ok, v = luact.wait(({a, b})[i])\n"
     "if not ok then error(v, 0) end\n"
     "local ok2, w = luact.wait(i == 1 and b or a)\n"
     "if not ok2 then error(w, 0) end\n"
     "return 'ok'"},
    {"group_and_member_kill",
     "local g = luact.group()\n"
     "for i = 1, 3 do g:spawn(function() luact.sleep(i == 2 and 0 or 3600) g:kill('lost') return i end) end\n"
     "local r, ok, e = g:next()\n"
     "if r ~= nil then error(ok and 'g:next gave ' .. r or e, 0) end\n"
     "return 'ok'"},
    {"parallel_map_race",
     "local r = luact.parallel{ a = function() luact.sleep(0) return 1 end, b = function() return 2, 3 end }\n"
     "local m = luact.map({1, 2, 3}, function(x) luact.sleep(0) return x * 2 end, {concurrency = 2})\n"
     "local v = luact.race{ function() luact.sleep(0) return 'fast' end,\n"
     "  function() luact.sleep(0) luact.sleep(0) luact.sleep(0) return 'slow' end }\n"
     "return r.a .. m[3] .. v"},
    {"timeout",
     "local v, msg, code = luact.timeout(0, function() luact.sleep(3600) end)\n"
     "if code ~= 'timeout' then error(msg, 0) end\n"
     "local a, b = luact.timeout(5, function(x) luact.sleep(0) return x, 'y' end, 'x')\n"
     "return a .. b"},
    {"collected_handle",
     "local done = false\n"
     "local function fire() luact.spawn(function() collectgarbage() luact.sleep(0) done = true end) end\n"
     "fire()\n"
     "for i = 1, 50 do if done then break end collectgarbage() luact.sleep(0) end\n"
     "return tostring(done)"},
    {"tool_arguments",
     /* the argument check (lc_conv_to_json) and small objects written as
      * text with their keys kept on the Lua stack (conv.c): a raise anywhere
      * in either leaks nothing. It caught a per-state reused conversion box
      * whose __close an out-of-memory raise could skip (ASan: leaked trees) */
     "local t = luact.tool{name = 't', params = {type = 'object', properties = {\n"
     "  a = {type = 'object'}, b = {type = 'string'}}}, fn = function(x) return x.b end}\n"
     "local v, m1 = t{a = {x = 1, y = {2, 3}, z = {k = 'v'}}, b = 's'}\n"
     "if v ~= 's' then error(tostring(m1), 0) end\n"
     "local bad, msg, code = t{b = 5}\n"
     "if bad ~= nil or code ~= 'invalid_arguments' then error(tostring(msg), 0) end\n"
     "local v3, m3 = t{b = 'u'}\n"
     "if v3 ~= 'u' then error(tostring(m3), 0) end\n"
     "local s = luact.json.encode{name = 'echo', arguments = {message = 'x', n = {a = 1, b = 2}}}\n"
     "return v .. v3 .. #s"},
    {"schema",
     "local v = assert(luact.schema.compile{type = 'object', required = {'a'},\n"
     "  properties = {a = {type = 'integer', minimum = 0}, b = {type = 'array', items = {type = 'string'}}}})\n"
     "assert(v:validate{a = 1, b = {'x', 'y'}})\n"
     "local ok, msg = v:validate{a = -1, b = {1}}\n"
     "if ok or not msg then error('validated a bad value', 0) end\n"
     "return 'ok'"},
    {"retrieval_split",
     "local cs = assert(luact.retrieval.split('# A\\n\\nalpha beta gamma delta\\n\\n## B\\n\\nepsilon zeta eta',\n"
     "  {size = 12, overlap = 3, markdown = true}))\n"
     "if #cs < 2 or cs[#cs].heading ~= 'A > B' then error('bad chunks', 0) end\n"
     "return 'ok'"},
    {"tool_call",
     "local t = luact.tool{name = 'add', params = {type = 'object', required = {'a', 'b'},\n"
     "  properties = {a = {type = 'number'}, b = {type = 'number'}}},\n"
     "  fn = function(x) luact.sleep(0) return {sum = x.a + x.b} end}\n"
     "local r, m = t:call{a = 1, b = 2}\n"
     "if not r then error(m, 0) end\n"
     "if r.sum ~= 3 then error('tool call lost its result', 0) end\n"
     "local n, msg, code = t:call{a = 'x'}\n"
     "if n ~= nil or code ~= 'invalid_arguments' then error(tostring(msg), 0) end\n"
     "return 'ok'"},
    {"effect",
     "local v = luact.effect('clock', 'now', {}, 'pure', function() return {t = 1} end)\n"
     "if type(v) ~= 'table' or v.t ~= 1 then error('effect lost its value', 0) end\n"
     "return 'ok'"},
    {"effect_recorded",
     /* with a recording journal (run_under_oom attaches one): one-line
      * effects whose values are written as given, a table result and a
      * schema hash through the general path, an intent line */
     "for i = 1, 3 do\n"
     "  local a, b, c = luact.effect('tool', 'p', {message = 'x' .. i}, 'pure',\n"
     "    function() return 'v' .. i, true, nil end)\n"
     "  if a ~= 'v' .. i or b ~= true or c ~= nil then error('effect lost its values', 0) end\n"
     "end\n"
     "local t = luact.effect('tool', 'q', {k = {1, 2}}, 'pure', function() return {t = 1} end,\n"
     "  {schema = {type = 'object', properties = {k = {type = 'array'}}}})\n"
     "if type(t) ~= 'table' or t.t ~= 1 then error('effect lost its table', 0) end\n"
     "local o = luact.effect('tool', 'o', {n = 1}, 'at_most_once', function() return 'once' end)\n"
     "if o ~= 'once' then error('effect lost its value', 0) end\n"
     "return 'ok'"},
    {"sql_tool",
     /* the SQL tool's query on its own thread, its rows into Lua, its
      * refusals (a write on a read-only tool) */
     "local path = os.tmpname()\n"
     "local w <close> = setmetatable({}, {__close = function() os.remove(path) end})\n"
     "local db = assert(luact.sql.open(path, {create = true}))\n"
     "assert(db:exec('CREATE TABLE t(a INT, b TEXT); INSERT INTO t VALUES (1, \\'x\\'), (2, \\'y\\')'))\n"
     "db:close()\n"
     "local t = luact.tools.sql{db = path, max_rows = 5}\n"
     "local r, m = t{sql = 'SELECT a, b FROM t WHERE a > ? ORDER BY a', params = {0}}\n"
     "if not r then error(tostring(m), 0) end\n"
     "if #r.rows ~= 2 or r.rows[2].b ~= 'y' then error('rows lost', 0) end\n"
     "local bad, msg, code = t{sql = 'DELETE FROM t'}\n"
     "if bad ~= nil then error('a write went through', 0) end\n"
     "t.close()\n"
     "return 'ok'"},
    {"files_tool",
     /* a read on the offload pool and its content into Lua, through the
      * files tool and the binding, and a refusal */
     "local path = os.tmpname()\n"
     "local w <close> = setmetatable({}, {__close = function() os.remove(path) end})\n"
     "local f = assert(io.open(path, 'w')); f:write(string.rep('line\\n', 40)); f:close()\n"
     "local dir, name = path:match('^(.*)/([^/]+)$')\n"
     "local t = luact.tools.files{root = dir}\n"
     "local r, m = t{action = 'read', path = name}\n"
     "if type(r) ~= 'table' or #r.content ~= 200 then error(tostring(m), 0) end\n"
     "local root <close> = assert(luact.files.root(dir))\n"
     "local c, cm = root:read(name)\n"
     "if c ~= string.rep('line\\n', 40) then error(tostring(cm), 0) end\n"
     "local bad, bm, code = root:read('../' .. name)\n"
     "if bad ~= nil or code ~= 'outside_root' then error(tostring(bm), 0) end\n"
     "return 'ok'"},
    {"retrieval_store",
     /* a collection's jobs on its thread: open, an add, a background
      * search with its rows, a save, a count, a close in turn */
     "local path = os.tmpname()\n"
     "local w <close> = setmetatable({}, {__close = function()\n"
     "  for _, s in ipairs{'', '.hnsw', '.hnsw.tmp', '-wal', '-shm'} do os.remove(path .. s) end end})\n"
     "local st, m = luact.retrieval.store(path, {model = 'm', dimensions = 8})\n"
     "if not st then error(tostring(m), 0) end\n"
     "local c <close> = st\n"
     "local function vec(a) local v = {} for i = 1, 8 do v[i] = math.sin(a + i) end return v end\n"
     "local chunks, vecs = {}, {}\n"
     "for i = 1, 20 do chunks[i] = {text = 'c' .. i}; vecs[i] = vec(i) end\n"
     "local n, am = st:add('doc', 'text', '{}', chunks, vecs)\n"
     "if n ~= 20 then error(tostring(am), 0) end\n"
     "local h, hm = st:search(vec(3), {k = 2, background = true})\n"
     "if not h then error(tostring(hm), 0) end\n"
     "if h[1].text ~= 'c3' then error('wrong hit', 0) end\n"
     "local ok, sm = st:save()\n"
     "if not ok then error(tostring(sm), 0) end\n"
     "local k, km = st:count()\n"
     "if k ~= 20 then error(tostring(km), 0) end\n"
     "st:close()\n"
     "return 'ok'"},
    {"sandbox_run",
     /* a sandbox child's result read back into Lua, and its error */
     "local v, m = luact.sandbox.run('return {n = 1 + 2, s = string.rep(\\'z\\', 10)}')\n"
     "if type(v) ~= 'table' or v.value.n ~= 3 or v.value.s ~= string.rep('z', 10) then\n"
     "  error(tostring(m), 0)\n"
     "end\n"
     "local bad, msg = luact.sandbox.run('error(\\'nope\\')')\n"
     "if bad ~= nil then error('an error came back as a value', 0) end\n"
     "return 'ok'"},
    {"mcp_tool_call",
     /* calls on a live stdio session (luact mcp serve as the server): the
      * tool layer's direct path, the request text, the answer read in
      * place and marked, a refused argument, a raw call */
     "local r, m = S.tool.add{a = 1, b = 2}\n"
     "if not r then error(tostring(m), 0) end\n"
     "if not r:find('3', 1, true) or not r:find('<mcp%-tool%-output') then error(r, 0) end\n"
     "local bad, msg, code = S.tool.add{a = 'x', b = 1}\n"
     "if bad ~= nil or code ~= 'invalid_arguments' then error(tostring(msg), 0) end\n"
     "local raw, e = S:call('add', {a = 2, b = 2})\n"
     "if not raw then error(tostring(e), 0) end\n"
     "return 'ok'"},
    {"llm_chat",
     /* a chat call through curl on the loop (buffered and streamed), its
      * tool call and usage into Lua, and a refused model reply (the
      * mock's malformed body): BASE is the mock LLM's URL */
     "local o = {model = 'openai:m', base_url = BASE, retries = 0,\n"
     "  messages = {{role = 'system', content = 'be brief'}, {role = 'user', content = 'add'}},\n"
     "  tools = {{name = 'add', description = 'adds', parameters = {type = 'object',\n"
     "    properties = {a = {type = 'number'}}}}}}\n"
     "local r, m = luact.llm.chat(o)\n"
     "if not r then error(tostring(m), 0) end\n"
     "if r.tool_calls[1].name ~= 'add' or r.tool_calls[1].arguments.a ~= 1 then error('lost the call', 0) end\n"
     "local n = 0\n"
     "o.stream = function(d) if d.type == 'text' then n = n + #d.text end end\n"
     "o.messages[2].content = 'hello'\n"
     "local s, m2 = luact.llm.chat(o)\n"
     "if not s then error(tostring(m2), 0) end\n"
     "if s.text ~= 'hi there, in pieces' or n ~= #s.text then error('stream lost text', 0) end\n"
     "o.stream, o.messages[2].content = nil, 'garbled'\n"
     "local bad, m3, code = luact.llm.chat(o)\n"
     "if bad ~= nil or code == nil then error('a malformed reply was taken: ' .. tostring(m3), 0) end\n"
     "return 'ok'"},
    {"react_agent",
     /* a ReAct loop in C over Lua tools: the model calls the tool, the
      * observation goes back, then the answer */
     "local add = luact.tool{name = 'add', params = {type = 'object', required = {'a'},\n"
     "  properties = {a = {type = 'number'}}}, fn = function(x) luact.sleep(0) return {sum = x.a + 1} end}\n"
     "local r = luact.react{model = 'openai:m', base_url = BASE, retries = 0, tools = {add},\n"
     "  question = 'react: what is 1 + 1?', limits = {steps = 4}}\n"
     "if r.status ~= 'finished' then error(tostring(r.reason or r.status), 0) end\n"
     "if r.answer ~= 'two' or #r.steps < 2 then error('lost the answer: ' .. tostring(r.answer) .. ' ' .. #r.steps, 0) end\n"
     "return 'ok'"},
    {"http_request",
     /* luact.http: a GET whose JSON body is decoded, a POST of a table as
      * JSON, a URL refused under a base */
     "local r, m = luact.http.get(BASE .. '/_stats')\n"
     "if not r then error(tostring(m), 0) end\n"
     "if r.status ~= 200 or type(r.json) ~= 'table' then error('no JSON', 0) end\n"
     "local p, m2 = luact.http.request{url = BASE .. '/v1/chat/completions', method = 'POST',\n"
     "  body = {model = 'm', messages = {{role = 'user', content = 'hello'}}},\n"
     "  headers = {['x-test'] = 'oom'}}\n"
     "if not p then error(tostring(m2), 0) end\n"
     "if p.status ~= 200 or not p.body:find('hi there', 1, true) then error('lost the body', 0) end\n"
     "local bad, m3, code = luact.http.request{url = BASE .. '/a/../../b', under = BASE .. '/a/'}\n"
     "if bad ~= nil or code ~= 'bad_url' then error('a URL escaped: ' .. tostring(m3), 0) end\n"
     "return 'ok'"},
    {"mcp_stdio_connect",
     /* a stdio session's start-up (the child, the handshake, the tool
      * list into luact tools), a call and the close */
     "local s, m = luact.mcp.connect{command = LUACT, args = {'mcp', 'serve', AGENTS}}\n"
     "if not s then error(tostring(m), 0) end\n"
     "local r, e = s.tool.add{a = 1, b = 2}\n"
     "if not r then error(tostring(e), 0) end\n"
     "if not r:find('3', 1, true) then error(r, 0) end\n"
     "s:close()\n"
     "return 'ok'"},
    {"mcp_http_call",
     /* a Streamable HTTP session (`luact mcp serve --http`, bearer token):
      * discovery, the tool list, a call, a progress stream, the close */
     "local s, m = luact.mcp.connect{url = MCP_URL, headers = {Authorization = 'Bearer ' .. TOKEN}}\n"
     "if not s then error(tostring(m), 0) end\n"
     "local r, e = s.tool.add{a = 20, b = 22}\n"
     "if not r then error(tostring(e), 0) end\n"
     "if not r:find('42', 1, true) then error(r, 0) end\n"
     "local seen = 0\n"
     "local c, e2 = s:call('count', {}, {on_progress = function(p) seen = seen + 1 end})\n"
     "if not c then error(tostring(e2), 0) end\n"
     "if seen < 1 then error('no progress', 0) end\n"
     "s:close()\n"
     "return 'ok'"},
    {"json",
     "local j = luact.json\n"
     "local t = { name = 'x', list = j.array{1, 2.5, 'three', j.null, {deep = {true, false}}}, n = 42 }\n"
     "local s = j.encode(t)\n"
     "local p = j.encode(t, {pretty = true})\n"
     "local back = j.decode(s)\n"
     "if back.list[3] ~= 'three' then error('decode lost data', 0) end\n"
     "return #s .. #p"},
};

/* The mock LLM the network scenarios talk to (uses_mock): one per test,
 * answering every run the same way (rules without "times"). */
static const char mock_script[] =
    "[{\"match\":{\"body_contains\":\"garbled\"},\"reply\":{\"openai\":{\"text\":\"x\"},"
    "\"malformed\":true}},"
    "{\"match\":{\"body_contains\":\"tool_call_id\"},\"reply\":{\"openai\":{\"text\":"
    "\"Thought: done\\nFinal Answer: two\",\"tool_calls\":[{\"id\":\"c2\",\"name\":\"finish\","
    "\"arguments\":{\"answer\":\"two\"}}]}}},"
    "{\"match\":{\"body_contains\":\"react: what\"},\"reply\":{\"openai\":{\"tool_calls\":"
    "[{\"id\":\"c1\",\"name\":\"add\",\"arguments\":{\"a\":1}}]}}},"
    "{\"match\":{\"body_contains\":\"\\\"content\\\":\\\"add\\\"\"},"
    "\"reply\":{\"openai\":{\"tool_calls\":[{\"id\":\"c1\",\"name\":\"add\",\"arguments\":{\"a\":1}}]}}},"
    "{\"reply\":{\"openai\":{\"text\":\"hi there, in pieces\",\"fragment_bytes\":4}}}]";

#define OOM_TOKEN "oom-token-0123456789"

static int uses_mock(const char *name) {
  return !strcmp(name, "llm_chat") || !strcmp(name, "react_agent") ||
         !strcmp(name, "http_request");
}

/* What a scenario needs and does not test, run first in the same state
 * with no failure (NULL: nothing): the MCP session mcp_tool_call calls. */
static const char *setup_of(const char *name) {
  if (!strcmp(name, "mcp_tool_call"))
    return "S = assert(luact.mcp.connect{command = '" LC_BINARY_DIR "/luact',\n"
           "  args = {'mcp', 'serve', '" LC_SOURCE_DIR "/tests/mcp/agents'}})\n"
           "assert(S.tool.add{a = 0, b = 0})\n"
           "return 'ok'";
  return NULL;
}

static int mentions_memory(const char *m) {
  return m && (strstr(m, "not enough memory") || strstr(m, "out of memory") ||
               strstr(m, "Cannot allocate memory")); /* strerror(ENOMEM) */
}

/* Runs scenario i with the Nth allocation of one allocator failing, N =
 * 1, 2, ... until it completes (lua: Lua's allocator; else lc_malloc). */
static void run_under_oom(int i, int lua) {
  const char *only = getenv("LC_OOM_SCENARIO"); /* debugging: one by name */
  if (only && strcmp(only, scenarios[i].name)) return;
  const struct scenario *sc = &scenarios[i];
  struct lc_mock mk;
  int mock = uses_mock(sc->name);
  if (mock) ck_assert_int_eq(lc_mock_start(&mk, mock_script), 0);
  /* mcp_http_call's server, one per test as the mock */
  int http_port = 0;
  FILE *http_err = NULL;
  pid_t http_pid = !strcmp(sc->name, "mcp_http_call")
                       ? lc_test_mcp_serve_http("agents", OOM_TOKEN, &http_port, &http_err)
                       : 0;
  int completed = 0;
  long n;
  for (n = 1; n <= MAX_FAILS && !completed; n++) {
    lc_http_global_init();
    long live = lc_alloc_live();
    lua_State *L = lc_lua_newstate();
    ck_assert_ptr_nonnull(L);
    lc_lua_setup(L);
    if (mock) {
      lua_pushstring(L, mk.base_url);
      lua_setglobal(L, "BASE");
    }
    lua_pushstring(L, LC_BINARY_DIR "/luact");
    lua_setglobal(L, "LUACT");
    lua_pushstring(L, LC_SOURCE_DIR "/tests/mcp/agents");
    lua_setglobal(L, "AGENTS");
    if (http_pid) {
      lua_pushfstring(L, "http://127.0.0.1:%d/mcp", http_port);
      lua_setglobal(L, "MCP_URL");
      lua_pushstring(L, OOM_TOKEN);
      lua_setglobal(L, "TOKEN");
    }
    struct lc_sched *s;
    ck_assert_int_eq(lc_sched_new(L, &s), 0);
    struct lc_journal *j = NULL;
    char jpath[128];
    if (!strcmp(sc->name, "effect_recorded")) {
      char e[256];
      snprintf(jpath, sizeof jpath, "/tmp/lc_oom_%ld.jsonl", (long)getpid());
      unlink(jpath);
      ck_assert_msg(lc_journal_open(LC_JOURNAL_RECORD, jpath, NULL, &j, e, sizeof e) == 0, "%s", e);
      lc_l_journal_attach(L, j);
    }
    const char *setup = setup_of(sc->name);
    if (setup) {
      ck_assert_int_eq(luaL_loadbufferx(L, setup, strlen(setup), "=setup", "t"), LUA_OK);
      struct lc_task *st;
      ck_assert_int_eq(lc_sched_spawn(s, L, 0, NULL, &st), 0);
      ck_assert_msg(lc_sched_run(s, st) == 0 && lc_task_status(st) == LUA_OK, "%s setup: %s",
                    sc->name, lua_tostring(lc_task_thread(st), -1));
      lc_task_release(st);
    }
    ck_assert_int_eq(luaL_loadbufferx(L, sc->code, strlen(sc->code), "=oom", "t"), LUA_OK);
    struct lc_task *task;
    ck_assert_int_eq(lc_sched_spawn(s, L, 0, NULL, &task), 0);
    if (lua) lc_lua_alloc_fail_after(n);
    else lc_alloc_fail_after(n);
    int rc = lc_sched_run(s, task);
    long left_lua = lc_lua_alloc_fail_after(0), left_lc = lc_alloc_fail_after(0);
    /* > 0: the Nth allocation never came, the run met no failure */
    long left = lua ? left_lua : left_lc;
    ck_assert_msg(rc == 0, "%s, failing allocation %ld: %s", sc->name, n, lc_sched_error(s));
    lua_State *co = lc_task_thread(task);
    if (lc_task_status(task) == LUA_OK) {
      /* Done when no failure was met; a run that survived its failure
       * goes on to the next allocation. */
      completed = left > 0;
    } else {
      const char *m = lua_tostring(co, -1);
      ck_assert_msg(mentions_memory(m), "%s, failing allocation %ld: %s", sc->name, n,
                    m ? m : "(not a string)");
    }
    lc_task_release(task);
    lc_sched_free(s);
    lua_close(L);
    if (j) {
      lc_journal_free(j);
      unlink(jpath);
    }
    ck_assert_msg(lc_alloc_live() == live, "%s, failing allocation %ld: %ld blocks leaked",
                  sc->name, n, lc_alloc_live() - live);
  }
  if (mock) ck_assert_int_eq(lc_mock_stop(&mk), 0);
  if (http_pid) {
    kill(http_pid, SIGTERM);
    waitpid(http_pid, NULL, 0);
    fclose(http_err);
  }
  ck_assert_msg(completed, "%s never completed", sc->name);
  if (getenv("LC_OOM_VERBOSE")) fprintf(stderr, "%s: %ld runs (%s)\n", sc->name, n - 1, lua ? "lua" : "lc_malloc");
  /* At least one run had a failure to survive (the json scenario makes
   * no lc_malloc call: cJSON allocates with malloc). */
  if (lua) ck_assert_int_gt(n, 2);
}

START_TEST(scenario_under_lua_oom) { run_under_oom(_i, 1); }
END_TEST

START_TEST(scenario_under_lc_malloc_oom) { run_under_oom(_i, 0); }
END_TEST

START_TEST(panic_logs_and_aborts) {
  /* An error outside every protected call reaches the panic handler of
   * lc_lua_newstate: it must stop the process (SIGABRT), never return
   * into a state Lua cannot continue. */
  lua_State *L = lc_lua_newstate();
  ck_assert_ptr_nonnull(L);
  lua_CFunction handler = lua_atpanic(L, NULL); /* lua_newstate sets none */
  ck_assert_ptr_nonnull(handler);
  lua_atpanic(L, handler);
  lua_pushliteral(L, "raised with no protected call");
  lua_error(L);
}
END_TEST

Suite *lua_oom_suite(void) {
  Suite *s = suite_create("lua_oom");
  TCase *tc = tcase_create("bindings");
  tcase_set_timeout(tc, 300);
  tcase_add_loop_test(tc, scenario_under_lua_oom, 0, (int)LC_ARRAY_LEN(scenarios));
  tcase_add_loop_test(tc, scenario_under_lc_malloc_oom, 0, (int)LC_ARRAY_LEN(scenarios));
  suite_add_tcase(s, tc);
  TCase *panic = tcase_create("panic");
  tcase_add_test_raise_signal(panic, panic_logs_and_aborts, SIGABRT);
  suite_add_tcase(s, panic);
  return s;
}
