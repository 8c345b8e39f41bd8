/* l_embed.c: luact.llm.embed{model=..., input=...}: a waiting binding over
 * embed_call.c (batched, governed, retried, journaled).
 *
 * Like luact.llm.chat, the call lives in a userdata in the binding's own
 * frame, marked to-be-closed, so an error, a kill or the normal return all
 * end it through one idempotent close. */
#include <lauxlib.h>
#include <string.h>

#include "embed_call.h"
#include "l_batch.h"
#include "l_effect.h"
#include "l_embed.h"
#include "l_luact.h"
#include "l_opts.h"
#include "lc.h"
#include "sched.h"

#define EMBEDCALL_MT "luact.EmbedCall"

struct embed_box {
  struct lc_embed_request *q; /* until handed to the call */
  struct lc_llm_request *tmp; /* what the shared option parser fills */
  struct lc_embed_call *call;
  struct lc_task *task;
  struct lc_wait wait;
  int done, closed;
};

static void box_close(struct embed_box *b) {
  if (b->closed) return;
  b->closed = 1;
  lc_embed_call_free(b->call);
  b->call = NULL;
  lc_llm_request_delete(b->tmp);
  b->tmp = NULL;
  if (b->q) {
    lc_embed_request_free(b->q);
    lc_free(b->q);
    b->q = NULL;
  }
}

static int box_gc(lua_State *L) {
  box_close(luaL_checkudata(L, 1, EMBEDCALL_MT));
  return 0;
}

static void box_cancel(struct lc_wait *w) {
  box_close((struct embed_box *)((char *)w - offsetof(struct embed_box, wait)));
}

static void on_done(struct lc_embed_call *c, void *ud) {
  struct embed_box *b = ud;
  b->done = 1;
  lc_task_wake(b->task, &b->wait);
}

/* [-0, +0, e] One input: a non-empty UTF-8 string without NUL, at most
 * max bytes. Misuse, so it raises: the script chose the text. */
static void add_input(lua_State *L, struct lc_embed_request *q, int idx, size_t i, size_t max) {
  char what[48];
  snprintf(what, sizeof what, "input[%d]", (int)i + 1);
  q->input[i] = lc_l_batch_text(L, idx, "luact.llm.embed", what, max,
                                ": split it first (luact.retrieval.split)", &q->input_len[i]);
  q->n_input = i + 1;
}

#define IDX_OPTS 1
#define IDX_BOX 2

