/* l_sql.c: Lua binding of the SQL tool: luact.sql.open() -> luact.SqlDb.
 *
 * Inside a luact task, db:query queues the query on the connection's SQL
 * thread and yields; the job's eventfd is watched on the task's loop, which
 * wakes the task when the query is done, so other tasks keep running. The
 * job lives in a to-be-closed "luact.SqlQuery" userdata: a kill (luact.
 * timeout, task kill, tool timeout) cancels it through the wait's cancel,
 * and the close releases it; the SQL thread keeps what it still uses. */
#include <lauxlib.h>

#include "l_opts.h"
#include "l_luact.h"
#include <lua.h>
#include <stdio.h>
#include <string.h>

#include "conv.h"
#include "l_sql.h"
#include "fdwait.h"
#include "sql.h"

#define SQLDB_MT "luact.SqlDb"
#define SQLQUERY_MT "luact.SqlQuery"

/* The SqlDb userdata: the connection, NULL once closed. */
struct sqldb {
  struct lc_sql_db *db;
};

static char jbox_key; /* registry key of the box metatable */

/* Scratch cJSON trees live in a box userdata while Lua may raise (memory
 * errors while pushing results), so a longjmp never leaks them
 * (lauxlib.c newbox). */
struct jbox {
  cJSON *params;
  cJSON *result;
};

static void box_clear(struct jbox *b) {
  cJSON_Delete(b->params);
  cJSON_Delete(b->result);
  b->params = b->result = NULL;
}

static int l_jbox_gc(lua_State *L) {
  struct jbox *b = lua_touserdata(L, 1);
  if (b) box_clear(b);
  return 0;
}

/* [-0, +1, m] */
static struct jbox *newbox(lua_State *L) {
  struct jbox *b = lua_newuserdatauv(L, sizeof *b, 0);
  b->params = b->result = NULL;
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &jbox_key) != LUA_TTABLE) {
    lua_pop(L, 1);
    lua_createtable(L, 0, 1);
    lua_pushcfunction(L, l_jbox_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushvalue(L, -1);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &jbox_key);
  }
  lua_setmetatable(L, -2);
  return b;
}

/* [-0, +3, m] The operational-failure triple: nil, message, code. */
static int push_fail(lua_State *L, const char *msg, const char *code) {
  lua_pushnil(L);
  lua_pushstring(L, msg);
  lua_pushstring(L, code);
  return 3;
}

static struct lc_sql_db *checkdb(lua_State *L) {
  struct sqldb *u = luaL_checkudata(L, 1, SQLDB_MT);
  if (!u->db) luaL_error(L, "attempt to use a closed luact.SqlDb");
  return u->db;
}

/* An optional positive number option from the table at idx. */
static double opt_num(lua_State *L, int idx, const char *name) {
  if (lua_isnoneornil(L, idx)) return 0;
  double v = 0;
  if (lua_getfield(L, idx, name) != LUA_TNIL) {
    int ok;
    v = lua_tonumberx(L, -1, &ok);
    if (!ok || !(v > 0))
      luaL_error(L, "option %s must be a positive number", name);
  }
  lua_pop(L, 1);
  return v;
}

/* ---- a query in flight ---- */

struct sqlop {
  struct lc_sql_job *job; /* NULL once released */
  struct lc_fdwait fw;
};

/* The one close: __close, __gc and the normal end. Stops watching before
 * the release closes the fd (the number could be reused at once). */
static void op_close(struct sqlop *op) {
  lc_fdwait_stop(&op->fw);
  if (op->job) lc_sql_job_release(op->job); /* cancels it if not done */
  op->job = NULL;
}

static int op_gc(lua_State *L) {
  op_close(luaL_checkudata(L, 1, SQLQUERY_MT));
  return 0;
}

/* The task is being killed (after the unwatch); its close follows. */
static void op_cancel(struct lc_fdwait *fw) {
  struct sqlop *op = (struct sqlop *)((char *)fw - offsetof(struct sqlop, fw));
  if (op->job) lc_sql_job_cancel(op->job);
}

/* An optional positive integer option from the table at idx. */
static size_t opt_size(lua_State *L, int idx, const char *name) {
  if (lua_isnoneornil(L, idx)) return 0;
  size_t v = 0;
  if (lua_getfield(L, idx, name) != LUA_TNIL) {
    int ok;
    lua_Integer i = lua_tointegerx(L, -1, &ok);
    if (!ok || i <= 0)
      luaL_error(L, "option %s must be a positive integer", name);
    v = (size_t)i;
  }
  lua_pop(L, 1);
  return v;
}

/* [-0, +0, m] Converts the params table at idx. Integers beyond +-2^53
 * would lose precision as cJSON doubles, so they become Raw decimal
 * literals, which lc_sql_query binds exactly. */
