/* check_chunk.c: the recursive character splitter and Markdown sections.
 * Held on every real document in docs/ (exact spans, sizes and overlaps
 * in code points, every word covered, heading paths as an independent
 * scan finds them), a golden split of a frozen document, small exact
 * cases, and bad input. */
#include <check.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chunk.h"
#include "lc.h"
#include "util_common.h"

static size_t cps(const char *d, size_t a, size_t b) {
  size_t n = 0;
  for (size_t i = a; i < b; i++) n += ((unsigned char)d[i] & 0xC0) != 0x80;
  return n;
}

static int ws(char c) { return c == ' ' || c == '\n' || c == '\t' || c == '\r'; }

/* The heading path above byte at, found by a plain line scan. */
static void heading_at(const char *d, size_t at, char *out, size_t cap) {
  char t[7][256];
  int have[7] = {0}, fence = 0;
  out[0] = 0;
  for (size_t ln = 0; ln <= at;) {
    size_t e = ln;
    while (d[e] && d[e] != '\n') e++;
    const char *p = d + ln;
    size_t n = e - ln, i = 0;
    while (i < n && i < 3 && p[i] == ' ') i++;
    if (n - i >= 3 && (!strncmp(p + i, "```", 3) || !strncmp(p + i, "~~~", 3))) fence = !fence;
    else if (!fence) {
      int l = 0;
      while ((size_t)l < n && p[l] == '#') l++;
      if (l >= 1 && l <= 6 && ((size_t)l == n || p[l] == ' ')) {
        size_t a = (size_t)l, b = n;
        while (a < b && p[a] == ' ') a++;
        while (b > a && (p[b - 1] == ' ' || p[b - 1] == '#')) b--;
        snprintf(t[l], sizeof t[l], "%.*s", (int)(b - a), p + a);
        have[l] = 1;
        for (int k = l + 1; k <= 6; k++) have[k] = 0;
      }
    }
    if (!d[e]) break;
    ln = e + 1;
  }
  for (int k = 1; k <= 6; k++)
    if (have[k]) {
      if (out[0]) strncat(out, " > ", cap - strlen(out) - 1);
      strncat(out, t[k], cap - strlen(out) - 1);
    }
}

static void check_invariants(const char *name, const char *d, size_t len,
                             const struct lc_chunk_opts *o) {
  struct lc_chunks c;
  char err[256];
  ck_assert_msg(lc_chunk_split(d, len, o, &c, err, sizeof err) == 0, "%s: %s", name, err);
  ck_assert_msg(c.n > 0, "%s: no chunks", name);
  char *covered = calloc(len + 1, 1);
  for (size_t i = 0; i < c.n; i++) {
    const struct lc_chunk *k = &c.v[i];
    ck_assert(k->start + k->len <= len);
    ck_assert_msg(k->len_cp <= o->size, "%s chunk %zu: %zu code points > %zu", name, i, k->len_cp,
                  o->size);
    ck_assert_uint_eq(k->len_cp, cps(d, k->start, k->start + k->len));
    ck_assert_uint_eq(k->start_cp, cps(d, 0, k->start));
    ck_assert(!ws(d[k->start]) && !ws(d[k->start + k->len - 1])); /* trimmed */
    ck_assert(((unsigned char)d[k->start] & 0xC0) != 0x80); /* whole code points */
    if (i) {
      const struct lc_chunk *p = &c.v[i - 1];
      ck_assert_msg(k->start > p->start, "%s: starts must grow", name);
      if (p->start + p->len > k->start)
        ck_assert_msg(cps(d, k->start, p->start + p->len) <= o->overlap,
                      "%s chunk %zu overlaps its neighbour by more than %zu", name, i, o->overlap);
    }
    memset(covered + k->start, 1, k->len);
    if (o->markdown) {
      char want[2048];
      heading_at(d, k->start, want, sizeof want);
      ck_assert_msg(!strcmp(want, k->heading ? k->heading : ""), "%s chunk %zu: heading '%s', want '%s'",
                    name, i, k->heading ? k->heading : "", want);
    }
  }
  for (size_t i = 0; i < len; i++)
    ck_assert_msg(covered[i] || ws(d[i]), "%s: byte %zu ('%c') is in no chunk", name, i, d[i]);
  free(covered);
  lc_chunks_free(&c);
}

