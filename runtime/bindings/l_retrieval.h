/* l_retrieval.h: luact.retrieval's C half (l_retrieval.c). */
#ifndef LC_L_RETRIEVAL_H
#define LC_L_RETRIEVAL_H

#include <lua.h>

/* [-0, +1, m] The luact.retrieval table: split, store. */
int lc_open_retrieval(lua_State *L);

#endif
