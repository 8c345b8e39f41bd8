/* llm_gemini.c: adapter for Google's Gemini API (generativelanguage,
 * v1beta): POST models/{model}:generateContent, and
 * :streamGenerateContent?alt=sse for streams. "contents" with "user" and
 * "model" roles, functionCall / functionResponse parts, thought parts and
 * thoughtSignature (echoed back with the call it came with), cumulative
 * usageMetadata, errors as google.rpc.Status with RetryInfo.
 *
 * A stream is read in whichever framing arrives, told by its first byte:
 * SSE ("data: {...}\r\n\r\n", no end marker: a candidate's finishReason
 * ends it), the default framing without alt=sse (one JSON array streamed
 * element by element, ended by its "]"), or a bare JSON object (errors
 * served with Content-Type text/event-stream). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cnum.h"
#include "conv.h"
#include "jsonw.h"
#include "lc.h"
#include "llm.h"
#include "llm_accum.h"
#include "secrets.h"

/* ---- request ---- */

static void text_part(struct lc_jsonw *w, const char *s, size_t n) {
  lc_jsonw_obj(w);
  lc_jsonw_key(w, "text");
  lc_jsonw_str(w, s, n);
  lc_jsonw_obj_end(w);
}

/* An id luact made up (lc_accum_build's "call_<n>") is not Gemini's:
 * only the API's own ids go back. */
static int own_id(const char *id) {
  return id && *id && strncmp(id, "call_", 5) != 0;
}

/* The name of the call a tool result answers: its own name, else the
 * call's with that id in an earlier assistant message. */
static const char *result_name(const struct lc_llm_request *req, size_t i) {
  const struct lc_llm_msg *m = &req->msgs[i];
  if (m->name && *m->name)
    return m->name;
  while (i-- > 0) {
    const struct lc_llm_msg *a = &req->msgs[i];
    for (size_t k = 0; a->role == LC_ROLE_ASSISTANT && k < a->n_tool_calls; k++)
      if (a->tool_calls[k].id && m->tool_call_id &&
          strcmp(a->tool_calls[k].id, m->tool_call_id) == 0)
        return a->tool_calls[k].name;
  }
  return NULL;
}

/* Opens a content of role r unless the open one has it (consecutive user
 * turns and tool results share one "user" content). */
static void turn(struct lc_jsonw *w, const char **open, const char *r) {
  if (*open && strcmp(*open, r) == 0)
    return;
  if (*open) {
    lc_jsonw_arr_end(w);
    lc_jsonw_obj_end(w);
  }
  lc_jsonw_obj(w);
  lc_jsonw_key(w, "role");
  lc_jsonw_cstr(w, r);
  lc_jsonw_key(w, "parts");
  lc_jsonw_arr(w);
  *open = r;
}

static char *text_signature(const struct lc_llm_msg *m);

/* Gemini's limit on inline data per request (images, base64). */
#define INLINE_MAX ((size_t)20 << 20)

/* A message's content parts (llm.h): text, and images as inlineData. */
static int write_parts(struct lc_jsonw *w, const struct lc_llm_msg *m, size_t *inline_total,
                       char *err, size_t errlen) {
  for (size_t i = 0; i < m->n_parts; i++) {
    const struct lc_llm_part *p = &m->parts[i];
    if (p->kind == LC_PART_TEXT) {
      text_part(w, p->text ? p->text : "", p->text_len);
      continue;
    }
    if (lc_llm_image_check(p, LC_PROV_GEMINI, err, errlen))
      return LC_EINVAL;
    size_t n;
    char *b64 = lc_llm_base64(p->data, p->data_len, &n);
    if (!b64)
      return LC_ENOMEM;
    *inline_total += n;
    lc_jsonw_obj(w);
    lc_jsonw_key(w, "inlineData");
    lc_jsonw_obj(w);
    lc_jsonw_key(w, "mimeType");
    lc_jsonw_cstr(w, p->media_type);
    lc_jsonw_key(w, "data");
    lc_jsonw_str(w, b64, n);
    lc_jsonw_obj_end(w);
    lc_jsonw_obj_end(w);
    lc_free(b64);
    if (*inline_total > INLINE_MAX) {
      snprintf(err, errlen, "image: Gemini takes at most 20 MB of inline data per request");
      return LC_EINVAL;
    }
  }
  return 0;
}

