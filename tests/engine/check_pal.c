/* check_pal.c: luact.pal end to end over loopback against lc-mockllm: the
 * value of a correct program (solution() and plain-chunk forms, fences,
 * the last of several blocks), each repair path (syntax, runtime, the
 * instruction cap, no code, hostile programs) with the error text in the
 * NEXT request, repairs exhausted, limits, misuse; the code tool inside
 * luact.react; the extraction rules; the engine under failing allocation.
 *
 * Nothing here asserts a duration: order comes from the mock's log. */
#include <check.h>
#include <cjson/cJSON.h>
#include <lua.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "http.h"
#include "lc.h"
#include "loop.h"
#include "pal.h"
#include "sandbox.h"
#include "util_common.h"
#include "util_lua.h"
#include "util_mock.h"

static struct lc_mock mock;
static char out[16384], err[8192];

static void stop(void) { ck_assert_int_eq(lc_mock_stop(&mock), 0); }

/* Starts the mock with one scripted reply per request, in order (texts,
 * NULL-terminated); a request past the last gets the mock's 500. */
static void start_replies(const char *first, ...) {
  cJSON *a = cJSON_CreateArray();
  va_list ap;
  va_start(ap, first);
  for (const char *t = first; t; t = va_arg(ap, const char *)) {
    cJSON *rule = cJSON_CreateObject();
    cJSON_AddNumberToObject(rule, "times", 1);
    cJSON *oa = cJSON_AddObjectToObject(cJSON_AddObjectToObject(rule, "reply"), "openai");
    cJSON_AddStringToObject(oa, "text", t);
    cJSON *u = cJSON_AddObjectToObject(oa, "usage");
    cJSON_AddNumberToObject(u, "prompt_tokens", 100);
    cJSON_AddNumberToObject(u, "completion_tokens", 20);
    cJSON_AddNumberToObject(u, "total_tokens", 120);
    cJSON_AddItemToArray(a, rule);
  }
  va_end(ap);
  char *s = cJSON_PrintUnformatted(a);
  cJSON_Delete(a);
  ck_assert_int_eq(lc_mock_start(&mock, s), 0);
  cJSON_free(s);
}

static const char prelude[] =
    "function cfg(t)\n"
    "  t.model = t.model or 'openai:mock-gpt'; t.base_url = BASE; t.retries = 0\n"
    "  t.question = t.question or 'How many apples?'; t.verbose = false\n"
    "  return t\n"
    "end\n"
    "function statuses(r)\n"
    "  local s = {}\n"
    "  for i, a in ipairs(r.attempts) do s[i] = a.status end\n"
    "  return table.concat(s, ',')\n"
    "end\n";

static int run(const char *code) {
  char base[128];
  snprintf(base, sizeof base, "%s/v1", mock.base_url);
  return lc_test_lua_run_once(base, prelude, code, out, sizeof out, err, sizeof err);
}

static int n_requests(void) { return lc_mock_count_requests(&mock, "/v1/chat/completions"); }

static void assert_req_lacks(int i, const char *needle) {
  char *b = lc_mock_request_body(&mock, i);
  ck_assert_msg(b != NULL, "no request %d", i);
  ck_assert_msg(strstr(b, needle) == NULL, "request %d has [%s]: %s", i, needle, b);
  cJSON_free(b);
}

#define GOOD "```lua\nfunction solution()\n  -- 3 boxes of 4 apples\n  local boxes = 3\n" \
             "  local apples = boxes * 4\n  return apples\nend\n```"

START_TEST(solution_form) {
  start_replies("Here is the program:\n" GOOD "\nIt returns the count.", NULL);
  ck_assert_msg(run("local r = luact.pal(cfg{})\n"
                    "local a = r.attempts[1]\n"
                    "return table.concat({r.status, r.answer, math.type(r.answer), #r.attempts,\n"
                    "  a.status, tostring(a.error), a.tokens_in, r.usage.total, r.usage.llm_calls,\n"
                    "  r.usage.runs, tostring(r.reason), a.code:sub(1, 19)}, '|')") == 0, "%s", err);
  ck_assert_str_eq(out, "finished|12|integer|1|ok|nil|100|120|1|1|nil|function solution()");
  ck_assert_int_eq(n_requests(), 1);
  /* The paper's prompt: instructions, few-shot programs, the question as a
   * "-- Q:" comment; PAL's stop sequence. */
  lc_mock_assert_request_has(&mock, 0, "function solution()");
  lc_mock_assert_request_has(&mock, 0, "-- Q: Olivia has $23.");
  lc_mock_assert_request_has(&mock, 0, "local money_left = money_initial - money_spent");
  lc_mock_assert_request_has(&mock, 0, "\"role\":\"user\",\"content\":\"-- Q: How many apples?\"");
  lc_mock_assert_request_has(&mock, 0, "\"stop\":[\"\\n\\n-- Q:\"]");
  stop();
}
END_TEST

