/* check_serve_ws.c: `luact serve`'s event-driven HTTP side and its
 * WebSocket. Hundreds of open streams and waits hold no thread each (the
 * daemon's thread count stays where it was) while /healthz and run
 * creation answer; the thread stream's WebSocket (RFC 6455) from a raw
 * client: the handshake, commands and events, fragmentation, ping, and
 * hostile frames, each closed with its status while the daemon goes on;
 * and from a real client (Node's WebSocket, tests/daemon/js/ws_test.mjs). */
#include <arpa/inet.h>
#include <check.h>
#include <cjson/cJSON.h>
#include <dirent.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util_common.h"
#include "util_serve.h"

static const char hold_agent[] =
    "return function(input, ctx) luact.sleep(60) return {held = true} end\n";
static const char echo_agent[] = "return function(input, ctx) return {echo = input} end\n";
/* Journal lines as fast as it can, until cancelled. */
static const char chatty_agent[] =
    "return function(input, ctx) while true do luact.now() end end\n";
static const char asker_agent[] =
    "return function(input, ctx) return {hello = luact.ask('your name?')} end\n";

static const char *cur_log; /* the daemon's log, told on a failure */

static int threads_of(pid_t pid) {
  char p[64];
  snprintf(p, sizeof p, "/proc/%d/task", (int)pid);
  DIR *d = opendir(p);
  ck_assert_ptr_nonnull(d);
  int n = 0;
  for (struct dirent *e; (e = readdir(d));) n += e->d_name[0] != '.';
  closedir(d);
  return n;
}

static int dial_rcvbuf(int port, int rcvbuf) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  ck_assert_int_ge(fd, 0);
  if (rcvbuf) setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
  ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
  return fd;
}

static int dial(int port) { return dial_rcvbuf(port, 0); }

static void put_all(int fd, const void *b, size_t n) {
  const char *p = b;
  while (n) {
    ssize_t k = write(fd, p, n);
    ck_assert_int_gt(k, 0);
    p += k;
    n -= (size_t)k;
  }
}

/* Reads into b until the headers' end; returns the status code. A head
 * that does not come within 60 s fails the case (a hang in CI said
 * nothing of where it was). */
