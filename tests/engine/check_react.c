/* check_react.c: luact.react end to end over loopback against lc-mockllm:
 * text and native runs, parallel tool calls answered in the asked order,
 * every malformed reply turned into an Observation that the next request
 * carries, undeclared tools never run, tool errors and timeouts, each
 * limit, the final answer on a limit, cancellation without leftovers, and
 * the CLI's --json / --trace.
 *
 * Nothing here asserts a duration: order comes from completion logs and
 * the mock's request log. */
#include <check.h>
#include <cjson/cJSON.h>
#include <lua.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "actions.h"
#include "http.h"
#include "lc.h"
#include "loop.h"
#include "react.h"
#include "util_common.h"
#include "util_lua.h"
#include "util_mock.h"

static struct lc_mock mock;
static char out[16384], err[8192];

static void start(const char *script) { ck_assert_int_eq(lc_mock_start(&mock, script), 0); }
static void stop(void) { ck_assert_int_eq(lc_mock_stop(&mock), 0); }

/* Runs code with BASE (".../v1") and the tool helpers below as globals. */
static const char prelude[] =
    "calls = {}\n"
    "local function count(n) calls[n] = (calls[n] or 0) + 1 end\n"
    "search = luact.tool{name='search', description='Search an entity.',\n"
    "  params={type='object', properties={q={type='string'}}, required={'q'}},\n"
    "  fn=function(a) count('search') return 'result for ' .. a.q end}\n"
    "danger = luact.tool{name='danger', description='never offered',\n"
    "  fn=function() count('danger') return 'boom' end}\n"
    "function cfg(t)\n"
    "  t.model = t.model or 'openai:mock-gpt'; t.base_url = BASE; t.retries = 0\n"
    "  t.question = t.question or 'What is it?'; t.verbose = false\n"
    "  return t\n"
    "end\n";

static int run(const char *code) {
  char base[128];
  snprintf(base, sizeof base, "%s/v1", mock.base_url);
  return lc_test_lua_run_once(base, prelude, code, out, sizeof out, err, sizeof err);
}

static int n_requests(void) { return lc_mock_count_requests(&mock, "/v1/chat/completions"); }

#define REPLY(text) "{\"times\":1,\"reply\":{\"openai\":{\"text\":\"" text "\"}}}"
#define REPLY_U(text, in, outn)                                                         \
  "{\"reply\":{\"openai\":{\"text\":\"" text "\",\"usage\":{\"prompt_tokens\":" #in \
  ",\"completion_tokens\":" #outn ",\"total_tokens\":1}}}}"

START_TEST(text_mode_run) {
  start("[{\"match\":{\"body_contains\":\"Observation: result for Colorado\"},"
        "\"reply\":{\"openai\":{\"text\":\"Thought: found it\\nAction: finish[3 km]\"}}},"
        "{\"reply\":{\"openai\":{\"text\":\"Thought: search first\\nAction: Search[Colorado]\","
        "\"usage\":{\"prompt_tokens\":100,\"completion_tokens\":20,\"total_tokens\":120}}}}]");
  ck_assert_msg(run("local steps = {}\n"
                    "local r = luact.react(cfg{mode='text', tools={search}, instructions='Be brief.',\n"
                    "  examples={'Question: x\\nThought: y\\nAction: finish[z]'},\n"
                    "  on_step=function(s) steps[#steps+1] = s.index .. ':' .. s.action end})\n"
                    "return table.concat({r.status, r.answer, #r.steps, r.steps[1].action,\n"
                    "  r.steps[1].args.q, r.steps[1].observation, r.steps[1].thought,\n"
                    "  r.steps[1].tokens_in, r.usage.llm_calls, calls.search, table.concat(steps, ',')}, '|')") == 0,
                "%s", err);
  ck_assert_str_eq(out, "finished|3 km|2|search|Colorado|result for Colorado|search first|100|2|1|"
                        "1:search,2:finish");
  ck_assert_int_eq(n_requests(), 2);
  lc_mock_assert_request_has(&mock, 0, "Be brief.");
  lc_mock_assert_request_has(&mock, 0, "Question: x\\nThought: y\\nAction: finish[z]");
  lc_mock_assert_request_has(&mock, 0, "\"stop\":[\"\\nObservation:\"");
  lc_mock_assert_request_has(&mock, 1, "Action: search[Colorado]\\nObservation: result for Colorado");
  stop();
}
END_TEST

START_TEST(native_parallel_results_in_asked_order) {
  start("[{\"match\":{\"body_contains\":\"\\\"role\\\":\\\"tool\\\"\"},"
        "\"reply\":{\"openai\":{\"tool_calls\":[{\"id\":\"f1\",\"name\":\"finish\","
        "\"arguments\":{\"answer\":\"abc\"}}]}}},"
        "{\"reply\":{\"openai\":{\"text\":\"Three at once.\",\"tool_calls\":["
        "{\"id\":\"c1\",\"name\":\"slow\",\"arguments\":{\"q\":\"a\",\"s\":0.06}},"
        "{\"id\":\"c2\",\"name\":\"slow\",\"arguments\":{\"q\":\"b\",\"s\":0.03}},"
        "{\"id\":\"c3\",\"name\":\"slow\",\"arguments\":{\"q\":\"c\",\"s\":0}}]}}}]");
  ck_assert_msg(run("local order = {}\n"
                    "local slow = luact.tool{name='slow', params={type='object',\n"
                    "  properties={q={type='string'}, s={type='number'}}, required={'q','s'}},\n"
                    "  fn=function(a)\n"
                    "    local before = ({a='b', b='c'})[a.q]\n" /* finish c, b, a: by sync, not timers */
                    "    for _ = 1, 1000 do if not before or table.concat(order):find(before, 1, true) then break end luact.sleep(0) end\n"
                    "    order[#order+1] = a.q return {got=a.q} end}\n"
                    "local r = luact.react(cfg{tools={slow}})\n"
                    "local obs = {}\n"
                    "for i = 1, 3 do obs[i] = r.steps[i].args.q .. '=' .. r.steps[i].observation end\n"
                    "return table.concat({r.status, r.answer, #r.steps, table.concat(order),\n"
                    "  table.concat(obs, ','), r.steps[1].thought, r.usage.tool_calls}, '|')") == 0,
                "%s", err);
  /* Finished c, b, a; reported a, b, c as asked. */
  ck_assert_str_eq(out, "finished|abc|4|cba|a={\"got\":\"a\"},b={\"got\":\"b\"},c={\"got\":\"c\"}|"
                        "Three at once.|3");
  char *b = lc_mock_request_body(&mock, 1);
  const char *p1 = strstr(b, "\"tool_call_id\":\"c1\""), *p2 = strstr(b, "\"tool_call_id\":\"c2\""),
             *p3 = strstr(b, "\"tool_call_id\":\"c3\"");
  ck_assert_msg(p1 && p2 && p3 && p1 < p2 && p2 < p3, "%s", b);
  ck_assert_ptr_nonnull(strstr(b, "\"content\":\"{\\\"got\\\":\\\"a\\\"}\""));
  cJSON_free(b);
  /* Native mode offers the tools plus finish; a plain answer also ends the
   * run, so no call is forced. */
  lc_mock_assert_request_has(&mock, 0, "\"name\":\"finish\"");
  char *b0 = lc_mock_request_body(&mock, 0);
  ck_assert_ptr_null(strstr(b0, "tool_choice"));
  cJSON_free(b0);
  stop();
}
END_TEST

