/* check_conformance_gb.c: every Gemini and Bedrock chat exchange recorded
 * in shared/fixtures/llm2 (embeddings are another issue's), against
 * tests/conformance/expected_gemini_bedrock.json:
 *   - parse: the adapter's parse / parse_error / stream (streams fed whole,
 *     split at every byte offset and one byte at a time, and cut short at
 *     several offsets, always an error, never a short answer);
 *   - loopback: lc-mockllm serves the recording byte for byte, the real
 *     client reads it (libcurl, streaming when the recorded path streamed);
 *   - request: the recorded request rebuilt as a normalised request, built
 *     by the adapter, and the body's shape compared with the recorded one
 *     (turn roles, part kinds, calls, results, signatures, tools, config).
 * None is skipped. */
#include <check.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "lc.h"
#include "llm.h"
#include "llm_bedrock.h"
#include "llm_call.h"
#include "loop.h"
#include "util_common.h"
#include "util_conformance.h"
#include "util_mock.h"

#define MAX_FX 64
static char *fx_ids[MAX_FX];
static int n_fx;

static const char *fixtures2_dir(void) {
  static char buf[4096];
  const char *env = getenv("LUACT_FIXTURES2");
  if (env && *env) return env;
  snprintf(buf, sizeof buf, "%s/../shared/fixtures/llm2", LC_SOURCE_DIR);
  return buf;
}

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* gemini-* and bedrock-* chat fixtures (not embeddings). */
static void list_fixtures(void) {
  if (n_fx) return;
  DIR *d = opendir(fixtures2_dir());
  if (!d) return;
  struct dirent *e;
  while ((e = readdir(d)) && n_fx < MAX_FX) {
    size_t n = strlen(e->d_name);
    if (n <= 5 || strcmp(e->d_name + n - 5, ".json") != 0) continue;
    if (strncmp(e->d_name, "gemini-", 7) && strncmp(e->d_name, "bedrock-", 8)) continue;
    if (strstr(e->d_name, "embed")) continue;
    fx_ids[n_fx++] = strndup(e->d_name, n - 5);
  }
  closedir(d);
  qsort(fx_ids, (size_t)n_fx, sizeof *fx_ids, cmp_str);
}

static cJSON *load_fixture(const char *id) {
  char path[8400];
  snprintf(path, sizeof path, "%s/%s.json", fixtures2_dir(), id);
  return lc_conf_load_json(path);
}

static cJSON *load_expected(void) {
  char path[8400];
  snprintf(path, sizeof path, "%s/tests/conformance/expected_gemini_bedrock.json",
           lc_test_source_dir());
  return lc_conf_load_json(path);
}

static int is_gemini(const char *id) { return strncmp(id, "gemini-", 7) == 0; }

static const struct lc_llm_adapter *adapter_of(const char *id) {
  return is_gemini(id) ? &lc_llm_gemini : &lc_llm_bedrock;
}

static const char *rec_path(const cJSON *fx) {
  return lc_conf_jstr(cJSON_GetObjectItem(fx, "request"), "path");
}

/* Streaming is in the path for both providers, never in the body. */
static int is_stream(const cJSON *fx) {
  const char *p = rec_path(fx);
  size_t n = strlen(p);
  return strstr(p, ":streamGenerateContent") ||
         (n >= 16 && strcmp(p + n - 16, "/converse-stream") == 0);
}

static unsigned char *b64_decode(const char *s, size_t *out_len) {
  size_t n = strlen(s);
  unsigned char *out = malloc(n / 4 * 3 + 3);
  size_t o = 0;
  unsigned acc = 0;
  int bits = 0;
  for (size_t i = 0; i < n; i++) {
    int c = (unsigned char)s[i], v;
    if (c >= 'A' && c <= 'Z') v = c - 'A';
    else if (c >= 'a' && c <= 'z') v = c - 'a' + 26;
    else if (c >= '0' && c <= '9') v = c - '0' + 52;
    else if (c == '+' || c == '-') v = 62;
    else if (c == '/' || c == '_') v = 63;
    else continue;
    acc = (acc << 6) | (unsigned)v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[o++] = (unsigned char)(acc >> bits);
    }
  }
  *out_len = o;
  return out;
}

/* The recorded response body (decoded when binary); malloc'd. */
static char *resp_body(const cJSON *fx, size_t *len) {
  const cJSON *r = cJSON_GetObjectItem(fx, "response");
  const char *t = lc_conf_jstr(r, "body_text");
  if (t) {
    *len = strlen(t);
    return strdup(t);
  }
  return (char *)b64_decode(lc_conf_jstr(r, "body_base64"), len);
}

