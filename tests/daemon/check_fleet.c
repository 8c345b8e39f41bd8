/* check_fleet.c: several `luact serve` daemons on one real PostgreSQL
 * (runtime/daemon/fleet.c, docs/serve.md "A fleet"), under faults: a
 * daemon SIGSTOPped past its lease, SIGKILLs with restarts,
 * pg_terminate_backend on the daemons' connections, the LISTEN connection
 * killed. The agent is luact.react with one tool against the mock LLM
 * (examples/hello/mock.json), then two real tools over loopback HTTP on a
 * counting server (util_toolsrv.h): a charge (idempotent) and a
 * notification (at most once).
 *
 * What must hold: every run ends exactly once (a trigger counts the
 * accepted transitions to finished): finished with the output of a
 * fault-free run, or in doubt for its at-most-once call only; one charge
 * per run on the server however often it was called, at most one
 * notification; every journal reads back whole (CRCs, no gaps) with one
 * result per intent; no line was written under a lease after a later lease
 * of the same run had written (journal.epoch); every run a dead or stalled
 * daemon held is taken over within a bound derived from --lease and
 * --poll-ms (the delays are printed); a stalled daemon that wakes up
 * writes not one row (stalled_daemon_writes_nothing compares every row and
 * its xmin).
 *
 * LUACT_FLEET_RUNS sets the number of runs of the many-runs case (default
 * 5,000, the count; its own time bound). */
#include <check.h>
#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <fcntl.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "lc.h"
#include "store.h"
#include "util_common.h"
#include "util_mock.h"
#include "util_pg.h"
#include "util_toolsrv.h"

static struct lc_pg pg;
static char url[300], dir[256];
static struct lc_mock mock;
static struct lc_toolsrv *tools;

/* luact.react with one tool against the mock LLM, then two real tools
 * over loopback HTTP (the test's counting server, util_toolsrv.h): a
 * charge (idempotent: Idempotency-Key) and a notification (at most once).
 * %d: the tool server's port. */
static const char react_agent[] =
    "local add = luact.tool{ name = 'add', description = 'Adds two numbers.',\n"
    "  params = { type = 'object', properties = { a = { type = 'number' },\n"
    "    b = { type = 'number' } }, required = { 'a', 'b' } },\n"
    "  fn = function(args) return args.a + args.b end }\n"
    "local base = 'http://127.0.0.1:%d'\n"
    "local charge = luact.tools.http{ name = 'charge', base_url = base,\n"
    "  allow_methods = { 'POST' }, idempotency_key = true }\n"
    "local notify = luact.tools.http{ name = 'notify', base_url = base,\n"
    "  allow_methods = { 'POST' } }\n"
    "return { name = 'react', run = function(input, ctx)\n"
    "  local r = luact.react{ model = 'openai:mock-gpt', tools = { add },\n"
    "    question = input.question }\n"
    "  local c = assert(charge{ method = 'POST', path = '/charge', body = { run = ctx.run_id } })\n"
    "  local n = assert(notify{ method = 'POST', path = '/notify/' .. ctx.run_id })\n"
    "  return { status = r.status, answer = r.answer or r.reason,\n"
    "    charged = c.json.ok, notified = n.json.ok }\n"
    "end }\n";

/* Sleeps in journaled steps: long enough to be stalled in. */
static const char slow_agent[] =
    "return function(input, ctx)\n"
    "  for i = 1, input.steps do luact.sleep(0.05); luact.now() end\n"
    "  return {done = input.steps}\n"
    "end\n";

/* Stops where the stall test wants it (LUACT_CRASH_AT=stop:...), and
 * writes what a run's execution may write beside its journal: luact.store
 * items, a thread's values (on finishing), the asked mark (on asking). */
static const char fence_agent[] =
    "return function(input, ctx)\n"
    "  if input.put then assert(luact.store.put({'fence'}, ctx.run_id, {v = 1})) end\n"
    "  if input.ask then return {answer = luact.ask('more?')} end\n"
    "  luact.now()\n"
    "  return {done = true}\n"
    "end\n";

#define NDAEMONS 3
#define LEASE "2"
#define POLL_MS 200
#define POLL_MS_S "200"

struct daemon {
  pid_t pid;
  int port, gen, stalled;
  char log[300];
};
/* dm's pid, port and stalled, read by the submitting threads */
static pthread_mutex_t dm_mu = PTHREAD_MUTEX_INITIALIZER;
static struct daemon dm[NDAEMONS];
static const char *daemon_env; /* NAME=value for the next start() */

static void write_file(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  ck_assert_ptr_nonnull(f);
  fputs(text, f);
  fclose(f);
}

static void start(int k) {
  struct daemon *d = &dm[k];
  snprintf(d->log, sizeof d->log, "%s/log%d.%d", dir, k, ++d->gen);
  char base[160], agents[300];
  snprintf(base, sizeof base, "OPENAI_BASE_URL=%s/v1", mock.base_url);
  snprintf(agents, sizeof agents, "%s/agents", dir);
  const char *env[] = {"OPENAI_API_KEY=sk-test", base, daemon_env, NULL};
  pid_t pid;
  int port;
  ck_assert_msg(lc_pg_daemon_start(url,
                                   "--lease " LEASE " --poll-ms " POLL_MS_S
                                   " --max-runs 16 --grace 0",
                                   agents, d->log, env, &pid, &port) == 0,
                "daemon %d exited at start", k);
  pthread_mutex_lock(&dm_mu);
  d->port = port;
  d->pid = pid;
  d->stalled = 0;
  pthread_mutex_unlock(&dm_mu);
}