START_TEST(native_text_answer_finishes) {
  start("[{\"times\":1,\"reply\":{\"openai\":{\"tool_calls\":[{\"id\":\"a\",\"name\":\"search\",\"arguments\":{\"q\":\"x\"}}]}}},"
        "{\"reply\":{\"openai\":{\"text\":\"The answer is 42.\"}}}]");
  ck_assert_msg(run("local r = luact.react(cfg{tools={search}})\n"
                    "return r.status .. '|' .. r.answer .. '|' .. #r.steps") == 0, "%s", err);
  ck_assert_str_eq(out, "finished|The answer is 42.|2");
  ck_assert_int_eq(n_requests(), 2);
  stop();
  /* Strict: every reply must call a tool, and the request says so. */
  start("[{\"times\":1,\"reply\":{\"openai\":{\"text\":\"The answer is 42.\"}}},"
        "{\"reply\":{\"openai\":{\"tool_calls\":[{\"id\":\"f\",\"name\":\"finish\",\"arguments\":{\"answer\":\"42\"}}]}}}]");
  ck_assert_msg(run("local r = luact.react(cfg{tools={search}, finish_on_text=false})\n"
                    "return r.status .. '|' .. r.answer .. '|' .. r.usage.invalid") == 0, "%s", err);
  ck_assert_str_eq(out, "finished|42|1");
  lc_mock_assert_request_has(&mock, 0, "\"tool_choice\":\"required\"");
  lc_mock_assert_request_has(&mock, 1, "called no tool");
  stop();
}
END_TEST

/* Each malformed reply, in sequence; the next request must carry what was
 * wrong; tolerated forms run the tool. */
START_TEST(text_malformed_replies_become_observations) {
  start("[" REPLY("Thought: I wonder what to do") ","
        REPLY("Thought: try it\\nAction: danger[x]") ","
        REPLY("Sure! Here is my step.\\nThought: go\\nAction: search[alpha]\\nHope that helps.") ","
        REPLY("Thought: go\\nAction: search[beta]\\nObservation: I made this up") ","
        REPLY("```\\nThought: fenced\\nAction: search[gamma]\\n```") ","
        REPLY("") ","
        REPLY("Thought: both\\nAction: search[one]\\nAction: search[two]") ","
        REPLY("Thought: done\\nAction: finish[]") ","
        REPLY("Thought: json\\nAction: search[{\\\"q\\\": ]") ","
        REPLY("Thought: ok\\nAction: finish[recovered]") "]");
  ck_assert_msg(run("local r = luact.react(cfg{mode='text', tools={search}, limits={max_invalid=10}})\n"
                    "return table.concat({r.status, r.answer, #r.steps, r.usage.invalid,\n"
                    "  calls.search, tostring(calls.danger)}, '|')") == 0, "%s", err);
  /* 6 invalid (no action, unknown, empty, two actions, no answer, broken
   * JSON); 3 tolerated forms ran search; danger never ran. */
  ck_assert_str_eq(out, "finished|recovered|10|6|3|nil");
  ck_assert_int_eq(n_requests(), 10);
  lc_mock_assert_request_has(&mock, 1, "Thought: I wonder what to do\\nObservation: Invalid reply:");
  lc_mock_assert_request_has(&mock, 1, "Allowed actions: search, finish");
  lc_mock_assert_request_has(&mock, 2, "Observation: Unknown action \\\"danger\\\". Allowed actions: search, finish.");
  lc_mock_assert_request_has(&mock, 3, "Action: search[alpha]\\nObservation: result for alpha");
  lc_mock_assert_request_has(&mock, 4, "Action: search[beta]\\nObservation: result for beta\\nNote: your reply contained an "
                    "Observation you wrote yourself");
  lc_mock_assert_request_has(&mock, 5, "Action: search[gamma]\\nObservation: result for gamma");
  lc_mock_assert_request_has(&mock, 6, "Observation: Invalid reply: the reply is empty");
  lc_mock_assert_request_has(&mock, 7, "Invalid reply: the reply has 2 actions");
  lc_mock_assert_request_has(&mock, 8, "finish");
  lc_mock_assert_request_has(&mock, 8, "Observation: Invalid reply:");
  lc_mock_assert_request_has(&mock, 9, "Observation: Invalid reply:");
  lc_mock_assert_request_has(&mock, 9, "JSON");
  /* The invented observation never reached the prompt. */
  char *b = lc_mock_request_body(&mock, 9);
  ck_assert_ptr_null(strstr(b, "I made this up"));
  cJSON_free(b);
  stop();
}
END_TEST

START_TEST(native_malformed_calls_become_observations) {
  start("["
        "{\"times\":1,\"reply\":{\"openai\":{\"tool_calls\":[{\"id\":\"u1\",\"name\":\"danger\",\"arguments\":{}}]}}},"
        "{\"times\":1,\"reply\":{\"openai\":{\"tool_calls\":[{\"id\":\"j1\",\"name\":\"search\",\"arguments\":\"{\\\"q\\\": \"}]}}},"
        "{\"times\":1,\"reply\":{\"openai\":{\"tool_calls\":[{\"id\":\"s1\",\"name\":\"search\",\"arguments\":{\"query\":\"x\"}}]}}},"
        "{\"times\":1,\"reply\":{\"openai\":{\"text\":\"I think the answer is 7.\"}}},"
        "{\"times\":1,\"reply\":{\"openai\":{\"tool_calls\":[{\"id\":\"m1\",\"name\":\"search\",\"arguments\":{\"q\":\"z\"}},"
        "  {\"id\":\"m2\",\"name\":\"finish\",\"arguments\":{\"answer\":\"too early\"}}]}}},"
        "{\"reply\":{\"openai\":{\"tool_calls\":[{\"id\":\"f\",\"name\":\"finish\",\"arguments\":{\"answer\":\"7\"}}]}}}]");
  ck_assert_msg(run("local r = luact.react(cfg{tools={search}, limits={max_invalid=10}, finish_on_text=false})\n"
                    "return table.concat({r.status, r.answer, #r.steps, r.usage.invalid,\n"
                    "  calls.search, tostring(calls.danger)}, '|')") == 0, "%s", err);
  ck_assert_str_eq(out, "finished|7|7|5|1|nil");
  lc_mock_assert_request_has(&mock, 1, "\"tool_call_id\":\"u1\"");
  lc_mock_assert_request_has(&mock, 1, "Unknown action \\\"danger\\\"");
  lc_mock_assert_request_has(&mock, 2, "\"tool_call_id\":\"j1\"");
  lc_mock_assert_request_has(&mock, 2, "not valid JSON");
  lc_mock_assert_request_has(&mock, 3, "Invalid input for \\\"search\\\"");
  lc_mock_assert_request_has(&mock, 3, "missing required property");
  lc_mock_assert_request_has(&mock, 4, "\"role\":\"user\",\"content\":\"Invalid reply: you answered with text but called no tool");
  lc_mock_assert_request_has(&mock, 5, "\"content\":\"result for z\",\"tool_call_id\":\"m1\"");
  lc_mock_assert_request_has(&mock, 5, "call finish alone");
  stop();
}
END_TEST

/* A native call must name a tool exactly: a prefix, the empty name, an
 * extension, another case and a name with a NUL after "search" (sent as
 * \u0000, which once decoded to "search") are each refused with an
 * Observation, and search never runs. */
