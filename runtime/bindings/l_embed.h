/* l_embed.h: luact.llm.embed (l_embed.c), installed into luact.llm by
 * l_llm.c. */
#ifndef LC_L_EMBED_H
#define LC_L_EMBED_H

#include <lua.h>

/* [-0, +1|4, e] luact.llm.embed{...}: yields; vectors table or nil, msg, code, details. */
int lc_l_embed(lua_State *L);
/* [-0, +0, m] Registers the call's metatable. */
void lc_l_embed_register(lua_State *L);

#endif
