/* fleet.c: several `luact serve` daemons on one PostgreSQL (docs/serve.md,
 * "A fleet").
 *
 * With a PostgreSQL store a daemon does not run the runs it is given: it
 * leaves them queued in the database (d_runs, runs) and sends a NOTIFY;
 * every daemon's fleet thread claims queued runs for its free slots with
 * FOR UPDATE SKIP LOCKED inside a MATERIALIZED CTE (so a claim never
 * takes more than it asked for), and holds each under a lease: an owner,
 * an epoch that every claim raises, and an expiry on the database's clock.
 * The thread renews its leases every lease/3; the run store is told each
 * run's epoch (lc_store_fence), so that every journal line and status
 * change of the run is written only while the epoch is still ours. A
 * renewal that finds a lease gone (the daemon stalled past it and another
 * claimed the run) stops the run here at once; its writes already fail.
 * An expired lease makes the run claimable by any daemon, which resumes
 * it from its journal (the durable-runs rules decide what replays and
 * what is in doubt). The queue is the runs' lease rows (schema 5): a
 * claim writes one row per run (its lease: owner, epoch, expiry, qstate
 * 'claimed', out of the queue index) and a hand-back one; runs whose
 * lease ran out are found through the expiry of the live leases.
 *
 * The fleet thread has two connections of its own: one for claims and
 * renewals (so a slow API query never delays a renewal) and the LISTEN
 * one. NOTIFY is a hint: a poll every --poll-ms claims as well, so runs
 * start behind a proxy (where no LISTEN is made: a transaction pooler
 * would lose it) or while the LISTEN connection is being made again. */
#include <errno.h>
#include <libpq-fe.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "cnum.h"
#include "dstore.h"
#include "lc.h"
#include "serve.h"
#include "store.h"
#include "store_pg.h"

#define CHANNEL "luact_runs"

struct held {
  char id[65];
  long epoch;
  int threaded; /* its thread's next run may wait for it to end */
  int lost; /* another daemon claimed it: stopping here, until it ended */
  struct held *next;
};

/* The fleet connection's statements beside the claims (lc_fleet.sql),
 * their owner and lease written in (fill); SQL_RELEASE is prepared, in
 * the last lc_dstore_exec_prepared slot. */
enum { SQL_RELEASE, SQL_RENEW, SQL_HAND_BACK, SQL_LET_GO, NSQL };
#define RELEASE_SLOT (LC_DSTORE_SLOTS - 1)

/* The claim texts prepared on the fleet connection: one per variant
 * (with runs to hand back or not, with a rescue or not) and n, n being a
 * literal; each in the lc_dstore_exec_prepared slot of its index, the
 * least recently used one replaced by a text not there. */
#define CLAIM_SLOTS (LC_DSTORE_SLOTS - 1)
struct claim_text {
  int variant, n;
  char *sql; /* NULL: free */
  unsigned long used;
};

struct lc_fleet {
  struct lc_serve *s;
  struct lc_dstore *ds; /* claims, renewals, releases */
  PGconn *listen;
  char owner[160];
  double lease_s;
  long poll_ms;
  /* Runs claimed beyond the free slots (free_slots). Adaptive (no
   * --claim-ahead): 0 while the queue is shallow, doubled (up to cap)
   * by every claim that came back full with more runs queued behind it.
   * Fixed (--claim-ahead N): cap, always, except from a hand-back of
   * waited runs to the next full claim. */
  int ahead, cap, adaptive;
  double wait_s; /* a run claimed ahead waiting this long goes back (0: never) */
  int wake; /* eventfd: a local hint or a freed slot */
  pthread_t th;
  int th_on;
  atomic_int stop;
  pthread_mutex_t mu; /* held, done */
  struct held *held;
  /* runs that ended or wait here, their leases still ours: handed back by
   * the fleet thread's next statement (the claim's, or one of their own) */
  struct held *done;
  double done_at; /* when the first of done ended (mono_s) */
  /* A run was queued (a hint: this daemon's, a NOTIFY, a threaded run
   * that ended here) since the fleet thread last looked */
  atomic_int hinted;
  atomic_long claims, claim_us, claim_stmts, lost;
  char *sql[NSQL]; /* the fleet connection's statements, filled (fill) */
  struct claim_text ct[CLAIM_SLOTS]; /* the fleet thread's */
  unsigned long ct_clock;
  /* the sizes of the tables a claim reads (bytes) when its plans were
   * made (sizes_at: when they were last read) */
  double size[3], sizes_at;
  int sizes_known;
};

static double mono_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void wake(struct lc_fleet *f) {
  uint64_t one = 1;
  ssize_t w = write(f->wake, &one, sizeof one);
  (void)w;
}

/* ---- the LISTEN connection ---- */

static void no_notice(void *ud, const char *m) {
  (void)ud;
  (void)m;
}

static void listen_connect(struct lc_fleet *f) {
  if (f->listen && PQstatus(f->listen) == CONNECTION_OK) return;
  if (f->listen) PQfinish(f->listen);
  f->listen = lc_pg_connect_as(f->s->store_path, "luact listen");
  if (!f->listen || PQstatus(f->listen) != CONNECTION_OK) {
    if (f->listen) PQfinish(f->listen);
    f->listen = NULL;
    return;
  }
  PQsetNoticeProcessor(f->listen, no_notice, NULL);
  PGresult *r = PQexec(f->listen, "LISTEN " CHANNEL);
  int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
  PQclear(r);
  if (!ok) {
    PQfinish(f->listen);
    f->listen = NULL;
    return;
  }
  lc_serve_log(f->s, "info", "fleet_listen", NULL, "LISTEN " CHANNEL);
}

/* Drains notifications; 0 when the connection is lost. */
static int listen_drain(struct lc_fleet *f) {
  if (!f->listen) return 0;
  if (!PQconsumeInput(f->listen) || PQstatus(f->listen) != CONNECTION_OK) {
    lc_serve_log(f->s, "warn", "fleet_listen_lost", NULL, "polling until it is back");
    PQfinish(f->listen);
    f->listen = NULL;
    return 0;
  }
  PGnotify *n;
  while ((n = PQnotifies(f->listen))) {
    PQfreemem(n);
    atomic_store(&f->hinted, 1);
  }
  return 1;
}

/* ---- claims and leases ---- */

static const char *jstr(const cJSON *o, const char *k) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
  return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* How many runs this daemon may claim now: its free slots plus the
 * claim-ahead room (runs claimed but not started wait in its queue, under
 * renewed leases, to start as slots free); *idle: a slot has nothing to
 * start. */
static int free_slots(const struct lc_fleet *f, int *idle, int *queued) {
  struct lc_serve *s = f->s;
  pthread_mutex_lock(&s->mu);
  int busy = s->nactive + s->nqueued;
  *queued = s->nqueued;
  int n = atomic_load(&s->stopping) ? 0 : s->max_runs + f->ahead - busy;
  *idle = n > 0 && busy < s->max_runs;
  pthread_mutex_unlock(&s->mu);
  return n;
}

/* The leases of runs done here since the last statement, as JSON
 * [{"id":..,"epoch":..}] (malloc'd; "[]" when none), taken off the list.
 * On a failed statement they go back (put_back). */
static char *take_done(struct lc_fleet *f, struct held **taken) {
  pthread_mutex_lock(&f->mu);
  *taken = f->done;
  f->done = NULL;
  pthread_mutex_unlock(&f->mu);
  cJSON *a = cJSON_CreateArray();
  for (struct held *h = *taken; a && h; h = h->next) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", h->id);
    cJSON_AddNumberToObject(o, "epoch", (double)h->epoch);
    cJSON_AddItemToArray(a, o);
  }
  char *j = a ? cJSON_PrintUnformatted(a) : NULL;
  cJSON_Delete(a);
  return j;
}

