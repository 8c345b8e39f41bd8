/* offload.c: the shared pool behind offload.h. One mutex guards the queue,
 * the thread count and each job's two references. A finished job's pool
 * reference is dropped and its fd written under that mutex: a submitter
 * that waited for the fd then holds the last reference and frees the job
 * itself (so nothing of a consumed job outlives its caller), and a
 * submitter releasing meanwhile can never close the fd under the write.
 * The done flag is atomic so that the submitter reads it without the
 * lock. */
#include "offload.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "lc.h"

struct lc_offload {
  struct lc_offload *next; /* in the queue */
  lc_offload_fn fn;
  void (*free_arg)(void *);
  void *arg;
  int efd;
  int queued;    /* under pool.mu */
  int submitter; /* under pool.mu: its reference is held */
  int pooled;    /* under pool.mu: the pool's is held */
  atomic_int done;
};

static struct {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  struct lc_offload *head, *tail;
  int queued, threads, idle, hold;
} pool = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, NULL, NULL, 0, 0, 0, 0};

/* After both references are gone. The job goes first and its argument
 * last, so whatever the argument's free signals (a test's "it ended")
 * is the last thing the job does. */
static void job_free(struct lc_offload *j) {
  void (*free_arg)(void *) = j->free_arg;
  void *arg = j->arg;
  close(j->efd);
  lc_free(j);
  if (free_arg) free_arg(arg);
}

static void *pool_main(void *unused) {
  (void)unused;
  pthread_mutex_lock(&pool.mu);
  for (;;) {
    while (!pool.head || pool.hold) {
      pool.idle++;
      pthread_cond_wait(&pool.cv, &pool.mu);
      pool.idle--;
    }
    struct lc_offload *j = pool.head;
    if (!(pool.head = j->next)) pool.tail = NULL;
    j->queued = 0;
    pool.queued--;
    pthread_mutex_unlock(&pool.mu);
    j->fn(j->arg);
    pthread_mutex_lock(&pool.mu);
    atomic_store_explicit(&j->done, 1, memory_order_release);
    j->pooled = 0;
    if (j->submitter) {
      uint64_t one = 1;
      /* A nonblocking eventfd write fails only at 2^64 - 1 (never here). */
      while (write(j->efd, &one, sizeof one) < 0 && errno == EINTR) {
      }
    } else {
      pthread_mutex_unlock(&pool.mu);
      job_free(j); /* its submitter let go of it meanwhile */
      pthread_mutex_lock(&pool.mu);
    }
  }
  return NULL;
}

/* Under pool.mu: a thread for this job unless an idle one is left over
 * by the jobs queued before it (signalled threads may not have woken
 * yet). A failure is fatal only when there is no thread at all. */
static int grow(void) {
  if (pool.idle > pool.queued || pool.threads >= LC_OFFLOAD_THREADS) return 0;
  pthread_attr_t at;
  pthread_t th;
  sigset_t all, old;
  if (pthread_attr_init(&at)) return pool.threads ? 0 : LC_EIO;
  pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
  pthread_attr_setstacksize(&at, 256 * 1024);
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old); /* signals are the loops' */
  int rc = pthread_create(&th, &at, pool_main, NULL);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  pthread_attr_destroy(&at);
  if (rc) return pool.threads ? 0 : LC_EIO;
  pool.threads++;
  return 0;
}

int lc_offload_new(lc_offload_fn fn, void (*free_arg)(void *), void *arg,
                   struct lc_offload **out, int *fd) {
  *out = NULL;
  struct lc_offload *j = lc_calloc(1, sizeof *j);
  if (!j) {
    if (free_arg) free_arg(arg);
    return LC_ENOMEM;
  }
  j->fn = fn;
  j->free_arg = free_arg;
  j->arg = arg;
  j->submitter = 1; /* the pool's comes with the start */
  atomic_init(&j->done, 0);
  if ((j->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0) {
    int rc = errno == ENOMEM ? LC_ENOMEM : LC_EIO;
    if (free_arg) free_arg(arg);
    lc_free(j);
    return rc;
  }
  *out = j;
  *fd = j->efd;
  return 0;
}

int lc_offload_start(struct lc_offload *j) {
  pthread_mutex_lock(&pool.mu);
  int rc = grow();
  if (!rc) {
    j->pooled = j->queued = 1;
    pool.queued++;
    if (pool.tail)
      pool.tail->next = j;
    else
      pool.head = j;
    pool.tail = j;
    pthread_cond_signal(&pool.cv);
  }
  pthread_mutex_unlock(&pool.mu);
  return rc;
}

int lc_offload_submit(lc_offload_fn fn, void (*free_arg)(void *), void *arg,
                      struct lc_offload **out, int *fd) {
  int rc = lc_offload_new(fn, free_arg, arg, out, fd);
  if (!rc && (rc = lc_offload_start(*out))) {
    lc_offload_release(*out);
    *out = NULL;
  }
  return rc;
}

int lc_offload_done(const struct lc_offload *j) {
  return atomic_load_explicit(&j->done, memory_order_acquire);
}

void *lc_offload_arg(struct lc_offload *j) { return j->arg; }

void lc_offload_release(struct lc_offload *j) {
  if (!j) return;
  pthread_mutex_lock(&pool.mu);
  if (j->queued) { /* not started: out of the queue, the pool's reference too */
    struct lc_offload **p = &pool.head, *prev = NULL;
    while (*p != j) prev = *p, p = &(*p)->next;
    *p = j->next;
    if (pool.tail == j) pool.tail = prev;
    j->queued = 0;
    pool.queued--;
    j->pooled = 0;
  }
  j->submitter = 0;
  int last = !j->pooled;
  pthread_mutex_unlock(&pool.mu);
  if (last) job_free(j);
}

void lc_offload_test_hold(int on) {
  pthread_mutex_lock(&pool.mu);
  pool.hold = on;
  pthread_cond_broadcast(&pool.cv);
  pthread_mutex_unlock(&pool.mu);
}