START_TEST(every_doc_in_docs) {
  char dir[512];
  snprintf(dir, sizeof dir, "%s/docs", lc_test_source_dir());
  DIR *dp = opendir(dir);
  ck_assert_ptr_nonnull(dp);
  int docs = 0;
  static const struct lc_chunk_opts opts[] = {
      {200, 40, 0}, {500, 0, 0}, {1000, 200, 0}, {300, 50, 1}, {1500, 300, 1}, {40, 39, 1}};
  struct dirent *e;
  while ((e = readdir(dp))) {
    size_t nl = strlen(e->d_name);
    if (nl < 4 || strcmp(e->d_name + nl - 3, ".md")) continue;
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
    size_t len;
    char *d = lc_test_read_file(path, &len);
    ck_assert_ptr_nonnull(d);
    for (size_t i = 0; i < sizeof opts / sizeof opts[0]; i++) check_invariants(e->d_name, d, len, &opts[i]);
    free(d);
    docs++;
  }
  closedir(dp);
  ck_assert_int_ge(docs, 5);
}
END_TEST

/* A frozen copy of docs/architecture.md and its split, line by line
 * "start len_cp heading | first 40 bytes"; regenerate only on purpose. */
START_TEST(golden_architecture) {
  char path[1024];
  snprintf(path, sizeof path, "%s/tests/retrieval/golden/architecture.md", lc_test_source_dir());
  size_t len;
  char *d = lc_test_read_file(path, &len);
  ck_assert_ptr_nonnull(d);
  snprintf(path, sizeof path, "%s/tests/retrieval/golden/architecture.chunks", lc_test_source_dir());
  char *want = lc_test_read_file(path, NULL);
  ck_assert_ptr_nonnull(want);
  struct lc_chunk_opts o = {400, 80, 1};
  struct lc_chunks c;
  char err[256];
  ck_assert_int_eq(lc_chunk_split(d, len, &o, &c, err, sizeof err), 0);
  size_t cap = c.n * 400 + 1, at = 0;
  char *got = malloc(cap);
  for (size_t i = 0; i < c.n; i++) {
    int n = snprintf(got + at, cap - at, "%zu %zu %s | %.*s\n", c.v[i].start, c.v[i].len_cp,
                     c.v[i].heading ? c.v[i].heading : "-",
                     (int)(c.v[i].len < 40 ? c.v[i].len : 40), d + c.v[i].start);
    for (int j = 0; j < n; j++)
      if (got[at + j] == '\n' && j != n - 1) got[at + j] = ' ';
    at += (size_t)n;
  }
  if (getenv("LC_GOLDEN_WRITE")) {
    FILE *f = fopen(path, "w");
    fputs(got, f);
    fclose(f);
  }
  ck_assert_str_eq(got, want);
  free(got);
  free(want);
  free(d);
  lc_chunks_free(&c);
}
END_TEST

static char *split_str(const char *d, size_t size, size_t overlap, int md) {
  struct lc_chunk_opts o = {size, overlap, md};
  struct lc_chunks c;
  char err[256];
  static char out[4096];
  out[0] = 0;
  ck_assert_msg(lc_chunk_split(d, strlen(d), &o, &c, err, sizeof err) == 0, "%s", err);
  for (size_t i = 0; i < c.n; i++) {
    size_t l = strlen(out);
    snprintf(out + l, sizeof out - l, "[%zu:%.*s]", c.v[i].start_cp, (int)c.v[i].len,
             d + c.v[i].start);
  }
  lc_chunks_free(&c);
  return out;
}

START_TEST(small_exact_cases) {
  /* Paragraphs first, then words; overlap carries whole words back. */
  ck_assert_str_eq(split_str("aaa bbb ccc ddd", 7, 3, 0), "[0:aaa bbb][4:bbb ccc][8:ccc ddd]");
  ck_assert_str_eq(split_str("aaa bbb ccc ddd", 8, 4, 0), "[0:aaa bbb][4:bbb ccc][8:ccc ddd]");
  ck_assert_str_eq(split_str("aaa bbb ccc ddd", 7, 2, 0), "[0:aaa bbb][8:ccc ddd]");
  ck_assert_str_eq(split_str("aaa bbb ccc ddd", 7, 0, 0), "[0:aaa bbb][8:ccc ddd]");
  ck_assert_str_eq(split_str("one two\n\nthree four", 9, 0, 0), "[0:one two][9:three][15:four]");
  ck_assert_str_eq(split_str("one two\n\nthree", 100, 0, 0), "[0:one two\n\nthree]");
  /* A word longer than size falls to code points. */
  ck_assert_str_eq(split_str("abcdefgh", 3, 1, 0), "[0:abc][2:cde][4:efg][6:gh]");
  /* Code points, not bytes: 6 CJK characters are 18 bytes. */
  ck_assert_str_eq(split_str("日本語の文章", 4, 0, 0), "[0:日本語の][4:文章]");
  ck_assert_str_eq(split_str("héllo wörld", 5, 0, 0), "[0:héllo][6:wörld]");
  /* Markdown: never across a heading, even when both would fit. */
  ck_assert_str_eq(split_str("# A\nx\n## B\ny\n", 100, 0, 1), "[0:# A\nx][6:## B\ny]");
  /* No newline at the end: the last section is still there. */
  ck_assert_str_eq(split_str("# A\n\nx y", 100, 0, 1), "[0:# A\n\nx y]");
  ck_assert_str_eq(split_str("# A\nx\n# B\ny", 100, 0, 1), "[0:# A\nx][6:# B\ny]");
  /* A heading inside a fence is code, not a heading. */
  ck_assert_str_eq(split_str("# A\n```\n# not\n```\n", 100, 0, 1), "[0:# A\n```\n# not\n```]");
}
END_TEST

