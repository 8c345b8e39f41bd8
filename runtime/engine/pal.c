/* pal.c: the PAL loop (prompt, LLM call, code extraction, sandbox run,
 * repair requests) as a state machine on the loop (see pal.h). */
#include "pal.h"

#include <stdio.h>
#include <string.h>

#include "buf.h"
#include "lc.h"
#include "loop.h"

#define OUTPUT_SHOWN 2000u /* bytes of print output in a repair request */
#define INPUT_SHOWN 4000u  /* bytes of input JSON shown in the question */

/* ---- prompt ---- */

static const char default_instructions[] =
    "Solve the problem by writing a program in Lua 5.4. Define "
    "`function solution()` that computes the answer and returns it (a "
    "number, a string, a boolean or a table of those). Write your reasoning "
    "as `--` comments and give every quantity a descriptive local variable "
    "name, as in the examples. Only plain Lua is available: the table, "
    "string, math and utf8 libraries; there is no io, os or require. When "
    "the problem comes with data, the global `input` holds it.\n"
    "Reply with the complete program in one ```lua code block.";

/* The paper's GSM8K prompt (Gao et al. 2022, appendix), in Lua. */
static const char *const default_examples[] = {
    "-- Q: Olivia has $23. She bought five bagels for $3 each. How much money "
    "does she have left?\n"
    "function solution()\n"
    "  -- Olivia starts with $23.\n"
    "  local money_initial = 23\n"
    "  -- Five bagels at $3 each.\n"
    "  local bagels = 5\n"
    "  local bagel_cost = 3\n"
    "  local money_spent = bagels * bagel_cost\n"
    "  -- What is left is what she had minus what she spent.\n"
    "  local money_left = money_initial - money_spent\n"
    "  return money_left\n"
    "end",
    "-- Q: Michael had 58 golf balls. On tuesday, he lost 23 golf balls. On "
    "wednesday, he lost 2 more. How many golf balls did he have at the end of "
    "wednesday?\n"
    "function solution()\n"
    "  -- He starts with 58 golf balls.\n"
    "  local golf_balls_initial = 58\n"
    "  -- Tuesday and wednesday each take some away.\n"
    "  local golf_balls_lost_tuesday = 23\n"
    "  local golf_balls_lost_wednesday = 2\n"
    "  local golf_balls_left = golf_balls_initial - golf_balls_lost_tuesday\n"
    "    - golf_balls_lost_wednesday\n"
    "  return golf_balls_left\n"
    "end",
    "-- Q: There were nine computers in the server room. Five more computers "
    "were installed each day, from monday to thursday. How many computers "
    "are now in the server room?\n"
    "function solution()\n"
    "  -- Nine computers at the start.\n"
    "  local computers_initial = 9\n"
    "  -- Five a day for four days (monday, tuesday, wednesday, thursday).\n"
    "  local computers_per_day = 5\n"
    "  local num_days = 4\n"
    "  local computers_added = computers_per_day * num_days\n"
    "  local computers_total = computers_initial + computers_added\n"
    "  return computers_total\n"
    "end"};

const char *lc_pal_default_instructions(void) { return default_instructions; }

const char *const *lc_pal_default_examples(size_t *n) {
  *n = LC_ARRAY_LEN(default_examples);
  return default_examples;
}

/* ---- extraction ---- */

struct block {
  size_t start, end; /* contents */
  int lua;           /* tag is empty or names Lua */
  int complete;
  char tag[24];
};

static int is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

/* Copies text without <think>...</think> sections (an unclosed one runs to
 * the end): reasoning models put drafts there. */
static char *strip_think(const char *s, size_t n, size_t *out_n) {
  struct lc_buf b;
  lc_buf_init(&b, 0);
  size_t i = 0;
  while (i < n) {
    const char *o = memmem(s + i, n - i, "<think>", 7);
    size_t stop = o ? (size_t)(o - s) : n;
    if (lc_buf_append(&b, s + i, stop - i)) {
      lc_buf_free(&b);
      return NULL;
    }
    if (!o) break;
    const char *c = memmem(o, n - stop, "</think>", 8);
    i = c ? (size_t)(c - s) + 8 : n;
  }
  if (lc_buf_reserve(&b, 0)) {
    lc_buf_free(&b);
    return NULL;
  }
  return lc_buf_steal(&b, out_n);
}

/* Does the line at s (length n) start like Lua code? */
static int looks_like_code(const char *s, size_t n) {
  while (n && (*s == ' ' || *s == '\t')) s++, n--;
  static const char *const starts[] = {"function ", "function(", "local ",
                                       "return ", "return(", "-- "};
  for (size_t i = 0; i < LC_ARRAY_LEN(starts); i++) {
    size_t k = strlen(starts[i]);
    if (n >= k && !memcmp(s, starts[i], k)) return 1;
  }
  return n == 6 && !memcmp(s, "return", 6);
}

