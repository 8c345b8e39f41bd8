/* loop.h: one event loop per worker thread: fds (epoll), timers (min-heap),
 * and the curl multi handle driven by its socket and timer callbacks.
 *
 * Ownership: the loop owns the multi handle; timers and fd watchers are
 * caller-owned structs that must stay alive while active. A transfer added
 * with lc_loop_add_easy stays owned by its caller; the loop only reports its
 * completion (once) and never frees it.
 *
 * Callbacks run from lc_loop_run_once, never from inside a libcurl callback,
 * so a completion callback may remove handles and start new transfers. */
#ifndef LC_LOOP_H
#define LC_LOOP_H

#include <curl/curl.h>
#include <stddef.h>

struct lc_loop;
struct lc_timer;

typedef void (*lc_timer_fn)(struct lc_loop *loop, struct lc_timer *t);

struct lc_timer {
  double due_ms;   /* monotonic ms */
  size_t heap_idx; /* position in the heap, SIZE_MAX when inactive */
  lc_timer_fn cb;
  void *ud;
};

/* Completion of a transfer added with lc_loop_add_easy. */
typedef void (*lc_easy_done_fn)(void *ud, CURL *easy, CURLcode result);

struct lc_fdwatch;
typedef void (*lc_fd_fn)(struct lc_loop *loop, struct lc_fdwatch *w, unsigned events);
struct lc_fdwatch {
  int fd;
  unsigned events; /* LC_READ | LC_WRITE */
  lc_fd_fn cb;
  void *ud;
};
#define LC_READ 1u
#define LC_WRITE 2u

int lc_loop_new(struct lc_loop **out);
/* Frees the loop. Every transfer must have been removed and every timer
 * stopped; debug builds assert it. */
void lc_loop_free(struct lc_loop *loop);

void lc_timer_init(struct lc_timer *t, lc_timer_fn cb, void *ud);
/* (Re)arms t to fire after ms milliseconds (0 = next pass). */
int lc_timer_start(struct lc_loop *loop, struct lc_timer *t, double ms);
void lc_timer_stop(struct lc_loop *loop, struct lc_timer *t);
int lc_timer_active(const struct lc_timer *t);

int lc_loop_watch(struct lc_loop *loop, struct lc_fdwatch *w);
void lc_loop_unwatch(struct lc_loop *loop, struct lc_fdwatch *w);

/* Adds a configured easy handle; done runs exactly once when it completes,
 * unless lc_loop_remove_easy is called first (then never). */
int lc_loop_add_easy(struct lc_loop *loop, CURL *easy, lc_easy_done_fn done, void *ud);
void lc_loop_remove_easy(struct lc_loop *loop, CURL *easy);

/* One pass: wait up to max_wait_ms (-1 = until something happens) for fds
 * and timers, dispatch them, then report finished transfers.
 * Returns the number of pending things (transfers + timers + watchers); 0
 * means nothing can ever happen again. */
long lc_loop_run_once(struct lc_loop *loop, double max_wait_ms);
/* Count of live transfers, active timers and fd watchers (leak checks). */
long lc_loop_pending(const struct lc_loop *loop);
long lc_loop_transfers(const struct lc_loop *loop);
/* Poller events dispatched since the loop was made (tests use it to show
 * that an idle socket does not make the loop spin). */
long lc_loop_events(const struct lc_loop *loop);
long lc_loop_timers(const struct lc_loop *loop);

/* Signals as loop events, never handlers: the signal is blocked in every
 * thread (lc_signal_block before any thread starts: threads inherit the
 * mask), and a loop that watches it reads it from a signalfd. cb runs
 * from lc_loop_run_once, once per delivery. One watch per loop; it does
 * not count as pending (a run whose tasks all wait on nothing else still
 * ends as a deadlock). Children inherit the blocked mask: exec'd programs
 * that need the signal must unblock it. */
struct lc_sigwatch;
typedef void (*lc_sig_fn)(struct lc_loop *loop, struct lc_sigwatch *w);
struct lc_sigwatch {
  int sig;
  lc_sig_fn cb;
  void *ud;
  int fd; /* the signalfd, while watched */
};
/* Blocks (on = 1) or unblocks sig in the calling thread. 0 or LC_EIO. */
int lc_signal_block(int sig, int on);
/* 0, LC_ESTATE (the loop watches one already) or LC_EIO. */
int lc_loop_signal_watch(struct lc_loop *loop, struct lc_sigwatch *w);
void lc_loop_signal_unwatch(struct lc_loop *loop, struct lc_sigwatch *w);


#endif
