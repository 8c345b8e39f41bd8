/* check_eval.c: luact eval. The metrics against the issue's reference
 * values (sacrebleu, rouge-score), the assertions one by one, datasets
 * (JSONL, promptfoo CSV), and the command end to end on examples/evals
 * against lc-mockllm: exit codes, the JSON report against its published
 * schema, JUnit XML, the HTML report rendered by headless Chromium, a
 * replay with no socket (a network namespace, and strace counting socket
 * calls), --rescore, --repeat, review and compare, and ShopBot's
 * conversations as scenarios. */
#include <check.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util_common.h"
#include "util_lua.h"
#include "util_mock.h"

/* ---- Lua-level checks: the chunk returns "ok" or a message ---- */

static void lua_ok(const char *code) {
  char out[4096], err[4096];
  int rc = lc_test_lua_run_once(NULL, NULL, code, out, sizeof out, err, sizeof err);
  ck_assert_msg(rc == 0, "%s", err);
  ck_assert_msg(strcmp(out, "ok") == 0, "%s", out);
}

START_TEST(bleu_rouge_reference_values) {
  /* Values from sacrebleu 2.x (13a, exp) and rouge-score (issue 19). */
  lua_ok("local M = luact.eval.metrics\n"
         "local function f(x) return string.format('%.2f', x) end\n"
         "local function g(x) return string.format('%.4f', x) end\n"
         "local h1, r1 = 'The quick brown dog jumps on the log.', 'The quick brown fox jumps over the lazy dog'\n"
         "local h2, r2 = 'the cat on the mat today', 'the cat sat on the mat'\n"
         "local got = {\n"
         "  f(M.sentence_bleu(h1, r1)), f(M.corpus_bleu({h1}, {r1})),\n"
         "  g(M.rouge_l(h1, r1).precision), g(M.rouge_l(h1, r1).recall), g(M.rouge_l(h1, r1).fmeasure),\n"
         "  f(M.sentence_bleu(h2, r2)), f(M.corpus_bleu({h2}, {r2})),\n"
         "  g(M.rouge_l(h2, r2).precision), g(M.rouge_l(h2, r2).recall), g(M.rouge_l(h2, r2).fmeasure),\n"
         "  f(M.corpus_bleu({'the cat'}, {r2})), f(M.sentence_bleu('the cat', r2)),\n"
         "  g(M.rouge_l('the cat', r2).precision), g(M.rouge_l('the cat', r2).recall),\n"
         "  g(M.rouge_l('the cat', r2).fmeasure) }\n"
         "local want = {'21.11','21.11','0.6250','0.5556','0.5882','37.99','37.99','0.8333','0.8333',\n"
         "  '0.8333','0.00','13.53','1.0000','0.3333','0.5000'}\n"
         "for i = 1, #want do if got[i] ~= want[i] then return 'value ' .. i .. ': ' .. got[i] .. ' ~= ' .. want[i] end end\n"
         "-- 13a: punctuation split, a period kept inside a number, a dash after a digit split\n"
         "local t = table.concat(M.tokenize_13a('Hello, world! 3.5-4 (ok).&amp;'), '|')\n"
         "if t ~= 'Hello|,|world|!|3.5|-|4|(|ok|)|.|&' then return t end\n"
         "-- corpus BLEU sums statistics: two sentences, two references each\n"
         "local c = M.corpus_bleu({h1, h2}, {{r1, 'a quick brown dog'}, {r2}})\n"
         "if not (c > 0 and c < 100) then return 'corpus ' .. c end\n"
         "if M.levenshtein('kitten', 'sitting') ~= 3 or M.levenshtein('\\u{e9}t\\u{e9}', 'ete') ~= 2 then return 'lev' end\n"
         "return 'ok'\n");
}
END_TEST

START_TEST(trajectory_modes) {
  lua_ok("local T = luact.eval.metrics.trajectory_match\n"
         "local ref = {{name='search', args={q='x', n=1}}, {name='fetch', args={id=2}}}\n"
         "local swapped = {ref[2], ref[1]}\n"
         "local extra = {ref[1], {name='log'}, ref[2]}\n"
         "local fewer_args = {{name='search', args={q='x'}}, {name='fetch', args={id=2}}}\n"
         "local checks = {\n"
         "  {T(ref, ref), true}, {T(swapped, ref), false}, {T(swapped, ref, {mode='unordered'}), true},\n"
         "  {T(extra, ref, {mode='unordered'}), false}, {T(extra, ref, {mode='superset'}), true},\n"
         "  {T(extra, ref, {mode='subset'}), false}, {T({ref[1]}, ref, {mode='subset'}), true},\n"
         "  {T({ref[1]}, ref, {mode='superset'}), false},\n"
         "  {T(fewer_args, ref), false}, {T(fewer_args, ref, {args='ignore'}), true},\n"
         "  {T(fewer_args, ref, {args='subset'}), true}, {T(fewer_args, ref, {args='superset'}), false},\n"
         "  {T(ref, fewer_args, {args='superset'}), true}, {T({{name='search', args={q='y'}}}, {ref[1]}, {args='subset'}), false},\n"
         "}\n"
         "for i, c in ipairs(checks) do if c[1] ~= c[2] then return 'check ' .. i end end\n"
         "local ok, e = pcall(T, ref, ref, {mdoe='strict'})\n"
         "if ok or not tostring(e):find(\"did you mean 'mode'\") then return 'opts: ' .. tostring(e) end\n"
         "return 'ok'\n");
}
END_TEST

