/* daemon.c: `luact serve`: options, agents, the runner, signals, logs. */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <lauxlib.h>
#include <lualib.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "crash.h"
#include "crons.h"
#include "effect.h"
#include "l_effect.h"
#include "l_luact.h"
#include "l_engine.h"
#include "l_state.h"
#include "lc.h"
#include "loop.h"
#include "sched.h"
#include "secrets.h"
#include "serve.h"
#include "store.h"

static const char usage_serve[] =
    "usage: luact serve [options] AGENTS_DIR\n"
    "\n"
    "Serves the agents in AGENTS_DIR over the Agent Protocol (and LangGraph's\n"
    "route names), with durable runs in the run store. Each AGENTS_DIR/*.lua\n"
    "and AGENTS_DIR/*/serve.lua is an agent: a script that returns its run\n"
    "function, or a table {run = fn, name =, description =, input_schema =,\n"
    "output_schema =}. See docs/serve.md.\n"
    "\n"
    "options:\n"
    "  --listen HOST:PORT   address to listen on (default 127.0.0.1:7420)\n"
    "  --store FILE         the run store (default as luact run: $LUACT_STORE,\n"
    "                       else $XDG_DATA_HOME/luact/runs.db)\n"
    "  --store-sync full|normal  SQLite synchronous mode (default full)\n"
    "  --tokens FILE        bearer tokens, one `TOKEN TENANT` per line\n"
    "  --no-auth            no authentication (only on a loopback address);\n"
    "                       everything belongs to tenant \"default\"\n"
    "  --max-runs N         runs executing at once (default 64); more wait\n"
    "                       in a queue\n"
    "  --workers N          threads that execute runs, each with one event\n"
    "                       loop shared by many runs (default: the number of\n"
    "                       CPUs)\n"
    "  --max-body BYTES     request body limit (default 1048576): 413 above\n"
    "  --max-conns N        connections at once (default 512)\n"
    "  --max-streams N      SSE streams and waits at once (default 3/4 of\n"
    "                       --max-conns), so health checks and run creation\n"
    "                       keep working\n"
    "  --conn-timeout S     idle connection cut after S seconds (default 30)\n"
    "  --http-workers N     threads that answer requests (default 16); open\n"
    "                       streams, waits and WebSockets hold none\n"
    "  --grace S            on SIGTERM, seconds runs get to finish (default\n"
    "                       10); runs still going resume at the next start\n"
    "  --lease S            a fleet (PostgreSQL store): a claimed run's lease,\n"
    "                       renewed every S/3 (default 10)\n"
    "  --poll-ms N          a fleet: look for queued runs every N ms besides\n"
    "                       LISTEN/NOTIFY (default 500)\n"
    "  --claim-ahead N      a fleet: claim N queued runs beyond the free slots,\n"
    "                       to start as slots free (0: only for free slots);\n"
    "                       by default as many as the queue is deep (none\n"
    "                       when it is shallow, up to 32 while claims come\n"
    "                       back full)\n"
    "  --ahead-wait-ms N    a fleet: a run claimed ahead that waited N ms for\n"
    "                       a slot here is handed back for another daemon\n"
    "                       (default 1000 without --claim-ahead, else never;\n"
    "                       0: never)\n"
    "  -h, --help           show this help\n";

const char *const lc_serve_end_names[] = {"finished", "failed", "cancelled", "waiting_input",
                                          "in_doubt", NULL};

const char *const lc_serve_kind_names[] = {"llm", "tool", "http", "sql", "store", "input",
                                           "clock", "other", NULL};

/* ---- small helpers ---- */

double lc_serve_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static double mono_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

void lc_serve_uuid(char out[37]) {
  unsigned char b[16];
  if (getrandom(b, sizeof b, 0) != (ssize_t)sizeof b) {
    for (int i = 0; i < 16; i++) b[i] = (unsigned char)rand();
  }
  b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
  b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
  snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0],
           b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13],
           b[14], b[15]);
}

static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;

void lc_serve_log(struct lc_serve *s, const char *level, const char *event, const char *run,
                  const char *msg) {
  (void)s;
  cJSON *o = cJSON_CreateObject();
  char ts[40];
  time_t t = time(NULL);
  struct tm tm;
  gmtime_r(&t, &tm);
  strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%SZ", &tm);
  cJSON_AddStringToObject(o, "ts", ts);
  cJSON_AddStringToObject(o, "level", level);
  cJSON_AddStringToObject(o, "event", event);
  if (run) cJSON_AddStringToObject(o, "run_id", run);
  if (msg) cJSON_AddStringToObject(o, "msg", msg);
  char *text = cJSON_PrintUnformatted(o);
  cJSON_Delete(o);
  if (!text) return;
  size_t n = lc_secrets_scrub(text, strlen(text), LC_SCRUB_JSON);
  pthread_mutex_lock(&log_mu);
  fwrite(text, 1, n, stderr);
  fputc('\n', stderr);
  pthread_mutex_unlock(&log_mu);
  cJSON_free(text);
}

const struct lc_agent *lc_serve_agent(struct lc_serve *s, const char *id) {
  for (int i = 0; id && i < s->nagents; i++)
    if (!strcmp(s->agents[i].id, id)) return &s->agents[i];
  return NULL;
}

/* ---- agents ---- */

/* [-1, +0] The value on top as JSON text (NULL when it is not JSON). */
static char *top_json(lua_State *L) {
  lua_getglobal(L, "luact");
  lua_getfield(L, -1, "json");
  lua_getfield(L, -1, "encode");
  lua_remove(L, -2);
  lua_remove(L, -2);
  lua_insert(L, -2);
  char *out = NULL;
  if (lc_lua_pcall(L, 1, 1) == LUA_OK && lua_type(L, -1) == LUA_TSTRING)
    out = strdup(lua_tostring(L, -1));
  lua_pop(L, 1);
  return out;
}

/* Loads one agent's script in a state of its own to read what it says
 * about itself. Returns 0, or -1 with the reason logged. */
static int load_agent(struct lc_serve *s, const char *file, const char *base,
                      struct lc_agent *a) {
  memset(a, 0, sizeof *a);
  char abs[4096];
  if (!realpath(file, abs)) return -1;
  lua_State *L = lc_lua_newstate(); /* logs and aborts on a panic */
  if (!L) return -1;
  lc_lua_setup(L);
  lua_createtable(L, 0, 1); /* arg[0]: the script, as when it runs */
  lua_pushstring(L, abs);
  lua_rawseti(L, -2, 0);
  lua_setglobal(L, "arg");
  int ok = 0;
  if (luaL_loadfilex(L, abs, "t") != LUA_OK || lc_lua_pcall(L, 0, 1) != LUA_OK) {
    lc_serve_log(s, "error", "agent_load_failed", NULL, lua_tostring(L, -1));
  } else if (lua_isfunction(L, -1)) {
    ok = 1;
  } else if (lua_istable(L, -1)) {
    lua_getfield(L, -1, "run");
    ok = lua_isfunction(L, -1);
    lua_pop(L, 1);
    lua_getfield(L, -1, "name");
    if (lua_type(L, -1) == LUA_TSTRING) a->id = strdup(lua_tostring(L, -1));
    lua_pop(L, 1);
    lua_getfield(L, -1, "description");
    if (lua_type(L, -1) == LUA_TSTRING) a->description = strdup(lua_tostring(L, -1));
    lua_pop(L, 1);
    lua_getfield(L, -1, "input_schema");
    if (lua_istable(L, -1)) a->input_schema = top_json(L);
    else lua_pop(L, 1);
    lua_getfield(L, -1, "output_schema");
    if (lua_istable(L, -1)) a->output_schema = top_json(L);
    else lua_pop(L, 1);
    lua_getfield(L, -1, "max_runs");
    if (lua_isinteger(L, -1) && lua_tointeger(L, -1) > 0 && lua_tointeger(L, -1) < 1 << 20)
      a->max_runs = (int)lua_tointeger(L, -1);
    lua_pop(L, 1);
    if (!ok) lc_serve_log(s, "error", "agent_load_failed", NULL, abs);
  } else {
    lc_serve_log(s, "error", "agent_load_failed", NULL, "the script returns no run function");
  }
  lua_close(L);
  if (!ok) {
    free(a->id);
    free(a->description);
    free(a->input_schema);
    free(a->output_schema);
    memset(a, 0, sizeof *a);
    return -1;
  }
  if (!a->id) a->id = strdup(base);
  a->file = strdup(abs);
  return 0;
}

static int load_agents(struct lc_serve *s) {
  DIR *d = opendir(s->agents_dir);
  if (!d) {
    fprintf(stderr, "luact serve: cannot open %s: %s\n", s->agents_dir, strerror(errno));
    return -1;
  }
  struct dirent *e;
  while ((e = readdir(d))) {
    if (e->d_name[0] == '.') continue;
    char path[4096], base[256];
    size_t n = strlen(e->d_name);
    if (n > 4 && !strcmp(e->d_name + n - 4, ".lua")) {
      snprintf(path, sizeof path, "%s/%s", s->agents_dir, e->d_name);
      snprintf(base, sizeof base, "%.*s", (int)(n - 4), e->d_name);
    } else {
      snprintf(path, sizeof path, "%s/%s/serve.lua", s->agents_dir, e->d_name);
      snprintf(base, sizeof base, "%s", e->d_name);
      struct stat st;
      if (stat(path, &st) || !S_ISREG(st.st_mode)) continue;
    }
    struct lc_agent a;
    if (load_agent(s, path, base, &a)) continue;
    if (lc_serve_agent(s, a.id)) {
      fprintf(stderr, "luact serve: two agents are named '%s'\n", a.id);
      closedir(d);
      return -1;
    }
    struct lc_agent *v = realloc(s->agents, (size_t)(s->nagents + 1) * sizeof *v);
    if (!v) break;
    s->agents = v;
    s->agents[s->nagents++] = a;
  }
  closedir(d);
  return 0;
}

/* ---- tokens ---- */

static int load_tokens(struct lc_serve *s) {
  FILE *f = fopen(s->tokens_file, "r");
  if (!f) {
    fprintf(stderr, "luact serve: cannot open --tokens %s\n", s->tokens_file);
    return -1;
  }
  char line[1024];
  while (fgets(line, sizeof line, f)) {
    char tok[512], ten[256];
    if (line[0] == '#' || sscanf(line, "%511s %255s", tok, ten) != 2) continue;
    struct lc_token *v = realloc(s->tokens, (size_t)(s->ntokens + 1) * sizeof *v);
    if (!v) break;
    s->tokens = v;
    s->tokens[s->ntokens].token = strdup(tok);
    s->tokens[s->ntokens].tenant = strdup(ten);
    /* A token is a secret: never in a log, event or metric. */
    lc_secret_add(tok, strlen(tok));
    s->ntokens++;
  }
  fclose(f);
  if (!s->ntokens) {
    fprintf(stderr, "luact serve: --tokens %s holds no `TOKEN TENANT` line\n", s->tokens_file);
    return -1;
  }
  return 0;
}

/* ---- the runner ---- */

struct lc_queued {
  char id[65];
  char thread[65];
  struct lc_agent *agent; /* NULL: gone from the folder (the run fails) */
  double t0;
  struct lc_queued *next;
};

void lc_serve_notify(struct lc_serve *s) {
  pthread_mutex_lock(&s->mu);
  s->changes++;
  pthread_cond_broadcast(&s->changed);
  pthread_mutex_unlock(&s->mu);
}

static void deadline_in(struct timespec *ts, long ms) {
  clock_gettime(CLOCK_REALTIME, ts);
  ts->tv_sec += ms / 1000;
  ts->tv_nsec += (ms % 1000) * 1000000L;
  if (ts->tv_nsec >= 1000000000L) {
    ts->tv_sec++;
    ts->tv_nsec -= 1000000000L;
  }
}

void lc_serve_wait_change(struct lc_serve *s, long ms) {
  struct timespec ts;
  deadline_in(&ts, ms);
  pthread_mutex_lock(&s->mu);
  pthread_cond_timedwait(&s->changed, &s->mu, &ts);
  pthread_mutex_unlock(&s->mu);
}

