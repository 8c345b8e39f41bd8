/* check_serve.c: `luact serve` from the outside: the daemon started on a
 * free loopback port, driven over HTTP with libcurl (every route, its
 * error cases, tenants, streams and their resume, interrupts, restarts
 * and SIGKILL). */
#include <check.h>
#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "util_common.h"
#include "util_serve.h"
#include "util_mock.h"
#include "util_pg.h"

#define CANARY "sk-canary-5f3e9a1b7c2d"

struct daemon {
  char dir[256], agents[300], store[300], log[300], tokens[300];
  pid_t pid;
  int port;
};

static void write_file(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  ck_assert_ptr_nonnull(f);
  fputs(text, f);
  fclose(f);
}

static const char echo_agent[] =
    "return {\n"
    "  name = 'echo', description = 'echoes its input',\n"
    "  input_schema = {type = 'object'}, output_schema = {type = 'object'},\n"
    "  run = function(input, ctx)\n"
    "    local t = luact.now()\n"
    "    return {echo = input, n = (ctx.values and ctx.values.n or 0) + 1}\n"
    "  end,\n"
    "}\n";

static const char asker_agent[] =
    "return function(input, ctx)\n"
    "  local name = luact.ask('your name?')\n"
    "  return {hello = name}\n"
    "end\n";

/* Sleeps in steps (each a journaled effect): long enough to be killed. */
static const char slow_agent[] =
    "return function(input, ctx)\n"
    "  local n = (type(input) == 'table' and input.steps) or 5\n"
    "  for i = 1, n do luact.sleep(0.05); luact.now() end\n"
    "  return {done = n}\n"
    "end\n";

/* Tries to leak a provider key and a bearer token. */
static const char leak_agent[] =
    "return function(input, ctx)\n"
    "  local k = os.getenv('OPENAI_API_KEY')\n"
    "  luact.now()\n"
    "  error('leaking ' .. k)\n"
    "end\n";

static const char leak2_agent[] =
    "return function(input, ctx)\n"
    "  return {key = os.getenv('OPENAI_API_KEY'), tok = 'tok-alice-secret-1'}\n"
    "end\n";

/* luact.react with one tool; the model is lc-mockllm (OPENAI_BASE_URL). */
static const char react_agent[] =
    "local add = luact.tool{ name = 'add', description = 'Adds two numbers.',\n"
    "  params = { type = 'object', properties = { a = { type = 'number' },\n"
    "    b = { type = 'number' } }, required = { 'a', 'b' } },\n"
    "  fn = function(args) return args.a + args.b end }\n"
    "return { name = 'react', run = function(input, ctx)\n"
    "  local r = luact.react{ model = 'openai:mock-gpt', tools = { add },\n"
    "    question = input.question, stream = true }\n"
    "  return { status = r.status, answer = r.answer or r.reason }\n"
    "end }\n";

static char model_url[128]; /* OPENAI_BASE_URL for the daemon, when set */
static char shipping_url[128]; /* SHOPBOT_SHIPPING_URL, when set */
static char shopbot_data[300];
static char agents_override[600]; /* serve this folder instead of d->agents */

/* luact.store from a script: writes, reads back, searches. */
static const char sleeper_agent[] =
    "return function(input, ctx) luact.sleep(input.s) return {slept = input.s} end\n";

static const char single_agent[] =
    "return { max_runs = 1, run = function(input, ctx) luact.sleep(60) return {} end }\n";

static const char gate_agent[] =
    "return { max_runs = 1, run = function(input, ctx)\n"
    "  if type(input) == 'table' and input.hold then luact.sleep(60) return {} end\n"
    "  return {said = luact.ask('q?')}\n"
    "end }\n";

/* Its store write is the one the stall hook holds (key "stall"). */
static const char staller_agent[] =
    "return function(input, ctx)\n"
    "  luact.store.put({'held'}, 'stall', {x = 1})\n"
    "  return {wrote = true}\n"
    "end\n";

static const char mem_agent[] =
    "return function(input, ctx)\n"
    "  luact.store.put({'notes', ctx.run_id}, 'n1', {text = input.text})\n"
    "  local v = luact.store.get({'notes', ctx.run_id}, 'n1')\n"
    "  local found = luact.store.search({'notes'}, {limit = 100})\n"
    "  local ok, err = pcall(luact.store.put, {}, 'k', {})\n"
    "  return {got = v.text, found = #found, refused = not ok}\n"
    "end\n";

/* TCase "pg": the same flows with the store on a real PostgreSQL (a
 * fresh database per daemon folder; tests/util_pg.h). */
static struct lc_pg serve_pg;
static int use_pg;
static void pg_up(void) { ck_assert_int_eq(lc_pg_start(&serve_pg), 0); }
static void pg_down(void) { lc_pg_stop(&serve_pg); }
static void on_pg(void) {
  ck_assert_msg(serve_pg.url[0], "no PostgreSQL server (scripts/pg-tmp start failed)");
  use_pg = 1;
}

static void setup_dir(struct daemon *d) {
  memset(d, 0, sizeof *d);
  snprintf(d->dir, sizeof d->dir, "/tmp/lc_serve_XXXXXX");
  ck_assert_ptr_nonnull(mkdtemp(d->dir));
  snprintf(d->agents, sizeof d->agents, "%s/agents", d->dir);
  mkdir(d->agents, 0700);
  snprintf(d->store, sizeof d->store, "%s/runs.db", d->dir);
  if (use_pg) ck_assert_int_eq(lc_pg_newdb(&serve_pg, d->store, sizeof d->store), 0);
  snprintf(d->tokens, sizeof d->tokens, "%s/tokens", d->dir);
  char p[400];
  snprintf(p, sizeof p, "%s/echo.lua", d->agents);
  write_file(p, echo_agent);
  snprintf(p, sizeof p, "%s/asker.lua", d->agents);
  write_file(p, asker_agent);
  snprintf(p, sizeof p, "%s/slow.lua", d->agents);
  write_file(p, slow_agent);
  snprintf(p, sizeof p, "%s/leak.lua", d->agents);
  write_file(p, leak_agent);
  snprintf(p, sizeof p, "%s/leak2.lua", d->agents);
  write_file(p, leak2_agent);
  snprintf(p, sizeof p, "%s/sleeper.lua", d->agents);
  write_file(p, sleeper_agent);
  snprintf(p, sizeof p, "%s/single.lua", d->agents);
  write_file(p, single_agent);
  snprintf(p, sizeof p, "%s/gate.lua", d->agents);
  write_file(p, gate_agent);
  snprintf(p, sizeof p, "%s/mem.lua", d->agents);
  write_file(p, mem_agent);
  snprintf(p, sizeof p, "%s/react.lua", d->agents);
  write_file(p, react_agent);
  write_file(d->tokens, "# token tenant\ntok-alice-secret-1 alice\ntok-bob-secret-2 bob\n");
}

/* Starts the daemon on port 0 and reads the port it got from its log. */
static void start(struct daemon *d, const char *extra) {
  static int gen;
  snprintf(d->log, sizeof d->log, "%s/log%d", d->dir, ++gen);
  d->pid = fork();
  ck_assert_int_ge(d->pid, 0);
  if (d->pid == 0) {
    int fd = open(d->log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    dup2(fd, 2);
    setenv("OPENAI_API_KEY", CANARY, 1);
    if (model_url[0]) setenv("OPENAI_BASE_URL", model_url, 1);
    if (shipping_url[0]) {
      setenv("SHOPBOT_SHIPPING_URL", shipping_url, 1);
      setenv("SHOPBOT_DATA", shopbot_data, 1);
      setenv("LUACT_MODEL", "openai:mock-gpt", 1);
    }
    char cmd[4096];
    snprintf(cmd, sizeof cmd,
             "exec %s/luact serve --listen 127.0.0.1:0 --store %s --max-body 4096 --tokens %s %s %s",
             LC_BINARY_DIR, d->store, d->tokens, extra ? extra : "",
             agents_override[0] ? agents_override : d->agents);
    execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
    _exit(127);
  }
  /* Drive until the log says where it listens (or the daemon died). */
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
    ck_assert_msg(waitpid(d->pid, &st, WNOHANG) == 0, "the daemon exited at start");
    lc_test_nap_ms(20);
  }
  ck_assert_int_gt(d->port, 0);
}

/* Removes the case's folder (after the daemon stopped). */
static void rm_dir(struct daemon *d) {
  char cmd[400];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", d->dir);
  ck_assert_int_eq(system(cmd), 0);
}

static int stop(struct daemon *d, int sig) {
  int st = 0;
  kill(d->pid, sig);
  waitpid(d->pid, &st, 0);
  return st;
}

struct resp {
  int hang_up; /* close the connection after the first event */
  long code;
  char *body;
  size_t len;
  char *hdrs;
  size_t hlen;
};

static size_t on_data(char *p, size_t sz, size_t n, void *ud) {
  struct resp *r = ud;
  char *b = realloc(r->body, r->len + sz * n + 1);
  if (!b) return 0;
  memcpy(b + r->len, p, sz * n);
  r->body = b;
  r->len += sz * n;
  b[r->len] = 0;
  if (r->hang_up && strstr(r->body, "\n\n")) return 0; /* the client leaves */
  return sz * n;
}

static size_t on_hdr(char *p, size_t sz, size_t n, void *ud) {
  struct resp *r = ud;
  char *b = realloc(r->hdrs, r->hlen + sz * n + 1);
  if (!b) return 0;
  memcpy(b + r->hlen, p, sz * n);
  r->hdrs = b;
  r->hlen += sz * n;
  b[r->hlen] = 0;
  return sz * n;
}

/* One request; token NULL: none. extra: one more header or NULL. */
static struct resp req_h(struct daemon *d, const char *method, const char *path,
                         const char *body, const char *token, const char *extra, int hang_up) {
  struct resp r = {0};
  r.hang_up = hang_up;
  r.body = calloc(1, 1);
  CURL *c = curl_easy_init();
  char url[600];
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
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_hdr);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, &r);
  CURLcode rc = curl_easy_perform(c);
  ck_assert_msg(rc == CURLE_OK || (hang_up && rc == CURLE_WRITE_ERROR), "%s %s: %s", method,
                path, curl_easy_strerror(rc));
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.code);
  curl_slist_free_all(h);
  curl_easy_cleanup(c);
  return r;
}

static struct resp req(struct daemon *d, const char *method, const char *path, const char *body,
                       const char *token, const char *extra) {
  return req_h(d, method, path, body, token, extra, 0);
}

static void resp_free(struct resp *r) {
  free(r->body);
  free(r->hdrs);
}

#define A "tok-alice-secret-1"
#define B "tok-bob-secret-2"

/* A request that must answer code; returns the parsed body (or NULL). */
static cJSON *expect(struct daemon *d, const char *method, const char *path, const char *body,
                     const char *token, long code) {
  struct resp r = req(d, method, path, body, token, NULL);
  ck_assert_msg(r.code == code, "%s %s: got %ld, want %ld: %s", method, path, r.code, code,
                r.body);
  cJSON *j = cJSON_Parse(r.body);
  resp_free(&r);
  return j;
}

static const char *str(const cJSON *o, const char *k) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
  return cJSON_IsString(v) ? v->valuestring : "";
}

START_TEST(help_lists_options) {
  char cmd[600];
  snprintf(cmd, sizeof cmd, "%s/luact serve --help", LC_BINARY_DIR);
  FILE *p = popen(cmd, "r");
  char buf[8192];
  size_t n = fread(buf, 1, sizeof buf - 1, p);
  buf[n] = 0;
  ck_assert_int_eq(pclose(p), 0);
  const char *opts[] = {"--listen", "--store", "--store-sync", "--tokens", "--no-auth",
                        "--max-runs", "--max-body", "--max-conns", "--max-streams",
                        "--conn-timeout", "--grace", "--workers", "--help"};
  for (size_t i = 0; i < sizeof opts / sizeof *opts; i++)
    ck_assert_msg(strstr(buf, opts[i]), "--help misses %s", opts[i]);
}
END_TEST