/* Signatures expected on the calls (prefixes; null = none). */
static void check_signatures(const char *id, const struct lc_llm_response *r,
                             const cJSON *exp) {
  const cJSON *sigs = cJSON_GetObjectItem(exp, "signatures");
  for (size_t i = 0; i < r->n_tool_calls; i++) {
    const cJSON *s = cJSON_GetArrayItem(sigs, (int)i);
    const char *got = r->tool_calls[i].signature;
    if (cJSON_IsString(s))
      ck_assert_msg(lc_conf_has_prefix(got, s->valuestring), "%s: call %zu signature %s", id,
                    i, got ? got : "(none)");
    else
      ck_assert_msg(got == NULL, "%s: call %zu has signature %s", id, i, got);
  }
}

static void check(const char *id, const struct lc_llm_response *r, const cJSON *exp) {
  if (lc_conf_jstr(exp, "err")) {
    lc_conf_check_error(id, r, exp);
    ck_assert_ptr_null(r->text);
  } else {
    lc_conf_check_answer(id, r, exp);
    check_signatures(id, r, exp);
    /* A text part's signature, kept as the turn's reasoning_state. */
    const char *ts = lc_conf_jstr(exp, "text_signature");
    char want[128];
    if (ts) snprintf(want, sizeof want, "[{\"thoughtSignature\":\"%s", ts);
    if (ts) ck_assert_msg(lc_conf_has_prefix(r->reasoning_state, want), "%s: state %s", id,
                          r->reasoning_state ? r->reasoning_state : "(none)");
    else ck_assert_msg(r->reasoning_state == NULL, "%s: state %s", id, r->reasoning_state);
  }
}

START_TEST(every_fixture_has_an_expectation) {
  list_fixtures();
  ck_assert_int_eq(n_fx, 19); /* 13 Gemini chat + 6 Bedrock */
  cJSON *exp = load_expected();
  for (int i = 0; i < n_fx; i++)
    ck_assert_msg(cJSON_GetObjectItemCaseSensitive(exp, fx_ids[i]) != NULL,
                  "fixture %s has no expectation", fx_ids[i]);
  const cJSON *e;
  int n = 0;
  cJSON_ArrayForEach(e, exp) if (e->string[0] != '_') n++;
  ck_assert_int_eq(n, n_fx);
  cJSON_Delete(exp);
}
END_TEST

/* ---- parse level ---- */

/* Offsets where a stream is cut short: before its end is complete. */
static size_t last_event_at(const char *id, const char *body, size_t len) {
  if (!is_gemini(id)) return len - 5; /* inside the last frame */
  for (size_t i = len; i-- > 0;) {
    if (body[i] == ']') return i; /* the array's end */
    if (i + 5 <= len && memcmp(body + i, "data:", 5) == 0) return i + 10;
  }
  return 0;
}

START_TEST(fixture_parse) {
  list_fixtures();
  ck_assert_int_lt(_i, n_fx);
  const char *id = fx_ids[_i];
  long live = lc_alloc_live();
  cJSON *all = load_expected();
  cJSON *fx = load_fixture(id);
  const cJSON *exp = cJSON_GetObjectItemCaseSensitive(all, id);
  ck_assert_ptr_nonnull(exp);
  const struct lc_llm_adapter *ad = adapter_of(id);
  const cJSON *resp = cJSON_GetObjectItem(fx, "response");
  int status = cJSON_GetObjectItem(resp, "status")->valueint;
  size_t len;
  char *body = resp_body(fx, &len);
  struct lc_llm_response r;
  lc_llm_response_init(&r);
  if (status >= 300) {
    ad->parse_error(status, body, len, &r);
    ck_assert_int_eq(r.http_status, status);
    const cJSON *h;
    cJSON_ArrayForEach(h, cJSON_GetObjectItem(resp, "headers")) {
      double v = lc_llm_retry_after_s(h->string, h->valuestring, lc_wall_s());
      if (v >= 0) r.retry_after_s = v;
      if (strcasecmp(h->string, "x-amzn-errortype") == 0)
        lc_llm_bedrock_error_type(h->valuestring, &r);
    }
    check(id, &r, exp);
  } else if (!is_stream(fx)) {
    ck_assert_int_eq(ad->parse(body, len, &r), 0);
    check(id, &r, exp);
    lc_conf_check_half_body(ad, body, len);
  } else {
    ck_assert_int_eq(lc_conf_run_stream(ad, body, len, len, &r), 0);
    check(id, &r, exp);
    lc_conf_check_splits(id, ad, body, len, &r, 0, len + 1); /* len + 1: bytewise */
    size_t last = last_event_at(id, body, len);
    ck_assert_uint_gt(last, 0);
    size_t cuts[] = {0, 1, len / 4, len / 2, last};
    for (size_t k = 0; k < LC_ARRAY_LEN(cuts); k++) {
      struct lc_llm_response o;
      ck_assert_int_eq(lc_conf_run_stream(ad, body, cuts[k], cuts[k], &o), LC_EINVAL);
      ck_assert_msg(o.err == LC_LLM_EBADRESP, "%s: cut at %zu: %s", id, cuts[k],
                    lc_llm_err_name(o.err));
      ck_assert_ptr_null(o.text);
      ck_assert_uint_eq(o.n_tool_calls, 0);
      lc_llm_response_free(&o);
    }
  }
  lc_llm_response_free(&r);
  free(body);
  cJSON_Delete(fx);
  cJSON_Delete(all);
  ck_assert_int_eq(lc_alloc_live(), live);
}
END_TEST