START_TEST(plain_chunk_and_fences) {
  /* A plain chunk with its own return, in ``` fences without a tag; a raw
   * reply with no fence; `local function solution`; the input table. */
  start_replies("Sure.\n```\nlocal a = 2\nlocal b = 21\nreturn a * b\n```\n",
                "function solution()\n  return 'raw'\nend",
                "```Lua\nlocal function solution()\n  return {total = 7, items = {1, 2}}\nend\n```",
                "```lua\nlocal sum = 0\nfor _, p in ipairs(input.prices) do sum = sum + p end\n"
                "return sum\n```",
                NULL);
  ck_assert_msg(run("local r1 = luact.pal(cfg{})\n"
                    "local r2 = luact.pal(cfg{})\n"
                    "local r3 = luact.pal(cfg{})\n"
                    "local r4 = luact.pal(cfg{input={prices={3, 4, 5}}, question='Total?'})\n"
                    "return table.concat({r1.answer, r2.answer, r3.answer.total, r3.answer.items[2],\n"
                    "  r4.answer, statuses(r1), statuses(r4)}, '|')") == 0, "%s", err);
  ck_assert_str_eq(out, "42|raw|7|2|12|ok|ok");
  lc_mock_assert_request_has(&mock, 3, "-- Q: Total?\\n-- The global `input` holds: {\\\"prices\\\":[3,4,5]}");
  stop();
}
END_TEST

START_TEST(last_code_block_wins) {
  start_replies("First try:\n```lua\nreturn 1\n```\nBetter:\n```lua\nreturn 2\n```\n"
                "In Python:\n```python\nprint(3)\n```\nDone.",
                "<think>\n```lua\nreturn 'draft'\n```\n</think>\n```lua\nreturn 'final'\n```",
                NULL);
  ck_assert_msg(run("local r = luact.pal(cfg{})\n"
                    "local r2 = luact.pal(cfg{})\n"
                    "return r.answer .. '|' .. r.attempts[1].code .. '|' .. r2.answer") == 0, "%s", err);
  ck_assert_str_eq(out, "2|return 2|final");
  stop();
}
END_TEST

START_TEST(repair_syntax_error) {
  start_replies("```lua\nfunction solution()\n  local apples = 3 * 4\n  return apples +\nend\n```",
                GOOD, NULL);
  ck_assert_msg(run("local r = luact.pal(cfg{})\n"
                    "return table.concat({r.status, r.answer, statuses(r), r.attempts[1].error}, '|')") == 0,
                "%s", err);
  ck_assert_str_eq(out, "finished|12|syntax,ok|pal:4: unexpected symbol near 'end'");
  ck_assert_int_eq(n_requests(), 2);
  /* The second request: the broken reply as the assistant, then the error. */
  lc_mock_assert_request_has(&mock, 1, "\"role\":\"assistant\",\"content\":\"```lua\\nfunction solution()");
  lc_mock_assert_request_has(&mock, 1, "Syntax error: pal:4: unexpected symbol near 'end'");
  lc_mock_assert_request_has(&mock, 1, "Reply with the complete corrected program");
  assert_req_lacks(0, "Syntax error");
  stop();
}
END_TEST

START_TEST(repair_runtime_error) {
  start_replies("```lua\nfunction solution()\n  local boxes = 3\n  print('boxes', boxes)\n"
                "  return boxes * apples_per_box\nend\n```",
                GOOD, NULL);
  ck_assert_msg(run("local r = luact.pal(cfg{})\n"
                    "local a = r.attempts[1]\n"
                    "return table.concat({r.status, r.answer, statuses(r), a.error, a.output}, '|')") == 0,
                "%s", err);
  ck_assert_str_eq(out, "finished|12|error,ok|pal:4: undefined global 'apples_per_box'|boxes\t3\n");
  lc_mock_assert_request_has(&mock, 1, "Runtime error: pal:4: undefined global 'apples_per_box'");
  lc_mock_assert_request_has(&mock, 1, "Output it printed before it stopped:\\nboxes\\t3\\n");
  stop();
  /* nil arithmetic */
  start_replies("```lua\nfunction solution()\n  local price\n  return price * 2\nend\n```",
                "```lua\nreturn 8\n```", NULL);
  ck_assert_msg(run("local r = luact.pal(cfg{})\n"
                    "return r.answer .. '|' .. statuses(r)") == 0, "%s", err);
  ck_assert_str_eq(out, "8|error,ok");
  lc_mock_assert_request_has(&mock, 1, "attempt to perform arithmetic on a nil value (local 'price')");
  stop();
}
END_TEST

