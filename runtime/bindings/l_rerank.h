/* l_rerank.h: luact.llm.rerank (l_rerank.c), installed into luact.llm by
 * l_llm.c. */
#ifndef LC_L_RERANK_H
#define LC_L_RERANK_H

#include <lua.h>

/* [-0, +1|4, e] luact.llm.rerank{...}: yields; result table or nil, msg, code, details. */
int lc_l_rerank(lua_State *L);
/* [-0, +0, m] Registers the call's metatable. */
void lc_l_rerank_register(lua_State *L);

#endif