static void put_back(struct lc_fleet *f, struct held *taken, int ok) {
  if (ok || !taken) {
    while (taken) {
      struct held *h = taken;
      taken = h->next;
      free(h);
    }
    return;
  }
  struct held *last = taken;
  while (last->next) last = last->next;
  pthread_mutex_lock(&f->mu);
  if (!f->done) f->done_at = mono_s();
  last->next = f->done;
  f->done = taken;
  pthread_mutex_unlock(&f->mu);
}

/* What d_runs.pstatus says of a run that ended before it started (failed
 * or cancelled; 'ended': written by builds before schema 5): its lease
 * row holds the rest (qstate). */
#define NOT_STARTED_END "('failed', 'cancelled', 'ended')"

/* A run's place in the queue after its lease is handed back (the lease
 * row's qstate, written by the same UPDATE that hands the lease back: one
 * row write): a run that ended leaves the queue index ('ended'; so does a
 * run that failed or was cancelled before it started, or was deleted:
 * its d_runs row says so), and so does one waiting for an answer
 * ('waiting': lc_serve_answer queues it again, so that ten thousand
 * waiting runs are not read by every claim); any other (claimed ahead and
 * not started, stopped here) is queued again ('pending'). The waiting
 * status is read under a row lock: an answer committing meanwhile (its
 * status change holds the row) is waited for and seen, never lost. The
 * argument: the run id's SQL expression. */
#define BACK_QSTATE(id)                                                                    \
  "CASE WHEN EXISTS (SELECT 1 FROM runs r WHERE r.id = " id " AND r.status IN ('finished',"  \
  " 'failed', 'cancelled')) OR EXISTS (SELECT 1 FROM d_runs d WHERE d.id = " id " AND"       \
  " (d.pstatus IN " NOT_STARTED_END " OR d.deleted <> 0)) THEN 'ended' WHEN EXISTS (SELECT 1" \
  " FROM"                                                                                    \
  " runs r WHERE r.id = " id " AND r.status = 'waiting_input' FOR SHARE) THEN 'waiting'"     \
  " ELSE 'pending' END"

/* A lease handed back: no owner, no expiry, its run's place in the queue. */
#define HAND_BACK_SET                                                                      \
  "owner = NULL, lease_until = NULL, qstate = " BACK_QSTATE("l.run_id")

/* Handing back leases, one UPDATE of each lease row: only if still ours
 * at that epoch (then BACK_QSTATE); a run that ended leaves the queue
 * index even if its lease was no longer ours ('ended', the lease left to
 * its holder). Parameters: the JSON list, twice (@O: the owner, fill()). */
#define RELEASE_CTES                                                                       \
  "rel AS (UPDATE leases l SET"                                                            \
  "  owner = CASE WHEN l.owner = p.o AND l.epoch = x.epoch THEN NULL ELSE l.owner END,"    \
  "  lease_until = CASE WHEN l.owner = p.o AND l.epoch = x.epoch THEN NULL"                \
  "   ELSE l.lease_until END,"                                                             \
  "  qstate = CASE WHEN l.owner = p.o AND l.epoch = x.epoch THEN " BACK_QSTATE("l.run_id")  \
  "   ELSE 'ended' END"                                                                    \
  " FROM json_to_recordset(?::json) AS x(id text, epoch bigint), (SELECT @O::text AS o) p" \
  /* (= ANY of an array: the planner probes the primary key for these few \
   * ids, where a join with the function's rows read the whole table) */  \
  " WHERE l.run_id = x.id AND l.run_id = ANY(ARRAY(SELECT y.id FROM"                       \
  "  json_to_recordset(?::json) AS y(id text))) AND ((l.owner = p.o AND l.epoch = x.epoch)" \
  "  OR (l.qstate IN ('pending', 'claimed', 'waiting') AND EXISTS (SELECT 1 FROM runs r"   \
  "  WHERE r.id = l.run_id AND r.status IN ('finished', 'failed', 'cancelled'))))"         \
  " RETURNING l.run_id, l.owner IS NULL AS freed)"

/* What any claim requires of the run of a lease row l (d_runs d): not
 * deleted, not failed or cancelled before it started, its row (if any)
 * running, and no other run of its thread under a live lease (best effort
 * across daemons: two claims in the same instant may both pass it). A
 * LATERAL subquery per lease row, which OFFSET 0 keeps from being
 * flattened into the claim's join: the lease index then drives the scan
 * in its order and the LIMIT stops it. As a join, a generic plan made
 * while statistics still said most leases were queued (a fresh fleet)
 * merged the whole of d_runs with the whole of runs at every claim (12 ms
 * with 4,000 runs, against 0.3 ms). Its columns: d.thread_id, d.agent. */
#define CLAIMABLE_RUN                                                                      \
  " CROSS JOIN LATERAL (SELECT d.thread_id, d.agent FROM d_runs d WHERE d.id = l.run_id"   \
  "  AND d.deleted = 0 AND d.pstatus NOT IN " NOT_STARTED_END                                \
  "  AND NOT EXISTS (SELECT 1 FROM runs r WHERE r.id = d.id AND r.status <> 'running')"   \
  "  AND (d.thread_id IS NULL OR NOT EXISTS (SELECT 1 FROM d_runs d2 JOIN leases l2 ON"   \
  "       l2.run_id = d2.id WHERE d2.thread_id = d.thread_id AND d2.id <> d.id AND"       \
  "       l2.owner IS NOT NULL AND l2.lease_until >= extract(epoch FROM clock_timestamp())))" \
  "  OFFSET 0) d"

/* A queued run a claim may take, its lease row l (its first parameter:
 * the owner): in the queue index (qstate 'pending': never started, handed
 * back, or answered), and no live lease on it. A claimed run is 'claimed'
 * and out of the index, so a claim reads the head of the queue, not the
 * runs every daemon is executing. */
#define CLAIMABLE                                                                          \
  " l.qstate = 'pending'"                                                                  \
  /* Never a run whose lease is ours, even run out: this daemon may       \
   * still run it (its renewals failed, e.g. behind a lock), and a second  \
   * claim here would run it twice in this process; the next renewal      \
   * takes the lease up again, or another daemon the run. */               \
  "  AND (l.owner IS NULL OR (l.owner <> @O AND l.lease_until IS NOT NULL AND"             \
  "       l.lease_until < extract(epoch FROM clock_timestamp())))"

/* Hands back the leases of the runs done here, alone (no claim to ride
 * on: no free slot, or stopping). */
static void release_done(struct lc_fleet *f) {
  struct held *taken;
  char *j = take_done(f, &taken);
  if (!taken) {
    free(j);
    return;
  }
  char err[512];
  int rc = j ? lc_dstore_exec_prepared(f->ds, RELEASE_SLOT, FLEET_REPLAN_S, NULL, err, sizeof err,
                                       f->sql[SQL_RELEASE], "ss", j, j)
             : LC_ENOMEM;
  if (rc) lc_serve_log(f->s, "warn", "fleet_release_failed", NULL, j ? err : "out of memory");
  put_back(f, taken, rc == 0);
  free(j);
}

/* The rescue part of a claim: claimed runs whose lease ran out (their
 * daemon died or stalled past it), found through the expiry index of the
 * live leases (leases_expiry), which holds no more than the runs being
 * executed; and a run that ended or waits for an answer, its daemon dead
 * before it handed the lease back, has its lease let go and its place
 * in the queue set (once per such run). Each candidate is its lease row,
 * locked (the row the claim then updates). The clock is read once, as a
 * subquery, so that the index is read from its start to now (the expired
 * leases only): compared with clock_timestamp() itself, which changes
 * from row to row, every live lease was read at every rescue (the
 * UPDATE's own re-check too: its generic plan read the whole expiry
 * index, a heap row for each live lease, to filter by the ids). Parameter:
 * n. */