START_TEST(repair_infinite_loop) {
  start_replies("```lua\nfunction solution()\n  local n = 0\n  while n >= 0 do n = n + 1 end\n"
                "  return n\nend\n```",
                GOOD, NULL);
  ck_assert_msg(run("local r = luact.pal(cfg{sandbox={instructions=100000}})\n"
                    "local a = r.attempts[1]\n"
                    "return table.concat({r.status, r.answer, statuses(r), a.error,\n"
                    "  tostring(a.instructions >= 100000)}, '|')") == 0, "%s", err);
  ck_assert_str_eq(out, "finished|12|instructions,ok|instruction limit exceeded (100000)|true");
  lc_mock_assert_request_has(&mock, 1, "Instruction limit exceeded: instruction limit exceeded (100000)");
  lc_mock_assert_request_has(&mock, 1, "infinite loop");
  stop();
}
END_TEST

START_TEST(repairs_exhausted) {
  start_replies("```lua\nreturn nil\n```", "```lua\nerror('still wrong')\n```",
                "```lua\nreturn 'never asked'\n```", NULL);
  ck_assert_msg(run("local r = luact.pal(cfg{repairs=1})\n"
                    "return table.concat({r.status, tostring(r.answer), statuses(r), r.reason}, '|')") == 0,
                "%s", err);
  ck_assert_str_eq(out, "failed|nil|bad_result,error|no working program after 2 attempts; "
                        "last: error: pal:1: still wrong");
  ck_assert_int_eq(n_requests(), 2);
  lc_mock_assert_request_has(&mock, 1, "Bad result: the program returned nil");
  stop();
  /* repairs = 0: one attempt only. */
  start_replies("```lua\nreturn {f = print}\n```", NULL);
  ck_assert_msg(run("local r = luact.pal(cfg{repairs=0})\n"
                    "return r.status .. '|' .. statuses(r) .. '|' .. r.reason") == 0, "%s", err);
  ck_assert_msg(strncmp(out, "failed|bad_result|no working program after 1 attempt; last: bad_result:", 71) == 0,
                "%s", out);
  ck_assert_int_eq(n_requests(), 1);
  stop();
}
END_TEST

START_TEST(no_code_in_reply) {
  start_replies("I think the answer is 12.", "```python\ndef solution():\n    return 12\n```",
                "```lua\n```", GOOD, NULL);
  ck_assert_msg(run("local r = luact.pal(cfg{repairs=3})\n"
                    "return table.concat({r.answer, statuses(r), tostring(r.attempts[1].code),\n"
                    "  r.usage.runs}, '|')") == 0, "%s", err);
  ck_assert_str_eq(out, "12|no_code,no_code,no_code,ok|nil|1");
  lc_mock_assert_request_has(&mock, 1, "Your reply contains no Lua program.");
  lc_mock_assert_request_has(&mock, 2, "Your reply has a ```python code block but no Lua program.");
  lc_mock_assert_request_has(&mock, 3, "Your code block is empty.");
  stop();
}
END_TEST

/* Each forbidden thing is refused inside the sandbox, reported back, and
 * the host is untouched. */
START_TEST(hostile_programs_refused) {
  char path[128], reply1[256], reply2[256];
  snprintf(path, sizeof path, "/tmp/lc_pal_escape_%d", (int)getpid());
  unlink(path);
  snprintf(reply1, sizeof reply1, "```lua\nlocal f = io.open('%s', 'w')\nreturn 1\n```", path);
  snprintf(reply2, sizeof reply2, "```lua\nreturn os.execute('touch %s')\n```", path);
  start_replies(reply1, reply2, "```lua\nreturn string.dump(function() end)\n```",
                "```lua\nlocal f = assert(load(string.char(27) .. 'LuaT\\0'))\nreturn f()\n```",
                "```lua\nreturn getmetatable('').__index\n```",
                "```lua\nfunction solution() return 5 end\nanswer = 5\nreturn answer\n```",
                "```lua\nreturn 5\n```", NULL);
  ck_assert_msg(run("local r = luact.pal(cfg{repairs=6})\n"
                    "local errs = {}\n"
                    "for i = 1, 6 do errs[i] = r.attempts[i].error end\n"
                    "return table.concat({r.answer, statuses(r), table.concat(errs, '\\n'),\n"
                    "  type(io.open), type(os.time()), type(string.dump)}, '|')") == 0, "%s", err);
  ck_assert_msg(strncmp(out, "5|error,error,error,error,error,error,ok|", 41) == 0, "%s", out);
  ck_assert_msg(strstr(out, "|function|number|function") != NULL, "host changed: %s", out);
  ck_assert_int_eq(access(path, F_OK), -1); /* nothing was created */
  lc_mock_assert_request_has(&mock, 1, "'io' is not available in the sandbox");
  lc_mock_assert_request_has(&mock, 2, "'os' is not available in the sandbox");
  lc_mock_assert_request_has(&mock, 3, "attempt to call a nil value (field 'dump')");
  lc_mock_assert_request_has(&mock, 4, "attempt to load a binary chunk");
  lc_mock_assert_request_has(&mock, 6, "cannot create global 'answer'");
  stop();
}
END_TEST

