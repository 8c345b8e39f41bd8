/* l_llm.c: luact.llm: chat{...} as a waiting binding over llm_call.c.
 *
 * The call lives in a "luact.LlmCall" userdata kept in the binding's own
 * stack frame (marked to-be-closed), so an error, a kill or a normal return
 * all end it through one idempotent close. Streamed deltas are queued by
 * the C callback and handed to the Lua callback from the continuation,
 * never from inside libcurl. */
#include <lauxlib.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "conv.h"
#include "governor.h"
#include "l_chat.h"
#include "l_effect.h"
#include "l_embed.h"
#include "l_rerank.h"
#include "rerank.h"
#include "l_luact.h"
#include "l_opts.h"
#include "l_state.h"
#include "l_status.h"
#include "lc.h"
#include "llm.h"
#include "llm_call.h"
#include "sched.h"

#define LLMCALL_MT "luact.LlmCall"

struct qdelta {
  struct qdelta *next;
  enum lc_llm_delta_kind kind;
  int index;
  char *id, *name, *text;
  size_t len;
};

struct llm_box {
  struct lc_llm_request *req; /* until handed to the call */
  struct lc_llm_call *call;
  struct lc_task *task;
  struct lc_wait wait;
  struct lc_l_intr intr; /* Ctrl-C in luact chat stops the call */
  struct qdelta *qhead, *qtail;
  int done;
  int closed;
  int oom; /* a delta could not be queued */
};

static void free_queue(struct llm_box *b) {
  while (b->qhead) {
    struct qdelta *d = b->qhead;
    b->qhead = d->next;
    lc_free(d->id);
    lc_free(d->name);
    lc_free(d->text);
    lc_free(d);
  }
  b->qtail = NULL;
}

/* The one close: __gc, __close, kill (wait.cancel) and the normal end. */
static void box_close(struct llm_box *b) {
  if (b->closed) return;
  b->closed = 1;
  lc_l_intr_unlink(&b->intr);
  lc_llm_call_free(b->call);
  b->call = NULL;
  if (b->req) {
    lc_llm_request_delete(b->req);
    b->req = NULL;
  }
  free_queue(b);
}

static int box_gc(lua_State *L) {
  box_close(luaL_checkudata(L, 1, LLMCALL_MT));
  return 0;
}

static void box_cancel(struct lc_wait *w) {
  struct llm_box *b = (struct llm_box *)((char *)w - offsetof(struct llm_box, wait));
  box_close(b);
}

/* Called from the transfer's write callback: copy and queue only. */
static void on_delta(void *ud, const struct lc_llm_delta *d) {
  struct llm_box *b = ud;
  if (b->oom) return; /* the callback never sees a stream with a hole */
  struct qdelta *q = lc_calloc(1, sizeof *q);
  if (!q) {
    b->oom = 1;
    return;
  }
  q->kind = d->kind;
  q->index = d->index;
  if (d->id) q->id = lc_strdup(d->id);
  if (d->name) q->name = lc_strdup(d->name);
  if (d->text) {
    q->text = lc_strndup(d->text, d->len);
    q->len = d->len;
  }
  if ((d->id && !q->id) || (d->name && !q->name) || (d->text && !q->text)) {
    lc_free(q->id);
    lc_free(q->name);
    lc_free(q->text);
    lc_free(q);
    b->oom = 1;
    return;
  }
  if (b->qtail) b->qtail->next = q;
  else b->qhead = q;
  b->qtail = q;
  lc_task_wake(b->task, &b->wait);
}

/* l_chat.c, on Ctrl-C: the call ends with "cancelled" (journaled). */
static int box_interrupt(struct lc_l_intr *i) {
  struct llm_box *b = (struct llm_box *)((char *)i - offsetof(struct llm_box, intr));
  return lc_llm_call_interrupt(b->call, "interrupted (Ctrl-C)");
}

static void on_done(struct lc_llm_call *c, void *ud) {
  struct llm_box *b = ud;
  lc_l_intr_unlink(&b->intr);
  b->done = 1;
  lc_task_wake(b->task, &b->wait);
}

/* ---- Lua table -> request (raises on misuse, with the field's path) ---- */

static char *opt_strdup(lua_State *L, int idx, const char *field, int required) {
  int t = lua_getfield(L, idx, field);
  char *r = NULL;
  if (t == LUA_TSTRING || t == LUA_TNUMBER) {
    size_t n;
    const char *s = lua_tolstring(L, -1, &n);
    r = lc_strndup(s, n);
    if (!r) luaL_error(L, "out of memory");
  } else if (t != LUA_TNIL || required) {
    luaL_error(L, "luact.llm: '%s' must be a string (got %s)", field, luaL_typename(L, -1));
  }
  lua_pop(L, 1);
  return r;
}

