/* l_retrieval.c: luact.retrieval's C half: split (chunk.c) and store
 * (rstore.c: a collection in SQLite with its vector index). The Lua half,
 * runtime/lua/retrieval.lua, builds open / query / luact.retrieve on these.
 *
 * A search over a large index runs on a thread of its own, so the loop
 * keeps serving every other task: the task waits on an eventfd the thread
 * writes when done. While such a search runs, the store refuses changes
 * (a search reads the index without locks); closing the store, or killing
 * the task, waits for the thread to finish first. */
#include <errno.h>
#include <lauxlib.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "chunk.h"
#include "conv.h"
#include "l_luact.h"
#include "l_opts.h"
#include "l_retrieval.h"
#include "lc.h"
#include "loop.h"
#include "rstore.h"
#include "sched.h"
#include "sha256.h"

#define STORE_MT "luact.RetrievalStore"
#define SEARCH_MT "luact.RetrievalSearch"

/* Searches over more floats than this run off the loop thread. */
#define BACKGROUND_FLOATS ((size_t)1 << 20)
/* A filter passing at most this many chunks is searched exactly. */
#define EXACT_FILTER_MAX 2000

struct store_box {
  struct lc_rstore *s;
  int busy;       /* background searches running */
  int rebuilding; /* of them, those that may rebuild the index first */
  /* Held around lc_rstore_index wherever it may rebuild: a rebuild runs on
   * a search's thread, never on the loop (20,000 vectors took 11 s). */
  pthread_mutex_t ix_mu;
  int mu_init;
};

static struct store_box *check_store(lua_State *L, int idx) {
  struct store_box *b = luaL_checkudata(L, idx, STORE_MT);
  if (!b->s) luaL_error(L, "luact.retrieval: the store is closed");
  return b;
}

static struct lc_rstore *check_idle(lua_State *L, int idx, const char *what) {
  struct store_box *b = check_store(L, idx);
  if (b->busy) luaL_error(L, "luact.retrieval: %s while a search runs in the background", what);
  return b->s;
}

/* ---- split ---- */

#define CHUNKS_MT "luact.RetrievalChunks"

/* The chunk list while it is pushed: a to-be-closed box, so a push that
 * raises (a Lua memory cap) frees it instead of leaking it. */
static int chunks_gc(lua_State *L) {
  lc_chunks_free(luaL_checkudata(L, 1, CHUNKS_MT)); /* idempotent */
  return 0;
}

/* luact.retrieval.split(text, {size=, overlap=, markdown=}) -> chunks */
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
  if (rc == LC_ENOMEM) return luaL_error(L, "out of memory");
  if (rc == 0) *cp = c; /* owned by the box from here */
  if (rc) {
    lua_pushnil(L);
    lua_pushstring(L, err);
    lua_pushstring(L, rc == LC_ETOOBIG ? "too_big" : "bad_document");
    return 3;
  }
  lua_createtable(L, (int)c.n, 0);
  for (size_t i = 0; i < c.n; i++) {
    lua_createtable(L, 0, 4);
    lua_pushlstring(L, doc + c.v[i].start, c.v[i].len);
    lua_setfield(L, -2, "text");
    lc_l_set_int(L, "start", (lua_Integer)c.v[i].start + 1);
    lc_l_set_int(L, "char_start", (lua_Integer)c.v[i].start_cp + 1);
    lc_l_set_str(L, "heading", c.v[i].heading);
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
  return 1; /* the box closes on return and frees the list */
}

/* ---- store ---- */

