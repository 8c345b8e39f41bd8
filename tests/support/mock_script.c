/* mock_script.c: the script (an ordered list of match -> reply rules):
 * loading and checking it, matching a request, and turning a rule's reply
 * into a response (raw body, fixture, generator, faults). */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mock.h"

static const char *const match_keys[] = {"path", "path_prefix", "method", "body_contains",
                                         "stream", "headers", NULL};
static const char *const reply_keys[] = {
    "status", "headers", "body", "json", "fixture", "openai", "anthropic", "ollama",
    "gemini", "bedrock", "responses",
    "delay_ms", "chunk_bytes", "gap_ms", "cut_after_bytes", "stall_after_bytes", "stall_max_ms",
    "malformed", "retry_after", "close", "chunked", "echo_credentials", "embeddings", "rerank", NULL};

/* Unknown keys are errors: a typo such as "delay" would otherwise silently
 * turn a fault test into a passing happy-path test. */
static int check_keys(const cJSON *obj, const char *const *allowed, const char *what, size_t i,
                      char *err, size_t errlen) {
  const cJSON *it;
  cJSON_ArrayForEach(it, obj) {
    int ok = 0;
    for (const char *const *k = allowed; *k; k++)
      if (strcmp(*k, it->string) == 0) ok = 1;
    if (!ok) {
      snprintf(err, errlen, "rule %zu: unknown %s key \"%s\"", i, what, it->string);
      return -1;
    }
  }
  return 0;
}

static int load_fixture(struct mock_rule *r, const char *path, const char *base_dir, char *err,
                        size_t errlen) {
  char full[4096];
  if (path[0] == '/' || !base_dir) snprintf(full, sizeof full, "%s", path);
  else snprintf(full, sizeof full, "%s/%s", base_dir, path);
  size_t len;
  char *text = mock_read_file(full, &len);
  if (!text) {
    snprintf(err, errlen, "cannot read fixture %.300s", full);
    return -1;
  }
  cJSON *fx = cJSON_ParseWithLength(text, len);
  free(text);
  cJSON *resp = cJSON_GetObjectItemCaseSensitive(fx, "response");
  cJSON *status = cJSON_GetObjectItemCaseSensitive(resp, "status");
  cJSON *body = cJSON_GetObjectItemCaseSensitive(resp, "body_text");
  /* Binary bodies (Bedrock's event-stream) are recorded as base64. */
  cJSON *b64 = cJSON_GetObjectItemCaseSensitive(resp, "body_base64");
  unsigned char *bin = NULL;
  size_t bin_len = 0;
  if (!cJSON_IsString(body) && cJSON_IsString(b64) &&
      !(bin = mock_base64_decode(b64->valuestring, &bin_len))) {
    snprintf(err, errlen, "fixture %.300s: bad response.body_base64", full);
    cJSON_Delete(fx);
    return -1;
  }
  if (!cJSON_IsNumber(status) || (!cJSON_IsString(body) && !bin)) {
    snprintf(err, errlen, "fixture %.300s: no response.status/body_text", full);
    cJSON_Delete(fx);
    return -1;
  }
  r->fx_status = status->valueint;
  if (bin) {
    r->fx_len = bin_len;
    r->fx_body = (char *)bin;
  } else {
    r->fx_len = strlen(body->valuestring);
    r->fx_body = xstrndup(body->valuestring, r->fx_len);
  }
  cJSON *h = cJSON_GetObjectItemCaseSensitive(resp, "headers");
  r->fx_headers = cJSON_IsObject(h) ? cJSON_Duplicate(h, 1) : NULL;
  cJSON_Delete(fx);
  return 0;
}

