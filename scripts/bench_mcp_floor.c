/* bench_mcp_floor.c: the floor of an MCP tool call over stdio for any
 * client: the same server scripts/bench-mcp calls (server-everything's
 * echo, a child process on two pipes), called N times one after the other
 * by a loop that does only what every client must: send the request,
 * epoll_wait for the answer, read it (scanning for its newline). With
 * CONC, that many calls are kept in flight and every read's answers are
 * replaced by new requests in one write (the fewest system calls any
 * client could make). No JSON parse, no ids matched, nothing journaled. Prints this process's CPU per
 * call (user + system, getrusage: the server's CPU is not in it) in the
 * JSON shape bench_mcp.lua prints. Not part of the build or the tests:
 *   cc -O2 -o /tmp/mcp-floor scripts/bench_mcp_floor.c
 *   /tmp/mcp-floor N path/to/server-everything/dist/index.js [CONC [WARM]] */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int to_srv, from_srv, ep;
static char buf[1 << 20];
static size_t have;

static void put_len(const char *s, size_t n) {
  size_t off = 0;
  while (off < n) {
    ssize_t w = send(to_srv, s + off, n - off, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      perror("write");
      exit(1);
    }
    off += (size_t)w;
  }
}

static void put(const char *s) { put_len(s, strlen(s)); }

/* Reads until at least one whole line that holds "\"id\":" is in; drops
 * every whole line there is (lines without an id, notifications and log
 * messages, too) and returns how many answers they held. */
static long await_answers(void) {
  for (;;) {
    long answers = 0;
    char *nl;
    size_t off = 0;
    while ((nl = memchr(buf + off, '\n', have - off)) != NULL) {
      size_t len = (size_t)(nl - (buf + off)) + 1;
      answers += memmem(buf + off, len, "\"id\":", 5) != NULL;
      off += len;
    }
    memmove(buf, buf + off, have - off);
    have -= off;
    if (answers) return answers;
    struct epoll_event ev;
    int n = epoll_wait(ep, &ev, 1, -1);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      perror("epoll_wait");
      exit(1);
    }
    ssize_t r = read(from_srv, buf + have, sizeof buf - have);
    if (r < 0 && (errno == EAGAIN || errno == EINTR)) continue;
    if (r <= 0) {
      fprintf(stderr, "server closed\n");
      exit(1);
    }
    have += (size_t)r;
  }
}

/* k requests, ids from *id on, in one write: the fewest system calls any
 * client with k calls ready could make. */
static void send_requests(long k, long *id) {
  static char out[1 << 20];
  size_t len = 0;
  for (long i = 0; i < k; i++)
    len += (size_t)snprintf(out + len, sizeof out - len,
                            "{\"jsonrpc\":\"2.0\",\"id\":%ld,\"method\":\"tools/call\",\"params\":"
                            "{\"name\":\"echo\",\"arguments\":{\"message\":\"x\"}}}\n",
                            (*id)++);
  put_len(out, len);
}

static double cpu_s(void) {
  struct rusage u;
  getrusage(RUSAGE_SELF, &u);
  return (double)u.ru_utime.tv_sec + u.ru_utime.tv_usec / 1e6 + (double)u.ru_stime.tv_sec +
         u.ru_stime.tv_usec / 1e6;
}

static double now_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + t.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: %s N server.js [CONC [WARM]]\n", argv[0]);
    return 2;
  }
  long n = atol(argv[1]);
  long conc = argc > 3 ? atol(argv[3]) : 1, warm = argc > 4 ? atol(argv[4]) : 0;
  if (conc < 1 || conc > 4096) conc = 1; /* (one write's buffer holds 4,096 requests) */
  int in[2], out[2];
  /* As luact's client (mcp.c): the server's stdin a socket, its stdout a
   * pipe. */
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, in) || pipe2(out, O_CLOEXEC)) return 1;
  pid_t pid = fork();
  if (pid == 0) {
    dup2(in[0], 0);
    dup2(out[1], 1);
    int devnull = open("/dev/null", O_WRONLY);
    if (devnull >= 0) dup2(devnull, 2);
    execlp("node", "node", argv[2], "stdio", (char *)NULL);
    _exit(127);
  }
  close(in[0]);
  close(out[1]);
  to_srv = in[1];
  from_srv = out[0];
  fcntl(from_srv, F_SETFL, O_NONBLOCK);
  ep = epoll_create1(EPOLL_CLOEXEC);
  struct epoll_event ev = {.events = EPOLLIN, .data.fd = from_srv};
  epoll_ctl(ep, EPOLL_CTL_ADD, from_srv, &ev);
  put("{\"jsonrpc\":\"2.0\",\"id\":0,\"method\":\"initialize\",\"params\":{\"protocolVersion\":"
      "\"2025-06-18\",\"capabilities\":{},\"clientInfo\":{\"name\":\"floor\",\"version\":\"1\"}}}\n");
  await_answers();
  put("{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}\n");
  char req[256];
  snprintf(req, sizeof req,
           "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"echo\","
           "\"arguments\":{\"message\":\"warm\"}}}\n");
  put(req);
  await_answers();
  /* WARM calls first (not counted), then N: CONC kept in flight, each
   * answer read replaced by a new request, all of one read's in one write */
  long id = 2;
  for (int phase = 0; phase < 2; phase++) {
    long total = phase ? n : warm, sent = 0, done = 0;
    double c0 = cpu_s(), t0 = now_s();
    struct rusage u0;
    getrusage(RUSAGE_SELF, &u0);
    long first = conc < total ? conc : total;
    send_requests(first, &id);
    sent = first;
    while (done < total) {
      long k = await_answers();
      done += k;
      long more = k < total - sent ? k : total - sent;
      if (more > 0) send_requests(more, &id);
      sent += more;
    }
    if (!phase) continue;
    double cpu = cpu_s() - c0, wall = now_s() - t0;
    struct rusage u;
    getrusage(RUSAGE_SELF, &u);
    double us = ((double)(u.ru_utime.tv_sec - u0.ru_utime.tv_sec) * 1e6 +
                 (double)(u.ru_utime.tv_usec - u0.ru_utime.tv_usec)) / (double)n;
    double ss = ((double)(u.ru_stime.tv_sec - u0.ru_stime.tv_sec) * 1e6 +
                 (double)(u.ru_stime.tv_usec - u0.ru_stime.tv_usec)) / (double)n;
    printf("{\"client\":\"c-floor\",\"mode\":\"stdio\",\"n\":%ld,\"conc\":%ld,\"warm\":%ld,"
           "\"cpu_us_per_call\":%.3f,\"user_us\":%.3f,\"sys_us\":%.3f,\"wall_ms\":%.1f,"
           "\"rss_mb\":%.1f}\n",
           n, conc, warm, cpu * 1e6 / (double)n, us, ss, wall * 1e3, (double)u.ru_maxrss / 1024);
  }
  close(to_srv);
  waitpid(pid, NULL, 0);
  return 0;
}
