/* vindex.c: the exact index and HNSW over unit vectors (vindex.h). */
#include "vindex.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "lc.h"
#include "sha256.h"

#define VIS_POOL 8

struct visited {
  uint32_t *tag;
  size_t cap;
  uint32_t cur;
};

struct lc_vindex {
  size_t dims, n, cap;
  /* One block per node: its layer-0 links (count, then ids) and then its
   * vector, so a visited node costs one cache miss, not two. Without a
   * graph a block is just the vector. */
  unsigned char *blk;
  size_t blk_size, link_bytes;
  int64_t *labels;
  int hnsw;
  struct lc_hnsw_params p;
  int m, m0;
  double ml;
  int *level;
  uint32_t **up; /* per node: level * (m + 1) for layers 1..level */
  int maxlevel;
  uint32_t entry;
  uint64_t rng;
  pthread_mutex_t vis_mu;
  struct visited *vis_free[VIS_POOL];
  int n_vis_free;
};

void lc_hnsw_params_default(struct lc_hnsw_params *p) {
  p->m = 16;
  p->ef_construction = 200;
  p->ef_search = 64;
  p->seed = 42;
}

/* ---- vectors ---- */

/* The inner loop of everything: 16 floats a step in four vector lanes
 * (GCC/Clang vector extensions: SSE on x86-64, NEON on arm64, scalar code
 * elsewhere), unaligned loads through memcpy. */
typedef float v4f __attribute__((vector_size(16)));

static inline v4f load4(const float *p) {
  v4f v;
  memcpy(&v, p, sizeof v);
  return v;
}

static float dot_v4(const float *a, const float *b, size_t d) {
  v4f s0 = {0, 0, 0, 0}, s1 = s0, s2 = s0, s3 = s0;
  size_t i = 0;
  for (; i + 16 <= d; i += 16) {
    s0 += load4(a + i) * load4(b + i);
    s1 += load4(a + i + 4) * load4(b + i + 4);
    s2 += load4(a + i + 8) * load4(b + i + 8);
    s3 += load4(a + i + 12) * load4(b + i + 12);
  }
  for (; i + 4 <= d; i += 4) s0 += load4(a + i) * load4(b + i);
  v4f s = (s0 + s1) + (s2 + s3);
  float r = (s[0] + s[1]) + (s[2] + s[3]);
  for (; i < d; i++) r += a[i] * b[i];
  return r;
}

/* The same sums with AVX on x86-64 processors that have it (chosen at
 * run time: the build stays for any x86-64). Lanes 0-7 of s01 are s0 and
 * s1 above, lanes of s23 are s2 and s3, each a multiply then an add per
 * lane (AVX alone has no fused multiply-add to round differently), so
 * every score is bit for bit the portable kernel's, in half the loads. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__AVX__)
#define VINDEX_AVX 1
typedef float v8f __attribute__((vector_size(32)));

__attribute__((target("avx"))) static float dot_avx(const float *a, const float *b, size_t d) {
  v8f s01 = {0, 0, 0, 0, 0, 0, 0, 0}, s23 = s01;
  size_t i = 0;
  for (; i + 16 <= d; i += 16) {
    v8f a0, b0, a1, b1;
    memcpy(&a0, a + i, sizeof a0);
    memcpy(&b0, b + i, sizeof b0);
    memcpy(&a1, a + i + 8, sizeof a1);
    memcpy(&b1, b + i + 8, sizeof b1);
    s01 += a0 * b0;
    s23 += a1 * b1;
  }
  v4f s0, s1, s2, s3;
  memcpy(&s0, &s01, sizeof s0);
  memcpy(&s1, (const char *)&s01 + sizeof s0, sizeof s1);
  memcpy(&s2, &s23, sizeof s2);
  memcpy(&s3, (const char *)&s23 + sizeof s2, sizeof s3);
  for (; i + 4 <= d; i += 4) s0 += load4(a + i) * load4(b + i);
  v4f s = (s0 + s1) + (s2 + s3);
  float r = (s[0] + s[1]) + (s[2] + s[3]);
  for (; i < d; i++) r += a[i] * b[i];
  return r;
}

static int use_avx;
static pthread_once_t simd_once = PTHREAD_ONCE_INIT;
static void simd_init(void) {
  __builtin_cpu_init();
  use_avx = __builtin_cpu_supports("avx");
}
#endif

static inline float dot(const float *a, const float *b, size_t d) {
#ifdef VINDEX_AVX
  if (use_avx) return dot_avx(a, b, d);
#endif
  return dot_v4(a, b, d);
}

int lc_vindex_set_simd(int on) {
#ifdef VINDEX_AVX
  pthread_once(&simd_once, simd_init);
  int was = use_avx;
  use_avx = on && __builtin_cpu_supports("avx");
  return was;
#else
  (void)on;
  return 0;
#endif
}

int lc_vindex_normalise(float *v, size_t dims) {
  double s = 0;
  for (size_t i = 0; i < dims; i++) {
    if (!isfinite(v[i])) return LC_EINVAL;
    s += (double)v[i] * v[i];
  }
  if (!(s > 0) || !isfinite(s)) return LC_EINVAL;
  double inv = 1.0 / sqrt(s);
  for (size_t i = 0; i < dims; i++) v[i] = (float)(v[i] * inv);
  return 0;
}

static inline const float *vec_of(const struct lc_vindex *x, uint32_t i) {
  return (const float *)(void *)(x->blk + (size_t)i * x->blk_size + x->link_bytes);
}

/* Distance for the graph: smaller is closer. */
static inline float dist(const struct lc_vindex *x, const float *q, uint32_t i) {
  return 1.0f - dot(q, vec_of(x, i), x->dims);
}

