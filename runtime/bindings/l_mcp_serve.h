/* l_mcp_serve.h: the server side of luact.mcp (l_mcp_serve.c). */
#ifndef LC_L_MCP_SERVE_H
#define LC_L_MCP_SERVE_H

#include <lua.h>

/* [-0, +0, e] Adds _stdio, _http, _slot and _path to the luact.mcp table
 * on the top of L's stack (runtime/lua/mcp_serve.lua takes them). */
void lc_mcp_serve_register(lua_State *L);

#endif
