/* rstore.c: a retrieval collection in SQLite with its vector index
 * (rstore.h). */
#include "rstore.h"

#include <math.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lc.h"
#include "sha256.h"

struct pending {
  int64_t id;
  float *v;
};

struct lc_rstore {
  sqlite3 *db;
  char *path, *ixpath, *model;
  size_t dims;
  int exact_only;
  struct lc_hnsw_params hp;
  struct lc_vindex *ix;
  int stale;
  int in_tx;
  struct pending *pend;
  size_t n_pend, cap_pend;
  int sqlcode; /* the SQLite primary code behind err, 0 for others */
  char err[512];
};

void (*lc_rstore_hold)(const char *point);

static const char SCHEMA[] =
    "PRAGMA journal_mode=WAL;"
    "PRAGMA foreign_keys=ON;"
    "CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS docs(id INTEGER PRIMARY KEY, source TEXT NOT NULL UNIQUE,"
    " sha TEXT NOT NULL, bytes INTEGER NOT NULL, meta TEXT NOT NULL DEFAULT '{}');"
    "CREATE TABLE IF NOT EXISTS chunks(id INTEGER PRIMARY KEY,"
    " doc INTEGER NOT NULL REFERENCES docs(id) ON DELETE CASCADE, ord INTEGER NOT NULL,"
    " start INTEGER NOT NULL, start_cp INTEGER NOT NULL, text TEXT NOT NULL, heading TEXT,"
    " vec BLOB NOT NULL);"
    "CREATE INDEX IF NOT EXISTS chunks_doc ON chunks(doc);"
    "CREATE TABLE IF NOT EXISTS embed_cache(model TEXT NOT NULL, dims INTEGER NOT NULL,"
    " sha TEXT NOT NULL, vec BLOB NOT NULL, PRIMARY KEY(model, dims, sha)) WITHOUT ROWID;";

static int fail(struct lc_rstore *s, int rc, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(s->err, sizeof s->err, fmt, ap);
  va_end(ap);
  s->sqlcode = 0;
  return rc;
}

static int dberr(struct lc_rstore *s, const char *what) {
  int code = sqlite3_errcode(s->db) & 0xff;
  fail(s, LC_EIO, "%s: %s", what, sqlite3_errmsg(s->db));
  s->sqlcode = code;
  return LC_EIO;
}

const char *lc_rstore_error(const struct lc_rstore *s) { return s->err; }

const char *lc_rstore_errcode(const struct lc_rstore *s) {
  switch (s->sqlcode) {
  case SQLITE_BUSY:
  case SQLITE_LOCKED:
    return "busy";
  case SQLITE_FULL:
    return "full";
  default:
    return "io";
  }
}
size_t lc_rstore_dims(const struct lc_rstore *s) { return s->dims; }

/* ---- blobs: little-endian float32 whatever the host ---- */

static void to_le(const float *v, size_t n, unsigned char *out) {
  for (size_t i = 0; i < n; i++) {
    uint32_t u;
    memcpy(&u, &v[i], 4);
    out[i * 4] = (unsigned char)u;
    out[i * 4 + 1] = (unsigned char)(u >> 8);
    out[i * 4 + 2] = (unsigned char)(u >> 16);
    out[i * 4 + 3] = (unsigned char)(u >> 24);
  }
}

static int from_le(const unsigned char *p, size_t n, float *v) {
  for (size_t i = 0; i < n; i++) {
    uint32_t u = (uint32_t)p[i * 4] | (uint32_t)p[i * 4 + 1] << 8 |
                 (uint32_t)p[i * 4 + 2] << 16 | (uint32_t)p[i * 4 + 3] << 24;
    memcpy(&v[i], &u, 4);
    if (!isfinite(v[i])) return LC_EINVAL;
  }
  return 0;
}

/* ---- meta ---- */

/* *out: the value (lc_malloc'd) or NULL when there is none. 0, LC_EIO
 * or LC_ENOMEM: a value that could not be copied is not "none" (a
 * collection's dimensions read as unknown would look empty). */
