/* util_common.c: paths and file reading for the Check suites. */
#include "util_common.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <string.h>
#include <sys/wait.h>

const char *lc_test_source_dir(void) { return LC_SOURCE_DIR; }

const char *lc_test_fixtures_dir(void) {
  static char buf[4096];
  const char *env = getenv("LUACT_FIXTURES");
  if (env && *env) return env;
  snprintf(buf, sizeof buf, "%s/../shared/fixtures/llm", LC_SOURCE_DIR);
  return buf;
}

char *lc_test_read_file(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  if (fseek(f, 0, SEEK_END) != 0) { fclose(f); return NULL; }
  long n = ftell(f);
  if (n < 0) { fclose(f); return NULL; }
  rewind(f);
  char *p = malloc((size_t)n + 1);
  if (p && fread(p, 1, (size_t)n, f) != (size_t)n) { free(p); p = NULL; }
  fclose(f);
  if (p) { p[n] = '\0'; if (len) *len = (size_t)n; }
  return p;
}

double lc_test_json_num(const char *json, const char *key, int nth) {
  char pat[64];
  snprintf(pat, sizeof pat, "\"%s\":", key);
  const char *p = json;
  for (int i = 0; i <= nth; i++) {
    if (!p || !(p = strstr(p, pat))) return -1;
    p += strlen(pat);
  }
  return strtod(p, NULL);
}

double lc_test_mono_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

void lc_test_nap_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

int lc_test_exit_code(int wait_status) {
  if (WIFEXITED(wait_status)) return WEXITSTATUS(wait_status);
  if (WIFSIGNALED(wait_status)) return 128 + WTERMSIG(wait_status);
  return -1;
}

void lc_test_split_sweep(lc_test_feed_fn run, const char *in, size_t n, size_t max,
                         const char *want) {
  static char whole[9000], other[9000];
  run(in, n, n, max, whole, sizeof whole);
  ck_assert_str_eq(whole, want);
  for (size_t cut = 0; cut <= n; cut++) {
    run(in, n, cut, max, other, sizeof other);
    ck_assert_msg(strcmp(whole, other) == 0, "split at %zu: %s", cut, other);
  }
  run(in, n, n + 1, max, other, sizeof other);
  ck_assert_msg(strcmp(whole, other) == 0, "bytewise: %s", other);
}