static int store_gc(lua_State *L) {
  struct store_box *b = luaL_checkudata(L, 1, STORE_MT);
  /* A background search holds a reference to the store (its box keeps
   * the store userdata alive), so gc never runs while one does. */
  if (b->s && !b->busy) {
    lc_rstore_close(b->s);
    b->s = NULL;
  }
  if (b->mu_init && !b->busy) {
    pthread_mutex_destroy(&b->ix_mu);
    b->mu_init = 0;
  }
  return 0;
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
  struct store_box *b = lua_newuserdatauv(L, sizeof *b, 0);
  memset(b, 0, sizeof *b);
  if (pthread_mutex_init(&b->ix_mu, NULL)) return luaL_error(L, "out of memory");
  b->mu_init = 1;
  luaL_setmetatable(L, STORE_MT);
  char err[512];
  int rc = lc_rstore_open(path, &o, &b->s, err, sizeof err);
  if (rc == LC_ENOMEM) return luaL_error(L, "out of memory");
  if (rc) {
    lua_pushnil(L);
    lua_pushstring(L, err);
    lua_pushstring(L, strstr(err, "rebuild") ? "corrupt_index" : rc == LC_EINVAL ? "mismatch" : "io");
    return 3;
  }
  return 1;
}

static int store_close(lua_State *L) {
  struct store_box *b = luaL_checkudata(L, 1, STORE_MT);
  if (b->busy) return luaL_error(L, "luact.retrieval: close while a search runs in the background");
  lc_rstore_close(b->s);
  b->s = NULL;
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

static int store_err(lua_State *L, struct lc_rstore *s, int rc) {
  if (rc == LC_ENOMEM) return luaL_error(L, "out of memory");
  lua_pushnil(L);
  lua_pushstring(L, lc_rstore_error(s));
  lua_pushstring(L, rc == LC_EINVAL ? "bad_input" : rc == LC_ESTATE ? "state" : "io");
  return 3;
}

static int store_begin(lua_State *L) {
  struct lc_rstore *s = check_idle(L, 1, "begin");
  int rc = lc_rstore_begin(s);
  if (rc) return store_err(L, s, rc);
  lua_pushboolean(L, 1);
  return 1;
}

static int store_commit(lua_State *L) {
  struct lc_rstore *s = check_idle(L, 1, "commit");
  int rc = lc_rstore_commit(s);
  if (rc) return store_err(L, s, rc);
  lua_pushboolean(L, 1);
  return 1;
}

static int store_rollback(lua_State *L) {
  lc_rstore_rollback(check_idle(L, 1, "rollback"));
  return 0;
}

/* s:doc(source) -> id, sha | nil */
static int store_doc(lua_State *L) {
  struct lc_rstore *s = check_store(L, 1)->s;
  int64_t id;
  char sha[65];
  int rc = lc_rstore_doc(s, luaL_checkstring(L, 2), &id, sha);
  if (rc == LC_ENOTFOUND) return 0;
  if (rc) return store_err(L, s, rc);
  lua_pushinteger(L, id);
  lua_pushstring(L, sha);
  return 2;
}

/* s:unchanged(source, text) -> true when that document is stored with
 * exactly this text. */
static int store_unchanged(lua_State *L) {
  struct lc_rstore *s = check_store(L, 1)->s;
  size_t len;
  const char *src = luaL_checkstring(L, 2);
  const char *text = luaL_checklstring(L, 3, &len);
  int64_t id;
  char sha[65], now[65];
  int rc = lc_rstore_doc(s, src, &id, sha);
  if (rc && rc != LC_ENOTFOUND) return store_err(L, s, rc);
  lc_sha256_hex(text, len, now);
  lua_pushboolean(L, rc == 0 && !strcmp(sha, now));
  return 1;
}

/* s:add_doc(source, text, meta_json) -> id */
static int store_add_doc(lua_State *L) {
  struct lc_rstore *s = check_idle(L, 1, "add_doc");
  const char *src = luaL_checkstring(L, 2);
  size_t len;
  const char *text = luaL_checklstring(L, 3, &len);
  const char *meta = luaL_optstring(L, 4, NULL);
  char sha[65];
  lc_sha256_hex(text, len, sha);
  int64_t id;
  int rc = lc_rstore_add_doc(s, src, sha, len, meta, &id);
  if (rc) return store_err(L, s, rc);
  lua_pushinteger(L, id);
  return 1;
}

/* s:add_chunk(doc, ord, start, char_start, text, heading, vector) -> id */
static int store_add_chunk(lua_State *L) {
  struct lc_rstore *s = check_idle(L, 1, "add_chunk");
  struct lc_rchunk c = {0};
  c.doc = luaL_checkinteger(L, 2);
  c.ord = (int)luaL_checkinteger(L, 3);
  c.start = (size_t)luaL_checkinteger(L, 4);
  c.start_cp = (size_t)luaL_checkinteger(L, 5);
  c.text = luaL_checklstring(L, 6, &c.len);
  c.heading = luaL_optstring(L, 7, NULL);
  size_t dims = lc_rstore_dims(s);
  if (!dims) return luaL_error(L, "luact.retrieval: the collection's dimensions are not known yet");
  float *v = lua_newuserdatauv(L, dims * sizeof *v, 0); /* scratch, collected */
  check_vector(L, 8, dims, v, "vector");
  int64_t id;
  int rc = lc_rstore_add_chunk(s, &c, v, &id);
  if (rc) return store_err(L, s, rc);
  lua_pushinteger(L, id);
  return 1;
}

/* s:cache_get(model, dims, text) -> vector | nil */
static int store_cache_get(lua_State *L) {
  struct lc_rstore *s = check_store(L, 1)->s;
  const char *model = luaL_checkstring(L, 2);
  lua_Integer dims = luaL_checkinteger(L, 3);
  size_t len;
  const char *text = luaL_checklstring(L, 4, &len);
  if (dims < 1 || dims > 65536) return luaL_error(L, "luact.retrieval: bad dimensions");
  float *v = lua_newuserdatauv(L, (size_t)dims * sizeof *v, 0);
  int rc = lc_rstore_cache_get(s, model, (size_t)dims, text, len, v);
  if (rc < 0) return store_err(L, s, rc);
  if (!rc) return 0;
  lua_createtable(L, (int)dims, 0);
  for (lua_Integer i = 0; i < dims; i++) {
    lua_pushnumber(L, v[i]);
    lua_rawseti(L, -2, i + 1);
  }
  return 1;
}

/* s:cache_put(model, text, vector) */
static int store_cache_put(lua_State *L) {
  struct lc_rstore *s = check_idle(L, 1, "cache_put");
  const char *model = luaL_checkstring(L, 2);
  size_t len;
  const char *text = luaL_checklstring(L, 3, &len);
  luaL_checktype(L, 4, LUA_TTABLE);
  size_t dims = (size_t)luaL_len(L, 4);
  if (dims < 1 || dims > 65536) return luaL_error(L, "luact.retrieval: bad vector length");
  if (lc_rstore_dims(s) && dims != lc_rstore_dims(s))
    return luaL_error(L, "luact.retrieval: vector has %d values, the collection holds %d",
                      (int)dims, (int)lc_rstore_dims(s));
  float *v = lua_newuserdatauv(L, dims * sizeof *v, 0);
  check_vector(L, 4, dims, v, "vector");
  int rc = lc_rstore_cache_put(s, model, dims, text, len, v);
  if (rc) return store_err(L, s, rc);
  return 0;
}

static int store_count(lua_State *L) {
  struct store_box *sb = check_store(L, 1);
  struct lc_rstore *s = sb->s;
  /* stale: rebuilt, so the count is the rows' (waits for a rebuild that a
   * background search is making) */
  pthread_mutex_lock(&sb->ix_mu);
  lc_rstore_index(s);
  size_t n = lc_rstore_count(s);
  pthread_mutex_unlock(&sb->ix_mu);
  lua_pushinteger(L, (lua_Integer)n);
  return 1;
}

static int store_dims(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)lc_rstore_dims(check_store(L, 1)->s));
  return 1;
}

