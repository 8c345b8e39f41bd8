/* check_cli.c: the built `luact` binary: exit codes for run results (a
 * failed run exits 1, a limited one 5, with the reason on stderr), the
 * README's snippet, examples/hello offline, and that --help documents
 * the codes. Runs build/luact as a user would, against lc-mockllm. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util_common.h"
#include "util_mock.h"

static char out_path[128], err_path[128], lua_path[128];
static char *out, *err; /* what the last run printed (malloc'd) */

static void setup(void) {
  snprintf(out_path, sizeof out_path, "/tmp/lc_cli_%ld.out", (long)getpid());
  snprintf(err_path, sizeof err_path, "/tmp/lc_cli_%ld.err", (long)getpid());
  snprintf(lua_path, sizeof lua_path, "/tmp/lc_cli_%ld.lua", (long)getpid());
  out = err = NULL;
}

static void teardown(void) {
  free(out);
  free(err);
  unlink(out_path);
  unlink(err_path);
  unlink(lua_path);
}

static void write_file(const char *path, const char *text, size_t len) {
  FILE *f = fopen(path, "w");
  ck_assert_ptr_nonnull(f);
  ck_assert_uint_eq(fwrite(text, 1, len, f), len);
  ck_assert_int_eq(fclose(f), 0);
}

/* Runs `env ENV luact ARGS` in the source tree with no provider keys or
 * endpoints from the caller's environment; out/err get what it printed.
 * Returns the exit status. */