START_TEST(user_prompt_parts) {
  start_replies("```lua\nreturn 'ok'\n```", NULL);
  ck_assert_msg(run("local seen = {}\n"
                    "local r = luact.pal(cfg{instructions='Write Lua. Be exact.',\n"
                    "  question='Line one\\nline two',\n"
                    "  examples={'-- Q: 1+1?\\nfunction solution()\\n  return 1 + 1\\nend'},\n"
                    "  on_attempt=function(a) seen[#seen+1] = a.index .. a.status end})\n"
                    "return r.answer .. '|' .. table.concat(seen, ',')") == 0, "%s", err);
  ck_assert_str_eq(out, "ok|1ok");
  lc_mock_assert_request_has(&mock, 0, "Write Lua. Be exact.\\n\\nExamples:\\n\\n-- Q: 1+1?\\nfunction solution()");
  lc_mock_assert_request_has(&mock, 0, "-- Q: Line one\\n-- line two");
  assert_req_lacks(0, "Olivia"); /* user examples replace the built-in ones */
  stop();
}
END_TEST

START_TEST(limits_and_llm_failure) {
  /* 120 tokens a call, limit 200: the first failure stops the run. */
  start_replies("```lua\nreturn nil\n```", GOOD, NULL);
  ck_assert_msg(run("local r = luact.pal(cfg{limits={tokens=100}})\n"
                    "return table.concat({r.status, r.limit, r.reason, #r.attempts}, '|')") == 0, "%s", err);
  ck_assert_str_eq(out, "failed|tokens|token limit reached: 120 of 100 tokens|1");
  ck_assert_int_eq(n_requests(), 1);
  stop();
  /* A finished program is the answer even past a limit. */
  start_replies(GOOD, NULL);
  ck_assert_msg(run("local r = luact.pal(cfg{limits={tokens=100}})\n"
                    "return r.status .. '|' .. r.answer") == 0, "%s", err);
  ck_assert_str_eq(out, "finished|12");
  stop();
  ck_assert_int_eq(lc_mock_start(&mock, "[{\"reply\":{\"status\":401,\"json\":{\"error\":"
                                        "{\"message\":\"bad key\"}}}}]"), 0);
  ck_assert_msg(run("local r = luact.pal(cfg{})\n"
                    "return r.status .. '|' .. r.reason .. '|' .. #r.attempts") == 0, "%s", err);
  ck_assert_str_eq(out, "failed|LLM error (auth): bad key|0");
  stop();
}
END_TEST

START_TEST(wall_time_interrupts_the_call) {
  ck_assert_int_eq(lc_mock_start(&mock, "[{\"reply\":{\"delay_ms\":20000,\"openai\":{\"text\":\"late\"}}}]"), 0);
  ck_assert_msg(run("local r = luact.pal(cfg{limits={wall_time=0.2}})\n"
                    "return table.concat({r.status, r.limit, #r.attempts, tostring(r.answer)}, '|')") == 0,
                "%s", err);
  ck_assert_str_eq(out, "failed|wall_time|0|nil");
  stop();
}
END_TEST

START_TEST(kill_mid_call_leaves_nothing) {
  ck_assert_int_eq(lc_mock_start(&mock, "[{\"reply\":{\"delay_ms\":20000,\"openai\":{\"text\":\"late\"}}}]"), 0);
  ck_assert_msg(run("local r, msg, code = luact.timeout(0.2, function() return luact.pal(cfg{}) end)\n"
                    "return tostring(r) .. '|' .. code") == 0, "%s", err);
  ck_assert_str_eq(out, "nil|timeout");
  stop();
}
END_TEST

START_TEST(misuse_raises) {
  ck_assert_int_eq(lc_mock_start(&mock, "[]"), 0);
  ck_assert_int_ne(run("luact.pal(cfg{question=42})"), 0);
  ck_assert_msg(strstr(err, "'question'") != NULL, "%s", err);
  ck_assert_int_ne(run("luact.pal(cfg{sandbox={memroy=1}})"), 0);
  ck_assert_msg(strstr(err, "unknown sandbox option 'memroy'") != NULL, "%s", err);
  ck_assert_int_ne(run("luact.pal(cfg{sandbox={time=-1}})"), 0);
  ck_assert_msg(strstr(err, "sandbox.time must be a positive number") != NULL, "%s", err);
  ck_assert_int_ne(run("luact.pal(cfg{repairs=-1})"), 0);
  ck_assert_int_ne(run("luact.pal(cfg{examples={1}})"), 0);
  ck_assert_int_ne(run("luact.pal(cfg{input={f=print}})"), 0);
  ck_assert_msg(strstr(err, "'input'") != NULL, "%s", err);
  ck_assert_int_ne(run("luact.pal(cfg{limits={steps=3}})"), 0);
  ck_assert_int_ne(run("luact.pal(cfg{model='nope'})"), 0);
  ck_assert_msg(strstr(err, "luact.pal: bad model") != NULL, "%s", err);
  ck_assert_int_ne(run("local co = coroutine.wrap(function() return luact.pal(cfg{}) end)\nco()"), 0);
  ck_assert_int_eq(n_requests(), 0);
  stop();
}
END_TEST

