/* l_http.c: luact.http: request{...}, get, post as waiting bindings over
 * tools/http_tool.c.
 *
 * The request lives in a "luact.HttpCall" userdata on the binding's own
 * stack, marked to-be-closed, so a raise while the options are read, a kill
 * (luact.timeout), a normal return and __gc all end it through one
 * idempotent close that removes the transfer. */
#include "l_opts.h"
#include "l_http.h"

#include <lauxlib.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "conv.h"
#include "curl_dl.h"
#include "effect.h"
#include "http_tool.h"
#include "l_effect.h"
#include "lc.h"
#include "sched.h"
#include "secrets.h"

#define HTTPCALL_MT "luact.HttpCall"

struct http_box {
  struct lc_http_tool_call call; /* must not move: the userdata never does */
  struct lc_task *task;
  struct lc_wait wait;
  char **hdrs; /* "Name: value" copies, until the request starts */
  size_t n_hdrs;
  char *body; /* a table body encoded as JSON (cJSON's allocator) */
  cJSON *json; /* the parsed response body while it is pushed */
  int done;
  int closed;
  struct lc_effect_op eff; /* journal: see effect.h */
  int journaled;        /* a result line is owed */
  cJSON *rec;           /* the result as journaled, while it is pushed */
  int rec_is_err;
  /* Waiting for a journal line to be durable (its fsync runs on the
   * journal's writer thread, not on the loop): the request, kept until
   * its intent is durable; its strings stay on the Lua stack. */
  struct lc_journal_waiter jw;
  struct lc_journal_deferred dfr; /* replay: waiting for its turn */
  struct lc_http_tool_req req;
  char method[40];
};

/* The one close: __gc, __close, kill (wait.cancel) and the normal end. */
static void box_close(struct http_box *b) {
  if (b->closed) return;
  b->closed = 1;
  if (b->eff.j) lc_journal_unwait(b->eff.j, &b->jw);
  if (b->dfr.queued) lc_journal_undefer(b->eff.j, &b->dfr);
  if (b->journaled) lc_effect_cancel(&b->eff, "cancelled");
  b->journaled = 0;
  cJSON_Delete(b->rec);
  b->rec = NULL;
  lc_http_tool_cleanup(&b->call);
  for (size_t i = 0; i < b->n_hdrs; i++) lc_free(b->hdrs[i]);
  lc_free(b->hdrs);
  b->hdrs = NULL;
  b->n_hdrs = 0;
  cJSON_free(b->body);
  b->body = NULL;
  cJSON_Delete(b->json);
  b->json = NULL;
}

static int box_gc(lua_State *L) {
  box_close(luaL_checkudata(L, 1, HTTPCALL_MT));
  return 0;
}

/* wait.cancel: the task is being killed. */
static void box_cancel(struct lc_wait *w) {
  box_close((struct http_box *)((char *)w - offsetof(struct http_box, wait)));
}

/* http_tool completion, from the loop. */
static void on_done(struct lc_http_tool_call *c, void *ud) {
  struct http_box *b = ud;
  b->done = 1;
  lc_task_wake(b->task, &b->wait);
}

/* The journal's writer made the awaited line durable (from the loop). */
static void on_durable(struct lc_journal_waiter *w) {
  struct http_box *b = (struct http_box *)((char *)w - offsetof(struct http_box, jw));
  lc_task_wake(b->task, &b->wait);
}

/* A replayed answer's turn came (docs/journal.md: concurrent branches
 * see their answers in the recorded order). */
static void on_turn(struct lc_journal_deferred *d) {
  struct http_box *b = (struct http_box *)((char *)d - offsetof(struct http_box, dfr));
  lc_task_wake(b->task, &b->wait);
}

/* 1 when the effect's pending journal line is durable (raises when
 * syncing failed); 0 when the task must yield first, with the wait set up
 * (or the line synced here when the task cannot yield). */
