/* l_retrieval.c: luact.retrieval's C half: split (chunk.c) and store
 * (rstore.c: a collection in SQLite with its vector index). The Lua half,
 * runtime/lua/retrieval.lua, builds open / query / luact.retrieve on these.
 *
 * Every store call that writes, syncs, rebuilds or searches a large index
 * runs on the collection's thread (rwork.h) when its task can yield: the
 * call copies its arguments into a job, queues it and yields; the job's
 * eventfd wakes the task, which pushes the results. Jobs run in the order
 * made, so two adds then a search from one task see both adds, and an add
 * and a search from two tasks never interleave. Point reads (a document's
 * hash, one cached vector, a small search with its rows) run inline when
 * the thread is idle, queue behind it when not. A killed task drops its
 * job if it is still queued and leaves it to finish (detached) if it
 * runs. Where the caller cannot yield (no task, a metamethod, a coroutine
 * of the script's), a call runs inline on the caller's thread while the
 * collection's thread is idle, and a slow one is refused while other tasks
 * run: there the loop would wait for it. */
#include <lauxlib.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "chunk.h"
#include "conv.h"
#include "l_luact.h"
#include "l_opts.h"
#include "l_retrieval.h"
#include "lc.h"
#include "fdwait.h"
#include "offload.h"
#include "rstore.h"
#include "rwork.h"
#include "sched.h"
#include "sha256.h"

#define STORE_MT "luact.RetrievalStore"
#define OP_MT "luact.RetrievalOp"

/* Searches over more floats than this run off the loop thread. */
#define BACKGROUND_FLOATS ((size_t)1 << 20)
/* A filter passing at most this many chunks is searched exactly. */
#define EXACT_FILTER_MAX 2000

struct store_box {
  struct lc_rwork *w; /* owns the store; NULL once closed */
};

static struct lc_rwork *check_store(lua_State *L, int idx) {
  struct store_box *b = luaL_checkudata(L, idx, STORE_MT);
  if (!b->w) luaL_error(L, "luact.retrieval: the store is closed");
  return b->w;
}

/* ---- split ---- */

#define CHUNKS_MT "luact.RetrievalChunks"

/* The chunk list while it is pushed: a to-be-closed box, so a push that
 * raises (a Lua memory cap) frees it instead of leaking it. */
static int chunks_gc(lua_State *L) {
  lc_chunks_free(luaL_checkudata(L, 1, CHUNKS_MT)); /* idempotent */
  return 0;
}

/* A split of a large document from a task runs on the offload pool (63
 * MB took 1.2 s): the job owns a copy of the text, since a killed task's
 * string may be collected while the pool still reads it. A killed task's
 * job finishes on its thread and frees itself there. */
#define SPLIT_MT "luact.RetrievalSplit"
#define SPLIT_OFF_LOOP ((size_t)1 << 20) /* bytes */

struct split_job {
  char *doc;
  size_t len;
  struct lc_chunk_opts o;
  struct lc_chunks c;
  int rc;
  char err[256];
};

static void split_free(void *p) {
  struct split_job *j = p;
  if (!j) return;
  lc_chunks_free(&j->c);
  lc_free(j->doc);
  lc_free(j);
  if (lc_chunk_hold) lc_chunk_hold("split ended"); /* tests */
}

static void split_run(void *p) {
  struct split_job *j = p;
  j->rc = lc_chunk_split(j->doc, j->len, &j->o, &j->c, j->err, sizeof j->err);
}

struct split_op {
  struct split_job *j; /* owned until the job takes it */
  struct lc_offload_wait ow;
};

/* __close, __gc, the normal end: a running job is left to finish. */
static int split_gc(lua_State *L) {
  struct split_op *op = luaL_checkudata(L, 1, SPLIT_MT);
  lc_offload_wait_close(&op->ow);
  split_free(op->j);
  op->j = NULL;
  return 0;
}

/* [-0, +(1|3), m] The chunks of doc (or nil, msg, code). */
static int push_chunks(lua_State *L, const char *doc, const struct lc_chunks *c, int rc,
                       const char *err) {
  if (rc == LC_ENOMEM) return luaL_error(L, "out of memory");
  if (rc) {
    lua_pushnil(L);
    lua_pushstring(L, err);
    lua_pushstring(L, rc == LC_ETOOBIG ? "too_big" : "bad_document");
    return 3;
  }
  lua_createtable(L, (int)c->n, 0);
  for (size_t i = 0; i < c->n; i++) {
    lua_createtable(L, 0, 4);
    lua_pushlstring(L, doc + c->v[i].start, c->v[i].len);
    lua_setfield(L, -2, "text");
    lc_l_set_int(L, "start", (lua_Integer)c->v[i].start + 1);
    lc_l_set_int(L, "char_start", (lua_Integer)c->v[i].start_cp + 1);
    lc_l_set_str(L, "heading", c->v[i].heading);
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
  return 1;
}

static int split_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  struct split_op *op = lua_touserdata(L, (int)ctx);
  if (!lc_offload_wait_done(&op->ow)) return lua_yieldk(L, 0, ctx, split_k);
  struct split_job *j = lc_offload_arg(op->ow.job);
  return push_chunks(L, j->doc, &j->c, j->rc, j->err); /* the op closes on return */
}

/* [-0, +?, e] From a task that can yield: the split on the offload pool,
 * the task yielding. 0 when it cannot be done so (the caller splits
 * inline). */
static int split_off_loop(lua_State *L, const char *doc, size_t len,
                          const struct lc_chunk_opts *o) {
  struct lc_sched *sch = lc_sched_get(L);
  struct lc_task *task = sch ? lc_task_current(L) : NULL;
  if (!task || !lua_isyieldable(L)) return 0;
  struct split_op *op = lua_newuserdatauv(L, sizeof *op, 0);
  memset(op, 0, sizeof *op);
  if (luaL_newmetatable(L, SPLIT_MT)) {
    lua_pushcfunction(L, split_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, split_gc);
    lua_setfield(L, -2, "__close");
  }
  lua_setmetatable(L, -2);
  int idx = lua_gettop(L);
  lua_toclose(L, idx);
  struct split_job *j = op->j = lc_calloc(1, sizeof *j);
  if (!j) return luaL_error(L, "out of memory");
  j->o = *o;
  j->len = len;
  if (!(j->doc = lc_malloc(len ? len : 1))) return luaL_error(L, "out of memory");
  memcpy(j->doc, doc, len);
  op->j = NULL; /* the job takes it, whatever the outcome */
  const char *step;
  int rc = lc_offload_wait_start(&op->ow, task, lc_sched_loop(sch), split_run, split_free, j,
                                 &step);
  if (rc == LC_ENOMEM) return luaL_error(L, "out of memory");
  if (rc) return luaL_error(L, "luact.retrieval.split: %s", step);
  return lua_yieldk(L, 0, idx, split_k);
}

