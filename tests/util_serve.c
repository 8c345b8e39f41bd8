/* util_serve.c: see util_serve.h. */
#include "util_serve.h"

#include <check.h>
#include <curl/curl.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "util_common.h"

void lc_sd_setup(struct lc_sd *d) {
  memset(d, 0, sizeof *d);
  snprintf(d->dir, sizeof d->dir, "/tmp/lc_sd_XXXXXX");
  ck_assert_ptr_nonnull(mkdtemp(d->dir));
  snprintf(d->agents, sizeof d->agents, "%s/agents", d->dir);
  mkdir(d->agents, 0700);
  snprintf(d->store, sizeof d->store, "%s/runs.db", d->dir);
  snprintf(d->tokens, sizeof d->tokens, "%s/tokens", d->dir);
  FILE *f = fopen(d->tokens, "w");
  ck_assert_ptr_nonnull(f);
  fputs(LC_SD_TOKEN " alice\n" LC_SD_TOKEN_B " bob\n", f);
  fclose(f);
}

void lc_sd_agent(struct lc_sd *d, const char *name, const char *script) {
  char p[400];
  snprintf(p, sizeof p, "%s/%s.lua", d->agents, name);
  FILE *f = fopen(p, "w");
  ck_assert_ptr_nonnull(f);
  fputs(script, f);
  fclose(f);
}

void lc_sd_start(struct lc_sd *d) { ck_assert_msg(lc_sd_try_start(d) == 0, "the daemon exited at start"); }

int lc_sd_try_start(struct lc_sd *d) {
  static int gen;
  snprintf(d->log, sizeof d->log, "%s/log%d", d->dir, ++gen);
  d->pid = fork();
  ck_assert_int_ge(d->pid, 0);
  if (d->pid == 0) {
    int fd = open(d->log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    dup2(fd, 2);
    setenv("OPENAI_API_KEY", "sk-test-not-a-key", 1);
    for (int i = 0; i < 4; i++)
      if (d->env[i][0]) putenv(d->env[i]);
    char cmd[4096];
    snprintf(cmd, sizeof cmd,
             "exec %s/luact serve --listen 127.0.0.1:0 --store %s --tokens %s %s %s",
             LC_BINARY_DIR, d->store, d->tokens, d->args, d->agents);
    execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
    _exit(127);
  }
  /* Polls the log until the daemon says where it listens (or dies). */
  for (;;) {
    char *t = lc_test_read_file(d->log, NULL);
    const char *p = t ? strstr(t, "listening on 127.0.0.1:") : NULL;
    if (p) {
      d->port = atoi(p + strlen("listening on 127.0.0.1:"));
      free(t);
      break;
    }
    free(t);
    int st;
    if (waitpid(d->pid, &st, WNOHANG) != 0) {
      d->pid = 0;
      return -1;
    }
    lc_test_nap_ms(20); /* polling the log file: nothing else tells */
  }
  ck_assert_int_gt(d->port, 0);
  return 0;
}

int lc_sd_stop(struct lc_sd *d, int sig) {
  int st = 0;
  if (d->pid <= 0) return 0; /* already reaped: never kill(0, ...) */
  kill(d->pid, sig);
  waitpid(d->pid, &st, 0);
  d->pid = 0;
  return st;
}

void lc_sd_stop_clean(struct lc_sd *d) {
  int st = lc_sd_stop(d, SIGTERM);
  ck_assert_msg(lc_test_exit_code(st) == 0, "the daemon ended with status %d (log %s)",
                lc_test_exit_code(st), d->log);
}

void lc_sd_js_dir(char *out, size_t n) {
  char mod[800];
  snprintf(out, n, "%s/tests/daemon/js", lc_test_source_dir());
  snprintf(mod, sizeof mod, "%s/node_modules/@langchain/langgraph-sdk/package.json", out);
  ck_assert_msg(access(mod, R_OK) == 0,
                "the SDK is not installed: run `npm ci` in %s (scripts/test does)", out);
}

void lc_sd_rm(struct lc_sd *d) {
  char cmd[400];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", d->dir);
  ck_assert_int_eq(system(cmd), 0);
}

static size_t on_data(char *p, size_t sz, size_t n, void *ud) {
  struct lc_sresp *r = ud;
  char *b = realloc(r->body, r->len + sz * n + 1);
  if (!b) return 0;
  memcpy(b + r->len, p, sz * n);
  r->body = b;
  r->len += sz * n;
  b[r->len] = 0;
  return sz * n;
}

struct lc_sresp lc_sd_req(struct lc_sd *d, const char *method, const char *path,
                          const char *body, const char *token, const char *extra) {
  struct lc_sresp r = lc_sd_req_try(d, method, path, body, token, extra);
  ck_assert_msg(r.code, "%s %s: no answer", method, path);
  return r;
}

struct lc_sresp lc_sd_req_try(struct lc_sd *d, const char *method, const char *path,
                              const char *body, const char *token, const char *extra) {
  struct lc_sresp r = {0};
  r.body = calloc(1, 1);
  CURL *c = curl_easy_init();
  char url[700];
  snprintf(url, sizeof url, "http://127.0.0.1:%d%s", d->port, path);
  curl_easy_setopt(c, CURLOPT_URL, url);
  curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
  struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
  char auth[200];
  if (token) {
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", token);
    h = curl_slist_append(h, auth);
  }
  if (extra) h = curl_slist_append(h, extra);
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
  if (body) curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &r);
  CURLcode rc = curl_easy_perform(c);
  if (rc == CURLE_OK) curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.code);
  else r.code = 0;
  curl_slist_free_all(h);
  curl_easy_cleanup(c);
  return r;
}