static int line_durable(lua_State *L, struct http_box *b) {
  struct lc_journal *j = b->eff.j;
  if (!lc_journal_durable(j, b->eff.ticket)) {
    b->jw.ticket = b->eff.ticket;
    b->jw.fire = on_durable;
    if (lua_isyieldable(L) && lc_journal_wait(j, &b->jw) == 0) {
      lc_task_wait(b->task, &b->wait);
      return 0;
    }
    if (lc_journal_sync_now(j, b->eff.ticket)) return luaL_error(L, "%s", lc_journal_error(j));
  }
  if (lc_journal_failed(j) == LC_JOURNAL_EIO) return luaL_error(L, "%s", lc_journal_error(j));
  b->eff.ticket = 0;
  return 1;
}

/* [-0, +3, m] nil, message, code */
static int push_fail(lua_State *L, const char *msg, const char *code) {
  lua_pushnil(L);
  lua_pushstring(L, msg);
  lua_pushstring(L, code);
  return 3;
}

static double opt_seconds(lua_State *L, int opts, const char *f) {
  double v = 0;
  if (lua_getfield(L, opts, f) != LUA_TNIL) {
    int ok;
    v = lua_tonumberx(L, -1, &ok);
    if (!ok || !(v > 0) || v > 1e7)
      luaL_error(L, "luact.http: '%s' must be a positive number of seconds", f);
  }
  lua_pop(L, 1);
  return v * 1000.0;
}

/* [-0, +0, e] Copies headers={name = value} into b->hdrs, checked. */
static void read_headers(lua_State *L, int opts, struct http_box *b) {
  int t = lua_getfield(L, opts, "headers");
  if (t == LUA_TNIL) {
    lua_pop(L, 1);
    return;
  }
  if (t != LUA_TTABLE) luaL_error(L, "luact.http: 'headers' must be a table {name = value}");
  int ht = lua_gettop(L);
  size_t n = 0;
  lua_pushnil(L);
  while (lua_next(L, ht)) {
    n++;
    lua_pop(L, 1);
  }
  if (n == 0) {
    lua_pop(L, 1);
    return;
  }
  b->hdrs = lc_calloc(n, sizeof *b->hdrs);
  if (!b->hdrs) luaL_error(L, "out of memory");
  lua_pushnil(L);
  while (lua_next(L, ht)) { /* key value */
    if (lua_type(L, -2) != LUA_TSTRING ||
        (lua_type(L, -1) != LUA_TSTRING && lua_type(L, -1) != LUA_TNUMBER))
      luaL_error(L, "luact.http: headers must map string names to string values");
    size_t kl, vl;
    const char *k = lua_tolstring(L, -2, &kl);
    lua_pushvalue(L, -1); /* tolstring on a copy: never convert a key in place */
    const char *v = lua_tolstring(L, -1, &vl);
    /* A credential the script sends is known from here on (secrets.h). */
    lc_secret_add_header(k, kl, v, vl);
    char err[256];
    if (lc_http_tool_check_header(k, kl, v, vl, err, sizeof err))
      luaL_error(L, "luact.http: %s", err);
    char *line = lc_malloc(kl + vl + 3);
    if (!line || b->n_hdrs >= n) {
      lc_free(line);
      luaL_error(L, "out of memory");
    }
    memcpy(line, k, kl);
    memcpy(line + kl, ": ", 2);
    memcpy(line + kl + 2, v, vl + 1);
    b->hdrs[b->n_hdrs++] = line;
    lua_pop(L, 2); /* key */
  }
  lua_pop(L, 1);
}

/* [-0, +1, e] The body: a string as is, a table as JSON (*is_json = 1). */
static const char *read_body(lua_State *L, int opts, struct http_box *b, size_t *len,
                             int *is_json) {
  int t = lua_getfield(L, opts, "body"); /* stays on the stack */
  *len = 0;
  *is_json = 0;
  if (t == LUA_TNIL) return NULL;
  if (t == LUA_TSTRING) return lua_tolstring(L, -1, len);
  if (t != LUA_TTABLE) luaL_error(L, "luact.http: 'body' must be a string or a table (sent as JSON)");
  cJSON *j = NULL;
  char err[256];
  if (lc_conv_to_json(L, -1, &j, err, sizeof err))
    luaL_error(L, "luact.http: body cannot be sent as JSON: %s", err);
  b->body = lc_json_print(j);
  cJSON_Delete(j);
  if (!b->body) luaL_error(L, "out of memory");
  *len = strlen(b->body);
  *is_json = 1;
  return b->body;
}