/* luact.retrieval.split(text, {size=, overlap=, markdown=}) -> chunks.
 * A document over a megabyte is split off the loop when the caller is a
 * task that can yield. */
static int l_split(lua_State *L) {
  size_t len;
  const char *doc = luaL_checklstring(L, 1, &len);
  struct lc_chunk_opts o = {1000, 200, 0};
  if (!lua_isnoneornil(L, 2)) {
    luaL_checktype(L, 2, LUA_TTABLE);
    lc_l_check_opts(L, 2, "luact.retrieval.split");
    if (lua_getfield(L, 2, "size") != LUA_TNIL) {
      lua_Integer v = luaL_checkinteger(L, -1);
      if (v < 1 || v > 1000000) return luaL_error(L, "luact.retrieval.split: 'size' must be 1..1000000");
      o.size = (size_t)v;
    }
    if (lua_getfield(L, 2, "overlap") != LUA_TNIL) {
      lua_Integer v = luaL_checkinteger(L, -1);
      if (v < 0) return luaL_error(L, "luact.retrieval.split: 'overlap' must be >= 0");
      o.overlap = (size_t)v;
    } else if (o.overlap >= o.size) {
      o.overlap = o.size / 5; /* the default scales down with a small size */
    }
    lua_getfield(L, 2, "markdown");
    o.markdown = lua_toboolean(L, -1);
    lua_pop(L, 3);
  }
  if (o.overlap >= o.size)
    return luaL_error(L, "luact.retrieval.split: 'overlap' (%d) must be smaller than 'size' (%d)",
                      (int)o.overlap, (int)o.size);
  lua_settop(L, 2);
  if (len > SPLIT_OFF_LOOP && len <= LC_CHUNK_MAX_DOC) {
    int n = split_off_loop(L, doc, len, &o);
    if (n) return n;
  }
  struct lc_chunks *cp = lua_newuserdatauv(L, sizeof *cp, 0); /* 3 */
  memset(cp, 0, sizeof *cp);
  if (luaL_newmetatable(L, CHUNKS_MT)) {
    lua_pushcfunction(L, chunks_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, chunks_gc);
    lua_setfield(L, -2, "__close");
  }
  lua_setmetatable(L, 3);
  lua_toclose(L, 3);
  struct lc_chunks c;
  char err[256];
  int rc = lc_chunk_split(doc, len, &o, &c, err, sizeof err);
  if (rc == 0) *cp = c; /* owned by the box from here */
  return push_chunks(L, doc, cp, rc, err); /* the box closes on return and frees the list */
}

/* ---- store ---- */

static int store_gc(lua_State *L) {
  struct store_box *b = luaL_checkudata(L, 1, STORE_MT);
  /* Queued jobs are dropped (their tasks get nil, "closed"); a running
   * one finishes on its thread, which then frees the store. */
  lc_rwork_close(b->w);
  b->w = NULL;
  return 0;
}


/* [-0, +0, e] The vector at idx: a list of dims finite numbers, into v. */
static void check_vector(lua_State *L, int idx, size_t dims, float *v, const char *what) {
  if (!lua_istable(L, idx)) luaL_error(L, "luact.retrieval: %s must be a list of numbers", what);
  lua_Integer n = luaL_len(L, idx);
  if ((size_t)n != dims)
    luaL_error(L, "luact.retrieval: %s has %d values, the collection holds %d", what, (int)n,
               (int)dims);
  for (lua_Integer i = 1; i <= n; i++) {
    lua_rawgeti(L, idx, i);
    int isnum;
    lua_Number x = lua_tonumberx(L, -1, &isnum);
    lua_pop(L, 1);
    if (!isnum || !isfinite(x) || fabs(x) > 3.4e38)
      luaL_error(L, "luact.retrieval: %s value %d is not a finite number", what, (int)i);
    v[i - 1] = (float)x;
  }
}

/* ---- a call as a job: its arguments, copied, and its results ---- */

enum {
  K_BEGIN, K_COMMIT, K_ROLLBACK, K_DOC, K_UNCHANGED, K_ADD_DOC, K_ADD_CHUNK,
  K_CACHE_GET, K_CACHE_PUT, K_CACHE_GET_MANY, K_CACHE_PUT_MANY, K_ADD, K_COUNT,
  K_SAVE, K_SEARCH, K_OPEN
};

/* Everything a job reads is its own copy (lc_malloc'd, freed by
 * rarg_free): the Lua values it came from may be collected meanwhile. */
struct rarg {
  int kind;
  /* in */
  char *source, *text, *meta, *model;
  size_t text_len;
  struct lc_rchunk c;     /* K_ADD_CHUNK: text and heading owned */
  struct lc_rchunk *chunks; /* K_ADD: texts and headings owned */
  size_t n_chunks;
  float *vecs; /* n vectors of dims floats */
  size_t dims;
  char **texts; /* K_CACHE_*_MANY */
  size_t *lens, n_texts;
  /* K_SEARCH */
  float *q;
  size_t k;
  int exact, ef;
  char **fkeys, **fvals;
  size_t n_filter;
  int64_t *allowed;
  size_t n_allowed;
  struct lc_vhit *hits;
  size_t n_hits;
  struct lc_rrow *rows;
  int vrc; /* lc_vindex_search's */
  /* K_OPEN: the path is source */
  struct lc_rstore_opts oo;
  struct lc_rstore *opened; /* until adopted */
  int box_idx;              /* the store userdata, on the caller's stack */
  /* out */
  int rc;
  const char *code;
  char err[512];
  int64_t id;
  char sha[65];
  int flag;
  unsigned char *found;
  size_t count;
};

static void free_strs(char **v, size_t n) {
  if (!v) return;
  for (size_t i = 0; i < n; i++) lc_free(v[i]);
  lc_free(v);
}

