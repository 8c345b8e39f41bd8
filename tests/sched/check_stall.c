/* check_stall.c: nothing blocks the loop thread. Each case runs a
 * blocking-prone operation beside a ticker task (util_stall.h) and holds
 * the operation open until the ticker has completed its ticks: a loop
 * thread stuck in the operation never lets it finish.
 *
 * Cases: cancelling a transfer while its name is being resolved (curl's
 * threaded resolver used to be joined on cancel: a slow getaddrinfo froze
 * every task of the worker); two concurrent luact.ask (the second read
 * stdin with a blocking fgetc); the journal's fsync of an at-most-once
 * effect (on the loop thread, it froze every task for the disk's time). More cases are added by the owners of the
 * other blocking paths (SQL, sandbox). */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "effect.h"
#include "l_effect.h"
#include "util_common.h"
#include "util_lua.h"
#include "util_mock.h"
#include "util_stall.h"

/* ---- a name server that answers only when released ---- */

struct dns {
  struct lc_stall *s;
  int fd;
  int wake[2]; /* release / stop */
  atomic_int released, stop;
  pthread_t th;
  unsigned char q[8][512];
  ssize_t qlen[8];
  struct sockaddr_in from[8];
  int nq;
};

/* NXDOMAIN for the query in q (the question is echoed). */
static void dns_answer(struct dns *d, unsigned char *q, ssize_t n, struct sockaddr_in *to) {
  if (n < 12) return;
  q[2] = (unsigned char)(0x80 | (q[2] & 0x79)); /* QR, opcode, RD kept */
  q[3] = 0x80 | 3;                             /* RA, NXDOMAIN */
  sendto(d->fd, q, (size_t)n, 0, (struct sockaddr *)to, sizeof *to);
}

static void *dns_main(void *p) {
  struct dns *d = p;
  for (;;) {
    struct pollfd pf[2] = {{d->fd, POLLIN, 0}, {d->wake[0], POLLIN, 0}};
    if (poll(pf, 2, -1) < 0 && errno != EINTR) break;
    if (pf[1].revents) {
      char c;
      if (read(d->wake[0], &c, 1) <= 0 || atomic_load(&d->stop)) break;
      for (int i = 0; i < d->nq; i++) dns_answer(d, d->q[i], d->qlen[i], &d->from[i]);
      d->nq = 0;
    }
    if (pf[0].revents & POLLIN) {
      unsigned char buf[512];
      struct sockaddr_in from;
      socklen_t fl = sizeof from;
      ssize_t n = recvfrom(d->fd, buf, sizeof buf, 0, (struct sockaddr *)&from, &fl);
      if (n <= 0) continue;
      lc_stall_in_flight(d->s); /* the resolver is waiting on us now */
      if (atomic_load(&d->released)) {
        dns_answer(d, buf, n, &from);
      } else if (d->nq < 8) {
        memcpy(d->q[d->nq], buf, (size_t)n);
        d->qlen[d->nq] = n;
        d->from[d->nq++] = from;
      }
    }
  }
  return NULL;
}

static void dns_release(struct lc_stall *s) {
  struct dns *d = s->ud;
  atomic_store(&d->released, 1);
  ck_assert_int_eq(write(d->wake[1], "r", 1), 1);
}

static void write_file(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  ck_assert_ptr_nonnull(f);
  fputs(text, f);
  ck_assert_int_eq(fclose(f), 0);
}

/* This test process (Check's forked child) in its own mount and network
 * namespaces: a loopback of its own, where port 53 is ours, and a
 * resolv.conf and nsswitch.conf that send every lookup to it. Needs root
 * (CAP_SYS_ADMIN), which the test machines have; without it the case
 * fails and says so rather than skipping. */