/* luact.pal.run and luact.tools.code without a model. */
START_TEST(run_and_code_tool) {
  ck_assert_int_eq(lc_mock_start(&mock, "[]"), 0);
  ck_assert_msg(run("local r = luact.pal.run('function solution()\\n  return input.x * 2\\nend',\n"
                    "  {input={x=21}})\n"
                    "local n, m, c = luact.pal.run('while true do end', {instructions=1000})\n"
                    "local t = luact.tools.code{sandbox={instructions=100000, output=64}}\n"
                    "local ok = t:call{code='print(\"hi\") return {1, 2}'}\n"
                    "local none = t:call{code='print(\"only output\")'}\n"
                    "local x, msg, code = t:call{code='print(\"before\")\\nlocal v = nil\\nreturn v.y'}\n"
                    "local y, msg2 = t:call{code='while true do end'}\n"
                    "local z, msg3 = t:call{code='for i = 1, 100 do print(i) end'}\n"
                    "return table.concat({r.value, tostring(n), c, ok.output, #ok.value, ok.value[2],\n"
                    "  none.output, tostring(none.value == luact.json.null), code, msg, msg2, msg3,\n"
                    "  t.name, t.effect}, '|')") == 0,
                "%s", err);
  ck_assert_str_eq(out, "42|nil|instructions|hi\n|2|2|only output\n|true|tool_error|"
                        "tool run_lua failed: error: pal:3: attempt to index a nil value (local 'v')\n"
                        "Output before it stopped:\nbefore\n|"
                        "tool run_lua failed: instructions: instruction limit exceeded (100000)|"
                        "tool run_lua failed: output: output limit exceeded (64 bytes)\n"
                        "Output before it stopped:\n"
                        "1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n11\n12\n13\n14\n15\n16\n17\n18\n19\n20\n21\n22\n23\n24\n|"
                        "run_lua|pure");
  ck_assert_int_ne(run("luact.tools.code{sandbox={cpu=1}}"), 0);
  ck_assert_msg(strstr(err, "unknown sandbox option 'cpu'") != NULL, "%s", err);
  stop();
}
END_TEST

/* A ReAct agent (native mode) declares the code tool and uses it. */
START_TEST(code_tool_in_react) {
  ck_assert_int_eq(lc_mock_start(&mock,
      "[{\"match\":{\"body_contains\":\"\\\"value\\\\\\\":42\"},"
      "\"reply\":{\"openai\":{\"text\":\"The answer is 42.\"}}},"
      "{\"match\":{\"body_contains\":\"tool_call_id\\\":\\\"c1\"},"
      "\"reply\":{\"openai\":{\"tool_calls\":[{\"id\":\"c2\",\"name\":\"run_lua\","
      "\"arguments\":{\"code\":\"local t = 0\\nfor _, v in ipairs(input.xs) do t = t + v end\\nreturn t\","
      "\"input\":{\"xs\":[40,2]}}}]}}},"
      "{\"reply\":{\"openai\":{\"tool_calls\":[{\"id\":\"c1\",\"name\":\"run_lua\","
      "\"arguments\":{\"code\":\"return 6 * nope\"}}]}}}]"), 0);
  ck_assert_msg(run("local r = luact.react(cfg{tools={luact.tools.code{}}})\n"
                    "local o = luact.json.decode(r.steps[2].observation)\n"
                    "return table.concat({r.status, r.answer, #r.steps, tostring(r.steps[1].is_error),\n"
                    "  o.value, '[' .. o.output .. ']', r.usage.tool_errors}, '|')") == 0, "%s", err);
  ck_assert_str_eq(out, "finished|The answer is 42.|3|true|42|[]|1");
  ck_assert_int_eq(n_requests(), 3);
  lc_mock_assert_request_has(&mock, 0, "\"name\":\"run_lua\"");
  lc_mock_assert_request_has(&mock, 0, "\"required\":[\"code\"]");
  lc_mock_assert_request_has(&mock, 1, "tool run_lua failed: error: pal:1: undefined global 'nope'");
  stop();
}
END_TEST

