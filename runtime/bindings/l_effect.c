/* l_effect.c: effects from Lua: luact.effect's C half (begin / results /
 * finish on a to-be-closed "luact.Effect" token), luact.now, luact.random
 * and luact.ask, and the per-state journal pointer. */
#include "l_effect.h"

#include <errno.h>
#include <fcntl.h>
#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conv.h"
#include "crash.h"
#include "jcanon.h"
#include "jsonw.h"
#include "l_chat.h"
#include "l_engine.h"
#include "l_luact.h"
#include "l_opts.h"
#include "l_state.h"
#include "lc.h"
#include "loop.h"
#include "sched.h"
#include "secrets.h"
#include "utf8.h"

#define EFFECT_MT "luact.Effect"
#define ASK_MT "luact.Ask"

static char journal_key;
/* EFFECT_MT in the registry under a pointer too: a token's methods find
 * it without a string lookup (lc_lua_checkud), three times per effect. */
static char effect_mt_key;

void lc_l_journal_attach(lua_State *L, struct lc_journal *j) {
  lua_pushlightuserdata(L, j);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &journal_key);
  struct lc_sched *s = lc_sched_get(L);
  if (s) lc_sched_on_idle(s, j ? lc_journal_idle : NULL, j);
  /* Its fsyncs then run on a writer thread, and tasks wait on this loop. */
  if (j && s) lc_journal_set_loop(j, lc_sched_loop(s));
  /* The run's identity, from the runtime (restored on resume): what a
   * script derives keys and names from. */
  if (j && lua_getglobal(L, "luact") == LUA_TTABLE) {
    lua_pushstring(L, lc_journal_run_id(j));
    lua_setfield(L, -2, "run_id");
  }
  if (j) lua_pop(L, 1);
}

struct lc_journal *lc_l_journal(lua_State *L) {
  lua_rawgetp(L, LUA_REGISTRYINDEX, &journal_key);
  struct lc_journal *j = lua_touserdata(L, -1);
  lua_pop(L, 1);
  return j;
}

/* lc_effect_src.next for tasks: called by engines (llm_call.c) per effect. */
static void task_next(void *ud, struct lc_effect_who *w) {
  struct lc_task *t = ud;
  w->task = t;
  w->path = lc_task_path(t);
  w->seq = lc_task_next_seq(t);
}

void lc_l_effect_src(lua_State *L, struct lc_task *t, struct lc_effect_src *src) {
  struct lc_journal *j = lc_l_journal(L);
  /* Off: no journal at all, so calls pay nothing for request JSON and
   * hashes they would only throw away. */
  src->j = j && lc_journal_mode(j) != LC_JOURNAL_OFF ? j : NULL;
  src->next = task_next;
  src->ud = t;
}

/* [-0, +0, e] Raises the journal's error (the run stops). */
static int raise_journal(lua_State *L, struct lc_journal *j) {
  return luaL_error(L, "%s", lc_journal_error(j));
}

/* ---- luact.Effect: one effect begun from Lua ---- */

enum { TOK_RUNNING, TOK_DONE, TOK_REPLAYED };

struct effect_box {
  struct lc_effect_op e;
  struct lc_task *task;
  struct lc_journal_waiter jw; /* waiting for a line to be durable */
  struct lc_journal_deferred dfr; /* replay: waiting for its turn */
  struct lc_wait wait;
  unsigned long seq0, children0; /* the task's counters after begin */
  int scoped;                    /* a live scope is open for it */
  int state;
  /* begin's request (its text when recording, else its tree), held here
   * until lc_effect_begin has it so a raise meanwhile frees it (tok_close):
   * no to-be-closed box of its own per effect. */
  struct lc_buf req;
  cJSON *reqj;
};

static void tok_free_request(struct effect_box *b) {
  lc_buf_free(&b->req);
  cJSON_Delete(b->reqj);
  b->reqj = NULL;
}

static void tok_unscope(struct effect_box *b) {
  if (b->scoped) {
    lc_journal_scope_pop(b->e.j, b->task);
    b->scoped = 0;
  }
}

/* ---- waiting for the journal's writer thread ----
 * An effect's intent must be durable before it runs and its result before
 * Lua sees it; the fsync runs on the journal's writer thread and the task
 * yields meanwhile, so the loop and every other task go on. */

static void dw_fire(struct lc_journal_waiter *w) {
  struct effect_box *b = (struct effect_box *)((char *)w - offsetof(struct effect_box, jw));
  lc_task_wake(b->task, &b->wait);
}

static void dw_cancel(struct lc_wait *w) {
  struct effect_box *b = (struct effect_box *)((char *)w - offsetof(struct effect_box, wait));
  lc_journal_unwait(b->e.j, &b->jw);
}

/* What a binding does once the line is durable (await_durable's ctx is
 * which | n << 8). */
enum { K_BEGIN, K_FINISH, K_FAIL, K_FINISH_AS_GIVEN };
static int after_durable(lua_State *L, int which, int n);

static int durable_k(lua_State *L, int status, lua_KContext ctx);

/* The token: at 6 for begin (after its 5 arguments), else 1. */
static struct effect_box *k_box(lua_State *L, lua_KContext ctx) {
  return lua_touserdata(L, (ctx & 0xff) == K_BEGIN ? 6 : 1);
}

/* Goes on (after_durable) once the token's pending line is durable: at
 * once when it is, by yielding the task otherwise (an fsync on this
 * thread only where the task cannot yield). Raises when syncing failed. */
static int await_durable(lua_State *L, lua_KContext ctx) {
  struct effect_box *b = k_box(L, ctx);
  struct lc_journal *j = b->e.j;
  if (!lc_journal_durable(j, b->e.ticket)) {
    b->jw.ticket = b->e.ticket;
    b->jw.fire = dw_fire;
    b->wait.cancel = dw_cancel;
    if (lua_isyieldable(L) && lc_journal_wait(j, &b->jw) == 0) {
      lc_task_wait(b->task, &b->wait);
      return lua_yieldk(L, 0, ctx, durable_k);
    }
    if (lc_journal_sync_now(j, b->e.ticket)) return raise_journal(L, j);
  }
  if (lc_journal_failed(j) == LC_JOURNAL_EIO) return raise_journal(L, j);
  b->e.ticket = 0;
  return after_durable(L, (int)(ctx & 0xff), (int)(ctx >> 8));
}

static int durable_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  return await_durable(L, ctx);
}

