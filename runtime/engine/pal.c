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

int lc_pal_run_code(const char *code, size_t len,
                    const struct lc_sandbox_opts *o, const cJSON *input,
                    int nil_ok, struct lc_sandbox_result *out) {
  struct lc_sandbox_opts d;
  if (!o) {
    lc_sandbox_opts_init(&d);
    o = &d;
  }
  if (!code) return lc_sandbox_run(NULL, 0, o, input, out);
  if (memchr(code, '\0', len)) {
    /* Never reaches the sandbox: JSON (the syntax check) cannot carry it. */
    memset(out, 0, sizeof *out);
    out->output = lc_strdup("");
    if (!out->output || set_err(out, LC_SANDBOX_SYNTAX,
                                "the program contains a NUL byte")) {
      lc_sandbox_result_free(out);
      return LC_ENOMEM;
    }
    return 0;
  }
  size_t hl = sizeof wrap_head - 1, tl = sizeof wrap_tail - 1;
  char *w = lc_malloc(hl + len + tl + 1);
  if (!w) {
    memset(out, 0, sizeof *out);
    return LC_ENOMEM;
  }
  memcpy(w, wrap_head, hl);
  memcpy(w + hl, code, len);
  unlocal_solution(w + hl, len);
  memcpy(w + hl + len, wrap_tail, tl + 1);
  int rc = lc_sandbox_run(w, hl + len + tl, o, input, out);
  lc_free(w);
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

enum phase { P_NEW, P_LLM, P_REPLY, P_END, P_DONE };

struct lc_pal {
  struct lc_pal_config cfg; /* scalars; strings below are our copies */
  char *instructions, *question;
  char **examples;
  size_t n_examples;
  cJSON *input;
  struct lc_llm_request *base;
  struct lc_price_table prices;
  struct lc_budget budget;
  struct lc_pal_host host;
  struct lc_loop *loop;
  struct lc_llm_call *call;
  struct lc_timer kick, wall;
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
  int started;
  int wall_fired;
};

static char *dup0(const char *s) { return s ? lc_strdup(s) : NULL; }

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
  if (bad) {
    snprintf(err, errlen, "%s", bad);
    lc_llm_request_delete(cfg->base);
    return LC_EINVAL;
  }
  struct lc_pal *p = lc_calloc(1, sizeof *p);
  if (!p) {
    lc_llm_request_delete(cfg->base);
    snprintf(err, errlen, "out of memory");
    return LC_ENOMEM;
  }
  p->cfg = *cfg;
  p->base = cfg->base;
  p->cfg.base = NULL;
  p->cfg.instructions = p->cfg.question = NULL;
  p->cfg.examples = NULL;
  p->cfg.input = NULL;
  p->cfg.sandbox.fns = NULL;
  p->cfg.sandbox.nfns = 0;
  p->cfg.sandbox.chunkname = "=pal";
  p->host = *host;
  lc_timer_init(&p->kick, on_kick, p);
  lc_timer_init(&p->wall, on_wall, p);
  int rc = lc_price_table_init(&p->prices);
  p->instructions = dup0(cfg->instructions ? cfg->instructions : default_instructions);
  p->question = dup0(cfg->question);
  if (!rc && (!p->instructions || !p->question)) rc = LC_ENOMEM;
  const char *const *ex = cfg->examples;
  size_t nex = cfg->n_examples;
  if (!nex) ex = lc_pal_default_examples(&nex);
  if (!rc) {
    p->examples = lc_calloc(nex ? nex : 1, sizeof *p->examples);
    if (!p->examples) rc = LC_ENOMEM;
    for (size_t i = 0; !rc && i < nex; i++) {
      if (!(p->examples[i] = lc_strdup(ex[i]))) rc = LC_ENOMEM;
      p->n_examples = i + 1;
    }
  }
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
  return lc_price_set(&p->prices, model, in, out, cached);
}