START_TEST(no_auth_only_on_loopback) {
  struct daemon d;
  setup_dir(&d);
  char cmd[2400];
  snprintf(cmd, sizeof cmd, "%s/luact serve --no-auth --listen 0.0.0.0:0 --store %s %s 2>/dev/null",
           LC_BINARY_DIR, d.store, d.agents);
  int st = system(cmd);
  ck_assert_int_eq(lc_test_exit_code(st), 2);
  snprintf(cmd, sizeof cmd, "%s/luact serve --store %s %s 2>/dev/null", LC_BINARY_DIR, d.store,
           d.agents);
  st = system(cmd); /* neither --tokens nor --no-auth */
  ck_assert_int_eq(lc_test_exit_code(st), 2);
  rm_dir(&d);
}
END_TEST

START_TEST(agents_auth_and_limits) {
  struct daemon d;
  setup_dir(&d);
  start(&d, NULL);
  cJSON *j = expect(&d, "GET", "/healthz", NULL, NULL, 200);
  cJSON_Delete(j);
  j = expect(&d, "GET", "/readyz", NULL, NULL, 401);
  cJSON_Delete(j);
  j = expect(&d, "GET", "/readyz", NULL, "not-a-token", 401);
  cJSON_Delete(j);
  j = expect(&d, "GET", "/readyz", NULL, A, 200);
  cJSON_Delete(j);
  for (int k = 0; k < 2; k++) {
    const char *base = k ? "/assistants" : "/agents";
    char p[200];
    snprintf(p, sizeof p, "%s/search", base);
    j = expect(&d, "POST", p, "{\"limit\":100}", A, 200);
    ck_assert_int_eq(cJSON_GetArraySize(j), 10);
    cJSON_Delete(j);
    snprintf(p, sizeof p, "%s/echo", base);
    j = expect(&d, "GET", p, NULL, A, 200);
    ck_assert_str_eq(str(j, "description"), "echoes its input");
    cJSON_Delete(j);
    snprintf(p, sizeof p, "%s/echo/schemas", base);
    j = expect(&d, "GET", p, NULL, A, 200);
    ck_assert_str_eq(str(cJSON_GetObjectItem(j, "input_schema"), "type"), "object");
    cJSON_Delete(j);
    snprintf(p, sizeof p, "%s/nope", base);
    j = expect(&d, "GET", p, NULL, A, 404);
    cJSON_Delete(j);
  }
  /* Bad JSON, a body that is no object, an unknown agent, no agent. */
  j = expect(&d, "POST", "/runs/wait", "{not json", A, 400);
  cJSON_Delete(j);
  j = expect(&d, "POST", "/runs/wait", "[1,2]", A, 422);
  cJSON_Delete(j);
  j = expect(&d, "POST", "/runs/wait", "{\"assistant_id\":\"nope\"}", A, 404);
  cJSON_Delete(j);
  j = expect(&d, "POST", "/runs", "{\"input\":1}", A, 422);
  cJSON_Delete(j);
  j = expect(&d, "POST", "/threads", "{bad", A, 400);
  cJSON_Delete(j);
  j = expect(&d, "GET", "/no/such/route", NULL, A, 404);
  cJSON_Delete(j);
  /* Over --max-body (4096): 413, and the daemon still answers. */
  char *big = malloc(10000);
  memset(big, ' ', 9999);
  big[0] = '{';
  memcpy(big + 9990, "\"a\":1}", 6);
  big[9996] = 0;
  j = expect(&d, "POST", "/threads", big, A, 413);
  cJSON_Delete(j);
  free(big);
  j = expect(&d, "GET", "/healthz", NULL, NULL, 200);
  cJSON_Delete(j);
  struct resp m = req(&d, "GET", "/metrics", NULL, A, NULL);
  ck_assert_int_eq(m.code, 200);
  ck_assert_ptr_nonnull(strstr(m.body, "# TYPE luact_runs_created_total counter"));
  ck_assert_ptr_nonnull(strstr(m.body, "luact_http_rejected_total{reason=\"body_size\"} 1"));
  resp_free(&m);
  ck_assert_int_eq(lc_test_exit_code(stop(&d, SIGTERM)), 0);
  rm_dir(&d);
}
END_TEST

START_TEST(threads_and_tenants) {
  struct daemon d;
  setup_dir(&d);
  start(&d, NULL);
  cJSON *t = expect(&d, "POST", "/threads", "{\"metadata\":{\"user\":\"ann\"}}", A, 200);
  char tid[80], p[300];
  snprintf(tid, sizeof tid, "%s", str(t, "thread_id"));
  ck_assert_str_eq(str(t, "status"), "idle");
  cJSON_Delete(t);
  snprintf(p, sizeof p, "/threads/%s", tid);
  cJSON *j = expect(&d, "GET", p, NULL, A, 200);
  cJSON_Delete(j);
  /* Another tenant sees nothing of it: 404, never 403. */
  j = expect(&d, "GET", p, NULL, B, 404);
  cJSON_Delete(j);
  j = expect(&d, "PATCH", p, "{\"metadata\":{\"x\":1}}", B, 404);
  cJSON_Delete(j);
  j = expect(&d, "PATCH", p, "{\"metadata\":{\"x\":1}}", A, 200);
  ck_assert_str_eq(str(cJSON_GetObjectItem(j, "metadata"), "user"), "ann");
  cJSON_Delete(j);
  j = expect(&d, "POST", "/threads/search", "{\"metadata\":{\"x\":1}}", A, 200);
  ck_assert_int_eq(cJSON_GetArraySize(j), 1);
  cJSON_Delete(j);
  j = expect(&d, "POST", "/threads/search", "{}", B, 200);
  ck_assert_int_eq(cJSON_GetArraySize(j), 0);
  cJSON_Delete(j);
  /* Two runs on the thread: the second sees the first's values. */
  snprintf(p, sizeof p, "/threads/%s/runs/wait", tid);
  j = expect(&d, "POST", p, "{\"assistant_id\":\"echo\",\"input\":{\"a\":1}}", A, 200);
  ck_assert_int_eq(cJSON_GetObjectItem(j, "n")->valueint, 1);
  cJSON_Delete(j);
  j = expect(&d, "POST", p, "{\"assistant_id\":\"echo\",\"input\":{\"a\":2}}", A, 200);
  ck_assert_int_eq(cJSON_GetObjectItem(j, "n")->valueint, 2);
  cJSON_Delete(j);
  j = expect(&d, "POST", p, "{\"assistant_id\":\"echo\"}", B, 404);
  cJSON_Delete(j);
  /* The Agent Protocol's forms: thread_id and agent_id in the body of
   * POST /runs/wait, {run, values} back; runs searched by thread. */
  char body[300];
  snprintf(body, sizeof body, "{\"agent_id\":\"echo\",\"thread_id\":\"%s\",\"input\":{\"a\":3}}",
           tid);
  j = expect(&d, "POST", "/runs/wait", body, A, 200);
  ck_assert_int_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "values"), "n")->valueint, 3);
  ck_assert_str_eq(str(cJSON_GetObjectItem(j, "run"), "thread_id"), tid);
  ck_assert_str_eq(str(cJSON_GetObjectItem(j, "run"), "status"), "success");
  char aprun[80], ap[200];
  snprintf(aprun, sizeof aprun, "%s", str(cJSON_GetObjectItem(j, "run"), "run_id"));
  cJSON_Delete(j);
  snprintf(ap, sizeof ap, "/runs/%s/wait", aprun);
  j = expect(&d, "GET", ap, NULL, A, 200);
  ck_assert_str_eq(str(cJSON_GetObjectItem(j, "run"), "run_id"), aprun);
  cJSON_Delete(j);
  snprintf(body, sizeof body, "{\"thread_id\":\"%s\",\"status\":\"success\",\"limit\":100}", tid);
  j = expect(&d, "POST", "/runs/search", body, A, 200);
  ck_assert_int_eq(cJSON_GetArraySize(j), 3);
  cJSON_Delete(j);
  j = expect(&d, "POST", "/runs/search", body, B, 200);
  ck_assert_int_eq(cJSON_GetArraySize(j), 0);
  cJSON_Delete(j);
  snprintf(p, sizeof p, "/threads/%s/history", tid);
  j = expect(&d, "GET", p, NULL, A, 200);
  ck_assert_int_eq(cJSON_GetArraySize(j), 3);
  cJSON_Delete(j);
  snprintf(p, sizeof p, "/threads/%s/state", tid);
  j = expect(&d, "GET", p, NULL, A, 200);
  ck_assert_int_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "values"), "n")->valueint, 3);
  cJSON_Delete(j);
  snprintf(p, sizeof p, "/threads/%s/copy", tid);
  j = expect(&d, "POST", p, "{}", A, 200);
  ck_assert_str_ne(str(j, "thread_id"), tid);
  ck_assert_int_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "values"), "n")->valueint, 3);
  cJSON_Delete(j);
  snprintf(p, sizeof p, "/threads/%s/runs", tid);
  j = expect(&d, "GET", p, NULL, A, 200);
  ck_assert_int_eq(cJSON_GetArraySize(j), 3);
  char rid[80], rp[400];
  snprintf(rid, sizeof rid, "%s", str(cJSON_GetArrayItem(j, 0), "run_id"));
  ck_assert_str_eq(str(cJSON_GetArrayItem(j, 0), "status"), "success");
  cJSON_Delete(j);
  snprintf(rp, sizeof rp, "/threads/%s/runs/%s", tid, rid);
  j = expect(&d, "GET", rp, NULL, A, 200);
  cJSON_Delete(j);
  j = expect(&d, "GET", rp, NULL, B, 404);
  cJSON_Delete(j);
  snprintf(rp, sizeof rp, "/threads/%s/runs/%s/join", tid, rid);
  j = expect(&d, "GET", rp, NULL, A, 200);
  cJSON_Delete(j);
  snprintf(rp, sizeof rp, "/threads/%s/runs/%s", tid, rid);
  j = expect(&d, "DELETE", rp, NULL, B, 404);
  cJSON_Delete(j);
  j = expect(&d, "DELETE", rp, NULL, A, 204);
  cJSON_Delete(j);
  j = expect(&d, "GET", rp, NULL, A, 404);
  cJSON_Delete(j);
  snprintf(p, sizeof p, "/threads/%s", tid);
  j = expect(&d, "DELETE", p, NULL, B, 404);
  cJSON_Delete(j);
  j = expect(&d, "DELETE", p, NULL, A, 204);
  cJSON_Delete(j);
  j = expect(&d, "GET", p, NULL, A, 404);
  cJSON_Delete(j);
  ck_assert_int_eq(lc_test_exit_code(stop(&d, SIGTERM)), 0);
  rm_dir(&d);
}
END_TEST

/* Waits (polling the API) until the run's luact_status is one of want. */
static void await_status(struct daemon *d, const char *path, const char *want) {
  for (;;) {
    cJSON *j = expect(d, "GET", path, NULL, A, 200);
    int done = strstr(want, str(j, "luact_status")) != NULL && *str(j, "luact_status");
    cJSON_Delete(j);
    if (done) return;
    lc_test_nap_ms(20);
  }
}

/* Waits (polling /metrics) until no run executes, and with queued also
 * none waits in the queue. */
static void await_idle(struct daemon *d, int queued) {
  for (;;) {
    struct resp m = req(d, "GET", "/metrics", NULL, A, NULL);
    int idle = strstr(m.body, "luact_runs{state=\"running\"} 0\n") != NULL &&
               (!queued || strstr(m.body, "luact_runs{state=\"queued\"} 0\n") != NULL);
    resp_free(&m);
    if (idle) return;
    lc_test_nap_ms(20);
  }
}