/* __gc and __close: a token still running was abandoned (error, kill). */
static int tok_close(lua_State *L) {
  struct effect_box *b = lc_lua_checkud_up(L, 1, 1, &effect_mt_key, EFFECT_MT);
  if (b->state == TOK_RUNNING) {
    b->state = TOK_DONE;
    lc_effect_cancel(&b->e, lua_isnoneornil(L, 2) ? "cancelled" : "cancelled by an error");
  }
  if (b->dfr.queued) lc_journal_undefer(b->e.j, &b->dfr);
  tok_unscope(b);
  tok_free_request(b);
  return 0;
}

/* ---- replayed answers in the recorded order ----
 * A replayed effect waits for its turn (lc_journal_defer): concurrent
 * branches see their answers in the order the recording saw them, as
 * replayed LLM calls do, so a tool that completed off the loop (a file
 * read, a query, an MCP call) prints where the original run printed. */

static void turn_fire(struct lc_journal_deferred *d) {
  struct effect_box *b = (struct effect_box *)((char *)d - offsetof(struct effect_box, dfr));
  lc_task_wake(b->task, &b->wait);
}

static void turn_cancel(struct lc_wait *w) {
  struct effect_box *b = (struct effect_box *)((char *)w - offsetof(struct effect_box, wait));
  lc_journal_undefer(b->e.j, &b->dfr);
}

static int turn_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  (void)ctx;
  struct effect_box *b = lua_touserdata(L, 6);
  if (b->dfr.queued) { /* woken early: wait on */
    lc_task_wait(b->task, &b->wait);
    return lua_yieldk(L, 0, 0, turn_k);
  }
  lua_settop(L, 6);
  lua_pushboolean(L, 1); /* replayed */
  return 2;
}

/* [-0, +1, e] Request value at idx as JSON (NULL for nil). */
static cJSON *to_json_or_raise(lua_State *L, int idx, const char *what) {
  if (lua_isnoneornil(L, idx)) return NULL;
  cJSON *j = NULL;
  char err[256];
  if (lc_conv_to_json(L, idx, &j, err, sizeof err))
    luaL_error(L, "luact.effect: %s cannot be journaled: %s", what, err);
  return j;
}

/* Holds a cJSON tree, or JSON text, in a to-be-closed box so a raise
 * frees it. */
struct json_box {
  cJSON *j;
  struct lc_buf t;
};

static int jbox_gc(lua_State *L) {
  struct json_box *b = lua_touserdata(L, 1);
  cJSON_Delete(b->j);
  b->j = NULL;
  lc_buf_free(&b->t);
  return 0;
}

static struct json_box *push_jbox(lua_State *L) {
  struct json_box *b = lua_newuserdatauv(L, sizeof *b, 0);
  b->j = NULL;
  lc_buf_init(&b->t, 0);
  if (luaL_newmetatable(L, "luact.JsonBox")) {
    lua_pushcfunction(L, jbox_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, jbox_gc);
    lua_setfield(L, -2, "__close");
  }
  lua_setmetatable(L, -2);
  return b;
}

static enum lc_effect check_class(lua_State *L, int idx) {
  static const char *const names[] = {"pure", "idempotent", "at_most_once", NULL};
  return (enum lc_effect)luaL_checkoption(L, idx, NULL, names);
}

/* ---- the ctx of an effect that is not journaled ----
 * {effect_id =, idempotency_key =} like tok:ctx(), but the key (a SHA-256
 * of the run id and the effect id) is derived the first time it is read:
 * most tools never read it. A shared metatable does it; __pairs derives it
 * first, so iterating the ctx shows both fields as before. */

static char lazyctx_key;

/* [-0, +0, m] Derives ctx.idempotency_key from ctx.effect_id (ctx at idx)
 * and stores it in the table; pushes nothing. */
static void lazyctx_fill(lua_State *L, int idx) {
  struct lc_journal *j = lc_l_journal(L);
  lua_pushliteral(L, "effect_id");
  if (!j || lua_rawget(L, idx) != LUA_TSTRING) { /* ... id */
    lua_pop(L, 1);
    return;
  }
  char key[33];
  lc_effect_key(j, lua_tostring(L, -1), key);
  lua_pop(L, 1);
  lua_pushstring(L, key);
  lua_setfield(L, idx, "idempotency_key"); /* the ctx has no __newindex */
}

static int lazyctx_index(lua_State *L) {
  /* ctx k */
  if (lua_type(L, 2) != LUA_TSTRING || strcmp(lua_tostring(L, 2), "idempotency_key")) return 0;
  lazyctx_fill(L, 1);
  lua_rawget(L, 1); /* ctx key */
  return 1;
}

static int lazyctx_next(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 2);
  if (lua_next(L, 1)) return 2;
  lua_pushnil(L);
  return 1;
}

static int lazyctx_pairs(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_pushliteral(L, "idempotency_key");
  if (lua_rawget(L, 1) == LUA_TNIL) lazyctx_fill(L, 1);
  lua_pop(L, 1);
  lua_pushcfunction(L, lazyctx_next);
  lua_pushvalue(L, 1);
  lua_pushnil(L);
  return 3;
}

/* [-0, +1, m] Pushes "path#seq", the id lc_effect_begin gives an effect
 * (cut to LC_EFFECT_ID_MAX - 1 bytes like it), without printf. */
static void push_effect_id(lua_State *L, const char *path, unsigned long seq) {
  char id[LC_EFFECT_ID_MAX], num[24];
  size_t nl = 0, cap = sizeof id - 1;
  do num[sizeof num - 1 - nl++] = (char)('0' + seq % 10);
  while ((seq /= 10) != 0);
  size_t n = strlen(path);
  if (n > cap) n = cap;
  memcpy(id, path, n);
  if (n < cap) id[n++] = '#';
  const char *digits = num + sizeof num - nl;
  if (nl > cap - n) nl = cap - n; /* cut like snprintf: the end goes */
  memcpy(id + n, digits, nl);
  n += nl;
  lua_pushlstring(L, id, n);
}

/* [-0, +0, m] Gives the table on top the lazy ctx's metatable. */
static void set_lazy_ctx_mt(lua_State *L) {
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &lazyctx_key) != LUA_TTABLE) {
    lua_pop(L, 1);
    lua_createtable(L, 0, 2);
    lua_pushcfunction(L, lazyctx_index);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, lazyctx_pairs);
    lua_setfield(L, -2, "__pairs");
    lua_pushvalue(L, -1);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &lazyctx_key);
  }
  lua_setmetatable(L, -2);
}

/* [-0, +1, m] Pushes the ctx of effect path#seq. */
static void push_lazy_ctx(lua_State *L, const char *path, unsigned long seq) {
  lua_createtable(L, 0, 2);
  push_effect_id(L, path, seq);
  lua_setfield(L, -2, "effect_id");
  set_lazy_ctx_mt(L);
}

