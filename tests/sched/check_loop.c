/* check_loop.c: the loop's handling of libcurl's sockets between
 * transfers, against a small server in a thread of this process that can
 * hang up on an idle keep-alive connection when the test says so. */
#include <arpa/inet.h>
#include <check.h>
#include <lauxlib.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lc.h"
#include "loop.h"
#include "sched.h"
#include "util_lua.h"

/* Serves `conns` connections, `reqs` requests on each, answering with a
 * keep-alive reply. The accepted socket is published before the last
 * reply is written, so once the client has it, hangup() can close it. */
struct server {
  int lfd, port, conns, reqs, accepted, answered;
  int conn_fd; /* the connection being served, -1 when none */
  pthread_mutex_t mu;
  pthread_t th;
};
static struct server srv;

static void *serve(void *unused) {
  (void)unused;
  for (int n = 0; n < srv.conns; n++) {
    int c = accept(srv.lfd, NULL, NULL);
    if (c < 0) break;
    pthread_mutex_lock(&srv.mu);
    srv.accepted++;
    srv.conn_fd = c;
    pthread_mutex_unlock(&srv.mu);
    for (int q = 0; q < srv.reqs; q++) {
      /* GET requests only: the head ends the request. */
      char buf[4096];
      size_t got = 0;
      while (got < sizeof buf - 1) {
        ssize_t r = read(c, buf + got, sizeof buf - 1 - got);
        if (r <= 0) return NULL;
        got += (size_t)r;
        buf[got] = '\0';
        if (strstr(buf, "\r\n\r\n")) break;
      }
      static const char reply[] =
          "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n"
          "Connection: keep-alive\r\n\r\nok";
      if (write(c, reply, sizeof reply - 1) != (ssize_t)(sizeof reply - 1)) return NULL;
      srv.answered++;
    }
  }
  return NULL;
}

