/* l_status.h: the live status line on a terminal. While LLM calls are in
 * flight, one line on stderr says what is happening (waiting for the
 * model, retry N of M in X s and why, tokens streaming), redrawn in place
 * (\r, erase line); live step lines clear it before they print. Only when
 * stderr is a terminal and --quiet is off; colour only when, besides,
 * TERM is not "dumb" and NO_COLOR is unset or empty (no-color.org).
 *
 * One line per process: calls of every state and worker thread report to
 * it (under a lock); the latest report is what shows, and the line goes
 * when the last call in flight ends. */
#ifndef LC_L_STATUS_H
#define LC_L_STATUS_H

#include <lua.h>
#include <stdio.h>

struct lc_engine_usage;
struct lc_llm_opts;

/* [-0, +0, -] Points o's status hook at the line when L's runs show live
 * output (stderr a terminal, not --quiet); else leaves o alone. */
void lc_l_status_attach(lua_State *L, struct lc_llm_opts *o);
/* Erases the line if it is drawn (before printing a line of one's own). */
void lc_l_status_clear(void);
/* While on (a prompt is up and a person types), the line is erased and
 * not drawn; reports after it goes off draw it again. */
void lc_l_status_hold(int on);
/* Whether escapes for colour may go to stderr now. */
int lc_l_status_colour(void);
/* [-0, +1, m] The embedded Lua's view of the terminal: {live = function()
 * -> bool (live lines by default: a terminal, no --quiet), clear =
 * function() (erase the status line before printing a line)}. */
void lc_l_push_term(lua_State *L);
/* Prints "$0.0012", or "cost unknown" when some call had no price. */
void lc_l_print_cost(FILE *f, const struct lc_engine_usage *u);

#endif
