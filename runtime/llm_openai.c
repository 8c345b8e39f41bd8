/* llm_openai.c: adapter for OpenAI Chat Completions and the servers that
 * speak it (Groq, Together, OpenRouter, vLLM, llama.cpp, Ollama /v1, LM
 * Studio), including their quirks: no tool-call index (Ollama /v1), id and
 * name repeated in every chunk (OpenRouter), reasoning_content (llama.cpp),
 * usage in a final chunk without choices. */
#include <stdio.h>
#include <string.h>

#include "conv.h"
#include "jsonw.h"
#include "lc.h"
#include "llm.h"
#include "llm_accum.h"

/* ---- request ---- */

/* The body is written straight to text (jsonw.h): a cJSON tree of the whole
 * history cost a node allocation per value on every call. Member order is
 * the one the tree had, so the bytes are the same. */

static void write_call(struct lc_jsonw *w, const struct lc_llm_tool_call *c) {
  lc_jsonw_obj(w);
  lc_jsonw_key(w, "function");
  lc_jsonw_obj(w);
  lc_jsonw_key(w, "name");
  lc_jsonw_cstr(w, c->name);
  /* OpenAI wants the arguments as the string the model wrote. */
  lc_jsonw_key(w, "arguments");
  if (c->args_json && *c->args_json) {
    lc_jsonw_cstr(w, c->args_json);
  } else if (c->args) {
    char *printed = cJSON_PrintUnformatted(c->args);
    lc_jsonw_cstr(w, printed && *printed ? printed : "{}");
    cJSON_free(printed);
  } else {
    lc_jsonw_cstr(w, "{}");
  }
  lc_jsonw_obj_end(w);
  lc_jsonw_key(w, "id");
  lc_jsonw_cstr(w, c->id);
  lc_jsonw_key(w, "type");
  lc_jsonw_cstr(w, "function");
  lc_jsonw_obj_end(w);
}

static void write_msg(struct lc_jsonw *w, const struct lc_llm_msg *m) {
  lc_jsonw_obj(w);
  lc_jsonw_key(w, "role");
  lc_jsonw_cstr(w, lc_llm_role_name(m->role));
  lc_jsonw_key(w, "content");
  if (m->content)
    lc_jsonw_str(w, m->content, lc_accum_msg_len(m));
  else if (m->role == LC_ROLE_TOOL)
    lc_jsonw_cstr(w, "");
  else
    lc_jsonw_null(w);
  if (m->role == LC_ROLE_ASSISTANT && m->n_tool_calls) {
    lc_jsonw_key(w, "tool_calls");
    lc_jsonw_arr(w);
    for (size_t i = 0; i < m->n_tool_calls; i++)
      write_call(w, &m->tool_calls[i]);
    lc_jsonw_arr_end(w);
  }
  if (m->role == LC_ROLE_TOOL) {
    lc_jsonw_key(w, "tool_call_id");
    lc_jsonw_cstr(w, m->tool_call_id);
  }
  lc_jsonw_obj_end(w);
}

