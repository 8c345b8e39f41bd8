/* main.c: the luact command line. CLI only: parsing, then calls into the
 * runtime. Errors go to stderr; the exit code says how it went. */
#include <lauxlib.h>
#include <lualib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "http.h"
#include "l_luact.h"
#include "l_react.h"
#include "sched.h"
#include "workers.h"
#include "l_effect.h"
#include "effect.h"
#include "secrets.h"
#include "eval_main.h"

static const char usage_main[] =
    "usage: luact <command> [options]\n"
    "\n"
    "commands:\n"
    "  run FILE.lua [ARGS...]   run a Lua agent script with the luact module\n"
    "  chat DIR [ARGS...]       talk to the agent in DIR in the terminal\n"
    "  eval EVAL.lua            evaluate prompts and agents on a dataset (luact eval --help)\n"
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
      err_line("status in_doubt: ", lc_journal_error(j));
      return 4;
    case LC_JOURNAL_EIO:
      err_line("", lc_journal_error(j));
      return rc ? rc : 1;
    default:
      return rc;
  }
}

/* What one worker runs: the script in its own state, scheduler and loop. */
struct run_ctx {
  const char *file;
  int argc; /* arguments after the script */
  char **argv;
  int json;
  struct lc_run_opts ro;
  struct lc_journal *jr; /* worker 1's (off unless --record/--replay) */
};

static int run_script(int worker, void *ud) {
  const struct run_ctx *c = ud;
  const char *file = c->file;
  int json = c->json && worker == 1; /* one JSON document, from worker 1 */
  lua_State *L = luaL_newstate();
  if (!L) {
    fprintf(stderr, "luact: cannot create a Lua state\n");
    return 1;
  }
  lc_lua_setup(L);
  lc_react_set_run_opts(L, &c->ro);
  struct lc_sched *s;
  if (lc_sched_new(L, &s)) {
    fprintf(stderr, "luact: cannot create the scheduler\n");
    lua_close(L);
    return 1;
  }
  struct lc_journal *jr = worker == 1 ? c->jr : NULL;
  if (jr) lc_l_journal_attach(L, jr);
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
  if (luaL_loadfilex(L, file, "t") != LUA_OK) {
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
      err_line(lc_worker_count() > 1 ? "worker error: " : "",
               msg ? msg : "(error object is not a string)");
      rc = 1;
    } else {
      lua_State *co = lc_task_thread(t);
      int jrc = json ? print_json(L, co) : 0;
      rc = exit_code_from(co);
      if (jrc && !rc) rc = 1;
    }
  }
  lc_sched_free(s);
  lua_close(L); /* before the journal's verdict: closing may cancel effects */
  return jr ? journal_verdict(jr, rc) : rc;
}

static int cores(void) {
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  return n < 1 ? 1 : n > 256 ? 256 : (int)n;
}

