/* loop.c: epoll + timer heap + curl_multi socket interface, one per thread.
 * The only file that includes the poller headers. */
#include "loop.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <string.h>
#include <pthread.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "lc.h"

/* epoll data is fd | kind << 32, never a pointer: a socket that libcurl
 * closes while a batch of events is being dispatched leaves no dangling
 * pointer behind (curl's ephiperfifo.c does the same with data.fd). */
#define KIND_WATCH 1ull
#define KIND_SIGNAL 0x7fffffffull /* the loop's signalfd (lc_loop_signal_watch) */
#define KIND_CURL0 2ull /* + shard index */

/* libcurl (7.88) looks for a reusable connection by walking every
 * connection it holds to the host, so one multi handle serving ten thousand
 * transfers spends most of its time in that walk. The loop therefore
 * spreads transfers over shards of at most SHARD_TARGET live transfers,
 * each its own multi handle with its own connection cache and timer. */
#define SHARD_TARGET 256
#define MAX_SHARDS 4096

struct shard {
  struct lc_loop *loop;
  CURLM *multi;
  struct lc_timer timer;
  long transfers;
  unsigned index;
  int timer_oom; /* curl_timer_cb could not arm the timer: out of memory */
};

struct easyctx {
  lc_easy_done_fn done;
  void *ud;
  struct shard *shard;
};

struct heap_entry {
  double due_ms;
  struct lc_timer *t;
};

/* What the loop knows of one of libcurl's sockets, by fd. A connection's
 * socket stays in the epoll set after libcurl says CURL_POLL_REMOVE at
 * the end of a transfer ("parked"): its next transfer asks for the same
 * events, and an idle keep-alive connection between two model calls
 * otherwise costs an EPOLL_CTL_DEL and an EPOLL_CTL_ADD per call. Only
 * sockets opened and closed through our callbacks are parked: they are
 * the ones whose number cannot be reused behind our back (the close
 * callback takes the socket out of the set and forgets it). A parked
 * socket that reports an event (the server closed it) is taken out then,
 * so level-triggered epoll cannot spin on it. */
enum { CS_NONE, CS_ACTIVE, CS_PARKED };
struct csock {
  uint32_t events;
  uint16_t shard;
  uint8_t ours; /* opened by open_socket_cb */
  uint8_t state;
};

struct lc_loop {
  int epfd;
  struct shard **shards;
  size_t nshards;
  struct heap_entry *heap;
  size_t nheap, capheap;
  long curl_timers; /* shard timers armed (not counted as user timers) */
  long transfers;
  long watchers;
  long curl_socks; /* curl sockets in the epoll set */
  struct lc_fdwatch **watch_by_fd;
  size_t nwatch_by_fd;
  struct csock *csocks; /* by fd */
  size_t ncsocks;
  long events; /* epoll events dispatched, for lc_loop_events */
  struct lc_sigwatch *sigw; /* at most one; not counted as pending */
};

/* ---- timer heap ----
 * Each entry carries its deadline next to the pointer: with tens of
 * thousands of timers (one idle timer per transfer, one per run) a
 * comparison that followed the pointer missed the cache at every level.
 * Entries move into a hole instead of being swapped. */

static void heap_put(struct lc_loop *l, size_t i, struct heap_entry e) {
  l->heap[i] = e;
  e.t->heap_idx = i;
}

static void heap_up(struct lc_loop *l, size_t i) {
  struct heap_entry e = l->heap[i];
  while (i > 0) {
    size_t p = (i - 1) / 2;
    if (l->heap[p].due_ms <= e.due_ms) break;
    heap_put(l, i, l->heap[p]);
    i = p;
  }
  heap_put(l, i, e);
}