/* [-0, +1, m] The response table. */
static void push_response(lua_State *L, struct http_box *b) {
  lua_createtable(L, 0, 4); /* res */
  lua_pushinteger(L, lc_http_tool_status(&b->call));
  lua_setfield(L, -2, "status");
  lua_newtable(L); /* res headers */
  size_t pos = 0;
  struct lc_http_tool_header h;
  while (lc_http_tool_next_header(&b->call, &pos, &h)) {
    lua_pushlstring(L, h.name, h.name_len); /* res headers name */
    /* Repeated fields combine with ", " (RFC 9110 5.3). */
    if (lua_rawget(L, -2) == LUA_TSTRING) { /* res headers old */
      lua_pushliteral(L, ", ");
      lua_pushlstring(L, h.value, h.value_len);
      lua_concat(L, 3);
    } else {
      lua_pop(L, 1);
      lua_pushlstring(L, h.value, h.value_len);
    }
    lua_pushlstring(L, h.name, h.name_len);
    lua_insert(L, -2); /* res headers name value */
    lua_rawset(L, -3);
  }
  lua_setfield(L, -2, "headers");
  size_t len;
  const char *body = lc_http_tool_body(&b->call, &len);
  lua_pushlstring(L, body, len);
  lua_setfield(L, -2, "body");
  if (len && lc_http_tool_is_json(lc_http_tool_content_type(&b->call))) {
    char err[128];
    /* Not JSON after all: the body is still there; json stays nil. */
    b->json = lc_json_parse(body, len, err, sizeof err);
    if (b->json) {
      lc_conv_push_json(L, b->json);
      lua_setfield(L, -2, "json");
    }
  }
}

/* ---- the journal: a request is an effect (kind "http") ---- */

static int secret_header(const char *line) {
  static const char *const names[] = {"authorization:", "proxy-authorization:", "x-api-key:",
                                      "api-key:", "cookie:", NULL};
  for (int i = 0; names[i]; i++)
    if (strncasecmp(line, names[i], strlen(names[i])) == 0) return 1;
  return 0;
}

/* The request as journaled: never a credential's value. */
static cJSON *request_json(const struct lc_http_tool_req *req) {
  cJSON *o = cJSON_CreateObject(), *h;
  if (!o) return NULL;
  cJSON_AddStringToObject(o, "method", req->method ? req->method : req->body ? "POST" : "GET");
  cJSON_AddStringToObject(o, "url", req->url);
  if (req->n_headers && (h = cJSON_AddObjectToObject(o, "headers"))) {
    for (size_t i = 0; i < req->n_headers; i++) {
      const char *line = req->headers[i], *colon = strchr(line, ':');
      if (!colon) continue;
      char name[128];
      snprintf(name, sizeof name, "%.*s", (int)(colon - line), line);
      for (char *p = name; *p; p++) *p = (char)(*p >= 'A' && *p <= 'Z' ? *p + 32 : *p);
      cJSON_AddStringToObject(h, name, secret_header(line) ? "<redacted>" : colon + 2);
    }
  }
  if (req->body && lc_effect_add_bytes(o, "body", req->body, req->body_len)) {
    cJSON_Delete(o);
    return NULL;
  }
  if (req->idempotency_key) cJSON_AddStringToObject(o, "idempotency_key", req->idempotency_key);
  return o;
}

/* The finished transfer as the journal keeps it. */
static cJSON *result_json(struct http_box *b, cJSON **error) {
  const char *msg;
  int rc = lc_http_tool_result(&b->call, &msg);
  *error = NULL;
  if (rc) {
    cJSON *e = cJSON_CreateObject();
    if (e) {
      cJSON_AddStringToObject(e, "message", msg);
      cJSON_AddStringToObject(e, "code", lc_http_tool_errcode(rc));
    }
    *error = e;
    return NULL;
  }
  cJSON *o = cJSON_CreateObject(), *hs = o ? cJSON_AddArrayToObject(o, "headers") : NULL;
  if (!hs) {
    cJSON_Delete(o);
    return NULL;
  }
  cJSON_AddNumberToObject(o, "status", (double)lc_http_tool_status(&b->call));
  size_t pos = 0;
  struct lc_http_tool_header h;
  while (lc_http_tool_next_header(&b->call, &pos, &h)) {
    cJSON *pair = cJSON_CreateObject();
    if (!pair || !cJSON_AddItemToArray(hs, pair)) {
      cJSON_Delete(pair);
      break;
    }
    lc_effect_add_bytes(pair, "name", h.name, h.name_len);
    lc_effect_add_bytes(pair, "value", h.value, h.value_len);
  }
  size_t len;
  const char *body = lc_http_tool_body(&b->call, &len);
  if (lc_effect_add_bytes(o, "body", body, len)) {
    cJSON_Delete(o);
    return NULL;
  }
  return o;
}