int lc_pal_extract(const char *reply, size_t len, char **code,
                   size_t *code_len, char *why, size_t whylen) {
  *code = NULL;
  *code_len = 0;
  size_t n;
  char *t = strip_think(reply ? reply : "", reply ? len : 0, &n);
  if (!t) return LC_ENOMEM;
  struct block blocks[64];
  size_t nb = 0, dropped = 0;
  struct block *open = NULL;
  size_t first_code_line = SIZE_MAX;
  for (size_t ls = 0; ls < n;) {
    const char *nl = memchr(t + ls, '\n', n - ls);
    size_t le = nl ? (size_t)(nl - t) : n; /* line is t[ls, le) */
    size_t a = ls, z = le;
    while (a < z && (t[a] == ' ' || t[a] == '\t')) a++;
    while (z > a && is_space(t[z - 1])) z--;
    int fence = z - a >= 3 && !memcmp(t + a, "```", 3);
    if (open) {
      if (fence && z - a == 3) { /* closing fence on its own line */
        open->end = ls;
        open->complete = 1;
        open = NULL;
      } else if (z - a >= 3 && !memcmp(t + z - 3, "```", 3)) {
        /* "end```": the fence closes at the end of a code line. */
        open->end = z - 3;
        open->complete = 1;
        open = NULL;
      }
    } else if (fence) {
      if (nb == LC_ARRAY_LEN(blocks)) { /* keep the last ones */
        memmove(blocks, blocks + 1, sizeof blocks - sizeof blocks[0]);
        nb--;
        dropped++;
      }
      struct block *b = &blocks[nb++];
      memset(b, 0, sizeof *b);
      size_t ta = a + 3;
      while (ta < z && (t[ta] == ' ' || t[ta] == '\t')) ta++;
      size_t tl = 0;
      while (ta + tl < z && !is_space(t[ta + tl]) && tl < sizeof b->tag - 1) {
        char c = t[ta + tl];
        b->tag[tl++] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
      }
      b->lua = tl == 0 || !strncmp(b->tag, "lua", 3);
      b->start = nl ? le + 1 : n;
      b->end = n;
      open = b;
    } else if (first_code_line == SIZE_MAX && looks_like_code(t + ls, le - ls)) {
      first_code_line = ls;
    }
    ls = nl ? le + 1 : n;
  }
  (void)dropped;
  const struct block *pick = NULL;
  for (size_t i = nb; i-- > 0;)
    if (blocks[i].lua && blocks[i].complete) {
      pick = &blocks[i];
      break;
    }
  if (!pick && nb && blocks[nb - 1].lua && !blocks[nb - 1].complete)
    pick = &blocks[nb - 1]; /* cut off (length or stop): try what is there */
  size_t s = 0, e = 0;
  int found = 0;
  if (pick) {
    s = pick->start;
    e = pick->end;
    found = 1;
  } else if (nb) {
    snprintf(why, whylen,
             "Your reply has a ```%s code block but no Lua program. Write the "
             "program in Lua, in a ```lua code block.",
             blocks[nb - 1].tag[0] ? blocks[nb - 1].tag : "");
  } else if (first_code_line != SIZE_MAX) {
    s = first_code_line;
    e = n;
    found = 1;
  } else {
    snprintf(why, whylen,
             "Your reply contains no Lua program. Reply with the complete "
             "program in one ```lua code block: a function solution() that "
             "returns the answer.");
  }
  if (found) {
    while (e > s && is_space(t[e - 1])) e--;
    size_t k = s;
    while (k < e && is_space(t[k])) k++;
    if (k == e) {
      found = 0;
      snprintf(why, whylen,
               "Your code block is empty. Reply with the complete program in "
               "one ```lua code block: a function solution() that returns the "
               "answer.");
    }
  }
  if (!found) {
    lc_free(t);
    return LC_ENOTFOUND;
  }
  *code = lc_strndup(t + s, e - s);
  lc_free(t);
  if (!*code) return LC_ENOMEM;
  *code_len = e - s;
  return 0;
}

/* ---- running ---- */

/* `solution` is declared local before the program so that
 * `function solution()` does not create a global (the sandbox refuses
 * that); the program is the body of a vararg function so that its own
 * `return` still works; if it returns nothing, solution() is the answer.
 * Everything before the program is on its line 1, so messages keep the
 * program's line numbers. select/type are captured first in case the
 * program reassigns them. */
static const char wrap_head[] =
    "local solution; local __pal_select, __pal_type = select, type; "
    "local function __pal_ret(...) if __pal_select('#', ...) == 0 and "
    "solution ~= nil then if __pal_type(solution) == 'function' then return "
    "solution() end return solution end return ... end "
    "return __pal_ret((function(...) ";
static const char wrap_tail[] = "\nend)(...))";

/* The program for the syntax check: compiles without running. */
static const char check_code[] =
    "local f, e = load(input.code, input.name) if f then return true end "
    "return e";

/* "local function solution" / "local solution =" at the start of a line:
 * "local" becomes spaces (columns stay), so the wrapper's upvalue gets it. */
static void unlocal_solution(char *c, size_t n) {
  for (size_t ls = 0; ls < n;) {
    char *nl = memchr(c + ls, '\n', n - ls);
    size_t le = nl ? (size_t)(nl - c) : n;
    char *p = c + ls;
    size_t k = le - ls;
    if (k > 6 && !memcmp(p, "local", 5) && (p[5] == ' ' || p[5] == '\t')) {
      size_t i = 5;
      while (i < k && (p[i] == ' ' || p[i] == '\t')) i++;
      int hit = 0;
      if (k - i > 8 && !memcmp(p + i, "function", 8) &&
          (p[i + 8] == ' ' || p[i + 8] == '\t')) {
        size_t j = i + 8;
        while (j < k && (p[j] == ' ' || p[j] == '\t')) j++;
        hit = k - j >= 9 && !memcmp(p + j, "solution", 8) &&
              (p[j + 8] == '(' || p[j + 8] == ' ' || p[j + 8] == '\t');
      } else if (k - i > 8 && !memcmp(p + i, "solution", 8)) {
        size_t j = i + 8;
        while (j < k && (p[j] == ' ' || p[j] == '\t')) j++;
        hit = j < k && p[j] == '=' && (j + 1 >= k || p[j + 1] != '=');
      }
      if (hit) memset(p, ' ', 5);
    }
    ls = nl ? le + 1 : n;
  }
}

