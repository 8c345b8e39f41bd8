/* main.c: the luact command line. CLI only: parsing, then calls into the
 * runtime. Errors go to stderr; the exit code says how it went. */
#include <lauxlib.h>
#include <lualib.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "http.h"
#include "l_chat.h"
#include "l_luact.h"
#include "l_engine.h"
#include "l_state.h"
#include "curl_dl.h"
#include "lc.h"
#include "loop.h"
#include "sched.h"
#include "workers.h"
#include "l_effect.h"
#include "effect.h"
#include "cli.h"
#include "crash.h"
#include "secrets.h"
#include "store.h"
#include "eval_main.h"
#include "serve.h"

static const char usage_main[] =
    "usage: luact <command> [options]\n"
    "\n"
    "commands:\n"
    "  run FILE.lua [ARGS...]   run a Lua agent script with the luact module\n"
    "  chat DIR [ARGS...]       talk to the agent in DIR in the terminal\n"
    "  mcp serve AGENTS_DIR     serve DIR's agents, tools, resources and prompts over MCP\n"
    "  eval EVAL.lua            evaluate prompts and agents on a dataset (luact eval --help)\n"
    "  serve AGENTS_DIR         serve the agents over HTTP (luact serve --help)\n"
    "\n"
    "options:\n"
    "  -h, --help      show this help (also: luact <command> --help)\n"
    "  -V, --version   print the version\n"
    "\n"
    "exit codes (luact run; details in luact run --help and docs/api.md):\n"
    "  0 finished, N the integer the script returned, 1 error or failed run,\n"
    "  2 bad command line, 3 replay mismatch, 4 effect in doubt, 5 run\n"
    "  stopped at a limit\n"
    "\n"
    "environment:\n"
    "  OPENAI_API_KEY, OPENAI_BASE_URL, ANTHROPIC_API_KEY, ANTHROPIC_BASE_URL,\n"
    "  OLLAMA_HOST   provider keys and endpoints (keys are never printed)\n";

static const char usage_run[] =
    "usage: luact run [options] FILE.lua [ARGS...]\n"
    "\n"
    "Runs FILE.lua as a luact task. The script gets ARGS as `arg` (arg[0] is\n"
    "the script) and as `...`; `luact` is preloaded (require \"luact\" also\n"
    "works).\n"
    "\n"
    "exit codes:\n"
    "  0   the script returned nothing, true, 0, or a run result (a table\n"
    "      with status, as luact.react, luact.pal and wf:run return) whose\n"
    "      status is \"finished\"\n"
    "  N   the integer N the script returned (0-255)\n"
    "  1   the script raised an error, returned false or nil, message, or\n"
    "      returned a run result with status \"failed\" (the reason goes to\n"
    "      stderr)\n"
    "  2   bad command line\n"
    "  3   --replay: the run asked for an effect the journal does not have\n"
    "  4   --replay: an at-most-once effect is in doubt\n"
    "  5   the script returned a run result with status \"limit\" (a budget\n"
    "      ran out: steps, tokens, cost, wall time; the reason on stderr)\n"
    "\n"
    "options:\n"
    "  --json        print the script's returned value as JSON on stdout (a\n"
    "                luact.react result prints whole: answer, status, steps)\n"
    "  --trace FILE  append every luact.react step, and each run's end, to\n"
    "                FILE as JSON lines, as they happen\n"
    "  --quiet       no live step lines on stderr (shown by default when\n"
    "                stderr is a terminal)\n"
    "  --record FILE write the run's effect journal to FILE (JSON lines: every\n"
    "                LLM call, tool call, HTTP request, luact.now/random/ask;\n"
    "                never an API key); see docs/journal.md\n"
    "  --replay FILE run again answering every effect from FILE, without the\n"
    "                network; the first effect that differs stops the run\n"
    "                (exit 3, the difference on stderr); an at-most-once\n"
    "                effect started but never finished stops it (exit 4)\n"
    "  --input FILE  answers for luact.ask, one per line (default: stdin)\n"
    "  --journal-sync all|effectful|none\n"
    "                when to fsync the journal (default effectful: intents of\n"
    "                at-most-once effects, results of non-pure ones)\n"
    "  --workers N   up to N worker threads, each with its own event loop\n"
    "                and Lua state (default, and `auto`: one per core). The\n"
    "                script starts on worker 1; the first use of luact.worker\n"
    "                starts the others, each running the script from the top,\n"
    "                and each copy splits the work by luact.worker.id and\n"
    "                .count (sum/max/barrier combine results). A script that\n"
    "                never uses luact.worker runs once. Use it before the\n"
    "                script's first wait, or the run stays on one worker.\n"
    "  -h, --help    show this help\n";

