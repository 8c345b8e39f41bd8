/* l_opts.c: the known option names of every public luact function and the
 * one unknown-field check with "did you mean" (a typo such as tool= for
 * tools= must stop the script, not run an agent without tools). */
#include "l_opts.h"

#include <lauxlib.h>
#include <string.h>

#include "lc.h"

#define L_(...) ((const char *const[]){__VA_ARGS__, NULL})

/* Read by lc_l_parse_llm_common (l_llm.c): every LLM-calling function. */
static const char *const llm_common[] = {
    "model", "base_url", "api_key", "temperature", "top_p", "top_k", "max_tokens", "seed",
    "stop", "timeout", "connect_timeout", "idle_timeout", "retries", "retry_base",
    "retry_max_delay", "max_retry_after", "retry_budget", "max_response_bytes",
    "reasoning_effort", "reasoning_summary", "thinking_budget", "cache_key", "cache_control",
    "previous_response_id", "store", NULL};
static const char *const chat_own[] = {"messages", "system", "prompt", "images", "tools",
                                       "tool_choice", "stream", NULL};
static const char *const tool_common[] = {"name", "description", "effect", "timeout", NULL};

const struct lc_l_optset lc_l_optsets[] = {
    {"luact.llm.chat", NULL, "luact.llm.chat", "", {llm_common, chat_own, L_("response_format")}},
    {"luact.llm.json", NULL, "luact.llm.json", "",
     {llm_common, chat_own, L_("schema", "repairs", "validate", "schema_name", "native_schema")}},
    {"luact.llm.embed", NULL, "luact.llm.embed", "",
     {L_("model", "base_url", "api_key", "timeout", "connect_timeout", "idle_timeout", "retries",
         "retry_base", "retry_max_delay", "max_retry_after", "retry_budget",
         "max_response_bytes", "input", "dimensions", "encoding", "base64_type", "legacy",
         "max_batch", "max_input_bytes", "task_type")}},
    {"luact.llm.rerank", NULL, "luact.llm.rerank", "",
     {L_("model", "provider", "base_url", "api_key", "timeout", "connect_timeout",
         "idle_timeout", "retries", "retry_base", "retry_max_delay", "max_retry_after",
         "retry_budget", "max_response_bytes", "query", "documents", "top_n", "max_batch",
         "max_input_bytes", "truncate")}},
    {"luact.retrieval.split", NULL, "luact.retrieval.split", "", {L_("size", "overlap", "markdown")}},
    {"luact.retrieval.store", NULL, "luact.retrieval.store", "",
     {L_("model", "dimensions", "exact", "m", "ef_construction", "ef_search", "rebuild")}},
    {"store:search", NULL, "luact.retrieval.store", "search.",
     {L_("k", "ef", "exact", "filter", "background")}},
    {"luact.retrieval.open", NULL, "luact.retrieval.open", "",
     {L_("path", "model", "dimensions", "encoding", "base64_type", "base_url", "api_key",
         "timeout", "connect_timeout", "idle_timeout", "retries", "retry_base", "max_batch",
         "chunk_size", "chunk_overlap", "markdown", "splitter", "exact", "m", "ef_construction",
         "ef_search", "rebuild")}},
    {"index:add", NULL, "luact.retrieval.open", "add.", {L_("source", "text", "meta")}},
    {"index:add_dir", NULL, "luact.retrieval.open", "add_dir.",
     {L_("pattern", "meta", "prefix", "max_bytes")}},
    {"index:query", NULL, "luact.retrieval.open", "query.",
     {L_("k", "filter", "exact", "ef", "hyde", "multi_query", "rerank", "llm", "background")}},
    {"index:query rerank", "rerank option", "luact.retrieval.open", "query.rerank.",
     {L_("provider", "model", "top_n", "candidates", "base_url", "api_key", "max_batch",
         "truncate", "max_input_bytes", "timeout", "connect_timeout", "idle_timeout", "retries",
         "retry_base", "retry_max_delay", "max_retry_after", "retry_budget",
         "max_response_bytes")}},
    {"luact.retrieve", NULL, "luact.retrieve", "",
     {L_("index", "k", "name", "description", "filter", "exact", "ef", "hyde", "multi_query",
         "rerank", "llm", "max_chars", "on_hits")}},
    {"luact.llm.limits", NULL, "luact.llm.limits", "", {L_("rpm", "tpm", "burst", "burst_tokens")}},
    {"luact.react", NULL, "luact.react", "",
     {llm_common,
      L_("question", "tools", "instructions", "examples", "mode", "stream", "limits", "prices",
         "on_step", "final_answer_on_limit", "strict", "constrained", "finish_on_text",
         "verbose")}},
    {"luact.react limits", "limit", "luact.react", "limits.",
     {L_("steps", "tokens", "cost", "wall_time", "max_invalid", "repeat", "max_repeat",
         "tool_calls")}},
    {"luact.pal", NULL, "luact.pal", "",
     {llm_common,
      L_("question", "instructions", "examples", "input", "repairs", "sandbox", "limits",
         "prices", "on_attempt", "stream", "verbose")}},
    {"luact.pal limits", "limit", "luact.pal", "limits.", {L_("tokens", "cost", "wall_time")}},
    {"luact.pal sandbox", "sandbox option", "luact.pal", "sandbox.",
     {L_("memory", "instructions", "time", "output")}},
    {"luact.pal.run", NULL, "luact.pal.run", "",
     {L_("memory", "instructions", "time", "output", "input", "allow_nil")}},
    {"luact.sandbox.run", NULL, "luact.sandbox.run", "",
     {L_("mem_limit", "instr_limit", "wall_ms", "output_limit", "result_limit", "input")}},
    {"luact.tool", NULL, "luact.tool", "",
     {L_("name", "description", "params", "parameters", "fn", "effect", "timeout", "apply",
         "present")}},
    {"luact.tools.http", NULL, "luact.tools.http", "",
     {tool_common, L_("base_url", "allow_methods", "headers", "max_body", "idempotency_key")}},
    {"luact.tools.sql", NULL, "luact.tools.sql", "", {tool_common, L_("db", "readonly", "max_rows")}},
    {"luact.tools.files", NULL, "luact.tools.files", "", {tool_common, L_("root", "max_bytes")}},
    {"luact.tools.native", NULL, "luact.tools.native", "",
     {tool_common, L_("lib", "symbol", "signature", "args", "result")}},
    {"luact.tools.code", NULL, "luact.tools.code", "", {L_("name", "description", "sandbox", "timeout")}},
    {"luact.tools.code sandbox", "sandbox option", "luact.tools.code", "sandbox.",
     {L_("memory", "instructions", "time", "output")}},
    {"luact.native.declare", NULL, "luact.native.declare", "", {L_("lib", "symbol", "signature")}},
    {"luact.http.request", NULL, "luact.http.request", "",
     {L_("url", "method", "headers", "body", "timeout", "connect_timeout", "max_body",
         "idempotency_key", "under")}},
    {"luact.sql.open", NULL, "luact.sql.open", "",
     {L_("readonly", "create", "max_length", "max_temp", "max_growth")}},
    {"db:query", NULL, "luact.sql.open", "", {L_("max_rows", "max_bytes", "timeout")}},
    {"root:read", NULL, "luact.files.root", "", {L_("max_bytes")}},
    {"root:list", NULL, "luact.files.root", "", {L_("max_entries")}},
    {"luact.mcp.connect", NULL, "luact.mcp.connect", "",
     {L_("command", "args", "env", "url", "headers", "name", "prefix", "timeout",
         "connect_timeout", "max_output", "max_message", "screen", "on_progress", "on_change",
         "on_elicit", "restart", "max_restarts", "protocol", "auth")}},
    {"luact.mcp.serve", NULL, "luact.mcp.serve", "", {L_("http", "token")}},
    {"luact.map", NULL, "luact.map", "", {L_("concurrency")}},
    {"luact.effect", NULL, "luact.effect", "", {L_("schema")}},
    {"luact.ask", NULL, "luact.ask", "", {L_("secret")}},
    {"luact.workflow", "field", "luact.workflow", "",
     {L_("name", "initial", "states", "tools", "system", "model", "base_url", "temperature",
         "limits", "retry_delay", "on_event", "input", "on_finish", "verbose")}},
    {"luact.workflow state", "field", "luact.workflow", "states.*.",
     {L_("description", "instructions", "tools", "ask_user", "transitions", "finish", "checks",
         "retries", "on_enter")}},
    {"luact.workflow limits", "limit", "luact.workflow", "limits.", {L_("steps", "invalid")}},
    {"workflow:run", NULL, "luact.workflow", "run.",
     {L_("input", "message", "data", "run_id", "on_event", "model", "base_url", "api_key",
         "temperature", "max_tokens", "timeout", "retries", "limits", "retry_delay",
         "verbose")}},
    {"luact.eval.load", "field", "luact.eval.load", "",
     {L_("description", "targets", "prompts", "providers", "dataset", "assert", "judge", "repeat",
         "concurrency", "threshold", "prices", "labels", "pairwise", "scenarios", "setup")}},
    {"luact.eval target", "target field", "luact.eval.load", "targets.*.",
     {L_("name", "prompt", "system", "model", "params", "tools", "react", "workflow", "run", "label",
         "version")}},
    {"luact.eval case", "case field", "luact.eval.load", "case.",
     {L_("id", "input", "vars", "expected", "context_ids", "context", "trajectory", "tags", "assert",
         "threshold", "description", "rubric", "model", "metadata", "turns", "prefix", "suffix")}},
    {"luact.eval scenarios", "scenarios field", "luact.eval.load", "scenarios.",
     {L_("dir", "files", "run", "state", "mock", "model", "name")}},
    {"luact.eval expect", "expect field", "luact.eval.load", "expect.",
     {L_("status", "state", "tool_calls", "trajectory", "mode", "args", "model_saw", "model_never_saw",
         "check", "all_used")}},
    {"luact.eval.check", "assertion field", "luact.eval.check", "",
     {L_("type", "value", "weight", "negate", "threshold", "any", "case_insensitive", "icase", "schema",
         "mode", "args", "k", "judge", "model", "repairs", "strictness", "metric", "name")}},
    {"luact.eval.run", NULL, "luact.eval.run", "",
     {L_("repeat", "concurrency", "replay", "stored", "on_result")}},
    {"luact.eval.metrics.trajectory_match", NULL, "luact.eval.metrics.trajectory_match", "",
     {L_("mode", "args")}},
    {NULL, NULL, NULL, NULL, {NULL}}};

