/* mock_main.c: lc-mockllm command line, listening socket, accept loop and
 * clean shutdown on SIGTERM/SIGINT (or stdin EOF with --watch-stdin, so a
 * test that dies never leaves a server behind). */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "mock.h"

#define SHUTDOWN_WAIT_MS 5000

static int stop_wfd = -1;

/* Async-signal-safe: one byte makes the stop pipe readable for every poller.
 * Nobody reads it, so it stays readable. */
static void on_signal(int sig) {
  (void)sig;
  int saved = errno;
  if (write(stop_wfd, "x", 1) < 0) {
  }
  errno = saved;
}

static void usage(FILE *f) {
  fputs("usage: lc-mockllm [--port N] [--script FILE.json] [--latency-ms N]\n"
        "                  [--max-body BYTES] [--watch-stdin] [--help]\n"
        "\n"
        "A loopback mock LLM server (OpenAI Chat Completions, Anthropic Messages,\n"
        "Ollama /api/chat) for tests and offline examples. Binds 127.0.0.1 only.\n"
        "Prints 'listening on 127.0.0.1:PORT' once accepting.\n"
        "\n"
        "  --port N          port to bind; 0 (default) picks a free one\n"
        "  --script FILE     rules (JSON); without it every request is unmatched\n"
        "                    until a POST /_script\n"
        "  --latency-ms N    default delay before each response (rule delay_ms wins)\n"
        "  --max-body BYTES  request body limit, 413 above it (default 8 MiB)\n"
        "  --watch-stdin     exit when stdin reaches EOF (the parent died)\n"
        "\n"
        "Control: GET /_requests, GET /_stats, POST /_reset, POST /_script.\n"
        "Script format: docs/mockllm.md.\n",
        f);
}

static int parse_long(const char *s, long *out) {
  char *end;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (errno || end == s || *end || v < 0) return -1;
  *out = v;
  return 0;
}

static int open_listener(long port, int *bound_port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in a = {0};
  a.sin_family = AF_INET;
  a.sin_port = htons((unsigned short)port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  /* A large backlog: tests open hundreds of connections at once. */
  if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0 || listen(fd, 4096) < 0 ||
      getsockname(fd, (struct sockaddr *)&a, &len) < 0) {
    close(fd);
    return -1;
  }
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  *bound_port = ntohs(a.sin_port);
  return fd;
}

static void spawn_conn(struct mock_server *srv, int fd) {
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  struct mock_conn_arg *a = xmalloc(sizeof *a);
  a->srv = srv;
  a->fd = fd;
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  /* Small stacks: hundreds of threads; the handlers keep data on the heap. */
  pthread_attr_setstacksize(&attr, 512 * 1024);
  /* Threads start with signals blocked so SIGTERM always reaches main. */
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, &old);
  pthread_mutex_lock(&srv->lock);
  srv->connections++;
  if (++srv->live_conns > srv->peak_conns) srv->peak_conns = srv->live_conns;
  pthread_mutex_unlock(&srv->lock);
  pthread_t t;
  int rc = pthread_create(&t, &attr, mock_conn_main, a);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  pthread_attr_destroy(&attr);
  if (rc != 0) {
    fprintf(stderr, "lc-mockllm: pthread_create: %s\n", strerror(rc));
    close(fd);
    free(a);
    pthread_mutex_lock(&srv->lock);
    srv->live_conns--;
    pthread_mutex_unlock(&srv->lock);
  }
}

