/* llm_ollama.c: adapter for Ollama's native /api/chat: arguments as JSON
 * objects, tool results with role "tool" + tool_name, sampling in
 * "options", NDJSON streaming ending with a done:true line. Models that
 * think inline ("<think>...</think>" in content) have that part moved to
 * reasoning. */
#include <stdio.h>
#include <string.h>

#include "conv.h"
#include "jsonw.h"
#include "lc.h"
#include "llm.h"
#include "llm_accum.h"

/* ---- request ---- */

/* The body is written straight to text (jsonw.h), the members that stay
 * the same between turns before "messages" (llm.h, the body prefix cache). */
static int write_msg(struct lc_jsonw *w, const struct lc_llm_msg *m,
                     char *err, size_t errlen) {
  lc_jsonw_obj(w);
  lc_jsonw_key(w, "role");
  lc_jsonw_cstr(w, lc_llm_role_name(m->role));
  lc_jsonw_key(w, "content");
  /* Text parts join the content (Ollama has one text per message);
   * images go to "images" as bare base64 (no URLs: refused). */
  size_t n_img = 0;
  int more_text = 0;
  for (size_t i = 0; i < m->n_parts; i++) {
    if (m->parts[i].kind == LC_PART_IMAGE) {
      if (lc_llm_image_check(&m->parts[i], LC_PROV_OLLAMA, err, errlen))
        return LC_EINVAL;
      n_img++;
    } else {
      more_text = 1;
    }
  }
  if (!more_text) {
    lc_jsonw_str(w, m->content ? m->content : "", lc_accum_msg_len(m));
  } else {
    struct lc_buf t;
    lc_buf_init(&t, 0);
    int rc = m->content ? lc_buf_append(&t, m->content, lc_accum_msg_len(m)) : 0;
    for (size_t i = 0; !rc && i < m->n_parts; i++) {
      const struct lc_llm_part *p = &m->parts[i];
      if (p->kind != LC_PART_TEXT)
        continue;
      if (t.len)
        rc = lc_buf_append(&t, "\n\n", 2);
      if (!rc && p->text_len)
        rc = lc_buf_append(&t, p->text, p->text_len);
    }
    if (rc) {
      lc_buf_free(&t);
      snprintf(err, errlen, "out of memory");
      return LC_ENOMEM;
    }
    lc_jsonw_str(w, t.data ? t.data : "", t.len);
    lc_buf_free(&t);
  }
  if (n_img) {
    lc_jsonw_key(w, "images");
    lc_jsonw_arr(w);
    for (size_t i = 0; i < m->n_parts; i++)
      if (m->parts[i].kind == LC_PART_IMAGE)
        lc_accum_w_base64(w, "", m->parts[i].data, m->parts[i].data_len);
    lc_jsonw_arr_end(w);
  }
  if (m->role == LC_ROLE_ASSISTANT && m->n_tool_calls) {
    lc_jsonw_key(w, "tool_calls");
    lc_jsonw_arr(w);
    for (size_t k = 0; k < m->n_tool_calls; k++) {
      const struct lc_llm_tool_call *c = &m->tool_calls[k];
      lc_jsonw_obj(w);
      lc_jsonw_key(w, "function");
      lc_jsonw_obj(w);
      lc_jsonw_key(w, "name");
      lc_jsonw_cstr(w, c->name);
      lc_jsonw_key(w, "arguments");
      if (lc_accum_w_args_object(w, c, err, errlen))
        return LC_EINVAL;
      lc_jsonw_obj_end(w);
      lc_jsonw_obj_end(w);
    }
    lc_jsonw_arr_end(w);
  }
  if (m->role == LC_ROLE_TOOL && m->name) {
    lc_jsonw_key(w, "tool_name");
    lc_jsonw_cstr(w, m->name);
  }
  lc_jsonw_obj_end(w);
  return 0;
}

