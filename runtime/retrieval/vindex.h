/* vindex.h: vector indexes over unit vectors, scored by dot product
 * (cosine similarity): the exact one (a scan: the default for small
 * collections and the recall oracle) and HNSW (Malkov & Yashunin 2016,
 * arXiv:1603.09320: layered proximity graphs, the neighbour-selection
 * heuristic of its Algorithm 4), written here in C rather than wrapping
 * hnswlib's C++ header so the build stays C-only, the graph can be saved
 * with a checksum of our own, and the layer draws from a seed so builds
 * and tests are reproducible.
 *
 * Vectors are normalised on the way in (a zero, NaN or infinite vector is
 * refused). Labels are the caller's ids (chunk rows). One index may be
 * searched by several threads at once, never while it is added to: the
 * caller serialises add against search (the binding holds a busy count).
 *
 * Ownership: the index owns its vectors and graph (lc_vindex_free).
 * Errors: 0 or LC_E*; text in err where given. */
#ifndef LC_VINDEX_H
#define LC_VINDEX_H

#include <stddef.h>
#include <stdint.h>

struct lc_hnsw_params {
  int m;               /* links per node above layer 0 (layer 0: 2m); 16 */
  int ef_construction; /* candidate list while inserting; 200 */
  int ef_search;       /* candidate list while searching (>= k); 64 */
  uint64_t seed;       /* layer draws */
};
void lc_hnsw_params_default(struct lc_hnsw_params *p);

struct lc_vindex;

/* hnsw = 0: exact only (no graph is kept). */
int lc_vindex_new(size_t dims, int hnsw, const struct lc_hnsw_params *p, struct lc_vindex **out);
void lc_vindex_free(struct lc_vindex *x);
size_t lc_vindex_dims(const struct lc_vindex *x);
size_t lc_vindex_count(const struct lc_vindex *x);
int lc_vindex_has_graph(const struct lc_vindex *x);
void lc_vindex_params(const struct lc_vindex *x, struct lc_hnsw_params *p);
void lc_vindex_set_ef(struct lc_vindex *x, int ef_search);

/* Adds one vector (dims floats, copied and normalised) under label.
 * LC_EINVAL for a zero, NaN or infinite vector; LC_ENOMEM. */
int lc_vindex_add(struct lc_vindex *x, const float *v, int64_t label);

/* Keeps a label (returns 1) or not; called from the searching thread. */
typedef int (*lc_vindex_filter_fn)(void *ud, int64_t label);

struct lc_vhit {
  int64_t label;
  float score; /* dot product of unit vectors, 1 = same direction */
};

/* The k best (highest score first; ties by lower label) into hits[k];
 * *n_out gets how many (< k when fewer pass the filter). exact = 1 scans
 * every vector; else the graph is searched with ef = max(ef, k)
 * (ef <= 0: the index's ef_search). The query is normalised here.
 * LC_EINVAL for a bad query, LC_ENOMEM. Thread-safe against other
 * searches. */
int lc_vindex_search(const struct lc_vindex *x, const float *q, size_t k, int exact, int ef,
                     lc_vindex_filter_fn filter, void *ud, struct lc_vhit *hits, size_t *n_out);

/* The stored (unit) vector of internal row i < count, and its label. */
const float *lc_vindex_vector(const struct lc_vindex *x, size_t i, int64_t *label);

/* Saves to path (temp file, fsync, rename) with a SHA-256 of the content;
 * loads back, refusing a file that is cut, altered or from another
 * version with a message in err (LC_EINVAL), or LC_EIO / LC_ENOMEM. */
int lc_vindex_save(const struct lc_vindex *x, const char *path, char *err, size_t errlen);
int lc_vindex_load(const char *path, struct lc_vindex **out, char *err, size_t errlen);

/* Normalises v in place: 0, or LC_EINVAL for a zero, NaN or inf vector. */
int lc_vindex_normalise(float *v, size_t dims);
/* The wider kernel (AVX, where the processor has it) for every index:
 * on (the default) or off; returns whether it was on. Both give the same
 * scores bit for bit; tests compare them. Not for use while searching. */
int lc_vindex_set_simd(int on);

#endif