static int store_save(lua_State *L) {
  struct lc_rstore *s = check_idle(L, 1, "save");
  int rc = lc_rstore_save(s);
  if (rc) return store_err(L, s, rc);
  lua_pushboolean(L, 1);
  return 1;
}

/* ---- search ---- */

struct search_box {
  struct store_box *store;
  struct lc_rstore *rs;
  int rebuild;   /* the thread takes the index (rebuilding it) first */
  char msg[256]; /* why that failed */
  const struct lc_vindex *ix;
  float *q;
  size_t k;
  int exact, ef;
  int64_t *allowed; /* sorted, or NULL for no filter */
  size_t n_allowed;
  struct lc_vhit *hits;
  size_t n_hits;
  int rc;
  /* background */
  int efd;
  struct lc_fdwatch watch;
  struct lc_loop *loop;
  pthread_t th;
  int started, joined, done, closed;
  struct lc_task *task;
  struct lc_wait wait;
};

static int allowed_fn(void *ud, int64_t label) {
  const struct search_box *b = ud;
  size_t lo = 0, hi = b->n_allowed;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (b->allowed[mid] < label) lo = mid + 1;
    else hi = mid;
  }
  return lo < b->n_allowed && b->allowed[lo] == label;
}

static void run_search(struct search_box *b) {
  b->rc = lc_vindex_search(b->ix, b->q, b->k, b->exact, b->ef, b->allowed ? allowed_fn : NULL, b,
                           b->hits, &b->n_hits);
}

