/* l_sql.h: Lua binding of the SQL tool, to be assembled into `luact`. */
#ifndef LC_L_SQL_H
#define LC_L_SQL_H

#include <lua.h>

/* [-0, +1, m] Pushes the module table {open = ...}; open(path, {readonly=,
 * create=}) returns a "luact.SqlDb" with query/exec/close, or nil, msg,
 * code. Registers the metatable on first use. */
int lc_open_sql(lua_State *L);

#endif