static void rarg_free(void *p) {
  struct rarg *a = p;
  if (!a) return;
  lc_free(a->source);
  lc_free(a->text);
  lc_free(a->meta);
  lc_free(a->model);
  lc_free((char *)a->c.text);
  lc_free((char *)a->c.heading);
  for (size_t i = 0; a->chunks && i < a->n_chunks; i++) {
    lc_free((char *)a->chunks[i].text);
    lc_free((char *)a->chunks[i].heading);
  }
  lc_free(a->chunks);
  lc_free(a->vecs);
  free_strs(a->texts, a->n_texts);
  lc_free(a->lens);
  lc_free(a->q);
  free_strs(a->fkeys, a->n_filter);
  free_strs(a->fvals, a->n_filter);
  lc_free(a->allowed);
  lc_free(a->hits);
  for (size_t i = 0; a->rows && i < a->n_hits; i++) lc_rrow_free(&a->rows[i]);
  lc_free(a->rows);
  lc_free(a->found);
  lc_rstore_close(a->opened); /* a killed open: nobody took it */
  lc_free(a);
}

/* Records the store's error in a (the job's result). */
static void rfail(struct rarg *a, struct lc_rstore *s, int rc) {
  a->rc = rc;
  a->code = rc == LC_EINVAL ? "bad_input" : rc == LC_ESTATE ? "state" : lc_rstore_errcode(s);
  snprintf(a->err, sizeof a->err, "%s", lc_rstore_error(s));
}

static int allowed_fn(void *ud, int64_t label) {
  const struct rarg *a = ud;
  size_t lo = 0, hi = a->n_allowed;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (a->allowed[mid] < label) lo = mid + 1;
    else hi = mid;
  }
  return lo < a->n_allowed && a->allowed[lo] == label;
}

static void run_search(struct lc_rstore *s, struct rarg *a) {
  if (a->n_filter) {
    int rc = lc_rstore_allowed(s, (const char *const *)a->fkeys, (const char *const *)a->fvals,
                               a->n_filter, &a->allowed, &a->n_allowed);
    if (rc) return rfail(a, s, rc);
    if (!a->allowed) return; /* nothing passes */
    if (a->n_allowed <= EXACT_FILTER_MAX) a->exact = 1;
  }
  /* Rebuilt first when stale (every vector read and inserted again). */
  const struct lc_vindex *ix = lc_rstore_index(s);
  if (!ix) return rfail(a, s, LC_EIO);
  if (lc_rstore_hold) lc_rstore_hold("search");
  a->vrc = lc_vindex_search(ix, a->q, a->k, a->exact, a->ef, a->allowed ? allowed_fn : NULL, a,
                            a->hits, &a->n_hits);
  if (a->vrc) {
    a->n_hits = 0;
    return;
  }
  if (!(a->rows = lc_calloc(a->n_hits ? a->n_hits : 1, sizeof *a->rows))) {
    a->n_hits = 0;
    return rfail(a, s, LC_ENOMEM);
  }
  for (size_t i = 0; i < a->n_hits; i++) {
    int rc = lc_rstore_row(s, a->hits[i].label, &a->rows[i]);
    if (rc == LC_ENOTFOUND) continue; /* deleted since: rows[i].id stays 0 */
    if (rc) return rfail(a, s, rc);
  }
}

/* The job (lc_rjob_fn): on the collection's thread, or inline between
 * jobs. */
static void rarg_run(struct lc_rstore *s, void *p) {
  struct rarg *a = p;
  int rc = 0;
  if (!s && a->kind != K_OPEN) { /* queued behind a close */
    a->rc = LC_ESTATE;
    a->code = "closed";
    snprintf(a->err, sizeof a->err, "luact.retrieval: the store was closed");
    return;
  }
  switch (a->kind) {
  case K_BEGIN: rc = lc_rstore_begin(s); break;
  case K_COMMIT: rc = lc_rstore_commit(s); break;
  case K_ROLLBACK: lc_rstore_rollback(s); break;
  case K_DOC:
    rc = lc_rstore_doc(s, a->source, &a->id, a->sha);
    if (rc == LC_ENOTFOUND) a->flag = 0, rc = 0;
    else if (!rc) a->flag = 1;
    break;
  case K_UNCHANGED: {
    char now[65];
    rc = lc_rstore_doc(s, a->source, &a->id, a->sha);
    if (rc && rc != LC_ENOTFOUND) break;
    lc_sha256_hex(a->text, a->text_len, now);
    a->flag = rc == 0 && !strcmp(a->sha, now);
    rc = 0;
    break;
  }
  case K_ADD_DOC:
    lc_sha256_hex(a->text, a->text_len, a->sha);
    rc = lc_rstore_add_doc(s, a->source, a->sha, a->text_len, a->meta, &a->id);
    break;
  case K_ADD_CHUNK:
    rc = lc_rstore_add_chunk(s, &a->c, a->vecs, &a->id); /* dims only ever set once */
    break;
  case K_CACHE_GET:
    rc = lc_rstore_cache_get(s, a->model, a->dims, a->text, a->text_len, a->vecs);
    if (rc >= 0) a->flag = rc, rc = 0;
    break;
  case K_CACHE_PUT:
    rc = lc_rstore_cache_put(s, a->model, a->dims, a->text, a->text_len, a->vecs);
    break;
  case K_CACHE_GET_MANY:
    for (size_t i = 0; i < a->n_texts && !rc; i++) {
      rc = lc_rstore_cache_get(s, a->model, a->dims, a->texts[i], a->lens[i],
                               a->vecs + i * a->dims);
      if (rc >= 0) a->found[i] = (unsigned char)rc, rc = 0;
    }
    break;
  case K_CACHE_PUT_MANY: {
    /* One transaction, one sync (not one per vector); inside a script's
     * open transaction they join it. */
    int own = lc_rstore_begin(s) == 0;
    for (size_t i = 0; i < a->n_texts && !rc; i++)
      rc = lc_rstore_cache_put(s, a->model, a->dims, a->texts[i], a->lens[i],
                               a->vecs + i * a->dims);
    if (own && rc) lc_rstore_rollback(s);
    else if (own) rc = lc_rstore_commit(s);
    break;
  }
  case K_ADD: {
    /* The whole document in one transaction: in whole or not at all. */
    if (lc_rstore_dims(s) != a->dims) {
      a->rc = LC_ESTATE;
      a->code = "state";
      snprintf(a->err, sizeof a->err, "the collection's dimensions changed");
      return;
    }
    if ((rc = lc_rstore_begin(s))) break;
    lc_sha256_hex(a->text, a->text_len, a->sha);
    rc = lc_rstore_add_doc(s, a->source, a->sha, a->text_len, a->meta, &a->id);
    for (size_t i = 0; i < a->n_chunks && !rc; i++) {
      int64_t cid;
      a->chunks[i].doc = a->id;
      rc = lc_rstore_add_chunk(s, &a->chunks[i], a->vecs + i * a->dims, &cid);
    }
    if (rc) {
      rfail(a, s, rc); /* before the rollback: it keeps the message */
      lc_rstore_rollback(s);
      return;
    }
    rc = lc_rstore_commit(s); /* rolls back itself when it fails */
    break;
  }
  case K_COUNT:
    if (lc_rstore_dims(s) && !lc_rstore_index(s)) rc = LC_EIO;
    a->count = lc_rstore_count(s);
    break;
  case K_SAVE: rc = lc_rstore_save(s); break;
  case K_SEARCH: run_search(s, a); return;
  case K_OPEN:
    a->rc = lc_rstore_open(a->source, &a->oo, &a->opened, a->err, sizeof a->err);
    a->code = strstr(a->err, "rebuild") ? "corrupt_index" : a->rc == LC_EINVAL ? "mismatch" : "io";
    return;
  }
  if (rc) rfail(a, s, rc);
}

