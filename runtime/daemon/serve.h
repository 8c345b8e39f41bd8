/* serve.h: `luact serve`, the Agent Protocol daemon (docs/serve.md).
 *
 * daemon.c owns the process: options, agents, the run store, the runner
 * (runs on --workers threads, many at once on each thread's one loop,
 * each run with its own Lua state and scheduler; at most --max-runs at
 * once, a FIFO queue beyond), signals and logs. api.c is the HTTP side
 * (libmicrohttpd): requests, auth, the dispatch to the api*.c route
 * files (docs/architecture.md); apiwork.c its workers and parked items;
 * apisse.c the streams; wsconn.c the WebSocket, ws.c its RFC 6455 framing.
 *
 * A run's status lives in the run store (runtime/store) once it started;
 * before that in d_runs.pstatus ("pending", or "cancelled" when cancelled
 * in the queue; on a fleet, its place in the queue is its lease row's
 * qstate, fleet.c). Its journal is its event log: SSE ids are journal line
 * numbers, so they never repeat across restarts. */
#ifndef LC_SERVE_H
#define LC_SERVE_H

#include <cjson/cJSON.h>
#include <pthread.h>
#include <stdatomic.h>

#include "dstore.h"

struct lc_store;

struct lc_agent {
  char *id;          /* the name: the file's base name unless it says */
  char *file;        /* absolute path */
  char *description;
  char *input_schema, *output_schema; /* JSON text, or NULL */
  int max_runs; /* the script's max_runs: at most so many at once (0: no limit) */
  int active;   /* runs of it executing (under lc_serve.mu) */
  /* metrics: runs created, and run executions ended by status (in the
   * order of lc_serve_end_names) */
  atomic_long created, ended[6];
};

/* Effect kinds for metrics (a fixed set: a script's own kinds are
 * "other", so labels stay bounded), NULL-terminated. */
extern const char *const lc_serve_kind_names[];

/* "finished", "failed", "cancelled", "waiting_input", "in_doubt", NULL */
extern const char *const lc_serve_end_names[];

struct lc_token {
  char *token, *tenant;
};

struct lc_active; /* a run executing, from its start to its end (daemon.c) */
struct lc_queued;

struct lc_serve {
  /* options */
  const char *agents_dir, *store_path, *tokens_file;
  char host[64];
  int port, no_auth, max_runs, max_conns, max_streams, grace_s, conn_timeout_s, sync_normal;
  long max_body;
  int http_workers; /* threads that run routes (api.c; 0: the default) */
  double lease_s; /* a fleet's lease (PostgreSQL store; 0: the default) */
  long poll_ms;   /* a fleet's poll for queued runs (0: the default) */
  int claim_ahead; /* a fleet: runs claimed beyond the free slots (-1: adaptive) */
  long ahead_wait_ms; /* a fleet: a claimed-ahead run waiting longer goes back (-1: default) */
  struct lc_fleet *fleet; /* fleet.c's, on a PostgreSQL store; else NULL */
  /* state */
  struct lc_store *store;
  struct lc_dstore *ds;
  struct lc_agent *agents;
  int nagents;
  struct lc_token *tokens;
  int ntokens;
  pthread_mutex_t mu;     /* the runner: queue, active list */
  pthread_cond_t changed; /* broadcast on every run change */
  unsigned long changes;  /* under mu: counts the broadcasts (lc_serve_wait_change_since) */
  struct lc_active *active;
  struct lc_queued *queue;
  int nactive, nqueued;
  atomic_int stopping;
  void *http; /* api.c's */
  void *runner; /* daemon.c's: the workers and the blocking pool */
  int nworkers; /* --workers */
  /* metrics */
  atomic_long http_requests, http_errors, sse_clients, runs_created, runs_done_ok,
      runs_done_failed, runs_done_cancelled, runs_interrupted, runs_resumed, body_rejected,
      auth_rejected, streams_rejected;
  atomic_long queue_wait_us, queue_waits, run_us, runs_timed;
  atomic_long effects_replayed, effects_ran, effects_begun;
  /* the workers' passes, and the runs' scheduler steps in them (a pass
   * steps only the runs with work to do) */
  atomic_long worker_passes, worker_steps;
  /* effects run live, by kind (lc_serve_kind_names): latency and count;
   * LLM tokens */
  atomic_long kind_us[8], kind_n[8], llm_tokens_in, llm_tokens_out;
  atomic_int ready;
};

/* Structured log line on stderr (JSON, secrets scrubbed). run may be NULL. */
void lc_serve_log(struct lc_serve *s, const char *level, const char *event, const char *run,
                  const char *msg);
const struct lc_agent *lc_serve_agent(struct lc_serve *s, const char *id);
/* Queues a run to start (front: an answered run continues first). */
int lc_serve_enqueue(struct lc_serve *s, const char *run_id, const char *thread_id,
                     const char *agent, int front);
/* Wakes everybody waiting for a run change (waits and streams). */
void lc_serve_notify(struct lc_serve *s);
/* Cancels: queued runs at once; running ones at their next effect, or at
 * once (immediate: the task is killed). 0, or LC_ENOTFOUND. */
int lc_serve_cancel(struct lc_serve *s, const char *run_id, int immediate);
/* The status of a run: "pending", "running", "waiting_input", "finished",
 * "failed", "cancelled", "in_doubt" (into buf). 0 or LC_ENOTFOUND. */
int lc_serve_run_status(struct lc_serve *s, const char *run_id, char *buf, size_t n);
/* Waits (timed, ms) on the change condition; returns when something changed
 * or the time is up. */
void lc_serve_wait_change(struct lc_serve *s, long ms);
/* The same, but returns at once when a change came after *seen (a count
 * it then updates): a change made while the caller was busy elsewhere is
 * not missed. */
