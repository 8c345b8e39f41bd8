/* l_mcp.c: luact.mcp's C half: a session userdata over runtime/mcp and
 * one waitable op per request. The Lua half (runtime/lua/mcp.lua) builds
 * luact tools, pagination, screening and the change checks on top.
 *
 *   luact.mcp._open{argv=, env=, url=, headers=, max_message=,
 *                   connect_timeout=, protocol=, auth=} -> session
 *       | session, "authorize", url (answer, then session:_wait_open())
 *       | nil, msg, code
 *   session:_start(method, params, timeout_s, progress) -> op | nil, msg, code
 *   op:wait() -> "result", value
 *             |  "error", message, code [, jsonrpc_code]
 *             |  "progress", params
 *             |  "request", method, params, reqid
 *   session:_respond(reqid, result) / session:_respond_error(reqid, code, msg)
 *             |  "authorize", url   (the OAuth user-agent step)
 *   session:_authorized(redirect | nil, why): its answer
 *   session:_wait_open() -> session | session, "authorize", url | nil, msg, code
 *   session:_changed() -> tools, resources, prompts (and clears them)
 *   session:dead() -> message | nil; session:version(); session:info()
 *   session:close()
 *
 * A task killed inside op:wait cancels the request: the server gets
 * notifications/cancelled. The server side (luact mcp serve) is in
 * l_mcp_serve.c. */
#include <errno.h>
#include <fcntl.h>
#include <lauxlib.h>
#include <lua.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conv.h"
#include "effect.h"
#include "jsonrpc.h"
#include "loop.h"
#include "l_luact.h"
#include "l_mcp_serve.h"
#include "l_state.h"
#include "l_closable.h"
#include "l_effect.h"
#include "lc.h"
#include "mcp.h"
#include "sched.h"
#include "utf8.h"

#define SESSION_MT "luact.McpSession"
#define OP_MT "luact.McpOp"

struct lop;

/* A request from the server waiting for a task to take it. */
struct sreq {
  struct sreq *next;
  cJSON *id;
  char *method;
  cJSON *params;
};

struct lsess {
  struct lc_closable cl; /* first: the list gives back the session */
  struct lc_mcp *m;
  struct lop *ops;
  struct sreq *reqs, **reqs_tail;
  struct lc_buf scratch; /* a request's params text (l_start) */
  /* the opener */
  struct lc_task *opener;
  struct lc_wait open_wait;
  int ready, ready_rc;
  char ready_msg[512];
  int ch_tools, ch_resources, ch_prompts;
  char *auth_url; /* an authorization's user-agent step not yet taken */
};

struct lop {
  struct lop *next, **prevp; /* the session's ops, unlinked in O(1) */
  struct lsess *s; /* NULL once the session is gone */
  struct lc_task *task;
  struct lc_wait wait;
  long long id;
  int started, done, rc;
  int text; /* a tool call: a result of one text item comes back as text */
  int busy; /* a C path's op (mcp._fast) in use: not to be taken again */
  long long code;
  char *msg;
  cJSON *result;
  char *tval; /* a result of one text item read without a tree (lc_mcp_reply.text) */
  size_t tlen;
  char *tkeep; /* a C path op's text block, kept for its next call (tval may be it) */
  size_t tcap;
  cJSON *progress; /* latest progress params not yet returned */
  struct fast_eff *eff; /* a journaled C path call's effect, while it is owed */
};

/* The effect of a journaled plain call (l_fast_call): one line, pure,
 * recorded fresh. Begun before the request and ended with its answer in
 * C, or handed to a Lua token when the rest of the call is Lua's; a kill,
 * or the op's end, cancels it as a token's close does. */
struct fast_eff {
  struct lc_effect_op e;
  struct lc_task *task;
  unsigned long seq0, children0; /* the task's counters after begin */
};

static char sess_mt_key, op_mt_key;

/* ---- ops ---- */

static void op_unlink(struct lop *op) {
  if (!op->s || !op->prevp) return;
  *op->prevp = op->next;
  if (op->next) op->next->prevp = op->prevp;
  op->next = NULL;
  op->prevp = NULL;
}

/* Stops the op: the server is told if the request is still out. */
static void op_stop(struct lop *op, const char *reason) {
  if (op->s && op->started && !op->done && op->s->m)
    lc_mcp_cancel(op->s->m, op->id, reason);
  op->started = 0;
  op_unlink(op);
  op->s = NULL;
}

/* The op's effect, if one is still owed, ended as abandoned. */
static void op_drop_eff(struct lop *op) {
  if (!op->eff) return;
  lc_effect_cancel(&op->eff->e, "cancelled");
  lc_free(op->eff);
  op->eff = NULL;
}

static int op_gc(lua_State *L) {
  struct lop *op = lc_lua_checkud_up(L, 1, 1, &op_mt_key, OP_MT);
  op_stop(op, "abandoned");
  op_drop_eff(op);
  cJSON_Delete(op->result);
  cJSON_Delete(op->progress);
  lc_free(op->msg);
  if (op->tval != op->tkeep) lc_free(op->tval);
  lc_free(op->tkeep);
  op->result = op->progress = NULL;
  op->msg = op->tval = op->tkeep = NULL;
  return 0;
}

static void op_cancel(struct lc_wait *w) {
  struct lop *op = (struct lop *)((char *)w - offsetof(struct lop, wait));
  op->task = NULL;
  op_stop(op, "the luact task was killed");
  op_drop_eff(op);
}

static void op_wake(struct lop *op) {
  if (op->task && lc_task_waiting_on(op->task, &op->wait))
    lc_task_wake(op->task, &op->wait);
}

/* Reply callback (from the loop, through lc_mcp). */
static void op_reply(void *ud, const struct lc_mcp_reply *r) {
  struct lop *op = ud;
  op->done = 1;
  op->rc = r->rc;
  op->code = r->code;
  if (r->rc == 0 && r->text) {
    op->tval = op->tkeep && op->tcap > r->text_len ? op->tkeep : lc_malloc(r->text_len + 1);
    if (op->tval) {
      memcpy(op->tval, r->text, r->text_len);
      op->tval[r->text_len] = '\0';
      op->tlen = r->text_len;
    } else {
      op->rc = LC_ENOMEM; /* as a failed copy of a tree below */
    }
  } else if (r->rc == 0 && r->take) {
    op->result = *r->take; /* kept, not copied */
    *r->take = NULL;
  } else if (r->rc == 0) {
    op->result = cJSON_Duplicate(r->result, 1);
    if (!op->result) op->rc = LC_ENOMEM;
  } else {
    op->msg = lc_strdup(r->message ? r->message : "MCP request failed");
  }
  op_wake(op);
}

/* ---- session events (from the loop) ---- */

static void ev_ready(void *ud, int rc, const char *msg) {
  struct lsess *s = ud;
  s->ready = 1;
  s->ready_rc = rc;
  snprintf(s->ready_msg, sizeof s->ready_msg, "%s", msg ? msg : "");
  if (s->opener && lc_task_waiting_on(s->opener, &s->open_wait))
    lc_task_wake(s->opener, &s->open_wait);
}

static void ev_notification(void *ud, const char *method,
                            const cJSON *params) {
  struct lsess *s = ud;
  if (!strcmp(method, "notifications/progress")) {
    const cJSON *tok = cJSON_GetObjectItemCaseSensitive(params, "progressToken");
    /* the server's number: compared as a double, never cast (1e300) */
    if (!cJSON_IsNumber(tok)) return;
    for (struct lop *op = s->ops; op; op = op->next)
      if ((double)op->id == tok->valuedouble && !op->done) {
        cJSON *dup = cJSON_Duplicate(params, 1);
        if (!dup) return;
        cJSON_Delete(op->progress); /* only the latest is worth showing */
        op->progress = dup;
        op_wake(op);
        return;
      }
  } else if (!strcmp(method, "notifications/tools/list_changed")) {
    s->ch_tools = 1;
  } else if (!strcmp(method, "notifications/resources/list_changed")) {
    s->ch_resources = 1;
  } else if (!strcmp(method, "notifications/prompts/list_changed")) {
    s->ch_prompts = 1;
  }
  /* others (logging/message, resources/updated) are dropped */
}