START_TEST(retrieval_and_statistics) {
  lua_ok("local M = luact.eval.metrics\n"
         "local function near(a, b) return math.abs(a - b) < 1e-9 end\n"
         "if not near(M.recall_at_k({'a','b','c'}, {'a','c','d'}, 2), 1/3) then return 'recall' end\n"
         "if not near(M.recall_at_k({'a','b','c'}, {'a','c','d'}, 3), 2/3) then return 'recall3' end\n"
         "-- ragas: relevant at ranks 1 and 3: (1/1 + 2/3) / 2\n"
         "if not near(M.context_precision_at_k({'a','x','c'}, {'a','c'}, 3), (1 + 2/3) / 2) then return 'cp' end\n"
         "if M.context_precision_at_k({'x','y'}, {'a'}, 2) ~= 0 then return 'cp0' end\n"
         "-- kappa: 4 items, 3 agree; p_o .75, p_e .5 -> .5\n"
         "local k, a = M.cohen_kappa({true, true, false, false}, {true, false, false, false})\n"
         "if not (near(a, .75) and near(k, .5)) then return 'kappa ' .. k end\n"
         "if M.pass_hat_k(3, 3, 3) ~= 1 or M.pass_hat_k(2, 3, 3) ~= 0 or not near(M.pass_hat_k(2, 4, 2), 1/6) then return 'pass^k' end\n"
         "local lo, hi = M.wilson(8, 10)\n"
         "if not (near(lo, 0.4901624) or math.abs(lo - 0.4902) < 1e-4) or math.abs(hi - 0.9433) > 1e-4 then return 'wilson ' .. lo .. ' ' .. hi end\n"
         "if M.percentile({1, 2, 3, 4}, 50) ~= 2.5 then return 'p50' end\n"
         "return 'ok'\n");
}
END_TEST

START_TEST(assertions_one_by_one) {
  lua_ok("local E = luact.eval\n"
         "local res = {output = 'The Quick brown fox', latency_ms = 120, cost = 0.002, usage = {input = 10, output = 5},\n"
         "  steps = 3, retrieved = {'c1', 'c9'}, trajectory = {{name = 'search', args = {q = 'fox'}}}}\n"
         "local case = {expected = 'the quick brown fox', context_ids = {'c1'}, trajectory = {{name = 'search'}}}\n"
         "local function v(a, r) local x = E.check(a, r or res, case) return x.pass, x.score, x.reason end\n"
         "local cases = {\n"
         "  {{type='equals', value='The Quick brown fox'}, true}, {{type='equals'}, false},\n"
         "  {{type='contains', value='brown'}, true}, {{type='contains', value='BROWN'}, false},\n"
         "  {{type='icontains', value='BROWN'}, true}, {{type='contains', value={'zebra', 'fox'}, any=true}, true},\n"
         "  {{type='contains-all', value={'zebra', 'fox'}}, false}, {{type='icontains-all', value={'quick', 'FOX'}}, true},\n"
         "  {{type='regex', value='^The [A-Z][a-z]+ (brown|red)'}, true}, {{type='regex', value='dog$'}, false},\n"
         "  {{type='starts-with', value='The'}, true}, {{type='not-starts-with', value='The'}, false},\n"
         "  {{type='is-json'}, false}, {{type='latency', value=200}, true}, {{type='latency', value=100}, false},\n"
         "  {{type='cost', value=0.001}, false}, {{type='tokens', value=15}, true}, {{type='steps', value=2}, false},\n"
         "  {{type='rouge-l', threshold=0.99}, true}, {{type='bleu', threshold=0.99}, false},\n"
         "  {{type='levenshtein', threshold=2}, true}, {{type='levenshtein', value='fox', threshold=2}, false},\n"
         "  {{type='trajectory', args='ignore'}, true}, {{type='trajectory'}, false},\n"
         "  {{type='recall@k', k=1}, true}, {{type='context-precision@k', k=2, threshold=1}, true},\n"
         "  {{type='lua', value=function(o) return #o > 3 end}, true}, {{type='contains', value='fox', negate=true}, false},\n"
         "}\n"
         "for i, c in ipairs(cases) do local p, s, r = v(c[1]) if p ~= c[2] then return 'case ' .. i .. ' (' .. c[1].type .. '): ' .. r end end\n"
         "local jres = {output = '```json\\n{\"a\": 1}\\n```'}\n"
         "if not v({type='is-json', schema={type='object', required={'a'}}}, jres) then return 'is-json fenced' end\n"
         "local p, _, why = v({type='is-json', schema={type='object', required={'b'}}}, jres)\n"
         "if p or not why:find('schema') then return 'is-json schema ' .. why end\n"
         "-- unknown fields and types are configuration errors, with a suggestion\n"
         "local ok, e = pcall(E.check, {type='contains', valeu='x'}, res, case)\n"
         "if ok or not (type(e) == 'table' and e.config:find(\"did you mean 'value'\")) then return 'unknown field' end\n"
         "ok, e = pcall(E.check, {type='containz'}, res, case)\n"
         "if ok or not e.config:find('unknown assertion type') then return 'unknown type' end\n"
         "ok, e = pcall(E.check, {type='regex', value='('}, res, case)\n"
         "if ok then return 'bad regex accepted' end\n"
         "-- scores stay in [0, 1]: this BLEU is 100.00000000000004 in floating point\n"
         "local s = 'You have 30 days from delivery to return an item.'\n"
         "local b = E.check({type='bleu'}, {output = s}, {expected = s})\n"
         "if not (b.score <= 1 and b.pass) then return string.format('bleu score %.17g', b.score) end\n"
         "-- NUL bytes in model output reach the regex whole\n"
         "if not v({type='regex', value='b$'}, {output = 'a\\0b'}) then return 'regex NUL' end\n"
         "return 'ok'\n");
}
END_TEST

/* A weighted mean decides with a threshold; without one, every weighted
 * assertion must pass, and a weight of 0 only reports. */
START_TEST(weights_and_thresholds) {
  lua_ok("local E = luact.eval\n"
         "local cfg = { path = 'x', targets = {{name = 't', hash = string.rep('0', 64)}},\n"
         "  cases = {{id = '1', expected = 'a'}, {id = '2', expected = 'a', threshold = 0.7}},\n"
         "  assert = {{type = 'equals', weight = 3}, {type = 'contains', value = 'zz', weight = 1},\n"
         "            {type = 'contains', value = 'nope', weight = 0}} }\n"
         "cfg.targets[1].run = function() return 'a' end\n"
         "local rep = E.run(cfg, {concurrency = 1})\n"
         "local r1, r2 = rep.results[1], rep.results[2]\n"
         "if r1.pass or r1.score ~= 0.75 then return 'no threshold: ' .. tostring(r1.pass) .. ' ' .. r1.score end\n"
         "if not r2.pass or r2.score ~= 0.75 then return 'threshold 0.7: ' .. tostring(r2.pass) end\n"
         "if #r1.assertions ~= 3 or r1.assertions[3].pass then return 'weight 0 reported' end\n"
         "return 'ok'\n");
}
END_TEST