START_TEST(native_names_must_match_exactly) {
  const char *names[] = {"sea", "", "searchX", "SEARCH", "searchNULx"};
  cJSON *c = cJSON_CreateObject(), *choice = cJSON_CreateObject(), *msg = cJSON_CreateObject();
  cJSON_AddStringToObject(c, "id", "chatcmpl-1");
  cJSON_AddStringToObject(c, "object", "chat.completion");
  cJSON_AddStringToObject(c, "model", "mock-gpt");
  cJSON_AddItemToArray(cJSON_AddArrayToObject(c, "choices"), choice);
  cJSON_AddNumberToObject(choice, "index", 0);
  cJSON_AddStringToObject(choice, "finish_reason", "tool_calls");
  cJSON_AddItemToObject(choice, "message", msg);
  cJSON_AddStringToObject(msg, "role", "assistant");
  cJSON_AddNullToObject(msg, "content");
  cJSON *tcs = cJSON_AddArrayToObject(msg, "tool_calls");
  for (int i = 0; i < 5; i++) {
    cJSON *tc = cJSON_CreateObject(), *fn = cJSON_CreateObject();
    char id[8];
    snprintf(id, sizeof id, "n%d", i);
    cJSON_AddStringToObject(tc, "id", id);
    cJSON_AddStringToObject(tc, "type", "function");
    cJSON_AddStringToObject(fn, "name", names[i]);
    cJSON_AddStringToObject(fn, "arguments", "{\"q\":\"a\"}");
    cJSON_AddItemToObject(tc, "function", fn);
    cJSON_AddItemToArray(tcs, tc);
  }
  char *body = cJSON_PrintUnformatted(c);
  cJSON_Delete(c);
  char *nul = strstr(body, "searchNULx");
  ck_assert_ptr_nonnull(nul);
  char wire[4096];
  snprintf(wire, sizeof wire, "%.*ssearch\\u0000x%s", (int)(nul - body), body,
           nul + strlen("searchNULx"));
  cJSON_free(body);
  cJSON *script = cJSON_CreateArray(), *r0 = cJSON_CreateObject(), *rep = cJSON_CreateObject();
  cJSON_AddNumberToObject(r0, "times", 1);
  cJSON_AddStringToObject(rep, "body", wire);
  cJSON_AddItemToObject(r0, "reply", rep);
  cJSON_AddItemToArray(script, r0);
  cJSON_AddItemToArray(script, cJSON_Parse("{\"reply\":{\"openai\":{\"tool_calls\":[{\"id\":\"f\","
                                           "\"name\":\"finish\",\"arguments\":{\"answer\":\"7\"}}]}}}"));
  char *text = cJSON_PrintUnformatted(script);
  cJSON_Delete(script);
  start(text);
  cJSON_free(text);
  ck_assert_msg(run("local r = luact.react(cfg{tools={search}, limits={max_invalid=10}})\n"
                    "local o = {}\n"
                    "for i = 1, 5 do o[i] = r.steps[i].action .. '=' .. r.steps[i].observation:sub(1, 14) end\n"
                    "return table.concat({r.status, r.answer, #r.steps, r.usage.invalid,\n"
                    "  tostring(calls.search), table.concat(o, ',')}, '|')") == 0, "%s", err);
  ck_assert_str_eq(out, "finished|7|6|5|nil|sea=Unknown action,=Unknown action,searchX=Unknown action,"
                        "SEARCH=Unknown action,search\\u0000x=Unknown action");
  for (int i = 0; i < 5; i++) {
    char id[32];
    snprintf(id, sizeof id, "\"tool_call_id\":\"n%d\"", i);
    lc_mock_assert_request_has(&mock, 1, id);
  }
  lc_mock_assert_request_has(&mock, 1, "Unknown action \\\"SEARCH\\\"");
  stop();
}
END_TEST

START_TEST(tool_errors_and_timeout) {
  start("[" REPLY("Thought: a\\nAction: broken[x]") "," REPLY("Thought: b\\nAction: hang[y]") ","
        REPLY("Thought: c\\nAction: finish[gave up]") "]");
  ck_assert_msg(run("local broken = luact.tool{name='broken', params={type='object',\n"
                    "  properties={q={type='string'}}}, fn=function() error('disk on fire') end}\n"
                    "local hang = luact.tool{name='hang', timeout=0.05, params={type='object',\n"
                    "  properties={q={type='string'}}}, fn=function() luact.sleep(30) return 'late' end}\n"
                    "local r = luact.react(cfg{mode='text', tools={broken, hang}, limits={max_invalid=1}})\n"
                    "return table.concat({r.status, r.answer, tostring(r.steps[1].is_error),\n"
                    "  tostring(r.steps[2].is_error), r.usage.tool_errors, r.usage.invalid}, '|')") == 0,
                "%s", err);
  /* Tool failures do not count against max_invalid (1 here). */
  ck_assert_str_eq(out, "finished|gave up|true|true|2|0");
  lc_mock_assert_request_has(&mock, 1, "Observation: Error: tool broken failed:");
  lc_mock_assert_request_has(&mock, 1, "disk on fire");
  lc_mock_assert_request_has(&mock, 2, "Observation: Error: tool hang timed out after 0.05 s");
  stop();
}
END_TEST

/* Every limit: status "limit", which one, the reason, the partial steps. */
START_TEST(limit_steps) {
  start("[{\"reply\":{\"openai\":{\"text\":\"Thought: again\\nAction: search[same]\"}}}]");
  ck_assert_msg(run("local r = luact.react(cfg{mode='text', tools={search}, limits={steps=3, ['repeat']=0}})\n"
                    "return table.concat({r.status, r.limit, r.reason, #r.steps, tostring(r.answer)}, '|')") == 0,
                "%s", err);
  ck_assert_str_eq(out, "limit|steps|step limit reached: 3 of 3 steps|3|nil");
  ck_assert_int_eq(n_requests(), 3);
  stop();
}
END_TEST

/* One reply of many calls of an at-most-once tool: the calls count
 * against the limits before any runs, so with steps = 3 three run, the
 * rest get a result but never run, and the run ends at the step limit
 * (it once ran all 1,000, the limit being checked after the batch). */
static char *many_calls(int n, const char *name, const char *idp) {
  size_t cap = 128 + (size_t)n * 96;
  char *s = malloc(cap);
  size_t k = (size_t)snprintf(s, cap, "{\"times\":1,\"reply\":{\"openai\":{\"tool_calls\":[");
  for (int i = 0; i < n; i++)
    k += (size_t)snprintf(s + k, cap - k,
                          "%s{\"id\":\"%s%d\",\"name\":\"%s\",\"arguments\":{\"q\":\"%s%d\"}}",
                          i ? "," : "", idp, i, name, idp, i);
  snprintf(s + k, cap - k, "]}}}");
  return s;
}

static const char charge_tool[] =
    "local charge = luact.tool{name='charge', effect='at_most_once',\n"
    "  params={type='object', properties={q={type='string'}}, required={'q'}},\n"
    "  fn=function(a) calls.charge = (calls.charge or 0) + 1 return 'charged ' .. a.q end}\n";

START_TEST(limit_steps_counts_a_replys_calls) {
  char *one = many_calls(1000, "charge", "c");
  char script[96 * 1000 + 256];
  snprintf(script, sizeof script, "[%s]", one);
  free(one);
  start(script);
  char code[1024];
  snprintf(code, sizeof code,
           "%slocal r = luact.react(cfg{tools={charge}, limits={steps=3}})\n"
           "return table.concat({r.status, r.limit, r.reason, #r.steps, calls.charge,\n"
           "  r.usage.tool_calls, r.steps[3].observation}, '|')",
           charge_tool);
  ck_assert_msg(run(code) == 0, "%s", err);
  ck_assert_str_eq(out, "limit|steps|step limit reached: 3 of 3 steps (997 tool calls of "
                        "the last reply not run)|3|3|3|charged c2");
  ck_assert_int_eq(n_requests(), 1);
  stop();
}
END_TEST

