/* runs.c: luact runs (list, show, input, resolve, cancel, resume) and luact
 * journal (export, import): the command line over the run store. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "secrets.h"
#include "store.h"

static const char usage_runs[] =
    "usage: luact runs <command> [--store FILE] ...\n"
    "\n"
    "Durable runs (docs/journal.md). Every luact run keeps its run and journal\n"
    "in the run store (--store FILE; default $LUACT_STORE, else\n"
    "$XDG_DATA_HOME/luact/runs.db, else ~/.local/share/luact/runs.db).\n"
    "\n"
    "commands:\n"
    "  list [--limit N] [--json]      runs, newest first\n"
    "  show RUN [--json] [--journal]  one run (and its journal lines)\n"
    "  input RUN VALUE [--question Q] [--no-resume]\n"
    "                                 answer the question a waiting run asked,\n"
    "                                 then resume it (the same answer twice is\n"
    "                                 harmless; a different one is refused).\n"
    "                                 Q names the question the value answers\n"
    "                                 (its effect id, e.g. 1#3, or its text):\n"
    "                                 refused unless the run waits on it\n"
    "  resolve RUN EFFECT (--result JSON | --not-run) [--no-resume]\n"
    "                                 settle an at-most-once effect in doubt:\n"
    "                                 it happened with this result, or it did\n"
    "                                 not happen (it then runs on resume)\n"
    "  cancel RUN                     stop a run (a running one at its next\n"
    "                                 effect); cancelling twice is harmless\n"
    "  resume RUN [run options]       continue an interrupted run (as\n"
    "                                 luact run --resume RUN)\n"
    "\n"
    "exit codes: 0 done, 1 error, 2 bad command line or refused; a resume\n"
    "exits as luact run does.\n";

static const char usage_journal[] =
    "usage: luact journal export RUN [--store FILE] [-o FILE.jsonl]\n"
    "       luact journal import FILE.jsonl [--store FILE]\n"
    "\n"
    "Converts between a run in the store and a JSONL journal (the format of\n"
    "luact run --record; docs/journal.md). An imported run can be replayed\n"
    "or resumed (luact run --resume RUN).\n";

/* Pulls "--store FILE" out of argv (in place); returns the store path. */
static const char *take_store(int *argc, char **argv, char *buf, size_t n) {
  const char *p = NULL;
  for (int i = 0; i < *argc; i++) {
    if (strcmp(argv[i], "--store") || i + 1 >= *argc) continue;
    p = argv[i + 1];
    memmove(&argv[i], &argv[i + 2], (size_t)(*argc - i - 2) * sizeof *argv);
    *argc -= 2;
    break;
  }
  return p ? p : lc_store_default_path(buf, n);
}

static int has_flag(int argc, char **argv, const char *flag) {
  for (int i = 0; i < argc; i++)
    if (!strcmp(argv[i], flag)) return 1;
  return 0;
}

static const char *flag_value(int argc, char **argv, const char *flag) {
  for (int i = 0; i + 1 < argc; i++)
    if (!strcmp(argv[i], flag)) return argv[i + 1];
  return NULL;
}

static struct lc_store *open_store(const char *path) {
  if (!path) {
    fprintf(stderr, "luact: no run store (--store FILE, or set HOME or LUACT_STORE)\n");
    return NULL;
  }
  struct lc_store *s;
  char err[1024];
  if (lc_store_open(path, LC_STORE_SYNC_FULL, &s, err, sizeof err)) {
    fprintf(stderr, "luact: %s\n", err);
    return NULL;
  }
  return s;
}

/* A run no process runs any more although it says running: interrupted. */
static int interrupted(const struct lc_run_row *r) {
  return r->status && !strcmp(r->status, "running") &&
         (r->pid <= 0 || (kill((pid_t)r->pid, 0) != 0 && errno == ESRCH));
}

static const char *shown_status(const struct lc_run_row *r) {
  return interrupted(r) ? "interrupted" : r->status ? r->status : "?";
}

static void when(double t, char *out, size_t n) {
  time_t s = (time_t)t;
  struct tm tm;
  strftime(out, n, "%Y-%m-%d %H:%M:%S", localtime_r(&s, &tm));
}