void lc_serve_wait_change_since(struct lc_serve *s, unsigned long *seen, long ms) {
  struct timespec ts;
  deadline_in(&ts, ms);
  pthread_mutex_lock(&s->mu);
  if (s->changes == *seen) pthread_cond_timedwait(&s->changed, &s->mu, &ts);
  *seen = s->changes;
  pthread_mutex_unlock(&s->mu);
}

/* The run store's status of a run (0), or LC_ENOTFOUND when it has no row
 * (not started). Read on the daemon tables' read connection: the run
 * store's own connection is held through every status commit's fsync,
 * and waits and streams ask for statuses all the time. */
static int store_status(struct lc_serve *s, const char *run_id, char *buf, size_t n) {
  char err[256];
  cJSON *rows = NULL;
  if (lc_dstore_exec(s->ds, &rows, err, sizeof err, "SELECT status FROM runs WHERE id=?", "s",
                     run_id))
    lc_serve_log(s, "warn", "status_read_failed", run_id, err);
  const cJSON *row = cJSON_GetArrayItem(rows, 0);
  const cJSON *st = cJSON_GetObjectItem(row, "status");
  int rc = row ? 0 : LC_ENOTFOUND;
  if (row) snprintf(buf, n, "%s", cJSON_IsString(st) ? st->valuestring : "running");
  cJSON_Delete(rows);
  return rc;
}

/* lc_store_run_set_status's update, through the daemon tables' group
 * commit: a run's end shares its fsync with the others ending or being
 * created meanwhile. Committed before it returns. */
static int set_status(struct lc_serve *s, const char *id, const char *status, const char *result,
                      const char *error, const char *question, char *err, size_t n) {
  /* A fleet's status changes are fenced by the run's lease epoch: only the
   * run store's own update checks it. */
  if (lc_store_is_pg_store(s->store))
    return lc_store_run_set_status(s->store, id, status, result, error, question, 0, err, n);
  return lc_dstore_exec(s->ds, NULL, err, n,
                        "UPDATE runs SET status=?, result=?, error=?, question=?, pid=0, "
                        "updated=?, cancel_requested=CASE WHEN ?='running' THEN "
                        "cancel_requested ELSE 0 END WHERE id=?",
                        "ssssdss", status, result, error, question, lc_serve_now(), status, id);
}

int lc_serve_run_status(struct lc_serve *s, const char *run_id, char *buf, size_t n) {
  char err[256];
  if (store_status(s, run_id, buf, n) == 0) return 0;
  cJSON *rows = NULL;
  lc_dstore_exec(s->ds, &rows, err, sizeof err, "SELECT pstatus FROM d_runs WHERE id=?", "s",
                 run_id);
  const cJSON *row = cJSON_GetArrayItem(rows, 0);
  const cJSON *st = cJSON_GetObjectItem(row, "pstatus");
  int rc = cJSON_IsString(st) ? 0 : LC_ENOTFOUND;
  /* 'claimed' (a fleet's run under a lease, not started yet) is queued
   * to its clients */
  if (!rc) snprintf(buf, n, "%s", strcmp(st->valuestring, "claimed") ? st->valuestring : "pending");
  cJSON_Delete(rows);
  return rc;
}

static const char wrapper[] =
    "local chunk, input_json, ctx_json = ...\n"
    "local r = chunk()\n"
    "local f = type(r) == 'table' and r.run or r\n"
    "if type(f) ~= 'function' then error('the agent script returns no run function') end\n"
    "return f(luact.json.decode(input_json), luact.json.decode(ctx_json))\n";

/* The root task's first result as JSON (NULL when none or not JSON). */
static char *result_json(lua_State *L, lua_State *co) {
  if (lua_gettop(co) < 1) return NULL;
  lua_pushvalue(co, 1);
  lua_xmove(co, L, 1);
  char *out = top_json(L);
  if (out) lc_secrets_scrub_str(out);
  return out;
}

static void pump(struct lc_serve *s);

static const char *jstr(const cJSON *o, const char *k);

/* ---- luact.store: the daemon's key-value store, from scripts ---- */

struct worker;

struct store_ctx {
  struct lc_serve *s;
  const char *tenant;
  struct worker *w; /* the run's worker: operations wait off it */
  const char *run_id; /* its writes are fenced by the run's lease */
};

/* ---- the runner's threads ----
 *
 * Runs execute on --workers threads. Each worker has one loop (one epoll,
 * one curl multi: connections to a provider are reused across runs) on
 * which many runs go on at once, each in its own Lua state with its own
 * scheduler (lc_sched_new_on), so tenants and agents share nothing Lua.
 * A worker never waits on disk or on the database: what does (reading a
 * run's request, opening its journal, its final status, luact.store's
 * SQL) is a job for the blocking pool, whose threads may sit in a commit
 * wait; a job that a task waits on is handed back to the task's worker,
 * which wakes the task from its loop. Journal lines already wait off the
 * loop (the store's writer thread and the journal's eventfd). */

#ifdef LUACT_WITH_JEMALLOC
/* jemalloc's, linked statically into the luact binary (CMakeLists.txt). */
int mallctl(const char *name, void *oldp, size_t *oldlenp, void *newp, size_t newlen);
#endif

struct job {
  void (*run)(struct job *);  /* on a pool thread */
  void (*done)(struct job *); /* then on worker w's thread */
  struct worker *w;           /* NULL: no done; run may free the job */
  struct job *next;
};

struct lc_active;

struct worker {
  pthread_t th;
  struct lc_serve *s;
  struct lc_loop *loop;
  int efd; /* pokes the worker: work in its mailbox */
  struct lc_fdwatch ew;
  pthread_mutex_t mu; /* the mailbox: inbox, done jobs, kills, stop */
  struct lc_active *inbox;
  struct job *done_head, *done_tail;
  int kills, stop;
  struct lc_active *runs; /* the worker thread's own */
  /* Its runs with work to do (a task ready, or the root ended), in the
   * order they got it: a pass steps these only (run_ready). */
  struct lc_active *ready_head, *ready_tail;
  int load; /* runs assigned to it (under s->mu): pump picks the least */
  long nruns; /* runs on its loop now (worker thread; bench) */
};

struct runner {
  pthread_mutex_t mu; /* the pool's queue and threads */
  pthread_cond_t cv;
  pthread_cond_t quiet; /* every pool thread idle, nothing queued */
  struct job *head, *tail;
  /* Pool threads start when jobs outnumber the idle ones, up to cap:
   * an idle daemon has few, a burst of runs as many as it needs. */
  int stop, npool, cap, idle, queued, nworkers;
  pthread_t *pool;
  pthread_attr_t pool_attr;
  struct worker *w;
};

static void *pool_main(void *ud);

static void worker_poke(struct worker *w) {
  uint64_t one = 1;
  ssize_t r = write(w->efd, &one, sizeof one); /* a counter: never blocks */
  (void)r;
}

/* Queues a job for the pool (any thread). */
static void pool_submit(struct lc_serve *s, struct job *j) {
  struct runner *r = s->runner;
  j->next = NULL;
  pthread_mutex_lock(&r->mu);
  if (r->tail) r->tail->next = j;
  else r->head = j;
  r->tail = j;
  r->queued++;
  /* Every idle thread has a job already: one more thread (or the job
   * waits for a busy one when the pool is full). */
  if (r->queued > r->idle && r->npool < r->cap &&
      pthread_create(&r->pool[r->npool], &r->pool_attr, pool_main, r) == 0)
    r->npool++;
  pthread_cond_signal(&r->cv);
  pthread_mutex_unlock(&r->mu);
}

static void *pool_main(void *ud) {
  struct runner *r = ud;
#ifdef LUACT_WITH_JEMALLOC
  /* No thread cache here: pool threads mostly wait, and a cache each
   * (up to hundreds of KiB that only a thread's own frees reuse) is what
   * a daemon of waiting runs grew by. */
  _Bool off = 0;
  mallctl("thread.tcache.enabled", NULL, NULL, &off, sizeof off);
#endif
  pthread_mutex_lock(&r->mu);
  for (;;) {
    r->idle++;
    if (!r->head && r->idle == r->npool) pthread_cond_broadcast(&r->quiet);
    while (!r->head && !r->stop) pthread_cond_wait(&r->cv, &r->mu);
    r->idle--;
    struct job *j = r->head;
    if (!j) break; /* stopping, nothing queued */
    r->head = j->next;
    if (!r->head) r->tail = NULL;
    r->queued--;
    pthread_mutex_unlock(&r->mu);
    struct worker *w = j->w; /* before run: without a worker, run may free j */
    j->run(j);
    if (w) {
      j->next = NULL;
      pthread_mutex_lock(&w->mu);
      if (w->done_tail) w->done_tail->next = j;
      else w->done_head = j;
      w->done_tail = j;
      pthread_mutex_unlock(&w->mu);
      worker_poke(w);
    }
    pthread_mutex_lock(&r->mu);
  }
  pthread_mutex_unlock(&r->mu);
  return NULL;
}

/* ---- luact.store's operations: jobs for the pool ---- */

enum { SOP_PUT, SOP_GET, SOP_DELETE, SOP_SEARCH };

struct sop {
  struct job job; /* first: the job is the op */
  struct lc_wait wait;
  struct lc_task *task;
  struct lc_serve *s;
  int op, rc, gone;
  long epoch; /* the run's lease epoch when asked: put and delete are fenced */
  char *run_id, *tenant, *ns, *key, *val;
  long limit;
  char *out; /* get: the value; search: the JSON text */
  char err[256];
};

static void sop_free(struct sop *o) {
  free(o->run_id);
  free(o->tenant);
  free(o->ns);
  free(o->key);
  free(o->val);
  free(o->out);
  free(o);
}

/* Test hook (check_serve's stalled_store): a put of the key "stall"
 * blocks until a byte arrives through the FIFO the variable names, so a
 * test holds one run's store write as long as it wants. */
static void stall_hook(const struct sop *o) {
  const char *fifo = getenv("LUACT_SERVE_STALL_STORE");
  if (!fifo || o->op != SOP_PUT || strcmp(o->key, "stall")) return;
  int fd = open(fifo, O_RDONLY | O_CLOEXEC); /* waits for the writer */
  if (fd < 0) return;
  char b;
  ssize_t n = read(fd, &b, 1);
  (void)n;
  close(fd);
}

/* The SQL of one operation (pool thread, or the calling one). */
static void sop_run(struct job *j) {
  struct sop *o = (struct sop *)j;
  struct lc_dstore *ds = o->s->ds;
  cJSON *rows = NULL;
  stall_hook(o);
  switch (o->op) {
    case SOP_PUT: {
      double now = lc_serve_now();
      o->rc = lc_dstore_exec_fenced(ds, o->run_id, o->epoch, &rows, o->err, sizeof o->err,
                                    "INSERT INTO d_items(tenant, ns, key, value, created, updated) "
                                    "SELECT ?,?,?,?,?,? WHERE " LC_DSTORE_FENCE
                                    " ON CONFLICT(tenant, ns, key) DO UPDATE SET "
                                    "value=excluded.value, updated=excluded.updated RETURNING 1 AS ok",
                                    "ssssdd", o->tenant, o->ns, o->key, o->val, now, now);
      if (!o->rc && cJSON_GetArraySize(rows) == 0) { /* fenced out */
        o->rc = LC_ESTATE;
        snprintf(o->err, sizeof o->err,
                 "another daemon holds this run now (lease lost): nothing written");
      }
      break;
    }
    case SOP_GET: {
      lc_dstore_exec(ds, &rows, o->err, sizeof o->err,
                     "SELECT value FROM d_items WHERE tenant=? AND ns=? AND key=?", "sss",
                     o->tenant, o->ns, o->key);
      const char *v = jstr(cJSON_GetArrayItem(rows, 0), "value");
      o->out = v ? strdup(v) : NULL;
      break;
    }
    case SOP_DELETE:
      lc_dstore_exec_fenced(ds, o->run_id, o->epoch, NULL, o->err, sizeof o->err,
                            "DELETE FROM d_items WHERE tenant=? AND ns=? AND key=? AND "
                            LC_DSTORE_FENCE, "sss", o->tenant, o->ns, o->key);
      break;
    default: {
      lc_dstore_exec(ds, &rows, o->err, sizeof o->err,
                     "SELECT ns, key, value FROM d_items WHERE tenant=? AND "
                     "substr(ns, 1, length(?))=? ORDER BY updated DESC LIMIT ?",
                     "sssi", o->tenant, o->ns, o->ns, o->limit);
      cJSON *r;
      cJSON_ArrayForEach(r, rows) {
        const char *v = jstr(r, "value");
        cJSON *pv = v ? cJSON_Parse(v) : NULL;
        cJSON_ReplaceItemInObject(r, "value", pv ? pv : cJSON_CreateNull());
      }
      char *t = cJSON_PrintUnformatted(rows ? rows : cJSON_CreateArray());
      o->out = t ? strdup(t) : NULL;
      cJSON_free(t);
    }
  }
  cJSON_Delete(rows);
}