/* ---- the command ---- */

static char tmp[128];
static struct lc_mock mock;

static void cmd_setup(void) {
  memset(&mock, 0, sizeof mock);
  snprintf(tmp, sizeof tmp, "/tmp/lc-eval-XXXXXX");
  ck_assert_ptr_nonnull(mkdtemp(tmp));
}

static void cmd_teardown(void) {
  if (mock.pid > 0) ck_assert_int_eq(lc_mock_stop(&mock), 0);
  char c[300];
  snprintf(c, sizeof c, "rm -rf '%s'", tmp);
  if (system(c) != 0) fprintf(stderr, "could not remove %s\n", tmp);
}

/* Runs a shell command in the source tree; its stdout+stderr in out;
 * returns the exit status. */
static int sh(char *out, size_t cap, const char *fmt, ...) {
  char cmd[4096];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(cmd, sizeof cmd, fmt, ap);
  va_end(ap);
  char full[4400];
  snprintf(full, sizeof full, "cd '%s' && (%s) 2>&1", lc_test_source_dir(), cmd);
  FILE *p = popen(full, "r");
  ck_assert_ptr_nonnull(p);
  size_t n = fread(out, 1, cap - 1, p);
  out[n] = '\0';
  while (fread(cmd, 1, sizeof cmd, p) > 0) {
  }
  int st = pclose(p);
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

#define LUACT LC_BINARY_DIR "/luact"

static void start_mock(void) {
  char path[512];
  snprintf(path, sizeof path, "%s/examples/evals/mock.json", lc_test_source_dir());
  ck_assert_int_eq(lc_mock_start_file(&mock, path, NULL), 0);
}

static char *slurp(const char *fmt, const char *a) {
  char p[512];
  snprintf(p, sizeof p, fmt, a);
  char *s = lc_test_read_file(p, NULL);
  ck_assert_msg(s != NULL, "cannot read %s", p);
  return s;
}

/* Validates dir/results.json against docs/eval-report.schema.json. */
static void check_schema(const char *dir) {
  static char out[8192];
  int rc = sh(out, sizeof out,
              "cat > '%s/v.lua' <<'EOF'\n"
              "local function rd(p) local f = assert(io.open(p)) local s = f:read('a') f:close() return s end\n"
              "local v = assert(luact.schema.compile(luact.json.decode(rd('docs/eval-report.schema.json'))))\n"
              "return assert(v:validate(assert(luact.json.decode(rd(arg[1])))))\n"
              "EOF\n"
              "'%s' run '%s/v.lua' '%s/results.json'",
              tmp, LUACT, tmp, dir);
  ck_assert_msg(rc == 0, "%s/results.json does not fit the schema: %s", dir, out);
}

START_TEST(recipes_end_to_end_with_every_report) {
  start_mock();
  static char out[65536];
  int rc = sh(out, sizeof out,
              "OPENAI_BASE_URL='%s/v1' LUACT_MODEL=openai:mock-gpt '%s' eval --out '%s/run' "
              "--junit '%s/j.xml' --html '%s/r.html' --json '%s/r.json' examples/evals/recipes.eval.lua",
              mock.base_url, LUACT, tmp, tmp, tmp, tmp);
  /* v2 fails two cases on purpose: exit 100 */
  ck_assert_msg(rc == 100, "rc %d: %s", rc, out);
  const char *want[] = {"case               | v1", "feta               | PASS 0.98",
                        "rice               | PASS 0.98", "FAIL", "v1 [", "4/4 passed", "2/4 passed",
                        "llm-rubric", "pairwise v1 vs v2: 0 wins, 0 losses, 4 ties, win rate 0.500",
                        "total: 6/8 passed (75.0%)", "judge cost $0.0009"};
  for (size_t i = 0; i < sizeof want / sizeof *want; i++)
    ck_assert_msg(strstr(out, want[i]), "missing [%s] in:\n%s", want[i], out);
  char run[200];
  snprintf(run, sizeof run, "%s/run", tmp);
  check_schema(run);
  char *j = slurp("%s/run/results.json", tmp);
  /* the re-ask: the rubric judge's first reply was not JSON */
  ck_assert_ptr_nonnull(strstr(j, "[\"production\"]"));
  ck_assert_ptr_nonnull(strstr(j, "\"not: found\""));
  free(j);
  char *x = slurp("%s/j.xml", tmp);
  ck_assert_ptr_nonnull(strstr(x, "<testsuites name=\"luact eval\" tests=\"8\" failures=\"2\" errors=\"0\">"));
  ck_assert_ptr_nonnull(strstr(x, "<testcase classname=\"v2\" name=\"rice\""));
  ck_assert_ptr_nonnull(strstr(x, "<failure message=\"not-icontains: not: found\">"));
  free(x);
  /* The judge's first, invalid reply was asked again: it is in the
   * journal, and the 8 rubric verdicts took 9 judge calls. */
  ck_assert_int_eq(sh(out, sizeof out, "grep -c 'I think it passes' '%s/run/journal.jsonl'", tmp), 0);
  int rc2 = sh(out, sizeof out,
               "echo \"local f = io.open(arg[1]) local r = luact.json.decode(f:read('a')) local n = 0 "
               "for _, x in ipairs(r.results) do n = n + x.judge.calls end print(n, r.pairwise.judge.calls)\" "
               "> '%s/n.lua' && '%s' run '%s/n.lua' '%s/run/results.json'", tmp, LUACT, tmp, tmp);
  ck_assert_msg(rc2 == 0 && strcmp(out, "9\t8\n") == 0, "judge calls: %s", out);
}
END_TEST

/* Headless Chromium renders the HTML report offline: the inline script
 * counts the charts and rows into #rendered, and --dump-dom shows it. */
START_TEST(html_report_renders_in_chromium) {
  start_mock();
  static char out[1 << 18];
  int rc = sh(out, sizeof out,
              "OPENAI_BASE_URL='%s/v1' LUACT_MODEL=openai:mock-gpt '%s' eval --quiet --out '%s/run' "
              "examples/evals/recipes.eval.lua",
              mock.base_url, LUACT, tmp);
  ck_assert_msg(rc == 100, "rc %d: %s", rc, out);
  rc = sh(out, sizeof out,
          "chromium --headless --no-sandbox --disable-gpu --disable-background-networking "
          "--disable-component-update --no-first-run --user-data-dir='%s/chrome' --dump-dom "
          "'file://%s/run/report.html' 2>/dev/null",
          tmp, tmp);
  ck_assert_msg(rc == 0, "chromium failed (%d); is it installed (scripts/setup)?", rc);
  ck_assert_msg(strstr(out, "<p id=\"rendered\" class=\"small\">rendered: 4 charts, 8 rows</p>"),
                "not rendered: %.2000s", out);
  ck_assert_ptr_nonnull(strstr(out, "id=\"pass-rates\""));
  ck_assert_ptr_nonnull(strstr(out, "6 of 8 passed"));
  /* Model output is escaped text, never markup. */
  ck_assert_ptr_nonnull(strstr(out, "{\"recipe_name\": \"Paella with peas\""));
}
END_TEST

/* --replay: same verdicts, latency and cost, with no network at all (a
 * fresh network namespace) and not one socket (strace). */
START_TEST(replay_opens_no_socket) {
  start_mock();
  static char out[65536];
  int rc = sh(out, sizeof out,
              "OPENAI_BASE_URL='%s/v1' LUACT_MODEL=openai:mock-gpt '%s' eval --quiet --out '%s/a' "
              "examples/evals/recipes.eval.lua",
              mock.base_url, LUACT, tmp);
  ck_assert_msg(rc == 100, "rc %d: %s", rc, out);
  ck_assert_int_eq(lc_mock_stop(&mock), 0);
  rc = sh(out, sizeof out,
          /* LeakSanitizer cannot run under ptrace: the other cases check leaks */
          "env -u OPENAI_BASE_URL LUACT_MODEL=openai:mock-gpt ASAN_OPTIONS=detect_leaks=0 "
          "unshare -n strace -f -qq -e trace=socket,connect "
          "-o '%s/strace.txt' '%s' eval --quiet --replay '%s/a' --out '%s/b'",
          tmp, LUACT, tmp, tmp);
  ck_assert_msg(rc == 100, "replay rc %d: %s", rc, out);
  ck_assert_int_eq(sh(out, sizeof out, "grep -c -E 'socket\\(|connect\\(' '%s/strace.txt'", tmp), 1);
  ck_assert_str_eq(out, "0\n");
  /* identical results: verdicts, scores, outputs, latency, cost, judge cost */
  rc = sh(out, sizeof out,
          "cat > '%s/same.lua' <<'EOF'\n"
          "local function rd(p) local f = assert(io.open(p)) local s = f:read('a') f:close() return luact.json.decode(s) end\n"
          "local a, b = rd(arg[1] .. '/a/results.json'), rd(arg[1] .. '/b/results.json')\n"
          "assert(#a.results == 8 and #b.results == 8)\n"
          "for i, x in ipairs(a.results) do local y = b.results[i]\n"
          "  for _, k in ipairs{'pass', 'score', 'output', 'latency_ms', 'cost', 'version'} do\n"
          "    assert(x[k] == y[k], k .. ' differs: ' .. tostring(x[k]) .. ' / ' .. tostring(y[k])) end\n"
          "  assert(x.judge.cost == y.judge.cost and x.judge.calls == y.judge.calls)\n"
          "  assert(x.latency_ms > 0) end\n"
          "assert(b.replay_of == arg[1] .. '/a')\n"
          "EOF\n"
          "'%s' run '%s/same.lua' '%s'",
          tmp, LUACT, tmp, tmp);
  ck_assert_msg(rc == 0, "%s", out);
  /* A changed prompt asks the journal for a call it does not have: exit 1,
   * naming the difference. */
  rc = sh(out, sizeof out,
          "sed 's/Give one recipe/Give a recipe/' examples/evals/recipes.eval.lua > examples/evals/.t-recipes.eval.lua && "
          "unshare -n env LUACT_MODEL=openai:mock-gpt '%s' eval --quiet --replay '%s/a' --out '%s/c' "
          "examples/evals/.t-recipes.eval.lua; r=$?; rm -f examples/evals/.t-recipes.eval.lua; exit $r",
          LUACT, tmp, tmp);
  ck_assert_msg(rc == 1, "rc %d: %s", rc, out);
  ck_assert_msg(strstr(out, "does not match the journal") && strstr(out, "Give a recipe"), "%s", out);
  /* compare: nothing changed between a run and its replay */
  rc = sh(out, sizeof out, "'%s' eval compare '%s/a' '%s/b'", LUACT, tmp, tmp);
  ck_assert_msg(rc == 0 && strstr(out, "0 of 8 rows changed; pass rate 75.0% -> 75.0%"), "%s", out);
}
END_TEST

/* Small eval files with Lua targets: no model at all. */
static void write_file(const char *name, const char *text) {
  char p[300];
  snprintf(p, sizeof p, "%s/%s", tmp, name);
  FILE *f = fopen(p, "w");
  ck_assert_ptr_nonnull(f);
  fputs(text, f);
  fclose(f);
}

START_TEST(exit_codes_repeat_rescore_compare_review) {
  static char out[65536];
  write_file("cases.jsonl", "{\"id\": \"one\", \"input\": \"a\", \"expected\": \"A\"}\n"
                            "{\"id\": \"two\", \"input\": \"b\", \"expected\": \"B\"}\n");
  write_file("good.eval.lua", "return { targets = {{ name = 'upper', run = function(c) return c.input:upper() end }},\n"
                              "  dataset = 'cases.jsonl', assert = {{ type = 'equals' }} }\n");
  write_file("bad.eval.lua", "return { targets = {{ name = 'upper', run = function(c) return c.input end }},\n"
                             "  dataset = 'cases.jsonl', assert = {{ type = 'equals' }} }\n");
  write_file("typo.eval.lua", "return { targetz = {}, dataset = 'cases.jsonl' }\n");
  /* flaky: every other call passes (one task at a time: a fixed order) */
  write_file("flaky.eval.lua", "local n = 0\n"
                               "return { concurrency = 1, targets = {{ name = 'coin', run = function(c)\n"
                               "  n = n + 1; return n % 2 == 1 and c.expected or 'no' end }},\n"
                               "  dataset = 'cases.jsonl', assert = {{ type = 'equals' }} }\n");
  ck_assert_int_eq(sh(out, sizeof out, "'%s' eval --quiet --out '%s/g' '%s/good.eval.lua'", LUACT, tmp, tmp), 0);
  ck_assert_int_eq(sh(out, sizeof out, "'%s' eval --quiet --out '%s/b' '%s/bad.eval.lua'", LUACT, tmp, tmp), 100);
  ck_assert_int_eq(
      sh(out, sizeof out, "'%s' eval --quiet --fail-under 0 --out '%s/b0' '%s/bad.eval.lua'", LUACT, tmp, tmp), 0);
  ck_assert_int_eq(sh(out, sizeof out, "'%s' eval --quiet --out '%s/t' '%s/typo.eval.lua'", LUACT, tmp, tmp), 2);
  ck_assert_msg(strstr(out, "unknown field 'targetz' (did you mean 'targets'?"), "%s", out);
  ck_assert_int_eq(sh(out, sizeof out, "'%s' eval --quiet '%s/missing.eval.lua'", LUACT, tmp), 2);
  ck_assert_int_eq(sh(out, sizeof out, "'%s' eval --bogus", LUACT), 2);
  ck_assert_int_eq(sh(out, sizeof out, "'%s' eval --help", LUACT), 0);
  ck_assert_ptr_nonnull(strstr(out, "exit codes: 0 all passed, 100 a case failed"));

  /* --repeat 3: T F T for case one, F T F for case two */
  int rc = sh(out, sizeof out, "'%s' eval --repeat 3 --out '%s/f' '%s/flaky.eval.lua'", LUACT, tmp, tmp);
  ck_assert_msg(rc == 100, "%s", out);
  ck_assert_msg(strstr(out, "flaky: coin / one passed 2 of 3 (flips 2, pass^3 0.000)"), "%s", out);
  ck_assert_msg(strstr(out, "flaky: coin / two passed 1 of 3 (flips 2, pass^3 0.000)"), "%s", out);
  char run[200];
  snprintf(run, sizeof run, "%s/f", tmp);
  check_schema(run);

  /* --rescore: bad's stored outputs scored by good's... same assertions,
   * other file: the stored outputs are kept, the target never runs. */
  rc = sh(out, sizeof out, "'%s' eval --rescore '%s/g' --out '%s/r' '%s/bad.eval.lua'", LUACT, tmp, tmp, tmp);
  ck_assert_msg(rc == 0, "rescore ran the target? %s", out);

  /* compare: good then bad, case by case */
  rc = sh(out, sizeof out, "'%s' eval compare '%s/g' '%s/b' --html '%s/cmp.html'", LUACT, tmp, tmp, tmp);
  ck_assert_msg(rc == 0, "%s", out);
  ck_assert_msg(strstr(out, "PASS->FAIL") && strstr(out, "REGRESSED") && strstr(out, "version "),
                "%s", out);
  ck_assert_ptr_nonnull(strstr(out, "2 of 2 rows changed; pass rate 100.0% -> 0.0%"));
  char *cmp = slurp("%s/cmp.html", tmp);
  ck_assert_ptr_nonnull(strstr(cmp, "id=\"compare\""));
  ck_assert_ptr_nonnull(strstr(cmp, "one                upper"));
  free(cmp);
}
END_TEST

/* Model output is hostile: invalid UTF-8, NUL, markup, escape sequences.
 * Every report is still written, valid, and shows it as text. */
START_TEST(hostile_output_in_reports) {
  static char out[65536];
  write_file("h.eval.lua",
             "return { targets = {{ name = 'bad', run = function()\n"
             "  return 'a\\255\\254<script>alert(1)</script>\\0\\27[31m]]></failure>' end }},\n"
             "  dataset = {{ id = 'x\\n<b>', expected = 'a' }}, assert = {{ type = 'contains' }} }\n");
  int rc = sh(out, sizeof out, "'%s' eval --out '%s/h' '%s/h.eval.lua'", LUACT, tmp, tmp);
  ck_assert_msg(rc == 0, "rc %d: %s", rc, out);
  ck_assert_ptr_null(strchr(out, 27)); /* no escape sequence reaches the terminal */
  char run[200];
  snprintf(run, sizeof run, "%s/h", tmp);
  check_schema(run);
  char *html = slurp("%s/h/report.html", tmp);
  ck_assert_ptr_null(strstr(html, "<script>alert"));
  ck_assert_ptr_nonnull(strstr(html, "&lt;script&gt;alert(1)&lt;/script&gt;"));
  free(html);
  char *x = slurp("%s/h/junit.xml", tmp);
  ck_assert_ptr_null(strstr(x, "]]></failure>"));
  ck_assert_ptr_null(strchr(x, 27));
  free(x);
}
END_TEST

/* A key that a target's output echoes (a tool behind a proxy that
 * quotes its Authorization header, say) reaches no report, the terminal
 * table or stderr: the canary, in the clear and JSON-escaped. */
START_TEST(secret_canary_in_no_report) {
  static char out[65536];
  write_file("k.eval.lua",
             "return { targets = {{ name = 'leaky', run = function()\n"
             "  local k = os.getenv('LC_CANARY_API_KEY')\n"
             "  error('proxy said: bad key ' .. k)\n"
             "end }, { name = 'echo', run = function()\n"
             "  return 'key=' .. os.getenv('LC_CANARY_API_KEY') .. ' \"' end }},\n"
             "  dataset = {{ id = 'c1', expected = 'sk-canary' }},\n"
             "  assert = {{ type = 'contains' }, { type = 'equals' }} }\n");
  const char *canary = "sk-canary-9d8e7f6a5b4c3d2e1f";
  int rc = sh(out, sizeof out,
              "LC_CANARY_API_KEY='%s' '%s' eval --out '%s/k' --json '%s/k.json' --junit "
              "'%s/k.xml' '%s/k.eval.lua'",
              canary, LUACT, tmp, tmp, tmp, tmp);
  ck_assert_msg(rc == 100, "rc %d: %s", rc, out);
  ck_assert_msg(!strstr(out, "canary-9d8e7f"), "the key is on the terminal:\n%s", out);
  const char *files[] = {"%s/k/results.json", "%s/k/junit.xml", "%s/k/report.html", "%s/k.json",
                         "%s/k.xml"};
  for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
    char *t = slurp(files[i], tmp);
    ck_assert_msg(!strstr(t, "canary-9d8e7f"), "the key is in %s", files[i]);
    if (i == 0) ck_assert_ptr_nonnull(strstr(t, "[REDACTED]")); /* it was there to scrub */
    free(t);
  }
  char run[200];
  snprintf(run, sizeof run, "%s/k", tmp);
  check_schema(run);
}
END_TEST

