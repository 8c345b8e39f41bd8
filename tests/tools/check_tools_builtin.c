/* check_tools_builtin.c: luact.tools.http / sql / files / native: schemas
 * that refuse bad arguments before anything runs (with a message a model
 * can act on), the confinement of each tool (base_url, read-only SQL, the
 * files root), effect classes, tools that raise, return what cannot be
 * sent to a model, or never return; and examples/native_tool and
 * examples/research end to end, offline, as subprocesses.
 *
 * Every Lua run ends with lc_test_lua_close: no task, timer or transfer
 * left, lc_ allocations balanced. */
#include <check.h>
#include <lua.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util_common.h"
#include "util_lua.h"
#include "util_mock.h"

static struct lc_mock mock;
static char out[16384], err[8192];
static char tmpdir[256];

/* Globals for the chunk: BASE (when a mock runs), DIR (a temp dir), TN (the
 * test native library). */
static int run(const char *code) {
  struct lc_test_lua t;
  lc_test_lua_open(&t);
  lua_pushstring(t.L, mock.pid > 0 ? mock.base_url : "http://127.0.0.1:1");
  lua_setglobal(t.L, "BASE");
  lua_pushstring(t.L, tmpdir);
  lua_setglobal(t.L, "DIR");
  lua_pushstring(t.L, LC_TESTNATIVE_PATH);
  lua_setglobal(t.L, "TN");
  int rc = lc_test_lua_run(&t, code, out, sizeof out, err, sizeof err);
  lc_test_lua_close(&t);
  return rc;
}

static void write_file(const char *rel, const char *text) {
  char p[512];
  snprintf(p, sizeof p, "%s/%s", tmpdir, rel);
  FILE *f = fopen(p, "w");
  ck_assert_ptr_nonnull(f);
  fputs(text, f);
  fclose(f);
}

