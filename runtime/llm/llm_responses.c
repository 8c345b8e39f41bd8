/* llm_responses.c: adapter for the OpenAI Responses API (POST /responses)
 * and the servers that speak it (DeepSeek, Ollama, vLLM, LM Studio,
 * OpenRouter: the "Open Responses" shape).
 *
 * Its own provider ("openai-responses:model"), not a mode of "openai:":
 * the endpoint, the body (input items, flat tools, text.format), the
 * answer (output items) and the stream (typed events, no [DONE]) share
 * nothing with Chat Completions, and a compatible server usually serves
 * one of the two; the spec string says which is spoken. Key and base URL
 * are OpenAI's (OPENAI_API_KEY, OPENAI_BASE_URL).
 *
 * Stateless by default: "store": false and the whole history as input
 * items in every request, so a journal replay or a retry never depends on
 * what the server kept. previous_response_id (request field) continues a
 * stored conversation instead; only then is "store": true sent.
 *
 * Reasoning: summaries (and reasoning_text, DeepSeek) become
 * response.reasoning; the reasoning items themselves, with their
 * encrypted_content, go to response.reasoning_state as a JSON array and
 * come back unchanged before the assistant's calls of that turn. Items
 * without encrypted_content cannot be replayed statelessly (the server
 * kept nothing), so they are dropped from the state unless store is on.
 *
 * Parsing uses cJSON per body and per event (lc_json_parse: depth and
 * UTF-8 checked): events are small, and the stream's shape is typed
 * events, not the chat deltas the pull reader was tuned for. */
#include <stdio.h>
#include <string.h>

#include "conv.h"
#include "jsonr.h"
#include "jsonw.h"
#include "lc.h"
#include "llm.h"
#include "llm_accum.h"

/* ---- request ---- */

static void w_image(struct lc_jsonw *w, const struct lc_llm_part *p) {
  lc_jsonw_obj(w);
  lc_jsonw_key(w, "type");
  lc_jsonw_cstr(w, "input_image");
  lc_jsonw_key(w, "image_url");
  lc_accum_w_image_url(w, p);
  /* Responses requires detail; "auto" is the API's own default. */
  lc_jsonw_key(w, "detail");
  lc_jsonw_cstr(w, p->detail[0] ? p->detail : "auto");
  lc_jsonw_obj_end(w);
}

/* A message's content: a string, or input_text / input_image parts. */
static int w_content(struct lc_jsonw *w, const struct lc_llm_msg *m,
                     const char *text_type, char *err, size_t errlen) {
  if (!m->n_parts) {
    lc_jsonw_str(w, m->content ? m->content : "",
                 m->content ? lc_accum_msg_len(m) : 0);
    return 0;
  }
  lc_jsonw_arr(w);
  if (m->content) {
    lc_jsonw_obj(w);
    lc_jsonw_key(w, "type");
    lc_jsonw_cstr(w, text_type);
    lc_jsonw_key(w, "text");
    lc_jsonw_str(w, m->content, lc_accum_msg_len(m));
    lc_jsonw_obj_end(w);
  }
  for (size_t i = 0; i < m->n_parts; i++) {
    const struct lc_llm_part *p = &m->parts[i];
    if (p->kind == LC_PART_IMAGE) {
      if (lc_llm_image_check(p, LC_PROV_OPENAI_RESPONSES, err, errlen))
        return LC_EINVAL;
      w_image(w, p);
      continue;
    }
    lc_jsonw_obj(w);
    lc_jsonw_key(w, "type");
    lc_jsonw_cstr(w, text_type);
    lc_jsonw_key(w, "text");
    lc_jsonw_str(w, p->text ? p->text : "", p->text ? p->text_len : 0);
    lc_jsonw_obj_end(w);
  }
  lc_jsonw_arr_end(w);
  return 0;
}

/* The reasoning items a turn came with, each written back as it was. */
static int w_reasoning_state(struct lc_jsonw *w, const struct lc_llm_msg *m,
                             char *err, size_t errlen) {
  if (!m->reasoning_state ||
      m->reasoning_prov != (signed char)LC_PROV_OPENAI_RESPONSES)
    return 0;
  char perr[96];
  cJSON *a = lc_json_parse(m->reasoning_state, strlen(m->reasoning_state),
                           perr, sizeof perr);
  if (!a || !cJSON_IsArray(a)) {
    cJSON_Delete(a);
    snprintf(err, errlen, "reasoning_state is not a JSON array");
    return LC_EINVAL;
  }
  const cJSON *it;
  cJSON_ArrayForEach(it, a) {
    if (cJSON_IsObject(it))
      lc_jsonw_cjson(w, it);
  }
  cJSON_Delete(a);
  return 1;
}