/* Back on the task's worker: wake the task, or drop the op of a task
 * killed meanwhile (its cancel marked it gone). */
static void sop_done(struct job *j) {
  struct sop *o = (struct sop *)j;
  if (o->gone) sop_free(o);
  else lc_task_wake(o->task, &o->wait);
}

/* The task was killed while its op was in the pool (worker thread). */
static void sop_cancel(struct lc_wait *w) {
  struct sop *o = (struct sop *)((char *)w - offsetof(struct sop, wait));
  o->gone = 1;
}

/* A to-be-closed box that frees a malloc'd pointer, so the pushes after
 * an op (which may raise) leak nothing. */
static int ptrbox_gc(lua_State *L) {
  void **b = lua_touserdata(L, 1);
  free(*b);
  *b = NULL;
  return 0;
}

/* [-0, +(1|2), m] Pushes the op's results and frees it (box: the op). */
static int sop_results(lua_State *L, void **box) {
  struct sop *o = *box;
  int op = o->op, rc = o->rc;
  char err[256];
  snprintf(err, sizeof err, "%s", o->err);
  char *out = o->out;
  o->out = NULL;
  sop_free(o);
  *box = out; /* the box now holds the text */
  switch (op) {
    case SOP_PUT:
      if (rc) {
        lua_pushnil(L);
        lua_pushstring(L, err);
        return 2;
      }
      lua_pushboolean(L, 1);
      return 1;
    case SOP_GET:
      if (out) lua_pushstring(L, out);
      else lua_pushnil(L);
      return 1;
    case SOP_DELETE: lua_pushboolean(L, 1); return 1;
    default: lua_pushstring(L, out ? out : "[]"); return 1;
  }
}

/* The continuation: the op (ctx) is done; the box is on top. */
static int store_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  void **box = lua_touserdata(L, -1);
  *box = (struct sop *)ctx;
  return sop_results(L, box);
}

/* The raw operations (upvalue 1: struct store_ctx). Namespaces arrive as
 * the stored key (labels each ended by \x1f), values as JSON text. In a
 * task that can yield, the SQL runs on the pool and the task waits for
 * it: a commit held up holds up this run, never the others on its
 * worker. Elsewhere (a run that cannot yield here) it runs at once. */
static int store_op(lua_State *L, int op) {
  struct store_ctx *c = lua_touserdata(L, lua_upvalueindex(1));
  const char *ns = luaL_checkstring(L, 1);
  const char *key = op == SOP_SEARCH ? NULL : luaL_checkstring(L, 2);
  const char *val = op == SOP_PUT ? luaL_checkstring(L, 3) : NULL;
  long limit = op == SOP_SEARCH ? (long)luaL_optinteger(L, 2, 10) : 0;
  void **box = lua_newuserdatauv(L, sizeof *box, 0);
  *box = NULL;
  if (luaL_newmetatable(L, "luact.ServeBox")) {
    lua_pushcfunction(L, ptrbox_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, ptrbox_gc);
    lua_setfield(L, -2, "__close");
  }
  lua_setmetatable(L, -2);
  struct sop *o = calloc(1, sizeof *o);
  if (!o || !(o->run_id = strdup(c->run_id)) || !(o->tenant = strdup(c->tenant)) ||
      !(o->ns = strdup(ns)) ||
      (key && !(o->key = strdup(key))) || (val && !(o->val = strdup(val)))) {
    if (o) sop_free(o);
    return luaL_error(L, "luact.store: out of memory");
  }
  o->s = c->s;
  o->epoch = lc_store_fence_of(c->s->store, c->run_id);
  o->op = op;
  o->limit = limit;
  struct lc_task *t = lc_task_current(L);
  if (!t || !c->w || !lua_isyieldable(L)) {
    sop_run(&o->job);
    *box = o;
    return sop_results(L, box);
  }
  /* From here the op is the pool's, then the continuation's (or
   * sop_done's, once a kill made it gone): not the box's. */
  o->task = t;
  o->job.run = sop_run;
  o->job.done = sop_done;
  o->job.w = c->w;
  o->wait.cancel = sop_cancel;
  lc_task_wait(t, &o->wait);
  pool_submit(c->s, &o->job);
  return lua_yieldk(L, 0, (lua_KContext)o, store_k);
}

static int l_store_put(lua_State *L) { return store_op(L, SOP_PUT); }
static int l_store_get(lua_State *L) { return store_op(L, SOP_GET); }
static int l_store_delete(lua_State *L) { return store_op(L, SOP_DELETE); }
/* search(prefix, limit) -> JSON text: [{"ns": key, "key": k, "value": {...}}] */
static int l_store_search(lua_State *L) { return store_op(L, SOP_SEARCH); }

/* Each operation is a journaled effect (luact.effect): a resumed run gets
 * what it read and wrote the first time instead of doing it again. */
static const char store_lua[] =
    "local raw = ...\n"
    "local J = luact.json\n"
    "local function nskey(ns, who, empty)\n"
    "  if type(ns) ~= 'table' or (#ns == 0 and not empty) then\n"
    "    error('luact.store.' .. who .. ': the namespace must be a list of labels', 3) end\n"
    "  for i = 1, #ns do\n"
    "    local l = ns[i]\n"
    "    if type(l) ~= 'string' or l == '' or l:find('[%z\\31.]') then\n"
    "      error('luact.store.' .. who .. ': bad namespace label ' .. tostring(l), 3) end\n"
    "  end\n"
    "  return #ns == 0 and '' or table.concat(ns, '\\31') .. '\\31'\n"
    "end\n"
    "local S = {}\n"
    "function S.put(ns, key, value)\n"
    "  local k = nskey(ns, 'put')\n"
    "  if type(key) ~= 'string' then error('luact.store.put: key must be a string', 2) end\n"
    "  if type(value) ~= 'table' then error('luact.store.put: value must be a table', 2) end\n"
    "  local v = J.encode(value)\n"
    "  return luact.effect('store', 'put', {namespace = ns, key = key, value = value},\n"
    "    'idempotent', function() return raw.put(k, key, v) end)\n"
    "end\n"
    "function S.get(ns, key)\n"
    "  local k = nskey(ns, 'get')\n"
    "  if type(key) ~= 'string' then error('luact.store.get: key must be a string', 2) end\n"
    "  local v = luact.effect('store', 'get', {namespace = ns, key = key}, 'pure',\n"
    "    function() return raw.get(k, key) end)\n"
    "  return v and J.decode(v) or nil\n"
    "end\n"
    "function S.delete(ns, key)\n"
    "  local k = nskey(ns, 'delete')\n"
    "  return luact.effect('store', 'delete', {namespace = ns, key = key}, 'idempotent',\n"
    "    function() return raw.delete(k, key) end)\n"
    "end\n"
    "function S.search(prefix, opts)\n"
    "  local k = nskey(prefix or {}, 'search', true)\n"
    "  local limit = opts and opts.limit or 10\n"
    "  local t = luact.effect('store', 'search', {prefix = prefix or {}, limit = limit}, 'pure',\n"
    "    function() return raw.search(k, limit) end)\n"
    "  local out = {}\n"
    "  for _, it in ipairs(J.decode(t)) do\n"
    "    local ns = {}\n"
    "    for l in it.ns:gmatch('([^\\31]+)\\31') do ns[#ns + 1] = l end\n"
    "    out[#out + 1] = {namespace = ns, key = it.key, value = it.value}\n"
    "  end\n"
    "  return out\n"
    "end\n"
    "luact.store = S\n";

/* [-0, +0, e] Sets luact.store in L for a run of tenant c->tenant. */
static int open_store(lua_State *L, struct store_ctx *c) {
  if (luaL_loadbufferx(L, store_lua, sizeof store_lua - 1, "=luact.store", "t") != LUA_OK)
    return -1;
  static const luaL_Reg fns[] = {{"put", l_store_put}, {"get", l_store_get},
                                 {"delete", l_store_delete}, {"search", l_store_search},
                                 {NULL, NULL}};
  lua_newtable(L);
  lua_pushlightuserdata(L, c);
  luaL_setfuncs(L, fns, 1);
  return lc_lua_pcall(L, 1, 0) == LUA_OK ? 0 : -1;
}

struct run_in {
  char *agent, *input, *ctx, *thread, *tenant;
};

static void run_in_free(struct run_in *ri) {
  free(ri->agent);
  free(ri->input);
  free(ri->ctx);
  free(ri->thread);
  free(ri->tenant);
}

static char *jdup(const cJSON *o, const char *k) {
  const cJSON *v = cJSON_GetObjectItem(o, k);
  return cJSON_IsString(v) ? strdup(v->valuestring) : NULL;
}

/* The run's request, and its context fixed at the first start (so that a
 * resumed run replays against what it first saw). */
static int run_request(struct lc_serve *s, const char *id, struct run_in *ri) {
  char err[256];
  cJSON *rows = NULL;
  memset(ri, 0, sizeof *ri);
  if (lc_dstore_exec(s->ds, &rows, err, sizeof err,
                     "SELECT agent, input, ctx, thread_id, tenant FROM d_runs WHERE id=?", "s",
                     id))
    return -1;
  const cJSON *r = cJSON_GetArrayItem(rows, 0);
  if (!r) {
    cJSON_Delete(rows);
    return -1;
  }
  ri->agent = jdup(r, "agent");
  ri->input = jdup(r, "input");
  ri->ctx = jdup(r, "ctx");
  ri->thread = jdup(r, "thread_id");
  ri->tenant = jdup(r, "tenant");
  cJSON_Delete(rows);
  if (!ri->ctx) {
    cJSON *ctx = cJSON_CreateObject();
    cJSON_AddStringToObject(ctx, "run_id", id);
    if (ri->thread) {
      cJSON_AddStringToObject(ctx, "thread_id", ri->thread);
      cJSON *v = NULL;
      lc_dstore_exec(s->ds, &v, err, sizeof err, "SELECT vals FROM d_threads WHERE id=?", "s",
                     ri->thread);
      const cJSON *vals = cJSON_GetObjectItem(cJSON_GetArrayItem(v, 0), "vals");
      cJSON *pv = cJSON_IsString(vals) ? cJSON_Parse(vals->valuestring) : NULL;
      if (pv) cJSON_AddItemToObject(ctx, "values", pv);
      cJSON_Delete(v);
    }
    ri->ctx = cJSON_PrintUnformatted(ctx);
    cJSON_Delete(ctx);
    /* A run of a thread keeps what it first saw of the thread's values; a
     * stateless run's context is its id, made the same again on a resume:
     * nothing to write (one commit less per run). */
    if (ri->thread) {
      lc_crash_point("before_run_ctx", NULL); /* tests (LUACT_CRASH_AT) */
      lc_dstore_exec_fenced(s->ds, id, lc_store_fence_of(s->store, id), NULL, err, sizeof err,
                            "UPDATE d_runs SET ctx=?, started=1 WHERE id=? AND " LC_DSTORE_FENCE,
                            "ss", ri->ctx, id);
    }
  }
  return ri->agent && ri->input && ri->ctx ? 0 : -1;
}

