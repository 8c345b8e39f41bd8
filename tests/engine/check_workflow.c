/* check_workflow.c: luact.workflow. Definitions that are wrong are refused
 * when they load, each with the place (workflow, path in the definition,
 * the caller's line) and the reason; a run against lc-mockllm offers each
 * state only its actions, refuses others without running them, runs Lua
 * checks before the actions they guard, retries failing tools with one
 * idempotency key, takes input from the pluggable input function (luact.ask
 * when present), and records the transcript. */
#include <check.h>
#include <lua.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util_lua.h"
#include "util_mock.h"

static struct lc_mock mock;
static char out[65536], err[8192];

static const char prelude[] =
    "calls = {}\n"
    "noop = luact.tool{name='noop', description='does nothing', fn=function() return 'ok' end}\n"
    "flaky = luact.tool{name='flaky', description='fails twice', effect='idempotent',\n"
    "  fn=function(a, ctx)\n"
    "    calls[#calls + 1] = ctx.idempotency_key .. '#' .. ctx.attempt\n"
    "    if #calls < 3 then return nil, 'busy' end\n"
    "    return {done = true}\n"
    "  end}\n"
    "function def(states, extra)\n"
    "  local d = {name = 'w', initial = 'a', tools = {noop = noop, flaky = flaky}, states = states}\n"
    "  for k, v in pairs(extra or {}) do d[k] = v end\n"
    "  return d\n"
    "end\n";

static int run(const char *code) {
  char base[128];
  snprintf(base, sizeof base, "%s/v1", mock.pid > 0 ? mock.base_url : "http://127.0.0.1:1");
  return lc_test_lua_run_once(base, prelude, code, out, sizeof out, err, sizeof err);
}

/* Loads a definition that must be refused; returns the error text. */
static const char *refused(const char *states, const char *extra) {
  char code[4096];
  snprintf(code, sizeof code,
           "local ok, e = pcall(luact.workflow, def(%s, %s))\n"
           "assert(not ok, 'the definition was accepted')\n"
           "-- the same error, raised at this chunk's line 6 when called directly\n"
           "local ok2, e2 = pcall(function()\n"
           "  luact.workflow(def(%s, %s)) end)\n"
           "return e .. '\\n' .. e2",
           states, extra ? extra : "nil", states, extra ? extra : "nil");
  ck_assert_msg(run(code) == 0, "%s", err);
  return out;
}

#define ASSERT_HAS(text, needle) ck_assert_msg(strstr(text, needle), "missing [%s] in:\n%s", needle, text)

START_TEST(load_error_transition_to_missing_state) {
  const char *e = refused("{a = {transitions = {'b', 'nowhere'}}, b = {finish = true}}", NULL);
  ASSERT_HAS(e, "luact.workflow(w): states.a.transitions[2]: transition to 'nowhere', "
                "but there is no such state (states: a, b)");
  /* The place includes the caller's line. */
  ASSERT_HAS(e, "\ntest:18: luact.workflow(w): states.a.transitions[2]");
}
END_TEST

START_TEST(load_error_unreachable_state) {
  const char *e = refused("{a = {transitions = {'b'}}, b = {finish = true}, orphan = {finish = true}}", NULL);
  ASSERT_HAS(e, "luact.workflow(w): states.orphan: is unreachable from the initial state 'a'");
}
END_TEST

START_TEST(load_error_undeclared_tool) {
  const char *e = refused("{a = {tools = {'noop', 'lookup'}, finish = true}}", NULL);
  ASSERT_HAS(e, "luact.workflow(w): states.a.tools[2]: tool 'lookup' is not declared in the "
                "workflow's tools (declared: flaky, noop)");
}
END_TEST

START_TEST(load_error_check_not_a_function) {
  const char *e = refused("{a = {finish = true, checks = {{message = 'x', fn = 'true'}}}}", NULL);
  ASSERT_HAS(e, "luact.workflow(w): states.a.checks[1].fn: must be a function(ctx, args, action), got string");
  e = refused("{a = {finish = true, tools = {'noop'}, checks = {{fn = function() end, on = 'goto_b'}}}}", NULL);
  ASSERT_HAS(e, "states.a.checks[1].on[1]: 'goto_b' is not an action of state a (actions: finish, noop)");
}
END_TEST