static void ev_request(void *ud, const cJSON *id, const char *method,
                       const cJSON *params) {
  struct lsess *s = ud;
  if (strcmp(method, "elicitation/create")) {
    lc_mcp_respond_error(s->m, id, -32601, "Method not found");
    return;
  }
  struct sreq *q = lc_calloc(1, sizeof *q);
  if (q) {
    q->id = cJSON_Duplicate(id, 0);
    q->method = lc_strdup(method);
    q->params = params ? cJSON_Duplicate(params, 1) : cJSON_CreateObject();
  }
  if (!q || !q->id || !q->method || !q->params) {
    if (q) {
      cJSON_Delete(q->id);
      cJSON_Delete(q->params);
      lc_free(q->method);
      lc_free(q);
    }
    lc_mcp_respond_error(s->m, id, -32603, "out of memory");
    return;
  }
  *s->reqs_tail = q;
  s->reqs_tail = &q->next;
  /* Whoever waits on this server answers it (its own tool call asked). */
  for (struct lop *op = s->ops; op; op = op->next)
    if (op->task && lc_task_waiting_on(op->task, &op->wait)) {
      op_wake(op);
      break;
    }
}

/* The OAuth user-agent step (from the loop): the opener takes it while
 * the handshake runs, else whoever waits on this server (its request is
 * what waits for the token). */
static void ev_authorize(void *ud, const char *url) {
  struct lsess *s = ud;
  char *u = lc_strdup(url);
  if (!u) {
    lc_mcp_authorized(s->m, NULL, "out of memory");
    return;
  }
  lc_free(s->auth_url);
  s->auth_url = u;
  if (s->opener && lc_task_waiting_on(s->opener, &s->open_wait)) {
    lc_task_wake(s->opener, &s->open_wait);
    return;
  }
  for (struct lop *op = s->ops; op; op = op->next)
    if (op->task && lc_task_waiting_on(op->task, &op->wait)) {
      op_wake(op);
      break;
    }
}

static void ev_closed(void *ud, const char *why) {
  struct lsess *s = ud;
  for (struct lop *op = s->ops; op; op = op->next) op_wake(op);
}

/* ---- session ---- */

static void sess_close(struct lsess *s) {
  lc_closable_remove(&s->cl);
  for (struct lop *op = s->ops, *nx; op; op = nx) {
    nx = op->next;
    op->s = NULL;
    op->next = NULL;
    op->prevp = NULL;
  }
  s->ops = NULL;
  while (s->reqs) {
    struct sreq *q = s->reqs;
    s->reqs = q->next;
    cJSON_Delete(q->id);
    cJSON_Delete(q->params);
    lc_free(q->method);
    lc_free(q);
  }
  s->reqs_tail = &s->reqs;
  lc_free(s->auth_url);
  s->auth_url = NULL;
  lc_buf_free(&s->scratch);
  if (s->m) {
    struct lc_mcp *m = s->m;
    s->m = NULL;
    lc_mcp_free(m);
  }
}

static void sess_close_cl(struct lc_closable *c) { sess_close((struct lsess *)c); }

static int sess_gc(lua_State *L) {
  sess_close(luaL_checkudata(L, 1, SESSION_MT));
  return 0;
}

static struct lsess *check_sess(lua_State *L) {
  struct lsess *s = lc_lua_checkud_up(L, 1, 1, &sess_mt_key, SESSION_MT);
  if (!s->m) luaL_error(L, "MCP session is closed");
  return s;
}

static void open_cancel(struct lc_wait *w) {
  struct lsess *s = (struct lsess *)((char *)w - offsetof(struct lsess, open_wait));
  s->opener = NULL;
}

/* The session is at stack index ctx. */
static int open_k(lua_State *L, int status, lua_KContext ctx) {
  int at = (int)ctx;
  struct lsess *s = luaL_checkudata(L, at, SESSION_MT);
  s->opener = NULL;
  if (!s->ready && s->auth_url && s->m) {
    lua_pushvalue(L, at);
    lua_pushliteral(L, "authorize");
    lua_pushstring(L, s->auth_url);
    lc_free(s->auth_url);
    s->auth_url = NULL;
    return 3;
  }
  if (!s->ready) {
    /* woken for something else: wait on */
    s->opener = lc_task_current(L);
    lc_task_wait(s->opener, &s->open_wait);
    return lua_yieldk(L, 0, ctx, open_k);
  }
  if (s->ready_rc) {
    const char *msg = s->ready_msg;
    lua_pushnil(L);
    lua_pushstring(L, msg);
    lua_pushstring(L, strstr(msg, "in time") ? "timeout"
                      : strstr(msg, "authoriz") ? "auth"
                                                : "mcp_connect");
    sess_close(s);
    return 3;
  }
  lua_pushvalue(L, at);
  return 1;
}

/* session:_wait_open(): after an "authorize" from _open, waits on. */
static int l_wait_open(lua_State *L) {
  struct lsess *s = luaL_checkudata(L, 1, SESSION_MT);
  lua_settop(L, 1);
  if (!s->m) return luaL_error(L, "MCP session is closed");
  if (s->ready || s->auth_url) return open_k(L, LUA_YIELD, 1);
  s->opener = lc_task_check(L, "luact.mcp.connect");
  s->open_wait.cancel = open_cancel;
  lc_task_wait(s->opener, &s->open_wait);
  return lua_yieldk(L, 0, 1, open_k);
}

/* session:_authorized(redirect | nil [, why]) */
static int l_authorized(lua_State *L) {
  struct lsess *s = check_sess(L);
  const char *r = luaL_optstring(L, 2, NULL);
  const char *why = luaL_optstring(L, 3, "refused");
  lc_mcp_authorized(s->m, r, why);
  return 0;
}

/* Reads a list of strings t[1..n] into a NULL-terminated array inside a
 * userdata left on the stack (Lua owns it). [-0, +1, e] */
static const char **str_array(lua_State *L, int t, const char *who,
                              const char *field, const char *prefix_kv) {
  size_t n = 0;
  if (!lua_isnil(L, t)) {
    luaL_checktype(L, t, LUA_TTABLE);
    if (prefix_kv) {
      lua_pushnil(L);
      while (lua_next(L, t)) {
        n++;
        lua_pop(L, 1);
      }
    } else n = lua_rawlen(L, t);
  }
  const char **a = lua_newuserdatauv(L, (n + 2) * sizeof *a, 1);
  lua_newtable(L); /* strings made here stay alive in the uservalue */
  lua_setiuservalue(L, -2, 1);
  size_t k = 0;
  if (n && prefix_kv) {
    lua_getiuservalue(L, -1, 1);
    int keep = lua_gettop(L);
    lua_pushnil(L);
    while (lua_next(L, t)) {
      if (lua_type(L, -2) != LUA_TSTRING || lua_type(L, -1) != LUA_TSTRING)
        luaL_error(L, "%s: '%s' must map names to strings", who, field);
      const char *kk = lua_tostring(L, -2), *v = lua_tostring(L, -1);
      if (strpbrk(kk, prefix_kv) || strchr(kk, '\n') || strchr(v, '\n') ||
          strchr(v, '\r') || !*kk)
        luaL_error(L, "%s: bad entry '%s' in '%s'", who, kk, field);
      lua_pushfstring(L, "%s%s%s", kk, *prefix_kv == '=' ? "=" : ": ", v);
      a[k++] = lua_tostring(L, -1);
      lua_rawseti(L, keep, (lua_Integer)k);
      lua_pop(L, 1);
    }
    lua_pop(L, 1);
  } else {
    for (size_t i = 1; i <= n; i++) {
      if (lua_rawgeti(L, t, (lua_Integer)i) != LUA_TSTRING)
        luaL_error(L, "%s: '%s' must be a list of strings", who, field);
      const char *v = lua_tostring(L, -1);
      if (strlen(v) != lua_rawlen(L, -1))
        luaL_error(L, "%s: '%s' has a string with a NUL byte", who, field);
      a[k++] = v; /* kept alive by t, which the caller holds */
      lua_pop(L, 1);
    }
  }
  a[k] = NULL;
  return a;
}