START_TEST(interrupt_resume_cancel_idempotency) {
  struct daemon d;
  setup_dir(&d);
  start(&d, NULL);
  cJSON *t = expect(&d, "POST", "/threads", "{}", A, 200);
  char tid[80], p[300], rp[400];
  snprintf(tid, sizeof tid, "%s", str(t, "thread_id"));
  cJSON_Delete(t);
  snprintf(p, sizeof p, "/threads/%s/runs/wait", tid);
  cJSON *j = expect(&d, "POST", p, "{\"assistant_id\":\"asker\"}", A, 200);
  const cJSON *intr = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "__interrupt__"), 0);
  ck_assert_str_eq(str(intr, "value"), "your name?");
  char rid[80];
  snprintf(rid, sizeof rid, "%s", str(intr, "id"));
  cJSON_Delete(j);
  /* The thread is interrupted; reject refuses a second run, enqueue takes it. */
  snprintf(p, sizeof p, "/threads/%s", tid);
  j = expect(&d, "GET", p, NULL, A, 200);
  ck_assert_str_eq(str(j, "status"), "interrupted");
  cJSON_Delete(j);
  snprintf(p, sizeof p, "/threads/%s/runs", tid);
  j = expect(&d, "POST", p, "{\"assistant_id\":\"echo\"}", A, 409);
  cJSON_Delete(j);
  j = expect(&d, "POST", p, "{\"assistant_id\":\"echo\",\"multitask_strategy\":\"enqueue\"}", A,
             200);
  char queued[80];
  snprintf(queued, sizeof queued, "%s", str(j, "run_id"));
  /* Accepted, not refused: it may have started already (a waiting run
   * does not hold its thread; on a fleet a claim takes it at once). */
  const char *qs = str(j, "status");
  ck_assert_msg(!strcmp(qs, "pending") || !strcmp(qs, "running") || !strcmp(qs, "success"), "%s",
                qs);
  cJSON_Delete(j);
  /* Restart in between: the question survives. */
  stop(&d, SIGKILL);
  start(&d, NULL);
  snprintf(p, sizeof p, "/threads/%s/runs/wait", tid);
  j = expect(&d, "POST", p, "{\"assistant_id\":\"asker\",\"command\":{\"resume\":\"Ann\"}}", A,
             200);
  /* The wait returns when the answered run ends; the enqueued run ends
   * too (below). */
  cJSON_Delete(j);
  snprintf(rp, sizeof rp, "/threads/%s/runs/%s", tid, rid);
  await_status(&d, rp, "finished");
  snprintf(rp, sizeof rp, "/threads/%s/runs/%s/join", tid, rid);
  j = expect(&d, "GET", rp, NULL, A, 200);
  cJSON_Delete(j);
  /* The same answer again is harmless; another is refused. */
  j = expect(&d, "POST", p, "{\"assistant_id\":\"asker\",\"command\":{\"resume\":\"Ann\"}}", A,
             200);
  cJSON_Delete(j);
  j = expect(&d, "POST", p, "{\"assistant_id\":\"asker\",\"command\":{\"resume\":\"Bo\"}}", A,
             409);
  cJSON_Delete(j);
  snprintf(rp, sizeof rp, "/threads/%s/runs/%s", tid, queued);
  await_status(&d, rp, "finished");
  /* Idempotency-Key: the same run twice. */
  struct resp r1 = req(&d, "POST", "/runs", "{\"assistant_id\":\"echo\"}", A, "Idempotency-Key: k1");
  struct resp r2 = req(&d, "POST", "/runs", "{\"assistant_id\":\"echo\"}", A, "Idempotency-Key: k1");
  struct resp r3 = req(&d, "POST", "/runs", "{\"assistant_id\":\"echo\"}", B, "Idempotency-Key: k1");
  ck_assert_int_eq(r1.code, 200);
  cJSON *a1 = cJSON_Parse(r1.body), *a2 = cJSON_Parse(r2.body), *a3 = cJSON_Parse(r3.body);
  ck_assert_str_eq(str(a1, "run_id"), str(a2, "run_id"));
  ck_assert_str_ne(str(a1, "run_id"), str(a3, "run_id")); /* keys are per tenant */
  cJSON_Delete(a1);
  cJSON_Delete(a2);
  cJSON_Delete(a3);
  resp_free(&r1);
  resp_free(&r2);
  resp_free(&r3);
  /* Cancel a waiting run: cancelled, and cancelling again changes nothing. */
  j = expect(&d, "POST", "/runs", "{\"assistant_id\":\"asker\"}", A, 200);
  snprintf(rid, sizeof rid, "%s", str(j, "run_id"));
  cJSON_Delete(j);
  snprintf(rp, sizeof rp, "/runs/%s", rid);
  await_status(&d, rp, "waiting_input");
  snprintf(rp, sizeof rp, "/runs/%s/cancel", rid);
  j = expect(&d, "POST", rp, NULL, B, 404);
  cJSON_Delete(j);
  j = expect(&d, "POST", rp, NULL, A, 202);
  cJSON_Delete(j);
  j = expect(&d, "POST", rp, NULL, A, 202);
  cJSON_Delete(j);
  snprintf(rp, sizeof rp, "/runs/%s", rid);
  j = expect(&d, "GET", rp, NULL, A, 200);
  ck_assert_str_eq(str(j, "luact_status"), "cancelled");
  cJSON_Delete(j);
  /* Immediate cancel of a running run: one terminal state, cancelled. */
  j = expect(&d, "POST", "/runs", "{\"assistant_id\":\"slow\",\"input\":{\"steps\":100000}}", A,
             200);
  snprintf(rid, sizeof rid, "%s", str(j, "run_id"));
  cJSON_Delete(j);
  snprintf(rp, sizeof rp, "/runs/%s", rid);
  await_status(&d, rp, "running");
  snprintf(rp, sizeof rp, "/runs/%s/cancel?action=interrupt&wait=1", rid);
  j = expect(&d, "POST", rp, NULL, A, 202);
  cJSON_Delete(j);
  snprintf(rp, sizeof rp, "/runs/%s", rid);
  await_status(&d, rp, "cancelled");
  /* Cooperative cancel: at the next effect. */
  j = expect(&d, "POST", "/runs", "{\"assistant_id\":\"slow\",\"input\":{\"steps\":100000}}", A,
             200);
  snprintf(rid, sizeof rid, "%s", str(j, "run_id"));
  cJSON_Delete(j);
  snprintf(rp, sizeof rp, "/runs/%s", rid);
  await_status(&d, rp, "running");
  snprintf(rp, sizeof rp, "/runs/%s/cancel", rid);
  j = expect(&d, "POST", rp, NULL, A, 202);
  cJSON_Delete(j);
  snprintf(rp, sizeof rp, "/runs/%s", rid);
  await_status(&d, rp, "cancelled");
  ck_assert_int_eq(lc_test_exit_code(stop(&d, SIGTERM)), 0);
  rm_dir(&d);
}
END_TEST

/* Events of an SSE body: ids in order (NULL for events without one). */
static int sse_ids(const char *body, char ids[][32], int max, int *ends) {
  int n = 0;
  *ends = 0;
  for (const char *p = body; (p = strstr(p, "event: ")); p++) {
    const char *nl = strchr(p, '\n');
    if (!strncmp(p, "event: end", 10)) (*ends)++;
    if (nl && !strncmp(nl + 1, "id: ", 4) && n < max) {
      sscanf(nl + 5, "%31s", ids[n]);
      n++;
    }
  }
  return n;
}

START_TEST(stream_and_resume) {
  struct daemon d;
  setup_dir(&d);
  start(&d, NULL);
  struct resp r = req(&d, "POST", "/runs/stream",
                      "{\"assistant_id\":\"slow\",\"input\":{\"steps\":3}}", A, NULL);
  ck_assert_int_eq(r.code, 200);
  ck_assert_ptr_nonnull(strstr(r.hdrs, "text/event-stream"));
  ck_assert_ptr_nonnull(strstr(r.body, "event: metadata"));
  char ids[64][32];
  int ends;
  int n = sse_ids(r.body, ids, 64, &ends);
  ck_assert_int_eq(ends, 1);
  /* header, one line per luact.now (a pure effect: its result line holds
   * its intent) x 3, values, end */
  ck_assert_int_ge(n, 6);
  for (int i = 1; i < n; i++) ck_assert_msg(strtod(ids[i], NULL) > strtod(ids[i - 1], NULL) ||
                                                (strtod(ids[i], NULL) == strtod(ids[i - 1], NULL) &&
                                                 strcmp(ids[i], ids[i - 1]) > 0),
                                            "ids not increasing: %s then %s", ids[i - 1], ids[i]);
  ck_assert_ptr_nonnull(strstr(r.body, "\"done\":3"));
  cJSON *meta = NULL;
  const char *m = strstr(r.body, "data: ");
  meta = cJSON_ParseWithLength(m + 6, strcspn(m + 6, "\n"));
  char rid[80], p[300], h[80];
  rid[0] = 0;
  snprintf(rid, sizeof rid, "%s", str(meta, "run_id"));
  cJSON_Delete(meta);
  /* Resume after each id: exactly the rest, no duplicate, no gap. */
  snprintf(p, sizeof p, "/runs/%s/stream", rid);
  for (int k = 0; k < n; k++) {
    snprintf(h, sizeof h, "Last-Event-ID: %.31s", ids[k]);
    struct resp r2 = req(&d, "GET", p, NULL, A, h);
    char ids2[64][32];
    int ends2;
    int n2 = sse_ids(r2.body, ids2, 64, &ends2);
    ck_assert_int_eq(n2, n - k - 1);
    for (int i = 0; i < n2; i++) ck_assert_str_eq(ids2[i], ids[k + 1 + i]);
    resp_free(&r2);
  }
  /* Another tenant cannot join it. */
  struct resp r3 = req(&d, "GET", p, NULL, B, NULL);
  ck_assert_int_eq(r3.code, 404);
  resp_free(&r3);
  /* Token deltas asked for, of a run that had none (no LLM call): no gap
   * to announce (check_serve_stream has the deltas and their gaps). */
  struct resp r4 = req(&d, "GET", "/runs/x/stream", NULL, A, NULL);
  ck_assert_int_eq(r4.code, 404);
  resp_free(&r4);
  snprintf(p, sizeof p, "/runs/%s/stream?stream_mode=messages", rid);
  struct resp r5 = req(&d, "GET", p, NULL, A, "Last-Event-ID: 2");
  ck_assert_ptr_null(strstr(r5.body, "event: luact/gap"));
  resp_free(&r5);
  resp_free(&r);
  /* The client leaves after the first event: the run goes on. */
  struct resp r6 = req_h(&d, "POST", "/runs/stream",
                         "{\"assistant_id\":\"slow\",\"input\":{\"steps\":6}}", A, NULL, 1);
  const char *m6 = strstr(r6.body, "data: ");
  ck_assert_ptr_nonnull(m6);
  cJSON *meta6 = cJSON_ParseWithLength(m6 + 6, strcspn(m6 + 6, "\n"));
  snprintf(p, sizeof p, "/runs/%s/join", str(meta6, "run_id"));
  cJSON_Delete(meta6);
  resp_free(&r6);
  cJSON *j6 = expect(&d, "GET", p, NULL, A, 200);
  ck_assert_int_eq(cJSON_GetObjectItem(j6, "done")->valueint, 6);
  cJSON_Delete(j6);
  ck_assert_int_eq(lc_test_exit_code(stop(&d, SIGTERM)), 0);
  rm_dir(&d);
}
END_TEST

