/* util_mock.c: spawning lc-mockllm and talking to its control endpoints.
 *
 * The mock's stdin is a pipe we hold: if the test process dies (a failed
 * assertion exits a forked Check case), the pipe closes and the mock, run
 * with --watch-stdin, exits too. The port comes from the mock's one line on
 * stdout, read with poll() and a deadline, never a sleep. */
#include "util_mock.h"

#include <check.h>

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

extern char **environ;

#define START_TIMEOUT_MS 10000

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* Reads the "listening on 127.0.0.1:PORT" line; -1 on EOF or timeout. */
static int read_port(int fd) {
  char line[128];
  size_t n = 0;
  double end = now_ms() + START_TIMEOUT_MS;
  while (n < sizeof line - 1) {
    int left = (int)(end - now_ms());
    if (left <= 0) return -1;
    struct pollfd p = {fd, POLLIN, 0};
    int r = poll(&p, 1, left);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return -1;
    ssize_t k = read(fd, line + n, 1); /* byte by byte: stop exactly at '\n' */
    if (k <= 0) return -1;
    if (line[n] == '\n') break;
    n++;
  }
  line[n] = '\0';
  int port = 0;
  if (sscanf(line, "listening on 127.0.0.1:%d", &port) != 1) return -1;
  return port;
}

/* owned_tmp: a temp script that lc_mock_stop removes, or NULL. */
static int start(struct lc_mock *m, const char *path, const char *const *extra_args,
                 const char *owned_tmp) {
  memset(m, 0, sizeof *m);
  if (owned_tmp) snprintf(m->script_path, sizeof m->script_path, "%s", owned_tmp);
  m->pid = -1;
  m->stdin_fd = -1;

  const char *argv[32];
  int argc = 0;
  argv[argc++] = LC_BINARY_DIR "/lc-mockllm";
  argv[argc++] = "--port";
  argv[argc++] = "0";
  argv[argc++] = "--watch-stdin";
  if (path) {
    argv[argc++] = "--script";
    argv[argc++] = path;
  }
  for (int i = 0; extra_args && extra_args[i] && argc < 31; i++) argv[argc++] = extra_args[i];
  argv[argc] = NULL;

  int out[2], in[2];
  if (pipe2(out, O_CLOEXEC) < 0) return -1;
  if (pipe2(in, O_CLOEXEC) < 0) {
    close(out[0]);
    close(out[1]);
    return -1;
  }
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, in[0], 0);
  posix_spawn_file_actions_adddup2(&fa, out[1], 1);
  int rc = posix_spawn(&m->pid, argv[0], &fa, NULL, (char *const *)argv, environ);
  posix_spawn_file_actions_destroy(&fa);
  close(in[0]);
  close(out[1]);
  if (rc != 0) {
    fprintf(stderr, "lc_mock_start: spawn %s: %s\n", argv[0], strerror(rc));
    close(in[1]);
    close(out[0]);
    m->pid = -1;
    lc_mock_stop(m);
    return -1;
  }
  m->stdin_fd = in[1];
  m->port = read_port(out[0]);
  close(out[0]);
  if (m->port <= 0) {
    fprintf(stderr, "lc_mock_start: mock did not report a port\n");
    lc_mock_stop(m);
    return -1;
  }
  snprintf(m->base_url, sizeof m->base_url, "http://127.0.0.1:%d", m->port);
  return 0;
}

int lc_mock_start_args(struct lc_mock *m, const char *script_json, const char *const *extra_args) {
  char path[] = "/tmp/lc-mock-XXXXXX.json";
  int fd = mkstemps(path, 5);
  if (fd < 0) return -1;
  size_t n = strlen(script_json);
  int ok = write(fd, script_json, n) == (ssize_t)n;
  close(fd);
  if (!ok) {
    unlink(path);
    return -1;
  }
  return start(m, path, extra_args, path); /* on failure stop() removed the file */
}

int lc_mock_start_file(struct lc_mock *m, const char *path, const char *const *extra_args) {
  return start(m, path, extra_args, NULL);
}