static void heap_down(struct lc_loop *l, size_t i) {
  struct heap_entry e = l->heap[i];
  for (;;) {
    size_t a = 2 * i + 1, m = a;
    if (a >= l->nheap) break;
    if (a + 1 < l->nheap && l->heap[a + 1].due_ms < l->heap[a].due_ms) m = a + 1;
    if (e.due_ms <= l->heap[m].due_ms) break;
    heap_put(l, i, l->heap[m]);
    i = m;
  }
  heap_put(l, i, e);
}

void lc_timer_init(struct lc_timer *t, lc_timer_fn cb, void *ud) {
  t->due_ms = 0;
  t->heap_idx = SIZE_MAX;
  t->cb = cb;
  t->ud = ud;
}

int lc_timer_active(const struct lc_timer *t) { return t->heap_idx != SIZE_MAX; }

void lc_timer_stop(struct lc_loop *l, struct lc_timer *t) {
  size_t i = t->heap_idx;
  if (i == SIZE_MAX) return;
  l->nheap--;
  if (i != l->nheap) {
    heap_put(l, i, l->heap[l->nheap]);
    heap_down(l, i);
    heap_up(l, i);
  }
  t->heap_idx = SIZE_MAX;
}

int lc_timer_start(struct lc_loop *l, struct lc_timer *t, double ms) {
  lc_timer_stop(l, t);
  if (l->nheap == l->capheap) {
    size_t cap = l->capheap ? l->capheap * 2 : 64;
    struct heap_entry *h = lc_realloc(l->heap, cap * sizeof *h);
    if (!h) return LC_ENOMEM;
    l->heap = h;
    l->capheap = cap;
  }
  t->due_ms = lc_now_ms() + (ms > 0 ? ms : 0);
  l->heap[l->nheap] = (struct heap_entry){t->due_ms, t};
  heap_up(l, l->nheap++);
  return 0;
}

/* ---- curl glue ---- */

static void check_multi_info(struct shard *sh) {
  struct lc_loop *l = sh->loop;
  CURLMsg *m;
  int left;
  while ((m = curl_multi_info_read(sh->multi, &left))) {
    if (m->msg != CURLMSG_DONE) continue;
    CURL *e = m->easy_handle;
    CURLcode res = m->data.result;
    struct easyctx *ec = NULL;
    curl_easy_getinfo(e, CURLINFO_PRIVATE, (char **)&ec);
    curl_multi_remove_handle(sh->multi, e);
    sh->transfers--;
    l->transfers--;
    curl_easy_setopt(e, CURLOPT_PRIVATE, NULL);
    if (ec) {
      lc_easy_done_fn done = ec->done;
      void *ud = ec->ud;
      lc_free(ec);
      done(ud, e, res); /* may free e, start new transfers */
    }
  }
}

static struct csock *csock_get(struct lc_loop *l, curl_socket_t s) {
  if (s < 0) return NULL;
  size_t fd = (size_t)s;
  if (fd >= l->ncsocks) {
    size_t n = l->ncsocks ? l->ncsocks : 64;
    while (n <= fd) n *= 2;
    struct csock *v = lc_realloc(l->csocks, n * sizeof *v);
    if (!v) return NULL;
    memset(v + l->ncsocks, 0, (n - l->ncsocks) * sizeof *v);
    l->csocks = v;
    l->ncsocks = n;
  }
  return &l->csocks[fd];
}

/* CURLOPT_OPENSOCKETFUNCTION / CURLOPT_CLOSESOCKETFUNCTION: mark the
 * sockets that may be parked (see struct csock). Close-on-exec as well, so
 * a model connection never leaks into a child process. */
static curl_socket_t open_socket_cb(void *clientp, curlsocktype purpose,
                                    struct curl_sockaddr *a) {
  (void)purpose;
  int fd = socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
  if (fd < 0) return CURL_SOCKET_BAD;
  struct csock *c = csock_get(clientp, fd);
  if (c) *c = (struct csock){.ours = 1};
  return fd;
}