static void w_call(struct lc_jsonw *w, const struct lc_llm_tool_call *c,
                   int with_id) {
  lc_jsonw_obj(w);
  lc_jsonw_key(w, "type");
  lc_jsonw_cstr(w, "function_call");
  lc_jsonw_key(w, "call_id");
  lc_jsonw_cstr(w, c->id);
  lc_jsonw_key(w, "name");
  lc_jsonw_cstr(w, c->name);
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
  /* The item's own id ("fc_..."), kept in signature: a reasoning item
   * passed back must be followed by the items it produced, by id. */
  if (with_id && c->signature && *c->signature) {
    lc_jsonw_key(w, "id");
    lc_jsonw_cstr(w, c->signature);
  }
  lc_jsonw_obj_end(w);
}

static int w_msg(struct lc_jsonw *w, const struct lc_llm_request *req,
                 const struct lc_llm_msg *m, char *err, size_t errlen) {
  switch (m->role) {
  case LC_ROLE_SYSTEM:
  case LC_ROLE_USER:
    lc_jsonw_obj(w);
    lc_jsonw_key(w, "role");
    lc_jsonw_cstr(w, lc_llm_role_name(m->role));
    lc_jsonw_key(w, "content");
    return w_content(w, m, "input_text", err, errlen);
  case LC_ROLE_ASSISTANT: {
    int rs = w_reasoning_state(w, m, err, errlen);
    if (rs < 0)
      return rs;
    if (m->content || m->n_parts) {
      lc_jsonw_obj(w);
      lc_jsonw_key(w, "role");
      lc_jsonw_cstr(w, "assistant");
      lc_jsonw_key(w, "content");
      if (w_content(w, m, "output_text", err, errlen))
        return LC_EINVAL;
      lc_jsonw_obj_end(w);
    }
    for (size_t i = 0; i < m->n_tool_calls; i++)
      w_call(w, &m->tool_calls[i], rs == 1 || req->store ||
                                       req->previous_response_id);
    return 1; /* closed its own objects */
  }
  case LC_ROLE_TOOL:
    lc_jsonw_obj(w);
    lc_jsonw_key(w, "type");
    lc_jsonw_cstr(w, "function_call_output");
    lc_jsonw_key(w, "call_id");
    lc_jsonw_cstr(w, m->tool_call_id);
    lc_jsonw_key(w, "output");
    /* An output with images is a list of input parts (Responses takes
     * them in function_call_output), else the text. */
    return w_content(w, m, "input_text", err, errlen);
  }
  snprintf(err, errlen, "unknown message role");
  return LC_EINVAL;
}

static void w_tools(struct lc_jsonw *w, const struct lc_llm_request *req) {
  lc_jsonw_arr(w);
  for (size_t i = 0; i < req->n_tools; i++) {
    const struct lc_llm_tool *t = &req->tools[i];
    lc_jsonw_obj(w);
    lc_jsonw_key(w, "type");
    lc_jsonw_cstr(w, "function");
    lc_jsonw_key(w, "name");
    lc_jsonw_cstr(w, t->name);
    if (t->description) {
      lc_jsonw_key(w, "description");
      lc_jsonw_cstr(w, t->description);
    }
    lc_jsonw_key(w, "parameters");
    lc_accum_w_schema(w, t, "{\"type\":\"object\",\"properties\":{}}");
    /* Responses defaults strict to true; luact's tools are not written
     * for strict mode unless they say so. */
    lc_jsonw_key(w, "strict");
    lc_jsonw_bool(w, t->strict != 0);
    lc_jsonw_obj_end(w);
  }
  lc_jsonw_arr_end(w);
}