/* limits.tool_calls bounds the calls over the run, counting the calls of
 * the reply at hand: 3 run, then 2 of the next 3, and the run ends. */
START_TEST(limit_tool_calls) {
  char *a = many_calls(3, "charge", "a"), *b = many_calls(3, "charge", "b");
  char script[2048];
  snprintf(script, sizeof script, "[%s,%s]", a, b);
  free(a);
  free(b);
  start(script);
  char code[1024];
  snprintf(code, sizeof code,
           "%slocal r = luact.react(cfg{tools={charge}, limits={steps=0, ['repeat']=0, tool_calls=5}})\n"
           "return table.concat({r.status, r.limit, r.reason, #r.steps, calls.charge,\n"
           "  r.usage.tool_calls, r.steps[5].observation, r.steps[6].observation}, '|')",
           charge_tool);
  ck_assert_msg(run(code) == 0, "%s", err);
  ck_assert_str_eq(out, "limit|tool_calls|tool-call limit reached: 5 of 5 tool calls (1 tool "
                        "call of the last reply not run)|6|5|5|charged b1|Not run: the "
                        "tool-call limit of this run was reached.");
  ck_assert_int_eq(n_requests(), 2);
  /* The default is on, and a bad value is misuse. */
  ck_assert_int_ne(run("luact.react(cfg{tools={search}, limits={tool_calls=-1}})"), 0);
  ck_assert_ptr_nonnull(strstr(err, "limits.tool_calls must be >= 0"));
  stop();
}
END_TEST

/* A reply whose own usage reaches the token limit runs none of its calls. */
START_TEST(limit_tokens_before_a_replys_calls) {
  start("[{\"reply\":{\"openai\":{\"tool_calls\":[{\"id\":\"t1\",\"name\":\"charge\","
        "\"arguments\":{\"q\":\"x\"}}],\"usage\":{\"prompt_tokens\":80,"
        "\"completion_tokens\":40,\"total_tokens\":120}}}}]");
  char code[1024];
  snprintf(code, sizeof code,
           "%slocal r = luact.react(cfg{tools={charge}, limits={tokens=100}})\n"
           "return table.concat({r.status, r.limit, #r.steps, tostring(calls.charge),\n"
           "  r.steps[1].observation}, '|')",
           charge_tool);
  ck_assert_msg(run(code) == 0, "%s", err);
  ck_assert_str_eq(out, "limit|tokens|1|nil|Not run: the token limit of this run was reached.");
  stop();
}
END_TEST

START_TEST(limit_tokens) {
  start("[" REPLY_U("Thought: t\\nAction: search[a]", 80, 20) "]");
  ck_assert_msg(run("local r = luact.react(cfg{mode='text', tools={search}, limits={tokens=250, ['repeat']=0}})\n"
                    "return table.concat({r.status, r.limit, r.reason, #r.steps, r.usage.total,\n"
                    "  calls.search}, '|')") == 0,
                "%s", err);
  /* The third reply reached the limit: its call did not run. */
  ck_assert_str_eq(out, "limit|tokens|token limit reached: 300 of 250 tokens (1 tool call of "
                        "the last reply not run)|3|300|2");
  stop();
}
END_TEST

START_TEST(limit_cost) {
  start("[" REPLY_U("Thought: t\\nAction: search[a]", 100, 0) "]");
  /* $10000 per 1M input tokens: 100 tokens = $1 a call. */
  ck_assert_msg(run("local r = luact.react(cfg{mode='text', tools={search}, limits={cost=2.5, ['repeat']=0},\n"
                    "  prices={['mock-gpt']={input=10000, output=0}}})\n"
                    "return table.concat({r.status, r.limit, r.reason, #r.steps, r.cost,\n"
                    "  tostring(r.cost_known), calls.search}, '|')") == 0, "%s", err);
  ck_assert_str_eq(out, "limit|cost|cost limit reached: $3.0000 of $2.5000 (1 tool call of "
                        "the last reply not run)|3|3.0|true|2");
  stop();
}
END_TEST

START_TEST(limit_wall_time_interrupts_a_tool) {
  start("[" REPLY("Thought: t\\nAction: hang[a]") "]");
  ck_assert_msg(run("local hang = luact.tool{name='hang', params={type='object', properties={q={type='string'}}},\n"
                    "  fn=function() luact.sleep(30) return 'late' end}\n"
                    /* 2 s: the mock answers at once, so the limit falls while the
                     * tool hangs even on a loaded machine (at 0.1 s a slow first
                     * call could use it up before the tool started). */
                    "local r = luact.react(cfg{mode='text', tools={hang}, limits={wall_time=2}})\n"
                    "return table.concat({r.status, r.limit, #r.steps, r.steps[1].observation}, '|')") == 0,
                "%s", err);
  ck_assert_str_eq(out, "limit|wall_time|1|Interrupted: the wall-time limit was reached.");
  stop();
}
END_TEST

START_TEST(limit_max_invalid) {
  start("[{\"reply\":{\"openai\":{\"text\":\"no idea\"}}}]");
  ck_assert_msg(run("local r = luact.react(cfg{mode='text', tools={search}, limits={max_invalid=2}})\n"
                    "return table.concat({r.status, r.limit, r.reason, #r.steps,\n"
                    "  tostring(r.steps[2].is_error), tostring(calls.search)}, '|')") == 0, "%s", err);
  ck_assert_str_eq(out, "limit|invalid_output|too many invalid replies: 2 of 2 allowed|2|true|nil");
  stop();
}
END_TEST

START_TEST(limit_repeated_action) {
  start("[{\"reply\":{\"openai\":{\"text\":\"Thought: t\\nAction: search[same]\"}}}]");
  ck_assert_msg(run("local r = luact.react(cfg{mode='text', tools={search}, limits={max_repeat=3}})\n"
                    "return table.concat({r.status, r.limit, #r.steps, calls.search,\n"
                    "  r.steps[3].observation}, '|')") == 0, "%s", err);
  /* Call, warning, stop: the third identical call does not run. */
  ck_assert_msg(strncmp(out, "limit|repeated_action|3|2|Not run:", 34) == 0, "%s", out);
  lc_mock_assert_request_has(&mock, 2, "Warning: you already ran search with exactly this input 1 time");
  stop();
}
END_TEST

START_TEST(final_answer_on_limit) {
  start("[{\"match\":{\"body_contains\":\"You cannot take any more actions\"},"
        "\"reply\":{\"openai\":{\"text\":\"Thought: best I can do\\nAction: finish[probably 42]\"}}},"
        "{\"reply\":{\"openai\":{\"text\":\"Thought: t\\nAction: search[a]\"}}}]");
  ck_assert_msg(run("local r = luact.react(cfg{mode='text', tools={search}, limits={steps=1},\n"
                    "  final_answer_on_limit=true})\n"
                    "return table.concat({r.status, r.limit, r.answer, #r.steps, r.usage.llm_calls}, '|')") == 0,
                "%s", err);
  ck_assert_str_eq(out, "limit|steps|probably 42|1|2");
  ck_assert_int_eq(n_requests(), 2);
  char *b = lc_mock_request_body(&mock, 1);
  ck_assert_ptr_nonnull(strstr(b, "step limit reached"));
  cJSON_free(b);
  stop();
  /* Native: the final call goes without tools. */
  start("[{\"match\":{\"body_contains\":\"You cannot call any more tools\"},"
        "\"reply\":{\"openai\":{\"text\":\"It is 42.\"}}},"
        "{\"reply\":{\"openai\":{\"tool_calls\":[{\"name\":\"search\",\"arguments\":{\"q\":\"a\"}}]}}}]");
  ck_assert_msg(run("local r = luact.react(cfg{tools={search}, limits={steps=1}, final_answer_on_limit=true})\n"
                    "return r.status .. '|' .. r.answer") == 0, "%s", err);
  ck_assert_str_eq(out, "limit|It is 42.");
  char *b2 = lc_mock_request_body(&mock, 1);
  ck_assert_ptr_null(strstr(b2, "\"tools\""));
  cJSON_free(b2);
  stop();
}
END_TEST