static int meta_get(struct lc_rstore *s, const char *key, char **out) {
  sqlite3_stmt *st;
  *out = NULL;
  if (sqlite3_prepare_v2(s->db, "SELECT value FROM meta WHERE key=?", -1, &st, NULL))
    return dberr(s, "meta");
  sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
  int rc = 0;
  if (sqlite3_step(st) == SQLITE_ROW &&
      !(*out = lc_strdup((const char *)sqlite3_column_text(st, 0))))
    rc = fail(s, LC_ENOMEM, "out of memory");
  sqlite3_finalize(st);
  return rc;
}

static int meta_set(struct lc_rstore *s, const char *key, const char *val) {
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(s->db, "INSERT OR REPLACE INTO meta(key, value) VALUES(?, ?)", -1, &st,
                         NULL))
    return dberr(s, "meta");
  sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 2, val, -1, SQLITE_STATIC);
  int rc = sqlite3_step(st) == SQLITE_DONE ? 0 : dberr(s, "meta");
  sqlite3_finalize(st);
  return rc;
}

static int64_t count_rows(struct lc_rstore *s) {
  sqlite3_stmt *st;
  int64_t n = -1;
  if (sqlite3_prepare_v2(s->db, "SELECT count(*), coalesce(max(id), 0) FROM chunks", -1, &st,
                         NULL))
    return -1;
  if (sqlite3_step(st) == SQLITE_ROW) n = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  return n;
}

/* The index from the rows: every chunk's vector, in id order. */
static int rebuild(struct lc_rstore *s) {
  if (lc_rstore_hold) lc_rstore_hold("rebuild");
  struct lc_vindex *x;
  if (lc_vindex_new(s->dims, !s->exact_only, &s->hp, &x)) return fail(s, LC_ENOMEM, "out of memory");
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(s->db, "SELECT id, vec FROM chunks ORDER BY id", -1, &st, NULL)) {
    lc_vindex_free(x);
    return dberr(s, "rebuild");
  }
  float *v = lc_malloc(s->dims * sizeof *v);
  int rc = v ? 0 : fail(s, LC_ENOMEM, "out of memory");
  int r;
  while (!rc && (r = sqlite3_step(st)) == SQLITE_ROW) {
    int64_t id = sqlite3_column_int64(st, 0);
    const unsigned char *b = sqlite3_column_blob(st, 1);
    if ((size_t)sqlite3_column_bytes(st, 1) != s->dims * 4 || from_le(b, s->dims, v))
      rc = fail(s, LC_EINVAL, "chunk %lld: stored vector is not %zu finite floats", (long long)id,
                s->dims);
    else if ((rc = lc_vindex_add(x, v, id)))
      fail(s, rc, "chunk %lld: vector refused by the index", (long long)id);
  }
  sqlite3_finalize(st);
  lc_free(v);
  if (rc) {
    lc_vindex_free(x);
    return rc;
  }
  lc_vindex_free(s->ix);
  s->ix = x;
  s->stale = 0;
  return 0;
}