void lc_sresp_free(struct lc_sresp *r) {
  free(r->body);
  r->body = NULL;
}

cJSON *lc_sd_expect(struct lc_sd *d, const char *method, const char *path, const char *body,
                    long code) {
  struct lc_sresp r = lc_sd_req(d, method, path, body, LC_SD_TOKEN, NULL);
  ck_assert_msg(r.code == code, "%s %s: got %ld, want %ld: %s", method, path, r.code, code,
                r.body);
  cJSON *j = cJSON_Parse(r.body);
  lc_sresp_free(&r);
  return j;
}

int lc_sev_parse(const char *body, struct lc_sev **out) {
  int n = 0, cap = 16;
  struct lc_sev *ev = calloc((size_t)cap, sizeof *ev);
  struct lc_sev cur;
  memset(&cur, 0, sizeof cur);
  int have = 0;
  for (const char *p = body; p && *p;) {
    const char *nl = strchr(p, '\n');
    size_t len = nl ? (size_t)(nl - p) : strlen(p);
    if (len == 0) { /* the event ends */
      if (have) {
        if (n == cap) ev = realloc(ev, (size_t)(cap *= 2) * sizeof *ev);
        ev[n++] = cur;
      }
      memset(&cur, 0, sizeof cur);
      have = 0;
    } else if (!strncmp(p, "event: ", 7)) {
      snprintf(cur.event, sizeof cur.event, "%.*s", (int)(len - 7), p + 7);
      have = 1;
    } else if (!strncmp(p, "id: ", 4)) {
      snprintf(cur.id, sizeof cur.id, "%.*s", (int)(len - 4), p + 4);
    } else if (!strncmp(p, "data: ", 6)) {
      cur.data = cJSON_ParseWithLength(p + 6, len - 6);
    }
    p = nl ? nl + 1 : NULL;
  }
  if (have) cJSON_Delete(cur.data); /* a torn last event */
  *out = ev;
  return n;
}

void lc_sev_free(struct lc_sev *ev, int n) {
  for (int i = 0; i < n; i++) cJSON_Delete(ev[i].data);
  free(ev);
}

static void id_parts(const char *s, long v[3]) {
  v[0] = v[1] = v[2] = 0;
  char *e;
  v[0] = strtol(s, &e, 10);
  if (*e == '.') v[1] = strtol(e + 1, &e, 10);
  if (*e == '.') v[2] = strtol(e + 1, &e, 10);
}

int lc_sev_idcmp(const char *a, const char *b) {
  long x[3], y[3];
  id_parts(a, x);
  id_parts(b, y);
  for (int i = 0; i < 3; i++)
    if (x[i] != y[i]) return x[i] < y[i] ? -1 : 1;
  return 0;
}