/* luact.mcp._open(cfg): yields until the handshake ends. */
static int l_open(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  struct lc_task *task = lc_task_check(L, "luact.mcp.connect");
  lua_settop(L, 1);
  struct lc_mcp_config cfg = {0};
  lua_getfield(L, 1, "argv"); /* 2 */
  lua_getfield(L, 1, "env");  /* 3 */
  lua_getfield(L, 1, "headers"); /* 4 */
  const char **argv = lua_isnil(L, 2) ? NULL : str_array(L, 2, "luact.mcp.connect", "args", NULL);
  if (!argv) lua_pushnil(L); /* 5 */
  const char **env = str_array(L, 3, "luact.mcp.connect", "env", "=");     /* 6 */
  const char **hdr = str_array(L, 4, "luact.mcp.connect", "headers", ":\r\n"); /* 7 */
  cfg.argv = argv;
  cfg.env = env;
  cfg.headers = hdr;
  cfg.url = lc_l_opt_string(L, 1, "luact.mcp.connect", "url", 0);
  cfg.max_version = lc_l_opt_string(L, 1, "luact.mcp.connect", "protocol", 0);
  lua_getfield(L, 1, "max_message");
  cfg.max_message = (size_t)luaL_optinteger(L, -1, 0);
  lua_getfield(L, 1, "connect_timeout");
  cfg.connect_timeout_ms = luaL_optnumber(L, -1, 30) * 1000.0;
  lua_pop(L, 2);
  struct lsess *s = lua_newuserdatauv(L, sizeof *s, 0); /* 8 */
  memset(s, 0, sizeof *s);
  s->reqs_tail = &s->reqs;
  lc_buf_init(&s->scratch, 0);
  s->cl.close = sess_close_cl;
  luaL_setmetatable(L, SESSION_MT);
  lc_closable_add(L, &s->cl);
  struct lc_mcp_events ev = {.ready = ev_ready,
                             .notification = ev_notification,
                             .request = ev_request,
                             .closed = ev_closed,
                             .authorize = ev_authorize,
                             .ud = s};
  /* auth: strings borrowed from the table (9) for lc_mcp_open, which
   * copies them */
  struct lc_oauth_config auth = {0};
  if (lua_getfield(L, 1, "auth") == LUA_TTABLE) {
    const char *w = "luact.mcp.connect auth";
    auth.client_id = lc_l_opt_string(L, 9, w, "client_id", 0);
    auth.client_secret = lc_l_opt_string(L, 9, w, "client_secret", 0);
    auth.client_metadata_url = lc_l_opt_string(L, 9, w, "client_metadata_url", 0);
    auth.client_name = lc_l_opt_string(L, 9, w, "client_name", 0);
    auth.redirect_uri = lc_l_opt_string(L, 9, w, "redirect_uri", 0);
    auth.scope = lc_l_opt_string(L, 9, w, "scope", 0);
    const char *grant = lc_l_opt_string(L, 9, w, "grant", 0);
    auth.client_credentials = grant && !strcmp(grant, "client_credentials");
    auth.interactive = lc_l_opt_bool(L, 9, w, "interactive", 0);
    cfg.auth = &auth;
  }
  char err[256];
  int rc = lc_mcp_open(lc_sched_loop(lc_sched_get(L)), &cfg, &ev, &s->m, err,
                       sizeof err);
  if (rc < 0) {
    lua_pushnil(L);
    lua_pushstring(L, err);
    lua_pushstring(L, rc == LC_EINVAL ? "invalid" : "mcp_connect");
    return 3;
  }
  s->opener = task;
  s->open_wait.cancel = open_cancel;
  lc_task_wait(task, &s->open_wait);
  return lua_yieldk(L, 0, 8, open_k); /* the session is at 8 */
}

static int start_op(lua_State *L, struct lsess *s, int sidx, const char *method,
                    double timeout, int progress, int text);

/* session:_start(method, params, timeout_s, progress [, text]) -> op.
 * text: op:wait gives "text", text, is_error for a result whose content is
 * one text item and that asks for no input (a tool call's usual answer:
 * no tables built for it); any other result comes as "result", table. */
static int l_start(lua_State *L) {
  struct lsess *s = check_sess(L);
  const char *method = luaL_checkstring(L, 2);
  double timeout = luaL_optnumber(L, 4, 0);
  int progress = lua_toboolean(L, 5);
  int text = lua_toboolean(L, 6);
  /* params as JSON text, written straight into the request: no tree is
   * built and printed per call. The session's scratch buffer holds it, so
   * a raise in between leaks nothing. */
  struct lc_buf *pb = &s->scratch;
  lc_buf_reset(pb);
  if (!lua_isnoneornil(L, 3)) {
    char err[160];
    int rc = lc_conv_to_text(L, 3, pb, err, sizeof err);
    if (rc == LC_ENOMEM) return luaL_error(L, "out of memory");
    if (rc < 0) return luaL_error(L, "MCP params: %s", err);
    if (pb->len < 2 || pb->data[0] != '{') return luaL_error(L, "MCP params must be an object");
  } else if (lc_buf_puts(pb, "{}") < 0) {
    return luaL_error(L, "out of memory");
  }
  return start_op(L, s, 1, method, timeout, progress, text);
}

/* session:_call(name, args, timeout_s) -> op: a tools/call with
 * {name =, arguments = args or {}} and text results, as _start would send
 * it (the same bytes and messages), without a params table per call. */
static int l_call(lua_State *L) {
  struct lsess *s = check_sess(L);
  luaL_checktype(L, 2, LUA_TSTRING);
  double timeout = luaL_optnumber(L, 4, 0);
  struct lc_buf *pb = &s->scratch;
  lc_buf_reset(pb);
  static const char *const keys[] = {"arguments", "name"}; /* sorted, as _start's */
  const int idxs[] = {3, 2};
  char err[160];
  int rc = lc_conv_members_to_text(L, 2, keys, idxs, pb, err, sizeof err);
  if (rc == LC_ENOMEM) return luaL_error(L, "out of memory");
  if (rc < 0) return luaL_error(L, "MCP params: %s", err);
  return start_op(L, s, 1, "tools/call", timeout, 0, 1);
}

static int op_send(lua_State *L, struct lop *op, struct lsess *s, const char *method,
                   double timeout, int progress, int text);

/* The op for a request whose params text is in s->scratch; the session
 * is at sidx. */
static int start_op(lua_State *L, struct lsess *s, int sidx, const char *method,
                    double timeout, int progress, int text) {
  struct lop *op = lua_newuserdatauv(L, sizeof *op, 1);
  memset(op, 0, sizeof *op);
  /* a session method's upvalue 2 (lc_open_mcp), else the registry's */
  if (lua_type(L, lua_upvalueindex(2)) == LUA_TTABLE) lua_pushvalue(L, lua_upvalueindex(2));
  else lua_rawgetp(L, LUA_REGISTRYINDEX, &op_mt_key);
  lua_setmetatable(L, -2);
  lua_pushvalue(L, sidx);
  lua_setiuservalue(L, -2, 1); /* the op keeps its session alive */
  return op_send(L, op, s, method, timeout, progress, text);
}

/* Sends the request of op (on top, fresh) whose params text is in
 * s->scratch: 1 (the op on top), or 3 (nil, message, code above it). */
