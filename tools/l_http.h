/* l_http.h: Lua binding of the HTTP tool, to be assembled into `luact`. */
#ifndef LC_L_HTTP_H
#define LC_L_HTTP_H

#include <lua.h>

/* [-0, +1, m] Pushes the module table {request, get, post}. Each is a
 * waiting binding (it must run inside a luact task) returning
 * {status=, headers={lower-case name = value}, body=, json=} or nil, msg,
 * code with code "timeout", "network", "too_large" or "bad_url". */
int lc_open_http(lua_State *L);

#endif