static void *search_thread(void *ud) {
  struct search_box *b = ud;
  if (b->rebuild) {
    pthread_mutex_lock(&b->store->ix_mu);
    b->ix = lc_rstore_index(b->rs);
    if (!b->ix) snprintf(b->msg, sizeof b->msg, "%s", lc_rstore_error(b->rs));
    pthread_mutex_unlock(&b->store->ix_mu);
  }
  if (b->ix) run_search(b);
  uint64_t one = 1;
  /* The loop's watch reads it; a failed write would leave the task
   * waiting, so retry on EINTR (eventfd writes do not block here). */
  while (write(b->efd, &one, sizeof one) < 0 && errno == EINTR) {
  }
  return NULL;
}

/* The one close: __gc, __close, kill, and the normal end. Waits for a
 * running thread (one search: bounded), then frees. */
static void search_close(struct search_box *b) {
  if (b->closed) return;
  b->closed = 1;
  if (b->started && !b->joined) {
    pthread_join(b->th, NULL);
    b->joined = 1;
  }
  if (b->watch.fd >= 0 && b->loop) lc_loop_unwatch(b->loop, &b->watch);
  if (b->efd >= 0) close(b->efd);
  b->efd = -1;
  b->watch.fd = -1;
  if (b->store && b->started) {
    b->store->busy--;
    if (b->rebuild) b->store->rebuilding--;
  }
  b->store = NULL;
  lc_free(b->q);
  lc_free(b->allowed);
  lc_free(b->hits);
  b->q = NULL;
  b->allowed = NULL;
  b->hits = NULL;
}

static int search_gc(lua_State *L) {
  search_close(luaL_checkudata(L, 1, SEARCH_MT));
  return 0;
}

static void search_cancel(struct lc_wait *w) {
  search_close((struct search_box *)((char *)w - offsetof(struct search_box, wait)));
}

/* From the loop: the thread wrote the eventfd. */
static void on_search_done(struct lc_loop *loop, struct lc_fdwatch *w, unsigned ev) {
  struct search_box *b = w->ud;
  uint64_t v;
  (void)!read(b->efd, &v, sizeof v);
  lc_loop_unwatch(loop, &b->watch);
  b->watch.fd = -1;
  pthread_join(b->th, NULL);
  b->joined = 1;
  b->done = 1;
  lc_task_wake(b->task, &b->wait);
}

#define S_STORE 1
#define S_BOX 4