/* ---- over loopback ---- */

static void on_done(struct lc_llm_call *c, void *ud) { (void)c, *(int *)ud = 1; }

/* The model in a recorded path: /v1beta/models/<m>:verb, /model/<m>/verb. */
static char *path_model(const char *path) {
  const char *p = strstr(path, "/models/");
  if (p) {
    p += 8;
    return strndup(p, strcspn(p, ":"));
  }
  p = strstr(path, "/model/") + 7;
  char *m = strndup(p, strcspn(p, "/"));
  char *c = strstr(m, "%3A"); /* the one escape the recordings hold */
  if (c) {
    *c = ':';
    memmove(c + 1, c + 3, strlen(c + 3) + 1);
  }
  return m;
}

START_TEST(fixture_over_loopback) {
  list_fixtures();
  ck_assert_int_lt(_i, n_fx);
  const char *id = fx_ids[_i];
  cJSON *fx = load_fixture(id);
  cJSON *all = load_expected();
  const cJSON *exp = cJSON_GetObjectItemCaseSensitive(all, id);
  char script[8400];
  snprintf(script, sizeof script, "[{\"reply\":{\"fixture\":\"%s/%s.json\"}}]",
           fixtures2_dir(), id);
  struct lc_mock m;
  ck_assert_int_eq(lc_mock_start(&m, script), 0);
  struct lc_llm_request *req = lc_calloc(1, sizeof *req);
  req->provider = is_gemini(id) ? LC_PROV_GEMINI : LC_PROV_BEDROCK;
  char *model = path_model(rec_path(fx));
  req->model = lc_strdup(model);
  char base[128];
  snprintf(base, sizeof base, "%s%s", m.base_url, is_gemini(id) ? "/v1beta" : "");
  req->base_url = lc_strdup(base);
  req->api_key = lc_strdup("test-key-0123456789");
  req->stream = is_stream(fx);
  req->msgs = lc_calloc(1, sizeof *req->msgs);
  req->n_msgs = 1;
  req->msgs[0].role = LC_ROLE_USER;
  req->msgs[0].content = lc_strdup("hi");
  struct lc_llm_opts o;
  lc_llm_opts_default(&o);
  o.retry.max_attempts = 1;
  struct lc_loop *loop;
  ck_assert_int_eq(lc_loop_new(&loop), 0);
  int done = 0;
  struct lc_llm_call *call;
  ck_assert_int_eq(lc_llm_call_start(loop, req, &o, NULL, NULL, on_done, &done, &call), 0);
  while (!done) lc_loop_run_once(loop, -1);
  const struct lc_llm_response *r = lc_llm_call_response(call);
  check(id, r, exp);
  ck_assert_int_eq(r->attempts, 1);
  lc_llm_call_free(call);
  lc_loop_free(loop);
  /* One request, at the recorded path (the SSE form for Gemini streams). */
  char want[512];
  const char *rp = rec_path(fx);
  snprintf(want, sizeof want, "%.*s%s", (int)strcspn(rp, "?"), rp,
           is_gemini(id) && is_stream(fx) ? "?alt=sse" : "");
  ck_assert_msg(lc_mock_count_requests(&m, want) == 1, "%s: no request at %s", id, want);
  char *log = lc_mock_requests(&m);
  ck_assert_ptr_nonnull(log);
  ck_assert_msg(!strstr(log, "test-key-0123456789"), "the key reached the log");
  ck_assert_msg(!strstr(log, "key="), "a key in the URL: %s", log);
  free(log);
  free(model);
  ck_assert_int_eq(lc_mock_stop(&m), 0);
  cJSON_Delete(all);
  cJSON_Delete(fx);
}
END_TEST