#define RESCUE_CTES                                                                          \
  " stale AS (UPDATE leases l SET " HAND_BACK_SET " WHERE l.run_id = ANY(ARRAY("            \
  "  SELECT e.run_id FROM leases e WHERE e.owner IS NOT NULL AND e.owner <> @O AND"          \
  "  e.lease_until < (SELECT extract(epoch FROM clock_timestamp())))) AND l.owner IS NOT NULL" \
  "  AND"                                                                                     \
  "  l.lease_until < (SELECT extract(epoch FROM clock_timestamp())) AND (EXISTS (SELECT 1"    \
  "  FROM runs r"                                                                             \
  "  WHERE r.id = l.run_id AND r.status IN ('finished', 'failed', 'cancelled',"              \
  "  'waiting_input')) OR EXISTS (SELECT 1 FROM d_runs d WHERE d.id = l.run_id AND"          \
  "  (d.pstatus IN " NOT_STARTED_END " OR d.deleted <> 0))) RETURNING l.run_id),"             \
  " x AS MATERIALIZED ("                                                                      \
  "  SELECT l.run_id AS id, d.thread_id, d.agent, l.created, l.epoch AS lepoch"               \
  "  FROM leases l" CLAIMABLE_RUN                                                              \
  "  WHERE l.owner IS NOT NULL AND l.owner <> @O AND"                                         \
  "   l.lease_until < (SELECT extract(epoch FROM clock_timestamp())) AND l.qstate = 'claimed'" \
  "  ORDER BY l.lease_until LIMIT @N FOR UPDATE OF l SKIP LOCKED),"

/* A claim between rescues: none (no parameter). */
#define NO_RESCUE_CTES                                                                       \
  " x AS (SELECT NULL::text AS id, NULL::text AS thread_id, NULL::text AS agent,"            \
  "  NULL::float8 AS created, 0::bigint AS lepoch WHERE false),"

/* A claim statement: hands back the leases of the runs done here since
 * the last one (RELEASE_CTES, when there are: one commit for both, a
 * pg-boss complete() and fetch in one), rescues (RESCUE_CTES or
 * NO_RESCUE_CTES), then takes queued runs for the rest of the n (@N, a
 * literal: fill). Each run claimed is one row written: its lease row
 * (owner, epoch, expiry, and 'claimed', out of the queue index). The
 * released runs are not claimable in this statement (their leases are
 * ours): disjoint rows for rel and upd. */
#define CLAIM_SQL(release, rescue)                                                           \
  "WITH " release rescue                                                                     \
  /* The queue index (leases_queued) in created order: the scan stops at  \
   * the LIMIT's last claimable run. The LIMIT is a literal (@N: n       \
   * rounded up to a power of two, so that a daemon has a few claim      \
   * texts to prepare, not one per n), so the planner knows it: as an    \
   * expression or a parameter it guessed a tenth of the queue, and      \
   * sorted all of it with a scan of runs for each entry where the tables \
   * were small (130 ms against 1.2 ms a claim, 2,000 runs queued). c    \
   * takes n of the rows (the rescued first): the others are locked, not  \
   * taken, until this statement commits (other claims pass over them    \
   * meanwhile). */                                                       \
  " q AS MATERIALIZED ("                                                                      \
  "  SELECT l.run_id AS id, d.thread_id, d.agent, l.created, l.epoch AS lepoch"               \
  "  FROM leases l" CLAIMABLE_RUN                                                              \
  "  WHERE" CLAIMABLE                                                                         \
  "  ORDER BY l.created LIMIT @N"                                                              \
  "  FOR UPDATE OF l SKIP LOCKED),"                                                           \
  /* whether each has a row in runs (started): a probe of its key for  \
   * each run taken (LATERAL ... LIMIT 1: never a hash of the whole runs \
   * table, which the planner chose when it costed the probe for every   \
   * candidate of the scans above) */                                    \
  " c AS (SELECT u.id, u.thread_id, u.agent, u.created, u.lepoch, s.id IS NOT NULL AS started"  \
  "  FROM (SELECT * FROM (SELECT *, 0 AS src FROM x UNION ALL SELECT *, 1 FROM q) v"          \
  "  ORDER BY src, created LIMIT ?::bigint) u LEFT JOIN LATERAL (SELECT r.id FROM runs r"     \
  "  WHERE r.id = u.id LIMIT 1) s ON true),"                                                   \
  /* The re-check. The snapshot is the statement's start; the lease rows \
   * are locked, so read at their newest (a row changed since is checked \
   * again against the WHERE: a run handed back 'ended' or 'waiting'     \
   * since is not taken). A run that ended in doubt after the snapshot   \
   * (its status written, then its lease handed back) read as running    \
   * here: so a started run's status is read again under a row lock      \
   * (FOR SHARE reads the newest row, and SKIP LOCKED passes over a run  \
   * whose status is being written), and the lease must still be at the  \
   * epoch read: a run claimed since waits for the next claim. */        \
  " live AS (SELECT r.id FROM runs r WHERE r.id = ANY(ARRAY(SELECT id FROM c WHERE started))" \
  "  AND r.status = 'running' FOR SHARE OF r SKIP LOCKED),"                                   \
  /* (c joined, not a subquery of c per row: that read all of c for     \
   * each run, 130 ms of a 400-run claim's 148) */                        \
  " upd AS (UPDATE leases l SET owner = @O, epoch = l.epoch + 1,"                             \
  "  lease_until = extract(epoch FROM clock_timestamp()) + @L, qstate = 'claimed'"          \
  "  FROM c WHERE l.run_id = ANY(ARRAY(SELECT id FROM c WHERE NOT started OR id IN"           \
  "   (SELECT id FROM live))) AND c.id = l.run_id AND l.epoch = c.lepoch"                     \
  "  AND (l.owner IS NULL OR l.lease_until < extract(epoch FROM clock_timestamp()))"          \
  "  RETURNING l.run_id, l.epoch)"                                                            \
  " SELECT upd.run_id AS id, upd.epoch AS epoch, c.thread_id AS thread_id, c.agent AS agent," \
  /* A run queued behind the ones taken (the snapshot's view, no lock): \
   * one read and not taken, or the next index entry after the last one  \
   * read (a hint for claim-ahead: a run behind a thread's live one      \
   * counts too). */                                                      \
  "  ((SELECT count(*) FROM x) + (SELECT count(*) FROM q) > (SELECT count(*) FROM c) OR"    \
  "  (SELECT l.created FROM leases l WHERE l.qstate = 'pending' AND l.created >"              \
  "   coalesce((SELECT max(created) FROM q), '-infinity'::float8) ORDER BY l.created"         \
  "   LIMIT 1) IS NOT NULL)::int AS deeper"                                                   \
  " FROM upd JOIN c ON c.id = upd.run_id ORDER BY c.created"

/* The lease statements beside the claim (owner and lease by fill). */
#define RELEASE_SQL                                                                        \
  "WITH " RELEASE_CTES " SELECT count(*) FILTER (WHERE freed) AS n, count(*) AS rows FROM rel"
#define RENEW_SQL                                                                          \
  "WITH r AS (UPDATE leases SET lease_until = extract(epoch FROM clock_timestamp()) + @L"  \
  " WHERE run_id = ANY(ARRAY(SELECT run_id FROM leases WHERE owner = @O FOR NO KEY UPDATE" \
  " SKIP LOCKED)) AND owner = @O RETURNING run_id) SELECT run_id, epoch FROM leases WHERE" \
  " owner = @O"
