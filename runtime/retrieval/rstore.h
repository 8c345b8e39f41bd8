/* rstore.h: a retrieval collection in SQLite: documents (source, content
 * hash, metadata as JSON), their chunks (offsets, heading, text) with one
 * vector each (little-endian float32 blob), and an embedding cache keyed
 * by model, dimensions and the SHA-256 of the text, so a rebuild makes no
 * calls. The database is the truth; the vector index (vindex.h) is kept
 * in memory and saved next to it as <path>.hnsw, and is rebuilt from the
 * rows whenever it does not match them.
 *
 * Consistency: adds happen inside begin/commit; vectors reach the index
 * only after the commit succeeds (a rollback leaves both as they were).
 * Replacing or deleting a document marks the index stale; the next
 * search rebuilds it from the rows.
 *
 * Threads: not thread-safe; one thread at a time (rwork.h: the
 * collection's thread while a job runs, the owner's between jobs).
 *
 * Errors: 0 or LC_E*, with the message in lc_rstore_error(). */
#ifndef LC_RSTORE_H
#define LC_RSTORE_H

#include <stddef.h>
#include <stdint.h>

#include "vindex.h"

struct lc_rstore;

struct lc_rstore_opts {
  const char *model; /* the embedding model the vectors come from */
  size_t dims;       /* 0: as stored, else must match what is stored */
  int exact_only;    /* keep no graph (small collections) */
  struct lc_hnsw_params hnsw;
  int rebuild;       /* a corrupt or stale index file is rebuilt, not refused */
};

/* Opens or creates the collection at path. A stored model or dimension
 * count different from opts' is refused (LC_EINVAL): vectors from two
 * models are not comparable. A saved index that is stale (another count
 * of vectors than rows, other settings) is rebuilt from the rows; a
 * damaged one (checksum, format, links) is LC_EINVAL unless
 * opts->rebuild (then it is rebuilt too). */
int lc_rstore_open(const char *path, const struct lc_rstore_opts *o, struct lc_rstore **out,
                   char *err, size_t errlen);
void lc_rstore_close(struct lc_rstore *s);
const char *lc_rstore_error(const struct lc_rstore *s);
/* What the last error was, for Lua's code: "busy" (the database is
 * locked by another writer past the busy timeout), "full" (the disk or
 * the database is full) or "io" (anything else). */
const char *lc_rstore_errcode(const struct lc_rstore *s);
size_t lc_rstore_dims(const struct lc_rstore *s);
size_t lc_rstore_count(const struct lc_rstore *s);

int lc_rstore_begin(struct lc_rstore *s);
int lc_rstore_commit(struct lc_rstore *s);
void lc_rstore_rollback(struct lc_rstore *s);

/* The document with this source: its id and content hash (sha, 65
 * bytes); LC_ENOTFOUND when there is none. */
int lc_rstore_doc(struct lc_rstore *s, const char *source, int64_t *id, char sha[65]);
/* Adds a document (replacing one with the same source, and its chunks).
 * meta_json: a JSON object or NULL. Inside begin/commit. */
int lc_rstore_add_doc(struct lc_rstore *s, const char *source, const char *sha, size_t bytes,
                      const char *meta_json, int64_t *id);

struct lc_rchunk {
  int64_t doc;
  int ord;
  size_t start, start_cp;
  const char *text;
  size_t len;
  const char *heading; /* may be NULL */
};
/* Adds a chunk with its vector (dims floats, finite, not zero). Inside
 * begin/commit; the vector reaches the index at commit. */
int lc_rstore_add_chunk(struct lc_rstore *s, const struct lc_rchunk *c, const float *v,
                        int64_t *id);

/* Embedding cache: 1 found (v filled with dims floats), 0 not, <0 error. */
int lc_rstore_cache_get(struct lc_rstore *s, const char *model, size_t dims, const char *text,
                        size_t len, float *v);
int lc_rstore_cache_put(struct lc_rstore *s, const char *model, size_t dims, const char *text,
                        size_t len, const float *v);

/* Labels (chunk ids) of documents whose metadata has every key equal to
 * its value (values as JSON text: "\"guide\"", "3", "true"); key "source"
 * is the document's source. Sorted ascending, lc_malloc'd. Keys must be
 * [A-Za-z0-9_]+ (LC_EINVAL otherwise). */
int lc_rstore_allowed(struct lc_rstore *s, const char *const *keys, const char *const *vals,
                      size_t n, int64_t **labels, size_t *n_labels);

/* The index, rebuilt from the rows first when stale; NULL on failure. */
struct lc_vindex *lc_rstore_index(struct lc_rstore *s);
/* 1 when lc_rstore_index would rebuild (every stored vector read and
 * inserted again: seconds for a large collection), so a caller on a loop
 * thread can do it elsewhere. */
int lc_rstore_stale(const struct lc_rstore *s);

struct lc_rrow {
  int64_t id;
  char *text, *source, *heading, *meta_json; /* lc_malloc'd; heading may be NULL */
  size_t start, start_cp;
  int ord;
};
int lc_rstore_row(struct lc_rstore *s, int64_t id, struct lc_rrow *r);
void lc_rrow_free(struct lc_rrow *r);

/* Writes the index next to the database (<path>.hnsw). */
int lc_rstore_save(struct lc_rstore *s);

/* Tests only: when set, called with "commit" (before an add's COMMIT),
 * "save" (before the index is written and synced), "close" (before the
 * database is closed, which checkpoints its log), "rebuild" (before a
 * rebuild reads the rows) and "search" (l_retrieval.c, before a search
 * off the loop), on whichever thread does that work, so a test can hold
 * it there and see where it runs. */
extern void (*lc_rstore_hold)(const char *point);

#endif