START_TEST(load_error_other_mistakes) {
  ASSERT_HAS(refused("{a = {finish = true}}", "{initial = 'start'}"),
             "luact.workflow(w): initial: 'start' is not a state (states: a)");
  ASSERT_HAS(refused("{a = {transitions = {'b'}}, b = {tools = {'noop'}}}", NULL),
             "luact.workflow(w): states.b: has no way out: give it transitions or finish = true");
  ASSERT_HAS(refused("{a = {finish = true, tansitions = {}}}", NULL),
             "luact.workflow(w): states.a.tansitions: unknown field");
  ASSERT_HAS(refused("{a = {finish = true}}",
                     "{tools = {ask_user = luact.tool{name='ask_user', fn=function() end}}}"),
             "luact.workflow(w): tools.ask_user: 'ask_user' is reserved");
  ASSERT_HAS(refused("{a = {finish = true}}", "{tools = {x = noop}}"),
             "luact.workflow(w): tools.x: is named 'noop' (the key must be the tool's name)");
}
END_TEST

/* One scripted run: text as a question, a refused action, a failing
 * check, a transition, a tool that fails twice and is retried with the
 * same key, finish. */
START_TEST(run_enforces_states) {
  ck_assert_int_eq(lc_mock_start(&mock,
      "[{\"times\":1,\"reply\":{\"openai\":{\"text\":\"What do you need?\"}}},"
      " {\"times\":1,\"reply\":{\"openai\":{\"tool_calls\":[{\"id\":\"c1\",\"name\":\"flaky\",\"arguments\":{}}]}}},"
      " {\"times\":1,\"reply\":{\"openai\":{\"tool_calls\":[{\"id\":\"c2\",\"name\":\"goto_b\",\"arguments\":{}}]}}},"
      " {\"times\":1,\"reply\":{\"openai\":{\"tool_calls\":[{\"id\":\"c3\",\"name\":\"ask_user\","
      "   \"arguments\":{\"question\":\"Ready?\"}}]}}},"
      " {\"times\":1,\"reply\":{\"openai\":{\"tool_calls\":[{\"id\":\"c4\",\"name\":\"goto_b\",\"arguments\":{}},"
      "   {\"id\":\"c5\",\"name\":\"flaky\",\"arguments\":{}}]}}},"
      " {\"times\":1,\"reply\":{\"openai\":{\"tool_calls\":[{\"id\":\"c6\",\"name\":\"flaky\",\"arguments\":{}}]}}},"
      " {\"times\":1,\"reply\":{\"openai\":{\"tool_calls\":[{\"id\":\"c7\",\"name\":\"finish\","
      "   \"arguments\":{\"summary\":\"bye\"}}]}}}]"), 0);
  ck_assert_msg(run("local answers = {'a cake', 'yes'}\n"
                    "local asked = {}\n"
                    "local events = 0\n"
                    "local wf = luact.workflow(def({\n"
                    "  a = {description = 'Talk.', ask_user = true, tools = {'noop'}, transitions = {'b'},\n"
                    "       checks = {{message = 'Ask twice first.', fn = function(ctx) return #asked >= 2 end}}},\n"
                    "  b = {description = 'Work.', tools = {'flaky'}, finish = true, retries = 2}}))\n"
                    "local r = wf:run{model = 'openai:m', base_url = BASE, retries = 0, retry_delay = 0,\n"
                    "  run_id = 'r1', message = 'hello',\n"
                    "  on_event = function() events = events + 1 end,\n"
                    "  input = function(q) asked[#asked + 1] = q; return table.remove(answers, 1) end}\n"
                    "local lines = {r.status, r.summary, r.state, table.concat(asked, '/'),\n"
                    "  table.concat(calls, ' '), 'refused=' .. r.usage.refused,\n"
                    "  'checks=' .. r.usage.check_failures, 'retries=' .. r.usage.tool_retries,\n"
                    "  'events=' .. events .. '/' .. #r.transcript}\n"
                    "for _, e in ipairs(r.transcript) do\n"
                    "  lines[#lines + 1] = string.format('%s %s %s %s', e.state, e.kind, tostring(e.action),\n"
                    "    e.refused and 'REFUSED' or '')\n"
                    "end\n"
                    "return table.concat(lines, '\\n')") == 0,
                "%s", err);
  ASSERT_HAS(out, "finished\nbye\nb\nWhat do you need?/Ready?\n");
  /* One step, one key, three attempts. */
  ASSERT_HAS(out, "\nr1-6-flaky#1 r1-6-flaky#2 r1-6-flaky#3\n");
  ASSERT_HAS(out, "refused=1\nchecks=1\nretries=2\n");
  ASSERT_HAS(out, "a user nil \na ask ask_user \na user nil \n"
                  "a action flaky REFUSED\na action goto_b REFUSED\n"
                  "a ask ask_user \na user nil \na action goto_b \n");
  ASSERT_HAS(out, "b retry flaky \nb retry flaky \nb action flaky \nb action finish ");
  /* What the model was told: the refusal naming the allowed actions, the
   * check's message, the second call of a batch that changed state. */
  char *log = lc_mock_requests(&mock);
  ASSERT_HAS(log, "Refused: 'flaky' is not an allowed action in step a. Allowed: noop, ask_user, goto_b.");
  ASSERT_HAS(log, "Not allowed yet (goto_b): Ask twice first.");
  ASSERT_HAS(log, "not run: an earlier action in the same reply changed the step");
  ASSERT_HAS(log, "Actions allowed in this step: flaky, finish.");
  free(log);
  /* flaky ran only in b: 3 attempts in one step, and the batch's c5 never ran. */
  ck_assert_int_eq(lc_mock_count_requests(&mock, "/v1/chat/completions"), 7);
  ck_assert_int_eq(lc_mock_stop(&mock), 0);
}
END_TEST