/* (its parameter: the JSON list) */
#define HAND_BACK_SQL                                                                      \
  "WITH rel AS (UPDATE leases l SET " HAND_BACK_SET " FROM json_to_recordset(?::json) AS" \
  " x(id text, epoch bigint) WHERE l.run_id = x.id AND l.owner = @O AND l.epoch = x.epoch" \
  " RETURNING l.run_id) SELECT count(*) AS n, pg_notify('" CHANNEL "', '') FROM rel"
#define LET_GO_SQL "UPDATE leases l SET " HAND_BACK_SET " WHERE owner = @O"

/* A template with this daemon's owner (@O, a quoted literal) and lease
 * (@L, seconds) written in, and a claim's n (@N): the owner and lease
 * never change in a process, and with n (one text per n) as literals
 * they leave the prepared claims only the done runs' list as a
 * parameter, so that the plan made once (generic) is the one the values
 * would get (a plan for "owner <> $1" or "LIMIT $1" guesses).
 * The owner is made of [A-Za-z0-9._:-] (lc_fleet_start). NULL: no
 * memory. */
static char *fill(const char *t, const char *owner, double lease_s, int n_claim) {
  char lease[48];
  lc_cnum_fmt(lease, sizeof lease, "%.17g", lease_s);
  size_t n = strlen(t) + 1, k = 0;
  for (const char *p = t; (p = strchr(p, '@')); p++) n += strlen(owner) + strlen(lease) + 16;
  char *o = malloc(n);
  if (!o) return NULL;
  for (const char *p = t; *p; p++) {
    if (p[0] == '@' && p[1] == 'O') {
      k += (size_t)snprintf(o + k, n - k, "'%s'", owner);
      p++;
    } else if (p[0] == '@' && p[1] == 'N') {
      k += (size_t)snprintf(o + k, n - k, "%d", n_claim);
      p++;
    } else if (p[0] == '@' && p[1] == 'L') {
      k += (size_t)snprintf(o + k, n - k, "%s::float8", lease);
      p++;
    } else {
      o[k++] = *p;
    }
  }
  o[k] = '\0';
  return o;
}

char *lc_fleet_claim_sql(const char *owner, double lease_s, int release, int rescue, int n) {
  return fill(release ? (rescue ? CLAIM_SQL(RELEASE_CTES ",", RESCUE_CTES)
                                : CLAIM_SQL(RELEASE_CTES ",", NO_RESCUE_CTES))
                      : (rescue ? CLAIM_SQL("", RESCUE_CTES) : CLAIM_SQL("", NO_RESCUE_CTES)),
              owner, lease_s, n);
}

/* The claim text of this variant for n runs (its reads limited to n
 * rounded up to a power of two), and its slot (*slot); NULL: no memory. */
static const char *claim_text(struct lc_fleet *f, int release, int rescue, int n, int *slot) {
  int b = 1;
  while (b < n && b < (1 << 20)) b *= 2;
  n = b;
  int v = release * 2 + rescue, lru = 0;
  for (int k = 0; k < CLAIM_SLOTS; k++) {
    struct claim_text *c = &f->ct[k];
    if (c->sql && c->variant == v && c->n == n) {
      c->used = ++f->ct_clock;
      *slot = k;
      return c->sql;
    }
    if (c->used < f->ct[lru].used) lru = k;
  }
  struct claim_text *c = &f->ct[lru];
  free(c->sql);
  c->sql = lc_fleet_claim_sql(f->owner, f->lease_s, release, rescue, n);
  c->variant = v;
  c->n = n;
  c->used = ++f->ct_clock;
  *slot = lru;
  return c->sql;
}

/* Claims up to n runs (CLAIMABLE; with rescue, runs whose lease ran out
 * first); returns how many. The same statement hands back the leases of
 * the runs done here since the last one, and says in *deeper whether
 * more runs were queued behind the n it read (claim-ahead's measure of
 * the queue), and in *threaded_back whether it handed back a run of a
 * thread (the thread's next run is not claimable in the same statement:
 * its snapshot reads the thread as busy). */
static int claim(struct lc_fleet *f, int n, int rescue, int *deeper, int *threaded_back) {
  *deeper = 0;
  char err[512];
  cJSON *rows = NULL;
  struct held *taken;
  char *j = take_done(f, &taken);
  *threaded_back = 0;
  for (struct held *h = taken; h; h = h->next)
    if (h->threaded) *threaded_back = 1;
  if (!j) {
    put_back(f, taken, 0);
    return 0;
  }
  double t0 = mono_s();
  /* Four variants: without runs to hand back (or no rescue due) the
   * statement leaves that part out. Each (with its n) is a prepared
   * statement of the fleet connection, planned once (its planning was
   * half of its server time: docs/BENCHMARKS.md), and again when its
   * tables have grown (watch_sizes) or FLEET_REPLAN_S later. */
  int k;
  char ns[16];
  snprintf(ns, sizeof ns, "%d", n);
  const char *sql = claim_text(f, taken != NULL, rescue, n, &k);
  int rc = !sql ? LC_ENOMEM
           : taken ? lc_dstore_exec_prepared(f->ds, k, FLEET_REPLAN_S, &rows, err, sizeof err, sql,
                                             "sss", j, j, ns)
                   : lc_dstore_exec_prepared(f->ds, k, FLEET_REPLAN_S, &rows, err, sizeof err, sql,
                                             "s", ns);
  if (!sql) snprintf(err, sizeof err, "out of memory");
  put_back(f, taken, rc == 0);
  free(j);
  if (rc) {
    lc_serve_log(f->s, "warn", "fleet_claim_failed", NULL, err);
    return 0;
  }
  long us = (long)((mono_s() - t0) * 1e6); /* the statement's round trip */
  int got = 0, nrows = cJSON_GetArraySize(rows);
  const cJSON *r;
  cJSON_ArrayForEach(r, rows) {
    const char *id = jstr(r, "id");
    const cJSON *ep = cJSON_GetObjectItem(r, "epoch");
    const cJSON *dp = cJSON_GetObjectItem(r, "deeper");
    if (cJSON_IsNumber(dp) && dp->valuedouble > 0) *deeper = 1;
    if (!id || !cJSON_IsNumber(ep)) continue;
    long epoch = (long)ep->valuedouble;
    /* A run this daemon still executes (or is stopping), claimed again
     * because its lease ran out meanwhile (a late renewal): never a second
     * execution of one run in one process (the run store's fence and the
     * lease release are per run id). The lease is handed back: the old
     * execution's writes are fenced out by the new epoch, it stops at the
     * next renewal, and the run is claimed afresh and resumes from its
     * journal. (Continuing the old execution under the new epoch would
     * not do: a commit of it checked against the old epoch meanwhile has
     * failed already.) */
    int again = 0;
    pthread_mutex_lock(&f->mu);
    for (struct held *o = f->held; o && !again; o = o->next) again = !strcmp(o->id, id);
    pthread_mutex_unlock(&f->mu);
    if (again) {
      char e2[256], es[24];
      snprintf(es, sizeof es, "%ld", epoch);
      lc_dstore_exec(f->ds, NULL, e2, sizeof e2,
                     "UPDATE leases l SET " HAND_BACK_SET " WHERE run_id = ? AND owner = ? AND "
                     "epoch = ?::bigint",
                     "sss", id, f->owner, es);
      lc_serve_log(f->s, "warn", "lease_lost", id,
                   "claimed again while still executing here: handed back, resumed afresh");
      continue;
    }
    struct held *h = calloc(1, sizeof *h);
    if (!h) break; /* its lease expires; another claim takes it */
    snprintf(h->id, sizeof h->id, "%s", id);
    h->epoch = epoch;
    h->threaded = jstr(r, "thread_id") != NULL;
    lc_store_fence(f->s->store, id, epoch);
    pthread_mutex_lock(&f->mu);
    h->next = f->held;
    f->held = h;
    pthread_mutex_unlock(&f->mu);
    char m[96]; /* scripts/pg-bench reads the claim's time from here */
    snprintf(m, sizeof m, "epoch %ld, claim %ld us for %d runs", epoch, us, nrows);
    lc_serve_log(f->s, "info", "run_claimed", id, m);
    lc_serve_enqueue_claimed(f->s, id, jstr(r, "thread_id"), jstr(r, "agent"));
    got++;
  }
  cJSON_Delete(rows);
  if (got) { /* the claim statements that took runs: their time, per run */
    atomic_fetch_add(&f->claims, got);
    atomic_fetch_add(&f->claim_stmts, 1);
    atomic_fetch_add(&f->claim_us, us);
  }
  return got;
}

