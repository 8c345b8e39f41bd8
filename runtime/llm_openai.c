/* llm_openai.c: adapter for OpenAI Chat Completions and the servers that
 * speak it (Groq, Together, OpenRouter, vLLM, llama.cpp, Ollama /v1, LM
 * Studio), including their quirks: no tool-call index (Ollama /v1), id and
 * name repeated in every chunk (OpenRouter), reasoning_content (llama.cpp),
 * usage in a final chunk without choices. */
#include <stdio.h>
#include <string.h>

#include "conv.h"
#include "lc.h"
#include "llm.h"
#include "llm_accum.h"

/* ---- request ---- */

static cJSON *tool_call_json(const struct lc_llm_tool_call *c) {
  cJSON *o = cJSON_CreateObject(), *fn = cJSON_CreateObject();
  cJSON_AddItemToObject(o, "function", fn);
  cJSON_AddStringToObject(o, "id", c->id ? c->id : "");
  cJSON_AddStringToObject(o, "type", "function");
  cJSON_AddStringToObject(fn, "name", c->name ? c->name : "");
  /* OpenAI wants the arguments as the string the model wrote. */
  char *printed = NULL;
  const char *args = c->args_json;
  if ((!args || !*args) && c->args)
    args = printed = cJSON_PrintUnformatted(c->args);
  cJSON_AddStringToObject(fn, "arguments", args && *args ? args : "{}");
  cJSON_free(printed);
  return o;
}

static cJSON *msg_json(const struct lc_llm_msg *m) {
  cJSON *o = cJSON_CreateObject();
  cJSON_AddStringToObject(o, "role", lc_llm_role_name(m->role));
  if (m->content)
    cJSON_AddItemToObject(o, "content", cJSON_CreateString(m->content));
  else
    cJSON_AddNullToObject(o, "content");
  if (m->role == LC_ROLE_ASSISTANT && m->n_tool_calls) {
    cJSON *arr = cJSON_AddArrayToObject(o, "tool_calls");
    for (size_t i = 0; i < m->n_tool_calls; i++)
      cJSON_AddItemToArray(arr, tool_call_json(&m->tool_calls[i]));
  }
  if (m->role == LC_ROLE_TOOL) {
    cJSON_AddStringToObject(o, "tool_call_id",
                            m->tool_call_id ? m->tool_call_id : "");
    if (!m->content)
      cJSON_ReplaceItemInObject(o, "content", cJSON_CreateString(""));
  }
  return o;
}

static int build(const struct lc_llm_request *req, struct lc_llm_http *out,
                 char *err, size_t errlen) {
  memset(out, 0, sizeof *out);
  if (!req->model || !*req->model) {
    snprintf(err, errlen, "no model given");
    return LC_EINVAL;
  }
  cJSON *root = cJSON_CreateObject();
  cJSON_AddStringToObject(root, "model", req->model);
  cJSON *msgs = cJSON_AddArrayToObject(root, "messages");
  for (size_t i = 0; i < req->n_msgs; i++)
    cJSON_AddItemToArray(msgs, msg_json(&req->msgs[i]));
  if (req->n_tools) {
    cJSON *tools = cJSON_AddArrayToObject(root, "tools");
    for (size_t i = 0; i < req->n_tools; i++) {
      const struct lc_llm_tool *t = &req->tools[i];
      cJSON *o = cJSON_CreateObject(), *fn = cJSON_CreateObject();
      cJSON_AddStringToObject(o, "type", "function");
      cJSON_AddItemToObject(o, "function", fn);
      cJSON_AddStringToObject(fn, "name", t->name ? t->name : "");
      if (t->description)
        cJSON_AddStringToObject(fn, "description", t->description);
      cJSON_AddItemToObject(fn, "parameters",
                            t->schema ? cJSON_Duplicate(t->schema, 1)
                                      : cJSON_CreateObject());
      if (t->strict)
        cJSON_AddTrueToObject(fn, "strict");
      cJSON_AddItemToArray(tools, o);
    }
  }
  switch (req->tool_choice) {
  case LC_TOOL_CHOICE_AUTO: break;
  case LC_TOOL_CHOICE_NONE:
    cJSON_AddStringToObject(root, "tool_choice", "none");
    break;
  case LC_TOOL_CHOICE_REQUIRED:
    cJSON_AddStringToObject(root, "tool_choice", "required");
    break;
  case LC_TOOL_CHOICE_NAMED: {
    cJSON *tc = cJSON_AddObjectToObject(root, "tool_choice");
    cJSON_AddStringToObject(tc, "type", "function");
    cJSON_AddStringToObject(cJSON_AddObjectToObject(tc, "function"), "name",
                            req->tool_choice_name ? req->tool_choice_name : "");
    break;
  }
  }
  if (req->format == LC_FORMAT_JSON) {
    cJSON_AddStringToObject(cJSON_AddObjectToObject(root, "response_format"),
                            "type", "json_object");
  } else if (req->format == LC_FORMAT_JSON_SCHEMA) {
    cJSON *rf = cJSON_AddObjectToObject(root, "response_format");
    cJSON_AddStringToObject(rf, "type", "json_schema");
    cJSON *js = cJSON_AddObjectToObject(rf, "json_schema");
    cJSON_AddStringToObject(
        js, "name",
        req->response_schema_name ? req->response_schema_name : "response");
    cJSON_AddItemToObject(js, "schema",
                          req->response_schema
                              ? cJSON_Duplicate(req->response_schema, 1)
                              : cJSON_CreateObject());
    cJSON_AddTrueToObject(js, "strict");
  }
  if (req->set & LC_SET_TEMPERATURE)
    cJSON_AddNumberToObject(root, "temperature", req->temperature);
  if (req->set & LC_SET_TOP_P)
    cJSON_AddNumberToObject(root, "top_p", req->top_p);
  /* top_k: api.openai.com rejects it; compatible servers that take it are
   * reached through their own extras, so it is not sent. */
  if (req->set & LC_SET_MAX_TOKENS)
    cJSON_AddNumberToObject(root, "max_tokens", req->max_tokens);
  if (req->set & LC_SET_SEED)
    cJSON_AddNumberToObject(root, "seed", (double)req->seed);
  if (req->n_stop) {
    cJSON *st = cJSON_AddArrayToObject(root, "stop");
    for (size_t i = 0; i < req->n_stop; i++)
      cJSON_AddItemToArray(
          st, cJSON_CreateString(req->stop[i] ? req->stop[i] : ""));
  }
  if (req->stream) {
    cJSON_AddTrueToObject(root, "stream");
    cJSON_AddTrueToObject(cJSON_AddObjectToObject(root, "stream_options"),
                          "include_usage");
  }
  const char *base = req->base_url && *req->base_url
                         ? req->base_url
                         : lc_llm_openai.default_base_url;
  int rc = lc_accum_http_body(out, root);
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
  if (st->acc.err)
    return LC_EINVAL;
  lc_accum_set_cb(&st->acc, cb, ud);
  int rc = lc_sse_feed(&st->sse, data, len, on_event, st);
  if (rc && st->sse.failed)
    lc_accum_fail(&st->acc, LC_LLM_EBADRESP, NULL, "%s", st->sse.err);
  return st->acc.err ? LC_EINVAL : 0;
}

static int stream_end(struct lc_llm_stream *st, struct lc_llm_response *out) {
  lc_sse_end(&st->sse);
  return lc_accum_stream_end(st, out, "[DONE]");
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
