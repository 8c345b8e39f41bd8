/* l_luact.h: the luact Lua module: luaopen_luact assembles one submodule
 * per l_<area>.c, and the state setup used by `luact run` and tests. */
#ifndef LC_L_LUACT_H
#define LC_L_LUACT_H

#include <lauxlib.h>
#include <lua.h>
#include <stdio.h>

struct lc_llm_response;
struct lc_llm_tool_call;

/* [-0, +1, e] Each pushes its submodule table. */
int lc_open_json(lua_State *L);
int lc_open_llm(lua_State *L);
int lc_open_task(lua_State *L); /* sleep, spawn, wait: merged into luact */
int lc_open_schema(lua_State *L);
/* [-0, +0, -] The box of the compiled schema (luact.schema.compile's) at
 * idx, or NULL: for lc_l_schema_valid while that value is kept alive. */
void *lc_l_schema_box(lua_State *L, int idx);
/* [-0, +0, m] 1 when the value at vidx is valid against the schema in
 * box, as Schema:validate says true; 0 when it is not, cannot be told
 * without its message, or the schema is closed (l_schema.c; the MCP C
 * path: a 0 goes the Lua way, which gives the message). */
int lc_l_schema_valid(lua_State *L, void *box, int vidx);
struct lc_buf;
/* [-0, +0, m] For a flat table (scalars under at most 16 string keys) that
 * is valid against the schema in box: appends it to out as
 * lc_conv_member_value_to_text would (the same bytes) and returns 1.
 * 0: not such a table, or not valid (nothing written); -1: out of
 * memory (out holds part of it). */
int lc_l_schema_valid_text(lua_State *L, void *box, int vidx, struct lc_buf *out);
int lc_open_mcp(lua_State *L); /* luact.mcp (l_mcp.c, runtime/lua/mcp.lua) */
/* luact mcp serve AGENTS_DIR (argv after "mcp"): the exit code. */
int lc_l_mcp_main(int argc, char **argv);
/* __index for luact's "worker": makes luact.worker on first use (l_worker.c);
 * 0 results for any other key. */
int lc_l_worker_index(lua_State *L);
/* Fields whose embedded Lua runs on first use ("workflow", "llm.json", ...):
 * pairs() does not see them until then. NULL-terminated. */
const char *const *lc_l_lazy_names(void);
int lc_open_eval(lua_State *L);   /* luact.eval: regex, sha256 (l_eval.c) */

/* [-0, +1, e] The whole module; also registered in package.preload. */
int luaopen_luact(lua_State *L);

/* Opens the standard libraries and preloads luact (require "luact" works
 * and the global `luact` is set). */
void lc_lua_setup(lua_State *L);

struct lc_llm_request;
struct lc_llm_opts;

/* [-0, +0, e] Shared option parsing for LLM-calling bindings (l_llm.c):
 * model, base_url, api_key, sampling, stop, timeouts and retries. */
void lc_l_parse_llm_common(lua_State *L, int opts, const char *who,
                           struct lc_llm_request *r, struct lc_llm_opts *o);
/* [-0, +0, e] Timeouts and retries alone (luact.llm.rerank has no chat model). */
void lc_l_parse_llm_opts(lua_State *L, int opts, struct lc_llm_opts *o);
int lc_open_react(lua_State *L); /* luact.react (l_react.c) */

/* [-0, +0, m] Registers metatable `name` (once): the meta functions, and
 * the methods table as __index. */
void lc_l_class(lua_State *L, const char *name, const luaL_Reg *meta,
                const luaL_Reg *methods);

/* [-0, +0, m] t[k] = v for the table on top (set_str skips a NULL v). */
void lc_l_set_str(lua_State *L, const char *k, const char *v);
void lc_l_set_num(lua_State *L, const char *k, double v);
void lc_l_set_int(lua_State *L, const char *k, lua_Integer v);
/* [-0, +1] A run's usage table with the counts every engine has; the
 * caller adds its own before setting it into the result. */
void lc_l_push_usage(lua_State *L, long input, long output, long cached, long llm_calls, int extra);
/* [-0, +0] cost and cost_known on the result table on top. */
void lc_l_set_cost(lua_State *L, double usd, int unknown);

/* [-0, +0, e] Optional option-table fields; wrong types raise naming who
 * ("luact.react: 'question' must be a string"). opt_string's result is
 * kept alive by the table. */
const char *lc_l_opt_string(lua_State *L, int idx, const char *who, const char *field,
                            int required);
int lc_l_opt_bool(lua_State *L, int idx, const char *who, const char *field, int dflt);
/* Writes s on one line to f, at most max bytes (UTF-8 safe), "..." if cut. */
void lc_l_put_flat(FILE *f, const char *s, size_t max);

/* Shared pushers for LLM results (l_llm.c). */
void lc_l_push_response(lua_State *L, const struct lc_llm_response *r);
void lc_l_push_tool_call(lua_State *L, const struct lc_llm_tool_call *c);
int lc_l_push_llm_error(lua_State *L, const struct lc_llm_response *r);

#endif
