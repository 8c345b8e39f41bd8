/* check_vindex.c: the exact index and HNSW. Recall is measured on seeded
 * clustered data (isotropic random data is no bar: every point is about
 * as far as every other), with ground truth from the exact index and the
 * ann-benchmarks tie rule: a returned neighbour counts when its distance
 * is within 1e-3 of the true k-th neighbour's. Also: save and load,
 * corrupt files, filters, bad vectors. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lc.h"
#include "vindex.h"

static uint64_t rs;
static double urand(void) {
  rs ^= rs << 13;
  rs ^= rs >> 7;
  rs ^= rs << 17;
  return (double)(rs >> 11) / 9007199254740992.0;
}
static double nrand(void) {
  double u = urand(), v = urand();
  if (u < 1e-300) u = 1e-300;
  return sqrt(-2 * log(u)) * cos(6.283185307179586 * v);
}

/* n points around c centres in d dims: centre ~ N(0,1), spread 0.35. */
static float *clustered(size_t n, size_t d, size_t c, uint64_t seed, const float *centres) {
  rs = seed;
  float *v = malloc(n * d * sizeof *v);
  for (size_t i = 0; i < n; i++) {
    const float *ce = centres + (size_t)(urand() * c) * d;
    for (size_t k = 0; k < d; k++) v[i * d + k] = ce[k] + 0.35f * (float)nrand();
  }
  return v;
}

static float *make_centres(size_t c, size_t d, uint64_t seed) {
  rs = seed;
  float *v = malloc(c * d * sizeof *v);
  for (size_t i = 0; i < c * d; i++) v[i] = (float)nrand();
  return v;
}

/* recall@k of idx at each ef, against the exact scan of the same index. */
static void measure(size_t nb, size_t nq, size_t d, size_t ncent, const int *efs, int nef,
                    double *recall) {
  float *cent = make_centres(ncent, d, 7);
  float *base = clustered(nb, d, ncent, 11, cent);
  float *qs = clustered(nq, d, ncent, 13, cent);
  struct lc_hnsw_params p;
  lc_hnsw_params_default(&p);
  struct lc_vindex *x;
  ck_assert_int_eq(lc_vindex_new(d, 1, &p, &x), 0);
  for (size_t i = 0; i < nb; i++) ck_assert_int_eq(lc_vindex_add(x, base + i * d, (int64_t)i), 0);
  const size_t k = 10;
  struct lc_vhit truth[10], got[10];
  double *thr = malloc(nq * sizeof *thr);
  for (size_t qi = 0; qi < nq; qi++) {
    size_t n;
    ck_assert_int_eq(lc_vindex_search(x, qs + qi * d, k, 1, 0, NULL, NULL, truth, &n), 0);
    ck_assert_uint_eq(n, k);
    thr[qi] = (1.0 - truth[k - 1].score) + 1e-3; /* distance of the k-th, plus epsilon */
  }
  for (int e = 0; e < nef; e++) {
    size_t hit = 0;
    for (size_t qi = 0; qi < nq; qi++) {
      size_t n;
      ck_assert_int_eq(lc_vindex_search(x, qs + qi * d, k, 0, efs[e], NULL, NULL, got, &n), 0);
      for (size_t j = 0; j < n; j++) hit += (1.0 - got[j].score) <= thr[qi];
    }
    recall[e] = (double)hit / (double)(nq * k);
  }
  free(thr);
  lc_vindex_free(x);
  free(cent);
  free(base);
  free(qs);
}

/* ef 10 first: the data must be hard enough that a short search misses
 * some (else the bar below could not fail). */
static const int efs[] = {10, 64, 96, 128, 256, 512};
#define NEF 6

static void check_recall(const double *r, const char *what) {
  for (int e = 0; e < NEF; e++) fprintf(stderr, "%s ef=%d recall@10=%.4f\n", what, efs[e], r[e]);
  ck_assert_msg(r[0] < 0.995, "%s: even ef 10 finds %.4f: the data is too easy", what, r[0]);
  ck_assert_msg(r[1] >= 0.99, "%s: recall@10 at ef 64 is %.4f", what, r[1]);
  for (int e = 2; e < NEF; e++)
    ck_assert_msg(r[e] >= r[e - 1], "%s: recall fell from %.4f (ef %d) to %.4f (ef %d)", what,
                  r[e - 1], efs[e - 1], r[e], efs[e]);
}

START_TEST(recall_9000x20_clustered) {
  double r[NEF];
  measure(9000, 1000, 20, 100, efs, NEF, r);
  check_recall(r, "9000x20");
}
END_TEST