static int set_err(struct lc_sandbox_result *out, enum lc_sandbox_status st,
                   const char *msg) {
  char *m = lc_strdup(msg);
  if (!m) return LC_ENOMEM;
  lc_free(out->error);
  out->error = m;
  out->status = st;
  return 0;
}

/* After a syntax error in the wrapped program: the message for the program
 * as written (the wrapper could make it talk about a ')' the model never
 * wrote). Compiles in another sandbox; nothing runs. */
static int syntax_message(const char *code, size_t len,
                          const struct lc_sandbox_opts *o,
                          struct lc_sandbox_result *out) {
  cJSON *in = cJSON_CreateObject();
  if (!in || !cJSON_AddStringToObject(in, "code", code) ||
      !cJSON_AddStringToObject(in, "name", o->chunkname ? o->chunkname : "=pal")) {
    cJSON_Delete(in);
    return LC_ENOMEM;
  }
  (void)len;
  struct lc_sandbox_opts co = *o;
  co.fns = NULL;
  co.nfns = 0;
  co.chunkname = "=pal_check";
  /* Only compiles (load) in our own checker: no model code runs, so no
   * child process is needed, and this stays cheap on the loop thread. */
  co.in_process = 1;
  if (co.mem_limit && co.mem_limit < 4 * len + (1u << 20))
    co.mem_limit = 4 * len + (1u << 20);
  struct lc_sandbox_result cr;
  int rc = lc_sandbox_run(check_code, sizeof check_code - 1, &co, in, &cr);
  cJSON_Delete(in);
  if (rc == 0 && cr.status == LC_SANDBOX_OK && cJSON_IsString(cr.value))
    rc = set_err(out, LC_SANDBOX_SYNTAX, cr.value->valuestring);
  else if (rc == LC_EINVAL)
    rc = 0; /* keep the wrapped message */
  lc_sandbox_result_free(&cr);
  return rc;
}

/* The program inside the wrapper that declares `solution` local (lc_malloc'd,
 * NUL-terminated, *wlen bytes), or NULL on out of memory. */
static char *wrap_code(const char *code, size_t len, size_t *wlen) {
  size_t hl = sizeof wrap_head - 1, tl = sizeof wrap_tail - 1;
  char *w = lc_malloc(hl + len + tl + 1);
  if (!w) return NULL;
  memcpy(w, wrap_head, hl);
  memcpy(w + hl, code, len);
  unlocal_solution(w + hl, len);
  memcpy(w + hl + len, wrap_tail, tl + 1);
  *wlen = hl + len + tl;
  return w;
}

/* After the run of the wrapped program (rc from the sandbox): the syntax
 * message for the program as written, a nil answer as a bad result. */
static int finish_code(const char *code, size_t len,
                       const struct lc_sandbox_opts *o, int nil_ok, int rc,
                       struct lc_sandbox_result *out) {
  if (rc) return rc;
  if (out->status == LC_SANDBOX_SYNTAX) {
    rc = syntax_message(code, len, o, out);
  } else if (!nil_ok && out->status == LC_SANDBOX_OK && cJSON_IsNull(out->value)) {
    cJSON_Delete(out->value);
    out->value = NULL;
    rc = set_err(out, LC_SANDBOX_BAD_RESULT,
                 "the program returned nil: solution() must return the answer");
  }
  if (rc) {
    lc_sandbox_result_free(out);
    out->status = LC_SANDBOX_ERROR;
  }
  return rc;
}

/* A program with a NUL byte never reaches the sandbox: JSON (the syntax
 * check) cannot carry it. 0 or LC_ENOMEM. */
static int nul_result(struct lc_sandbox_result *out) {
  memset(out, 0, sizeof *out);
  out->output = lc_strdup("");
  if (!out->output || set_err(out, LC_SANDBOX_SYNTAX,
                              "the program contains a NUL byte")) {
    lc_sandbox_result_free(out);
    return LC_ENOMEM;
  }
  return 0;
}

int lc_pal_run_code(const char *code, size_t len,
                    const struct lc_sandbox_opts *o, const cJSON *input,
                    int nil_ok, struct lc_sandbox_result *out) {
  struct lc_sandbox_opts d;
  if (!o) {
    lc_sandbox_opts_init(&d);
    o = &d;
  }
  if (!code) return lc_sandbox_run(NULL, 0, o, input, out);
  if (memchr(code, '\0', len)) return nul_result(out);
  size_t wl;
  char *w = wrap_code(code, len, &wl);
  if (!w) {
    memset(out, 0, sizeof *out);
    return LC_ENOMEM;
  }
  int rc = lc_sandbox_run(w, wl, o, input, out);
  lc_free(w);
  return finish_code(code, len, o, nil_ok, rc, out);
}

int lc_pal_code_start(struct lc_loop *loop, const char *code, size_t len,
                      const struct lc_sandbox_opts *o, const cJSON *input,
                      lc_sandbox_done_fn done, void *ud, struct lc_sandbox_job **out,
                      struct lc_sandbox_result *now) {
  *out = NULL;
  memset(now, 0, sizeof *now);
  if (memchr(code, '\0', len)) {
    int rc = nul_result(now);
    return rc ? rc : 1;
  }
  size_t wl;
  char *w = wrap_code(code, len, &wl);
  if (!w) return LC_ENOMEM;
  int rc = lc_sandbox_start(loop, w, wl, o, input, done, ud, out);
  lc_free(w);
  return rc;
}