static cJSON *row_json(const struct lc_run_row *r) {
  cJSON *o = cJSON_CreateObject();
  cJSON_AddStringToObject(o, "id", r->id);
  cJSON_AddStringToObject(o, "status", shown_status(r));
  if (r->script) cJSON_AddStringToObject(o, "script", r->script);
  cJSON *a = r->args ? cJSON_Parse(r->args) : NULL;
  if (a) cJSON_AddItemToObject(o, "args", a);
  cJSON_AddNumberToObject(o, "created", r->created);
  cJSON_AddNumberToObject(o, "updated", r->updated);
  if (r->question) cJSON_AddStringToObject(o, "question", r->question);
  cJSON *res = r->result ? cJSON_Parse(r->result) : NULL;
  if (res) cJSON_AddItemToObject(o, "result", res);
  if (r->error) cJSON_AddStringToObject(o, "error", r->error);
  if (r->pid) cJSON_AddNumberToObject(o, "pid", (double)r->pid);
  return o;
}

static void print_json_value(cJSON *o) {
  char *t = cJSON_PrintUnformatted(o);
  if (t) {
    lc_secrets_scrub_str(t);
    puts(t);
  }
  cJSON_free(t);
  cJSON_Delete(o);
}

struct list_ctx {
  int json;
  cJSON *arr;
};

static int list_one(void *ud, const struct lc_run_row *r) {
  struct list_ctx *c = ud;
  if (c->json) {
    cJSON_AddItemToArray(c->arr, row_json(r));
    return 0;
  }
  char t[32];
  when(r->updated, t, sizeof t);
  const char *script = r->script ? strrchr(r->script, '/') : NULL;
  printf("%-32s  %-13s  %s  %s\n", r->id, shown_status(r), t,
         script ? script + 1 : r->script ? r->script : "");
  return 0;
}

/* ---- the journal of a run, as lines ---- */

struct lines {
  char **v;
  size_t n;
};

static int collect(void *ud, long seq, const char *text, size_t len) {
  (void)seq;
  struct lines *l = ud;
  char **v = realloc(l->v, (l->n + 1) * sizeof *v);
  if (!v) return -1;
  l->v = v;
  if (!(v[l->n] = strndup(text, len))) return -1;
  l->n++;
  return 0;
}

static void lines_free(struct lines *l) {
  for (size_t i = 0; i < l->n; i++) free(l->v[i]);
  free(l->v);
  memset(l, 0, sizeof *l);
}

static int read_lines(struct lc_store *s, const char *id, struct lines *l) {
  char err[1024];
  long last;
  if (lc_store_journal_read(s, id, collect, l, &last, err, sizeof err)) {
    fprintf(stderr, "luact: %s\n", err);
    lines_free(l);
    return -1;
  }
  return 0;
}

/* The line's "type" and "id" (borrowed from o). */
static const char *jstr(const cJSON *o, const char *k) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
  return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* Finds effect id's intent and result lines. */
static void find_effect(const struct lines *l, const char *id, cJSON **intent, cJSON **result,
                        double *max_order) {
  *intent = *result = NULL;
  *max_order = 0;
  for (size_t i = 0; i < l->n; i++) {
    cJSON *o = cJSON_Parse(l->v[i]);
    if (!o) continue;
    const cJSON *ord = cJSON_GetObjectItemCaseSensitive(o, "order");
    if (cJSON_IsNumber(ord) && ord->valuedouble > *max_order) *max_order = ord->valuedouble;
    const char *t = jstr(o, "type"), *x = jstr(o, "id");
    if (t && x && !strcmp(x, id) && !strcmp(t, "intent")) {
      cJSON_Delete(*intent);
      *intent = o;
    } else if (t && x && !strcmp(x, id) && !strcmp(t, "result")) {
      if (jstr(o, "kind")) { /* a pure effect's one line: its intent too */
        cJSON_Delete(*intent);
        *intent = cJSON_Duplicate(o, 1);
      }
      cJSON_Delete(*result);
      *result = o;
    } else {
      cJSON_Delete(o);
    }
  }
}