/* ---- construction ---- */

int lc_vindex_new(size_t dims, int hnsw, const struct lc_hnsw_params *p, struct lc_vindex **out) {
  if (dims < 1 || dims > 65536) return LC_EINVAL;
  struct lc_vindex *x = lc_calloc(1, sizeof *x);
  if (!x) return LC_ENOMEM;
  x->dims = dims;
  x->hnsw = hnsw;
  if (p) x->p = *p;
  else lc_hnsw_params_default(&x->p);
  if (x->p.m < 2) x->p.m = 2;
  if (x->p.m > 256) x->p.m = 256;
  if (x->p.ef_construction < x->p.m) x->p.ef_construction = x->p.m;
  if (x->p.ef_search < 1) x->p.ef_search = 1;
  x->m = x->p.m;
  x->m0 = 2 * x->p.m;
  x->ml = 1.0 / log((double)x->m);
  x->rng = x->p.seed ? x->p.seed : 42;
  x->maxlevel = -1;
  x->link_bytes = hnsw ? (size_t)(x->m0 + 1) * sizeof(uint32_t) : 0;
  x->blk_size = x->link_bytes + dims * sizeof(float);
  pthread_mutex_init(&x->vis_mu, NULL);
#ifdef VINDEX_AVX
  pthread_once(&simd_once, simd_init);
#endif
  *out = x;
  return 0;
}

void lc_vindex_free(struct lc_vindex *x) {
  if (!x) return;
  lc_free(x->blk);
  lc_free(x->labels);
  lc_free(x->level);
  if (x->up)
    for (size_t i = 0; i < x->n; i++) lc_free(x->up[i]);
  lc_free(x->up);
  for (int i = 0; i < x->n_vis_free; i++) {
    lc_free(x->vis_free[i]->tag);
    lc_free(x->vis_free[i]);
  }
  pthread_mutex_destroy(&x->vis_mu);
  lc_free(x);
}

size_t lc_vindex_dims(const struct lc_vindex *x) { return x->dims; }
size_t lc_vindex_count(const struct lc_vindex *x) { return x->n; }
int lc_vindex_has_graph(const struct lc_vindex *x) { return x->hnsw; }
void lc_vindex_params(const struct lc_vindex *x, struct lc_hnsw_params *p) { *p = x->p; }
void lc_vindex_set_ef(struct lc_vindex *x, int ef) { x->p.ef_search = ef < 1 ? 1 : ef; }

const float *lc_vindex_vector(const struct lc_vindex *x, size_t i, int64_t *label) {
  if (i >= x->n) return NULL;
  if (label) *label = x->labels[i];
  return vec_of(x, (uint32_t)i);
}

