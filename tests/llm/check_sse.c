/* check_sse.c: the SSE parser against the WHATWG rules, with every input
 * also fed split at every byte offset and one byte at a time. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lc.h"
#include "sse.h"
#include "util_common.h"

struct log {
  char s[8192];
  size_t n;
};

static int on_ev(void *ud, const struct lc_sse_event *ev) {
  struct log *l = ud;
  int k = snprintf(l->s + l->n, sizeof l->s - l->n, "[%.*s|",
                   (int)ev->event_len, ev->event);
  l->n += (size_t)k;
  /* data may hold NULs: escape them so the log stays a string */
  for (size_t i = 0; i < ev->data_len && l->n + 4 < sizeof l->s; i++) {
    if (ev->data[i] == '\0')
      l->n += (size_t)snprintf(l->s + l->n, 4, "\\0");
    else
      l->s[l->n++] = ev->data[i];
  }
  k = snprintf(l->s + l->n, sizeof l->s - l->n, "|%.*s|%ld]", (int)ev->id_len,
               ev->id, ev->retry);
  l->n += (size_t)k;
  l->s[l->n] = '\0';
  return 0;
}

/* Runs the parser over pieces [0,cut) and [cut,n) (cut > n: one byte at a
 * time). Returns the log with the feed result and end flag appended. */
static void run(const char *in, size_t n, size_t cut, size_t max, char *out,
                size_t outlen) {
  struct lc_sse p;
  struct log l = {{0}, 0};
  lc_sse_init(&p, max);
  int rc = 0;
  if (cut > n) {
    for (size_t i = 0; i < n && !rc; i++)
      rc = lc_sse_feed(&p, in + i, 1, on_ev, &l);
  } else {
    rc = lc_sse_feed(&p, in, cut, on_ev, &l);
    if (!rc)
      rc = lc_sse_feed(&p, in + cut, n - cut, on_ev, &l);
  }
  int partial = lc_sse_end(&p);
  snprintf(out, outlen, "%s rc=%d end=%d", l.s, rc, partial);
  lc_sse_free(&p);
}

/* The whole feed's log is want; every split and the bytewise feed the
 * same (util_common.h). */
static void check_all(const char *in, size_t n, size_t max, const char *want) {
  lc_test_split_sweep(run, in, n, max, want);
}

#define CHECK(in, want) check_all(in, sizeof(in) - 1, 0, want)

START_TEST(basic) {
  CHECK("data: hello\n\n", "[message|hello||-1] rc=0 end=0");
  CHECK("data: a\n\ndata: b\n\n", "[message|a||-1][message|b||-1] rc=0 end=0");
}
END_TEST

START_TEST(multiline_data) {
  CHECK("data: a\ndata: b\ndata:\n\n", "[message|a\nb\n||-1] rc=0 end=0");
  CHECK("data:\n\n", "[message|||-1] rc=0 end=0");
  CHECK("data\n\n", "[message|||-1] rc=0 end=0"); /* no colon: empty value */
}
END_TEST

START_TEST(event_field_and_reset) {
  CHECK("event: foo\ndata: 1\n\ndata: 2\n\n",
        "[foo|1||-1][message|2||-1] rc=0 end=0");
  /* no data field: nothing dispatched, and the type does not leak */
  CHECK("event: foo\n\ndata: x\n\n", "[message|x||-1] rc=0 end=0");
}
END_TEST

START_TEST(comments_and_unknown_fields) {
  CHECK(": keep-alive\ndata: x\n: another\n\n", "[message|x||-1] rc=0 end=0");
  CHECK(":\n\n", " rc=0 end=0");
  CHECK("foo: bar\ndata: x\nDATA: y\n\n", "[message|x||-1] rc=0 end=0");
}
END_TEST

START_TEST(line_endings) {
  CHECK("data: x\r\n\r\n", "[message|x||-1] rc=0 end=0");
  CHECK("data: x\r\rdata: y\r\r", "[message|x||-1][message|y||-1] rc=0 end=0");
  CHECK("data: a\r\ndata: b\rdata: c\n\n", "[message|a\nb\nc||-1] rc=0 end=0");
  /* CR LF CR LF is two line ends, CR CR LF is two as well */
  CHECK("data: a\r\r\ndata: b\n\n",
        "[message|a||-1][message|b||-1] rc=0 end=0");
}
END_TEST

START_TEST(space_after_colon) {
  CHECK("data:  two\n\n", "[message| two||-1] rc=0 end=0");
  CHECK("data:none\n\n", "[message|none||-1] rc=0 end=0");
  CHECK("data: a:b: c\n\n", "[message|a:b: c||-1] rc=0 end=0");
  CHECK("event:x\ndata:\t1\n\n", "[x|\t1||-1] rc=0 end=0");
}
END_TEST