/* [-0, +(0|1|2|3), m] A finished job's results, or nil, msg, code. */
static int rarg_push(lua_State *L, struct rarg *a) {
  if (a->rc == LC_ENOMEM || a->vrc == LC_ENOMEM) return luaL_error(L, "out of memory");
  if (a->rc) {
    lua_pushnil(L);
    lua_pushstring(L, a->err);
    lua_pushstring(L, a->code);
    return 3;
  }
  switch (a->kind) {
  case K_BEGIN:
  case K_COMMIT:
  case K_SAVE:
  case K_CACHE_PUT_MANY: lua_pushboolean(L, 1); return 1;
  case K_ROLLBACK:
  case K_CACHE_PUT: return 0;
  case K_DOC:
    if (!a->flag) return 0;
    lua_pushinteger(L, a->id);
    lua_pushstring(L, a->sha);
    return 2;
  case K_UNCHANGED: lua_pushboolean(L, a->flag); return 1;
  case K_ADD_DOC:
  case K_ADD_CHUNK: lua_pushinteger(L, a->id); return 1;
  case K_ADD: lua_pushinteger(L, (lua_Integer)a->n_chunks); return 1;
  case K_OPEN: {
    struct store_box *b = luaL_checkudata(L, a->box_idx, STORE_MT);
    lc_rwork_adopt(b->w, a->opened);
    a->opened = NULL;
    lua_pushvalue(L, a->box_idx);
    return 1;
  }
  case K_COUNT: lua_pushinteger(L, (lua_Integer)a->count); return 1;
  case K_CACHE_GET:
    if (!a->flag) return 0;
    lua_createtable(L, (int)a->dims, 0);
    for (size_t i = 0; i < a->dims; i++) {
      lua_pushnumber(L, a->vecs[i]);
      lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    return 1;
  case K_CACHE_GET_MANY:
    lua_createtable(L, (int)a->n_texts, 0);
    for (size_t j = 0; j < a->n_texts; j++) {
      if (!a->found[j]) continue;
      lua_createtable(L, (int)a->dims, 0);
      for (size_t i = 0; i < a->dims; i++) {
        lua_pushnumber(L, a->vecs[j * a->dims + i]);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
      }
      lua_rawseti(L, -2, (lua_Integer)j + 1);
    }
    return 1;
  case K_SEARCH:
    if (a->vrc) return luaL_error(L, "luact.retrieval: the query vector is zero or not finite");
    lua_createtable(L, (int)a->n_hits, 0);
    for (size_t i = 0; i < a->n_hits; i++) {
      const struct lc_rrow *r = &a->rows[i];
      if (!r->text) continue; /* deleted since: the index is rebuilt next time */
      lua_createtable(L, 0, 8);
      lc_l_set_int(L, "id", r->id);
      lc_l_set_num(L, "score", a->hits[i].score);
      lua_pushstring(L, r->text);
      lua_setfield(L, -2, "text");
      lc_l_set_str(L, "source", r->source);
      lc_l_set_str(L, "heading", r->heading);
      lc_l_set_int(L, "start", (lua_Integer)r->start + 1);
      lc_l_set_int(L, "char_start", (lua_Integer)r->start_cp + 1);
      lc_l_set_str(L, "meta", r->meta_json);
      lua_rawseti(L, -2, (lua_Integer)lua_rawlen(L, -2) + 1);
    }
    return 1;
  }
  return 0;
}

/* ---- the call in flight: a to-be-closed userdata on the caller's stack ---- */

struct rop {
  struct rarg *a;      /* owned until submitted */
  struct lc_rjob *job; /* then this, until released */
  struct lc_fdwait fw;
};

/* The one close: __close, __gc, the normal end. Stops watching before the
 * release can close the job's fd. */
static void op_close(struct rop *op) {
  lc_fdwait_stop(&op->fw);
  lc_rwork_release(op->job); /* a queued job is dropped, a running one detached */
  op->job = NULL;
  rarg_free(op->a);
  op->a = NULL;
}

static int op_gc(lua_State *L) {
  op_close(luaL_checkudata(L, 1, OP_MT));
  return 0;
}

/* The task is being killed (after the unwatch); its close follows. */
static void op_cancel(struct lc_fdwait *fw) {
  struct rop *op = (struct rop *)((char *)fw - offsetof(struct rop, fw));
  if (op->job) lc_rwork_cancel(op->job);
}

/* [-0, +1, m] A to-be-closed op with a fresh arg of this kind. */
static struct rarg *new_op(lua_State *L, int kind) {
  struct rop *op = lua_newuserdatauv(L, sizeof *op, 0);
  memset(op, 0, sizeof *op);
  luaL_setmetatable(L, OP_MT);
  lua_toclose(L, -1);
  if (!(op->a = lc_calloc(1, sizeof *op->a))) luaL_error(L, "out of memory");
  op->a->kind = kind;
  return op->a;
}

static int op_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  struct rop *op = lua_touserdata(L, (int)ctx);
  if (!lc_rwork_done(op->job)) { /* woken early: wait on */
    lc_fdwait_wait(&op->fw);
    return lua_yieldk(L, 0, ctx, op_k);
  }
  lc_fdwait_stop(&op->fw);
  if (lc_rwork_dropped(op->job)) {
    lua_pushnil(L);
    lua_pushstring(L, "luact.retrieval: the store was closed");
    lua_pushstring(L, "closed");
    return 3;
  }
  return rarg_push(L, lc_rwork_arg(op->job)); /* the op closes on return */
}