static int build(const struct lc_llm_request *req, struct lc_llm_http *out,
                 char *err, size_t errlen) {
  memset(out, 0, sizeof *out);
  if (!req->model || !*req->model) {
    snprintf(err, errlen, "no model given");
    return LC_EINVAL;
  }
  struct lc_buf body;
  lc_buf_init(&body, 0);
  struct lc_jsonw jw, *w = &jw;
  lc_jsonw_init(w, &body);
  /* Most bodies fit: fewer reallocations. A failure shows up later. */
  (void)lc_buf_reserve(&body, 4096);
  lc_jsonw_obj(w);
  lc_jsonw_key(w, "model");
  lc_jsonw_cstr(w, req->model);
  /* Wire caches (llm.h): unchanged messages and tools are copied as the
   * bytes an earlier build wrote; the cast is the cache's one write. */
  struct lc_llm_request *cache = req->cache_wire ? (struct lc_llm_request *)req : NULL;
  lc_jsonw_key(w, "messages");
  lc_jsonw_arr(w);
  for (size_t i = 0; i < req->n_msgs; i++) {
    if (lc_llm_wire_put(w, &req->msgs[i].wire, LC_PROV_OPENAI))
      continue;
    size_t at = lc_jsonw_value_at(w);
    write_msg(w, &req->msgs[i]);
    if (cache)
      lc_llm_wire_keep(&cache->msgs[i].wire, LC_PROV_OPENAI, w, at);
  }
  lc_jsonw_arr_end(w);
  if (req->n_tools) {
    lc_jsonw_key(w, "tools");
    if (!lc_llm_wire_put(w, &req->tools_wire, LC_PROV_OPENAI)) {
      size_t at = lc_jsonw_value_at(w);
      lc_jsonw_arr(w);
      for (size_t i = 0; i < req->n_tools; i++)
        lc_accum_w_function_tool(w, &req->tools[i], 1);
      lc_jsonw_arr_end(w);
      if (cache)
        lc_llm_wire_keep(&cache->tools_wire, LC_PROV_OPENAI, w, at);
    }
  }
  switch (req->tool_choice) {
  case LC_TOOL_CHOICE_AUTO: break;
  case LC_TOOL_CHOICE_NONE:
    lc_jsonw_key(w, "tool_choice");
    lc_jsonw_cstr(w, "none");
    break;
  case LC_TOOL_CHOICE_REQUIRED:
    lc_jsonw_key(w, "tool_choice");
    lc_jsonw_cstr(w, "required");
    break;
  case LC_TOOL_CHOICE_NAMED:
    lc_jsonw_key(w, "tool_choice");
    lc_jsonw_obj(w);
    lc_jsonw_key(w, "type");
    lc_jsonw_cstr(w, "function");
    lc_jsonw_key(w, "function");
    lc_jsonw_obj(w);
    lc_jsonw_key(w, "name");
    lc_jsonw_cstr(w, req->tool_choice_name);
    lc_jsonw_obj_end(w);
    lc_jsonw_obj_end(w);
    break;
  }
  if (req->format == LC_FORMAT_JSON) {
    lc_jsonw_key(w, "response_format");
    lc_jsonw_obj(w);
    lc_jsonw_key(w, "type");
    lc_jsonw_cstr(w, "json_object");
    lc_jsonw_obj_end(w);
  } else if (req->format == LC_FORMAT_JSON_SCHEMA) {
    lc_jsonw_key(w, "response_format");
    lc_jsonw_obj(w);
    lc_jsonw_key(w, "type");
    lc_jsonw_cstr(w, "json_schema");
    lc_jsonw_key(w, "json_schema");
    lc_jsonw_obj(w);
    lc_jsonw_key(w, "name");
    lc_jsonw_cstr(w, req->response_schema_name ? req->response_schema_name
                                               : "response");
    lc_jsonw_key(w, "schema");
    if (req->response_schema)
      lc_jsonw_cjson(w, req->response_schema);
    else
      lc_jsonw_raw(w, "{}", 2);
    lc_jsonw_key(w, "strict");
    lc_jsonw_bool(w, 1);
    lc_jsonw_obj_end(w);
    lc_jsonw_obj_end(w);
  }
  /* top_k: api.openai.com rejects it; compatible servers that take it are
   * reached through their own extras, so it is not sent. */
  lc_accum_write_sampling(w, req, NULL, "max_tokens");
  if (req->stream) {
    lc_jsonw_key(w, "stream");
    lc_jsonw_bool(w, 1);
    lc_jsonw_key(w, "stream_options");
    lc_jsonw_obj(w);
    lc_jsonw_key(w, "include_usage");
    lc_jsonw_bool(w, 1);
    lc_jsonw_obj_end(w);
  }
  lc_jsonw_obj_end(w);
  const char *base = req->base_url && *req->base_url
                         ? req->base_url
                         : lc_llm_openai.default_base_url;
  int rc = lc_jsonw_finish(w);
  if (!rc)
    rc = lc_accum_http_body_buf(out, &body);
  lc_buf_free(&body);
  if (!rc)
    rc = lc_accum_http_url(out, base, "/chat/completions");
  if (!rc)
    rc = lc_accum_http_header(out, "Content-Type: application/json");
  if (!rc)
    rc = lc_accum_http_header(out, "Accept: %s",
                              req->stream ? "text/event-stream"
                                          : "application/json");
  if (!rc && req->api_key && *req->api_key)
    rc = lc_accum_http_header(out, "Authorization: Bearer %s", req->api_key);
  if (rc) {
    lc_llm_http_free(out);
    snprintf(err, errlen,
             rc == LC_ETOOBIG ? "header too long" : "out of memory");
  }
  return rc;
}

/* ---- response ---- */