static void server_start(int conns, int reqs) {
  memset(&srv, 0, sizeof srv);
  srv.conns = conns;
  srv.reqs = reqs;
  srv.conn_fd = -1;
  pthread_mutex_init(&srv.mu, NULL);
  srv.lfd = socket(AF_INET, SOCK_STREAM, 0);
  ck_assert_int_ge(srv.lfd, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  ck_assert_int_eq(bind(srv.lfd, (struct sockaddr *)&a, sizeof a), 0);
  ck_assert_int_eq(listen(srv.lfd, 8), 0);
  socklen_t len = sizeof a;
  ck_assert_int_eq(getsockname(srv.lfd, (struct sockaddr *)&a, &len), 0);
  srv.port = ntohs(a.sin_port);
  ck_assert_int_eq(pthread_create(&srv.th, NULL, serve, NULL), 0);
}

static void server_stop(void) {
  pthread_join(srv.th, NULL);
  close(srv.lfd);
  if (srv.conn_fd >= 0) close(srv.conn_fd);
  pthread_mutex_destroy(&srv.mu);
}

/* A fresh state with BASE set to the server's address. */
static void open_with_base(struct lc_test_lua *t) {
  lc_test_lua_open(t);
  char base[64];
  snprintf(base, sizeof base, "http://127.0.0.1:%d", srv.port);
  lua_pushstring(t->L, base);
  lua_setglobal(t->L, "BASE");
}

/* hangup(): the server closes the connection it last answered, as servers
 * do with idle keep-alive connections. */
static int l_hangup(lua_State *L) {
  pthread_mutex_lock(&srv.mu);
  int c = srv.conn_fd;
  srv.conn_fd = -1;
  pthread_mutex_unlock(&srv.mu);
  if (c < 0) return luaL_error(L, "no connection to hang up");
  close(c);
  return 0;
}

START_TEST(a_hung_up_idle_connection_neither_spins_nor_breaks_the_next_call) {
  /* After a transfer the connection stays in the poller for its next one.
   * When the server closes it in between, the loop must take it out on
   * the first event (a level-triggered poller would report the closed
   * socket on every wait: a busy loop for as long as the agent idles),
   * and the next call must go out on a fresh connection. */
  server_start(2, 1);
  struct lc_test_lua t;
  open_with_base(&t);
  lua_register(t.L, "hangup", l_hangup);
  struct lc_loop *loop = lc_sched_loop(t.s);
  char out[64], err[1024];
  int rc = lc_test_lua_run(&t,
      "local a = assert(luact.http.get(BASE .. '/a'))\n"
      "hangup()\n"
      "luact.sleep(0.05)\n"
      "local b = assert(luact.http.get(BASE .. '/b'))\n"
      "return a.body .. b.body",
      out, sizeof out, err, sizeof err);
  long events = lc_loop_events(loop);
  ck_assert_msg(rc == 0, "%s", err);
  ck_assert_str_eq(out, "okok");
  ck_assert_int_eq(srv.accepted, 2); /* the second call reconnected */
  /* Each transfer takes a handful of events; spinning on the closed
   * socket for 50 ms takes thousands. */
  ck_assert_msg(events < 30, "%ld poller events for two transfers", events);
  lc_test_lua_close(&t);
  server_stop();
}
END_TEST

START_TEST(an_idle_connection_is_reused_without_reconnecting) {
  server_start(1, 3);
  struct lc_test_lua t;
  open_with_base(&t);
  char out[64], err[1024];
  /* The server takes one connection only: a request on a second one
   * would never be answered. */
  int rc = lc_test_lua_run(&t,
      "local a = assert(luact.http.get(BASE .. '/a'))\n"
      "local b = assert(luact.http.get(BASE .. '/b'))\n"
      "local c = assert(luact.http.get(BASE .. '/c'))\n"
      "return a.body .. b.body .. c.body",
      out, sizeof out, err, sizeof err);
  ck_assert_msg(rc == 0, "%s", err);
  ck_assert_str_eq(out, "okokok");
  ck_assert_int_eq(srv.accepted, 1);
  ck_assert_int_eq(srv.answered, 3);
  lc_test_lua_close(&t);
  server_stop();
}
END_TEST

static int sig_seen;
static void on_sig(struct lc_loop *loop, struct lc_sigwatch *w) {
  (void)loop;
  sig_seen += w->sig == SIGUSR1;
}

/* A blocked signal reaches the loop as an event (no handler runs): once
 * per delivery, from lc_loop_run_once, and the watch is not pending work
 * (a loop with nothing else to wait for still says so). */
START_TEST(a_blocked_signal_is_a_loop_event) {
  struct lc_loop *l;
  ck_assert_int_eq(lc_loop_new(&l), 0);
  ck_assert_int_eq(lc_signal_block(SIGUSR1, 1), 0);
  struct lc_sigwatch w = {.sig = SIGUSR1, .cb = on_sig};
  ck_assert_int_eq(lc_loop_signal_watch(l, &w), 0);
  ck_assert_int_eq(lc_loop_signal_watch(l, &w), LC_ESTATE);
  ck_assert_int_eq(lc_loop_pending(l), 0);
  sig_seen = 0;
  ck_assert_int_eq(raise(SIGUSR1), 0); /* pending: blocked, not delivered */
  while (!sig_seen) lc_loop_run_once(l, 1000);
  ck_assert_int_eq(sig_seen, 1);
  lc_loop_signal_unwatch(l, &w);
  ck_assert_int_eq(w.fd, -1);
  lc_loop_free(l);
  ck_assert_int_eq(lc_signal_block(SIGUSR1, 0), 0);
}
END_TEST

Suite *loop_suite(void) {
  Suite *s = suite_create("loop");
  TCase *tc = tcase_create("sockets");
  tcase_add_test(tc, a_hung_up_idle_connection_neither_spins_nor_breaks_the_next_call);
  tcase_add_test(tc, an_idle_connection_is_reused_without_reconnecting);
  tcase_add_test(tc, a_blocked_signal_is_a_loop_event);
  suite_add_tcase(s, tc);
  return s;
}