static int read_head(int fd, char *b, size_t cap) {
  size_t n = 0;
  struct timeval tv = {60, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  while (n + 1 < cap) {
    ssize_t k = read(fd, b + n, 1);
    ck_assert_msg(k == 1, "no response head (read %zd after %zu bytes)", k, n);
    n++;
    b[n] = 0;
    if (n >= 4 && !memcmp(b + n - 4, "\r\n\r\n", 4)) break;
  }
  int code = 0;
  sscanf(b, "HTTP/1.%*d %d", &code);
  return code;
}

/* Sends a request on a new connection; returns the fd (body not read). */
static int send_req(int port, const char *method, const char *path, const char *body) {
  int fd = dial(port);
  char h[1024];
  int n = snprintf(h, sizeof h,
                   "%s %s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " LC_SD_TOKEN
                   "\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
                   method, path, body ? strlen(body) : 0, body ? body : "");
  put_all(fd, h, (size_t)n);
  return fd;
}

static void setup_daemon(struct lc_sd *d, const char *args) {
  lc_sd_setup(d);
  lc_sd_agent(d, "hold", hold_agent);
  lc_sd_agent(d, "echo", echo_agent);
  lc_sd_agent(d, "asker", asker_agent);
  lc_sd_agent(d, "chatty", chatty_agent);
  if (args) snprintf(d->args, sizeof d->args, "%s", args);
  lc_sd_start(d);
  cur_log = d->log;
}

static const char *jget(const cJSON *o, const char *k) {
  const cJSON *v = cJSON_GetObjectItem(o, k);
  return cJSON_IsString(v) ? v->valuestring : "";
}

/* 150 SSE streams and 50 waits open at once: the daemon's thread count
 * stays where it was (one thread per connection before), and /healthz
 * and run creation answer meanwhile. */
START_TEST(streams_hold_no_thread) {
  struct lc_sd d;
  setup_daemon(&d, "--max-conns 400 --max-streams 300 --max-runs 1");
  /* One run holds the only run slot: the waited runs stay pending. */
  cJSON *j = lc_sd_expect(&d, "POST", "/runs", "{\"assistant_id\":\"hold\"}", 200);
  char hold[80], p[300];
  snprintf(hold, sizeof hold, "%s", jget(j, "run_id"));
  cJSON_Delete(j);
  snprintf(p, sizeof p, "/runs/%s", hold);
  double started_by = lc_test_mono_s() + 60;
  for (;;) {
    j = lc_sd_expect(&d, "GET", p, NULL, 200);
    int running = !strcmp(jget(j, "luact_status"), "running");
    cJSON_Delete(j);
    if (running) break;
    ck_assert_msg(lc_test_mono_s() < started_by, "the held run never started");
    lc_test_nap_ms(20);
  }
  j = lc_sd_expect(&d, "POST", "/threads", "{\"thread_id\":\"many\"}", 200);
  cJSON_Delete(j);
  int before = threads_of(d.pid);
  enum { NS = 150, NW = 50 };
  int fds[NS + NW];
  char head[2048];
  for (int i = 0; i < NS; i++) {
    fds[i] = send_req(d.port, "POST", "/threads/many/stream", "{\"channels\":[\"lifecycle\"]}");
    ck_assert_int_eq(read_head(fds[i], head, sizeof head), 200);
  }
  for (int i = 0; i < NW; i++)
    fds[NS + i] = send_req(d.port, "POST", "/runs/wait", "{\"assistant_id\":\"echo\"}");
  /* Until every wait is in (its run created and queued). */
  double until = lc_test_mono_s() + 60;
  for (;;) {
    struct lc_sresp m = lc_sd_req(&d, "GET", "/metrics", NULL, LC_SD_TOKEN, NULL);
    const char *g = strstr(m.body, "\nluact_sse_clients ");
    int open = g ? atoi(g + strlen("\nluact_sse_clients ")) : 0;
    lc_sresp_free(&m);
    if (open == NS + NW) break;
    ck_assert_msg(lc_test_mono_s() < until, "%d of %d streams and waits open after 60 s", open,
                  NS + NW);
    lc_test_nap_ms(20);
  }
  int during = threads_of(d.pid);
  ck_assert_msg(during <= before + 2, "threads: %d before, %d with %d streams and waits open",
                before, during, NS + NW);
  j = lc_sd_expect(&d, "GET", "/healthz", NULL, 200);
  cJSON_Delete(j);
  j = lc_sd_expect(&d, "POST", "/runs", "{\"assistant_id\":\"echo\"}", 200);
  cJSON_Delete(j);
  /* The waits answer once the held run is gone. */
  snprintf(p, sizeof p, "/runs/%s/cancel?action=interrupt", hold);
  j = lc_sd_expect(&d, "POST", p, NULL, 202);
  cJSON_Delete(j);
  for (int i = 0; i < NW; i++) {
    ck_assert_int_eq(read_head(fds[NS + i], head, sizeof head), 200);
    close(fds[NS + i]);
  }
  for (int i = 0; i < NS; i++) close(fds[i]);
  ck_assert_int_eq(lc_test_exit_code(lc_sd_stop(&d, SIGTERM)), 0);
  lc_sd_rm(&d);
}
END_TEST

/* ---- a raw WebSocket client ---- */

static int ws_open(struct lc_sd *d, const char *thread) {
  int fd = dial(d->port);
  char h[1024];
  int n = snprintf(h, sizeof h,
                   "GET /threads/%s/stream HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " LC_SD_TOKEN
                   "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                   "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
                   thread);
  put_all(fd, h, (size_t)n);
  char head[2048];
  ck_assert_int_eq(read_head(fd, head, sizeof head), 101);
  /* RFC 6455's own example key and answer. */
  ck_assert_ptr_nonnull(strstr(head, "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo="));
  return fd;
}

/* A client frame: masked unless mask is 0; fin and opcode as given. */
static void ws_put(int fd, int fin, int op, const void *data, size_t len, int mask) {
  unsigned char h[14], m[4] = {0x11, 0x22, 0x33, 0x44};
  size_t k = 0;
  h[k++] = (unsigned char)((fin ? 0x80 : 0) | op);
  unsigned char mb = mask ? 0x80 : 0;
  if (len < 126) {
    h[k++] = mb | (unsigned char)len;
  } else if (len < 65536) {
    h[k++] = mb | 126;
    h[k++] = (unsigned char)(len >> 8);
    h[k++] = (unsigned char)len;
  } else {
    h[k++] = mb | 127;
    for (int i = 7; i >= 0; i--) h[k++] = (unsigned char)((uint64_t)len >> (8 * i));
  }
  if (mask) {
    memcpy(h + k, m, 4);
    k += 4;
  }
  put_all(fd, h, k);
  unsigned char *b = malloc(len + 1);
  for (size_t i = 0; i < len; i++)
    b[i] = ((const unsigned char *)data)[i] ^ (mask ? m[i & 3] : 0);
  if (len) put_all(fd, b, len);
  free(b);
}

static void ws_text(int fd, const char *t) { ws_put(fd, 1, 1, t, strlen(t), 1); }

/* Reads one server frame: its opcode, payload malloc'd in *out (NUL-ended);
 * -1 on EOF. */
static int ws_get(int fd, char **out, size_t *len) {
  unsigned char h[10];
  if (read(fd, h, 2) != 2) return -1;
  ck_assert_msg(!(h[1] & 0x80), "a server frame is not masked");
  uint64_t n = h[1] & 0x7F;
  if (n == 126) {
    ck_assert_int_eq(read(fd, h + 2, 2), 2);
    n = (uint64_t)h[2] << 8 | h[3];
  } else if (n == 127) {
    size_t got = 0;
    while (got < 8) got += (size_t)read(fd, h + 2 + got, 8 - got);
    n = 0;
    for (int i = 0; i < 8; i++) n = n << 8 | h[2 + i];
  }
  char *b = malloc(n + 1);
  size_t got = 0;
  while (got < n) {
    ssize_t k = read(fd, b + got, n - got);
    ck_assert_int_gt(k, 0);
    got += (size_t)k;
  }
  b[n] = 0;
  *out = b;
  *len = n;
  return h[0] & 0x0F;
}

/* The next text message (answering nothing else). */
static cJSON *ws_json(int fd) {
  for (;;) {
    char *b;
    size_t n;
    int op = ws_get(fd, &b, &n);
    if (op == -1 && cur_log) {
      char *t = lc_test_read_file(cur_log, NULL);
      fprintf(stderr, "daemon log:\n%s\n", t ? t : "");
      free(t);
    }
    ck_assert_int_ne(op, -1);
    if (op == 1) {
      cJSON *j = cJSON_Parse(b);
      ck_assert_msg(j != NULL, "not JSON: %s", b);
      free(b);
      return j;
    }
    free(b);
  }
}

/* Expects a close frame with code, then the end of the connection. */
static void ws_expect_close(int fd, int code) {
  char *b;
  size_t n;
  int op;
  while ((op = ws_get(fd, &b, &n)) == 1 || op == 9) free(b); /* events, pings before it */
  ck_assert_int_eq(op, 8);
  ck_assert_uint_ge(n, 2);
  int got = (unsigned char)b[0] << 8 | (unsigned char)b[1];
  ck_assert_msg(got == code, "close %d, expected %d", got, code);
  free(b);
  char c;
  ck_assert_int_le(read(fd, &c, 1), 0); /* then the server ends it */
  close(fd);
}

/* Commands and events over the WebSocket, a fragmented command with a
 * ping between its fragments, a normal close. */
START_TEST(ws_commands_and_events) {
  struct lc_sd d;
  setup_daemon(&d, NULL);
  int fd = ws_open(&d, "ws-thread-1"); /* the thread does not exist yet */
  ws_text(fd, "{\"id\":1,\"method\":\"subscription.subscribe\",\"params\":"
              "{\"channels\":[\"values\",\"lifecycle\"]}}");
  cJSON *j = ws_json(fd);
  ck_assert_str_eq(jget(j, "type"), "success");
  ck_assert_str_eq(jget(cJSON_GetObjectItem(j, "result"), "subscriptionId"), "sub-1");
  cJSON_Delete(j);
  /* run.start in two fragments, a ping between them (a control frame may
   * come inside a fragmented message). */
  const char *cmd = "{\"id\":2,\"method\":\"run.start\",\"params\":"
                    "{\"assistant_id\":\"echo\",\"input\":{\"x\":7}}}";
  ws_put(fd, 0, 1, cmd, 10, 1);
  ws_put(fd, 1, 9, "hi", 2, 1);
  ws_put(fd, 1, 0, cmd + 10, strlen(cmd) - 10, 1);
  char *b;
  size_t n;
  int op;
  while ((op = ws_get(fd, &b, &n)) != 10) {
    ck_assert_int_eq(op, 1); /* events may come first */
    free(b);
  }
  ck_assert_str_eq(b, "hi");
  free(b);
  int ok = 0, values = 0, ended = 0;
  while (!ended) {
    j = ws_json(fd);
    if (!strcmp(jget(j, "type"), "success") && cJSON_GetObjectItem(j, "id")->valueint == 2)
      ok = 1;
    if (!strcmp(jget(j, "type"), "event")) {
      const cJSON *pr = cJSON_GetObjectItem(j, "params");
      const char *m = jget(j, "method");
      ck_assert_msg(!strcmp(m, "values") || !strcmp(m, "lifecycle"), "%s", m);
      if (!strcmp(m, "values")) {
        values++;
        ck_assert_int_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(
                                                 pr, "data"), "echo"), "x")->valueint, 7);
      }
      if (!strcmp(jget(pr, "event"), "end")) {
        ck_assert_str_eq(jget(cJSON_GetObjectItem(pr, "data"), "status"), "success");
        ended = 1;
      }
    }
    cJSON_Delete(j);
  }
  ck_assert_int_eq(ok, 1);
  ck_assert_int_eq(values, 1);
  ws_text(fd, "{\"id\":3,\"method\":\"state.get\"}");
  j = ws_json(fd);
  ck_assert_str_eq(jget(j, "type"), "success");
  cJSON_Delete(j);
  ws_text(fd, "{\"id\":4,\"method\":\"no.such\"}");
  j = ws_json(fd);
  ck_assert_str_eq(jget(j, "error"), "unknown_command");
  cJSON_Delete(j);
  ws_text(fd, "not json");
  j = ws_json(fd);
  ck_assert_str_eq(jget(j, "error"), "invalid_argument");
  cJSON_Delete(j);
  ws_text(fd, "{\"id\":5,\"method\":\"subscription.unsubscribe\",\"params\":"
              "{\"subscriptionId\":\"sub-1\"}}");
  j = ws_json(fd);
  ck_assert_str_eq(jget(j, "type"), "success");
  cJSON_Delete(j);
  ws_put(fd, 1, 8, "\x03\xe8", 2, 1); /* close 1000 */
  ws_expect_close(fd, 1000);
  /* Plain GET without Upgrade stays LangGraph's thread stream. */
  struct lc_sresp r = lc_sd_req(&d, "GET", "/threads/ws-thread-1/stream", NULL, LC_SD_TOKEN, NULL);
  ck_assert_int_eq(r.code, 200);
  ck_assert_ptr_nonnull(strstr(r.body, "event: end"));
  lc_sresp_free(&r);
  ck_assert_int_eq(lc_test_exit_code(lc_sd_stop(&d, SIGTERM)), 0);
  lc_sd_rm(&d);
}
END_TEST