static void usage(struct lc_llm_accum *a, const cJSON *u) {
  if (!cJSON_IsObject(u))
    return;
  a->usage.input = lc_accum_long(u, "prompt_tokens", a->usage.input);
  a->usage.output = lc_accum_long(u, "completion_tokens", a->usage.output);
  a->usage.cached = lc_accum_long(
      cJSON_GetObjectItemCaseSensitive(u, "prompt_tokens_details"),
      "cached_tokens", a->usage.cached);
  a->usage.reasoning = lc_accum_long(
      cJSON_GetObjectItemCaseSensitive(u, "completion_tokens_details"),
      "reasoning_tokens", a->usage.reasoning);
  const cJSON *cost = cJSON_GetObjectItemCaseSensitive(u, "cost");
  if (cJSON_IsNumber(cost)) {
    a->usage.cost = cost->valuedouble;
    a->usage.has_cost = 1;
  }
}

/* Which accumulator slot a tool_calls[] entry belongs to. */
static int call_key(struct lc_llm_accum *a, const cJSON *tc, const char *id) {
  const cJSON *ix = cJSON_GetObjectItemCaseSensitive(tc, "index");
  if (cJSON_IsNumber(ix) && ix->valuedouble >= 0 && ix->valuedouble < 1e6) {
    int key = (int)ix->valuedouble;
    struct lc_accum_call *c = lc_accum_call_by_key(a, key);
    /* A server that gives every call index 0 but a new id. */
    if (c && id && *id && c->id && strcmp(c->id, id) != 0) {
      int k = lc_accum_key_by_id(a, id);
      return k >= 0 ? k : lc_accum_fresh_key(a);
    }
    return key;
  }
  /* No index (Ollama /v1): a new id is a new call, else continue the last. */
  if (id && *id) {
    int k = lc_accum_key_by_id(a, id);
    return k >= 0 ? k : lc_accum_fresh_key(a);
  }
  int k = lc_accum_last_key(a);
  return k >= 0 ? k : lc_accum_fresh_key(a);
}

static int tool_calls(struct lc_llm_accum *a, const cJSON *arr, int whole) {
  const cJSON *tc;
  int i = 0;
  cJSON_ArrayForEach(tc, arr) {
    if (!cJSON_IsObject(tc))
      return lc_accum_fail(a, LC_LLM_EBADRESP, NULL,
                           "tool call is not an object");
    const char *id = lc_accum_str(tc, "id");
    const cJSON *fn = cJSON_GetObjectItemCaseSensitive(tc, "function");
    const char *name = lc_accum_str(fn, "name");
    const cJSON *args = cJSON_GetObjectItemCaseSensitive(fn, "arguments");
    /* A whole message lists each call once: its position is its key. */
    int key = whole ? i : call_key(a, tc, id);
    i++;
    if (lc_accum_tool_start(a, key, id, name))
      return LC_EINVAL;
    if (cJSON_IsString(args)) {
      if (lc_accum_tool_args(a, key, args->valuestring,
                             strlen(args->valuestring)))
        return LC_EINVAL;
    } else if (args && !cJSON_IsNull(args)) { /* an object instead of text */
      char *s = lc_accum_print(args);
      int rc = s ? lc_accum_tool_args(a, key, s, strlen(s)) : LC_ENOMEM;
      lc_free(s);
      if (rc)
        return LC_EINVAL;
    }
  }
  return 0;
}

/* One choice's message (whole) or delta (stream). */
static int choice_part(struct lc_llm_accum *a, const cJSON *m, int whole) {
  const char *s;
  if ((s = lc_accum_str(m, "reasoning_content")) ||
      (s = lc_accum_str(m, "reasoning")))
    if (lc_accum_reasoning(a, s, strlen(s)))
      return LC_EINVAL;
  if ((s = lc_accum_str(m, "content")) && lc_accum_text(a, s, strlen(s)))
    return LC_EINVAL;
  const cJSON *tcs = cJSON_GetObjectItemCaseSensitive(m, "tool_calls");
  if (cJSON_IsArray(tcs) && tool_calls(a, tcs, whole))
    return LC_EINVAL;
  return a->err ? LC_EINVAL : 0;
}

/* An "error" member that is not null (some servers send "error": null). */
static int has_error(const cJSON *root) {
  const cJSON *e = cJSON_GetObjectItemCaseSensitive(root, "error");
  return e && !cJSON_IsNull(e);
}

static const cJSON *first_choice(const cJSON *root) {
  const cJSON *ch = cJSON_GetObjectItemCaseSensitive(root, "choices"), *c;
  cJSON_ArrayForEach(c, ch) {
    if (lc_accum_long(c, "index", 0) == 0)
      return c; /* n > 1: keep the first */
  }
  return NULL;
}