/* A ReAct agent as a target (its tool calls are the trajectory), and
 * providers: a prompt target without a model runs on each. */
START_TEST(react_target_and_providers) {
  static char out[65536];
  ck_assert_int_eq(lc_mock_start(&mock,
      "[{\"times\": 1, \"match\": {\"body_contains\": \"Question: what is six times seven\"},"
      "  \"reply\": {\"openai\": {\"tool_calls\": [{\"id\": \"c1\", \"name\": \"calc\","
      "   \"arguments\": {\"expr\": \"6*7\"}}]}}},"
      " {\"match\": {\"body_contains\": \"six times seven\"}, \"reply\": {\"openai\": {\"text\": \"It is 42.\"}}},"
      " {\"match\": {\"body_contains\": \"Say hi\"}, \"reply\": {\"openai\": {\"text\": \"hi there\"}}}]"), 0);
  write_file("r.eval.lua",
             "local calc = luact.tool{ name = 'calc', params = { type = 'object', properties = { expr = { type = 'string' } } },\n"
             "  fn = function(a) return '42' end }\n"
             "return { providers = { 'openai:mock-a', 'openai:mock-b' },\n"
             "  targets = {{ name = 'agent', model = 'openai:mock-a', react = { tools = { calc } },\n"
             "               prompt = 'Question: {{input}}' },\n"
             "             { name = 'hi', prompt = 'Say hi' }},\n"
             "  dataset = {{ id = 'q', input = 'what is six times seven?' }},\n"
             "  assert = {{ type = 'contains', value = 'i' }},\n"
             "  concurrency = 1 }\n");
  int rc = sh(out, sizeof out, "OPENAI_BASE_URL='%s/v1' '%s' eval --quiet --out '%s/r' '%s/r.eval.lua'",
              mock.base_url, LUACT, tmp, tmp);
  ck_assert_msg(rc == 0, "rc %d: %s", rc, out);
  rc = sh(out, sizeof out,
          "cat > '%s/c.lua' <<'EOF'\n"
          "local f = assert(io.open(arg[1])) local r = luact.json.decode(f:read('a')) f:close()\n"
          "local names = {} for _, t in ipairs(r.targets) do names[#names + 1] = t.name end\n"
          "assert(table.concat(names, ',') == 'agent,hi@openai:mock-a,hi@openai:mock-b', table.concat(names, ','))\n"
          "local a = r.results[1]\n"
          "assert(a.output == 'It is 42.', a.output)\n"
          "assert(#a.trajectory == 1 and a.trajectory[1].name == 'calc' and a.trajectory[1].args.expr == '6*7')\n"
          "assert(a.steps == 2 and a.usage.input > 0, luact.json.encode(a))\n"
          "assert(r.results[2].output == 'hi there' and r.results[3].output == 'hi there')\n"
          "assert(r.targets[2].version ~= r.targets[3].version, 'the model is part of the version')\n"
          "EOF\n"
          "'%s' run '%s/c.lua' '%s/r/results.json'",
          tmp, LUACT, tmp, tmp);
  ck_assert_msg(rc == 0, "%s", out);
  /* A luact.workflow as a target: the case's turns are the user's lines. */
  ck_assert_int_eq(lc_mock_set_script(&mock,
      "[{\"times\": 1, \"reply\": {\"openai\": {\"tool_calls\": [{\"id\": \"c1\", \"name\": \"ask_user\","
      "   \"arguments\": {\"question\": \"Which number?\"}}]}}},"
      " {\"reply\": {\"openai\": {\"tool_calls\": [{\"id\": \"c2\", \"name\": \"finish\","
      "   \"arguments\": {\"summary\": \"You said 42.\"}}]}}}]"), 0);
  write_file("w.eval.lua",
             "local wf = luact.workflow{ name = 'w', initial = 's', states = { s = { ask_user = true, finish = true } } }\n"
             "return { targets = {{ name = 'flow', workflow = wf, model = 'openai:m' }},\n"
             "  dataset = {{ id = 'one', input = 'hello', turns = { 'hello', '42' } }},\n"
             "  assert = {{ type = 'contains', value = '42' }, { type = 'trajectory', mode = 'strict', args = 'ignore',\n"
             "             value = {{ name = 'ask_user' }, { name = 'finish' }} }, { type = 'steps', value = 2 }} }\n");
  rc = sh(out, sizeof out, "OPENAI_BASE_URL='%s/v1' '%s' eval --out '%s/w' '%s/w.eval.lua'", mock.base_url, LUACT, tmp, tmp);
  ck_assert_msg(rc == 0 && strstr(out, "one                | PASS 1.00"), "rc %d: %s", rc, out);
}
END_TEST