/* [-0, +(1|3), m] Pushes a journaled result: the same table (or failure)
 * the live path pushes. res/err are borrowed; b holds scratch memory. */
static int push_recorded(lua_State *L, struct http_box *b, const cJSON *res, const cJSON *err) {
  if (err) {
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(err, "message");
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(err, "code");
    return push_fail(L, cJSON_IsString(m) ? m->valuestring : "request failed",
                     cJSON_IsString(c) ? c->valuestring : "network");
  }
  lua_createtable(L, 0, 4); /* res */
  const cJSON *st = cJSON_GetObjectItemCaseSensitive(res, "status");
  lua_pushinteger(L, cJSON_IsNumber(st) ? (lua_Integer)st->valuedouble : 0);
  lua_setfield(L, -2, "status");
  lua_newtable(L); /* res headers */
  const cJSON *hs = cJSON_GetObjectItemCaseSensitive(res, "headers");
  const char *ctype = NULL;
  for (const cJSON *p = cJSON_IsArray(hs) ? hs->child : NULL; p; p = p->next) {
    char *name = NULL, *value = NULL;
    size_t nl, vl;
    if (lc_effect_get_bytes(p, "name", &name, &nl) || lc_effect_get_bytes(p, "value", &value, &vl)) {
      lc_free(name);
      continue;
    }
    lua_pushlstring(L, name, nl);
    if (lua_rawget(L, -2) == LUA_TSTRING) { /* res headers old */
      lua_pushliteral(L, ", ");
      lua_pushlstring(L, value, vl);
      lua_concat(L, 3);
    } else {
      lua_pop(L, 1);
      lua_pushlstring(L, value, vl);
    }
    lua_pushlstring(L, name, nl);
    lua_insert(L, -2);
    lua_rawset(L, -3);
    lc_free(name);
    lc_free(value);
  }
  lua_getfield(L, -1, "content-type");
  ctype = lua_tostring(L, -1);
  int is_json = ctype && lc_http_tool_is_json(ctype);
  lua_pop(L, 1);
  lua_setfield(L, -2, "headers");
  char *body = NULL;
  size_t len = 0;
  if (lc_effect_get_bytes(res, "body", &body, &len) == LC_ENOMEM) return luaL_error(L, "out of memory");
  lua_pushlstring(L, body ? body : "", len);
  lua_setfield(L, -2, "body");
  if (len && is_json) {
    char e[128];
    b->json = lc_json_parse(body, len, e, sizeof e);
    if (b->json) {
      lc_free(body);
      body = NULL;
      lc_conv_push_json(L, b->json);
      lua_setfield(L, -2, "json");
    }
  }
  lc_free(body);
  return 1;
}

#define IDX_OPTS 1
#define IDX_BOX 2

/* Pushes the journaled result (its line durable now) and ends the call. */
static int push_journaled(lua_State *L, struct http_box *b) {
  int n = b->rec_is_err ? push_recorded(L, b, NULL, b->rec) : push_recorded(L, b, b->rec, NULL);
  box_close(b);
  return n;
}

static int result_k(lua_State *L, int status, lua_KContext ctx) {
  struct http_box *b = luaL_checkudata(L, IDX_BOX, HTTPCALL_MT);
  if (b->closed) return luaL_error(L, "luact.http.request: call was cancelled");
  if (!line_durable(L, b)) return lua_yieldk(L, 0, ctx, result_k);
  return push_journaled(L, b);
}