/* Renews every lease this daemon holds; a run whose lease is gone (its
 * epoch moved on) is stopped here and no longer fenced as ours.
 *
 * Which leases are ours is read without a lock, and only the rows nobody
 * has locked are renewed (SKIP LOCKED): a journal commit of ours holds its
 * runs' lease rows FOR SHARE (the fence), and a renewal that waited for it
 * gave up at lock_timeout on a loaded machine, renewed nothing, and let
 * every lease of the daemon run out with no fault at all (check_fleet
 * saw runs taken over from live daemons in cascades). A row skipped now
 * is renewed at the next round, a third of a lease later.
 *
 * The rows to renew are read once (= ANY(ARRAY(...))): as "IN (SELECT
 * ...)" the planner, its statistics saying few leases had an owner, made
 * it a nested loop that read all of the daemon's leases again for each
 * (pg-bench: 137 ms a renewal of 330 leases, and the fenced writes
 * waiting behind it). */
static void renew(struct lc_fleet *f) {
  char err[512];
  cJSON *rows = NULL;
  if (lc_dstore_exec(f->ds, &rows, err, sizeof err, f->sql[SQL_RENEW], "")) {
    /* Not renewed: the leases run out while the database is away; the
     * runs' writes fail with it, and the next renewal sorts it out. */
    lc_serve_log(f->s, "warn", "fleet_renew_failed", NULL, err);
    return;
  }
  /* Lost runs stay on the list, marked, until their execution ended
   * (lc_fleet_run_done): the run store's fence of the run and the lease
   * release are by run id, and a claim of the run again meanwhile must not
   * start a second execution beside the one still stopping. */
  enum { MAXLOST = 64 };
  char lost[MAXLOST][65];
  int nlost = 0;
  pthread_mutex_lock(&f->mu);
  for (struct held *h = f->held; h; h = h->next) {
    if (h->lost) continue;
    int ok = 0;
    const cJSON *r;
    cJSON_ArrayForEach(r, rows) {
      const cJSON *ep = cJSON_GetObjectItem(r, "epoch");
      const char *id = jstr(r, "run_id");
      if (id && !strcmp(id, h->id) && cJSON_IsNumber(ep) && (long)ep->valuedouble == h->epoch)
        ok = 1;
    }
    if (ok || nlost == MAXLOST) continue; /* more: at the next renewal */
    h->lost = 1;
    snprintf(lost[nlost++], sizeof lost[0], "%s", h->id);
  }
  /* Leases this daemon owns but does not hold: a claim the database
   * committed whose answer was lost (the connection ended under it). Handed
   * back, or nobody would ever run those runs. */
  const cJSON *r;
  cJSON_ArrayForEach(r, rows) {
    const char *id = jstr(r, "run_id");
    const cJSON *ep = cJSON_GetObjectItem(r, "epoch");
    long e = cJSON_IsNumber(ep) ? (long)ep->valuedouble : -1;
    int mine = 0; /* held at this epoch, or done and about to be handed back */
    for (struct held *h = f->held; id && h && !mine; h = h->next)
      mine = !h->lost && !strcmp(h->id, id) && e == h->epoch;
    for (struct held *h = f->done; id && h && !mine; h = h->next)
      mine = !strcmp(h->id, id) && e == h->epoch;
    if (!id || mine) continue;
    char e2[256];
    lc_dstore_exec(f->ds, NULL, e2, sizeof e2,
                   "UPDATE leases l SET " HAND_BACK_SET " WHERE run_id = ? AND owner = ?", "ss",
                   id, f->owner);
    lc_serve_log(f->s, "warn", "lease_orphan", id, "claimed without knowing it: handed back");
  }
  pthread_mutex_unlock(&f->mu);
  cJSON_Delete(rows);
  for (int i = 0; i < nlost; i++) {
    atomic_fetch_add(&f->lost, 1);
    lc_serve_log(f->s, "warn", "lease_lost", lost[i],
                 "another daemon holds the run now: stopped here, nothing more written");
    lc_serve_drop_local(f->s, lost[i]);
  }
}

/* A daemon that is busy gathers freed slots for a claim: each claim is a
 * statement and a commit (a WAL flush), and one claim per finished run
 * made claims most of a fleet's round trips and flushes. It claims once a
 * quarter of its slots (at most 16) are free, or when a slot has been
 * free for GATHER_S: a run queued behind a full daemon waits at most that
 * much longer, and an idle daemon claims at once.
 *
 * With claim-ahead (--claim-ahead N) the daemon also holds up to N runs
 * claimed before a slot is free for them: a freed slot starts one from
 * its own queue at once, and the claim refills the N in one statement
 * once they are used up (batches of N or more instead of the few slots
 * freed since the last claim: pg-bench found the claim's cost per run was
 * its statement over 3 or 4 runs). */
#define GATHER_S 0.02

/* A queue found empty (a claim short of its n, nothing queued behind it)
 * stays so until a run is queued: a hint (this daemon's, a NOTIFY, a run
 * of a thread ending here) or the next poll. Meanwhile freed slots make
 * no claims; the leases of runs that end are handed back together, once
 * HAND_BACK_BATCH have ended or the first of them HAND_BACK_S ago (a
 * draining fleet made a claim statement per run or two that ended: most
 * of its claims with runs of 4 s, pg-bench). */
#define HAND_BACK_BATCH 32
#define HAND_BACK_S 0.25

/* Whether the runs done here are due to be handed back while the queue
 * is drained, and if not, in how many ms they will be (*ms lowered). */
static int hand_back_due(struct lc_fleet *f, long *ms) {
  pthread_mutex_lock(&f->mu);
  int any = f->done != NULL, n = 0;
  for (struct held *h = f->done; h && n < HAND_BACK_BATCH; h = h->next) n++;
  double left = f->done_at + HAND_BACK_S - mono_s();
  pthread_mutex_unlock(&f->mu);
  if (!any) return 0;
  if (n >= HAND_BACK_BATCH || left <= 0) return 1;
  if (ms && left * 1000 < *ms) *ms = (long)(left * 1000) + 1;
  return 0;
}

/* The adaptive claim-ahead's ceiling: pg-bench's claims cost about what
 * pg-boss's fetch+complete does per job from batches of 32. */
#define AHEAD_MAX 32

static int claim_base(const struct lc_fleet *f) {
  int b = f->s->max_runs / 4;
  return b < 1 ? 1 : b > 16 ? 16 : b;
}

/* After a claim: one that came back full with more runs queued behind
 * it found a queue deeper than this daemon's slots (every daemon that
 * claimed is busy, or it would have taken them): claim further ahead.
 * Any other: the queue is shallow, and a run claimed ahead would wait
 * here for a slot while another daemon may have one free: none ahead. */