struct mock_script *mock_script_parse(const char *json, const char *base_dir, char *err,
                                      size_t errlen) {
  cJSON *root = cJSON_Parse(json);
  if (!root) {
    snprintf(err, errlen, "script is not valid JSON (near: %.40s)",
             cJSON_GetErrorPtr() ? cJSON_GetErrorPtr() : "?");
    return NULL;
  }
  /* Either a bare array of rules or {"rules": [...]}. */
  cJSON *rules = cJSON_IsArray(root) ? root : cJSON_GetObjectItemCaseSensitive(root, "rules");
  if (!cJSON_IsArray(rules)) {
    snprintf(err, errlen, "script must be an array of rules or {\"rules\": [...]}");
    cJSON_Delete(root);
    return NULL;
  }
  struct mock_script *s = xmalloc(sizeof *s);
  memset(s, 0, sizeof *s);
  s->root = root;
  s->refs = 1;
  s->nrules = (size_t)cJSON_GetArraySize(rules);
  s->rules = xmalloc((s->nrules ? s->nrules : 1) * sizeof *s->rules);
  memset(s->rules, 0, (s->nrules ? s->nrules : 1) * sizeof *s->rules);
  size_t i = 0;
  const cJSON *rj;
  cJSON_ArrayForEach(rj, rules) {
    struct mock_rule *r = &s->rules[i];
    r->times = -1;
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(rj, "match");
    const cJSON *rep = cJSON_GetObjectItemCaseSensitive(rj, "reply");
    const cJSON *times = cJSON_GetObjectItemCaseSensitive(rj, "times");
    const cJSON *it;
    cJSON_ArrayForEach(it, rj) {
      if (strcmp(it->string, "match") && strcmp(it->string, "reply") &&
          strcmp(it->string, "times") && strcmp(it->string, "name")) {
        snprintf(err, errlen, "rule %zu: unknown key \"%s\"", i, it->string);
        goto fail;
      }
    }
    if (!cJSON_IsObject(rep)) {
      snprintf(err, errlen, "rule %zu: \"reply\" object missing", i);
      goto fail;
    }
    if (m && !cJSON_IsObject(m)) {
      snprintf(err, errlen, "rule %zu: \"match\" must be an object", i);
      goto fail;
    }
    if (check_keys(m, match_keys, "match", i, err, errlen) < 0 ||
        check_keys(rep, reply_keys, "reply", i, err, errlen) < 0)
      goto fail;
    if (times) {
      if (!cJSON_IsNumber(times) || times->valuedouble < 0) {
        snprintf(err, errlen, "rule %zu: \"times\" must be a number >= 0", i);
        goto fail;
      }
      r->times = (long)times->valuedouble;
    }
    r->match = m;
    r->reply = rep;
    const cJSON *fx = cJSON_GetObjectItemCaseSensitive(rep, "fixture");
    if (fx) {
      if (!cJSON_IsString(fx)) {
        snprintf(err, errlen, "rule %zu: \"fixture\" must be a path", i);
        goto fail;
      }
      char sub[400];
      if (load_fixture(r, fx->valuestring, base_dir, sub, sizeof sub) < 0) {
        snprintf(err, errlen, "rule %zu: %s", i, sub);
        goto fail;
      }
    }
    i++;
  }
  return s;
fail:
  mock_script_free(s);
  return NULL;
}

void mock_script_free(struct mock_script *s) {
  if (!s) return;
  for (size_t i = 0; i < s->nrules; i++) {
    free(s->rules[i].fx_body);
    cJSON_Delete(s->rules[i].fx_headers);
  }
  free(s->rules);
  cJSON_Delete(s->root);
  free(s);
}

/* The request's "stream" flag; absent counts as false. */
static int req_stream(const struct mock_request *req) {
  return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(req->json, "stream"));
}

int mock_rule_matches(const struct mock_rule *rule, const struct mock_request *req) {
  const cJSON *m = rule->match;
  if (!m) return 1;
  const cJSON *v;
  if ((v = cJSON_GetObjectItemCaseSensitive(m, "path")) && cJSON_IsString(v) &&
      strcmp(req->path, v->valuestring) != 0)
    return 0;
  if ((v = cJSON_GetObjectItemCaseSensitive(m, "path_prefix")) && cJSON_IsString(v) &&
      strncmp(req->path, v->valuestring, strlen(v->valuestring)) != 0)
    return 0;
  if ((v = cJSON_GetObjectItemCaseSensitive(m, "method")) && cJSON_IsString(v) &&
      strcasecmp(req->method, v->valuestring) != 0)
    return 0;
  if ((v = cJSON_GetObjectItemCaseSensitive(m, "body_contains")) && cJSON_IsString(v) &&
      (!req->body || !strstr(req->body, v->valuestring)))
    return 0;
  if ((v = cJSON_GetObjectItemCaseSensitive(m, "stream")) && cJSON_IsBool(v) &&
      cJSON_IsTrue(v) != req_stream(req))
    return 0;
  if ((v = cJSON_GetObjectItemCaseSensitive(m, "headers")) && cJSON_IsObject(v)) {
    const cJSON *h;
    cJSON_ArrayForEach(h, v) {
      const char *got = mock_req_header(req, h->string);
      if (!got) return 0;
      /* "*" asks only that the header be present */
      if (cJSON_IsString(h) && strcmp(h->valuestring, "*") != 0 &&
          strcmp(got, h->valuestring) != 0)
        return 0;
    }
  }
  return 1;
}

