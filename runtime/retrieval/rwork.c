/* rwork.c: a collection's thread and its queue of jobs (rwork.h). */
#include "rwork.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "lc.h"

enum { NEW, QUEUED, RUNNING, DONE };

struct lc_rjob {
  struct lc_rwork *w; /* holds a reference */
  struct lc_rjob *next;
  lc_rjob_fn fn;
  void (*free_arg)(void *);
  void *arg;
  int efd;
  /* under w->mu */
  int state, dropped;
  int refs; /* submitter + queue/thread */
};

struct lc_rwork {
  struct lc_rstore *s; /* the thread's while a job runs, else the owner's */
  atomic_size_t dims;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  pthread_t th;
  /* under mu */
  int started, closing;
  int refs;       /* owner + thread + jobs */
  size_t pending; /* queued + running */
  struct lc_rjob *head, *tail;
};

static void work_free(struct lc_rwork *w) {
  lc_rstore_close(w->s);
  pthread_mutex_destroy(&w->mu);
  pthread_cond_destroy(&w->cv);
  lc_free(w);
}

/* mu held; 1 when that was the last reference (the caller frees). */
static int work_unref_locked(struct lc_rwork *w) { return --w->refs == 0; }

static int job_unref_locked(struct lc_rjob *j) {
  if (--j->refs > 0)
    return 0;
  struct lc_rwork *w = j->w;
  if (j->free_arg)
    j->free_arg(j->arg);
  if (j->efd >= 0)
    close(j->efd);
  lc_free(j);
  return work_unref_locked(w);
}

/* mu held: j leaves the queue or the thread; its waiter is told. */
static void job_done_locked(struct lc_rjob *j) {
  j->state = DONE;
  j->w->pending--;
  uint64_t one = 1;
  /* An eventfd write does not block here; EINTR is retried so the waiter
   * is never left waiting. */
  while (write(j->efd, &one, sizeof one) < 0 && errno == EINTR) {
  }
}

static void *work_main(void *p) {
  struct lc_rwork *w = p;
  pthread_mutex_lock(&w->mu);
  for (;;) {
    while (!w->head && !w->closing)
      pthread_cond_wait(&w->cv, &w->mu);
    struct lc_rjob *j = w->head;
    if (!j)
      break; /* closing and nothing queued */
    w->head = j->next;
    if (!w->head)
      w->tail = NULL;
    j->state = RUNNING;
    pthread_mutex_unlock(&w->mu);
    if (j->fn) {
      j->fn(w->s, j->arg);
      if (w->s)
        atomic_store(&w->dims, lc_rstore_dims(w->s));
    } else {
      lc_rstore_close(w->s); /* a close job; the jobs after it get NULL */
      w->s = NULL;
    }
    pthread_mutex_lock(&w->mu);
    if (w->closing && !w->head) {
      /* Closed while this job ran (the thread was detached). Let go of
       * the store before the job is done, so that when its submitter
       * still holds it, the submitter's thread frees everything once it
       * has read the result, not this one at some later moment. */
      work_unref_locked(w); /* never the last: j holds one */
      job_done_locked(j);
      int last = job_unref_locked(j);
      pthread_mutex_unlock(&w->mu);
      if (last)
        work_free(w);
      return NULL;
    }
    job_done_locked(j);
    job_unref_locked(j); /* the queue's; never w's last (ours is held) */
  }
  int last = work_unref_locked(w);
  pthread_mutex_unlock(&w->mu);
  if (last)
    work_free(w);
  return NULL;
}

int lc_rwork_new(struct lc_rstore *s, struct lc_rwork **out) {
  *out = NULL;
  struct lc_rwork *w = lc_calloc(1, sizeof *w);
  if (!w) {
    lc_rstore_close(s);
    return LC_ENOMEM;
  }
  if (pthread_mutex_init(&w->mu, NULL)) {
    lc_free(w);
    lc_rstore_close(s);
    return LC_ENOMEM;
  }
  if (pthread_cond_init(&w->cv, NULL)) {
    pthread_mutex_destroy(&w->mu);
    lc_free(w);
    lc_rstore_close(s);
    return LC_ENOMEM;
  }
  w->s = s;
  atomic_init(&w->dims, s ? lc_rstore_dims(s) : 0);
  w->refs = 1;
  *out = w;
  return 0;
}

void lc_rwork_close(struct lc_rwork *w) {
  if (!w)
    return;
  pthread_mutex_lock(&w->mu);
  w->closing = 1;
  for (struct lc_rjob *j; (j = w->head);) {
    w->head = j->next;
    j->dropped = 1;
    job_done_locked(j);
    job_unref_locked(j); /* the queue's; never w's last (ours) */
  }
  w->tail = NULL;
  int running = w->pending > 0, started = w->started;
  pthread_cond_broadcast(&w->cv);
  pthread_mutex_unlock(&w->mu);
  if (started) {
    /* An idle thread exits at once; a running job is never waited for. */
    if (running)
      pthread_detach(w->th);
    else
      pthread_join(w->th, NULL);
  }
  pthread_mutex_lock(&w->mu);
  int last = work_unref_locked(w);
  pthread_mutex_unlock(&w->mu);
  if (last)
    work_free(w);
}