static void setup(void) {
  memset(&mock, 0, sizeof mock);
  snprintf(tmpdir, sizeof tmpdir, "/tmp/lc-tools-XXXXXX");
  ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void teardown(void) {
  char cmd[300];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
  if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
}

/* ---- http ---- */

START_TEST(http_tool_stays_under_base_url) {
  ck_assert_int_eq(lc_mock_start(&mock,
      "[{\"match\":{\"method\":\"POST\",\"path\":\"/api/orders\"},\"reply\":{\"status\":201,"
      "  \"json\":{\"id\":9}}},"
      " {\"match\":{\"path_prefix\":\"/api/\"},\"reply\":{\"json\":{\"items\":[\"lamp\"]}}},"
      " {\"reply\":{\"status\":418,\"body\":\"outside\"}}]"), 0);
  ck_assert_msg(run("local t = luact.tools.http{base_url=BASE..'/api/', allow_methods={'get', 'POST'}}\n"
                    "local g = luact.tools.http{name='catalog', base_url=BASE..'/api'}\n"
                    "local out = {t.name, t.effect, g.name, g.effect}\n"
                    "local function try(tool, args)\n"
                    "  local r, msg, code = tool(args)\n"
                    "  out[#out + 1] = r and (r.status .. ':' .. luact.json.encode(r.json)) or (code .. ':' .. msg)\n"
                    "end\n"
                    "try(t, {path='/items', query={q='a b', n=2}})\n"
                    "try(t, {method='POST', path='/orders', body={item='lamp'}})\n"
                    "try(t, {method='DELETE', path='/items/1'})\n"
                    "try(t, {path=42})\n"
                    "try(t, {path='/items', header='x'})\n"
                    "try(t, {path='/../secret'})\n"
                    "try(t, {path='/%2E%2e/secret'})\n"
                    "try(t, {path='@evil.example/x'})\n"
                    "try(t, {path='/items?admin=1'})\n"
                    "try(g, {path='/x', body={a=1}})\n"
                    "try(t, {method='GET', path='/items', body={a=1}})\n"
                    "return table.concat(out, '\\n')") == 0, "%s", err);
  const char *want[] = {
      "http\nat_most_once\ncatalog\nidempotent\n",
      "200:{\"items\":[\"lamp\"]}\n",
      "201:{\"id\":9}\n",
      "invalid_arguments:invalid arguments for http: $.method: must be one of \"GET\", \"POST\"",
      "invalid_arguments:invalid arguments for http: $.path: expected string, got",
      "invalid_arguments:invalid arguments for http: $.header: property not allowed",
      "tool_error:tool http failed: path must stay under http://127.0.0.1:",
      "'.' and '..' segments are refused, however they are encoded\ntool_error:tool http failed: path must stay under",
      "tool_error:tool http failed: path must start with '/'",
      "tool_error:tool http failed: path must not contain spaces, control characters, '\\', '?' or '#'",
      "invalid_arguments:invalid arguments for catalog: $.body: property not allowed",
      "tool_error:tool http failed: a body is not allowed with GET",
  };
  for (size_t i = 0; i < sizeof want / sizeof *want; i++)
    ck_assert_msg(strstr(out, want[i]), "missing [%s] in:\n%s", want[i], out);
  /* Only the two valid calls reached the server, both under /api. */
  char *log = lc_mock_requests(&mock);
  ck_assert_ptr_nonnull(strstr(log, "\"path\":\"/api/items?n=2&q=a%20b\""));
  ck_assert_ptr_nonnull(strstr(log, "\"body\":{\"item\":\"lamp\"}"));
  free(log);
  char *stats = lc_mock_stats(&mock);
  ck_assert_msg(strstr(stats, "\"requests\":2,"), "%s", stats);
  free(stats);
  ck_assert_int_eq(lc_mock_stop(&mock), 0);
}
END_TEST

START_TEST(http_tool_idempotency_and_failures) {
  ck_assert_int_eq(lc_mock_start(&mock,
      "[{\"match\":{\"path\":\"/api/stall\"},\"reply\":{\"body\":\"12345678\",\"stall_after_bytes\":2}},"
      " {\"reply\":{\"status\":201,\"json\":{\"ok\":true}}}]"), 0);
  ck_assert_msg(run("local pay = luact.tools.http{name='pay', base_url=BASE..'/api',"
                    "  allow_methods={'POST'}, idempotency_key=true, headers={Authorization='Bearer t'}}\n"
                    "local slow = luact.tools.http{name='slow', base_url=BASE..'/api', timeout=0.3}\n"
                    "local down = luact.tools.http{name='down', base_url='http://127.0.0.1:1'}\n"
                    "local r = assert(pay({method='POST', path='/charge', body={cents=5}},"
                    "  {idempotency_key='run7/step3'}))\n"
                    "local _, m1, c1 = slow{path='/stall'}\n"
                    "local _, m2, c2 = down{path='/x'}\n"
                    "return table.concat({pay.effect, r.status, c1, m1, c2, m2}, '|')") == 0, "%s", err);
  ck_assert_msg(strncmp(out, "idempotent|201|tool_error|tool slow failed: GET /stall failed (timeout)", 70) == 0,
                "%s", out);
  ck_assert_msg(strstr(out, "|tool_error|tool down failed: GET /x failed (network)"), "%s", out);
  char *log = lc_mock_requests(&mock);
  ck_assert_ptr_nonnull(strstr(log, "\"idempotency-key\":\"run7/step3\""));
  ck_assert_ptr_nonnull(strstr(log, "\"authorization\":\"<redacted>\""));
  free(log);
  ck_assert_int_eq(lc_mock_stop(&mock), 0);
}
END_TEST

START_TEST(http_tool_declaration_errors) {
  ck_assert_msg(run("local bad = {\n"
                    "  {base_url='ftp://h/'}, {base_url='http://h/?q=1'}, {},\n"
                    "  {base_url='http://h', allow_methods={}},\n"
                    "  {base_url='http://h', allow_methods={'G E T'}},\n"
                    "  {base_url='http://h', timeout=0},\n"
                    "  {base_url='http://h', effect='sometimes'},\n"
                    "  {base_url='http://h', name='has space'},\n"
                    "}\n"
                    "local msgs = {}\n"
                    "for i, spec in ipairs(bad) do\n"
                    "  local ok, e = pcall(luact.tools.http, spec)\n"
                    "  assert(not ok, 'spec ' .. i .. ' was accepted')\n"
                    "  msgs[#msgs + 1] = e\n"
                    "end\n"
                    "return table.concat(msgs, '\\n')") == 0, "%s", err);
  ck_assert_ptr_nonnull(strstr(out, "'base_url' must be an http:// or https:// URL"));
  ck_assert_ptr_nonnull(strstr(out, "'allow_methods' must be a non-empty list"));
  ck_assert_ptr_nonnull(strstr(out, "'timeout' must be a positive number"));
  ck_assert_ptr_nonnull(strstr(out, "'effect' must be pure, idempotent or at_most_once"));
  ck_assert_ptr_nonnull(strstr(out, "'name' must be 1-64 letters"));
}
END_TEST

/* ---- sql ---- */

#define SQL_SETUP                                                                        \
  "local path = DIR .. '/shop.db'\n"                                                     \
  "local w = assert(luact.sql.open(path, {create=true}))\n"                              \
  "assert(w:exec([[CREATE TABLE items(id INTEGER PRIMARY KEY, name TEXT NOT NULL, cents INT);\n" \
  "  INSERT INTO items(name, cents) VALUES ('lamp', 1999), ('desk', 15000), ('chair', 4500),\n" \
  "    ('rug', 9900);]]))\n"

START_TEST(sql_tool_read_only_and_bound) {
  ck_assert_msg(run(SQL_SETUP
                    "local t = luact.tools.sql{db=path, max_rows=3}\n"
                    "local out = {t.name, t.effect, tostring(t.description:find('CREATE TABLE items', 1, true) ~= nil)}\n"
                    "local function try(args)\n"
                    "  local r, msg, code = t(args)\n"
                    "  out[#out + 1] = r and luact.json.encode(r) or (code .. ':' .. msg)\n"
                    "end\n"
                    "try{sql='SELECT name FROM items WHERE cents > ? ORDER BY id', params={2000}}\n"
                    "try{sql='SELECT name FROM items WHERE name = :n', params={n=\"x' OR '1'='1\"}}\n"
                    "try{sql='SELECT id FROM items ORDER BY id'}\n"
                    "try{sql='DELETE FROM items'}\n"
                    "try{sql='UPDATE items SET cents = 0'}\n"
                    "try{sql='SELECT 1; DROP TABLE items'}\n"
                    "try{sql='SELECT ?', params={1, 2}}\n"
                    "try{}\n"
                    "try{sql=7}\n"
                    "try{sql='SELECT 1', limit=5}\n"
                    "try{sql='SELECT 1', params='1'}\n"
                    "local n = w:query('SELECT count(*) AS n FROM items').rows[1].n\n"
                    "t.close(); w:close()\n"
                    "return table.concat(out, '\\n') .. '\\nrows=' .. n") == 0, "%s", err);
  const char *want[] = {
      "sql\npure\ntrue\n",
      "\"rows\":[{\"name\":\"desk\"},{\"name\":\"chair\"},{\"name\":\"rug\"}]",
      "\"row_count\":0",
      "\"truncated\":true",
      "tool_error:tool sql failed: ",
      "(this tool is read-only: use SELECT; writes are refused)",
      "multiple statements are not allowed",
      "(give one value per placeholder",
      "invalid_arguments:invalid arguments for sql: $: missing required property \"sql\"",
      "invalid_arguments:invalid arguments for sql: $.sql: expected string, got number",
      "invalid_arguments:invalid arguments for sql: $.limit: property not allowed",
      "invalid_arguments:invalid arguments for sql: $.params: expected object or array, got string",
      "\nrows=4",
  };
  for (size_t i = 0; i < sizeof want / sizeof *want; i++)
    ck_assert_msg(strstr(out, want[i]), "missing [%s] in:\n%s", want[i], out);
  /* Both writes were refused. */
  const char *p = strstr(out, "read-only: use SELECT");
  ck_assert_ptr_nonnull(p);
  ck_assert_ptr_nonnull(strstr(p + 1, "read-only: use SELECT"));
}
END_TEST

START_TEST(sql_tool_declaration) {
  ck_assert_msg(run(SQL_SETUP
                    "local ok, e1 = pcall(luact.tools.sql, {db=w})\n"
                    "local ok2, e2 = pcall(luact.tools.sql, {db=DIR .. '/missing.db'})\n"
                    "local ok3, e3 = pcall(luact.tools.sql, {db=42})\n"
                    "local rw = luact.tools.sql{db=w, readonly=false}\n"
                    "local r = assert(rw{sql='DELETE FROM items WHERE id = ?', params={1}})\n"
                    "w:close()\n"
                    "return table.concat({tostring(ok), e1, tostring(ok2), e2, tostring(ok3), e3,"
                    "  rw.effect, r.changes}, '\\n')") == 0, "%s", err);
  ck_assert_msg(strstr(out, "false\n") == out, "%s", out);
  ck_assert_ptr_nonnull(strstr(out, "'db' is read-write; open it with luact.sql.open(path, {readonly = true})"));
  ck_assert_ptr_nonnull(strstr(out, "'db' cannot be opened"));
  ck_assert_ptr_nonnull(strstr(out, "'db' must be a luact.sql database or a path"));
  ck_assert_ptr_nonnull(strstr(out, "\nat_most_once\n1"));
}
END_TEST

/* ---- files ---- */

START_TEST(files_tool_confined_to_root) {
  ck_assert_int_eq(mkdir(strcat(strcpy(out, tmpdir), "/lib"), 0700), 0);
  ck_assert_int_eq(mkdir(strcat(strcpy(out, tmpdir), "/lib/notes"), 0700), 0);
  write_file("lib/notes/a.txt", "alpha notes\n");
  write_file("lib/big.txt", "0123456789012345678901234567890123456789");
  write_file("secret.txt", "outside the root\n");
  ck_assert_int_eq(symlink("../../secret.txt", strcat(strcpy(out, tmpdir), "/lib/notes/link.txt")), 0);
  ck_assert_msg(run("local t = luact.tools.files{root=DIR .. '/lib', max_bytes=16}\n"
                    "local out = {t.name, t.effect}\n"
                    "local function try(args)\n"
                    "  local r, msg, code = t(args)\n"
                    "  out[#out + 1] = r and luact.json.encode(r) or (code .. ':' .. msg)\n"
                    "end\n"
                    "try{action='list'}\n"
                    "try{action='read', path='notes/a.txt'}\n"
                    "try{action='read', path='../secret.txt'}\n"
                    "try{action='read', path='notes/../../secret.txt'}\n"
                    "try{action='read', path=DIR .. '/secret.txt'}\n"
                    "try{action='read', path='notes/link.txt'}\n"
                    "try{action='list', path='..'}\n"
                    "try{action='read', path='big.txt'}\n"
                    "try{action='read'}\n"
                    "try{action='delete', path='notes/a.txt'}\n"
                    "try{path='notes/a.txt'}\n"
                    "t.close()\n"
                    "return table.concat(out, '\\n')") == 0, "%s", err);
  const char *want[] = {
      "files\npure\n",
      "\"name\":\"big.txt\"", "\"size\":40", "\"name\":\"notes\"", "\"type\":\"dir\"",
      "\"content\":\"alpha notes\\n\"",
      "tool_error:tool files failed: '../secret.txt' resolves outside the root",
      "tool_error:tool files failed: 'notes/../../secret.txt' resolves outside the root",
      "absolute paths are not allowed",
      "tool_error:tool files failed: 'notes/link.txt' resolves outside the root",
      "tool_error:tool files failed: '..' resolves outside the root",
      "tool_error:tool files failed: ",
      "16",
      "action 'read' needs a 'path'",
      "invalid_arguments:invalid arguments for files: $.action: must be one of \"read\", \"list\"; got \"delete\"",
      "invalid_arguments:invalid arguments for files: $: missing required property \"action\"",
  };
  for (size_t i = 0; i < sizeof want / sizeof *want; i++)
    ck_assert_msg(strstr(out, want[i]), "missing [%s] in:\n%s", want[i], out);
  ck_assert_ptr_null(strstr(out, "outside the root\\n"));
}
END_TEST

/* ---- native ---- */

START_TEST(native_tool_checks_types_first) {
  ck_assert_msg(run("local add = luact.tools.native{lib=TN, symbol='lc_tn_add', signature='int(int, int)',"
                    "  args={'a', {name='b', description='the second addend'}}, description='Adds.'}\n"
                    "local upper = luact.tools.native{lib=TN, symbol='lc_tn_upper',"
                    "  signature='int(string, buffer[8], len)', effect='idempotent'}\n"
                    "local bad = luact.tools.native{lib=TN, symbol='lc_tn_badutf8', signature='string()'}\n"
                    "local bump = luact.tools.native{lib=TN, symbol='lc_tn_bump', signature='void()'}\n"
                    "local count = luact.native.declare{lib=TN, symbol='lc_tn_counter', signature='int()'}\n"
                    "local out = {add.name, add.effect, upper.effect, add.params.properties.b.description,"
                    "  add.description}\n"
                    "local function try(tool, args)\n"
                    "  local r, msg, code = tool(args)\n"
                    "  out[#out + 1] = r ~= nil and luact.json.encode(r) or (code .. ':' .. msg)\n"
                    "end\n"
                    "try(add, {a=2, b=40})\n"
                    "try(add, {a='2', b=40})\n"
                    "try(add, {a=2.5, b=1})\n"
                    "try(add, {a=2})\n"
                    "try(add, {a=2, b=1, c=3})\n"
                    "try(add, {a=1 << 40, b=1})\n"
                    "try(upper, {args={'abc'}})\n"
                    "try(upper, {args={'abc', 8}})\n"
                    "try(upper, {args={1}})\n"
                    "try(bad, {})\n"
                    "try(bump, {args={1}})\n"
                    "local before = count()\n"
                    "try(bump, {})\n"
                    "out[#out + 1] = 'bumped ' .. (count() - before)\n"
                    "local ok, e = pcall(luact.tools.native, {lib=TN, symbol='lc_tn_add', signature='int(int, int)', args={'a'}})\n"
                    "out[#out + 1] = e\n"
                    "local ok2, e2 = pcall(luact.tools.native, {lib=TN, symbol='no_such_symbol', signature='int()'})\n"
                    "out[#out + 1] = e2\n"
                    "count:close(); add.close(); upper.close(); bad.close(); bump.close()\n"
                    "return table.concat(out, '\\n')") == 0, "%s", err);
  const char *want[] = {
      "lc_tn_add\npure\nidempotent\nthe second addend\nAdds.\n42\n",
      "invalid_arguments:invalid arguments for lc_tn_add: $.a: expected integer, got string \"2\"",
      "invalid_arguments:invalid arguments for lc_tn_add: $.a: expected integer, got number 2.5",
      "invalid_arguments:invalid arguments for lc_tn_add: $: missing required property \"b\"",
      "invalid_arguments:invalid arguments for lc_tn_add: $.c: property not allowed",
      "invalid_arguments:invalid arguments for lc_tn_add: $.a: ",
      "\"buffers\":[\"ABC\"]", "\"return\":3",
      "invalid_arguments:invalid arguments for lc_tn_upper: $.args: must have at most 1 item; got 2",
      "invalid_arguments:invalid arguments for lc_tn_upper: $.args[0]: expected string, got number",
      "tool_error:tool lc_tn_badutf8 failed: ",
      "invalid_arguments:invalid arguments for lc_tn_bump: $.args: property not allowed",
      "\nbumped 1\n",
      "'args' must name each of the 2 arguments of int lc_tn_add(int, int)",
      "'lib' cannot be loaded: ",
  };
  for (size_t i = 0; i < sizeof want / sizeof *want; i++)
    ck_assert_msg(strstr(out, want[i]), "missing [%s] in:\n%s", want[i], out);
}
END_TEST

/* ---- any tool: raises, bad results, never returns ---- */

START_TEST(failing_tools_give_clear_errors) {
  ck_assert_int_eq(lc_mock_start(&mock,
      "[{\"reply\":{\"delay_ms\":30000,\"json\":{}}}]"), 0);
  ck_assert_msg(run("local out = {}\n"
                    "local function try(tool, args)\n"
                    "  local r, msg, code = tool(args)\n"
                    "  out[#out + 1] = r ~= nil and luact.json.encode(r) or (code .. ':' .. msg)\n"
                    "end\n"
                    "local raises = luact.tool{name='raises', fn=function() error('disk on fire') end}\n"
                    "local fnres = luact.tool{name='fnres', fn=function() return {f=print} end}\n"
                    "local never = luact.tool{name='never', timeout=0.2, fn=function() luact.sleep(3600) end}\n"
                    "-- A built-in whose transfer never completes: the tool timeout wins and\n"
                    "-- takes the transfer with it.\n"
                    "local hang = luact.tools.http{name='hang', base_url=BASE, timeout=60}\n"
                    "hang.timeout = 0.2\n"
                    "local nan = luact.tools.native{lib=TN, symbol='lc_tn_div', signature='double(double, double)',"
                    "  args={'a', 'b'}}\n"
                    "try(raises, {})\n"
                    "try(fnres, {})\n"
                    "try(never, {})\n"
                    "try(hang, {path='/x'})\n"
                    "try(nan, {a=0, b=0})\n"
                    "nan.close()\n"
                    "return table.concat(out, '\\n')") == 0, "%s", err);
  const char *want[] = {
      "tool_error:tool raises failed: ",
      "disk on fire",
      "bad_result:tool fnres returned a value that cannot be sent to the model: ",
      "timeout:tool never timed out after 0.2 s",
      "timeout:tool hang timed out after 0.2 s",
      "tool_error:tool lc_tn_div failed: ",
  };
  for (size_t i = 0; i < sizeof want / sizeof *want; i++)
    ck_assert_msg(strstr(out, want[i]), "missing [%s] in:\n%s", want[i], out);
  ck_assert_int_eq(lc_mock_count_requests(&mock, "/x"), 1);
  ck_assert_int_eq(lc_mock_stop(&mock), 0);
}
END_TEST

/* What a tool returns is checked, not encoded: a string only for UTF-8
 * and NUL, anything else with the encoder's rules and messages. */
START_TEST(tool_results_checked) {
  ck_assert_msg(run("local out = {}\n"
                    "local function try(fn)\n"
                    "  local r, msg, code = luact.tool{name = 't', fn = fn}({})\n"
                    "  if type(r) == 'table' then r = r.n end\n"
                    "  out[#out + 1] = code and (code .. ':' .. msg) or type(r) .. ':' .. tostring(r)\n"
                    "end\n"
                    "try(function() return 'caf\\xc3\\xa9' end)\n"
                    "try(function() return 'bad \\xff byte' end)\n"
                    "try(function() return 'nul \\0 byte' end)\n"
                    "try(function() return { a = { 1, 'x\\xff' } } end)\n"
                    "try(function() return { n = 1 } end)\n"
                    "try(function() return nil end)\n"
                    "try(function() return 0 / 0 end)\n"
                    "try(setmetatable({}, { __call = function(self, a, ctx) return 'callable' end }))\n"
                    "return table.concat(out, '\\n')") == 0, "%s", err);
  ck_assert_str_eq(out,
      "string:caf\xc3\xa9\n"
      "bad_result:tool t returned a value that cannot be sent to the model: json.encode: "
      "string is not valid UTF-8 (byte 4) at $\n"
      "bad_result:tool t returned a value that cannot be sent to the model: json.encode: "
      "string contains a NUL byte at $\n"
      "bad_result:tool t returned a value that cannot be sent to the model: json.encode: "
      "string is not valid UTF-8 (byte 1) at $.a[1]\n"
      "number:1\n"
      "nil:nil\n"
      "bad_result:tool t returned a value that cannot be sent to the model: json.encode: "
      "cannot encode NaN at $\n"
      "string:callable");
}
END_TEST

/* ---- examples/native_tool, offline, end to end ---- */

START_TEST(native_tool_example_runs_offline) {
  char path[512];
  snprintf(path, sizeof path, "%s/examples/native_tool/mock.json", lc_test_source_dir());
  ck_assert_int_eq(lc_mock_start_file(&mock, path, NULL), 0);
  char cmd[2048];
  snprintf(cmd, sizeof cmd,
           "cd '%s' && OPENAI_BASE_URL='%s/v1' OPENAI_API_KEY= LUACT_MODEL=openai:mock-gpt "
           "LUACT_NATIVE_BUILD_DIR='%s' '%s/luact' run examples/native_tool/agent.lua "
           "'What is the monthly payment on 250000 at 4.5%% over 30 years?' 2>&1",
           lc_test_source_dir(), mock.base_url, tmpdir, LC_BINARY_DIR);
  FILE *p = popen(cmd, "r");
  ck_assert_ptr_nonnull(p);
  size_t n = fread(out, 1, sizeof out - 1, p);
  out[n] = '\0';
  int st = pclose(p);
  ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "exit %d:\n%s", st, out);
  /* The model asked for both tools; the numbers come from the C code. */
  ck_assert_msg(strstr(out, "tool monthly_payment({\"principal\":250000,\"annual_rate\":4.5,\"years\":30}) -> 1266.71"),
                "%s", out);
  ck_assert_msg(strstr(out, "tool format_amount("), "%s", out);
  ck_assert_msg(strstr(out, "-> \"USD 1,266.71\""), "%s", out);
  ck_assert_msg(strstr(out, "assistant: The monthly payment is USD 1,266.71"), "%s", out);
  /* What the model saw: the tool schemas built from the C signatures. */
  char *log = lc_mock_requests(&mock);
  ck_assert_ptr_nonnull(strstr(log, "\"name\":\"monthly_payment\""));
  ck_assert_ptr_nonnull(strstr(log, "\"maximum\":2147483647"));
  ck_assert_ptr_nonnull(strstr(log, "1266.71"));
  free(log);
  ck_assert_int_eq(lc_mock_stop(&mock), 0);
}
END_TEST

