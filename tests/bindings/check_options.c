/* check_options.c: every public options table refuses a field it does not
 * know, names it and suggests the one meant (l_opts.c). Before, a typo
 * such as tool= for tools= was ignored and the run went on without it. */
#include <check.h>
#include <string.h>

#include "l_opts.h"
#include "util_lua.h"

static char out[4096], err[4096];

static int run(const char *code) {
  struct lc_test_lua t;
  lc_test_lua_open(&t);
  int rc = lc_test_lua_run(&t, code, out, sizeof out, err, sizeof err);
  lc_test_lua_close(&t); /* no task, timer or transfer left behind */
  return rc;
}

#define M "model = 'openai:gpt-4o-mini', base_url = 'http://127.0.0.1:9', "
#define WF "local wf = luact.workflow{name = 'w', initial = 'a', states = {a = {finish = true}}}\n"

/* Each call has one misspelt field; the error must name it and the fix. */
static const struct {
  const char *code, *want;
} typo[] = {
    {"luact.react{" M "question = 'q', tool = {}}",
     "luact.react: unknown option 'tool' (did you mean 'tools'?"},
    {"luact.react{" M "question = 'q', limits = {stepz = 3}}",
     "luact.react: unknown limit 'stepz' (did you mean 'steps'?"},
    {"luact.llm.chat{" M "prompt = 'hi', temprature = 0}",
     "luact.llm.chat: unknown option 'temprature' (did you mean 'temperature'?"},
    {"luact.llm.json{" M "prompt = 'hi', schema = {type = 'object'}, repairz = 1}",
     "luact.llm.json: unknown option 'repairz' (did you mean 'repairs'?"},
    {"luact.llm.limits{openai = {rpn = 5}}",
     "luact.llm.limits: unknown option 'rpn' (did you mean 'rpm'?"},
    {"luact.tool{name = 't', fn = function() end, parmas = {type = 'object'}}",
     "luact.tool: unknown option 'parmas' (did you mean 'params'?"},
    {"luact.pal{" M "question = 'q', repair = 1}",
     "luact.pal: unknown option 'repair' (did you mean 'repairs'?"},
    {"luact.pal{" M "question = 'q', limits = {tokenz = 1}}",
     "luact.pal: unknown limit 'tokenz' (did you mean 'tokens'?"},
    {"luact.pal{" M "question = 'q', sandbox = {memroy = 1}}",
     "luact.pal: unknown sandbox option 'memroy' (did you mean 'memory'?"},
    {"luact.pal.run('return 1', {tme = 1})",
     "luact.pal.run: unknown option 'tme' (did you mean 'time'?"},
    {"luact.sandbox.run('return 1', {mem_limt = 1})",
     "luact.sandbox.run: unknown option 'mem_limt' (did you mean 'mem_limit'?"},
    {"luact.tools.http{base_url = 'http://127.0.0.1:9', timout = 1}",
     "luact.tools.http: unknown option 'timout' (did you mean 'timeout'?"},
    {"luact.tools.sql{db = 'x.db', max_row = 1}",
     "luact.tools.sql: unknown option 'max_row' (did you mean 'max_rows'?"},
    {"luact.tools.files{root = '.', max_byte = 1}",
     "luact.tools.files: unknown option 'max_byte' (did you mean 'max_bytes'?"},
    {"luact.tools.native{lib = 'x', symbol = 'y', signature = 'int()', reslt = 1}",
     "luact.tools.native: unknown option 'reslt' (did you mean 'result'?"},
    {"luact.tools.code{nme = 'x'}",
     "luact.tools.code: unknown option 'nme' (did you mean 'name'?"},
    {"luact.tools.code{sandbox = {tim = 1}}",
     "luact.tools.code: unknown sandbox option 'tim' (did you mean 'time'?"},
    {"luact.native.declare{lib = 'x', symbol = 'y', signature = 'int()', symbl = 'y'}",
     "luact.native.declare: unknown option 'symbl' (did you mean 'symbol'?"},
    {"luact.http.request{url = 'http://127.0.0.1:9/', methd = 'GET'}",
     "luact.http.request: unknown option 'methd' (did you mean 'method'?"},
    {"luact.http.get('http://127.0.0.1:9/', {timout = 1})",
     "luact.http.request: unknown option 'timout' (did you mean 'timeout'?"},
    {"luact.sql.open('/nonexistent/x.db', {creat = true})",
     "luact.sql.open: unknown option 'creat' (did you mean 'create'?"},
    {"local p = os.tmpname()\n"
     "local db <close> = assert(luact.sql.open(p, {create = true}))\n"
     "os.remove(p)\n"
     "db:query('select 1', nil, {max_row = 1})",
     "db:query: unknown option 'max_row' (did you mean 'max_rows'?"},
    {"local r <close> = assert(luact.files.root('.'))\n"
     "r:read('x', {max_byte = 1})",
     "root:read: unknown option 'max_byte' (did you mean 'max_bytes'?"},
    {"local r <close> = assert(luact.files.root('.'))\n"
     "r:list('.', {max_entrie = 1})",
     "root:list: unknown option 'max_entrie' (did you mean 'max_entries'?"},
    {"luact.map({1}, function(x) return x end, {concurency = 2})",
     "luact.map: unknown option 'concurency' (did you mean 'concurrency'?"},
    {"luact.effect('k', 'n', {}, 'pure', function() return 1 end, {schem = {}})",
     "luact.effect: unknown option 'schem' (did you mean 'schema'?"},
    {"luact.workflow{name = 'w', initial = 'a', intial = 'a', states = {a = {finish = true}}}",
     "luact.workflow(w): intial: unknown field (did you mean 'initial'?"},
    {"luact.workflow{name = 'w', initial = 'a', states = {a = {finish = true}}, "
     "limits = {step = 1}}",
     "luact.workflow(w): limits.step: unknown limit (did you mean 'steps'?"},
    {"luact.workflow{name = 'w', initial = 'a', states = {a = {finsh = true}}}",
     "luact.workflow(w): states.a.finsh: unknown field (did you mean 'finish'?"},
    {WF "wf:run{modle = 'openai:x'}",
     "workflow:run: unknown option 'modle' (did you mean 'model'?"},
    {WF "wf:run{model = 'openai:x', limits = {invalids = 1}}",
     "luact.workflow: unknown limit 'invalids' (did you mean 'invalid'?"},
};

