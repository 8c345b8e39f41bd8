/* l_closable.h: objects that hold loop watchers without belonging to a
 * task (MCP client sessions, the MCP server's stdio and HTTP channels).
 *
 * They are on one list per Lua state, closed by the scheduler's at-free
 * hook: the loop goes before lua_close collects them. One list for all of
 * them, because a scheduler has a single at-free hook (a second
 * registration would replace the first and leave its objects' watchers
 * on a freed loop).
 *
 * Ownership: the list holds no object; each unlinks itself in its close
 * (lc_closable_remove), which the list calls at most once per object. */
#ifndef LC_L_CLOSABLE_H
#define LC_L_CLOSABLE_H

#include <lua.h>

struct lc_closable {
  struct lc_closable *next, **prev;
  void (*close)(struct lc_closable *); /* must call lc_closable_remove */
};

/* [-0, +0, m] Puts c on L's list (made, and hooked, on first use). */
void lc_closable_add(lua_State *L, struct lc_closable *c);
/* Takes c off its list; nothing when it is on none. */
void lc_closable_remove(struct lc_closable *c);

#endif