/* Continuation: the transfer ended (or the wake was for something else). */
static int request_k(lua_State *L, int status, lua_KContext ctx) {
  struct http_box *b = luaL_checkudata(L, IDX_BOX, HTTPCALL_MT);
  if (b->closed) return luaL_error(L, "luact.http.request: call was cancelled");
  if (!b->done) {
    lc_task_wait(b->task, &b->wait);
    return lua_yieldk(L, 0, ctx, request_k);
  }
  int n;
  if (b->journaled) {
    /* Written (and durable) before the result reaches Lua; then pushed
     * from what was written, so the replay returns exactly the same. */
    b->journaled = 0;
    cJSON *err;
    b->rec = result_json(b, &err);
    if (!b->rec && !err) return luaL_error(L, "out of memory");
    if (lc_effect_end(&b->eff, b->rec ? cJSON_Duplicate(b->rec, 1) : NULL,
                      err ? cJSON_Duplicate(err, 1) : NULL, NULL))
      return luaL_error(L, "%s", lc_journal_error(b->eff.j));
    if (err) {
      b->rec = err;
      b->rec_is_err = 1;
    }
    if (!line_durable(L, b)) return lua_yieldk(L, 0, ctx, result_k);
    return push_journaled(L, b);
  }
  const char *msg;
  int rc = lc_http_tool_result(&b->call, &msg);
  if (rc) {
    n = push_fail(L, msg, lc_http_tool_errcode(rc));
  } else {
    push_response(L, b);
    n = 1;
  }
  box_close(b);
  return n;
}

/* Starts the transfer of req (its strings on the stack above the box) and
 * yields until it ends. */
static int start_request(lua_State *L, struct http_box *b, const struct lc_http_tool_req *req) {
  char err[512];
  int rc = lc_http_tool_start(lc_sched_loop(lc_sched_get(L)), &b->call, req, on_done, b, err,
                              sizeof err);
  if (rc) return luaL_error(L, "luact.http: %s", err); /* method or key: misuse */
  /* http.c copied the headers; drop ours now rather than at the end. */
  for (size_t i = 0; i < b->n_hdrs; i++) lc_free(b->hdrs[i]);
  lc_free(b->hdrs);
  b->hdrs = NULL;
  b->n_hdrs = 0;
  lua_settop(L, IDX_BOX);
  lc_task_wait(b->task, &b->wait);
  return lua_yieldk(L, 0, 0, request_k);
}

/* [-0, +(1|3), e] The recorded answer. */
static int replayed(lua_State *L, struct http_box *b) {
  int n = push_recorded(L, b, lc_effect_result(&b->eff), lc_effect_error(&b->eff));
  box_close(b);
  return n;
}

/* Continuation: a replayed answer waiting for its turn. */
static int turn_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  struct http_box *b = luaL_checkudata(L, IDX_BOX, HTTPCALL_MT);
  if (b->closed) return luaL_error(L, "luact.http.request: call was cancelled");
  if (b->dfr.queued) { /* woken early: wait on */
    lc_task_wait(b->task, &b->wait);
    return lua_yieldk(L, 0, ctx, turn_k);
  }
  return replayed(L, b);
}

/* Continuation: waiting for the intent to be durable. */
static int start_k(lua_State *L, int status, lua_KContext ctx) {
  struct http_box *b = luaL_checkudata(L, IDX_BOX, HTTPCALL_MT);
  if (b->closed) return luaL_error(L, "luact.http.request: call was cancelled");
  if (!line_durable(L, b)) return lua_yieldk(L, 0, ctx, start_k);
  return start_request(L, b, &b->req);
}

/* [-0, +(1|3), e] request{...} with the options table at index 1 (and
 * nothing above it). Raises on misuse; nil, msg, code on failure. */