static void w_settings(struct lc_jsonw *w, const struct lc_llm_request *req) {
  if (req->n_tools) {
    lc_jsonw_key(w, "tools");
    w_tools(w, req);
  }
  switch (req->tool_choice) {
  case LC_TOOL_CHOICE_AUTO: break;
  case LC_TOOL_CHOICE_NONE:
  case LC_TOOL_CHOICE_REQUIRED:
    lc_jsonw_key(w, "tool_choice");
    lc_jsonw_cstr(w, req->tool_choice == LC_TOOL_CHOICE_NONE ? "none"
                                                             : "required");
    break;
  case LC_TOOL_CHOICE_NAMED:
    lc_jsonw_key(w, "tool_choice");
    lc_jsonw_obj(w);
    lc_jsonw_key(w, "type");
    lc_jsonw_cstr(w, "function");
    lc_jsonw_key(w, "name");
    lc_jsonw_cstr(w, req->tool_choice_name);
    lc_jsonw_obj_end(w);
    break;
  }
  if (req->format != LC_FORMAT_TEXT) {
    lc_jsonw_key(w, "text");
    lc_jsonw_obj(w);
    lc_jsonw_key(w, "format");
    lc_jsonw_obj(w);
    lc_jsonw_key(w, "type");
    if (req->format == LC_FORMAT_JSON) {
      lc_jsonw_cstr(w, "json_object");
    } else {
      lc_jsonw_cstr(w, "json_schema");
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
    }
    lc_jsonw_obj_end(w);
    lc_jsonw_obj_end(w);
  }
  if (req->set & LC_SET_TEMPERATURE) {
    lc_jsonw_key(w, "temperature");
    lc_jsonw_num(w, req->temperature);
  }
  if (req->set & LC_SET_TOP_P) {
    lc_jsonw_key(w, "top_p");
    lc_jsonw_num(w, req->top_p);
  }
  if (req->set & LC_SET_MAX_TOKENS) {
    lc_jsonw_key(w, "max_output_tokens");
    lc_jsonw_num(w, req->max_tokens);
  }
  /* seed, top_k and stop: the Responses API has none (docs/llm.md). */
  int reasoning = (req->reasoning_effort && *req->reasoning_effort) ||
                  (req->reasoning_summary && *req->reasoning_summary);
  if (reasoning) {
    lc_jsonw_key(w, "reasoning");
    lc_jsonw_obj(w);
    if (req->reasoning_effort && *req->reasoning_effort) {
      lc_jsonw_key(w, "effort");
      lc_jsonw_cstr(w, req->reasoning_effort);
    }
    if (req->reasoning_summary && *req->reasoning_summary) {
      lc_jsonw_key(w, "summary");
      lc_jsonw_cstr(w, req->reasoning_summary);
    }
    lc_jsonw_obj_end(w);
  }
  int store = req->store || (req->previous_response_id &&
                             *req->previous_response_id);
  /* Stateless reasoning needs its encrypted form to go back; asked for
   * only with reasoning settings, as non-reasoning models refuse it. */
  if (reasoning && !store) {
    lc_jsonw_key(w, "include");
    lc_jsonw_arr(w);
    lc_jsonw_cstr(w, "reasoning.encrypted_content");
    lc_jsonw_arr_end(w);
  }
  if (req->cache_key && *req->cache_key) {
    lc_jsonw_key(w, "prompt_cache_key");
    lc_jsonw_cstr(w, req->cache_key);
  }
  if (req->previous_response_id && *req->previous_response_id) {
    lc_jsonw_key(w, "previous_response_id");
    lc_jsonw_cstr(w, req->previous_response_id);
  }
  lc_jsonw_key(w, "store");
  lc_jsonw_bool(w, store);
  if (req->stream) {
    lc_jsonw_key(w, "stream");
    lc_jsonw_bool(w, 1);
  }
}