static int close_socket_cb(void *clientp, curl_socket_t s) {
  struct lc_loop *l = clientp;
  if (s >= 0 && (size_t)s < l->ncsocks) {
    /* Out of the set before the close: a forked child (the PAL sandbox)
     * may hold the same file open, and then closing our descriptor would
     * leave it registered. */
    if (l->csocks[s].state != CS_NONE) epoll_ctl(l->epfd, EPOLL_CTL_DEL, s, NULL);
    l->csocks[s] = (struct csock){0};
  }
  return close(s);
}

/* CURLMOPT_SOCKETFUNCTION: called by libcurl from socket_action. sockp is
 * a non-NULL marker while libcurl watches the socket. */
static int curl_socket_cb(CURL *e, curl_socket_t s, int what, void *userp, void *sockp) {
  static char added;
  (void)e;
  struct shard *sh = userp;
  struct lc_loop *l = sh->loop;
  if (what == CURL_POLL_REMOVE) {
    if (sockp) {
      struct csock *c = (size_t)s < l->ncsocks ? &l->csocks[s] : NULL;
      if (c && c->ours && c->state == CS_ACTIVE) {
        c->state = CS_PARKED;
      } else {
        epoll_ctl(l->epfd, EPOLL_CTL_DEL, s, NULL);
        if (c) c->state = CS_NONE;
      }
      curl_multi_assign(sh->multi, s, NULL);
      l->curl_socks--;
    }
    return 0;
  }
  struct csock *c = csock_get(l, s);
  if (!c) return -1;
  struct epoll_event ev = {0};
  if (what & CURL_POLL_IN) ev.events |= EPOLLIN;
  if (what & CURL_POLL_OUT) ev.events |= EPOLLOUT;
  ev.data.u64 = (uint64_t)(uint32_t)s | ((KIND_CURL0 + sh->index) << 32);
  if (c->state == CS_NONE) {
    if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, s, &ev) < 0) return -1;
  } else if (c->events != ev.events || c->shard != sh->index) {
    if (epoll_ctl(l->epfd, EPOLL_CTL_MOD, s, &ev) < 0) return -1;
  }
  c->state = CS_ACTIVE;
  c->events = ev.events;
  c->shard = (uint16_t)sh->index;
  if (!sockp) {
    curl_multi_assign(sh->multi, s, &added);
    l->curl_socks++;
  }
  return 0;
}

/* CURLMOPT_TIMERFUNCTION: never call socket_action from here; arm our timer
 * (0 ms means "next pass"). */
static int curl_timer_cb(CURLM *m, long timeout_ms, void *userp) {
  struct shard *sh = userp;
  struct lc_loop *l = sh->loop;
  int was = lc_timer_active(&sh->timer);
  if (timeout_ms < 0) lc_timer_stop(l, &sh->timer);
  else if (lc_timer_start(l, &sh->timer, (double)timeout_ms) < 0) {
    sh->timer_oom = 1;
    return -1;
  }
  l->curl_timers += lc_timer_active(&sh->timer) - was;
  return 0;
}

static void on_curl_timer(struct lc_loop *l, struct lc_timer *t) {
  struct shard *sh = t->ud;
  l->curl_timers--; /* it fired: no longer armed */
  int running;
  curl_multi_socket_action(sh->multi, CURL_SOCKET_TIMEOUT, 0, &running);
  check_multi_info(sh);
}