static int op_send(lua_State *L, struct lop *op, struct lsess *s, const char *method,
                   double timeout, int progress, int text) {
  struct lc_buf *pb = &s->scratch;
  const char *dead = lc_mcp_dead(s->m);
  if (dead) {
    lua_pushnil(L);
    lua_pushstring(L, dead);
    lua_pushliteral(L, "server_died");
    return 3;
  }
  op->s = s;
  op->text = text;
  op->next = s->ops;
  if (op->next) op->next->prevp = &op->next;
  op->prevp = &s->ops;
  s->ops = op;
  int rc = lc_mcp_call_text(s->m, method, pb->data, pb->len, timeout * 1000.0,
                            progress ? -1 : 0, text, op_reply, op, &op->id);
  if (pb->cap > 65536) lc_buf_free(pb); /* one huge call keeps no memory */
  else lc_buf_reset(pb);
  if (rc < 0) {
    op_unlink(op);
    op->s = NULL;
    lua_pushnil(L);
    /* out of memory here is this process's, not the server's fault */
    lua_pushstring(L, rc == LC_ENOMEM            ? "out of memory: cannot send the MCP request"
                      : lc_mcp_dead(s->m) ? lc_mcp_dead(s->m)
                                          : "cannot send the MCP request");
    lua_pushstring(L, rc == LC_ENOMEM ? "nomem" : "server_died");
    return 3;
  }
  op->started = 1;
  return 1;
}

/* The text of a result whose content is exactly one text item, or NULL
 * (then mcp.lua reads the result table): what its result_text gives for
 * such a result. A result that asks for input (2026-07-28) is NULL. */
/* A member as the Lua table made from obj has it: of duplicate keys, the
 * last one (lc_conv_push_json sets them in order). */
static const cJSON *member(const cJSON *obj, const char *key) {
  const cJSON *found = NULL;
  for (const cJSON *c = obj->child; c; c = c->next)
    if (c->string && strcmp(c->string, key) == 0) found = c;
  return found;
}

static const char *one_text(const cJSON *res) {
  if (!cJSON_IsObject(res)) return NULL;
  const cJSON *rt = member(res, "resultType");
  if (cJSON_IsString(rt) && strcmp(rt->valuestring, "input_required") == 0) return NULL;
  const cJSON *content = member(res, "content");
  if (!cJSON_IsArray(content) || !content->child || content->child->next) return NULL;
  const cJSON *c = content->child;
  if (!cJSON_IsObject(c)) return NULL;
  const cJSON *type = member(c, "type"), *text = member(c, "text");
  if (!cJSON_IsString(type) || strcmp(type->valuestring, "text") != 0 || !cJSON_IsString(text))
    return NULL;
  return text->valuestring;
}

static int push_event(lua_State *L, struct lop *op) {
  struct lsess *s = op->s;
  if (op->progress) {
    lua_pushliteral(L, "progress");
    lc_conv_push_json(L, op->progress);
    cJSON_Delete(op->progress);
    op->progress = NULL;
    return 2;
  }
  if (s && s->auth_url) {
    lua_pushliteral(L, "authorize");
    lua_pushstring(L, s->auth_url);
    lc_free(s->auth_url);
    s->auth_url = NULL;
    return 2;
  }
  if (s && s->reqs) {
    struct sreq *q = s->reqs;
    s->reqs = q->next;
    if (!s->reqs) s->reqs_tail = &s->reqs;
    lua_pushliteral(L, "request");
    lua_pushstring(L, q->method);
    lc_conv_push_json(L, q->params);
    /* the id as a JSON text: strings and integers both survive */
    char *id = cJSON_PrintUnformatted(q->id);
    lua_pushstring(L, id ? id : "null");
    cJSON_free(id);
    cJSON_Delete(q->id);
    cJSON_Delete(q->params);
    lc_free(q->method);
    lc_free(q);
    return 4;
  }
  if (op->done) {
    op->started = 0;
    op_unlink(op);
    if (op->rc == 0 && op->tval) { /* read without a tree: no isError */
      lua_pushliteral(L, "text");
      lua_pushlstring(L, op->tval, op->tlen);
      lua_pushboolean(L, 0);
      return 3;
    }
    const char *text = op->rc == 0 && op->text ? one_text(op->result) : NULL;
    if (text) {
      lua_pushliteral(L, "text");
      lua_pushstring(L, text); /* as lc_conv_push_json pushes a string */
      lua_pushboolean(L, cJSON_IsTrue(member(op->result, "isError")));
      return 3;
    }
    if (op->rc == 0) {
      lua_pushliteral(L, "result");
      lc_conv_push_json(L, op->result);
      return 2;
    }
    lua_pushliteral(L, "error");
    lua_pushstring(L, op->msg ? op->msg : "MCP request failed");
    const char *code = op->rc == LC_ETIMEOUT ? "timeout"
                       : op->rc == LC_EINVAL ? "mcp_error"
                       : op->rc == LC_ECANCEL ? "closed"
                       : op->rc == LC_ENOMEM ? "nomem"
                       : op->rc == LC_ESTATE ? "auth"
                                             : "server_died";
    lua_pushstring(L, code);
    if (op->rc == LC_EINVAL) {
      lua_pushinteger(L, (lua_Integer)op->code);
      return 4;
    }
    return 3;
  }
  return 0;
}

static int wait_k(lua_State *L, int status, lua_KContext ctx) {
  struct lop *op = lc_lua_checkud_up(L, 1, 1, &op_mt_key, OP_MT);
  /* Running, not waiting: push_event may raise (out of memory) and end
   * the task, and an op left pointing at a freed task would be woken
   * through it when its answer or its session's end comes. */
  struct lc_task *t = op->task;
  op->task = NULL;
  int n = push_event(L, op);
  if (n) return n;
  op->task = t;
  lc_task_wait(op->task, &op->wait);
  return lua_yieldk(L, 0, 0, wait_k);
}

static int l_op_wait(lua_State *L) {
  struct lop *op = lc_lua_checkud_up(L, 1, 1, &op_mt_key, OP_MT);
  lua_settop(L, 1);
  if (!op->done && !op->started)
    return luaL_error(L, "MCP request already finished");
  int n = push_event(L, op);
  if (n) return n;
  op->task = lc_task_check(L, "MCP request");
  op->wait.cancel = op_cancel;
  lc_task_wait(op->task, &op->wait);
  return lua_yieldk(L, 0, 0, wait_k);
}

static int l_op_cancel(lua_State *L) {
  struct lop *op = luaL_checkudata(L, 1, OP_MT);
  op_stop(op, luaL_optstring(L, 2, "cancelled"));
  return 0;
}

static cJSON *id_from(lua_State *L, int idx) {
  size_t n;
  const char *t = luaL_checklstring(L, idx, &n);
  char err[64];
  cJSON *id = lc_json_parse(t, n, err, sizeof err);
  if (!id || !(cJSON_IsNumber(id) || cJSON_IsString(id))) {
    cJSON_Delete(id);
    luaL_argerror(L, idx, "not a request id");
  }
  return id;
}

static int l_respond(lua_State *L) {
  struct lsess *s = check_sess(L);
  char err[160];
  cJSON *result = NULL;
  if (lc_conv_to_json(L, 3, &result, err, sizeof err) < 0)
    return luaL_error(L, "MCP result: %s", err);
  cJSON *id = id_from(L, 2); /* may raise: result would leak */
  lc_mcp_respond(s->m, id, result);
  cJSON_Delete(id);
  return 0;
}

static int l_respond_error(lua_State *L) {
  struct lsess *s = check_sess(L);
  /* checked before the cast: a script's 2^32 - 32601 wrapped to -32601 */
  lua_Integer c = luaL_checkinteger(L, 3);
  luaL_argcheck(L, c >= INT_MIN && c <= INT_MAX, 3, "not a JSON-RPC error code (a 32-bit integer)");
  int code = (int)c;
  const char *msg = luaL_checkstring(L, 4);
  cJSON *id = id_from(L, 2);
  lc_mcp_respond_error(s->m, id, code, msg);
  cJSON_Delete(id);
  return 0;
}