/* Value at top -> JSON text (tables encoded, strings as they are). Tables
 * are encoded straight to text (lc_conv_to_text): no cJSON tree. */
static char *value_text(lua_State *L, const char *what, size_t *len) {
  if (lua_type(L, -1) == LUA_TSTRING) {
    const char *s = lua_tolstring(L, -1, len);
    char *r = lc_strndup(s, *len);
    if (!r) luaL_error(L, "out of memory");
    return r;
  }
  struct lc_buf b;
  lc_buf_init(&b, 0);
  char err[256];
  int rc = lc_conv_to_text(L, -1, &b, err, sizeof err);
  char *r = rc ? NULL : lc_buf_steal(&b, len);
  lc_buf_free(&b);
  if (rc == LC_EINVAL) luaL_error(L, "luact.llm: %s: %s", what, err);
  if (!r) luaL_error(L, "out of memory");
  return r;
}

static enum lc_llm_role parse_role(lua_State *L, const char *r, int i) {
  if (strcmp(r, "system") == 0) return LC_ROLE_SYSTEM;
  if (strcmp(r, "user") == 0) return LC_ROLE_USER;
  if (strcmp(r, "assistant") == 0) return LC_ROLE_ASSISTANT;
  if (strcmp(r, "tool") == 0) return LC_ROLE_TOOL;
  luaL_error(L, "luact.llm: messages[%d].role must be system, user, assistant or tool (got '%s')",
             i, r);
  return LC_ROLE_USER;
}

static void parse_tool_calls(lua_State *L, int idx, struct lc_llm_msg *m, int mi) {
  if (lua_getfield(L, idx, "tool_calls") == LUA_TNIL) {
    lua_pop(L, 1);
    return;
  }
  if (!lua_istable(L, -1)) luaL_error(L, "luact.llm: messages[%d].tool_calls must be a list", mi);
  int tc = lua_gettop(L);
  size_t n = lua_rawlen(L, tc);
  if (n) {
    m->tool_calls = lc_calloc(n, sizeof *m->tool_calls);
    if (!m->tool_calls) luaL_error(L, "out of memory");
  }
  for (size_t k = 1; k <= n; k++) {
    lua_rawgeti(L, tc, (lua_Integer)k);
    if (!lua_istable(L, -1))
      luaL_error(L, "luact.llm: messages[%d].tool_calls[%d] must be a table", mi, (int)k);
    int ci = lua_gettop(L);
    struct lc_llm_tool_call *c = &m->tool_calls[m->n_tool_calls++];
    c->id = opt_strdup(L, ci, "id", 0);
    c->name = opt_strdup(L, ci, "name", 1);
    c->signature = opt_strdup(L, ci, "signature", 0);
    lua_getfield(L, ci, "arguments");
    if (lua_isnil(L, -1)) {
      c->args_json = lc_strdup("{}");
    } else {
      size_t len;
      c->args_json = value_text(L, "tool call arguments", &len);
    }
    lua_pop(L, 2);
    /* c->args stays NULL: the adapters that need an object parse args_json
     * (lc_accum_args_object) and OpenAI sends the text, so parsing here
     * would be work thrown away on the common path. */
  }
  lua_pop(L, 1);
}

/* One image given in Lua: "path", "https://...", "data:...;base64,...",
 * or a table {path=} / {url=} / {data=<bytes>, media_type=}, each with an
 * optional detail= ("low", "high", "auto"). A refused image raises: it is
 * the script's mistake, not the provider's. */