/* `luact run --json --trace` and live lines, through the CLI. */
START_TEST(example_pal_math) {
  char script[512], cmd[2048], trace[256];
  snprintf(script, sizeof script, "%s/examples/pal_math/mock.json", lc_test_source_dir());
  snprintf(trace, sizeof trace, "/tmp/lc_pal_trace_%d.jsonl", (int)getpid());
  unlink(trace);
  ck_assert_int_eq(lc_mock_start_file(&mock, script, NULL), 0);
  snprintf(cmd, sizeof cmd,
           "OPENAI_BASE_URL='%s/v1' LUACT_MODEL=openai:mock-gpt %s/luact run --json --quiet "
           "--trace %s %s/examples/pal_math/agent.lua 2>/dev/null",
           mock.base_url, LC_BINARY_DIR, trace, lc_test_source_dir());
  FILE *p = popen(cmd, "r");
  ck_assert_ptr_nonnull(p);
  size_t n = fread(out, 1, sizeof out - 1, p);
  out[n] = '\0';
  ck_assert_int_eq(pclose(p), 0);
  cJSON *j = cJSON_Parse(out);
  ck_assert_msg(j != NULL, "not JSON: %s", out);
  ck_assert_int_eq(cJSON_GetArraySize(j), 4);
  int repaired = 0;
  for (int i = 0; i < 4; i++) {
    cJSON *e = cJSON_GetArrayItem(j, i);
    ck_assert_str_eq(cJSON_GetObjectItem(e, "status")->valuestring, "finished");
    ck_assert_msg(cJSON_IsTrue(cJSON_GetObjectItem(e, "correct")), "problem %d wrong: %s", i, out);
    if (cJSON_GetObjectItem(e, "attempts")->valueint > 1) repaired++;
  }
  ck_assert_int_eq(repaired, 1);
  cJSON_Delete(j);
  ck_assert_int_eq(n_requests(), 5);
  size_t tl;
  char *t = lc_test_read_file(trace, &tl);
  ck_assert_ptr_nonnull(t);
  ck_assert_ptr_nonnull(strstr(t, "{\"event\":\"pal_attempt\",\"attempt\":1,\"status\":\"error\""));
  ck_assert_ptr_nonnull(strstr(t, "\"event\":\"pal_end\",\"status\":\"finished\""));
  free(t);
  unlink(trace);
  stop();
}
END_TEST

/* ---- extraction, without a model ---- */

static void extract_is(const char *reply, const char *want) {
  char *code = NULL, why[256] = "";
  size_t n;
  int rc = lc_pal_extract(reply, strlen(reply), &code, &n, why, sizeof why);
  if (!want) {
    ck_assert_msg(rc == LC_ENOTFOUND, "[%s] gave [%s]", reply, code ? code : "");
    ck_assert_msg(why[0] != '\0', "no reason for [%s]", reply);
  } else {
    ck_assert_msg(rc == 0, "[%s]: %s", reply, why);
    ck_assert_str_eq(code, want);
    ck_assert_uint_eq(n, strlen(want));
  }
  lc_free(code);
}

START_TEST(extraction_rules) {
  long live = lc_alloc_live();
  extract_is("```lua\nreturn 1\n```", "return 1");
  extract_is("text\n```\nreturn 1\n```\nmore", "return 1");
  extract_is("```lua\nreturn 1\n```\n```lua\nreturn 2\n```", "return 2");
  extract_is("```lua\nreturn 1\n```\n```js\nx\n```", "return 1");
  extract_is("```lua\nreturn 1\nend```", "return 1\nend");          /* fence on the code line */
  extract_is("  ```lua\n  return 1\n  ```", "  return 1");              /* indented fences */
  extract_is("```lua\nfunction solution()\n  return 1", "function solution()\n  return 1"); /* cut off */
  extract_is("```lua\nreturn 1\n```\n```lua\nreturn 2", "return 1");   /* last complete */
  extract_is("Here:\nlocal x = 1\nreturn x", "local x = 1\nreturn x");   /* raw, after prose */
  extract_is("-- Q: q\nfunction solution() return 1 end", "-- Q: q\nfunction solution() return 1 end");
  extract_is("<think>return 9</think>\nreturn 3", "return 3");
  extract_is("<think>never closed ```lua\nreturn 9\n```", NULL);
  extract_is("The answer is 12.", NULL);
  extract_is("", NULL);
  extract_is("```lua\n  \n```", NULL);
  extract_is("```python\nprint(1)\n```", NULL);
  ck_assert_int_eq(lc_alloc_live(), live);
}
END_TEST

/* The engine alone, with a fake host, failing allocation N, against the
 * mock (a buggy program, then a fixed one after the repair request): start
 * either fails (no callback) or done runs exactly once; nothing leaks. */
struct fake_host {
  int done, attempts;
};
static void fake_attempt(void *ud, struct lc_pal *p, const struct lc_pal_attempt *a) {
  (void)p;
  (void)a;
  ((struct fake_host *)ud)->attempts++;
}
static void fake_done(void *ud, struct lc_pal *p) {
  (void)p;
  ((struct fake_host *)ud)->done++;
}

static void oom_mock_up(void) {
  ck_assert_int_eq(lc_mock_start(&mock,
      "[{\"match\":{\"body_contains\":\"Runtime error\"},\"reply\":{\"openai\":{\"text\":"
      "\"```lua\\nreturn 7\\n```\"}}},"
      "{\"reply\":{\"openai\":{\"text\":\"```lua\\nprint('x')\\nreturn nope + 1\\n```\"}}}]"), 0);
}
static void oom_mock_down(void) { lc_mock_stop(&mock); }

