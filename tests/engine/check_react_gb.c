/* check_react_gb.c: luact.react in native mode through the gemini: and
 * bedrock: adapters against lc-mockllm, streamed and not: the model's
 * calls run, their results go back in each provider's own form
 * (functionResponse by name with the call's thoughtSignature echoed;
 * toolResult by toolUseId), and a text answer ends the run. */
#include <check.h>
#include <cjson/cJSON.h>
#include <stdio.h>
#include <string.h>

#include <stdlib.h>
#include <unistd.h>

#include "effect.h"
#include "l_effect.h"
#include "util_common.h"
#include "util_lua.h"
#include "util_mock.h"

static struct lc_mock mock;
static char out[16384], err[8192];

static const char prelude[] =
    "search = luact.tool{name='search', description='Search an entity.',\n"
    "  params={type='object', properties={q={type='string'}}, required={'q'}},\n"
    "  fn=function(a) return 'result for ' .. a.q end}\n";

static int run(const char *base, const char *code) {
  return lc_test_lua_run_once(base, prelude, code, out, sizeof out, err, sizeof err);
}

/* One run per stream setting; the second request must carry the result. */
static void gemini_run(int stream) {
  ck_assert_int_eq(
      lc_mock_start(&mock,
                    "[{\"match\":{\"body_contains\":\"functionResponse\"},"
                    "\"reply\":{\"gemini\":{\"text\":\"It is Oslo.\"}}},"
                    "{\"reply\":{\"gemini\":{\"text\":\"Looking.\",\"tool_calls\":[{\"name\":\"search\","
                    "\"arguments\":{\"q\":\"capital\"},\"signature\":\"U0lHLTEvKw==\"},"
                    "{\"name\":\"search\",\"arguments\":{\"q\":\"norway\"}}]}}}]"),
      0);
  char base[160], code[1024];
  snprintf(base, sizeof base, "%s/v1beta", mock.base_url);
  snprintf(code, sizeof code,
           "local r = luact.react{model='gemini:gemini-2.5-flash', base_url=BASE, api_key='gm-key-0123456789',\n"
           "  retries=0, question='Capital of Norway?', tools={search}, stream=%s}\n"
           "return table.concat({r.status, r.answer, #r.steps, r.steps[1].observation,\n"
           "  r.steps[2].observation}, '|')",
           stream ? "true" : "false");
  ck_assert_msg(run(base, code) == 0, "%s", err);
  ck_assert_str_eq(out, "finished|It is Oslo.|3|result for capital|result for norway");
  const char *path = stream ? "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
                            : "/v1beta/models/gemini-2.5-flash:generateContent";
  ck_assert_int_eq(lc_mock_count_requests(&mock, path), 2);
  /* The tools (and finish) as declarations; the key never in the body. */
  lc_mock_assert_request_has(&mock, 0, "\"functionDeclarations\"");
  lc_mock_assert_request_has(&mock, 0, "\"name\":\"finish\"");
  /* The calls replayed with the signature on the first, verbatim, and
   * both results by name in one user turn, in the asked order. */
  char *b = lc_mock_request_body(&mock, 1);
  ck_assert_ptr_nonnull(b);
  const char *sig = strstr(b, "\"thoughtSignature\":\"U0lHLTEvKw==\"");
  const char *r1 = strstr(b, "\"output\":\"result for capital\"");
  const char *r2 = strstr(b, "\"output\":\"result for norway\"");
  ck_assert_msg(sig && r1 && r2 && sig < r1 && r1 < r2, "%s", b);
  ck_assert_msg(strstr(b, "{\"role\":\"user\",\"parts\":[{\"functionResponse\":{\"name\":\"search\""),
                "%s", b);
  ck_assert_ptr_null(strstr(b, "gm-key-0123456789"));
  cJSON_free(b);
  ck_assert_int_eq(lc_mock_stop(&mock), 0);
}

START_TEST(gemini_native_run) { gemini_run(0); }
END_TEST

START_TEST(gemini_native_run_streamed) { gemini_run(1); }
END_TEST