static int params_to_json(lua_State *L, int idx, cJSON **out, char *err,
                          size_t errlen) {
  int rc = lc_conv_to_json(L, idx, out, err, errlen);
  if (rc) return rc;
  lua_pushnil(L);
  while (lua_next(L, idx)) { /* key value */
    if (lua_isinteger(L, -1)) {
      lua_Integer v = lua_tointeger(L, -1);
      if (v < -(1LL << 53) || v > (1LL << 53)) {
        char b[32];
        snprintf(b, sizeof b, "%lld", (long long)v);
        cJSON *raw = cJSON_CreateRaw(b);
        if (!raw) { lua_pop(L, 2); return LC_ENOMEM; }
        if (cJSON_IsArray(*out))
          cJSON_ReplaceItemInArray(*out, (int)lua_tointeger(L, -2) - 1, raw);
        else
          cJSON_ReplaceItemInObjectCaseSensitive(*out, lua_tostring(L, -2),
                                                 raw);
      }
    }
    lua_pop(L, 1); /* key */
  }
  return 0;
}

/* [-0, +1, m] A result cell or field; Raw nodes hold exact integers. */
static void push_value(lua_State *L, const cJSON *v) {
  if (cJSON_IsRaw(v)) {
    if (!lua_stringtonumber(L, v->valuestring)) lua_pushstring(L, v->valuestring);
  } else {
    lc_conv_push_json(L, v);
  }
}

/* [-0, +1, m] The query result as a Lua table; SQL NULL is json.null so that
 * every column stays present in its row. */
static void push_result(lua_State *L, const cJSON *res) {
  lua_createtable(L, 0, 6);
  for (const cJSON *f = res->child; f; f = f->next) {
    if (strcmp(f->string, "rows") == 0) {
      lua_createtable(L, cJSON_GetArraySize(f), 0); /* res rows */
      lua_Integer i = 1;
      for (const cJSON *row = f->child; row; row = row->next) {
        lua_createtable(L, 0, cJSON_GetArraySize(row)); /* res rows row */
        for (const cJSON *c = row->child; c; c = c->next) {
          push_value(L, c);
          lua_setfield(L, -2, c->string);
        }
        lua_rawseti(L, -2, i++); /* res rows */
      }
      lc_conv_push_array_mt(L);
      lua_setmetatable(L, -2);
    } else {
      push_value(L, f);
    }
    lua_setfield(L, -2, f->string); /* res */
  }
}

/* [-0, +(1|3), m] The finished job's result or nil, msg, code. */
static int query_finish(lua_State *L, struct jbox *box, struct sqlop *op) {
  char err[512];
  int rc = lc_sql_job_finish(op->job, &box->result, err, sizeof err);
  op_close(op);
  if (rc) return push_fail(L, err, lc_sql_errcode(rc));
  push_result(L, box->result);
  box_clear(box); /* free now rather than at the next collection */
  return 1;
}

/* Continuation of l_query: stack is db sql params opts box op. */
static int query_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  (void)ctx;
  struct jbox *box = lua_touserdata(L, 5);
  struct sqlop *op = luaL_checkudata(L, 6, SQLQUERY_MT);
  if (!lc_sql_job_done(op->job)) { /* woken early: wait on */
    lc_fdwait_wait(&op->fw);
    return lua_yieldk(L, 0, 0, query_k);
  }
  return query_finish(L, box, op);
}

/* db:query(sql [, params [, {max_rows=, max_bytes=, timeout=}]]) -> result
 * table, or nil, msg, code ("sql_error", "readonly", "bad_params",
 * "denied", "timeout", "cancelled", "limit"). Raises on misuse. Inside a
 * task it yields while the SQL thread runs the query; elsewhere (a plain
 * script, a coroutine) it blocks until done, still under the deadline. */