/* The scenario format on its own: a two-turn echo agent, one scenario
 * with scripted replies (the runner's own mock), one against "a real
 * model" (here the test's mock, through OPENAI_BASE_URL). */
START_TEST(generic_scenarios_scripted_and_real) {
  static char out[65536];
  ck_assert_int_eq(lc_mock_start(&mock, "[{\"reply\": {\"openai\": {\"text\": \"real reply\"}}}]"), 0);
  char d[300];
  snprintf(d, sizeof d, "%s/sc", tmp);
  ck_assert_int_eq(sh(out, sizeof out, "mkdir -p '%s'", d), 0);
  write_file("sc/a_scripted.lua",
             "return { turns = { 'hello', 'again' }, model = { { 'text', 'one' }, { 'text', 'two' } },\n"
             "  expect = { status = 'finished', state = { said = 'one|two' },\n"
             "             model_saw = { 'again' }, check = function(st) return st.said:find('two') ~= nil end } }\n");
  write_file("sc/b_real.lua",
             "return { turns = { 'hi' }, expect = { state = { said = 'real reply' } } }\n");
  write_file("sc/c_unused.lua",
             "return { turns = { 'x', 'y', 'z' }, model = { { 'text', 'a' }, { 'text', 'b' }, { 'text', 'c' } } }\n");
  write_file("s.eval.lua",
             "return { scenarios = { dir = 'sc', model = 'openai:whatever', run = function(sc, env)\n"
             "    local said = {}\n"
             "    local line = env.message\n"
             "    for _ = 1, 2 do\n"
             "      if not line then break end\n"
             "      local r = assert(luact.llm.chat{ model = env.model, base_url = env.base_url, prompt = line })\n"
             "      said[#said + 1] = r.text\n"
             "      if not sc.model then break end\n"
             "      line = env.input()\n"
             "    end\n"
             "    env.said = table.concat(said, '|')\n"
             "    return { output = env.said, status = 'finished' }\n"
             "  end, state = function(sc, env) return { said = env.said } end } }\n");
  int rc = sh(out, sizeof out, "OPENAI_BASE_URL='%s/v1' LUACT_MOCKLLM='%s/lc-mockllm' '%s' eval --out '%s/r' '%s/s.eval.lua'",
              mock.base_url, LC_BINARY_DIR, LUACT, tmp, tmp);
  ck_assert_msg(rc == 100, "rc %d: %s", rc, out);
  ck_assert_msg(strstr(out, "a_scripted         | PASS") && strstr(out, "b_real             | PASS") &&
                    strstr(out, "c_unused           | FAIL"),
                "%s", out);
  char *j = slurp("%s/r/results.json", tmp);
  /* three scripted replies, two asked for */
  ck_assert_msg(strstr(j, "1 scripted replies unused"), "%.3000s", j);
  free(j);
}
END_TEST