/* Native: the run's one request only grows. Each request's messages are
 * the previous request's, unchanged, plus the new turn; the tools are the
 * same every time; the final-answer call adds its note and drops them. */
START_TEST(native_history_only_grows) {
  start("[{\"match\":{\"body_contains\":\"You cannot call any more tools\"},"
        "\"reply\":{\"openai\":{\"text\":\"It is abc.\"}}},"
        "{\"times\":1,\"reply\":{\"openai\":{\"text\":\"first\",\"tool_calls\":[{\"id\":\"a1\","
        "\"name\":\"search\",\"arguments\":{\"q\":\"a\"}}]}}},"
        "{\"times\":1,\"reply\":{\"openai\":{\"tool_calls\":[{\"id\":\"b1\",\"name\":\"search\","
        "\"arguments\":{\"q\":\"b\"}},{\"id\":\"b2\",\"name\":\"search\",\"arguments\":{\"q\":\"c\"}}]}}},"
        "{\"times\":1,\"reply\":{\"openai\":{\"tool_calls\":[{\"id\":\"d1\",\"name\":\"search\","
        "\"arguments\":{\"q\":\"d\\\"\\n\"}}]}}}]");
  ck_assert_msg(run("local r = luact.react(cfg{tools={search}, limits={steps=4},\n"
                    "  final_answer_on_limit=true})\n"
                    "return r.status .. '|' .. r.answer .. '|' .. #r.steps") == 0, "%s", err);
  ck_assert_str_eq(out, "limit|It is abc.|4");
  ck_assert_int_eq(n_requests(), 4);
  cJSON *req[4];
  for (int i = 0; i < 4; i++) {
    char *b = lc_mock_request_body(&mock, i);
    ck_assert_ptr_nonnull(b);
    req[i] = cJSON_Parse(b);
    cJSON_free(b);
    ck_assert_ptr_nonnull(req[i]);
  }
  /* system + user, then + assistant + 1 result, + assistant + 2, ... */
  static const int want_n[4] = {2, 4, 7, 10};
  for (int i = 0; i < 4; i++) {
    const cJSON *m = cJSON_GetObjectItem(req[i], "messages");
    ck_assert_int_eq(cJSON_GetArraySize(m), want_n[i]);
    if (i == 0) continue;
    const cJSON *prev = cJSON_GetObjectItem(req[i - 1], "messages");
    for (int k = 0; k < cJSON_GetArraySize(prev); k++)
      ck_assert_msg(cJSON_Compare(cJSON_GetArrayItem(prev, k), cJSON_GetArrayItem(m, k), 1),
                    "request %d changed message %d", i, k);
  }
  for (int i = 1; i < 3; i++)
    ck_assert(cJSON_Compare(cJSON_GetObjectItem(req[0], "tools"),
                            cJSON_GetObjectItem(req[i], "tools"), 1));
  ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(req[0], "tools")), 2);
  ck_assert_ptr_null(cJSON_GetObjectItem(req[3], "tools"));
  ck_assert_ptr_null(cJSON_GetObjectItem(req[3], "tool_choice"));
  const cJSON *m3 = cJSON_GetObjectItem(req[3], "messages");
  const cJSON *note = cJSON_GetArrayItem(m3, 9);
  ck_assert_str_eq(cJSON_GetObjectItem(note, "role")->valuestring, "user");
  ck_assert_ptr_nonnull(strstr(cJSON_GetObjectItem(note, "content")->valuestring,
                               "You cannot call any more tools (step limit reached"));
  /* The assistant turns went back verbatim, ids and arguments included. */
  const cJSON *a2 = cJSON_GetArrayItem(m3, 4);
  ck_assert_str_eq(cJSON_GetObjectItem(a2, "role")->valuestring, "assistant");
  const cJSON *calls = cJSON_GetObjectItem(a2, "tool_calls");
  ck_assert_int_eq(cJSON_GetArraySize(calls), 2);
  ck_assert_str_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(calls, 1), "id")->valuestring, "b2");
  const cJSON *t9 = cJSON_GetArrayItem(m3, 8);
  ck_assert_str_eq(cJSON_GetObjectItem(t9, "tool_call_id")->valuestring, "d1");
  ck_assert_str_eq(cJSON_GetObjectItem(t9, "content")->valuestring, "result for d\"\n");
  for (int i = 0; i < 4; i++) cJSON_Delete(req[i]);
  stop();
}
END_TEST

START_TEST(kill_mid_tool_leaves_nothing) {
  start("[" REPLY("Thought: t\\nAction: hang[a]") "]");
  ck_assert_msg(run("started = false\n"
                    "local hang = luact.tool{name='hang', params={type='object', properties={q={type='string'}}},\n"
                    "  fn=function() started = true luact.sleep(30) return 'late' end}\n"
                    "local r, msg, code = luact.timeout(0.2, function()\n"
                    "  return luact.react(cfg{mode='text', tools={hang}}) end)\n"
                    "return tostring(r) .. '|' .. code .. '|' .. tostring(started)") == 0, "%s", err);
  ck_assert_str_eq(out, "nil|timeout|true");
  stop();
  /* Killed while the LLM call is in flight: the transfer goes too. */
  start("[{\"reply\":{\"delay_ms\":20000,\"openai\":{\"text\":\"late\"}}}]");
  ck_assert_msg(run("local r, msg, code = luact.timeout(0.2, function()\n"
                    "  return luact.react(cfg{mode='text', tools={search}}) end)\n"
                    "return tostring(r) .. '|' .. code") == 0, "%s", err);
  ck_assert_str_eq(out, "nil|timeout");
  stop();
}
END_TEST

START_TEST(llm_failure_is_a_result) {
  start("[{\"reply\":{\"status\":401,\"json\":{\"error\":{\"message\":\"bad key\"}}}}]");
  ck_assert_msg(run("local r = luact.react(cfg{tools={search}})\n"
                    "return r.status .. '|' .. r.reason .. '|' .. #r.steps") == 0, "%s", err);
  ck_assert_str_eq(out, "failed|LLM error (auth): bad key|0");
  stop();
}
END_TEST