static void write_head(struct lc_jsonw *w, const struct lc_llm_request *req) {
  /* Ollama streams unless told otherwise, so "stream" is always sent. */
  lc_jsonw_key(w, "stream");
  lc_jsonw_bool(w, req->stream != 0);
  if (req->thinking_budget > 0) {
    lc_jsonw_key(w, "think");
    lc_jsonw_bool(w, 1);
  }
  /* Ollama has no tool_choice: "none" is honoured by not offering tools;
   * required/named cannot be forced and fall back to offering them. */
  if (req->n_tools && req->tool_choice != LC_TOOL_CHOICE_NONE) {
    lc_jsonw_key(w, "tools");
    lc_accum_w_function_tools(w, req, 0);
  }
  if (req->format == LC_FORMAT_JSON) {
    lc_jsonw_key(w, "format");
    lc_jsonw_cstr(w, "json");
  } else if (req->format == LC_FORMAT_JSON_SCHEMA) {
    lc_jsonw_key(w, "format");
    if (req->response_schema)
      lc_jsonw_cjson(w, req->response_schema);
    else
      lc_jsonw_raw(w, "{}", 2);
  }
  const unsigned opts = LC_SET_TEMPERATURE | LC_SET_TOP_P | LC_SET_TOP_K |
                        LC_SET_MAX_TOKENS | LC_SET_SEED;
  if ((req->set & opts) || req->n_stop) { /* omitted when empty */
    lc_jsonw_key(w, "options");
    lc_jsonw_obj(w);
    lc_accum_write_sampling(w, req, "top_k", "num_predict");
    lc_jsonw_obj_end(w);
  }
}

/* OLLAMA_HOST may be "host:port", "host" or a URL; like the ollama CLI,
 * no scheme means http and port 11434. */
static int base_url(const char *host, struct lc_buf *b) {
  if (!host || !*host)
    host = lc_llm_ollama.default_base_url;
  const char *sep = strstr(host, "://");
  if (sep)
    return lc_buf_puts(b, host);
  size_t hn = strcspn(host, "/");
  int has_port = 0;
  if (host[0] == '[') { /* [v6]:port */
    const char *rb = memchr(host, ']', hn);
    has_port = rb && rb + 1 < host + hn && rb[1] == ':';
  } else {
    has_port = memchr(host, ':', hn) != NULL;
  }
  int rc = lc_buf_puts(b, "http://");
  if (!rc)
    rc = lc_buf_append(b, host, hn);
  if (!rc && !has_port)
    rc = lc_buf_puts(b, ":11434");
  if (!rc)
    rc = lc_buf_puts(b, host + hn);
  return rc;
}

static int build(const struct lc_llm_request *req, struct lc_llm_http *out,
                 char *err, size_t errlen) {
  int rc = lc_accum_chat_body(out, req, LC_PROV_OLLAMA, write_head, write_msg,
                              err, errlen);
  if (rc)
    return rc;
  struct lc_buf url;
  lc_buf_init(&url, 0);
  rc = base_url(req->base_url, &url);
  if (!rc)
    rc = lc_accum_http_url(out, url.data, "/api/chat");
  lc_buf_free(&url);
  if (!rc)
    rc = lc_accum_http_header(out, "Content-Type: application/json");
  if (!rc)
    rc = lc_accum_http_header(out, "Accept: %s",
                              req->stream ? "application/x-ndjson"
                                          : "application/json");
  /* Local Ollama takes no key; Ollama Cloud takes a bearer token. */
  if (!rc && req->api_key && *req->api_key)
    rc = lc_accum_http_header(out, "Authorization: Bearer %s", req->api_key);
  if (rc) {
    /* The body goes back to the prefix it came from (llm.h): the cast is
     * the cache's one write. */
    if (req->cache_wire)
      lc_llm_prefix_give_back((struct lc_llm_request *)req, &out->body);
    lc_llm_http_free(out);
    snprintf(err, errlen,
             rc == LC_ETOOBIG ? "header too long" : "out of memory");
  }
  return rc;
}

/* ---- response ---- */

/* One /api/chat object: a whole answer or one NDJSON line. */
static int chunk(struct lc_llm_accum *a, const cJSON *root, int *done) {
  const cJSON *e = cJSON_GetObjectItemCaseSensitive(root, "error");
  if (e && !cJSON_IsNull(e))
    return lc_accum_fail_json(a, root);
  lc_accum_set_once(&a->model, lc_accum_str(root, "model"));
  const cJSON *m = cJSON_GetObjectItemCaseSensitive(root, "message");
  const char *s;
  if ((s = lc_accum_str(m, "thinking")) && lc_accum_reasoning(a, s, strlen(s)))
    return LC_EINVAL;
  if ((s = lc_accum_str(m, "content")) && lc_accum_text(a, s, strlen(s)))
    return LC_EINVAL;
  const cJSON *tc;
  cJSON_ArrayForEach(tc, cJSON_GetObjectItemCaseSensitive(m, "tool_calls")) {
    /* Each entry is a whole call; older servers give no id. */
    const cJSON *fn = cJSON_GetObjectItemCaseSensitive(tc, "function");
    int key = lc_accum_fresh_key(a);
    if (lc_accum_tool_start(a, key, lc_accum_str(tc, "id"),
                            lc_accum_str(fn, "name")))
      return LC_EINVAL;
    const cJSON *args = cJSON_GetObjectItemCaseSensitive(fn, "arguments");
    if (args && !cJSON_IsNull(args)) {
      char *p = lc_accum_print(args);
      int rc = p ? lc_accum_tool_args(a, key, p, strlen(p))
                 : lc_accum_fail(a, LC_LLM_EBADRESP, NULL, "out of memory");
      lc_free(p);
      if (rc)
        return LC_EINVAL;
    }
  }
  if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(root, "done"))) {
    *done = 1;
    const char *dr = lc_accum_str(root, "done_reason");
    lc_accum_finish(a, dr ? lc_accum_map_finish(dr) : LC_FINISH_STOP, dr);
    a->usage.input = lc_accum_long(root, "prompt_eval_count", a->usage.input);
    a->usage.output = lc_accum_long(root, "eval_count", a->usage.output);
  }
  return a->err ? LC_EINVAL : 0;
}