/* The id of the last input effect with an intent and no result. */
static char *pending_input(const struct lines *l) {
  char *found = NULL;
  for (size_t i = 0; i < l->n; i++) {
    cJSON *o = cJSON_Parse(l->v[i]);
    const char *t = o ? jstr(o, "type") : NULL, *x = o ? jstr(o, "id") : NULL;
    if (t && x && !strcmp(t, "intent")) {
      const char *k = jstr(o, "kind");
      if (k && !strcmp(k, "input")) {
        free(found);
        found = strdup(x);
      }
    } else if (t && x && !strcmp(t, "result") && found && !strcmp(found, x) &&
               !cJSON_GetObjectItemCaseSensitive(o, "cancelled")) {
      free(found);
      found = NULL;
    }
    cJSON_Delete(o);
  }
  return found;
}

/* The question an input effect asked (its intent's request.prompt), or
 * NULL (borrowed from o). */
static const char *intent_prompt(const cJSON *o) {
  const cJSON *rq = cJSON_GetObjectItemCaseSensitive(o, "request");
  return rq ? jstr(rq, "prompt") : NULL;
}

/* The input effect --question names: its effect id ("1#3") or the text it
 * asked, the latest such question. *id and *prompt are the caller's
 * (free); *answer gets the answer it has (NULL: none yet). 0: found. */
static int named_question(const struct lines *l, const char *q, char **id, char **prompt,
                          char **answer) {
  *id = *prompt = *answer = NULL;
  for (size_t i = 0; i < l->n; i++) {
    cJSON *o = cJSON_Parse(l->v[i]);
    const char *t = o ? jstr(o, "type") : NULL, *x = o ? jstr(o, "id") : NULL;
    const char *k = o ? jstr(o, "kind") : NULL, *p = o ? intent_prompt(o) : NULL;
    if (t && x && k && !strcmp(t, "intent") && !strcmp(k, "input") &&
        (!strcmp(x, q) || (p && !strcmp(p, q)))) {
      free(*id);
      free(*prompt);
      free(*answer);
      *id = strdup(x);
      *prompt = p ? strdup(p) : NULL;
      *answer = NULL;
    } else if (t && x && *id && !strcmp(t, "result") && !strcmp(x, *id) &&
               !cJSON_GetObjectItemCaseSensitive(o, "cancelled")) {
      const cJSON *res = cJSON_GetObjectItemCaseSensitive(o, "result");
      const char *a = cJSON_IsObject(res) ? jstr(res, "line") : NULL;
      free(*answer);
      *answer = strdup(a ? a : "");
    }
    cJSON_Delete(o);
  }
  return *id ? 0 : -1;
}

/* The prompt of input effect id (for messages), or "" (borrowed: static). */
static const char *prompt_of(const struct lines *l, const char *id, char *buf, size_t n) {
  buf[0] = '\0';
  for (size_t i = 0; i < l->n; i++) {
    cJSON *o = cJSON_Parse(l->v[i]);
    const char *t = o ? jstr(o, "type") : NULL, *x = o ? jstr(o, "id") : NULL;
    const char *p = o ? intent_prompt(o) : NULL;
    if (t && x && p && !strcmp(t, "intent") && !strcmp(x, id)) snprintf(buf, n, "%s", p);
    cJSON_Delete(o);
  }
  return buf;
}

static int append_result(struct lc_store *s, const char *run, long seq, cJSON *line) {
  char *t = cJSON_PrintUnformatted(line);
  cJSON_Delete(line);
  if (!t) return -1;
  char err[1024];
  int rc = lc_store_journal_append_now(s, run, seq, t, strlen(t), err, sizeof err);
  cJSON_free(t);
  if (rc) fprintf(stderr, "luact: %s\n", err);
  return rc ? -1 : 0;
}

/* ---- commands ---- */