static int build(const struct lc_llm_request *req, struct lc_llm_http *out,
                 char *err, size_t errlen) {
  struct lc_buf body;
  struct lc_jsonw jw, *w = &jw;
  if (lc_accum_body_begin(out, req, &body, w, err, errlen))
    return LC_EINVAL;
  if (lc_llm_images_check(req, LC_PROV_OPENAI_RESPONSES, err, errlen)) {
    lc_buf_free(&body);
    return LC_EINVAL;
  }
  /* A leading system message is the request's instructions (which a
   * previous_response_id continuation does not carry over, so it is sent
   * every time); later ones stay in place as system input items. */
  size_t first = 0;
  if (req->n_msgs && req->msgs[0].role == LC_ROLE_SYSTEM &&
      !req->msgs[0].n_parts && req->msgs[0].content) {
    lc_jsonw_key(w, "instructions");
    lc_jsonw_str(w, req->msgs[0].content, lc_accum_msg_len(&req->msgs[0]));
    first = 1;
  }
  lc_jsonw_key(w, "input");
  lc_jsonw_arr(w);
  int rc = 0;
  for (size_t i = first; i < req->n_msgs && !rc; i++) {
    int r = w_msg(w, req, &req->msgs[i], err, errlen);
    if (r < 0)
      rc = r;
    else if (r == 0)
      lc_jsonw_obj_end(w);
  }
  if (rc) {
    lc_buf_free(&body);
    return rc;
  }
  lc_jsonw_arr_end(w);
  w_settings(w, req);
  lc_jsonw_obj_end(w);
  const char *base = req->base_url && *req->base_url
                         ? req->base_url
                         : lc_llm_openai_responses.default_base_url;
  rc = lc_jsonw_finish(w);
  if (!rc)
    rc = lc_accum_http_body_buf(out, &body);
  lc_buf_free(&body);
  if (!rc)
    rc = lc_accum_http_url(out, base, "/responses");
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

static const char *jstr(const cJSON *o, const char *k) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
  return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* The response's usage object into a->usage. */
static void usage(struct lc_llm_accum *a, const cJSON *resp) {
  const cJSON *u = cJSON_GetObjectItemCaseSensitive(resp, "usage");
  if (!cJSON_IsObject(u))
    return;
  a->usage.input = lc_accum_long(u, "input_tokens", a->usage.input);
  a->usage.output = lc_accum_long(u, "output_tokens", a->usage.output);
  const cJSON *d = cJSON_GetObjectItemCaseSensitive(u, "input_tokens_details");
  if (cJSON_IsObject(d))
    a->usage.cached = lc_accum_long(d, "cached_tokens", a->usage.cached);
  d = cJSON_GetObjectItemCaseSensitive(u, "output_tokens_details");
  if (cJSON_IsObject(d))
    a->usage.reasoning = lc_accum_long(d, "reasoning_tokens", a->usage.reasoning);
}

/* Reasoning text of one reasoning item: its summaries (OpenAI) or its
 * reasoning_text content (DeepSeek, Open Responses), blank-line joined. */
static int reasoning_text(struct lc_llm_accum *a, const cJSON *item) {
  static const char *const lists[] = {"summary", "content"};
  for (size_t l = 0; l < 2; l++) {
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(item, lists[l]);
    const cJSON *p;
    cJSON_ArrayForEach(p, (cJSON_IsArray(arr) ? arr : NULL)) {
      const char *t = jstr(p, "text");
      if (!t)
        continue;
      if (a->reasoning.len && lc_accum_reasoning(a, "\n\n", 2))
        return LC_EINVAL;
      if (lc_accum_reasoning(a, t, strlen(t)))
        return LC_EINVAL;
    }
  }
  return 0;
}

/* Per call: the item's own id, kept as the call's signature. */
struct rs_extra {
  cJSON *state;     /* array of reasoning items to pass back */
  char **item_ids;  /* by call ordinal */
  size_t n_ids;
  int store;        /* keep items without encrypted_content too */
};

static void extra_free(struct rs_extra *x) {
  cJSON_Delete(x->state);
  for (size_t i = 0; i < x->n_ids; i++)
    lc_free(x->item_ids[i]);
  lc_free(x->item_ids);
  memset(x, 0, sizeof *x);
}

static int keep_reasoning(struct rs_extra *x, const cJSON *item) {
  if (!x->store && !cJSON_IsString(cJSON_GetObjectItemCaseSensitive(
                       item, "encrypted_content")))
    return 0; /* cannot be replayed without the server's copy */
  if (!x->state && !(x->state = cJSON_CreateArray()))
    return LC_ENOMEM;
  cJSON *c = cJSON_Duplicate(item, 1);
  if (!c || !cJSON_AddItemToArray(x->state, c)) {
    cJSON_Delete(c);
    return LC_ENOMEM;
  }
  /* Status is output-only; the API refuses some values of it on input. */
  cJSON_DeleteItemFromObjectCaseSensitive(c, "status");
  return 0;
}

static int keep_item_id(struct rs_extra *x, size_t ordinal, const char *id) {
  if (!id)
    return 0;
  if (ordinal >= x->n_ids) {
    char **p = lc_realloc(x->item_ids, (ordinal + 1) * sizeof *p);
    if (!p)
      return LC_ENOMEM;
    for (size_t i = x->n_ids; i <= ordinal; i++)
      p[i] = NULL;
    x->item_ids = p;
    x->n_ids = ordinal + 1;
  }
  if (x->item_ids[ordinal])
    return 0;
  return (x->item_ids[ordinal] = lc_strdup(id)) ? 0 : LC_ENOMEM;
}

/* Moves the extra state into a built response. */
static int extra_apply(struct rs_extra *x, struct lc_llm_response *out) {
  if (out->err)
    return 0;
  if (x->state && cJSON_GetArraySize(x->state) > 0) {
    char *s = cJSON_PrintUnformatted(x->state);
    if (!s || !(out->reasoning_state = lc_strdup(s))) {
      cJSON_free(s);
      return LC_ENOMEM;
    }
    cJSON_free(s);
  }
  for (size_t i = 0; i < out->n_tool_calls && i < x->n_ids; i++) {
    out->tool_calls[i].signature = x->item_ids[i];
    x->item_ids[i] = NULL;
  }
  return 0;
}

/* finish from status and incomplete_details; calls win over "completed". */
static void finish(struct lc_llm_accum *a, const cJSON *resp) {
  const char *status = jstr(resp, "status");
  if (!status)
    return;
  if (strcmp(status, "incomplete") == 0) {
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(resp, "incomplete_details");
    const char *why = cJSON_IsObject(d) ? jstr(d, "reason") : NULL;
    enum lc_llm_finish f = LC_FINISH_OTHER;
    if (why && strcmp(why, "max_output_tokens") == 0)
      f = LC_FINISH_LENGTH;
    else if (why && strcmp(why, "content_filter") == 0)
      f = LC_FINISH_CONTENT_FILTER;
    lc_accum_finish(a, f, why ? why : status);
    return;
  }
  if (strcmp(status, "completed") == 0)
    lc_accum_finish(a, a->n_calls ? LC_FINISH_TOOL_CALLS : LC_FINISH_STOP,
                    status);
  else
    lc_accum_finish(a, LC_FINISH_OTHER, status);
}

/* An error object of a failed response or an "error" event. */
static int fail_obj(struct lc_llm_accum *a, const cJSON *e, const char *dflt) {
  const char *code = cJSON_IsObject(e) ? jstr(e, "code") : NULL;
  const char *type = cJSON_IsObject(e) ? jstr(e, "type") : NULL;
  const char *msg = cJSON_IsObject(e) ? jstr(e, "message") : NULL;
  enum lc_llm_err k = lc_accum_kind(0, type ? type : code, code, msg);
  if (code && (strcmp(code, "server_error") == 0 ||
               strcmp(code, "server_is_overloaded") == 0))
    k = strstr(code, "overloaded") ? LC_LLM_EOVERLOADED : LC_LLM_ESERVER;
  if (code && strcmp(code, "context_length_exceeded") == 0)
    k = LC_LLM_ECONTEXT;
  return lc_accum_fail(a, k, code ? code : type, "%s", msg ? msg : dflt);
}

/* A whole response object's output items into a (parse and the stream's
 * response.completed when the stream gave no items). */
static int read_output(struct lc_llm_accum *a, struct rs_extra *x,
                       const cJSON *resp, int text_and_calls) {
  const cJSON *outp = cJSON_GetObjectItemCaseSensitive(resp, "output");
  if (!cJSON_IsArray(outp))
    return lc_accum_fail(a, LC_LLM_EBADRESP, NULL,
                         "malformed response: no output array");
  const cJSON *it;
  int idx = 0;
  cJSON_ArrayForEach(it, outp) {
    int key = idx++;
    const char *type = jstr(it, "type");
    if (!type)
      continue;
    if (strcmp(type, "reasoning") == 0) {
      if (text_and_calls && reasoning_text(a, it))
        return LC_EINVAL;
      if (keep_reasoning(x, it))
        return lc_accum_fail(a, LC_LLM_EBADRESP, NULL, "out of memory");
    } else if (!text_and_calls) {
      continue;
    } else if (strcmp(type, "message") == 0) {
      const cJSON *c = cJSON_GetObjectItemCaseSensitive(it, "content");
      const cJSON *p;
      cJSON_ArrayForEach(p, (cJSON_IsArray(c) ? c : NULL)) {
        const char *t = jstr(p, "text");
        if (!t)
          t = jstr(p, "refusal");
        if (t && lc_accum_text(a, t, strlen(t)))
          return LC_EINVAL;
      }
    } else if (strcmp(type, "function_call") == 0) {
      const char *args = jstr(it, "arguments");
      if (lc_accum_tool_start(a, key, jstr(it, "call_id"), jstr(it, "name")))
        return LC_EINVAL;
      if (args && *args && lc_accum_tool_args(a, key, args, strlen(args)))
        return LC_EINVAL;
      if (keep_item_id(x, a->n_calls - 1, jstr(it, "id")))
        return lc_accum_fail(a, LC_LLM_EBADRESP, NULL, "out of memory");
    }
  }
  return 0;
}

static void meta(struct lc_llm_accum *a, const cJSON *resp) {
  if (!a->id)
    lc_accum_set_once(&a->id, jstr(resp, "id"));
  if (!a->model)
    lc_accum_set_once(&a->model, jstr(resp, "model"));
}

static int parse(const char *body, size_t len, struct lc_llm_response *out) {
  cJSON *root = lc_accum_parse_body(body, len, "response", out);
  if (!root)
    return LC_EINVAL;
  struct lc_llm_accum a;
  struct rs_extra x = {0};
  lc_accum_init(&a);
  const cJSON *e = cJSON_GetObjectItemCaseSensitive(root, "error");
  if (!cJSON_IsObject(root)) {
    lc_accum_fail(&a, LC_LLM_EBADRESP, NULL, "malformed response: not an object");
  } else if (e && !cJSON_IsNull(e)) {
    lc_accum_fail_json(&a, root);
  } else {
    meta(&a, root);
    /* A stored response's items are replayable by id (the server kept
     * them): its reasoning items go back even without encrypted_content,
     * as its calls go back with their ids (w_msg). */
    x.store = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(root, "store"));
    const char *st = jstr(root, "status");
    if (st && strcmp(st, "failed") == 0)
      fail_obj(&a, e, "response failed");
    else if (!read_output(&a, &x, root, 1))
      finish(&a, root);
    usage(&a, root);
  }
  cJSON_Delete(root);
  int rc = lc_accum_build(&a, out);
  lc_accum_free(&a);
  if (!rc && extra_apply(&x, out)) rc = lc_llm_response_nomem(out);
  extra_free(&x);
  return rc;
}