static int parse(const char *body, size_t len, struct lc_llm_response *out) {
  cJSON *root = lc_accum_parse_body(body, len, "chat response", out);
  if (!root)
    return LC_EINVAL;
  struct lc_llm_accum a;
  lc_accum_init(&a);
  a.split_think = 1;
  int done = 0;
  const cJSON *e = cJSON_GetObjectItemCaseSensitive(root, "error");
  if (!(e && !cJSON_IsNull(e)) &&
      !cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(root, "message")))
    lc_accum_fail(&a, LC_LLM_EBADRESP, NULL,
                  "malformed chat response: no message");
  else
    chunk(&a, root, &done);
  cJSON_Delete(root);
  int rc = lc_accum_build(&a, out);
  lc_accum_free(&a);
  return rc;
}

static void parse_error(int status, const char *body, size_t len,
                        struct lc_llm_response *out) {
  out->http_status = status;
  lc_accum_classify(status, body, len, out);
  lc_llm_response_scrub(out); /* the body may echo the key */
}

/* ---- streaming ---- */

static int on_line(void *ud, const char *line, size_t len) {
  struct lc_llm_stream *st = ud;
  struct lc_llm_accum *a = &st->acc;
  if (st->done)
    return 0;
  char err[96];
  cJSON *root = lc_json_parse(line, len, err, sizeof err);
  if (!cJSON_IsObject(root)) {
    cJSON_Delete(root);
    return lc_accum_fail(a, LC_LLM_EBADRESP, NULL, "malformed stream line: %s",
                         root ? "not an object" : err);
  }
  int rc = chunk(a, root, &st->done);
  cJSON_Delete(root);
  return rc;
}

static struct lc_llm_stream *stream_new(void) {
  struct lc_llm_stream *st = lc_accum_stream_new();
  if (st)
    st->acc.split_think = 1;
  return st;
}

static int stream_feed(struct lc_llm_stream *st, const char *data, size_t len,
                       lc_llm_delta_fn cb, void *ud) {
  if (st->acc.err)
    return LC_EINVAL;
  lc_accum_set_cb(&st->acc, cb, ud);
  int rc = lc_ndjson_feed(&st->nd, data, len, on_line, st);
  if (rc && st->nd.failed)
    lc_accum_fail(&st->acc, LC_LLM_EBADRESP, NULL, "%s", st->nd.err);
  return st->acc.err ? LC_EINVAL : 0;
}

static int stream_end(struct lc_llm_stream *st, struct lc_llm_response *out) {
  /* end() has no callback: the last feed's may be gone by now. */
  lc_accum_set_cb(&st->acc, NULL, NULL);
  if (!st->acc.err) {
    int rc = lc_ndjson_end(&st->nd, on_line, st); /* last line, no newline */
    if (rc && st->nd.failed)
      lc_accum_fail(&st->acc, LC_LLM_EBADRESP, NULL, "%s", st->nd.err);
  }
  return lc_accum_stream_end(st, out, "the done:true line");
}

const struct lc_llm_adapter lc_llm_ollama = {
    .name = "ollama",
    .default_base_url = "http://127.0.0.1:11434",
    .base_url_env = "OLLAMA_HOST",
    .api_key_env = NULL,
    .build = build,
    .parse = parse,
    .parse_error = parse_error,
    .stream_new = stream_new,
    .stream_feed = stream_feed,
    .stream_end = stream_end,
    .stream_free = lc_accum_stream_free,
};
