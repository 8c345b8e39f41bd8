/* check_rag_docs.c: examples/rag_docs end to end: the agent builds a
 * collection of docs/ (every .md) against the mock's embeddings, retrieves, and
 * answers with a citation of a passage it retrieved; the recorded journal
 * then answers the same run with no server at all. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util_common.h"
#include "util_mock.h"

static char jpath[128], opath[128];

static int luact(const char *env, const char *args, char **out) {
  char cmd[4096];
  snprintf(cmd, sizeof cmd,
           "cd '%s' && env -u OPENAI_API_KEY -u OPENAI_BASE_URL -u LUACT_RAG_DB "
           "LUACT_MODEL=openai:mock-gpt LUACT_EMBED_MODEL=openai:mock-embed %s '%s/luact' %s "
           "examples/rag_docs/agent.lua > %s 2>&1",
           lc_test_source_dir(), env, LC_BINARY_DIR, args, opath);
  int st = system(cmd);
  *out = lc_test_read_file(opath, NULL);
  ck_assert_ptr_nonnull(*out);
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

START_TEST(answers_with_citations_then_replays_offline) {
  snprintf(jpath, sizeof jpath, "/tmp/lc_rag_%ld.jsonl", (long)getpid());
  snprintf(opath, sizeof opath, "/tmp/lc_rag_%ld.out", (long)getpid());
  char mock_path[600];
  snprintf(mock_path, sizeof mock_path, "%s/examples/rag_docs/mock.json", lc_test_source_dir());
  struct lc_mock m;
  ck_assert_int_eq(lc_mock_start_file(&m, mock_path, NULL), 0);
  char env[256], args[256];
  snprintf(env, sizeof env, "OPENAI_BASE_URL=%s/v1 OPENAI_API_KEY=offline", m.base_url);
  snprintf(args, sizeof args, "run --record %s", jpath);
  char *out;
  int rc = luact(env, args, &out);
  ck_assert_msg(rc == 0, "exit %d: %s", rc, out);
  ck_assert_msg(strstr(out, "Sources: retrieval.md (chunks ") != NULL, "%s", out);
  ck_assert_ptr_null(strstr(out, "never retrieved"));
  /* Embeddings went out in batches, not one request per chunk. */
  int embeds = lc_mock_count_requests(&m, "/v1/embeddings");
  ck_assert_int_ge(embeds, 2);
  ck_assert_int_le(embeds, 40);
  ck_assert_int_eq(lc_mock_count_requests(&m, "/v1/chat/completions"), 2);
  ck_assert_int_eq(lc_mock_stop(&m), 0);
  char *first = out;

  /* No server, no key: the journal answers everything. */
  snprintf(args, sizeof args, "run --replay %s", jpath);
  rc = luact("", args, &out);
  ck_assert_msg(rc == 0, "exit %d: %s", rc, out);
  /* The same answer and sources (the temporary collection's name aside). */
  const char *a = strstr(first, "Start from"), *b = strstr(out, "Start from");
  ck_assert_ptr_nonnull(a);
  ck_assert_ptr_nonnull(b);
  ck_assert_str_eq(a, b);
  free(first);
  free(out);
  unlink(jpath);
  unlink(opath);
}
END_TEST

Suite *rag_docs_suite(void) {
  Suite *s = suite_create("rag_docs");
  TCase *tc = tcase_create("rag_docs");
  tcase_set_timeout(tc, 300);
  tcase_add_test(tc, answers_with_citations_then_replays_offline);
  suite_add_tcase(s, tc);
  return s;
}