START_TEST(recall_20000x128_clustered) {
  double r[NEF];
  measure(20000, 1000, 128, 100, efs, NEF, r);
  check_recall(r, "20000x128");
}
END_TEST

START_TEST(exact_is_exact_and_ties_by_label) {
  struct lc_vindex *x;
  ck_assert_int_eq(lc_vindex_new(2, 0, NULL, &x), 0);
  float v[][2] = {{1, 0}, {0, 1}, {2, 0}, {1, 1}, {-1, 0}};
  for (int i = 0; i < 5; i++) ck_assert_int_eq(lc_vindex_add(x, v[i], 10 + i), 0);
  struct lc_vhit h[5];
  size_t n;
  float q[2] = {3, 0};
  ck_assert_int_eq(lc_vindex_search(x, q, 5, 1, 0, NULL, NULL, h, &n), 0);
  ck_assert_uint_eq(n, 5);
  /* {1,0} and {2,0} are the same direction: tie, lower label first. */
  ck_assert_int_eq(h[0].label, 10);
  ck_assert_int_eq(h[1].label, 12);
  ck_assert_int_eq(h[2].label, 13);
  ck_assert_int_eq(h[4].label, 14);
  ck_assert(fabsf(h[0].score - 1) < 1e-6 && fabsf(h[4].score + 1) < 1e-6);
  lc_vindex_free(x);
}
END_TEST

static int even_only(void *ud, int64_t label) { return label % 2 == 0; }

START_TEST(filters_hold_in_both_indexes) {
  float *cent = make_centres(10, 8, 3);
  float *base = clustered(2000, 8, 10, 5, cent);
  struct lc_vindex *x;
  ck_assert_int_eq(lc_vindex_new(8, 1, NULL, &x), 0);
  for (int i = 0; i < 2000; i++) ck_assert_int_eq(lc_vindex_add(x, base + i * 8, i), 0);
  struct lc_vhit h[20], t[20];
  for (int qi = 0; qi < 50; qi++) {
    size_t n, tn;
    ck_assert_int_eq(lc_vindex_search(x, base + qi * 8, 20, 0, 0, even_only, NULL, h, &n), 0);
    ck_assert_int_eq(lc_vindex_search(x, base + qi * 8, 20, 1, 0, even_only, NULL, t, &tn), 0);
    ck_assert_uint_eq(n, 20);
    for (size_t j = 0; j < n; j++) ck_assert_int_eq(h[j].label % 2, 0);
    ck_assert_int_eq(h[0].label, t[0].label);
  }
  lc_vindex_free(x);
  free(cent);
  free(base);
}
END_TEST

START_TEST(bad_vectors_refused) {
  struct lc_vindex *x;
  ck_assert_int_eq(lc_vindex_new(3, 1, NULL, &x), 0);
  float zero[3] = {0, 0, 0}, nan3[3] = {1, NAN, 0}, inf3[3] = {INFINITY, 0, 0}, ok[3] = {1, 2, 3};
  ck_assert_int_eq(lc_vindex_add(x, zero, 1), LC_EINVAL);
  ck_assert_int_eq(lc_vindex_add(x, nan3, 1), LC_EINVAL);
  ck_assert_int_eq(lc_vindex_add(x, inf3, 1), LC_EINVAL);
  ck_assert_uint_eq(lc_vindex_count(x), 0); /* nothing half-added */
  ck_assert_int_eq(lc_vindex_add(x, ok, 1), 0);
  struct lc_vhit h[1];
  size_t n;
  ck_assert_int_eq(lc_vindex_search(x, nan3, 1, 0, 0, NULL, NULL, h, &n), LC_EINVAL);
  ck_assert_int_eq(lc_vindex_search(x, ok, 1, 0, 0, NULL, NULL, h, &n), 0);
  ck_assert_uint_eq(n, 1);
  lc_vindex_free(x);
}
END_TEST