/* The default input is luact.ask when the runtime has one; no input and
 * too many refusals are results, not errors. */
START_TEST(run_input_and_limits) {
  ck_assert_int_eq(lc_mock_start(&mock,
      "[{\"times\":1,\"reply\":{\"openai\":{\"tool_calls\":[{\"name\":\"ask_user\",\"arguments\":{\"question\":\"Q1\"}}]}}},"
      " {\"times\":1,\"reply\":{\"openai\":{\"tool_calls\":[{\"name\":\"ask_user\",\"arguments\":{\"question\":\"Q2\"}}]}}},"
      " {\"reply\":{\"openai\":{\"tool_calls\":[{\"name\":\"drop_tables\",\"arguments\":{}}]}}}]"), 0);
  ck_assert_msg(run("local n = 0\n"
                    "luact.ask = function(q) n = n + 1; if n == 1 then return 'via ask: ' .. q end end\n"
                    "local wf = luact.workflow(def({a = {ask_user = true, finish = true}}))\n"
                    "local r = wf:run{model = 'openai:m', base_url = BASE, retries = 0}\n"
                    "luact.ask = nil\n"
                    "local r2 = wf:run{model = 'openai:m', base_url = BASE, retries = 0, input = function() return 'x' end,\n"
                    "  limits = {invalid = 3}}\n"
                    "local r3 = wf:run{model = 'openai:m', base_url = 'http://127.0.0.1:1/v1', retries = 0,\n"
                    "  input = function() return 'x' end}\n"
                    "return table.concat({r.status, r.transcript[2].text, r2.status, r2.reason,\n"
                    "  r2.usage.refused, r3.status, r3.reason:sub(1, 26)}, '\\n')") == 0,
                "%s", err);
  ASSERT_HAS(out, "input_closed\nvia ask: Q1\nlimit\ninvalid: 3 refused or malformed actions\n3\n"
                  "failed\nLLM call failed (network)");
  ck_assert_int_eq(lc_mock_stop(&mock), 0);
}
END_TEST

Suite *workflow_suite(void) {
  Suite *s = suite_create("workflow");
  TCase *tc = tcase_create("definitions");
  tcase_add_test(tc, load_error_transition_to_missing_state);
  tcase_add_test(tc, load_error_unreachable_state);
  tcase_add_test(tc, load_error_undeclared_tool);
  tcase_add_test(tc, load_error_check_not_a_function);
  tcase_add_test(tc, load_error_other_mistakes);
  suite_add_tcase(s, tc);
  tc = tcase_create("runs");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, run_enforces_states);
  tcase_add_test(tc, run_input_and_limits);
  suite_add_tcase(s, tc);
  return s;
}