START_TEST(store_items) {
  struct daemon d;
  setup_dir(&d);
  start(&d, NULL);
  cJSON *j = expect(&d, "PUT", "/store/items",
                    "{\"namespace\":[\"users\",\"ann\"],\"key\":\"prefs\",\"value\":{\"tz\":\"UTC\"}}",
                    A, 204);
  cJSON_Delete(j);
  j = expect(&d, "PUT", "/store/items",
             "{\"namespace\":[\"users\",\"bo\"],\"key\":\"prefs\",\"value\":{\"tz\":\"CET\"}}", A, 204);
  cJSON_Delete(j);
  j = expect(&d, "PUT", "/store/items", "{\"namespace\":[],\"key\":\"x\",\"value\":{}}", A, 422);
  cJSON_Delete(j);
  j = expect(&d, "PUT", "/store/items", "{oops", A, 400);
  cJSON_Delete(j);
  j = expect(&d, "GET", "/store/items?namespace=users.ann&key=prefs", NULL, A, 200);
  ck_assert_str_eq(str(cJSON_GetObjectItem(j, "value"), "tz"), "UTC");
  cJSON_Delete(j);
  j = expect(&d, "GET", "/store/items?namespace=users.ann&key=prefs", NULL, B, 404);
  cJSON_Delete(j);
  j = expect(&d, "POST", "/store/items/search", "{\"namespace_prefix\":[\"users\"]}", A, 200);
  ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(j, "items")), 2);
  cJSON_Delete(j);
  j = expect(&d, "POST", "/store/items/search",
             "{\"namespace_prefix\":[\"users\"],\"filter\":{\"tz\":\"CET\"}}", A, 200);
  ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(j, "items")), 1);
  cJSON_Delete(j);
  j = expect(&d, "POST", "/store/items/search", "{}", B, 200);
  ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(j, "items")), 0);
  cJSON_Delete(j);
  /* A client's number past long's range is a large limit or offset, not an
   * undefined cast (1e300 became LONG_MIN: a limit that listed nothing). */
  j = expect(&d, "POST", "/store/items/search", "{\"namespace_prefix\":[\"users\"],\"limit\":1e300}",
             A, 200);
  ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(j, "items")), 2);
  cJSON_Delete(j);
  j = expect(&d, "POST", "/store/items/search",
             "{\"namespace_prefix\":[\"users\"],\"offset\":1e300}", A, 200);
  ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(j, "items")), 0);
  cJSON_Delete(j);
  j = expect(&d, "POST", "/store/namespaces", "{\"max_depth\":1}", A, 200);
  ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(j, "namespaces")), 1);
  cJSON_Delete(j);
  j = expect(&d, "DELETE", "/store/items", "{\"namespace\":[\"users\",\"ann\"],\"key\":\"prefs\"}",
             A, 204);
  cJSON_Delete(j);
  j = expect(&d, "GET", "/store/items?namespace=users.ann&key=prefs", NULL, A, 404);
  cJSON_Delete(j);
  /* luact.store in a script: the run's tenant's store, through the API. */
  j = expect(&d, "POST", "/runs/wait", "{\"assistant_id\":\"mem\",\"input\":{\"text\":\"hi\"}}",
             A, 200);
  ck_assert_str_eq(str(j, "got"), "hi");
  ck_assert_int_eq(cJSON_GetObjectItem(j, "found")->valueint, 1);
  ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(j, "refused")));
  cJSON_Delete(j);
  j = expect(&d, "POST", "/store/items/search", "{\"namespace_prefix\":[\"notes\"]}", A, 200);
  ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(j, "items")), 1);
  ck_assert_str_eq(str(cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(j, "items"), 0),
                                           "value"), "text"), "hi");
  cJSON_Delete(j);
  j = expect(&d, "POST", "/store/items/search", "{\"namespace_prefix\":[\"notes\"]}", B, 200);
  ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(j, "items")), 0);
  cJSON_Delete(j);
  ck_assert_int_eq(lc_test_exit_code(stop(&d, SIGTERM)), 0);
  rm_dir(&d);
}
END_TEST

/* A provider key and a bearer token never reach a reply, an event or the
 * log. */
START_TEST(secrets_canary) {
  struct daemon d;
  setup_dir(&d);
  start(&d, NULL);
  struct resp r1 = req(&d, "POST", "/runs/wait", "{\"assistant_id\":\"leak\"}", A, NULL);
  struct resp r2 = req(&d, "POST", "/runs/wait", "{\"assistant_id\":\"leak2\"}", A, NULL);
  struct resp r3 = req(&d, "POST", "/runs/stream", "{\"assistant_id\":\"leak2\"}", A, NULL);
  struct resp r4 = req(&d, "GET", "/metrics", NULL, A, NULL);
  ck_assert_ptr_nonnull(strstr(r1.body, "__error__"));
  ck_assert_ptr_nonnull(strstr(r2.body, "\"key\""));
  const char *all[] = {r1.body, r2.body, r3.body, r4.body};
  for (int i = 0; i < 4; i++) {
    ck_assert_msg(!strstr(all[i], CANARY), "the key leaked: %s", all[i]);
    ck_assert_msg(!strstr(all[i], A), "the token leaked: %s", all[i]);
  }
  resp_free(&r1);
  resp_free(&r2);
  resp_free(&r3);
  resp_free(&r4);
  stop(&d, SIGTERM);
  char *log = lc_test_read_file(d.log, NULL);
  ck_assert_ptr_nonnull(log);
  ck_assert_msg(!strstr(log, CANARY), "the key is in the log");
  ck_assert_msg(!strstr(log, A), "the token is in the log");
  free(log);
  rm_dir(&d);
}
END_TEST

/* Cancel racing completion: each run ends in exactly one terminal state,
 * and the counters agree (one end per run). */
START_TEST(cancel_races_completion) {
  struct daemon d;
  setup_dir(&d);
  start(&d, NULL);
  enum { N = 20 };
  char ids[N][80];
  for (int i = 0; i < N; i++) {
    cJSON *j = expect(&d, "POST", "/runs", "{\"assistant_id\":\"echo\"}", A, 200);
    snprintf(ids[i], sizeof ids[i], "%s", str(j, "run_id"));
    cJSON_Delete(j);
    char p[300];
    snprintf(p, sizeof p, "/runs/%.80s/cancel%s", ids[i], i % 2 ? "?action=interrupt" : "");
    j = expect(&d, "POST", p, NULL, A, 202);
    cJSON_Delete(j);
  }
  int fin = 0, can = 0;
  for (int i = 0; i < N; i++) {
    char p[300];
    snprintf(p, sizeof p, "/runs/%.80s", ids[i]);
    await_status(&d, p, "finished cancelled");
    cJSON *j = expect(&d, "GET", p, NULL, A, 200);
    char was[32];
    snprintf(was, sizeof was, "%s", str(j, "luact_status"));
    fin += !strcmp(was, "finished");
    can += !strcmp(was, "cancelled");
    cJSON_Delete(j);
    snprintf(p, sizeof p, "/runs/%.80s/cancel", ids[i]); /* again: nothing changes */
    j = expect(&d, "POST", p, NULL, A, 202);
    ck_assert_str_eq(str(j, "luact_status"), was);
    cJSON_Delete(j);
  }
  ck_assert_int_eq(fin + can, N);
  struct resp m = req(&d, "GET", "/metrics", NULL, A, NULL);
  const char *pf = strstr(m.body, "luact_runs_ended_total{status=\"finished\"} ");
  const char *pc = strstr(m.body, "luact_runs_ended_total{status=\"cancelled\"} ");
  ck_assert(pf && pc);
  ck_assert_int_eq(atoi(pf + strlen("luact_runs_ended_total{status=\"finished\"} ")), fin);
  ck_assert_int_eq(atoi(pc + strlen("luact_runs_ended_total{status=\"cancelled\"} ")), can);
  resp_free(&m);
  ck_assert_int_eq(lc_test_exit_code(stop(&d, SIGTERM)), 0);
  rm_dir(&d);
}
END_TEST

/* An agent's max_runs: its second run waits in the queue until the first
 * has ended (the first sleeps 60 s: it cannot end before the cancel). */
START_TEST(agent_limit) {
  struct daemon d;
  setup_dir(&d);
  start(&d, NULL);
  char r1[80], r2[80], p[300];
  cJSON *j = expect(&d, "POST", "/runs", "{\"assistant_id\":\"single\"}", A, 200);
  snprintf(r1, sizeof r1, "%s", str(j, "run_id"));
  cJSON_Delete(j);
  j = expect(&d, "POST", "/runs", "{\"assistant_id\":\"single\"}", A, 200);
  snprintf(r2, sizeof r2, "%s", str(j, "run_id"));
  cJSON_Delete(j);
  snprintf(p, sizeof p, "/runs/%s", r1);
  await_status(&d, p, "running");
  snprintf(p, sizeof p, "/runs/%s", r2);
  j = expect(&d, "GET", p, NULL, A, 200);
  ck_assert_str_eq(str(j, "luact_status"), "pending");
  cJSON_Delete(j);
  snprintf(p, sizeof p, "/runs/%s/cancel?action=interrupt", r1);
  cJSON_Delete(expect(&d, "POST", p, NULL, A, 202));
  snprintf(p, sizeof p, "/runs/%s", r2);
  await_status(&d, p, "running");
  snprintf(p, sizeof p, "/runs/%s/cancel?action=interrupt", r2);
  cJSON_Delete(expect(&d, "POST", p, NULL, A, 202));
  snprintf(p, sizeof p, "/runs/%s", r2);
  await_status(&d, p, "cancelled");
  ck_assert_int_eq(lc_test_exit_code(stop(&d, SIGTERM)), 0);
  rm_dir(&d);
}
END_TEST

/* The ids of an SSE text, in order, into ids (at most max). */
static int text_ids(const char *t, long long *ids, int max) {
  int n = 0;
  for (const char *p = t; (p = strstr(p, "\nid: ")) && n < max; p++) {
    double v = strtod(p + 5, NULL); /* "N" or "N.k": N*10+k keeps the order */
    const char *dot = strchr(p + 5, '.');
    const char *nl = strchr(p + 5, '\n');
    long long k = (dot && nl && dot < nl) ? atoll(dot + 1) : 0;
    ids[n++] = (long long)v * 10 + k;
  }
  return n;
}

/* SIGKILL while runs are queued, running and streamed, several times at
 * random moments: after the restarts every accepted run has finished, once
 * (its output, each effect's result once in its journal), and a stream cut
 * by the kill resumes from its last id with no duplicate and no gap. */