static int luact_from(const char *pipe_from, const char *env, const char *args) {
  char cmd[4096];
  snprintf(cmd, sizeof cmd,
           "cd '%s' && %s%s%s env -u OPENAI_API_KEY -u OPENAI_BASE_URL -u ANTHROPIC_API_KEY "
           "-u ANTHROPIC_BASE_URL -u OLLAMA_HOST -u LUACT_MODEL %s '%s/luact' %s > %s 2> %s",
           lc_test_source_dir(), pipe_from ? "cat '" : "", pipe_from ? pipe_from : "",
           pipe_from ? "' |" : "", env ? env : "", LC_BINARY_DIR, args, out_path, err_path);
  int st = system(cmd);
  free(out);
  free(err);
  out = lc_test_read_file(out_path, NULL);
  err = lc_test_read_file(err_path, NULL);
  ck_assert_ptr_nonnull(out);
  ck_assert_ptr_nonnull(err);
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int luact(const char *env, const char *args) { return luact_from(NULL, env, args); }

static int run_lua(const char *env, const char *code) {
  write_file(lua_path, code, strlen(code));
  char args[256];
  snprintf(args, sizeof args, "run --quiet %s", lua_path);
  return luact(env, args);
}

START_TEST(help_documents_exit_codes) {
  ck_assert_int_eq(luact(NULL, "run --help"), 0);
  ck_assert_msg(strstr(out, "exit codes:"), "%s", out);
  ck_assert_msg(strstr(out, "status \"failed\""), "%s", out);
  ck_assert_msg(strstr(out, "  5   the script returned a run result with status \"limit\""), "%s",
                out);
  ck_assert_int_eq(luact(NULL, "--help"), 0);
  ck_assert_msg(strstr(out, "exit codes (luact run"), "%s", out);
  ck_assert_msg(strstr(out, "5 run\n  stopped at a limit"), "%s", out);
}
END_TEST

/* The README's own snippet, with no key: before, it printed "failed nil"
 * and exited 0. Now the reason is printed and the exit code says so. */
START_TEST(readme_snippet_without_key_fails_loudly) {
  size_t n;
  char path[512];
  snprintf(path, sizeof path, "%s/README.md", lc_test_source_dir());
  char *readme = lc_test_read_file(path, &n);
  ck_assert_ptr_nonnull(readme);
  const char *h = strstr(readme, "## Writing an agent script\n\n```lua\n");
  ck_assert_ptr_nonnull(h);
  h = strchr(strstr(h, "```lua"), '\n') + 1;
  const char *end = strstr(h, "\n```\n");
  ck_assert_ptr_nonnull(end);
  write_file(lua_path, h, (size_t)(end - h) + 1);
  free(readme);
  char args[256];
  snprintf(args, sizeof args, "run --quiet %s", lua_path);
  ck_assert_int_eq(luact(NULL, args), 1);
  ck_assert_msg(strstr(out, "failed\tLLM error (config): ANTHROPIC_API_KEY is not set"), "%s",
                out);
  ck_assert_msg(strstr(err, "luact: the run failed: LLM error (config): ANTHROPIC_API_KEY"), "%s",
                err);
}
END_TEST

/* A run stopped by its budget exits 5, the reason on stderr. */
START_TEST(limited_run_exits_5) {
  struct lc_mock m;
  ck_assert_int_eq(lc_mock_start(&m,
      "[{\"match\": {\"path\": \"/v1/chat/completions\"}, \"reply\": {\"openai\": "
      "{\"tool_calls\": [{\"id\": \"c1\", \"name\": \"add\", \"arguments\": {\"a\": 1, \"b\": 2}}]}}}]"),
      0);
  char env[256];
  snprintf(env, sizeof env, "OPENAI_BASE_URL=%s/v1", m.base_url);
  int rc = run_lua(env,
      "local add = luact.tool{name = 'add', params = {type = 'object', properties = "
      "{a = {type = 'number'}, b = {type = 'number'}}}, fn = function(a) return a.a + a.b end}\n"
      "return luact.react{model = 'openai:mock', tools = {add}, question = 'go', "
      "limits = {steps = 2}}\n");
  ck_assert_int_eq(lc_mock_stop(&m), 0);
  ck_assert_msg(rc == 5, "exit %d: %s", rc, err);
  ck_assert_msg(strstr(err, "luact: the run stopped at a limit: "), "%s", err);
}
END_TEST

/* Only a run result's status decides: other tables, "finished", and the
 * old rules (numbers, false/nil, message) are as before. */
START_TEST(other_results_keep_their_codes) {
  ck_assert_int_eq(run_lua(NULL, "return {status = 'finished', answer = 'x'}"), 0);
  ck_assert_int_eq(run_lua(NULL, "return {status = 'ok'}"), 0);
  ck_assert_int_eq(run_lua(NULL, "return setmetatable({}, {__index = function() error('no') end})"),
                   0);
  ck_assert_int_eq(run_lua(NULL, "return {status = 'failed'}"), 1);
  ck_assert_msg(strstr(err, "luact: the run failed: no reason given"), "%s", err);
  ck_assert_int_eq(run_lua(NULL, "return {status = 'limit', reason = 'steps:\\n3'}"), 5);
  ck_assert_msg(strstr(err, "luact: the run stopped at a limit: steps: 3\n"), "%s", err);
  ck_assert_int_eq(run_lua(NULL, "return 7"), 7);
  ck_assert_int_eq(run_lua(NULL, "return nil, 'nope'"), 1);
  ck_assert_msg(strstr(err, "luact: nope"), "%s", err);
}
END_TEST

/* A script that can be read only once (a pipe: luact run /dev/stdin, or
 * <(...)) runs; the journal's hash read it whole first and the run got an
 * empty script, exit 0 and nothing printed. */
START_TEST(script_from_a_pipe_runs) {
  const char *code = "luact.now() -- an effect: the durable run hashes the script\n"
                     "print('from a pipe', #arg)\nreturn 3\n";
  write_file(lua_path, code, strlen(code));
  ck_assert_int_eq(luact_from(lua_path, NULL, "run --quiet /dev/stdin"), 3);
  ck_assert_msg(strstr(out, "from a pipe\t0"), "out: %s err: %s", out, err);
  code = "error('boom ' .. #arg)\n";
  write_file(lua_path, code, strlen(code));
  ck_assert_int_eq(luact_from(lua_path, NULL, "run --quiet --no-store /dev/stdin a b"), 1);
  ck_assert_msg(strstr(err, "/dev/stdin:1: boom 2"), "%s", err);
}
END_TEST

/* examples/hello as its run-offline.sh runs it: mock.json beside it. */
START_TEST(hello_runs_offline) {
  struct lc_mock m;
  char mockfile[512], env[256];
  snprintf(mockfile, sizeof mockfile, "%s/examples/hello/mock.json", lc_test_source_dir());
  ck_assert_int_eq(lc_mock_start_file(&m, mockfile, NULL), 0);
  snprintf(env, sizeof env, "OPENAI_BASE_URL=%s/v1 LUACT_MODEL=openai:mock-gpt", m.base_url);
  int rc = luact(env, "run --quiet examples/hello/agent.lua");
  ck_assert_int_eq(lc_mock_stop(&m), 0);
  ck_assert_msg(rc == 0, "exit %d: %s", rc, err);
  ck_assert_str_eq(out, "finished\t17 + 25 = 42.\n");
}
END_TEST

/* Each ```lua snippet of docs/quickstart.md, run as the page says (the
 * hello mock has their replies); the first is examples/hello verbatim. */
START_TEST(quickstart_snippets_run) {
  static const char *const want[] = {
      "finished\t17 + 25 = 42.\n",
      "pro: No commute.\ncon: Fewer chance meetings.\n",
      "finished\tOrder A-1 (jeans, 12 days ago) is within 30 days: return accepted.\n"};
  const char *src = lc_test_source_dir();
  char path[512], env[256];
  snprintf(path, sizeof path, "%s/docs/quickstart.md", src);
  char *page = lc_test_read_file(path, NULL);
  ck_assert_ptr_nonnull(page);
  snprintf(path, sizeof path, "%s/examples/hello/agent.lua", src);
  char *hello = lc_test_read_file(path, NULL);
  ck_assert_ptr_nonnull(hello);
  snprintf(path, sizeof path, "%s/examples/hello/mock.json", src);
  size_t n = 0;
  for (const char *p = page; (p = strstr(p, "```lua\n")); n++) {
    p += 7;
    const char *end = strstr(p, "```\n");
    ck_assert_ptr_nonnull(end);
    ck_assert_msg(n < sizeof want / sizeof want[0], "more snippets than expected outputs");
    if (n == 0)
      ck_assert_msg(strlen(hello) == (size_t)(end - p) && !memcmp(hello, p, strlen(hello)),
                    "the first snippet is not examples/hello/agent.lua");
    write_file(lua_path, p, (size_t)(end - p));
    struct lc_mock m;
    ck_assert_int_eq(lc_mock_start_file(&m, path, NULL), 0);
    snprintf(env, sizeof env, "OPENAI_BASE_URL=%s/v1 LUACT_MODEL=openai:mock-gpt", m.base_url);
    char args[256];
    snprintf(args, sizeof args, "run --quiet %s", lua_path);
    int rc = luact(env, args);
    ck_assert_int_eq(lc_mock_stop(&m), 0);
    ck_assert_msg(rc == 0, "snippet %zu: exit %d: %s", n + 1, rc, err);
    ck_assert_str_eq(out, want[n]);
    p = end;
  }
  ck_assert_uint_eq(n, sizeof want / sizeof want[0]);
  free(page);
  free(hello);
}
END_TEST

/* The README says every example has a run-offline.sh. */
START_TEST(every_example_has_run_offline) {
  static const char *const names[] = {"hello", "shopbot", "react_wiki", "pal_math", "weather",
                                      "research", "native_tool", "recipes"};
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
    char p[512];
    snprintf(p, sizeof p, "%s/examples/%s/run-offline.sh", lc_test_source_dir(), names[i]);
    ck_assert_msg(access(p, X_OK) == 0, "%s is missing or not executable", p);
  }
}
END_TEST

