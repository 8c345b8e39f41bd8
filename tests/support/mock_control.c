/* mock_control.c: the server's shared state seen from a request: the
 * request log, the /_ control endpoints, and picking the rule that answers. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mock.h"

/* The log is for tests to inspect; cap it so a long-running example server
 * does not grow without bound. */
#define LOG_MAX 100000

/* Credentials never reach the log: tests print it on failure. */
static int secret_header(const char *name) {
  static const char *const names[] = {"authorization", "proxy-authorization", "x-api-key",
                                      "api-key", "x-goog-api-key",
                                      "x-amz-security-token", NULL};
  for (const char *const *n = names; *n; n++)
    if (strcasecmp(name, *n) == 0) return 1;
  return 0;
}

void mock_log_request(struct mock_server *srv, const struct mock_request *req, long delay_ms) {
  cJSON *e = cJSON_CreateObject();
  cJSON_AddStringToObject(e, "method", req->method);
  cJSON_AddStringToObject(e, "path", req->target);
  cJSON *h = cJSON_AddObjectToObject(e, "headers");
  for (size_t i = 0; i < req->nheaders; i++) {
    /* Lower-case names, as HTTP/2 and most client libraries present them. */
    char *name = xstrdup(req->headers[i].name);
    for (char *p = name; *p; p++)
      if (*p >= 'A' && *p <= 'Z') *p = (char)(*p - 'A' + 'a');
    cJSON_DeleteItemFromObjectCaseSensitive(h, name);
    cJSON_AddStringToObject(h, name, secret_header(name) ? "<redacted>" : req->headers[i].value);
    free(name);
  }
  if (req->json) cJSON_AddItemToObject(e, "body", cJSON_Duplicate(req->json, 1));
  else cJSON_AddStringToObject(e, "body", req->body ? req->body : "");
  cJSON_AddNumberToObject(e, "time_ms", mock_now_ms() - srv->t0);
  cJSON_AddNumberToObject(e, "delay_ms", (double)delay_ms);
  pthread_mutex_lock(&srv->lock);
  if (cJSON_GetArraySize(srv->log) < LOG_MAX) cJSON_AddItemToArray(srv->log, e);
  else cJSON_Delete(e);
  pthread_mutex_unlock(&srv->lock);
}

void mock_script_release(struct mock_server *srv, struct mock_script *s) {
  if (!s) return;
  pthread_mutex_lock(&srv->lock);
  int last = --s->refs == 0;
  pthread_mutex_unlock(&srv->lock);
  if (last) mock_script_free(s);
}

void mock_answer(struct mock_server *srv, const struct mock_request *req,
                 struct mock_response *resp) {
  const struct mock_rule *hit = NULL;
  pthread_mutex_lock(&srv->lock);
  struct mock_script *s = srv->script;
  if (s) {
    s->refs++;
    for (size_t i = 0; i < s->nrules && !hit; i++) {
      struct mock_rule *r = &s->rules[i];
      if (r->times >= 0 && r->used >= r->times) continue;
      if (!mock_rule_matches(r, req)) continue;
      r->used++;
      hit = r;
    }
  }
  if (!hit) srv->unmatched++;
  pthread_mutex_unlock(&srv->lock);

  if (hit) {
    mock_reply_build(hit, req, srv->latency_ms, resp);
  } else {
    char msg[512];
    snprintf(msg, sizeof msg, "lc-mockllm: no rule matched %s %.400s", req->method, req->target);
    mock_resp_error(resp, 500, "mock_no_rule", msg);
    resp->delay_ms = srv->latency_ms;
  }
  mock_script_release(srv, s);
}

static void stats(struct mock_server *srv, struct mock_response *resp) {
  cJSON *o = cJSON_CreateObject();
  pthread_mutex_lock(&srv->lock);
  cJSON_AddNumberToObject(o, "requests", (double)srv->requests);
  cJSON_AddNumberToObject(o, "in_flight", (double)srv->in_flight);
  cJSON_AddNumberToObject(o, "peak_in_flight", (double)srv->peak_in_flight);
  cJSON_AddNumberToObject(o, "unmatched", (double)srv->unmatched);
  cJSON_AddNumberToObject(o, "connections", (double)srv->connections);
  cJSON_AddNumberToObject(o, "open_connections", (double)srv->live_conns);
  cJSON_AddNumberToObject(o, "peak_connections", (double)srv->peak_conns);
  cJSON_AddNumberToObject(o, "rules", srv->script ? (double)srv->script->nrules : 0);
  pthread_mutex_unlock(&srv->lock);
  mock_resp_json(resp, 200, o);
  cJSON_Delete(o);
}

static void ok(struct mock_response *resp, long rules) {
  cJSON *o = cJSON_CreateObject();
  cJSON_AddTrueToObject(o, "ok");
  if (rules >= 0) cJSON_AddNumberToObject(o, "rules", (double)rules);
  mock_resp_json(resp, 200, o);
  cJSON_Delete(o);
}

void mock_control(struct mock_server *srv, const struct mock_request *req,
                  struct mock_response *resp) {
  int get = strcmp(req->method, "GET") == 0, post = strcmp(req->method, "POST") == 0;
  if (get && strcmp(req->path, "/_requests") == 0) {
    pthread_mutex_lock(&srv->lock);
    char *s = cJSON_PrintUnformatted(srv->log);
    pthread_mutex_unlock(&srv->lock);
    if (!s) abort();
    mbuf_puts(&resp->body, s);
    free(s);
    mock_resp_set_header(resp, "Content-Type", "application/json");
  } else if (get && strcmp(req->path, "/_stats") == 0) {
    stats(srv, resp);
  } else if (post && strcmp(req->path, "/_reset") == 0) {
    /* A fresh start for the next test case: log, rule counters, stats. */
    pthread_mutex_lock(&srv->lock);
    cJSON_Delete(srv->log);
    srv->log = cJSON_CreateArray();
    for (size_t i = 0; srv->script && i < srv->script->nrules; i++) srv->script->rules[i].used = 0;
    srv->requests = srv->unmatched = 0;
    srv->peak_in_flight = srv->in_flight;
    srv->connections = srv->live_conns;
    srv->peak_conns = srv->live_conns;
    pthread_mutex_unlock(&srv->lock);
    ok(resp, -1);
  } else if (post && strcmp(req->path, "/_script") == 0) {
    char err[512];
    struct mock_script *s =
        mock_script_parse(req->body ? req->body : "", srv->script_dir, err, sizeof err);
    if (!s) {
      mock_resp_error(resp, 400, "mock_bad_script", err);
      return;
    }
    long n = (long)s->nrules;
    pthread_mutex_lock(&srv->lock);
    struct mock_script *old = srv->script;
    srv->script = s;
    pthread_mutex_unlock(&srv->lock);
    mock_script_release(srv, old);
    ok(resp, n);
  } else {
    mock_resp_error(resp, 404, "mock_no_endpoint",
                    "control endpoints: GET /_requests, GET /_stats, POST /_reset, POST /_script");
  }
}