static void parse_error(int status, const char *body, size_t len,
                        struct lc_llm_response *out) {
  out->http_status = status;
  lc_accum_classify(status, body, len, out);
  lc_llm_response_scrub(out);
}

/* ---- streaming ----
 *
 * Events are typed ("type" in the data, the same word as the event: line).
 * Output items are numbered by output_index and arrive in that order;
 * function-call argument deltas name their item by item_id (the call_id
 * is only in output_item.added/done), so calls are keyed by output_index
 * and found by item id. The stream ends with response.completed (or
 * response.incomplete / response.failed); there is no [DONE], and a
 * stream that stops before one of those is an error. */

#define RS_MAX_ITEMS 4096

struct rs_item {
  char *id;   /* item id */
  int key;    /* output_index */
  int is_call;
  int got_args; /* argument deltas arrived */
};

struct rs_stream {
  struct lc_llm_stream base; /* first: lc_accum_* take it */
  struct rs_item *items;
  size_t n_items, cap_items;
  int summary_parts; /* reasoning summary parts seen, for the separator */
  struct rs_extra x;
};

static struct rs_item *item_by_id(struct rs_stream *s, const char *id) {
  for (size_t i = 0; id && i < s->n_items; i++)
    if (s->items[i].id && strcmp(s->items[i].id, id) == 0)
      return &s->items[i];
  return NULL;
}