/* [-0, +?, e] Runs the call whose op is on top of the stack. From a task
 * that can yield: as a job when slow or when the thread is busy (so it
 * queues behind earlier calls), yielding until it is done. Elsewhere:
 * inline while the thread is idle; refused when it is not, and when slow
 * while other tasks run (the loop would wait for it). */
static int op_go(lua_State *L, struct lc_rwork *w, int slow, const char *what) {
  int idx = lua_gettop(L);
  struct rop *op = lua_touserdata(L, idx);
  /* No scheduler (a bare state): the extra space is not ours to read. */
  struct lc_sched *sch = lc_sched_get(L);
  struct lc_task *task = sch ? lc_task_current(L) : NULL;
  int idle = lc_rwork_idle(w);
  if (task && lua_isyieldable(L) && (slow || !idle)) {
    op->fw.on_cancel = op_cancel;
    struct rarg *a = op->a;
    op->a = NULL; /* the job takes it, whatever the outcome */
    int fd;
    if (lc_rwork_submit(w, rarg_run, rarg_free, a, &op->job, &fd))
      return luaL_error(L, "out of memory");
    /* Watched before it is queued: a failure here leaves no job running. */
    if (lc_fdwait_start(&op->fw, task, lc_sched_loop(sch), fd)) return luaL_error(L, "out of memory");
    int rc = lc_rwork_start(op->job);
    if (rc == LC_ENOMEM) return luaL_error(L, "out of memory");
    if (rc) return luaL_error(L, "luact.retrieval: the store is closed");
    lc_fdwait_wait(&op->fw);
    return lua_yieldk(L, 0, idx, op_k);
  }
  if (!idle)
    return luaL_error(L, "luact.retrieval: %s where the task cannot yield while the collection's "
                         "thread is busy (call it from the task itself)", what);
  /* Other tasks on this loop: this state's, or other runs' when the loop
   * is shared (luact serve). */
  if (slow && sch && (lc_sched_live_tasks(sch) > 1 || !lc_sched_owns_loop(sch)))
    return luaL_error(L, "luact.retrieval: %s where the task cannot yield (a metamethod or a "
                         "coroutine of the script's) while other tasks run: call it from the "
                         "task itself", what);
  lc_rwork_inline(w, rarg_run, op->a);
  return rarg_push(L, op->a); /* the op closes on return and frees it */
}

static char *dup_arg(lua_State *L, int idx, size_t *len) {
  size_t n;
  const char *v = luaL_checklstring(L, idx, &n);
  char *c = lc_strndup(v, n);
  if (!c) luaL_error(L, "out of memory");
  if (len) *len = n;
  return c;
}

static char *dup_opt(lua_State *L, int idx) {
  return lua_isnoneornil(L, idx) ? NULL : dup_arg(L, idx, NULL);
}

static int close_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  struct rop *op = lua_touserdata(L, (int)ctx);
  if (!lc_rwork_done(op->job)) { /* woken early: wait on */
    lc_fdwait_wait(&op->fw);
    return lua_yieldk(L, 0, ctx, close_k);
  }
  lua_settop(L, 1);
  return store_gc(L); /* the store is closed: the thread ends, or is detached */
}

/* s:close(): from a task, the database is closed on the collection's
 * thread (the last connection checkpoints its log and syncs), then the
 * thread ends; elsewhere, and from __gc / __close, here. Idempotent. */
static int store_close(lua_State *L) {
  struct store_box *b = luaL_checkudata(L, 1, STORE_MT);
  lua_settop(L, 1);
  struct lc_sched *sch = b->w ? lc_sched_get(L) : NULL;
  if (!sch || !lc_task_current(L) || !lua_isyieldable(L)) return store_gc(L);
  struct rop *op = lua_newuserdatauv(L, sizeof *op, 0); /* 2 */
  memset(op, 0, sizeof *op);
  luaL_setmetatable(L, OP_MT);
  lua_toclose(L, 2);
  op->fw.on_cancel = op_cancel;
  int fd;
  if (lc_rwork_submit(b->w, NULL, NULL, NULL, &op->job, &fd)) return luaL_error(L, "out of memory");
  if (lc_fdwait_start(&op->fw, lc_task_current(L), lc_sched_loop(sch), fd))
    return luaL_error(L, "out of memory");
  int rc = lc_rwork_start(op->job);
  if (rc == LC_ENOMEM) return luaL_error(L, "out of memory");
  if (rc) return store_gc(L);
  lc_fdwait_wait(&op->fw);
  return lua_yieldk(L, 0, 2, close_k);
}

/* luact.retrieval.store(path, {model=, dimensions=, exact=, m=,
 * ef_construction=, ef_search=, rebuild=}) -> store | nil, msg, code */
static int l_store(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  struct lc_rstore_opts o = {0};
  lc_hnsw_params_default(&o.hnsw);
  if (!lua_isnoneornil(L, 2)) {
    luaL_checktype(L, 2, LUA_TTABLE);
    lc_l_check_opts(L, 2, "luact.retrieval.store");
    o.model = lc_l_opt_string(L, 2, "luact.retrieval.store", "model", 0);
    struct {
      const char *k;
      int *dst;
      int lo, hi;
    } ints[] = {{"m", &o.hnsw.m, 2, 256},
                {"ef_construction", &o.hnsw.ef_construction, 2, 100000},
                {"ef_search", &o.hnsw.ef_search, 1, 100000}};
    for (size_t i = 0; i < 3; i++) {
      if (lua_getfield(L, 2, ints[i].k) != LUA_TNIL) {
        lua_Integer v = luaL_checkinteger(L, -1);
        if (v < ints[i].lo || v > ints[i].hi)
          return luaL_error(L, "luact.retrieval.store: '%s' must be %d..%d", ints[i].k, ints[i].lo,
                            ints[i].hi);
        *ints[i].dst = (int)v;
      }
      lua_pop(L, 1);
    }
    if (lua_getfield(L, 2, "dimensions") != LUA_TNIL) {
      lua_Integer v = luaL_checkinteger(L, -1);
      if (v < 1 || v > 65536) return luaL_error(L, "luact.retrieval.store: 'dimensions' must be 1..65536");
      o.dims = (size_t)v;
    }
    lua_pop(L, 1);
    o.exact_only = lc_l_opt_bool(L, 2, "luact.retrieval.store", "exact", 0);
    o.rebuild = lc_l_opt_bool(L, 2, "luact.retrieval.store", "rebuild", 0);
  }
  lua_settop(L, 2);
  struct store_box *b = lua_newuserdatauv(L, sizeof *b, 0); /* 3 */
  b->w = NULL;
  luaL_setmetatable(L, STORE_MT);
  if (lc_rwork_new(NULL, &b->w)) return luaL_error(L, "out of memory");
  /* Opening reads (and checks) the saved index, or rebuilds it from the
   * rows: a job like any other. */
  struct rarg *a = new_op(L, K_OPEN); /* 4 */
  a->oo = o;
  if (o.model && !(a->model = lc_strdup(o.model))) return luaL_error(L, "out of memory");
  a->oo.model = a->model;
  if (!(a->source = lc_strdup(path))) return luaL_error(L, "out of memory");
  a->box_idx = 3;
  return op_go(L, b->w, 1, "luact.retrieval.store");
}