/* Sets the thread's values from a finished run's output (an object stays
 * as it is; anything else is {"output": value}). */
static void thread_values(struct lc_serve *s, const char *run_id, const char *thread,
                          const char *result) {
  if (!thread) return;
  cJSON *v = result ? cJSON_Parse(result) : NULL;
  if (!cJSON_IsObject(v)) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddItemToObject(o, "output", v ? v : cJSON_CreateNull());
    v = o;
  }
  char *t = cJSON_PrintUnformatted(v);
  cJSON_Delete(v);
  char err[256];
  lc_dstore_exec_fenced(s->ds, run_id, lc_store_fence_of(s->store, run_id), NULL, err, sizeof err,
                        "UPDATE d_threads SET vals=?, updated=? WHERE id=? AND " LC_DSTORE_FENCE,
                        "sds", t, lc_serve_now(), thread);
  cJSON_free(t);
}

/* After a run's execution: the latency of each effect it ran live (result
 * lines after line `from`), by kind, and the LLM tokens, into the
 * metrics. Reads the journal back: the results carry latency_ms and the
 * LLM's usage, their intents the kind (a pure effect's one line both). */
static void effect_metrics(struct lc_serve *s, const char *run, long from) {
  char err[256];
  cJSON *rows = NULL;
  lc_dstore_exec(s->ds, &rows, err, sizeof err,
                 "SELECT seq, line FROM journal WHERE run_id=? ORDER BY seq", "s", run);
  cJSON *kinds = cJSON_CreateObject(); /* effect id -> kind */
  const cJSON *r;
  cJSON_ArrayForEach(r, rows) {
    cJSON *l = cJSON_Parse(jstr(r, "line") ? jstr(r, "line") : "null");
    const char *t = jstr(l, "type"), *id = jstr(l, "id");
    if (t && id && !strcmp(t, "intent") && jstr(l, "kind")) {
      cJSON_DeleteItemFromObjectCaseSensitive(kinds, id);
      cJSON_AddStringToObject(kinds, id, jstr(l, "kind"));
    } else if (t && id && !strcmp(t, "result") &&
               cJSON_GetObjectItem(r, "seq")->valuedouble > (double)from) {
      /* a pure effect's one line carries its kind itself */
      const char *k = jstr(l, "kind") ? jstr(l, "kind") : jstr(kinds, id);
      int ki = 0;
      while (lc_serve_kind_names[ki + 1] && (!k || strcmp(lc_serve_kind_names[ki], k))) ki++;
      const cJSON *lat = cJSON_GetObjectItemCaseSensitive(l, "latency_ms");
      if (cJSON_IsNumber(lat)) {
        atomic_fetch_add(&s->kind_us[ki], (long)(lat->valuedouble * 1000));
        atomic_fetch_add(&s->kind_n[ki], 1);
      }
      const cJSON *u = cJSON_GetObjectItemCaseSensitive(l, "usage");
      const cJSON *in = cJSON_GetObjectItemCaseSensitive(u, "input"),
                  *out = cJSON_GetObjectItemCaseSensitive(u, "output");
      if (cJSON_IsNumber(in)) atomic_fetch_add(&s->llm_tokens_in, (long)in->valuedouble);
      if (cJSON_IsNumber(out)) atomic_fetch_add(&s->llm_tokens_out, (long)out->valuedouble);
    }
    cJSON_Delete(l);
  }
  cJSON_Delete(kinds);
  cJSON_Delete(rows);
}

/* The journal's last line number (0: none yet). */
static long journal_last(struct lc_serve *s, const char *run) {
  char err[256];
  cJSON *rows = NULL;
  lc_dstore_exec(s->ds, &rows, err, sizeof err,
                 "SELECT coalesce(max(seq), 0) AS n FROM journal WHERE run_id=?", "s", run);
  const cJSON *n = cJSON_GetObjectItem(cJSON_GetArrayItem(rows, 0), "n");
  long v = cJSON_IsNumber(n) ? (long)n->valuedouble : 0;
  cJSON_Delete(rows);
  return v;
}

/* Hands the allocator's free pages back to the system (pool thread, when
 * the last active run ended): a burst of runs leaves megabytes of freed
 * Lua states and journals that jemalloc would keep for its decay time
 * (10 s, and only while something allocates), counted in the RSS of a
 * daemon whose runs now only wait. */
static void release_memory(void) {
#ifdef LUACT_WITH_JEMALLOC
  mallctl("arena.4096.purge", NULL, NULL, NULL, 0); /* 4096: MALLCTL_ARENAS_ALL */
#elif defined(__GLIBC__)
  malloc_trim(0);
#endif
}

/* A daemon's allocations come in bursts (runs starting and ending, a
 * connection thread each): jemalloc keeps freed pages for 10 s and purges
 * them only while the thread that freed them allocates again, so a burst
 * of connections left tens of MiB behind for good. Purged after 1 s here,
 * by jemalloc's own background threads. */
static void tune_allocator(void) {
#ifdef LUACT_WITH_JEMALLOC
  ssize_t ms = 1000;
  mallctl("arenas.dirty_decay_ms", NULL, NULL, &ms, sizeof ms); /* arenas made later */
  unsigned n = 0;
  size_t len = sizeof n;
  if (mallctl("arenas.narenas", &n, &len, NULL, 0) == 0)
    for (unsigned i = 0; i < n; i++) { /* arenas in use (others refuse: fine) */
      char k[48];
      snprintf(k, sizeof k, "arena.%u.dirty_decay_ms", i);
      mallctl(k, NULL, NULL, &ms, sizeof ms);
    }
  _Bool on = 1;
  mallctl("background_thread", NULL, NULL, &on, sizeof on);
#endif
}

/* A run, from its start (pump) to its end (epilogue). */
struct lc_active {
  char id[65];
  char thread[65];
  struct lc_agent *agent;
  struct lc_journal *jr; /* while the run runs (under s->mu) */
  atomic_int killed;     /* cancel asked (cooperative) */
  atomic_int kill_now;   /* immediate cancel asked: the worker kills the root */
  struct lc_serve *s;
  struct lc_active *next; /* s->active */
  struct worker *w;       /* set by pump */
  struct lc_active *wnext; /* the worker's inbox, then its runs */
  struct lc_active *rnext; /* the worker's ready list */
  int on_ready;            /* on it (or ended: never again) */
  struct job job;          /* prologue, then epilogue */
  /* the execution */
  struct run_in ri;
  const struct lc_agent *ag;
  struct store_ctx sctx;
  struct lc_deltas *dl;
  lua_State *L;
  struct lc_sched *sc;
  struct lc_task *root;
  int root_done, kill_sent, rc;
  int start_failed; /* its journal could not be opened (created) */
  long from;
  double t0;
  char *result, *error;
};

static void epilogue(struct job *j);
static int start_failures(const char *id);

/* Off s->active (s->mu held), frees a; the next queued run may start. */
static void active_drop(struct lc_serve *s, struct lc_active *a) {
  for (struct lc_active **p = &s->active; *p; p = &(*p)->next)
    if (*p == a) {
      *p = a->next;
      break;
    }
  s->nactive--;
  if (a->agent) a->agent->active--;
  if (a->w) a->w->load--;
  free(a);
  pump(s);
  pthread_cond_broadcast(&s->changed);
}

/* What a run does before it can run on a worker, all of it waiting on the
 * store (pool thread): its request, its status, its journal opened (a new
 * run's creation committed), its Lua state made and the script loaded.
 * Hands the run to its worker, or, when it cannot start, to epilogue. */
static void prologue(struct job *jb) {
  struct lc_active *a = (struct lc_active *)((char *)jb - offsetof(struct lc_active, job));
  struct lc_serve *s = a->s;
  char err[1024];
  a->t0 = mono_s();
  a->rc = 1;
  if (run_request(s, a->id, &a->ri) || !(a->ag = lc_serve_agent(s, a->ri.agent))) {
    a->error = strdup(a->ri.agent ? "the agent is gone (not in AGENTS_DIR any more)"
                                  : "the run's request is missing");
    epilogue(jb);
    return;
  }
  char was[32];
  int resume = store_status(s, a->id, was, sizeof was) == 0;
  if (resume) {
    int ended = !strcmp(was, "cancelled") || !strcmp(was, "finished") || !strcmp(was, "failed");
    if (ended) { /* cancelled while queued (luact runs cancel): stays so */
      lc_serve_log(s, "info", "run_end", a->id, "ended already: nothing to run");
      lc_fleet_run_done(s, a->id);
      run_in_free(&a->ri);
      pthread_mutex_lock(&s->mu);
      active_drop(s, a);
      pthread_mutex_unlock(&s->mu);
      return;
    }
    /* This process runs it now: `luact runs cancel` then asks it to stop
     * instead of marking a run that goes on as cancelled. */
    lc_store_run_set_status(s->store, a->id, "running", NULL, NULL, NULL, (long)getpid(), err,
                            sizeof err);
  }
  a->from = journal_last(s, a->id); /* lines after it are this execution's */
  a->dl = lc_api_deltas_open(s, a->id, a->from); /* token deltas for streams */
  cJSON *args = cJSON_CreateArray();
  cJSON_AddItemToArray(args, cJSON_CreateString(a->ri.input));
  char *ajson = cJSON_PrintUnformatted(args);
  cJSON_Delete(args);
  struct lc_journal_opts o = {.mode = LC_JOURNAL_RECORD,
                              .store = s->store,
                              .script_path = a->ag->file,
                              .run_id = a->id,
                              .args_json = ajson,
                              .resume = resume,
                              .create_now = !resume}; /* streams start from its header */
  struct lc_journal *jr = NULL;
  int jrc;
  /* Test hook (check_fleet): on a fleet, each run's first start in this
   * process fails as a creation the store refused. */
  if (s->fleet && getenv("LUACT_SERVE_FAIL_START_ONCE") && start_failures(a->id) == 0) {
    snprintf(err, sizeof err, "cannot create the run in the store (test hook)");
    jrc = LC_EIO;
  } else {
    jrc = lc_journal_open_with(&o, &jr, err, sizeof err);
  }
  cJSON_free(ajson);
  if (jrc) {
    a->error = strdup(err);
    a->start_failed = 1;
    epilogue(jb);
    return;
  }
  if (resume) atomic_fetch_add(&s->runs_resumed, 1);
  lc_journal_set_wait_input(jr, 1);
  lc_journal_set_delta_fn(jr, lc_api_delta, a->dl);
  lc_serve_notify(s); /* its header is in: streams have a first event */
  pthread_mutex_lock(&s->mu);
  a->jr = jr;
  int cancel_now = atomic_load(&a->killed);
  pthread_mutex_unlock(&s->mu);
  if (cancel_now) lc_journal_request_cancel(jr);
  lua_State *L = lc_lua_newstate(); /* logs and aborts on a panic */
  if (!L) {
    a->error = strdup("out of memory");
    epilogue(jb);
    return;
  }
  lc_lua_setup(L);
  struct lc_run_opts ro = {.quiet = 1};
  lc_l_set_run_opts(L, &ro); /* copied */
  a->sctx = (struct store_ctx){.s = s, .tenant = a->ri.tenant ? a->ri.tenant : "default",
                               .w = a->w, .run_id = a->id};
  if (open_store(L, &a->sctx))
    lc_serve_log(s, "error", "store_binding", a->id, lua_tostring(L, -1));
  lua_settop(L, 0);
  lua_createtable(L, 0, 1);
  lua_pushstring(L, a->ag->file);
  lua_rawseti(L, -2, 0);
  lua_setglobal(L, "arg");
  if (luaL_loadbufferx(L, wrapper, sizeof wrapper - 1, "=serve", "t") != LUA_OK ||
      luaL_loadfilex(L, a->ag->file, "t") != LUA_OK) {
    a->error = strdup(lua_tostring(L, -1));
    lua_close(L);
    epilogue(jb);
    return;
  }
  lua_pushstring(L, a->ri.input);
  lua_pushstring(L, a->ri.ctx); /* wrapper chunk input ctx: the root's call */
  a->L = L;
  struct worker *w = a->w;
  pthread_mutex_lock(&w->mu);
  a->wnext = w->inbox;
  w->inbox = a;
  pthread_mutex_unlock(&w->mu);
  worker_poke(w);
}