static int runs_input(struct lc_store *s, const char *spath, int argc, char **argv) {
  if (argc < 3) {
    fputs(usage_runs, stderr);
    return 2;
  }
  const char *id = argv[1], *value = argv[2];
  struct lc_run_row r;
  char err[1024];
  if (lc_store_run_get(s, id, &r, err, sizeof err)) {
    fprintf(stderr, "luact: %s\n", err);
    return 1;
  }
  struct lines l = {0};
  if (read_lines(s, id, &l)) {
    lc_run_row_free(&r);
    return 1;
  }
  int rc = 0;
  int waiting = r.status && !strcmp(r.status, "waiting_input");
  char *pending = pending_input(&l);
  const char *q = flag_value(argc, argv, "--question");
  char *qid = NULL, *qprompt = NULL, *qanswer = NULL;
  char pbuf[512];
  if (q && named_question(&l, q, &qid, &qprompt, &qanswer)) {
    /* A value meant for another question must not answer this one. */
    if (pending)
      fprintf(stderr,
              "luact: run %s never asked \"%s\": it waits on question %s (\"%s\"): refused\n",
              id, q, pending, prompt_of(&l, pending, pbuf, sizeof pbuf));
    else
      fprintf(stderr, "luact: run %s never asked \"%s\": refused\n", id, q);
    rc = 2;
  } else if (q && (!pending || strcmp(qid, pending))) {
    /* The named question is answered already (the run may have asked
     * another since): the same answer is harmless, another is refused. */
    if (qanswer && !strcmp(qanswer, value)) {
      printf("run %s: question %s already answered with this value\n", id, qid);
      if (!interrupted(&r)) rc = -1;
    } else if (qanswer) {
      fprintf(stderr,
              "luact: run %s: question %s (\"%s\") was already answered with a different "
              "value: refused\n",
              id, qid, qprompt ? qprompt : "");
      rc = 2;
    } else {
      fprintf(stderr, "luact: run %s: question %s is not the one it waits on%s%s%s: refused\n",
              id, qid, pending ? " (" : "", pending ? pending : "", pending ? ")" : "");
      rc = 2;
    }
  } else if (!pending) {
    /* Already answered: the same value again is harmless, another one is
     * refused (the run may have acted on the first). */
    const char *ans = NULL;
    cJSON *last_answer = NULL;
    for (size_t i = 0; i < l.n; i++) {
      cJSON *o = cJSON_Parse(l.v[i]);
      const char *t = o ? jstr(o, "type") : NULL;
      const cJSON *res = o ? cJSON_GetObjectItemCaseSensitive(o, "result") : NULL;
      if (t && !strcmp(t, "result") && cJSON_GetObjectItemCaseSensitive(o, "answered_by")) {
        cJSON_Delete(last_answer);
        last_answer = o;
        ans = cJSON_IsObject(res) ? jstr(res, "line") : NULL;
      } else {
        cJSON_Delete(o);
      }
    }
    if (ans && !strcmp(ans, value)) {
      printf("run %s: already answered with this value\n", id);
      if (!interrupted(&r)) rc = -1; /* harmless: nothing more to do */
    } else if (ans) {
      fprintf(stderr, "luact: run %s was already answered with a different value: refused\n",
              id);
      rc = 2;
    } else {
      fprintf(stderr, "luact: run %s is %s and has no question waiting\n", id, shown_status(&r));
      rc = 2;
    }
    cJSON_Delete(last_answer);
  } else if (!waiting && !interrupted(&r)) {
    fprintf(stderr, "luact: run %s is %s, not waiting for input\n", id, shown_status(&r));
    rc = 2;
  } else {
    cJSON *intent, *result;
    double order;
    find_effect(&l, pending, &intent, &result, &order);
    cJSON *line = cJSON_CreateObject();
    cJSON_AddStringToObject(line, "type", "result");
    cJSON_AddStringToObject(line, "id", pending);
    cJSON *res = cJSON_AddObjectToObject(line, "result");
    cJSON_AddStringToObject(res, "line", value);
    cJSON_AddNumberToObject(line, "order", order + 1);
    cJSON_AddStringToObject(line, "answered_by", "luact runs input");
    rc = append_result(s, id, (long)l.n + 1, line) ? 1 : 0;
    cJSON_Delete(intent);
    cJSON_Delete(result);
    if (!rc) {
      /* The answer is in; the run is no longer waiting. */
      lc_store_run_set_status(s, id, "running", NULL, NULL, NULL, 0, err, sizeof err);
      printf("run %s: answered\n", id);
    }
  }
  free(pending);
  free(qid);
  free(qprompt);
  free(qanswer);
  lines_free(&l);
  lc_run_row_free(&r);
  if (rc < 0) return 0;
  if (rc || has_flag(argc, argv, "--no-resume")) return rc;
  return lc_cli_resume(spath, id, 0, NULL);
}

