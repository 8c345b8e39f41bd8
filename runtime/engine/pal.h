/* pal.h: PAL, program-aided language models (Gao et al. 2022), as a state
 * machine on the loop: prompt (instructions + few-shot programs) -> LLM
 * call -> extract the Lua program from the reply -> run it in the sandbox
 * (sandbox.h) -> the value is the answer; a reply without code, a syntax
 * or runtime error, a cap hit or a bad result goes back to the model as a
 * repair request, at most `repairs` times. Lua-free: the host (l_pal.c)
 * sees attempts and the end through callbacks.
 *
 * Prompt. System: the instructions, then the examples, each a "-- Q: ..."
 * comment line followed by a `function solution() ... end` whose reasoning
 * is in comments and named locals (the paper's GSM8K prompt in Lua). User:
 * the question as "-- Q:" comment lines (and the JSON of `input`, when
 * given). Requests add the stop sequence "\n\n-- Q:" so that a model that
 * continues the pattern stops before inventing the next question.
 *
 * Running (lc_pal_run_code). The program runs in a fresh sandbox; its
 * answer is what the chunk returns, else solution() when the chunk defines
 * it (`function solution()` is allowed although the sandbox refuses new
 * globals: the code runs inside a wrapper that declares `solution` local;
 * line numbers in messages are the program's own). nil is a bad result.
 *
 * Completion (STYLE 3): lc_pal_start either fails now (no callback ever
 * runs) or succeeds, and then done runs exactly once, from the loop, unless
 * lc_pal_free comes first (then never). on_attempt also runs only from the
 * loop. The program runs in a sandbox child driven by the loop (the loop
 * thread never waits for it), bounded by its wall-clock cap (clamped to
 * what is left of the run's wall time).
 *
 * Ownership: lc_pal_new copies every config string, the examples and the
 * input, and takes ownership of cfg->base (the request template) also on
 * failure. Attempts, answer and usage belong to the run until lc_pal_free. */
#ifndef LC_PAL_H
#define LC_PAL_H

#include <cjson/cJSON.h>
#include <stddef.h>

#include "budget.h"
#include "engine.h"
#include "llm.h"
#include "llm_call.h"
#include "sandbox.h"

struct lc_loop;
struct lc_pal;

#define LC_PAL_DEFAULT_REPAIRS 2
#define LC_PAL_STOP "\n\n-- Q:"

enum lc_pal_status { LC_PAL_RUNNING = 0, LC_PAL_FINISHED, LC_PAL_FAILED };

/* One model reply and what became of it. Strings are owned by the run. */
struct lc_pal_attempt {
  int index;          /* 1-based */
  char *reply;        /* the model's text (may be NULL: empty reply) */
  char *code;         /* the extracted program; NULL when there was none */
  const char *status; /* static: "ok", a sandbox code (sandbox.h:
                         "syntax", "error", "memory", "instructions",
                         "timeout", "output", "bad_result") or "no_code" */
  char *error;        /* NULL on ok; what the model was told was wrong */
  char *output;       /* print output of the program ("" when none ran) */
  size_t output_len;
  cJSON *value;       /* on ok: the answer */
  long tokens_in, tokens_out;
  double cost_usd;
  double llm_ms, run_ms; /* latency: the LLM call, the sandbox run */
  long instructions;     /* VM instructions the program used */
  size_t memory;         /* peak bytes of the sandbox */
};

struct lc_pal_usage {
  struct lc_engine_usage llm; /* tokens, calls, cost (engine.h) */
  long runs;                  /* sandbox runs */
};

struct lc_pal_host {
  /* Optional: an attempt was recorded (live output). */
  void (*on_attempt)(void *ud, struct lc_pal *p, const struct lc_pal_attempt *a);
  /* The run ended: see lc_pal_result_status and friends. */
  void (*done)(void *ud, struct lc_pal *p);
  void *ud;
};

struct lc_pal_config {
  /* Request template: provider, model, endpoint, sampling, stop, stream.
   * Messages are the engine's. */
  struct lc_llm_request *base;
  struct lc_llm_opts llm;
  const char *instructions; /* NULL = the built-in ones */
  const char *question;     /* required */
  /* Few-shot examples, verbatim ("-- Q: ...\nfunction solution() ...");
   * any given replace the built-in ones. */
  const char *const *examples;
  size_t n_examples;
  int repairs; /* repair requests after the first attempt; default 2 */
  /* Caps of every run (zero fields = sandbox defaults). fns/nfns are
   * ignored: PAL programs get no host functions. */
  struct lc_sandbox_opts sandbox;
  const cJSON *input; /* visible to the program as `input`; copied */
  /* tokens, cost_usd and wall_s apply; steps, max_invalid and repeat do
   * not (repairs bound the attempts). */
  struct lc_budget_limits limits;
};

/* Defaults: 2 repairs, sandbox defaults, default token/cost/wall limits. */
void lc_pal_config_default(struct lc_pal_config *cfg);

