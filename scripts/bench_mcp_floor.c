/* bench_mcp_floor.c: the floor of an MCP tool call over stdio for any
 * client: the same server scripts/bench-mcp calls (server-everything's
 * echo, a child process on two pipes), called N times one after the other
 * by a loop that does only what every client must: send the request,
 * epoll_wait for the answer, read it (scanning for its newline). No JSON
 * parse, no ids matched, nothing journaled. Prints this process's CPU per
 * call (user + system, getrusage: the server's CPU is not in it) in the
 * JSON shape bench_mcp.lua prints. Not part of the build or the tests:
 *   cc -O2 -o /tmp/mcp-floor scripts/bench_mcp_floor.c
 *   /tmp/mcp-floor N path/to/server-everything/dist/index.js */
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

static void put(const char *s) {
  size_t n = strlen(s), off = 0;
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

/* Reads until a whole line that holds "\"id\":" is in; drops it. Lines
 * without an id (notifications, log messages) are dropped too. */
static void await_answer(void) {
  for (;;) {
    char *nl;
    while ((nl = memchr(buf, '\n', have)) != NULL) {
      size_t len = (size_t)(nl - buf) + 1;
      int answer = memmem(buf, len, "\"id\":", 5) != NULL;
      memmove(buf, nl + 1, have - len);
      have -= len;
      if (answer) return;
    }
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
    fprintf(stderr, "usage: %s N server.js\n", argv[0]);
    return 2;
  }
  long n = atol(argv[1]);
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
  await_answer();
  put("{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}\n");
  char req[256];
  snprintf(req, sizeof req,
           "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"echo\","
           "\"arguments\":{\"message\":\"warm\"}}}\n");
  put(req);
  await_answer();
  double c0 = cpu_s(), t0 = now_s();
  for (long i = 0; i < n; i++) {
    snprintf(req, sizeof req,
             "{\"jsonrpc\":\"2.0\",\"id\":%ld,\"method\":\"tools/call\",\"params\":{\"name\":"
             "\"echo\",\"arguments\":{\"message\":\"x\"}}}\n",
             i + 2);
    put(req);
    await_answer();
  }
  double cpu = cpu_s() - c0, wall = now_s() - t0;
  struct rusage u;
  getrusage(RUSAGE_SELF, &u);
  if (getenv("FLOOR_SPLIT")) /* user and system apart (from the start) */
    fprintf(stderr, "user %.1f us sys %.1f us per call (whole process)\n",
            ((double)u.ru_utime.tv_sec * 1e6 + (double)u.ru_utime.tv_usec) / (double)n,
            ((double)u.ru_stime.tv_sec * 1e6 + (double)u.ru_stime.tv_usec) / (double)n);
  printf("{\"client\":\"c-floor\",\"mode\":\"stdio\",\"n\":%ld,\"conc\":1,\"cpu_us_per_call\":%.3f,"
         "\"wall_ms\":%.1f,\"rss_mb\":%.1f}\n",
         n, cpu * 1e6 / (double)n, wall * 1e3, (double)u.ru_maxrss / 1024);
  close(to_srv);
  waitpid(pid, NULL, 0);
  return 0;
}