START_TEST(constrained_and_strict) {
  start("[{\"match\":{\"body_contains\":\"result for x\"},\"reply\":{\"openai\":{\"text\":"
        "\"{\\\"thought\\\":\\\"done\\\",\\\"action\\\":\\\"finish\\\",\\\"input\\\":{\\\"answer\\\":\\\"ok\\\"}}\"}}},"
        "{\"reply\":{\"openai\":{\"text\":"
        "\"{\\\"thought\\\":\\\"look\\\",\\\"action\\\":\\\"search\\\",\\\"input\\\":{\\\"q\\\":\\\"x\\\"}}\"}}}]");
  ck_assert_msg(run("local r = luact.react(cfg{mode='text', constrained=true, tools={search}})\n"
                    "return r.status .. '|' .. r.answer .. '|' .. calls.search") == 0, "%s", err);
  ck_assert_str_eq(out, "finished|ok|1");
  lc_mock_assert_request_has(&mock, 0, "\"response_format\":{\"type\":\"json_schema\"");
  lc_mock_assert_request_has(&mock, 0, "\"enum\":[\"search\",\"finish\"]");
  stop();
  /* strict: optional properties become required + nullable; nulls dropped. */
  start("[{\"match\":{\"body_contains\":\"\\\"role\\\":\\\"tool\\\"\"},\"reply\":{\"openai\":{\"tool_calls\":"
        "[{\"name\":\"finish\",\"arguments\":{\"answer\":\"s\"}}]}}},"
        "{\"reply\":{\"openai\":{\"tool_calls\":[{\"name\":\"opt\",\"arguments\":{\"q\":\"x\",\"n\":null}}]}}}]");
  ck_assert_msg(run("local opt = luact.tool{name='opt', params={type='object', properties={q={type='string'},\n"
                    "  n={type='integer'}}, required={'q'}}, fn=function(a) return tostring(a.n) end}\n"
                    "local r = luact.react(cfg{strict=true, tools={opt}})\n"
                    "return r.status .. '|' .. r.steps[1].observation") == 0, "%s", err);
  ck_assert_str_eq(out, "finished|nil");
  lc_mock_assert_request_has(&mock, 0, "\"strict\":true");
  lc_mock_assert_request_has(&mock, 0, "\"type\":[\"integer\",\"null\"]");
  stop();
}
END_TEST

START_TEST(misuse_raises) {
  start("[]");
  ck_assert_int_ne(run("luact.react(cfg{tools={search}, question=42})"), 0);
  ck_assert_msg(strstr(err, "'question'") != NULL, "%s", err);
  ck_assert_int_ne(run("luact.react(cfg{tools={{name='x'}}})"), 0);
  ck_assert_msg(strstr(err, "not a luact.tool") != NULL, "%s", err);
  ck_assert_int_ne(run("luact.react(cfg{tools={search}, limits={stepz=1}})"), 0);
  ck_assert_msg(strstr(err, "unknown limit 'stepz'") != NULL, "%s", err);
  ck_assert_int_ne(run("luact.react(cfg{tools={search}, mode='telepathy'})"), 0);
  ck_assert_int_ne(run("luact.react(cfg{tools={search, search}})"), 0);
  ck_assert_int_ne(run("luact.react(cfg{model='nope', tools={search}})"), 0);
  ck_assert_msg(strstr(err, "luact.react: bad model") != NULL, "%s", err);
  /* Not inside a task: a plain coroutine may not wait. */
  ck_assert_int_ne(run("local co = coroutine.wrap(function() return luact.react(cfg{tools={search}}) end)\n"
                       "co()"), 0);
  ck_assert_int_eq(n_requests(), 0);
  stop();
}
END_TEST

/* `luact run --json --trace FILE` as a subprocess against the mock. */
START_TEST(cli_json_and_trace) {
  start("[{\"match\":{\"body_contains\":\"Observation: result for Oslo\"},"
        "\"reply\":{\"openai\":{\"text\":\"Thought: t\\nAction: finish[cold]\"}}},"
        "{\"reply\":{\"openai\":{\"text\":\"Thought: look\\nAction: search[Oslo]\"}}}]");
  char trace[256], cmd[1024];
  snprintf(trace, sizeof trace, "/tmp/lc_react_trace_%d.jsonl", (int)getpid());
  unlink(trace);
  snprintf(cmd, sizeof cmd,
           "BASE='%s/v1' %s/luact run --json --quiet --trace %s %s/tests/lua/react_cli.lua 2>&1",
           mock.base_url, LC_BINARY_DIR, trace, lc_test_source_dir());
  FILE *p = popen(cmd, "r");
  ck_assert_ptr_nonnull(p);
  size_t n = fread(out, 1, sizeof out - 1, p);
  out[n] = '\0';
  ck_assert_int_eq(pclose(p), 0);
  cJSON *j = cJSON_Parse(out);
  ck_assert_msg(j != NULL, "not JSON: %s", out);
  ck_assert_str_eq(cJSON_GetObjectItem(j, "status")->valuestring, "finished");
  ck_assert_str_eq(cJSON_GetObjectItem(j, "answer")->valuestring, "cold");
  cJSON *steps = cJSON_GetObjectItem(j, "steps");
  ck_assert_int_eq(cJSON_GetArraySize(steps), 2);
  ck_assert_str_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(steps, 0), "observation")->valuestring,
                   "result for Oslo");
  cJSON_Delete(j);
  size_t tl;
  char *t = lc_test_read_file(trace, &tl);
  ck_assert_ptr_nonnull(t);
  int lines = 0;
  const char *events[3] = {"step", "step", "end"};
  for (char *line = strtok(t, "\n"); line; line = strtok(NULL, "\n")) {
    cJSON *e = cJSON_Parse(line);
    ck_assert_msg(e && lines < 3, "bad trace line %s", line);
    ck_assert_str_eq(cJSON_GetObjectItem(e, "event")->valuestring, events[lines]);
    cJSON_Delete(e);
    lines++;
  }
  ck_assert_int_eq(lines, 3);
  free(t);
  unlink(trace);
  stop();
}
END_TEST

/* examples/react_wiki runs offline against its own mock script. */
START_TEST(example_react_wiki) {
  char script[512], cmd[2048];
  snprintf(script, sizeof script, "%s/examples/react_wiki/mock.json", lc_test_source_dir());
  ck_assert_int_eq(lc_mock_start_file(&mock, script, NULL), 0);
  snprintf(cmd, sizeof cmd,
           "OPENAI_BASE_URL='%s/v1' LUACT_MODEL=openai:mock-gpt %s/luact run --json --quiet "
           "%s/examples/react_wiki/agent.lua 2>/dev/null",
           mock.base_url, LC_BINARY_DIR, lc_test_source_dir());
  FILE *p = popen(cmd, "r");
  ck_assert_ptr_nonnull(p);
  size_t n = fread(out, 1, sizeof out - 1, p);
  out[n] = '\0';
  ck_assert_int_eq(pclose(p), 0);
  cJSON *j = cJSON_Parse(out);
  ck_assert_msg(j != NULL, "not JSON: %s", out);
  ck_assert_str_eq(cJSON_GetObjectItem(j, "status")->valuestring, "finished");
  ck_assert_str_eq(cJSON_GetObjectItem(j, "answer")->valuestring, "1,800 to 7,000 ft");
  cJSON *steps = cJSON_GetObjectItem(j, "steps");
  ck_assert_int_eq(cJSON_GetArraySize(steps), 5);
  /* The similar-titles answer of search and the lookup cursor. */
  ck_assert_ptr_nonnull(strstr(cJSON_GetObjectItem(cJSON_GetArrayItem(steps, 2), "observation")->valuestring,
                               "Similar: ['High Plains (United States)'"));
  ck_assert_ptr_nonnull(strstr(cJSON_GetObjectItem(cJSON_GetArrayItem(steps, 1), "observation")->valuestring,
                               "(Result 1 / 1) The eastern sector"));
  cJSON_Delete(j);
  ck_assert_int_eq(n_requests(), 5);
  stop();
}
END_TEST

/* ---- shared actions (actions.h "Sharing") ---- */