START_TEST(sigkill_and_restart) {
  struct daemon d;
  setup_dir(&d);
  start(&d, "--max-runs 3");
  enum { ROUNDS = 4, PER = 6, N = ROUNDS * PER };
  char ids[N][80];
  srand((unsigned)getpid());
  int n = 0;
  char last_id[32] = "";
  char watched[80] = "";
  long long seen[512];
  int nseen = 0;
  for (int round = 0; round < ROUNDS; round++) {
    for (int i = 0; i < PER; i++, n++) {
      cJSON *j = expect(&d, "POST", "/runs",
                        "{\"assistant_id\":\"slow\",\"input\":{\"steps\":4}}", A, 200);
      snprintf(ids[n], sizeof ids[n], "%s", str(j, "run_id"));
      cJSON_Delete(j);
    }
    if (round == 1) {
      /* A stream of a live run, cut by the kill below. */
      snprintf(watched, sizeof watched, "%s", ids[n - 1]);
      char cmd[600];
      snprintf(cmd, sizeof cmd,
               "curl -sN -H 'Authorization: Bearer " A "' http://127.0.0.1:%d/runs/%s/stream",
               d.port, watched);
      FILE *f = popen(cmd, "r");
      char line[4096], all[65536] = "";
      size_t used = 0;
      int got = 0;
      while (got < 2 && fgets(line, sizeof line, f)) { /* until two events with ids */
        got += !strncmp(line, "id: ", 4);
        used += (size_t)snprintf(all + used, sizeof all - used, "%s", line);
      }
      stop(&d, SIGKILL);
      size_t k = fread(all + used, 1, sizeof all - used - 1, f);
      all[used + k] = 0;
      pclose(f);
      nseen = text_ids(all, seen, 512);
      ck_assert_int_ge(nseen, 2);
      const char *lp = NULL;
      for (const char *p = all; (p = strstr(p, "\nid: ")); p++) lp = p;
      if (!lp && !strncmp(all, "id: ", 4)) lp = all - 1;
      ck_assert_ptr_nonnull(lp);
      sscanf(lp + 5, "%31s", last_id);
    } else {
      lc_test_nap_ms(rand() % 300); /* a random moment: queued, running or done */
      stop(&d, SIGKILL);
    }
    start(&d, "--max-runs 3");
  }
  for (int i = 0; i < N; i++) {
    char p[300];
    snprintf(p, sizeof p, "/runs/%.80s/join", ids[i]);
    cJSON *j = expect(&d, "GET", p, NULL, A, 200);
    const cJSON *done = cJSON_GetObjectItem(j, "done");
    if (!cJSON_IsNumber(done)) {
      char *t = cJSON_PrintUnformatted(j);
      ck_abort_msg("run %s joined without its output: %s (log %s)", ids[i], t ? t : "?", d.log);
    }
    ck_assert_int_eq(done->valueint, 4);
    cJSON_Delete(j);
    snprintf(p, sizeof p, "/runs/%.80s", ids[i]);
    j = expect(&d, "GET", p, NULL, A, 200);
    ck_assert_str_eq(str(j, "luact_status"), "finished");
    cJSON_Delete(j);
  }
  /* The cut stream, resumed: exactly the events after the last id. */
  char p[300], h[80];
  snprintf(p, sizeof p, "/runs/%.80s/stream", watched);
  struct resp full = req(&d, "GET", p, NULL, A, NULL);
  snprintf(h, sizeof h, "Last-Event-ID: %.31s", last_id);
  struct resp rest = req(&d, "GET", p, NULL, A, h);
  long long fids[512], rids[512];
  int nf = text_ids(full.body, fids, 512), nr = text_ids(rest.body, rids, 512);
  for (int i = 0; i < nseen; i++) ck_assert(fids[i] == seen[i]); /* same ids after restart */
  ck_assert_int_eq(nr, nf - nseen);
  for (int i = 0; i < nr; i++) ck_assert(rids[i] == fids[nseen + i]);
  resp_free(&full);
  resp_free(&rest);
  /* One journal per run, each effect's result once. */
  char cmd[1400];
  snprintf(cmd, sizeof cmd,
           "sqlite3 %s \"SELECT count(*) FROM (SELECT run_id, json_extract(line,'$.id') AS e, "
           "count(*) AS n FROM journal WHERE json_extract(line,'$.type')='result' GROUP BY 1,2 "
           "HAVING n > 1)\"",
           d.store);
  FILE *f = popen(cmd, "r");
  char out[64] = "";
  ck_assert_ptr_nonnull(f);
  ck_assert_ptr_nonnull(fgets(out, sizeof out, f));
  pclose(f);
  ck_assert_int_eq(atoi(out), 0);
  ck_assert_int_eq(lc_test_exit_code(stop(&d, SIGTERM)), 0);
  rm_dir(&d);
}
END_TEST

/* The official LangGraph JS SDK drives the daemon (tests/daemon/js;
 * scripts/test installs it with npm ci). */
START_TEST(sdk_langgraph_js) {
  char js[600];
  lc_sd_js_dir(js, sizeof js);
  struct lc_mock m;
  char mock[600];
  snprintf(mock, sizeof mock, "%s/examples/hello/mock.json", lc_test_source_dir());
  ck_assert_int_eq(lc_mock_start_file(&m, mock, NULL), 0);
  snprintf(model_url, sizeof model_url, "%s/v1", m.base_url);
  struct daemon d;
  setup_dir(&d);
  start(&d, NULL);
  char cmd[2000];
  snprintf(cmd, sizeof cmd,
           "cd %s && LUACT_URL=http://127.0.0.1:%d LUACT_TOKEN=%s node sdk_test.mjs >&2", js,
           d.port, A);
  int st = system(cmd);
  model_url[0] = 0;
  /* The ReAct runs' LLM calls and tool calls are in the metrics. */
  struct resp mt = req(&d, "GET", "/metrics", NULL, A, NULL);
  const char *lc = strstr(mt.body, "luact_effect_duration_seconds_count{kind=\"llm\"} ");
  ck_assert_ptr_nonnull(lc);
  ck_assert_int_gt(atoi(lc + strlen("luact_effect_duration_seconds_count{kind=\"llm\"} ")), 0);
  /* hello's add tool is pure: its kind comes from its one journal line */
  const char *tc = strstr(mt.body, "luact_effect_duration_seconds_count{kind=\"tool\"} ");
  ck_assert_ptr_nonnull(tc);
  ck_assert_int_gt(atoi(tc + strlen("luact_effect_duration_seconds_count{kind=\"tool\"} ")), 0);
  const char *tk = strstr(mt.body, "luact_llm_tokens_total{direction=\"input\"} ");
  ck_assert_ptr_nonnull(tk);
  ck_assert_int_gt(atoi(tk + strlen("luact_llm_tokens_total{direction=\"input\"} ")), 0);
  resp_free(&mt);
  ck_assert_int_eq(lc_test_exit_code(stop(&d, SIGTERM)), 0);
  rm_dir(&d);
  lc_mock_stop(&m);
  ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the SDK checks failed (stderr above)");
}
END_TEST

/* ShopBot as an agent of `luact serve examples/`: the customer talks
 * through the API, each question an interrupt, each answer a resume
 * command; the daemon is SIGKILLed and restarted between two answers.
 * One label and one email in the end. */
START_TEST(shopbot_across_restart) {
  struct lc_mock m;
  char path[700];
  snprintf(path, sizeof path, "%s/examples/shopbot/mock.json", lc_test_source_dir());
  ck_assert_int_eq(lc_mock_start_file(&m, path, NULL), 0);
  snprintf(model_url, sizeof model_url, "%s/v1", m.base_url);
  struct daemon d;
  setup_dir(&d);
  char shipout[400];
  snprintf(shipout, sizeof shipout, "%s/ship.out", d.dir);
  snprintf(shopbot_data, sizeof shopbot_data, "%s/data", d.dir);
  pid_t ship = fork();
  if (ship == 0) {
    int fd = open(shipout, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    dup2(fd, 1);
    char db[400];
    snprintf(db, sizeof db, "%s/shipping.db", d.dir);
    execl(LC_BINARY_DIR "/shopbot-shipping", "shopbot-shipping", "--db", db, (char *)NULL);
    _exit(127);
  }
  for (;;) { /* until it says where it listens */
    char *t = lc_test_read_file(shipout, NULL);
    const char *p = t ? strstr(t, "listening on ") : NULL;
    if (p && strchr(p, '\n')) {
      snprintf(shipping_url, sizeof shipping_url, "http://%.*s", (int)strcspn(p + 13, "\n"),
               p + 13);
      free(t);
      break;
    }
    free(t);
    int st;
    ck_assert_msg(waitpid(ship, &st, WNOHANG) == 0, "shopbot-shipping exited");
    lc_test_nap_ms(20);
  }
  snprintf(agents_override, sizeof agents_override, "%s/examples", lc_test_source_dir());
  start(&d, NULL);
  cJSON *t = expect(&d, "POST", "/threads", "{}", A, 200);
  char tid[80], p[300];
  snprintf(tid, sizeof tid, "%s", str(t, "thread_id"));
  cJSON_Delete(t);
  snprintf(p, sizeof p, "/threads/%s/runs/wait", tid);
  cJSON *j = expect(&d, "POST", p,
                    "{\"assistant_id\":\"shopbot\",\"input\":{\"message\":"
                    "\"Hi, I'd like to return the jeans I bought.\"}}",
                    A, 200);
  const char *answers[] = {"It's A1001", "Just the jeans, please.", "Yes, only the jeans.",
                           "alice@example.com"};
  for (int i = 0; i < 4; i++) {
    const cJSON *q = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "__interrupt__"), 0);
    ck_assert_msg(q != NULL, "answer %d: no question", i);
    cJSON_Delete(j);
    if (i == 2) { /* the daemon dies between two answers */
      stop(&d, SIGKILL);
      start(&d, NULL);
    }
    char body[300];
    snprintf(body, sizeof body,
             "{\"assistant_id\":\"shopbot\",\"command\":{\"resume\":\"%s\"}}", answers[i]);
    j = expect(&d, "POST", p, body, A, 200);
  }
  ck_assert_str_eq(str(j, "status"), "finished");
  cJSON_Delete(j);
  ck_assert_int_eq(lc_test_exit_code(stop(&d, SIGTERM)), 0);
  agents_override[0] = model_url[0] = 0;
  /* One label, one email. */
  CURL *c = curl_easy_init();
  struct resp r = {0};
  r.body = calloc(1, 1);
  char u[200];
  snprintf(u, sizeof u, "%s/_requests", shipping_url);
  shipping_url[0] = 0;
  curl_easy_setopt(c, CURLOPT_URL, u);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &r);
  ck_assert_int_eq(curl_easy_perform(c), CURLE_OK);
  curl_easy_cleanup(c);
  cJSON *reqs = cJSON_Parse(r.body);
  int labels = 0;
  const cJSON *x;
  cJSON_ArrayForEach(x, reqs) labels += !strcmp(str(x, "path"), "/labels") && str(x, "label_id")[0];
  cJSON_Delete(reqs);
  resp_free(&r);
  ck_assert_int_eq(labels, 1);
  char cmd[500];
  snprintf(cmd, sizeof cmd, "ls %s/outbox/new | wc -l", shopbot_data);
  FILE *f = popen(cmd, "r");
  char out[32] = "";
  ck_assert_ptr_nonnull(fgets(out, sizeof out, f));
  pclose(f);
  ck_assert_int_eq(atoi(out), 1);
  kill(ship, SIGTERM);
  waitpid(ship, NULL, 0);
  lc_mock_stop(&m);
  rm_dir(&d);
}
END_TEST

/* Streams stay under --max-streams (503 beyond), so that /healthz and run
 * creation still get a connection; an idle client is cut off. */
START_TEST(limits_and_slow_clients) {
  struct daemon d;
  setup_dir(&d);
  start(&d, "--max-conns 8 --max-streams 3 --conn-timeout 1");
  FILE *streams[3];
  for (int i = 0; i < 3; i++) {
    char cmd[600];
    snprintf(cmd, sizeof cmd,
             "curl -sN -H 'Authorization: Bearer " A "' -d '{\"assistant_id\":\"sleeper\","
             "\"input\":{\"s\":3}}' http://127.0.0.1:%d/runs/stream",
             d.port);
    streams[i] = popen(cmd, "r");
    char line[256];
    /* Until the stream is open (its first event). */
    ck_assert_ptr_nonnull(fgets(line, sizeof line, streams[i]));
    ck_assert_ptr_nonnull(strstr(line, "event: metadata"));
  }
  struct resp r = req(&d, "POST", "/runs/stream", "{\"assistant_id\":\"echo\"}", A, NULL);
  ck_assert_int_eq(r.code, 503);
  resp_free(&r);
  cJSON *j = expect(&d, "GET", "/healthz", NULL, NULL, 200);
  cJSON_Delete(j);
  j = expect(&d, "POST", "/runs", "{\"assistant_id\":\"echo\"}", A, 200);
  cJSON_Delete(j);
  /* A client that sends half a request and waits is cut off. */
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)d.port)};
  inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
  ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
  const char half[] = "GET /healthz HTTP/1.1\r\nHost: x\r\n";
  ck_assert_int_eq(write(fd, half, sizeof half - 1), (ssize_t)(sizeof half - 1));
  char buf[256];
  ssize_t n = read(fd, buf, sizeof buf); /* blocks until the daemon closes */
  ck_assert_int_le(n, 0);
  close(fd);
  for (int i = 0; i < 3; i++) {
    char all[65536];
    size_t k = fread(all, 1, sizeof all - 1, streams[i]);
    all[k] = 0;
    ck_assert_ptr_nonnull(strstr(all, "\"slept\":3"));
    pclose(streams[i]);
  }
  ck_assert_int_eq(lc_test_exit_code(stop(&d, SIGTERM)), 0);
  rm_dir(&d);
}
END_TEST