START_TEST(bom) {
  CHECK("\xEF\xBB\xBF"
        "data: x\n\n",
        "[message|x||-1] rc=0 end=0");
  /* only one BOM is dropped: a second makes the field name unknown */
  CHECK("\xEF\xBB\xBF\xEF\xBB\xBF"
        "data: x\n\n",
        " rc=0 end=0");
  /* a partial BOM is ordinary bytes (an unknown field here) */
  CHECK("\xEF\xBB"
        "data: x\n\ndata: y\n\n",
        "[message|y||-1] rc=0 end=0");
  CHECK("\xEF"
        "\n"
        "data: y\n\n",
        "[message|y||-1] rc=0 end=0");
}
END_TEST

START_TEST(id_and_retry) {
  CHECK("id: 42\nretry: 1500\ndata: x\n\ndata: y\n\n",
        "[message|x|42|1500][message|y|42|1500] rc=0 end=0");
  CHECK("retry: 15x\ndata: x\n\n", "[message|x||-1] rc=0 end=0");
  CHECK("retry:\ndata: x\n\n", "[message|x||-1] rc=0 end=0");
  CHECK("id: a\0b\ndata: x\n\n", "[message|x||-1] rc=0 end=0");
  CHECK("id: 1\nid\ndata: x\n\n", "[message|x||-1] rc=0 end=0");
}
END_TEST

START_TEST(nul_in_data) {
  CHECK("data: a\0b\n\n", "[message|a\\0b||-1] rc=0 end=0");
}
END_TEST

START_TEST(end_of_input) {
  CHECK("data: x\n", " rc=0 end=1"); /* no blank line: discarded */
  CHECK("data: x", " rc=0 end=1");   /* not even a line end */
  CHECK("data: x\n\n: c", "[message|x||-1] rc=0 end=1");
  CHECK("data: x\n\n", "[message|x||-1] rc=0 end=0");
  CHECK("", " rc=0 end=0");
  CHECK("\xEF\xBB", " rc=0 end=1");
}
END_TEST

START_TEST(size_limit) {
  /* exactly at the limit is fine; one byte over is an error, not a cut */
  check_all("data: 0123456789abcdef\n\n", 24, 16,
            "[message|0123456789abcdef||-1] rc=0 end=0");
  check_all("data: 0123456789abcdefg\n\n", 25, 16, " rc=-3 end=1");
  check_all("data: 01234567\ndata: 89abcdef\n\n", 32, 16, " rc=-3 end=1");
  /* a huge comment line is over the limit too */
  char big[200];
  memset(big, 'x', sizeof big);
  big[0] = ':';
  struct lc_sse p;
  lc_sse_init(&p, 16);
  ck_assert_int_eq(lc_sse_feed(&p, big, sizeof big, NULL, NULL), LC_ETOOBIG);
  ck_assert(strstr(p.err, "size limit") != NULL);
  /* it stays failed */
  ck_assert_int_eq(lc_sse_feed(&p, "data: x\n\n", 9, NULL, NULL), LC_ETOOBIG);
  lc_sse_free(&p);
}
END_TEST

static int stop_cb(void *ud, const struct lc_sse_event *ev) {
  (*(int *)ud)++;
  return 7;
}

START_TEST(callback_stops) {
  struct lc_sse p;
  int calls = 0;
  lc_sse_init(&p, 0);
  ck_assert_int_eq(
      lc_sse_feed(&p, "data: a\n\ndata: b\n\n", 18, stop_cb, &calls), 7);
  ck_assert_int_eq(calls, 1);
  lc_sse_free(&p);
}
END_TEST

START_TEST(no_leak) {
  long live = lc_alloc_live();
  char out[9000];
  run("event: e\nid: 1\ndata: x\n\ndata: partial", 38, 5, 0, out, sizeof out);
  ck_assert_int_eq(lc_alloc_live(), live);
}
END_TEST

Suite *sse_suite(void) {
  Suite *s = suite_create("sse");
  TCase *tc = tcase_create("core");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, basic);
  tcase_add_test(tc, multiline_data);
  tcase_add_test(tc, event_field_and_reset);
  tcase_add_test(tc, comments_and_unknown_fields);
  tcase_add_test(tc, line_endings);
  tcase_add_test(tc, space_after_colon);
  tcase_add_test(tc, bom);
  tcase_add_test(tc, id_and_retry);
  tcase_add_test(tc, nul_in_data);
  tcase_add_test(tc, end_of_input);
  tcase_add_test(tc, size_limit);
  tcase_add_test(tc, callback_stops);
  tcase_add_test(tc, no_leak);
  suite_add_tcase(s, tc);
  return s;
}
