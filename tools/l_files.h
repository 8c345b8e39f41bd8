/* l_files.h: Lua binding of the files tool, to be assembled into `luact`. */
#ifndef LC_L_FILES_H
#define LC_L_FILES_H

#include <lua.h>

/* [-0, +1, m] Pushes the module table {root = ...}; root(path) returns a
 * "luact.FilesRoot" with read/list/close, or nil, msg, code. Registers the
 * metatable on first use. */
int lc_open_files(lua_State *L);

#endif