int lc_rstore_open(const char *path, const struct lc_rstore_opts *o, struct lc_rstore **out,
                   char *err, size_t errlen) {
  *out = NULL;
  struct lc_rstore *s = lc_calloc(1, sizeof *s);
  if (!s) return LC_ENOMEM;
  size_t pl = strlen(path);
  s->path = lc_strdup(path);
  s->ixpath = lc_malloc(pl + 8);
  if (!s->path || !s->ixpath) {
    lc_rstore_close(s);
    return LC_ENOMEM;
  }
  snprintf(s->ixpath, pl + 8, "%s.hnsw", path);
  s->exact_only = o->exact_only;
  s->hp = o->hnsw;
  int rc = 0;
  /* FULLMUTEX: two threads use this connection in turn (rwork.h: the
   * collection's thread, the owner's between jobs); SQLite's own mutex is
   * a second guard, at little cost */
  if (sqlite3_open_v2(path, &s->db,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, NULL)) {
    rc = fail(s, LC_EIO, "cannot open %s: %s", path, s->db ? sqlite3_errmsg(s->db) : "no memory");
    goto out;
  }
  sqlite3_busy_timeout(s->db, 5000);
  char *em = NULL;
  if (sqlite3_exec(s->db, SCHEMA, NULL, NULL, &em)) {
    rc = fail(s, LC_EIO, "%s is not a luact collection: %s", path, em ? em : "?");
    sqlite3_free(em);
    goto out;
  }
  char *m, *d = NULL;
  if ((rc = meta_get(s, "model", &m)) || (rc = meta_get(s, "dims", &d))) {
    lc_free(m);
    goto out;
  }
  size_t sd = d ? (size_t)strtoull(d, NULL, 10) : 0;
  if (m && o->model && strcmp(m, o->model))
    rc = fail(s, LC_EINVAL, "%s holds vectors of model %s, not %s: use another path", path, m,
              o->model);
  else if (sd && o->dims && sd != o->dims)
    rc = fail(s, LC_EINVAL, "%s holds %zu-dimensional vectors, not %zu", path, sd, o->dims);
  s->model = m ? m : (o->model ? lc_strdup(o->model) : NULL);
  if (!s->model && o->model && !rc) rc = fail(s, LC_ENOMEM, "out of memory");
  s->dims = sd ? sd : o->dims;
  lc_free(d);
  if (rc) goto out;
  if (!m && o->model && (rc = meta_set(s, "model", o->model))) goto out;
  if (!s->dims) goto out; /* empty and no dims yet: the first add sets them */
  if (!sd) {
    char b[32];
    snprintf(b, sizeof b, "%zu", s->dims);
    if ((rc = meta_set(s, "dims", b))) goto out;
  }
  /* The saved index, when it matches the rows; else rebuilt. */
  char ierr[512];
  struct lc_vindex *x = NULL;
  int lr = lc_vindex_load(s->ixpath, &x, ierr, sizeof ierr);
  int64_t rows = count_rows(s);
  if (lr == 0 && (lc_vindex_dims(x) != s->dims || (int64_t)lc_vindex_count(x) != rows ||
                  lc_vindex_has_graph(x) != !s->exact_only)) {
    /* Stale, not damaged: rows were added or replaced after the last
     * save (or the settings changed). The rows are the truth. */
    lc_vindex_free(x);
    x = NULL;
    lr = LC_ENOTFOUND;
  }
  if (lr == 0) {
    /* Settings given now win over the saved search width. */
    if (o->hnsw.ef_search > 0) lc_vindex_set_ef(x, o->hnsw.ef_search);
    s->ix = x;
  } else if (lr == LC_EINVAL && !o->rebuild) {
    rc = fail(s, LC_EINVAL, "%s: open with rebuild = true to rebuild it from the rows", ierr);
  } else if (lr == LC_ENOMEM) {
    rc = fail(s, LC_ENOMEM, "out of memory");
  } else {
    rc = rebuild(s);
  }
out:
  if (rc) {
    snprintf(err, errlen, "%s", s->err);
    lc_rstore_close(s);
    return rc;
  }
  *out = s;
  return 0;
}

static void drop_pending(struct lc_rstore *s) {
  for (size_t i = 0; i < s->n_pend; i++) lc_free(s->pend[i].v);
  s->n_pend = 0;
}

void lc_rstore_close(struct lc_rstore *s) {
  if (!s) return;
  if (s->in_tx) lc_rstore_rollback(s);
  drop_pending(s);
  lc_free(s->pend);
  /* The last connection to a WAL database checkpoints it here (copies
   * the log into the file and syncs it). */
  if (s->db && lc_rstore_hold) lc_rstore_hold("close");
  if (s->db) sqlite3_close_v2(s->db);
  lc_vindex_free(s->ix);
  lc_free(s->path);
  lc_free(s->ixpath);
  lc_free(s->model);
  lc_free(s);
}

size_t lc_rstore_count(const struct lc_rstore *s) {
  return s->ix ? lc_vindex_count(s->ix) : 0;
}

int lc_rstore_begin(struct lc_rstore *s) {
  if (s->in_tx) return fail(s, LC_ESTATE, "a transaction is already open");
  if (sqlite3_exec(s->db, "BEGIN IMMEDIATE", NULL, NULL, NULL)) return dberr(s, "begin");
  s->in_tx = 1;
  return 0;
}

int lc_rstore_commit(struct lc_rstore *s) {
  if (!s->in_tx) return fail(s, LC_ESTATE, "no transaction is open");
  if (lc_rstore_hold) lc_rstore_hold("commit");
  if (sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL)) {
    int rc = dberr(s, "commit");
    lc_rstore_rollback(s);
    return rc;
  }
  s->in_tx = 0;
  /* Committed: now the vectors go into the index. */
  int rc = 0;
  if (!s->ix && !s->stale && s->dims &&
      lc_vindex_new(s->dims, !s->exact_only, &s->hp, &s->ix))
    s->stale = 1;
  for (size_t i = 0; i < s->n_pend && !s->stale; i++)
    if (lc_vindex_add(s->ix, s->pend[i].v, s->pend[i].id)) s->stale = 1; /* rebuilt later */
  drop_pending(s);
  return rc;
}