static struct shard *shard_new(struct lc_loop *l) {
  if (l->nshards >= MAX_SHARDS) return NULL;
  struct shard **v = lc_realloc(l->shards, (l->nshards + 1) * sizeof *v);
  if (!v) return NULL;
  l->shards = v;
  struct shard *sh = lc_calloc(1, sizeof *sh);
  if (!sh) return NULL;
  if (!(sh->multi = curl_multi_init())) {
    lc_free(sh);
    return NULL;
  }
  sh->loop = l;
  sh->index = (unsigned)l->nshards;
  lc_timer_init(&sh->timer, on_curl_timer, sh);
  curl_multi_setopt(sh->multi, CURLMOPT_SOCKETFUNCTION, curl_socket_cb);
  curl_multi_setopt(sh->multi, CURLMOPT_SOCKETDATA, sh);
  curl_multi_setopt(sh->multi, CURLMOPT_TIMERFUNCTION, curl_timer_cb);
  curl_multi_setopt(sh->multi, CURLMOPT_TIMERDATA, sh);
  /* Keep-alive must survive a whole round of agents going back to the
   * model: never let the cache close idle connections we will reuse. */
  curl_multi_setopt(sh->multi, CURLMOPT_MAXCONNECTS, 65536L);
  l->shards[l->nshards++] = sh;
  return sh;
}

/* The shard for a new transfer: the first with room, so a lightly loaded
 * loop uses one multi handle (and one connection cache) as before. */
static struct shard *pick_shard(struct lc_loop *l) {
  for (size_t i = 0; i < l->nshards; i++)
    if (l->shards[i]->transfers < SHARD_TARGET) return l->shards[i];
  struct shard *sh = shard_new(l);
  if (sh) return sh;
  /* At the shard limit: the least loaded one. */
  struct shard *best = l->nshards ? l->shards[0] : NULL;
  for (size_t i = 1; i < l->nshards; i++)
    if (l->shards[i]->transfers < best->transfers) best = l->shards[i];
  return best;
}

int lc_loop_new(struct lc_loop **out) {
  struct lc_loop *l = lc_calloc(1, sizeof *l);
  if (!l) return LC_ENOMEM;
  l->epfd = epoll_create1(EPOLL_CLOEXEC);
  /* No multi handle yet: the first transfer makes one (pick_shard), so a
   * loop that never transfers never loads libcurl (core/curl_dl.c). */
  if (l->epfd < 0) {
    lc_free(l);
    return LC_EIO;
  }
  *out = l;
  return 0;
}

void lc_loop_free(struct lc_loop *l) {
  if (!l) return;
  if (l->sigw) lc_loop_signal_unwatch(l, l->sigw);
  for (size_t i = 0; i < l->nshards; i++) {
    struct shard *sh = l->shards[i];
    lc_timer_stop(l, &sh->timer);
    curl_multi_cleanup(sh->multi); /* fires POLL_REMOVE for cached sockets */
    lc_free(sh);
  }
  lc_free(l->shards);
  close(l->epfd);
  lc_free(l->watch_by_fd);
  lc_free(l->csocks);
  lc_free(l->heap);
  lc_free(l);
}

int lc_loop_watch(struct lc_loop *l, struct lc_fdwatch *w) {
  if (w->fd < 0) return LC_EINVAL;
  size_t fd = (size_t)w->fd;
  if (fd >= l->nwatch_by_fd) {
    size_t n = l->nwatch_by_fd ? l->nwatch_by_fd : 64;
    while (n <= fd) n *= 2;
    struct lc_fdwatch **t = lc_realloc(l->watch_by_fd, n * sizeof *t);
    if (!t) return LC_ENOMEM;
    memset(t + l->nwatch_by_fd, 0, (n - l->nwatch_by_fd) * sizeof *t);
    l->watch_by_fd = t;
    l->nwatch_by_fd = n;
  }
  if (l->watch_by_fd[fd]) return LC_ESTATE;
  struct epoll_event ev = {0};
  if (w->events & LC_READ) ev.events |= EPOLLIN;
  if (w->events & LC_WRITE) ev.events |= EPOLLOUT;
  ev.data.u64 = (uint64_t)(uint32_t)w->fd | (KIND_WATCH << 32);
  if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, w->fd, &ev) < 0) return LC_EIO;
  l->watch_by_fd[fd] = w;
  l->watchers++;
  return 0;
}