/* Every message that may carry text from a script, a provider or a tool
 * goes to stderr through here, without known secrets (secrets.h). */
static void err_line(const char *prefix, const char *msg) {
  char *m = strdup(msg ? msg : "");
  if (m) lc_secrets_scrub_str(m);
  fprintf(stderr, "luact: %s%s\n", prefix, m ? m : "out of memory");
  free(m);
}

/* A run result returned by the script (a table with a status field, as
 * luact.react, luact.pal and wf:run make) decides the exit code: a failed
 * or limited run must not look like success to a shell. Raw reads: the
 * table is the script's, and this runs outside any protected call.
 * Returns -1 when the value is not a failed or limited run result. */
static int run_result_code(lua_State *co) {
  if (!lua_istable(co, 1)) return -1;
  lua_pushliteral(co, "status");
  lua_rawget(co, 1);
  const char *st = lua_type(co, -1) == LUA_TSTRING ? lua_tostring(co, -1) : "";
  int code = !strcmp(st, "failed") ? 1 : !strcmp(st, "limit") ? 5 : -1;
  if (code > 0) {
    lua_pushliteral(co, "reason");
    lua_rawget(co, 1);
    const char *why = lua_type(co, -1) == LUA_TSTRING ? lua_tostring(co, -1) : "no reason given";
    char *w = strdup(why); /* model or provider text: no secrets, one line */
    if (w) lc_secrets_scrub_str(w);
    fputs(code == 1 ? "luact: the run failed: " : "luact: the run stopped at a limit: ", stderr);
    lc_l_put_flat(stderr, w ? w : "out of memory", 2000);
    fputc('\n', stderr);
    free(w);
    lua_pop(co, 1);
  }
  lua_pop(co, 1);
  return code;
}

/* Decides the exit code from the root task's results (on its stack). */
static int exit_code_from(lua_State *co) {
  int n = lua_gettop(co);
  if (n == 0) return 0;
  int rr = run_result_code(co);
  if (rr > 0) return rr;
  int t = lua_type(co, 1);
  if (t == LUA_TNUMBER && lua_isinteger(co, 1)) return (int)(lua_tointeger(co, 1) & 0xff);
  if (t == LUA_TBOOLEAN && lua_toboolean(co, 1)) return 0;
  if ((t == LUA_TBOOLEAN || t == LUA_TNIL) && n >= 2) {
    const char *msg = lua_tostring(co, 2);
    err_line("", msg ? msg : "script failed");
    return 1;
  }
  if (t == LUA_TBOOLEAN || (t == LUA_TNIL && n == 1)) return t == LUA_TNIL ? 0 : 1;
  return 0;
}

/* --json: the root task's first result through luact.json.encode, under
 * a protected call (the value may not be JSON). Returns 0 or 1. */
static int print_json(lua_State *L, lua_State *co) {
  lua_getglobal(L, "luact");
  lua_getfield(L, -1, "json");
  lua_getfield(L, -1, "encode");
  lua_remove(L, -2);
  lua_remove(L, -2);
  if (lua_gettop(co) >= 1) {
    lua_pushvalue(co, 1);
    lua_xmove(co, L, 1);
  } else {
    lua_pushnil(L);
  }
  if (lc_lua_pcall(L, 1, 2) != LUA_OK || !lua_isstring(L, -2)) {
    const char *m = lua_tostring(L, -1);
    err_line("--json: ", m ? m : "cannot encode the result");
    lua_settop(L, 0);
    return 1;
  }
  size_t n;
  const char *s = lua_tolstring(L, -2, &n);
  char *out = malloc(n + 1); /* scrubbed in a copy: Lua strings are shared */
  if (!out) {
    err_line("--json: ", "out of memory");
    lua_settop(L, 0);
    return 1;
  }
  memcpy(out, s, n + 1);
  n = lc_secrets_scrub(out, n, LC_SCRUB_JSON);
  fwrite(out, 1, n, stdout);
  free(out);
  fputc('\n', stdout);
  lua_settop(L, 0);
  return 0;
}

static int journal_verdict(struct lc_journal *j, int rc) {
  switch (lc_journal_failed(j)) {
    case LC_JOURNAL_MISMATCH:
      err_line("", lc_journal_error(j));
      return 3;
    case LC_JOURNAL_IN_DOUBT:
      err_line("status ", lc_journal_error(j)); /* the message starts "in_doubt: " */
      return 4;
    case LC_JOURNAL_EIO:
      err_line("", lc_journal_error(j));
      return rc ? rc : 1;
    case LC_JOURNAL_WAITING:
      err_line("", lc_journal_error(j));
      return 6;
    case LC_JOURNAL_CANCELLED:
      err_line("", lc_journal_error(j));
      return 7;
    default:
      return rc;
  }
}