static int embed_k(lua_State *L, int status, lua_KContext ctx) {
  struct embed_box *b = luaL_checkudata(L, IDX_BOX, EMBEDCALL_MT);
  if (b->closed) return luaL_error(L, "luact.llm.embed: call was cancelled");
  if (!b->done) {
    lc_task_wait(b->task, &b->wait);
    return lua_yieldk(L, 0, ctx, embed_k);
  }
  const struct lc_embed_result *r = lc_embed_call_result(b->call);
  struct lc_journal *j = lc_l_journal(L);
  if (j && lc_journal_failed(j) && r->err == LC_LLM_ECONFIG) {
    box_close(b);
    return luaL_error(L, "%s", lc_journal_error(j));
  }
  if (r->err != LC_LLM_OK) {
    int n = lc_l_batch_error(L, r->err, r->err_message, r->err_type, r->http_status, r->attempts);
    box_close(b); /* after the push: r is the call's */
    return n;
  }
  lua_createtable(L, 0, 6);
  lua_createtable(L, (int)r->n, 0);
  for (size_t i = 0; i < r->n; i++) {
    lua_createtable(L, (int)r->dims, 0);
    for (size_t k = 0; k < r->dims; k++) {
      lua_pushnumber(L, r->rows[i * r->dims + k]);
      lua_rawseti(L, -2, (lua_Integer)k + 1);
    }
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
  lua_setfield(L, -2, "vectors");
  lc_l_set_int(L, "dims", (lua_Integer)r->dims);
  lc_l_set_str(L, "model", r->model);
  lua_createtable(L, 0, 1);
  lc_l_set_int(L, "input", r->input_tokens);
  lua_setfield(L, -2, "usage");
  lc_l_set_int(L, "attempts", r->attempts);
  lc_l_set_num(L, "latency_ms", r->latency_ms);
  box_close(b);
  return 1;
}

int lc_l_embed(lua_State *L) {
  luaL_checktype(L, IDX_OPTS, LUA_TTABLE);
  lua_settop(L, 1);
  struct lc_task *task = lc_task_check(L, "luact.llm.embed");
  struct lc_sched *s = lc_sched_get(L);
  struct embed_box *b = lua_newuserdatauv(L, sizeof *b, 0); /* opts box */
  memset(b, 0, sizeof *b);
  b->closed = 1;
  luaL_setmetatable(L, EMBEDCALL_MT);
  b->q = lc_calloc(1, sizeof *b->q);
  b->tmp = lc_calloc(1, sizeof *b->tmp);
  if (!b->q || !b->tmp) {
    lc_free(b->q);
    lc_free(b->tmp);
    b->q = NULL;
    b->tmp = NULL;
    return luaL_error(L, "out of memory");
  }
  b->closed = 0;
  b->task = task;
  b->wait.cancel = box_cancel;
  lua_toclose(L, IDX_BOX);
  lc_l_check_opts(L, IDX_OPTS, "luact.llm.embed");

  /* model, endpoint, key, timeouts and retries: as chat reads them. */
  struct lc_llm_opts o;
  struct lc_llm_request *tmp = b->tmp; /* freed by the box on a raise */
  lc_l_parse_llm_common(L, IDX_OPTS, "luact.llm.embed", tmp, &o);
  struct lc_embed_request *q = b->q;
  q->provider = tmp->provider;
  q->model = tmp->model;
  q->base_url = tmp->base_url;
  q->api_key = tmp->api_key;
  tmp->model = tmp->base_url = tmp->api_key = NULL;
  if (q->provider != LC_PROV_OPENAI && q->provider != LC_PROV_OLLAMA &&
      q->provider != LC_PROV_GEMINI)
    return luaL_error(L, "luact.llm.embed: embeddings need provider openai (or a compatible "
                         "server through base_url), ollama or gemini");
  lc_l_effect_src(L, task, &o.effect);

  const char *who = "luact.llm.embed";
  lua_Integer dims = lc_l_batch_int(L, IDX_OPTS, who, "dimensions", 1, LC_EMBED_MAX_DIMS, 0);
  lua_Integer max_batch = lc_l_batch_int(L, IDX_OPTS, who, "max_batch", 1, 0, 0);
  lua_Integer max_in = lc_l_batch_int(L, IDX_OPTS, who, "max_input_bytes", 1, 0, 1 << 20);
  q->dimensions = (int)dims;
  q->max_batch = (size_t)max_batch;
  const char *enc = lc_l_opt_string(L, IDX_OPTS, "luact.llm.embed", "encoding", 0);
  if (!enc) enc = "float";
  if (!strcmp(enc, "base64")) q->base64 = 1;
  else if (strcmp(enc, "float"))
    return luaL_error(L, "luact.llm.embed: 'encoding' must be \"float\" or \"base64\"");
  const char *bt = lc_l_opt_string(L, IDX_OPTS, "luact.llm.embed", "base64_type", 0);
  if (!bt) bt = "auto";
  if (!strcmp(bt, "float32")) q->b64_type = LC_EMBED_B64_F32;
  else if (!strcmp(bt, "float64")) q->b64_type = LC_EMBED_B64_F64;
  else if (strcmp(bt, "auto"))
    return luaL_error(L, "luact.llm.embed: 'base64_type' must be \"auto\", \"float32\" or \"float64\"");
  q->legacy = lc_l_opt_bool(L, IDX_OPTS, "luact.llm.embed", "legacy", 0);
  /* Gemini's taskType: passed as given (Google adds kinds now and then),
   * but only where it means something, and only as a plain word. */
  const char *tt = lc_l_opt_string(L, IDX_OPTS, "luact.llm.embed", "task_type", 0);
  if (tt) {
    if (q->provider != LC_PROV_GEMINI)
      return luaL_error(L, "luact.llm.embed: 'task_type' is for gemini models only");
    size_t n = strlen(tt);
    if (!n || n > 64 || strspn(tt, "ABCDEFGHIJKLMNOPQRSTUVWXYZ_") != n)
      return luaL_error(L, "luact.llm.embed: 'task_type' must be a Gemini task type such as "
                           "\"RETRIEVAL_QUERY\" or \"RETRIEVAL_DOCUMENT\"");
    if (!(q->task_type = lc_strdup(tt))) return luaL_error(L, "out of memory");
  }
  if (q->provider == LC_PROV_GEMINI && (q->base64 || q->legacy))
    return luaL_error(L, "luact.llm.embed: gemini takes neither encoding=\"base64\" nor legacy");

  int t = lua_getfield(L, IDX_OPTS, "input"); /* opts box input */
  if (t == LUA_TSTRING) {
    q->input = lc_calloc(1, sizeof *q->input);
    q->input_len = lc_calloc(1, sizeof *q->input_len);
    if (!q->input || !q->input_len) return luaL_error(L, "out of memory");
    add_input(L, q, -1, 0, (size_t)max_in);
  } else if (t == LUA_TTABLE) {
    lua_Integer n = luaL_len(L, -1);
    if (n < 1) return luaL_error(L, "luact.llm.embed: 'input' is an empty list");
    if (n > 1000000) return luaL_error(L, "luact.llm.embed: 'input' has over 1000000 texts");
    q->input = lc_calloc((size_t)n, sizeof *q->input);
    q->input_len = lc_calloc((size_t)n, sizeof *q->input_len);
    if (!q->input || !q->input_len) return luaL_error(L, "out of memory");
    for (lua_Integer i = 1; i <= n; i++) {
      lua_rawgeti(L, -1, i);
      add_input(L, q, -1, (size_t)i - 1, (size_t)max_in);
      lua_pop(L, 1);
    }
  } else {
    return luaL_error(L, "luact.llm.embed: 'input' must be a string or a list of strings");
  }
  lua_pop(L, 1);
  b->q = NULL; /* the call owns it now, also on failure */
  int rc = lc_embed_call_start(lc_sched_loop(s), q, &o, on_done, b, &b->call);
  lc_free(q);
  if (rc) return luaL_error(L, "out of memory");
  lc_task_wait(task, &b->wait);
  return lua_yieldk(L, 0, 0, embed_k);
}

static const luaL_Reg box_meta[] = {{"__gc", box_gc}, {"__close", box_gc}, {NULL, NULL}};

void lc_l_embed_register(lua_State *L) {
  if (luaL_newmetatable(L, EMBEDCALL_MT)) luaL_setfuncs(L, box_meta, 0);
  lua_pop(L, 1);
}