void lc_loop_unwatch(struct lc_loop *l, struct lc_fdwatch *w) {
  size_t fd = (size_t)w->fd;
  if (fd >= l->nwatch_by_fd || l->watch_by_fd[fd] != w) return;
  epoll_ctl(l->epfd, EPOLL_CTL_DEL, w->fd, NULL);
  l->watch_by_fd[fd] = NULL;
  l->watchers--;
}

int lc_loop_add_easy(struct lc_loop *l, CURL *e, lc_easy_done_fn done, void *ud) {
  struct easyctx *ec = lc_malloc(sizeof *ec);
  if (!ec) return LC_ENOMEM;
  ec->done = done;
  ec->ud = ud;
  ec->shard = pick_shard(l);
  curl_easy_setopt(e, CURLOPT_PRIVATE, ec);
  curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, open_socket_cb);
  curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, l);
  curl_easy_setopt(e, CURLOPT_CLOSESOCKETFUNCTION, close_socket_cb);
  curl_easy_setopt(e, CURLOPT_CLOSESOCKETDATA, l);
  /* A shard is only missing when making one ran out of memory (at the
   * shard limit pick_shard shares one): say so, not "I/O error". */
  if (ec->shard) ec->shard->timer_oom = 0;
  CURLMcode mc = ec->shard ? curl_multi_add_handle(ec->shard->multi, e) : CURLM_OUT_OF_MEMORY;
  if (mc != CURLM_OK) {
    int oom = mc == CURLM_OUT_OF_MEMORY || (ec->shard && ec->shard->timer_oom);
    /* A callback's failure (the timer's) comes after curl has added the
     * handle: take it out, or the next add of this easy handle (a retry,
     * or the pool's next transfer) is refused as already added. */
    if (ec->shard && mc == CURLM_ABORTED_BY_CALLBACK) curl_multi_remove_handle(ec->shard->multi, e);
    curl_easy_setopt(e, CURLOPT_PRIVATE, NULL);
    lc_free(ec);
    return oom ? LC_ENOMEM : LC_EIO;
  }
  ec->shard->transfers++;
  l->transfers++;
  return 0;
}

void lc_loop_remove_easy(struct lc_loop *l, CURL *e) {
  struct easyctx *ec = NULL;
  curl_easy_getinfo(e, CURLINFO_PRIVATE, (char **)&ec);
  if (!ec) return; /* not added, or already completed */
  curl_multi_remove_handle(ec->shard->multi, e);
  curl_easy_setopt(e, CURLOPT_PRIVATE, NULL);
  ec->shard->transfers--;
  lc_free(ec);
  l->transfers--;
}

static void run_timers(struct lc_loop *l) {
  double now = lc_now_ms();
  /* Only timers due now; a timer re-armed with 0 ms from a callback waits
   * for the next pass so one pass cannot spin forever. */
  size_t budget = l->nheap;
  while (l->nheap && l->heap[0].due_ms <= now && budget--) {
    struct lc_timer *t = l->heap[0].t;
    lc_timer_stop(l, t);
    t->cb(l, t);
  }
}

/* ---- signals as events ---- */

int lc_signal_block(int sig, int on) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, sig);
  return pthread_sigmask(on ? SIG_BLOCK : SIG_UNBLOCK, &set, NULL) ? LC_EIO : 0;
}

int lc_loop_signal_watch(struct lc_loop *l, struct lc_sigwatch *w) {
  if (l->sigw) return LC_ESTATE;
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, w->sig);
  w->fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
  if (w->fd < 0) return LC_EIO;
  struct epoll_event ev = {0};
  ev.events = EPOLLIN;
  ev.data.u64 = (uint64_t)(uint32_t)w->fd | (KIND_SIGNAL << 32);
  if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, w->fd, &ev) < 0) {
    close(w->fd);
    w->fd = -1;
    return LC_EIO;
  }
  l->sigw = w;
  return 0;
}