/* [-0, +1, m] The hits with their rows. */
static int push_hits(lua_State *L, struct search_box *b, struct lc_rstore *s) {
  if (b->rc == LC_ENOMEM) return luaL_error(L, "out of memory");
  if (b->rc) return luaL_error(L, "luact.retrieval: the query vector is zero or not finite");
  lua_createtable(L, (int)b->n_hits, 0);
  for (size_t i = 0; i < b->n_hits; i++) {
    struct lc_rrow r;
    int rc = lc_rstore_row(s, b->hits[i].label, &r);
    if (rc == LC_ENOTFOUND) continue; /* deleted since: the index is rebuilt next time */
    if (rc) return store_err(L, s, rc);
    lua_createtable(L, 0, 8);
    lc_l_set_int(L, "id", r.id);
    lc_l_set_num(L, "score", b->hits[i].score);
    lua_pushstring(L, r.text);
    lua_setfield(L, -2, "text");
    lc_l_set_str(L, "source", r.source);
    lc_l_set_str(L, "heading", r.heading);
    lc_l_set_int(L, "start", (lua_Integer)r.start + 1);
    lc_l_set_int(L, "char_start", (lua_Integer)r.start_cp + 1);
    lc_l_set_str(L, "meta", r.meta_json);
    lc_rrow_free(&r);
    lua_rawseti(L, -2, (lua_Integer)lua_rawlen(L, -2) + 1);
  }
  return 1;
}

static int search_k(lua_State *L, int status, lua_KContext ctx) {
  struct search_box *b = luaL_checkudata(L, S_BOX, SEARCH_MT);
  if (b->closed) return luaL_error(L, "luact.retrieval: search was cancelled");
  if (!b->done) {
    lc_task_wait(b->task, &b->wait);
    return lua_yieldk(L, 0, ctx, search_k);
  }
  struct store_box *sb = luaL_checkudata(L, S_STORE, STORE_MT);
  b->store->busy--;
  if (b->rebuild) b->store->rebuilding--;
  b->started = 0; /* busy given back */
  if (!b->ix) {
    lua_pushnil(L);
    lua_pushstring(L, b->msg);
    lua_pushstring(L, "io");
    search_close(b);
    return 3;
  }
  int n = push_hits(L, b, sb->s);
  search_close(b);
  return n;
}

/* s:search(vector, {k=, exact=, ef=, filter={key=json_text}, background=})
 * -> hits. Yields when the search runs in the background. */