/* ---- the request's shape ---- */

static char *dup_print(const cJSON *v) {
  if (cJSON_IsString(v)) return lc_strdup(v->valuestring);
  char *s = cJSON_PrintUnformatted(v);
  char *o = lc_strdup(s);
  cJSON_free(s);
  return o;
}

static struct lc_llm_msg *add_msg(struct lc_llm_request *q, enum lc_llm_role role,
                                  const char *text) {
  q->msgs = lc_realloc(q->msgs, (q->n_msgs + 1) * sizeof *q->msgs);
  struct lc_llm_msg *m = &q->msgs[q->n_msgs++];
  memset(m, 0, sizeof *m);
  m->role = role;
  if (text) {
    m->content = lc_strdup(text);
    m->content_len = strlen(text);
  }
  return m;
}

static void add_call(struct lc_llm_msg *m, const char *id, const char *name,
                     const cJSON *args, const char *sig) {
  m->tool_calls = lc_realloc(m->tool_calls, (m->n_tool_calls + 1) * sizeof *m->tool_calls);
  struct lc_llm_tool_call *c = &m->tool_calls[m->n_tool_calls++];
  memset(c, 0, sizeof *c);
  c->id = lc_strdup(id);
  c->name = lc_strdup(name);
  c->args_json = dup_print(args);
  c->signature = sig ? lc_strdup(sig) : NULL;
}

static void add_tool(struct lc_llm_request *q, const char *name, const char *desc,
                     const cJSON *schema) {
  q->tools = lc_realloc(q->tools, (q->n_tools + 1) * sizeof *q->tools);
  struct lc_llm_tool *t = &q->tools[q->n_tools++];
  memset(t, 0, sizeof *t);
  t->name = lc_strdup(name);
  t->description = desc ? lc_strdup(desc) : NULL;
  t->schema_json = schema ? dup_print(schema) : NULL;
}

/* Parts of a recording luact cannot represent (an inline video):
 * counted, left out of the comparison. */
static int unsupported;

/* An image part from recorded base64 (cut by the fixture's trimming to
 * its first 300 characters, which still start with the format's magic):
 * attached to m. */
static void add_image(struct lc_llm_msg *m, const char *b64) {
  ck_assert_ptr_nonnull(m);
  const char *cut = strstr(b64, "...[TRIMMED");
  char *head = strndup(b64, cut ? (size_t)(cut - b64) : strlen(b64));
  size_t n;
  unsigned char *bytes = b64_decode(head, &n);
  free(head);
  m->parts = lc_realloc(m->parts, (m->n_parts + 1) * sizeof *m->parts);
  char err[128];
  ck_assert_msg(lc_llm_part_image_bytes(&m->parts[m->n_parts], bytes, n, NULL, err, sizeof err) == 0,
                "%s", err);
  m->n_parts++;
  free(bytes);
}

/* The first 200 characters of base64 data, in the standard alphabet. */
static void b64_head(struct lc_buf *b, const char *s) {
  for (int i = 0; s && s[i] && i < 200; i++) {
    char c = s[i] == '-' ? '+' : s[i] == '_' ? '/' : s[i];
    lc_buf_append(b, &c, 1);
  }
}

/* Gemini: contents -> messages. Results get the id of the call they
 * answer (by name and order, as Gemini matches them). */