static void kill9(int k) {
  pthread_mutex_lock(&dm_mu);
  pid_t pid = dm[k].pid;
  dm[k].pid = 0;
  pthread_mutex_unlock(&dm_mu);
  if (!pid) return;
  kill(pid, SIGKILL);
  waitpid(pid, NULL, 0);
}

static void set_stalled(int k, int on) {
  pthread_mutex_lock(&dm_mu);
  dm[k].stalled = on;
  pthread_mutex_unlock(&dm_mu);
  kill(dm[k].pid, on ? SIGSTOP : SIGCONT);
}

/* Daemon k's port, or 0 while it is down or stalled. */
static int port_of(int k) {
  pthread_mutex_lock(&dm_mu);
  int port = dm[k].pid && !dm[k].stalled ? dm[k].port : 0;
  pthread_mutex_unlock(&dm_mu);
  return port;
}

static size_t sink(char *p, size_t sz, size_t n, void *ud) {
  char **b = ud;
  size_t len = *b ? strlen(*b) : 0;
  char *x = realloc(*b, len + sz * n + 1);
  if (!x) return 0;
  memcpy(x + len, p, sz * n);
  x[len + sz * n] = 0;
  *b = x;
  return sz * n;
}

/* One POST of path with an Idempotency-Key to daemon k (its port must be
 * known); returns field of a 200 answer, or NULL (thread safe: no
 * ck_assert). */
static char *post_once(int k, const char *path, const char *body, const char *key,
                       const char *field) {
  CURL *c = curl_easy_init();
  char u[128], h[128];
  snprintf(u, sizeof u, "http://127.0.0.1:%d%s", port_of(k), path);
  snprintf(h, sizeof h, "Idempotency-Key: %s", key);
  struct curl_slist *hs = curl_slist_append(NULL, "Content-Type: application/json");
  hs = curl_slist_append(hs, h);
  char *out = NULL;
  curl_easy_setopt(c, CURLOPT_URL, u);
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, hs);
  curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sink);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &out);
  curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L); /* past a stall: it answers after */
  long code = 0;
  if (curl_easy_perform(c) == CURLE_OK) curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
  curl_slist_free_all(hs);
  curl_easy_cleanup(c);
  cJSON *j = code == 200 ? cJSON_Parse(out) : NULL;
  free(out);
  const cJSON *id = cJSON_GetObjectItem(j, field);
  char *r = cJSON_IsString(id) ? strdup(id->valuestring) : NULL;
  cJSON_Delete(j);
  return r;
}

/* POST path with an Idempotency-Key: sent again to another daemon when
 * one is down or dies under it, it is still one run. Returns its id, or
 * NULL when no daemon took it (thread safe: no ck_assert). */
static char *try_submit(const char *path, const char *body, const char *key, int first,
                        const char *field) {
  for (int attempt = 0; attempt < 200; attempt++) {
    int k = (first + attempt) % NDAEMONS;
    if (!port_of(k)) {
      lc_test_nap_ms(20);
      continue;
    }
    char *r = post_once(k, path, body, key, field);
    if (r) return r;
    lc_test_nap_ms(50);
  }
  return NULL;
}

static char *submit_to(const char *path, const char *body, const char *key, int first,
                       const char *field) {
  char *id = try_submit(path, body, key, first, field);
  ck_assert_msg(id != NULL, "no daemon took %s", key);
  return id;
}

static char *submit(const char *body, const char *key, int first) {
  return submit_to("/runs", body, key, first, "run_id");
}

static long count(const char *sql) {
  char *v = lc_pg_value(url, sql);
  long n = v ? atol(v) : -1;
  free(v);
  return n;
}

static void setup(void) {
  ck_assert_msg(pg.url[0], "no PostgreSQL server (scripts/pg-tmp start failed)");
  ck_assert_int_eq(lc_pg_newdb(&pg, url, sizeof url), 0);
  snprintf(dir, sizeof dir, "/tmp/lc_fleet_XXXXXX");
  ck_assert_ptr_nonnull(mkdtemp(dir));
  char p[400];
  snprintf(p, sizeof p, "%s/agents", dir);
  mkdir(p, 0700);
  int tport = 0;
  ck_assert_int_eq(lc_toolsrv_start(&tools, &tport), 0);
  char text[sizeof react_agent + 16];
  snprintf(text, sizeof text, react_agent, tport);
  snprintf(p, sizeof p, "%s/agents/react.lua", dir);
  write_file(p, text);
  snprintf(p, sizeof p, "%s/agents/slow.lua", dir);
  write_file(p, slow_agent);
  snprintf(p, sizeof p, "%s/agents/fence.lua", dir);
  write_file(p, fence_agent);
  ck_assert_int_eq(lc_mock_start_file(&mock, LC_SOURCE_DIR "/examples/hello/mock.json", NULL), 0);
  memset(dm, 0, sizeof dm);
  for (int k = 0; k < NDAEMONS; k++) start(k);
  /* The schema is there once a daemon started: count every accepted
   * transition to finished (a run that finished twice shows twice). */
  char e[512];
  ck_assert_msg(lc_pg_sql(url,
                          "CREATE TABLE finished_log(run_id TEXT, at TIMESTAMPTZ DEFAULT now());"
                          "CREATE FUNCTION log_finished() RETURNS trigger AS $$ BEGIN "
                          "INSERT INTO finished_log(run_id) VALUES(NEW.id); RETURN NEW; END $$ "
                          "LANGUAGE plpgsql;"
                          "CREATE TRIGGER runs_finished AFTER UPDATE OF status ON runs FOR EACH ROW "
                          "WHEN (NEW.status = 'finished') EXECUTE FUNCTION log_finished();",
                          e, sizeof e) == 0,
                "%s", e);
}