static void adapt(struct lc_fleet *f, int deep) {
  if (!f->adaptive) {
    if (deep) f->ahead = f->cap; /* back from a hand-back */
    return;
  }
  if (!deep) f->ahead = 0;
  else {
    int a = 2 * f->ahead;
    if (a < claim_base(f)) a = claim_base(f);
    f->ahead = a > f->cap ? f->cap : a;
  }
}

static int claim_batch(const struct lc_fleet *f) {
  int b = claim_base(f);
  return f->ahead > b ? f->ahead : b;
}

static void hand_back_waited(struct lc_fleet *f);

/* How often the fleet thread reads the sizes of the tables a claim
 * reads (one small statement). */
#define SIZE_CHECK_S 0.5

/* A claim's plan is made for the sizes its tables have then, and a plan
 * made while they were small reads them sequentially once they have
 * grown (0.6 ms to 238 ms a claim at 60,000 runs): the prepared claims
 * are planned again when one of them has more than doubled since (from
 * empty: once past 64 kB). Planning follows the growth, a few times as a
 * fleet's tables grow from nothing and rarely after that, where preparing
 * again every few seconds planned each claim text every few seconds for
 * ever. (What a plan depends on beyond the sizes, the statistics,
 * PostgreSQL makes again itself: an ANALYZE invalidates it.) */
static void watch_sizes(struct lc_fleet *f) {
  double now = mono_s();
  if (now < f->sizes_at + SIZE_CHECK_S) return;
  f->sizes_at = now;
  char err[256];
  cJSON *rows = NULL;
  if (lc_dstore_exec(f->ds, &rows, err, sizeof err,
                     "SELECT pg_relation_size('leases') AS l, pg_relation_size('d_runs') AS d, "
                     "pg_relation_size('runs') AS r",
                     ""))
    return; /* the claim that follows says why */
  const cJSON *r = cJSON_GetArrayItem(rows, 0);
  const char *const col[3] = {"l", "d", "r"};
  int grown = 0;
  for (int k = 0; k < 3; k++) {
    const cJSON *v = cJSON_GetObjectItem(r, col[k]);
    double sz = cJSON_IsNumber(v) ? v->valuedouble : 0;
    if (!f->sizes_known || sz > 2 * f->size[k] + 65536) grown |= f->sizes_known;
    else if (sz >= f->size[k] / 2) continue; /* (shrunk: the new size is the base) */
    f->size[k] = sz;
  }
  f->sizes_known = 1;
  cJSON_Delete(rows);
  if (grown) lc_dstore_replan(f->ds);
}

static void *fleet_main(void *ud) {
  struct lc_fleet *f = ud;
  double renew_every = f->lease_s / 3;
  double next_renew = mono_s() + renew_every;
  double next_listen = 0;
  double rescue_every = f->lease_s / 4 < f->poll_ms / 1000.0 ? f->lease_s / 4 : f->poll_ms / 1000.0;
  double next_rescue = 0;
  double gather_until = 0; /* set while a few free slots wait for more */
  double drained_until = 0; /* set while the queue was found empty */
  int more = 1; /* claim at start: runs queued while no daemon ran */
  while (!atomic_load(&f->stop)) {
    /* Behind a proxy a LISTEN would be lost (a transaction pooler hands
     * the server connection to others after it) and would leave them
     * our notifications: the poll alone. */
    if (!f->listen && mono_s() >= next_listen && !lc_dstore_proxied(f->ds)) {
      listen_connect(f);
      next_listen = mono_s() + f->poll_ms / 1000.0;
      more = 1; /* hints may have been lost meanwhile */
      drained_until = 0;
    }
    if (!more) {
      double until_renew = next_renew - mono_s();
      long ms = f->poll_ms;
      int idle0, queued = 0;
      free_slots(f, &idle0, &queued);
      /* runs wait here: look at their wait a few times per bound */
      if (queued > 0 && f->wait_s > 0 && f->wait_s * 250 < ms)
        ms = f->wait_s * 250 < 5 ? 5 : (long)(f->wait_s * 250);
      if (until_renew * 1000 < ms) ms = until_renew > 0 ? (long)(until_renew * 1000) + 1 : 0;
      double until_gather = gather_until - mono_s();
      if (gather_until > 0 && until_gather * 1000 < ms)
        ms = until_gather > 0 ? (long)(until_gather * 1000) + 1 : 0;
      if (drained_until > 0) {
        double until_drained = drained_until - mono_s();
        if (until_drained * 1000 < ms) ms = until_drained > 0 ? (long)(until_drained * 1000) + 1 : 0;
        hand_back_due(f, &ms);
      }
      struct pollfd pf[2] = {{.fd = f->wake, .events = POLLIN},
                             {.fd = f->listen ? PQsocket(f->listen) : -1, .events = POLLIN}};
      int r = poll(pf, 2, (int)ms);
      if (r > 0 && (pf[0].revents & POLLIN)) {
        uint64_t v;
        ssize_t x = read(f->wake, &v, sizeof v);
        (void)x;
      }
      if (r > 0 && pf[1].fd >= 0 && pf[1].revents) listen_drain(f);
      /* A hint, or the poll's period: look for work either way. */
    }
    if (atomic_load(&f->stop)) break;
    if (mono_s() >= next_renew) {
      renew(f);
      next_renew = mono_s() + renew_every;
    }
    if (f->wait_s > 0) hand_back_waited(f);
    int idle, queued;
    int n = free_slots(f, &idle, &queued);
    if (n <= 0) release_done(f); /* no claim to ride on */
    if (atomic_exchange(&f->hinted, 0)) drained_until = 0;
    if (n > 0 && drained_until > 0 && mono_s() < drained_until) {
      if (hand_back_due(f, NULL)) release_done(f);
      more = 0;
      continue;
    }
    drained_until = 0;
    if (n > 0 && n < claim_batch(f) && n < f->s->max_runs + f->ahead) {
      /* Short of a batch: wait for more while every slot has a run to
       * start; a slot without one waits GATHER_S at most. */
      if (!idle) {
        gather_until = 0;
        more = 0;
        continue;
      }
      if (gather_until == 0) gather_until = mono_s() + GATHER_S;
      if (mono_s() < gather_until) {
        more = 0;
        continue;
      }
    }
    gather_until = 0;
    /* Runs whose lease ran out are looked for a few times per lease (and
     * at least every poll), not in every claim: the rescue is a good part
     * of a claim statement's planning, and finds nothing while daemons live. */
    int rescue = mono_s() >= next_rescue;
    if (n > 0) watch_sizes(f);
    if (rescue && n > 0) next_rescue = mono_s() + rescue_every;
    int deeper = 0, threaded_back = 0;
    int got = n > 0 ? claim(f, n, rescue, &deeper, &threaded_back) : 0;
    if (n > 0) adapt(f, got == n && deeper);
    more = n > 0 && got == n; /* a full claim: maybe more are queued */
    if (n > 0 && got < n && !deeper && !threaded_back)
      drained_until = mono_s() + f->poll_ms / 1000.0;
  }
  return NULL;
}

/* ---- the daemon's hooks (serve.h) ---- */