/* Creates a run (not started). Takes ownership of cfg->base, also on
 * failure. Returns 0, LC_EINVAL (no question, no request or no done
 * callback, negative repairs; message in err) or LC_ENOMEM. */
int lc_pal_new(const struct lc_pal_config *cfg, const struct lc_pal_host *host,
               struct lc_pal **out, char *err, size_t errlen);
/* Adds or replaces a price (USD per 1M tokens) for cost accounting. */
int lc_pal_set_price(struct lc_pal *p, const char *model, double in,
                     double out, double cached);
/* The run's base (engine.h): prices, usage, the loop it runs on. */
struct lc_engine *lc_pal_engine(struct lc_pal *p);
/* Starts the first LLM call on loop. 0 (done will run exactly once), or
 * LC_ESTATE (already started) / LC_ENOMEM with no callback. */
int lc_pal_start(struct lc_pal *p, struct lc_loop *loop);
/* Stops the LLM call and timers in flight and frees the run; no callback
 * runs from here or afterwards. NULL is fine. */
void lc_pal_free(struct lc_pal *p);

enum lc_pal_status lc_pal_result_status(const struct lc_pal *p);
const char *lc_pal_status_name(enum lc_pal_status s); /* "running", ... */
/* The answer on finished, else NULL. Owned by the run. */
const cJSON *lc_pal_answer(const struct lc_pal *p);
/* Why the run failed (NULL when finished). */
const char *lc_pal_reason(const struct lc_pal *p);
/* Which limit ended the run (LC_LIMIT_NONE otherwise). */
enum lc_limit lc_pal_limit(const struct lc_pal *p);
const struct lc_pal_attempt *lc_pal_attempts(const struct lc_pal *p, size_t *n);
const struct lc_pal_usage *lc_pal_usage(const struct lc_pal *p);

/* ---- the pieces, also used by the code tool and tests ---- */

/* Takes the program out of a model reply: the last complete ```lua or
 * ``` fenced block (other languages' blocks are skipped); else an
 * unterminated fence's contents; else, with no fence at all, the text from
 * its first line that starts like Lua code (function, local, return, --).
 * <think>...</think> sections are ignored. Returns 0 with *code (lc_malloc'd,
 * NUL-terminated, length *code_len), LC_ENOTFOUND with a message for the
 * model in why, or LC_ENOMEM. */
int lc_pal_extract(const char *reply, size_t len, char **code,
                   size_t *code_len, char *why, size_t whylen);

/* Runs a PAL program in a fresh sandbox (o may be NULL; o->fns are used as
 * given): the chunk's return value, else solution() if the chunk defines
 * it. Syntax errors are reported for the program as written. A nil answer
 * is LC_SANDBOX_BAD_RESULT unless nil_ok (then out->value is JSON null).
 * Same contract as lc_sandbox_run: 0 when the program ran (out->status
 * says how it ended), LC_EINVAL/LC_ENOMEM otherwise; *out is always
 * released with lc_sandbox_result_free. */
int lc_pal_run_code(const char *code, size_t len,
                    const struct lc_sandbox_opts *o, const cJSON *input,
                    int nil_ok, struct lc_sandbox_result *out);
/* lc_pal_run_code driven by the loop (the thread never waits for the
 * child): starts the wrapped program as lc_sandbox_start does (done runs
 * once, from the loop, unless *out is freed first) and returns 0; or
 * returns 1 with the outcome already in *now (a program that never reaches
 * the sandbox, e.g. one with a NUL byte), or a negative code. After done,
 * lc_pal_code_finish turns the job's rc and result into what
 * lc_pal_run_code would have returned. */
int lc_pal_code_start(struct lc_loop *loop, const char *code, size_t len,
                      const struct lc_sandbox_opts *o, const cJSON *input,
                      lc_sandbox_done_fn done, void *ud, struct lc_sandbox_job **out,
                      struct lc_sandbox_result *now);
int lc_pal_code_finish(const char *code, size_t len, const struct lc_sandbox_opts *o, int nil_ok,
                       int rc, struct lc_sandbox_result *out);

/* The repair request for a failed attempt (status + error + output), as the
 * model sees it. Appends to out; 0 or LC_ENOMEM. */
int lc_pal_repair_text(const char *status, const char *error,
                       const char *output, size_t output_len,
                       struct lc_buf *out);

/* The built-in instructions and examples. */
const char *lc_pal_default_instructions(void);
const char *const *lc_pal_default_examples(size_t *n);

/* JSON for --trace ({"event":"pal_attempt",...} / {"event":"pal_end",...}),
 * one line each with '\n'; 0 or LC_ENOMEM. */
int lc_pal_attempt_trace_line(const struct lc_pal_attempt *a,
                              struct lc_buf *out);
int lc_pal_end_trace_line(const struct lc_pal *p, struct lc_buf *out);

#endif