static void teardown(void) {
  for (int k = 0; k < NDAEMONS; k++)
    if (dm[k].pid) {
      kill(dm[k].pid, SIGCONT);
      kill9(k);
    }
  lc_mock_stop(&mock);
  lc_toolsrv_stop(tools);
  tools = NULL;
  char cmd[300];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  if (getenv("LUACT_FLEET_KEEP")) fprintf(stderr, "kept %s\n", dir);
  else if (system(cmd)) fprintf(stderr, "cannot remove %s\n", dir);
}

static void pg_up(void) { ck_assert_int_eq(lc_pg_start(&pg), 0); }
static void pg_down(void) { lc_pg_stop(&pg); }

/* The journal of every run reads back through the store (CRC, no gap). */
static int ignore_line(void *ud, long seq, const char *text, size_t len) {
  (void)ud, (void)seq, (void)text, (void)len;
  return 0;
}

static void check_journals(cJSON *ids) {
  struct lc_store *st;
  char err[1024];
  ck_assert_int_eq(lc_store_open(url, LC_STORE_SYNC_FULL, &st, err, sizeof err), 0);
  const cJSON *id;
  cJSON_ArrayForEach(id, ids) {
    long last = 0;
    ck_assert_msg(lc_store_journal_read(st, id->valuestring, ignore_line, NULL, &last, err,
                                        sizeof err) == 0,
                  "%s", err);
  }
  lc_store_close(st);
  /* one result per intent */
  ck_assert_int_eq(count("SELECT count(*) FROM (SELECT run_id, line::json->>'id' FROM journal "
                         "WHERE line::json->>'type' = 'result' GROUP BY 1, 2 HAVING count(*) > 1) x"),
                   0);
  /* fencing: no line under an older lease after a newer lease's line */
  ck_assert_int_eq(count("SELECT count(*) FROM journal j WHERE EXISTS (SELECT 1 FROM journal k "
                         "WHERE k.run_id = j.run_id AND k.epoch > j.epoch AND k.seq < j.seq)"),
                   0);
}

/* Waits until the log of daemon k says what. */
/* Waits until daemon k's log says what or, when given, what2. */
static void await_log2(int k, const char *what, const char *what2) {
  double until = lc_test_mono_s() + 60;
  for (;;) {
    char *t = lc_test_read_file(dm[k].log, NULL);
    int found = t && (strstr(t, what) || (what2 && strstr(t, what2)));
    free(t);
    if (found) return;
    ck_assert_msg(lc_test_mono_s() < until, "daemon %d never logged %s", k, what);
    lc_test_nap_ms(50);
  }
}

static void await_log(int k, const char *what) { await_log2(k, what, NULL); }

/* A daemon frozen past its lease while it runs a run: another daemon
 * claims the run and finishes it; the frozen one, resumed, writes not one
 * more line or status of it and says it lost the lease. */
START_TEST(stalled_daemon_loses_its_lease) {
  char *id = submit("{\"assistant_id\":\"slow\",\"input\":{\"steps\":60}}", "slow1", 0);
  char q[300];
  snprintf(q, sizeof q, "SELECT count(*) FROM journal WHERE run_id = '%s'", id);
  double until = lc_test_mono_s() + 30;
  while (count(q) < 4) {
    ck_assert_msg(lc_test_mono_s() < until, "the run never started");
    lc_test_nap_ms(20);
  }
  snprintf(q, sizeof q, "SELECT split_part(owner, ':', 2) FROM leases WHERE run_id = '%s'", id);
  char *owner = lc_pg_value(url, q);
  ck_assert_ptr_nonnull(owner);
  int k = -1;
  for (int i = 0; i < NDAEMONS; i++)
    if (dm[i].pid == atol(owner)) k = i;
  free(owner);
  ck_assert_int_ge(k, 0);
  kill(dm[k].pid, SIGSTOP);
  snprintf(q, sizeof q, "SELECT epoch FROM leases WHERE run_id = '%s'", id);
  until = lc_test_mono_s() + 30;
  while (count(q) < 2) { /* another daemon claimed it */
    ck_assert_msg(lc_test_mono_s() < until, "nobody took the stalled run over");
    lc_test_nap_ms(50);
  }
  snprintf(q, sizeof q, "SELECT count(*) FROM runs WHERE id = '%s' AND status = 'finished'", id);
  until = lc_test_mono_s() + 30;
  while (count(q) < 1) {
    ck_assert_msg(lc_test_mono_s() < until, "the run never finished");
    lc_test_nap_ms(50);
  }
  snprintf(q, sizeof q, "SELECT max(seq) FROM journal WHERE run_id = '%s'", id);
  long lines = count(q);
  kill(dm[k].pid, SIGCONT);
  await_log(k, "\"lease_lost\"");
  await_log(k, "was taken by another daemon"); /* its final status refused */
  ck_assert_int_eq(count(q), lines);
  snprintf(q, sizeof q, "SELECT count(*) FROM finished_log WHERE run_id = '%s'", id);
  ck_assert_int_eq(count(q), 1);
  cJSON *ids = cJSON_CreateArray();
  cJSON_AddItemToArray(ids, cJSON_CreateString(id));
  check_journals(ids);
  cJSON_Delete(ids);
  free(id);
}
END_TEST

/* A lease row locked by somebody else (here the test, FOR SHARE, as the
 * daemon's own journal commit locks it to check its epoch) must not stop
 * the renewal of the daemon's other leases: B's lease is renewed while A's
 * row is held. */
