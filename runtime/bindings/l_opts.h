/* l_opts.h: the option names every public luact function accepts, and the
 * one checker that rejects a table field outside them with "did you mean".
 * The same tables feed docs/api.md's completeness test (check_api_doc). */
#ifndef LC_L_OPTS_H
#define LC_L_OPTS_H

#include <lua.h>
#include <stddef.h>

/* One options table: name is its key ("luact.react", "luact.react
 * limits"), whose first word names the function in messages; what is the
 * noun for one entry ("limit"; NULL: "option"); doc is the docs/api.md
 * section that documents it and prefix what goes before each field there
 * ("limits." -> `limits.steps`). */
struct lc_l_optset {
  const char *name;
  const char *what;
  const char *doc;
  const char *prefix;
  const char *const *fields[3]; /* NULL-terminated lists, NULL after */
};

/* Every option set, ended by a {NULL} entry. */
extern const struct lc_l_optset lc_l_optsets[];

/* The set called name, or NULL. */
const struct lc_l_optset *lc_l_optset_find(const char *name);

/* [-0, +0, m] When the table at idx has a key outside set `name`, pushes
 * "luact.react: unknown limit 'stepz' (did you mean 'steps'?; limits: ...)"
 * and returns 1; else pushes nothing and returns 0. A non-string key counts
 * as unknown. An unknown set name is a bug: it raises. */
int lc_l_opts_unknown(lua_State *L, int idx, const char *name);

/* [-0, +0, e] Raises that message when there is one. */
void lc_l_check_opts(lua_State *L, int idx, const char *name);

/* [-0, +1, m] Pushes check(tbl, setname) -> nil | message, key, hint (hint:
 * the text after "unknown <what> 'key'"), the form the embedded Lua
 * modules use: they raise at their caller's level, or in their own words. */
void lc_l_push_opts_checker(lua_State *L);

#endif