/* A heading that ends the document: its title is read up to the last
 * byte, never past it (found by fuzz_chunk; ASan sees the read in a
 * buffer of exactly the document's size). */
START_TEST(heading_at_the_very_end) {
  static const char *const docs[] = {"# A\n# B", "x\n## t\xc3\xa9", "#"};
  for (size_t i = 0; i < 3; i++) {
    size_t len = strlen(docs[i]);
    char *d = malloc(len);
    memcpy(d, docs[i], len);
    struct lc_chunk_opts o = {50, 0, 1};
    struct lc_chunks c;
    char err[256];
    ck_assert_int_eq(lc_chunk_split(d, len, &o, &c, err, sizeof err), 0);
    ck_assert_uint_ge(c.n, 1);
    lc_chunks_free(&c);
    free(d);
  }
}
END_TEST

START_TEST(bad_input) {
  struct lc_chunk_opts o = {100, 10, 0};
  struct lc_chunks c;
  char err[256];
  ck_assert_int_eq(lc_chunk_split("", 0, &o, &c, err, sizeof err), LC_EINVAL);
  ck_assert_str_eq(err, "document is empty");
  ck_assert_int_eq(lc_chunk_split(" \n\t ", 4, &o, &c, err, sizeof err), LC_EINVAL);
  ck_assert_int_eq(lc_chunk_split("ab\0cd", 5, &o, &c, err, sizeof err), LC_EINVAL);
  ck_assert_ptr_nonnull(strstr(err, "binary"));
  ck_assert_int_eq(lc_chunk_split("ab\xff", 3, &o, &c, err, sizeof err), LC_EINVAL);
  ck_assert_ptr_nonnull(strstr(err, "not UTF-8 (bad byte at offset 2)"));
  ck_assert_int_eq(lc_chunk_split("ab\xe6\x97", 4, &o, &c, err, sizeof err), LC_EINVAL);
  struct lc_chunk_opts eq = {10, 10, 0}, zero = {0, 0, 0};
  ck_assert_int_eq(lc_chunk_split("abc", 3, &eq, &c, err, sizeof err), LC_EINVAL);
  ck_assert_ptr_nonnull(strstr(err, "overlap (10) must be smaller than size (10)"));
  ck_assert_int_eq(lc_chunk_split("abc", 3, &zero, &c, err, sizeof err), LC_EINVAL);
  size_t big = LC_CHUNK_MAX_DOC + 1;
  char *h = malloc(big);
  memset(h, 'a', big);
  ck_assert_int_eq(lc_chunk_split(h, big, &o, &c, err, sizeof err), LC_ETOOBIG);
  free(h);
}
END_TEST

START_TEST(out_of_memory_everywhere) {
  char path[1024];
  snprintf(path, sizeof path, "%s/tests/retrieval/golden/architecture.md", lc_test_source_dir());
  size_t len;
  char *d = lc_test_read_file(path, &len);
  long live0 = lc_alloc_live();
  int finished = 0;
  for (long n = 1; n < 2000 && !finished; n++) {
    struct lc_chunk_opts o = {120, 30, 1};
    struct lc_chunks c;
    char err[256];
    lc_alloc_fail_after(n);
    int rc = lc_chunk_split(d, len, &o, &c, err, sizeof err);
    lc_alloc_fail_after(0);
    ck_assert_msg(rc == 0 || rc == LC_ENOMEM, "n=%ld rc=%d", n, rc);
    if (rc == 0) {
      finished = 1;
      lc_chunks_free(&c);
    }
    ck_assert_int_eq(lc_alloc_live(), live0);
  }
  ck_assert(finished);
  free(d);
}
END_TEST

Suite *chunk_suite(void) {
  Suite *s = suite_create("chunk");
  TCase *tc = tcase_create("chunk");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, every_doc_in_docs);
  tcase_add_test(tc, golden_architecture);
  tcase_add_test(tc, small_exact_cases);
  tcase_add_test(tc, bad_input);
  tcase_add_test(tc, heading_at_the_very_end);
  tcase_add_test(tc, out_of_memory_everywhere);
  suite_add_tcase(s, tc);
  return s;
}