START_TEST(engine_oom) {
  lc_http_global_init();
  long live = lc_alloc_live();
  struct lc_loop *loop;
  ck_assert_int_eq(lc_loop_new(&loop), 0);
  struct fake_host f = {0};
  struct lc_pal_host host = {.on_attempt = fake_attempt, .done = fake_done, .ud = &f};
  char base[128];
  snprintf(base, sizeof base, "%s/v1", mock.base_url);
  lc_alloc_fail_after(_i);
  struct lc_llm_request *req = lc_calloc(1, sizeof *req);
  int started = 0;
  if (req) {
    req->provider = LC_PROV_OPENAI;
    req->model = lc_strdup("m");
    req->base_url = lc_strdup(base);
    req->api_key = lc_strdup("k");
    struct lc_pal_config cfg;
    lc_pal_config_default(&cfg);
    cfg.base = req;
    cfg.question = "q?";
    cfg.llm.retry.max_attempts = 1;
    cJSON *in = _i % 2 ? cJSON_Parse("{\"a\":[1,2]}") : NULL;
    cfg.input = in;
    struct lc_pal *p = NULL;
    char e[256];
    int have = req->model && req->base_url && req->api_key;
    int rc = have ? lc_pal_new(&cfg, &host, &p, e, sizeof e) : LC_ENOMEM;
    if (!have) { /* lc_pal_new owns req only once called */
      lc_llm_request_free(req);
      lc_free(req);
    }
    cJSON_Delete(in);
    if (!rc) {
      rc = lc_pal_start(p, loop);
      started = rc == 0;
      for (int pass = 0; started && !f.done && pass < 100000; pass++) lc_loop_run_once(loop, 100);
      lc_alloc_fail_after(0);
      ck_assert_int_eq(f.done, started ? 1 : 0);
      if (started) {
        ck_assert_int_ne(lc_pal_result_status(p), LC_PAL_RUNNING);
        size_t n;
        lc_pal_attempts(p, &n);
        ck_assert_int_eq((size_t)f.attempts, n);
        if (lc_pal_result_status(p) == LC_PAL_FINISHED)
          ck_assert_int_eq(lc_pal_answer(p)->valueint, 7);
      }
      lc_pal_free(p);
    }
  }
  lc_alloc_fail_after(0);
  ck_assert_int_eq(lc_loop_transfers(loop), 0);
  ck_assert_int_eq(lc_loop_timers(loop), 0);
  lc_loop_free(loop);
  ck_assert_int_eq(lc_alloc_live(), live);
}
END_TEST

/* Lua 5.4.4 overflows the C stack with deeply nested coroutine.close
 * (see tests/lua/sandbox/coroutine_close_cstack.lua): the child dies. */
#define CRASH "```lua\nfunction solution()\n  local coro = false\n" \
  "  for i = 1, 30000 do\n    local previous = coro\n" \
  "    coro = coroutine.create(function()\n" \
  "      local cc <close> = setmetatable({}, {__close = function()\n" \
  "        if previous then coroutine.close(previous) end\n      end})\n" \
  "      coroutine.yield()\n    end)\n    coroutine.resume(coro)\n  end\n" \
  "  return coroutine.close(coro)\nend\n```"

/* A program that crashes the interpreter is a dead child: the model is
 * asked for a repair, the run is not lost as "out of memory". */
START_TEST(crash_is_repaired) {
  start_replies(CRASH, GOOD, NULL);
  ck_assert_msg(run("local r = luact.pal(cfg{sandbox={memory=64*1024*1024}})\n"
                    "return table.concat({r.status, tostring(r.answer), statuses(r),\n"
                    "  tostring(r.attempts[1].error)}, '|')") == 0, "%s", err);
  ck_assert_msg(strncmp(out, "finished|12|died,ok|the sandbox process died", 44) == 0,
                "%s", out);
  ck_assert_int_eq(n_requests(), 2);
  lc_mock_assert_request_has(&mock, 1, "The program crashed the interpreter");
  stop();
}
END_TEST

struct ticker {
  long ticks, during_run;
};
static void ticker_tick(struct lc_loop *loop, struct lc_timer *t) {
  struct ticker *k = t->ud;
  k->ticks++;
  if (lc_sandbox_live() > 0) k->during_run++;
  lc_timer_start(loop, t, 1);
}

/* The sandbox run does not hold the loop: a ticker beside a PAL run whose
 * program spins until its time cap completes its ticks while the program
 * is still running (a run on the loop thread would starve it to 0). */