/* Blocks are read at random, one per visited node: over a few MB, every
 * read of a 4 KiB page is a TLB miss more often than not. Huge pages
 * (asked for, where the kernel leaves them to madvise) make the whole
 * index a few TLB entries. A hint: refused, nothing changes. */
static void advise_huge(void *p, size_t n) {
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  if (n < (4u << 20)) return;
  uintptr_t a = ((uintptr_t)p + 4095) & ~(uintptr_t)4095, e = ((uintptr_t)p + n) & ~(uintptr_t)4095;
  if (e > a) (void)madvise((void *)a, e - a, MADV_HUGEPAGE);
#else
  (void)p;
  (void)n;
#endif
}

static int grow(struct lc_vindex *x) {
  size_t cap = x->cap ? x->cap * 2 : 64;
  /* A new block (not realloc) so the advice is given before the pages
   * are first touched: the kernel places huge pages at fault time. */
  unsigned char *v = lc_malloc(cap * x->blk_size);
  if (!v) return LC_ENOMEM;
  advise_huge(v, cap * x->blk_size);
  if (x->n) memcpy(v, x->blk, x->n * x->blk_size);
  lc_free(x->blk);
  x->blk = v;
  int64_t *l = lc_realloc(x->labels, cap * sizeof *l);
  if (!l) return LC_ENOMEM;
  x->labels = l;
  if (x->hnsw) {
    int *lv = lc_realloc(x->level, cap * sizeof *lv);
    if (!lv) return LC_ENOMEM;
    x->level = lv;
    uint32_t **up = lc_realloc(x->up, cap * sizeof *up);
    if (!up) return LC_ENOMEM;
    x->up = up;
  }
  x->cap = cap;
  return 0;
}

static inline uint32_t *links(const struct lc_vindex *x, uint32_t i, int l) {
  if (l == 0) return (uint32_t *)(void *)(x->blk + (size_t)i * x->blk_size);
  return x->up[i] + (size_t)(l - 1) * (size_t)(x->m + 1);
}

/* ---- visited lists: a tag per node, so no clearing between searches ---- */

static struct visited *vis_get(const struct lc_vindex *cx) {
  struct lc_vindex *x = (struct lc_vindex *)cx; /* the pool is the one mutable part */
  struct visited *v = NULL;
  pthread_mutex_lock(&x->vis_mu);
  if (x->n_vis_free) v = x->vis_free[--x->n_vis_free];
  pthread_mutex_unlock(&x->vis_mu);
  if (!v && !(v = lc_calloc(1, sizeof *v))) return NULL;
  if (v->cap < x->n) {
    uint32_t *t = lc_realloc(v->tag, x->cap * sizeof *t);
    if (!t) {
      lc_free(v->tag);
      lc_free(v);
      return NULL;
    }
    memset(t, 0, x->cap * sizeof *t);
    v->tag = t;
    v->cap = x->cap;
    v->cur = 0;
  }
  if (++v->cur == 0) { /* wrapped: start clean */
    memset(v->tag, 0, v->cap * sizeof *v->tag);
    v->cur = 1;
  }
  return v;
}

static void vis_put(const struct lc_vindex *cx, struct visited *v) {
  struct lc_vindex *x = (struct lc_vindex *)cx;
  pthread_mutex_lock(&x->vis_mu);
  if (x->n_vis_free < VIS_POOL) {
    x->vis_free[x->n_vis_free++] = v;
    v = NULL;
  }
  pthread_mutex_unlock(&x->vis_mu);
  if (v) {
    lc_free(v->tag);
    lc_free(v);
  }
}

/* ---- heaps of (distance, id) ---- */

struct hent {
  float d;
  uint32_t id;
};
struct heap {
  struct hent *v;
  size_t n, cap;
  int max; /* 1: largest on top */
};

static inline int above(const struct heap *h, struct hent a, struct hent b) {
  return h->max ? a.d > b.d : a.d < b.d;
}

static int hpush(struct heap *h, float d, uint32_t id) {
  if (h->n == h->cap) {
    size_t cap = h->cap ? h->cap * 2 : 64;
    struct hent *v = lc_realloc(h->v, cap * sizeof *v);
    if (!v) return LC_ENOMEM;
    h->v = v;
    h->cap = cap;
  }
  size_t i = h->n++;
  struct hent e = {d, id};
  while (i) {
    size_t p = (i - 1) / 2;
    if (!above(h, e, h->v[p])) break;
    h->v[i] = h->v[p];
    i = p;
  }
  h->v[i] = e;
  return 0;
}