static int write_contents(const struct lc_llm_request *req, struct lc_jsonw *w,
                          struct lc_buf *sys, char *err, size_t errlen) {
  const char *open = NULL;
  size_t inline_total = 0;
  lc_jsonw_key(w, "contents");
  lc_jsonw_arr(w);
  for (size_t i = 0; i < req->n_msgs; i++) {
    const struct lc_llm_msg *m = &req->msgs[i];
    const char *text = m->content ? m->content : "";
    size_t tlen = lc_accum_msg_len(m);
    if (m->n_parts && m->role != LC_ROLE_USER) {
      snprintf(err, errlen, "image: Gemini takes content parts in user messages only (a %s "
                            "message has some)", lc_llm_role_name(m->role));
      return LC_EINVAL;
    }
    if (m->role == LC_ROLE_SYSTEM) {
      if ((sys->len && lc_buf_puts(sys, "\n\n")) || lc_buf_append(sys, text, tlen))
        return LC_ENOMEM;
    } else if (m->role == LC_ROLE_USER) {
      turn(w, &open, "user");
      /* With parts, the text leads only when there is some (llm.h). */
      if (m->content || !m->n_parts)
        text_part(w, text, tlen);
      int rc = write_parts(w, m, &inline_total, err, errlen);
      if (rc)
        return rc;
    } else if (m->role == LC_ROLE_ASSISTANT) {
      /* The turn's text signature (Gemini 3) goes back on its text, or
       * on an empty text part as Gemini streams it when there is none. */
      char *tsig = text_signature(m);
      if (!m->n_tool_calls && !tlen && !tsig)
        continue; /* an empty model turn is refused */
      turn(w, &open, "model");
      if (tlen || tsig) {
        lc_jsonw_obj(w);
        lc_jsonw_key(w, "text");
        lc_jsonw_str(w, text, tlen);
        if (tsig) {
          lc_jsonw_key(w, "thoughtSignature");
          lc_jsonw_cstr(w, tsig);
        }
        lc_jsonw_obj_end(w);
      }
      lc_free(tsig);
      for (size_t k = 0; k < m->n_tool_calls; k++) {
        const struct lc_llm_tool_call *c = &m->tool_calls[k];
        lc_jsonw_obj(w);
        lc_jsonw_key(w, "functionCall");
        lc_jsonw_obj(w);
        lc_jsonw_key(w, "name");
        lc_jsonw_cstr(w, c->name);
        lc_jsonw_key(w, "args");
        if (lc_accum_w_args_object(w, c, err, errlen))
          return LC_EINVAL;
        if (own_id(c->id)) {
          lc_jsonw_key(w, "id");
          lc_jsonw_cstr(w, c->id);
        }
        lc_jsonw_obj_end(w);
        /* Gemini 2.5+ refuses a replayed call without the signature it
         * came with (and Gemini 3 validates it): verbatim. */
        if (c->signature) {
          lc_jsonw_key(w, "thoughtSignature");
          lc_jsonw_cstr(w, c->signature);
        }
        lc_jsonw_obj_end(w);
      }
    } else {
      const char *name = result_name(req, i);
      if (!name) {
        snprintf(err, errlen,
                 "tool result %s answers no earlier call and has no name "
                 "(Gemini matches results by name)",
                 m->tool_call_id ? m->tool_call_id : "(no id)");
        return LC_EINVAL;
      }
      turn(w, &open, "user");
      lc_jsonw_obj(w);
      lc_jsonw_key(w, "functionResponse");
      lc_jsonw_obj(w);
      lc_jsonw_key(w, "name");
      lc_jsonw_cstr(w, name);
      /* "output" and "error" are the keys the API documents. */
      lc_jsonw_key(w, "response");
      lc_jsonw_obj(w);
      lc_jsonw_key(w, m->is_error ? "error" : "output");
      lc_jsonw_str(w, text, tlen);
      lc_jsonw_obj_end(w);
      if (own_id(m->tool_call_id)) {
        lc_jsonw_key(w, "id");
        lc_jsonw_cstr(w, m->tool_call_id);
      }
      lc_jsonw_obj_end(w);
      lc_jsonw_obj_end(w);
    }
  }
  if (open) {
    lc_jsonw_arr_end(w);
    lc_jsonw_obj_end(w);
  }
  lc_jsonw_arr_end(w);
  return 0;
}