/* The schema hash of a schema table, made once per table: a tool passes
 * the same table on every call (tool.lua's schema_of makes a new one when
 * the description or params are replaced), and converting and hashing it
 * was a JSON tree and a SHA-256 per journaled call. Weak keys: a table
 * that goes, goes from here. Like the tool's compiled validator, a table
 * changed in place after its first effect keeps its first hash. */
static char schema_hash_key;

/* [-0, +0, m] 1 and the hash in th when the table at idx has one. */
static int schema_hash_get(lua_State *L, int idx, char th[65]) {
  if (lua_type(L, idx) != LUA_TTABLE) return 0;
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &schema_hash_key) != LUA_TTABLE) {
    lua_pop(L, 1);
    return 0;
  }
  lua_pushvalue(L, idx);
  size_t n = 0;
  const char *h = lua_rawget(L, -2) == LUA_TSTRING ? lua_tolstring(L, -1, &n) : NULL;
  if (h && n == 64) memcpy(th, h, 65);
  lua_pop(L, 2);
  return h && n == 64;
}

/* [-0, +0, m] Keeps th as the hash of the table at idx. */
static void schema_hash_put(lua_State *L, int idx, const char th[65]) {
  if (lua_type(L, idx) != LUA_TTABLE) return;
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &schema_hash_key) != LUA_TTABLE) {
    lua_pop(L, 1);
    lua_newtable(L);
    lua_createtable(L, 0, 1);
    lua_pushliteral(L, "k");
    lua_setfield(L, -2, "__mode");
    lua_setmetatable(L, -2);
    lua_pushvalue(L, -1);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &schema_hash_key);
  }
  lua_pushvalue(L, idx);
  lua_pushlstring(L, th, 64);
  lua_rawset(L, -3);
  lua_pop(L, 1);
}

int lc_l_schema_hash(lua_State *L, int idx, char th[65], char *err, size_t errlen) {
  cJSON *sj = NULL;
  if (lc_conv_to_json(L, idx, &sj, err, errlen)) return LC_EINVAL;
  int hr = lc_jcanon_hash(sj, th);
  cJSON_Delete(sj);
  return hr ? LC_ENOMEM : 0;
}

/* _effect_begin(kind, name, request, class [, schema]) -> token, replayed
 * | nil | false, ctx. nil: no journal attached; run the effect plainly.
 * false: the journal is off; run it plainly with ctx. replayed: the token
 * answers with tok:results() (what tok:replayed() says, without the
 * call). Raises on a replay mismatch, a
 * missing effect, an in-doubt at-most-once effect. */
static int l_effect_begin(lua_State *L) {
  const char *kind = luaL_checkstring(L, 1);
  const char *name = luaL_checkstring(L, 2);
  enum lc_effect cls = check_class(L, 4);
  int noctx = lua_toboolean(L, 6); /* the caller's fn never reads its ctx */
  lua_settop(L, 5);
  struct lc_task *task = lc_task_check(L, "luact.effect");
  struct lc_journal *j = lc_l_journal(L);
  if (!j) return 0;
  if (lc_journal_mode(j) == LC_JOURNAL_OFF) {
    /* Nothing to write, compare or hash, and no token to end. The effect
     * still takes its number, so later effects keep their names. */
    unsigned long seq = lc_task_next_seq(task);
    if (lc_effect_pass(j)) return raise_journal(L, j);
    lua_pushboolean(L, 0);
    if (noctx) return 1; /* no table, id string or metatable per call */
    push_lazy_ctx(L, lc_task_path(task), seq);
    return 2;
  }
  /* The token first: it holds the request until lc_effect_begin has it
   * (tok_close frees it if a conversion raises). */
  struct effect_box *b = lua_newuserdatauv(L, sizeof *b, 0); /* ... tok (at 6) */
  memset(b, 0, sizeof *b);
  b->state = TOK_DONE; /* nothing owed until begin succeeds */
  lc_buf_init(&b->req, 0);
  lua_rawgetp(L, LUA_REGISTRYINDEX, &effect_mt_key);
  lua_setmetatable(L, -2);
  char th[65];
  int has_schema = 0;
  int text = 0;
  if (lc_journal_mode(j) == LC_JOURNAL_RECORD && !lua_isnoneornil(L, 3)) {
    /* Recording: the request's canonical text, no tree (begin parses it
     * only where it compares or writes an intent: see effect.h). Same
     * rules and messages as the tree. */
    char err[256];
    if (lc_conv_to_text(L, 3, &b->req, err, sizeof err))
      return luaL_error(L, "luact.effect: the request cannot be journaled: %s", err);
    text = 1;
  } else {
    b->reqj = to_json_or_raise(L, 3, "the request");
  }
  if (!lua_isnoneornil(L, 5)) {
    if (!schema_hash_get(L, 5, th)) {
      char err[256];
      int hr = lc_l_schema_hash(L, 5, th, err, sizeof err);
      if (hr == LC_EINVAL) return luaL_error(L, "luact.effect: the schema cannot be journaled: %s", err);
      if (hr) return luaL_error(L, "out of memory");
      schema_hash_put(L, 5, th);
    }
    has_schema = 1;
  }
  struct lc_effect_who w = {task, lc_task_path(task), lc_task_next_seq(task)};
  struct lc_effect_desc d = {.kind = kind, .name = name, .request = b->reqj, .cls = cls,
                             .tools_hash = has_schema ? th : NULL, .waits = 1,
                             .request_text = text ? b->req.data : NULL,
                             .request_len = text ? b->req.len : 0};
  int rc = lc_effect_begin(j, &w, &d, &b->e);
  tok_free_request(b); /* begin copied what it keeps */
  if (rc < 0) return raise_journal(L, j);
  b->task = task;
  lc_task_counters(task, &b->seq0, &b->children0);
  if (rc == LC_EFFECT_REPLAYED) {
    b->state = TOK_REPLAYED;
    if (lua_isyieldable(L)) { /* else at once (a metamethod's effect) */
      b->dfr.fire = turn_fire;
      b->wait.cancel = turn_cancel;
      lc_journal_defer(j, &b->e, &b->dfr);
      lc_task_wait(task, &b->wait);
      return lua_yieldk(L, 0, 0, turn_k);
    }
  } else {
    b->state = TOK_RUNNING;
    if (b->e.live) {
      if (lc_journal_scope_push(j, task, w.path, b->children0)) {
        lc_effect_cancel(&b->e, "out of memory");
        b->state = TOK_DONE;
        return luaL_error(L, "out of memory");
      }
      b->scoped = 1;
    }
  }
  if (!b->e.ticket) {
    lua_pushboolean(L, b->state == TOK_REPLAYED);
    return 2;
  }
  return await_durable(L, K_BEGIN);
}