static long num(const cJSON *obj, const char *key, long dflt) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
  return cJSON_IsNumber(v) ? (long)v->valuedouble : dflt;
}

static void set_headers(struct mock_response *resp, const cJSON *h) {
  const cJSON *it;
  cJSON_ArrayForEach(it, h) {
    if (cJSON_IsString(it)) {
      mock_resp_set_header(resp, it->string, it->valuestring);
    } else if (cJSON_IsNumber(it)) {
      char tmp[32];
      snprintf(tmp, sizeof tmp, "%ld", (long)it->valuedouble);
      mock_resp_set_header(resp, it->string, tmp);
    }
  }
}

/* "echo_credentials": a 401 whose body carries the request's credential,
 * as a careless provider or proxy writes it (the leak secrets.c stops).
 * true or "json": inside a JSON error message; "slash": the same with '/'
 * written "\/"; "percent": percent-encoded; "raw": a text/plain body; a
 * number N: only the first N bytes of the token (after "Bearer "). */
static void echo_credentials(const cJSON *how, const struct mock_request *req,
                             struct mock_response *resp) {
  const char *cred = mock_req_header(req, "authorization");
  if (!cred) cred = mock_req_header(req, "x-api-key");
  if (!cred) cred = mock_req_header(req, "api-key");
  if (!cred) cred = "";
  resp->status = 401;
  struct mbuf msg = {0};
  if (cJSON_IsNumber(how)) {
    const char *tok = strchr(cred, ' ');
    tok = tok ? tok + 1 : cred;
    size_t n = strlen(tok), k = how->valuedouble > 0 ? (size_t)how->valuedouble : 0;
    mbuf_puts(&msg, "Incorrect API key provided: ");
    mbuf_add(&msg, tok, k < n ? k : n);
    mbuf_puts(&msg, "...");
  } else if (cJSON_IsString(how) && strcmp(how->valuestring, "percent") == 0) {
    mbuf_puts(&msg, "bad credential: ");
    for (const unsigned char *c = (const unsigned char *)cred; *c; c++) {
      if (isalnum(*c) || strchr("-._~", *c)) mbuf_add(&msg, c, 1);
      else mbuf_printf(&msg, "%%%02X", *c);
    }
  } else {
    mbuf_printf(&msg, "Incorrect API key provided: %s", cred);
  }
  if (cJSON_IsString(how) && strcmp(how->valuestring, "raw") == 0) {
    mbuf_printf(&resp->body, "401 Unauthorized: %s", msg.p);
    mock_resp_set_header(resp, "Content-Type", "text/plain");
    mbuf_free(&msg);
    return;
  }
  cJSON *o = cJSON_CreateObject(), *e = cJSON_AddObjectToObject(o, "error");
  cJSON_AddStringToObject(e, "message", msg.p);
  cJSON_AddStringToObject(e, "type", "invalid_request_error");
  cJSON_AddStringToObject(e, "code", "invalid_api_key");
  char *text = cJSON_PrintUnformatted(o);
  cJSON_Delete(o);
  mbuf_free(&msg);
  if (!text) abort();
  int slash = cJSON_IsString(how) && strcmp(how->valuestring, "slash") == 0;
  for (const char *c = text; *c; c++) {
    if (slash && *c == '/') mbuf_add(&resp->body, "\\", 1);
    mbuf_add(&resp->body, c, 1);
  }
  cJSON_free(text);
  mock_resp_set_header(resp, "Content-Type", "application/json");
}