/* Run a has work for its worker's next pass (worker thread): a task of
 * its became ready (its scheduler's on_ready hook, from inside a wake or
 * a spawn) or its root ended. Appended: the runs are stepped in the order
 * they got work, each once per pass, so one busy run cannot starve the
 * others, and a run that only waits costs its worker nothing. */
static void run_ready(void *ud) {
  struct lc_active *a = ud;
  if (a->on_ready) return;
  struct worker *w = a->w;
  a->on_ready = 1;
  a->rnext = NULL;
  if (w->ready_tail) w->ready_tail->rnext = a;
  else w->ready_head = a;
  w->ready_tail = a;
}

static void root_done(struct lc_task *t, void *ud) {
  (void)t;
  struct lc_active *a = ud;
  a->root_done = 1;
  run_ready(a); /* to be finished */
}

/* A prepared run starts on its worker (worker thread): its scheduler on
 * the worker's loop, its journal's waits on that loop, its root task. */
static void adopt(struct worker *w, struct lc_active *a) {
  a->wnext = w->runs;
  w->runs = a;
  w->nruns++;
  if (lc_sched_new_on(a->L, w->loop, &a->sc)) {
    a->error = strdup("cannot create the scheduler");
    a->root_done = 1;
    run_ready(a);
    return;
  }
  lc_sched_on_ready(a->sc, run_ready, a); /* before the spawn readies the root */
  lc_l_journal_attach(a->L, a->jr);
  if (lc_sched_spawn(a->sc, a->L, 3, NULL, &a->root)) {
    a->root = NULL;
    a->error = strdup("out of memory");
    a->root_done = 1;
    run_ready(a);
    return;
  }
  lc_task_on_done(a->root, root_done, a);
  if (atomic_load(&a->kill_now)) {
    a->kill_sent = 1;
    lc_task_kill(a->root, "cancelled");
  }
}

/* The root task ended (worker thread): its result read, its Lua state
 * closed, the rest (commits) handed to the pool. */
static void finish_run(struct worker *w, struct lc_active *a) {
  for (struct lc_active **p = &w->runs; *p; p = &(*p)->wnext)
    if (*p == a) {
      *p = a->wnext;
      break;
    }
  /* Off the ready list for good: freeing its scheduler kills tasks, which
   * must not queue it again. */
  if (a->sc) lc_sched_on_ready(a->sc, NULL, NULL);
  if (a->on_ready) {
    struct lc_active *prev = NULL;
    for (struct lc_active *x = w->ready_head; x; prev = x, x = x->rnext)
      if (x == a) {
        if (prev) prev->rnext = a->rnext;
        else w->ready_head = a->rnext;
        if (w->ready_tail == a) w->ready_tail = prev;
        break;
      }
  }
  a->on_ready = 1;
  w->nruns--;
  if (a->root) {
    lua_State *co = lc_task_thread(a->root);
    if (lc_task_status(a->root) != LUA_OK) {
      const char *m = lua_tostring(co, -1);
      a->error = strdup(m ? m : "the run raised an error");
    } else {
      a->result = result_json(a->L, co);
      a->rc = 0;
    }
  }
  lc_sched_free(a->sc); /* releases the root */
  lua_close(a->L);
  a->L = NULL;
  a->sc = NULL;
  if (a->jr) lc_journal_set_loop(a->jr, NULL); /* its watcher off this loop */
  a->job = (struct job){.run = epilogue};
  pool_submit(a->s, &a->job);
}

static void on_poke(struct lc_loop *loop, struct lc_fdwatch *fw, unsigned ev) {
  (void)loop;
  (void)ev;
  uint64_t v;
  ssize_t r = read(fw->fd, &v, sizeof v);
  (void)r; /* the mailbox is read by worker_main after the pass */
}

static void *worker_main(void *ud) {
  struct worker *w = ud;
  for (;;) {
    pthread_mutex_lock(&w->mu);
    struct lc_active *in = w->inbox;
    struct job *done = w->done_head;
    int kills = w->kills, stop = w->stop;
    w->inbox = NULL;
    w->done_head = w->done_tail = NULL;
    w->kills = 0;
    pthread_mutex_unlock(&w->mu);
    for (struct job *j = done, *next; j; j = next) {
      next = j->next;
      j->done(j);
    }
    while (in) {
      struct lc_active *a = in;
      in = a->wnext;
      adopt(w, a);
    }
    if (kills)
      for (struct lc_active *a = w->runs; a; a = a->wnext)
        if (!a->kill_sent && !a->root_done && atomic_load(&a->kill_now)) {
          a->kill_sent = 1;
          lc_task_kill(a->root, "cancelled");
        }
    /* The pass: the runs that had work when it began, each stepped once;
     * those with work left (or given some meanwhile) go on the list for
     * the next pass. */
    struct lc_active *list = w->ready_head;
    w->ready_head = w->ready_tail = NULL;
    long steps = 0;
    for (struct lc_active *a = list, *next; a; a = next) {
      next = a->rnext;
      a->on_ready = 0;
      if (!a->root_done) {
        steps++;
        if (lc_sched_step(a->sc)) run_ready(a);
      }
      if (a->root_done) finish_run(w, a);
    }
    atomic_fetch_add_explicit(&w->s->worker_passes, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&w->s->worker_steps, steps, memory_order_relaxed);
    if (stop && !w->runs) break;
    lc_loop_run_once(w->loop, w->ready_head ? 0 : -1);
  }
  return NULL;
}

/* The end of a run (pool thread): its journal's lines all committed, its
 * metrics, its thread's values and its final status, then off the
 * active list. Frees a. */
/* Runs whose start failed in this process (a fleet): a few tries each. */
static struct {
  char id[65];
  int n;
} start_fails[64];
static unsigned start_fails_next;
static pthread_mutex_t start_fails_mu = PTHREAD_MUTEX_INITIALIZER;

/* Whether run id may be left for another claim after its start failed
 * here: yes for its first 3 failures in this process (a failed group of
 * the store's writer fails every later write of the run here, so a run
 * that keeps coming back to this daemon ends failed). */
/* How often run id's start failed in this process (as far as it knows). */
static int start_failures(const char *id) {
  pthread_mutex_lock(&start_fails_mu);
  int n = 0;
  for (int k = 0; k < 64; k++)
    if (!strcmp(start_fails[k].id, id)) n = start_fails[k].n;
  pthread_mutex_unlock(&start_fails_mu);
  return n;
}

static int start_retry(const char *id) {
  pthread_mutex_lock(&start_fails_mu);
  int k = 0;
  while (k < 64 && strcmp(start_fails[k].id, id)) k++;
  if (k == 64) {
    k = (int)(start_fails_next++ % 64);
    snprintf(start_fails[k].id, sizeof start_fails[k].id, "%s", id);
    start_fails[k].n = 0;
  }
  int again = ++start_fails[k].n <= 3;
  pthread_mutex_unlock(&start_fails_mu);
  return again;
}

static void epilogue(struct job *jb) {
  struct lc_active *a = (struct lc_active *)((char *)jb - offsetof(struct lc_active, job));
  struct lc_serve *s = a->s;
  char err[1024];
  const struct lc_agent *ag = a->ag;
  struct lc_journal *jr = a->jr;
  const char *status = "failed";
  char *question = NULL, *error = a->error, *result = a->result;
  int rc = a->rc;
  pthread_mutex_lock(&s->mu);
  a->jr = NULL;
  pthread_mutex_unlock(&s->mu);
  lc_api_deltas_close(a->dl);
  if (!jr && a->start_failed && s->fleet && start_retry(a->id)) {
    /* A fleet: the run could not be created here, most often because its
     * lease was lost meanwhile (this daemon stalled) and another daemon
     * holds it now. It stays pending and its lease goes back (fenced by
     * its epoch, below): failing it here, unfenced, left a run that no
     * daemon would claim again (claims take pending runs) and nobody ran. */
    lc_serve_log(s, "warn", "run_start_failed", a->id, error ? error : "");
    free(error);
    free(result);
    run_in_free(&a->ri);
    goto off_list;
  }
  if (jr) {
    switch (lc_journal_failed(jr)) {
      case LC_JOURNAL_WAITING:
        status = "waiting_input";
        question = strdup(lc_journal_question(jr) ? lc_journal_question(jr) : "");
        break;
      case LC_JOURNAL_IN_DOUBT:
        status = "in_doubt";
        free(error);
        error = strdup(lc_journal_error(jr));
        break;
      case LC_JOURNAL_CANCELLED: status = "cancelled"; break;
      case LC_JOURNAL_OK:
        status = atomic_load(&a->killed) && rc ? "cancelled" : rc ? "failed" : "finished";
        break;
      default:
        status = "failed";
        free(error);
        error = strdup(lc_journal_error(jr));
    }
    long begun = 0, replayed = 0, ran = 0;
    lc_journal_counts(jr, &begun, &replayed, &ran);
    atomic_fetch_add(&s->effects_begun, begun);
    atomic_fetch_add(&s->effects_replayed, replayed);
    atomic_fetch_add(&s->effects_ran, ran);
    lc_journal_free(jr); /* every line committed first */
    effect_metrics(s, a->id, a->from);
  }
  if (error) lc_secrets_scrub_str(error);
  if (strcmp(status, "failed") && strcmp(status, "in_doubt")) {
    free(error);
    error = NULL;
  }
  /* The thread's values, the asked mark and the counters before the
   * status: a waiter that sees the run end reads them next. */
  if (!strcmp(status, "finished")) atomic_fetch_add(&s->runs_done_ok, 1);
  else if (!strcmp(status, "cancelled")) atomic_fetch_add(&s->runs_done_cancelled, 1);
  else if (!strcmp(status, "waiting_input")) atomic_fetch_add(&s->runs_interrupted, 1);
  else atomic_fetch_add(&s->runs_done_failed, 1);
  if (ag)
    for (int k = 0; lc_serve_end_names[k]; k++)
      if (!strcmp(lc_serve_end_names[k], status))
        atomic_fetch_add(&((struct lc_agent *)ag)->ended[k], 1);
  atomic_fetch_add(&s->run_us, (long)((mono_s() - a->t0) * 1e6));
  atomic_fetch_add(&s->runs_timed, 1);
  lc_crash_point("before_end_writes", NULL); /* tests (LUACT_CRASH_AT) */
  /* Fenced as the journal is: a daemon that lost the run writes none. */
  long epoch = lc_store_fence_of(s->store, a->id);
  if (!strcmp(status, "finished")) thread_values(s, a->id, a->ri.thread, result);
  if (!strcmp(status, "waiting_input")) /* the run a later resume answers */
    lc_dstore_exec_fenced(s->ds, a->id, epoch, NULL, err, sizeof err,
                          "UPDATE d_runs SET asked=1 WHERE id=? AND " LC_DSTORE_FENCE, "s", a->id);
  lc_crash_point("before_final_status", NULL); /* tests (LUACT_CRASH_AT) */
  if (jr) {
    if (set_status(s, a->id, status, result, error, question, err, sizeof err))
      lc_serve_log(s, "error", "run_status_failed", a->id, err);
  } else {
    /* The journal never opened: the run has no row if it never started. */
    struct lc_run_row r2;
    if (lc_store_run_get(s->store, a->id, &r2, err, sizeof err) == 0) {
      lc_run_row_free(&r2);
      lc_store_run_set_status(s->store, a->id, status, NULL, error, NULL, 0, err, sizeof err);
    } else {
      lc_dstore_exec_fenced(s->ds, a->id, epoch, NULL, err, sizeof err,
                            "UPDATE d_runs SET pstatus='failed', perror=? WHERE id=? AND "
                            LC_DSTORE_FENCE, "ss", error, a->id);
    }
  }
  {
    char m[600];
    snprintf(m, sizeof m, "%s%s%.500s", status, error ? ": " : "", error ? error : "");
    lc_serve_log(s, strcmp(status, "failed") ? "info" : "warn", "run_end", a->id, m);
  }
  free(result);
  free(error);
  free(question);
  run_in_free(&a->ri);
  /* Test hook (check_serve): a run that stopped to wait stays on the
   * active list until it is cancelled, to pin down that race. */
  if (!strcmp(status, "waiting_input") && getenv("LUACT_SERVE_HOLD_WAITING"))
    while (!atomic_load(&a->killed)) {
      struct timespec ts = {0, 10000000L};
      nanosleep(&ts, NULL);
    }
off_list:;
  /* Off the active list; the next queued run may start. */
  char done_id[sizeof a->id];
  snprintf(done_id, sizeof done_id, "%s", a->id);
  pthread_mutex_lock(&s->mu);
  /* A cancel that came after the run stopped to wait, while it was still
   * on the list, found no journal to stop: the waiting run is cancelled
   * here (later cancels find it in the store). */
  if (atomic_load(&a->killed) && !strcmp(status, "waiting_input") &&
      lc_store_run_set_status(s->store, a->id, "cancelled", NULL, NULL, NULL, 0, err,
                              sizeof err) == 0)
    atomic_fetch_add(&s->runs_done_cancelled, 1);
  active_drop(s, a);
  int idle = s->nactive == 0;
  pthread_mutex_unlock(&s->mu);
  if (idle) release_memory();
  /* A fleet's lease handed back (a database round trip: after the run
   * left the list, so a cancel racing its end is settled as without). */
  lc_fleet_run_done(s, done_id);
}