static int store_begin(lua_State *L) {
  lua_settop(L, 1);
  struct lc_rwork *w = check_store(L, 1);
  new_op(L, K_BEGIN);
  return op_go(L, w, 1, "begin"); /* may wait for another writer */
}

static int store_commit(lua_State *L) {
  lua_settop(L, 1);
  struct lc_rwork *w = check_store(L, 1);
  new_op(L, K_COMMIT);
  return op_go(L, w, 1, "commit");
}

static int store_rollback(lua_State *L) {
  lua_settop(L, 1);
  struct lc_rwork *w = check_store(L, 1);
  new_op(L, K_ROLLBACK);
  return op_go(L, w, 0, "rollback");
}

/* s:doc(source) -> id, sha | nil */
static int store_doc(lua_State *L) {
  lua_settop(L, 2);
  struct lc_rwork *w = check_store(L, 1);
  luaL_checkstring(L, 2);
  struct rarg *a = new_op(L, K_DOC);
  a->source = dup_arg(L, 2, NULL);
  return op_go(L, w, 0, "doc");
}

/* s:unchanged(source, text) -> true when that document is stored with
 * exactly this text. */
static int store_unchanged(lua_State *L) {
  lua_settop(L, 3);
  struct lc_rwork *w = check_store(L, 1);
  luaL_checkstring(L, 2);
  luaL_checkstring(L, 3);
  struct rarg *a = new_op(L, K_UNCHANGED);
  a->source = dup_arg(L, 2, NULL);
  a->text = dup_arg(L, 3, &a->text_len);
  /* hashing a large text is slow work too */
  return op_go(L, w, a->text_len > ((size_t)1 << 20), "unchanged");
}

/* s:add_doc(source, text, meta_json) -> id */
static int store_add_doc(lua_State *L) {
  lua_settop(L, 4);
  struct lc_rwork *w = check_store(L, 1);
  luaL_checkstring(L, 2);
  luaL_checkstring(L, 3);
  luaL_optstring(L, 4, NULL);
  struct rarg *a = new_op(L, K_ADD_DOC);
  a->source = dup_arg(L, 2, NULL);
  a->text = dup_arg(L, 3, &a->text_len);
  a->meta = dup_opt(L, 4);
  /* rows into an open transaction (no sync; that is commit's): a point
   * write, like add_chunk */
  return op_go(L, w, 0, "add_doc");
}

/* s:add_chunk(doc, ord, start, char_start, text, heading, vector) -> id */
static int store_add_chunk(lua_State *L) {
  lua_settop(L, 8);
  struct lc_rwork *w = check_store(L, 1);
  lua_Integer doc = luaL_checkinteger(L, 2), ord = luaL_checkinteger(L, 3),
              start = luaL_checkinteger(L, 4), start_cp = luaL_checkinteger(L, 5);
  luaL_checkstring(L, 6);
  luaL_optstring(L, 7, NULL);
  size_t dims = lc_rwork_dims(w);
  if (!dims) return luaL_error(L, "luact.retrieval: the collection's dimensions are not known yet");
  struct rarg *a = new_op(L, K_ADD_CHUNK);
  a->c.doc = doc;
  a->c.ord = (int)ord;
  a->c.start = (size_t)start;
  a->c.start_cp = (size_t)start_cp;
  a->c.text = dup_arg(L, 6, &a->c.len);
  a->c.heading = dup_opt(L, 7);
  a->dims = dims;
  if (!(a->vecs = lc_malloc(dims * sizeof *a->vecs))) return luaL_error(L, "out of memory");
  check_vector(L, 8, dims, a->vecs, "vector");
  return op_go(L, w, 0, "add_chunk"); /* one row into an open transaction */
}

/* s:cache_get(model, dims, text) -> vector | nil */
static int store_cache_get(lua_State *L) {
  lua_settop(L, 4);
  struct lc_rwork *w = check_store(L, 1);
  luaL_checkstring(L, 2);
  lua_Integer dims = luaL_checkinteger(L, 3);
  luaL_checkstring(L, 4);
  if (dims < 1 || dims > 65536) return luaL_error(L, "luact.retrieval: bad dimensions");
  struct rarg *a = new_op(L, K_CACHE_GET);
  a->model = dup_arg(L, 2, NULL);
  a->text = dup_arg(L, 4, &a->text_len);
  a->dims = (size_t)dims;
  if (!(a->vecs = lc_malloc(a->dims * sizeof *a->vecs))) return luaL_error(L, "out of memory");
  return op_go(L, w, 0, "cache_get");
}

/* The vector length the collection takes: its dims, or any when unset. */
static size_t vec_dims(lua_State *L, struct lc_rwork *w, int idx) {
  luaL_checktype(L, idx, LUA_TTABLE);
  size_t dims = (size_t)luaL_len(L, idx);
  if (dims < 1 || dims > 65536) luaL_error(L, "luact.retrieval: bad vector length");
  if (lc_rwork_dims(w) && dims != lc_rwork_dims(w))
    luaL_error(L, "luact.retrieval: vector has %d values, the collection holds %d", (int)dims,
               (int)lc_rwork_dims(w));
  return dims;
}

/* s:cache_put(model, text, vector) */
static int store_cache_put(lua_State *L) {
  lua_settop(L, 4);
  struct lc_rwork *w = check_store(L, 1);
  luaL_checkstring(L, 2);
  luaL_checkstring(L, 3);
  size_t dims = vec_dims(L, w, 4);
  struct rarg *a = new_op(L, K_CACHE_PUT);
  a->model = dup_arg(L, 2, NULL);
  a->text = dup_arg(L, 3, &a->text_len);
  a->dims = dims;
  if (!(a->vecs = lc_malloc(dims * sizeof *a->vecs))) return luaL_error(L, "out of memory");
  check_vector(L, 4, dims, a->vecs, "vector");
  return op_go(L, w, 1, "cache_put");
}