void lc_l_effect_adopt(lua_State *L, struct lc_effect_op *e, struct lc_task *task,
                       unsigned long seq0, unsigned long children0) {
  struct effect_box *b = lua_newuserdatauv(L, sizeof *b, 0);
  memset(b, 0, sizeof *b);
  lc_buf_init(&b->req, 0);
  lua_rawgetp(L, LUA_REGISTRYINDEX, &effect_mt_key);
  lua_setmetatable(L, -2);
  /* nothing raises from here: the effect moves (its pending line with it) */
  b->e = *e;
  lc_buf_init(&e->pending, 0);
  e->recording = 0;
  b->task = task;
  b->seq0 = seq0;
  b->children0 = children0;
  b->state = TOK_RUNNING;
}

static int tok_replayed(lua_State *L) {
  struct effect_box *b = lc_lua_checkud_up(L, 1, 1, &effect_mt_key, EFFECT_MT);
  lua_pushboolean(L, b->state == TOK_REPLAYED);
  return 1;
}

/* tok:ctx() -> {idempotency_key =, effect_id =} for the effect's fn. The
 * key of an effect that is not idempotent is derived when read (most
 * never read it: it was a SHA-256 per effect). */
static int tok_ctx(lua_State *L) {
  struct effect_box *b = lc_lua_checkud_up(L, 1, 1, &effect_mt_key, EFFECT_MT);
  lua_createtable(L, 0, 2);
  lua_pushstring(L, b->e.id);
  lua_setfield(L, -2, "effect_id");
  if (b->e.key[0]) {
    lua_pushstring(L, b->e.key);
    lua_setfield(L, -2, "idempotency_key");
  } else {
    set_lazy_ctx_mt(L);
  }
  return 1;
}

/* [-0, +n, m] Pushes the elements of a recorded result list (null at the
 * top level is nil: a Lua function returns nil, not json.null). */
static int push_values(lua_State *L, const cJSON *a) {
  int n = cJSON_GetArraySize(a);
  luaL_checkstack(L, n + 1, "luact.effect");
  for (const cJSON *c = a->child; c; c = c->next) {
    if (cJSON_IsNull(c)) lua_pushnil(L);
    else lc_conv_push_json(L, c);
  }
  return n;
}

/* tok:results() -> the recorded values, or raises the recorded error. */
static int tok_results(lua_State *L) {
  struct effect_box *b = lc_lua_checkud_up(L, 1, 1, &effect_mt_key, EFFECT_MT);
  if (b->state != TOK_REPLAYED) return luaL_error(L, "luact.effect: not a replayed effect");
  b->state = TOK_DONE;
  /* What the body used when it ran: skipped now that it does not. */
  const cJSON *nested = lc_effect_member(&b->e, "nested");
  if (nested) {
    const cJSON *ne = cJSON_GetObjectItemCaseSensitive(nested, "effects");
    const cJSON *ns = cJSON_GetObjectItemCaseSensitive(nested, "spawned");
    lc_task_skip(b->task, cJSON_IsNumber(ne) ? (unsigned long)ne->valuedouble : 0,
                 cJSON_IsNumber(ns) ? (unsigned long)ns->valuedouble : 0);
  }
  const cJSON *err = lc_effect_error(&b->e);
  if (err) {
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(err, "message");
    lua_pushstring(L, cJSON_IsString(m) ? m->valuestring : "effect failed");
    return lua_error(L);
  }
  const cJSON *res = lc_effect_result(&b->e);
  if (!cJSON_IsArray(res)) return 0;
  return push_values(L, res);
}

static cJSON *nested_extra(struct effect_box *b) {
  unsigned long seq, children;
  lc_task_counters(b->task, &seq, &children);
  cJSON *x = cJSON_CreateObject(), *n = x ? cJSON_AddObjectToObject(x, "nested") : NULL;
  if (n) {
    cJSON_AddNumberToObject(n, "effects", (double)(seq - b->seq0));
    cJSON_AddNumberToObject(n, "spawned", (double)(children - b->children0));
  }
  return x;
}

/* (l_effect.h) No tree, no copy of the text and no values made again
 * from it. check_effect's finish_as_given_writes_the_general_line. */
int lc_l_effect_end_given(lua_State *L, struct lc_effect_op *e, int first, int n,
                          unsigned long effects, unsigned long spawned) {
  if (!lc_effect_one_line_owed(e)) return 1;
  for (int i = first; i < first + n; i++) {
    int t = lua_type(L, i);
    if (t == LUA_TNIL || t == LUA_TBOOLEAN) continue;
    if (t != LUA_TSTRING) return 1;
    size_t len;
    const char *s = lua_tolstring(L, i, &len);
    if (memchr(s, 0, len) || !lc_utf8_valid(s, len, NULL)) return 1;
  }
  /* No Lua call from here to lc_buf_free: nothing can raise past t. */
  struct lc_buf t;
  lc_buf_init(&t, 0);
  struct lc_jsonw w;
  lc_jsonw_init(&w, &t);
  lc_jsonw_arr(&w);
  for (int i = first; i < first + n; i++) {
    int ty = lua_type(L, i);
    if (ty == LUA_TNIL) {
      lc_jsonw_null(&w);
    } else if (ty == LUA_TBOOLEAN) {
      lc_jsonw_bool(&w, lua_toboolean(L, i));
    } else {
      size_t len;
      const char *s = lua_tolstring(L, i, &len);
      lc_jsonw_str(&w, s, len);
    }
  }
  lc_jsonw_arr_end(&w);
  if (lc_jsonw_finish(&w)) { /* no memory: the general path says so */
    lc_buf_free(&t);
    return 1;
  }
  int rc = lc_effect_end_text(e, t.data, t.len, effects, spawned);
  lc_buf_free(&t);
  return rc;
}

/* tok:finish's path for a one-line effect whose values are all nil,
 * booleans and strings that JSON holds as they are: the line written from
 * them (lc_l_effect_end_given) and the values given returned (reading them
 * back from the line gives the same ones). -1: not such values; the
 * general path below takes them (with its messages). */
static int finish_as_given(lua_State *L, struct effect_box *b, int n) {
  unsigned long seq, children;
  lc_task_counters(b->task, &seq, &children);
  int rc = lc_l_effect_end_given(L, &b->e, 2, n, seq - b->seq0, children - b->children0);
  if (rc == 1) return -1;
  b->state = TOK_DONE;
  if (rc) return raise_journal(L, b->e.j);
  if (!b->e.ticket) return n;
  return await_durable(L, K_FINISH_AS_GIVEN | (lua_KContext)n << 8);
}