static int runs_resolve(struct lc_store *s, const char *spath, int argc, char **argv) {
  const char *result = flag_value(argc, argv, "--result");
  int not_run = has_flag(argc, argv, "--not-run");
  if (argc < 3 || !!result == not_run) {
    fputs(usage_runs, stderr);
    return 2;
  }
  const char *id = argv[1], *eff = argv[2];
  struct lines l = {0};
  if (read_lines(s, id, &l)) return 1;
  cJSON *intent, *old;
  double order;
  find_effect(&l, eff, &intent, &old, &order);
  int rc = 0;
  cJSON *value = result ? cJSON_Parse(result) : NULL;
  if (!intent) {
    fprintf(stderr, "luact: run %s has no effect %s\n", id, eff);
    rc = 2;
  } else if (old && !cJSON_GetObjectItemCaseSensitive(old, "cancelled")) {
    fprintf(stderr, "luact: effect %s of run %s has a result already: nothing to resolve\n",
            eff, id);
    rc = 2;
  } else if (result && !value) {
    fprintf(stderr, "luact: --result must be JSON (the effect's returned values, a list)\n");
    rc = 2;
  } else {
    cJSON *line = cJSON_CreateObject();
    cJSON_AddStringToObject(line, "type", "result");
    cJSON_AddStringToObject(line, "id", eff);
    if (value) cJSON_AddItemToObject(line, "result", value);
    else cJSON_AddStringToObject(line, "resolved", "not_run");
    value = NULL;
    cJSON_AddNumberToObject(line, "order", order + 1);
    cJSON_AddStringToObject(line, "resolved_by", "luact runs resolve");
    rc = append_result(s, id, (long)l.n + 1, line) ? 1 : 0;
    char err[512];
    if (!rc) lc_store_run_set_status(s, id, "running", NULL, NULL, NULL, 0, err, sizeof err);
    if (!rc) printf("run %s: effect %s resolved\n", id, eff);
  }
  cJSON_Delete(value);
  cJSON_Delete(intent);
  cJSON_Delete(old);
  lines_free(&l);
  if (rc || has_flag(argc, argv, "--no-resume")) return rc;
  return lc_cli_resume(spath, id, 0, NULL);
}

static int runs_show(struct lc_store *s, int argc, char **argv) {
  if (argc < 2) {
    fputs(usage_runs, stderr);
    return 2;
  }
  struct lc_run_row r;
  char err[1024];
  if (lc_store_run_get(s, argv[1], &r, err, sizeof err)) {
    fprintf(stderr, "luact: %s\n", err);
    return 1;
  }
  struct lines l = {0};
  int rc = read_lines(s, argv[1], &l) ? 1 : 0;
  long intents = 0, results = 0;
  for (size_t i = 0; i < l.n; i++) {
    /* An effect is an intent line, or a pure effect's one line (a result
     * that has the intent's kind). */
    cJSON *o = cJSON_Parse(l.v[i]);
    const char *t = o ? jstr(o, "type") : NULL;
    int result = t && !strcmp(t, "result");
    intents += t && (!strcmp(t, "intent") || (result && jstr(o, "kind")));
    results += result;
    cJSON_Delete(o);
  }
  if (has_flag(argc, argv, "--json")) {
    cJSON *o = row_json(&r);
    char *pq = pending_input(&l);
    if (pq && r.question) cJSON_AddStringToObject(o, "question_id", pq);
    free(pq);
    cJSON_AddNumberToObject(o, "journal_lines", (double)l.n);
    cJSON_AddNumberToObject(o, "effects", (double)intents);
    if (has_flag(argc, argv, "--journal")) {
      cJSON *a = cJSON_AddArrayToObject(o, "journal");
      for (size_t i = 0; i < l.n; i++) cJSON_AddItemToArray(a, cJSON_Parse(l.v[i]));
    }
    print_json_value(o);
  } else {
    char c[32], u[32];
    when(r.created, c, sizeof c);
    when(r.updated, u, sizeof u);
    printf("run       %s\nstatus    %s\nscript    %s\nargs      %s\nstarted   %s\nupdated   "
           "%s\neffects   %ld (%ld with results), %zu journal lines\n",
           r.id, shown_status(&r), r.script ? r.script : "", r.args ? r.args : "[]", c, u,
           intents, results, l.n);
    char *pq = pending_input(&l);
    if (r.question) printf("question  %s%s%s%s\n", r.question, pq ? " (--question " : "",
                           pq ? pq : "", pq ? ")" : "");
    free(pq);
    if (r.error) printf("error     %s\n", r.error);
    if (r.result) printf("result    %s\n", r.result);
    if (has_flag(argc, argv, "--journal"))
      for (size_t i = 0; i < l.n; i++) puts(l.v[i]);
  }
  lines_free(&l);
  lc_run_row_free(&r);
  return rc;
}

