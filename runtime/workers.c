/* workers.c: worker threads and their process-wide meeting points. */
#include "workers.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "lc.h"

#define MAX_SLOTS 64

struct slot {
  char name[64];
  double value;
  int used;
  int arrivals; /* contributions in the current round */
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_barrier_t barrier;
static int barrier_ready;
static struct slot slots[MAX_SLOTS];
static _Thread_local int my_id = 1;
static int n_workers = 1;

struct start {
  lc_worker_fn fn;
  void *ud;
  int id, count, rc;
  pthread_t th;
};

static void *thread_main(void *p) {
  struct start *s = p;
  my_id = s->id;
  s->rc = s->fn(s->id, s->count, s->ud);
  return NULL;
}

int lc_workers_run(int count, lc_worker_fn fn, void *ud) {
  if (count < 1) count = 1;
  n_workers = count;
  memset(slots, 0, sizeof slots);
  if (pthread_barrier_init(&barrier, NULL, (unsigned)count) != 0) return 1;
  barrier_ready = 1;
  int rc = 0;
  if (count == 1) {
    my_id = 1;
    rc = fn(1, 1, ud);
  } else {
    struct start *st = lc_calloc((size_t)count, sizeof *st);
    if (!st) return 1;
    int started = 0;
    for (int i = 0; i < count; i++) {
      st[i] = (struct start){.fn = fn, .ud = ud, .id = i + 1, .count = count};
      if (pthread_create(&st[i].th, NULL, thread_main, &st[i]) != 0) {
        fprintf(stderr, "luact: cannot start worker %d\n", i + 1);
        rc = 1;
        break;
      }
      started++;
    }
    for (int i = 0; i < started; i++) {
      pthread_join(st[i].th, NULL);
      if (!rc && st[i].rc) rc = st[i].rc;
    }
    lc_free(st);
  }
  barrier_ready = 0;
  pthread_barrier_destroy(&barrier);
  n_workers = 1;
  return rc;
}

int lc_worker_id(void) { return my_id; }
int lc_worker_count(void) { return n_workers; }

void lc_worker_barrier(void) {
  if (barrier_ready && n_workers > 1) pthread_barrier_wait(&barrier);
}

double lc_worker_reduce(const char *name, double value, int is_max) {
  if (n_workers <= 1) return value;
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
  if (s) {
    if (s->arrivals == 0 || s->arrivals == n_workers) {
      s->arrivals = 0;
      s->value = is_max ? value : 0;
    }
    if (is_max) s->value = value > s->value ? value : s->value;
    else s->value += value;
    s->arrivals++;
  }
  pthread_mutex_unlock(&mu);
  lc_worker_barrier();
  pthread_mutex_lock(&mu);
  double r = s ? s->value : value;
  pthread_mutex_unlock(&mu);
  lc_worker_barrier();
  return r;
}
