/* trajectory.h: the result of a run: its steps (thought, action, args,
 * observation, cost) and its end (answer, status, reason), as JSON, as
 * JSON lines for --trace FILE, and as one human line per event.
 *
 * Ownership: the trajectory owns copies of everything added to it;
 * lc_trajectory_add copies a step's strings and its args (as compact JSON
 * text) into one block per step: ten thousand waiting agents each keep
 * their steps, and a parsed tree plus separate strings cost five or six
 * allocations a step. JSON results are new trees the caller deletes.
 * Errors: 0 or negative LC_E*. */
#ifndef LC_TRAJECTORY_H
#define LC_TRAJECTORY_H

#include <cjson/cJSON.h>
#include <stdio.h>

#include "buf.h"

enum lc_traj_status {
  LC_TRAJ_RUNNING = 0,
  LC_TRAJ_FINISHED, /* the model called finish */
  LC_TRAJ_LIMIT,    /* a budget limit ended the run */
  LC_TRAJ_FAILED    /* an error ended the run (LLM, internal) */
};

struct lc_traj_step {
  int index;         /* 1-based; set by lc_trajectory_add */
  char *thought;     /* may be NULL */
  char *action;      /* may be NULL when the reply did not parse */
  cJSON *args;       /* given to lc_trajectory_add (may be NULL); NULL in
                        the trajectory's own steps, which hold args_json */
  char *args_json;   /* stored steps: args as compact JSON, or NULL */
  char *observation; /* tool result or error text shown to the model */
  int is_error;      /* observation reports an error (parse, check, tool) */
  long tokens_in, tokens_out;
  double cost_usd;
  double latency_ms; /* LLM call + tool */
  char *mem;         /* stored steps: the one block the strings live in */
};

struct lc_trajectory {
  struct lc_traj_step *steps;
  size_t n, cap;
  enum lc_traj_status status;
  char *answer; /* finished only */
  char *reason; /* limit/failed: why; may be NULL otherwise */
  int cost_unknown; /* some call's model had no price: the cost is a floor */
  int oom;          /* an end's texts could not be copied: failed, out of memory */
};

void lc_trajectory_init(struct lc_trajectory *t);
void lc_trajectory_free(struct lc_trajectory *t);

/* Appends a copy of *s (its index is ignored and assigned). Returns 0 or
 * LC_ENOMEM (the trajectory is unchanged then). */
int lc_trajectory_add(struct lc_trajectory *t, const struct lc_traj_step *s);
/* Sets the end. answer/reason are copied (either may be NULL). When a
 * copy fails (LC_ENOMEM) the end is "failed" with no answer and
 * lc_trajectory_reason says "out of memory": never "finished" without the
 * answer it had. */
int lc_trajectory_end(struct lc_trajectory *t, enum lc_traj_status status,
                      const char *answer, const char *reason);
/* Why the run ended as it did (NULL when nothing says). */
const char *lc_trajectory_reason(const struct lc_trajectory *t);

/* A new tree of the step's args (from args, else args_json), NULL when it
 * has none or on allocation failure; the caller deletes it. */
cJSON *lc_traj_step_args(const struct lc_traj_step *s);

const char *lc_traj_status_name(enum lc_traj_status s); /* "finished", ... */

/* Totals over the steps. */
long lc_trajectory_tokens(const struct lc_trajectory *t);
double lc_trajectory_cost(const struct lc_trajectory *t);

/* {"status":..,"answer":..,"reason":..,"steps":[..],"tokens_in":..,
 *  "tokens_out":..,"cost_usd":..}; NULL on allocation failure. */
cJSON *lc_trajectory_to_json(const struct lc_trajectory *t);
cJSON *lc_traj_step_to_json(const struct lc_traj_step *s);

/* JSON lines for --trace: one {"event":"step",...} object per step and one
 * {"event":"end",...} at the end, each followed by '\n'. */
int lc_traj_step_trace_line(const struct lc_traj_step *s, struct lc_buf *out);
int lc_trajectory_trace_end(const struct lc_trajectory *t, struct lc_buf *out);

/* Human lines for a terminal, e.g.
 *   step 2  Action: search[Colorado orogeny]  (412 ms, 153 tok)
 *   step 3  Action: foo[x]  (80 ms, 90 tok)  error: Unknown action "foo"...
 *   finished after 3 steps: <answer>  (1204 tok, $0.0012)
 * Newlines inside values are shown as spaces; long values are cut with
 * "...". Returns 0 or LC_EIO when the write fails. */
int lc_traj_step_print(FILE *f, const struct lc_traj_step *s);
int lc_trajectory_print_end(FILE *f, const struct lc_trajectory *t);

#endif