/* What one worker runs: the script in its own state, scheduler and loop. */
struct run_ctx {
  const char *file;
  const char *text; /* the script read once (not a regular file), or NULL */
  size_t len;
  int argc; /* arguments after the script */
  char **argv;
  int json;
  int chat; /* a person at the terminal: Ctrl-C is the chat's */
  struct lc_run_opts ro;
  struct lc_journal *jr; /* worker 1's (off unless --record/--replay) */
  char *result_json;     /* worker 1's first result as JSON, for the store */
};

/* The root task's first result as JSON (NULL when it cannot be encoded),
 * for the run's row. */
static char *result_json(lua_State *L, lua_State *co) {
  if (lua_gettop(co) < 1) return NULL;
  lua_getglobal(L, "luact");
  lua_getfield(L, -1, "json");
  lua_getfield(L, -1, "encode");
  lua_remove(L, -2);
  lua_remove(L, -2);
  lua_pushvalue(co, 1);
  lua_xmove(co, L, 1);
  char *out = NULL;
  if (lc_lua_pcall(L, 1, 1) == LUA_OK && lua_type(L, -1) == LUA_TSTRING) {
    out = strdup(lua_tostring(L, -1));
    if (out) lc_secrets_scrub_str(out);
  }
  lua_pop(L, 1);
  return out;
}

static int run_script(int worker, void *ud) {
  struct run_ctx *c = ud;
  const char *file = c->file;
  int json = c->json && worker == 1; /* one JSON document, from worker 1 */
  lua_State *L = lc_lua_newstate(); /* logs and aborts on a panic */
  if (!L) {
    fprintf(stderr, "luact: cannot create a Lua state\n");
    return 1;
  }
  lc_lua_setup(L);
  lc_l_set_run_opts(L, &c->ro);
  struct lc_sched *s;
  if (lc_sched_new(L, &s)) {
    fprintf(stderr, "luact: cannot create the scheduler\n");
    lua_close(L);
    return 1;
  }
  struct lc_journal *jr = worker == 1 ? c->jr : NULL;
  if (jr) lc_l_journal_attach(L, jr);
  if (worker == 1 && c->chat && lc_l_chat_enable(L))
    fprintf(stderr, "luact: cannot watch Ctrl-C; it will do nothing in this chat\n");
  /* arg table like lua.c: arg[0] = script, arg[1..] = arguments. */
  lua_createtable(L, c->argc, 1);
  lua_pushstring(L, file);
  lua_rawseti(L, -2, 0);
  for (int k = 0; k < c->argc; k++) {
    lua_pushstring(L, c->argv[k]);
    lua_rawseti(L, -2, k + 1);
  }
  lua_setglobal(L, "arg");
  int rc;
  /* Text only: a binary chunk could crash the VM. */
  int lrc;
  if (c->text) {
    lua_pushfstring(L, "@%s", file);
    lrc = luaL_loadbufferx(L, c->text, c->len, lua_tostring(L, -1), "t");
    lua_remove(L, -2);
  } else {
    lrc = luaL_loadfilex(L, file, "t");
  }
  if (lrc != LUA_OK) {
    err_line("", lua_tostring(L, -1));
    rc = 1;
  } else {
    for (int k = 0; k < c->argc; k++) lua_pushstring(L, c->argv[k]);
    struct lc_task *t;
    if (lc_sched_spawn(s, L, c->argc, NULL, &t)) {
      fprintf(stderr, "luact: out of memory\n");
      rc = 1;
    } else if (lc_sched_run(s, t)) {
      err_line("", lc_sched_error(s));
      rc = 1;
    } else if (lc_task_status(t) != LUA_OK) {
      lua_State *co = lc_task_thread(t);
      const char *msg = lua_tostring(co, -1);
      /* A run stopped by its journal says why in the verdict below. */
      if (!jr || !lc_journal_failed(jr))
        err_line(lc_worker_count() > 1 ? "worker error: " : "",
                 msg ? msg : "(error object is not a string)");
      rc = 1;
    } else {
      lua_State *co = lc_task_thread(t);
      int jrc = json ? print_json(L, co) : 0;
      if (worker == 1) c->result_json = result_json(L, co);
      rc = exit_code_from(co);
      if (jrc && !rc) rc = 1;
    }
  }
  if (worker == 1 && c->chat) lc_l_chat_disable(L);
  lc_sched_free(s);
  lua_close(L); /* before the journal's verdict: closing may cancel effects */
  return jr ? journal_verdict(jr, rc) : rc;
}