static int l_changed(lua_State *L) {
  struct lsess *s = check_sess(L);
  lua_pushboolean(L, s->ch_tools);
  lua_pushboolean(L, s->ch_resources);
  lua_pushboolean(L, s->ch_prompts);
  s->ch_tools = s->ch_resources = s->ch_prompts = 0;
  return 3;
}

/* session:_plain() -> true when a call can go out as it is: the session
 * is open, its server alive, and no tools/list_changed waits to be read
 * (mcp.lua's _direct: else the plain path opens, restarts or lists first). */
static int l_plain(lua_State *L) {
  struct lsess *s = lc_lua_checkud_up(L, 1, 1, &sess_mt_key, SESSION_MT);
  lua_pushboolean(L, s->m && !lc_mcp_dead(s->m) && !s->ch_tools);
  return 1;
}

static int l_dead(lua_State *L) {
  struct lsess *s = luaL_checkudata(L, 1, SESSION_MT);
  if (!s->m) lua_pushliteral(L, "MCP session is closed");
  else if (lc_mcp_dead(s->m)) lua_pushstring(L, lc_mcp_dead(s->m));
  else lua_pushnil(L);
  return 1;
}

static int l_version(lua_State *L) {
  lua_pushstring(L, lc_mcp_version(check_sess(L)->m));
  return 1;
}

static int l_info(lua_State *L) {
  lc_conv_push_json(L, lc_mcp_server_info(check_sess(L)->m));
  return 1;
}

static int l_stats(lua_State *L) {
  long in, bad, unknown;
  lc_mcp_stats(check_sess(L)->m, &in, &bad, &unknown);
  lua_createtable(L, 0, 4);
  lc_l_set_int(L, "pid", lc_mcp_pid(check_sess(L)->m));
  lc_l_set_int(L, "messages", in);
  lc_l_set_int(L, "bad", bad);
  lc_l_set_int(L, "unknown_ids", unknown);
  return 1;
}

static int l_close(lua_State *L) {
  sess_close(luaL_checkudata(L, 1, SESSION_MT));
  return 0;
}

/* ---- a plain tool call in C (mcp._fast) ----
 *
 * tool:call(args, ctx) of a tool from luact.mcp.connect, when nothing in
 * it needs Lua: the same checks as Tool:call and mcp.lua's _direct (fn,
 * validator and _direct still the tool's own, the tool's timeout the
 * server's, no on_progress or screen, the session open and plain, the
 * tool neither refused nor gone, no journal, the journal off, or a
 * pure tool in a run that records fresh), the arguments valid against the
 * compiled schema, the request written and sent, and the usual answer
 * (one text item, not an error, within max_output, no closing mark, the
 * header cached) marked as tool output. Journaled, the call is the
 * effect Tool:call makes of it (its one line: the same request text,
 * name, schema hash, nested counts), begun and ended here.
 * Before the request, anything else is Tool.call from the start (it
 * checks and says why, as always); after it, anything else goes on in
 * Lua at rest (mcp.lua: _direct's part after its wait, then Tool._settle;
 * journaled, under effect.lua's adopted with the effect as its token).
 * So the messages, codes, limits and lines are the Lua path's, not a
 * copy. */
enum {
  FU_SESS_MT = 1, FU_OP_MT = 2, /* start_op takes the op's from upvalue 2 */
  FU_SERVER, FU_MNAME, FU_BODY, FU_VALIDATOR, FU_SCHEMA, FU_DIRECT, FU_CALL, FU_REST,
  FU_ADOPTED, /* effect.lua's adopted: a journaled call's rest, its token first */
  FU_BOX,
  FU_SUFFIX, /* the params text after the arguments: ,"name":"<mname>"} */
  FU_SPARE, /* the op of the last plain call, taken again when not busy */
  FU_HEADER, /* the last output mark found fit for a model (no NUL, UTF-8) */
  /* the schema hash a journaled call records, and the description and
   * params it was made from */
  FU_HDESC, FU_HPARAMS, FU_HASH,
  FU_KEYS /* the field names, each a Lua string (no lua_getfield per field) */
};
static const char *const fast_keys[] = {"fn", "validator", "_direct", "timeout",
                                        "on_progress", "screen", "_refused", "_gone", "_s",
                                        "max_output", "_headers", "label", "effect",
                                        "_noctx", "name", "description", "params"};
enum { K_FN, K_VALIDATOR, K_DIRECT, K_TIMEOUT, K_ON_PROGRESS, K_SCREEN, K_REFUSED,
       K_GONE, K_S, K_MAX_OUTPUT, K_HEADERS, K_LABEL, K_EFFECT, K_NOCTX, K_NAME,
       K_DESCRIPTION, K_PARAMS, K_N };
#define FU_N (FU_KEYS + K_N - 1)

/* [-0, +1, e] t[key] for the table at idx (its metatable obeyed, as a
 * field read in Lua), the key one of fast_keys. */
static int fast_get(lua_State *L, int idx, int k) {
  idx = lua_absindex(L, idx);
  lua_pushvalue(L, lua_upvalueindex(FU_KEYS + k));
  return lua_gettable(L, idx);
}
/* The params text before the arguments (l_fast checks it is l_call's). */
#define FAST_PREFIX "{\"arguments\":"
/* The stack of a fast call: tool, args, ctx, then the session, t0, op. */
enum { FS_TOOL = 1, FS_ARGS, FS_CTX, FS_SESS, FS_T0, FS_OP };

/* [-0, +0, e] Is field k of the table at idx the upvalue up? */
static int field_is(lua_State *L, int idx, int k, int up) {
  fast_get(L, idx, k);
  int same = lua_rawequal(L, -1, lua_upvalueindex(up));
  lua_pop(L, 1);
  return same;
}

/* [-0, +0, e] Is field k of the table at idx nil? */
static int field_nil(lua_State *L, int idx, int k) {
  int nil = fast_get(L, idx, k) == LUA_TNIL;
  lua_pop(L, 1);
  return nil;
}

/* [-0, +0, e] Is server[t][mname] nil (t a table)? */
static int listed_nil(lua_State *L, int server, int t) {
  if (fast_get(L, server, t) != LUA_TTABLE) {
    lua_pop(L, 1);
    return 0;
  }
  lua_pushvalue(L, lua_upvalueindex(FU_MNAME));
  int nil = lua_gettable(L, -2) == LUA_TNIL;
  lua_pop(L, 2);
  return nil;
}

/* Returns everything a Lua call left above ctx (its stack top then). */
static int fast_pass_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  return lua_gettop(L) - (int)ctx;
}

/* [-0, +r, e] Tool.call(tool, args, ctx): the Lua path, from the start. */
static int fast_general(lua_State *L) {
  lua_settop(L, FS_CTX);
  lua_pushvalue(L, lua_upvalueindex(FU_CALL));
  lua_insert(L, 1);
  lua_callk(L, 3, LUA_MULTRET, 0, fast_pass_k);
  return fast_pass_k(L, LUA_OK, 0);
}

/* [-k, +r, e] rest(tool, args, session, t0, <the values from first on>):
 * the call goes on in Lua after its request went out. op's effect, if
 * the call is journaled, goes with it: adopted(token, rest, ...). */