const struct lc_l_optset *lc_l_optset_find(const char *name) {
  for (const struct lc_l_optset *s = lc_l_optsets; s->name; s++)
    if (!strcmp(s->name, name)) return s;
  return NULL;
}

static int known(const struct lc_l_optset *s, const char *k) {
  for (size_t i = 0; i < LC_ARRAY_LEN(s->fields) && s->fields[i]; i++)
    for (const char *const *f = s->fields[i]; *f; f++)
      if (!strcmp(*f, k)) return 1;
  return 0;
}


/* [-0, +1, m] The hint for unknown key k of set s: " (did you mean 'x'?;
 * options: a, b)". */
static void push_hint(lua_State *L, const struct lc_l_optset *s, const char *k) {
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  const char *best = NULL;
  size_t bestd = strlen(k) <= 3 ? 2 : 3; /* only close matches */
  for (size_t i = 0; i < LC_ARRAY_LEN(s->fields) && s->fields[i]; i++)
    for (const char *const *f = s->fields[i]; *f; f++) {
      size_t d = lc_edit_distance(k, *f);
      if (d < bestd) bestd = d, best = *f;
    }
  luaL_addstring(&b, " (");
  if (best) {
    lua_pushfstring(L, "did you mean '%s'?; ", best);
    luaL_addvalue(&b);
  }
  luaL_addstring(&b, s->what ? s->what : "option");
  luaL_addstring(&b, "s:");
  const char *sep = " ";
  for (size_t i = 0; i < LC_ARRAY_LEN(s->fields) && s->fields[i]; i++)
    for (const char *const *f = s->fields[i]; *f; f++) {
      luaL_addstring(&b, sep);
      luaL_addstring(&b, *f);
      sep = ", ";
    }
  luaL_addchar(&b, ')');
  luaL_pushresult(&b);
}