static int cores(void) {
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  return n < 1 ? 1 : n > 256 ? 256 : (int)n;
}

/* The options of luact run and luact chat. */
struct run_args {
  int json, workers, no_store, allow_script_change;
  int chat; /* luact chat with a person at the terminal */
  struct lc_run_opts ro;
  const char *record, *replay, *input, *run_id, *resume, *store;
  enum lc_journal_sync jsync;
  enum lc_store_sync ssync;
  int first; /* index of the script (or DIR) in argv */
};

/* Parses options up to the first argument that is not one. Returns 0, 1
 * when --help was shown, or 2 after saying what is wrong. */
static int parse_run_args(const char *cmd, const char *usage, int argc, char **argv,
                          struct run_args *a) {
  memset(a, 0, sizeof *a);
  a->jsync = LC_JOURNAL_SYNC_EFFECTFUL;
  int i = 0;
  for (; i < argc && argv[i][0] == '-'; i++) {
    const char *o = argv[i];
    if (!strcmp(o, "-h") || !strcmp(o, "--help")) {
      fputs(usage, stdout);
      return 1;
    }
    if (!strcmp(o, "--")) {
      i++;
      break;
    }
    if (!strcmp(o, "--json")) a->json = 1;
    else if (!strcmp(o, "--quiet") || !strcmp(o, "-q")) a->ro.quiet = 1;
    else if (!strcmp(o, "--no-store")) a->no_store = 1;
    else if (!strcmp(o, "--allow-script-change")) a->allow_script_change = 1;
    else {
      static const char *const with_value[] = {"--workers", "-w", "--trace", "--record",
                                               "--replay", "--input", "--journal-sync",
                                               "--run-id", "--resume", "--store",
                                               "--store-sync", NULL};
      int known = 0;
      for (const char *const *w = with_value; *w; w++) known |= !strcmp(o, *w);
      if (!known) {
        fprintf(stderr, "luact %s: unknown option '%s' (see luact %s --help)\n", cmd, o, cmd);
        return 2;
      }
      if (i + 1 >= argc) {
        fprintf(stderr, "luact %s: %s needs a value\n", cmd, o);
        return 2;
      }
      const char *v = argv[++i];
      if (!strcmp(o, "--workers") || !strcmp(o, "-w")) {
        char *end = NULL;
        long n = !strcmp(v, "auto") ? cores() : strtol(v, &end, 10);
        if ((end && *end) || n < 1 || n > 256) {
          fprintf(stderr, "luact %s: --workers needs a number from 1 to 256\n", cmd);
          return 2;
        }
        a->workers = (int)n;
      } else if (!strcmp(o, "--trace")) a->ro.trace_path = v;
      else if (!strcmp(o, "--record")) a->record = v;
      else if (!strcmp(o, "--replay")) a->replay = v;
      else if (!strcmp(o, "--input")) a->input = v;
      else if (!strcmp(o, "--run-id")) a->run_id = v;
      else if (!strcmp(o, "--resume")) a->resume = v;
      else if (!strcmp(o, "--store")) a->store = v;
      else if (!strcmp(o, "--store-sync")) {
        if (!strcmp(v, "full")) a->ssync = LC_STORE_SYNC_FULL;
        else if (!strcmp(v, "normal")) a->ssync = LC_STORE_SYNC_NORMAL;
        else {
          fprintf(stderr, "luact %s: --store-sync is full or normal\n", cmd);
          return 2;
        }
      } else if (!strcmp(v, "all")) a->jsync = LC_JOURNAL_SYNC_ALL;
      else if (!strcmp(v, "none")) a->jsync = LC_JOURNAL_SYNC_NONE;
      else if (!strcmp(v, "effectful")) a->jsync = LC_JOURNAL_SYNC_EFFECTFUL;
      else {
        fprintf(stderr, "luact %s: --journal-sync is all, effectful or none\n", cmd);
        return 2;
      }
    }
  }
  a->first = i;
  int modes = !!a->record + !!a->replay + !!a->resume;
  if (modes > 1) {
    fprintf(stderr, "luact %s: give one of --record, --replay and --resume\n", cmd);
    return 2;
  }
  if ((a->record || a->replay) && a->store) {
    fprintf(stderr, "luact %s: --record and --replay write and read JSONL files; "
                    "--store is for durable runs\n", cmd);
    return 2;
  }
  if ((a->replay) && a->run_id) {
    fprintf(stderr, "luact %s: --replay takes the run id from its journal\n", cmd);
    return 2;
  }
  return 0;
}