static void gemini_request(const cJSON *b, struct lc_llm_request *q) {
  const cJSON *si = cJSON_GetObjectItem(b, "systemInstruction");
  const cJSON *sp = cJSON_GetObjectItem(si, "parts"), *p;
  if (cJSON_IsObject(sp) && lc_conf_jstr(sp, "text") && *lc_conf_jstr(sp, "text"))
    add_msg(q, LC_ROLE_SYSTEM, lc_conf_jstr(sp, "text"));
  cJSON_ArrayForEach(p, (cJSON_IsArray(sp) ? sp : NULL)) add_msg(q, LC_ROLE_SYSTEM, lc_conf_jstr(p, "text"));
  const cJSON *c;
  int ncall = 0, nres = 0;
  cJSON_ArrayForEach(c, cJSON_GetObjectItem(b, "contents")) {
    int model = strcmp(lc_conf_jstr(c, "role"), "model") == 0;
    struct lc_llm_msg *am = NULL, *um = NULL;
    cJSON_ArrayForEach(p, cJSON_GetObjectItem(c, "parts")) {
      const cJSON *fc = cJSON_GetObjectItem(p, "functionCall");
      const cJSON *fr = cJSON_GetObjectItem(p, "functionResponse");
      const char *t = lc_conf_jstr(p, "text");
      const cJSON *inl = cJSON_GetObjectItem(p, "inlineData");
      if (inl && !lc_conf_has_prefix(lc_conf_jstr(inl, "mimeType"), "image/")) {
        unsupported++;
      } else if (inl) {
        add_image(um, lc_conf_jstr(inl, "data"));
      } else if (model) {
        if (!am) am = add_msg(q, LC_ROLE_ASSISTANT, NULL);
        if (fc) {
          char cid[32];
          snprintf(cid, sizeof cid, "call_%d", ncall++);
          add_call(am, cid, lc_conf_jstr(fc, "name"), cJSON_GetObjectItem(fc, "args"),
                   lc_conf_jstr(p, "thoughtSignature"));
        } else if (t) {
          am->content = lc_strdup(t);
        }
        const char *ts = lc_conf_jstr(p, "thoughtSignature");
        if (!fc && ts) {
          char st[4096];
          snprintf(st, sizeof st, "[{\"thoughtSignature\":\"%s\"}]", ts);
          am->reasoning_state = lc_strdup(st);
          am->reasoning_prov = LC_PROV_GEMINI;
        }
      } else if (fr) {
        char cid[32];
        snprintf(cid, sizeof cid, "call_%d", nres++);
        const cJSON *resp = cJSON_GetObjectItem(fr, "response");
        const cJSON *out = cJSON_GetObjectItem(resp, "output");
        char *txt = dup_print(out ? out : resp);
        struct lc_llm_msg *m = add_msg(q, LC_ROLE_TOOL, txt);
        lc_free(txt);
        m->tool_call_id = lc_strdup(cid);
      } else if (t) {
        um = add_msg(q, LC_ROLE_USER, t);
      }
    }
  }
  const cJSON *tl, *fd;
  cJSON_ArrayForEach(tl, cJSON_GetObjectItem(b, "tools")) {
    cJSON_ArrayForEach(fd, cJSON_GetObjectItem(tl, "functionDeclarations"))
      add_tool(q, lc_conf_jstr(fd, "name"), lc_conf_jstr(fd, "description"),
               cJSON_GetObjectItem(fd, "parameters"));
  }
  const cJSON *gc = cJSON_GetObjectItem(b, "generationConfig"), *v;
  if ((v = cJSON_GetObjectItem(gc, "temperature"))) {
    q->set |= LC_SET_TEMPERATURE;
    q->temperature = v->valuedouble;
  }
  if ((v = cJSON_GetObjectItem(gc, "seed"))) {
    q->set |= LC_SET_SEED;
    q->seed = (long long)v->valuedouble;
  }
  const cJSON *tc = cJSON_GetObjectItem(gc, "thinkingConfig");
  if ((v = cJSON_GetObjectItem(tc, "thinking_budget")) || (v = cJSON_GetObjectItem(tc, "thinkingBudget")))
    q->thinking_budget = v->valueint;
}