int lc_pal_code_finish(const char *code, size_t len, const struct lc_sandbox_opts *o, int nil_ok,
                       int rc, struct lc_sandbox_result *out) {
  return finish_code(code, len, o, nil_ok, rc, out);
}

/* ---- repair requests ---- */

int lc_pal_repair_text(const char *status, const char *error,
                       const char *output, size_t output_len,
                       struct lc_buf *out) {
  static const struct {
    const char *status, *label, *hint;
  } kinds[] = {
      {"syntax", "Syntax error",
       "Check the Lua syntax: every function, if, for and while needs its "
       "`end`; not-equal is ~=, strings join with .., and there is no += "
       "operator."},
      {"error", "Runtime error",
       "Check that every variable is declared (with local) and has a value "
       "before it is used, and that names are spelt the same everywhere."},
      {"memory", "Memory limit exceeded",
       "The program used too much memory: do not build huge tables or "
       "strings."},
      {"instructions", "Instruction limit exceeded",
       "The program ran too long: make sure every loop ends (is there an "
       "infinite loop?) and compute the answer directly instead of "
       "searching."},
      {"timeout", "Time limit exceeded",
       "The program ran too long: make sure every loop ends (is there an "
       "infinite loop?) and compute the answer directly instead of "
       "searching."},
      {"output", "Output limit exceeded",
       "The program printed too much: print less; the answer is what "
       "solution() returns."},
      {"bad_result", "Bad result",
       "solution() must return the answer: a number, a string, a boolean or "
       "a table of those (not nil, not a function)."},
      {"died", "The program crashed the interpreter",
       "Write a simpler program: avoid deep recursion and deeply nested "
       "coroutines."},
      {"violation", "Sandbox violation",
       "The program may only compute: no files, processes or network."},
  };
  if (status && !strcmp(status, "no_code"))
    return lc_buf_puts(out, error ? error : "Your reply contains no Lua program.");
  const char *label = "Error", *hint = NULL;
  for (size_t i = 0; i < LC_ARRAY_LEN(kinds); i++)
    if (status && !strcmp(status, kinds[i].status)) {
      label = kinds[i].label;
      hint = kinds[i].hint;
    }
  int rc = lc_buf_printf(out, "Your program did not work.\n%s: %s\n", label,
                         error ? error : "unknown error");
  if (!rc && output && output_len) {
    size_t n = output_len;
    if (n > OUTPUT_SHOWN) {
      n = OUTPUT_SHOWN;
      while (n > 0 && ((unsigned char)output[n] & 0xC0) == 0x80) n--;
    }
    rc = lc_buf_puts(out, "Output it printed before it stopped:\n");
    if (!rc) rc = lc_buf_append(out, output, n);
    if (!rc && n < output_len)
      rc = lc_buf_printf(out, "\n... (%zu more bytes)", output_len - n);
    if (!rc) rc = lc_buf_puts(out, "\n");
  }
  if (!rc && hint) rc = lc_buf_printf(out, "%s\n", hint);
  if (!rc)
    rc = lc_buf_puts(out, "Reply with the complete corrected program in one "
                          "```lua code block.");
  return rc;
}

/* ---- the run ---- */

enum phase { P_NEW, P_LLM, P_REPLY, P_RUN, P_END, P_DONE };

struct lc_pal {
  struct lc_engine e;       /* first: the base (engine.h) */
  struct lc_pal_config cfg; /* scalars; the strings are e's copies */
  cJSON *input;
  struct lc_pal_host host;
  enum phase phase;
  /* the conversation after system + user: reply, repair, reply, ... */
  struct lc_llm_msg *msgs;
  size_t n_msgs;
  struct lc_pal_attempt *att;
  size_t n_att;
  struct lc_pal_usage usage;
  enum lc_pal_status status;
  enum lc_limit limit;
  char *reason;
  /* P_RUN: the program of the last attempt runs in this sandbox child,
   * watched by the loop (the loop thread never waits for it). */
  struct lc_sandbox_job *job;
  struct lc_sandbox_opts run_opts;
  size_t reply_len; /* of the last attempt's reply (may hold NULs) */
};

static char *dup0(const char *s) { return s ? lc_strdup(s) : NULL; }

#define text_msg lc_engine_text_msg

static void msg_clear(struct lc_llm_msg *m) {
  lc_free(m->content);
  memset(m, 0, sizeof *m);
}

static void attempt_clear(struct lc_pal_attempt *a) {
  lc_free(a->reply);
  lc_free(a->code);
  lc_free(a->error);
  lc_free(a->output);
  cJSON_Delete(a->value);
  memset(a, 0, sizeof *a);
}

void lc_pal_config_default(struct lc_pal_config *cfg) {
  memset(cfg, 0, sizeof *cfg);
  cfg->repairs = LC_PAL_DEFAULT_REPAIRS;
  lc_llm_opts_default(&cfg->llm);
  lc_budget_limits_default(&cfg->limits);
  lc_sandbox_opts_init(&cfg->sandbox);
}

const char *lc_pal_status_name(enum lc_pal_status s) {
  switch (s) {
    case LC_PAL_FINISHED: return "finished";
    case LC_PAL_FAILED: return "failed";
    default: return "running";
  }
}

static void on_kick(struct lc_loop *loop, struct lc_timer *t);
static void on_wall(struct lc_loop *loop, struct lc_timer *t);