static int fast_rest(lua_State *L, int first, struct lop *op) {
  int nargs = lua_gettop(L) - first + 1;
  luaL_checkstack(L, 8, "MCP tool call");
  int pre = 0;
  if (op->eff) {
    struct fast_eff *fe = op->eff;
    lua_pushvalue(L, lua_upvalueindex(FU_ADOPTED));
    lc_l_effect_adopt(L, &fe->e, fe->task, fe->seq0, fe->children0); /* a raise: op still owes it */
    op->eff = NULL;
    lc_free(fe);
    pre = 2;
  }
  lua_pushvalue(L, lua_upvalueindex(FU_REST));
  lua_pushvalue(L, FS_TOOL);
  lua_pushvalue(L, FS_ARGS);
  lua_pushvalue(L, FS_SESS);
  lua_pushvalue(L, FS_T0);
  lua_rotate(L, first, 5 + pre);
  lua_callk(L, 4 + pre + nargs, LUA_MULTRET, first - 1, fast_pass_k);
  return fast_pass_k(L, LUA_OK, first - 1);
}

/* [-0, +0, e] The plain answer on top ends op's effect, if the call is
 * journaled: its one line, as tok:finish writes it for that one string. */
static void fast_end(lua_State *L, struct lop *op) {
  struct fast_eff *fe = op->eff;
  if (!fe) return;
  op->eff = NULL;
  unsigned long seq, children;
  lc_task_counters(fe->task, &seq, &children);
  /* as tok:finish writes it for that string (valid UTF-8, no NUL: the
   * mark checked, the text as mcp.h promises): 1 is no memory only */
  int rc = lc_l_effect_end_given(L, &fe->e, lua_gettop(L), 1, seq - fe->seq0,
                                 children - fe->children0);
  if (rc == 1) lc_effect_cancel(&fe->e, "cancelled by an error");
  struct lc_journal *j = fe->e.j;
  lc_free(fe);
  if (rc == 1) luaL_error(L, "out of memory");
  if (rc) luaL_error(L, "%s", lc_journal_error(j));
}

/* The usual answer, as mcp.lua's _direct and Tool._settle make it:
 * header .. text .. "\n</mcp-tool-output>" when the text is within
 * max_output, holds no closing mark, its header is cached and the whole
 * can go to a model (no NUL, valid UTF-8). 1 with it pushed, else 0. */
static int fast_plain(lua_State *L, struct lop *op) {
  static const char close_mark[] = "</mcp-tool-output>";
  static const char tail[] = "\n</mcp-tool-output>";
  int server = lua_upvalueindex(FU_SERVER);
  /* a number, as Lua's #a <= max needs (a numeric string raises there),
   * and not NaN (no length is within it) */
  int isnum = fast_get(L, server, K_MAX_OUTPUT) == LUA_TNUMBER;
  lua_Number max = lua_tonumber(L, -1);
  lua_pop(L, 1);
  if (!isnum || !((lua_Number)op->tlen <= max)) return 0;
  /* (tval is valid UTF-8 with no control bytes, NUL among them: what
   * lc_mcp_reply.text promises, mcp.h; not checked again here) */
  for (const char *p = op->tval, *end = op->tval + op->tlen;
       (p = memchr(p, '<', (size_t)(end - p))) != NULL; p++)
    if ((size_t)(end - p) >= sizeof close_mark - 1 &&
        memcmp(p, close_mark, sizeof close_mark - 1) == 0)
      return 0;
  if (fast_get(L, server, K_HEADERS) != LUA_TTABLE) {
    lua_pop(L, 1);
    return 0;
  }
  int hs = lua_gettop(L);
  lua_geti(L, hs, 1); /* hs[1], hs[mname]: read as Lua reads them */
  fast_get(L, server, K_LABEL);
  int same = lua_type(L, -1) == LUA_TSTRING && lua_rawequal(L, -1, -2);
  lua_pop(L, 2);
  size_t hl;
  const char *h;
  lua_pushvalue(L, lua_upvalueindex(FU_MNAME));
  if (!same || lua_gettable(L, hs) != LUA_TSTRING || !(h = lua_tolstring(L, -1, &hl))) {
    lua_settop(L, hs - 1);
    return 0;
  }
  if (!lua_rawequal(L, -1, lua_upvalueindex(FU_HEADER))) { /* checked once per mark */
    if (memchr(h, 0, hl) || !lc_utf8_valid(h, hl, NULL)) {
      lua_settop(L, hs - 1);
      return 0;
    }
    lua_pushvalue(L, -1);
    lua_replace(L, lua_upvalueindex(FU_HEADER));
  }
  size_t total = hl + op->tlen + sizeof tail - 1;
  char small[512], *out = small;
  luaL_Buffer b;
  if (total > sizeof small) out = luaL_buffinitsize(L, &b, total);
  memcpy(out, h, hl);
  memcpy(out + hl, op->tval, op->tlen);
  memcpy(out + hl + op->tlen, tail, sizeof tail - 1);
  if (out == small) lua_pushlstring(L, small, total); /* a short answer: no buffer box */
  else luaL_pushresultsize(&b, total);
  return 1;
}

static int fast_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  (void)ctx;
  struct lop *op = lua_touserdata(L, FS_OP);
  /* running, not waiting (as wait_k: a raise must not leave the op
   * pointing at this task) */
  struct lc_task *t = op->task;
  op->task = NULL;
  lua_settop(L, FS_OP);
  while (op->progress) { /* asked for none: dropped, as _direct drops them */
    cJSON_Delete(op->progress);
    op->progress = NULL;
  }
  if (op->done && op->rc == 0 && op->tval && !(op->s && (op->s->auth_url || op->s->reqs)) &&
      fast_plain(L, op)) {
    /* done with: the spare again, holding nothing (not its session) */
    op->started = 0;
    op_unlink(op);
    op->s = NULL;
    if (op->tval != op->tkeep) { /* the block kept for the next call */
      lc_free(op->tkeep);
      op->tkeep = op->tval;
      op->tcap = op->tlen + 1;
    }
    op->tval = NULL;
    lua_pushnil(L);
    lua_setiuservalue(L, FS_OP, 1);
    op->busy = 0;
    fast_end(L, op);
    return 1;
  }
  if (push_event(L, op)) return fast_rest(L, FS_OP, op);
  op->task = t;
  lc_task_wait(t, &op->wait);
  return lua_yieldk(L, 0, 0, fast_k);
}

/* [-0, +1, m] The op of a plain call, pushed (at FS_OP), its session the
 * one at FS_SESS: the spare one if no call uses it (a userdata, its
 * metatable and finalizer less per call), else a new one that becomes the
 * spare. An op handed to Lua (rest) stays busy: Lua may still wait on it. */
static struct lop *fast_op(lua_State *L) {
  int up = lua_upvalueindex(FU_SPARE);
  struct lop *op = lua_type(L, up) == LUA_TUSERDATA ? lua_touserdata(L, up) : NULL;
  if (op && !op->busy) {
    lua_pushvalue(L, up);
    /* nothing is left in it (fast_k's end), but as op_gc would; its text
     * block stays for this call's answer */
    op_drop_eff(op); /* (none: every call's end took it) */
    cJSON_Delete(op->result);
    cJSON_Delete(op->progress);
    lc_free(op->msg);
    if (op->tval != op->tkeep) lc_free(op->tval);
    char *tkeep = op->tkeep;
    size_t tcap = op->tcap;
    memset(op, 0, sizeof *op);
    op->tkeep = tkeep;
    op->tcap = tcap;
  } else {
    op = lua_newuserdatauv(L, sizeof *op, 1);
    memset(op, 0, sizeof *op);
    lua_pushvalue(L, lua_upvalueindex(FU_OP_MT));
    lua_setmetatable(L, -2);
    lua_pushvalue(L, -1);
    lua_replace(L, up);
  }
  lua_pushvalue(L, FS_SESS);
  lua_setiuservalue(L, -2, 1); /* the op keeps its session alive */
  op->busy = 1;
  return op;
}

/* [-0, +0, e] Is the tool's effect class "pure" (a string, as Tool:call
 * hands it to luact.effect)? */