START_TEST(renewal_skips_a_locked_lease) {
  for (int k = 1; k < NDAEMONS; k++) kill9(k);
  char *a = submit("{\"assistant_id\":\"slow\",\"input\":{\"steps\":400}}", "ra", 0);
  char *b = submit("{\"assistant_id\":\"slow\",\"input\":{\"steps\":400}}", "rb", 0);
  char q[300];
  snprintf(q, sizeof q,
           "SELECT count(*) FROM leases WHERE run_id IN ('%s', '%s') AND owner IS NOT NULL", a, b);
  double until = lc_test_mono_s() + 30;
  while (count(q) < 2) {
    ck_assert_msg(lc_test_mono_s() < until, "the runs were never claimed");
    lc_test_nap_ms(20);
  }
  PGconn *c = PQconnectdb(url);
  ck_assert_int_eq(PQstatus(c), CONNECTION_OK);
  PQclear(PQexec(c, "BEGIN"));
  snprintf(q, sizeof q, "SELECT 1 FROM leases WHERE run_id = '%s' FOR SHARE", a);
  PGresult *r = PQexec(c, q);
  ck_assert_int_eq(PQresultStatus(r), PGRES_TUPLES_OK);
  PQclear(r);
  snprintf(q, sizeof q, "SELECT lease_until FROM leases WHERE run_id = '%s'", b);
  char *v = lc_pg_value(url, q);
  ck_assert_ptr_nonnull(v);
  double u0 = atof(v);
  free(v);
  /* renewed: within a renewal period or two; a renewal that waits for
   * A's row gives up at its lock_timeout and renews nothing, round after
   * round, until B's lease has run out */
  until = lc_test_mono_s() + 3 * atof(LEASE);
  for (;;) {
    v = lc_pg_value(url, q);
    double u = v ? atof(v) : 0;
    free(v);
    if (u > u0) break;
    ck_assert_msg(lc_test_mono_s() < until, "B's lease was not renewed while A's row was held");
    lc_test_nap_ms(50);
  }
  PQclear(PQexec(c, "ROLLBACK"));
  PQfinish(c);
  free(a);
  free(b);
}
END_TEST

/* Every row of every table with its xmin (the transaction that wrote that
 * version), as one digest: a write, even of the same values, changes it. */
static char *db_digest(void) {
  char *v = lc_pg_value(
      url, "SELECT md5(string_agg(x, '|' ORDER BY x)) FROM ("
           "SELECT 'r' || t.xmin::text || t::text AS x FROM runs t UNION ALL "
           "SELECT 'j' || t.xmin::text || t::text FROM journal t UNION ALL "
           "SELECT 'l' || t.xmin::text || t::text FROM leases t UNION ALL "
           "SELECT 'dr' || t.xmin::text || t::text FROM d_runs t UNION ALL "
           "SELECT 'dt' || t.xmin::text || t::text FROM d_threads t UNION ALL "
           "SELECT 'di' || t.xmin::text || t::text FROM d_items t UNION ALL "
           "SELECT 'm' || t.xmin::text || t::text FROM meta t) y");
  ck_assert_ptr_nonnull(v);
  return v;
}

static int stopped(pid_t pid) {
  char p[64], t[512] = "";
  snprintf(p, sizeof p, "/proc/%ld/stat", (long)pid);
  FILE *f = fopen(p, "r"); /* its size reads 0: no lc_test_read_file */
  if (f && !fgets(t, sizeof t, f)) t[0] = '\0';
  if (f) fclose(f);
  const char *e = strrchr(t, ')');
  return e && e[1] == ' ' && e[2] == 'T';
}

/* A daemon stalled at a point of a run's execution that is followed by a
 * write beside the journal (LUACT_CRASH_AT=stop:...), until another
 * daemon took the run over and brought it to its end; resumed, it must
 * write nothing at all: every row and its xmin (the writing transaction)
 * are the same after it as before. The stall points: before the run's
 * end writes of a finishing thread run (the thread's values) and of an
 * asking one (the asked mark); after the intent of a luact.store.put
 * (the item); before a thread run's first context is kept (d_runs.ctx). */
static const struct {
  const char *env, *input;
} stalls_at[] = {
    {"LUACT_CRASH_AT=stop:before_end_writes", "{}"},
    {"LUACT_CRASH_AT=stop:before_end_writes", "{\"ask\":true}"},
    {"LUACT_CRASH_AT=stop:after_intent@store", "{\"put\":true}"},
    {"LUACT_CRASH_AT=stop:before_run_ctx", "{}"},
};

/* Daemon 0 alone, stopped at stalls_at[i] by a run of the fence agent on
 * thread th (made with idempotency keys tkey, rkey): the run's id. */
static char *stall_daemon0(int i, const char *th, const char *tkey, const char *rkey) {
  for (int k = 0; k < NDAEMONS; k++) kill9(k);
  daemon_env = stalls_at[i].env;
  start(0);
  daemon_env = NULL;
  char body[200], tb[100], path[100];
  snprintf(body, sizeof body,
           "{\"assistant_id\":\"fence\",\"if_not_exists\":\"create\",\"input\":%s}",
           stalls_at[i].input);
  snprintf(tb, sizeof tb, "{\"thread_id\":\"%s\"}", th);
  free(submit_to("/threads", tb, tkey, 0, "thread_id"));
  /* The creation is answered on an HTTP thread while a worker already runs
   * the run: on a loaded machine the worker can reach the stall, which
   * stops the whole process, before the answer is written (the answer
   * then never comes, and retries went to the same stopped daemon until
   * the case timed out). One try; the id is read from the database once
   * the daemon stopped. */
  snprintf(path, sizeof path, "/threads/%s/runs", th);
  char *id = post_once(0, path, body, rkey, "run_id");
  double until = lc_test_mono_s() + 60;
  while (!stopped(dm[0].pid)) {
    ck_assert_msg(lc_test_mono_s() < until, "daemon 0 never stopped at %s", stalls_at[i].env);
    lc_test_nap_ms(20);
  }
  if (!id) {
    char q[200];
    snprintf(q, sizeof q, "SELECT id FROM d_runs WHERE thread_id = '%s'", th);
    id = lc_pg_value(url, q);
  }
  ck_assert_msg(id != NULL, "no run on thread %s (%s)", th, stalls_at[i].env);
  return id;
}

