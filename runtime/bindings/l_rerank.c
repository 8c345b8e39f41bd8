/* l_rerank.c: luact.llm.rerank{model=..., query=..., documents=...}: a
 * waiting binding over rerank_call.c (batched, governed, retried,
 * journaled), built as l_embed.c is: the call lives in a to-be-closed
 * userdata in the binding's frame, so an error, a kill or the normal
 * return all end it through one idempotent close. */
#include <lauxlib.h>
#include <string.h>

#include "l_batch.h"
#include "l_effect.h"
#include "l_luact.h"
#include "l_opts.h"
#include "l_rerank.h"
#include "lc.h"
#include "rerank_call.h"
#include "secrets.h"
#include "sched.h"

#define RERANKCALL_MT "luact.RerankCall"
#define WHO "luact.llm.rerank"

struct rerank_box {
  struct lc_rerank_request *q; /* until handed to the call */
  struct lc_rerank_call *call;
  struct lc_task *task;
  struct lc_wait wait;
  int done, closed;
};

static void box_close(struct rerank_box *b) {
  if (b->closed) return;
  b->closed = 1;
  lc_rerank_call_free(b->call);
  b->call = NULL;
  if (b->q) {
    lc_rerank_request_free(b->q);
    lc_free(b->q);
    b->q = NULL;
  }
}

static int box_gc(lua_State *L) {
  box_close(luaL_checkudata(L, 1, RERANKCALL_MT));
  return 0;
}

static void box_cancel(struct lc_wait *w) {
  box_close((struct rerank_box *)((char *)w - offsetof(struct rerank_box, wait)));
}

static void on_done(struct lc_rerank_call *c, void *ud) {
  struct rerank_box *b = ud;
  b->done = 1;
  lc_task_wake(b->task, &b->wait);
}

/* [-0, +0, e] A text to rank (l_batch.h): misuse raises. */
static char *text_at(lua_State *L, int idx, const char *what, size_t max, size_t *len) {
  return lc_l_batch_text(L, idx, WHO, what, max, "", len);
}

#define IDX_OPTS 1
#define IDX_BOX 2