static int effect_is_pure(lua_State *L, int tool) {
  size_t n = 0;
  const char *e = fast_get(L, tool, K_EFFECT) == LUA_TSTRING ? lua_tolstring(L, -1, &n) : NULL;
  int pure = e && n == 4 && memcmp(e, "pure", 4) == 0;
  lua_pop(L, 1);
  return pure;
}

/* [-0, +0, e] The schema hash Tool:call's effect records for the tool (of
 * {description =, params =}, made once per pair as tool.lua's schema_of
 * and l_effect.c's cache make it), kept in the upvalues; NULL when that
 * table cannot be journaled (the Lua path raises why). The text is the
 * upvalue's: valid until the next call. */
static const char *fast_tools_hash(lua_State *L, int tool) {
  fast_get(L, tool, K_DESCRIPTION);
  fast_get(L, tool, K_PARAMS);
  if (lua_rawequal(L, -2, lua_upvalueindex(FU_HDESC)) &&
      lua_rawequal(L, -1, lua_upvalueindex(FU_HPARAMS)) &&
      lua_type(L, lua_upvalueindex(FU_HASH)) == LUA_TSTRING) {
    lua_pop(L, 2);
    return lua_tostring(L, lua_upvalueindex(FU_HASH));
  }
  lua_createtable(L, 0, 2);
  lua_pushvalue(L, -3);
  lua_setfield(L, -2, "description");
  lua_pushvalue(L, -2);
  lua_setfield(L, -2, "params");
  char err[160], th[65];
  int bad = lc_l_schema_hash(L, -1, th, err, sizeof err) != 0;
  lua_pop(L, 1);
  if (bad) {
    lua_pop(L, 2);
    return NULL;
  }
  lua_pushlstring(L, th, 64);
  lua_replace(L, lua_upvalueindex(FU_HASH));
  lua_replace(L, lua_upvalueindex(FU_HPARAMS));
  lua_replace(L, lua_upvalueindex(FU_HDESC));
  return lua_tostring(L, lua_upvalueindex(FU_HASH));
}

/* [-0, +0, e] Tool:call's begin for a journaled call (a pure tool, the run
 * recording fresh): the effect "tool" named as the tool, its request the
 * arguments' text req (the params' arguments, which are the canonical
 * text begin makes of them: check_mcp's journaled_c_path_lines_as_the_lua_path),
 * the tool's schema hash; given to op. 0, or -1 when the name or schema
 * is not what Tool:call journals (the Lua path says why). Raises what
 * begin raises (the journal failed: the run stops). */
static int fast_begin(lua_State *L, struct lop *op, struct lc_task *task, struct lc_journal *j,
                      const char *req, size_t rlen) {
  int top = lua_gettop(L);
  const char *th = fast_tools_hash(L, FS_TOOL);
  struct fast_eff *fe = NULL;
  if (!th || fast_get(L, FS_TOOL, K_NAME) != LUA_TSTRING || !(fe = lc_malloc(sizeof *fe))) {
    lua_settop(L, top);
    return -1;
  }
  struct lc_effect_who w = {task, lc_task_path(task), lc_task_next_seq(task)};
  struct lc_effect_desc d = {.kind = "tool", .name = lua_tostring(L, -1), .cls = LC_EFFECT_PURE,
                             .tools_hash = th, .waits = 1, .request_text = req,
                             .request_len = rlen};
  int rc = lc_effect_begin(j, &w, &d, &fe->e);
  lua_settop(L, top);
  if (rc != LC_EFFECT_RUN || fe->e.ticket || !lc_effect_one_line_owed(&fe->e)) {
    /* (a fresh recording's pure effect is none of these but a failure) */
    lc_effect_cancel(&fe->e, "cancelled by an error");
    lc_free(fe);
    op->busy = 0;
    return luaL_error(L, "%s", rc < 0 ? lc_journal_error(j) : "MCP tool call: not a one-line effect");
  }
  fe->task = task;
  lc_task_counters(task, &fe->seq0, &fe->children0);
  op->eff = fe;
  return 0;
}

/* tool:call(args, ctx), upvalues as FU_*. */
static int l_fast_call(lua_State *L) {
  lua_settop(L, FS_CTX);
  luaL_checkstack(L, 16, "MCP tool call");
  int server = lua_upvalueindex(FU_SERVER);
  /* first, the cheapest refusal: a journal that replays or resumes goes
   * the Lua way; one that records fresh journals a pure tool's call
   * below; no journal, or one that is off, is Tool:call's begin below */
  struct lc_task *task = lc_task_current(L);
  struct lc_journal *j = lc_l_journal(L);
  int journaled = j && lc_journal_mode(j) != LC_JOURNAL_OFF;
  if (!task || (journaled && !lc_journal_records_fresh(j))) return fast_general(L);
  /* (_noctx: with fn the tool's own body, Tool:call's choice between
   * effect_run and effect_run_noctx is only whether a ctx that body never
   * reads is made; journaled, whether the line is the one made here) */
  if (lua_type(L, FS_TOOL) != LUA_TTABLE || !field_is(L, FS_TOOL, K_FN, FU_BODY) ||
      !field_is(L, FS_TOOL, K_VALIDATOR, FU_VALIDATOR) ||
      !field_is(L, FS_TOOL, K_DIRECT, FU_DIRECT) || !field_nil(L, server, K_ON_PROGRESS) ||
      !field_nil(L, server, K_SCREEN) || !listed_nil(L, server, K_REFUSED) ||
      !listed_nil(L, server, K_GONE) ||
      (journaled && (!effect_is_pure(L, FS_TOOL) || !field_is(L, FS_TOOL, K_NOCTX, FU_BODY))))
    return fast_general(L);
  /* the tool's timeout is the server's (_direct's secs ~= server.timeout) */
  fast_get(L, FS_TOOL, K_TIMEOUT);
  fast_get(L, server, K_TIMEOUT);
  int isnum;
  double secs = lua_tonumberx(L, -2, &isnum);
  int same = isnum && lua_type(L, -1) == LUA_TNUMBER && lua_compare(L, -2, -1, LUA_OPEQ);
  lua_pop(L, 2);
  if (!same) return fast_general(L);
  /* the session: open, its server alive, no tools/list_changed to read */
  fast_get(L, server, K_S); /* at FS_SESS */
  struct lsess *s = lua_touserdata(L, FS_SESS);
  if (!s || !lua_getmetatable(L, FS_SESS)) return fast_general(L);
  same = lua_rawequal(L, -1, lua_upvalueindex(FU_SESS_MT));
  lua_pop(L, 1);
  if (!same || !s->m || lc_mcp_dead(s->m) || s->ch_tools) return fast_general(L);
  if (lua_isnil(L, FS_ARGS)) { /* Tool:call: nil is {} */
    lua_newtable(L);
    lua_replace(L, FS_ARGS);
  }
  if (lua_type(L, FS_ARGS) != LUA_TTABLE) return fast_general(L);
  /* the request's params, as l_call writes them: a flat table is checked
   * and written in one walk; what is not valid, or cannot be written, goes
   * the Lua way (which gives the refusal, or raises the same message
   * under its pcall) */
  void *box = lua_touserdata(L, lua_upvalueindex(FU_BOX));
  struct lc_buf *pb = &s->scratch;
  lc_buf_reset(pb);
  size_t sl;
  const char *suffix = lua_tolstring(L, lua_upvalueindex(FU_SUFFIX), &sl);
  if (lc_buf_puts(pb, FAST_PREFIX) < 0) return fast_general(L);
  int flat = lc_l_schema_valid_text(L, box, FS_ARGS, pb);
  char err[160];
  if (flat < 0 ||
      (flat == 0 && (!lc_l_schema_valid(L, box, FS_ARGS) ||
                     lc_conv_member_value_to_text(L, FS_ARGS, "arguments", pb, err, sizeof err) < 0))) {
    lc_buf_reset(pb);
    return fast_general(L);
  }
  size_t args_end = pb->len; /* the arguments: from after FAST_PREFIX to here */
  if (lc_buf_append(pb, suffix, sl) < 0) {
    lc_buf_reset(pb);
    return fast_general(L);
  }
  lua_pushnumber(L, lc_now_ms() / 1000.0); /* FS_T0 */
  struct lop *op = fast_op(L);
  if (journaled) {
    /* Tool:call's begin: the effect's one line owed from here */
    size_t pl = sizeof FAST_PREFIX - 1;
    if (fast_begin(L, op, task, j, pb->data + pl, args_end - pl) < 0) {
      op->busy = 0;
      lc_buf_reset(pb);
      return fast_general(L);
    }
  } else if (j) {
    /* Tool:call's begin with the journal off: the effect takes its number */
    lc_task_next_seq(task);
    if (lc_effect_pass(j)) {
      op->busy = 0;
      lc_buf_reset(pb);
      return luaL_error(L, "%s", lc_journal_error(j));
    }
  }
  /* _direct: the two spawn numbers luact.timeout's child would take */
  lc_task_skip(task, 0, 2);
  if (op_send(L, op, s, "tools/call", secs, 0, 1) != 1) {
    /* the op that never went out, then nil, message, code:
     * rest(..., op nil, kind, a, b, c nil, err, code) */
    op->busy = 0;
    lua_remove(L, FS_OP);
    for (int i = 0; i < 4; i++) lua_pushnil(L);
    lua_rotate(L, FS_OP + 1, 4);
    return fast_rest(L, FS_OP, op);
  }
  op->task = task;
  op->wait.cancel = op_cancel;
  lc_task_wait(task, &op->wait);
  return lua_yieldk(L, 0, 0, fast_k);
}