int lc_pal_new(const struct lc_pal_config *cfg, const struct lc_pal_host *host,
               struct lc_pal **out, char *err, size_t errlen) {
  *out = NULL;
  const char *bad = !cfg->question || !*cfg->question ? "no question"
                    : !cfg->base || !host || !host->done ? "no request or host"
                    : cfg->repairs < 0 ? "repairs must be >= 0"
                                       : NULL;
  if (bad) return lc_engine_refuse(cfg->base, LC_EINVAL, bad, err, errlen);
  struct lc_pal *p = lc_calloc(1, sizeof *p);
  if (!p) return lc_engine_refuse(cfg->base, LC_ENOMEM, "out of memory", err, errlen);
  p->cfg = *cfg;
  p->cfg.base = NULL;
  p->cfg.instructions = p->cfg.question = NULL;
  p->cfg.examples = NULL;
  p->cfg.input = NULL;
  p->cfg.sandbox.fns = NULL;
  p->cfg.sandbox.nfns = 0;
  p->cfg.sandbox.chunkname = "=pal";
  p->host = *host;
  struct lc_engine_config ec = {
      .base = cfg->base,
      .instructions = cfg->instructions ? cfg->instructions : default_instructions,
      .question = cfg->question,
      .examples = cfg->examples,
      .n_examples = cfg->n_examples};
  if (!ec.n_examples) ec.examples = lc_pal_default_examples(&ec.n_examples);
  int rc = lc_engine_init(&p->e, &ec, &p->usage.llm, on_kick, on_wall, p);
  if (!rc && cfg->input && !(p->input = cJSON_Duplicate(cfg->input, 1))) rc = LC_ENOMEM;
  if (rc) {
    snprintf(err, errlen, "out of memory");
    lc_pal_free(p);
    return LC_ENOMEM;
  }
  *out = p;
  return 0;
}

int lc_pal_set_price(struct lc_pal *p, const char *model, double in,
                     double out, double cached) {
  return lc_engine_set_price(&p->e, model, in, out, cached);
}

struct lc_engine *lc_pal_engine(struct lc_pal *p) { return &p->e; }

void lc_pal_free(struct lc_pal *p) {
  if (!p) return;
  lc_engine_free(&p->e); /* timers, the call in flight, the copies */
  lc_sandbox_job_free(p->job); /* kills a program still running */
  for (size_t i = 0; i < p->n_msgs; i++) msg_clear(&p->msgs[i]);
  lc_free(p->msgs);
  for (size_t i = 0; i < p->n_att; i++) attempt_clear(&p->att[i]);
  lc_free(p->att);
  cJSON_Delete(p->input);
  lc_free(p->reason);
  lc_free(p);
}

enum lc_pal_status lc_pal_result_status(const struct lc_pal *p) { return p->status; }
const char *lc_pal_reason(const struct lc_pal *p) { return p->reason; }
enum lc_limit lc_pal_limit(const struct lc_pal *p) { return p->limit; }
const struct lc_pal_usage *lc_pal_usage(const struct lc_pal *p) { return &p->usage; }

const cJSON *lc_pal_answer(const struct lc_pal *p) {
  if (p->status != LC_PAL_FINISHED || !p->n_att) return NULL;
  return p->att[p->n_att - 1].value;
}

const struct lc_pal_attempt *lc_pal_attempts(const struct lc_pal *p, size_t *n) {
  *n = p->n_att;
  return p->att;
}

/* Ends the run; done runs from the kick timer on the next pass. reason may
 * be NULL (finished). */
static void end_run(struct lc_pal *p, enum lc_pal_status st, const char *reason) {
  p->status = st;
  lc_free(p->reason);
  p->reason = reason ? lc_strdup(reason) : NULL; /* NULL on OOM: no text */
  lc_engine_end_call(&p->e);
  p->phase = P_END;
  if (lc_engine_defer(&p->e) < 0) {
    /* No timer slot: finish right here (we are on the loop already). */
    p->phase = P_DONE;
    p->host.done(p->host.ud, p);
  }
}

static void fail_oom(struct lc_pal *p) { end_run(p, LC_PAL_FAILED, "out of memory"); }

static char *system_text(const struct lc_pal *p) {
  struct lc_buf b;
  lc_buf_init(&b, 0);
  int rc = 0;
  if (*p->e.instructions) rc = lc_buf_printf(&b, "%s\n", p->e.instructions);
  for (size_t i = 0; !rc && i < p->e.n_examples; i++) {
    if (i == 0) rc = lc_buf_puts(&b, "\nExamples:\n");
    if (!rc) rc = lc_buf_printf(&b, "\n%s\n", p->e.examples[i]);
  }
  if (rc) {
    lc_buf_free(&b);
    return NULL;
  }
  return lc_buf_steal(&b, NULL);
}

/* The question as "-- Q:" comment lines, as in the examples; then the
 * input's JSON so the model knows its shape. */
static char *user_text(const struct lc_pal *p) {
  struct lc_buf b;
  lc_buf_init(&b, 0);
  int rc = lc_buf_puts(&b, "-- Q: ");
  for (const char *s = p->e.question; !rc && *s; s++) {
    rc = lc_buf_append(&b, s, 1);
    if (!rc && *s == '\n' && s[1]) rc = lc_buf_puts(&b, "-- ");
  }
  if (!rc && p->input) {
    char *j = cJSON_PrintUnformatted(p->input);
    if (!j) rc = LC_ENOMEM;
    size_t n = j ? strlen(j) : 0;
    if (!rc) rc = lc_buf_puts(&b, "\n-- The global `input` holds: ");
    if (!rc) rc = lc_buf_append(&b, j, n > INPUT_SHOWN ? INPUT_SHOWN : n);
    if (!rc && n > INPUT_SHOWN) rc = lc_buf_puts(&b, " ...");
    cJSON_free(j);
  }
  if (rc) {
    lc_buf_free(&b);
    return NULL;
  }
  return lc_buf_steal(&b, NULL);
}

