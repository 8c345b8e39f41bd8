/* check_llm_json.c: luact.llm.json against lc-mockllm: valid the first
 * time (and what the request asked for), a repair after a schema
 * violation (the errors go back to the model), giving up after the
 * repairs with the errors, invalid JSON, a Lua validate, the
 * instructions-only mode, misuse; and examples/recipes offline. */
#include <check.h>
#include <lua.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util_common.h"
#include "util_lua.h"
#include "util_mock.h"

static struct lc_mock mock;
static char out[16384], err[8192];

static const char prelude[] =
    "schema = {type = 'object', properties = {name = {type = 'string'},\n"
    "  n = {type = 'integer', minimum = 1}}, required = {'name', 'n'}, additionalProperties = false}\n"
    "function ask(t)\n"
    "  t.model = 'openai:m'; t.base_url = BASE; t.retries = 0; t.schema = t.schema or schema\n"
    "  t.prompt = t.prompt or 'Give me a thing.'\n"
    "  return luact.llm.json(t)\n"
    "end\n";

static int run(const char *code) {
  char base[128];
  snprintf(base, sizeof base, "%s/v1", mock.base_url);
  return lc_test_lua_run_once(base, prelude, code, out, sizeof out, err, sizeof err);
}

#define ASSERT_HAS(text, needle) ck_assert_msg(strstr(text, needle), "missing [%s] in:\n%s", needle, text)

static void teardown(void) {
  if (mock.pid > 0) ck_assert_int_eq(lc_mock_stop(&mock), 0);
}

START_TEST(valid_first_time) {
  ck_assert_int_eq(lc_mock_start(&mock,
      "[{\"reply\":{\"openai\":{\"text\":\"{\\\"name\\\": \\\"lamp\\\", \\\"n\\\": 3}\"}}}]"), 0);
  ck_assert_msg(run("local v, info = ask{schema_name = 'thing'}\n"
                    "return v.name .. ' ' .. v.n .. ' ' .. info.attempts .. ' ' .. #info.errors") == 0,
                "%s", err);
  ck_assert_str_eq(out, "lamp 3 1 0");
  ck_assert_int_eq(lc_mock_count_requests(&mock, "/v1/chat/completions"), 1);
  char *log = lc_mock_requests(&mock);
  ASSERT_HAS(log, "\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{\"name\":\"thing\"");
  ASSERT_HAS(log, "\"strict\":true");
  free(log);
}
END_TEST

START_TEST(repair_after_schema_violation) {
  ck_assert_int_eq(lc_mock_start(&mock,
      "[{\"times\":1,\"reply\":{\"openai\":{\"text\":\"{\\\"name\\\": \\\"lamp\\\", \\\"n\\\": 0, \\\"x\\\": 1}\"}}},"
      " {\"reply\":{\"openai\":{\"text\":\"```json\\n{\\\"name\\\": \\\"lamp\\\", \\\"n\\\": 2}\\n```\"}}}]"), 0);
  ck_assert_msg(run("local v, info = ask{}\n"
                    "return v.n .. ' ' .. info.attempts .. '\\n' .. info.errors[1]") == 0, "%s", err);
  ASSERT_HAS(out, "2 2\nthe reply does not fit the schema:\n");
  ASSERT_HAS(out, "$.n: ");
  ASSERT_HAS(out, "$.x: property not allowed");
  /* The second request carried the model's reply and the errors. */
  char *log = lc_mock_requests(&mock);
  ASSERT_HAS(log, "That reply was rejected: the reply does not fit the schema:");
  ASSERT_HAS(log, "\"role\":\"assistant\",\"content\":\"{\\\"name\\\": \\\"lamp\\\", \\\"n\\\": 0, \\\"x\\\": 1}\"");
  free(log);
  ck_assert_int_eq(lc_mock_count_requests(&mock, "/v1/chat/completions"), 2);
}
END_TEST

START_TEST(gives_up_after_repairs) {
  ck_assert_int_eq(lc_mock_start(&mock,
      "[{\"reply\":{\"openai\":{\"text\":\"{\\\"name\\\": 7, \\\"n\\\": 1}\"}}}]"), 0);
  ck_assert_msg(run("local v, msg, code, info = ask{repairs = 1}\n"
                    "return tostring(v) .. '\\n' .. code .. '\\n' .. info.attempts .. ' ' .. #info.errors ..\n"
                    "  '\\n' .. msg") == 0, "%s", err);
  ASSERT_HAS(out, "nil\nschema\n2 2\nno valid JSON after 2 attempts; last problem: the reply does not "
                  "fit the schema:\n$.name: expected string");
  ck_assert_int_eq(lc_mock_count_requests(&mock, "/v1/chat/completions"), 2);
}
END_TEST