/* mcp._fast(server, mname, body, validator, schema, direct, call, rest,
 * adopted) -> the tool's call (above), or nil in a run whose journal
 * replays or resumes (no call of it could take the C path: Tool.call
 * stays, without the C path's checks in front of it per call). */
static int l_fast(lua_State *L) {
  struct lc_journal *j = lc_l_journal(L);
  if (j && lc_journal_mode(j) != LC_JOURNAL_OFF && !lc_journal_records_fresh(j)) {
    lua_pushnil(L);
    return 1;
  }
  luaL_checktype(L, 1, LUA_TTABLE);
  luaL_checktype(L, 2, LUA_TSTRING);
  for (int i = 3; i <= 9; i++)
    if (i != 5) luaL_checktype(L, i, LUA_TFUNCTION);
  void *box = lc_l_schema_box(L, 5);
  luaL_argcheck(L, box != NULL, 5, "not a compiled schema");
  lua_settop(L, 9);
  /* the params' text after the arguments, as l_call writes it all */
  struct lc_buf b;
  lc_buf_init(&b, 0);
  static const char *const keys[] = {"arguments", "name"}; /* sorted, as _start's */
  const int idxs[] = {10, 2}; /* 10: none, written as {} */
  char err[160];
  int rc = lc_conv_members_to_text(L, 2, keys, idxs, &b, err, sizeof err);
  size_t pl = strlen(FAST_PREFIX "{}");
  if (rc < 0 || b.len < pl || memcmp(b.data, FAST_PREFIX "{}", pl) != 0) {
    lc_buf_free(&b);
    return luaL_error(L, rc == LC_ENOMEM ? "out of memory" : "MCP tool name: %s", err);
  }
  /* copied out before the push, which may raise (b would leak); a name
   * too long for that gets no C path (nil: mcp.lua keeps Tool.call) */
  char suffix[1024];
  size_t sl = b.len - pl;
  if (sl <= sizeof suffix) memcpy(suffix, b.data + pl, sl);
  lc_buf_free(&b);
  if (sl > sizeof suffix) {
    lua_pushnil(L);
    return 1;
  }
  lua_pushlstring(L, suffix, sl);
  lua_rawgetp(L, LUA_REGISTRYINDEX, &sess_mt_key);
  lua_rawgetp(L, LUA_REGISTRYINDEX, &op_mt_key);
  lua_rotate(L, 1, 2); /* sess_mt op_mt server ... rest adopted suffix */
  lua_pushlightuserdata(L, box);
  lua_insert(L, FU_BOX);
  lua_pushnil(L); /* FU_SPARE */
  lua_pushnil(L); /* FU_HEADER */
  for (int i = FU_HDESC; i <= FU_HASH; i++) lua_pushnil(L);
  for (int k = 0; k < K_N; k++) lua_pushstring(L, fast_keys[k]);
  lua_pushcclosure(L, l_fast_call, FU_N);
  return 1;
}

static const luaL_Reg sess_methods[] = {
    {"_start", l_start},     {"_call", l_call},       {"_respond", l_respond},
    {"_respond_error", l_respond_error},
    {"_changed", l_changed}, {"dead", l_dead}, {"_plain", l_plain},
    {"_authorized", l_authorized}, {"_wait_open", l_wait_open},
    {"version", l_version},  {"info", l_info},
    {"stats", l_stats},      {"close", l_close},
    {NULL, NULL}};

static const luaL_Reg op_methods[] = {
    {"wait", l_op_wait}, {"cancel", l_op_cancel}, {NULL, NULL}};

/* mcp._spawns(n): moves the calling task's spawn count by n (may be
 * negative). A tool call that runs without luact.timeout's child takes the
 * two spawn numbers that timeout takes, and gives them back when it goes
 * on under timeout after all (mcp.lua's _direct). */
static int l_spawns(lua_State *L) {
  lua_Integer n = luaL_checkinteger(L, 1);
  struct lc_task *t = lc_task_check(L, "luact.mcp");
  unsigned long seq, children;
  lc_task_counters(t, &seq, &children);
  luaL_argcheck(L, n >= -(lua_Integer)children && n <= 2, 1, "spawn count out of range");
  /* unsigned: adding the wrapped value of a negative n subtracts it */
  lc_task_skip(t, 0, (unsigned long)(long)n);
  return 0;
}

/* mcp._clock() -> monotonic seconds, not journaled (luact.now is an
 * effect): what is left of a call's deadline. */
static int l_clock(lua_State *L) {
  lua_pushnumber(L, lc_now_ms() / 1000.0);
  return 1;
}

static const luaL_Reg mcp_funcs[] = {
    {"_open", l_open}, {"_spawns", l_spawns}, {"_clock", l_clock}, {"_fast", l_fast},
    {NULL, NULL}};

int lc_open_mcp(lua_State *L) {
  /* Methods and __gc hold their metatable as upvalue 1 (lc_lua_checkud_up);
   * a session's methods hold the op's as upvalue 2 (start_op). */
  luaL_newmetatable(L, OP_MT); /* op_mt */
  luaL_newlibtable(L, op_methods);
  lua_pushvalue(L, -2);
  luaL_setfuncs(L, op_methods, 1);
  lua_setfield(L, -2, "__index");
  lua_pushvalue(L, -1);
  lua_pushcclosure(L, op_gc, 1);
  lua_setfield(L, -2, "__gc");
  lua_pushvalue(L, -1);
  lua_pushcclosure(L, op_gc, 1);
  lua_setfield(L, -2, "__close");
  lua_pushvalue(L, -1);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &op_mt_key);
  luaL_newmetatable(L, SESSION_MT); /* op_mt sess_mt */
  luaL_newlibtable(L, sess_methods);
  lua_pushvalue(L, -2);
  lua_pushvalue(L, -4);
  luaL_setfuncs(L, sess_methods, 2);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, sess_gc);
  lua_setfield(L, -2, "__gc");
  lua_pushcfunction(L, sess_gc);
  lua_setfield(L, -2, "__close");
  lua_rawsetp(L, LUA_REGISTRYINDEX, &sess_mt_key);
  lua_pop(L, 1);
  luaL_newlib(L, mcp_funcs);
  lc_mcp_serve_register(L); /* the server side: l_mcp_serve.c */
  return 1;
}