/* Pairwise: a judge that prefers the same answer in both orders gives a
 * win; one that always says "A" (position bias) gives a tie. */
START_TEST(pairwise_both_orders) {
  char out[4096], err[4096];
  ck_assert_int_eq(lc_mock_start(&mock,
      "[{\"match\": {\"body_contains\": \"Assistant A's Answer]\\\\nGOOD\"},"
      "  \"reply\": {\"openai\": {\"text\": \"A is right. [[A]]\"}}},"
      " {\"match\": {\"body_contains\": \"Assistant A's Answer]\\\\nBAD\"},"
      "  \"reply\": {\"openai\": {\"text\": \"no verdict yet\"}}, \"times\": 1},"
      " {\"match\": {\"body_contains\": \"Assistant A's Answer]\\\\nBAD\"},"
      "  \"reply\": {\"openai\": {\"text\": \"[[B]]\"}}},"
      " {\"reply\": {\"openai\": {\"text\": \"[[A]]\"}}}]"), 0);
  char base[128];
  snprintf(base, sizeof base, "%s/v1", mock.base_url);
  int rc = lc_test_lua_run_once(base, NULL,
      "local ctx = { judge = { model = 'openai:j', base_url = BASE }, judge_usage = { input = 0, output = 0, calls = 0, cost = 0 } }\n"
      "local w, d = luact.eval.pairwise('q?', 'GOOD', 'BAD', { type = 'pairwise' }, ctx)\n"
      "if w ~= 'a' then return 'good first: ' .. tostring(w) end\n"
      "w = luact.eval.pairwise('q?', 'BAD', 'GOOD', { type = 'pairwise' }, ctx)\n"
      "if w ~= 'b' then return 'good second: ' .. tostring(w) end\n"
      "w, d = luact.eval.pairwise('q?', 'one', 'two', { type = 'pairwise' }, ctx)\n"
      "if w ~= 'tie' or d.first ~= 'A' or d.swapped ~= 'A' then return 'bias: ' .. tostring(w) end\n"
      "-- 3 + 2 + 2 calls: the reply without a verdict was asked again\n"
      "if ctx.judge_usage.calls ~= 7 then return 'calls ' .. ctx.judge_usage.calls end\n"
      "return 'ok'\n",
      out, sizeof out, err, sizeof err);
  ck_assert_msg(rc == 0, "%s", err);
  ck_assert_msg(strcmp(out, "ok") == 0, "%s", out);
}
END_TEST

