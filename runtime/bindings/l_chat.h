/* l_chat.h: a person at the terminal. Line editing and history for
 * luact.ask (libedit's readline callback interface, fed by the loop, so
 * the loop thread never blocks in it), input without echo for secret asks,
 * and, for `luact chat`, Ctrl-C that cancels the model's turn instead of
 * the process.
 *
 * One terminal per process: the editor is process-wide and serves one ask
 * at a time (the ask reader of l_effect.c queues the others). Ctrl-C is
 * read by the loop of the state that enabled it (lc_l_chat_enable), never
 * by a handler. */
#ifndef LC_L_CHAT_H
#define LC_L_CHAT_H

#include <lua.h>
#include <stddef.h>

/* ---- the line editor (for l_effect.c's ask reader) ---- */

/* Called once per line edit: line is the typed line (lc_malloc'd, the
 * callee's), or NULL when the person ended the input (Ctrl-D, or Ctrl-C
 * on an empty line). Never runs inside libedit. */
typedef void (*lc_l_edit_done_fn)(void *ud, char *line, size_t len);

/* Whether asks reading fd edit lines here: fd 0, stdin and stdout are
 * terminals, and TERM is not "dumb". */
int lc_l_edit_usable(int fd);
/* Shows prompt and starts an edit: with history (name: the chat's, kept in
 * $XDG_DATA_HOME/luact/history/<name>, or in memory only when NULL), or
 * secret (no echo, no history: the reader reads the line itself and calls
 * lc_l_edit_stop). done runs from lc_l_edit_readable or on Ctrl-C. One
 * edit at a time: LC_ESTATE when another is active. */
int lc_l_edit_start(const char *prompt, size_t plen, int secret, const char *history,
                    lc_l_edit_done_fn done, void *ud);
/* 1 while an edit reads through libedit (feed it lc_l_edit_readable), 2
 * while a secret edit waits (the caller reads), 0 otherwise. */
int lc_l_edit_active(void);
/* stdin is readable: libedit takes what is there; may run done. */
void lc_l_edit_readable(void);
/* Ends the edit without a line (the ask went away) or after a secret line;
 * restores the terminal. No-op when none is active. */
void lc_l_edit_stop(void);

/* ---- Ctrl-C (luact chat) ---- */

/* Something that waits for the model and can be stopped: fn stops it (its
 * waiter then gets "cancelled") and returns 1, or returns 0. */
struct lc_l_intr {
  struct lc_l_intr *prev, *next;
  int (*fn)(struct lc_l_intr *i);
  int linked;
};
/* Linked while it waits, on the thread whose chat handles Ctrl-C (a no-op
 * elsewhere); unlink is idempotent. */
void lc_l_intr_link(struct lc_l_intr *i);
void lc_l_intr_unlink(struct lc_l_intr *i);

/* [-0, +0, -] Makes Ctrl-C on this terminal the chat's: SIGINT must already
 * be blocked in every thread (lc_signal_block, before threads start). At a
 * prompt Ctrl-C clears the line (on an empty line it ends the input, like
 * Ctrl-D); while the model works it cancels the linked waits, prints
 * "(cancelled)" and the script goes on (luact.workflow asks the person
 * again); a second Ctrl-C before the next prompt ends the process as
 * SIGINT always did. Returns 0, or LC_EIO when the loop cannot watch it. */
int lc_l_chat_enable(lua_State *L);
/* Stops watching (before the state's scheduler goes). */
void lc_l_chat_disable(lua_State *L);

#endif