int lc_rwork_idle(struct lc_rwork *w) {
  pthread_mutex_lock(&w->mu);
  int idle = w->pending == 0;
  pthread_mutex_unlock(&w->mu);
  return idle;
}

struct lc_rstore *lc_rwork_store(struct lc_rwork *w) {
  return w->s;
}

void lc_rwork_adopt(struct lc_rwork *w, struct lc_rstore *s) {
  pthread_mutex_lock(&w->mu);
  w->s = s;
  atomic_store(&w->dims, lc_rstore_dims(s));
  pthread_mutex_unlock(&w->mu);
}

size_t lc_rwork_dims(struct lc_rwork *w) { return atomic_load(&w->dims); }

void lc_rwork_inline(struct lc_rwork *w, lc_rjob_fn fn, void *arg) {
  fn(w->s, arg);
  if (w->s)
    atomic_store(&w->dims, lc_rstore_dims(w->s));
}

int lc_rwork_submit(struct lc_rwork *w, lc_rjob_fn fn, void (*free_arg)(void *),
                    void *arg, struct lc_rjob **job, int *fd) {
  *job = NULL;
  struct lc_rjob *j = lc_calloc(1, sizeof *j);
  int efd = j ? eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK) : -1;
  if (!j || efd < 0) {
    lc_free(j);
    if (free_arg)
      free_arg(arg);
    return LC_ENOMEM;
  }
  j->w = w;
  j->fn = fn;
  j->free_arg = free_arg;
  j->arg = arg;
  j->efd = efd;
  j->state = NEW;
  j->refs = 1; /* the submitter's; the queue's comes with lc_rwork_start */
  pthread_mutex_lock(&w->mu);
  w->refs++; /* the job's */
  pthread_mutex_unlock(&w->mu);
  *job = j;
  *fd = efd;
  return 0;
}

int lc_rwork_start(struct lc_rjob *j) {
  struct lc_rwork *w = j->w;
  pthread_mutex_lock(&w->mu);
  int rc = w->closing ? LC_ESTATE : j->state != NEW ? LC_EINVAL : 0;
  if (!rc && !w->started) {
    w->refs++; /* the thread's */
    /* Every signal blocked on the thread: one meant for the loop (its
     * signalfd, Ctrl-C) must not be delivered here. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int cr = pthread_create(&w->th, NULL, work_main, w);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (cr) {
      w->refs--;
      rc = LC_ENOMEM;
    } else {
      w->started = 1;
    }
  }
  if (!rc) {
    j->state = QUEUED;
    j->refs++; /* the queue's */
    w->pending++;
    if (w->tail)
      w->tail->next = j;
    else
      w->head = j;
    w->tail = j;
    pthread_cond_broadcast(&w->cv);
  }
  pthread_mutex_unlock(&w->mu);
  return rc;
}

int lc_rwork_done(struct lc_rjob *j) {
  pthread_mutex_lock(&j->w->mu);
  int d = j->state == DONE;
  pthread_mutex_unlock(&j->w->mu);
  return d;
}

int lc_rwork_dropped(struct lc_rjob *j) {
  pthread_mutex_lock(&j->w->mu);
  int d = j->dropped;
  pthread_mutex_unlock(&j->w->mu);
  return d;
}

void *lc_rwork_arg(struct lc_rjob *j) { return j->arg; }

void lc_rwork_cancel(struct lc_rjob *j) {
  struct lc_rwork *w = j->w;
  pthread_mutex_lock(&w->mu);
  if (j->state == QUEUED) {
    struct lc_rjob **pp = &w->head, *prev = NULL;
    while (*pp && *pp != j) {
      prev = *pp;
      pp = &(*pp)->next;
    }
    if (*pp) {
      *pp = j->next;
      if (w->tail == j)
        w->tail = prev;
    }
    j->dropped = 1;
    job_done_locked(j);
    job_unref_locked(j); /* the queue's; the submitter still holds one */
  }
  pthread_mutex_unlock(&w->mu);
}

void lc_rwork_release(struct lc_rjob *j) {
  if (!j)
    return;
  struct lc_rwork *w = j->w;
  lc_rwork_cancel(j);
  pthread_mutex_lock(&w->mu);
  int last = job_unref_locked(j);
  pthread_mutex_unlock(&w->mu);
  if (last)
    work_free(w);
}
