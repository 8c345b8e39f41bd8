/* l_engine.h: the Lua glue every engine binding (l_react.c, l_pal.c) is
 * built on: the run box's common part, the options every engine reads
 * (LLM options, question, instructions, examples, limits, prices, verbose),
 * the live/trace output, and the continuation that hands each item (a
 * step, an attempt) to the script's callback, waits, and returns the
 * result. Each binding keeps only what differs: its engine's own options,
 * its item and result tables, and (react) its tool tasks.
 *
 * Also the settings the command line hands to every run in a state
 * (main.c stays CLI-only: it fills lc_run_opts, the engines read it).
 *
 * Ownership: a run box is a userdata whose FIRST member is struct
 * lc_l_run; it is the to-be-closed value at stack index LC_L_RUN_BOX, so a
 * normal return, an error and a kill all end it through one idempotent
 * close (lc_l_run_close: the class's close, then the request and the
 * trace file). lc_l_set_run_opts copies what it is given. */
#ifndef LC_L_ENGINE_H
#define LC_L_ENGINE_H

#include <lua.h>
#include <stddef.h>
#include <stdio.h>

#include "buf.h"
#include "l_chat.h"
#include "sched.h"

struct lc_budget_limits;
struct lc_engine;
struct lc_llm_opts;
struct lc_llm_request;

struct lc_run_opts {
  int quiet;              /* no live lines or status on stderr, even on a tty */
  const char *trace_path; /* append every step and each run's end as JSON
                             lines (NULL = no trace) */
  const char *history;    /* luact.ask's line history on a terminal: the
                             chat's name (NULL = kept in memory only) */
};

/* [-0, +0, m] Stores a copy of o for the runs of L. */
void lc_l_set_run_opts(lua_State *L, const struct lc_run_opts *o);
/* [-0, +0, -] Reads them back: zeroed when none were set; trace_path and
 * history are borrowed from the registry. */
void lc_l_get_run_opts(lua_State *L, struct lc_run_opts *o);

struct lc_l_run;

/* What differs between engines. */
struct lc_l_run_class {
  const char *mt;  /* metatable of the box ("luact.ReactRun") */
  const char *who; /* "luact.react", for messages */
  int cb_idx;      /* stack index of the per-item callback (a function or nil) */
  /* Optional: Lua work before items are delivered (react: spawn and
   * collect its tool tasks). May raise. */
  void (*pump)(lua_State *L, struct lc_l_run *run);
  size_t (*count)(struct lc_l_run *run); /* items recorded so far */
  /* [-0, +1, m] Item i (0-based) as a table. */
  void (*push_item)(lua_State *L, struct lc_l_run *run, size_t i);
  /* [-0, +1, m] The result table of the ended run. */
  void (*push_result)(lua_State *L, struct lc_l_run *run);
  /* Frees the engine's run (idempotent parts of the close). */
  void (*close)(struct lc_l_run *run);
  /* Optional: the engine's base (its LLM call in flight), or NULL. */
  struct lc_engine *(*engine)(struct lc_l_run *run);
};

/* The common part of a run box; the box starts with it. */
struct lc_l_run {
  const struct lc_l_run_class *cls;
  struct lc_task *task;
  struct lc_wait wait;
  struct lc_llm_request *req; /* until the engine owns it */
  size_t delivered;           /* items handed to the callback */
  int done;
  int closed;
  int live; /* print live lines on stderr */
  FILE *trace;
  struct lc_buf line; /* a trace line, reused */
  struct lc_l_intr intr; /* Ctrl-C in luact chat stops its LLM call */
};

#define LC_L_RUN_OPTS 1 /* the options table */
#define LC_L_RUN_BOX 2  /* the run box (to-be-closed) */

/* [-0, +0, m] Registers the box metatable of cls (__gc, __close). */
void lc_l_run_register(lua_State *L, const struct lc_l_run_class *cls);

/* [-?, +1, e] The prologue of luact.<engine>{...}: checks the options
 * table at 1 (against the option set cls->who), leaves it alone on the
 * stack, makes a zeroed box of size bytes at LC_L_RUN_BOX (to-be-closed),
 * finds the task, allocates the request and reads the LLM options into it
 * and llm (common ones, journal source, stream). Returns the box. */
void *lc_l_run_new(lua_State *L, const struct lc_l_run_class *cls, size_t size,
                   struct lc_llm_opts *llm);

/* [-0, +0, e] opts.question (required, non-empty) and opts.instructions. */
void lc_l_run_texts(lua_State *L, const char *who, const char **question,
                    const char **instructions);
/* [-0, +2, e] opts.examples: pushes the list and a scratch array that keep
 * *ex alive (two nils when absent, *n = 0). allow_empty: {} is allowed. */
void lc_l_run_examples(lua_State *L, const char *who, int allow_empty,
                       const char *const **ex, size_t *n);
/* [-0, +0, e] opts.limits, the names allowed by option set `set` ("luact.pal
 * limits"); false turns a limit off, like 0. */
void lc_l_run_limits(lua_State *L, const char *who, const char *set,
                     struct lc_budget_limits *lim);
/* [-0, +0, e] opts.prices = {[model] = {input=, output=, cached=}}. */
void lc_l_run_prices(lua_State *L, const char *who, struct lc_engine *e);
/* [-0, +0, e] Live lines (opts.verbose wins; else on a terminal unless
 * --quiet), with the status line (l_status.h) on llm when live on a
 * terminal, and the trace file of --trace. Before the engine copies llm. */
void lc_l_run_output(lua_State *L, struct lc_l_run *run, struct lc_llm_opts *llm);

/* The buffer for one trace line (emptied), or NULL without --trace. */
struct lc_buf *lc_l_run_trace_line(struct lc_l_run *run);
/* Appends that line to the trace (secrets scrubbed), flushed. */
void lc_l_run_trace(struct lc_l_run *run);
/* From an engine callback: wakes the continuation. */
void lc_l_run_wake(struct lc_l_run *run);

/* [-0, +0, y] Ends luact.<engine>'s C function: waits for the run, whose
 * continuation delivers items to the callback and returns the result. */
int lc_l_run_wait(lua_State *L, struct lc_l_run *run);

/* The one close (idempotent): the class's close, the request, the trace. */
void lc_l_run_close(struct lc_l_run *run);

/* [-0, +0, m] usage.* and cost fields of a result: pushes the usage table
 * with the counts every engine has (extra: how many the caller adds). */
struct lc_engine_usage;
void lc_l_run_push_usage(lua_State *L, const struct lc_engine_usage *u, int extra);
/* [-0, +0, m] result.cost/cost_known from u, on the table on top. */
void lc_l_run_set_cost(lua_State *L, const struct lc_engine_usage *u);
/* [-0, +1, m] A JSON-array-marked list of n items made by cls->push_item. */
void lc_l_run_push_items(lua_State *L, struct lc_l_run *run, size_t n);

#endif
