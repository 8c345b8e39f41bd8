/* trajectory.c: the run result and its JSON, trace and terminal forms. */
#include "trajectory.h"

#include <string.h>

#include "lc.h"
#include "secrets.h"

void lc_trajectory_init(struct lc_trajectory *t) { memset(t, 0, sizeof *t); }

static void step_clear(struct lc_traj_step *s) { lc_free(s->mem); }

void lc_trajectory_free(struct lc_trajectory *t) {
  for (size_t i = 0; i < t->n; i++) step_clear(&t->steps[i]);
  lc_free(t->steps);
  lc_free(t->answer);
  lc_free(t->reason);
  memset(t, 0, sizeof *t);
}

/* Copies s (NULL stays NULL); returns 0 or LC_ENOMEM. */
static int dup_opt(char **dst, const char *s) {
  *dst = NULL;
  if (!s) return 0;
  *dst = lc_strdup(s);
  return *dst ? 0 : LC_ENOMEM;
}

int lc_trajectory_add(struct lc_trajectory *t, const struct lc_traj_step *s) {
  if (t->n == t->cap) {
    size_t cap = t->cap ? t->cap * 2 : 8;
    struct lc_traj_step *v = lc_realloc(t->steps, cap * sizeof *v);
    if (!v) return LC_ENOMEM;
    t->steps = v;
    t->cap = cap;
  }
  char *args = NULL;
  if (s->args && !(args = cJSON_PrintUnformatted(s->args))) return LC_ENOMEM;
  const char *src[4] = {s->thought, s->action, s->observation, args ? args : s->args_json};
  size_t len[4], total = 0;
  for (int i = 0; i < 4; i++) total += len[i] = src[i] ? strlen(src[i]) + 1 : 0;
  struct lc_traj_step c = *s;
  c.index = (int)t->n + 1;
  c.args = NULL;
  c.mem = total ? lc_malloc(total) : NULL;
  if (total && !c.mem) {
    cJSON_free(args);
    return LC_ENOMEM;
  }
  char **dst[4] = {&c.thought, &c.action, &c.observation, &c.args_json};
  char *at = c.mem;
  for (int i = 0; i < 4; i++) {
    *dst[i] = src[i] ? memcpy(at, src[i], len[i]) : NULL;
    /* Stored without known secrets (a tool's output, an LLM error); args
     * are JSON text and stay parseable. */
    if (*dst[i]) lc_secrets_scrub(*dst[i], len[i] - 1, i == 3 ? LC_SCRUB_JSON : LC_SCRUB_TEXT);
    at += len[i];
  }
  cJSON_free(args);
  t->steps[t->n++] = c;
  return 0;
}

int lc_trajectory_end(struct lc_trajectory *t, enum lc_traj_status status,
                      const char *answer, const char *reason) {
  char *a = NULL, *r = NULL;
  if (dup_opt(&a, answer) || dup_opt(&r, reason)) {
    lc_free(a);
    lc_free(t->answer);
    lc_free(t->reason);
    t->answer = t->reason = NULL;
    t->status = LC_TRAJ_FAILED;
    t->oom = 1;
    return LC_ENOMEM;
  }
  lc_secrets_scrub_str(a);
  lc_secrets_scrub_str(r); /* e.g. an LLM error that echoed the key */
  lc_free(t->answer);
  lc_free(t->reason);
  t->answer = a;
  t->reason = r;
  t->status = status;
  return 0;
}

const char *lc_trajectory_reason(const struct lc_trajectory *t) {
  return t->reason ? t->reason : t->oom ? "out of memory" : NULL;
}

const char *lc_traj_status_name(enum lc_traj_status s) {
  switch (s) {
  case LC_TRAJ_RUNNING: return "running";
  case LC_TRAJ_FINISHED: return "finished";
  case LC_TRAJ_LIMIT: return "limit";
  case LC_TRAJ_FAILED: return "failed";
  }
  return "unknown";
}

