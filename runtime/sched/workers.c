/* workers.c: worker threads and their process-wide meeting points. */
#include "workers.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "lc.h"

#define MAX_SLOTS LC_WORKER_NAMES

struct slot {
  char name[LC_WORKER_NAME_MAX + 1];
  double value;
  int used;
  int arrivals; /* contributions in the current round */
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
/* The meeting point: a generation-counting barrier under mu that a worker
 * leaving the run breaks (pthread_barrier_wait cannot be broken: one
 * worker failing before a sum left the others waiting forever). */
static pthread_cond_t meet_cv = PTHREAD_COND_INITIALIZER;
static int barrier_ready;
static int meet_waiting;      /* arrivals in the current generation */
static unsigned long meet_gen;
static int meet_broken;       /* id of the first worker that left, else 0 */
static int meet_broken_rc;    /* and its exit code */
static struct slot slots[MAX_SLOTS];
static _Thread_local int my_id = 1;
static int n_workers = 1;

struct start {
  int id, rc;
  pthread_t th;
};

/* The run in progress. Written by worker 1 only; the others read it after
 * the gate opens (the mutex orders those writes before their reads). */
struct run {
  lc_worker_fn fn;
  void *ud;
  int max;     /* --workers */
  int decided; /* lc_workers_spread ran on worker 1 */
  int started; /* threads started for workers 2.. */
  int gate;    /* 0 closed, 1 go, -1 stop: a thread could not be started */
  struct start *st;
};
static struct run run;
static pthread_cond_t gate_cv = PTHREAD_COND_INITIALIZER;

static void *thread_main(void *p) {
  struct start *s = p;
  my_id = s->id;
  pthread_mutex_lock(&mu);
  while (run.gate == 0) pthread_cond_wait(&gate_cv, &mu);
  int go = run.gate > 0;
  pthread_mutex_unlock(&mu);
  if (go) s->rc = run.fn(s->id, run.ud);
  lc_worker_leave(s->rc);
  return NULL;
}

int lc_workers_spread(const char *why_not) {
  if (my_id != 1 || run.decided) return n_workers;
  run.decided = 1;
  if (run.max < 2) return n_workers;
  if (why_not) {
    fprintf(stderr, "luact: %s; running on one worker, not %d\n", why_not, run.max);
    return n_workers;
  }
  run.st = lc_calloc((size_t)run.max - 1, sizeof *run.st);
  if (!run.st) {
    fprintf(stderr, "luact: out of memory starting %d workers; running on one\n", run.max);
    return n_workers;
  }
  /* Every thread is started before any runs the script: the barrier and
   * the reductions count all workers, and a run short of one would hang
   * in them. If one cannot be started, none runs and worker 1 goes on
   * alone. */
  for (int i = 0; i < run.max - 1; i++) {
    run.st[i].id = i + 2;
    if (pthread_create(&run.st[i].th, NULL, thread_main, &run.st[i]) != 0) break;
    run.started++;
  }
  int all = run.started == run.max - 1;
  pthread_mutex_lock(&mu);
  if (all) {
    barrier_ready = 1;
    n_workers = run.max;
  }
  run.gate = all ? 1 : -1;
  pthread_cond_broadcast(&gate_cv);
  pthread_mutex_unlock(&mu);
  if (!all) fprintf(stderr, "luact: cannot start %d workers; running on one\n", run.max);
  return n_workers;
}

int lc_workers_run(int count, lc_worker_fn fn, void *ud) {
  run = (struct run){.fn = fn, .ud = ud, .max = count < 1 ? 1 : count};
  n_workers = 1;
  my_id = 1;
  memset(slots, 0, sizeof slots);
  meet_waiting = meet_broken = meet_broken_rc = 0;
  int rc = fn(1, ud);
  lc_worker_leave(rc);
  for (int i = 0; i < run.started; i++) pthread_join(run.st[i].th, NULL);
  /* The first worker that failed says how the run ends; the others
   * failed because it did. */
  int first = meet_broken_rc;
  if (first) rc = first;
  for (int i = 0; i < run.started && !rc; i++) rc = run.st[i].rc;
  barrier_ready = 0;
  lc_free(run.st);
  run.st = NULL;
  n_workers = 1;
  return rc;
}

int lc_worker_id(void) { return my_id; }
int lc_worker_count(void) { return n_workers; }

void lc_worker_leave(int rc) {
  pthread_mutex_lock(&mu);
  if (!meet_broken && barrier_ready) {
    meet_broken = my_id;
    meet_broken_rc = rc;
    pthread_cond_broadcast(&meet_cv);
  } else if (rc && !meet_broken_rc) {
    meet_broken_rc = rc;
  }
  pthread_mutex_unlock(&mu);
}

int lc_worker_barrier(void) {
  if (!barrier_ready || n_workers <= 1) return 0;
  pthread_mutex_lock(&mu);
  int rc = 0;
  if (meet_broken) {
    rc = meet_broken;
  } else if (++meet_waiting == n_workers) {
    meet_waiting = 0;
    meet_gen++;
    pthread_cond_broadcast(&meet_cv);
  } else {
    unsigned long gen = meet_gen;
    while (gen == meet_gen && !meet_broken) pthread_cond_wait(&meet_cv, &mu);
    if (gen == meet_gen) rc = meet_broken; /* broken before everyone came */
  }
  pthread_mutex_unlock(&mu);
  return rc;
}

int lc_worker_reduce(const char *name, double value, int is_max, double *out) {
  *out = value;
  if (n_workers <= 1) return 0;
  /* Slots are never freed (a worker freeing one while another already
   * reuses it for the next name loses contributions). A round starts with
   * its first arrival after the previous round was complete; the second
   * barrier guarantees everyone read the previous value by then. */
  pthread_mutex_lock(&mu);
  struct slot *s = NULL;
  for (int i = 0; i < MAX_SLOTS && !s; i++)
    if (slots[i].used && strcmp(slots[i].name, name) == 0) s = &slots[i];
  for (int i = 0; i < MAX_SLOTS && !s; i++)
    if (!slots[i].used) {
      s = &slots[i];
      s->used = 1;
      snprintf(s->name, sizeof s->name, "%s", name);
      s->arrivals = 0;
    }
  if (!s) {
    /* Returning the caller's own value would look like a combined one. */
    pthread_mutex_unlock(&mu);
    return LC_ETOOBIG;
  }
  {
    if (s->arrivals == 0 || s->arrivals == n_workers) {
      s->arrivals = 0;
      s->value = is_max ? value : 0;
    }
    if (is_max) s->value = value > s->value ? value : s->value;
    else s->value += value;
    s->arrivals++;
  }
  pthread_mutex_unlock(&mu);
  int rc = lc_worker_barrier();
  if (rc) return rc;
  pthread_mutex_lock(&mu);
  *out = s->value;
  pthread_mutex_unlock(&mu);
  return lc_worker_barrier();
}