/* Start-up: the lazily compiled modules (workflow, the built-in tools,
 * llm.json) work on first use, and so does a request. */
START_TEST(libcurl_and_lazy_modules_load_on_first_use) {
  struct lc_mock m;
  ck_assert_int_eq(lc_mock_start(&m, "[{\"reply\": {\"body\": \"{}\"}}]"), 0);
  char env[256];
  snprintf(env, sizeof env, "MOCK=%s", m.base_url);
  int rc = run_lua(env,
      "local function mapped() local f = assert(io.open('/proc/self/maps')) "
      "local s = f:read('a') f:close() return s:find('libcurl', 1, true) ~= nil end\n"
      "local r = assert(luact.http.get(os.getenv('MOCK') .. '/x'))\n"
      "local wf = type(luact.workflow) == 'function' and type(luact.tools.http) == 'function'\n"
      "  and type(luact.llm.json) == 'function' and type(luact.tools.code) == 'function'\n"
      "print(mapped(), r.status, wf)\n");
  ck_assert_int_eq(lc_mock_stop(&m), 0);
  ck_assert_msg(rc == 0, "exit %d: %s", rc, err);
  ck_assert_str_eq(out, "true\t200\ttrue\n");
}
END_TEST

/* A script with no sign of requests in its text (the field comes from
 * the environment) does not load libcurl at start: its first request
 * does (core/curl_dl.c). */