long lc_trajectory_tokens(const struct lc_trajectory *t) {
  long n = 0;
  for (size_t i = 0; i < t->n; i++) n += t->steps[i].tokens_in + t->steps[i].tokens_out;
  return n;
}

double lc_trajectory_cost(const struct lc_trajectory *t) {
  double c = 0;
  for (size_t i = 0; i < t->n; i++) c += t->steps[i].cost_usd;
  return c;
}

cJSON *lc_traj_step_args(const struct lc_traj_step *s) {
  if (s->args) return cJSON_Duplicate(s->args, 1);
  return s->args_json ? cJSON_Parse(s->args_json) : NULL;
}

/* cJSON_Add*ToObject return NULL on failure; fold that into one flag. */
static void add_str(cJSON *o, const char *k, const char *v, int *ok) {
  if (!(v ? cJSON_AddStringToObject(o, k, v) : cJSON_AddNullToObject(o, k)))
    *ok = 0;
}
static void add_num(cJSON *o, const char *k, double v, int *ok) {
  if (!cJSON_AddNumberToObject(o, k, v)) *ok = 0;
}

static int fill_step(cJSON *o, const struct lc_traj_step *s) {
  int ok = 1;
  add_num(o, "index", s->index, &ok);
  add_str(o, "thought", s->thought, &ok);
  add_str(o, "action", s->action, &ok);
  cJSON *args = lc_traj_step_args(s);
  if (args)
    cJSON_AddItemToObject(o, "args", args);
  else if (s->args || s->args_json) /* it has args: the copy failed */
    ok = 0;
  else if (!cJSON_AddNullToObject(o, "args"))
    ok = 0;
  add_str(o, "observation", s->observation, &ok);
  if (!cJSON_AddBoolToObject(o, "is_error", s->is_error)) ok = 0;
  add_num(o, "tokens_in", (double)s->tokens_in, &ok);
  add_num(o, "tokens_out", (double)s->tokens_out, &ok);
  add_num(o, "cost_usd", s->cost_usd, &ok);
  add_num(o, "latency_ms", s->latency_ms, &ok);
  return ok;
}

cJSON *lc_traj_step_to_json(const struct lc_traj_step *s) {
  cJSON *o = cJSON_CreateObject();
  if (o && !fill_step(o, s)) {
    cJSON_Delete(o);
    o = NULL;
  }
  return o;
}

static int fill_end(cJSON *o, const struct lc_trajectory *t) {
  int ok = 1;
  add_str(o, "status", lc_traj_status_name(t->status), &ok);
  add_str(o, "answer", t->answer, &ok);
  add_str(o, "reason", t->reason, &ok);
  add_num(o, "steps_count", (double)t->n, &ok);
  long in = 0, out = 0;
  for (size_t i = 0; i < t->n; i++) {
    in += t->steps[i].tokens_in;
    out += t->steps[i].tokens_out;
  }
  add_num(o, "tokens_in", (double)in, &ok);
  add_num(o, "tokens_out", (double)out, &ok);
  add_num(o, "cost_usd", lc_trajectory_cost(t), &ok);
  return ok;
}

cJSON *lc_trajectory_to_json(const struct lc_trajectory *t) {
  cJSON *o = cJSON_CreateObject();
  if (!o || !fill_end(o, t)) goto fail;
  cJSON *steps = cJSON_AddArrayToObject(o, "steps");
  if (!steps) goto fail;
  for (size_t i = 0; i < t->n; i++) {
    cJSON *s = lc_traj_step_to_json(&t->steps[i]);
    if (!s) goto fail;
    cJSON_AddItemToArray(steps, s);
  }
  return o;
fail:
  cJSON_Delete(o);
  return NULL;
}