static int rerank_k(lua_State *L, int status, lua_KContext ctx) {
  struct rerank_box *b = luaL_checkudata(L, IDX_BOX, RERANKCALL_MT);
  if (b->closed) return luaL_error(L, WHO ": call was cancelled");
  if (!b->done) {
    lc_task_wait(b->task, &b->wait);
    return lua_yieldk(L, 0, ctx, rerank_k);
  }
  const struct lc_rerank_result *r = lc_rerank_call_result(b->call);
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
  lua_createtable(L, 0, 5);
  lua_createtable(L, (int)r->n, 0);
  for (size_t i = 0; i < r->n; i++) {
    lua_createtable(L, 0, 2);
    lc_l_set_int(L, "index", (lua_Integer)r->hits[i].index + 1);
    lc_l_set_num(L, "score", r->hits[i].score);
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
  lua_setfield(L, -2, "results");
  lc_l_set_str(L, "model", r->model);
  lua_createtable(L, 0, 1);
  lc_l_set_int(L, "tokens", r->tokens);
  lua_setfield(L, -2, "usage");
  lc_l_set_int(L, "attempts", r->attempts);
  lc_l_set_num(L, "latency_ms", r->latency_ms);
  box_close(b);
  return 1;
}

int lc_l_rerank(lua_State *L) {
  luaL_checktype(L, IDX_OPTS, LUA_TTABLE);
  lua_settop(L, 1);
  struct lc_task *task = lc_task_check(L, WHO);
  struct lc_sched *s = lc_sched_get(L);
  struct rerank_box *b = lua_newuserdatauv(L, sizeof *b, 0); /* opts box */
  memset(b, 0, sizeof *b);
  b->closed = 1;
  luaL_setmetatable(L, RERANKCALL_MT);
  if (!(b->q = lc_calloc(1, sizeof *b->q))) return luaL_error(L, "out of memory");
  b->closed = 0;
  b->task = task;
  b->wait.cancel = box_cancel;
  lua_toclose(L, IDX_BOX);
  lc_l_check_opts(L, IDX_OPTS, WHO);
  struct lc_rerank_request *q = b->q;

  /* model = "provider:model", or provider = ... and model = ... */
  const char *prov = lc_l_opt_string(L, IDX_OPTS, WHO, "provider", 0);
  const char *model = lc_l_opt_string(L, IDX_OPTS, WHO, "model", 0);
  const char *colon = model ? strchr(model, ':') : NULL;
  char pname[32] = "";
  if (prov) snprintf(pname, sizeof pname, "%s", prov);
  else if (colon && colon - model < (long)sizeof pname)
    snprintf(pname, sizeof pname, "%.*s", (int)(colon - model), model);
  int p = lc_rerank_provider_from(pname);
  if (p < 0)
    return luaL_error(L, WHO ": %s: give model = \"provider:model\" (or provider = ...) with "
                         "provider cohere, jina, voyage, tei, vllm or llamacpp",
                      *pname ? "unknown provider" : "no provider");
  q->provider = (enum lc_rerank_provider)p;
  if (!prov && colon) model = colon + 1;
  if ((!model || !*model) && q->provider != LC_RERANK_TEI)
    return luaL_error(L, WHO ": 'model' is required (TEI alone serves one model)");
  if (model && *model && !(q->model = lc_strdup(model))) return luaL_error(L, "out of memory");
  const char *base = lc_l_opt_string(L, IDX_OPTS, WHO, "base_url", 0);
  const char *key = lc_l_opt_string(L, IDX_OPTS, WHO, "api_key", 0);
  if (base && !(q->base_url = lc_strdup(base))) return luaL_error(L, "out of memory");
  if (key) {
    if (!(q->api_key = lc_strdup(key))) return luaL_error(L, "out of memory");
    lc_secret_add(key, strlen(key));
  }
  struct lc_llm_opts o;
  lc_l_parse_llm_opts(L, IDX_OPTS, &o);
  lc_l_effect_src(L, task, &o.effect);

  lua_Integer top_n = lc_l_batch_int(L, IDX_OPTS, WHO, "top_n", 1, 0, 0);
  lua_Integer max_batch = lc_l_batch_int(L, IDX_OPTS, WHO, "max_batch", 1, 0, 0);
  lua_Integer max_in = lc_l_batch_int(L, IDX_OPTS, WHO, "max_input_bytes", 1, 0, 1 << 20);
  q->top_n = (size_t)top_n;
  q->max_batch = (size_t)max_batch;
  q->truncate = lc_l_opt_bool(L, IDX_OPTS, WHO, "truncate", 0);

  size_t len;
  lua_getfield(L, IDX_OPTS, "query");
  if (lua_isnil(L, -1)) return luaL_error(L, WHO ": 'query' is required");
  q->query = text_at(L, -1, "'query'", (size_t)max_in, &len);
  lua_pop(L, 1);
  if (lua_getfield(L, IDX_OPTS, "documents") != LUA_TTABLE)
    return luaL_error(L, WHO ": 'documents' must be a list of strings");
  lua_Integer n = luaL_len(L, -1);
  if (n < 1) return luaL_error(L, WHO ": 'documents' is an empty list");
  if (n > 100000) return luaL_error(L, WHO ": 'documents' has over 100000 texts");
  q->docs = lc_calloc((size_t)n, sizeof *q->docs);
  q->doc_len = lc_calloc((size_t)n, sizeof *q->doc_len);
  if (!q->docs || !q->doc_len) return luaL_error(L, "out of memory");
  for (lua_Integer i = 1; i <= n; i++) {
    char what[48];
    snprintf(what, sizeof what, "documents[%d]", (int)i);
    lua_rawgeti(L, -1, i);
    q->docs[i - 1] = text_at(L, -1, what, (size_t)max_in, &q->doc_len[i - 1]);
    q->n_docs = (size_t)i;
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  b->q = NULL; /* the call owns it now, also on failure */
  int rc = lc_rerank_call_start(lc_sched_loop(s), q, &o, on_done, b, &b->call);
  lc_free(q);
  if (rc) return luaL_error(L, "out of memory");
  lc_task_wait(task, &b->wait);
  return lua_yieldk(L, 0, 0, rerank_k);
}

static const luaL_Reg box_meta[] = {{"__gc", box_gc}, {"__close", box_gc}, {NULL, NULL}};

void lc_l_rerank_register(lua_State *L) {
  if (luaL_newmetatable(L, RERANKCALL_MT)) luaL_setfuncs(L, box_meta, 0);
  lua_pop(L, 1);
}