START_TEST(save_load_and_corruption) {
  char path[128], err[512];
  snprintf(path, sizeof path, "/tmp/lc_vindex_%ld.hnsw", (long)getpid());
  float *cent = make_centres(5, 16, 3);
  float *base = clustered(500, 16, 5, 5, cent);
  struct lc_hnsw_params p;
  lc_hnsw_params_default(&p);
  p.m = 8;
  p.ef_construction = 50;
  p.ef_search = 33;
  struct lc_vindex *x, *y;
  ck_assert_int_eq(lc_vindex_new(16, 1, &p, &x), 0);
  for (int i = 0; i < 500; i++) ck_assert_int_eq(lc_vindex_add(x, base + i * 16, 1000 + i), 0);
  ck_assert_int_eq(lc_vindex_save(x, path, err, sizeof err), 0);
  ck_assert_int_eq(lc_vindex_load(path, &y, err, sizeof err), 0);
  struct lc_hnsw_params q;
  lc_vindex_params(y, &q);
  ck_assert_int_eq(q.m, 8);
  ck_assert_int_eq(q.ef_construction, 50);
  ck_assert_int_eq(q.ef_search, 33);
  for (int qi = 0; qi < 20; qi++) {
    struct lc_vhit a[5], b[5];
    size_t na, nb;
    lc_vindex_search(x, base + qi * 16, 5, 0, 0, NULL, NULL, a, &na);
    lc_vindex_search(y, base + qi * 16, 5, 0, 0, NULL, NULL, b, &nb);
    ck_assert_uint_eq(na, nb);
    for (size_t j = 0; j < na; j++) ck_assert_int_eq(a[j].label, b[j].label);
  }
  lc_vindex_free(y);

  /* One flipped byte, a cut file, garbage: each refused with a reason. */
  FILE *f = fopen(path, "r+b");
  fseek(f, 4000, SEEK_SET);
  int c = fgetc(f);
  fseek(f, 4000, SEEK_SET);
  fputc(c ^ 0x40, f);
  fclose(f);
  ck_assert_int_eq(lc_vindex_load(path, &y, err, sizeof err), LC_EINVAL);
  ck_assert_ptr_nonnull(strstr(err, "checksum"));
  ck_assert_ptr_null(y);
  ck_assert_int_eq(lc_vindex_save(x, path, err, sizeof err), 0);
  ck_assert_int_eq(truncate(path, 3000), 0);
  ck_assert_int_eq(lc_vindex_load(path, &y, err, sizeof err), LC_EINVAL);
  f = fopen(path, "wb");
  fputs("not an index", f);
  fclose(f);
  ck_assert_int_eq(lc_vindex_load(path, &y, err, sizeof err), LC_EINVAL);
  ck_assert_ptr_nonnull(strstr(err, "not a luact HNSW index"));
  unlink(path);
  ck_assert_int_eq(lc_vindex_load(path, &y, err, sizeof err), LC_ENOTFOUND);
  lc_vindex_free(x);
  free(cent);
  free(base);
}
END_TEST

/* Out of memory at the Nth allocation, for every N the work makes: each
 * call fails cleanly with LC_ENOMEM (or succeeds) and nothing leaks. */
START_TEST(out_of_memory_everywhere) {
  char path[128], err[512];
  snprintf(path, sizeof path, "/tmp/lc_vindex_oom_%ld.hnsw", (long)getpid());
  float *cent = make_centres(4, 8, 3);
  float *base = clustered(70, 8, 4, 5, cent);
  long live0 = lc_alloc_live();
  int finished = 0;
  for (long n = 1; n < 4000 && !finished; n++) {
    lc_alloc_fail_after(n);
    struct lc_vindex *x = NULL, *y = NULL;
    int rc = lc_vindex_new(8, 1, NULL, &x);
    /* 70 vectors: past the first growth of the arrays (64). */
    for (int i = 0; !rc && i < 70; i++) rc = lc_vindex_add(x, base + i * 8, i);
    struct lc_vhit h[5];
    size_t got;
    if (!rc) rc = lc_vindex_search(x, base, 5, 0, 0, NULL, NULL, h, &got);
    if (!rc) rc = lc_vindex_search(x, base, 5, 1, 0, NULL, NULL, h, &got);
    if (!rc) rc = lc_vindex_save(x, path, err, sizeof err);
    if (!rc) rc = lc_vindex_load(path, &y, err, sizeof err);
    lc_alloc_fail_after(0);
    ck_assert_msg(rc == 0 || rc == LC_ENOMEM, "n=%ld rc=%d", n, rc);
    finished = rc == 0;
    lc_vindex_free(x);
    lc_vindex_free(y);
    ck_assert_int_eq(lc_alloc_live(), live0);
  }
  ck_assert(finished);
  unlink(path);
  free(cent);
  free(base);
}
END_TEST

/* The wide kernel (AVX where the processor has it) and the portable one
 * give the same scores bit for bit, so the same graph and the same hits:
 * dimension counts that leave every kind of tail (16s, 4s, singles). */