static void parse_image(lua_State *L, int idx, struct lc_llm_part *p, const char *where) {
  char err[256];
  int rc;
  const char *detail = NULL;
  if (lua_type(L, idx) == LUA_TSTRING) {
    const char *s = lua_tostring(L, idx);
    if (strncmp(s, "https://", 8) == 0 || strncmp(s, "http://", 7) == 0 ||
        strncmp(s, "data:", 5) == 0)
      rc = lc_llm_part_image_url(p, s, err, sizeof err);
    else
      rc = lc_llm_part_image_file(p, s, err, sizeof err);
  } else if (lua_istable(L, idx)) {
    int has_path = lua_getfield(L, idx, "path") == LUA_TSTRING;
    int has_url = lua_getfield(L, idx, "url") == LUA_TSTRING;
    int has_data = lua_getfield(L, idx, "data") == LUA_TSTRING;
    lua_getfield(L, idx, "media_type");
    lua_getfield(L, idx, "detail");
    detail = lua_tostring(L, -1);
    if (has_path + has_url + has_data != 1)
      luaL_error(L, "luact.llm: %s: give exactly one of path, url or data", where);
    if (has_path) {
      rc = lc_llm_part_image_file(p, lua_tostring(L, -5), err, sizeof err);
    } else if (has_url) {
      rc = lc_llm_part_image_url(p, lua_tostring(L, -4), err, sizeof err);
    } else {
      size_t n;
      const char *d = lua_tolstring(L, -3, &n);
      rc = lc_llm_part_image_bytes(p, d, n, lua_tostring(L, -2), err, sizeof err);
    }
    if (!rc && detail) {
      if (strcmp(detail, "low") && strcmp(detail, "high") && strcmp(detail, "auto"))
        luaL_error(L, "luact.llm: %s: detail must be \"low\", \"high\" or \"auto\"", where);
      snprintf(p->detail, sizeof p->detail, "%s", detail);
    }
    lua_pop(L, 5);
  } else {
    luaL_error(L, "luact.llm: %s must be a path, a URL or a table", where);
    return;
  }
  if (rc == LC_ENOMEM) luaL_error(L, "out of memory");
  if (rc) luaL_error(L, "luact.llm: %s: %s", where, err);
}