static void write_tools(struct lc_jsonw *w, const struct lc_llm_request *req) {
  lc_jsonw_key(w, "tools");
  lc_jsonw_arr(w);
  lc_jsonw_obj(w);
  lc_jsonw_key(w, "functionDeclarations");
  lc_jsonw_arr(w);
  for (size_t i = 0; i < req->n_tools; i++) {
    const struct lc_llm_tool *t = &req->tools[i];
    lc_jsonw_obj(w);
    lc_jsonw_key(w, "name");
    lc_jsonw_cstr(w, t->name);
    if (t->description && *t->description) {
      lc_jsonw_key(w, "description");
      lc_jsonw_cstr(w, t->description);
    }
    /* parametersJsonSchema takes JSON Schema as written; "parameters" is
     * an OpenAPI subset that refuses additionalProperties, $ref, ... */
    lc_jsonw_key(w, "parametersJsonSchema");
    lc_accum_w_schema(w, t, "{\"type\":\"object\"}");
    lc_jsonw_obj_end(w);
  }
  lc_jsonw_arr_end(w);
  lc_jsonw_obj_end(w);
  lc_jsonw_arr_end(w);
  if (req->tool_choice == LC_TOOL_CHOICE_AUTO)
    return;
  lc_jsonw_key(w, "toolConfig");
  lc_jsonw_obj(w);
  lc_jsonw_key(w, "functionCallingConfig");
  lc_jsonw_obj(w);
  lc_jsonw_key(w, "mode");
  lc_jsonw_cstr(w, req->tool_choice == LC_TOOL_CHOICE_NONE ? "NONE" : "ANY");
  if (req->tool_choice == LC_TOOL_CHOICE_NAMED) {
    lc_jsonw_key(w, "allowedFunctionNames");
    lc_jsonw_arr(w);
    lc_jsonw_cstr(w, req->tool_choice_name);
    lc_jsonw_arr_end(w);
  }
  lc_jsonw_obj_end(w);
  lc_jsonw_obj_end(w);
}

static void write_generation(struct lc_jsonw *w, const struct lc_llm_request *req) {
  if (!req->set && !req->n_stop && req->format == LC_FORMAT_TEXT && req->thinking_budget <= 0)
    return;
  lc_jsonw_key(w, "generationConfig");
  lc_jsonw_obj(w);
  if (req->set & LC_SET_TEMPERATURE) {
    lc_jsonw_key(w, "temperature");
    lc_jsonw_num(w, req->temperature);
  }
  if (req->set & LC_SET_TOP_P) {
    lc_jsonw_key(w, "topP");
    lc_jsonw_num(w, req->top_p);
  }
  if (req->set & LC_SET_TOP_K) {
    lc_jsonw_key(w, "topK");
    lc_jsonw_num(w, req->top_k);
  }
  if (req->set & LC_SET_MAX_TOKENS) {
    lc_jsonw_key(w, "maxOutputTokens");
    lc_jsonw_num(w, req->max_tokens);
  }
  if (req->set & LC_SET_SEED) {
    lc_jsonw_key(w, "seed");
    lc_jsonw_num(w, (double)req->seed);
  }
  if (req->n_stop) {
    lc_jsonw_key(w, "stopSequences");
    lc_jsonw_arr(w);
    for (size_t i = 0; i < req->n_stop; i++)
      lc_jsonw_cstr(w, req->stop[i]);
    lc_jsonw_arr_end(w);
  }
  if (req->format != LC_FORMAT_TEXT) {
    lc_jsonw_key(w, "responseMimeType");
    lc_jsonw_cstr(w, "application/json");
  }
  if (req->thinking_budget > 0) { /* and show the thought summaries */
    lc_jsonw_key(w, "thinkingConfig");
    lc_jsonw_obj(w);
    lc_jsonw_key(w, "includeThoughts");
    lc_jsonw_bool(w, 1);
    lc_jsonw_key(w, "thinkingBudget");
    lc_jsonw_num(w, req->thinking_budget);
    lc_jsonw_obj_end(w);
  }
  if (req->format == LC_FORMAT_JSON_SCHEMA) {
    lc_jsonw_key(w, "responseJsonSchema");
    if (req->response_schema)
      lc_jsonw_cjson(w, req->response_schema);
    else
      lc_jsonw_raw(w, "{}", 2);
  }
  lc_jsonw_obj_end(w);
}