int main(int argc, char **argv) {
  long port = 0, latency = 0, max_body = 8L * 1024 * 1024;
  const char *script_path = NULL;
  int watch_stdin = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      usage(stdout);
      return 0;
    } else if (strcmp(a, "--watch-stdin") == 0) {
      watch_stdin = 1;
    } else if (v && strcmp(a, "--port") == 0 && parse_long(v, &port) == 0 && port < 65536) {
      i++;
    } else if (v && strcmp(a, "--latency-ms") == 0 && parse_long(v, &latency) == 0) {
      i++;
    } else if (v && strcmp(a, "--max-body") == 0 && parse_long(v, &max_body) == 0) {
      i++;
    } else if (v && strcmp(a, "--script") == 0) {
      script_path = v;
      i++;
    } else {
      fprintf(stderr, "lc-mockllm: bad argument '%s'\n", a);
      usage(stderr);
      return 2;
    }
  }

  struct mock_server srv;
  memset(&srv, 0, sizeof srv);
  srv.latency_ms = latency;
  srv.max_body = (size_t)max_body;
  srv.t0 = mock_now_ms();
  srv.log = cJSON_CreateArray();
  pthread_mutex_init(&srv.lock, NULL);
  pthread_cond_init(&srv.conns_cv, NULL);
  if (script_path) {
    char *dup = xstrdup(script_path);
    srv.script_dir = xstrdup(dirname(dup));
    free(dup);
    char *text = mock_read_file(script_path, NULL);
    if (!text) {
      fprintf(stderr, "lc-mockllm: cannot read %s\n", script_path);
      free(srv.script_dir);
      cJSON_Delete(srv.log);
      return 1;
    }
    char err[512];
    srv.script = mock_script_parse(text, srv.script_dir, err, sizeof err);
    free(text);
    if (!srv.script) {
      fprintf(stderr, "lc-mockllm: %s: %s\n", script_path, err);
      free(srv.script_dir);
      cJSON_Delete(srv.log);
      return 1;
    }
  }

  int pfd[2];
  if (pipe2(pfd, O_CLOEXEC) < 0) return 1;
  srv.stop_fd = pfd[0];
  srv.stop_wfd = stop_wfd = pfd[1];
  struct sigaction sa = {0};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  signal(SIGPIPE, SIG_IGN);

  int bound;
  srv.listen_fd = open_listener(port, &bound);
  if (srv.listen_fd < 0) {
    fprintf(stderr, "lc-mockllm: cannot listen on 127.0.0.1:%ld: %s\n", port, strerror(errno));
    return 1;
  }
  printf("listening on 127.0.0.1:%d\n", bound);
  fflush(stdout);

  for (;;) {
    struct pollfd p[3] = {{srv.listen_fd, POLLIN, 0}, {srv.stop_fd, POLLIN, 0},
                          {watch_stdin ? 0 : -1, POLLIN, 0}};
    int r = poll(p, 3, -1);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0 || p[1].revents) break;
    if (p[2].revents) {
      char tmp[256];
      ssize_t n = read(0, tmp, sizeof tmp);
      if (n <= 0) break; /* parent gone */
    }
    if (p[0].revents) {
      for (;;) {
        int fd = accept4(srv.listen_fd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0) break;
        spawn_conn(&srv, fd);
      }
    }
  }

  /* Stop: wake every connection thread, wait (bounded) for them to leave. */
  if (write(srv.stop_wfd, "x", 1) < 0) {
  }
  close(srv.listen_fd);
  pthread_mutex_lock(&srv.lock);
  double end = mock_now_ms() + SHUTDOWN_WAIT_MS;
  while (srv.live_conns > 0 && mock_now_ms() < end) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += 50 * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
      ts.tv_sec++;
      ts.tv_nsec -= 1000000000L;
    }
    pthread_cond_timedwait(&srv.conns_cv, &srv.lock, &ts);
  }
  long left = srv.live_conns;
  pthread_mutex_unlock(&srv.lock);
  if (left > 0) {
    /* Threads still inside a write would touch freed state: just exit. */
    fprintf(stderr, "lc-mockllm: %ld connections did not close\n", left);
    _exit(0);
  }
  mock_script_free(srv.script);
  cJSON_Delete(srv.log);
  free(srv.script_dir);
  close(srv.stop_fd);
  close(srv.stop_wfd);
  return 0;
}