/* images = {...} of a message (or of the options, for prompt=) at idx. */
static void parse_images(lua_State *L, int idx, struct lc_llm_msg *m, const char *who) {
  int t = lua_getfield(L, idx, "images");
  if (t == LUA_TNIL) {
    lua_pop(L, 1);
    return;
  }
  if (t != LUA_TTABLE) luaL_error(L, "luact.llm: %s.images must be a list", who);
  int list = lua_gettop(L);
  size_t n = lua_rawlen(L, list);
  if (n) {
    m->parts = lc_calloc(n, sizeof *m->parts);
    if (!m->parts) luaL_error(L, "out of memory");
  }
  for (size_t k = 1; k <= n; k++) {
    char where[96];
    snprintf(where, sizeof where, "%s.images[%d]", who, (int)k);
    lua_rawgeti(L, list, (lua_Integer)k);
    /* Counted before parsing: a raise leaves a zeroed part to free. */
    struct lc_llm_part *p = &m->parts[m->n_parts++];
    parse_image(L, lua_gettop(L), p, where);
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
}

static void parse_messages(lua_State *L, int opts, struct lc_llm_request *r) {
  /* system= and prompt= are shorthands for the common two-message call. */
  int has_sys = lua_getfield(L, opts, "system") != LUA_TNIL;
  int has_prompt = lua_getfield(L, opts, "prompt") != LUA_TNIL;
  lua_pop(L, 2);
  int t = lua_getfield(L, opts, "messages");
  if (t != LUA_TNIL && t != LUA_TTABLE) luaL_error(L, "luact.llm: 'messages' must be a list");
  size_t n = t == LUA_TTABLE ? lua_rawlen(L, -1) : 0;
  size_t total = n + (size_t)has_sys + (size_t)has_prompt;
  if (total == 0) luaL_error(L, "luact.llm: give 'messages' (or 'prompt')");
  r->msgs = lc_calloc(total, sizeof *r->msgs);
  if (!r->msgs) luaL_error(L, "out of memory");
  int list = lua_gettop(L);
  if (has_sys) {
    struct lc_llm_msg *m = &r->msgs[r->n_msgs++];
    m->role = LC_ROLE_SYSTEM;
    m->content = opt_strdup(L, opts, "system", 1);
    m->content_len = strlen(m->content);
  }
  for (size_t i = 1; i <= n; i++) {
    lua_rawgeti(L, list, (lua_Integer)i);
    if (!lua_istable(L, -1)) luaL_error(L, "luact.llm: messages[%d] must be a table", (int)i);
    int mi = lua_gettop(L);
    struct lc_llm_msg *m = &r->msgs[r->n_msgs++];
    if (lua_getfield(L, mi, "role") != LUA_TSTRING)
      luaL_error(L, "luact.llm: messages[%d].role is missing", (int)i);
    m->role = parse_role(L, lua_tostring(L, -1), (int)i);
    lua_pop(L, 1);
    if (lua_getfield(L, mi, "content") != LUA_TNIL) {
      m->content = value_text(L, "message content", &m->content_len);
    } else if (m->role != LC_ROLE_ASSISTANT) {
      luaL_error(L, "luact.llm: messages[%d].content is missing", (int)i);
    }
    lua_pop(L, 1);
    if (m->role == LC_ROLE_ASSISTANT) {
      parse_tool_calls(L, mi, m, (int)i);
      /* What the provider returned with this turn (result.reasoning_state),
       * passed back unchanged. */
      m->reasoning_state = opt_strdup(L, mi, "reasoning_state", 0);
      m->reasoning_prov = (signed char)r->provider;
    } else {
      char who[48];
      snprintf(who, sizeof who, "messages[%d]", (int)i);
      parse_images(L, mi, m, who);
    }
    if (m->role == LC_ROLE_TOOL) {
      m->tool_call_id = opt_strdup(L, mi, "tool_call_id", 0);
      m->name = opt_strdup(L, mi, "name", 0);
      lua_getfield(L, mi, "is_error");
      m->is_error = lua_toboolean(L, -1);
      lua_pop(L, 1);
    }
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  if (has_prompt) {
    struct lc_llm_msg *m = &r->msgs[r->n_msgs++];
    m->role = LC_ROLE_USER;
    m->content = opt_strdup(L, opts, "prompt", 1);
    m->content_len = strlen(m->content);
    parse_images(L, opts, m, "options");
  }
}

static void parse_tools(lua_State *L, int opts, struct lc_llm_request *r) {
  int t = lua_getfield(L, opts, "tools");
  if (t == LUA_TNIL) {
    lua_pop(L, 1);
    return;
  }
  if (t != LUA_TTABLE) luaL_error(L, "luact.llm: 'tools' must be a list");
  int list = lua_gettop(L);
  size_t n = lua_rawlen(L, list);
  if (n) {
    r->tools = lc_calloc(n, sizeof *r->tools);
    if (!r->tools) luaL_error(L, "out of memory");
  }
  for (size_t i = 1; i <= n; i++) {
    lua_rawgeti(L, list, (lua_Integer)i);
    if (!lua_istable(L, -1)) luaL_error(L, "luact.llm: tools[%d] must be a table", (int)i);
    int ti = lua_gettop(L);
    struct lc_llm_tool *tool = &r->tools[r->n_tools++];
    tool->name = opt_strdup(L, ti, "name", 1);
    tool->description = opt_strdup(L, ti, "description", 0);
    if (lua_getfield(L, ti, "parameters") == LUA_TNIL) {
      lua_pop(L, 1);
      lua_getfield(L, ti, "params");
    }
    /* Encoded straight to text, which the adapters send as it is. */
    if (lua_isnil(L, -1)) {
      tool->schema_json = lc_strdup("{\"type\":\"object\",\"properties\":{}}");
    } else {
      struct lc_buf sb;
      lc_buf_init(&sb, 0);
      char err[256];
      int rc = lc_conv_to_text(L, -1, &sb, err, sizeof err);
      if (!rc) tool->schema_json = lc_buf_steal(&sb, NULL);
      lc_buf_free(&sb);
      if (rc == LC_EINVAL) luaL_error(L, "luact.llm: tools[%d].parameters: %s", (int)i, err);
    }
    if (!tool->schema_json) luaL_error(L, "out of memory");
    lua_pop(L, 1);
    lua_getfield(L, ti, "strict");
    tool->strict = lua_toboolean(L, -1);
    lua_pop(L, 2);
  }
  lua_pop(L, 1);
}

static void parse_sampling(lua_State *L, int opts, struct lc_llm_request *r) {
  if (lua_getfield(L, opts, "temperature") != LUA_TNIL) {
    r->temperature = luaL_checknumber(L, -1);
    r->set |= LC_SET_TEMPERATURE;
  }
  if (lua_getfield(L, opts, "top_p") != LUA_TNIL) {
    r->top_p = luaL_checknumber(L, -1);
    r->set |= LC_SET_TOP_P;
  }
  if (lua_getfield(L, opts, "top_k") != LUA_TNIL) {
    r->top_k = (int)lc_lua_checklong(L, (double)luaL_checkinteger(L, -1), 0, INT_MAX,
                                     "luact.llm: 'top_k'");
    r->set |= LC_SET_TOP_K;
  }
  if (lua_getfield(L, opts, "max_tokens") != LUA_TNIL) {
    r->max_tokens = (int)lc_lua_checklong(L, (double)luaL_checkinteger(L, -1), 0, INT_MAX,
                                          "luact.llm: 'max_tokens'");
    r->set |= LC_SET_MAX_TOKENS;
  }
  if (lua_getfield(L, opts, "seed") != LUA_TNIL) {
    r->seed = (long long)luaL_checkinteger(L, -1);
    r->set |= LC_SET_SEED;
  }
  lua_pop(L, 5);
  int t = lua_getfield(L, opts, "stop");
  if (t == LUA_TSTRING) {
    r->stop = lc_calloc(1, sizeof *r->stop);
    if (!r->stop || !(r->stop[0] = lc_strdup(lua_tostring(L, -1)))) luaL_error(L, "out of memory");
    r->n_stop = 1;
  } else if (t == LUA_TTABLE) {
    size_t n = lua_rawlen(L, -1);
    if (n) {
      r->stop = lc_calloc(n, sizeof *r->stop);
      if (!r->stop) luaL_error(L, "out of memory");
    }
    for (size_t i = 1; i <= n; i++) {
      if (lua_rawgeti(L, -1, (lua_Integer)i) != LUA_TSTRING)
        luaL_error(L, "luact.llm: stop[%d] must be a string", (int)i);
      if (!(r->stop[r->n_stop++] = lc_strdup(lua_tostring(L, -1)))) luaL_error(L, "out of memory");
      lua_pop(L, 1);
    }
  } else if (t != LUA_TNIL) {
    luaL_error(L, "luact.llm: 'stop' must be a string or a list of strings");
  }
  lua_pop(L, 1);
}

static void parse_choice_and_format(lua_State *L, int opts, struct lc_llm_request *r) {
  int t = lua_getfield(L, opts, "tool_choice");
  if (t == LUA_TSTRING) {
    const char *c = lua_tostring(L, -1);
    if (strcmp(c, "auto") == 0) r->tool_choice = LC_TOOL_CHOICE_AUTO;
    else if (strcmp(c, "none") == 0) r->tool_choice = LC_TOOL_CHOICE_NONE;
    else if (strcmp(c, "required") == 0 || strcmp(c, "any") == 0)
      r->tool_choice = LC_TOOL_CHOICE_REQUIRED;
    else {
      r->tool_choice = LC_TOOL_CHOICE_NAMED;
      if (!(r->tool_choice_name = lc_strdup(c))) luaL_error(L, "out of memory");
    }
  } else if (t == LUA_TTABLE) {
    r->tool_choice = LC_TOOL_CHOICE_NAMED;
    r->tool_choice_name = opt_strdup(L, lua_gettop(L), "name", 1);
  } else if (t != LUA_TNIL) {
    luaL_error(L, "luact.llm: 'tool_choice' must be \"auto\", \"none\", \"required\" or a tool name");
  }
  lua_pop(L, 1);
  t = lua_getfield(L, opts, "response_format");
  if (t == LUA_TSTRING) {
    const char *f = lua_tostring(L, -1);
    if (strcmp(f, "json") == 0) r->format = LC_FORMAT_JSON;
    else if (strcmp(f, "text") == 0) r->format = LC_FORMAT_TEXT;
    else luaL_error(L, "luact.llm: response_format must be \"text\", \"json\" or {schema=...}");
  } else if (t == LUA_TTABLE) {
    int fi = lua_gettop(L);
    r->format = LC_FORMAT_JSON_SCHEMA;
    r->response_schema_name = opt_strdup(L, fi, "name", 0);
    if (lua_getfield(L, fi, "schema") != LUA_TTABLE)
      luaL_error(L, "luact.llm: response_format.schema must be a table (a JSON schema)");
    char err[256];
    if (lc_conv_to_json(L, -1, &r->response_schema, err, sizeof err))
      luaL_error(L, "luact.llm: response_format.schema: %s", err);
    lua_pop(L, 1);
  } else if (t != LUA_TNIL) {
    luaL_error(L, "luact.llm: response_format must be \"text\", \"json\" or {schema=...}");
  }
  lua_pop(L, 1);
}

static double opt_seconds(lua_State *L, int opts, const char *f, double dflt_ms) {
  double v = dflt_ms;
  if (lua_getfield(L, opts, f) != LUA_TNIL) {
    /* Becomes a long for curl: range-checked first (NaN, inf, 1e300). */
    char what[64];
    snprintf(what, sizeof what, "luact.llm: '%s' (ms)", f);
    v = (double)lc_lua_checklong(L, luaL_checknumber(L, -1) * 1000.0, 0, 1000000000000L, what);
  }
  lua_pop(L, 1);
  return v;
}

void lc_l_parse_llm_opts(lua_State *L, int opts, struct lc_llm_opts *o) {
  lc_llm_opts_default(o);
  o->request_timeout_ms = opt_seconds(L, opts, "timeout", o->request_timeout_ms);
  o->connect_timeout_ms = opt_seconds(L, opts, "connect_timeout", o->connect_timeout_ms);
  o->idle_timeout_ms = opt_seconds(L, opts, "idle_timeout", o->idle_timeout_ms);
  o->retry.base_delay_ms = opt_seconds(L, opts, "retry_base", o->retry.base_delay_ms);
  o->retry.max_delay_ms = opt_seconds(L, opts, "retry_max_delay", o->retry.max_delay_ms);
  o->retry.max_retry_after_ms = opt_seconds(L, opts, "max_retry_after", o->retry.max_retry_after_ms);
  o->retry.total_ms = opt_seconds(L, opts, "retry_budget", o->retry.total_ms);
  if (lua_getfield(L, opts, "retries") != LUA_TNIL) {
    lua_Integer n = luaL_checkinteger(L, -1);
    if (n < 0 || n > 100) luaL_error(L, "luact.llm: 'retries' must be 0..100");
    o->retry.max_attempts = (int)n + 1;
  }
  if (lua_getfield(L, opts, "max_response_bytes") != LUA_TNIL) /* not negative */
    o->max_response_bytes = lc_lua_checksize(L, (double)luaL_checkinteger(L, -1), 0, SIZE_MAX,
                                             "luact.llm: 'max_response_bytes'");
  lua_pop(L, 2);
}

/* [-0, +0, e] The options every LLM-calling binding shares (luact.llm.chat,
 * luact.react): model, base_url, api_key, sampling and stop into r (which
 * owns what is parsed, also when this raises); timeouts and retries into o.
 * who names the caller in the model error. */
void lc_l_parse_llm_common(lua_State *L, int opts, const char *who,
                           struct lc_llm_request *r, struct lc_llm_opts *o) {
  lua_getfield(L, opts, "model");
  if (!lua_isstring(L, -1))
    luaL_error(L, "%s: 'model' is required, as \"provider:model\" (e.g. \"openai:gpt-4o-mini\")", who);
  const char *spec = lua_tostring(L, -1);
  int prc = lc_llm_parse_model(spec, &r->provider, &r->model);
  if (prc == LC_ENOMEM) luaL_error(L, "%s: out of memory", who);
  if (prc)
    luaL_error(L, "%s: bad model '%s': use provider:model with provider openai, "
                  "openai-responses, anthropic, ollama, gemini or bedrock", who, spec);
  lua_pop(L, 1);
  r->base_url = opt_strdup(L, opts, "base_url", 0);
  r->api_key = opt_strdup(L, opts, "api_key", 0);
  parse_sampling(L, opts, r);
  r->reasoning_effort = opt_strdup(L, opts, "reasoning_effort", 0);
  r->reasoning_summary = opt_strdup(L, opts, "reasoning_summary", 0);
  r->cache_key = opt_strdup(L, opts, "cache_key", 0);
  r->previous_response_id = opt_strdup(L, opts, "previous_response_id", 0);
  if (lua_getfield(L, opts, "thinking_budget") != LUA_TNIL) {
    lua_Integer b = luaL_checkinteger(L, -1);
    if (b < 0 || b > 1000000) luaL_error(L, "%s: 'thinking_budget' must be 0..1000000", who);
    r->thinking_budget = (int)b;
  }
  lua_getfield(L, opts, "cache_control");
  r->cache_control = lua_toboolean(L, -1);
  lua_getfield(L, opts, "store");
  r->store = lua_toboolean(L, -1);
  lua_pop(L, 3);
  lc_l_parse_llm_opts(L, opts, o);
}

/* [-0, +0, e] Fills the rest of b->req (after lc_l_parse_llm_common) from
 * the options table at idx. */
static void parse_request(lua_State *L, int opts, struct llm_box *b) {
  struct lc_llm_request *r = b->req;
  parse_messages(L, opts, r);
  parse_tools(L, opts, r);
  parse_choice_and_format(L, opts, r);
  int t = lua_getfield(L, opts, "stream");
  r->stream = t == LUA_TFUNCTION || lua_toboolean(L, -1);
  lua_pop(L, 1);
}

/* ---- response -> Lua ---- */

void lc_l_push_tool_call(lua_State *L, const struct lc_llm_tool_call *c) {
  lua_createtable(L, 0, 4);
  lc_l_set_str(L, "id", c->id);
  lc_l_set_str(L, "name", c->name);
  lc_l_set_str(L, "arguments_json", c->args_json);
  lc_l_set_str(L, "signature", c->signature);
  if (c->args) {
    lc_conv_push_json(L, c->args);
    lua_setfield(L, -2, "arguments");
  }
}

/* [-0, +1, m] */
void lc_l_push_response(lua_State *L, const struct lc_llm_response *r) {
  lua_createtable(L, 0, 12);
  if (r->text) {
    lua_pushlstring(L, r->text, r->text_len);
    lua_setfield(L, -2, "text");
  }
  lc_l_set_str(L, "reasoning", r->reasoning);
  lc_l_set_str(L, "reasoning_state", r->reasoning_state);
  lua_createtable(L, (int)r->n_tool_calls, 0);
  for (size_t i = 0; i < r->n_tool_calls; i++) {
    lc_l_push_tool_call(L, &r->tool_calls[i]);
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
  lc_conv_push_array_mt(L);
  lua_setmetatable(L, -2);
  lua_setfield(L, -2, "tool_calls");
  lc_l_set_str(L, "finish_reason", lc_llm_finish_name(r->finish));
  lc_l_set_str(L, "finish_raw", r->finish_raw);
  lua_createtable(L, 0, 6);
  lc_l_set_int(L, "input", r->usage.input);
  lc_l_set_int(L, "output", r->usage.output);
  lc_l_set_int(L, "cached", r->usage.cached);
  lc_l_set_int(L, "cache_write", r->usage.cache_write);
  lc_l_set_int(L, "reasoning", r->usage.reasoning);
  if (r->usage.has_cost) lc_l_set_num(L, "cost", r->usage.cost);
  lua_setfield(L, -2, "usage");
  lc_l_set_str(L, "model", r->model);
  lc_l_set_str(L, "id", r->id);
  lc_l_set_str(L, "request_id", r->request_id);
  lc_l_set_num(L, "latency_ms", r->latency_ms);
  lc_l_set_int(L, "attempts", r->attempts);
  lc_l_set_int(L, "http_status", r->http_status);
}

/* [-0, +4, m] nil, message, code, details */
int lc_l_push_llm_error(lua_State *L, const struct lc_llm_response *r) {
  lua_pushnil(L);
  lua_pushstring(L, r->err_message ? r->err_message : lc_llm_err_name(r->err));
  lua_pushstring(L, lc_llm_err_name(r->err));
  lua_createtable(L, 0, 5);
  lc_l_set_int(L, "http_status", r->http_status);
  lc_l_set_int(L, "attempts", r->attempts);
  lc_l_set_str(L, "type", r->err_type);
  lc_l_set_str(L, "request_id", r->request_id);
  if (r->retry_after_s >= 0) lc_l_set_num(L, "retry_after", r->retry_after_s);
  return 4;
}

static void push_delta(lua_State *L, const struct qdelta *d) {
  static const char *const kinds[] = {"text", "reasoning", "tool_call", "tool_arguments"};
  lua_createtable(L, 0, 5);
  lc_l_set_str(L, "type", kinds[d->kind]);
  lc_l_set_int(L, "index", d->index);
  lc_l_set_str(L, "id", d->id);
  lc_l_set_str(L, "name", d->name);
  if (d->text) {
    lua_pushlstring(L, d->text, d->len);
    lua_setfield(L, -2, "text");
  }
}

#define IDX_OPTS 1
#define IDX_BOX 2
#define IDX_CB 3

/* Continuation: deliver queued deltas, wait more, or return the result. */
static int chat_k(lua_State *L, int status, lua_KContext ctx) {
  struct llm_box *b = luaL_checkudata(L, IDX_BOX, LLMCALL_MT);
  for (;;) {
    if (b->closed) return luaL_error(L, "luact.llm.chat: call was cancelled");
    struct qdelta *d = b->qhead;
    if (d && lua_isfunction(L, IDX_CB)) {
      /* Pushed while still queued: a raise (out of memory) leaves it to
       * the box's close, which frees the queue. */
      lua_pushvalue(L, IDX_CB);
      push_delta(L, d);
      b->qhead = d->next;
      if (!b->qhead) b->qtail = NULL;
      lc_free(d->id);
      lc_free(d->name);
      lc_free(d->text);
      lc_free(d);
      lua_callk(L, 1, 0, ctx, chat_k); /* the callback may itself wait */
      continue;
    }
    free_queue(b);
    if (b->done) break;
    lc_task_wait(b->task, &b->wait);
    return lua_yieldk(L, 0, ctx, chat_k);
  }
  const struct lc_llm_response *r = lc_llm_call_response(b->call);
  struct lc_journal *j = lc_l_journal(L);
  if (j && lc_journal_failed(j) && r->err == LC_LLM_ECONFIG) {
    box_close(b); /* a replay mismatch (or journal failure) stops the run */
    return luaL_error(L, "%s", lc_journal_error(j));
  }
  int n;
  if (b->oom) {
    lua_pushnil(L);
    lua_pushliteral(L, "out of memory while queueing stream deltas");
    lua_pushliteral(L, "bad_response");
    n = 3;
  } else if (r->err != LC_LLM_OK) {
    n = lc_l_push_llm_error(L, r);
  } else {
    lc_l_push_response(L, r);
    n = 1;
  }
  box_close(b);
  return n;
}

static int l_chat(lua_State *L) {
  luaL_checktype(L, IDX_OPTS, LUA_TTABLE);
  lua_settop(L, 1);
  struct lc_task *task = lc_task_check(L, "luact.llm.chat");
  struct lc_sched *s = lc_sched_get(L);
  /* The box exists before anything is allocated, so a raise while parsing
   * frees what was built (through __gc). */
  struct llm_box *b = lua_newuserdatauv(L, sizeof *b, 0); /* opts box */
  memset(b, 0, sizeof *b);
  b->closed = 1; /* nothing to close yet */
  luaL_setmetatable(L, LLMCALL_MT);
  b->req = lc_calloc(1, sizeof *b->req);
  if (!b->req) return luaL_error(L, "out of memory");
  b->closed = 0;
  b->task = task;
  b->wait.cancel = box_cancel;
  lua_toclose(L, IDX_BOX);
  struct lc_llm_opts o;
  lc_l_check_opts(L, IDX_OPTS, "luact.llm.chat");
  lc_l_parse_llm_common(L, IDX_OPTS, "luact.llm", b->req, &o);
  lc_l_effect_src(L, task, &o.effect); /* journaled under this task's name */
  lc_l_status_attach(L, &o); /* the status line, on a terminal */
  parse_request(L, IDX_OPTS, b);
  lua_getfield(L, IDX_OPTS, "stream"); /* opts box cb */
  if (!lua_isfunction(L, IDX_CB)) {
    lua_pop(L, 1);
    lua_pushnil(L);
  }
  struct lc_llm_request *req = b->req;
  b->req = NULL; /* the call owns it now, also on failure */
  if (lc_llm_call_start(lc_sched_loop(s), req, &o, on_delta, b, on_done, b, &b->call))
    return luaL_error(L, "out of memory");
  b->intr.fn = box_interrupt;
  lc_l_intr_link(&b->intr);
  lc_task_wait(task, &b->wait);
  return lua_yieldk(L, 0, 0, chat_k);
}

/* limits{openai = {rpm = 500, tpm = 200000, burst = 5}, ...}: one governor
 * per provider endpoint and key, shared by every task in the process. */
static int l_limits(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_pushnil(L);
  while (lua_next(L, 1)) {
    const char *prov = luaL_checkstring(L, -2);
    /* Every adapter's name: a provider added to llm.h is governed too. */
    int known = 0;
    for (int p = 0; p < LC_PROV__COUNT && !known; p++) {
      const struct lc_llm_adapter *ad = lc_llm_adapter_for((enum lc_llm_provider)p);
      known = ad && strcmp(ad->name, prov) == 0;
    }
    if (!known) known = lc_rerank_provider_from(prov) >= 0; /* cohere, jina, ... */
    if (!known) return luaL_error(L, "luact.llm.limits: unknown provider '%s'", prov);
    luaL_checktype(L, -1, LUA_TTABLE);
    lc_l_check_opts(L, -1, "luact.llm.limits");
    struct lc_governor_limits lim = {0};
    lua_getfield(L, -1, "rpm");
    lim.rpm = luaL_optnumber(L, -1, 0);
    lua_getfield(L, -2, "tpm");
    lim.tpm = luaL_optnumber(L, -1, 0);
    lua_getfield(L, -3, "burst");
    lim.burst_req = luaL_optnumber(L, -1, 1);
    lua_getfield(L, -4, "burst_tokens");
    lim.burst_tok = luaL_optnumber(L, -1, 0);
    lua_pop(L, 4);
    if (!(lim.rpm >= 0 && lim.tpm >= 0 && lim.burst_req >= 0 && lim.burst_tok >= 0) ||
        !isfinite(lim.rpm + lim.tpm + lim.burst_req + lim.burst_tok)) /* NaN, inf */
      return luaL_error(L, "luact.llm.limits: negative limit");
    if (lc_governor_configure(prov, &lim)) return luaL_error(L, "out of memory");
    lua_pop(L, 1);
  }
  return 0;
}

static const luaL_Reg llm_funcs[] = {
    {"chat", l_chat}, {"limits", l_limits}, {"embed", lc_l_embed},
    {"rerank", lc_l_rerank}, {NULL, NULL}};

static const luaL_Reg box_meta[] = {{"__gc", box_gc}, {"__close", box_gc}, {NULL, NULL}};

int lc_open_llm(lua_State *L) {
  if (luaL_newmetatable(L, LLMCALL_MT)) luaL_setfuncs(L, box_meta, 0);
  lua_pop(L, 1);
  lc_l_embed_register(L);
  lc_l_rerank_register(L);
  luaL_newlib(L, llm_funcs);
  return 1;
}