START_TEST(libcurl_loads_on_first_request_without_a_hint) {
  struct lc_mock m;
  ck_assert_int_eq(lc_mock_start(&m, "[{\"reply\": {\"body\": \"{}\"}}]"), 0);
  char env[256];
  snprintf(env, sizeof env, "MOCK=%s F=ht%s", m.base_url, "tp");
  int rc = run_lua(env,
      "local function mapped() local f = assert(io.open('/proc/self/maps')) "
      "local s = f:read('a') f:close() return s:find('libcurl', 1, true) ~= nil end\n"
      "local before = mapped()\n"
      "local r = assert(luact[os.getenv('F')].get(os.getenv('MOCK') .. '/x'))\n"
      "print(before, mapped(), r.status)\n");
  ck_assert_int_eq(lc_mock_stop(&m), 0);
  ck_assert_msg(rc == 0, "exit %d: %s", rc, err);
  ck_assert_str_eq(out, "false\ttrue\t200\n");
}
END_TEST

/* A script that names the network API (here luact.llm, never called)
 * gets libcurl loaded on a thread of its own from the start (cli/main.c
 * may_use_http, core/curl_dl.h): it appears in the maps without a
 * request. The loop ends when it does (the test's timeout otherwise). */
START_TEST(a_hinted_script_preloads_libcurl) {
  int rc = run_lua(NULL,
      "local hint = luact.llm\n"
      "local function mapped() local f = assert(io.open('/proc/self/maps')) "
      "local s = f:read('a') f:close() return s:find('libcurl', 1, true) ~= nil end\n"
      "while not mapped() do end\n"
      "print('mapped')\n");
  ck_assert_msg(rc == 0, "exit %d: %s", rc, err);
  ck_assert_str_eq(out, "mapped\n");
}
END_TEST

/* The first request at the very top of a hinted script, while the
 * preloading thread is still loading libcurl, waits for it and works;
 * and a hinted script that ends at once exits cleanly (the process joins
 * the thread before exit unloads anything). Several runs, since which
 * side gets there first varies. */
START_TEST(first_request_races_the_preload) {
  struct lc_mock m;
  ck_assert_int_eq(lc_mock_start(&m, "[{\"reply\": {\"body\": \"{}\"}}]"), 0);
  char env[256];
  snprintf(env, sizeof env, "MOCK=%s", m.base_url);
  for (int i = 0; i < 8; i++) {
    int rc = run_lua(env, "local r = assert(luact.http.get(os.getenv('MOCK') .. '/x'))\n"
                          "print(r.status)\n");
    ck_assert_msg(rc == 0, "run %d: exit %d: %s", i, rc, err);
    ck_assert_str_eq(out, "200\n");
    rc = run_lua(NULL, "-- names luact.http, makes no request\nprint('done')\n");
    ck_assert_msg(rc == 0, "run %d: exit %d: %s", i, rc, err);
    ck_assert_str_eq(out, "done\n");
    ck_assert_str_eq(err, "");
  }
  ck_assert_int_eq(lc_mock_stop(&m), 0);
}
END_TEST

/* libcurl that cannot be loaded (a libcurl.so.4 that is no library, first
 * on the library path): a hinted script's request fails with an error
 * value that says so (it raised "out of memory" before), and the reason is
 * printed once, whichever thread loaded it. */
