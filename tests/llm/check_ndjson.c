/* check_ndjson.c: the NDJSON splitter, with every input also fed split at
 * every byte offset and one byte at a time. */
#include <check.h>
#include <stdio.h>
#include <string.h>

#include "lc.h"
#include "ndjson.h"
#include "util_common.h"

struct log {
  char s[4096];
  size_t n;
};

static int on_line(void *ud, const char *line, size_t len) {
  struct log *l = ud;
  int k = snprintf(l->s + l->n, sizeof l->s - l->n, "[%.*s]", (int)len, line);
  l->n += (size_t)k;
  return 0;
}

static void run(const char *in, size_t n, size_t cut, size_t max, char *out,
                size_t outlen) {
  struct lc_ndjson p;
  struct log l = {{0}, 0};
  lc_ndjson_init(&p, max);
  int rc = 0;
  if (cut > n) {
    for (size_t i = 0; i < n && !rc; i++)
      rc = lc_ndjson_feed(&p, in + i, 1, on_line, &l);
  } else {
    rc = lc_ndjson_feed(&p, in, cut, on_line, &l);
    if (!rc)
      rc = lc_ndjson_feed(&p, in + cut, n - cut, on_line, &l);
  }
  int erc = lc_ndjson_end(&p, on_line, &l);
  snprintf(out, outlen, "%s rc=%d end=%d", l.s, rc, erc);
  lc_ndjson_free(&p);
}

/* The whole feed's log is want; every split and the bytewise feed the
 * same (util_common.h). */
static void check_all(const char *in, size_t n, size_t max, const char *want) {
  lc_test_split_sweep(run, in, n, max, want);
}

#define CHECK(in, want) check_all(in, sizeof(in) - 1, 0, want)

START_TEST(lines) {
  CHECK("{\"a\":1}\n{\"b\":2}\n", "[{\"a\":1}][{\"b\":2}] rc=0 end=0");
  CHECK("{\"a\":1}\r\n{\"b\":2}\r\n", "[{\"a\":1}][{\"b\":2}] rc=0 end=0");
}
END_TEST

START_TEST(final_line_without_newline) {
  CHECK("{\"a\":1}\n{\"done\":true}",
        "[{\"a\":1}][{\"done\":true}] rc=0 end=0");
  CHECK("{\"done\":true}\r", "[{\"done\":true}] rc=0 end=0");
}
END_TEST

START_TEST(blank_lines) {
  CHECK("\n\n{\"a\":1}\n\n  \n\r\n{\"b\":2}\n\n",
        "[{\"a\":1}][{\"b\":2}] rc=0 end=0");
  CHECK("", " rc=0 end=0");
  CHECK("\n", " rc=0 end=0");
  CHECK(" \t", " rc=0 end=0");
}
END_TEST

START_TEST(bytes_kept) {
  /* the splitter does not judge content: that is the parser's job */
  CHECK("not json\n{\"x\":\"a\\nb\"}\n",
        "[not json][{\"x\":\"a\\nb\"}] rc=0 end=0");
}
END_TEST

START_TEST(size_limit) {
  check_all("0123456789\n", 11, 10, "[0123456789] rc=0 end=0");
  check_all("0123456789\r\n", 12, 10, "[0123456789] rc=0 end=0");
  check_all("0123456789a\n", 12, 10, " rc=-3 end=-3");
  check_all("ok\n0123456789ab", 15, 10, "[ok] rc=-3 end=-3");
  check_all("ok\n0123456789a", 14, 10, "[ok] rc=0 end=-3"); /* caught at end */
}
END_TEST

START_TEST(no_leak) {
  long live = lc_alloc_live();
  char out[5000];
  run("{\"a\":1}\n{\"b\"", 12, 4, 0, out, sizeof out);
  ck_assert_int_eq(lc_alloc_live(), live);
}
END_TEST

Suite *ndjson_suite(void) {
  Suite *s = suite_create("ndjson");
  TCase *tc = tcase_create("core");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, lines);
  tcase_add_test(tc, final_line_without_newline);
  tcase_add_test(tc, blank_lines);
  tcase_add_test(tc, bytes_kept);
  tcase_add_test(tc, size_limit);
  tcase_add_test(tc, no_leak);
  suite_add_tcase(s, tc);
  return s;
}