static void meta(struct lc_llm_accum *a, const cJSON *root) {
  lc_accum_set_once(&a->id, lc_accum_str(root, "id"));
  lc_accum_set_once(&a->model, lc_accum_str(root, "model"));
}

static void finish(struct lc_llm_accum *a, const cJSON *choice) {
  const char *fr = lc_accum_str(choice, "finish_reason");
  if (fr)
    lc_accum_finish(a, lc_accum_map_finish(fr), fr);
}

static int parse(const char *body, size_t len, struct lc_llm_response *out) {
  cJSON *root = lc_accum_parse_body(body, len, "chat completion", out);
  if (!root)
    return LC_EINVAL;
  struct lc_llm_accum a;
  lc_accum_init(&a);
  const cJSON *choice = first_choice(root);
  if (has_error(root)) {
    lc_accum_fail_json(&a, root);
  } else if (!cJSON_IsArray(
                 cJSON_GetObjectItemCaseSensitive(root, "choices"))) {
    lc_accum_fail(&a, LC_LLM_EBADRESP, NULL,
                  "malformed chat completion: no choices array");
  } else if (!choice) {
    lc_accum_fail(&a, LC_LLM_EBADRESP, NULL,
                  "malformed chat completion: no choice");
  } else {
    meta(&a, root);
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(choice, "message");
    if (!cJSON_IsObject(m))
      lc_accum_fail(&a, LC_LLM_EBADRESP, NULL,
                    "malformed chat completion: choice has no message");
    else
      choice_part(&a, m, 1);
    finish(&a, choice);
    usage(&a, cJSON_GetObjectItemCaseSensitive(root, "usage"));
  }
  cJSON_Delete(root);
  int rc = lc_accum_build(&a, out);
  lc_accum_free(&a);
  return rc;
}

static void parse_error(int status, const char *body, size_t len,
                        struct lc_llm_response *out) {
  out->http_status = status;
  lc_accum_classify(status, body, len, out);
}

/* ---- streaming ---- */

static int on_event(void *ud, const struct lc_sse_event *ev) {
  struct lc_llm_stream *st = ud;
  struct lc_llm_accum *a = &st->acc;
  if (st->done)
    return 0; /* nothing counts after [DONE] */
  if (ev->data_len == 6 && memcmp(ev->data, "[DONE]", 6) == 0) {
    st->done = 1;
    return 0;
  }
  char err[96];
  cJSON *root = lc_json_parse(ev->data, ev->data_len, err, sizeof err);
  int is_err_event = ev->event_len == 5 && memcmp(ev->event, "error", 5) == 0;
  if (!root) {
    if (is_err_event)
      return lc_accum_fail(a, LC_LLM_ESERVER, NULL,
                           "error event in stream: %.200s", ev->data);
    return lc_accum_fail(a, LC_LLM_EBADRESP, NULL, "malformed stream chunk: %s",
                         err);
  }
  int rc = 0;
  if (is_err_event || (cJSON_IsObject(root) && has_error(root))) {
    rc = lc_accum_fail_json(a, root);
  } else if (!cJSON_IsObject(root)) {
    rc = lc_accum_fail(a, LC_LLM_EBADRESP, NULL,
                       "stream chunk is not an object");
  } else {
    meta(a, root);
    const cJSON *choice = first_choice(root);
    if (choice) {
      const cJSON *d = cJSON_GetObjectItemCaseSensitive(choice, "delta");
      if (cJSON_IsObject(d))
        rc = choice_part(a, d, 0);
      finish(a, choice);
    }
    usage(a, cJSON_GetObjectItemCaseSensitive(root, "usage"));
  }
  cJSON_Delete(root);
  return rc;
}

static struct lc_llm_stream *stream_new(void) { return lc_accum_stream_new(); }

static int stream_feed(struct lc_llm_stream *st, const char *data, size_t len,
                       lc_llm_delta_fn cb, void *ud) {
  return lc_accum_sse_feed(st, data, len, cb, ud, on_event);
}

static int stream_end(struct lc_llm_stream *st, struct lc_llm_response *out) {
  return lc_accum_sse_end(st, out, "[DONE]");
}

const struct lc_llm_adapter lc_llm_openai = {
    .name = "openai",
    .default_base_url = "https://api.openai.com/v1",
    .base_url_env = "OPENAI_BASE_URL",
    .api_key_env = "OPENAI_API_KEY",
    .build = build,
    .parse = parse,
    .parse_error = parse_error,
    .stream_new = stream_new,
    .stream_feed = stream_feed,
    .stream_end = stream_end,
    .stream_free = lc_accum_stream_free,
};