/* tok:finish(...) -> ...: records the values; when recording, returns them
 * as the journal holds them (so a replay returns exactly the same). */
static int tok_finish(lua_State *L) {
  struct effect_box *b = lc_lua_checkud_up(L, 1, 1, &effect_mt_key, EFFECT_MT);
  int n = lua_gettop(L) - 1;
  if (b->state != TOK_RUNNING) return luaL_error(L, "luact.effect: effect already ended");
  tok_unscope(b);
  if (!b->e.recording) {
    b->state = TOK_DONE;
    lc_effect_end(&b->e, NULL, NULL, NULL);
    return n;
  }
  int r = finish_as_given(L, b, n);
  if (r >= 0) return r;
  struct json_box *res = push_jbox(L);
  lua_toclose(L, -1);
  res->j = cJSON_CreateArray();
  if (!res->j) return luaL_error(L, "out of memory");
  for (int i = 2; i <= n + 1; i++) {
    cJSON *v = NULL;
    char err[256];
    if (lc_conv_to_json(L, i, &v, err, sizeof err)) {
      /* Recorded as tok:fail records ({message}) and raised with the very
       * text recorded, so a replay raises what the run saw. */
      char msg[400];
      snprintf(msg, sizeof msg, "luact.effect: result %d cannot be journaled: %s", i - 1, err);
      cJSON *e = cJSON_CreateObject();
      if (e && !cJSON_AddStringToObject(e, "message", msg)) {
        cJSON_Delete(e);
        e = NULL;
      }
      if (!e) return luaL_error(L, "out of memory"); /* still running: its close ends it */
      b->state = TOK_DONE;
      lc_effect_end(&b->e, NULL, e, nested_extra(b));
      lua_pushstring(L, msg);
      return lua_error(L);
    }
    cJSON_AddItemToArray(res->j, v);
  }
  b->state = TOK_DONE;
  cJSON *copy = cJSON_Duplicate(res->j, 1);
  if (!copy) return luaL_error(L, "out of memory");
  if (lc_effect_end(&b->e, copy, NULL, nested_extra(b))) return raise_journal(L, b->e.j);
  if (!b->e.ticket) return push_values(L, res->j);
  return await_durable(L, K_FINISH | (lua_KContext)n << 8);
}

/* [-0, +n, e] The binding's results, its line durable now. */
static int after_durable(lua_State *L, int which, int n) {
  if (which == K_BEGIN) {
    lua_settop(L, 6);
    lua_pushboolean(L, 0); /* recorded: not replayed */
    return 2; /* the token */
  }
  if (which == K_FAIL) return 1; /* the message on top */
  if (which == K_FINISH_AS_GIVEN) {
    lua_settop(L, n + 1);
    return n; /* the values given, after the token */
  }
  struct json_box *res = lua_touserdata(L, n + 2);
  return push_values(L, res->j);
}

/* tok:fail(message) -> message as recorded: the effect raised; the error
 * is its result. The text is made valid UTF-8 (a message cut mid-character
 * would make the line unreadable), and the caller raises what it returns
 * so that the run sees what its replay will. */
static int tok_fail(lua_State *L) {
  struct effect_box *b = lc_lua_checkud_up(L, 1, 1, &effect_mt_key, EFFECT_MT);
  size_t ml;
  const char *m = luaL_tolstring(L, 2, &ml);
  const char *tb = strstr(m, "\nstack traceback:");
  char *s = lc_utf8_sanitize(m, tb ? (size_t)(tb - m) : ml, &ml);
  if (b->state != TOK_RUNNING) {
    if (s) lua_pushlstring(L, s, ml);
    lc_free(s);
    return s ? 1 : luaL_error(L, "out of memory");
  }
  b->state = TOK_DONE;
  tok_unscope(b);
  cJSON *e = cJSON_CreateObject();
  if (e && s) cJSON_AddStringToObject(e, "message", s);
  int rc = lc_effect_end(&b->e, NULL, e, nested_extra(b));
  if (s) lua_pushlstring(L, s, ml);
  lc_free(s);
  if (rc) return raise_journal(L, b->e.j);
  if (!s) return luaL_error(L, "out of memory");
  return b->e.ticket ? await_durable(L, K_FAIL) : 1;
}

/* ---- clock and random ---- */

/* Runs a value effect (kind/name/request) whose value is computed by C:
 * returns 1 and the recorded value in *out when replayed, 0 when the
 * caller computes it and calls value_end. Raises on journal failure. */
static int value_begin(lua_State *L, struct lc_effect_op *e, const char *kind, const char *name,
                       const cJSON *req, int *journaled) {
  struct lc_journal *j = lc_l_journal(L);
  struct lc_task *task = lc_task_current(L);
  *journaled = 0;
  if (!j || !task || lc_journal_mode(j) == LC_JOURNAL_OFF) return 0;
  struct lc_effect_who w = {task, lc_task_path(task), lc_task_next_seq(task)};
  struct lc_effect_desc d = {.kind = kind, .name = name, .request = req, .cls = LC_EFFECT_PURE};
  int rc = lc_effect_begin(j, &w, &d, e);
  if (rc < 0) return raise_journal(L, j);
  *journaled = 1;
  return rc == LC_EFFECT_REPLAYED;
}

/* [-0, +0, e] Records v (taken). */
static void value_end(lua_State *L, struct lc_effect_op *e, cJSON *v) {
  if (lc_effect_end(e, v, NULL, NULL)) raise_journal(L, e->j);
}

static int l_now(lua_State *L) {
  struct lc_effect_op e;
  int journaled;
  if (value_begin(L, &e, "clock", "now", NULL, &journaled)) {
    const cJSON *r = lc_effect_result(&e);
    if (!cJSON_IsNumber(r)) return luaL_error(L, "replay: effect %s: no recorded time", e.id);
    lua_pushnumber(L, r->valuedouble);
    return 1;
  }
  double now = lc_now_ms() / 1000.0;
  if (journaled) value_end(L, &e, cJSON_CreateNumber(now));
  lua_pushnumber(L, now);
  return 1;
}

/* luact.random([m [, n]]): math.random's contract, from the runtime's
 * generator, recorded. */