/* base + "/models/" + model (percent-encoded, "models/" dropped) + verb. */
static int make_url(struct lc_llm_http *out, const char *base, const char *model,
                    int stream) {
  struct lc_buf b;
  lc_buf_init(&b, 0);
  size_t n = strlen(base);
  while (n && base[n - 1] == '/')
    n--;
  if (strncmp(model, "models/", 7) == 0)
    model += 7;
  int rc = lc_buf_append(&b, base, n);
  if (!rc)
    rc = lc_buf_puts(&b, "/models/");
  for (const char *m = model; !rc && *m; m++) {
    unsigned char c = (unsigned char)*m;
    int keep = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
               (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' ||
               c == '~';
    rc = keep ? lc_buf_append(&b, m, 1) : lc_buf_printf(&b, "%%%02X", c);
  }
  if (!rc)
    rc = lc_buf_puts(&b, stream ? ":streamGenerateContent?alt=sse" : ":generateContent");
  if (!rc && !(out->url = lc_buf_steal(&b, NULL)))
    rc = LC_ENOMEM;
  lc_buf_free(&b);
  return rc;
}

static int build(const struct lc_llm_request *req, struct lc_llm_http *out,
                 char *err, size_t errlen) {
  memset(out, 0, sizeof *out);
  if (!req->model || !*req->model) {
    snprintf(err, errlen, "no model given");
    return LC_EINVAL;
  }
  struct lc_buf body, sys;
  struct lc_jsonw jw, *w = &jw;
  lc_buf_init(&body, 0);
  lc_buf_init(&sys, 0);
  lc_jsonw_init(w, &body);
  lc_jsonw_obj(w);
  int rc = write_contents(req, w, &sys, err, errlen);
  if (!rc && sys.len) {
    lc_jsonw_key(w, "systemInstruction");
    lc_jsonw_obj(w);
    lc_jsonw_key(w, "parts");
    lc_jsonw_arr(w);
    text_part(w, sys.data, sys.len);
    lc_jsonw_arr_end(w);
    lc_jsonw_obj_end(w);
  }
  lc_buf_free(&sys);
  if (!rc) {
    if (req->n_tools)
      write_tools(w, req);
    write_generation(w, req);
    lc_jsonw_obj_end(w);
    rc = lc_jsonw_finish(w);
  }
  if (!rc)
    rc = lc_accum_http_body_buf(out, &body);
  lc_buf_free(&body);
  const char *base = req->base_url && *req->base_url ? req->base_url
                                                     : lc_llm_gemini.default_base_url;
  if (!rc)
    rc = make_url(out, base, req->model, req->stream);
  if (!rc)
    rc = lc_accum_http_header(out, "Content-Type: application/json");
  if (!rc)
    rc = lc_accum_http_header(out, "Accept: %s",
                              req->stream ? "text/event-stream" : "application/json");
  /* The key goes in a header, never in the URL (?key=), where proxies,
   * logs and error messages would show it. */
  if (!rc && req->api_key && *req->api_key) {
    lc_secret_add(req->api_key, strlen(req->api_key));
    rc = lc_accum_http_header(out, "x-goog-api-key: %s", req->api_key);
  }
  if (rc) {
    lc_llm_http_free(out);
    if (rc != LC_EINVAL)
      snprintf(err, errlen, rc == LC_ETOOBIG ? "request too large" : "out of memory");
  }
  return rc;
}

/* ---- response ---- */

/* Per response: the signatures of its calls, by call ordinal. */
struct gem {
  struct lc_llm_accum *a;
  char **sigs;
  size_t n_calls;
  int finished; /* a finishReason or a prompt blockReason arrived */
  char *text_sig; /* the last thoughtSignature on a part that is not a call */
  double retry_after; /* an in-band error's RetryInfo, or < 0 */
  /* stream framing: 0 undecided, then SSE, JSON array or bare object */
  int mode;
  int phase; /* JSON array: see arr_feed */
  int depth, in_str, esc;
  struct lc_buf elem;
};
enum { M_NONE, M_SSE, M_ARRAY, M_OBJECT };

static void gem_init(struct gem *g, struct lc_llm_accum *a) {
  memset(g, 0, sizeof *g);
  g->a = a;
  g->retry_after = -1;
  lc_buf_init(&g->elem, LC_STREAM_MAX_EVENT);
}

static void gem_free(struct gem *g) {
  for (size_t i = 0; i < g->n_calls; i++)
    lc_free(g->sigs[i]);
  lc_free(g->sigs);
  g->sigs = NULL;
  lc_free(g->text_sig);
  g->text_sig = NULL;
  g->n_calls = 0;
  lc_buf_free(&g->elem);
}

static enum lc_llm_finish map_finish(const char *r) {
  static const char *filter[] = {"SAFETY", "RECITATION", "BLOCKLIST",
                                 "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY",
                                 "OTHER_SAFETY"};
  if (strcmp(r, "STOP") == 0)
    return LC_FINISH_STOP;
  if (strcmp(r, "MAX_TOKENS") == 0)
    return LC_FINISH_LENGTH;
  for (size_t i = 0; i < LC_ARRAY_LEN(filter); i++)
    if (strcmp(r, filter[i]) == 0)
      return LC_FINISH_CONTENT_FILTER;
  return LC_FINISH_OTHER; /* MALFORMED_FUNCTION_CALL, LANGUAGE, ... */
}

/* usageMetadata is cumulative: each one replaces the last. A count that
 * is missing is 0 (thought-only streams have no candidatesTokenCount). */
static void usage(struct lc_llm_accum *a, const cJSON *u) {
  if (!cJSON_IsObject(u))
    return;
  long thoughts = lc_accum_long(u, "thoughtsTokenCount", 0);
  a->usage.input = lc_accum_long(u, "promptTokenCount", 0) +
                   lc_accum_long(u, "toolUsePromptTokenCount", 0);
  a->usage.output = lc_accum_long(u, "candidatesTokenCount", 0) + thoughts;
  a->usage.cached = lc_accum_long(u, "cachedContentTokenCount", 0);
  a->usage.reasoning = thoughts;
}

static int add_call(struct gem *g, const cJSON *part, const cJSON *fc) {
  struct lc_llm_accum *a = g->a;
  int key = (int)g->n_calls;
  char **s = lc_realloc(g->sigs, (g->n_calls + 1) * sizeof *s);
  if (!s)
    return lc_accum_fail(a, LC_LLM_EBADRESP, NULL, "out of memory");
  g->sigs = s;
  const char *sig = lc_accum_str(part, "thoughtSignature");
  s[g->n_calls] = sig ? lc_strdup(sig) : NULL;
  if (sig && !s[g->n_calls])
    return lc_accum_fail(a, LC_LLM_EBADRESP, NULL, "out of memory");
  g->n_calls++;
  const cJSON *name = cJSON_GetObjectItemCaseSensitive(fc, "name");
  if (lc_accum_tool_start(a, key, lc_accum_str(fc, "id"),
                          cJSON_IsString(name) ? name->valuestring : NULL))
    return LC_EINVAL;
  const cJSON *args = cJSON_GetObjectItemCaseSensitive(fc, "args");
  if (!args || cJSON_IsNull(args))
    return 0;
  char *txt = lc_accum_print(args);
  if (!txt)
    return lc_accum_fail(a, LC_LLM_EBADRESP, NULL, "out of memory");
  int rc = lc_accum_tool_args(a, key, txt, strlen(txt));
  lc_free(txt);
  return rc;
}

static int chunk_error(struct gem *g, const cJSON *err);

/* One GenerateContentResponse (a whole answer, or one stream chunk). */
static int chunk(struct gem *g, const cJSON *root) {
  struct lc_llm_accum *a = g->a;
  if (!cJSON_IsObject(root))
    return lc_accum_fail(a, LC_LLM_EBADRESP, NULL, "Gemini chunk is not an object");
  const cJSON *e = cJSON_GetObjectItemCaseSensitive(root, "error");
  if (e && !cJSON_IsNull(e))
    return chunk_error(g, e);
  if (!a->id)
    lc_accum_set_once(&a->id, lc_accum_str(root, "responseId"));
  if (!a->model)
    lc_accum_set_once(&a->model, lc_accum_str(root, "modelVersion"));
  usage(a, cJSON_GetObjectItemCaseSensitive(root, "usageMetadata"));
  const cJSON *cands = cJSON_GetObjectItemCaseSensitive(root, "candidates");
  const cJSON *cand = NULL, *c;
  cJSON_ArrayForEach(c, (cJSON_IsArray(cands) ? cands : NULL)) {
    if (lc_accum_long(c, "index", 0) == 0) {
      cand = c;
      break;
    }
  }
  const char *block = lc_accum_str(
      cJSON_GetObjectItemCaseSensitive(root, "promptFeedback"), "blockReason");
  if (!cand) {
    if (block) { /* the prompt itself was refused: no candidates */
      lc_accum_finish(a, LC_FINISH_CONTENT_FILTER, block);
      g->finished = 1;
    }
    return 0; /* a usage-only chunk */
  }
  const cJSON *parts = cJSON_GetObjectItemCaseSensitive(
      cJSON_GetObjectItemCaseSensitive(cand, "content"), "parts");
  const cJSON *p;
  cJSON_ArrayForEach(p, (cJSON_IsArray(parts) ? parts : NULL)) {
    const cJSON *fc = cJSON_GetObjectItemCaseSensitive(p, "functionCall");
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(p, "text");
    int rc = 0;
    const char *sig = lc_accum_str(p, "thoughtSignature");
    if (sig && !cJSON_IsObject(fc)) { /* Gemini 3 signs text parts too */
      lc_free(g->text_sig);
      if (!(g->text_sig = lc_strdup(sig)))
        return lc_accum_fail(a, LC_LLM_EBADRESP, NULL, "out of memory");
    }
    if (cJSON_IsObject(fc))
      rc = add_call(g, p, fc);
    else if (cJSON_IsString(t) && cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(p, "thought")))
      rc = lc_accum_reasoning(a, t->valuestring, strlen(t->valuestring));
    else if (cJSON_IsString(t))
      rc = lc_accum_text(a, t->valuestring, strlen(t->valuestring));
    if (rc)
      return LC_EINVAL;
  }
  const char *fr = lc_accum_str(cand, "finishReason");
  if (fr && *fr && strcmp(fr, "FINISH_REASON_UNSPECIFIED") != 0) {
    lc_accum_finish(a, map_finish(fr), fr);
    g->finished = 1;
  }
  return a->err ? LC_EINVAL : 0;
}