/* Is path an existing regular file (a JSONL journal to resume)? */
static int is_file(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* args as a JSON array of strings. */
static char *args_json(int argc, char **argv) {
  cJSON *a = cJSON_CreateArray();
  for (int k = 0; a && k < argc; k++) cJSON_AddItemToArray(a, cJSON_CreateString(argv[k]));
  char *s = a ? cJSON_PrintUnformatted(a) : NULL;
  cJSON_Delete(a);
  return s;
}

/* Does the script at path look as if it will make requests? A word of the
 * luact API that reaches the network, or a require (a module can do
 * anything). Only a hint: a wrong yes costs the loading of libcurl on the
 * other core (and the wait for it at exit), a wrong no the time it saves. */
static int may_use_http(const char *path) {
  static const char *const words[] = {"react", "pal", "llm", "http", "mcp", "retriev",
                                      "embed", "workflow", "agent", "require"};
  FILE *f = fopen(path, "rb");
  if (!f) return 0;
  /* Only a regular file: reading a pipe (luact run <(...), /dev/stdin)
   * would take the script away from the run. */
  struct stat st;
  if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
    fclose(f);
    return 0;
  }
  /* In blocks, each scanned with the last 7 bytes of the one before it
   * (the longest word is 8): the text is not kept. */
  char buf[7 + 16384];
  size_t keep = 0, n;
  int yes = 0;
  while (!yes && (n = fread(buf + keep, 1, sizeof buf - keep, f)) > 0) {
    n += keep;
    for (size_t i = 0; !yes && i < sizeof words / sizeof words[0]; i++)
      yes = memmem(buf, n, words[i], strlen(words[i])) != NULL;
    keep = n < 7 ? n : 7;
    memmove(buf, buf + n - keep, keep);
  }
  fclose(f);
  return yes;
}

/* A script that is not a regular file (luact run <(...), /dev/stdin) can
 * be read only once: reads it whole for the journal's hash and every
 * worker. *text stays NULL for a regular file (each reads it itself).
 * Returns 0, or -1 with the reason printed. */
static int read_script_once(const char *file, char **text, size_t *len) {
  *text = NULL;
  *len = 0;
  struct stat st;
  if (stat(file, &st) != 0 || S_ISREG(st.st_mode)) return 0; /* loading says why */
  FILE *f = fopen(file, "rb");
  if (!f) {
    fprintf(stderr, "luact: cannot open %s: %s\n", file, strerror(errno));
    return -1;
  }
  size_t cap = 0, n = 0, max = (size_t)64 << 20;
  char *b = NULL;
  for (;;) {
    if (n == cap) {
      char *nb = cap < max ? realloc(b, cap ? cap * 2 : 16384) : NULL;
      if (!nb) {
        fprintf(stderr, "luact: %s: %s\n", file, cap < max ? "out of memory" : "script over 64 MiB");
        free(b);
        fclose(f);
        return -1;
      }
      b = nb;
      cap = cap ? cap * 2 : 16384;
    }
    size_t r = fread(b + n, 1, cap - n, f);
    n += r;
    if (r == 0) break;
  }
  int bad = ferror(f);
  fclose(f);
  if (bad) {
    fprintf(stderr, "luact: cannot read %s\n", file);
    free(b);
    return -1;
  }
  *text = b;
  *len = n;
  return 0;
}

/* Runs a script with the parsed options: file is the script (NULL with
 * --resume RUN: the run's own), argc/argv its arguments. */