void mock_reply_build(const struct mock_rule *rule, const struct mock_request *req,
                      long default_delay_ms, struct mock_response *resp) {
  const cJSON *rep = rule->reply;
  const cJSON *v;
  if (rule->fx_body) {
    resp->status = rule->fx_status;
    set_headers(resp, rule->fx_headers);
    mbuf_add(&resp->body, rule->fx_body, rule->fx_len);
    /* Streams were chunked on the wire; replay them the same way. */
    const char *ct = mock_resp_header(resp, "content-type");
    resp->chunked = ct && (strstr(ct, "event-stream") || strstr(ct, "ndjson") ||
                           strstr(ct, "eventstream"));
  } else if ((v = cJSON_GetObjectItemCaseSensitive(rep, "openai"))) {
    mock_gen_openai(v, req, resp);
  } else if ((v = cJSON_GetObjectItemCaseSensitive(rep, "anthropic"))) {
    mock_gen_anthropic(v, req, resp);
  } else if ((v = cJSON_GetObjectItemCaseSensitive(rep, "ollama"))) {
    mock_gen_ollama(v, req, resp);
  } else if ((v = cJSON_GetObjectItemCaseSensitive(rep, "gemini"))) {
    mock_gen_gemini(v, req, resp);
  } else if ((v = cJSON_GetObjectItemCaseSensitive(rep, "bedrock"))) {
    mock_gen_bedrock(v, req, resp);
  } else if ((v = cJSON_GetObjectItemCaseSensitive(rep, "embeddings"))) {
    mock_gen_embeddings(v, req, resp);
  } else if ((v = cJSON_GetObjectItemCaseSensitive(rep, "rerank"))) {
    mock_gen_rerank(v, req, resp);
  } else if ((v = cJSON_GetObjectItemCaseSensitive(rep, "responses"))) {
    mock_gen_responses(v, req, resp);
  } else if ((v = cJSON_GetObjectItemCaseSensitive(rep, "echo_credentials"))) {
    echo_credentials(v, req, resp);
  } else if ((v = cJSON_GetObjectItemCaseSensitive(rep, "json"))) {
    mock_resp_json(resp, 200, v);
  } else if ((v = cJSON_GetObjectItemCaseSensitive(rep, "body")) && cJSON_IsString(v)) {
    mbuf_puts(&resp->body, v->valuestring);
    mock_resp_set_header(resp, "Content-Type", "application/json");
  }
  if (!resp->body.p) mbuf_add(&resp->body, "", 0);
  resp->status = (int)num(rep, "status", resp->status);
  set_headers(resp, cJSON_GetObjectItemCaseSensitive(rep, "headers"));
  if ((v = cJSON_GetObjectItemCaseSensitive(rep, "retry_after"))) {
    if (cJSON_IsString(v)) {
      mock_resp_set_header(resp, "Retry-After", v->valuestring);
    } else if (cJSON_IsNumber(v)) {
      char tmp[32];
      snprintf(tmp, sizeof tmp, "%ld", (long)v->valuedouble);
      mock_resp_set_header(resp, "Retry-After", tmp);
    }
  }
  resp->delay_ms = num(rep, "delay_ms", default_delay_ms);
  resp->chunk_bytes = num(rep, "chunk_bytes", 0);
  resp->gap_ms = num(rep, "gap_ms", 0);
  resp->cut_after_bytes = num(rep, "cut_after_bytes", -1);
  resp->stall_after_bytes = num(rep, "stall_after_bytes", -1);
  resp->stall_max_ms = num(rep, "stall_max_ms", 120000);
  if (resp->stall_max_ms > 120000) resp->stall_max_ms = 120000; /* nothing hangs forever */
  resp->close = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(rep, "close"));
  if ((v = cJSON_GetObjectItemCaseSensitive(rep, "chunked")) && cJSON_IsBool(v))
    resp->chunked = cJSON_IsTrue(v);
  if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(rep, "malformed"))) mock_gen_malform(resp);
}