static void bedrock_request(const cJSON *b, struct lc_llm_request *q) {
  const cJSON *s, *m, *blk;
  cJSON_ArrayForEach(s, cJSON_GetObjectItem(b, "system")) add_msg(q, LC_ROLE_SYSTEM, lc_conf_jstr(s, "text"));
  cJSON_ArrayForEach(m, cJSON_GetObjectItem(b, "messages")) {
    int asst = strcmp(lc_conf_jstr(m, "role"), "assistant") == 0;
    struct lc_llm_msg *am = asst ? add_msg(q, LC_ROLE_ASSISTANT, NULL) : NULL, *um = NULL;
    cJSON_ArrayForEach(blk, cJSON_GetObjectItem(m, "content")) {
      const cJSON *tu = cJSON_GetObjectItem(blk, "toolUse");
      const cJSON *tr = cJSON_GetObjectItem(blk, "toolResult");
      const char *t = lc_conf_jstr(blk, "text");
      const cJSON *img = cJSON_GetObjectItem(blk, "image");
      if (img) {
        add_image(um, lc_conf_jstr(cJSON_GetObjectItem(img, "source"), "bytes"));
      } else if (tu) {
        add_call(am, lc_conf_jstr(tu, "toolUseId"), lc_conf_jstr(tu, "name"),
                 cJSON_GetObjectItem(tu, "input"), NULL);
      } else if (tr) {
        const cJSON *c0 = cJSON_GetArrayItem(cJSON_GetObjectItem(tr, "content"), 0);
        struct lc_llm_msg *x = add_msg(q, LC_ROLE_TOOL, lc_conf_jstr(c0, "text"));
        x->tool_call_id = lc_strdup(lc_conf_jstr(tr, "toolUseId"));
      } else if (t && asst) {
        am->content = lc_strdup(t);
      } else if (t) {
        um = add_msg(q, LC_ROLE_USER, t);
      }
    }
  }
  const cJSON *ts;
  cJSON_ArrayForEach(ts, cJSON_GetObjectItem(cJSON_GetObjectItem(b, "toolConfig"), "tools")) {
    const cJSON *spec = cJSON_GetObjectItem(ts, "toolSpec");
    add_tool(q, lc_conf_jstr(spec, "name"), lc_conf_jstr(spec, "description"),
             cJSON_GetObjectItem(cJSON_GetObjectItem(spec, "inputSchema"), "json"));
  }
  const cJSON *ic = cJSON_GetObjectItem(b, "inferenceConfig"), *v;
  if ((v = cJSON_GetObjectItem(ic, "maxTokens"))) {
    q->set |= LC_SET_MAX_TOKENS;
    q->max_tokens = v->valueint;
  }
  if ((v = cJSON_GetObjectItem(ic, "temperature"))) {
    q->set |= LC_SET_TEMPERATURE;
    q->temperature = v->valuedouble;
  }
  const cJSON *stops = cJSON_GetObjectItem(ic, "stopSequences");
  int ns = cJSON_GetArraySize(stops);
  if (ns) {
    q->stop = lc_calloc((size_t)ns, sizeof *q->stop);
    for (int i = 0; i < ns; i++) q->stop[q->n_stop++] = lc_strdup(cJSON_GetArrayItem(stops, i)->valuestring);
  }
}

/* base64url -> base64: the SDK echoed signatures URL-safe, we verbatim. */
static void std_b64(struct lc_buf *b, const char *s) {
  for (; s && *s; s++) {
    char c = *s == '-' ? '+' : *s == '_' ? '/' : *s;
    lc_buf_append(b, &c, 1);
  }
}