/* SIGTERM with a run going and no grace left: the daemon exits 0, and the
 * next start resumes the run from its journal. */
START_TEST(sigterm_then_resume) {
  struct daemon d;
  setup_dir(&d);
  start(&d, "--grace 0");
  cJSON *j = expect(&d, "POST", "/runs", "{\"assistant_id\":\"slow\",\"input\":{\"steps\":30}}",
                    A, 200);
  char rid[80], p[300];
  snprintf(rid, sizeof rid, "%s", str(j, "run_id"));
  cJSON_Delete(j);
  /* Until a few effects are in its journal (then some are replayed). */
  for (;;) {
    char cmd[800], out[32] = "";
    snprintf(cmd, sizeof cmd, "sqlite3 %s \"SELECT count(*) FROM journal WHERE run_id='%s'\"",
             d.store, rid);
    FILE *f = popen(cmd, "r");
    if (f && fgets(out, sizeof out, f) && atoi(out) >= 6) {
      pclose(f);
      break;
    }
    if (f) pclose(f);
    lc_test_nap_ms(20);
  }
  ck_assert_int_eq(lc_test_exit_code(stop(&d, SIGTERM)), 0);
  start(&d, NULL);
  snprintf(p, sizeof p, "/runs/%s/join", rid);
  j = expect(&d, "GET", p, NULL, A, 200);
  ck_assert_int_eq(cJSON_GetObjectItem(j, "done")->valueint, 30);
  cJSON_Delete(j);
  struct resp m = req(&d, "GET", "/metrics", NULL, A, NULL);
  ck_assert_ptr_nonnull(strstr(m.body, "luact_runs_resumed_total 1"));
  ck_assert_ptr_nonnull(strstr(m.body, "luact_agent_runs_ended_total{agent=\"slow\",status=\"finished\"} 1"));
  ck_assert_ptr_nonnull(strstr(m.body, "luact_effects_total{how=\"replayed\"} "));
  ck_assert_ptr_null(strstr(m.body, "luact_effects_total{how=\"replayed\"} 0\n"));
  ck_assert_ptr_null(strstr(m.body, rid)); /* never a run id in a metric */
  resp_free(&m);
  ck_assert_int_eq(lc_test_exit_code(stop(&d, SIGTERM)), 0);
  rm_dir(&d);
}
END_TEST

/* `luact runs cancel` on a run the daemon resumed after a restart: the run
 * stops at its next effect and ends cancelled (it used to be marked
 * cancelled while it went on, then finished: two terminal states). */
START_TEST(cli_cancel_of_resumed_run) {
  struct daemon d;
  setup_dir(&d);
  start(&d, NULL);
  cJSON *j = expect(&d, "POST", "/runs", "{\"assistant_id\":\"slow\",\"input\":{\"steps\":400}}",
                    A, 200);
  char rid[80], p[300], cmd[1200];
  snprintf(rid, sizeof rid, "%s", str(j, "run_id"));
  cJSON_Delete(j);
  snprintf(p, sizeof p, "/runs/%s", rid);
  await_status(&d, p, "running");
  stop(&d, SIGKILL);
  start(&d, NULL); /* resumes it */
  await_status(&d, p, "running");
  snprintf(cmd, sizeof cmd, "%s/luact runs cancel %s --store %s >/dev/null 2>&1", LC_BINARY_DIR,
           rid, d.store);
  ck_assert_int_eq(system(cmd), 0);
  await_idle(&d, 0); /* until nothing executes any more, then its one final status */
  snprintf(p, sizeof p, "/runs/%s", rid);
  j = expect(&d, "GET", p, NULL, A, 200);
  ck_assert_str_eq(str(j, "luact_status"), "cancelled");
  cJSON_Delete(j);
  ck_assert_int_eq(lc_test_exit_code(stop(&d, SIGTERM)), 0);
  rm_dir(&d);
}
END_TEST

/* A run answered, queued behind its agent's limit, then cancelled with
 * `luact runs cancel` before it starts: it stays cancelled (the runner
 * used to set it running again and finish it). */
START_TEST(cancelled_in_queue_stays_cancelled) {
  struct daemon d;
  setup_dir(&d);
  start(&d, NULL);
  cJSON *t = expect(&d, "POST", "/threads", "{}", A, 200);
  char tid[80], ra[80], rb[80], p[300], cmd[1200];
  snprintf(tid, sizeof tid, "%s", str(t, "thread_id"));
  cJSON_Delete(t);
  snprintf(p, sizeof p, "/threads/%s/runs", tid);
  cJSON *j = expect(&d, "POST", p, "{\"assistant_id\":\"gate\"}", A, 200);
  snprintf(ra, sizeof ra, "%s", str(j, "run_id"));
  cJSON_Delete(j);
  snprintf(p, sizeof p, "/runs/%s", ra);
  await_status(&d, p, "waiting_input");
  j = expect(&d, "POST", "/runs", "{\"assistant_id\":\"gate\",\"input\":{\"hold\":true}}", A, 200);
  snprintf(rb, sizeof rb, "%s", str(j, "run_id"));
  cJSON_Delete(j);
  snprintf(p, sizeof p, "/runs/%s", rb);
  await_status(&d, p, "running"); /* holds the agent's one slot for 60 s */
  snprintf(p, sizeof p, "/threads/%s/runs", tid);
  cJSON_Delete(expect(&d, "POST", p, "{\"assistant_id\":\"gate\",\"command\":{\"resume\":\"x\"}}",
                      A, 200)); /* queued behind rb */
  snprintf(cmd, sizeof cmd, "%s/luact runs cancel %s --store %s >/dev/null 2>&1", LC_BINARY_DIR,
           ra, d.store);
  ck_assert_int_eq(system(cmd), 0);
  snprintf(p, sizeof p, "/runs/%s/cancel?action=interrupt", rb);
  cJSON_Delete(expect(&d, "POST", p, NULL, A, 202));
  await_idle(&d, 1); /* until nothing runs or waits in the queue */
  snprintf(p, sizeof p, "/runs/%s", ra);
  j = expect(&d, "GET", p, NULL, A, 200);
  ck_assert_str_eq(str(j, "luact_status"), "cancelled");
  cJSON_Delete(j);
  ck_assert_int_eq(lc_test_exit_code(stop(&d, SIGTERM)), 0);
  rm_dir(&d);
}
END_TEST

/* A cancel that arrives after the run stopped to wait but before its
 * thread left the active list (held there by a test hook) still cancels
 * it (it used to stay waiting_input). */
START_TEST(cancel_while_run_leaves) {
  struct daemon d;
  setup_dir(&d);
  setenv("LUACT_SERVE_HOLD_WAITING", "1", 1);
  start(&d, NULL);
  unsetenv("LUACT_SERVE_HOLD_WAITING");
  cJSON *j = expect(&d, "POST", "/runs", "{\"assistant_id\":\"asker\"}", A, 200);
  char rid[80], p[300];
  snprintf(rid, sizeof rid, "%s", str(j, "run_id"));
  cJSON_Delete(j);
  snprintf(p, sizeof p, "/runs/%s", rid);
  await_status(&d, p, "waiting_input");
  snprintf(p, sizeof p, "/runs/%s/cancel", rid);
  cJSON_Delete(expect(&d, "POST", p, NULL, A, 202));
  snprintf(p, sizeof p, "/runs/%s", rid);
  await_status(&d, p, "cancelled waiting_input");
  await_idle(&d, 0); /* until its thread is gone */
  j = expect(&d, "GET", p, NULL, A, 200);
  ck_assert_str_eq(str(j, "luact_status"), "cancelled");
  cJSON_Delete(j);
  ck_assert_int_eq(lc_test_exit_code(stop(&d, SIGTERM)), 0);
  rm_dir(&d);
}
END_TEST

/* Starts d (its folder set up) with the test hook var (LUACT_SERVE_STALL_*)
 * blocking on a FIFO in d's folder, named in fifo. */
static void start_stalled(struct daemon *d, const char *var, const char *args, char *fifo,
                          size_t n) {
  snprintf(fifo, n, "%s/stall", d->dir);
  ck_assert_int_eq(mkfifo(fifo, 0600), 0);
  setenv(var, fifo, 1);
  start(d, args);
  unsetenv(var);
}

/* Until the hook holds its write: a FIFO opens for writing (without
 * waiting) only once a reader has it open. Returns the writing end; a
 * byte written to it lets the held write go. */
static int await_stall_held(const char *fifo) {
  int fd;
  while ((fd = open(fifo, O_WRONLY | O_NONBLOCK)) < 0) {
    ck_assert_int_eq(errno, ENXIO);
    lc_test_nap_ms(20);
  }
  return fd;
}

/* A new thread whose asker run waits for input: its thread id in tid[80],
 * the run's path (/runs/ID) in pa[300]. */
static void asker_waiting(struct daemon *d, char *tid, char *pa) {
  cJSON *t = expect(d, "POST", "/threads", "{}", A, 200);
  snprintf(tid, 80, "%s", str(t, "thread_id"));
  cJSON_Delete(t);
  char p[300];
  snprintf(p, sizeof p, "/threads/%s/runs", tid);
  cJSON *j = expect(d, "POST", p, "{\"assistant_id\":\"asker\"}", A, 200);
  snprintf(pa, 300, "/runs/%s", str(j, "run_id"));
  cJSON_Delete(j);
  await_status(d, pa, "waiting_input");
}

/* One worker, two runs: the first one's luact.store write is held up (a
 * test hook blocks it on a FIFO until the test writes a byte), and the
 * second run, on the same worker, runs luact.store and finishes
 * meanwhile. When the store's SQL ran on the worker's own thread, the
 * held write held up the whole worker: the second run never finished
 * (the case timed out). */
START_TEST(stalled_store_stalls_only_its_run) {
  struct daemon d;
  setup_dir(&d);
  char ap[400], fifo[400];
  snprintf(ap, sizeof ap, "%s/staller.lua", d.agents);
  write_file(ap, staller_agent);
  start_stalled(&d, "LUACT_SERVE_STALL_STORE", "--workers 1", fifo, sizeof fifo);
  cJSON *j = expect(&d, "POST", "/runs", "{\"assistant_id\":\"staller\"}", A, 200);
  char rid[80], p[300];
  snprintf(rid, sizeof rid, "%s", str(j, "run_id"));
  cJSON_Delete(j);
  int fd = await_stall_held(fifo);
  j = expect(&d, "POST", "/runs/wait", "{\"assistant_id\":\"mem\",\"input\":{\"text\":\"hi\"}}",
             A, 200);
  ck_assert_str_eq(str(j, "got"), "hi");
  cJSON_Delete(j);
  snprintf(p, sizeof p, "/runs/%s", rid);
  j = expect(&d, "GET", p, NULL, A, 200);
  ck_assert_str_eq(str(j, "luact_status"), "running"); /* still held */
  cJSON_Delete(j);
  ck_assert_int_eq(write(fd, "x", 1), 1);
  close(fd);
  await_status(&d, p, "finished");
  ck_assert_int_eq(lc_test_exit_code(stop(&d, SIGTERM)), 0);
  rm_dir(&d);
}
END_TEST

/* A request made on a thread of its own (the answer a test holds). */
struct bg_req {
  struct daemon *d;
  const char *method, *path, *body;
  long code;
};

static void *bg_req_main(void *ud) {
  struct bg_req *b = ud;
  struct resp r = req(b->d, b->method, b->path, b->body, A, NULL);
  b->code = r.code;
  resp_free(&r);
  return NULL;
}

/* The answer "bob" to thread tid's asker, sent on a thread of its own (*th,
 * b filled; its path in pb[300]) until the hook holds its commit: the
 * FIFO's writing end (await_stall_held). */