int lc_mock_start(struct lc_mock *m, const char *script_json) {
  return lc_mock_start_args(m, script_json, NULL);
}

int lc_mock_stop(struct lc_mock *m) {
  int status = -1;
  if (m->pid > 0) {
    kill(m->pid, SIGTERM);
    int st;
    while (waitpid(m->pid, &st, 0) < 0 && errno == EINTR) {
    }
    status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    m->pid = -1;
  }
  if (m->stdin_fd >= 0) close(m->stdin_fd);
  m->stdin_fd = -1;
  if (m->script_path[0]) unlink(m->script_path);
  m->script_path[0] = '\0';
  m->exit_status = status;
  return status;
}

struct sink {
  char *p;
  size_t len;
};

static size_t on_data(char *p, size_t size, size_t n, void *ud) {
  struct sink *s = ud;
  char *q = realloc(s->p, s->len + size * n + 1);
  if (!q) return 0;
  s->p = q;
  memcpy(s->p + s->len, p, size * n);
  s->len += size * n;
  s->p[s->len] = '\0';
  return size * n;
}

/* One control call; returns the body (malloc'd) on a 200, else NULL. */
static char *control(struct lc_mock *m, const char *method, const char *path, const char *body) {
  CURL *h = curl_easy_init();
  if (!h) return NULL;
  char url[256];
  snprintf(url, sizeof url, "%s%s", m->base_url, path);
  struct sink s = {0};
  curl_easy_setopt(h, CURLOPT_URL, url);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &s);
  curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 10000L);
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  if (strcmp(method, "POST") == 0) {
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body ? body : "");
  }
  long code = 0;
  CURLcode rc = curl_easy_perform(h);
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
  curl_easy_cleanup(h);
  if (rc != CURLE_OK || code != 200) {
    if (code) fprintf(stderr, "lc-mockllm %s %s: %ld %s\n", method, path, code, s.p ? s.p : "");
    free(s.p);
    return NULL;
  }
  if (!s.p) s.p = calloc(1, 1);
  return s.p;
}

char *lc_mock_requests(struct lc_mock *m) { return control(m, "GET", "/_requests", NULL); }

char *lc_mock_stats(struct lc_mock *m) { return control(m, "GET", "/_stats", NULL); }

int lc_mock_count_requests(struct lc_mock *m, const char *path) {
  char *text = lc_mock_requests(m);
  cJSON *arr = text ? cJSON_Parse(text) : NULL;
  free(text);
  if (!arr) return -1;
  int n = 0;
  const cJSON *e;
  cJSON_ArrayForEach(e, arr) {
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(e, "path");
    if (cJSON_IsString(p) && strcmp(p->valuestring, path) == 0) n++;
  }
  cJSON_Delete(arr);
  return n;
}

int lc_mock_set_script(struct lc_mock *m, const char *script_json) {
  char *r = control(m, "POST", "/_script", script_json);
  int rc = r ? 0 : -1;
  free(r);
  return rc;
}

int lc_mock_reset(struct lc_mock *m) {
  char *r = control(m, "POST", "/_reset", NULL);
  int rc = r ? 0 : -1;
  free(r);
  return rc;
}

char *lc_mock_request_body(struct lc_mock *m, int i) {
  char *log = lc_mock_requests(m);
  if (!log) return NULL;
  cJSON *a = cJSON_Parse(log);
  free(log);
  cJSON *r = a ? cJSON_GetArrayItem(a, i) : NULL;
  char *s = r ? cJSON_PrintUnformatted(cJSON_GetObjectItem(r, "body")) : NULL;
  cJSON_Delete(a);
  return s;
}

void lc_mock_assert_request_has(struct lc_mock *m, int i, const char *needle) {
  char *b = lc_mock_request_body(m, i);
  ck_assert_msg(b != NULL, "no request %d", i);
  ck_assert_msg(strstr(b, needle) != NULL, "request %d lacks [%s]: %s", i, needle, b);
  cJSON_free(b);
}