static int run_with(struct run_args *a, const char *file, int argc, char **argv) {
  const char *cmd = "run";
  char *text = NULL; /* the script, when it could be read only once */
  size_t tlen = 0;
  /* libcurl and its ~30 libraries (most of a one-request run's
   * instructions: the dynamic loader, then OpenSSL's initialisation) load
   * on a thread of their own while this one opens the store and compiles
   * the script, when the script is likely to need them (core/curl_dl.h).
   * Otherwise the first transfer loads them; a replay makes none. */
  if (file && !a->replay && may_use_http(file)) lc_curl_preload();
  struct lc_store *store = NULL;
  struct lc_run_row row;
  memset(&row, 0, sizeof row);
  char **sargv = NULL; /* a resumed run's own arguments */
  char *ajson = NULL;
  int rc = 1;
  int durable = !a->record && !a->replay && !a->no_store &&
                !(a->resume && is_file(a->resume));
  const char *env = getenv("LUACT_STORE");
  if (!a->store && env && !strcmp(env, "off") && !a->resume) durable = 0;
  char spath[4096];
  if (durable) {
    const char *p = a->store ? a->store : lc_store_default_path(spath, sizeof spath);
    if (!p && a->resume) {
      fprintf(stderr, "luact %s: no run store (--store FILE, or set HOME or LUACT_STORE)\n", cmd);
      return 2;
    }
    char err[1024];
    if (!p) {
      /* Nowhere to keep it (no HOME, no XDG_DATA_HOME, no LUACT_STORE): the
       * run goes on, not durable, and says so. */
      if (isatty(2) && !a->ro.quiet)
        fprintf(stderr, "luact: no run store (HOME is not set): this run is not durable "
                        "(--store FILE or LUACT_STORE=FILE)\n");
      durable = 0;
    } else if (lc_store_open(p, a->ssync, &store, err, sizeof err)) {
      fprintf(stderr, "luact: %s\n", err);
      return 1;
    }
  }
  if (store && a->run_id && !a->resume) {
    /* A new run with an id that is taken: say so now (a second run must
     * never write into, or end, the first one). */
    char err[1024];
    int got = lc_store_run_get(store, a->run_id, &row, err, sizeof err);
    if (got == 0) {
      fprintf(stderr, "luact: run %s exists already (%s): luact runs resume %s, or another "
                      "--run-id\n", a->run_id, row.status ? row.status : "?", a->run_id);
      rc = 2;
      goto out;
    }
    if (got != LC_ENOTFOUND) {
      fprintf(stderr, "luact: %s\n", err);
      goto out;
    }
    lc_run_row_free(&row);
    memset(&row, 0, sizeof row);
  }
  if (a->resume && store) {
    char err[1024];
    if (lc_store_run_get(store, a->resume, &row, err, sizeof err)) {
      fprintf(stderr, "luact: %s\n", err);
      goto out;
    }
    const char *st = row.status ? row.status : "";
    if (!strcmp(st, "finished") || !strcmp(st, "cancelled")) {
      fprintf(stderr, "luact: run %s is %s: there is nothing to resume\n", row.id, st);
      rc = 2;
      goto out;
    }
    if (!strcmp(st, "running") && row.pid > 0 && row.pid != (long)getpid() &&
        kill((pid_t)row.pid, 0) == 0) {
      fprintf(stderr, "luact: run %s is running in process %ld\n", row.id, row.pid);
      rc = 2;
      goto out;
    }
    if (!file) file = row.script;
    if (!argc && row.args) {
      /* The run's own arguments, as recorded. */
      cJSON *arr = cJSON_Parse(row.args);
      int n = cJSON_GetArraySize(arr);
      sargv = calloc((size_t)n + 1, sizeof *sargv);
      for (int k = 0; sargv && k < n; k++) {
        const cJSON *x = cJSON_GetArrayItem(arr, k);
        sargv[k] = strdup(cJSON_IsString(x) ? x->valuestring : "");
      }
      cJSON_Delete(arr);
      if (sargv) {
        argc = n;
        argv = sargv;
      }
    }
    if (row.cwd && chdir(row.cwd)) {
      fprintf(stderr, "luact: cannot go to run %s's folder %s\n", row.id, row.cwd);
      goto out;
    }
    char e2[256];
    lc_store_run_set_status(store, row.id, "running", NULL, NULL, NULL, (long)getpid(), e2,
                            sizeof e2);
  }
  if (!file) {
    fprintf(stderr, "luact %s: no script\n", cmd);
    rc = 2;
    goto out;
  }
  if (read_script_once(file, &text, &tlen)) goto out;
  if (a->workers == 0) a->workers = a->record || a->replay || a->input || a->resume ? 1 : cores();
  if ((a->record || a->replay || a->input || a->resume) && a->workers > 1) {
    /* One journal is one run's effects in one order of identities. */
    fprintf(stderr, "luact %s: --record, --replay, --resume and --input need --workers 1\n", cmd);
    rc = 2;
    goto out;
  }
  ajson = args_json(argc, argv);
  struct lc_journal *jr = NULL; /* worker 1's; none for the others */
  {
    char jerr[1024];
    int resume_file = a->resume && !store;
    struct lc_journal_opts o = {
        .mode = a->replay ? LC_JOURNAL_REPLAY
                : (a->record || resume_file || store) ? LC_JOURNAL_RECORD
                                                      : LC_JOURNAL_OFF,
        .path = a->record ? a->record : a->replay ? a->replay : resume_file ? a->resume : NULL,
        .store = store,
        .script_path = file,
        .script_text = text,
        .script_len = tlen,
        .run_id = store && a->resume ? row.id : a->run_id,
        .args_json = ajson,
        .resume = a->resume != NULL,
        .allow_script_change = a->allow_script_change};
    if (lc_journal_open_with(&o, &jr, jerr, sizeof jerr)) {
      fprintf(stderr, "luact: %s\n", jerr);
      if (store && a->resume) {
        char e2[256];
        lc_store_run_set_status(store, row.id, "failed", NULL, jerr, NULL, 0, e2, sizeof e2);
      }
      goto out;
    }
    lc_journal_set_sync(jr, a->jsync);
    /* A durable run with nobody to type waits for a person instead. */
    if (store && !a->input) lc_journal_set_wait_input(jr, 1);
    if (a->input) {
      FILE *in = fopen(a->input, "r");
      if (!in) {
        fprintf(stderr, "luact: cannot open --input %s\n", a->input);
        lc_journal_free(jr);
        goto out;
      }
      lc_journal_set_input(jr, in);
    }
  }
  if (store && !a->resume && isatty(2) && !a->ro.quiet)
    fprintf(stderr, "luact: run %s\n", lc_journal_run_id(jr));
  struct run_ctx ctx = {.file = file, .text = text, .len = tlen, .argc = argc, .argv = argv, .json = a->json,
                        .chat = a->chat, .ro = a->ro, .jr = jr};
  rc = lc_workers_run(a->workers, run_script, &ctx);
  if (store && lc_journal_has_run(jr)) {
    /* The final status, committed before we exit (and report it). A run
     * that made no effect was never stored: running it again is the same. */
    char id[65];
    snprintf(id, sizeof id, "%s", lc_journal_run_id(jr));
    const char *status = "finished", *error = NULL, *question = NULL;
    switch (lc_journal_failed(jr)) {
      case LC_JOURNAL_WAITING:
        status = "waiting_input";
        question = lc_journal_question(jr);
        break;
      case LC_JOURNAL_IN_DOUBT: status = "in_doubt"; error = lc_journal_error(jr); break;
      case LC_JOURNAL_CANCELLED: status = "cancelled"; break;
      case LC_JOURNAL_OK:
        if (rc) {
          status = "failed";
          error = "the script failed (see its output)";
        }
        break;
      default: status = "failed"; error = lc_journal_error(jr); break;
    }
    char *err_copy = error ? strdup(error) : NULL;
    if (err_copy) lc_secrets_scrub_str(err_copy);
    char *q = question ? strdup(question) : NULL;
    lc_journal_free(jr); /* every line committed first */
    jr = NULL;
    lc_crash_point("before_final_status", NULL);
    char e2[512];
    if (lc_store_run_set_status(store, id, status, ctx.result_json, err_copy, q, 0, e2,
                                sizeof e2)) {
      fprintf(stderr, "luact: %s\n", e2);
      if (!rc) rc = 1;
    }
    if (!strcmp(status, "waiting_input"))
      fprintf(stderr, "luact: run %s is waiting for input: luact runs input %s VALUE\n", id, id);
    free(err_copy);
    free(q);
  }
  lc_journal_free(jr);
  free(ctx.result_json);
out:
  if (sargv) {
    for (int k = 0; k < argc; k++) free(sargv[k]);
    free(sargv);
  }
  cJSON_free(ajson);
  free(text);
  lc_run_row_free(&row);
  lc_store_close(store);
  return rc;
}