/* Several chunks in one Lua state, with BASE and the prelude's helpers. */
static void shared_open(struct lc_test_lua *t) {
  lc_test_lua_open(t);
  char base[128];
  snprintf(base, sizeof base, "%s/v1", mock.base_url);
  lua_pushstring(t->L, base);
  lua_setglobal(t->L, "BASE");
  ck_assert_msg(lc_test_lua_run(t, prelude, NULL, 0, err, sizeof err) == 0, "%s", err);
}

static void shared_run(struct lc_test_lua *t, const char *code, const char *want) {
  ck_assert_msg(lc_test_lua_run(t, code, out, sizeof out, err, sizeof err) == 0, "%s", err);
  if (want) ck_assert_str_eq(out, want);
}

/* Calls search(q=x), then answers once the result is in. */
#define SEARCH_THEN_ANSWER                                                               \
  "[{\"match\":{\"body_contains\":\"\\\"role\\\":\\\"tool\\\"\"},"                     \
  "\"reply\":{\"openai\":{\"text\":\"done\"}}},"                                         \
  "{\"reply\":{\"openai\":{\"tool_calls\":[{\"id\":\"s1\",\"name\":\"search\","         \
  "\"arguments\":{\"q\":\"x\"}}]}}}]"

/* Runs in one state share the tool's action and finish: made once, each
 * request still carries the whole schema, and collecting the tool drops
 * its action. */
START_TEST(shared_actions_reused_across_runs) {
  start(SEARCH_THEN_ANSWER);
  long live0 = lc_action_live();
  struct lc_test_lua t;
  shared_open(&t);
  long made0 = lc_action_made();
  const char *code = "local r = luact.react(cfg{tools={search}})\n"
                     "return r.status .. '|' .. r.answer .. '|' .. r.steps[1].observation";
  shared_run(&t, code, "finished|done|result for x");
  ck_assert_int_eq(lc_action_made() - made0, 2); /* search + finish */
  shared_run(&t, code, "finished|done|result for x");
  shared_run(&t, "local a = luact.spawn(function() return luact.react(cfg{tools={search}}) end)\n"
                 "local b = luact.react(cfg{tools={search}})\n"
                 "local ok, ra = luact.wait(a)\n"
                 "return ra.status .. b.status", "finishedfinished");
  ck_assert_int_eq(lc_action_made() - made0, 2); /* nothing new */
  ck_assert_int_eq(lc_action_live() - live0, 2);
  ck_assert_int_eq(n_requests(), 8);
  char *b0 = lc_mock_request_body(&mock, 0), *b2 = lc_mock_request_body(&mock, 2);
  cJSON *j0 = cJSON_Parse(b0), *j2 = cJSON_Parse(b2);
  ck_assert(cJSON_Compare(cJSON_GetObjectItem(j0, "tools"), cJSON_GetObjectItem(j2, "tools"), 1));
  ck_assert_ptr_nonnull(strstr(b2, "\"required\":[\"q\"]"));
  cJSON_Delete(j0);
  cJSON_Delete(j2);
  cJSON_free(b0);
  cJSON_free(b2);
  /* The tool gone: so is its action; the state keeps finish. */
  shared_run(&t, "search = nil; collectgarbage(); collectgarbage()", NULL);
  ck_assert_int_eq(lc_action_live() - live0, 1);
  lc_test_lua_close(&t); /* and nothing leaked */
  ck_assert_int_eq(lc_action_live(), live0);
  stop();
}
END_TEST

/* Replaced params or description between runs: the next run offers and
 * validates the new ones (a new action); the old stays for no one. */
START_TEST(shared_actions_follow_replaced_params) {
  start(SEARCH_THEN_ANSWER);
  long live0 = lc_action_live();
  struct lc_test_lua t;
  shared_open(&t);
  long made0 = lc_action_made();
  shared_run(&t, "return tostring(luact.react(cfg{tools={search}}).usage.invalid)", "0");
  shared_run(&t, "search.params = {type='object', properties={query={type='string'}},\n"
                 "  required={'query'}}\n"
                 "search.description = 'Search anew.'\n"
                 "local r = luact.react(cfg{tools={search}, limits={steps=1}})\n"
                 "return r.usage.invalid .. '|' .. r.steps[1].observation",
             "1|Invalid input for \"search\": $: missing required property \"query\". "
             "Expected: search[<query>]");
  ck_assert_int_eq(lc_action_made() - made0, 3);
  lc_mock_assert_request_has(&mock, 2, "\"description\":\"Search anew.\"");
  lc_mock_assert_request_has(&mock, 2, "\"required\":[\"query\"]");
  /* Same params table changed only in effect: a new action too. */
  shared_run(&t, "search.effect = 'idempotent'\n"
                 "return tostring(luact.react(cfg{tools={search}, limits={steps=1}}).usage.invalid)",
             "1");
  ck_assert_int_eq(lc_action_made() - made0, 4);
  shared_run(&t, "collectgarbage(); collectgarbage()", NULL);
  ck_assert_int_eq(lc_action_live() - live0, 2); /* search's latest + finish */
  lc_test_lua_close(&t);
  ck_assert_int_eq(lc_action_live(), live0);
  stop();
}
END_TEST

/* A run keeps its own references: the tool's params replaced and its old
 * action collected while run A is between calls (A's tool starts run B
 * with the new params, then collects garbage); A goes on offering and
 * validating the old schema. */
START_TEST(shared_action_outlives_cache_in_run) {
  start("[{\"match\":{\"body_contains\":\"QB\"},\"reply\":{\"openai\":{\"text\":\"B done.\"}}},"
        "{\"match\":{\"body_contains\":\"ok second\"},\"reply\":{\"openai\":{\"text\":\"A done.\"}}},"
        "{\"match\":{\"body_contains\":\"ok first\"},\"reply\":{\"openai\":{\"tool_calls\":"
        "[{\"id\":\"a2\",\"name\":\"t\",\"arguments\":{\"q\":\"second\"}}]}}},"
        "{\"reply\":{\"openai\":{\"tool_calls\":[{\"id\":\"a1\",\"name\":\"t\","
        "\"arguments\":{\"q\":\"first\"}}]}}}]");
  long live0 = lc_action_live();
  struct lc_test_lua t;
  shared_open(&t);
  shared_run(&t,
             "local t\n"
             "t = luact.tool{name='t', params={type='object', properties={q={type='string'}},\n"
             "  required={'q'}}, fn=function(a)\n"
             "    if a.q == 'first' then\n"
             "      t.params = {type='object', properties={query={type='string'}}, required={'query'}}\n"
             "      local rb = luact.react(cfg{question='QB', tools={t}})\n"
             "      collectgarbage(); collectgarbage()\n"
             "      assert(rb.answer == 'B done.')\n"
             "    end\n"
             "    return 'ok ' .. a.q end}\n"
             "local r = luact.react(cfg{question='QA', tools={t}})\n"
             "return r.status .. '|' .. r.answer .. '|' .. r.steps[2].observation .. '|' ..\n"
             "  r.usage.invalid",
             "finished|A done.|ok second|0");
  ck_assert_int_eq(n_requests(), 4);
  lc_mock_assert_request_has(&mock, 1, "\"required\":[\"query\"]"); /* B: the new params */
  for (int i = 2; i < 4; i++) { /* A, after B: still its own */
    char *b = lc_mock_request_body(&mock, i);
    ck_assert_ptr_nonnull(strstr(b, "\"required\":[\"q\"]"));
    ck_assert_ptr_null(strstr(b, "query"));
    cJSON_free(b);
  }
  lc_test_lua_close(&t);
  ck_assert_int_eq(lc_action_live(), live0);
  stop();
}
END_TEST