static void private_resolver(void) {
  const char *fork = getenv("CK_FORK");
  ck_assert_msg(!fork || strcmp(fork, "no") != 0,
                "this case changes its process's namespaces: run it in Check's fork mode");
  ck_assert_msg(unshare(CLONE_NEWNS | CLONE_NEWNET) == 0,
                "unshare(CLONE_NEWNS|CLONE_NEWNET): %s (this case needs root: it runs the "
                "resolver against a name server of its own)", strerror(errno));
  ck_assert_int_eq(mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL), 0);
  int sk = socket(AF_INET, SOCK_DGRAM, 0);
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "lo");
  ck_assert_int_eq(ioctl(sk, SIOCGIFFLAGS, &ifr), 0);
  ifr.ifr_flags |= IFF_UP;
  ck_assert_int_eq(ioctl(sk, SIOCSIFFLAGS, &ifr), 0);
  close(sk);
  char rc[64], ns[64];
  snprintf(rc, sizeof rc, "/tmp/lc_stall_%ld_resolv.conf", (long)getpid());
  snprintf(ns, sizeof ns, "/tmp/lc_stall_%ld_nsswitch.conf", (long)getpid());
  /* Long timeouts: without an answer, getaddrinfo waits minutes. */
  write_file(rc, "nameserver 127.0.0.1\noptions timeout:30 attempts:5\n");
  write_file(ns, "hosts: dns\n");
  ck_assert_msg(mount(rc, "/etc/resolv.conf", NULL, MS_BIND, NULL) == 0, "bind resolv.conf: %s",
                strerror(errno));
  ck_assert_msg(mount(ns, "/etc/nsswitch.conf", NULL, MS_BIND, NULL) == 0,
                "bind nsswitch.conf: %s", strerror(errno));
  unlink(rc); /* the mounts keep them */
  unlink(ns);
}

/* Runs a case whose operation resolves luact-stall.test against a name
 * server that answers (NXDOMAIN) only once the ticker is done. */
static void run_dns_case(const char *name, const char *script, const char *want) {
  private_resolver();
  static struct dns d;
  memset(&d, 0, sizeof d);
  d.fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(53)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ck_assert_int_eq(bind(d.fd, (struct sockaddr *)&a, sizeof a), 0);
  ck_assert_int_eq(pipe2(d.wake, O_CLOEXEC), 0);
  static struct lc_stall s;
  memset(&s, 0, sizeof s);
  s.name = name;
  s.script = script;
  s.release = dns_release;
  s.ud = &d;
  d.s = &s;
  ck_assert_int_eq(pthread_create(&d.th, NULL, dns_main, &d), 0);
  char err[512];
  int rc = lc_stall_run(&s, err, sizeof err);
  ck_assert_msg(rc == 0, "%s", err);
  lc_stall_assert_ok(&s);
  ck_assert_str_eq(s.result, want);
  atomic_store(&d.stop, 1);
  ck_assert_int_eq(write(d.wake[1], "s", 1), 1);
  pthread_join(d.th, NULL);
  close(d.fd);
}

/* A transfer cancelled while its name is being resolved: the cancel must
 * not wait for the resolver thread. */
START_TEST(dns_cancel_does_not_block) {
  run_dns_case("dns cancel",
               "function op() return luact.http.get('http://luact-stall.test:9/') end\n"
               "function after_in_flight(task) luact.kill(task) end\n",
               "nil already waited or killed");
}
END_TEST

/* The same when curl itself gives up: the connect timeout expires while
 * the name is still being resolved. The ticker first waits for that
 * outcome, so the timeout surely fell inside the hold. */
START_TEST(dns_timeout_does_not_block) {
  run_dns_case("dns timeout",
               "function op()\n"
               "  return luact.http.request{url = 'http://luact-stall.test:9/',\n"
               "                            connect_timeout = 0.05}\n"
               "end\n"
               "function after_in_flight(task)\n"
               "  local ok, v, msg, code = luact.wait(task)\n"
               "  assert(ok and v == nil and code == 'timeout', tostring(msg))\n"
               "end\n",
               "nil already waited or killed");
}
END_TEST

/* ---- the journal's fsync ----
 * This binary's fsync: the journal file's syncs are held (or, on the loop
 * thread, reported) while a case runs; everything else goes straight to
 * the system call. */

static struct {
  struct lc_stall *s; /* a case is running */
  char path[256];
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int released;
  int fail;         /* the journal's fsyncs fail with EIO */
  atomic_long done; /* journal fsyncs completed */
} fs = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

static int is_held_file(int fd) {
  char link[64], target[256];
  snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
  ssize_t n = readlink(link, target, sizeof target - 1);
  if (n < 0) return 0;
  target[n] = '\0';
  return strcmp(target, fs.path) == 0;
}