static struct hent hpop(struct heap *h) {
  struct hent top = h->v[0], last = h->v[--h->n];
  size_t i = 0;
  for (;;) {
    size_t c = 2 * i + 1;
    if (c >= h->n) break;
    if (c + 1 < h->n && above(h, h->v[c + 1], h->v[c])) c++;
    if (!above(h, h->v[c], last)) break;
    h->v[i] = h->v[c];
    i = c;
  }
  if (h->n) h->v[i] = last;
  return top;
}

/* The ef nearest to q found from ep on layer l, into res (a max-heap).
 * Only nodes the filter keeps enter res; every node may be walked. */
static int search_layer(const struct lc_vindex *x, const float *q, uint32_t ep, size_t ef, int l,
                        lc_vindex_filter_fn filter, void *ud, struct visited *vis,
                        struct heap *res) {
  struct heap cand = {.max = 0};
  int rc = 0;
  float d0 = dist(x, q, ep);
  vis->tag[ep] = vis->cur;
  float bound = INFINITY;
  if (!filter || filter(ud, x->labels[ep])) {
    if ((rc = hpush(res, d0, ep))) goto out;
    bound = d0;
  }
  if ((rc = hpush(&cand, d0, ep))) goto out;
  while (cand.n) {
    struct hent c = hpop(&cand);
    if (c.d > bound && res->n >= ef) break;
    const uint32_t *nb = links(x, c.id, l);
    uint32_t cnt = nb[0];
    /* The neighbours' vectors are scattered: ask for them ahead. */
    for (uint32_t k = 1; k <= cnt && k <= 4; k++) __builtin_prefetch(vec_of(x, nb[k]));
    for (uint32_t k = 1; k <= cnt; k++) {
      uint32_t e = nb[k];
      if (k + 4 <= cnt) __builtin_prefetch(vec_of(x, nb[k + 4]));
      if (vis->tag[e] == vis->cur) continue;
      vis->tag[e] = vis->cur;
      float de = dist(x, q, e);
      if (res->n < ef || de < bound) {
        if ((rc = hpush(&cand, de, e))) goto out;
        if (!filter || filter(ud, x->labels[e])) {
          if ((rc = hpush(res, de, e))) goto out;
          if (res->n > ef) hpop(res);
        }
        if (res->n) bound = res->v[0].d;
      }
    }
  }
out:
  lc_free(cand.v);
  return rc;
}

/* Sorts the heap's entries closest first (empties it into out). */
static size_t drain_sorted(struct heap *h, struct hent *out) {
  size_t n = h->n;
  for (size_t i = n; i > 0; i--) out[i - 1] = hpop(h);
  return n;
}

/* The paper's neighbour heuristic: keep a candidate (closest first) only
 * when it is closer to the base than to every one kept so far, so links
 * reach out in different directions (what keeps clusters connected). */
static size_t select_heuristic(const struct lc_vindex *x, struct hent *c, size_t n, size_t m) {
  if (n <= m) return n;
  size_t kept = 0;
  for (size_t i = 0; i < n && kept < m; i++) {
    int good = 1;
    for (size_t j = 0; j < kept && good; j++)
      if (1.0f - dot(vec_of(x, c[i].id), vec_of(x, c[j].id), x->dims) < c[i].d) good = 0;
    if (good) c[kept++] = c[i];
  }
  return kept;
}