START_TEST(invalid_json_and_lua_validate) {
  ck_assert_int_eq(lc_mock_start(&mock,
      "[{\"times\":1,\"reply\":{\"openai\":{\"text\":\"Sure! Here it is: {name: lamp}\"}}},"
      " {\"times\":1,\"reply\":{\"openai\":{\"text\":\"{\\\"name\\\": \\\"lamp\\\", \\\"n\\\": 1}\"}}},"
      " {\"reply\":{\"openai\":{\"text\":\"{\\\"name\\\": \\\"desk\\\", \\\"n\\\": 1}\"}}}]"), 0);
  ck_assert_msg(run("local v, msg, code = ask{repairs = 0}\n"
                    "local out = {tostring(v), code}\n"
                    "local v2, info = ask{native_schema = false, validate = function(t)\n"
                    "  if t.name == 'lamp' then return nil, 'no lamps today' end\n"
                    "  return true end}\n"
                    "out[#out + 1] = v2.name .. ' ' .. info.attempts .. ' ' .. info.errors[1]\n"
                    "return table.concat(out, '\\n')") == 0, "%s", err);
  ASSERT_HAS(out, "nil\ninvalid_json\ndesk 2 the reply is not acceptable: no lamps today");
  char *log = lc_mock_requests(&mock);
  /* Without a schema mode: JSON mode, and the schema in the instructions. */
  ASSERT_HAS(log, "\"response_format\":{\"type\":\"json_object\"}");
  ASSERT_HAS(log, "that fits this JSON schema:");
  free(log);
}
END_TEST

START_TEST(misuse_raises_failure_returns) {
  ck_assert_int_eq(lc_mock_start(&mock, "[{\"reply\":{\"status\":401,\"json\":{\"error\":{\"message\":\"bad key\"}}}}]"), 0);
  ck_assert_int_ne(run("return ask{schema = 5}"), 0);
  ASSERT_HAS(err, "luact.llm.json: 'schema' must be a table");
  ck_assert_int_ne(run("return ask{repairs = -1}"), 0);
  ASSERT_HAS(err, "'repairs' must be an integer >= 0");
  ck_assert_int_ne(run("return ask{schema = {type = 'nope'}}"), 0);
  ASSERT_HAS(err, "'schema' is not a valid JSON schema");
  ck_assert_msg(run("local v, msg, code = ask{}\nreturn tostring(v) .. ' ' .. code") == 0, "%s", err);
  ck_assert_str_eq(out, "nil auth");
}
END_TEST

START_TEST(recipes_example_offline) {
  char path[512], cmd[1024];
  snprintf(path, sizeof path, "%s/examples/recipes/mock.json", lc_test_source_dir());
  ck_assert_int_eq(lc_mock_start_file(&mock, path, NULL), 0);
  snprintf(cmd, sizeof cmd,
           "cd '%s' && OPENAI_BASE_URL='%s/v1' LUACT_MODEL=openai:mock-gpt '%s/luact' run "
           "examples/recipes/agent.lua 2>&1",
           lc_test_source_dir(), mock.base_url, LC_BINARY_DIR);
  FILE *p = popen(cmd, "r");
  ck_assert_ptr_nonnull(p);
  static char buf[8192];
  size_t n = fread(buf, 1, sizeof buf - 1, p);
  buf[n] = '\0';
  ck_assert_msg(pclose(p) == 0, "%s", buf);
  ASSERT_HAS(buf, "attempt 1 rejected: the reply does not fit the schema:\n"
                  "$: missing required property \"recipe_ingredients\"\n");
  ASSERT_HAS(buf, "attempt 2 rejected: the reply is not acceptable: 'Spanakopita' is excluded");
  ASSERT_HAS(buf, "accepted after 3 attempts:\n");
  ASSERT_HAS(buf, "\"recipe_name\":\"Spinach and feta frittata\"");
  ck_assert_ptr_null(strstr(strstr(buf, "accepted"), "Spanakopita"));
}
END_TEST

Suite *llm_json_suite(void) {
  Suite *s = suite_create("llm_json");
  TCase *tc = tcase_create("llm_json");
  tcase_set_timeout(tc, 60);
  tcase_add_checked_fixture(tc, NULL, teardown);
  tcase_add_test(tc, valid_first_time);
  tcase_add_test(tc, repair_after_schema_violation);
  tcase_add_test(tc, gives_up_after_repairs);
  tcase_add_test(tc, invalid_json_and_lua_validate);
  tcase_add_test(tc, misuse_raises_failure_returns);
  tcase_add_test(tc, recipes_example_offline);
  suite_add_tcase(s, tc);
  return s;
}