/* Hostile frames: each closes its connection with the right status, and
 * the daemon goes on serving. */
START_TEST(ws_hostile_frames) {
  struct lc_sd d;
  setup_daemon(&d, "--max-body 4096");
  cJSON *j = lc_sd_expect(&d, "POST", "/threads", "{\"thread_id\":\"wt\"}", 200);
  cJSON_Delete(j);
  /* An unmasked client frame: 1002. */
  int fd = ws_open(&d, "wt");
  ws_put(fd, 1, 1, "{}", 2, 0);
  ws_expect_close(fd, 1002);
  /* A length over the message limit (--max-body), refused at the header: 1009. */
  fd = ws_open(&d, "wt");
  ws_put(fd, 1, 1, "", 0, 1); /* an empty text is fine (invalid JSON answer) */
  j = ws_json(fd);
  cJSON_Delete(j);
  unsigned char big[] = {0x81, 0xFF, 0, 0, 0, 1, 0, 0, 0, 0, 1, 2, 3, 4};
  put_all(fd, big, sizeof big);
  ws_expect_close(fd, 1009);
  /* Fragments adding up past the limit: 1009. */
  fd = ws_open(&d, "wt");
  char chunk[3000];
  memset(chunk, 'a', sizeof chunk);
  ws_put(fd, 0, 1, chunk, sizeof chunk, 1);
  ws_put(fd, 1, 0, chunk, sizeof chunk, 1);
  ws_expect_close(fd, 1009);
  /* A reserved opcode: 1002. */
  fd = ws_open(&d, "wt");
  ws_put(fd, 1, 3, "x", 1, 1);
  ws_expect_close(fd, 1002);
  /* Invalid UTF-8 in a text message: 1007. */
  fd = ws_open(&d, "wt");
  ws_put(fd, 1, 1, "{\"id\":1,\xc3\x28}", 10, 1);
  ws_expect_close(fd, 1007);
  /* A bad frame and the client's end at once: the close still comes. */
  fd = ws_open(&d, "wt");
  ws_put(fd, 1, 1, "\xff", 1, 1);
  shutdown(fd, SHUT_WR);
  ws_expect_close(fd, 1007);
  /* A frame cut short, then the client's end: 1002. */
  fd = ws_open(&d, "wt");
  unsigned char half[] = {0x81, 0x85, 1, 2, 3, 4, 'h'};
  put_all(fd, half, sizeof half);
  shutdown(fd, SHUT_WR);
  ws_expect_close(fd, 1002);
  /* A continuation with no message begun: 1002; binary: 1003. */
  fd = ws_open(&d, "wt");
  ws_put(fd, 1, 0, "x", 1, 1);
  ws_expect_close(fd, 1002);
  fd = ws_open(&d, "wt");
  ws_put(fd, 1, 2, "x", 1, 1);
  ws_expect_close(fd, 1003);
  /* A control frame over 125 bytes: 1002. */
  fd = ws_open(&d, "wt");
  ws_put(fd, 1, 9, chunk, 126, 1);
  ws_expect_close(fd, 1002);
  /* Handshakes refused: no key (400), another version (426), another
   * tenant's thread (404). */
  char head[2048];
  int h = dial(d.port);
  const char nokey[] = "GET /threads/wt/stream HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " LC_SD_TOKEN
                       "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n";
  put_all(h, nokey, sizeof nokey - 1);
  ck_assert_int_eq(read_head(h, head, sizeof head), 400);
  close(h);
  h = dial(d.port);
  const char v8[] = "GET /threads/wt/stream HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " LC_SD_TOKEN
                    "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 8\r\n"
                    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";
  put_all(h, v8, sizeof v8 - 1);
  ck_assert_int_eq(read_head(h, head, sizeof head), 426);
  ck_assert_ptr_nonnull(strstr(head, "Sec-WebSocket-Version: 13"));
  close(h);
  h = dial(d.port);
  const char bob[] = "GET /threads/wt/stream HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " LC_SD_TOKEN_B
                     "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                     "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";
  put_all(h, bob, sizeof bob - 1);
  ck_assert_int_eq(read_head(h, head, sizeof head), 404);
  close(h);
  /* Still serving, and no stream slot was lost to the closed sockets. */
  j = lc_sd_expect(&d, "GET", "/healthz", NULL, 200);
  cJSON_Delete(j);
  for (;;) {
    struct lc_sresp m = lc_sd_req(&d, "GET", "/metrics", NULL, LC_SD_TOKEN, NULL);
    int zero = strstr(m.body, "\nluact_sse_clients 0\n") != NULL;
    lc_sresp_free(&m);
    if (zero) break;
    lc_test_nap_ms(20);
  }
  ck_assert_int_eq(lc_test_exit_code(lc_sd_stop(&d, SIGTERM)), 0);
  lc_sd_rm(&d);
}
END_TEST