int fsync(int fd) {
  struct lc_stall *s = fs.s;
  if (fs.fail && is_held_file(fd)) {
    errno = EIO;
    return -1;
  }
  if (s && is_held_file(fd)) {
    if (lc_stall_on_loop_thread(s)) {
      lc_stall_blocked_loop(s); /* would have frozen every task */
    } else {
      lc_stall_in_flight(s);
      pthread_mutex_lock(&fs.mu);
      while (!fs.released) pthread_cond_wait(&fs.cv, &fs.mu);
      pthread_mutex_unlock(&fs.mu);
    }
    int rc = (int)syscall(SYS_fsync, fd);
    atomic_fetch_add(&fs.done, 1);
    return rc;
  }
  return (int)syscall(SYS_fsync, fd);
}

static struct lc_journal *fs_journal;

static int l_fsyncs(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)atomic_load(&fs.done));
  return 1;
}

static void fs_setup(struct lc_stall *s, lua_State *L) {
  lc_l_journal_attach(L, fs_journal);
  lua_pushcfunction(L, l_fsyncs);
  lua_setglobal(L, "fsyncs");
  fs.s = s; /* the header's fsync at open is not the case's */
}

static void fs_release(struct lc_stall *s) {
  (void)s;
  pthread_mutex_lock(&fs.mu);
  fs.released = 1;
  pthread_cond_broadcast(&fs.cv);
  pthread_mutex_unlock(&fs.mu);
}

/* An at-most-once effect: its intent is fsynced before it runs and its
 * result before Lua sees it, and while either sync is in progress the
 * loop goes on. */
START_TEST(journal_fsync_does_not_block) {
  char e[512];
  snprintf(fs.path, sizeof fs.path, "/tmp/lc_stall_%ld_journal.jsonl", (long)getpid());
  ck_assert_msg(lc_journal_open(LC_JOURNAL_RECORD, fs.path, NULL, &fs_journal, e, sizeof e) == 0,
                "%s", e);
  static struct lc_stall s;
  memset(&s, 0, sizeof s);
  s.name = "journal fsync";
  s.script =
      "function op()\n"
      "  local r = luact.effect('tool', 'send', {to = 'x'}, 'at_most_once', function()\n"
      "    assert(fsyncs() >= 1, 'the effect ran before its intent was durable')\n"
      "    return 'sent'\n"
      "  end)\n"
      "  assert(fsyncs() >= 2, 'the result reached Lua before it was durable')\n"
      "  return r\n"
      "end\n";
  s.setup = fs_setup;
  s.release = fs_release;
  char err[512];
  int rc = lc_stall_run(&s, err, sizeof err);
  fs.s = NULL;
  ck_assert_msg(rc == 0, "%s", err);
  lc_stall_assert_ok(&s);
  ck_assert_str_eq(s.result, "true sent");
  ck_assert_int_eq(lc_journal_failed(fs_journal), LC_JOURNAL_OK);
  lc_journal_free(fs_journal);
  unlink(fs.path);
}
END_TEST

static void fs_setup_all(struct lc_stall *s, lua_State *L) {
  lc_journal_set_sync(fs_journal, LC_JOURNAL_SYNC_ALL);
  fs_setup(s, L);
}

/* --journal-sync all: pure effects (luact.now and luact.random here; LLM
 * calls and luact.ask alike) have their lines synced by the writer thread
 * and nobody waits for them; they used to fsync on the loop thread. */
START_TEST(journal_sync_all_pure_does_not_block) {
  char e[512];
  snprintf(fs.path, sizeof fs.path, "/tmp/lc_stall_%ld_all.jsonl", (long)getpid());
  ck_assert_msg(lc_journal_open(LC_JOURNAL_RECORD, fs.path, NULL, &fs_journal, e, sizeof e) == 0,
                "%s", e);
  pthread_mutex_lock(&fs.mu);
  fs.released = 0;
  pthread_mutex_unlock(&fs.mu);
  static struct lc_stall s;
  memset(&s, 0, sizeof s);
  s.name = "journal sync all";
  s.script = "function op() return luact.now() > 0, luact.random(3, 3) end\n";
  s.setup = fs_setup_all;
  s.release = fs_release;
  char err[512];
  int rc = lc_stall_run(&s, err, sizeof err);
  fs.s = NULL;
  ck_assert_msg(rc == 0, "%s", err);
  lc_stall_assert_ok(&s);
  ck_assert_str_eq(s.result, "true true 3");
  ck_assert_int_eq(lc_journal_failed(fs_journal), LC_JOURNAL_OK);
  lc_journal_free(fs_journal); /* waits for the writer's last fsync */
  ck_assert_int_ge(atomic_load(&fs.done), 1);
  unlink(fs.path);
}
END_TEST