/* ---- examples/research, offline: fan-out with the files tool ---- */

START_TEST(research_example_runs_offline) {
  char path[512];
  snprintf(path, sizeof path, "%s/examples/research/mock.json", lc_test_source_dir());
  ck_assert_int_eq(lc_mock_start_file(&mock, path, NULL), 0);
  char cmd[2048];
  snprintf(cmd, sizeof cmd,
           "cd '%s' && OPENAI_BASE_URL='%s/v1' OPENAI_API_KEY= LUACT_MODEL=openai:mock-gpt "
           "'%s/luact' run examples/research/agent.lua 2>&1",
           lc_test_source_dir(), mock.base_url, LC_BINARY_DIR);
  FILE *p = popen(cmd, "r");
  ck_assert_ptr_nonnull(p);
  size_t n = fread(out, 1, sizeof out - 1, p);
  out[n] = '\0';
  int st = pclose(p);
  ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "exit %d:\n%s", st, out);
  const char *want[] = {
      "sub-question 3: How long do heat pumps last",
      "[1] library({\"action\":\"list\",\"path\":\".\"}) -> ok",
      "[1] library({\"action\":\"read\",\"path\":\"cold-climate.txt\"}) -> ok",
      "[2] library({\"action\":\"read\",\"path\":\"costs.txt\"}) -> ok",
      "finding 1: Cold-climate models keep a COP",
      "finding 2: Installed cost is 8,000-15,000 USD",
      "finding 3: Air-source units last 15-20 years",
      "answer: Yes, for a reasonably insulated house",
  };
  for (size_t i = 0; i < sizeof want / sizeof *want; i++)
    ck_assert_msg(strstr(out, want[i]), "missing [%s] in:\n%s", want[i], out);
  /* The sub-questions' first calls were at the server together. */
  char *stats = lc_mock_stats(&mock);
  ck_assert_msg(strstr(stats, "\"peak_in_flight\":3,"), "%s", stats);
  ck_assert_msg(strstr(stats, "\"unmatched\":0,"), "%s", stats);
  free(stats);
  /* What the library returned reached the model. */
  char *log = lc_mock_requests(&mock);
  ck_assert_ptr_nonnull(strstr(log, "Field studies in Norway"));
  free(log);
  ck_assert_int_eq(lc_mock_stop(&mock), 0);
}
END_TEST

Suite *tools_builtin_suite(void) {
  Suite *s = suite_create("tools_builtin");
  TCase *tc = tcase_create("factories");
  tcase_set_timeout(tc, 120);
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, http_tool_stays_under_base_url);
  tcase_add_test(tc, http_tool_idempotency_and_failures);
  tcase_add_test(tc, http_tool_declaration_errors);
  tcase_add_test(tc, sql_tool_read_only_and_bound);
  tcase_add_test(tc, sql_tool_declaration);
  tcase_add_test(tc, files_tool_confined_to_root);
  tcase_add_test(tc, native_tool_checks_types_first);
  tcase_add_test(tc, failing_tools_give_clear_errors);
  tcase_add_test(tc, tool_results_checked);
  tcase_add_test(tc, native_tool_example_runs_offline);
  tcase_add_test(tc, research_example_runs_offline);
  suite_add_tcase(s, tc);
  return s;
}