int lc_cli_runs(int argc, char **argv) {
  if (argc < 1 || !strcmp(argv[0], "-h") || !strcmp(argv[0], "--help")) {
    fputs(usage_runs, argc < 1 ? stderr : stdout);
    return argc < 1 ? 2 : 0;
  }
  char buf[4096];
  const char *spath = take_store(&argc, argv, buf, sizeof buf);
  const char *cmd = argv[0];
  if (!strcmp(cmd, "resume")) {
    if (argc < 2) {
      fputs(usage_runs, stderr);
      return 2;
    }
    return lc_cli_resume(spath, argv[1], argc - 2, argv + 2);
  }
  struct lc_store *s = open_store(spath);
  if (!s) return 1;
  int rc;
  char err[1024];
  if (!strcmp(cmd, "list")) {
    const char *lim = flag_value(argc, argv, "--limit");
    struct list_ctx c = {.json = has_flag(argc, argv, "--json")};
    if (c.json) c.arr = cJSON_CreateArray();
    rc = lc_store_run_list(s, lim ? atol(lim) : 0, list_one, &c, err, sizeof err) ? 1 : 0;
    if (rc) fprintf(stderr, "luact: %s\n", err);
    if (c.json) print_json_value(c.arr);
  } else if (!strcmp(cmd, "show")) {
    rc = runs_show(s, argc, argv);
  } else if (!strcmp(cmd, "cancel")) {
    char was[32];
    if (argc < 2) {
      fputs(usage_runs, stderr);
      rc = 2;
    } else if (lc_store_run_cancel(s, argv[1], was, sizeof was, err, sizeof err)) {
      fprintf(stderr, "luact: %s\n", err);
      rc = 1;
    } else {
      printf("run %s: %s\n", argv[1],
             !strcmp(was, "cancelled") ? "already cancelled"
             : !strcmp(was, "finished") || !strcmp(was, "failed")
                 ? "already ended"
                 : !strcmp(was, "running") ? "cancel requested (it stops at its next effect)"
                                           : "cancelled");
      rc = 0;
    }
  } else if (!strcmp(cmd, "input")) {
    rc = runs_input(s, spath, argc, argv);
  } else if (!strcmp(cmd, "resolve")) {
    rc = runs_resolve(s, spath, argc, argv);
  } else {
    fprintf(stderr, "luact runs: unknown command '%s' (see luact runs --help)\n", cmd);
    rc = 2;
  }
  lc_store_close(s);
  return rc;
}

/* ---- journal export / import ---- */

static int journal_export(struct lc_store *s, int argc, char **argv) {
  const char *out = flag_value(argc, argv, "-o");
  struct lines l = {0};
  if (read_lines(s, argv[1], &l)) return 1;
  FILE *f = out ? fopen(out, "w") : stdout;
  if (!f) {
    fprintf(stderr, "luact: cannot create %s: %s\n", out, strerror(errno));
    lines_free(&l);
    return 1;
  }
  for (size_t i = 0; i < l.n; i++) fprintf(f, "%s\n", l.v[i]);
  int bad = ferror(f);
  if (out) bad |= fclose(f) != 0;
  lines_free(&l);
  if (bad) fprintf(stderr, "luact: cannot write %s\n", out ? out : "stdout");
  return bad ? 1 : 0;
}