START_TEST(missing_libcurl_is_a_clear_error) {
  char dir[128], lib[160], env[256];
  snprintf(dir, sizeof dir, "/tmp/lc_nocurl_%ld", (long)getpid());
  ck_assert_int_eq(mkdir(dir, 0700), 0);
  snprintf(lib, sizeof lib, "%s/libcurl.so.4", dir);
  FILE *f = fopen(lib, "w");
  ck_assert_ptr_nonnull(f);
  ck_assert_int_eq(fclose(f), 0);
  snprintf(env, sizeof env, "LD_LIBRARY_PATH=%s", dir);
  int rc = run_lua(env, "local r, msg, code = luact.http.get('http://127.0.0.1:1/x')\n"
                        "print(r, msg, code)\n");
  unlink(lib);
  rmdir(dir);
  ck_assert_msg(rc == 0, "exit %d: %s", rc, err);
  ck_assert_str_eq(out, "nil\tlibcurl could not be loaded (the reason is on stderr)\tnetwork\n");
  const char *first = strstr(err, "luact: cannot load libcurl.so.4: ");
  ck_assert_msg(first, "%s", err);
  ck_assert_msg(!strstr(first + strlen("luact: cannot load"), "cannot load libcurl"),
                "said twice: %s", err);
}
END_TEST

/* Start-up: a run maps only the libraries it uses. libmicrohttpd (and the
 * GnuTLS it brings) is for luact serve alone (daemon/mhd_dl.c), libedit
 * for a prompt at a terminal (bindings/edit_dl.c: check_chat drives it),
 * libsqlite3 for the store and luact.sql (core/sqlite_dl.c); the
 * retrieval chunk is compiled on the first use of luact.retrieval or
 * luact.retrieve, not at start. */
START_TEST(start_maps_and_compiles_only_what_is_used) {
  /* No word in it makes the run preload libcurl (and GnuTLS with it):
   * hence the split name. */
  int rc = run_lua(NULL,
      "local f = assert(io.open('/proc/self/maps')) local maps = f:read('a') f:close()\n"
      "print(maps:find('libmicroht' .. 'tpd', 1, true) ~= nil,\n"
      "  maps:find('libgnutls', 1, true) ~= nil, maps:find('libedit', 1, true) ~= nil,\n"
      "  maps:find('libsqlite3', 1, true) ~= nil, maps:find('libseccomp', 1, true) ~= nil,\n"
      "  maps:find('libffi', 1, true) ~= nil)\n");
  ck_assert_msg(rc == 0, "exit %d: %s", rc, err);
  ck_assert_str_eq(out, "false\tfalse\tfalse\tfalse\tfalse\tfalse\n");
  rc = run_lua(NULL,
      "local early = rawget(luact.retrieval, 'open') == nil and rawget(luact, 'retrieve') == nil\n"
      "print(early, type(luact.retrieval.open), type(luact.retrieve), type(luact.retrieval.rrf))\n");
  ck_assert_msg(rc == 0, "exit %d: %s", rc, err);
  ck_assert_str_eq(out, "true\tfunction\tfunction\tfunction\n");
}
END_TEST

/* libsqlite3 is loaded by the first SQLite call (core/sqlite_dl.c): here
 * luact.sql on a file, which then works as linked. (check_luact itself
 * links libsqlite3, so only the binary shows the loading.) */
START_TEST(sqlite_loads_on_first_use) {
  char db[128], env[192];
  snprintf(db, sizeof db, "/tmp/lc_cli_sq_%ld.db", (long)getpid());
  snprintf(env, sizeof env, "DB=%s", db);
  int rc = run_lua(env,
      "local function mapped() local f = assert(io.open('/proc/self/maps')) "
      "local s = f:read('a') f:close() return s:find('libsqlite3', 1, true) ~= nil end\n"
      "local before = mapped()\n"
      "local db = assert(luact.sql.open(os.getenv('DB'), {create = true}))\n"
      "assert(db:exec('create table t(a integer, b text); insert into t values (7, \\'x\\')'))\n"
      "local r = assert(db:query('select a, b from t where a = ?', {7}))\n"
      "db:close()\n"
      "print(before, mapped(), r.rows[1].a, r.rows[1].b)\n");
  unlink(db);
  ck_assert_msg(rc == 0, "exit %d: %s", rc, err);
  ck_assert_str_eq(out, "false\ttrue\t7\tx\n");
}
END_TEST