/* Immediate cancel (s->mu held): the run's worker kills its root task at
 * its next pass (or as it adopts the run, if it is still starting). */
static void request_kill(struct lc_active *a) {
  atomic_store(&a->kill_now, 1);
  pthread_mutex_lock(&a->w->mu);
  a->w->kills = 1;
  pthread_mutex_unlock(&a->w->mu);
  worker_poke(a->w);
}

static int thread_busy(struct lc_serve *s, const char *thread) {
  if (!thread[0]) return 0;
  for (struct lc_active *a = s->active; a; a = a->next)
    if (!strcmp(a->thread, thread)) return 1;
  return 0;
}

/* Starts queued runs while there is room (s->mu held), each on the least
 * loaded worker. A run waits while another run of its thread is active. */
static void pump(struct lc_serve *s) {
  if (atomic_load(&s->stopping)) return;
  struct runner *r = s->runner;
  for (struct lc_queued **p = &s->queue; *p && s->nactive < s->max_runs;) {
    struct lc_queued *q = *p;
    if (thread_busy(s, q->thread) ||
        (q->agent && q->agent->max_runs && q->agent->active >= q->agent->max_runs)) {
      p = &q->next; /* its turn comes when its thread or agent has room */
      continue;
    }
    struct lc_active *a = calloc(1, sizeof *a);
    if (!a) return;
    snprintf(a->id, sizeof a->id, "%s", q->id);
    snprintf(a->thread, sizeof a->thread, "%s", q->thread);
    a->agent = q->agent;
    a->s = s;
    struct worker *w = &r->w[0];
    for (int k = 1; k < r->nworkers; k++)
      if (r->w[k].load < w->load) w = &r->w[k];
    a->w = w;
    w->load++;
    a->next = s->active;
    s->active = a;
    s->nactive++;
    if (a->agent) a->agent->active++;
    atomic_fetch_add(&s->queue_wait_us, (long)((mono_s() - q->t0) * 1e6));
    atomic_fetch_add(&s->queue_waits, 1);
    *p = q->next;
    s->nqueued--;
    free(q);
    a->job = (struct job){.run = prologue};
    pool_submit(s, &a->job);
  }
}

/* Starts the workers and the pool (before any run is queued). */
static int runner_start(struct lc_serve *s, int nworkers, char *err, size_t n) {
  tune_allocator();
  struct runner *r = calloc(1, sizeof *r);
  if (!r) return LC_ENOMEM;
  pthread_mutex_init(&r->mu, NULL);
  pthread_cond_init(&r->cv, NULL);
  pthread_cond_init(&r->quiet, NULL);
  s->runner = r;
  r->w = calloc((size_t)nworkers, sizeof *r->w);
  /* Pool threads mostly sit in a commit wait (the store groups every
   * waiter's writes into one fsync): enough of them that runs starting
   * and ending together share a group, few enough to stay small. */
  r->cap = s->max_runs < 4 ? 4 : s->max_runs > 128 ? 128 : s->max_runs;
  r->pool = calloc((size_t)r->cap, sizeof *r->pool);
  if (!r->w || !r->pool) return LC_ENOMEM;
  pthread_attr_t at;
  pthread_attr_init(&at);
  pthread_attr_setstacksize(&at, 8u << 20); /* Lua runs here (as run threads had) */
  for (int k = 0; k < nworkers; k++) {
    struct worker *w = &r->w[k];
    w->s = s;
    pthread_mutex_init(&w->mu, NULL);
    w->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (w->efd < 0 || lc_loop_new(&w->loop)) {
      snprintf(err, n, "cannot make worker %d's loop", k + 1);
      pthread_attr_destroy(&at);
      return LC_EIO;
    }
    w->ew = (struct lc_fdwatch){.fd = w->efd, .events = LC_READ, .cb = on_poke, .ud = w};
    if (lc_loop_watch(w->loop, &w->ew) || pthread_create(&w->th, &at, worker_main, w)) {
      snprintf(err, n, "cannot start worker %d", k + 1);
      pthread_attr_destroy(&at);
      return LC_EIO;
    }
    r->nworkers++;
  }
  pthread_attr_destroy(&at);
  /* Prologues load scripts (Lua's parser recurses on the C stack). */
  pthread_attr_init(&r->pool_attr);
  pthread_attr_setstacksize(&r->pool_attr, 2u << 20);
  pthread_mutex_lock(&r->mu);
  if (pthread_create(&r->pool[0], &r->pool_attr, pool_main, r) == 0) r->npool = 1;
  pthread_mutex_unlock(&r->mu);
  if (!r->npool) {
    snprintf(err, n, "cannot start the runner's pool");
    return LC_EIO;
  }
  return 0;
}

/* Waits until the pool has nothing queued or running: at shutdown, once
 * the last run left the active list, its epilogue may still be handing
 * back its fleet lease, which lc_fleet_stop must not close under it. */
static void runner_quiesce(struct lc_serve *s) {
  struct runner *r = s->runner;
  pthread_mutex_lock(&r->mu);
  while (r->head || r->idle < r->npool) pthread_cond_wait(&r->quiet, &r->mu);
  pthread_mutex_unlock(&r->mu);
}

/* Stops the workers (no run left on them) and the pool (after its queue:
 * ops of killed runs may still be in it). */
static void runner_stop(struct lc_serve *s) {
  struct runner *r = s->runner;
  if (!r) return;
  for (int k = 0; k < r->nworkers; k++) {
    struct worker *w = &r->w[k];
    pthread_mutex_lock(&w->mu);
    w->stop = 1;
    pthread_mutex_unlock(&w->mu);
    worker_poke(w);
  }
  for (int k = 0; k < r->nworkers; k++) pthread_join(r->w[k].th, NULL);
  pthread_mutex_lock(&r->mu);
  r->stop = 1;
  pthread_cond_broadcast(&r->cv);
  int np = r->npool;
  pthread_mutex_unlock(&r->mu);
  for (int k = 0; k < np; k++) pthread_join(r->pool[k], NULL);
  /* Done jobs nobody will run (ops of runs killed at the end). */
  for (int k = 0; k < r->nworkers; k++) {
    struct worker *w = &r->w[k];
    for (struct job *j = w->done_head, *next; j; j = next) {
      next = j->next;
      sop_free((struct sop *)j); /* only store ops have a done */
    }
    lc_loop_unwatch(w->loop, &w->ew);
    lc_loop_free(w->loop);
    close(w->efd);
    pthread_mutex_destroy(&w->mu);
  }
  free(r->w);
  free(r->pool);
  pthread_attr_destroy(&r->pool_attr);
  pthread_mutex_destroy(&r->mu);
  pthread_cond_destroy(&r->cv);
  pthread_cond_destroy(&r->quiet);
  free(r);
  s->runner = NULL;
}

static int enqueue_local(struct lc_serve *s, const char *run_id, const char *thread_id,
                         const char *agent, int front);

int lc_serve_enqueue(struct lc_serve *s, const char *run_id, const char *thread_id,
                     const char *agent, int front) {
  /* A fleet: the run waits in the database for a daemon's claim. */
  if (s->fleet) {
    lc_fleet_hint(s);
    return 0;
  }
  return enqueue_local(s, run_id, thread_id, agent, front);
}

/* ---- fleet.c's hooks into the runner (kept apart for the merge) ---- */

int lc_serve_enqueue_claimed(struct lc_serve *s, const char *run_id, const char *thread_id,
                             const char *agent) {
  return enqueue_local(s, run_id, thread_id, agent, 0);
}

int lc_serve_take_queued(struct lc_serve *s, char (**ids)[65]) {
  return lc_serve_take_stale(s, -1.0, ids); /* every one is older than -1 s */
}

int lc_serve_take_stale(struct lc_serve *s, double older_s, char (**ids)[65]) {
  pthread_mutex_lock(&s->mu);
  int n = 0;
  double now = mono_s();
  *ids = s->nqueued > 0 ? malloc((size_t)s->nqueued * sizeof **ids) : NULL;
  /* Out of memory: they stay queued (and their leases run out). */
  for (struct lc_queued **p = &s->queue; *ids && *p;) {
    struct lc_queued *q = *p;
    if (now - q->t0 < older_s) {
      p = &q->next;
      continue;
    }
    *p = q->next;
    s->nqueued--;
    snprintf((*ids)[n++], sizeof **ids, "%s", q->id);
    free(q);
  }
  if (n) pthread_cond_broadcast(&s->changed);
  pthread_mutex_unlock(&s->mu);
  return n;
}

void lc_serve_drop_local(struct lc_serve *s, const char *run_id) {
  pthread_mutex_lock(&s->mu);
  for (struct lc_queued **p = &s->queue; *p; p = &(*p)->next)
    if (!strcmp((*p)->id, run_id)) {
      struct lc_queued *q = *p;
      *p = q->next;
      s->nqueued--;
      free(q);
      pthread_cond_broadcast(&s->changed);
      pthread_mutex_unlock(&s->mu);
      return;
    }
  for (struct lc_active *a = s->active; a; a = a->next)
    if (!strcmp(a->id, run_id)) {
      atomic_store(&a->killed, 1);
      if (a->jr) lc_journal_request_cancel(a->jr);
      request_kill(a);
      break;
    }
  pthread_mutex_unlock(&s->mu);
}

static int enqueue_local(struct lc_serve *s, const char *run_id, const char *thread_id,
                         const char *agent, int front) {
  struct lc_queued *q = calloc(1, sizeof *q);
  if (!q) return LC_ENOMEM;
  snprintf(q->id, sizeof q->id, "%s", run_id);
  snprintf(q->thread, sizeof q->thread, "%s", thread_id ? thread_id : "");
  q->agent = (struct lc_agent *)lc_serve_agent(s, agent);
  q->t0 = mono_s();
  pthread_mutex_lock(&s->mu);
  struct lc_queued **p = &s->queue;
  if (!front)
    while (*p) p = &(*p)->next;
  q->next = *p;
  *p = q;
  s->nqueued++;
  pump(s);
  pthread_cond_broadcast(&s->changed);
  pthread_mutex_unlock(&s->mu);
  return 0;
}