/* One line per turn and part: what must match between recorded and built. */
static void gemini_shape(struct lc_buf *b, const cJSON *body) {
  const cJSON *c, *p;
  cJSON_ArrayForEach(c, cJSON_GetObjectItem(body, "contents")) {
    lc_buf_printf(b, "turn %s:", lc_conf_jstr(c, "role"));
    cJSON_ArrayForEach(p, cJSON_GetObjectItem(c, "parts")) {
      const cJSON *fc = cJSON_GetObjectItem(p, "functionCall");
      const cJSON *fr = cJSON_GetObjectItem(p, "functionResponse");
      const cJSON *inl = cJSON_GetObjectItem(p, "inlineData");
      if (inl && !lc_conf_has_prefix(lc_conf_jstr(inl, "mimeType"), "image/")) continue;
      if (inl) {
        lc_buf_printf(b, " image(%s ", lc_conf_jstr(inl, "mimeType"));
        b64_head(b, lc_conf_jstr(inl, "data"));
        lc_buf_puts(b, ")");
        continue;
      }
      if (fc) {
        char *a = cJSON_PrintUnformatted(cJSON_GetObjectItem(fc, "args"));
        cJSON *pa = cJSON_Parse(a); /* canonical key order is not asked */
        lc_buf_printf(b, " call(%s %d", lc_conf_jstr(fc, "name"), cJSON_GetArraySize(pa));
        cJSON_free(a);
        cJSON_Delete(pa);
      } else if (fr) {
        lc_buf_printf(b, " result(%s", lc_conf_jstr(fr, "name"));
      } else {
        lc_buf_printf(b, " text(%zu", strlen(lc_conf_jstr(p, "text") ? lc_conf_jstr(p, "text") : ""));
      }
      if (lc_conf_jstr(p, "thoughtSignature")) {
        lc_buf_puts(b, " sig=");
        std_b64(b, lc_conf_jstr(p, "thoughtSignature"));
      }
      lc_buf_puts(b, ")");
    }
    lc_buf_puts(b, "\n");
  }
  const cJSON *si = cJSON_GetObjectItem(body, "systemInstruction");
  const cJSON *sp = cJSON_GetObjectItem(si, "parts");
  const cJSON *s0 = cJSON_IsArray(sp) ? cJSON_GetArrayItem(sp, 0) : sp;
  const char *st = lc_conf_jstr(s0, "text");
  lc_buf_printf(b, "system %s\n", st && *st ? st : "-");
  const cJSON *tl, *fd;
  cJSON_ArrayForEach(tl, cJSON_GetObjectItem(body, "tools")) {
    cJSON_ArrayForEach(fd, cJSON_GetObjectItem(tl, "functionDeclarations"))
      lc_buf_printf(b, "tool %s %s\n", lc_conf_jstr(fd, "name"),
                    cJSON_GetObjectItem(fd, "parameters") ||
                            cJSON_GetObjectItem(fd, "parametersJsonSchema")
                        ? "schema" : "-");
  }
  const cJSON *gc = cJSON_GetObjectItem(body, "generationConfig");
  lc_buf_printf(b, "temperature %s seed %s\n",
                cJSON_GetObjectItem(gc, "temperature") ? "set" : "-",
                cJSON_GetObjectItem(gc, "seed") ? "set" : "-");
  /* The SDK wrote snake_case (the API takes both), we camelCase. */
  const cJSON *tc = cJSON_GetObjectItem(gc, "thinkingConfig"), *v;
  if ((v = cJSON_GetObjectItem(tc, "thinking_budget")) || (v = cJSON_GetObjectItem(tc, "thinkingBudget")))
    lc_buf_printf(b, "thinking %d %s\n", v->valueint,
                  cJSON_IsTrue(cJSON_GetObjectItem(tc, "include_thoughts")) ||
                          cJSON_IsTrue(cJSON_GetObjectItem(tc, "includeThoughts"))
                      ? "thoughts" : "-");
}

static void bedrock_shape(struct lc_buf *b, const cJSON *body) {
  const cJSON *m, *blk;
  cJSON_ArrayForEach(m, cJSON_GetObjectItem(body, "messages")) {
    lc_buf_printf(b, "turn %s:", lc_conf_jstr(m, "role"));
    cJSON_ArrayForEach(blk, cJSON_GetObjectItem(m, "content")) {
      const cJSON *tu = cJSON_GetObjectItem(blk, "toolUse");
      const cJSON *tr = cJSON_GetObjectItem(blk, "toolResult");
      const cJSON *img = cJSON_GetObjectItem(blk, "image");
      if (img) {
        lc_buf_printf(b, " image(%s ", lc_conf_jstr(img, "format"));
        b64_head(b, lc_conf_jstr(cJSON_GetObjectItem(img, "source"), "bytes"));
        lc_buf_puts(b, ")");
        continue;
      }
      if (tu) {
        char *a = cJSON_PrintUnformatted(cJSON_GetObjectItem(tu, "input"));
        lc_buf_printf(b, " use(%s %s %s)", lc_conf_jstr(tu, "toolUseId"),
                      lc_conf_jstr(tu, "name"), a);
        cJSON_free(a);
      } else if (tr) {
        const cJSON *c0 = cJSON_GetArrayItem(cJSON_GetObjectItem(tr, "content"), 0);
        lc_buf_printf(b, " result(%s %s)", lc_conf_jstr(tr, "toolUseId"), lc_conf_jstr(c0, "text"));
      } else {
        lc_buf_printf(b, " text(%s)", lc_conf_jstr(blk, "text"));
      }
    }
    lc_buf_puts(b, "\n");
  }
  const cJSON *s;
  cJSON_ArrayForEach(s, cJSON_GetObjectItem(body, "system")) lc_buf_printf(b, "system %s\n", lc_conf_jstr(s, "text"));
  const cJSON *ts;
  cJSON_ArrayForEach(ts, cJSON_GetObjectItem(cJSON_GetObjectItem(body, "toolConfig"), "tools")) {
    const cJSON *spec = cJSON_GetObjectItem(ts, "toolSpec");
    char *j = cJSON_PrintUnformatted(cJSON_GetObjectItem(cJSON_GetObjectItem(spec, "inputSchema"), "json"));
    lc_buf_printf(b, "tool %s %s\n", lc_conf_jstr(spec, "name"), j);
    cJSON_free(j);
  }
  char *ic = cJSON_PrintUnformatted(cJSON_GetObjectItem(body, "inferenceConfig"));
  lc_buf_printf(b, "inference %s\n", ic ? ic : "-");
  cJSON_free(ic);
}