static void bedrock_run(int stream) {
  ck_assert_int_eq(
      lc_mock_start(&mock,
                    "[{\"match\":{\"body_contains\":\"toolResult\"},"
                    "\"reply\":{\"bedrock\":{\"text\":\"It is Oslo.\"}}},"
                    "{\"reply\":{\"bedrock\":{\"text\":\"Looking.\",\"fragment_bytes\":3,\"tool_calls\":["
                    "{\"id\":\"tooluse_A\",\"name\":\"search\",\"arguments\":{\"q\":\"capital\"}},"
                    "{\"id\":\"tooluse_B\",\"name\":\"search\",\"arguments\":{\"q\":\"norway\"}}]}}}]"),
      0);
  char code[1024];
  snprintf(code, sizeof code,
           "local r = luact.react{model='bedrock:us.anthropic.claude-sonnet-4-6', base_url=BASE,\n"
           "  api_key='br-key-0123456789', retries=0, question='Capital of Norway?', tools={search},\n"
           "  stream=%s}\n"
           "return table.concat({r.status, r.answer, #r.steps, r.steps[1].observation,\n"
           "  r.steps[2].observation}, '|')",
           stream ? "true" : "false");
  ck_assert_msg(run(mock.base_url, code) == 0, "%s", err);
  ck_assert_str_eq(out, "finished|It is Oslo.|3|result for capital|result for norway");
  const char *path = stream ? "/model/us.anthropic.claude-sonnet-4-6/converse-stream"
                            : "/model/us.anthropic.claude-sonnet-4-6/converse";
  ck_assert_int_eq(lc_mock_count_requests(&mock, path), 2);
  lc_mock_assert_request_has(&mock, 0, "\"toolSpec\"");
  char *b = lc_mock_request_body(&mock, 1);
  ck_assert_ptr_nonnull(b);
  const char *u1 = strstr(b, "\"toolUseId\":\"tooluse_A\",\"name\":\"search\"");
  const char *r1 = strstr(b, "{\"toolResult\":{\"toolUseId\":\"tooluse_A\",\"content\":[{\"text\":\"result for capital\"}]}}");
  const char *r2 = strstr(b, "{\"toolResult\":{\"toolUseId\":\"tooluse_B\",\"content\":[{\"text\":\"result for norway\"}]}}");
  ck_assert_msg(u1 && r1 && r2 && u1 < r1 && r1 < r2, "%s", b);
  cJSON_free(b);
  ck_assert_int_eq(lc_mock_stop(&mock), 0);
}

START_TEST(bedrock_native_run) { bedrock_run(0); }
END_TEST

START_TEST(bedrock_native_run_streamed) { bedrock_run(1); }
END_TEST

/* Text mode: the prompt as system instruction / system blocks, the
 * "\nObservation:" stop as stopSequences, the reply parsed as text. */
START_TEST(text_mode_through_both) {
  for (int k = 0; k < 2; k++) {
    const char *gen = k ? "bedrock" : "gemini";
    char script[1024];
    snprintf(script, sizeof script,
             "[{\"match\":{\"body_contains\":\"Observation: result for x\"},"
             "\"reply\":{\"%s\":{\"text\":\"Thought: done\\nAction: finish[42]\"}}},"
             "{\"reply\":{\"%s\":{\"text\":\"Thought: look\\nAction: search[x]\"}}}]",
             gen, gen);
    ck_assert_int_eq(lc_mock_start(&mock, script), 0);
    char base[160], code[1024];
    snprintf(base, sizeof base, "%s%s", mock.base_url, k ? "" : "/v1beta");
    snprintf(code, sizeof code,
             "local r = luact.react{model='%s:m', base_url=BASE, api_key='key-0123456789ab',\n"
             "  retries=0, mode='text', question='Q?', tools={search}}\n"
             "return r.status .. '|' .. r.answer .. '|' .. #r.steps",
             gen);
    ck_assert_msg(run(base, code) == 0, "%s: %s", gen, err);
    ck_assert_str_eq(out, "finished|42|2");
    lc_mock_assert_request_has(&mock, 0, "\"stopSequences\":[\"\\nObservation:\"");
    lc_mock_assert_request_has(&mock, 0, k ? "\"system\":[{\"text\":" : "\"systemInstruction\":");
    ck_assert_int_eq(lc_mock_stop(&mock), 0);
  }
}
END_TEST

/* A journaled Gemini run cut after the second model call's intent: on
 * replay the first answer comes from the journal and the second call is
 * sent again for real, so the calls it replays must still carry the
 * thoughtSignature the first answer had (Gemini 3 refuses them without). */