START_TEST(stalled_daemon_writes_nothing) {
  char *id = stall_daemon0(_i, "tfence", "t1", "f1");
  start(1); /* takes the run over once daemon 0's lease expired */
  char q[300];
  snprintf(q, sizeof q,
           "SELECT count(*) FROM runs r JOIN leases l ON l.run_id = r.id WHERE r.id = '%s' AND "
           "r.status IN ('finished', 'waiting_input') AND l.owner IS NULL AND l.epoch >= 2",
           id);
  double until = lc_test_mono_s() + 60;
  while (count(q) < 1) { /* ended there, lease handed back */
    ck_assert_msg(lc_test_mono_s() < until, "daemon 1 never brought the run to its end");
    lc_test_nap_ms(50);
  }
  char *before = db_digest();
  kill(dm[0].pid, SIGCONT);
  char what[200];
  snprintf(what, sizeof what, "\"event\":\"run_end\",\"run_id\":\"%s\"", id);
  await_log(0, what);
  /* and gone: nothing of it can come later */
  kill(dm[0].pid, SIGTERM);
  waitpid(dm[0].pid, NULL, 0);
  dm[0].pid = 0;
  char *after = db_digest();
  ck_assert_msg(!strcmp(before, after), "the stalled daemon wrote after it lost the run (%s)",
                stalls_at[_i].env);
  free(before);
  free(after);
  free(id);
}
END_TEST

/* The lease statements commit without waiting for the WAL flush
 * (fleet.c): a server crash can lose a claim, and another daemon's claim
 * then gives the run the same epoch again. Here that is the lease row
 * handed to another owner at the epoch daemon 0 holds, while daemon 0 is
 * stopped at a point followed by a write: resumed, it writes nothing (the
 * fences require its name as the owner, not only the epoch). */
START_TEST(same_epoch_under_another_owner_writes_nothing) {
  char *id = stall_daemon0(_i, "tsame", "t2", "f2");
  char q[400], e[512];
  snprintf(q, sizeof q,
           "UPDATE leases SET owner = 'elsewhere:1:00000000', lease_until = extract(epoch FROM "
           "clock_timestamp()) + 600 WHERE run_id = '%s' AND owner IS NOT NULL",
           id);
  ck_assert_msg(lc_pg_sql(url, q, e, sizeof e) == 0, "%s", e);
  snprintf(q, sizeof q, "SELECT count(*) FROM leases WHERE run_id = '%s' AND owner = "
                        "'elsewhere:1:00000000'", id);
  ck_assert_int_eq(count(q), 1);
  char *before = db_digest();
  kill(dm[0].pid, SIGCONT);
  /* its end: the run's, or its start's when the run had no row yet (its
   * creation is fenced out too) */
  char what[200], what2[200];
  snprintf(what, sizeof what, "\"event\":\"run_end\",\"run_id\":\"%s\"", id);
  snprintf(what2, sizeof what2, "\"event\":\"run_start_failed\",\"run_id\":\"%s\"", id);
  await_log2(0, what, what2);
  kill(dm[0].pid, SIGTERM);
  waitpid(dm[0].pid, NULL, 0);
  dm[0].pid = 0;
  char *after = db_digest();
  ck_assert_msg(!strcmp(before, after),
                "daemon 0 wrote under a lease another owner holds at its epoch (%s)",
                stalls_at[_i].env);
  free(before);
  free(after);
  free(id);
}
END_TEST

/* The runs of the many-runs case, submitted by a few threads at once (a
 * client submits one run per round trip; the daemons take many). */
struct submitter {
  const char *body;
  long n;
  char **ids;       /* [n] */
  atomic_long next; /* the next index to submit */
  atomic_long done; /* submitted */
  atomic_int failed;
};

static void *submit_main(void *ud) {
  struct submitter *sb = ud;
  for (;;) {
    long i = atomic_fetch_add(&sb->next, 1);
    if (i >= sb->n) return NULL;
    char key[32];
    snprintf(key, sizeof key, "k%ld", i);
    sb->ids[i] = try_submit("/runs", sb->body, key, (int)(i % NDAEMONS), "run_id");
    if (!sb->ids[i]) atomic_store(&sb->failed, 1);
    atomic_fetch_add(&sb->done, 1);
  }
}

/* A run a daemon held when it died or stalled: taken over when its lease
 * epoch moves (another daemon claimed it), or not owed a takeover when it
 * had ended meanwhile (its final status written, its lease not yet handed
 * back). */
struct orphan {
  char id[65];
  long epoch;
  double at; /* the fault, lc_test_mono_s */
};