void lc_rstore_rollback(struct lc_rstore *s) {
  if (s->in_tx) sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
  s->in_tx = 0;
  drop_pending(s);
}

int lc_rstore_doc(struct lc_rstore *s, const char *source, int64_t *id, char sha[65]) {
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(s->db, "SELECT id, sha FROM docs WHERE source=?", -1, &st, NULL))
    return dberr(s, "doc");
  sqlite3_bind_text(st, 1, source, -1, SQLITE_STATIC);
  int rc = LC_ENOTFOUND;
  if (sqlite3_step(st) == SQLITE_ROW) {
    *id = sqlite3_column_int64(st, 0);
    snprintf(sha, 65, "%s", (const char *)sqlite3_column_text(st, 1));
    rc = 0;
  }
  sqlite3_finalize(st);
  return rc;
}

int lc_rstore_add_doc(struct lc_rstore *s, const char *source, const char *sha, size_t bytes,
                      const char *meta_json, int64_t *id) {
  if (!s->in_tx) return fail(s, LC_ESTATE, "add_doc outside a transaction");
  sqlite3_stmt *st;
  int64_t old;
  char osha[65];
  if (lc_rstore_doc(s, source, &old, osha) == 0) {
    /* Its chunks go (ON DELETE CASCADE): the index no longer matches. */
    if (sqlite3_prepare_v2(s->db, "DELETE FROM docs WHERE id=?", -1, &st, NULL))
      return dberr(s, "replace");
    sqlite3_bind_int64(st, 1, old);
    int r = sqlite3_step(st);
    sqlite3_finalize(st);
    if (r != SQLITE_DONE) return dberr(s, "replace");
    s->stale = 1;
  }
  if (sqlite3_prepare_v2(s->db, "INSERT INTO docs(source, sha, bytes, meta) VALUES(?,?,?,json(?))",
                         -1, &st, NULL))
    return dberr(s, "add_doc");
  sqlite3_bind_text(st, 1, source, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 2, sha, -1, SQLITE_STATIC);
  sqlite3_bind_int64(st, 3, (sqlite3_int64)bytes);
  sqlite3_bind_text(st, 4, meta_json ? meta_json : "{}", -1, SQLITE_STATIC);
  int r = sqlite3_step(st);
  sqlite3_finalize(st);
  if (r != SQLITE_DONE) return dberr(s, "add_doc");
  *id = sqlite3_last_insert_rowid(s->db);
  return 0;
}

int lc_rstore_add_chunk(struct lc_rstore *s, const struct lc_rchunk *c, const float *v,
                        int64_t *id) {
  if (!s->in_tx) return fail(s, LC_ESTATE, "add_chunk outside a transaction");
  if (!s->dims) return fail(s, LC_ESTATE, "dimensions are not known yet");
  float *cp = lc_malloc(s->dims * sizeof *cp);
  unsigned char *blob = lc_malloc(s->dims * 4);
  int rc = 0;
  if (!cp || !blob) {
    rc = fail(s, LC_ENOMEM, "out of memory");
    goto out;
  }
  memcpy(cp, v, s->dims * sizeof *cp);
  if (lc_vindex_normalise(cp, s->dims)) {
    rc = fail(s, LC_EINVAL, "chunk %d: the vector is zero or not finite", c->ord + 1);
    goto out;
  }
  if (s->n_pend == s->cap_pend) {
    size_t nc = s->cap_pend ? s->cap_pend * 2 : 64;
    struct pending *p = lc_realloc(s->pend, nc * sizeof *p);
    if (!p) {
      rc = fail(s, LC_ENOMEM, "out of memory");
      goto out;
    }
    s->pend = p;
    s->cap_pend = nc;
  }
  to_le(cp, s->dims, blob);
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(s->db,
                         "INSERT INTO chunks(doc, ord, start, start_cp, text, heading, vec)"
                         " VALUES(?,?,?,?,?,?,?)",
                         -1, &st, NULL)) {
    rc = dberr(s, "add_chunk");
    goto out;
  }
  sqlite3_bind_int64(st, 1, c->doc);
  sqlite3_bind_int(st, 2, c->ord);
  sqlite3_bind_int64(st, 3, (sqlite3_int64)c->start);
  sqlite3_bind_int64(st, 4, (sqlite3_int64)c->start_cp);
  sqlite3_bind_text(st, 5, c->text, (int)c->len, SQLITE_STATIC);
  if (c->heading) sqlite3_bind_text(st, 6, c->heading, -1, SQLITE_STATIC);
  sqlite3_bind_blob(st, 7, blob, (int)(s->dims * 4), SQLITE_STATIC);
  int r = sqlite3_step(st);
  sqlite3_finalize(st);
  if (r != SQLITE_DONE) {
    rc = dberr(s, "add_chunk");
    goto out;
  }
  *id = sqlite3_last_insert_rowid(s->db);
  s->pend[s->n_pend].id = *id;
  s->pend[s->n_pend++].v = cp;
  cp = NULL;