/* The RAG example: retrieval by chunk id, ROUGE-L and BLEU against the
 * reference, and ragas's four judge metrics (the mock plays the judge). */
START_TEST(support_rag_metrics) {
  start_mock();
  static char out[65536];
  int rc = sh(out, sizeof out,
              "OPENAI_BASE_URL='%s/v1' LUACT_MODEL=openai:mock-gpt '%s' eval --out '%s/run' "
              "examples/evals/support.eval.lua",
              mock.base_url, LUACT, tmp);
  ck_assert_msg(rc == 0, "rc %d: %s", rc, out);
  const char *want[] = {"4/4 passed", "recall@k             mean 1.000", "context-precision@k  mean 1.000",
                        "faithfulness         mean 1.000", "context-recall       mean 1.000",
                        /* ratings 2 and 1 of 2: (2 + 1) / 4 */
                        "context-relevance    mean 0.750", "answer-relevancy", "rouge-l", "bleu"};
  for (size_t i = 0; i < sizeof want / sizeof *want; i++)
    ck_assert_msg(strstr(out, want[i]), "missing [%s] in:\n%s", want[i], out);
  char run[200];
  snprintf(run, sizeof run, "%s/run", tmp);
  check_schema(run);
  char *j = slurp("%s/run/results.json", tmp);
  ck_assert_ptr_nonnull(strstr(j, "1 of 1 statements supported by the context"));
  ck_assert_ptr_nonnull(strstr(j, "ratings 2 and 1 of 2"));
  free(j);
}
END_TEST