static struct rs_item *item_by_key(struct rs_stream *s, int key) {
  for (size_t i = 0; i < s->n_items; i++)
    if (s->items[i].key == key)
      return &s->items[i];
  return NULL;
}

static int item_index(const cJSON *ev, int *key) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(ev, "output_index");
  if (!cJSON_IsNumber(v) || !(v->valuedouble >= 0 && v->valuedouble < 1e6))
    return 0;
  *key = (int)v->valuedouble;
  return 1;
}

/* The item a delta is for: by item_id, else by output_index. */
static struct rs_item *item_of(struct rs_stream *s, const cJSON *ev) {
  struct rs_item *it = item_by_id(s, jstr(ev, "item_id"));
  int key;
  if (!it && item_index(ev, &key))
    it = item_by_key(s, key);
  return it;
}

static int on_item_added(struct rs_stream *s, const cJSON *ev) {
  struct lc_llm_accum *a = &s->base.acc;
  const cJSON *item = cJSON_GetObjectItemCaseSensitive(ev, "item");
  int key;
  if (!cJSON_IsObject(item) || !item_index(ev, &key))
    return lc_accum_fail(a, LC_LLM_EBADRESP, NULL,
                         "output_item.added without item or output_index");
  if (item_by_key(s, key))
    return lc_accum_fail(a, LC_LLM_EBADRESP, NULL,
                         "output_index %d added twice", key);
  /* Items are found by a linear search per delta: a hostile stream of
   * countless items must not make that quadratic. */
  if (s->n_items >= RS_MAX_ITEMS)
    return lc_accum_fail(a, LC_LLM_EBADRESP, NULL,
                         "more than %d output items", RS_MAX_ITEMS);
  if (s->n_items == s->cap_items) {
    size_t cap = s->cap_items ? 2 * s->cap_items : 8;
    void *p = lc_realloc(s->items, cap * sizeof *s->items);
    if (!p)
      return lc_accum_fail(a, LC_LLM_EBADRESP, NULL, "out of memory");
    s->items = p;
    s->cap_items = cap;
  }
  const char *type = jstr(item, "type");
  struct rs_item *it = &s->items[s->n_items];
  memset(it, 0, sizeof *it);
  it->key = key;
  it->is_call = type && strcmp(type, "function_call") == 0;
  const char *id = jstr(item, "id");
  if (id && !(it->id = lc_strdup(id)))
    return lc_accum_fail(a, LC_LLM_EBADRESP, NULL, "out of memory");
  s->n_items++;
  if (it->is_call) {
    if (lc_accum_tool_start(a, key, jstr(item, "call_id"), jstr(item, "name")))
      return LC_EINVAL;
    if (keep_item_id(&s->x, a->n_calls - 1, id))
      return lc_accum_fail(a, LC_LLM_EBADRESP, NULL, "out of memory");
    /* Some servers put the whole arguments in the added item. */
    const char *args = jstr(item, "arguments");
    if (args && *args) {
      it->got_args = 1;
      return lc_accum_tool_args(a, key, args, strlen(args));
    }
  }
  return 0;
}

/* output_item.done / function_call_arguments.done: whole arguments, used
 * only when no delta came (a server that sends no deltas). */
static int args_whole(struct rs_stream *s, struct rs_item *it,
                      const char *args) {
  if (!it || !it->is_call || it->got_args || !args || !*args)
    return 0;
  it->got_args = 1;
  return lc_accum_tool_args(&s->base.acc, it->key, args, strlen(args));
}

/* Events that only repeat what the deltas said: checked as JSON, not
 * read. */
static int ignorable(const char *t, size_t n) {
  static const char *const ig[] = {
      "response.content_part.added", "response.content_part.done",
      "response.output_text.done", "response.reasoning_summary_text.done",
      "response.reasoning_summary_part.done", "response.reasoning_text.done",
      "response.refusal.done", "response.output_text.annotation.added",
      "response.queued"};
  for (size_t i = 0; i < LC_ARRAY_LEN(ig); i++)
    if (strlen(ig[i]) == n && memcmp(ig[i], t, n) == 0)
      return 1;
  return 0;
}

static int type_is(const char *t, size_t n, const char *want) {
  return strlen(want) == n && memcmp(t, want, n) == 0;
}

/* The bulk of a stream is small delta events: read with the pull reader
 * (no tree, no allocation unless a string has escapes). 1 when handled,
 * 0 to take the general path, < 0 on failure. */