/* A thread's subscription follows its tenant's runs only: a thread id
 * nobody has is subscribed to by alice, then taken by bob, whose run
 * must not reach alice. (Commands and then the subscriptions run in turn
 * on one item: once a second command is answered, the subscription has
 * looked after bob's run ended.) */
START_TEST(ws_other_tenant_runs) {
  struct lc_sd d;
  setup_daemon(&d, NULL);
  int fd = ws_open(&d, "taken-later");
  ws_text(fd, "{\"id\":1,\"method\":\"subscription.subscribe\",\"params\":"
              "{\"channels\":[\"values\",\"lifecycle\",\"custom\"]}}");
  cJSON *j = ws_json(fd);
  ck_assert_str_eq(jget(j, "type"), "success");
  cJSON_Delete(j);
  struct lc_sresp r = lc_sd_req(&d, "POST", "/threads", "{\"thread_id\":\"taken-later\"}",
                                LC_SD_TOKEN_B, NULL);
  ck_assert_int_eq(r.code, 200);
  lc_sresp_free(&r);
  r = lc_sd_req(&d, "POST", "/threads/taken-later/runs/wait", "{\"assistant_id\":\"echo\"}",
                LC_SD_TOKEN_B, NULL);
  ck_assert_int_eq(r.code, 200);
  lc_sresp_free(&r);
  for (int id = 2; id <= 3; id++) {
    char c[100];
    snprintf(c, sizeof c, "{\"id\":%d,\"method\":\"no.such\"}", id);
    ws_text(fd, c);
    j = ws_json(fd);
    ck_assert_msg(strcmp(jget(j, "type"), "event"), "bob's run reached alice: %s",
                  cJSON_PrintUnformatted(j));
    ck_assert_int_eq(cJSON_GetObjectItem(j, "id")->valueint, id);
    cJSON_Delete(j);
  }
  close(fd);
  ck_assert_int_eq(lc_test_exit_code(lc_sd_stop(&d, SIGTERM)), 0);
  lc_sd_rm(&d);
}
END_TEST