/* Appends j compactly + '\n' and deletes j (takes ownership). */
static int put_line(cJSON *j, struct lc_buf *out) {
  char *s = j ? cJSON_PrintUnformatted(j) : NULL;
  cJSON_Delete(j);
  if (!s) return LC_ENOMEM;
  lc_secrets_scrub(s, strlen(s), LC_SCRUB_JSON); /* last line before the trace */
  int rc = lc_buf_puts(out, s);
  cJSON_free(s);
  return rc ? rc : lc_buf_puts(out, "\n");
}

int lc_traj_step_trace_line(const struct lc_traj_step *s, struct lc_buf *out) {
  cJSON *o = cJSON_CreateObject();
  if (o && (!cJSON_AddStringToObject(o, "event", "step") || !fill_step(o, s))) {
    cJSON_Delete(o);
    o = NULL;
  }
  return put_line(o, out);
}

int lc_trajectory_trace_end(const struct lc_trajectory *t, struct lc_buf *out) {
  cJSON *o = cJSON_CreateObject();
  if (o && (!cJSON_AddStringToObject(o, "event", "end") || !fill_end(o, t))) {
    cJSON_Delete(o);
    o = NULL;
  }
  return put_line(o, out);
}

/* Writes s on one line: control characters become spaces, at most max bytes
 * (cut at a UTF-8 boundary, then "..."). */
static void put_flat(FILE *f, const char *s, size_t max) {
  size_t n = strlen(s), cut = n;
  if (n > max) {
    cut = max;
    while (cut > 0 && ((unsigned char)s[cut] & 0xC0) == 0x80) cut--;
  }
  for (size_t i = 0; i < cut; i++) {
    unsigned char c = (unsigned char)s[i];
    fputc(c < 0x20 || c == 0x7f ? ' ' : c, f);
  }
  if (cut < n) fputs("...", f);
}

/* The input as a person would write it: the single string argument as is,
 * anything else as compact JSON. */
static void put_args(FILE *f, const struct lc_traj_step *st) {
  cJSON *args = lc_traj_step_args(st);
  if (!args) return;
  if (cJSON_IsObject(args) && args->child && !args->child->next &&
      cJSON_IsString(args->child)) {
    put_flat(f, args->child->valuestring, 60);
  } else if (!cJSON_IsObject(args) || args->child) {
    char *s = cJSON_PrintUnformatted(args);
    if (s) put_flat(f, s, 60);
    cJSON_free(s);
  }
  cJSON_Delete(args);
}

int lc_traj_step_print(FILE *f, const struct lc_traj_step *s) {
  fprintf(f, "step %d  ", s->index);
  if (s->action) {
    fputs("Action: ", f);
    put_flat(f, s->action, 40);
    fputc('[', f);
    put_args(f, s);
    fputc(']', f);
  } else {
    fputs("(no action)", f);
  }
  fprintf(f, "  (%.0f ms, %ld tok)", s->latency_ms, s->tokens_in + s->tokens_out);
  if (s->is_error && s->observation) {
    fputs("  error: ", f);
    put_flat(f, s->observation, 100);
  }
  fputc('\n', f);
  return ferror(f) ? LC_EIO : 0;
}

int lc_trajectory_print_end(FILE *f, const struct lc_trajectory *t) {
  fprintf(f, "%s after %zu step%s", lc_traj_status_name(t->status), t->n,
          t->n == 1 ? "" : "s");
  if (t->status == LC_TRAJ_FINISHED && t->answer) {
    fputs(": ", f);
    put_flat(f, t->answer, 200);
  } else if (t->reason) {
    fputs(": ", f);
    put_flat(f, t->reason, 200);
  }
  /* $0.0000 would claim a price nobody gave. */
  if (t->cost_unknown) fprintf(f, "  (%ld tok, cost unknown)\n", lc_trajectory_tokens(t));
  else fprintf(f, "  (%ld tok, $%.4f)\n", lc_trajectory_tokens(t), lc_trajectory_cost(t));
  return ferror(f) ? LC_EIO : 0;
}