static int do_request(lua_State *L) {
  lc_l_check_opts(L, IDX_OPTS, "luact.http.request");
  struct lc_task *task = lc_task_check(L, "luact.http.request");
  /* The box exists before anything is allocated, so a raise while reading
   * the options frees what was built (it is to-be-closed). */
  struct http_box *b = lua_newuserdatauv(L, sizeof *b, 0); /* opts box */
  memset(b, 0, sizeof *b);
  lc_http_tool_init(&b->call);
  b->task = task;
  b->wait.cancel = box_cancel;
  luaL_setmetatable(L, HTTPCALL_MT);
  lua_toclose(L, IDX_BOX);

  struct lc_http_tool_req req = {0};
  if (lua_getfield(L, IDX_OPTS, "url") != LUA_TSTRING) /* opts box url */
    return luaL_error(L, "luact.http: 'url' must be a string");
  size_t ulen;
  req.url = lua_tolstring(L, -1, &ulen);
  char method[40];
  if (lua_getfield(L, IDX_OPTS, "method") != LUA_TNIL) { /* ... method */
    size_t ml;
    const char *m = lua_tolstring(L, -1, &ml);
    if (!m || ml == 0 || ml >= sizeof method)
      return luaL_error(L, "luact.http: 'method' must be a short string such as \"GET\"");
    for (size_t i = 0; i <= ml; i++)
      method[i] = (char)(m[i] >= 'a' && m[i] <= 'z' ? m[i] - 32 : m[i]);
    req.method = method;
  }
  read_headers(L, IDX_OPTS, b);
  req.headers = (const char *const *)b->hdrs;
  req.n_headers = b->n_hdrs;
  int is_json;
  req.body = read_body(L, IDX_OPTS, b, &req.body_len, &is_json); /* ... body */
  if (is_json) req.content_type = "application/json";
  req.timeout_ms = opt_seconds(L, IDX_OPTS, "timeout");
  req.connect_timeout_ms = opt_seconds(L, IDX_OPTS, "connect_timeout");
  if (lua_getfield(L, IDX_OPTS, "max_body") != LUA_TNIL) { /* ... max_body */
    int ok;
    lua_Integer mb = lua_tointegerx(L, -1, &ok);
    if (!ok || mb <= 0) return luaL_error(L, "luact.http: 'max_body' must be a positive integer");
    req.max_body = (size_t)mb;
  }
  int t = lua_getfield(L, IDX_OPTS, "idempotency_key"); /* ... key */
  if (t == LUA_TSTRING || t == LUA_TNUMBER) {
    lua_pushvalue(L, -1); /* convert a copy; the field may be a number */
    req.idempotency_key = lua_tostring(L, -1);
  } else if (t != LUA_TNIL) {
    return luaL_error(L, "luact.http: 'idempotency_key' must be a string");
  }
  const char *under = NULL;
  t = lua_getfield(L, IDX_OPTS, "under"); /* ... under */
  if (t == LUA_TSTRING) under = lua_tostring(L, -1);
  else if (t != LUA_TNIL) return luaL_error(L, "luact.http: 'under' must be a base URL string");
  if (memchr(req.url, 0, ulen)) return push_fail(L, "URL contains a NUL byte", "bad_url");

  char err[512];
  int rc = lc_http_tool_check_url(req.url, err, sizeof err);
  /* under: the URL as curl will send it must stay below this base, however
   * it was built (the http tool passes its base_url). */
  if (!rc && under) rc = lc_http_tool_check_under(req.url, under, err, sizeof err);
  if (rc == LC_EINVAL) return push_fail(L, err, "bad_url");
  /* The check parses with libcurl: without it, that is no memory error. */
  if (rc && !lc_curl_usable())
    return push_fail(L, "libcurl could not be loaded (the reason is on stderr)", "network");
  if (rc) return luaL_error(L, "out of memory");
  struct lc_journal *j = lc_l_journal(L);
  if (j && lc_journal_mode(j) != LC_JOURNAL_OFF) {
    /* The class follows HTTP semantics: safe methods can run again, a
     * request with a key runs again with it, anything else at most once. */
    const char *m = req.method ? req.method : req.body ? "POST" : "GET";
    enum lc_effect cls = req.idempotency_key ? LC_EFFECT_IDEMPOTENT
                         : (!strcmp(m, "GET") || !strcmp(m, "HEAD") || !strcmp(m, "OPTIONS"))
                             ? LC_EFFECT_PURE
                             : LC_EFFECT_AT_MOST_ONCE;
    b->rec = request_json(&req);
    if (!b->rec) return luaL_error(L, "out of memory");
    struct lc_effect_who w = {task, lc_task_path(task), lc_task_next_seq(task)};
    struct lc_effect_desc d = {.kind = "http", .name = m, .request = b->rec, .cls = cls,
                               .waits = 1};
    int erc = lc_effect_begin(j, &w, &d, &b->eff);
    cJSON_Delete(b->rec);
    b->rec = NULL;
    if (erc < 0) return luaL_error(L, "%s", lc_journal_error(j));
    if (erc == LC_EFFECT_REPLAYED) {
      if (lua_isyieldable(L)) { /* in its turn; else at once */
        b->dfr.fire = on_turn;
        lc_journal_defer(j, &b->eff, &b->dfr);
        lc_task_wait(task, &b->wait);
        return lua_yieldk(L, 0, 0, turn_k);
      }
      return replayed(L, b);
    }
    b->journaled = b->eff.recording;
    if (b->eff.ticket) { /* the intent must be durable before it runs */
      b->req = req;
      if (req.method) {
        memcpy(b->method, method, sizeof method);
        b->req.method = b->method;
      }
      if (!line_durable(L, b)) return lua_yieldk(L, 0, 0, start_k);
    }
  }
  return start_request(L, b, &req);
}

