/* check_vision.c: examples/vision offline, through every adapter that
 * takes images (openai-responses, openai, anthropic, ollama, gemini,
 * bedrock): the example's own mock script answers only when the image
 * arrived in the provider's own form (input_image, image_url, image block,
 * images, inlineData, image bytes; Gemini's key and Bedrock's signature
 * present), and
 * the journal-free run prints the answer. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util_common.h"
#include "util_mock.h"

static const char *const provs[] = {"openai-responses", "openai", "anthropic",
                                    "ollama",           "gemini", "bedrock"};

START_TEST(describes_offline) {
  struct lc_mock m;
  char script[4096];
  snprintf(script, sizeof script, "%s/examples/vision/mock.json", lc_test_source_dir());
  ck_assert_int_eq(lc_mock_start_file(&m, script, NULL), 0);
  char outp[] = "/tmp/lc_vision_XXXXXX";
  int fd = mkstemp(outp);
  ck_assert_int_ge(fd, 0);
  close(fd);
  char cmd[8192];
  snprintf(cmd, sizeof cmd,
           "cd '%s' && env -u LUACT_IMAGE -u AWS_SESSION_TOKEN -u AWS_BEARER_TOKEN_BEDROCK "
           "OPENAI_BASE_URL='%s/v1' ANTHROPIC_BASE_URL='%s' "
           "OLLAMA_HOST='%s' GOOGLE_GEMINI_BASE_URL='%s/v1beta' "
           "AWS_ENDPOINT_URL_BEDROCK_RUNTIME='%s' OPENAI_API_KEY=offline "
           "ANTHROPIC_API_KEY=offline GEMINI_API_KEY=offline AWS_ACCESS_KEY_ID=offline "
           "AWS_SECRET_ACCESS_KEY=offline AWS_REGION=us-east-1 "
           "LUACT_MODEL='%s:mock-vision' '%s/luact' run --quiet examples/vision/describe.lua > %s 2>&1",
           lc_test_source_dir(), m.base_url, m.base_url, m.base_url, m.base_url, m.base_url,
           provs[_i], LC_BINARY_DIR, outp);
  int st = system(cmd);
  char *out = lc_test_read_file(outp, NULL);
  unlink(outp);
  ck_assert_ptr_nonnull(out);
  ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s: %s", provs[_i], out);
  ck_assert_msg(strstr(out, "A red dot on a white background.") != NULL, "%s: %s", provs[_i], out);
  free(out);
  ck_assert_int_eq(lc_mock_stop(&m), 0);
}
END_TEST

Suite *vision_suite(void) {
  Suite *s = suite_create("vision");
  TCase *tc = tcase_create("offline");
  tcase_set_timeout(tc, 60);
  tcase_add_loop_test(tc, describes_offline, 0, (int)(sizeof provs / sizeof provs[0]));
  suite_add_tcase(s, tc);
  return s;
}
