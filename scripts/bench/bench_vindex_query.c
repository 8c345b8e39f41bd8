/* bench_vindex_query.c: HNSW query cost alone, in thread CPU time (what
 * a busy shared machine disturbs least), on a saved graph so two builds
 * of vindex.c can be compared on the same graph, interleaved.
 *   bench_vindex_query DIMS BASE.f32 QUERIES.f32 INDEX GT EF...
 * Builds and saves INDEX (M 16, ef_construction 200) and the exact k-th
 * distances GT when INDEX does not load. Prints per ef: recall@10, p50
 * and mean of 3 passes (ms), and a signature of the hits (equal
 * signatures: the same hits in the same order). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "vindex.h"

static double now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}
static int cmpd(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}
static float *rd(const char *p, size_t *n) {
  FILE *f = fopen(p, "rb");
  if (!f) exit(2);
  fseek(f, 0, SEEK_END);
  long l = ftell(f);
  fseek(f, 0, SEEK_SET);
  float *v = malloc((size_t)l);
  if (fread(v, 1, (size_t)l, f) != (size_t)l) exit(2);
  fclose(f);
  *n = (size_t)l / 4;
  return v;
}

int main(int argc, char **argv) {
  if (argc < 6) {
    fprintf(stderr, "usage: bench_vindex_query DIMS BASE QUERIES INDEX GT EF...\n");
    return 2;
  }
  size_t d = (size_t)atoi(argv[1]), nb, nq;
  char err[256];
  float *base = rd(argv[2], &nb), *qs = rd(argv[3], &nq);
  nb /= d;
  nq /= d;
  struct lc_vindex *x;
  if (lc_vindex_load(argv[4], &x, err, sizeof err)) {
    struct lc_hnsw_params p;
    lc_hnsw_params_default(&p);
    lc_vindex_new(d, 1, &p, &x);
    for (size_t i = 0; i < nb; i++) lc_vindex_add(x, base + i * d, (int64_t)i);
    lc_vindex_save(x, argv[4], err, sizeof err);
    struct lc_vindex *ex;
    lc_vindex_new(d, 0, &p, &ex);
    for (size_t i = 0; i < nb; i++) lc_vindex_add(ex, base + i * d, (int64_t)i);
    FILE *g = fopen(argv[5], "w");
    for (size_t q = 0; q < nq; q++) {
      struct lc_vhit h[10];
      size_t n;
      lc_vindex_search(ex, qs + q * d, 10, 1, 0, NULL, NULL, h, &n);
      fprintf(g, "%.9g\n", 1.0 - h[9].score + 1e-3);
    }
    fclose(g);
    lc_vindex_free(ex);
  }
  double *thr = malloc(nq * sizeof *thr), *lat = malloc(nq * sizeof *lat);
  FILE *g = fopen(argv[5], "r");
  for (size_t q = 0; q < nq; q++)
    if (fscanf(g, "%lf", &thr[q]) != 1) return 2;
  fclose(g);
  unsigned long long sig = 0;
  for (int a = 6; a < argc; a++) {
    int ef = atoi(argv[a]);
    size_t hit = 0;
    double tot = 0;
    for (int rep = 0; rep < 3; rep++)
      for (size_t q = 0; q < nq; q++) {
        struct lc_vhit h[10];
        size_t n;
        double t = now_ms();
        lc_vindex_search(x, qs + q * d, 10, 0, ef, NULL, NULL, h, &n);
        double ms = now_ms() - t;
        tot += ms;
        if (rep) continue;
        lat[q] = ms;
        for (size_t j = 0; j < n; j++) {
          hit += 1.0 - h[j].score <= thr[q];
          sig = sig * 31 + (unsigned long long)h[j].label;
        }
      }
    qsort(lat, nq, sizeof *lat, cmpd);
    printf("ef %d recall %.4f p50 %.4f mean %.4f\n", ef, (double)hit / (nq * 10), lat[nq / 2],
           tot / (double)nq / 3);
  }
  printf("signature %llx\n", sig);
  lc_vindex_free(x);
  return 0;
}