/* A fresh request from the template plus PAL's stop sequence. */
static struct lc_llm_request *req_from_base(const struct lc_pal *p) {
  const struct lc_llm_request *b = p->e.base;
  struct lc_llm_request *q = lc_calloc(1, sizeof *q);
  if (!q) return NULL;
  lc_llm_request_copy_settings(q, b);
  q->model = dup0(b->model);
  q->base_url = dup0(b->base_url);
  q->api_key = dup0(b->api_key);
  q->reasoning_effort = dup0(b->reasoning_effort);
  q->cache_key = dup0(b->cache_key);
  int ok = q->model && (!b->base_url || q->base_url) && (!b->api_key || q->api_key) &&
           (!b->reasoning_effort || q->reasoning_effort) && (!b->cache_key || q->cache_key);
  if (ok) {
    q->stop = lc_calloc(b->n_stop + 1, sizeof *q->stop);
    ok = q->stop != NULL;
    for (size_t i = 0; ok && i < b->n_stop; i++)
      ok = (q->stop[q->n_stop++] = lc_strdup(b->stop[i])) != NULL;
    if (ok) ok = (q->stop[q->n_stop++] = lc_strdup(LC_PAL_STOP)) != NULL;
  }
  if (!ok) {
    lc_llm_request_delete(q);
    return NULL;
  }
  return q;
}

static void on_llm_done(struct lc_llm_call *c, void *ud);

static int send_call(struct lc_pal *p) {
  struct lc_llm_request *q = req_from_base(p);
  if (!q) return LC_ENOMEM;
  int rc = 0;
  q->msgs = lc_calloc(2 + p->n_msgs, sizeof *q->msgs);
  if (!q->msgs) rc = LC_ENOMEM;
  if (!rc && !(rc = text_msg(&q->msgs[0], LC_ROLE_SYSTEM, system_text(p)))) q->n_msgs++;
  if (!rc && !(rc = text_msg(&q->msgs[1], LC_ROLE_USER, user_text(p)))) q->n_msgs++;
  for (size_t i = 0; !rc && i < p->n_msgs; i++) {
    const struct lc_llm_msg *m = &p->msgs[i];
    rc = text_msg(&q->msgs[q->n_msgs], m->role, lc_strndup(m->content, m->content_len));
    if (!rc) q->msgs[q->n_msgs++].content_len = m->content_len;
  }
  if (rc) {
    lc_llm_request_delete(q);
    return rc;
  }
  p->phase = P_LLM;
  /* q is the call's now, also on failure. */
  return lc_llm_call_start(p->e.loop, q, &p->cfg.llm, NULL, NULL, on_llm_done, p, &p->e.call);
}

/* Called by llm_call.c from the loop when the call completes. */
static void on_llm_done(struct lc_llm_call *c, void *ud) {
  (void)c;
  struct lc_pal *p = ud;
  p->phase = P_REPLY;
  if (lc_engine_defer(&p->e) < 0) {
    lc_engine_end_call(&p->e); /* done runs from the loop: this is it */
    p->status = LC_PAL_FAILED;
    p->reason = dup0("out of memory");
    p->phase = P_DONE;
    p->host.done(p->host.ud, p);
  }
}

int lc_pal_start(struct lc_pal *p, struct lc_loop *loop) {
  struct lc_budget_limits lim = p->cfg.limits;
  lim.steps = lim.max_invalid = lim.repeat = 0; /* repairs bound attempts */
  int rc = lc_engine_start(&p->e, loop, &lim);
  if (rc) return rc;
  rc = send_call(p);
  if (rc) {
    p->e.call = NULL;
    lc_engine_end_call(&p->e);
    p->phase = P_NEW;
    return rc;
  }
  return 0;
}

static int push_msg(struct lc_pal *p, enum lc_llm_role role, const char *s, size_t n) {
  struct lc_llm_msg *v = lc_realloc(p->msgs, (p->n_msgs + 1) * sizeof *v);
  if (!v) return LC_ENOMEM;
  p->msgs = v;
  char *c = lc_strndup(s ? s : "", s ? n : 0);
  if (!c) return LC_ENOMEM;
  struct lc_llm_msg *m = &v[p->n_msgs++];
  memset(m, 0, sizeof *m);
  m->role = role;
  m->content = c;
  m->content_len = s ? n : 0;
  return 0;
}

/* Fills the attempt from a finished run (rc and res as lc_pal_run_code
 * gives them). 0 or LC_ENOMEM. */
static int take_run(struct lc_pal_attempt *a, int rc,
                    struct lc_sandbox_result *res) {
  if (rc == 0) {
    a->status = lc_sandbox_status_code(res->status);
    a->run_ms = res->elapsed_ms;
    a->instructions = res->instructions;
    a->memory = res->mem_peak;
    a->output = res->output;
    a->output_len = res->output_len;
    res->output = NULL;
    if (res->status == LC_SANDBOX_OK) {
      a->value = res->value;
      res->value = NULL;
    } else {
      a->error = res->error;
      res->error = NULL;
    }
  } else if (rc == LC_EINVAL) {
    a->status = "error";
    a->error = dup0(res->error ? res->error : "the sandbox refused the program");
    a->output = lc_strdup("");
    rc = a->error && a->output ? 0 : LC_ENOMEM;
  }
  lc_sandbox_result_free(res);
  return rc;
}