static char http_base[96];

static void fs_setup_http(struct lc_stall *s, lua_State *L) {
  lua_pushstring(L, http_base);
  lua_setglobal(L, "BASE");
  fs_setup(s, L);
}

/* luact.http's at-most-once POST: the intent is durable before the
 * request goes out, the result before Lua sees it, and neither fsync runs
 * on the loop thread. */
START_TEST(http_tool_fsync_does_not_block) {
  struct lc_mock m;
  ck_assert_int_eq(
      lc_mock_start(&m, "[{\"match\": {\"path\": \"/charge\"}, \"reply\": {\"json\": {\"ok\": true}}}]"),
      0);
  snprintf(http_base, sizeof http_base, "%s", m.base_url);
  char e[512];
  snprintf(fs.path, sizeof fs.path, "/tmp/lc_stall_%ld_http.jsonl", (long)getpid());
  ck_assert_msg(lc_journal_open(LC_JOURNAL_RECORD, fs.path, NULL, &fs_journal, e, sizeof e) == 0,
                "%s", e);
  static struct lc_stall s;
  memset(&s, 0, sizeof s);
  s.name = "http tool fsync";
  s.script = "function op()\n"
             "  local r, msg = luact.http.post(BASE .. '/charge', {amount = 1})\n"
             "  assert(r, msg)\n"
             "  assert(fsyncs() >= 2, 'the result reached Lua before it was durable')\n"
             "  return r.status\n"
             "end\n";
  s.setup = fs_setup_http;
  s.release = fs_release;
  char err[512];
  int rc = lc_stall_run(&s, err, sizeof err);
  fs.s = NULL;
  ck_assert_msg(rc == 0, "%s", err);
  lc_stall_assert_ok(&s);
  ck_assert_str_eq(s.result, "true 200");
  ck_assert_int_eq(lc_journal_failed(fs_journal), LC_JOURNAL_OK);
  lc_journal_free(fs_journal);
  ck_assert_int_eq(lc_mock_stop(&m), 0);
  char *text = lc_test_read_file(fs.path, NULL);
  ck_assert_ptr_nonnull(text);
  ck_assert_msg(strstr(text, "\"class\":\"at_most_once\"") && strstr(text, "\"status\":200"),
                "%s", text);
  free(text);
  unlink(fs.path);
}
END_TEST

/* A task killed while it waits for its intent to be durable: the wait
 * ends cleanly (no watcher or waiter left: the teardown checks), the
 * effect never runs, and a cancelled result is written. */
START_TEST(killed_while_waiting_for_the_journal) {
  struct lc_mock m;
  ck_assert_int_eq(lc_mock_start(&m, "[{\"match\": {}, \"reply\": {\"json\": {}}}]"), 0);
  snprintf(http_base, sizeof http_base, "%s", m.base_url);
  const char *ops[] = {
      "function op() luact.effect('tool', 'send', nil, 'at_most_once', function()\n"
      "  error('ran') end) end\n",
      "function op() luact.http.post(BASE .. '/charge', {}) error('ran') end\n"};
  for (int i = 0; i < 2; i++) {
    char e[512];
    snprintf(fs.path, sizeof fs.path, "/tmp/lc_stall_%ld_kill%d.jsonl", (long)getpid(), i);
    ck_assert_msg(
        lc_journal_open(LC_JOURNAL_RECORD, fs.path, NULL, &fs_journal, e, sizeof e) == 0, "%s", e);
    pthread_mutex_lock(&fs.mu);
    fs.released = 0;
    pthread_mutex_unlock(&fs.mu);
    static struct lc_stall s;
    memset(&s, 0, sizeof s);
    s.name = i ? "kill http" : "kill effect";
    char script[512];
    snprintf(script, sizeof script, "%sfunction after_in_flight(t) luact.kill(t) end\n", ops[i]);
    s.script = script;
    s.setup = fs_setup_http;
    s.release = fs_release;
    char err[512];
    int rc = lc_stall_run(&s, err, sizeof err);
    fs.s = NULL;
    ck_assert_msg(rc == 0, "%s", err);
    lc_stall_assert_ok(&s);
    ck_assert_str_eq(s.result, "nil already waited or killed");
    lc_journal_free(fs_journal);
    char *text = lc_test_read_file(fs.path, NULL);
    ck_assert_ptr_nonnull(text);
    ck_assert_msg(strstr(text, "\"cancelled\":") != NULL, "%s", text);
    free(text);
    unlink(fs.path);
  }
  char *log = lc_mock_requests(&m); /* the POST never went out */
  ck_assert_ptr_nonnull(log);
  ck_assert_msg(strstr(log, "/charge") == NULL, "%s", log);
  free(log);
  ck_assert_int_eq(lc_mock_stop(&m), 0);
}
END_TEST