void lc_loop_signal_unwatch(struct lc_loop *l, struct lc_sigwatch *w) {
  if (l->sigw != w) return;
  epoll_ctl(l->epfd, EPOLL_CTL_DEL, w->fd, NULL);
  close(w->fd);
  w->fd = -1;
  l->sigw = NULL;
}

/* The signalfd is readable: one callback per signal taken from it. The
 * callback may unwatch (then the rest stays pending). */
static void read_signals(struct lc_loop *l) {
  struct signalfd_siginfo si;
  while (l->sigw && read(l->sigw->fd, &si, sizeof si) == (ssize_t)sizeof si)
    l->sigw->cb(l, l->sigw);
}

long lc_loop_run_once(struct lc_loop *l, double max_wait_ms) {
  int timeout = -1;
  if (l->nheap) {
    double d = l->heap[0].due_ms - lc_now_ms();
    /* A far timer (a sleep of weeks) waits at most INT_MAX ms per call:
     * the cast of a larger value is undefined (it came out negative:
     * "wait forever", or no wait at all). */
    timeout = d <= 0 ? 0 : d >= INT_MAX ? INT_MAX : (int)ceil(d);
  }
  if (max_wait_ms >= 0 && (timeout < 0 || max_wait_ms < timeout))
    timeout = max_wait_ms >= INT_MAX ? INT_MAX : (int)ceil(max_wait_ms);
  if (timeout < 0 && !l->transfers && !l->watchers) return lc_loop_pending(l);

  struct epoll_event evs[256];
  /* A zero wait with no descriptor in the set cannot report anything:
   * skip the system call (between model calls an agent's steps run many
   * zero-time passes). */
  int n = 0;
  if (timeout != 0 || l->curl_socks || l->watchers || l->sigw) n = epoll_wait(l->epfd, evs, 256, timeout);
  if (n < 0 && errno != EINTR) n = 0;
  for (int i = 0; i < n; i++) {
    uint64_t data = evs[i].data.u64;
    int fd = (int)(uint32_t)data;
    unsigned ev = evs[i].events;
    uint64_t kind = data >> 32;
    l->events++;
    if (kind == KIND_SIGNAL) {
      read_signals(l);
      continue;
    }
    if (kind >= KIND_CURL0 && kind - KIND_CURL0 < l->nshards) {
      if ((size_t)fd < l->ncsocks && l->csocks[fd].state == CS_PARKED) {
        /* Nobody waits on it: the server closed it, or sent what nobody
         * asked for. libcurl finds out when it next tries to reuse it. */
        epoll_ctl(l->epfd, EPOLL_CTL_DEL, fd, NULL);
        l->csocks[fd].state = CS_NONE;
        continue;
      }
      struct shard *sh = l->shards[kind - KIND_CURL0];
      int flags = 0, running;
      if (ev & EPOLLIN) flags |= CURL_CSELECT_IN;
      if (ev & EPOLLOUT) flags |= CURL_CSELECT_OUT;
      if (ev & (EPOLLERR | EPOLLHUP)) flags |= CURL_CSELECT_ERR;
      curl_multi_socket_action(sh->multi, fd, flags, &running);
      check_multi_info(sh);
    } else if ((size_t)fd < l->nwatch_by_fd && l->watch_by_fd[fd]) {
      struct lc_fdwatch *w = l->watch_by_fd[fd];
      unsigned e = 0;
      if (ev & (EPOLLIN | EPOLLHUP | EPOLLERR)) e |= LC_READ;
      if (ev & EPOLLOUT) e |= LC_WRITE;
      w->cb(l, w, e);
    }
  }
  run_timers(l);
  return lc_loop_pending(l);
}

long lc_loop_transfers(const struct lc_loop *l) { return l->transfers; }

long lc_loop_events(const struct lc_loop *l) { return l->events; }

long lc_loop_timers(const struct lc_loop *l) { return (long)l->nheap - l->curl_timers; }

long lc_loop_pending(const struct lc_loop *l) {
  return l->transfers + lc_loop_timers(l) + l->watchers;
}