static int store_search(lua_State *L) {
  struct store_box *sb = check_store(L, S_STORE);
  struct lc_rstore *s = sb->s;
  lua_settop(L, 3);
  if (!lua_isnil(L, 3)) {
    luaL_checktype(L, 3, LUA_TTABLE);
    lc_l_check_opts(L, 3, "store:search");
  }
  struct search_box *b = lua_newuserdatauv(L, sizeof *b, 0); /* S_BOX */
  memset(b, 0, sizeof *b);
  b->efd = b->watch.fd = -1;
  luaL_setmetatable(L, SEARCH_MT);
  lua_toclose(L, S_BOX);
  size_t dims = lc_rstore_dims(s);
  if (!dims) {
    lua_newtable(L); /* nothing stored yet */
    return 1;
  }
  if (!(b->q = lc_malloc(dims * sizeof *b->q))) return luaL_error(L, "out of memory");
  check_vector(L, 2, dims, b->q, "query vector");
  double norm = 0;
  for (size_t i = 0; i < dims; i++) norm += (double)b->q[i] * b->q[i];
  if (!(norm > 0)) return luaL_error(L, "luact.retrieval: the query vector is zero");
  lua_Integer k = 5;
  int background = -1;
  if (!lua_isnil(L, 3)) {
    if (lua_getfield(L, 3, "k") != LUA_TNIL) k = luaL_checkinteger(L, -1);
    lua_Integer ef = 0; /* checked as given: (int)(2^32 + 5) would pass as 5 */
    if (lua_getfield(L, 3, "ef") != LUA_TNIL) ef = luaL_checkinteger(L, -1);
    lua_getfield(L, 3, "exact");
    b->exact = lua_toboolean(L, -1);
    if (lua_getfield(L, 3, "background") != LUA_TNIL) background = lua_toboolean(L, -1);
    lua_pop(L, 4);
    if (k < 1 || k > 10000) return luaL_error(L, "store:search: 'k' must be 1..10000");
    if (ef < 0 || ef > 100000) return luaL_error(L, "store:search: 'ef' must be 1..100000");
    b->ef = (int)ef;
    if (lua_getfield(L, 3, "filter") == LUA_TTABLE) {
      const char *keys[33], *vals[33];
      size_t n = 0;
      lua_pushnil(L);
      while (lua_next(L, -2)) {
        if (n == 32) return luaL_error(L, "store:search: at most 32 filter keys");
        if (lua_type(L, -2) != LUA_TSTRING || lua_type(L, -1) != LUA_TSTRING)
          return luaL_error(L, "store:search: filter maps names to JSON text");
        keys[n] = lua_tostring(L, -2);
        vals[n++] = lua_tostring(L, -1);
        lua_pop(L, 1);
      }
      int rc = lc_rstore_allowed(s, keys, vals, n, &b->allowed, &b->n_allowed);
      if (rc) return store_err(L, s, rc);
      if (!b->allowed) {
        lua_newtable(L); /* nothing passes */
        return 1;
      }
      if (b->n_allowed <= EXACT_FILTER_MAX) b->exact = 1;
    }
    lua_pop(L, 1);
  }
  b->k = (size_t)k;
  if (!(b->hits = lc_malloc(b->k * sizeof *b->hits))) return luaL_error(L, "out of memory");
  int bg;
  /* rebuilding first: while a rebuild runs, only its thread touches the
   * stale flag */
  if ((sb->rebuilding || lc_rstore_stale(s)) && lc_task_current(L) && lua_isyieldable(L)) {
    /* A stale index is rebuilt on the search's thread, not the loop's;
     * searches meanwhile wait there for it (ix_mu). Changes are refused
     * while it runs (busy), so the rows it reads stay put. */
    b->rebuild = 1;
    bg = 1;
  } else {
    /* Never a rebuild under a running search: changes are refused while
     * one runs, so the index cannot have gone stale since it started.
     * Outside a task a rebuild stays here (nothing else to run). */
    pthread_mutex_lock(&sb->ix_mu);
    b->ix = lc_rstore_index(s);
    pthread_mutex_unlock(&sb->ix_mu);
    if (!b->ix) return store_err(L, s, LC_EIO);
    size_t work = lc_vindex_count(b->ix) * dims;
    bg = background == 1 || (background == -1 && work >= BACKGROUND_FLOATS && b->exact) ||
         (background == -1 && work >= 8 * BACKGROUND_FLOATS);
  }
  if (!bg) {
    run_search(b);
    b->store = sb;
    int n = push_hits(L, b, s);
    return n;
  }
  b->task = lc_task_check(L, "store:search in the background");
  struct lc_sched *sch = lc_sched_get(L);
  b->loop = lc_sched_loop(sch);
  b->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (b->efd < 0) return luaL_error(L, "luact.retrieval: eventfd: %s", strerror(errno));
  b->watch = (struct lc_fdwatch){.fd = b->efd, .events = LC_READ, .cb = on_search_done, .ud = b};
  if (lc_loop_watch(b->loop, &b->watch)) {
    b->watch.fd = -1;
    return luaL_error(L, "luact.retrieval: cannot watch the search");
  }
  b->store = sb;
  b->rs = s;
  sb->busy++;
  if (b->rebuild) sb->rebuilding++;
  b->started = 1;
  if (pthread_create(&b->th, NULL, search_thread, b)) {
    b->joined = 1; /* nothing to join */
    return luaL_error(L, "luact.retrieval: cannot start the search thread");
  }
  b->wait.cancel = search_cancel;
  lc_task_wait(b->task, &b->wait);
  return lua_yieldk(L, 0, 0, search_k);
}

static const luaL_Reg store_methods[] = {
    {"begin", store_begin},       {"commit", store_commit},
    {"rollback", store_rollback}, {"doc", store_doc},
    {"add_doc", store_add_doc},   {"add_chunk", store_add_chunk},
    {"unchanged", store_unchanged},
    {"cache_get", store_cache_get}, {"cache_put", store_cache_put},
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
  if (luaL_newmetatable(L, SEARCH_MT)) {
    lua_pushcfunction(L, search_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, search_gc);
    lua_setfield(L, -2, "__close");
  }
  lua_pop(L, 1);
  luaL_newlib(L, retrieval_funcs);
  return 1;
}