static void on_run_done(struct lc_sandbox_job *j, void *ud);

/* Extracts the program of reply into a (already holding the reply and the
 * LLM numbers) and starts its run: p->job is set and on_run_done follows,
 * or a (no code, NUL byte) is complete at once. 0 or LC_ENOMEM. */
static int try_reply(struct lc_pal *p, struct lc_pal_attempt *a, const char *text,
                     size_t len) {
  char why[512];
  size_t code_len;
  int rc = lc_pal_extract(text, len, &a->code, &code_len, why, sizeof why);
  if (rc == LC_ENOMEM) return rc;
  if (rc == LC_ENOTFOUND) {
    a->status = "no_code";
    a->output = lc_strdup("");
    a->error = lc_strdup(why);
    return a->output && a->error ? 0 : LC_ENOMEM;
  }
  struct lc_sandbox_opts o = p->cfg.sandbox;
  if (p->e.budget.lim.wall_s > 0) {
    /* The program may not outlive the run. */
    double left = p->e.budget.lim.wall_s * 1000.0 - (lc_now_ms() - p->e.budget.start_ms);
    double cap = o.wall_ms > 0 ? o.wall_ms : LC_SANDBOX_DEFAULT_WALL_MS;
    o.wall_ms = left < cap ? (left > 1 ? left : 1) : cap;
  }
  p->run_opts = o;
  p->usage.runs++;
  struct lc_sandbox_result res;
  if (memchr(a->code, '\0', code_len)) return take_run(a, nul_result(&res), &res);
  size_t wl;
  char *w = wrap_code(a->code, code_len, &wl);
  if (!w) return LC_ENOMEM;
  rc = lc_sandbox_start(p->e.loop, w, wl, &o, p->input, on_run_done, p, &p->job);
  lc_free(w);
  if (rc == LC_EIO) {
    /* No child could be spawned: an attempt that failed, not the host. */
    memset(&res, 0, sizeof res);
    res.output = lc_strdup("");
    rc = set_err(&res, LC_SANDBOX_DIED, "cannot start the sandbox process");
    if (!res.output) rc = LC_ENOMEM;
    return take_run(a, rc, &res);
  }
  if (rc == 0) p->phase = P_RUN;
  return rc;
}

/* The attempt a is complete: report it, then finish, stop or ask for a
 * repair. */
static void after_attempt(struct lc_pal *p, struct lc_pal_attempt *a) {
  int rc = 0;
  if (p->host.on_attempt) p->host.on_attempt(p->host.ud, p, a);
  /* The assistant turn, as written, for the repair conversation. */
  if (!a->value) rc = push_msg(p, LC_ROLE_ASSISTANT, a->reply, p->reply_len);
  if (rc) {
    fail_oom(p);
    return;
  }
  if (a->value) {
    end_run(p, LC_PAL_FINISHED, NULL);
    return;
  }
  struct lc_buf why;
  lc_buf_init(&why, 0);
  if ((long)p->n_att > p->cfg.repairs) {
    rc = lc_buf_printf(&why, "no working program after %zu attempt%s; last: %s: %s",
                       p->n_att, p->n_att == 1 ? "" : "s", a->status,
                       a->error ? a->error : "unknown error");
    if (rc) fail_oom(p);
    else end_run(p, LC_PAL_FAILED, why.data);
    lc_buf_free(&why);
    return;
  }
  double now = lc_now_ms();
  enum lc_limit l = lc_engine_check(&p->e, now);
  if (l != LC_LIMIT_NONE) {
    p->limit = l;
    if (lc_budget_reason(&p->e.budget, l, now, &why)) fail_oom(p);
    else end_run(p, LC_PAL_FAILED, why.data);
    lc_buf_free(&why);
    return;
  }
  rc = lc_pal_repair_text(a->status, a->error, a->output, a->output_len, &why);
  if (!rc) rc = push_msg(p, LC_ROLE_USER, why.data, why.len);
  lc_buf_free(&why);
  if (!rc) {
    rc = send_call(p);
    if (rc) p->e.call = NULL;
  }
  if (rc) fail_oom(p);
}

/* Called by sandbox.c from the loop when the program's child has ended. */
static void on_run_done(struct lc_sandbox_job *j, void *ud) {
  struct lc_pal *p = ud;
  struct lc_pal_attempt *a = &p->att[p->n_att - 1];
  struct lc_sandbox_result res = *lc_sandbox_job_result(j);
  memset(lc_sandbox_job_result(j), 0, sizeof res);
  int rc = lc_sandbox_job_rc(j);
  lc_sandbox_job_free(j);
  p->job = NULL;
  p->phase = P_REPLY;
  rc = finish_code(a->code, strlen(a->code), &p->run_opts, 0, rc, &res);
  rc = take_run(a, rc, &res);
  if (rc) {
    attempt_clear(a);
    p->n_att--;
    fail_oom(p);
    return;
  }
  after_attempt(p, a);
}

