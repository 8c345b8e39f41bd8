/* edit_dl.h: libedit for the line editor (l_chat.c), loaded on the first
 * prompt at a terminal instead of at every start.
 *
 * libedit and the three libraries it pulls in (tinfo, bsd, md) were a third
 * of the libraries every `luact run` mapped, and each one also lengthened
 * the search list of every symbol the later dlopen of libcurl resolves.
 * edit_dl.c defines the libedit functions l_chat.c calls (forwarding to the
 * loaded library); libedit's variables are reached through the pointers
 * below, which the macros put in place of their names. Include this instead
 * of <editline/readline.h>, and touch nothing of libedit before
 * lc_edit_dl_ready() returned 1. */
#ifndef LC_EDIT_DL_H
#define LC_EDIT_DL_H

#include <stdio.h>
#include <editline/readline.h>

/* 1 when libedit is loaded and every symbol resolved; the first call loads
 * it (once per process, any thread). 0: it could not be, the reason went
 * to stderr once, and the caller reads lines without it. */
int lc_edit_dl_ready(void);

struct lc_edit_dl_vars {
  int *end, *catch_signals, *catch_sigwinch, *hist_base, *hist_length;
  const char **readline_name;
  FILE **instream, **outstream;
};
extern struct lc_edit_dl_vars lc_edit_dl_vars;

#define rl_end (*lc_edit_dl_vars.end)
#define rl_catch_signals (*lc_edit_dl_vars.catch_signals)
#define rl_catch_sigwinch (*lc_edit_dl_vars.catch_sigwinch)
#define rl_readline_name (*lc_edit_dl_vars.readline_name)
#define rl_instream (*lc_edit_dl_vars.instream)
#define rl_outstream (*lc_edit_dl_vars.outstream)
#define history_base (*lc_edit_dl_vars.hist_base)
#define history_length (*lc_edit_dl_vars.hist_length)

#endif