static int l_random(lua_State *L) {
  int nargs = lua_gettop(L);
  lua_Integer lo = 1, hi = 0;
  if (nargs == 1) {
    hi = luaL_checkinteger(L, 1);
  } else if (nargs >= 2) {
    lo = luaL_checkinteger(L, 1);
    hi = luaL_checkinteger(L, 2);
  }
  if (nargs >= 1) luaL_argcheck(L, lo <= hi, nargs, "interval is empty");
  cJSON *req = cJSON_CreateArray();
  if (!req) return luaL_error(L, "out of memory");
  if (nargs >= 1) {
    cJSON_AddItemToArray(req, cJSON_CreateNumber((double)lo));
    cJSON_AddItemToArray(req, cJSON_CreateNumber((double)hi));
  }
  struct lc_effect_op e;
  int journaled, replayed;
  /* A raise inside begin would leak req: it only raises after the
   * comparison, so free it around the call. */
  replayed = 0;
  {
    struct json_box *box = push_jbox(L);
    box->j = req;
    lua_toclose(L, -1);
    replayed = value_begin(L, &e, "random", "random", req, &journaled);
  }
  if (replayed) {
    const cJSON *r = lc_effect_result(&e);
    if (cJSON_IsString(r)) lua_pushinteger(L, (lua_Integer)strtoll(r->valuestring, NULL, 10));
    else if (cJSON_IsNumber(r) && nargs >= 1) lua_pushinteger(L, (lua_Integer)r->valuedouble);
    else if (cJSON_IsNumber(r)) lua_pushnumber(L, r->valuedouble);
    else return luaL_error(L, "replay: effect %s: no recorded number", e.id);
    return 1;
  }
  uint64_t x = lc_rand64();
  cJSON *v;
  if (nargs == 0) {
    double d = (double)(x >> 11) * (1.0 / 9007199254740992.0); /* [0, 1) */
    lua_pushnumber(L, d);
    v = cJSON_CreateNumber(d);
  } else {
    uint64_t span = (uint64_t)hi - (uint64_t)lo; /* inclusive range - 1 */
    lua_Integer r = (lua_Integer)((uint64_t)lo + (span == UINT64_MAX ? x : x % (span + 1)));
    lua_pushinteger(L, r);
    if (r > -9007199254740992LL && r < 9007199254740992LL) {
      v = cJSON_CreateNumber((double)r);
    } else {
      char s[32];
      snprintf(s, sizeof s, "%lld", (long long)r); /* beyond a double's integers */
      v = cJSON_CreateString(s);
    }
  }
  if (journaled) value_end(L, &e, v);
  else cJSON_Delete(v);
  return 1;
}

/* ---- luact.ask: a line of user input ----
 *
 * One reader per Lua state owns the input (stdin, or the --input file):
 * asks queue on it in the order they were made, and each gets the next
 * line. Bytes read past a line stay in the reader for the next ask, so
 * concurrent asks lose nothing. A descriptor the loop can watch (a
 * terminal, a pipe) is read only when the loop says it is readable, and
 * non-blocking while asks wait; a regular file (which epoll refuses) never
 * blocks and is read at once. When stdin and stdout are a terminal the
 * person edits the line (l_chat.c: libedit, fed a character at a time
 * when the loop says stdin is readable), with the run's history. */

#define READER_MT "luact.AskReader"
static char reader_key;

struct ask_op;

struct ask_reader {
  struct lc_loop *loop;
  int fd;
  struct lc_fdwatch w;
  int watching;
  int unwatchable; /* epoll refused the fd: read it directly */
  int saved_flags; /* fcntl flags to restore, or -1 */
  int nonblock;    /* reads never block: drain after a wake-up */
  int eof;
  int closed; /* collected: the loop may be gone */
  int tty_edit; /* a person at a terminal: lines are edited (l_chat.h) */
  int editing;  /* the head ask's edit is active */
  char *history; /* the run's history name, or NULL */
  char *buf; /* read, not yet handed out */
  size_t len, cap;
  struct ask_op *head, *tail;
};

struct ask_op {
  struct lc_effect_op e;
  int journaled;
  struct ask_reader *r;
  struct lc_task *task;
  struct lc_wait wait;
  struct ask_op *next;
  int queued, waiting;
  int done, eof, failed;
  int secret;    /* no echo, no history */
  int typed_eof; /* the person ended the input at the terminal */
  char *prompt; /* shown when it reaches the head of the queue (terminal) */
  size_t plen;
  char *line;
  size_t len;
};

static void reader_watch(struct ask_reader *r, int on) {
  if (on == r->watching || (on && (r->unwatchable || r->closed))) return;
  if (on) {
    r->w.fd = r->fd;
    r->w.events = LC_READ;
    if (lc_loop_watch(r->loop, &r->w) != 0) {
      r->unwatchable = 1; /* a regular file or /dev/null: never blocks */
      return;
    }
    r->watching = 1;
    /* Non-blocking while watched: a reader that shares the descriptor
     * could take the bytes between the wake-up and our read. Restored
     * when no ask waits. Not a terminal: stdout and stderr are usually
     * the same open file there, and would turn non-blocking too (a print
     * could then fail with EAGAIN); a terminal's read after a wake-up
     * returns the line that woke it. */
    int fl = fcntl(r->fd, F_GETFL);
    r->saved_flags = -1;
    if (fl >= 0 && (fl & O_NONBLOCK)) {
      r->nonblock = 1;
    } else if (fl >= 0 && !isatty(r->fd) && fcntl(r->fd, F_SETFL, fl | O_NONBLOCK) == 0) {
      r->saved_flags = fl;
      r->nonblock = 1;
    }
  } else {
    lc_loop_unwatch(r->loop, &r->w);
    r->watching = 0;
    if (r->saved_flags >= 0) fcntl(r->fd, F_SETFL, r->saved_flags);
    r->saved_flags = -1;
    r->nonblock = 0;
  }
}

static void edit_done(void *ud, char *line, size_t len);

static void show_prompt(struct ask_op *op) {
  struct ask_reader *r = op->r;
  if (r->tty_edit && lc_l_edit_start(op->prompt ? op->prompt : "", op->plen, op->secret,
                                     r->history, edit_done, r) == 0) {
    r->editing = 1;
    return;
  }
  if (op->plen && isatty(op->r->fd)) {
    fwrite(op->prompt, 1, op->plen, stdout);
    fflush(stdout);
  }
}

static void reader_dequeue(struct ask_reader *r, struct ask_op *op) {
  if (!op->queued) return;
  struct ask_op **pp = &r->head, *prev = NULL;
  while (*pp && *pp != op) prev = *pp, pp = &(*pp)->next;
  if (*pp) *pp = op->next;
  if (r->tail == op) r->tail = prev;
  op->queued = 0;
  op->next = NULL;
  if (!prev && r->editing) {
    /* The head's edit: its line came through the reader (a secret one),
     * or the ask went away. */
    r->editing = 0;
    lc_l_edit_stop();
  }
  if (!prev && r->head) show_prompt(r->head);
}