/* The kick after a reply: record the attempt and run its program. */
static void handle_reply(struct lc_pal *p) {
  struct lc_llm_call *call = p->e.call;
  p->e.call = NULL;
  const struct lc_llm_response *resp = lc_llm_call_response(call);
  if (resp->err != LC_LLM_OK) {
    char reason[1024];
    snprintf(reason, sizeof reason, "LLM error (%s): %s", lc_llm_err_name(resp->err),
             resp->err_message ? resp->err_message : "no message");
    lc_llm_call_free(call);
    end_run(p, LC_PAL_FAILED, reason);
    return;
  }
  struct lc_pal_attempt *v = lc_realloc(p->att, (p->n_att + 1) * sizeof *v);
  if (!v) {
    lc_llm_call_free(call);
    fail_oom(p);
    return;
  }
  p->att = v;
  struct lc_pal_attempt *a = &v[p->n_att++];
  memset(a, 0, sizeof *a);
  a->index = (int)p->n_att;
  a->cost_usd = lc_engine_charge(&p->e, resp, p->e.base->model);
  a->tokens_in = resp->usage.input;
  a->tokens_out = resp->usage.output;
  a->llm_ms = resp->latency_ms;
  p->reply_len = resp->text ? resp->text_len : 0;
  int rc = 0;
  if (resp->text && !(a->reply = lc_strndup(resp->text, resp->text_len))) rc = LC_ENOMEM;
  if (!rc) rc = try_reply(p, a, resp->text, resp->text ? resp->text_len : 0);
  lc_llm_call_free(call);
  if (rc) {
    /* A half-filled attempt is dropped: the host sees only whole ones. */
    attempt_clear(a);
    p->n_att--;
    fail_oom(p);
    return;
  }
  if (!p->job) after_attempt(p, a);
}

/* Kick timer (from the loop): the deferred half of every event. */
static void on_kick(struct lc_loop *loop, struct lc_timer *t) {
  (void)loop;
  struct lc_pal *p = t->ud;
  switch (p->phase) {
    case P_REPLY: handle_reply(p); break;
    case P_END:
      p->phase = P_DONE;
      p->host.done(p->host.ud, p);
      break;
    default: break;
  }
}

/* Wall timer (from the loop): the limit interrupts the LLM call in flight;
 * a sandbox run is bounded by its own (clamped) cap. */
static void on_wall(struct lc_loop *loop, struct lc_timer *t) {
  (void)loop;
  struct lc_pal *p = t->ud;
  p->e.wall_fired = 1;
  if (p->phase != P_LLM) return; /* handle_reply's check sees it */
  p->limit = LC_LIMIT_WALL;
  struct lc_buf why;
  lc_buf_init(&why, 0);
  if (lc_budget_reason(&p->e.budget, LC_LIMIT_WALL, lc_now_ms(), &why)) fail_oom(p);
  else end_run(p, LC_PAL_FAILED, why.data);
  lc_buf_free(&why);
}

/* ---- trace lines ---- */

static int put_line(cJSON *o, struct lc_buf *out) {
  char *s = o ? cJSON_PrintUnformatted(o) : NULL;
  cJSON_Delete(o);
  if (!s) return LC_ENOMEM;
  int rc = lc_buf_printf(out, "%s\n", s);
  cJSON_free(s);
  return rc;
}

int lc_pal_attempt_trace_line(const struct lc_pal_attempt *a, struct lc_buf *out) {
  cJSON *o = cJSON_CreateObject();
  int ok = o && cJSON_AddStringToObject(o, "event", "pal_attempt") &&
           cJSON_AddNumberToObject(o, "attempt", a->index) &&
           cJSON_AddStringToObject(o, "status", a->status) &&
           (!a->code || cJSON_AddStringToObject(o, "code", a->code)) &&
           (!a->error || cJSON_AddStringToObject(o, "error", a->error)) &&
           (!a->output || cJSON_AddStringToObject(o, "output", a->output)) &&
           cJSON_AddNumberToObject(o, "tokens_in", (double)a->tokens_in) &&
           cJSON_AddNumberToObject(o, "tokens_out", (double)a->tokens_out) &&
           cJSON_AddNumberToObject(o, "cost_usd", a->cost_usd) &&
           cJSON_AddNumberToObject(o, "latency_ms", a->llm_ms + a->run_ms);
  if (ok && a->value) {
    cJSON *v = cJSON_Duplicate(a->value, 1);
    ok = v && cJSON_AddItemToObject(o, "value", v);
    if (!ok) cJSON_Delete(v);
  }
  if (!ok) {
    cJSON_Delete(o);
    o = NULL;
  }
  return put_line(o, out);
}

int lc_pal_end_trace_line(const struct lc_pal *p, struct lc_buf *out) {
  cJSON *o = cJSON_CreateObject();
  const cJSON *ans = lc_pal_answer(p);
  int ok = o && cJSON_AddStringToObject(o, "event", "pal_end") &&
           cJSON_AddStringToObject(o, "status", lc_pal_status_name(p->status)) &&
           (!p->reason || cJSON_AddStringToObject(o, "reason", p->reason)) &&
           (p->limit == LC_LIMIT_NONE ||
            cJSON_AddStringToObject(o, "limit", lc_limit_name(p->limit))) &&
           cJSON_AddNumberToObject(o, "attempts", (double)p->n_att) &&
           cJSON_AddNumberToObject(o, "tokens_in", (double)p->usage.llm.input) &&
           cJSON_AddNumberToObject(o, "tokens_out", (double)p->usage.llm.output) &&
           cJSON_AddNumberToObject(o, "cost_usd", p->usage.llm.cost_usd);
  if (ok && ans) {
    cJSON *v = cJSON_Duplicate(ans, 1);
    ok = v && cJSON_AddItemToObject(o, "answer", v);
    if (!ok) cJSON_Delete(v);
  }
  if (!ok) {
    cJSON_Delete(o);
    o = NULL;
  }
  return put_line(o, out);
}
