/* llm_anthropic.c: adapter for the Anthropic Messages API: system prompt at
 * the top level, tool_use / tool_result content blocks, SSE events with
 * names (message_start ... message_stop, ping, error). */
#include <stdio.h>
#include <string.h>

#include "conv.h"
#include "lc.h"
#include "llm.h"
#include "llm_accum.h"

#define DEFAULT_MAX_TOKENS 4096

/* ---- request ---- */

/* The user message that collects consecutive tool results, or NULL. */
static cJSON *open_results(cJSON *msgs) {
  int n = cJSON_GetArraySize(msgs);
  if (n == 0)
    return NULL;
  cJSON *last = cJSON_GetArrayItem(msgs, n - 1);
  const char *role = lc_accum_str(last, "role");
  cJSON *content = cJSON_GetObjectItemCaseSensitive(last, "content");
  if (!role || strcmp(role, "user") || !cJSON_IsArray(content))
    return NULL;
  return content;
}

static cJSON *text_block(const char *s) {
  cJSON *b = cJSON_CreateObject();
  cJSON_AddStringToObject(b, "type", "text");
  cJSON_AddStringToObject(b, "text", s);
  return b;
}

static int add_msgs(const struct lc_llm_request *req, cJSON *root, char *err,
                    size_t errlen) {
  struct lc_buf sys;
  lc_buf_init(&sys, 0);
  cJSON *msgs = cJSON_AddArrayToObject(root, "messages");
  for (size_t i = 0; i < req->n_msgs; i++) {
    const struct lc_llm_msg *m = &req->msgs[i];
    const char *text = m->content ? m->content : "";
    if (m->role == LC_ROLE_SYSTEM) { /* top-level, several joined */
      if (sys.len)
        lc_buf_puts(&sys, "\n\n");
      lc_buf_puts(&sys, text);
    } else if (m->role == LC_ROLE_USER) {
      cJSON *blocks = open_results(msgs);
      if (blocks) { /* roles must alternate: join the tool results' turn */
        cJSON_AddItemToArray(blocks, text_block(text));
      } else {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "role", "user");
        cJSON_AddStringToObject(o, "content", text);
        cJSON_AddItemToArray(msgs, o);
      }
    } else if (m->role == LC_ROLE_ASSISTANT) {
      if (!m->n_tool_calls && !*text)
        continue; /* Anthropic rejects empty */
      cJSON *o = cJSON_CreateObject();
      cJSON_AddStringToObject(o, "role", "assistant");
      if (!m->n_tool_calls) {
        cJSON_AddStringToObject(o, "content", text);
      } else {
        cJSON *blocks = cJSON_AddArrayToObject(o, "content");
        if (*text)
          cJSON_AddItemToArray(blocks, text_block(text));
        for (size_t k = 0; k < m->n_tool_calls; k++) {
          const struct lc_llm_tool_call *c = &m->tool_calls[k];
          cJSON *input = lc_accum_args_object(c, err, errlen);
          if (!input) {
            cJSON_Delete(o);
            lc_buf_free(&sys);
            return LC_EINVAL;
          }
          cJSON *b = cJSON_CreateObject();
          cJSON_AddStringToObject(b, "type", "tool_use");
          cJSON_AddStringToObject(b, "id", c->id ? c->id : "");
          cJSON_AddStringToObject(b, "name", c->name ? c->name : "");
          cJSON_AddItemToObject(b, "input", input);
          cJSON_AddItemToArray(blocks, b);
        }
      }
      cJSON_AddItemToArray(msgs, o);
    } else { /* tool result: consecutive ones share one user message */
      cJSON *blocks = open_results(msgs);
      if (!blocks) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "role", "user");
        blocks = cJSON_AddArrayToObject(o, "content");
        cJSON_AddItemToArray(msgs, o);
      }
      cJSON *b = cJSON_CreateObject();
      cJSON_AddStringToObject(b, "type", "tool_result");
      cJSON_AddStringToObject(b, "tool_use_id",
                              m->tool_call_id ? m->tool_call_id : "");
      cJSON_AddStringToObject(b, "content", text);
      if (m->is_error)
        cJSON_AddTrueToObject(b, "is_error");
      cJSON_AddItemToArray(blocks, b);
    }
  }
  if (sys.len)
    cJSON_AddStringToObject(root, "system", sys.data);
  lc_buf_free(&sys);
  return 0;
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
  cJSON_AddNumberToObject(root, "max_tokens",
                          (req->set & LC_SET_MAX_TOKENS) ? req->max_tokens
                                                         : DEFAULT_MAX_TOKENS);
  if (add_msgs(req, root, err, errlen)) {
    cJSON_Delete(root);
    return LC_EINVAL;
  }
  /* tool_choice "none" is expressed by the choice, the tools stay listed so
   * that earlier tool_use blocks still refer to known tools. */
  if (req->n_tools) {
    cJSON *tools = cJSON_AddArrayToObject(root, "tools");
    for (size_t i = 0; i < req->n_tools; i++) {
      const struct lc_llm_tool *t = &req->tools[i];
      cJSON *o = cJSON_CreateObject();
      cJSON_AddStringToObject(o, "name", t->name ? t->name : "");
      if (t->description)
        cJSON_AddStringToObject(o, "description", t->description);
      cJSON *schema = t->schema ? cJSON_Duplicate(t->schema, 1) : NULL;
      if (!schema) {
        schema = cJSON_CreateObject();
        cJSON_AddStringToObject(schema, "type", "object");
      }
      cJSON_AddItemToObject(o, "input_schema", schema);
      cJSON_AddItemToArray(tools, o);
    }
  }
  if (req->tool_choice != LC_TOOL_CHOICE_AUTO) {
    cJSON *tc = cJSON_AddObjectToObject(root, "tool_choice");
    if (req->tool_choice == LC_TOOL_CHOICE_NONE) {
      cJSON_AddStringToObject(tc, "type", "none");
    } else if (req->tool_choice == LC_TOOL_CHOICE_REQUIRED) {
      cJSON_AddStringToObject(tc, "type", "any");
    } else {
      cJSON_AddStringToObject(tc, "type", "tool");
      cJSON_AddStringToObject(
          tc, "name", req->tool_choice_name ? req->tool_choice_name : "");
    }
  }
  if (req->set & LC_SET_TEMPERATURE)
    cJSON_AddNumberToObject(root, "temperature", req->temperature);
  if (req->set & LC_SET_TOP_P)
    cJSON_AddNumberToObject(root, "top_p", req->top_p);
  if (req->set & LC_SET_TOP_K)
    cJSON_AddNumberToObject(root, "top_k", req->top_k);
  /* seed: the Messages API has none, so it is not sent. */
  if (req->n_stop) {
    cJSON *st = cJSON_AddArrayToObject(root, "stop_sequences");
    for (size_t i = 0; i < req->n_stop; i++)
      cJSON_AddItemToArray(
          st, cJSON_CreateString(req->stop[i] ? req->stop[i] : ""));
  }
  /* Structured outputs (beta): a schema is enforced; plain "JSON" has no
   * Anthropic equivalent and is left to the prompt. */
  int beta = req->format == LC_FORMAT_JSON_SCHEMA;
  if (beta) {
    cJSON *of = cJSON_AddObjectToObject(root, "output_format");
    cJSON_AddStringToObject(of, "type", "json_schema");
    cJSON_AddItemToObject(of, "schema",
                          req->response_schema
                              ? cJSON_Duplicate(req->response_schema, 1)
                              : cJSON_CreateObject());
  }
  if (req->stream)
    cJSON_AddTrueToObject(root, "stream");
  const char *base = req->base_url && *req->base_url
                         ? req->base_url
                         : lc_llm_anthropic.default_base_url;
  int rc = lc_accum_http_body(out, root);
  if (!rc)
    rc = lc_accum_http_url(out, base, "/v1/messages");
  if (!rc)
    rc = lc_accum_http_header(out, "Content-Type: application/json");
  if (!rc)
    rc = lc_accum_http_header(out, "Accept: %s",
                              req->stream ? "text/event-stream"
                                          : "application/json");
  if (!rc)
    rc = lc_accum_http_header(out, "anthropic-version: 2023-06-01");
  if (!rc && beta)
    rc = lc_accum_http_header(out,
                              "anthropic-beta: structured-outputs-2025-11-13");
  if (!rc && req->api_key && *req->api_key)
    rc = lc_accum_http_header(out, "x-api-key: %s", req->api_key);
  if (rc) {
    lc_llm_http_free(out);
    snprintf(err, errlen,
             rc == LC_ETOOBIG ? "header too long" : "out of memory");
  }
  return rc;
}