static int chunk_text(struct gem *g, const char *s, size_t n) {
  char e[96];
  cJSON *root = lc_json_parse(s, n, e, sizeof e);
  if (!root)
    return lc_accum_fail(g->a, LC_LLM_EBADRESP, NULL, "malformed Gemini chunk: %s", e);
  int rc = chunk(g, root);
  cJSON_Delete(root);
  return rc;
}

/* Moves the signatures into the built response: each call's onto it, a
 * text part's into reasoning_state as [{"thoughtSignature": ...}] (llm.h:
 * what goes back with the turn; build() puts it on the turn's text). */
static int finish_build(struct gem *g, struct lc_llm_response *out, int rc) {
  if (rc && g->retry_after >= 0)
    out->retry_after_s = g->retry_after;
  for (size_t i = 0; rc == 0 && i < out->n_tool_calls && i < g->n_calls; i++) {
    out->tool_calls[i].signature = g->sigs[i];
    g->sigs[i] = NULL;
  }
  if (rc == 0 && g->text_sig) {
    struct lc_buf b;
    struct lc_jsonw w;
    lc_buf_init(&b, 0);
    lc_jsonw_init(&w, &b);
    lc_jsonw_arr(&w);
    lc_jsonw_obj(&w);
    lc_jsonw_key(&w, "thoughtSignature");
    lc_jsonw_cstr(&w, g->text_sig);
    lc_jsonw_obj_end(&w);
    lc_jsonw_arr_end(&w);
    if (!lc_jsonw_finish(&w))
      out->reasoning_state = lc_buf_steal(&b, NULL);
    lc_buf_free(&b);
    if (!out->reasoning_state) /* the answer without it would be refused later */
      return lc_llm_response_nomem(out);
  }
  return rc;
}

