/* bench_vindex.c: luact's indexes on vectors from files (scripts/bench-retrieval):
 * HNSW build rate, query latency (p50, p99) and recall@10 per ef_search
 * against the exact index (ann-benchmarks tie rule), exact search latency,
 * and a brute-force scan in SQL (an SQLite scalar function over float32
 * blobs, the way sqlite-vec's vec0 scans). Writes the ground truth for
 * the Python side. Not part of the test command. */
#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "vindex.h"

static double now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static float *load(const char *path, size_t d, size_t *n) {
  FILE *f = fopen(path, "rb");
  if (!f) { perror(path); exit(1); }
  fseek(f, 0, SEEK_END);
  long len = ftell(f);
  fseek(f, 0, SEEK_SET);
  *n = (size_t)len / (d * 4);
  float *v = malloc((size_t)len);
  if (fread(v, 1, (size_t)len, f) != (size_t)len) { perror(path); exit(1); }
  fclose(f);
  return v;
}

static int cmpd(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static void sql_dot(sqlite3_context *c, int argc, sqlite3_value **v) {
  const float *a = sqlite3_value_blob(v[0]), *b = sqlite3_value_blob(v[1]);
  int n = sqlite3_value_bytes(v[0]) / 4;
  float s = 0;
  for (int i = 0; i < n; i++) s += a[i] * b[i];
  sqlite3_result_double(c, s);
}

int main(int argc, char **argv) {
  if (argc < 6) {
    fprintf(stderr, "usage: bench_vindex DIMS base.f32 query.f32 gt.out M EFC [ef...]\n");
    return 2;
  }
  size_t d = (size_t)atoi(argv[1]), nb, nq;
  float *base = load(argv[2], d, &nb), *qs = load(argv[3], d, &nq);
  struct lc_hnsw_params p;
  lc_hnsw_params_default(&p);
  p.m = atoi(argv[5]);
  p.ef_construction = atoi(argv[6]);
  struct lc_vindex *x, *ex;
  lc_vindex_new(d, 1, &p, &x);
  lc_vindex_new(d, 0, &p, &ex);
  double t0 = now_ms();
  for (size_t i = 0; i < nb; i++) lc_vindex_add(x, base + i * d, (int64_t)i);
  double build = now_ms() - t0;
  for (size_t i = 0; i < nb; i++) lc_vindex_add(ex, base + i * d, (int64_t)i);
  printf("{\"n\": %zu, \"dims\": %zu, \"m\": %d, \"ef_construction\": %d, \"build_s\": %.3f, "
         "\"build_per_s\": %.0f", nb, d, p.m, p.ef_construction, build / 1e3, nb / (build / 1e3));
  /* Ground truth: exact top 10 and the k-th distance. */
  const size_t k = 10;
  struct lc_vhit h[10];
  double *thr = malloc(nq * sizeof *thr), *lat = malloc(nq * sizeof *lat);
  FILE *gt = fopen(argv[4], "w");
  for (size_t q = 0; q < nq; q++) {
    size_t n;
    double a = now_ms();
    lc_vindex_search(ex, qs + q * d, k, 1, 0, NULL, NULL, h, &n);
    lat[q] = now_ms() - a;
    thr[q] = 1.0 - h[k - 1].score + 1e-3;
    fprintf(gt, "%.9g", thr[q]);
    for (size_t j = 0; j < k; j++) fprintf(gt, " %lld", (long long)h[j].label);
    fputc('\n', gt);
  }
  fclose(gt);
  qsort(lat, nq, sizeof *lat, cmpd);
  printf(", \"exact_p50_ms\": %.3f, \"exact_p99_ms\": %.3f", lat[nq / 2], lat[nq * 99 / 100]);
  printf(", \"hnsw\": [");
  for (int e = 7; e < argc; e++) {
    int ef = atoi(argv[e]);
    size_t hit = 0;
    for (size_t q = 0; q < nq; q++) {
      size_t n;
      double a = now_ms();
      lc_vindex_search(x, qs + q * d, k, 0, ef, NULL, NULL, h, &n);
      lat[q] = now_ms() - a;
      for (size_t j = 0; j < n; j++) hit += 1.0 - h[j].score <= thr[q];
    }
    qsort(lat, nq, sizeof *lat, cmpd);
    printf("%s{\"ef\": %d, \"recall\": %.4f, \"p50_ms\": %.4f, \"p99_ms\": %.4f}", e > 7 ? ", " : "",
           ef, (double)hit / (nq * k), lat[nq / 2], lat[nq * 99 / 100]);
  }
  printf("]");
  /* Brute force in SQL over little-endian float32 blobs. */
  sqlite3 *db;
  sqlite3_open(":memory:", &db);
  sqlite3_create_function(db, "dot", 2, SQLITE_UTF8 | SQLITE_DETERMINISTIC, NULL, sql_dot, NULL, NULL);
  sqlite3_exec(db, "CREATE TABLE v(id INTEGER PRIMARY KEY, vec BLOB); BEGIN", NULL, NULL, NULL);
  sqlite3_stmt *ins;
  sqlite3_prepare_v2(db, "INSERT INTO v(id, vec) VALUES(?, ?)", -1, &ins, NULL);
  float *u = malloc(d * sizeof *u);
  for (size_t i = 0; i < nb; i++) {
    memcpy(u, base + i * d, d * 4);
    lc_vindex_normalise(u, d);
    sqlite3_bind_int64(ins, 1, (sqlite3_int64)i);
    sqlite3_bind_blob(ins, 2, u, (int)(d * 4), SQLITE_TRANSIENT);
    sqlite3_step(ins);
    sqlite3_reset(ins);
  }
  sqlite3_finalize(ins);
  sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
  sqlite3_stmt *sel;
  sqlite3_prepare_v2(db, "SELECT id FROM v ORDER BY dot(vec, ?) DESC LIMIT 10", -1, &sel, NULL);
  size_t sq = nq < 200 ? nq : 200, hit = 0;
  for (size_t q = 0; q < sq; q++) {
    memcpy(u, qs + q * d, d * 4);
    lc_vindex_normalise(u, d);
    double a = now_ms();
    sqlite3_bind_blob(sel, 1, u, (int)(d * 4), SQLITE_TRANSIENT);
    while (sqlite3_step(sel) == SQLITE_ROW) hit++;
    sqlite3_reset(sel);
    lat[q] = now_ms() - a;
  }
  qsort(lat, sq, sizeof *lat, cmpd);
  printf(", \"sql_brute_p50_ms\": %.3f, \"sql_queries\": %zu}\n", lat[sq / 2], sq);
  sqlite3_finalize(sel);
  sqlite3_close(db);
  return hit == sq * 10 ? 0 : 1;
}