out:
  lc_free(cp);
  lc_free(blob);
  return rc;
}

static void text_sha(const char *text, size_t len, char out[65]) {
  lc_sha256_hex(text, len, out);
}

int lc_rstore_cache_get(struct lc_rstore *s, const char *model, size_t dims, const char *text,
                        size_t len, float *v) {
  char sha[65];
  text_sha(text, len, sha);
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(s->db, "SELECT vec FROM embed_cache WHERE model=? AND dims=? AND sha=?",
                         -1, &st, NULL))
    return dberr(s, "cache");
  sqlite3_bind_text(st, 1, model, -1, SQLITE_STATIC);
  sqlite3_bind_int64(st, 2, (sqlite3_int64)dims);
  sqlite3_bind_text(st, 3, sha, -1, SQLITE_STATIC);
  int rc = 0;
  if (sqlite3_step(st) == SQLITE_ROW) {
    /* A damaged entry is a miss: it is asked for again and replaced. */
    if ((size_t)sqlite3_column_bytes(st, 0) == dims * 4 &&
        from_le(sqlite3_column_blob(st, 0), dims, v) == 0)
      rc = 1;
  }
  sqlite3_finalize(st);
  return rc;
}

int lc_rstore_cache_put(struct lc_rstore *s, const char *model, size_t dims, const char *text,
                        size_t len, const float *v) {
  for (size_t i = 0; i < dims; i++)
    if (!isfinite(v[i])) return fail(s, LC_EINVAL, "cache: vector is not finite");
  char sha[65];
  text_sha(text, len, sha);
  unsigned char *blob = lc_malloc(dims * 4 + 1);
  if (!blob) return fail(s, LC_ENOMEM, "out of memory");
  to_le(v, dims, blob);
  sqlite3_stmt *st;
  int rc = 0;
  if (sqlite3_prepare_v2(s->db,
                         "INSERT OR REPLACE INTO embed_cache(model, dims, sha, vec) VALUES(?,?,?,?)",
                         -1, &st, NULL)) {
    lc_free(blob);
    return dberr(s, "cache");
  }
  sqlite3_bind_text(st, 1, model, -1, SQLITE_STATIC);
  sqlite3_bind_int64(st, 2, (sqlite3_int64)dims);
  sqlite3_bind_text(st, 3, sha, -1, SQLITE_STATIC);
  sqlite3_bind_blob(st, 4, blob, (int)(dims * 4), SQLITE_STATIC);
  if (sqlite3_step(st) != SQLITE_DONE) rc = dberr(s, "cache");
  sqlite3_finalize(st);
  lc_free(blob);
  /* The first vectors fix the collection's dimensions. */
  if (!rc && !s->dims) {
    char b[32];
    snprintf(b, sizeof b, "%zu", dims);
    s->dims = dims;
    rc = meta_set(s, "dims", b);
  }
  return rc;
}

static int key_ok(const char *k) {
  if (!*k) return 0;
  for (; *k; k++)
    if (!((*k >= 'a' && *k <= 'z') || (*k >= 'A' && *k <= 'Z') || (*k >= '0' && *k <= '9') ||
          *k == '_'))
      return 0;
  return 1;
}