/* The text signature an assistant message carries back (its
 * reasoning_state from a Gemini answer), or NULL. Heap. */
static char *text_signature(const struct lc_llm_msg *m) {
  if (!m->reasoning_state || m->reasoning_prov != (signed char)LC_PROV_GEMINI)
    return NULL;
  char e[64];
  cJSON *st = lc_json_parse(m->reasoning_state, strlen(m->reasoning_state), e, sizeof e);
  const char *sig = lc_accum_str(cJSON_GetArrayItem(st, 0), "thoughtSignature");
  char *out = sig ? lc_strdup(sig) : NULL;
  cJSON_Delete(st);
  return out;
}

static int parse(const char *body, size_t len, struct lc_llm_response *out) {
  cJSON *root = lc_accum_parse_body(body, len, "Gemini response", out);
  if (!root)
    return LC_EINVAL;
  struct lc_llm_accum a;
  struct gem g;
  lc_accum_init(&a);
  gem_init(&g, &a);
  if (!chunk(&g, root) && !g.finished &&
      !cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(root, "candidates")))
    lc_accum_fail(&a, LC_LLM_EBADRESP, NULL,
                  "malformed Gemini response: no candidates");
  cJSON_Delete(root);
  int rc = finish_build(&g, out, lc_accum_build(&a, out));
  gem_free(&g);
  lc_accum_free(&a);
  return rc;
}

/* ---- errors ---- */

/* "30s", "1.5s" (a protobuf Duration): seconds, or -1. */
static double duration_s(const char *s) {
  if (!s)
    return -1;
  char *end;
  double v = lc_cnum_strtod(s, &end);
  if (end == s || strcmp(end, "s") != 0 || !(v >= 0 && v <= 86400))
    return -1;
  return v;
}

/* A google.rpc.Status ({"code", "message", "status", "details"}) at HTTP
 * status (or its own code, in band): kind, message, type, retry hint. */