static int answer_held(struct daemon *d, const char *tid, const char *fifo, char *pb,
                       struct bg_req *b, pthread_t *th) {
  snprintf(pb, 300, "/threads/%s/runs", tid);
  *b = (struct bg_req){d, "POST", pb,
                       "{\"assistant_id\":\"asker\",\"command\":{\"resume\":\"bob\"}}", 0};
  ck_assert_int_eq(pthread_create(th, NULL, bg_req_main, b), 0);
  return await_stall_held(fifo);
}

/* An answer's commit is held (a test hook blocks it on a FIFO until the
 * test writes a byte) while the runner goes on: a cancel kills a run, and
 * a new run is queued (the pump), runs and ends. When the answer held the
 * runner's lock across its store reads and commits, the cancel and the
 * new run waited behind it (the case timed out). */
START_TEST(answer_commit_holds_no_runner_lock) {
  struct daemon d;
  setup_dir(&d);
  char fifo[400];
  start_stalled(&d, "LUACT_SERVE_STALL_ANSWER", NULL, fifo, sizeof fifo);
  char tid[80], rb[80], p[300], pa[300];
  asker_waiting(&d, tid, pa);
  cJSON *j;
  j = expect(&d, "POST", "/runs", "{\"assistant_id\":\"sleeper\",\"input\":{\"s\":1000}}", A, 200);
  snprintf(rb, sizeof rb, "%s", str(j, "run_id"));
  cJSON_Delete(j);
  snprintf(p, sizeof p, "/runs/%s", rb);
  await_status(&d, p, "running");
  /* The answer, on a thread of its own (its own path buffer): its commit
   * waits for the FIFO. */
  char pb[300];
  struct bg_req b;
  pthread_t th;
  int fd = answer_held(&d, tid, fifo, pb, &b, &th);
  snprintf(p, sizeof p, "/runs/%s/cancel?action=interrupt", rb);
  cJSON_Delete(expect(&d, "POST", p, NULL, A, 202));
  snprintf(p, sizeof p, "/runs/%s", rb);
  await_status(&d, p, "cancelled");
  j = expect(&d, "POST", "/runs/wait", "{\"assistant_id\":\"echo\",\"input\":{\"x\":1}}", A, 200);
  ck_assert_int_eq(cJSON_GetObjectItem(j, "n")->valueint, 1);
  cJSON_Delete(j);
  j = expect(&d, "GET", pa, NULL, A, 200);
  ck_assert_str_eq(str(j, "luact_status"), "waiting_input"); /* its answer still held */
  cJSON_Delete(j);
  ck_assert_int_eq(write(fd, "x", 1), 1);
  close(fd);
  ck_assert_int_eq(pthread_join(th, NULL), 0);
  ck_assert_int_eq(b.code, 200);
  await_status(&d, pa, "finished");
  j = expect(&d, "GET", pa, NULL, A, 200);
  ck_assert_str_eq(str(j, "status"), "success");
  cJSON_Delete(j);
  ck_assert_int_eq(lc_test_exit_code(stop(&d, SIGTERM)), 0);
  rm_dir(&d);
}
END_TEST

/* A cancel lands while an answer to the same waiting run is between its
 * status read and its status write (the FIFO hook holds it there): the
 * run must end cancelled. The answer used to write "running" whatever the
 * status had become, undoing the cancel, and the run was resumed. */
START_TEST(cancel_during_answer_stays_cancelled) {
  struct daemon d;
  setup_dir(&d);
  char fifo[400];
  start_stalled(&d, "LUACT_SERVE_STALL_ANSWER", NULL, fifo, sizeof fifo);
  char tid[80], pa[300], pb[300];
  asker_waiting(&d, tid, pa);
  cJSON *j;
  struct bg_req b;
  pthread_t th;
  int fd = answer_held(&d, tid, fifo, pb, &b, &th);
  char pc[320];
  snprintf(pc, sizeof pc, "%s/cancel", pa);
  cJSON_Delete(expect(&d, "POST", pc, NULL, A, 202));
  await_status(&d, pa, "cancelled");
  ck_assert_int_eq(write(fd, "x", 1), 1);
  close(fd);
  ck_assert_int_eq(pthread_join(th, NULL), 0);
  ck_assert_int_eq(b.code, 409); /* the run waits for no answer now */
  /* Whatever the daemon does next, the run stays cancelled: a run it
   * resumed would reach finished (the asker ends once answered). An echo
   * run through the same agent slot pool proves the daemon went on. */
  j = expect(&d, "POST", "/runs/wait", "{\"assistant_id\":\"echo\",\"input\":{\"x\":1}}", A, 200);
  cJSON_Delete(j);
  j = expect(&d, "GET", pa, NULL, A, 200);
  ck_assert_str_eq(str(j, "luact_status"), "cancelled");
  cJSON_Delete(j);
  ck_assert_int_eq(lc_test_exit_code(stop(&d, SIGTERM)), 0);
  rm_dir(&d);
}
END_TEST

/* A queued run's cancel has its commit held (the FIFO hook) while the
 * runner goes on: a new run is queued (the pump), runs and ends, and the
 * run holding the agent's slot is cancelled. When the cancel held the
 * runner's lock across its store reads and commit, they waited behind it
 * (the case timed out). */
START_TEST(queued_cancel_holds_no_runner_lock) {
  struct daemon d;
  setup_dir(&d);
  char fifo[400];
  start_stalled(&d, "LUACT_SERVE_STALL_CANCEL", NULL, fifo, sizeof fifo);
  char rx[80], rq[80], p[300], pq[300], pb[300];
  cJSON *j =
      expect(&d, "POST", "/runs", "{\"assistant_id\":\"gate\",\"input\":{\"hold\":true}}", A, 200);
  snprintf(rx, sizeof rx, "%s", str(j, "run_id"));
  cJSON_Delete(j);
  snprintf(p, sizeof p, "/runs/%s", rx);
  await_status(&d, p, "running"); /* holds the agent's one slot for 60 s */
  j = expect(&d, "POST", "/runs", "{\"assistant_id\":\"gate\"}", A, 200);
  snprintf(rq, sizeof rq, "%s", str(j, "run_id"));
  cJSON_Delete(j);
  snprintf(pq, sizeof pq, "/runs/%s", rq);
  j = expect(&d, "GET", pq, NULL, A, 200);
  ck_assert_str_eq(str(j, "luact_status"), "pending"); /* queued behind rx */
  cJSON_Delete(j);
  /* The queued run's cancel, on a thread of its own: its commit waits. */
  snprintf(pb, sizeof pb, "/runs/%s/cancel", rq);
  struct bg_req b = {&d, "POST", pb, NULL, 0};
  pthread_t th;
  ck_assert_int_eq(pthread_create(&th, NULL, bg_req_main, &b), 0);
  int fd = await_stall_held(fifo);
  j = expect(&d, "POST", "/runs/wait", "{\"assistant_id\":\"echo\",\"input\":{\"x\":1}}", A, 200);
  ck_assert_int_eq(cJSON_GetObjectItem(j, "n")->valueint, 1);
  cJSON_Delete(j);
  snprintf(p, sizeof p, "/runs/%s/cancel?action=interrupt", rx);
  cJSON_Delete(expect(&d, "POST", p, NULL, A, 202));
  snprintf(p, sizeof p, "/runs/%s", rx);
  await_status(&d, p, "cancelled");
  ck_assert_int_eq(write(fd, "x", 1), 1);
  close(fd);
  ck_assert_int_eq(pthread_join(th, NULL), 0);
  ck_assert_int_eq(b.code, 202);
  j = expect(&d, "GET", pq, NULL, A, 200);
  ck_assert_str_eq(str(j, "luact_status"), "cancelled");
  cJSON_Delete(j);
  await_idle(&d, 1);
  j = expect(&d, "GET", pq, NULL, A, 200);
  ck_assert_str_eq(str(j, "luact_status"), "cancelled"); /* never started */
  cJSON_Delete(j);
  ck_assert_int_eq(lc_test_exit_code(stop(&d, SIGTERM)), 0);
  rm_dir(&d);
}
END_TEST

/* A counter of /metrics (-1: not there). */
static long metric(struct daemon *d, const char *name) {
  struct resp m = req(d, "GET", "/metrics", NULL, A, NULL);
  char key[120];
  snprintf(key, sizeof key, "\n%s ", name);
  const char *p = strstr(m.body, key);
  long v = p ? atol(p + strlen(key)) : -1;
  resp_free(&m);
  return v;
}

/* Sleeps a millisecond n times: a pass of its worker for each. */
static const char ticker_agent[] =
    "return function(input, ctx)\n"
    "  for i = 1, input.n do luact.sleep(0.001) end\n"
    "  return {ticks = input.n}\n"
    "end\n";

/* One worker, 40 runs that sleep for 1,000 s and one that ticks 300
 * times: the worker's passes step only the runs with work to do (the
 * ticker), not the sleeping ones. When every pass stepped every run on
 * the worker, the steps were about 41 per pass. */
START_TEST(a_pass_steps_only_ready_runs) {
  struct daemon d;
  setup_dir(&d);
  char p[400];
  snprintf(p, sizeof p, "%s/ticker.lua", d.agents);
  write_file(p, ticker_agent);
  start(&d, "--workers 1");
  enum { IDLE = 40 };
  for (int i = 0; i < IDLE; i++) {
    cJSON *j =
        expect(&d, "POST", "/runs", "{\"assistant_id\":\"sleeper\",\"input\":{\"s\":1000}}", A, 200);
    snprintf(p, sizeof p, "/runs/%s", str(j, "run_id"));
    cJSON_Delete(j);
    await_status(&d, p, "running");
  }
  /* Until each has had its first step (to its sleep). */
  while (metric(&d, "luact_worker_steps_total") < IDLE) lc_test_nap_ms(20);
  long passes0 = metric(&d, "luact_worker_passes_total");
  long steps0 = metric(&d, "luact_worker_steps_total");
  cJSON *j = expect(&d, "POST", "/runs/wait", "{\"assistant_id\":\"ticker\",\"input\":{\"n\":300}}",
                    A, 200);
  ck_assert_int_eq(cJSON_GetObjectItem(j, "ticks")->valueint, 300);
  cJSON_Delete(j);
  long passes = metric(&d, "luact_worker_passes_total") - passes0;
  long steps = metric(&d, "luact_worker_steps_total") - steps0;
  ck_assert_int_ge(passes, 300);
  ck_assert_msg(steps <= 2 * passes, "%ld steps in %ld passes", steps, passes);
  ck_assert_int_eq(lc_test_exit_code(stop(&d, SIGTERM)), 0);
  rm_dir(&d);
}
END_TEST

/* One worker, three runs on its loop: an immediate cancel kills the run it
 * names (a sleep of 1,000 s: only a kill ends it within the case's
 * timeout), a cooperative one stops another at its next effect, and the
 * third run on the same loop goes on to its end. */
START_TEST(cancels_on_a_shared_worker) {
  struct daemon d;
  setup_dir(&d);
  start(&d, "--workers 1");
  char ids[3][80], p[300];
  static const char *const bodies[3] = {
      "{\"assistant_id\":\"sleeper\",\"input\":{\"s\":1000}}",
      "{\"assistant_id\":\"slow\",\"input\":{\"steps\":100000}}",
      "{\"assistant_id\":\"slow\",\"input\":{\"steps\":20}}"};
  for (int i = 0; i < 3; i++) {
    cJSON *j = expect(&d, "POST", "/runs", bodies[i], A, 200);
    snprintf(ids[i], sizeof ids[i], "%s", str(j, "run_id"));
    cJSON_Delete(j);
  }
  for (int i = 0; i < 3; i++) {
    snprintf(p, sizeof p, "/runs/%s", ids[i]);
    await_status(&d, p, "running finished");
  }
  snprintf(p, sizeof p, "/runs/%s/cancel?action=interrupt", ids[0]);
  cJSON_Delete(expect(&d, "POST", p, NULL, A, 202));
  snprintf(p, sizeof p, "/runs/%s/cancel", ids[1]);
  cJSON_Delete(expect(&d, "POST", p, NULL, A, 202));
  snprintf(p, sizeof p, "/runs/%s", ids[0]);
  await_status(&d, p, "cancelled");
  snprintf(p, sizeof p, "/runs/%s", ids[1]);
  await_status(&d, p, "cancelled");
  snprintf(p, sizeof p, "/runs/%s/join", ids[2]);
  cJSON *j = expect(&d, "GET", p, NULL, A, 200);
  const cJSON *done = cJSON_GetObjectItem(j, "done");
  ck_assert_msg(cJSON_IsNumber(done), "the third run did not finish");
  ck_assert_int_eq(done->valueint, 20);
  cJSON_Delete(j);
  await_idle(&d, 0);
  ck_assert_int_eq(lc_test_exit_code(stop(&d, SIGTERM)), 0);
  rm_dir(&d);
}
END_TEST