/* The writer thread's fsync fails: the task waiting for its intent raises
 * the journal's error, the effect never runs, and the journal has failed. */
START_TEST(journal_fsync_failure_stops_the_effect) {
  char e[512];
  snprintf(fs.path, sizeof fs.path, "/tmp/lc_stall_%ld_fail.jsonl", (long)getpid());
  struct lc_journal *j;
  ck_assert_msg(lc_journal_open(LC_JOURNAL_RECORD, fs.path, NULL, &j, e, sizeof e) == 0, "%s",
                e);
  fs.fail = 1;
  struct lc_test_lua t;
  lc_test_lua_open(&t);
  lc_l_journal_attach(t.L, j);
  char out[256], err[1024];
  int rc = lc_test_lua_run(&t,
                           "RAN = false\n"
                           "local ok, m = pcall(luact.effect, 'tool', 'send', nil, 'at_most_once',\n"
                           "  function() RAN = true end)\n"
                           "return tostring(ok) .. ' ' .. tostring(RAN) .. ' ' .. m\n",
                           out, sizeof out, err, sizeof err);
  lc_test_lua_close(&t);
  fs.fail = 0;
  ck_assert_msg(rc == 0, "%s", err);
  ck_assert_msg(strncmp(out, "false false ", 12) == 0 && strstr(out, "journal: cannot sync") &&
                    strstr(out, "Input/output error"), "%s", out);
  ck_assert_int_eq(lc_journal_failed(j), LC_JOURNAL_EIO);
  lc_journal_free(j);
  unlink(fs.path);
}
END_TEST

/* ---- luact.ask: two asks at once on an input that has no line yet ---- */

static int ask_pipe[2];

static void ask_release(struct lc_stall *s) {
  (void)s;
  ck_assert_int_eq(write(ask_pipe[1], "x\ny\n", 4), 4);
  close(ask_pipe[1]);
}

START_TEST(concurrent_asks_do_not_block) {
  /* stdin of this test process (Check's forked child) becomes a pipe that
   * the release writes to. */
  const char *fork = getenv("CK_FORK");
  ck_assert_msg(!fork || strcmp(fork, "no") != 0,
                "this case replaces its process's stdin: run it in Check's fork mode");
  ck_assert_int_eq(pipe2(ask_pipe, O_CLOEXEC), 0);
  ck_assert_int_eq(dup2(ask_pipe[0], 0), 0);
  close(ask_pipe[0]);
  static struct lc_stall s;
  memset(&s, 0, sizeof s);
  s.name = "concurrent ask";
  s.script = "function op()\n"
             "  local a = luact.spawn(function() return luact.ask('') end)\n"
             "  local b = luact.spawn(function() return luact.ask('') end)\n"
             "  stall.mark() -- both ask before the ticker's first tick\n"
             "  local _, x = luact.wait(a)\n"
             "  local _, y = luact.wait(b)\n"
             "  return x .. ',' .. y\n"
             "end\n";
  s.release = ask_release;
  char err[512];
  int rc = lc_stall_run(&s, err, sizeof err);
  ck_assert_msg(rc == 0, "%s", err);
  lc_stall_assert_ok(&s);
  ck_assert_str_eq(s.result, "true x,y");
}
END_TEST

Suite *stall_suite(void) {
  Suite *s = suite_create("stall");
  TCase *tc = tcase_create("ticker");
  /* A case that stalls never ends: this timeout is what fails it. */
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, dns_cancel_does_not_block);
  tcase_add_test(tc, dns_timeout_does_not_block);
  tcase_add_test(tc, concurrent_asks_do_not_block);
  tcase_add_test(tc, journal_fsync_does_not_block);
  tcase_add_test(tc, journal_fsync_failure_stops_the_effect);
  tcase_add_test(tc, journal_sync_all_pure_does_not_block);
  tcase_add_test(tc, http_tool_fsync_does_not_block);
  tcase_add_test(tc, killed_while_waiting_for_the_journal);
  suite_add_tcase(s, tc);
  return s;
}