static int journal_run(enum lc_journal_mode mode, const char *path) {
  struct lc_journal *j;
  char jerr[512];
  ck_assert_msg(lc_journal_open(mode, path, NULL, &j, jerr, sizeof jerr) == 0, "%s", jerr);
  struct lc_test_lua t;
  lc_test_lua_open(&t);
  lc_l_journal_attach(t.L, j);
  char base[160];
  snprintf(base, sizeof base, "%s/v1beta", mock.base_url);
  lua_pushstring(t.L, base);
  lua_setglobal(t.L, "BASE");
  char code[2048];
  snprintf(code, sizeof code,
           "%slocal r = luact.react{model='gemini:gemini-3-flash', base_url=BASE,\n"
           "  api_key='gm-key-0123456789', retries=0, question='Capital?', tools={search}}\n"
           "return r.status .. '|' .. tostring(r.answer)", prelude);
  int rc = lc_test_lua_run(&t, code, out, sizeof out, err, sizeof err);
  lc_test_lua_close(&t);
  lc_journal_free(j);
  return rc;
}

START_TEST(journal_keeps_thought_signatures) {
  ck_assert_int_eq(
      lc_mock_start(&mock,
                    "[{\"match\":{\"body_contains\":\"functionResponse\"},"
                    "\"reply\":{\"gemini\":{\"text\":\"Oslo.\"}}},"
                    "{\"reply\":{\"gemini\":{\"tool_calls\":[{\"name\":\"search\","
                    "\"arguments\":{\"q\":\"capital\"},\"signature\":\"U0lHLTIK\"}]}}}]"),
      0);
  char path[256], cut[256];
  snprintf(path, sizeof path, "/tmp/lc_react_gb_%ld.jsonl", (long)getpid());
  snprintf(cut, sizeof cut, "/tmp/lc_react_gb_%ld_cut.jsonl", (long)getpid());
  ck_assert_msg(journal_run(LC_JOURNAL_RECORD, path) == 0, "%s", err);
  ck_assert_str_eq(out, "finished|Oslo.");
  /* Cut the journal after the second "llm" intent. */
  size_t n;
  char *text = lc_test_read_file(path, &n);
  ck_assert_ptr_nonnull(text);
  char *at = text;
  for (int k = 0; k < 2; k++) {
    at = strstr(at, "\"type\":\"intent\"");
    while (at && !strstr(at, "\"kind\":\"llm\"")) at = NULL;
    ck_assert_ptr_nonnull(at);
    char *eol = strchr(at, '\n');
    while (eol && (!memmem(at, (size_t)(eol - at), "\"kind\":\"llm\"", 12))) {
      at = strstr(eol, "\"type\":\"intent\"");
      ck_assert_ptr_nonnull(at);
      eol = strchr(at, '\n');
    }
    ck_assert_ptr_nonnull(eol);
    at = eol + 1;
  }
  FILE *f = fopen(cut, "w");
  fwrite(text, 1, (size_t)(at - text), f);
  fclose(f);
  free(text);
  ck_assert_int_eq(lc_mock_reset(&mock), 0);
  ck_assert_msg(journal_run(LC_JOURNAL_REPLAY, cut) == 0, "%s", err);
  ck_assert_str_eq(out, "finished|Oslo.");
  /* Only the second call went out, with the signature replayed. */
  ck_assert_int_eq(lc_mock_count_requests(&mock, "/v1beta/models/gemini-3-flash:generateContent"), 1);
  lc_mock_assert_request_has(&mock, 0, "\"thoughtSignature\":\"U0lHLTIK\"");
  ck_assert_int_eq(lc_mock_stop(&mock), 0);
  unlink(path);
  unlink(cut);
}
END_TEST

Suite *react_gb_suite(void) {
  Suite *s = suite_create("react_gb");
  TCase *tc = tcase_create("native");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, gemini_native_run);
  tcase_add_test(tc, gemini_native_run_streamed);
  tcase_add_test(tc, bedrock_native_run);
  tcase_add_test(tc, bedrock_native_run_streamed);
  tcase_add_test(tc, journal_keeps_thought_signatures);
  tcase_add_test(tc, text_mode_through_both);
  suite_add_tcase(s, tc);
  return s;
}