/* Test hook (check_serve's answer_commit_holds_no_runner_lock and
 * queued_cancel_holds_no_runner_lock): the commit of an answer
 * (LUACT_SERVE_STALL_ANSWER) or of a queued run's cancel
 * (LUACT_SERVE_STALL_CANCEL) blocks until a byte arrives through the FIFO
 * the variable names, so a test holds it as long as it wants. */
static void stall_fifo_hook(const char *var) {
  const char *fifo = getenv(var);
  if (!fifo) return;
  int fd = open(fifo, O_RDONLY | O_CLOEXEC); /* waits for the writer */
  if (fd < 0) return;
  char b;
  ssize_t n = read(fd, &b, 1);
  (void)n;
  close(fd);
}

/* A fleet: a run whose row says it ended leaves the queue index
 * (leases_queued: its lease row's qstate 'pending'). Runs cancelled in
 * the store (a waiting one, or a resumed one still queued here) stayed in
 * it for ever: never claimed (the claim skips ended rows), but read by
 * every claim. */
static void unqueue_ended(struct lc_serve *s, const char *run_id) {
  if (!s->fleet) return;
  char err[256];
  lc_dstore_exec(s->ds, NULL, err, sizeof err,
                 "UPDATE leases SET qstate = 'ended' WHERE run_id = ? AND qstate IN ('pending', "
                 "'claimed', 'waiting') AND "
                 "EXISTS (SELECT 1 FROM runs r WHERE r.id = leases.run_id AND r.status IN "
                 "('finished', 'failed', 'cancelled'))",
                 "s", run_id);
}

int lc_serve_cancel(struct lc_serve *s, const char *run_id, int immediate) {
  char err[256];
  pthread_mutex_lock(&s->mu);
  for (struct lc_queued **p = &s->queue; *p; p = &(*p)->next)
    if (!strcmp((*p)->id, run_id)) {
      struct lc_queued *q = *p;
      *p = q->next;
      s->nqueued--;
      free(q);
      /* Off the queue, nothing can start it: its status is written
       * without the lock, which the pump and the other cancels take. */
      pthread_mutex_unlock(&s->mu);
      stall_fifo_hook("LUACT_SERVE_STALL_CANCEL");
      /* Not started: no run row; a resumed one has one. */
      struct lc_run_row r;
      if (lc_store_run_get(s->store, run_id, &r, err, sizeof err) == 0) {
        lc_run_row_free(&r);
        lc_store_run_set_status(s->store, run_id, "cancelled", NULL, NULL, NULL, 0, err,
                                sizeof err);
      } else {
        lc_dstore_exec(s->ds, NULL, err, sizeof err,
                       "UPDATE d_runs SET pstatus='cancelled' WHERE id=?", "s", run_id);
      }
      atomic_fetch_add(&s->runs_done_cancelled, 1);
      lc_serve_notify(s); /* waits and streams see it cancelled */
      /* On a fleet it was claimed (ahead, maybe): its lease goes back,
       * and a resumed run's row leaves the queue index. */
      unqueue_ended(s, run_id);
      lc_fleet_run_done(s, run_id);
      return 0;
    }
  for (struct lc_active *a = s->active; a; a = a->next)
    if (!strcmp(a->id, run_id)) {
      atomic_store(&a->killed, 1);
      if (a->jr) lc_journal_request_cancel(a->jr);
      if (immediate) request_kill(a);
      pthread_mutex_unlock(&s->mu);
      return 0;
    }
  pthread_mutex_unlock(&s->mu);
  if (s->fleet && lc_fleet_cancel_pending(s, run_id) == 0) { /* queued in the database */
    atomic_fetch_add(&s->runs_done_cancelled, 1);
    lc_serve_notify(s);
    return 0;
  }
  /* Not running here: a waiting run is cancelled in the store. */
  char was[32];
  int rc = lc_store_run_cancel(s->store, run_id, was, sizeof was, err, sizeof err);
  if (rc == 0) unqueue_ended(s, run_id); /* a waiting run stayed in the queue index */
  if (rc == 0 && !strcmp(was, "waiting_input")) atomic_fetch_add(&s->runs_done_cancelled, 1);
  lc_serve_notify(s);
  return rc;
}

/* ---- answering a question ---- */

static int collect_line(void *ud, long seq, const char *text, size_t len) {
  (void)seq;
  cJSON *arr = ud;
  cJSON *o = cJSON_ParseWithLength(text, len);
  cJSON_AddItemToArray(arr, o ? o : cJSON_CreateNull());
  return 0;
}

static const char *jstr(const cJSON *o, const char *k) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
  return cJSON_IsString(v) ? v->valuestring : NULL;
}

atomic_long lc_serve_page_steps;

/* Runs being answered now (under s->mu; lc_serve_answer). */
struct answering {
  char id[65];
  struct answering *next;
};
static struct answering *answers;

int lc_serve_answer(struct lc_serve *s, const char *run_id, const char *value, int *again,
                    char *msg, size_t n) {
  *again = 0;
  /* One answer at a time per run, but its store reads and commits outside
   * s->mu: the runner takes that lock for every start, end and cancel
   * (the pump, lc_serve_cancel) and must never wait behind a commit. The
   * run is claimed under the lock; a second answer to it waits for the
   * first to let go and then reads what that one wrote. */
  struct answering me = {.next = NULL};
  snprintf(me.id, sizeof me.id, "%s", run_id);
  pthread_mutex_lock(&s->mu);
  for (;;) {
    const struct answering *x = answers;
    while (x && strcmp(x->id, me.id)) x = x->next;
    if (!x) break;
    pthread_cond_wait(&s->changed, &s->mu);
  }
  me.next = answers;
  answers = &me;
  pthread_mutex_unlock(&s->mu);
  cJSON *lines = cJSON_CreateArray();
  long last = 0;
  char err[512];
  int rc = lc_store_journal_read(s->store, run_id, collect_line, lines, &last, err, sizeof err);
  if (rc) {
    snprintf(msg, n, "%s", err);
    goto out;
  }
  char st[32] = "";
  lc_serve_run_status(s, run_id, st, sizeof st);
  /* The last input intent without a result, and the last answer given. */
  const char *pending = NULL, *answered = NULL;
  double order = 0;
  const cJSON *l;
  cJSON_ArrayForEach(l, lines) {
    const cJSON *ord = cJSON_GetObjectItemCaseSensitive(l, "order");
    if (cJSON_IsNumber(ord) && ord->valuedouble > order) order = ord->valuedouble;
    const char *t = jstr(l, "type"), *id = jstr(l, "id");
    if (!t || !id) continue;
    if (!strcmp(t, "intent") && jstr(l, "kind") && !strcmp(jstr(l, "kind"), "input")) {
      pending = id;
    } else if (!strcmp(t, "result") && pending && !strcmp(pending, id) &&
               !cJSON_GetObjectItemCaseSensitive(l, "cancelled")) {
      pending = NULL;
      if (cJSON_GetObjectItemCaseSensitive(l, "answered_by"))
        answered = jstr(cJSON_GetObjectItemCaseSensitive(l, "result"), "line");
    }
  }
  if (!pending || strcmp(st, "waiting_input")) {
    if (answered && !strcmp(answered, value)) {
      *again = 1; /* the same answer twice: harmless */
      rc = 0;
    } else {
      snprintf(msg, n, answered ? "the run was already answered with a different value"
                                : "the run is %s and waits for no answer", st);
      rc = LC_ESTATE;
    }
    goto out;
  }
  cJSON *line = cJSON_CreateObject();
  cJSON_AddStringToObject(line, "type", "result");
  cJSON_AddStringToObject(line, "id", pending);
  cJSON *res = cJSON_AddObjectToObject(line, "result");
  cJSON_AddStringToObject(res, "line", value);
  cJSON_AddNumberToObject(line, "order", order + 1);
  cJSON_AddStringToObject(line, "answered_by", "luact serve");
  char *t = cJSON_PrintUnformatted(line);
  cJSON_Delete(line);
  stall_fifo_hook("LUACT_SERVE_STALL_ANSWER");
  rc = lc_store_journal_append_now(s->store, run_id, last + 1, t, strlen(t), err, sizeof err);
  cJSON_free(t);
  if (rc) {
    snprintf(msg, n, "%s", err);
    goto out;
  }
  /* Only from the waiting status read above: a cancel that landed since
   * (between that read and this write) must stay, never be turned back
   * into a run to resume. RETURNING tells whether the row still waited. */
  cJSON *won = NULL;
  if (lc_store_is_pg_store(s->store))
    /* A fleet: the run goes back in the queue index with its status, in
     * one statement (its lease row's qstate 'waiting' -> 'pending';
     * fleet.c's hand-back reads the status under a row lock). The lease
     * row is updated whatever its qstate, so that a hand-back committing
     * meanwhile is waited for and its 'waiting' seen (re-read under the
     * row's lock). */
    rc = lc_dstore_exec(s->ds, &won, err, sizeof err,
                        "WITH w AS (UPDATE runs SET status='running', result=NULL, error=NULL, "
                        "question=NULL, pid=0, updated=? WHERE id=? AND status='waiting_input' "
                        "RETURNING id), q AS (UPDATE leases SET qstate = CASE WHEN qstate = "
                        "'waiting' THEN 'pending' ELSE qstate END WHERE run_id IN (SELECT id FROM "
                        "w)) SELECT id FROM w",
                        "ds", lc_serve_now(), run_id);
  else
    rc = lc_dstore_exec(s->ds, &won, err, sizeof err,
                        "UPDATE runs SET status='running', result=NULL, error=NULL, question=NULL, "
                        "pid=0, updated=? WHERE id=? AND status='waiting_input' RETURNING id",
                        "ds", lc_serve_now(), run_id);
  if (rc) {
    snprintf(msg, n, "%s", err);
  } else if (cJSON_GetArraySize(won) == 0) {
    lc_serve_run_status(s, run_id, st, sizeof st);
    snprintf(msg, n, "the run is %s and waits for no answer", st);
    rc = LC_ESTATE;
  }
  cJSON_Delete(won);
out:
  cJSON_Delete(lines);
  pthread_mutex_lock(&s->mu);
  for (struct answering **p = &answers; *p; p = &(*p)->next)
    if (*p == &me) {
      *p = me.next;
      break;
    }
  s->changes++;
  pthread_cond_broadcast(&s->changed); /* a second answer to the run goes on */
  pthread_mutex_unlock(&s->mu);
  return rc;
}

/* ---- start, signals, shutdown ---- */

static int parse_listen(struct lc_serve *s, const char *v) {
  const char *colon = strrchr(v, ':');
  if (!colon || colon == v || (size_t)(colon - v) >= sizeof s->host) return -1;
  snprintf(s->host, sizeof s->host, "%.*s", (int)(colon - v), v);
  char *end;
  long p = strtol(colon + 1, &end, 10);
  if (*end || p < 0 || p > 65535) return -1;
  s->port = (int)p;
  struct in_addr a;
  return inet_pton(AF_INET, s->host, &a) == 1 ? 0 : -1;
}

static int is_loopback(const char *host) {
  struct in_addr a;
  return inet_pton(AF_INET, host, &a) == 1 && (ntohl(a.s_addr) >> 24) == 127;
}

static long num_opt(const char *o, const char *v, long lo, long hi) {
  char *end;
  long n = strtol(v, &end, 10);
  if (*end || n < lo || n > hi) {
    fprintf(stderr, "luact serve: %s needs a number from %ld to %ld\n", o, lo, hi);
    return -1;
  }
  return n;
}

/* Runs found not finished at start: started ones resume, queued ones
 * start; waiting ones wait. */