void lc_pal_free(struct lc_pal *p) {
  if (!p) return;
  if (p->loop) {
    lc_timer_stop(p->loop, &p->kick);
    lc_timer_stop(p->loop, &p->wall);
  }
  lc_llm_call_free(p->call); /* cancels a transfer in flight */
  for (size_t i = 0; i < p->n_msgs; i++) msg_clear(&p->msgs[i]);
  lc_free(p->msgs);
  for (size_t i = 0; i < p->n_att; i++) attempt_clear(&p->att[i]);
  lc_free(p->att);
  lc_llm_request_delete(p->base);
  if (p->started) lc_budget_free(&p->budget);
  lc_price_table_free(&p->prices);
  lc_free(p->instructions);
  lc_free(p->question);
  for (size_t i = 0; i < p->n_examples; i++) lc_free(p->examples[i]);
  lc_free(p->examples);
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
  lc_llm_call_free(p->call);
  p->call = NULL;
  lc_timer_stop(p->loop, &p->wall);
  p->phase = P_END;
  if (lc_timer_start(p->loop, &p->kick, 0) < 0) {
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
  if (*p->instructions) rc = lc_buf_printf(&b, "%s\n", p->instructions);
  for (size_t i = 0; !rc && i < p->n_examples; i++) {
    if (i == 0) rc = lc_buf_puts(&b, "\nExamples:\n");
    if (!rc) rc = lc_buf_printf(&b, "\n%s\n", p->examples[i]);
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
  for (const char *s = p->question; !rc && *s; s++) {
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

static int text_msg(struct lc_llm_msg *m, enum lc_llm_role role, char *owned) {
  memset(m, 0, sizeof *m);
  if (!owned) return LC_ENOMEM;
  m->role = role;
  m->content = owned;
  m->content_len = strlen(owned);
  return 0;
}

/* A fresh request from the template plus PAL's stop sequence. */
static struct lc_llm_request *req_from_base(const struct lc_pal *p) {
  const struct lc_llm_request *b = p->base;
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
  return lc_llm_call_start(p->loop, q, &p->cfg.llm, NULL, NULL, on_llm_done, p, &p->call);
}

/* Called by llm_call.c from the loop when the call completes. */
static void on_llm_done(struct lc_llm_call *c, void *ud) {
  (void)c;
  struct lc_pal *p = ud;
  p->phase = P_REPLY;
  if (lc_timer_start(p->loop, &p->kick, 0) < 0) {
    lc_llm_call_free(p->call); /* done runs from the loop: this is it */
    p->call = NULL;
    p->status = LC_PAL_FAILED;
    p->reason = dup0("out of memory");
    lc_timer_stop(p->loop, &p->wall);
    p->phase = P_DONE;
    p->host.done(p->host.ud, p);
  }
}

int lc_pal_start(struct lc_pal *p, struct lc_loop *loop) {
  if (p->started) return LC_ESTATE;
  p->started = 1;
  p->loop = loop;
  struct lc_budget_limits lim = p->cfg.limits;
  lim.steps = lim.max_invalid = lim.repeat = 0; /* repairs bound attempts */
  lc_budget_init(&p->budget, &lim, &p->prices, lc_now_ms());
  if (lim.wall_s > 0 && lc_timer_start(loop, &p->wall, lim.wall_s * 1000.0) < 0)
    return LC_ENOMEM;
  int rc = send_call(p);
  if (rc) {
    p->call = NULL;
    lc_timer_stop(loop, &p->wall);
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

/* Extracts and runs the program of reply into a (already holding the
 * reply and the LLM numbers). 0 or LC_ENOMEM. */
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
  if (p->budget.lim.wall_s > 0) {
    /* The program may not outlive the run. */
    double left = p->budget.lim.wall_s * 1000.0 - (lc_now_ms() - p->budget.start_ms);
    double cap = o.wall_ms > 0 ? o.wall_ms : LC_SANDBOX_DEFAULT_WALL_MS;
    o.wall_ms = left < cap ? (left > 1 ? left : 1) : cap;
  }
  struct lc_sandbox_result res;
  rc = lc_pal_run_code(a->code, code_len, &o, p->input, 0, &res);
  p->usage.runs++;
  if (rc == 0) {
    a->status = lc_sandbox_status_code(res.status);
    a->run_ms = res.elapsed_ms;
    a->instructions = res.instructions;
    a->memory = res.mem_peak;
    a->output = res.output;
    a->output_len = res.output_len;
    res.output = NULL;
    if (res.status == LC_SANDBOX_OK) {
      a->value = res.value;
      res.value = NULL;
    } else {
      a->error = res.error;
      res.error = NULL;
    }
  } else if (rc == LC_EINVAL) {
    a->status = "error";
    a->error = dup0(res.error ? res.error : "the sandbox refused the program");
    a->output = lc_strdup("");
    rc = a->error && a->output ? 0 : LC_ENOMEM;
  }
  lc_sandbox_result_free(&res);
  return rc;
}

/* The kick after a reply: record the attempt, then finish, stop or ask for
 * a repair. */
static void handle_reply(struct lc_pal *p) {
  struct lc_llm_call *call = p->call;
  p->call = NULL;
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
  const char *model = resp->model ? resp->model : p->base->model;
  a->cost_usd = lc_budget_charge(&p->budget, &resp->usage, model);
  a->tokens_in = resp->usage.input;
  a->tokens_out = resp->usage.output;
  a->llm_ms = resp->latency_ms;
  p->usage.input += resp->usage.input;
  p->usage.output += resp->usage.output;
  p->usage.cached += resp->usage.cached;
  p->usage.llm_calls++;
  p->usage.cost_usd += a->cost_usd;
  p->usage.cost_unknown = p->budget.cost_unknown;
  int rc = 0;
  if (resp->text && !(a->reply = lc_strndup(resp->text, resp->text_len))) rc = LC_ENOMEM;
  if (!rc) rc = try_reply(p, a, resp->text, resp->text ? resp->text_len : 0);
  if (rc) {
    /* A half-filled attempt is dropped: the host sees only whole ones. */
    attempt_clear(a);
    p->n_att--;
    lc_llm_call_free(call);
    fail_oom(p);
    return;
  }
  if (p->host.on_attempt) p->host.on_attempt(p->host.ud, p, a);
  /* The assistant turn, as written, for the repair conversation. */
  if (!a->value) rc = push_msg(p, LC_ROLE_ASSISTANT, resp->text, resp->text_len);
  lc_llm_call_free(call);
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
  enum lc_limit l = lc_budget_check(&p->budget, now);
  if (l == LC_LIMIT_NONE && p->wall_fired) l = LC_LIMIT_WALL;
  if (l != LC_LIMIT_NONE) {
    p->limit = l;
    if (lc_budget_reason(&p->budget, l, now, &why)) fail_oom(p);
    else end_run(p, LC_PAL_FAILED, why.data);
    lc_buf_free(&why);
    return;
  }
  rc = lc_pal_repair_text(a->status, a->error, a->output, a->output_len, &why);
  if (!rc) rc = push_msg(p, LC_ROLE_USER, why.data, why.len);
  lc_buf_free(&why);
  if (!rc) {
    rc = send_call(p);
    if (rc) p->call = NULL;
  }
  if (rc) fail_oom(p);
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
  p->wall_fired = 1;
  if (p->phase != P_LLM) return; /* handle_reply's check sees it */
  p->limit = LC_LIMIT_WALL;
  struct lc_buf why;
  lc_buf_init(&why, 0);
  if (lc_budget_reason(&p->budget, LC_LIMIT_WALL, lc_now_ms(), &why)) fail_oom(p);
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
           cJSON_AddNumberToObject(o, "tokens_in", (double)p->usage.input) &&
           cJSON_AddNumberToObject(o, "tokens_out", (double)p->usage.output) &&
           cJSON_AddNumberToObject(o, "cost_usd", p->usage.cost_usd);
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