int lc_fleet_start(struct lc_serve *s, char *err, size_t n) {
  struct lc_fleet *f = calloc(1, sizeof *f);
  if (!f) return LC_ENOMEM;
  f->s = s;
  f->lease_s = s->lease_s > 0 ? s->lease_s : 10;
  f->poll_ms = s->poll_ms > 0 ? s->poll_ms : 500;
  f->adaptive = s->claim_ahead < 0;
  f->cap = f->adaptive ? AHEAD_MAX : s->claim_ahead;
  f->ahead = f->adaptive ? 0 : f->cap; /* adaptive: shallow until a claim says otherwise */
  /* a run should start within a second (docs/serve.md) */
  f->wait_s = s->ahead_wait_ms >= 0 ? s->ahead_wait_ms / 1000.0 : f->adaptive ? 1.0 : 0;
  char host[64] = "?";
  gethostname(host, sizeof host - 1);
  char u[37];
  lc_serve_uuid(u);
  for (char *c = host; *c; c++) /* written into statements as a literal (fill) */
    if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
          *c == '.' || *c == '-'))
      *c = '_';
  snprintf(f->owner, sizeof f->owner, "%s:%ld:%.8s", host, (long)getpid(), u);
  static const char *const tmpl[NSQL] = {
      [SQL_RELEASE] = RELEASE_SQL,
      [SQL_RENEW] = RENEW_SQL,
      [SQL_HAND_BACK] = HAND_BACK_SQL,
      [SQL_LET_GO] = LET_GO_SQL};
  int oom = 0;
  for (int k = 0; k < NSQL; k++) oom |= !(f->sql[k] = fill(tmpl[k], f->owner, f->lease_s, 0));
  pthread_mutex_init(&f->mu, NULL);
  f->wake = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  int rc = oom ? LC_ENOMEM : f->wake < 0 ? LC_EIO : lc_dstore_open(s->store_path, "luact fleet", 1, &f->ds, err, n);
  /* A claim or renewal never waits long on a row another session holds
   * (a stalled daemon's transaction, until the server ends it): it gives
   * up and the next round tries again, so renewals keep their period.
   *
   * And the lease statements commit without waiting for the WAL flush
   * (behind every journal commit of the fleet, that wait was most of a
   * claim's time). Losing one takes a server crash, and costs no run:
   * every write a run makes is fenced and durable, so its commit flushes
   * the claim before it (the WAL is one sequence), and a write made
   * under a claim the crash lost finds the lease back at its old epoch
   * and fails; a lost renewal or hand-back only moves when the lease
   * runs out. What a lost claim could do is give its epoch twice (the
   * next claim raises the old one again): so the fences also require
   * this daemon's name as the owner (lc_store_fence_owner), which no
   * other daemon's claim writes. */
  if (!rc)
    rc = lc_dstore_session(f->ds, LC_FLEET_SESSION, LC_FLEET_LOCAL);
  if (!rc && lc_dstore_proxied(f->ds)) {
    char m[200];
    snprintf(m, sizeof m,
             "PostgreSQL through a proxy: no LISTEN (a poll every %ld ms), claims planned at each "
             "run, settings per transaction",
             f->poll_ms);
    lc_serve_log(s, "info", "fleet_proxied", NULL, m);
  }
  if (!rc) {
    lc_store_fence_owner(s->store, f->owner);
    lc_dstore_fence_owner(s->ds, f->owner);
  }
  if (!rc && pthread_create(&f->th, NULL, fleet_main, f)) rc = LC_EIO;
  if (rc) {
    if (!err[0]) snprintf(err, n, "cannot start the fleet thread");
    lc_dstore_close(f->ds);
    if (f->wake >= 0) close(f->wake);
    pthread_mutex_destroy(&f->mu);
    for (int k = 0; k < NSQL; k++) free(f->sql[k]);
    free(f);
    return rc;
  }
  f->th_on = 1;
  s->fleet = f;
  char m[300];
  snprintf(m, sizeof m,
           "fleet member %s: lease %.1f s, renewed every %.1f s, poll %ld ms, claim-ahead %s%d, "
           "hand-back after %.0f ms",
           f->owner, f->lease_s, f->lease_s / 3, f->poll_ms, f->adaptive ? "up to " : "", f->cap,
           f->wait_s * 1000);
  lc_serve_log(s, "info", "fleet", NULL, m);
  return 0;
}

/* s->fleet's life: a run thread hands its lease back after it left the
 * active list, so lc_fleet_stop (which runs once the list is empty) may
 * free the fleet under it. Users hold this for reading, stop for writing. */
static pthread_rwlock_t fleet_rw = PTHREAD_RWLOCK_INITIALIZER;

void lc_fleet_hint(struct lc_serve *s) {
  pthread_rwlock_rdlock(&fleet_rw);
  struct lc_fleet *f = s->fleet;
  if (f) {
    atomic_store(&f->hinted, 1);
    wake(f); /* this daemon looks at once; the others hear the NOTIFY */
    char err[256];
    lc_dstore_exec(s->ds, NULL, err, sizeof err, "SELECT pg_notify('" CHANNEL "', '')", "");
  }
  pthread_rwlock_unlock(&fleet_rw);
}

static void run_done(struct lc_serve *s, struct lc_fleet *f, const char *run_id);

void lc_fleet_run_done(struct lc_serve *s, const char *run_id) {
  pthread_rwlock_rdlock(&fleet_rw);
  if (s->fleet) run_done(s, s->fleet, run_id);
  pthread_rwlock_unlock(&fleet_rw);
}

static void run_done(struct lc_serve *s, struct lc_fleet *f, const char *run_id) {
  /* Test hook (check_serve_crons): a pause with the fleet in hand, before
   * the lease is handed back, so that a SIGTERM's stop lands in it. */
  const char *pause = getenv("LUACT_FLEET_TEST_DONE_PAUSE_MS");
  if (pause && atol(pause) > 0 && atol(pause) < 10000) {
    struct timespec ts = {atol(pause) / 1000, (atol(pause) % 1000) * 1000000L};
    nanosleep(&ts, NULL);
    lc_serve_log(s, "info", "fleet_test_pause", run_id, "over"); /* the process still runs */
  }
  pthread_mutex_lock(&f->mu);
  for (struct held **p = &f->held; *p; p = &(*p)->next)
    if (!strcmp((*p)->id, run_id)) {
      /* Handed back (ended, or waiting for an answer that any daemon may
       * pick up) by the fleet thread's next statement, only if it is
       * still ours then: no statement and no commit of its own. */
      struct held *h = *p;
      *p = h->next;
      if (!f->done) f->done_at = mono_s();
      h->next = f->done;
      f->done = h;
      /* the next run of its thread (passed over while this one held
       * the thread) may be claimed now */
      if (h->threaded) atomic_store(&f->hinted, 1);
      break;
    }
  pthread_mutex_unlock(&f->mu);
  lc_store_fence(s->store, run_id, 0);
  /* The fleet thread stopped (lc_fleet_stop without release: runs still
   * end until the process exits): handed back here. */
  if (atomic_load(&f->stop)) release_done(f);
  wake(f); /* a slot is free */
}