static int cmd_run(int argc, char **argv) {
  int i = 0;
  int json = 0;
  int workers = 0; /* not given: one per core, or 1 with a journal */
  struct lc_run_opts ro = {0};
  const char *record = NULL, *replay = NULL, *input = NULL;
  enum lc_journal_sync jsync = LC_JOURNAL_SYNC_EFFECTFUL;
  for (; i < argc && argv[i][0] == '-'; i++) {
    if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
      fputs(usage_run, stdout);
      return 0;
    }
    if (strcmp(argv[i], "--json") == 0) {
      json = 1;
      continue;
    }
    if (strcmp(argv[i], "--workers") == 0 || strcmp(argv[i], "-w") == 0) {
      char *end = NULL;
      long n = 0;
      if (i + 1 < argc && strcmp(argv[i + 1], "auto") == 0) {
        n = cores();
        end = "";
      } else if (i + 1 < argc) {
        n = strtol(argv[i + 1], &end, 10);
      }
      if (!end || *end || n < 1 || n > 256) {
        fprintf(stderr, "luact run: --workers needs a number from 1 to 256\n");
        return 2;
      }
      workers = (int)n;
      i++;
      continue;
    }
    if (strcmp(argv[i], "--quiet") == 0 || strcmp(argv[i], "-q") == 0) {
      ro.quiet = 1;
      continue;
    }
    if (strcmp(argv[i], "--trace") == 0) {
      if (i + 1 >= argc) {
        fprintf(stderr, "luact run: --trace needs a FILE\n");
        return 2;
      }
      ro.trace_path = argv[++i];
      continue;
    }
    if (!strcmp(argv[i], "--record") || !strcmp(argv[i], "--replay") ||
        !strcmp(argv[i], "--input") || !strcmp(argv[i], "--journal-sync")) {
      if (i + 1 >= argc) {
        fprintf(stderr, "luact run: %s needs a%s\n", argv[i],
                strcmp(argv[i], "--journal-sync") ? " FILE" : "n argument");
        return 2;
      }
      const char *v = argv[++i];
      if (!strcmp(argv[i - 1], "--record")) record = v;
      else if (!strcmp(argv[i - 1], "--replay")) replay = v;
      else if (!strcmp(argv[i - 1], "--input")) input = v;
      else if (!strcmp(v, "all")) jsync = LC_JOURNAL_SYNC_ALL;
      else if (!strcmp(v, "none")) jsync = LC_JOURNAL_SYNC_NONE;
      else if (!strcmp(v, "effectful")) jsync = LC_JOURNAL_SYNC_EFFECTFUL;
      else {
        fprintf(stderr, "luact run: --journal-sync is all, effectful or none\n");
        return 2;
      }
      continue;
    }
    if (strcmp(argv[i], "--") == 0) {
      i++;
      break;
    }
    fprintf(stderr, "luact run: unknown option '%s' (see luact run --help)\n", argv[i]);
    return 2;
  }
  if (i >= argc) {
    fputs(usage_run, stderr);
    return 2;
  }
  const char *file = argv[i];
  if (record && replay) {
    fprintf(stderr, "luact run: give --record or --replay, not both\n");
    return 2;
  }
  if ((record || replay || input) && workers > 1) {
    /* One journal is one run's effects in one order of identities. */
    fprintf(stderr, "luact run: --record, --replay and --input need --workers 1\n");
    return 2;
  }
  if (workers == 0) workers = record || replay || input ? 1 : cores();
  struct lc_journal *jr = NULL; /* worker 1's; none for the others */
  {
    char jerr[1024];
    if (lc_journal_open(record ? LC_JOURNAL_RECORD : replay ? LC_JOURNAL_REPLAY : LC_JOURNAL_OFF,
                        record ? record : replay, file, &jr, jerr, sizeof jerr)) {
      fprintf(stderr, "luact: %s\n", jerr);
      return 1;
    }
    lc_journal_set_sync(jr, jsync);
    if (input) {
      FILE *in = fopen(input, "r");
      if (!in) {
        fprintf(stderr, "luact: cannot open --input %s\n", input);
        lc_journal_free(jr);
        return 1;
      }
      lc_journal_set_input(jr, in);
    }
  }
  struct run_ctx ctx = {.file = file, .argc = argc - i - 1, .argv = argv + i + 1,
                        .json = json, .ro = ro, .jr = jr};
  /* libcurl is loaded and initialised by the first transfer
   * (runtime/core/curl_dl.c), not here: a run without requests skips it. */
  int rc = lc_workers_run(workers, run_script, &ctx);
  lc_journal_free(jr);
  return rc;
}

static const char usage_chat[] =
    "usage: luact chat [run options] DIR [ARGS...]\n"
    "\n"
    "Talks to the agent in DIR in the terminal: runs DIR/chat.lua (else\n"
    "DIR/main.lua) as `luact run` does; the script reads the user's lines.\n"
    "See docs/shopbot.md (luact chat examples/shopbot).\n";

/* chat DIR: run DIR/chat.lua or DIR/main.lua with the run options. */
static int cmd_chat(int argc, char **argv) {
  int i = 0;
  while (i < argc && argv[i][0] == '-') {
    if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
      fputs(usage_chat, stdout);
      return 0;
    }
    i += strcmp(argv[i], "--trace") == 0 ? 2 : 1;
  }
  if (i >= argc) {
    fputs(usage_chat, stderr);
    return 2;
  }
  static char path[4096];
  const char *names[] = {"chat.lua", "main.lua"};
  for (int k = 0; k < 2; k++) {
    snprintf(path, sizeof path, "%s/%s", argv[i], names[k]);
    FILE *f = fopen(path, "r");
    if (f) {
      fclose(f);
      argv[i] = path;
      return cmd_run(argc, argv);
    }
  }
  fprintf(stderr, "luact chat: no chat.lua or main.lua in '%s'\n", argv[i]);
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
  if (strcmp(cmd, "eval") == 0) return lc_eval_main(argc - 2, argv + 2);
  fprintf(stderr, "luact: unknown command '%s' (see luact --help)\n", cmd);
  return 2;
}