/* l_chat.c's edit of the head ask ended (never inside libedit): line is
 * ours (lc_malloc'd), or NULL when the person ended the input. */
static void edit_done(void *ud, char *line, size_t len) {
  struct ask_reader *r = ud;
  r->editing = 0;
  struct ask_op *op = r->head;
  if (!op) {
    lc_free(line);
    return;
  }
  if (line) {
    op->line = line;
    op->len = len;
  } else {
    op->eof = op->typed_eof = 1;
  }
  op->done = 1;
  reader_dequeue(r, op); /* the next ask's prompt, if one waits */
  if (op->waiting) lc_task_wake(op->task, &op->wait);
  reader_watch(r, r->head != NULL && !r->eof);
}

/* Reads what is there (one read); 1 if bytes or end of input came. */
static int reader_fill(struct ask_reader *r) {
  if (r->cap - r->len < 4096) {
    size_t nc = r->cap ? r->cap * 2 : 8192;
    char *b = lc_realloc(r->buf, nc);
    if (!b) {
      r->eof = 1; /* no memory to read into: the asks end with eof */
      return 1;
    }
    r->buf = b;
    r->cap = nc;
  }
  ssize_t n = read(r->fd, r->buf + r->len, r->cap - r->len);
  if (n < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)) return 0;
  if (n <= 0) r->eof = 1;
  else r->len += (size_t)n;
  return 1;
}

/* Hands complete lines to the queued asks, in order; reads more from an
 * unwatchable input; watches a watchable one while asks wait. */
static void reader_pump(struct ask_reader *r) {
  while (r->head) {
    struct ask_op *op = r->head;
    char *nl = r->len ? memchr(r->buf, '\n', r->len) : NULL;
    if (nl || (r->eof && r->len)) {
      size_t n = nl ? (size_t)(nl - r->buf) : r->len;
      op->line = lc_malloc(n + 1);
      if (op->line) {
        memcpy(op->line, r->buf, n);
        op->line[n] = '\0';
        op->len = n;
      } else {
        op->failed = 1;
      }
      size_t used = nl ? n + 1 : n;
      memmove(r->buf, r->buf + used, r->len - used);
      r->len -= used;
    } else if (r->eof) {
      op->eof = 1;
      op->typed_eof = r->tty_edit; /* Ctrl-D at a secret prompt */
    } else if (r->unwatchable) {
      if (!reader_fill(r) && errno != EINTR) break;
      continue;
    } else {
      break;
    }
    op->done = 1;
    reader_dequeue(r, op);
    if (op->waiting) lc_task_wake(op->task, &op->wait);
  }
  int could = !r->unwatchable;
  reader_watch(r, r->head != NULL && !r->eof);
  if (r->head && r->unwatchable && could) reader_pump(r); /* the watch was refused */
}

/* Loop callback (lc_loop_run_once): the input is readable. */
static void reader_readable(struct lc_loop *loop, struct lc_fdwatch *w, unsigned events) {
  (void)loop;
  (void)events;
  struct ask_reader *r = w->ud;
  if (r->editing && lc_l_edit_active() == 1) {
    lc_l_edit_readable(); /* libedit reads what it needs; may end the edit */
    return;
  }
  /* Non-blocking: read until a line is complete or nothing is left;
   * otherwise one read, which the wake-up says will not block. */
  while (reader_fill(r) && !r->eof && r->nonblock && !memchr(r->buf, '\n', r->len)) {
  }
  reader_pump(r);
}

static int reader_gc(lua_State *L) {
  struct ask_reader *r = luaL_checkudata(L, 1, READER_MT);
  if (r->watching) reader_watch(r, 0);
  if (r->editing) lc_l_edit_stop();
  r->editing = 0;
  lc_free(r->history);
  r->history = NULL;
  r->closed = 1;
  lc_free(r->buf);
  r->buf = NULL;
  r->len = r->cap = 0;
  return 0;
}

/* [-0, +0, m] The state's reader of fd (made on first use). */
static struct ask_reader *get_reader(lua_State *L, struct lc_loop *loop, int fd) {
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &reader_key) == LUA_TUSERDATA) {
    struct ask_reader *r = lua_touserdata(L, -1);
    lua_pop(L, 1);
    if (r->fd == fd) return r;
  } else {
    lua_pop(L, 1);
  }
  /* A new input (another --input file): the old reader's leftovers go. */
  struct ask_reader *r = lua_newuserdatauv(L, sizeof *r, 0);
  memset(r, 0, sizeof *r);
  r->fd = fd;
  r->loop = loop;
  r->saved_flags = -1;
  r->w.cb = reader_readable;
  r->w.ud = r;
  luaL_setmetatable(L, READER_MT);
  r->tty_edit = lc_l_edit_usable(fd);
  struct lc_run_opts ro;
  lc_l_get_run_opts(L, &ro);
  if (r->tty_edit && ro.history && !(r->history = lc_strdup(ro.history)))
    luaL_error(L, "out of memory");
  lua_rawsetp(L, LUA_REGISTRYINDEX, &reader_key);
  return r;
}

static void ask_stop(struct ask_op *op) {
  if (op->r && op->queued) {
    reader_dequeue(op->r, op);
    reader_watch(op->r, op->r->head != NULL && !op->r->eof);
  }
}

static int ask_gc(lua_State *L) {
  struct ask_op *op = luaL_checkudata(L, 1, ASK_MT);
  ask_stop(op);
  if (op->journaled && !op->done) lc_effect_cancel(&op->e, "cancelled");
  op->journaled = 0;
  lc_free(op->line);
  op->line = NULL;
  lc_free(op->prompt);
  op->prompt = NULL;
  return 0;
}

static void ask_cancel(struct lc_wait *w) {
  ask_stop((struct ask_op *)((char *)w - offsetof(struct ask_op, wait)));
}

