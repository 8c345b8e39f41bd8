/* apiwork.c: the HTTP side's worker pool and parked items (apiwork.h). */
#include "apiwork.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lc.h"
#include "serve.h"

enum { W_IDLE, W_QUEUED, W_RUNNING };

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t work_cv = PTHREAD_COND_INITIALIZER;
static struct lc_work *qhead, *qtail; /* to run */
static struct lc_work *parked;        /* the parked set */
static int nparked, stopping, nworkers;
static pthread_t *workers, ticker;
static struct lc_serve *srv;
static atomic_int tick_stop;
static int ticking; /* the ticker was started */

/* Under mu. */
static void enqueue(struct lc_work *w) {
  w->state = W_QUEUED;
  w->qnext = NULL;
  if (qtail) qtail->qnext = w;
  else qhead = w;
  qtail = w;
  pthread_cond_signal(&work_cv);
}

static void unlink_parked(struct lc_work *w) {
  if (!w->parked) return;
  if (w->prev) w->prev->next = w->next;
  else parked = w->next;
  if (w->next) w->next->prev = w->prev;
  w->prev = w->next = NULL;
  w->parked = 0;
  nparked--;
}

static void link_parked(struct lc_work *w) {
  if (w->parked) return;
  w->prev = NULL;
  w->next = parked;
  if (parked) parked->prev = w;
  parked = w;
  w->parked = 1;
  nparked++;
}

static void *worker(void *arg) {
  (void)arg;
  pthread_mutex_lock(&mu);
  for (;;) {
    while (!qhead && !stopping) pthread_cond_wait(&work_cv, &mu);
    if (!qhead) break; /* stopping, and nothing left */
    struct lc_work *w = qhead;
    qhead = w->qnext;
    if (!qhead) qtail = NULL;
    if (w->dead) {
      unlink_parked(w);
      pthread_mutex_unlock(&mu);
      w->free_fn(w);
      pthread_mutex_lock(&mu);
      continue;
    }
    w->state = W_RUNNING;
    w->again = 0;
    pthread_mutex_unlock(&mu);
    int rc = w->run(w);
    pthread_mutex_lock(&mu);
    if (rc == LC_WORK_HANDED) continue; /* not ours any more */
    if (w->want_park) {
      w->want_park = 0;
      link_parked(w);
      w->again = 1;
    }
    if (w->dead) {
      unlink_parked(w);
      pthread_mutex_unlock(&mu);
      w->free_fn(w);
      pthread_mutex_lock(&mu);
    } else if (w->parked && w->again) {
      enqueue(w);
    } else {
      w->state = W_IDLE;
    }
  }
  pthread_mutex_unlock(&mu);
  return NULL;
}

void lc_work_kick_all(void) {
  pthread_mutex_lock(&mu);
  for (struct lc_work *w = parked; w; w = w->next) {
    if (w->state == W_IDLE) enqueue(w);
    else if (w->state == W_RUNNING) w->again = 1;
  }
  pthread_mutex_unlock(&mu);
}

/* Every run change (the runner broadcasts s->changed; lc_serve_notify)
 * and every 250 ms: the parked items look again (new journal lines are
 * not announced, so streams also poll, as they did on their own threads;
 * keep-alives are due by time). */
static void *tick(void *arg) {
  (void)arg;
  /* Changes are counted: one that comes during the pause below is seen
   * at its end, not lost until the next 250 ms (a run's first step then
   * reached its stream about 250 ms late). */
  unsigned long seen = 0;
  while (!atomic_load(&tick_stop)) {
    lc_serve_wait_change_since(srv, &seen, 250);
    lc_work_kick_all();
    /* At most one look per 20 ms: under load runs change thousands of
     * times a second, and every look costs each parked item a store read. */
    struct timespec ts = {0, 20 * 1000000L};
    nanosleep(&ts, NULL);
  }
  return NULL;
}

int lc_work_start(struct lc_serve *s, int n, char *err, size_t en) {
  srv = s;
  stopping = 0;
  atomic_store(&tick_stop, 0);
  workers = calloc((size_t)n, sizeof *workers);
  if (!workers) {
    snprintf(err, en, "out of memory");
    return LC_ENOMEM;
  }
  for (nworkers = 0; nworkers < n; nworkers++)
    if (pthread_create(&workers[nworkers], NULL, worker, NULL)) break;
  if (nworkers == n && !pthread_create(&ticker, NULL, tick, NULL)) ticking = 1;
  if (!ticking) {
    snprintf(err, en, "cannot start the HTTP workers");
    lc_work_stop();
    return LC_EIO;
  }
  return 0;
}

void lc_work_stop(void) {
  if (!workers) return;
  atomic_store(&tick_stop, 1);
  lc_serve_notify(srv);
  if (ticking) pthread_join(ticker, NULL);
  ticking = 0;
  pthread_mutex_lock(&mu);
  stopping = 1;
  pthread_cond_broadcast(&work_cv);
  pthread_mutex_unlock(&mu);
  for (int i = 0; i < nworkers; i++) pthread_join(workers[i], NULL);
  free(workers);
  workers = NULL;
  nworkers = 0;
}

void lc_work_submit(struct lc_work *w) {
  pthread_mutex_lock(&mu);
  enqueue(w);
  pthread_mutex_unlock(&mu);
}

void lc_work_park(struct lc_work *w) {
  pthread_mutex_lock(&mu);
  link_parked(w);
  if (w->state == W_RUNNING) w->again = 1;
  else if (w->state == W_IDLE) enqueue(w);
  pthread_mutex_unlock(&mu);
}

void lc_work_unpark(struct lc_work *w) {
  pthread_mutex_lock(&mu);
  unlink_parked(w);
  w->state = W_IDLE; /* the next park or submit queues it again */
  w->again = 0;
  pthread_mutex_unlock(&mu);
}

void lc_work_kick(struct lc_work *w) {
  pthread_mutex_lock(&mu);
  if (w->state == W_IDLE) enqueue(w);
  else if (w->state == W_RUNNING) w->again = 1;
  pthread_mutex_unlock(&mu);
}

void lc_work_kill(struct lc_work *w) {
  pthread_mutex_lock(&mu);
  w->dead = 1;
  if (w->state == W_IDLE) {
    unlink_parked(w);
    pthread_mutex_unlock(&mu);
    w->free_fn(w);
    return;
  }
  pthread_mutex_unlock(&mu); /* queued or running: the worker frees it */
}

int lc_work_parked(void) {
  pthread_mutex_lock(&mu);
  int n = nparked;
  pthread_mutex_unlock(&mu);
  return n;
}