static void status_error(int status, const cJSON *err, struct lc_llm_response *out) {
  const char *msg = lc_accum_str(err, "message");
  const char *st = lc_accum_str(err, "status");
  const char *reason = NULL;
  double retry = -1;
  const cJSON *d;
  cJSON_ArrayForEach(d, cJSON_GetObjectItemCaseSensitive(err, "details")) {
    const char *t = lc_accum_str(d, "@type");
    if (!t)
      continue;
    if (strstr(t, "google.rpc.ErrorInfo") && !reason)
      reason = lc_accum_str(d, "reason");
    if (strstr(t, "google.rpc.RetryInfo"))
      retry = duration_s(lc_accum_str(d, "retryDelay"));
  }
  lc_free(out->err_message);
  out->err_message = lc_strdup(msg && *msg ? msg : st ? st : "Gemini error");
  lc_free(out->err_type);
  out->err_type = reason ? lc_strdup(reason) : st ? lc_strdup(st) : NULL;
  enum lc_llm_err k = lc_accum_kind(status, st, reason, msg);
  if ((reason && strncmp(reason, "API_KEY", 7) == 0) ||
      (st && (strcmp(st, "UNAUTHENTICATED") == 0 || strcmp(st, "PERMISSION_DENIED") == 0)))
    k = LC_LLM_EAUTH;
  else if (msg && strstr(msg, "exceeds the maximum number of tokens"))
    k = LC_LLM_ECONTEXT;
  /* A per-minute quota says "exceeded your current quota" yet names the
   * wait: a rate limit to retry, not a billing stop. */
  if (retry >= 0) {
    out->retry_after_s = retry;
    if (k == LC_LLM_EQUOTA || k == LC_LLM_ERATE)
      k = LC_LLM_ERATE;
  }
  if (k == LC_LLM_OK)
    k = LC_LLM_EBADRESP;
  out->err = k;
}

/* An error object inside a 2xx answer or stream: classified as the same
 * error at its own code would be, its retry hint kept for the response. */
static int chunk_error(struct gem *g, const cJSON *err) {
  struct lc_llm_response tmp;
  lc_llm_response_init(&tmp);
  if (!cJSON_IsObject(err)) {
    lc_llm_response_free(&tmp);
    return lc_accum_fail(g->a, LC_LLM_ESERVER, NULL, "error in the Gemini answer");
  }
  long code = lc_accum_long(err, "code", 0);
  status_error(code >= 400 && code < 600 ? (int)code : 0, err, &tmp);
  g->retry_after = tmp.retry_after_s;
  lc_accum_fail(g->a, tmp.err, tmp.err_type, "%s", tmp.err_message ? tmp.err_message : "error");
  lc_llm_response_free(&tmp);
  return LC_EINVAL;
}

static void parse_error(int status, const char *body, size_t len,
                        struct lc_llm_response *out) {
  out->http_status = status;
  char e[96];
  cJSON *root = len ? lc_json_parse(body, len, e, sizeof e) : NULL;
  /* Without alt=sse the stream endpoint wraps its error in an array. */
  const cJSON *obj = cJSON_IsArray(root) ? cJSON_GetArrayItem(root, 0) : root;
  const cJSON *err = cJSON_GetObjectItemCaseSensitive(obj, "error");
  if (cJSON_IsObject(err))
    status_error(status, err, out);
  else
    lc_accum_classify(status, body, len, out);
  cJSON_Delete(root);
  lc_llm_response_scrub(out);
}

/* ---- streaming ---- */

static void gem_free_ext(void *p) {
  gem_free(p);
  lc_free(p);
}

static int on_sse(void *ud, const struct lc_sse_event *ev) {
  struct lc_llm_stream *st = ud;
  return chunk_text(st->ext, ev->data, ev->data_len);
}