/* [-0, +0, e] The list of strings at idx into a->texts. */
static void dup_texts(lua_State *L, int idx, struct rarg *a) {
  luaL_checktype(L, idx, LUA_TTABLE);
  lua_Integer n = luaL_len(L, idx);
  if (n < 0 || n > 10000000) luaL_error(L, "luact.retrieval: too many texts");
  a->texts = lc_calloc(n ? (size_t)n : 1, sizeof *a->texts);
  a->lens = lc_calloc(n ? (size_t)n : 1, sizeof *a->lens);
  if (!a->texts || !a->lens) luaL_error(L, "out of memory");
  for (lua_Integer i = 1; i <= n; i++) {
    lua_rawgeti(L, idx, i);
    if (lua_type(L, -1) != LUA_TSTRING) luaL_error(L, "luact.retrieval: text %d is not a string", (int)i);
    a->texts[i - 1] = dup_arg(L, -1, &a->lens[i - 1]);
    a->n_texts = (size_t)i;
    lua_pop(L, 1);
  }
}

/* s:cache_get_many(model, dims, texts) -> {[i] = vector} (the misses
 * absent) | nil, msg, code: every lookup in one job. */
static int store_cache_get_many(lua_State *L) {
  lua_settop(L, 4);
  struct lc_rwork *w = check_store(L, 1);
  luaL_checkstring(L, 2);
  lua_Integer dims = luaL_checkinteger(L, 3);
  if (dims < 1 || dims > 65536) return luaL_error(L, "luact.retrieval: bad dimensions");
  struct rarg *a = new_op(L, K_CACHE_GET_MANY);
  a->model = dup_arg(L, 2, NULL);
  a->dims = (size_t)dims;
  dup_texts(L, 4, a);
  size_t n = a->n_texts ? a->n_texts : 1;
  if (n > SIZE_MAX / sizeof(float) / a->dims) return luaL_error(L, "out of memory");
  a->vecs = lc_malloc(n * a->dims * sizeof *a->vecs);
  a->found = lc_calloc(n, 1);
  if (!a->vecs || !a->found) return luaL_error(L, "out of memory");
  /* a query's few texts are point reads; a document's chunks are not */
  return op_go(L, w, a->n_texts > 16, "cache_get_many");
}

/* [-0, +0, e] n vectors from the list at idx into a->vecs (a->dims each). */
static void dup_vectors(lua_State *L, int idx, struct rarg *a, size_t n) {
  luaL_checktype(L, idx, LUA_TTABLE);
  if ((size_t)luaL_len(L, idx) != n)
    luaL_error(L, "luact.retrieval: %d vectors for %d texts", (int)luaL_len(L, idx), (int)n);
  if (n && n > SIZE_MAX / sizeof(float) / a->dims) luaL_error(L, "out of memory");
  if (!(a->vecs = lc_malloc((n ? n : 1) * a->dims * sizeof *a->vecs)))
    luaL_error(L, "out of memory");
  for (size_t i = 0; i < n; i++) {
    lua_rawgeti(L, idx, (lua_Integer)i + 1);
    check_vector(L, lua_gettop(L), a->dims, a->vecs + i * a->dims, "vector");
    lua_pop(L, 1);
  }
}

/* s:cache_put_many(model, texts, vectors) -> true | nil, msg, code: in one
 * transaction (one sync). */
static int store_cache_put_many(lua_State *L) {
  lua_settop(L, 4);
  struct lc_rwork *w = check_store(L, 1);
  luaL_checkstring(L, 2);
  luaL_checktype(L, 3, LUA_TTABLE);
  luaL_checktype(L, 4, LUA_TTABLE);
  lua_rawgeti(L, 4, 1);
  size_t dims = lua_istable(L, -1) ? vec_dims(L, w, lua_gettop(L)) : lc_rwork_dims(w);
  lua_pop(L, 1);
  struct rarg *a = new_op(L, K_CACHE_PUT_MANY);
  a->model = dup_arg(L, 2, NULL);
  a->dims = dims ? dims : 1;
  dup_texts(L, 3, a);
  dup_vectors(L, 4, a, a->n_texts);
  return op_go(L, w, 1, "cache_put_many");
}

/* s:add(source, text, meta_json, chunks, vectors) -> chunks added | nil,
 * msg, code. chunks: {text=, start=, char_start=, heading=} (1-based
 * offsets), one vector each. The document, its chunks and their vectors
 * go in one transaction on the collection's thread; the vectors reach the
 * index after it commits. */
static int store_add(lua_State *L) {
  lua_settop(L, 6);
  struct lc_rwork *w = check_store(L, 1);
  luaL_checkstring(L, 2);
  luaL_checkstring(L, 3);
  luaL_optstring(L, 4, NULL);
  luaL_checktype(L, 5, LUA_TTABLE);
  size_t dims = lc_rwork_dims(w);
  if (!dims) return luaL_error(L, "luact.retrieval: the collection's dimensions are not known yet");
  struct rarg *a = new_op(L, K_ADD);
  a->source = dup_arg(L, 2, NULL);
  a->text = dup_arg(L, 3, &a->text_len);
  a->meta = dup_opt(L, 4);
  a->dims = dims;
  lua_Integer n = luaL_len(L, 5);
  if (n < 0 || n > 10000000) return luaL_error(L, "luact.retrieval: too many chunks");
  if (!(a->chunks = lc_calloc(n ? (size_t)n : 1, sizeof *a->chunks)))
    return luaL_error(L, "out of memory");
  for (lua_Integer i = 1; i <= n; i++) {
    if (lua_rawgeti(L, 5, i) != LUA_TTABLE)
      return luaL_error(L, "luact.retrieval: chunk %d must be a table", (int)i);
    int t = lua_gettop(L);
    struct lc_rchunk *c = &a->chunks[i - 1];
    a->n_chunks = (size_t)i;
    c->ord = (int)(i - 1);
    if (lua_getfield(L, t, "text") != LUA_TSTRING)
      return luaL_error(L, "luact.retrieval: chunk %d has no text", (int)i);
    c->text = dup_arg(L, -1, &c->len);
    lua_getfield(L, t, "start");
    lua_getfield(L, t, "char_start");
    lua_Integer st = luaL_optinteger(L, -2, 1), cs = luaL_optinteger(L, -1, 1);
    if (st < 1 || cs < 1) return luaL_error(L, "luact.retrieval: chunk %d has a bad start", (int)i);
    c->start = (size_t)st - 1;
    c->start_cp = (size_t)cs - 1;
    if (lua_getfield(L, t, "heading") == LUA_TSTRING) c->heading = dup_arg(L, -1, NULL);
    lua_settop(L, t - 1);
  }
  dup_vectors(L, 6, a, a->n_chunks);
  return op_go(L, w, 1, "add");
}