/* request{method=, url=, headers=, body=, timeout=, connect_timeout=,
 * max_body=, idempotency_key=, under=} -> {status=, headers=, body=,
 * json=} or nil, msg, code */
static int l_request(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  return do_request(L);
}

/* [-0, +1, m] A shallow copy of the options table at idx (or a new one),
 * so the shorthands never write into the caller's table. */
static void copy_opts(lua_State *L, int idx) {
  lua_newtable(L);
  if (lua_isnoneornil(L, idx)) return;
  luaL_checktype(L, idx, LUA_TTABLE);
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    lua_pushvalue(L, -2);
    lua_insert(L, -2);
    lua_rawset(L, -4);
  }
}

/* get(url [, opts]) */
static int l_get(lua_State *L) {
  luaL_checkstring(L, 1);
  lua_settop(L, 2);
  copy_opts(L, 2); /* url opts t */
  lua_pushvalue(L, 1);
  lua_setfield(L, -2, "url");
  if (lua_getfield(L, -1, "method") == LUA_TNIL) {
    lua_pushliteral(L, "GET");
    lua_setfield(L, -3, "method");
  }
  lua_pop(L, 1);
  lua_replace(L, 1);
  lua_settop(L, 1);
  return do_request(L);
}

/* post(url, body [, opts]) */
static int l_post(lua_State *L) {
  luaL_checkstring(L, 1);
  lua_settop(L, 3);
  copy_opts(L, 3); /* url body opts t */
  lua_pushvalue(L, 1);
  lua_setfield(L, -2, "url");
  lua_pushvalue(L, 2);
  lua_setfield(L, -2, "body");
  if (lua_getfield(L, -1, "method") == LUA_TNIL) {
    lua_pushliteral(L, "POST");
    lua_setfield(L, -3, "method");
  }
  lua_pop(L, 1);
  lua_replace(L, 1);
  lua_settop(L, 1);
  return do_request(L);
}

/* check_path(base, path) -> true, or nil, message, "bad_url": whether a
 * model's path, appended to base, stays under it (http_tool.h). */
static int l_check_path(lua_State *L) {
  const char *base = luaL_checkstring(L, 1);
  size_t n;
  const char *path = luaL_checklstring(L, 2, &n);
  char err[512];
  int rc = lc_http_tool_check_path(base, path, n, err, sizeof err);
  if (rc == LC_ENOMEM) return luaL_error(L, "out of memory");
  if (rc) return push_fail(L, err, "bad_url");
  lua_pushboolean(L, 1);
  return 1;
}

static const luaL_Reg http_funcs[] = {{"request", l_request}, {"get", l_get},
                                      {"post", l_post},       {"check_path", l_check_path},
                                      {NULL, NULL}};

static const luaL_Reg box_meta[] = {{"__gc", box_gc}, {"__close", box_gc}, {NULL, NULL}};

int lc_open_http(lua_State *L) {
  if (luaL_newmetatable(L, HTTPCALL_MT)) luaL_setfuncs(L, box_meta, 0);
  lua_pop(L, 1);
  luaL_newlib(L, http_funcs);
  return 1;
}