START_TEST(fixture_request_shape) {
  list_fixtures();
  ck_assert_int_lt(_i, n_fx);
  const char *id = fx_ids[_i];
  long live = lc_alloc_live();
  cJSON *fx = load_fixture(id);
  const cJSON *rq = cJSON_GetObjectItem(fx, "request");
  const cJSON *rb = cJSON_GetObjectItem(rq, "body");
  struct lc_llm_request q;
  memset(&q, 0, sizeof q);
  q.provider = is_gemini(id) ? LC_PROV_GEMINI : LC_PROV_BEDROCK;
  char *model = path_model(rec_path(fx));
  q.model = lc_strdup(model);
  free(model);
  q.base_url = lc_strdup(is_gemini(id) ? "https://generativelanguage.googleapis.com/v1beta"
                                       : "https://bedrock-runtime.us-east-1.amazonaws.com");
  q.api_key = lc_strdup("test-key-0123456789");
  q.stream = is_stream(fx);
  unsupported = 0;
  if (is_gemini(id)) gemini_request(rb, &q);
  else bedrock_request(rb, &q);
  struct lc_llm_http h;
  char err[256] = "";
  ck_assert_msg(adapter_of(id)->build(&q, &h, err, sizeof err) == 0, "%s: %s", id, err);
  cJSON *built = cJSON_ParseWithLength(h.body, h.body_len);
  ck_assert_ptr_nonnull(built);
  struct lc_buf want, got;
  lc_buf_init(&want, 0);
  lc_buf_init(&got, 0);
  if (is_gemini(id)) {
    gemini_shape(&want, rb);
    gemini_shape(&got, built);
  } else {
    bedrock_shape(&want, rb);
    bedrock_shape(&got, built);
  }
  ck_assert_msg(strcmp(want.data, got.data) == 0, "%s: recorded\n%s\nbuilt\n%s", id, want.data,
                got.data);
  /* The URL: the recorded path (Gemini streams in their SSE form). */
  const char *rp = lc_conf_jstr(rq, "path");
  char wp[512];
  snprintf(wp, sizeof wp, "%.*s%s", (int)strcspn(rp, "?"), rp,
           is_gemini(id) && q.stream ? "?alt=sse" : "");
  const char *up = strstr(h.url, "amazonaws.com");
  up = up ? up + 13 : strstr(h.url, "googleapis.com") + 14;
  ck_assert_str_eq(up, wp);
  /* The key in a header, never in the URL. */
  ck_assert_ptr_null(strstr(h.url, "key"));
  int key_hdr = 0;
  for (size_t i = 0; i < h.n_headers; i++)
    key_hdr |= strcmp(h.headers[i], is_gemini(id) ? "x-goog-api-key: test-key-0123456789"
                                                  : "Authorization: Bearer test-key-0123456789") == 0;
  ck_assert(key_hdr);
  /* Only the inline video (the 429's request) cannot be represented. */
  ck_assert_int_eq(unsupported, strstr(id, "429") ? 1 : 0);
  lc_buf_free(&want);
  lc_buf_free(&got);
  cJSON_Delete(built);
  lc_llm_http_free(&h);
  lc_llm_request_free(&q);
  cJSON_Delete(fx);
  ck_assert_int_eq(lc_alloc_live(), live);
}
END_TEST

Suite *conformance_gb_suite(void) {
  Suite *s = suite_create("conformance_gb");
  list_fixtures();
  int n = n_fx ? n_fx : 1;
  TCase *tc = tcase_create("coverage");
  tcase_add_test(tc, every_fixture_has_an_expectation);
  suite_add_tcase(s, tc);
  tc = tcase_create("parse");
  tcase_set_timeout(tc, 300);
  tcase_add_loop_test(tc, fixture_parse, 0, n);
  suite_add_tcase(s, tc);
  tc = tcase_create("loopback");
  tcase_set_timeout(tc, 30);
  tcase_add_loop_test(tc, fixture_over_loopback, 0, n);
  suite_add_tcase(s, tc);
  tc = tcase_create("request");
  tcase_add_loop_test(tc, fixture_request_shape, 0, n);
  suite_add_tcase(s, tc);
  return s;
}