/* libseccomp is loaded only by the sandbox child that builds the filter
 * (sandbox/seccomp_dl.c): luact.pal.run works and the run itself never
 * maps it. (check_sandbox's killed-system-call cases show the filter is in
 * place through the same code.) */
START_TEST(seccomp_only_in_the_sandbox_child) {
  int rc = run_lua(NULL,
      "local function mapped() local f = assert(io.open('/proc/self/maps')) "
      "local s = f:read('a') f:close() return s:find('libseccomp', 1, true) ~= nil end\n"
      "local r, msg = luact.pal.run('return 6 * 7')\n"
      "print(r and r.value, msg, mapped())\n");
  ck_assert_msg(rc == 0, "exit %d: %s", rc, err);
  ck_assert_str_eq(out, "42\tnil\tfalse\n");
}
END_TEST

/* libffi is loaded by the first native declaration (tools/ffi_fn.c), and
 * the declared function then works. (check_ffi goes through the same
 * loading: check_luact does not link libffi.) */
START_TEST(libffi_loads_with_the_first_declaration) {
  int rc = run_lua(NULL,
      "local function mapped() local f = assert(io.open('/proc/self/maps')) "
      "local s = f:read('a') f:close() return s:find('libffi', 1, true) ~= nil end\n"
      "local before = mapped()\n"
      "local fn = assert(luact.native.declare{lib = 'libm.so.6', symbol = 'floor',\n"
      "  signature = 'double(double)'})\n"
      "print(before, fn(2.5), mapped())\n");
  ck_assert_msg(rc == 0, "exit %d: %s", rc, err);
  ck_assert_str_eq(out, "false\t2.0\ttrue\n");
  /* Without a loadable libffi, the declaration fails and says why. */
  char dir[128], lib[160], env[192];
  snprintf(dir, sizeof dir, "/tmp/lc_noffi_%ld", (long)getpid());
  ck_assert_int_eq(mkdir(dir, 0700), 0);
  snprintf(lib, sizeof lib, "%s/libffi.so.8", dir);
  FILE *f = fopen(lib, "w");
  ck_assert_ptr_nonnull(f);
  ck_assert_int_eq(fclose(f), 0);
  snprintf(env, sizeof env, "LD_LIBRARY_PATH=%s", dir);
  rc = run_lua(env, "local fn, msg, code = luact.native.declare{lib = 'libm.so.6',\n"
                    "  symbol = 'floor', signature = 'double(double)'}\n"
                    "print(fn, msg:match('^native functions need libffi: cannot load') ~= nil, code)\n");
  unlink(lib);
  rmdir(dir);
  ck_assert_msg(rc == 0, "exit %d: %s", rc, err);
  ck_assert_str_eq(out, "nil\ttrue\tnot_found\n");
}
END_TEST

Suite *cli_suite(void) {
  Suite *s = suite_create("cli");
  TCase *tc = tcase_create("cli");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, help_documents_exit_codes);
  tcase_add_test(tc, readme_snippet_without_key_fails_loudly);
  tcase_add_test(tc, limited_run_exits_5);
  tcase_add_test(tc, other_results_keep_their_codes);
  tcase_add_test(tc, script_from_a_pipe_runs);
  tcase_add_test(tc, hello_runs_offline);
  tcase_add_test(tc, quickstart_snippets_run);
  tcase_add_test(tc, every_example_has_run_offline);
  tcase_add_test(tc, libcurl_and_lazy_modules_load_on_first_use);
  tcase_add_test(tc, libcurl_loads_on_first_request_without_a_hint);
  tcase_add_test(tc, a_hinted_script_preloads_libcurl);
  tcase_add_test(tc, first_request_races_the_preload);
  tcase_add_test(tc, missing_libcurl_is_a_clear_error);
  tcase_add_test(tc, sqlite_loads_on_first_use);
  tcase_add_test(tc, seccomp_only_in_the_sandbox_child);
  tcase_add_test(tc, libffi_loads_with_the_first_declaration);
  tcase_add_test(tc, start_maps_and_compiles_only_what_is_used);
  suite_add_tcase(s, tc);
  return s;
}