/* The leases daemon k holds now, appended to o (up to cap). */
static int held_by(int k, struct orphan *o, int n, int cap, double at) {
  char q[300];
  snprintf(q, sizeof q,
           "SELECT string_agg(run_id || ':' || epoch, ',') FROM leases WHERE "
           "split_part(owner, ':', 2) = '%ld'",
           (long)dm[k].pid);
  char *v = lc_pg_value(url, q);
  for (char *p = v ? strtok(v, ",") : NULL; p && n < cap; p = strtok(NULL, ",")) {
    char *colon = strchr(p, ':');
    if (!colon) continue;
    *colon = '\0';
    snprintf(o[n].id, sizeof o[n].id, "%s", p);
    o[n].epoch = atol(colon + 1);
    o[n].at = at;
    n++;
  }
  free(v);
  return n;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

/* Many short runs on three daemons while faults come: SIGKILL and
 * restart, connections terminated by the server, the LISTEN connection
 * killed, a daemon stalled past its lease. LUACT_FLEET_RUNS: how many
 * (default 5,000, the count). */
START_TEST(many_runs_under_faults) {
  long nruns = getenv("LUACT_FLEET_RUNS") ? atol(getenv("LUACT_FLEET_RUNS")) : 5000;
  const char *body = "{\"assistant_id\":\"react\",\"input\":{\"question\":\"What is 17 + 25?\"}}";
  /* A fault-free run first: the output every other run must give. */
  char *ref = submit(body, "ref", 0);
  char q[600];
  snprintf(q, sizeof q, "SELECT result FROM runs WHERE id = '%s' AND status = 'finished'", ref);
  double until = lc_test_mono_s() + 60;
  char *want;
  while (!(want = lc_pg_value(url, q))) {
    ck_assert_msg(lc_test_mono_s() < until, "the reference run never finished");
    lc_test_nap_ms(20);
  }
  ck_assert_msg(strstr(want, "42") && strstr(want, "\"charged\":true") &&
                    strstr(want, "\"notified\":true"),
                "%s", want);
  /* How soon a dead or stalled daemon's runs must be taken over, from the
   * settings the daemons run with: the lease runs out at most one lease
   * after the daemon's last renewal (renewals every lease/3, so no later
   * than one lease after it stopped); another daemon claims it at its
   * next look (NOTIFY or the poll, --poll-ms) once it has a free slot; and
   * a stalled daemon's open transaction keeps the lease row locked until
   * the server ends it (idle_in_transaction_session_timeout, 2 s, which
   * store_pg.c sets). lease + renewal + poll is the ideal; the bound
   * doubles it and adds those 2 s, for this shared, loaded machine and
   * the sanitizer build (the claim statement alone took 12-16 ms a run in
   * BENCHMARKS.md, far more under load). */
  double lease = atof(LEASE), poll_s = POLL_MS / 1000.0;
  double ideal = lease + lease / 3 + poll_s, bound = 2 * ideal + 2.0;
  struct submitter sb = {.body = body, .n = nruns, .ids = calloc((size_t)nruns, sizeof(char *))};
  ck_assert_ptr_nonnull(sb.ids);
  enum { NSUB = 4, MAXORPH = 4096 };
  pthread_t th[NSUB];
  for (int t = 0; t < NSUB; t++) ck_assert_int_eq(pthread_create(&th[t], NULL, submit_main, &sb), 0);
  struct orphan *orph = calloc(MAXORPH, sizeof *orph);
  double *delays = calloc(MAXORPH, sizeof *delays);
  ck_assert(orph && delays);
  int norph = 0, ndelays = 0, nended = 0;
  unsigned seed = 4242;
  int kills = 0, terms = 0, listens = 0, stalls = 0;
  int max_kills = 2 + (int)(nruns / 400), max_stalls = 1 + (int)(nruns / 1500);
  int stalled = -1;
  double cont_at = 0, t0 = lc_test_mono_s(), next_fault = t0 + 0.5;
  double deadline = t0 + 120 + nruns * 0.25;
  for (;;) {
    lc_test_nap_ms(100);
    double now = lc_test_mono_s();
    int submitting = atomic_load(&sb.done) < nruns;
    if (stalled >= 0 && now >= cont_at) { /* past the bound: wake it */
      set_stalled(stalled, 0);
      stalled = -1;
    }
    if (norph) { /* which orphans were taken over (or had ended) by now */
      char *list = calloc((size_t)norph, 90), *w = list;
      ck_assert_ptr_nonnull(list);
      for (int i = 0; i < norph; i++)
        w += sprintf(w, "%s('%s',%ld)", i ? "," : "", orph[i].id, orph[i].epoch);
      char *sql = malloc(strlen(list) + 400);
      ck_assert_ptr_nonnull(sql);
      sprintf(sql,
              "SELECT string_agg(v.id || ':' || CASE WHEN l.epoch > v.ep THEN 't' ELSE 'e' END, "
              "',') FROM (VALUES %s) v(id, ep) JOIN leases l ON l.run_id = v.id LEFT JOIN runs "
              "r ON r.id = v.id WHERE l.epoch > v.ep OR (r.status IS NOT NULL AND r.status <> "
              "'running')",
              list);
      char *v = lc_pg_value(url, sql);
      now = lc_test_mono_s();
      for (char *p = v ? strtok(v, ",") : NULL; p; p = strtok(NULL, ",")) {
        char *colon = strchr(p, ':');
        if (!colon) continue;
        *colon = '\0';
        for (int i = 0; i < norph; i++)
          if (!strcmp(orph[i].id, p)) {
            if (colon[1] == 't') delays[ndelays++] = now - orph[i].at;
            else nended++;
            orph[i] = orph[--norph];
            break;
          }
      }
      free(v);
      free(sql);
      free(list);
      /* a run left with no live owner past the bound */
      for (int i = 0; i < norph; i++)
        ck_assert_msg(now - orph[i].at <= bound,
                      "run %s had no live owner for %.1f s (bound %.1f s: lease %.1f, poll "
                      "%.1f)",
                      orph[i].id, now - orph[i].at, bound, lease, poll_s);
    }
    /* One statement, one snapshot: two counts in turn missed a run that
     * made its row (running) between them, and the check found it
     * running after the loop (seen once, 2 of 5,001). */
    if (!submitting && stalled < 0 && !norph &&
        count("SELECT (SELECT count(*) FROM runs WHERE status IN ('running', 'waiting_input')) + "
              "(SELECT count(*) FROM d_runs d LEFT JOIN runs r ON r.id = d.id "
              "WHERE r.id IS NULL AND d.pstatus IN ('pending', 'claimed'))") == 0)
      break; /* every run ended (the checks below say how) */
    ck_assert_msg(now < deadline, "the runs never all finished (%ld submitted)",
                  atomic_load(&sb.done));
    if (!submitting || now < next_fault) continue;
    next_fault = now + 0.5;
    /* a fault, now and then */
    int f = (int)(rand_r(&seed) % 4);
    int k = (int)(rand_r(&seed) % NDAEMONS);
    if (f == 0 && kills < max_kills && dm[k].pid && k != stalled) {
      norph = held_by(k, orph, norph, MAXORPH, lc_test_mono_s());
      kill9(k);
      start(k);
      kills++;
    } else if (f == 1) {
      char *n = lc_pg_value(url, "SELECT count(pg_terminate_backend(pid)) FROM "
                                 "(SELECT pid FROM pg_stat_activity WHERE datname = "
                                 "current_database() AND pid <> pg_backend_pid() AND "
                                 "backend_type = 'client backend' ORDER BY random() LIMIT 2) x");
      terms += n ? atoi(n) : 0;
      free(n);
    } else if (f == 2) {
      char *n = lc_pg_value(url, "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                                 "WHERE datname = current_database() AND query LIKE 'LISTEN%'");
      listens += n ? atoi(n) : 0;
      free(n);
    } else if (f == 3 && stalled < 0 && stalls < max_stalls && dm[k].pid) {
      /* Stalled past the bound, so that every run it holds must have
       * been taken over before it wakes. */
      set_stalled(k, 1);
      norph = held_by(k, orph, norph, MAXORPH, lc_test_mono_s());
      stalled = k;
      cont_at = lc_test_mono_s() + bound + 1;
      stalls++;
    }
  }
  for (int t = 0; t < NSUB; t++) pthread_join(th[t], NULL);
  ck_assert_msg(!atomic_load(&sb.failed), "a run was never accepted by any daemon");
  double took = lc_test_mono_s() - t0;
  qsort(delays, (size_t)ndelays, sizeof *delays, cmp_double);
  fprintf(stderr,
          "fleet: %ld runs in %.0f s; %d SIGKILLs, %d connections terminated, %d LISTEN killed, "
          "%d stalls; %d runs taken over, delay p50 %.2f s, p90 %.2f s, max %.2f s (bound %.2f "
          "s, ideal %.2f s); %d had ended before\n",
          nruns + 1, took, kills, terms, listens, stalls, ndelays,
          ndelays ? delays[ndelays / 2] : 0, ndelays ? delays[ndelays * 9 / 10] : 0,
          ndelays ? delays[ndelays - 1] : 0, bound, ideal, nended);
  ck_assert_int_gt(kills + stalls, 0);
  ck_assert_int_gt(ndelays, 0); /* the takeover was measured at least once */
  cJSON *ids = cJSON_CreateArray();
  cJSON_AddItemToArray(ids, cJSON_CreateString(ref));
  for (long i = 0; i < nruns; i++) cJSON_AddItemToArray(ids, cJSON_CreateString(sb.ids[i]));
  /* every run ended exactly once: finished with the reference output, or
   * in doubt (its at-most-once notification was started by a daemon that
   * died or stalled before its result was written: never sent again) */
  ck_assert_int_eq(count("SELECT count(*) FROM d_runs"), nruns + 1);
  char *perr = lc_pg_value(url, "SELECT string_agg(DISTINCT perror, ' | ') FROM d_runs WHERE "
                                "pstatus NOT IN ('pending', 'claimed')");
  if (count("SELECT count(*) FROM runs") != nruns + 1) { /* what the daemons said of them */
    char *rowless = lc_pg_value(url, "SELECT string_agg(d.id, ' ') FROM d_runs d LEFT JOIN runs r "
                                     "ON r.id = d.id WHERE r.id IS NULL");
    for (char *p = rowless ? strtok(rowless, " ") : NULL; p; p = strtok(NULL, " ")) {
      char cmd[400];
      snprintf(cmd, sizeof cmd, "grep -H '%.64s' %s/log* >&2", p, dir);
      if (system(cmd)) fprintf(stderr, "(no log line names %s)\n", p);
    }
    free(rowless);
  }
  ck_assert_msg(count("SELECT count(*) FROM runs") == nruns + 1, "%ld runs have a row of %ld; "
                "the others ended with: %s", count("SELECT count(*) FROM runs"), nruns + 1,
                perr ? perr : "");
  free(perr);
  char *qw = malloc(strlen(want) + 200);
  ck_assert_ptr_nonnull(qw);
  sprintf(qw, "SELECT count(*) FROM runs WHERE status = 'finished' AND result = $x$%s$x$", want);
  long finished = count(qw), in_doubt = count("SELECT count(*) FROM runs WHERE status = "
                                              "'in_doubt'");
  free(qw);
  char *other = lc_pg_value(url, "SELECT string_agg(DISTINCT status || ': ' || coalesce(result, "
                                 "error, ''), ' | ') FROM runs WHERE status <> 'in_doubt' AND "
                                 "result IS DISTINCT FROM (SELECT result FROM runs GROUP BY "
                                 "result ORDER BY count(*) DESC LIMIT 1)");
  ck_assert_msg(finished + in_doubt == nruns + 1,
                "%ld finished with the reference output, %ld in doubt, of %ld; others: %s",
                finished, in_doubt, nruns + 1, other ? other : "");
  free(other);
  ck_assert_int_eq(count("SELECT count(*) FROM (SELECT run_id FROM finished_log GROUP BY run_id "
                         "HAVING count(*) <> 1) x"),
                   0);
  ck_assert_int_eq(count("SELECT count(DISTINCT run_id) FROM finished_log"), finished);
  /* in doubt only for the at-most-once call, and only with its intent
   * written and no result */
  ck_assert_int_eq(count("SELECT count(*) FROM runs r WHERE r.status = 'in_doubt' AND NOT EXISTS "
                         "(SELECT 1 FROM journal i WHERE i.run_id = r.id AND "
                         "i.line::json->>'type' = 'intent' AND i.line::json->>'name' = 'notify' "
                         "AND NOT EXISTS (SELECT 1 FROM journal x WHERE x.run_id = r.id AND "
                         "x.line::json->>'type' = 'result' AND "
                         "x.line::json->>'id' = i.line::json->>'id'))"),
                   0);
  /* The tool server's counts, per run: one charge per run however often
   * it was called (idempotent: the same key every time), at most one
   * notification (at most once: never again, in doubt or not), and
   * exactly one for a finished run. */
  long charge_calls = 0, notified_doubt = 0;
  char *fins = lc_pg_value(url, "SELECT string_agg(id, ',' ORDER BY id) FROM runs WHERE status "
                                "= 'finished'");
  ck_assert_ptr_nonnull(fins);
  const cJSON *id;
  cJSON_ArrayForEach(id, ids) {
    int fin = strstr(fins, id->valuestring) != NULL; /* ids: 32 hex digits, never overlapping */
    long charges = 0, calls = 0, notes = lc_toolsrv_notified(tools, id->valuestring);
    lc_toolsrv_charges(tools, id->valuestring, &charges, &calls);
    charge_calls += calls;
    ck_assert_msg(notes <= 1, "run %s notified %ld times (at most once)", id->valuestring, notes);
    ck_assert_msg(charges <= 1, "run %s charged %ld times (idempotent)", id->valuestring, charges);
    if (fin)
      ck_assert_msg(charges == 1 && notes == 1, "finished run %s: %ld charges, %ld notifications",
                    id->valuestring, charges, notes);
    else
      notified_doubt += notes;
  }
  free(fins);
  ck_assert_int_eq(lc_toolsrv_bad(tools), 0);
  fprintf(stderr,
          "fleet: %ld finished, %ld in doubt (%ld of them had notified); charge calls %ld for "
          "%ld charges; %ld tool requests cut off by a kill\n",
          finished, in_doubt, notified_doubt, charge_calls, finished, lc_toolsrv_cut(tools));
  check_journals(ids);
  cJSON_Delete(ids);
  for (long i = 0; i < nruns; i++) free(sb.ids[i]);
  free(sb.ids);
  free(orph);
  free(delays);
  free(ref);
  free(want);
}
END_TEST

/* A run whose creation the store refused (a test hook fails every run's
 * first start in the daemon) stays pending and is claimed again: it ends
 * finished. Before, the daemon marked it failed there, unfenced, and the
 * fault suite lost runs so: a daemon that stalled past its leases had its
 * claimed runs' creations fenced out, marked them failed, and no daemon
 * claimed them again (claims take pending runs only). */
START_TEST(refused_creation_is_claimed_again) {
  for (int k = 0; k < NDAEMONS; k++) kill9(k);
  setenv("LUACT_SERVE_FAIL_START_ONCE", "1", 1);
  start(0);
  unsetenv("LUACT_SERVE_FAIL_START_ONCE");
  char *id = submit("{\"assistant_id\":\"slow\",\"input\":{\"steps\":2}}", "refused-1", 0);
  char q[400];
  snprintf(q, sizeof q,
           "SELECT count(*) FROM d_runs d LEFT JOIN runs r ON r.id = d.id WHERE d.id = '%s' "
           "AND (r.status IN ('finished', 'failed') OR d.pstatus = 'failed')",
           id);
  while (count(q) == 0) lc_test_nap_ms(50); /* until it ended, either way */
  snprintf(q, sizeof q, "SELECT count(*) FROM runs WHERE id = '%s' AND status = 'finished'", id);
  ck_assert_msg(count(q) == 1, "the run whose creation was refused did not finish");
  char *log = lc_test_read_file(dm[0].log, NULL);
  ck_assert_ptr_nonnull(strstr(log, "run_start_failed"));
  free(log);
  free(id);
}
END_TEST

Suite *fleet_suite(void) {
  Suite *s = suite_create("fleet");
  TCase *tc = tcase_create("fleet");
  tcase_set_timeout(tc, 240);
  tcase_add_unchecked_fixture(tc, pg_up, pg_down);
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, stalled_daemon_loses_its_lease);
  tcase_add_test(tc, many_runs_under_faults);
  tcase_add_test(tc, refused_creation_is_claimed_again);
  tcase_add_test(tc, renewal_skips_a_locked_lease);
  tcase_add_loop_test(tc, stalled_daemon_writes_nothing, 0,
                      (int)(sizeof stalls_at / sizeof stalls_at[0]));
  tcase_add_loop_test(tc, same_epoch_under_another_owner_writes_nothing, 0,
                      (int)(sizeof stalls_at / sizeof stalls_at[0]));
  suite_add_tcase(s, tc);
  /* The 5,000 runs: a case of its own, with its own bound. */
  TCase *many = tcase_create("many");
  tcase_set_timeout(many, 1500);
  tcase_add_unchecked_fixture(many, pg_up, pg_down);
  tcase_add_checked_fixture(many, setup, teardown);
  tcase_add_test(many, many_runs_under_faults);
  suite_add_tcase(s, many);
  return s;
}