START_TEST(ticker_beside_long_run) {
  start_replies("```lua\nwhile true do end\n```", NULL);
  lc_http_global_init();
  struct lc_loop *loop;
  ck_assert_int_eq(lc_loop_new(&loop), 0);
  struct fake_host f = {0};
  struct lc_pal_host host = {.on_attempt = fake_attempt, .done = fake_done, .ud = &f};
  char base[128];
  snprintf(base, sizeof base, "%s/v1", mock.base_url);
  struct lc_llm_request *req = lc_calloc(1, sizeof *req);
  req->provider = LC_PROV_OPENAI;
  req->model = lc_strdup("m");
  req->base_url = lc_strdup(base);
  req->api_key = lc_strdup("k");
  struct lc_pal_config cfg;
  lc_pal_config_default(&cfg);
  cfg.base = req;
  cfg.question = "q?";
  cfg.repairs = 0;
  cfg.llm.retry.max_attempts = 1;
  cfg.sandbox.wall_ms = 1500;
  cfg.sandbox.instr_limit = 1000000000000L;
  struct lc_pal *p = NULL;
  char e[256];
  ck_assert_int_eq(lc_pal_new(&cfg, &host, &p, e, sizeof e), 0);
  ck_assert_int_eq(lc_pal_start(p, loop), 0);
  struct ticker k = {0, 0};
  struct lc_timer t;
  lc_timer_init(&t, ticker_tick, &k);
  lc_timer_start(loop, &t, 1);
  while (!f.done) lc_loop_run_once(loop, -1);
  lc_timer_stop(loop, &t);
  ck_assert_msg(k.during_run >= 20, "the ticker stalled: %ld of %ld ticks during the run",
                k.during_run, k.ticks);
  size_t n;
  const struct lc_pal_attempt *a = lc_pal_attempts(p, &n);
  ck_assert_int_eq(n, 1);
  ck_assert_str_eq(a[0].status, "timeout"); /* it ran until its cap */
  lc_pal_free(p);
  ck_assert_int_eq(lc_loop_pending(loop), 0);
  lc_loop_free(loop);
  ck_assert_int_eq(lc_sandbox_live(), 0);
  stop();
}
END_TEST

/* luact.pal.run (and the code tool on it) inside a task: the loop watches
 * the child, so a ticker keeps ticking while a program runs to its time
 * cap, and killing the task kills its program. On the old binding the
 * ticker got no tick (the thread waited for the child). */
START_TEST(pal_run_yields_in_task) {
  char o[256], e[1024];
  int rc = lc_test_lua_run_once(
      NULL, NULL,
      "local running, ticks = true, 0\n"
      "local t = luact.spawn(function()\n"
      "  while running do luact.sleep(0.001); ticks = ticks + 1 end\n"
      "end)\n"
      "local r, msg, code = luact.pal.run('while true do end', { time = 1.5, instructions = 1e12 })\n"
      "running = false\n"
      "luact.wait(t)\n"
      "local ok = assert(luact.pal.run('return 6 * 7'))\n"
      /* started is set in the same resume that starts the child (the task
       * only yields once its program runs): waiting for it, not a timer,
       * puts the kill on a running child. */
      "local started = false\n"
      "local k = luact.spawn(function()\n"
      "  started = true\n"
      "  return luact.pal.run('while true do end', { time = 600, instructions = 1e12 })\n"
      "end)\n"
      "while not started do luact.sleep(0) end\n"
      "luact.kill(k)\n"
      "return code .. '|' .. tostring(ticks >= 20) .. '|' .. ok.value",
      o, sizeof o, e, sizeof e);
  ck_assert_msg(rc == 0, "%s", e);
  ck_assert_msg(strcmp(o, "timeout|true|42") == 0, "%s", o);
  ck_assert_int_eq(lc_sandbox_live(), 0);
}
END_TEST

Suite *pal_suite(void) {
  Suite *s = suite_create("pal");
  TCase *tc = tcase_create("pal");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, solution_form);
  tcase_add_test(tc, pal_run_yields_in_task);
  tcase_add_test(tc, plain_chunk_and_fences);
  tcase_add_test(tc, last_code_block_wins);
  tcase_add_test(tc, repair_syntax_error);
  tcase_add_test(tc, repair_runtime_error);
  tcase_add_test(tc, repair_infinite_loop);
  tcase_add_test(tc, repairs_exhausted);
  tcase_add_test(tc, no_code_in_reply);
  tcase_add_test(tc, hostile_programs_refused);
  tcase_add_test(tc, user_prompt_parts);
  tcase_add_test(tc, limits_and_llm_failure);
  tcase_add_test(tc, wall_time_interrupts_the_call);
  tcase_add_test(tc, kill_mid_call_leaves_nothing);
  tcase_add_test(tc, misuse_raises);
  tcase_add_test(tc, run_and_code_tool);
  tcase_add_test(tc, code_tool_in_react);
  tcase_add_test(tc, example_pal_math);
  tcase_add_test(tc, extraction_rules);
  tcase_add_test(tc, crash_is_repaired);
  tcase_add_test(tc, ticker_beside_long_run);
  suite_add_tcase(s, tc);
  TCase *oom = tcase_create("oom");
  tcase_set_timeout(oom, 120);
  tcase_add_unchecked_fixture(oom, oom_mock_up, oom_mock_down);
  tcase_add_loop_test(oom, engine_oom, 1, 160); /* a whole run takes ~115 */
  suite_add_tcase(s, oom);
  return s;
}