/* [-0, +1, m] The whole message for unknown key k of set s. */
static void push_unknown(lua_State *L, const struct lc_l_optset *s, const char *k) {
  const char *sp = strchr(s->name, ' ');
  size_t wlen = sp ? (size_t)(sp - s->name) : strlen(s->name);
  lua_pushlstring(L, s->name, wlen);
  lua_pushfstring(L, ": unknown %s '%s'", s->what ? s->what : "option", k);
  push_hint(L, s, k);
  lua_concat(L, 3);
}

int lc_l_opts_unknown(lua_State *L, int idx, const char *name) {
  const struct lc_l_optset *s = lc_l_optset_find(name);
  if (!s) return luaL_error(L, "luact: no option set '%s'", name);
  idx = lua_absindex(L, idx);
  luaL_checkstack(L, 4, "options");
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    lua_pop(L, 1);
    if (lua_type(L, -1) == LUA_TSTRING) {
      const char *k = lua_tostring(L, -1);
      if (known(s, k)) continue;
      push_unknown(L, s, k);
    } else {
      /* luaL_tolstring would call __tostring: name the type only. */
      lua_pushfstring(L, "%s: option keys must be names (got a %s key)", s->name,
                      luaL_typename(L, -1));
    }
    lua_remove(L, -2); /* the key */
    return 1;
  }
  return 0;
}

void lc_l_check_opts(lua_State *L, int idx, const char *name) {
  if (lc_l_opts_unknown(L, idx, name)) lua_error(L);
}

/* check(tbl, setname) -> nil | message, key, hint */
static int l_check(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  const char *name = luaL_checkstring(L, 2);
  lua_settop(L, 2);
  if (!lc_l_opts_unknown(L, 1, name)) {
    lua_pushnil(L);
    return 1;
  }
  /* The offending key again, for callers that word the message their way. */
  const struct lc_l_optset *s = lc_l_optset_find(name);
  lua_pushnil(L);
  while (lua_next(L, 1)) {
    lua_pop(L, 1);
    if (lua_type(L, -1) != LUA_TSTRING || !known(s, lua_tostring(L, -1))) break;
  }
  if (lua_type(L, -1) == LUA_TSTRING) {
    push_hint(L, s, lua_tostring(L, -1));
  } else {
    lua_pushfstring(L, "[%s]", luaL_typename(L, -1)); /* no __tostring call */
    lua_replace(L, -2);
    lua_pushliteral(L, " (keys must be names)");
  }
  return 3;
}

void lc_l_push_opts_checker(lua_State *L) { lua_pushcfunction(L, l_check); }
