/* l_react.h: settings the command line hands to every luact.react run in a
 * state (main.c stays CLI-only: it fills this struct, l_react.c reads it).
 *
 * Ownership: lc_react_set_run_opts copies the struct and the path into the
 * state's registry; nothing stays borrowed. */
#ifndef LC_L_REACT_H
#define LC_L_REACT_H

#include <lua.h>

struct lc_run_opts {
  int quiet;              /* no live step lines on stderr, even on a tty */
  const char *trace_path; /* append every step and each run's end as JSON
                             lines (NULL = no trace) */
};

/* [-0, +0, m] Stores a copy of o for luact.react runs in L. */
void lc_react_set_run_opts(lua_State *L, const struct lc_run_opts *o);
/* [-0, +0, -] Reads them back for other engines' bindings (luact.pal):
 * zeroed when none were set; trace_path is borrowed from the registry. */
void lc_react_get_run_opts(lua_State *L, struct lc_run_opts *o);

#endif