static int ask_finish(lua_State *L, struct ask_op *op) {
  if (op->failed) return luaL_error(L, "out of memory");
  if (op->len && op->line[op->len - 1] == '\r') op->line[--op->len] = '\0';
  struct lc_journal *j = op->journaled ? op->e.j : NULL;
  if (op->eof && !op->typed_eof && j && lc_journal_wait_input(j)) {
    /* A durable run with no more input waits for a person: the intent
     * stays without a result (luact runs input answers it), the journal
     * stops every later effect, and the run ends as waiting_input. */
    op->journaled = 0;
    op->e.recording = 0;
    lc_journal_wait_for_input(j, op->prompt, op->plen);
    lc_crash_point("waiting_input", "input");
    return raise_journal(L, j);
  }
  /* A secret is scrubbed from what the runtime prints or stores, the
   * journal included (secrets.h). */
  if (op->secret && op->line) lc_secret_add(op->line, op->len);
  if (op->journaled) {
    op->journaled = 0;
    int rc;
    if (op->eof) {
      cJSON *e = cJSON_CreateObject();
      if (e) {
        cJSON_AddStringToObject(e, "message", "no input");
        cJSON_AddStringToObject(e, "code", "eof");
      }
      rc = lc_effect_end(&op->e, NULL, e, NULL);
    } else {
      cJSON *r = cJSON_CreateObject();
      if (r && lc_effect_add_bytes(r, "line", op->line ? op->line : "", op->len)) {
        cJSON_Delete(r);
        r = NULL;
      }
      rc = lc_effect_end(&op->e, r, NULL, NULL);
    }
    if (rc) return raise_journal(L, op->e.j);
  }
  if (op->eof) {
    lua_pushnil(L);
    lua_pushliteral(L, "no input");
    lua_pushliteral(L, "eof");
    return 3;
  }
  lua_pushlstring(L, op->line ? op->line : "", op->len);
  return 1;
}

static int ask_k(lua_State *L, int status, lua_KContext ctx) {
  struct ask_op *op = luaL_checkudata(L, 2, ASK_MT);
  if (!op->done) {
    lc_task_wait(op->task, &op->wait);
    return lua_yieldk(L, 0, 0, ask_k);
  }
  op->waiting = 0;
  return ask_finish(L, op);
}

/* luact.ask(prompt [, {secret = true}]) -> line | nil, "no input", "eof".
 * From the journal in replay; else from the --input file; else stdin (the
 * prompt is shown when stdin is a terminal, where the person edits the
 * line), watched on the loop so other tasks keep running. */
static int l_ask(lua_State *L) {
  size_t plen;
  const char *prompt = luaL_optlstring(L, 1, "", &plen);
  int secret = 0;
  if (!lua_isnoneornil(L, 2)) {
    luaL_checktype(L, 2, LUA_TTABLE);
    lc_l_check_opts(L, 2, "luact.ask");
    secret = lc_l_opt_bool(L, 2, "luact.ask", "secret", 0);
  }
  lua_settop(L, 1);
  struct lc_task *task = lc_task_check(L, "luact.ask");
  struct ask_op *op = lua_newuserdatauv(L, sizeof *op, 0); /* prompt op */
  memset(op, 0, sizeof *op);
  luaL_setmetatable(L, ASK_MT);
  lua_toclose(L, 2);
  op->task = task;
  op->secret = secret;
  op->wait.cancel = ask_cancel;
  struct lc_journal *j = lc_l_journal(L);
  if (j && lc_journal_mode(j) != LC_JOURNAL_OFF) {
    cJSON *req = cJSON_CreateObject();
    if (!req || lc_effect_add_bytes(req, "prompt", prompt, plen)) {
      cJSON_Delete(req);
      return luaL_error(L, "out of memory");
    }
    struct lc_effect_who w = {task, lc_task_path(task), lc_task_next_seq(task)};
    struct lc_effect_desc d = {.kind = "input", .name = "ask", .request = req,
                               .cls = LC_EFFECT_PURE};
    int rc = lc_effect_begin(j, &w, &d, &op->e);
    cJSON_Delete(req);
    if (rc < 0) return raise_journal(L, j);
    if (rc == LC_EFFECT_REPLAYED) {
      const cJSON *err = lc_effect_error(&op->e);
      if (err) {
        op->eof = 1;
      } else {
        char *s;
        size_t n;
        if (lc_effect_get_bytes(lc_effect_result(&op->e), "line", &s, &n))
          return luaL_error(L, "replay: effect %s: no recorded line", op->e.id);
        op->line = s;
        op->len = n;
      }
      op->done = 1;
      return ask_finish(L, op);
    }
    op->journaled = op->e.recording;
  }
  FILE *in = j ? lc_journal_input(j) : NULL;
  struct ask_reader *r = get_reader(L, lc_sched_loop(lc_sched_get(L)), in ? fileno(in) : 0);
  op->r = r;
  if (plen && !(op->prompt = lc_malloc(plen))) return luaL_error(L, "out of memory");
  if (plen) memcpy(op->prompt, prompt, plen);
  op->plen = plen;
  op->queued = 1;
  if (r->tail) r->tail->next = op;
  else r->head = op;
  r->tail = op;
  if (r->head == op) show_prompt(op);
  reader_pump(r);
  if (op->done) return ask_finish(L, op);
  op->waiting = 1;
  lc_task_wait(task, &op->wait);
  return lua_yieldk(L, 0, 0, ask_k);
}

static const luaL_Reg effect_funcs[] = {{"_effect_begin", l_effect_begin},
                                        {"now", l_now},
                                        {"random", l_random},
                                        {"ask", l_ask},
                                        {NULL, NULL}};

static const luaL_Reg tok_methods[] = {{"replayed", tok_replayed}, {"ctx", tok_ctx},
                                       {"results", tok_results}, {"finish", tok_finish},
                                       {"fail", tok_fail},         {NULL, NULL}};

void lc_l_effect_register(lua_State *L) {
  if (luaL_newmetatable(L, EFFECT_MT)) {
    /* The methods and the close hold the metatable as upvalue 1: the
     * self check compares with it (lc_lua_checkud_up), no registry
     * lookup (a journaled tool call ran three: finish, __close, __gc). */
    luaL_newlibtable(L, tok_methods);
    lua_pushvalue(L, -2);
    luaL_setfuncs(L, tok_methods, 1);
    lua_setfield(L, -2, "__index");
    lua_pushvalue(L, -1);
    lua_pushcclosure(L, tok_close, 1);
    lua_setfield(L, -2, "__gc");
    lua_pushvalue(L, -1);
    lua_pushcclosure(L, tok_close, 1);
    lua_setfield(L, -2, "__close");
  }
  lua_rawsetp(L, LUA_REGISTRYINDEX, &effect_mt_key);
  if (luaL_newmetatable(L, READER_MT)) {
    lua_pushcfunction(L, reader_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_pop(L, 1);
  if (luaL_newmetatable(L, ASK_MT)) {
    lua_pushcfunction(L, ask_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, ask_gc);
    lua_setfield(L, -2, "__close");
  }
  lua_pop(L, 1);
  luaL_setfuncs(L, effect_funcs, 0);
}