void lc_serve_wait_change_since(struct lc_serve *s, unsigned long *seen, long ms);
double lc_serve_now(void);
void lc_serve_uuid(char out[37]);
/* Answers a waiting run's question (the journal's pending input). 0: done
 * (or the same answer again: *again = 1); LC_ESTATE: nothing waits or a
 * different answer was given; msg says why. */
int lc_serve_answer(struct lc_serve *s, const char *run_id, const char *value, int *again,
                    char *msg, size_t n);

/* daemon.c, for fleet.c: queues a run this daemon claimed; takes a run
 * whose lease was lost off this daemon (out of the queue, or killed at
 * once), writing nothing. */
int lc_serve_enqueue_claimed(struct lc_serve *s, const char *run_id, const char *thread_id,
                             const char *agent);
void lc_serve_drop_local(struct lc_serve *s, const char *run_id);
/* daemon.c, for fleet.c: takes every run queued here (claimed, not
 * started) off the queue; ids (malloc'd, the caller's, 65 bytes each)
 * gets their ids: none of them starts here any more. How many. */
int lc_serve_take_queued(struct lc_serve *s, char (**ids)[65]);
/* The same for the runs queued here for older_s seconds or more. */
int lc_serve_take_stale(struct lc_serve *s, double older_s, char (**ids)[65]);

/* fleet.c: several daemons on one PostgreSQL store (docs/serve.md). With
 * a fleet, lc_serve_enqueue leaves the run queued in the database and
 * hints (lc_fleet_hint); the fleet thread claims runs under leases. */
int lc_fleet_start(struct lc_serve *s, char *err, size_t n);
void lc_fleet_hint(struct lc_serve *s);
/* A run of this daemon ended or stopped to wait: its lease handed back. */
void lc_fleet_run_done(struct lc_serve *s, const char *run_id);
/* Cancels a run queued in the database that nobody claimed: 0, or
 * LC_ENOTFOUND. */
int lc_fleet_cancel_pending(struct lc_serve *s, const char *run_id);
/* Stops claiming and renewing; release: hand back the leases still held
 * (runs claimed but not started). Without release the fleet is left in
 * place for the runs still going (the process exits next). */
void lc_fleet_stop(struct lc_serve *s, int release);
/* Hands back the leases of the runs claimed here but not started (the
 * claimed-ahead ones), at once, for other daemons: at a SIGTERM, before
 * the grace period of the runs still going. */
void lc_fleet_drain(struct lc_serve *s);
void lc_fleet_stats(struct lc_serve *s, long *claims, long *claim_us, long *lost);
/* The fleet connection's session: lock waits short, lease commits
 * without the flush wait, and its prepared statements (the claims)
 * planned once, not at every run (fleet.c says why each). */
#define LC_FLEET_SESSION                                                                  \
  "SET lock_timeout = 1000; SET synchronous_commit = off;"                                \
  " SET plan_cache_mode = force_generic_plan; SET enable_seqscan = off"
/* The same settings local to a statement's transaction, run before each
 * statement of the fleet connection behind a proxy, where a SET would
 * stay on a server connection other clients then get (lc_dstore_session;
 * plan_cache_mode is moot there: nothing is prepared). */
#define LC_FLEET_LOCAL                                                                    \
  "SELECT set_config('lock_timeout', '1000', true), set_config('synchronous_commit', 'off',"  \
  " true), set_config('enable_seqscan', 'off', true)"
/* A prepared claim is prepared (and planned) again at least this often
 * (seconds), beside when its tables have grown (fleet.c, watch_sizes). */
#define FLEET_REPLAN_S 60.0
/* The claim statement of owner (malloc'd; NULL: no memory) reading up
 * to n runs of the queue (fleet.c: n a power of two), with a hand-back
 * or not (release) and a rescue or not. Its parameters: with release,
 * the done runs' JSON list, twice; then how many runs to take (at most
 * n). */
char *lc_fleet_claim_sql(const char *owner, double lease_s, int release, int rescue, int n);

/* api.c */
int lc_api_start(struct lc_serve *s, char *err, size_t n);
void lc_api_quiesce(struct lc_serve *s);
void lc_api_stop(struct lc_serve *s);
/* Live token deltas of a run's execution (apideltas.c keeps them for its
 * streams): open before the journal opens (from: the journal's last line
 * then), lc_api_delta as the journal's delta hook (ud: the handle), close
 * when the execution ends. The handle stays valid (apideltas.c frees it). */
struct lc_deltas;
struct lc_llm_delta;
struct lc_deltas *lc_api_deltas_open(struct lc_serve *s, const char *run, long from);
void lc_api_delta(void *ud, long seq, const char *effect_id, const struct lc_llm_delta *d);
void lc_api_deltas_close(struct lc_deltas *d);

int lc_serve_main(int argc, char **argv);

/* Paging a list route: the first offset matches are skipped, then at
 * most limit are kept. The page is counted here, never measured on the
 * list: cJSON_GetArraySize walks it, and once per row that was quadratic
 * in a tenant's own rows (limits go up to 1e15). lc_serve_page_steps
 * counts the rows weighed, for /metrics (luact_api_page_steps_total): a
 * test sees paging stay linear without timing it. */
struct lc_serve_page {
  long limit, offset, seen, kept;
};
extern atomic_long lc_serve_page_steps;
/* Is the next match on the page? (counts it either way) */
static inline int lc_serve_page_take(struct lc_serve_page *p) {
  atomic_fetch_add_explicit(&lc_serve_page_steps, 1, memory_order_relaxed);
  if (p->seen++ < p->offset || p->kept >= p->limit) return 0;
  p->kept++;
  return 1;
}

#endif