int lc_rstore_allowed(struct lc_rstore *s, const char *const *keys, const char *const *vals,
                      size_t n, int64_t **labels, size_t *n_labels) {
  *labels = NULL;
  *n_labels = 0;
  char sql[4096] = "SELECT c.id FROM chunks c JOIN docs d ON d.id = c.doc WHERE 1";
  for (size_t i = 0; i < n; i++) {
    if (!key_ok(keys[i]) || strlen(keys[i]) > 64)
      return fail(s, LC_EINVAL, "filter key '%.80s': use letters, digits and _", keys[i]);
    size_t l = strlen(sql);
    if (!strcmp(keys[i], "source"))
      snprintf(sql + l, sizeof sql - l, " AND d.source = json_extract(?, '$')");
    else /* compared as JSON values: "3" matches 3, "\"3\"" matches "3" */
      snprintf(sql + l, sizeof sql - l,
               " AND json_quote(json_extract(d.meta, '$.%s')) = json_quote(json_extract(?, '$'))",
               keys[i]);
  }
  if (n > 32) return fail(s, LC_EINVAL, "at most 32 filter keys");
  strcat(sql, " ORDER BY c.id");
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL)) return dberr(s, "filter");
  for (size_t i = 0; i < n; i++) sqlite3_bind_text(st, (int)i + 1, vals[i], -1, SQLITE_STATIC);
  size_t cap = 0;
  int rc = 0, r;
  while ((r = sqlite3_step(st)) == SQLITE_ROW) {
    if (*n_labels == cap) {
      cap = cap ? cap * 2 : 256;
      int64_t *p = lc_realloc(*labels, cap * sizeof *p);
      if (!p) {
        rc = fail(s, LC_ENOMEM, "out of memory");
        break;
      }
      *labels = p;
    }
    (*labels)[(*n_labels)++] = sqlite3_column_int64(st, 0);
  }
  if (!rc && r != SQLITE_DONE) rc = dberr(s, "filter (values are JSON text)");
  sqlite3_finalize(st);
  if (rc) {
    lc_free(*labels);
    *labels = NULL;
    *n_labels = 0;
  }
  return rc;
}

int lc_rstore_stale(const struct lc_rstore *s) { return s->dims && (s->stale || !s->ix); }

struct lc_vindex *lc_rstore_index(struct lc_rstore *s) {
  if (!s->dims) return NULL;
  if ((s->stale || !s->ix) && rebuild(s)) return NULL;
  return s->ix;
}

static char *col_dup(sqlite3_stmt *st, int i) {
  const unsigned char *t = sqlite3_column_text(st, i);
  return t ? lc_strndup((const char *)t, (size_t)sqlite3_column_bytes(st, i)) : NULL;
}

int lc_rstore_row(struct lc_rstore *s, int64_t id, struct lc_rrow *r) {
  memset(r, 0, sizeof *r);
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(s->db,
                         "SELECT c.text, d.source, c.heading, d.meta, c.start, c.start_cp, c.ord"
                         " FROM chunks c JOIN docs d ON d.id = c.doc WHERE c.id=?",
                         -1, &st, NULL))
    return dberr(s, "row");
  sqlite3_bind_int64(st, 1, id);
  int rc = LC_ENOTFOUND;
  if (sqlite3_step(st) == SQLITE_ROW) {
    r->id = id;
    r->text = col_dup(st, 0);
    r->source = col_dup(st, 1);
    r->heading = col_dup(st, 2);
    r->meta_json = col_dup(st, 3);
    r->start = (size_t)sqlite3_column_int64(st, 4);
    r->start_cp = (size_t)sqlite3_column_int64(st, 5);
    r->ord = sqlite3_column_int(st, 6);
    rc = r->text && r->source && r->meta_json ? 0 : LC_ENOMEM;
  }
  sqlite3_finalize(st);
  if (rc) lc_rrow_free(r);
  return rc;
}

void lc_rrow_free(struct lc_rrow *r) {
  lc_free(r->text);
  lc_free(r->source);
  lc_free(r->heading);
  lc_free(r->meta_json);
  memset(r, 0, sizeof *r);
}

int lc_rstore_save(struct lc_rstore *s) {
  struct lc_vindex *x = lc_rstore_index(s);
  if (!x) return s->dims ? LC_EIO : 0;
  if (lc_rstore_hold) lc_rstore_hold("save");
  return lc_vindex_save(x, s->ixpath, s->err, sizeof s->err);
}