int lc_fleet_cancel_pending(struct lc_serve *s, const char *run_id) {
  if (!s->fleet) return LC_ENOTFOUND;
  char err[256];
  cJSON *rows = NULL;
  /* Only a run nobody claimed. The lease row is the lock: the cancel
   * takes it as a claim would (an INSERT ... ON CONFLICT sees the latest
   * claim, committed or waited for, where a plain UPDATE's subquery would
   * read an older snapshot and cancel a run a claim just took), under the
   * owner "cancelled", which no claim takes. */
  int rc = lc_dstore_exec(s->ds, &rows, err, sizeof err,
                          "WITH t AS (INSERT INTO leases(run_id, owner, epoch, qstate) SELECT ?, "
                          "'cancelled', 1, 'ended' WHERE NOT EXISTS (SELECT 1 FROM runs WHERE id "
                          "= ?) ON CONFLICT(run_id) DO UPDATE SET owner = 'cancelled', "
                          "lease_until = NULL, epoch = leases.epoch + 1, qstate = 'ended' WHERE "
                          "leases.owner IS NULL OR "
                          "leases.lease_until < extract(epoch FROM clock_timestamp()) "
                          "RETURNING run_id) "
                          "UPDATE d_runs SET pstatus = 'cancelled' WHERE id IN (SELECT run_id "
                          "FROM t) AND pstatus IN ('pending', 'claimed', 'waiting') RETURNING id",
                          "ss", run_id, run_id);
  int n = cJSON_GetArraySize(rows);
  cJSON_Delete(rows);
  if (rc || n) return rc;
  /* Claimed by another daemon (ahead of a free slot, maybe) and not
   * started: its run row is made here, cancelled. The row's key decides
   * against the holder's start (an INSERT waits for one in flight and
   * then does nothing), and the lease's epoch goes up with it, so the
   * holder's start, fenced by its epoch, writes nothing (its renewal then
   * drops the run); a holder that started first keeps the run, and the
   * cancel goes to it as to any running run (lc_store_run_cancel). */
  rows = NULL;
  rc = lc_dstore_exec(s->ds, &rows, err, sizeof err,
                      "WITH ins AS (INSERT INTO runs(id, status, created, updated, pid) "
                      "SELECT ?, 'cancelled', ?::float8, ?::float8, 0 WHERE EXISTS (SELECT 1 "
                      "FROM d_runs WHERE id = ? AND pstatus IN ('pending', 'claimed')) ON CONFLICT (id) DO "
                      "NOTHING RETURNING id), "
                      "l AS (UPDATE leases SET owner = 'cancelled', lease_until = NULL, epoch = "
                      "epoch + 1, qstate = 'ended' WHERE run_id IN (SELECT id FROM ins) "
                      "RETURNING run_id), "
                      "d AS (UPDATE d_runs SET pstatus = 'cancelled' WHERE id IN (SELECT id FROM "
                      "ins) AND pstatus IN ('pending', 'claimed') RETURNING id) "
                      "SELECT id, (SELECT count(*) FROM l) AS leases, (SELECT count(*) FROM d) "
                      "AS queued FROM ins",
                      "sdds", run_id, lc_serve_now(), lc_serve_now(), run_id);
  n = cJSON_GetArraySize(rows);
  cJSON_Delete(rows);
  return rc ? rc : n ? 0 : LC_ENOTFOUND;
}

/* Hands back on conn the leases of the n runs ids, taken off this
 * daemon's queue (none of them starts here now; ids is freed), if still
 * ours at that epoch; a NOTIFY wakes the other daemons for them. */
static void hand_back(struct lc_serve *s, struct lc_fleet *f, struct lc_dstore *conn,
                      char (*ids)[65], int n, const char *why) {
  cJSON *a = cJSON_CreateArray();
  pthread_mutex_lock(&f->mu);
  for (int i = 0; i < n; i++)
    for (struct held **p = &f->held; *p; p = &(*p)->next)
      if (!strcmp((*p)->id, ids[i])) {
        struct held *h = *p;
        *p = h->next;
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "id", h->id);
        cJSON_AddNumberToObject(o, "epoch", (double)h->epoch);
        cJSON_AddItemToArray(a, o);
        free(h);
        break;
      }
  pthread_mutex_unlock(&f->mu);
  for (int i = 0; i < n; i++) lc_store_fence(s->store, ids[i], 0);
  free(ids);
  char *j = a && cJSON_GetArraySize(a) ? cJSON_PrintUnformatted(a) : NULL;
  cJSON_Delete(a);
  if (!j) return; /* nothing queued (or out of memory: the leases run out) */
  char err[512];
  cJSON *rows = NULL;
  int rc = lc_dstore_exec(conn, &rows, err, sizeof err, f->sql[SQL_HAND_BACK], "s", j);
  char m[600];
  const cJSON *c = cJSON_GetObjectItem(cJSON_GetArrayItem(rows, 0), "n");
  if (rc) snprintf(m, sizeof m, "%s", err);
  else
    snprintf(m, sizeof m, "%d runs claimed ahead handed back%s",
             cJSON_IsNumber(c) ? c->valueint : 0, why);
  lc_serve_log(s, rc ? "warn" : "info", "fleet_drain", NULL, m);
  cJSON_Delete(rows);
  free(j);
}

/* Takes every run queued here off the queue and hands it back. */
static void drain(struct lc_serve *s, struct lc_fleet *f, struct lc_dstore *conn) {
  char(*ids)[65] = NULL;
  int n = lc_serve_take_queued(s, &ids);
  hand_back(s, f, conn, ids, n, "");
}

/* Runs claimed ahead that waited wait_s here for a slot: the queue was
 * not as deep as the claim thought, or this daemon's runs are long.
 * Handed back for a daemon with a free slot (or for this one's next free
 * slot, at the head of the queue again), and nothing more is claimed
 * ahead until a claim comes back full again. */
static void hand_back_waited(struct lc_fleet *f) {
  char(*ids)[65] = NULL;
  int n = lc_serve_take_stale(f->s, f->wait_s, &ids);
  if (n <= 0) {
    free(ids);
    return;
  }
  f->ahead = 0;
  hand_back(f->s, f, f->ds, ids, n, ": they waited for a slot here");
}

void lc_fleet_drain(struct lc_serve *s) {
  pthread_rwlock_rdlock(&fleet_rw);
  if (s->fleet) drain(s, s->fleet, s->ds); /* the daemon's pool: the fleet thread has its own */
  pthread_rwlock_unlock(&fleet_rw);
}

void lc_fleet_stop(struct lc_serve *s, int release) {
  struct lc_fleet *f = s->fleet;
  if (!f) return;
  atomic_store(&f->stop, 1);
  wake(f);
  if (f->th_on) pthread_join(f->th, NULL);
  drain(s, f, f->ds); /* claimed by a claim in flight at the drain */
  release_done(f); /* the thread is gone: the leases of runs done since */
  char m[200];
  snprintf(m, sizeof m, "claims %ld in %ld us (%ld statements, %ld unprepared), leases lost %ld",
           atomic_load(&f->claims), atomic_load(&f->claim_us), atomic_load(&f->claim_stmts),
           lc_dstore_unprepared(f->ds), atomic_load(&f->lost));
  lc_serve_log(s, "info", "fleet_stats", NULL, m);
  f->th_on = 0;
  if (!release) return; /* runs still going use it until the process exits */
  {
    /* Claimed but not started: for another daemon at once. */
    char err[256];
    lc_dstore_exec(f->ds, NULL, err, sizeof err, f->sql[SQL_LET_GO], "");
  }
  pthread_rwlock_wrlock(&fleet_rw); /* run threads handing leases back finish first */
  s->fleet = NULL;
  pthread_rwlock_unlock(&fleet_rw);
  while (f->held) {
    struct held *h = f->held;
    f->held = h->next;
    free(h);
  }
  put_back(f, f->done, 1);
  f->done = NULL;
  if (f->listen) PQfinish(f->listen);
  lc_dstore_close(f->ds);
  close(f->wake);
  pthread_mutex_destroy(&f->mu);
  for (int k = 0; k < NSQL; k++) free(f->sql[k]);
  for (int k = 0; k < CLAIM_SLOTS; k++) free(f->ct[k].sql);
  free(f);
}

void lc_fleet_stats(struct lc_serve *s, long *claims, long *claim_us, long *lost) {
  struct lc_fleet *f = s->fleet;
  *claims = f ? atomic_load(&f->claims) : 0;
  *claim_us = f ? atomic_load(&f->claim_us) : 0;
  *lost = f ? atomic_load(&f->lost) : 0;
}