START_TEST(typo_is_refused_with_suggestion) {
  ck_assert_msg(run(typo[_i].code) != 0, "accepted: %s", typo[_i].code);
  ck_assert_msg(strstr(err, typo[_i].want) != NULL, "want [%s] in: %s", typo[_i].want, err);
}
END_TEST

/* Far from every name: no guess, but the list of what is accepted. */
START_TEST(no_close_match_lists_the_options) {
  ck_assert_int_ne(run("luact.tool{name = 't', fn = function() end, zzzzzz = 1}"), 0);
  ck_assert_msg(strstr(err, "luact.tool: unknown option 'zzzzzz' (options: name, description, "
                            "params, parameters, fn, effect, timeout, apply, present)") != NULL,
                "%s", err);
  ck_assert_ptr_null(strstr(err, "did you mean"));
}
END_TEST

/* A positional value in an options table is a mistake too (a list where
 * a table of names was meant); its value is never converted to text. */
START_TEST(non_name_key_is_refused) {
  ck_assert_int_ne(run("luact.react{" M "question = 'q', 'tools'}"), 0);
  ck_assert_msg(strstr(err, "luact.react: option keys must be names (got a number key)"), "%s",
                err);
  ck_assert_int_ne(run("luact.tool{name = 't', fn = function() end, [{}] = 1}"), 0);
  ck_assert_msg(strstr(err, "luact.tool: option keys must be names (got a table key)"), "%s",
                err);
}
END_TEST

/* Every known option passes the checker (a table with all of them). */
START_TEST(every_known_option_passes) {
  struct lc_test_lua t;
  lc_test_lua_open(&t);
  for (const struct lc_l_optset *s = lc_l_optsets; s->name; s++) {
    lua_newtable(t.L);
    for (size_t i = 0; i < 3 && s->fields[i]; i++)
      for (const char *const *f = s->fields[i]; *f; f++) {
        lua_pushboolean(t.L, 1);
        lua_setfield(t.L, -2, *f);
      }
    ck_assert_msg(lc_l_opts_unknown(t.L, -1, s->name) == 0, "%s", s->name);
    lua_pop(t.L, 1);
  }
  lc_test_lua_close(&t);
}
END_TEST

Suite *options_suite(void) {
  Suite *s = suite_create("options");
  TCase *tc = tcase_create("options");
  tcase_add_loop_test(tc, typo_is_refused_with_suggestion, 0,
                      (int)(sizeof typo / sizeof typo[0]));
  tcase_add_test(tc, no_close_match_lists_the_options);
  tcase_add_test(tc, non_name_key_is_refused);
  tcase_add_test(tc, every_known_option_passes);
  suite_add_tcase(s, tc);
  return s;
}