static int is_ws(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

/* The JSON-array framing: "[" elem ("," elem)* "]", elements objects,
 * whitespace anywhere between. Phases: 0 before "[", 1 after "[", 2 in
 * an element, 3 after one, 4 after ",", 5 after "]". */
static int arr_feed(struct gem *g, const char *s, size_t n) {
  struct lc_llm_accum *a = g->a;
  size_t i = 0;
  while (i < n) {
    char c = s[i];
    if (g->phase == 2) {
      size_t j = i;
      int done = 0;
      for (; j < n && !done; j++) {
        char x = s[j];
        if (g->in_str) {
          if (g->esc)
            g->esc = 0;
          else if (x == '\\')
            g->esc = 1;
          else if (x == '"')
            g->in_str = 0;
        } else if (x == '"') {
          g->in_str = 1;
        } else if (x == '{' || x == '[') {
          g->depth++;
        } else if (x == '}' || x == ']') {
          done = --g->depth == 0;
        }
      }
      int rc = lc_buf_append(&g->elem, s + i, j - i);
      if (rc)
        return lc_accum_fail(a, LC_LLM_EBADRESP, NULL, "%s",
                             rc == LC_ETOOBIG ? "Gemini stream element over the size limit"
                                              : "out of memory");
      i = j;
      if (done) {
        g->phase = 3;
        rc = chunk_text(g, g->elem.data, g->elem.len);
        lc_buf_reset(&g->elem);
        if (rc)
          return rc;
      }
      continue;
    }
    i++;
    if (is_ws(c))
      continue;
    if (g->phase == 0 && c == '[') {
      g->phase = 1;
    } else if ((g->phase == 1 || g->phase == 4) && c == '{') {
      g->phase = 2;
      g->depth = 1;
      g->in_str = g->esc = 0;
      if (lc_buf_append(&g->elem, "{", 1))
        return lc_accum_fail(a, LC_LLM_EBADRESP, NULL, "out of memory");
    } else if ((g->phase == 1 || g->phase == 3) && c == ']') {
      g->phase = 5;
    } else if (g->phase == 3 && c == ',') {
      g->phase = 4;
    } else {
      return lc_accum_fail(a, LC_LLM_EBADRESP, NULL,
                           "malformed Gemini JSON-array stream: '%c' %s", c,
                           g->phase == 5 ? "after the closing ]"
                           : g->phase == 0 ? "before ["
                                           : "where an object, ',' or ']' belongs");
    }
  }
  return 0;
}

static struct lc_llm_stream *stream_new(void) {
  struct lc_llm_stream *st = lc_accum_stream_new();
  struct gem *g = st ? lc_malloc(sizeof *g) : NULL;
  if (!g) {
    lc_accum_stream_free(st);
    return NULL;
  }
  gem_init(g, &st->acc);
  st->ext = g;
  st->ext_free = gem_free_ext;
  return st;
}

static int stream_feed(struct lc_llm_stream *st, const char *data, size_t len,
                       lc_llm_delta_fn cb, void *ud) {
  struct gem *g = st->ext;
  if (st->acc.err)
    return LC_EINVAL;
  lc_accum_set_cb(&st->acc, cb, ud);
  if (g->mode == M_NONE) { /* the first byte that is not blank decides */
    size_t i = 0;
    while (i < len && is_ws(data[i]))
      i++;
    if (i == len)
      return 0;
    g->mode = data[i] == '[' ? M_ARRAY : data[i] == '{' ? M_OBJECT : M_SSE;
    data += i;
    len -= i;
  }
  if (g->mode == M_ARRAY) {
    arr_feed(g, data, len);
  } else if (g->mode == M_OBJECT) {
    int rc = lc_buf_append(&g->elem, data, len);
    if (rc)
      lc_accum_fail(&st->acc, LC_LLM_EBADRESP, NULL, "%s",
                    rc == LC_ETOOBIG ? "Gemini response over the size limit"
                                     : "out of memory");
  } else {
    return lc_accum_sse_feed(st, data, len, cb, ud, on_sse);
  }
  return st->acc.err ? LC_EINVAL : 0;
}

static int stream_end(struct lc_llm_stream *st, struct lc_llm_response *out) {
  struct gem *g = st->ext;
  const char *marker = "a finishReason";
  if (g->mode == M_SSE) {
    lc_sse_end(&st->sse);
    st->done = g->finished;
  } else if (g->mode == M_ARRAY) {
    marker = "the closing ] of the JSON array";
    st->done = g->phase == 5;
  } else if (g->mode == M_OBJECT && !st->acc.err) {
    /* A bare object: an error served as a stream, or a whole answer. */
    chunk_text(g, g->elem.data, g->elem.len);
    st->done = g->finished;
  }
  return finish_build(g, out, lc_accum_stream_end(st, out, marker));
}

const struct lc_llm_adapter lc_llm_gemini = {
    .name = "gemini",
    .default_base_url = "https://generativelanguage.googleapis.com/v1beta",
    .base_url_env = "GOOGLE_GEMINI_BASE_URL",
    .api_key_env = "GEMINI_API_KEY",
    /* Google's own SDKs read it too; GEMINI_API_KEY wins when both are set
     * (theirs prefer GOOGLE_API_KEY: docs/llm.md says so). */
    .api_key_env2 = "GOOGLE_API_KEY",
    .build = build,
    .parse = parse,
    .parse_error = parse_error,
    .stream_new = stream_new,
    .stream_feed = stream_feed,
    .stream_end = stream_end,
    .stream_free = lc_accum_stream_free,
};