static int fast_event(struct rs_stream *s, const struct lc_sse_event *ev) {
  struct lc_llm_accum *a = &s->base.acc;
  static const char *const keys[] = {"type", "delta", "item_id", "output_index"};
  size_t off[4];
  int is_obj;
  char err[128];
  if (lc_jsonr_check_index(ev->data, ev->data_len, keys, 4, off, &is_obj, err,
                           sizeof err))
    return lc_accum_fail(a, LC_LLM_EBADRESP, NULL, "malformed stream event: %s",
                         err);
  if (!is_obj || off[0] == LC_JSONR_NONE)
    return 0;
  struct lc_jsonr r;
  lc_jsonr_init(&r, ev->data, ev->data_len);
  struct lc_buf tb, db;
  lc_buf_init(&tb, 0);
  lc_buf_init(&db, 0);
  const char *t = NULL, *d = NULL, *iid = NULL;
  size_t tn = 0, dn = 0, in = 0;
  int rc = 0;
  lc_jsonr_seek(&r, off[0]);
  if (lc_jsonr_peek(&r) != LC_JSONR_STRING || lc_jsonr_str(&r, &tb, &t, &tn))
    goto general;
  if (ignorable(t, tn)) {
    rc = 1;
    goto out;
  }
  int text = type_is(t, tn, "response.output_text.delta") ||
             type_is(t, tn, "response.refusal.delta");
  int reasoning = type_is(t, tn, "response.reasoning_summary_text.delta") ||
                  type_is(t, tn, "response.reasoning_text.delta");
  int args = type_is(t, tn, "response.function_call_arguments.delta");
  if (!text && !reasoning && !args)
    goto general;
  if (off[1] != LC_JSONR_NONE) {
    lc_jsonr_seek(&r, off[1]);
    if (lc_jsonr_peek(&r) != LC_JSONR_STRING || lc_jsonr_str(&r, &db, &d, &dn))
      d = NULL;
  }
  if (!d) { /* a delta without its text adds nothing */
    rc = 1;
    goto out;
  }
  if (text) {
    rc = lc_accum_text(a, d, dn) ? LC_EINVAL : 1;
  } else if (reasoning) {
    rc = lc_accum_reasoning(a, d, dn) ? LC_EINVAL : 1;
  } else {
    struct rs_item *it = NULL;
    char idb[256];
    if (off[2] != LC_JSONR_NONE) {
      struct lc_buf ib;
      lc_buf_init(&ib, 0);
      lc_jsonr_seek(&r, off[2]);
      if (lc_jsonr_peek(&r) == LC_JSONR_STRING && !lc_jsonr_str(&r, &ib, &iid, &in) &&
          in < sizeof idb) {
        memcpy(idb, iid, in);
        idb[in] = '\0';
        it = item_by_id(s, idb);
      }
      lc_buf_free(&ib);
    }
    double ix;
    if (!it && off[3] != LC_JSONR_NONE) {
      lc_jsonr_seek(&r, off[3]);
      if (lc_jsonr_peek(&r) == LC_JSONR_NUMBER && !lc_jsonr_num(&r, &ix) &&
          ix >= 0 && ix < 1e6)
        it = item_by_key(s, (int)ix);
    }
    if (!it || !it->is_call) {
      rc = lc_accum_fail(a, LC_LLM_EBADRESP, NULL,
                         "arguments for an unknown function call item");
    } else {
      it->got_args = 1;
      rc = lc_accum_tool_args(a, it->key, d, dn) ? LC_EINVAL : 1;
    }
  }
  goto out;
general:
  rc = 0;
out:
  lc_buf_free(&tb);
  lc_buf_free(&db);
  return rc;
}