static int journal_import(struct lc_store *s, const char *path) {
  FILE *f = fopen(path, "r");
  if (!f) {
    fprintf(stderr, "luact: cannot open %s: %s\n", path, strerror(errno));
    return 1;
  }
  struct lines l = {0};
  char *buf = NULL;
  size_t cap = 0;
  ssize_t n;
  int rc = 0;
  while ((n = getline(&buf, &cap, f)) >= 0) {
    int torn = n == 0 || buf[n - 1] != '\n';
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r')) n--;
    if (!n) continue;
    cJSON *o = cJSON_ParseWithLength(buf, (size_t)n);
    if (!cJSON_IsObject(o)) {
      cJSON_Delete(o);
      if (torn) break; /* the cut end of a crash: the effect has no record */
      fprintf(stderr, "luact: %s line %zu: not a journal line\n", path, l.n + 1);
      rc = 1;
      break;
    }
    cJSON_Delete(o);
    if (collect(&l, 0, buf, (size_t)n)) rc = 1;
  }
  free(buf);
  fclose(f);
  cJSON *h = !rc && l.n ? cJSON_Parse(l.v[0]) : NULL;
  const char *type = h ? jstr(h, "type") : NULL, *run = h ? jstr(h, "run") : NULL;
  if (!rc && (!type || strcmp(type, "header") || !run)) {
    fprintf(stderr, "luact: %s does not start with a journal header\n", path);
    rc = 1;
  }
  if (!rc) {
    const cJSON *sc = cJSON_GetObjectItemCaseSensitive(h, "script");
    const cJSON *args = cJSON_GetObjectItemCaseSensitive(h, "args");
    char *aj = cJSON_IsArray(args) ? cJSON_PrintUnformatted(args) : NULL;
    char cwd[4096];
    struct lc_run_row r;
    memset(&r, 0, sizeof r);
    snprintf(r.id, sizeof r.id, "%s", run);
    r.script = sc ? (char *)jstr(sc, "path") : NULL;
    r.script_sha256 = sc ? (char *)jstr(sc, "sha256") : NULL;
    r.args = aj ? aj : "[]";
    r.cwd = getcwd(cwd, sizeof cwd) ? cwd : NULL;
    r.status = "running"; /* no process: interrupted, resumable */
    char err[1024];
    if (lc_store_run_create(s, &r, l.v[0], strlen(l.v[0]), err, sizeof err)) {
      fprintf(stderr, "luact: %s\n", err);
      rc = 1;
    }
    for (size_t i = 1; !rc && i < l.n; i++)
      if (lc_store_journal_append_now(s, run, (long)i + 1, l.v[i], strlen(l.v[i]), err,
                                      sizeof err)) {
        fprintf(stderr, "luact: %s\n", err);
        rc = 1;
      }
    cJSON_free(aj);
    if (!rc) printf("run %s imported (%zu lines)\n", run, l.n);
  }
  cJSON_Delete(h);
  lines_free(&l);
  return rc;
}

int lc_cli_journal(int argc, char **argv) {
  if (argc < 2 || !strcmp(argv[0], "-h") || !strcmp(argv[0], "--help")) {
    fputs(usage_journal, argc < 1 ? stderr : stdout);
    return argc < 2 && !(argc == 1 && (!strcmp(argv[0], "-h") || !strcmp(argv[0], "--help")))
               ? 2
               : 0;
  }
  char buf[4096];
  const char *spath = take_store(&argc, argv, buf, sizeof buf);
  if (strcmp(argv[0], "export") && strcmp(argv[0], "import")) {
    fprintf(stderr, "luact journal: unknown command '%s' (export or import)\n", argv[0]);
    return 2;
  }
  struct lc_store *s = open_store(spath);
  if (!s) return 1;
  int rc = !strcmp(argv[0], "export") ? journal_export(s, argc, argv) : journal_import(s, argv[1]);
  lc_store_close(s);
  return rc;
}