/* The history name of a script or chat folder: its last path component,
 * without suffix. */
static const char *history_name(const char *path, const char *suffix, char *out, size_t n) {
  size_t len = strlen(path);
  while (len > 1 && path[len - 1] == '/') len--;
  size_t b = len;
  while (b > 0 && path[b - 1] != '/') b--;
  size_t m = len - b, sl = strlen(suffix);
  if (m > sl && !strncmp(path + len - sl, suffix, sl)) m -= sl;
  if (m >= n) m = n - 1;
  memcpy(out, path + b, m);
  out[m] = '\0';
  return m && strcmp(out, ".") && strcmp(out, "..") ? out : NULL;
}

static int cmd_run(int argc, char **argv) {
  struct run_args a;
  int pr = parse_run_args("run", usage_run, argc, argv, &a);
  if (pr) return pr == 1 ? 0 : 2;
  if (a.first >= argc && !a.resume) {
    fputs(usage_run, stderr);
    return 2;
  }
  const char *file = a.first < argc ? argv[a.first] : NULL;
  int rest = a.first < argc ? a.first + 1 : argc;
  char hist[128];
  if (file) a.ro.history = history_name(file, ".lua", hist, sizeof hist);
  return run_with(&a, file, argc - rest, argv + rest);
}

int lc_cli_resume(const char *store_path, const char *run_id, int argc, char **argv) {
  struct run_args a;
  int pr = parse_run_args("runs resume", usage_run, argc, argv, &a);
  if (pr) return pr == 1 ? 0 : 2;
  if (a.first < argc) {
    fprintf(stderr, "luact runs resume: unexpected argument '%s'\n", argv[a.first]);
    return 2;
  }
  if (a.record || a.replay) {
    fprintf(stderr, "luact runs resume: --record and --replay do not go with a resume\n");
    return 2;
  }
  a.resume = run_id;
  if (!a.store) a.store = store_path;
  return run_with(&a, NULL, 0, NULL);
}