static long sse_clients(struct lc_sd *d) {
  struct lc_sresp m = lc_sd_req(d, "GET", "/metrics", NULL, LC_SD_TOKEN, NULL);
  const char *g = strstr(m.body, "\nluact_sse_clients ");
  long n = g ? atol(g + strlen("\nluact_sse_clients ")) : -1;
  lc_sresp_free(&m);
  return n;
}

/* Clients that stop reading a busy stream (SSE, WebSocket) are cut off
 * after --conn-timeout without progress, while the run goes on. */
START_TEST(slow_readers_cut_off) {
  struct lc_sd d;
  setup_daemon(&d, "--conn-timeout 1");
  cJSON *j = lc_sd_expect(&d, "POST", "/threads", "{\"thread_id\":\"busy\"}", 200);
  cJSON_Delete(j);
  j = lc_sd_expect(&d, "POST", "/threads/busy/runs", "{\"assistant_id\":\"chatty\"}", 200);
  char rid[80], p[300];
  snprintf(rid, sizeof rid, "%s", jget(j, "run_id"));
  cJSON_Delete(j);
  /* An SSE client that reads the head and nothing more. */
  int sfd = dial_rcvbuf(d.port, 2048);
  snprintf(p, sizeof p, "GET /threads/busy/runs/%s/stream HTTP/1.1\r\nHost: x\r\n"
                        "Authorization: Bearer " LC_SD_TOKEN "\r\n\r\n", rid);
  put_all(sfd, p, strlen(p));
  /* A WebSocket client that subscribes and reads nothing more. */
  int wfd = ws_open(&d, "busy");
  ws_text(wfd, "{\"id\":1,\"method\":\"subscription.subscribe\",\"params\":"
               "{\"channels\":[\"custom\"]}}");
  while (sse_clients(&d) != 2) lc_test_nap_ms(20);
  /* Both are cut off while the run still runs. */
  while (sse_clients(&d) != 0) lc_test_nap_ms(50);
  snprintf(p, sizeof p, "/runs/%s", rid);
  j = lc_sd_expect(&d, "GET", p, NULL, 200);
  ck_assert_str_eq(jget(j, "luact_status"), "running");
  cJSON_Delete(j);
  j = lc_sd_expect(&d, "GET", "/healthz", NULL, 200);
  cJSON_Delete(j);
  close(sfd);
  close(wfd);
  snprintf(p, sizeof p, "/runs/%s/cancel?action=interrupt", rid);
  j = lc_sd_expect(&d, "POST", p, NULL, 202);
  cJSON_Delete(j);
  ck_assert_int_eq(lc_test_exit_code(lc_sd_stop(&d, SIGTERM)), 0);
  lc_sd_rm(&d);
}
END_TEST