static int store_count(lua_State *L) {
  lua_settop(L, 1);
  struct lc_rwork *w = check_store(L, 1);
  new_op(L, K_COUNT);
  /* a stale index is rebuilt first, so the count is the rows' */
  int slow = !lc_rwork_idle(w) || !lc_rwork_store(w) || lc_rstore_stale(lc_rwork_store(w));
  return op_go(L, w, slow, "count");
}

static int store_dims(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)lc_rwork_dims(check_store(L, 1)));
  return 1;
}

static int store_save(lua_State *L) {
  lua_settop(L, 1);
  struct lc_rwork *w = check_store(L, 1);
  new_op(L, K_SAVE);
  return op_go(L, w, 1, "save"); /* the file is synced before it returns */
}

/* s:search(vector, {k=, exact=, ef=, filter={key=json_text}, background=})
 * -> hits. On the collection's thread when the index is large or stale, a
 * filter is given, background = true, or the thread is busy. */
static int store_search(lua_State *L) {
  struct lc_rwork *w = check_store(L, 1);
  lua_settop(L, 3);
  if (!lua_isnil(L, 3)) {
    luaL_checktype(L, 3, LUA_TTABLE);
    lc_l_check_opts(L, 3, "store:search");
  }
  size_t dims = lc_rwork_dims(w);
  if (!dims) {
    lua_newtable(L); /* nothing stored yet */
    return 1;
  }
  struct rarg *a = new_op(L, K_SEARCH); /* 4 */
  if (!(a->q = lc_malloc(dims * sizeof *a->q))) return luaL_error(L, "out of memory");
  check_vector(L, 2, dims, a->q, "query vector");
  double norm = 0;
  for (size_t i = 0; i < dims; i++) norm += (double)a->q[i] * a->q[i];
  if (!(norm > 0)) return luaL_error(L, "luact.retrieval: the query vector is zero");
  lua_Integer k = 5;
  int background = -1;
  if (!lua_isnil(L, 3)) {
    if (lua_getfield(L, 3, "k") != LUA_TNIL) k = luaL_checkinteger(L, -1);
    lua_Integer ef = 0; /* checked as given: (int)(2^32 + 5) would pass as 5 */
    if (lua_getfield(L, 3, "ef") != LUA_TNIL) ef = luaL_checkinteger(L, -1);
    lua_getfield(L, 3, "exact");
    a->exact = lua_toboolean(L, -1);
    if (lua_getfield(L, 3, "background") != LUA_TNIL) background = lua_toboolean(L, -1);
    lua_pop(L, 4);
    if (k < 1 || k > 10000) return luaL_error(L, "store:search: 'k' must be 1..10000");
    if (ef < 0 || ef > 100000) return luaL_error(L, "store:search: 'ef' must be 1..100000");
    a->ef = (int)ef;
    if (lua_getfield(L, 3, "filter") == LUA_TTABLE) {
      size_t n = 0;
      a->fkeys = lc_calloc(33, sizeof *a->fkeys);
      a->fvals = lc_calloc(33, sizeof *a->fvals);
      if (!a->fkeys || !a->fvals) return luaL_error(L, "out of memory");
      lua_pushnil(L);
      while (lua_next(L, -2)) {
        if (n == 32) return luaL_error(L, "store:search: at most 32 filter keys");
        if (lua_type(L, -2) != LUA_TSTRING || lua_type(L, -1) != LUA_TSTRING)
          return luaL_error(L, "store:search: filter maps names to JSON text");
        a->n_filter = n + 1; /* both freed from here */
        a->fkeys[n] = dup_arg(L, -2, NULL);
        a->fvals[n++] = dup_arg(L, -1, NULL);
        lua_pop(L, 1);
      }
      if (!n) a->n_filter = 0;
      else if (!a->fkeys[n - 1] || !a->fvals[n - 1]) return luaL_error(L, "out of memory");
    }
    lua_pop(L, 1);
  }
  lua_settop(L, 4);
  a->k = (size_t)k;
  if (!(a->hits = lc_malloc(a->k * sizeof *a->hits))) return luaL_error(L, "out of memory");
  /* Inline only a small search of a fresh index with no filter (a filter
   * is a query over every document) while the thread is idle. */
  int slow = 1;
  if (lc_rwork_idle(w) && background != 1 && !a->n_filter) {
    struct lc_rstore *s = lc_rwork_store(w);
    if (s && !lc_rstore_stale(s)) {
      size_t work = lc_rstore_count(s) * dims;
      slow = background == -1 &&
             ((work >= BACKGROUND_FLOATS && a->exact) || work >= 8 * BACKGROUND_FLOATS);
    }
  }
  return op_go(L, w, slow, "search");
}

static const luaL_Reg store_methods[] = {
    {"begin", store_begin},       {"commit", store_commit},
    {"rollback", store_rollback}, {"doc", store_doc},
    {"add_doc", store_add_doc},   {"add_chunk", store_add_chunk},
    {"add", store_add},           {"unchanged", store_unchanged},
    {"cache_get", store_cache_get}, {"cache_put", store_cache_put},
    {"cache_get_many", store_cache_get_many}, {"cache_put_many", store_cache_put_many},
    {"search", store_search},     {"count", store_count},
    {"dims", store_dims},         {"save", store_save},
    {"close", store_close},       {NULL, NULL}};

static const luaL_Reg retrieval_funcs[] = {
    {"split", l_split}, {"store", l_store}, {NULL, NULL}};

int lc_open_retrieval(lua_State *L) {
  if (luaL_newmetatable(L, STORE_MT)) {
    luaL_newlib(L, store_methods);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, store_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, store_gc);
    lua_setfield(L, -2, "__close");
  }
  lua_pop(L, 1);
  if (luaL_newmetatable(L, OP_MT)) {
    lua_pushcfunction(L, op_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, op_gc);
    lua_setfield(L, -2, "__close");
  }
  lua_pop(L, 1);
  luaL_newlib(L, retrieval_funcs);
  return 1;
}