static uint64_t next_rand(uint64_t *s) {
  /* splitmix64 */
  uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

/* Links new node i into layer l given its selected neighbours. */
static int connect(struct lc_vindex *x, uint32_t i, int l, const struct hent *sel, size_t ns) {
  size_t cap = (size_t)(l == 0 ? x->m0 : x->m);
  uint32_t *mine = links(x, i, l);
  mine[0] = (uint32_t)ns;
  for (size_t k = 0; k < ns; k++) mine[k + 1] = sel[k].id;
  struct hent *tmp = lc_malloc((cap + 1) * sizeof *tmp);
  if (!tmp) return LC_ENOMEM;
  for (size_t k = 0; k < ns; k++) {
    uint32_t o = sel[k].id;
    uint32_t *theirs = links(x, o, l);
    if (theirs[0] < cap) {
      theirs[++theirs[0]] = i;
      continue;
    }
    /* Full: choose again among the old links and the new node. */
    const float *ov = vec_of(x, o);
    size_t n = 0;
    for (uint32_t t = 1; t <= theirs[0]; t++)
      tmp[n++] = (struct hent){1.0f - dot(ov, vec_of(x, theirs[t]), x->dims), theirs[t]};
    tmp[n++] = (struct hent){1.0f - dot(ov, vec_of(x, i), x->dims), i};
    /* insertion sort: n <= 2m + 1 */
    for (size_t a = 1; a < n; a++) {
      struct hent e = tmp[a];
      size_t b = a;
      while (b && tmp[b - 1].d > e.d) {
        tmp[b] = tmp[b - 1];
        b--;
      }
      tmp[b] = e;
    }
    size_t kept = select_heuristic(x, tmp, n, cap);
    theirs[0] = (uint32_t)kept;
    for (size_t t = 0; t < kept; t++) theirs[t + 1] = tmp[t].id;
  }
  lc_free(tmp);
  return 0;
}

static int insert(struct lc_vindex *x, uint32_t i) {
  double u = (double)(next_rand(&x->rng) >> 11) / 9007199254740992.0;
  int lvl = (int)floor(-log(u > 0 ? u : 1e-300) * x->ml);
  if (lvl > 32) lvl = 32;
  x->level[i] = lvl;
  links(x, i, 0)[0] = 0;
  x->up[i] = NULL;
  if (lvl > 0) {
    x->up[i] = lc_calloc((size_t)lvl * (size_t)(x->m + 1), sizeof **x->up);
    if (!x->up[i]) return LC_ENOMEM;
  }
  if (x->maxlevel < 0) {
    x->entry = i;
    x->maxlevel = lvl;
    return 0;
  }
  const float *q = vec_of(x, i);
  uint32_t cur = x->entry;
  float cd = dist(x, q, cur);
  for (int l = x->maxlevel; l > lvl; l--) {
    for (int changed = 1; changed;) {
      changed = 0;
      const uint32_t *nb = links(x, cur, l);
      for (uint32_t k = 1; k <= nb[0]; k++) {
        float d = dist(x, q, nb[k]);
        if (d < cd) {
          cd = d;
          cur = nb[k];
          changed = 1;
        }
      }
    }
  }
  struct visited *vis = vis_get(x);
  struct hent *sorted = lc_malloc(((size_t)x->p.ef_construction + 1) * sizeof *sorted);
  struct heap res = {.max = 1};
  int rc = vis && sorted ? 0 : LC_ENOMEM;
  for (int l = lvl < x->maxlevel ? lvl : x->maxlevel; l >= 0 && !rc; l--) {
    if (++vis->cur == 0) {
      memset(vis->tag, 0, vis->cap * sizeof *vis->tag);
      vis->cur = 1;
    }
    rc = search_layer(x, q, cur, (size_t)x->p.ef_construction, l, NULL, NULL, vis, &res);
    if (rc) break;
    size_t n = drain_sorted(&res, sorted);
    cur = sorted[0].id; /* the closest: where the next layer starts */
    size_t ns = select_heuristic(x, sorted, n, (size_t)x->m);
    rc = connect(x, i, l, sorted, ns);
  }
  lc_free(res.v);
  lc_free(sorted);
  if (vis) vis_put(x, vis);
  if (!rc && lvl > x->maxlevel) {
    x->maxlevel = lvl;
    x->entry = i;
  }
  return rc;
}

int lc_vindex_add(struct lc_vindex *x, const float *v, int64_t label) {
  if (x->n >= UINT32_MAX - 1) return LC_ETOOBIG;
  if (x->n == x->cap && grow(x)) return LC_ENOMEM;
  float *dst = (float *)(void *)(x->blk + x->n * x->blk_size + x->link_bytes);
  memcpy(dst, v, x->dims * sizeof *dst);
  if (lc_vindex_normalise(dst, x->dims)) return LC_EINVAL;
  x->labels[x->n] = label;
  uint32_t i = (uint32_t)x->n;
  x->n++;
  if (x->hnsw) {
    int rc = insert(x, i);
    if (rc) {
      /* Unlink nothing was linked to it yet only when insert failed
       * before connect; an index that ran out of memory mid-insert is
       * dropped by the caller and rebuilt from the store. */
      return rc;
    }
  }
  return 0;
}

/* ---- search ---- */

static int better(const struct lc_vhit *a, const struct lc_vhit *b) {
  return a->score > b->score || (a->score == b->score && a->label < b->label);
}

/* Keeps the k best of a stream in hits (sorted best first). */
static void offer(struct lc_vhit *hits, size_t k, size_t *n, struct lc_vhit h) {
  if (*n == k && !better(&h, &hits[k - 1])) return;
  size_t i = *n < k ? (*n)++ : k - 1;
  while (i && better(&h, &hits[i - 1])) {
    hits[i] = hits[i - 1];
    i--;
  }
  hits[i] = h;
}

int lc_vindex_search(const struct lc_vindex *x, const float *q0, size_t k, int exact, int ef,
                     lc_vindex_filter_fn filter, void *ud, struct lc_vhit *hits, size_t *n_out) {
  *n_out = 0;
  if (!k) return 0;
  float *q = lc_malloc(x->dims * sizeof *q);
  if (!q) return LC_ENOMEM;
  memcpy(q, q0, x->dims * sizeof *q);
  if (lc_vindex_normalise(q, x->dims)) {
    lc_free(q);
    return LC_EINVAL;
  }
  int rc = 0;
  if (exact || !x->hnsw || x->maxlevel < 0) {
    for (size_t i = 0; i < x->n; i++) {
      if (filter && !filter(ud, x->labels[i])) continue;
      offer(hits, k, n_out, (struct lc_vhit){x->labels[i], dot(q, vec_of(x, (uint32_t)i), x->dims)});
    }
    lc_free(q);
    return 0;
  }
  size_t e = ef > 0 ? (size_t)ef : (size_t)x->p.ef_search;
  if (e < k) e = k;
  uint32_t cur = x->entry;
  float cd = dist(x, q, cur);
  for (int l = x->maxlevel; l > 0; l--) {
    for (int changed = 1; changed;) {
      changed = 0;
      const uint32_t *nb = links(x, cur, l);
      for (uint32_t j = 1; j <= nb[0]; j++) {
        float d = dist(x, q, nb[j]);
        if (d < cd) {
          cd = d;
          cur = nb[j];
          changed = 1;
        }
      }
    }
  }
  struct visited *vis = vis_get(x);
  struct heap res = {.max = 1};
  if (!vis) rc = LC_ENOMEM;
  else rc = search_layer(x, q, cur, e, 0, filter, ud, vis, &res);
  if (vis) vis_put(x, vis);
  /* The ef found, worst first: one whose distance is strictly above that
   * of k others left cannot be among the k best (1 - dot never orders
   * two dot products the wrong way), so it needs no exact score. Ties go
   * to offer, which breaks them by score and label as always. */
  while (!rc && res.n > k) {
    struct hent h = hpop(&res);
    if (h.d > res.v[0].d) continue;
    offer(hits, k, n_out, (struct lc_vhit){x->labels[h.id], dot(q, vec_of(x, h.id), x->dims)});
  }
  while (!rc && res.n) {
    struct hent h = hpop(&res);
    offer(hits, k, n_out, (struct lc_vhit){x->labels[h.id], dot(q, vec_of(x, h.id), x->dims)});
  }
  lc_free(res.v);
  lc_free(q);
  return rc;
}

/* ---- files ---- */

#define MAGIC "LCHNSW01"

struct wctx {
  FILE *f;
  struct lc_sha256 sh;
  int err;
};

static void wr(struct wctx *w, const void *p, size_t n) {
  if (w->err || !n) return;
  lc_sha256_update(&w->sh, p, n);
  if (fwrite(p, 1, n, w->f) != n) w->err = 1;
}

int lc_vindex_save(const struct lc_vindex *x, const char *path, char *err, size_t errlen) {
  size_t pl = strlen(path);
  char *tmp = lc_malloc(pl + 16);
  if (!tmp) return LC_ENOMEM;
  snprintf(tmp, pl + 16, "%s.tmp", path);
  struct wctx w = {.f = fopen(tmp, "wb")};
  if (!w.f) {
    snprintf(err, errlen, "cannot write %s: %s", tmp, strerror(errno));
    lc_free(tmp);
    return LC_EIO;
  }
  lc_sha256_init(&w.sh);
  uint64_t hdr[9] = {1, x->dims, x->n, (uint64_t)x->hnsw, (uint64_t)x->p.m,
                     (uint64_t)x->p.ef_construction, (uint64_t)x->p.ef_search,
                     (uint64_t)(int64_t)x->maxlevel, x->entry};
  wr(&w, MAGIC, 8);
  wr(&w, hdr, sizeof hdr);
  wr(&w, &x->rng, sizeof x->rng);
  /* The file keeps vectors, then layer-0 links, each in node order. */
  for (size_t i = 0; i < x->n; i++) wr(&w, vec_of(x, (uint32_t)i), x->dims * sizeof(float));
  wr(&w, x->labels, x->n * sizeof *x->labels);
  if (x->hnsw) {
    wr(&w, x->level, x->n * sizeof *x->level);
    for (size_t i = 0; i < x->n; i++) wr(&w, links(x, (uint32_t)i, 0), x->link_bytes);
    for (size_t i = 0; i < x->n; i++)
      wr(&w, x->up[i], (size_t)x->level[i] * (size_t)(x->m + 1) * sizeof **x->up);
  }
  unsigned char sum[32];
  lc_sha256_final(&w.sh, sum);
  if (!w.err && fwrite(sum, 1, 32, w.f) != 32) w.err = 1;
  if (!w.err && (fflush(w.f) || fsync(fileno(w.f)))) w.err = 1;
  if (fclose(w.f)) w.err = 1;
  if (!w.err && rename(tmp, path)) w.err = 1;
  if (w.err) {
    snprintf(err, errlen, "cannot write %s: %s", path, strerror(errno));
    unlink(tmp);
    lc_free(tmp);
    return LC_EIO;
  }
  lc_free(tmp);
  /* The rename itself is durable once the directory is. */
  char *dir = lc_strdup(path);
  if (dir) {
    char *sl = strrchr(dir, '/');
    if (sl) *sl = 0;
    int fd = open(sl ? (dir[0] ? dir : "/") : ".", O_RDONLY);
    if (fd >= 0) {
      fsync(fd);
      close(fd);
    }
    lc_free(dir);
  }
  return 0;
}

struct rctx {
  const unsigned char *p;
  size_t n, at;
  int err;
};

static void rd(struct rctx *r, void *dst, size_t n) {
  if (r->err || !n) return;
  if (n > r->n - r->at) {
    r->err = 1;
    return;
  }
  memcpy(dst, r->p + r->at, n);
  r->at += n;
}

int lc_vindex_load(const char *path, struct lc_vindex **out, char *err, size_t errlen) {
  *out = NULL;
  FILE *f = fopen(path, "rb");
  if (!f) {
    snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
    return errno == ENOENT ? LC_ENOTFOUND : LC_EIO;
  }
  unsigned char *buf = NULL;
  size_t n = 0, cap = 0;
  for (;;) {
    if (n == cap) {
      size_t nc = cap ? cap * 2 : 1 << 16;
      unsigned char *b = lc_realloc(buf, nc);
      if (!b) {
        lc_free(buf);
        fclose(f);
        return LC_ENOMEM;
      }
      buf = b;
      cap = nc;
    }
    size_t got = fread(buf + n, 1, cap - n, f);
    n += got;
    if (!got) break;
  }
  int ferr = ferror(f);
  fclose(f);
  int rc = LC_EINVAL;
  struct lc_vindex *x = NULL;
  if (ferr) {
    snprintf(err, errlen, "cannot read %s", path);
    rc = LC_EIO;
    goto fail;
  }
  if (n < 8 + 72 + 8 + 32 || memcmp(buf, MAGIC, 8)) {
    snprintf(err, errlen, "%s is not a luact HNSW index (or is cut short)", path);
    goto fail;
  }
  unsigned char sum[32];
  struct lc_sha256 sh;
  lc_sha256_init(&sh);
  lc_sha256_update(&sh, buf, n - 32);
  lc_sha256_final(&sh, sum);
  if (memcmp(sum, buf + n - 32, 32)) {
    snprintf(err, errlen, "%s is corrupt (checksum mismatch): rebuild it", path);
    goto fail;
  }
  struct rctx r = {.p = buf, .n = n - 32, .at = 8};
  uint64_t hdr[9];
  rd(&r, hdr, sizeof hdr);
  if (hdr[0] != 1 || hdr[1] < 1 || hdr[1] > 65536 || hdr[2] > UINT32_MAX - 1 || hdr[3] > 1 ||
      hdr[4] < 2 || hdr[4] > 256) {
    snprintf(err, errlen, "%s: unsupported version or bad header", path);
    goto fail;
  }
  struct lc_hnsw_params p = {.m = (int)hdr[4], .ef_construction = (int)hdr[5],
                             .ef_search = (int)hdr[6], .seed = 1};
  if ((rc = lc_vindex_new(hdr[1], (int)hdr[3], &p, &x))) goto fail;
  rc = LC_EINVAL;
  size_t cnt = hdr[2];
  if (cnt * x->dims * sizeof(float) > r.n) {
    snprintf(err, errlen, "%s is cut short", path);
    goto fail;
  }
  while (x->cap < cnt)
    if (grow(x)) {
      rc = LC_ENOMEM;
      goto fail;
    }
  rd(&r, &x->rng, sizeof x->rng);
  for (size_t i = 0; i < cnt; i++)
    rd(&r, (float *)(void *)(x->blk + i * x->blk_size + x->link_bytes), x->dims * sizeof(float));
  rd(&r, x->labels, cnt * sizeof *x->labels);
  x->maxlevel = (int)(int64_t)hdr[7];
  x->entry = (uint32_t)hdr[8];
  if (x->hnsw) {
    rd(&r, x->level, cnt * sizeof *x->level);
    for (size_t i = 0; i < cnt; i++) rd(&r, links(x, (uint32_t)i, 0), x->link_bytes);
    for (size_t i = 0; i < cnt && !r.err; i++) {
      x->up[i] = NULL;
      x->n = i + 1; /* so free() sees every up[] set so far */
      if (x->level[i] < 0 || x->level[i] > 32 || x->level[i] > x->maxlevel) {
        r.err = 1;
        break;
      }
      if (x->level[i]) {
        size_t un = (size_t)x->level[i] * (size_t)(x->m + 1);
        if (!(x->up[i] = lc_malloc(un * sizeof **x->up))) {
          rc = LC_ENOMEM;
          goto fail;
        }
        rd(&r, x->up[i], un * sizeof **x->up);
      }
    }
  }
  if (r.err) {
    snprintf(err, errlen, "%s: sizes do not add up", path);
    goto fail;
  }
  x->n = cnt;
  if (r.at != r.n) {
    snprintf(err, errlen, "%s: sizes do not add up", path);
    goto fail;
  }
  /* Every link must name a node and fit its list: a checksum proves the
   * file is what was written, not that the writer was right. */
  if (x->hnsw && cnt) {
    if (x->maxlevel < 0 || x->entry >= cnt) r.err = 1;
    for (size_t i = 0; i < cnt && !r.err; i++)
      for (int l = 0; l <= x->level[i] && !r.err; l++) {
        const uint32_t *nb = links(x, (uint32_t)i, l);
        if (nb[0] > (uint32_t)(l ? x->m : x->m0)) r.err = 1;
        for (uint32_t k = 1; k <= nb[0] && !r.err; k++)
          if (nb[k] >= cnt || x->level[nb[k]] < l) r.err = 1;
      }
    if (r.err) {
      snprintf(err, errlen, "%s: graph links out of range", path);
      goto fail;
    }
  }
  for (size_t i = 0; i < cnt * x->dims; i++)
    if (!isfinite(vec_of(x, (uint32_t)(i / x->dims))[i % x->dims])) {
      snprintf(err, errlen, "%s: a stored vector is not finite", path);
      goto fail;
    }
  lc_free(buf);
  *out = x;
  return 0;
fail:
  lc_free(buf);
  lc_vindex_free(x);
  return rc;
}