/* A silent client is pinged (every --conn-timeout / 2 here); one that
 * answers is kept, one that answers nothing is let go. */
START_TEST(ws_ping_keepalive) {
  struct lc_sd d;
  setup_daemon(&d, "--conn-timeout 2");
  int fd = ws_open(&d, "pinged");
  char *b;
  size_t n;
  for (int i = 0; i < 2; i++) {
    ck_assert_int_eq(ws_get(fd, &b, &n), 9);
    ws_put(fd, 1, 10, b, n, 1); /* the pong */
    free(b);
  }
  ck_assert_int_eq(ws_get(fd, &b, &n), 9); /* not answered this time */
  free(b);
  ck_assert_int_eq(ws_get(fd, &b, &n), -1); /* cut off */
  close(fd);
  while (sse_clients(&d) != 0) lc_test_nap_ms(20);
  ck_assert_int_eq(lc_test_exit_code(lc_sd_stop(&d, SIGTERM)), 0);
  lc_sd_rm(&d);
}
END_TEST

/* Node's WebSocket client (tests/daemon/js/ws_test.mjs) against the
 * daemon: subscribe, run.start, an interrupt answered by input.respond. */
START_TEST(ws_node_client) {
  struct lc_sd d;
  setup_daemon(&d, NULL);
  char cmd[1200];
  snprintf(cmd, sizeof cmd,
           "cd %s/tests/daemon/js && LUACT_URL=http://127.0.0.1:%d LUACT_TOKEN=%s "
           "node --experimental-websocket ws_test.mjs >&2",
           lc_test_source_dir(), d.port, LC_SD_TOKEN);
  int st = system(cmd);
  ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "ws_test.mjs failed (%d)", st);
  ck_assert_int_eq(lc_test_exit_code(lc_sd_stop(&d, SIGTERM)), 0);
  lc_sd_rm(&d);
}
END_TEST

Suite *serve_ws_suite(void) {
  Suite *s = suite_create("serve_ws");
  /* One case each, so CK_RUN_CASE selects one. */
  const struct {
    const char *name;
    const TTest *t;
  } cases[] = {{"threads", streams_hold_no_thread},
               {"ws_commands", ws_commands_and_events},
               {"ws_hostile", ws_hostile_frames},
               {"ws_tenant", ws_other_tenant_runs},
               {"slow", slow_readers_cut_off},
               {"ws_ping", ws_ping_keepalive},
               {"ws_node", ws_node_client}};
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    TCase *tc = tcase_create(cases[i].name);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, cases[i].t);
    suite_add_tcase(s, tc);
  }
  return s;
}