static const char usage_chat[] =
    "usage: luact chat [run options] DIR [ARGS...]\n"
    "\n"
    "Talks to the agent in DIR in the terminal: runs DIR/chat.lua (else\n"
    "DIR/main.lua) as `luact run` does, with the same options (luact run\n"
    "--help); the script reads the user's lines (luact.ask).\n"
    "\n"
    "keys (stdin and stdout a terminal):\n"
    "  arrows, Home/End, Ctrl-A/E/K/U/W   edit the line (libedit; ~/.editrc)\n"
    "  Up/Down                            earlier lines, kept per chat in\n"
    "                                     $XDG_DATA_HOME/luact/history/DIR\n"
    "  Ctrl-C while the model works       cancel the turn, ask again\n"
    "  Ctrl-C at the prompt               clear the line; on an empty line,\n"
    "                                     or twice in one turn: quit\n"
    "  Ctrl-D on an empty line            end the chat\n"
    "\n"
    "See docs/shopbot.md (luact chat examples/shopbot).\n";

/* chat DIR: run DIR/chat.lua or DIR/main.lua with the run options. */
static int cmd_chat(int argc, char **argv) {
  struct run_args a;
  int pr = parse_run_args("chat", usage_chat, argc, argv, &a);
  if (pr) return pr == 1 ? 0 : 2;
  if (a.first >= argc) {
    fputs(usage_chat, stderr);
    return 2;
  }
  static char path[4096];
  const char *names[] = {"chat.lua", "main.lua"};
  char hist[128];
  a.ro.history = history_name(argv[a.first], "", hist, sizeof hist);
  /* A person at the terminal: Ctrl-C goes to the chat's loop (l_chat.h).
   * Blocked before any thread starts (the journal's and the store's
   * writers, the workers), so every thread inherits the mask and the
   * signal waits for that loop. */
  a.chat = isatty(0) && isatty(1) && !a.input && !a.replay;
  for (int k = 0; k < 2; k++) {
    snprintf(path, sizeof path, "%s/%s", argv[a.first], names[k]);
    if (is_file(path)) {
      if (a.chat) lc_signal_block(SIGINT, 1);
      int rc = run_with(&a, path, argc - a.first - 1, argv + a.first + 1);
      if (a.chat) lc_signal_block(SIGINT, 0);
      return rc;
    }
  }
  fprintf(stderr, "luact chat: no chat.lua or main.lua in '%s'\n", argv[a.first]);
  return 2;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fputs(usage_main, stderr);
    return 2;
  }
  const char *cmd = argv[1];
  /* Credentials in the environment are known before anything runs, so
   * whatever echoes one (a provider, a proxy, a script) is scrubbed. */
  lc_secrets_from_env();
  if (strcmp(cmd, "-h") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "help") == 0) {
    fputs(usage_main, stdout);
    return 0;
  }
  if (strcmp(cmd, "-V") == 0 || strcmp(cmd, "--version") == 0) {
    printf("luact %s\n", LUACT_VERSION);
    return 0;
  }
  if (strcmp(cmd, "run") == 0) return cmd_run(argc - 2, argv + 2);
  if (strcmp(cmd, "chat") == 0) return cmd_chat(argc - 2, argv + 2);
  if (strcmp(cmd, "runs") == 0) return lc_cli_runs(argc - 2, argv + 2);
  if (strcmp(cmd, "journal") == 0) return lc_cli_journal(argc - 2, argv + 2);
  if (strcmp(cmd, "mcp") == 0) return lc_l_mcp_main(argc - 2, argv + 2);
  if (strcmp(cmd, "eval") == 0) return lc_eval_main(argc - 2, argv + 2);
  if (strcmp(cmd, "serve") == 0) return lc_serve_main(argc - 2, argv + 2);
  fprintf(stderr, "luact: unknown command '%s' (see luact --help)\n", cmd);
  return 2;
}