/* review: a person's verdicts on the judge's; agreement and kappa. */
START_TEST(review_agreement_and_kappa) {
  start_mock();
  static char out[65536];
  int rc = sh(out, sizeof out,
              "OPENAI_BASE_URL='%s/v1' LUACT_MODEL=openai:mock-gpt '%s' eval --quiet --out '%s/run' "
              "examples/evals/recipes.eval.lua",
              mock.base_url, LUACT, tmp);
  ck_assert_msg(rc == 100, "%s", out);
  /* 8 rubric verdicts, all PASS by the judge; the person fails two. */
  write_file("answers.txt", "y\ny\nn\ny\ny\ny\nn\ny\n");
  rc = sh(out, sizeof out, "'%s' eval review '%s/run' --input '%s/answers.txt'", LUACT, tmp, tmp);
  ck_assert_msg(rc == 0, "%s", out);
  ck_assert_msg(strstr(out, "judge-human agreement 0.750 over 8 verdicts, Cohen's kappa 0.000"), "%s", out);
  char run[200];
  snprintf(run, sizeof run, "%s/run", tmp);
  check_schema(run);
  char *html = slurp("%s/run/report.html", tmp);
  ck_assert_ptr_nonnull(strstr(html, "8 verdicts; judge-human agreement 0.750; Cohen's kappa 0.000"));
  free(html);
}
END_TEST

/* promptfoo CSV: columns become vars, __expected columns assertions. */
START_TEST(csv_dataset) {
  lua_ok("local p = os.tmpname()\n"
         "local f = io.open(p, 'w')\n"
         "f:write('q,__expected1,__expected2,__description,__threshold\\n')\n"
         "f:write('\"a, \"\"quoted\"\" one\",\"icontains-any: x, Y \",not-regex: ^z,first,0.5\\n')\n"
         "f:write('b,plain text,,second,\\n')\n"
         "f:close()\n"
         "local cs = luact.eval.load_csv(p)\n"
         "os.remove(p)\n"
         "if #cs ~= 2 then return 'rows ' .. #cs end\n"
         "local a = cs[1]\n"
         "if a.vars.q ~= 'a, \"quoted\" one' or a.description ~= 'first' or a.threshold ~= 0.5 then return 'row 1' end\n"
         "if a.assert[1].type ~= 'icontains-any' or a.assert[1].value[2] ~= 'Y' then return 'any' end\n"
         "if a.assert[2].type ~= 'not-regex' or a.assert[2].value ~= '^z' then return 'not-regex' end\n"
         "if cs[2].assert[1].type ~= 'equals' or cs[2].assert[1].value ~= 'plain text' or #cs[2].assert ~= 1 then return 'equals' end\n"
         "return 'ok'\n");
}
END_TEST

/* ShopBot's conversations as scenario files; and a wrong expectation
 * fails (the checks can fail). */
START_TEST(shopbot_scenarios) {
  static char out[65536];
  int rc = sh(out, sizeof out,
              "LUACT_MOCKLLM='%s/lc-mockllm' SHOPBOT_SHIPPING_BIN='%s/shopbot-shipping' '%s' eval "
              "--out '%s/run' examples/evals/shopbot.eval.lua",
              LC_BINARY_DIR, LC_BINARY_DIR, LUACT, tmp);
  ck_assert_msg(rc == 0, "rc %d: %s", rc, out);
  ck_assert_msg(strstr(out, "shopbot [") && strstr(out, "10/10 passed"), "%s", out);
  char run[200];
  snprintf(run, sizeof run, "%s/run", tmp);
  check_schema(run);
  /* The same conversation with a wrong final state expected. */
  rc = sh(out, sizeof out,
          "mkdir -p '%s/sc' && sed 's/A1001 \\[11\\] emailed/A1001 [12] emailed/' "
          "examples/evals/shopbot/happy_path.lua > '%s/sc/happy_path.lua' && "
          "sed \"s|dir = \\\"shopbot\\\"|dir = \\\"%s/sc\\\"|\" examples/evals/shopbot.eval.lua > "
          "examples/evals/.t-shopbot.eval.lua && "
          "LUACT_MOCKLLM='%s/lc-mockllm' SHOPBOT_SHIPPING_BIN='%s/shopbot-shipping' '%s' eval --out '%s/bad' "
          "examples/evals/.t-shopbot.eval.lua; r=$?; rm -f examples/evals/.t-shopbot.eval.lua; exit $r",
          tmp, tmp, tmp, LC_BINARY_DIR, LC_BINARY_DIR, LUACT, tmp);
  ck_assert_msg(rc == 100, "rc %d: %s", rc, out);
  char *j = slurp("%s/bad/results.json", tmp);
  ck_assert_msg(strstr(j, "state.returns is A1001 [11] emailed alice@example.com LBL-000001, expected "
                          "A1001 [12] emailed"),
                "%.3000s", j);
  free(j);
  /* the replay re-scores the conversations with no service and no socket */
  rc = sh(out, sizeof out, "unshare -n '%s' eval --quiet --replay '%s/run' --out '%s/rep'", LUACT, tmp, tmp);
  ck_assert_msg(rc == 0, "rc %d: %s", rc, out);
}
END_TEST

Suite *eval_suite(void) {
  Suite *s = suite_create("eval");
  TCase *tc = tcase_create("metrics");
  tcase_add_test(tc, bleu_rouge_reference_values);
  tcase_add_test(tc, trajectory_modes);
  tcase_add_test(tc, retrieval_and_statistics);
  tcase_add_test(tc, assertions_one_by_one);
  tcase_add_test(tc, weights_and_thresholds);
  tcase_add_test(tc, csv_dataset);
  suite_add_tcase(s, tc);
  TCase *cli = tcase_create("cli");
  tcase_set_timeout(cli, 120);
  tcase_add_checked_fixture(cli, cmd_setup, cmd_teardown);
  tcase_add_test(cli, recipes_end_to_end_with_every_report);
  tcase_add_test(cli, html_report_renders_in_chromium);
  tcase_add_test(cli, replay_opens_no_socket);
  tcase_add_test(cli, exit_codes_repeat_rescore_compare_review);
  tcase_add_test(cli, review_agreement_and_kappa);
  tcase_add_test(cli, hostile_output_in_reports);
  tcase_add_test(cli, secret_canary_in_no_report);
  tcase_add_test(cli, react_target_and_providers);
  tcase_add_test(cli, generic_scenarios_scripted_and_real);
  tcase_add_test(cli, pairwise_both_orders);
  tcase_add_test(cli, support_rag_metrics);
  tcase_add_test(cli, shopbot_scenarios);
  suite_add_tcase(s, cli);
  return s;
}