/* A stream with nothing to say for 15 s gets a keep-alive comment. */
START_TEST(keep_alive) {
  struct daemon d;
  setup_dir(&d);
  start(&d, "--conn-timeout 30");
  struct resp r = req(&d, "POST", "/runs/stream", "{\"assistant_id\":\"sleeper\",\"input\":{\"s\":16}}",
                      A, NULL);
  ck_assert_ptr_nonnull(strstr(r.body, ": keep-alive"));
  ck_assert_ptr_nonnull(strstr(r.body, "\"slept\":16"));
  resp_free(&r);
  ck_assert_int_eq(lc_test_exit_code(stop(&d, SIGTERM)), 0);
  rm_dir(&d);
}
END_TEST

/* ---- many creates at once (grouped commits) ---- */

/* n POSTs to path at once (curl multi, one thread): bodies[i], with
 * header hdrs[i] (or NULL); codes and replies into out. */
static void post_many(struct daemon *d, int n, const char *path, char **bodies, char **hdrs,
                      struct resp *out) {
  CURLM *m = curl_multi_init();
  CURL **e = calloc((size_t)n, sizeof *e);
  struct curl_slist **h = calloc((size_t)n, sizeof *h);
  char url[600];
  snprintf(url, sizeof url, "http://127.0.0.1:%d%s", d->port, path);
  for (int i = 0; i < n; i++) {
    memset(&out[i], 0, sizeof out[i]);
    out[i].body = calloc(1, 1);
    e[i] = curl_easy_init();
    h[i] = curl_slist_append(NULL, "Content-Type: application/json");
    h[i] = curl_slist_append(h[i], "Authorization: Bearer " A);
    if (hdrs && hdrs[i]) h[i] = curl_slist_append(h[i], hdrs[i]);
    curl_easy_setopt(e[i], CURLOPT_URL, url);
    curl_easy_setopt(e[i], CURLOPT_HTTPHEADER, h[i]);
    curl_easy_setopt(e[i], CURLOPT_POSTFIELDS, bodies[i]);
    curl_easy_setopt(e[i], CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(e[i], CURLOPT_WRITEDATA, &out[i]);
    curl_multi_add_handle(m, e[i]);
  }
  int running = 1;
  while (running) {
    ck_assert_int_eq(curl_multi_perform(m, &running), CURLM_OK);
    if (running) curl_multi_poll(m, NULL, 0, 1000, NULL);
  }
  for (int i = 0; i < n; i++) {
    curl_easy_getinfo(e[i], CURLINFO_RESPONSE_CODE, &out[i].code);
    curl_multi_remove_handle(m, e[i]);
    curl_easy_cleanup(e[i]);
    curl_slist_free_all(h[i]);
  }
  curl_multi_cleanup(m);
  free(e);
  free(h);
}

/* Creates without a thread run in parallel and share commits; an
 * Idempotency-Key sent by several of them at once still makes one run
 * (the unique index catches the late ones, which answer with the first). */
START_TEST(concurrent_creates_one_run_per_key) {
  struct daemon d;
  setup_dir(&d);
  start(&d, "");
  enum { N = 48, KEYS = 6 };
  char *bodies[N], *hdrs[N];
  struct resp out[N];
  for (int i = 0; i < N; i++) {
    bodies[i] = strdup("{\"assistant_id\":\"echo\",\"input\":{\"x\":1}}");
    char h[80];
    snprintf(h, sizeof h, "Idempotency-Key: many-%d", i % KEYS);
    hdrs[i] = strdup(h);
  }
  post_many(&d, N, "/runs", bodies, hdrs, out);
  char ids[KEYS][80] = {{0}};
  for (int i = 0; i < N; i++) {
    ck_assert_msg(out[i].code == 200, "create %d: %ld %s", i, out[i].code, out[i].body);
    cJSON *j = cJSON_Parse(out[i].body);
    const char *id = str(j, "run_id");
    ck_assert_str_ne(id, "");
    if (!ids[i % KEYS][0]) snprintf(ids[i % KEYS], sizeof ids[0], "%s", id);
    ck_assert_msg(!strcmp(ids[i % KEYS], id), "key %d: runs %s and %s", i % KEYS,
                  ids[i % KEYS], id);
    cJSON_Delete(j);
    resp_free(&out[i]);
    free(bodies[i]);
    free(hdrs[i]);
  }
  for (int k = 0; k < KEYS; k++)
    for (int l = k + 1; l < KEYS; l++) ck_assert_str_ne(ids[k], ids[l]);
  /* Exactly KEYS runs exist. */
  cJSON *all = expect(&d, "POST", "/runs/search", "{\"limit\":1000}", A, 200);
  ck_assert_int_eq(cJSON_GetArraySize(all), KEYS);
  cJSON_Delete(all);
  /* The metrics count the grouped commits: at least the creates written. */
  struct resp m = req(&d, "GET", "/metrics", NULL, A, NULL);
  const char *c = strstr(m.body, "\nluact_serve_table_commits_total ");
  const char *w = strstr(m.body, "\nluact_serve_table_writes_total ");
  ck_assert_ptr_nonnull(c);
  ck_assert_ptr_nonnull(w);
  long commits = atol(c + strlen("\nluact_serve_table_commits_total "));
  long writes = atol(w + strlen("\nluact_serve_table_writes_total "));
  ck_assert_int_ge(writes, KEYS);
  ck_assert_int_ge(commits, 1);
  ck_assert_int_le(commits, writes);
  resp_free(&m);
  ck_assert_int_eq(stop(&d, SIGKILL), SIGKILL);
  rm_dir(&d);
}
END_TEST

/* A run answered 2xx is committed before the answer, also when its insert
 * went in a group with others: SIGKILL right after the last reply, and
 * every run is there after the restart (and runs to its end). */
START_TEST(grouped_creates_survive_sigkill) {
  struct daemon d;
  setup_dir(&d);
  start(&d, "--max-runs 4");
  enum { N = 40 };
  char *bodies[N];
  struct resp out[N];
  for (int i = 0; i < N; i++) bodies[i] = strdup("{\"assistant_id\":\"sleeper\",\"input\":{\"s\":0.05}}");
  post_many(&d, N, "/runs", bodies, NULL, out);
  int st = stop(&d, SIGKILL);
  ck_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
  start(&d, "--max-runs 4");
  for (int i = 0; i < N; i++) {
    ck_assert_msg(out[i].code == 200, "create %d: %ld %s", i, out[i].code, out[i].body);
    cJSON *j = cJSON_Parse(out[i].body);
    char path[200];
    snprintf(path, sizeof path, "/runs/%s/join", str(j, "run_id"));
    cJSON *w = expect(&d, "GET", path, NULL, A, 200);
    ck_assert_msg(cJSON_GetObjectItem(w, "slept") != NULL, "run %s: %s", str(j, "run_id"),
                  cJSON_PrintUnformatted(w));
    cJSON_Delete(w);
    cJSON_Delete(j);
    resp_free(&out[i]);
    free(bodies[i]);
  }
  ck_assert_int_eq(stop(&d, SIGTERM), 0);
  rm_dir(&d);
}
END_TEST

/* The run store's tables are made when the daemon starts, not at its
 * first run's start: a daemon killed after it answered creates but
 * before any of those runs started left d_runs without `runs`, and its
 * restart's recovery (a join on runs) found nothing to resume, so
 * grouped_creates_survive_sigkill hung when the kill came early enough. */
START_TEST(run_store_made_at_start) {
  struct daemon d;
  setup_dir(&d);
  start(&d, NULL);
  int st = stop(&d, SIGKILL); /* no request at all */
  ck_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
  char cmd[600];
  snprintf(cmd, sizeof cmd,
           "sqlite3 %s \"SELECT count(*) FROM sqlite_master WHERE type='table' AND name IN "
           "('runs', 'journal', 'd_runs')\"",
           d.store);
  FILE *p = popen(cmd, "r");
  ck_assert_ptr_nonnull(p);
  char buf[64] = "";
  ck_assert_ptr_nonnull(fgets(buf, sizeof buf, p));
  pclose(p);
  ck_assert_int_eq(atoi(buf), 3);
  rm_dir(&d);
}
END_TEST

Suite *serve_suite(void) {
  Suite *s = suite_create("serve");
  TCase *tc = tcase_create("serve");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, help_lists_options);
  tcase_add_test(tc, no_auth_only_on_loopback);
  tcase_add_test(tc, agents_auth_and_limits);
  tcase_add_test(tc, threads_and_tenants);
  tcase_add_test(tc, interrupt_resume_cancel_idempotency);
  tcase_add_test(tc, stream_and_resume);
  tcase_add_test(tc, store_items);
  tcase_add_test(tc, secrets_canary);
  tcase_add_test(tc, sigkill_and_restart);
  tcase_add_test(tc, sdk_langgraph_js);
  tcase_add_test(tc, shopbot_across_restart);
  tcase_add_test(tc, limits_and_slow_clients);
  tcase_add_test(tc, sigterm_then_resume);
  tcase_add_test(tc, cancel_races_completion);
  tcase_add_test(tc, agent_limit);
  tcase_add_test(tc, cli_cancel_of_resumed_run);
  tcase_add_test(tc, cancelled_in_queue_stays_cancelled);
  tcase_add_test(tc, cancel_while_run_leaves);
  tcase_add_test(tc, concurrent_creates_one_run_per_key);
  tcase_add_test(tc, grouped_creates_survive_sigkill);
  suite_add_tcase(s, tc);
  TCase *wk = tcase_create("workers");
  tcase_set_timeout(wk, 120);
  tcase_add_test(wk, stalled_store_stalls_only_its_run);
  tcase_add_test(wk, answer_commit_holds_no_runner_lock);
  tcase_add_test(wk, cancel_during_answer_stays_cancelled);
  tcase_add_test(wk, queued_cancel_holds_no_runner_lock);
  tcase_add_test(wk, a_pass_steps_only_ready_runs);
  tcase_add_test(wk, cancels_on_a_shared_worker);
  tcase_add_test(wk, run_store_made_at_start);
  suite_add_tcase(s, wk);

  TCase *slow = tcase_create("keepalive");
  tcase_set_timeout(slow, 120);
  tcase_add_test(slow, keep_alive);
  suite_add_tcase(s, slow);
  /* The serve flows that do not read the SQLite file themselves, again
   * with --store postgres://... */
  TCase *pg = tcase_create("pg");
  tcase_set_timeout(pg, 120);
  tcase_add_unchecked_fixture(pg, pg_up, pg_down);
  tcase_add_checked_fixture(pg, on_pg, NULL);
  tcase_add_test(pg, threads_and_tenants);
  tcase_add_test(pg, interrupt_resume_cancel_idempotency);
  tcase_add_test(pg, stream_and_resume);
  tcase_add_test(pg, store_items);
  tcase_add_test(pg, cancel_races_completion);
  tcase_add_test(pg, cancelled_in_queue_stays_cancelled);
  suite_add_tcase(s, pg);
  return s;
}