static void recover(struct lc_serve *s) {
  char err[256];
  cJSON *rows = NULL;
  lc_dstore_exec(s->ds, &rows, err, sizeof err,
                 "SELECT d.id AS id, d.thread_id AS thread_id, d.agent AS agent, r.status AS status, "
                 "d.pstatus AS "
                 "pstatus FROM d_runs d LEFT JOIN runs r ON r.id = d.id WHERE d.deleted = 0 AND "
                 "((r.status IS NULL AND d.pstatus = 'pending') OR r.status = 'running') "
                 "ORDER BY d.created",
                 "");
  const cJSON *r;
  int n = 0;
  cJSON_ArrayForEach(r, rows) {
    lc_serve_enqueue(s, jstr(r, "id"), jstr(r, "thread_id"), jstr(r, "agent"), 0);
    n++;
  }
  cJSON_Delete(rows);
  if (n) {
    char m[64];
    snprintf(m, sizeof m, "%d runs resumed or started", n);
    lc_serve_log(s, "info", "recover", NULL, m);
  }
}

int lc_serve_main(int argc, char **argv) {
  struct lc_serve S, *s = &S;
  memset(s, 0, sizeof *s);
  snprintf(s->host, sizeof s->host, "127.0.0.1");
  s->port = 7420;
  s->max_runs = 64;
  s->claim_ahead = -1;
  s->ahead_wait_ms = -1;
  s->max_body = 1 << 20;
  s->max_conns = 512;
  s->max_streams = -1;
  s->grace_s = 10;
  s->conn_timeout_s = 30;
  int i = 0;
  for (; i < argc && argv[i][0] == '-'; i++) {
    const char *o = argv[i];
    if (!strcmp(o, "-h") || !strcmp(o, "--help")) {
      fputs(usage_serve, stdout);
      return 0;
    }
    if (!strcmp(o, "--no-auth")) {
      s->no_auth = 1;
      continue;
    }
    static const char *const with_value[] = {"--listen", "--store", "--store-sync", "--tokens",
                                             "--max-runs", "--max-body", "--max-conns",
                                             "--max-streams", "--conn-timeout", "--grace",
                                             "--lease", "--poll-ms", "--http-workers", "--workers",
                                             "--claim-ahead", "--ahead-wait-ms", NULL};
    int known = 0;
    for (const char *const *w = with_value; *w; w++) known |= !strcmp(o, *w);
    if (!known) {
      fprintf(stderr, "luact serve: unknown option '%s' (see luact serve --help)\n", o);
      return 2;
    }
    if (i + 1 >= argc) {
      fprintf(stderr, "luact serve: %s needs a value\n", o);
      return 2;
    }
    const char *v = argv[++i];
    long n = 0;
    if (!strcmp(o, "--listen")) {
      if (parse_listen(s, v)) {
        fprintf(stderr, "luact serve: --listen takes IPV4:PORT, e.g. 127.0.0.1:7420\n");
        return 2;
      }
    } else if (!strcmp(o, "--store")) s->store_path = v;
    else if (!strcmp(o, "--tokens")) s->tokens_file = v;
    else if (!strcmp(o, "--store-sync")) {
      if (strcmp(v, "full") && strcmp(v, "normal")) {
        fprintf(stderr, "luact serve: --store-sync is full or normal\n");
        return 2;
      }
      s->sync_normal = !strcmp(v, "normal");
    } else {
      int zero_ok = !strcmp(o, "--grace") || !strcmp(o, "--claim-ahead") ||
                    !strcmp(o, "--ahead-wait-ms");
      n = num_opt(o, v, zero_ok ? 0 : 1, 1L << 30);
      if (n < 0) return 2;
      if (!strcmp(o, "--max-runs")) s->max_runs = (int)n;
      else if (!strcmp(o, "--max-body")) s->max_body = n;
      else if (!strcmp(o, "--max-conns")) s->max_conns = (int)n;
      else if (!strcmp(o, "--max-streams")) s->max_streams = (int)n;
      else if (!strcmp(o, "--conn-timeout")) s->conn_timeout_s = (int)n;
      else if (!strcmp(o, "--lease")) s->lease_s = (double)n;
      else if (!strcmp(o, "--poll-ms")) s->poll_ms = n;
      else if (!strcmp(o, "--claim-ahead")) s->claim_ahead = n > 4096 ? 4096 : (int)n;
      else if (!strcmp(o, "--ahead-wait-ms")) s->ahead_wait_ms = n;
      else if (!strcmp(o, "--http-workers")) s->http_workers = n > 256 ? 256 : (int)n;
      else if (!strcmp(o, "--workers")) {
        if (n > 1024) {
          fprintf(stderr, "luact serve: --workers needs a number from 1 to 1024\n");
          return 2;
        }
        s->nworkers = (int)n;
      }
      else s->grace_s = (int)n;
    }
  }
  if (i + 1 != argc) {
    fputs(usage_serve, stderr);
    return 2;
  }
  s->agents_dir = argv[i];
  if (s->max_streams < 0) s->max_streams = s->max_conns * 3 / 4;
  if (s->max_streams >= s->max_conns) {
    fprintf(stderr, "luact serve: --max-streams must stay below --max-conns\n");
    return 2;
  }
  if (s->no_auth && s->tokens_file) {
    fprintf(stderr, "luact serve: give --tokens or --no-auth, not both\n");
    return 2;
  }
  if (!s->no_auth && !s->tokens_file) {
    fprintf(stderr, "luact serve: give --tokens FILE (or --no-auth on a loopback address)\n");
    return 2;
  }
  if (s->no_auth && !is_loopback(s->host)) {
    fprintf(stderr, "luact serve: --no-auth only on a loopback address (127.x.x.x)\n");
    return 2;
  }
  if (s->tokens_file && load_tokens(s)) return 1;
  char spath[4096];
  if (!s->store_path) s->store_path = lc_store_default_path(spath, sizeof spath);
  if (!s->store_path) {
    fprintf(stderr, "luact serve: no run store (--store FILE, or set HOME or LUACT_STORE)\n");
    return 2;
  }
  char err[1024];
  if (lc_store_open(s->store_path, s->sync_normal ? LC_STORE_SYNC_NORMAL : LC_STORE_SYNC_FULL,
                    &s->store, err, sizeof err)) {
    fprintf(stderr, "luact serve: %s\n", err);
    return 1;
  }
  /* One daemon per SQLite store: two would both resume the same runs. On
   * PostgreSQL several share it (a fleet: runs are claimed under leases,
   * fleet.c); its schema is made now, before the daemon's tables. */
  char lpath[4200];
  snprintf(lpath, sizeof lpath, "%s.serve-lock", s->store_path);
  int fleet = lc_store_is_pg_store(s->store);
  if (fleet && lc_store_connect(s->store, err, sizeof err)) {
    fprintf(stderr, "luact serve: %s\n", err);
    lc_store_close(s->store);
    return 1;
  }
  int lfd = fleet ? -1 : open(lpath, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (!fleet && (lfd < 0 || flock(lfd, LOCK_EX | LOCK_NB))) {
    fprintf(stderr, "luact serve: another luact serve uses %s\n", s->store_path);
    lc_store_close(s->store);
    return 1;
  }
  if (lc_dstore_open(s->store_path, "luact daemon", !s->sync_normal, &s->ds, err, sizeof err)) {
    fprintf(stderr, "luact serve: %s\n", err);
    lc_store_close(s->store);
    return 1;
  }
  /* The run store's own tables now, not at the first run's start: the
   * recovery below and the API's reads join them, and a daemon killed
   * before any run of its started left a file with d_runs only (its
   * restart then found no run to resume: "no such table: runs"). */
  if (!fleet && lc_store_connect(s->store, err, sizeof err)) {
    fprintf(stderr, "luact serve: %s\n", err);
    lc_store_close(s->store);
    return 1;
  }
  /* Columns added after the first schema (older daemons' files). Not on
   * PostgreSQL, whose schema has them: an ALTER TABLE waits for an
   * exclusive lock, and every daemon's queries on d_runs queue behind it. */
  if (!fleet) {
    lc_dstore_exec(s->ds, NULL, err, sizeof err,
                   "ALTER TABLE d_runs ADD COLUMN pstatus TEXT NOT NULL DEFAULT 'pending'", "");
    lc_dstore_exec(s->ds, NULL, err, sizeof err, "ALTER TABLE d_runs ADD COLUMN perror TEXT", "");
    lc_dstore_exec(s->ds, NULL, err, sizeof err, "ALTER TABLE d_runs ADD COLUMN ctx TEXT", "");
    lc_dstore_exec(s->ds, NULL, err, sizeof err,
                   "ALTER TABLE d_runs ADD COLUMN asked INTEGER NOT NULL DEFAULT 0", "");
  }
  if (load_agents(s)) return 1;
  pthread_mutex_init(&s->mu, NULL);
  pthread_cond_init(&s->changed, NULL);
  /* Signals go to this thread only (sigwait below); every thread started
   * from here inherits the mask. */
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, NULL);
  signal(SIGPIPE, SIG_IGN);
  if (s->nworkers <= 0) {
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    s->nworkers = ncpu < 1 ? 1 : ncpu > 1024 ? 1024 : (int)ncpu;
  }
  if (runner_start(s, s->nworkers, err, sizeof err)) {
    fprintf(stderr, "luact serve: %s\n", err);
    return 1;
  }
  if (lc_api_start(s, err, sizeof err)) {
    fprintf(stderr, "luact serve: %s\n", err);
    return 1;
  }
  if (fleet) {
    /* Runs are claimed from the database (fleet.c), recovered ones too. */
    if (lc_fleet_start(s, err, sizeof err)) {
      fprintf(stderr, "luact serve: %s\n", err);
      return 1;
    }
  } else {
    recover(s);
  }
  if (lc_crons_start(s, err, sizeof err)) { /* fires crons from now on (crons.c) */
    fprintf(stderr, "luact serve: %s\n", err);
    return 1;
  }
  atomic_store(&s->ready, 1);
  char m[4400];
  snprintf(m, sizeof m, "listening on %s:%d, %d agents, store %s", s->host, s->port, s->nagents,
           lc_store_path(s->store)); /* a URL's password left out */
  lc_serve_log(s, "info", "start", NULL, m);
  int sig = 0;
  sigwait(&set, &sig);
  lc_serve_log(s, "info", "stopping", NULL, sig == SIGTERM ? "SIGTERM" : "SIGINT");
  atomic_store(&s->ready, 0);
  atomic_store(&s->stopping, 1);
  lc_fleet_drain(s); /* runs claimed here but not started: for the others now */
  lc_crons_stop(); /* no new runs from crons */
  lc_api_quiesce(s);
  double until = mono_s() + s->grace_s;
  pthread_mutex_lock(&s->mu);
  pthread_cond_broadcast(&s->changed);
  while (s->nactive > 0 && mono_s() < until) {
    pthread_mutex_unlock(&s->mu);
    lc_serve_wait_change(s, 200);
    pthread_mutex_lock(&s->mu);
  }
  int left = s->nactive;
  pthread_mutex_unlock(&s->mu);
  if (!left) runner_quiesce(s);
  lc_fleet_stop(s, !left); /* runs still going keep their leases until they expire */
  lc_api_stop(s);
  if (left) {
    /* Their rows say running: the next start resumes them. Closing the
     * store under them would be a use after free: leave at once. */
    snprintf(m, sizeof m, "%d runs still running after the grace period: they resume at the "
                          "next start", left);
    lc_serve_log(s, "warn", "exit", NULL, m);
    lc_store_flush(s->store);
    _exit(0);
  }
  lc_serve_log(s, "info", "exit", NULL, NULL);
  runner_stop(s);
  lc_dstore_close(s->ds);
  lc_store_close(s->store);
  for (int k = 0; k < s->nagents; k++) {
    free(s->agents[k].id);
    free(s->agents[k].file);
    free(s->agents[k].description);
    free(s->agents[k].input_schema);
    free(s->agents[k].output_schema);
  }
  free(s->agents);
  for (int k = 0; k < s->ntokens; k++) {
    free(s->tokens[k].token);
    free(s->tokens[k].tenant);
  }
  free(s->tokens);
  while (s->queue) {
    struct lc_queued *q = s->queue;
    s->queue = q->next;
    free(q);
  }
  if (lfd >= 0) close(lfd);
  return 0;
}