/* Strict mode strictifies a copy: a plain run after a strict one, with the
 * same shared action, sends the schema as written. */
START_TEST(shared_action_strict_then_plain) {
  start("[{\"match\":{\"body_contains\":\"\\\"role\\\":\\\"tool\\\"\"},\"reply\":{\"openai\":"
        "{\"text\":\"done\"}}},"
        "{\"reply\":{\"openai\":{\"tool_calls\":[{\"name\":\"opt\",\"arguments\":"
        "{\"q\":\"x\",\"n\":null}}]}}}]");
  struct lc_test_lua t;
  shared_open(&t);
  shared_run(&t, "opt = luact.tool{name='opt', params={type='object', properties={q={type='string'},\n"
                 "  n={type='integer'}}, required={'q'}}, fn=function(a) return tostring(a.n) end}\n"
                 "return luact.react(cfg{strict=true, tools={opt}}).steps[1].observation", "nil");
  lc_mock_assert_request_has(&mock, 0, "\"type\":[\"integer\",\"null\"]");
  lc_mock_assert_request_has(&mock, 0, "\"strict\":true");
  /* Without strict the null is the model's mistake again. */
  shared_run(&t, "local r = luact.react(cfg{tools={opt}, limits={steps=1}})\n"
                 "return r.usage.invalid .. '|' .. tostring(r.steps[1].is_error)", "1|true");
  char *b = lc_mock_request_body(&mock, 2);
  ck_assert_ptr_null(strstr(b, "strict"));
  cJSON *j = cJSON_Parse(b), *want = cJSON_Parse(
      "{\"type\":\"object\",\"properties\":{\"q\":{\"type\":\"string\"},"
      "\"n\":{\"type\":\"integer\"}},\"required\":[\"q\"]}");
  const cJSON *fn = cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(j, "tools"), 0),
                                        "function");
  ck_assert_str_eq(cJSON_GetObjectItem(fn, "name")->valuestring, "opt");
  ck_assert(cJSON_Compare(cJSON_GetObjectItem(fn, "parameters"), want, 1));
  cJSON_Delete(j);
  cJSON_Delete(want);
  cJSON_free(b);
  shared_run(&t, "return luact.react(cfg{strict=true, tools={opt}}).steps[1].observation", "nil");
  lc_mock_assert_request_has(&mock, 3, "\"type\":[\"integer\",\"null\"]");
  lc_test_lua_close(&t);
  stop();
}
END_TEST

/* The engine alone, with a fake host, failing allocation N: start either
 * fails (no callback) or done runs exactly once; nothing leaks. The model
 * endpoint refuses connections, so every started run fails fast. */
struct fake_host {
  int done, tools;
};
static int fake_run_tools(void *ud, struct lc_react *r, const struct lc_react_call *c, size_t n) {
  ((struct fake_host *)ud)->tools++;
  return 0;
}
static void fake_done(void *ud, struct lc_react *r) { ((struct fake_host *)ud)->done++; }

START_TEST(engine_oom) {
  lc_http_global_init();
  long live = lc_alloc_live();
  struct lc_loop *loop;
  ck_assert_int_eq(lc_loop_new(&loop), 0);
  struct fake_host f = {0};
  struct lc_react_host host = {.run_tools = fake_run_tools, .done = fake_done, .ud = &f};
  lc_alloc_fail_after(_i);
  struct lc_llm_request *req = lc_calloc(1, sizeof *req);
  int started = 0;
  if (req) {
    req->provider = LC_PROV_OPENAI;
    req->model = lc_strdup("m");
    req->base_url = lc_strdup("http://127.0.0.1:1/v1");
    struct lc_react_config cfg;
    lc_react_config_default(&cfg);
    cfg.base = req;
    cfg.mode = _i % 2 ? LC_REACT_TEXT : LC_REACT_NATIVE;
    cfg.question = "q?";
    cfg.llm.retry.max_attempts = 1;
    const char *ex[] = {"Question: a\nAction: finish[b]"};
    cfg.examples = ex;
    cfg.n_examples = 1;
    struct lc_react *r = NULL;
    char e[256];
    int have = req->model && req->base_url;
    int rc = have ? lc_react_new(&cfg, &host, &r, e, sizeof e) : LC_ENOMEM;
    if (!have) { /* lc_react_new owns req only once called */
      lc_llm_request_free(req);
      lc_free(req);
    }
    if (!rc) {
      cJSON *schema = cJSON_Parse("{\"type\":\"object\",\"properties\":{\"q\":{\"type\":\"string\"}}}");
      rc = lc_react_add_tool(r, "search", "s", schema, LC_EFFECT_PURE, e, sizeof e);
      if (!rc) rc = lc_react_start(r, loop);
      started = rc == 0;
      for (int pass = 0; started && !f.done && pass < 10000; pass++) lc_loop_run_once(loop, 100);
      lc_alloc_fail_after(0);
      ck_assert_int_eq(f.done, started ? 1 : 0);
      if (started) ck_assert_int_ne(lc_react_trajectory(r)->status, LC_TRAJ_RUNNING);
      lc_react_free(r);
    }
  }
  lc_alloc_fail_after(0);
  ck_assert_int_eq(f.tools, 0);
  ck_assert_int_eq(lc_loop_transfers(loop), 0);
  ck_assert_int_eq(lc_loop_timers(loop), 0);
  lc_loop_free(loop);
  ck_assert_int_eq(lc_alloc_live(), live);
}
END_TEST

Suite *react_suite(void) {
  Suite *s = suite_create("react");
  TCase *tc = tcase_create("react");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, text_mode_run);
  tcase_add_test(tc, native_parallel_results_in_asked_order);
  tcase_add_test(tc, native_text_answer_finishes);
  tcase_add_test(tc, text_malformed_replies_become_observations);
  tcase_add_test(tc, native_malformed_calls_become_observations);
  tcase_add_test(tc, native_names_must_match_exactly);
  tcase_add_test(tc, tool_errors_and_timeout);
  tcase_add_test(tc, limit_steps);
  tcase_add_test(tc, limit_steps_counts_a_replys_calls);
  tcase_add_test(tc, limit_tool_calls);
  tcase_add_test(tc, limit_tokens_before_a_replys_calls);
  tcase_add_test(tc, limit_tokens);
  tcase_add_test(tc, limit_cost);
  tcase_add_test(tc, limit_wall_time_interrupts_a_tool);
  tcase_add_test(tc, limit_max_invalid);
  tcase_add_test(tc, limit_repeated_action);
  tcase_add_test(tc, final_answer_on_limit);
  tcase_add_test(tc, native_history_only_grows);
  tcase_add_test(tc, kill_mid_tool_leaves_nothing);
  tcase_add_test(tc, llm_failure_is_a_result);
  tcase_add_test(tc, constrained_and_strict);
  tcase_add_test(tc, misuse_raises);
  tcase_add_test(tc, cli_json_and_trace);
  tcase_add_test(tc, example_react_wiki);
  tcase_add_test(tc, shared_actions_reused_across_runs);
  tcase_add_test(tc, shared_actions_follow_replaced_params);
  tcase_add_test(tc, shared_action_outlives_cache_in_run);
  tcase_add_test(tc, shared_action_strict_then_plain);
  suite_add_tcase(s, tc);
  TCase *oom = tcase_create("oom");
  tcase_set_timeout(oom, 60);
  tcase_add_loop_test(oom, engine_oom, 1, 200);
  suite_add_tcase(s, oom);
  return s;
}