START_TEST(wide_kernel_is_bit_identical) {
  static const size_t dims[] = {7, 20, 37, 128, 384};
  for (size_t t = 0; t < sizeof dims / sizeof *dims; t++) {
    size_t d = dims[t], nb = 600, nq = 40;
    float *cent = make_centres(8, d, 21);
    float *base = clustered(nb, d, 8, 23, cent);
    float *qs = clustered(nq, d, 8, 29, cent);
    struct lc_vindex *x[2];
    for (int w = 0; w < 2; w++) {
      lc_vindex_set_simd(w);
      ck_assert_int_eq(lc_vindex_new(d, 1, NULL, &x[w]), 0);
      for (size_t i = 0; i < nb; i++) ck_assert_int_eq(lc_vindex_add(x[w], base + i * d, (int64_t)i), 0);
    }
    for (size_t q = 0; q < nq; q++)
      for (int exact = 0; exact < 2; exact++) {
        struct lc_vhit h[2][10];
        size_t n[2];
        for (int w = 0; w < 2; w++) {
          lc_vindex_set_simd(w);
          ck_assert_int_eq(lc_vindex_search(x[w], qs + q * d, 10, exact, 32, NULL, NULL, h[w], &n[w]), 0);
        }
        ck_assert_uint_eq(n[0], n[1]);
        for (size_t j = 0; j < n[0]; j++) {
          ck_assert_int_eq(h[0][j].label, h[1][j].label);
          ck_assert_msg(memcmp(&h[0][j].score, &h[1][j].score, sizeof(float)) == 0,
                        "d=%zu q=%zu: %.9g vs %.9g", d, q, h[0][j].score, h[1][j].score);
        }
      }
    lc_vindex_free(x[0]);
    lc_vindex_free(x[1]);
    free(cent);
    free(base);
    free(qs);
  }
  lc_vindex_set_simd(1);
}
END_TEST

/* Exact ties at the k-th place: HNSW (which skips re-scoring candidates
 * that cannot be among the k best) still breaks them by label, as the
 * exact scan does: 30 copies of each of 5 vectors, a query equal to one. */
START_TEST(hnsw_ties_by_label_at_the_cut) {
  enum { D = 16, COPIES = 30, DISTINCT = 5 };
  float *cent = make_centres(DISTINCT, D, 31);
  struct lc_vindex *x;
  ck_assert_int_eq(lc_vindex_new(D, 1, NULL, &x), 0);
  /* Interleaved so each vector's copies have scattered labels. */
  for (int i = 0; i < COPIES * DISTINCT; i++)
    ck_assert_int_eq(lc_vindex_add(x, cent + (i % DISTINCT) * D, 1000 - i), 0);
  for (int v = 0; v < DISTINCT; v++) {
    struct lc_vhit h[10], e[10];
    size_t n, ne;
    ck_assert_int_eq(lc_vindex_search(x, cent + v * D, 10, 0, 200, NULL, NULL, h, &n), 0);
    ck_assert_int_eq(lc_vindex_search(x, cent + v * D, 10, 1, 0, NULL, NULL, e, &ne), 0);
    ck_assert_uint_eq(n, 10);
    ck_assert_uint_eq(ne, 10);
    for (int j = 0; j < 10; j++) {
      ck_assert_msg(h[j].label == e[j].label, "vector %d, hit %d: %lld, exact %lld", v, j,
                    (long long)h[j].label, (long long)e[j].label);
      ck_assert(h[j].score == e[j].score);
    }
  }
  lc_vindex_free(x);
  free(cent);
}
END_TEST

Suite *vindex_suite(void) {
  Suite *s = suite_create("vindex");
  TCase *tc = tcase_create("basics");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, exact_is_exact_and_ties_by_label);
  tcase_add_test(tc, filters_hold_in_both_indexes);
  tcase_add_test(tc, bad_vectors_refused);
  tcase_add_test(tc, save_load_and_corruption);
  tcase_add_test(tc, out_of_memory_everywhere);
  tcase_add_test(tc, wide_kernel_is_bit_identical);
  tcase_add_test(tc, hnsw_ties_by_label_at_the_cut);
  suite_add_tcase(s, tc);
  tc = tcase_create("recall");
  /* Generous: a shared machine, and sanitizers make the build ~10x slower. */
  tcase_set_timeout(tc, 1200);
  tcase_add_test(tc, recall_9000x20_clustered);
  tcase_add_test(tc, recall_20000x128_clustered);
  suite_add_tcase(s, tc);
  return s;
}