/* ---- response ---- */

/* input counts every prompt token, cached ones included (llm.h). */
static void usage(struct lc_llm_accum *a, const cJSON *u) {
  if (!cJSON_IsObject(u))
    return;
  long in = lc_accum_long(u, "input_tokens", -1);
  long rd = lc_accum_long(u, "cache_read_input_tokens", 0);
  long wr = lc_accum_long(u, "cache_creation_input_tokens", 0);
  if (in >= 0) {
    a->usage.input = in + rd + wr;
    a->usage.cached = rd;
    a->usage.cache_write = wr;
  }
  a->usage.output = lc_accum_long(u, "output_tokens", a->usage.output);
}

static int is_error(const cJSON *root) {
  const char *t = lc_accum_str(root, "type");
  const cJSON *e = cJSON_GetObjectItemCaseSensitive(root, "error");
  return (t && strcmp(t, "error") == 0) || (e && !cJSON_IsNull(e));
}

static void stop_reason(struct lc_llm_accum *a, const cJSON *o) {
  const char *sr = lc_accum_str(o, "stop_reason");
  if (sr)
    lc_accum_finish(a, lc_accum_map_finish(sr), sr);
}

static int parse(const char *body, size_t len, struct lc_llm_response *out) {
  cJSON *root = lc_accum_parse_body(body, len, "message", out);
  if (!root)
    return LC_EINVAL;
  struct lc_llm_accum a;
  lc_accum_init(&a);
  const cJSON *content = cJSON_GetObjectItemCaseSensitive(root, "content");
  if (is_error(root)) {
    lc_accum_fail_json(&a, root);
  } else if (!cJSON_IsArray(content)) {
    lc_accum_fail(&a, LC_LLM_EBADRESP, NULL,
                  "malformed message: no content array");
  } else {
    lc_accum_set_once(&a.id, lc_accum_str(root, "id"));
    lc_accum_set_once(&a.model, lc_accum_str(root, "model"));
    const cJSON *b;
    int i = 0;
    cJSON_ArrayForEach(b, content) {
      const char *type = lc_accum_str(b, "type");
      const char *s;
      if (!type)
        continue;
      if (strcmp(type, "text") == 0 && (s = lc_accum_str(b, "text"))) {
        lc_accum_text(&a, s, strlen(s));
      } else if (strcmp(type, "thinking") == 0 &&
                 (s = lc_accum_str(b, "thinking"))) {
        lc_accum_reasoning(&a, s, strlen(s));
      } else if (strcmp(type, "tool_use") == 0) {
        lc_accum_tool_start(&a, i, lc_accum_str(b, "id"),
                            lc_accum_str(b, "name"));
        char *args =
            lc_accum_print(cJSON_GetObjectItemCaseSensitive(b, "input"));
        if (args)
          lc_accum_tool_args(&a, i, args, strlen(args));
        lc_free(args);
      }
      i++;
    }
    stop_reason(&a, root);
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

static int block_start(struct lc_llm_accum *a, const cJSON *root) {
  int ix = (int)lc_accum_long(root, "index", 0);
  const cJSON *b = cJSON_GetObjectItemCaseSensitive(root, "content_block");
  const char *type = lc_accum_str(b, "type"), *s;
  if (!type)
    return lc_accum_fail(a, LC_LLM_EBADRESP, NULL,
                         "content block without a type");
  if (strcmp(type, "tool_use") == 0)
    return lc_accum_tool_start(a, ix, lc_accum_str(b, "id"),
                               lc_accum_str(b, "name"));
  /* Blocks may open with some content already. */
  if (strcmp(type, "text") == 0 && (s = lc_accum_str(b, "text")))
    return lc_accum_text(a, s, strlen(s));
  if (strcmp(type, "thinking") == 0 && (s = lc_accum_str(b, "thinking")))
    return lc_accum_reasoning(a, s, strlen(s));
  return 0;
}

static int block_delta(struct lc_llm_accum *a, const cJSON *root) {
  int ix = (int)lc_accum_long(root, "index", 0);
  const cJSON *d = cJSON_GetObjectItemCaseSensitive(root, "delta");
  const char *type = lc_accum_str(d, "type"), *s;
  if (!type)
    return lc_accum_fail(a, LC_LLM_EBADRESP, NULL, "delta without a type");
  if (strcmp(type, "text_delta") == 0 && (s = lc_accum_str(d, "text")))
    return lc_accum_text(a, s, strlen(s));
  if (strcmp(type, "input_json_delta") == 0 &&
      (s = lc_accum_str(d, "partial_json"))) {
    if (!lc_accum_call_by_key(a, ix))
      return lc_accum_fail(
          a, LC_LLM_EBADRESP, NULL,
          "input_json_delta for block %d, which is not a tool_use", ix);
    return lc_accum_tool_args(a, ix, s, strlen(s));
  }
  if (strcmp(type, "thinking_delta") == 0 && (s = lc_accum_str(d, "thinking")))
    return lc_accum_reasoning(a, s, strlen(s));
  return 0; /* signature_delta, citations_delta, ...: nothing to keep */
}

static int on_event(void *ud, const struct lc_sse_event *ev) {
  struct lc_llm_stream *st = ud;
  struct lc_llm_accum *a = &st->acc;
  if (st->done)
    return 0;
  char err[96];
  cJSON *root = lc_json_parse(ev->data, ev->data_len, err, sizeof err);
  if (!root) {
    if (ev->event_len == 5 && memcmp(ev->event, "error", 5) == 0)
      return lc_accum_fail(a, LC_LLM_ESERVER, NULL,
                           "error event in stream: %.200s", ev->data);
    return lc_accum_fail(a, LC_LLM_EBADRESP, NULL, "malformed stream event: %s",
                         err);
  }
  /* The data's own "type" is authoritative; the event: line repeats it. */
  const char *type = lc_accum_str(root, "type");
  int rc = 0;
  if (!cJSON_IsObject(root) || !type) {
    rc = lc_accum_fail(a, LC_LLM_EBADRESP, NULL, "stream event without a type");
  } else if (strcmp(type, "error") == 0 || is_error(root)) {
    rc = lc_accum_fail_json(a, root);
  } else if (strcmp(type, "message_start") == 0) {
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(root, "message");
    lc_accum_set_once(&a->id, lc_accum_str(m, "id"));
    lc_accum_set_once(&a->model, lc_accum_str(m, "model"));
    usage(a, cJSON_GetObjectItemCaseSensitive(m, "usage"));
  } else if (strcmp(type, "content_block_start") == 0) {
    rc = block_start(a, root);
  } else if (strcmp(type, "content_block_delta") == 0) {
    rc = block_delta(a, root);
  } else if (strcmp(type, "message_delta") == 0) {
    stop_reason(a, cJSON_GetObjectItemCaseSensitive(root, "delta"));
    usage(a, cJSON_GetObjectItemCaseSensitive(root, "usage"));
  } else if (strcmp(type, "message_stop") == 0) {
    st->done = 1;
  } /* ping, content_block_stop and future types carry nothing we keep */
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
  return lc_accum_stream_end(st, out, "message_stop");
}

const struct lc_llm_adapter lc_llm_anthropic = {
    .name = "anthropic",
    .default_base_url = "https://api.anthropic.com",
    .base_url_env = "ANTHROPIC_BASE_URL",
    .api_key_env = "ANTHROPIC_API_KEY",
    .build = build,
    .parse = parse,
    .parse_error = parse_error,
    .stream_new = stream_new,
    .stream_feed = stream_feed,
    .stream_end = stream_end,
    .stream_free = lc_accum_stream_free,
};