static int l_query(lua_State *L) {
  struct lc_sql_db *db = checkdb(L);
  size_t sqllen;
  const char *sql = luaL_checklstring(L, 2, &sqllen);
  if (memchr(sql, 0, sqllen)) luaL_argerror(L, 2, "SQL contains a NUL byte");
  if (!lua_isnoneornil(L, 3)) luaL_checktype(L, 3, LUA_TTABLE);
  if (!lua_isnoneornil(L, 4)) {
    luaL_checktype(L, 4, LUA_TTABLE);
    lc_l_check_opts(L, 4, "db:query");
  }
  struct lc_sql_opts opts = {opt_size(L, 4, "max_rows"),
                             opt_size(L, 4, "max_bytes"),
                             opt_num(L, 4, "timeout")};
  lua_settop(L, 4);
  struct jbox *box = newbox(L); /* 5: owns the trees from here on */
  char err[512];
  if (!lua_isnil(L, 3)) {
    int rc = params_to_json(L, 3, &box->params, err, sizeof err);
    if (rc) return push_fail(L, err, "bad_params");
  }
  /* No scheduler (a bare state): the extra space is not ours to read. */
  struct lc_sched *sched = lc_sched_get(L);
  struct lc_task *task = sched ? lc_task_current(L) : NULL;
  if (!task) {
    int rc = lc_sql_query(db, sql, box->params, &opts, &box->result, err,
                          sizeof err);
    if (rc) return push_fail(L, err, lc_sql_errcode(rc));
    push_result(L, box->result);
    box_clear(box);
    return 1;
  }
  struct sqlop *op = lua_newuserdatauv(L, sizeof *op, 0); /* 6 */
  memset(op, 0, sizeof *op);
  luaL_setmetatable(L, SQLQUERY_MT);
  lua_toclose(L, 6);
  op->fw.on_cancel = op_cancel;
  cJSON *params = box->params;
  box->params = NULL; /* the job takes it */
  int fd = -1;
  int rc = lc_sql_submit(db, sql, sqllen, params, &opts, &op->job, &fd, err,
                         sizeof err);
  if (rc) return push_fail(L, err, lc_sql_errcode(rc));
  if ((rc = lc_fdwait_start(&op->fw, task, lc_sched_loop(sched), fd)))
    return luaL_error(L, rc == LC_ENOMEM ? "out of memory" : "db:query: cannot watch its job");
  lc_fdwait_wait(&op->fw);
  return lua_yieldk(L, 0, 0, query_k);
}

/* db:exec(script) -> true, or nil, msg, code. Trusted setup scripts only. */
static int l_exec(lua_State *L) {
  struct lc_sql_db *db = checkdb(L);
  size_t len;
  const char *sql = luaL_checklstring(L, 2, &len);
  if (memchr(sql, 0, len)) luaL_argerror(L, 2, "SQL contains a NUL byte");
  char err[512];
  int rc = lc_sql_exec_script(db, sql, err, sizeof err);
  if (rc) return push_fail(L, err, lc_sql_errcode(rc));
  lua_pushboolean(L, 1);
  return 1;
}

/* close(), __close and __gc: idempotent, and safe on a userdata whose open
 * failed (it was zeroed before the open). */
static int l_close(lua_State *L) {
  struct sqldb *u = luaL_checkudata(L, 1, SQLDB_MT);
  struct lc_sql_db *db = u->db;
  u->db = NULL;
  lc_sql_close(db); /* a query in flight ends with "cancelled" */
  return 0;
}

static int l_tostring(lua_State *L) {
  struct sqldb *u = luaL_checkudata(L, 1, SQLDB_MT);
  lua_pushfstring(L, "luact.SqlDb (%s)",
                  !u->db                  ? "closed"
                  : lc_sql_readonly(u->db) ? "read-only"
                                           : "read-write");
  return 1;
}

/* sql.open(path [, {readonly=, create=, max_length=, max_temp=,
 * max_growth=}]) ->
 * luact.SqlDb, or nil, msg, code */
static int l_open(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  unsigned flags = 0;
  struct lc_sql_limits lim = {opt_size(L, 2, "max_length"),
                              opt_size(L, 2, "max_temp"),
                              opt_size(L, 2, "max_growth")};
  if (!lua_isnoneornil(L, 2)) {
    luaL_checktype(L, 2, LUA_TTABLE);
    lc_l_check_opts(L, 2, "luact.sql.open");
    if (lua_getfield(L, 2, "readonly") != LUA_TNIL && lua_toboolean(L, -1))
      flags |= LC_SQL_READONLY;
    if (lua_getfield(L, 2, "create") != LUA_TNIL && lua_toboolean(L, -1))
      flags |= LC_SQL_CREATE;
    lua_pop(L, 2);
  }
  /* Userdata first, closed, then the connection (liolib.c newprefile). */
  struct sqldb *u = lua_newuserdatauv(L, sizeof *u, 0);
  u->db = NULL;
  luaL_setmetatable(L, SQLDB_MT);
  char err[512];
  int rc = lc_sql_open(path, flags, &lim, &u->db, err, sizeof err);
  if (rc) return push_fail(L, err, lc_sql_errcode(rc));
  return 1;
}

static const luaL_Reg sqldb_methods[] = {
    {"query", l_query}, {"exec", l_exec}, {"close", l_close}, {NULL, NULL}};

static const luaL_Reg sqldb_meta[] = {{"__gc", l_close},
                                      {"__close", l_close},
                                      {"__tostring", l_tostring},
                                      {"__index", NULL},
                                      {NULL, NULL}};

static const luaL_Reg sql_funcs[] = {{"open", l_open}, {NULL, NULL}};

int lc_open_sql(lua_State *L) {
  lc_l_class(L, SQLDB_MT, sqldb_meta, sqldb_methods);
  if (luaL_newmetatable(L, SQLQUERY_MT)) {
    lua_pushcfunction(L, op_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, op_gc);
    lua_setfield(L, -2, "__close");
  }
  lua_pop(L, 1);
  luaL_newlib(L, sql_funcs);
  return 1;
}