static int on_event(void *ud, const struct lc_sse_event *ev) {
  struct rs_stream *s = ud;
  struct lc_llm_accum *a = &s->base.acc;
  if (s->base.done)
    return 0; /* nothing counts after the terminal event */
  int f = fast_event(s, ev);
  if (f)
    return f < 0 ? LC_EINVAL : (a->err ? LC_EINVAL : 0);
  char err[128];
  cJSON *j = lc_json_parse(ev->data, ev->data_len, err, sizeof err);
  if (!j)
    return lc_accum_fail(a, LC_LLM_EBADRESP, NULL, "malformed stream event: %s",
                         err);
  int rc = 0;
  const char *type = jstr(j, "type");
  char evname[64] = "";
  if (!type && ev->event_len < sizeof evname && ev->event_len) {
    memcpy(evname, ev->event, ev->event_len);
    evname[ev->event_len] = '\0';
    type = evname;
  }
  if (!cJSON_IsObject(j) || !type) {
    rc = lc_accum_fail(a, LC_LLM_EBADRESP, NULL,
                       "stream event is not a typed object");
    goto out;
  }
  const cJSON *resp = cJSON_GetObjectItemCaseSensitive(j, "response");
  if (strcmp(type, "error") == 0) {
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "error");
    rc = fail_obj(a, cJSON_IsObject(e) ? e : j, "error event in stream");
  } else if (strcmp(type, "response.created") == 0 ||
             strcmp(type, "response.in_progress") == 0) {
    if (cJSON_IsObject(resp))
      meta(a, resp);
  } else if (strcmp(type, "response.output_item.added") == 0) {
    rc = on_item_added(s, j);
  } else if (strcmp(type, "response.output_text.delta") == 0 ||
             strcmp(type, "response.refusal.delta") == 0) {
    const char *d = jstr(j, "delta");
    if (d)
      rc = lc_accum_text(a, d, strlen(d));
  } else if (strcmp(type, "response.reasoning_summary_part.added") == 0) {
    if (s->summary_parts++ && a->reasoning.len)
      rc = lc_accum_reasoning(a, "\n\n", 2);
  } else if (strcmp(type, "response.reasoning_summary_text.delta") == 0 ||
             strcmp(type, "response.reasoning_text.delta") == 0) {
    const char *d = jstr(j, "delta");
    if (d)
      rc = lc_accum_reasoning(a, d, strlen(d));
  } else if (strcmp(type, "response.function_call_arguments.delta") == 0) {
    struct rs_item *it = item_of(s, j);
    const char *d = jstr(j, "delta");
    if (!it || !it->is_call) {
      rc = lc_accum_fail(a, LC_LLM_EBADRESP, NULL,
                         "arguments for an unknown function call item");
    } else if (d) {
      it->got_args = 1;
      rc = lc_accum_tool_args(a, it->key, d, strlen(d));
    }
  } else if (strcmp(type, "response.function_call_arguments.done") == 0) {
    rc = args_whole(s, item_of(s, j), jstr(j, "arguments"));
  } else if (strcmp(type, "response.output_item.done") == 0) {
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(j, "item");
    int key;
    if (cJSON_IsObject(item) && item_index(j, &key))
      rc = args_whole(s, item_by_key(s, key), jstr(item, "arguments"));
  } else if (strcmp(type, "response.completed") == 0 ||
             strcmp(type, "response.incomplete") == 0 ||
             strcmp(type, "response.failed") == 0) {
    s->base.done = 1;
    if (!cJSON_IsObject(resp)) {
      rc = lc_accum_fail(a, LC_LLM_EBADRESP, NULL, "%s without a response",
                         type);
      goto out;
    }
    meta(a, resp);
    if (strcmp(type, "response.failed") == 0) {
      rc = fail_obj(a, cJSON_GetObjectItemCaseSensitive(resp, "error"),
                    "response failed");
      goto out;
    }
    /* The reasoning items to pass back come whole from the final
     * response; text and calls came as deltas, or (a server that streams
     * no items) from it now. */
    s->x.store = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(resp, "store"));
    rc = read_output(a, &s->x, resp, s->n_items == 0);
    if (!rc) {
      finish(a, resp);
      usage(a, resp);
    }
  }
  /* Every other event (content_part.*, *.done, in_progress, annotations)
   * repeats what the deltas said. */
out:
  cJSON_Delete(j);
  return rc ? rc : (a->err ? LC_EINVAL : 0);
}

static struct lc_llm_stream *stream_new(void) {
  struct rs_stream *s = lc_calloc(1, sizeof *s);
  if (!s)
    return NULL;
  lc_sse_init(&s->base.sse, LC_STREAM_MAX_EVENT);
  lc_ndjson_init(&s->base.nd, LC_STREAM_MAX_EVENT);
  lc_accum_init(&s->base.acc);
  return &s->base;
}

static void stream_free(struct lc_llm_stream *st) {
  if (!st)
    return;
  struct rs_stream *s = (struct rs_stream *)st;
  for (size_t i = 0; i < s->n_items; i++)
    lc_free(s->items[i].id);
  lc_free(s->items);
  extra_free(&s->x);
  lc_sse_free(&st->sse);
  lc_ndjson_free(&st->nd);
  lc_accum_free(&st->acc);
  lc_free(s);
}

static int stream_feed(struct lc_llm_stream *st, const char *data, size_t len,
                       lc_llm_delta_fn cb, void *ud) {
  return lc_accum_sse_feed(st, data, len, cb, ud, on_event);
}

static int stream_end(struct lc_llm_stream *st, struct lc_llm_response *out) {
  struct rs_stream *s = (struct rs_stream *)st;
  int rc = lc_accum_sse_end(st, out, "response.completed");
  if (!rc && extra_apply(&s->x, out)) rc = lc_llm_response_nomem(out);
  return rc;
}

const struct lc_llm_adapter lc_llm_openai_responses = {
    .name = "openai-responses",
    .default_base_url = "https://api.openai.com/v1",
    .base_url_env = "OPENAI_BASE_URL",
    .api_key_env = "OPENAI_API_KEY",
    .build = build,
    .parse = parse,
    .parse_error = parse_error,
    .stream_new = stream_new,
    .stream_feed = stream_feed,
    .stream_end = stream_end,
    .stream_free = stream_free,
};
