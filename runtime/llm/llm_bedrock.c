/* llm_bedrock.c: adapter for AWS Bedrock's Converse and ConverseStream
 * (POST /model/{modelId}/converse and /converse-stream): system blocks at
 * the top level, toolUse / toolResult content blocks, inferenceConfig,
 * toolConfig; requests signed with SigV4 by libcurl, or sent with a
 * Bedrock API key as a bearer token; the stream is the binary AWS
 * event-stream (eventstream.h), and errors name their type only in
 * x-amzn-ErrorType (a header) or :exception-type (a stream header). */
#include "llm_bedrock.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "conv.h"
#include "eventstream.h"
#include "jsonw.h"
#include "lc.h"
#include "llm.h"
#include "llm_accum.h"
#include "secrets.h"

#define REGION_MARK "{region}"

/* ---- errors ---- */

/* Kind for an AWS exception name (the header's, or a stream's
 * :exception-type, which starts lower-case there). -1 when unknown. */
static int kind_of_type(const char *t, size_t n) {
  static const struct {
    const char *name;
    enum lc_llm_err k;
  } map[] = {
      {"ThrottlingException", LC_LLM_ERATE},
      {"TooManyRequestsException", LC_LLM_ERATE},
      /* On-demand throughput quotas refill: retried like a rate limit. */
      {"ServiceQuotaExceededException", LC_LLM_ERATE},
      {"ServiceUnavailableException", LC_LLM_EOVERLOADED},
      {"ModelNotReadyException", LC_LLM_EOVERLOADED},
      {"InternalServerException", LC_LLM_ESERVER},
      {"ModelErrorException", LC_LLM_ESERVER},
      {"ModelStreamErrorException", LC_LLM_ESERVER},
      {"ModelTimeoutException", LC_LLM_ETIMEOUT},
      {"AccessDeniedException", LC_LLM_EAUTH},
      {"UnrecognizedClientException", LC_LLM_EAUTH},
      {"InvalidSignatureException", LC_LLM_EAUTH},
      {"ExpiredTokenException", LC_LLM_EAUTH},
      {"IncompleteSignatureException", LC_LLM_EAUTH},
      {"MissingAuthenticationTokenException", LC_LLM_EAUTH},
      {"ValidationException", LC_LLM_EBADREQ},
      {"ResourceNotFoundException", LC_LLM_EBADREQ},
      {"ConflictException", LC_LLM_EBADREQ},
  };
  for (size_t i = 0; i < LC_ARRAY_LEN(map); i++)
    if (strlen(map[i].name) == n && strncasecmp(map[i].name, t, n) == 0)
      return (int)map[i].k;
  return -1;
}

/* The kind for a named exception with its message: a validation error
 * about the prompt's length is context_length. */
static enum lc_llm_err kind_for(const char *t, size_t n, const char *msg,
                                enum lc_llm_err dflt) {
  int k = kind_of_type(t, n);
  if (k < 0)
    return dflt;
  if (k == LC_LLM_EBADREQ &&
      lc_accum_kind(400, NULL, NULL, msg) == LC_LLM_ECONTEXT)
    return LC_LLM_ECONTEXT;
  return (enum lc_llm_err)k;
}

void lc_llm_bedrock_error_type(const char *value, struct lc_llm_response *out) {
  if (!value || !*value)
    return;
  size_t n = strcspn(value, ":");
  while (n && (value[n - 1] == ' ' || value[n - 1] == '\t'))
    n--;
  if (!n)
    return;
  char *t = lc_strndup(value, n);
  if (!t)
    return;
  lc_free(out->err_type);
  out->err_type = t;
  if (out->err != LC_LLM_OK)
    out->err = kind_for(t, n, out->err_message, out->err);
}

static void parse_error(int status, const char *body, size_t len,
                        struct lc_llm_response *out) {
  out->http_status = status;
  /* {"message": ...} (or "Message"), the type comes from the header. */
  lc_accum_classify(status, body, len, out);
  char e[64];
  cJSON *root = len ? lc_json_parse(body, len, e, sizeof e) : NULL;
  const char *m = lc_accum_str(root, "Message");
  if (m && *m && (!out->err_message || !lc_accum_str(root, "message"))) {
    lc_free(out->err_message);
    out->err_message = lc_strdup(m);
  }
  /* Some proxies put the type in the body ("__type"). */
  const char *t = lc_accum_str(root, "__type");
  if (t && *t) {
    const char *h = strrchr(t, '#');
    lc_llm_bedrock_error_type(h ? h + 1 : t, out);
  }
  cJSON_Delete(root);
  lc_llm_response_scrub(out);
}

/* ---- request ---- */

static void text_block(struct lc_jsonw *w, const char *s, size_t n) {
  lc_jsonw_obj(w);
  lc_jsonw_key(w, "text");
  lc_jsonw_str(w, s, n);
  lc_jsonw_obj_end(w);
}

/* A message's content parts (llm.h): text blocks, and images as
 * {"image": {"format": "png", "source": {"bytes": <base64>}}} (the format
 * is the media type's subtype). */
static int write_parts(struct lc_jsonw *w, const struct lc_llm_msg *m, char *err,
                       size_t errlen) {
  for (size_t i = 0; i < m->n_parts; i++) {
    const struct lc_llm_part *p = &m->parts[i];
    if (p->kind == LC_PART_TEXT) {
      text_block(w, p->text ? p->text : "", p->text_len);
      continue;
    }
    if (lc_llm_image_check(p, LC_PROV_BEDROCK, err, errlen))
      return LC_EINVAL;
    size_t n;
    char *b64 = lc_llm_base64(p->data, p->data_len, &n);
    if (!b64)
      return LC_ENOMEM;
    const char *slash = strchr(p->media_type, '/');
    lc_jsonw_obj(w);
    lc_jsonw_key(w, "image");
    lc_jsonw_obj(w);
    lc_jsonw_key(w, "format");
    lc_jsonw_cstr(w, slash ? slash + 1 : p->media_type);
    lc_jsonw_key(w, "source");
    lc_jsonw_obj(w);
    lc_jsonw_key(w, "bytes");
    lc_jsonw_str(w, b64, n);
    lc_jsonw_obj_end(w);
    lc_jsonw_obj_end(w);
    lc_jsonw_obj_end(w);
    lc_free(b64);
  }
  return 0;
}

/* A prompt-caching breakpoint (cache_control): everything before it. */
static void cache_point(struct lc_jsonw *w) {
  lc_jsonw_obj(w);
  lc_jsonw_key(w, "cachePoint");
  lc_jsonw_obj(w);
  lc_jsonw_key(w, "type");
  lc_jsonw_cstr(w, "default");
  lc_jsonw_obj_end(w);
  lc_jsonw_obj_end(w);
}

/* The reasoning blocks a Bedrock answer came with (its reasoning_state),
 * first in the replayed turn: Anthropic models refuse a tool-use turn
 * whose signed thinking is missing. Another provider's state is dropped. */
static void replay_reasoning(struct lc_jsonw *w, const struct lc_llm_msg *m) {
  if (!m->reasoning_state || m->reasoning_prov != (signed char)LC_PROV_BEDROCK)
    return;
  char e[64];
  cJSON *st = lc_json_parse(m->reasoning_state, strlen(m->reasoning_state), e, sizeof e);
  const cJSON *b;
  cJSON_ArrayForEach(b, (cJSON_IsArray(st) ? st : NULL)) {
    if (cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(b, "reasoningContent")))
      lc_jsonw_cjson(w, b);
  }
  cJSON_Delete(st);
}

static void close_open(struct lc_jsonw *w, int *open) {
  if (!*open)
    return;
  lc_jsonw_arr_end(w);
  lc_jsonw_obj_end(w);
  *open = 0;
}

/* Opens a turn of role r (1 user, 2 assistant) unless one is open:
 * Converse wants roles to alternate, so consecutive messages of one role
 * (tool results and user text; two assistant replies) share a turn. */
static void open_turn(struct lc_jsonw *w, int *open, int r) {
  if (*open == r)
    return;
  close_open(w, open);
  lc_jsonw_obj(w);
  lc_jsonw_key(w, "role");
  lc_jsonw_cstr(w, r == 1 ? "user" : "assistant");
  lc_jsonw_key(w, "content");
  lc_jsonw_arr(w);
  *open = r;
}

/* Messages, in turns of alternating roles (open_turn); system messages
 * go to sys as blocks. */
static int write_msgs(const struct lc_llm_request *req, struct lc_jsonw *w,
                      struct lc_jsonw *sys, int *n_sys, char *err, size_t errlen) {
  int open = 0;
  /* Where the last message's content ends: its cache point goes there. */
  int cache_last = req->cache_control && req->n_msgs &&
                   req->msgs[req->n_msgs - 1].role != LC_ROLE_SYSTEM;
  lc_jsonw_key(w, "messages");
  lc_jsonw_arr(w);
  for (size_t i = 0; i < req->n_msgs; i++) {
    const struct lc_llm_msg *m = &req->msgs[i];
    const char *text = m->content ? m->content : "";
    size_t tlen = lc_accum_msg_len(m);
    if (m->n_parts && m->role != LC_ROLE_USER && m->role != LC_ROLE_TOOL) {
      snprintf(err, errlen, "image: Bedrock takes content parts in user messages and tool "
                            "results only (a %s message has some)", lc_llm_role_name(m->role));
      return LC_EINVAL;
    }
    if (m->role == LC_ROLE_SYSTEM) {
      if (tlen) {
        text_block(sys, text, tlen);
        (*n_sys)++;
      }
    } else if (m->role == LC_ROLE_USER) {
      open_turn(w, &open, 1);
      /* With parts, the text leads only when there is some (llm.h). */
      if (m->content || !m->n_parts)
        text_block(w, text, tlen);
      int rc = write_parts(w, m, err, errlen);
      if (rc)
        return rc;
    } else if (m->role == LC_ROLE_ASSISTANT) {
      if (!m->n_tool_calls && !tlen)
        continue; /* Bedrock rejects empty content */
      open_turn(w, &open, 2);
      replay_reasoning(w, m);
      if (tlen) /* and blank text blocks */
        text_block(w, text, tlen);
      for (size_t k = 0; k < m->n_tool_calls; k++) {
        const struct lc_llm_tool_call *c = &m->tool_calls[k];
        lc_jsonw_obj(w);
        lc_jsonw_key(w, "toolUse");
        lc_jsonw_obj(w);
        lc_jsonw_key(w, "toolUseId");
        lc_jsonw_cstr(w, c->id);
        lc_jsonw_key(w, "name");
        lc_jsonw_cstr(w, c->name);
        lc_jsonw_key(w, "input");
        if (lc_accum_w_args_object(w, c, err, errlen))
          return LC_EINVAL;
        lc_jsonw_obj_end(w);
        lc_jsonw_obj_end(w);
      }
    } else {
      open_turn(w, &open, 1);
      lc_jsonw_obj(w);
      lc_jsonw_key(w, "toolResult");
      lc_jsonw_obj(w);
      lc_jsonw_key(w, "toolUseId");
      lc_jsonw_cstr(w, m->tool_call_id);
      lc_jsonw_key(w, "content");
      lc_jsonw_arr(w);
      if (m->content || !m->n_parts)
        text_block(w, text, tlen);
      int rc = write_parts(w, m, err, errlen); /* images a tool returned */
      if (rc)
        return rc;
      lc_jsonw_arr_end(w);
      if (m->is_error) {
        lc_jsonw_key(w, "status");
        lc_jsonw_cstr(w, "error");
      }
      lc_jsonw_obj_end(w);
      lc_jsonw_obj_end(w);
    }
  }
  if (open && cache_last)
    cache_point(w);
  close_open(w, &open);
  lc_jsonw_arr_end(w);
  return 0;
}

static void write_tools(struct lc_jsonw *w, const struct lc_llm_request *req) {
  lc_jsonw_key(w, "toolConfig");
  lc_jsonw_obj(w);
  lc_jsonw_key(w, "tools");
  lc_jsonw_arr(w);
  for (size_t i = 0; i < req->n_tools; i++) {
    const struct lc_llm_tool *t = &req->tools[i];
    lc_jsonw_obj(w);
    lc_jsonw_key(w, "toolSpec");
    lc_jsonw_obj(w);
    lc_jsonw_key(w, "name");
    lc_jsonw_cstr(w, t->name);
    if (t->description && *t->description) {
      lc_jsonw_key(w, "description");
      lc_jsonw_cstr(w, t->description);
    }
    lc_jsonw_key(w, "inputSchema");
    lc_jsonw_obj(w);
    lc_jsonw_key(w, "json");
    lc_accum_w_schema(w, t, "{\"type\":\"object\"}");
    lc_jsonw_obj_end(w);
    lc_jsonw_obj_end(w);
    lc_jsonw_obj_end(w);
  }
  if (req->cache_control)
    cache_point(w);
  lc_jsonw_arr_end(w);
  /* Converse has no "none": the tools stay listed (earlier toolUse blocks
   * need them) and the choice is left to the model. */
  if (req->tool_choice == LC_TOOL_CHOICE_REQUIRED ||
      req->tool_choice == LC_TOOL_CHOICE_NAMED) {
    lc_jsonw_key(w, "toolChoice");
    lc_jsonw_obj(w);
    if (req->tool_choice == LC_TOOL_CHOICE_REQUIRED) {
      lc_jsonw_key(w, "any");
      lc_jsonw_obj(w);
      lc_jsonw_obj_end(w);
    } else {
      lc_jsonw_key(w, "tool");
      lc_jsonw_obj(w);
      lc_jsonw_key(w, "name");
      lc_jsonw_cstr(w, req->tool_choice_name);
      lc_jsonw_obj_end(w);
    }
    lc_jsonw_obj_end(w);
  }
  lc_jsonw_obj_end(w);
}

static void write_inference(struct lc_jsonw *w, const struct lc_llm_request *req) {
  lc_jsonw_key(w, "inferenceConfig");
  lc_jsonw_obj(w);
  if (req->set & LC_SET_MAX_TOKENS) {
    lc_jsonw_key(w, "maxTokens");
    lc_jsonw_num(w, req->max_tokens);
  }
  if (req->set & LC_SET_TEMPERATURE) {
    lc_jsonw_key(w, "temperature");
    lc_jsonw_num(w, req->temperature);
  }
  if (req->set & LC_SET_TOP_P) {
    lc_jsonw_key(w, "topP");
    lc_jsonw_num(w, req->top_p);
  }
  if (req->n_stop) {
    lc_jsonw_key(w, "stopSequences");
    lc_jsonw_arr(w);
    for (size_t i = 0; i < req->n_stop; i++)
      lc_jsonw_cstr(w, req->stop[i]);
    lc_jsonw_arr_end(w);
  }
  lc_jsonw_obj_end(w);
  /* top_k is model-specific on Bedrock: passed where Anthropic's and
   * others' request fields go. seed and JSON formats have no Converse
   * field and are not sent. */
  if ((req->set & LC_SET_TOP_K) || req->thinking_budget > 0) {
    lc_jsonw_key(w, "additionalModelRequestFields");
    lc_jsonw_obj(w);
    if (req->set & LC_SET_TOP_K) {
      lc_jsonw_key(w, "top_k");
      lc_jsonw_num(w, req->top_k);
    }
    if (req->thinking_budget > 0) { /* Anthropic models' extended thinking */
      lc_jsonw_key(w, "thinking");
      lc_jsonw_obj(w);
      lc_jsonw_key(w, "type");
      lc_jsonw_cstr(w, "enabled");
      lc_jsonw_key(w, "budget_tokens");
      lc_jsonw_num(w, req->thinking_budget);
      lc_jsonw_obj_end(w);
    }
    lc_jsonw_obj_end(w);
  }
}

/* Percent-encodes a model id (ARNs and ids hold ':' and '/') into b. */
static int put_model(struct lc_buf *b, const char *m) {
  for (; *m; m++) {
    unsigned char c = (unsigned char)*m;
    int keep = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
               (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' ||
               c == '~';
    int rc = keep ? lc_buf_append(b, m, 1) : lc_buf_printf(b, "%%%02X", c);
    if (rc)
      return rc;
  }
  return 0;
}

static const char *env(const char *name) {
  const char *v = getenv(name);
  return v && *v ? v : NULL;
}

static int secret(const char *v) {
  return v ? lc_secret_add(v, strlen(v)) : 0;
}

/* Authentication: a key given to the request, then AWS_BEARER_TOKEN_BEDROCK
 * (both Bedrock API keys, sent as bearer tokens), then SigV4 with the
 * standard AWS variables. A base URL that is not AWS's (a mock, a proxy)
 * may go unsigned. */
static int auth(const struct lc_llm_request *req, struct lc_llm_http *out,
                const char *region, int aws_host, char *err, size_t errlen) {
  const char *bearer = req->api_key && *req->api_key ? req->api_key
                                                     : env("AWS_BEARER_TOKEN_BEDROCK");
  if (bearer) {
    secret(bearer);
    return lc_accum_http_header(out, "Authorization: Bearer %s", bearer);
  }
  const char *id = env("AWS_ACCESS_KEY_ID"), *key = env("AWS_SECRET_ACCESS_KEY");
  const char *token = env("AWS_SESSION_TOKEN");
  if (!id || !key) {
    if (!aws_host)
      return 0;
    snprintf(err, errlen,
             "no AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
             "(or AWS_BEARER_TOKEN_BEDROCK) for bedrock");
    return LC_EINVAL;
  }
  if (!region) {
    snprintf(err, errlen, "AWS_REGION (or AWS_DEFAULT_REGION) is not set (needed "
                          "to sign bedrock requests)");
    return LC_EINVAL;
  }
  secret(id);
  secret(key);
  secret(token);
  struct lc_buf b;
  lc_buf_init(&b, 0);
  int rc = lc_buf_printf(&b, "aws:amz:%s:bedrock", region);
  if (!rc)
    out->aws_sigv4 = lc_buf_steal(&b, NULL);
  lc_buf_init(&b, 0);
  if (!rc && !(rc = lc_buf_printf(&b, "%s:%s", id, key)))
    out->aws_userpwd = lc_buf_steal(&b, NULL);
  lc_buf_free(&b);
  if (!rc && (!out->aws_sigv4 || !out->aws_userpwd))
    rc = LC_ENOMEM;
  /* Temporary credentials: the token travels as a header libcurl signs. */
  if (!rc && token)
    rc = lc_accum_http_header(out, "x-amz-security-token: %s", token);
  return rc;
}

static int build(const struct lc_llm_request *req, struct lc_llm_http *out,
                 char *err, size_t errlen) {
  memset(out, 0, sizeof *out);
  if (!req->model || !*req->model) {
    snprintf(err, errlen, "no model given");
    return LC_EINVAL;
  }
  if (lc_llm_images_check(req, LC_PROV_BEDROCK, err, errlen))
    return LC_EINVAL;
  struct lc_buf body, sysb, url;
  struct lc_jsonw jw, sw, *w = &jw;
  lc_buf_init(&body, 0);
  lc_buf_init(&sysb, 0);
  lc_buf_init(&url, 0);
  lc_jsonw_init(w, &body);
  lc_jsonw_init(&sw, &sysb);
  lc_jsonw_arr(&sw);
  int n_sys = 0;
  lc_jsonw_obj(w);
  int rc = write_msgs(req, w, &sw, &n_sys, err, errlen);
  if (n_sys && req->cache_control)
    cache_point(&sw);
  lc_jsonw_arr_end(&sw);
  if (!rc && n_sys) {
    if ((rc = lc_jsonw_finish(&sw)) == 0) {
      lc_jsonw_key(w, "system");
      lc_jsonw_raw(w, sysb.data, sysb.len);
    }
  }
  if (!rc) {
    write_inference(w, req);
    if (req->n_tools)
      write_tools(w, req);
    lc_jsonw_obj_end(w);
    rc = lc_jsonw_finish(w);
  }
  lc_buf_free(&sysb);
  if (rc) {
    lc_buf_free(&body);
    if (rc != LC_EINVAL)
      snprintf(err, errlen, rc == LC_ETOOBIG ? "request too large" : "out of memory");
    return rc;
  }
  rc = lc_accum_http_body_buf(out, &body);
  lc_buf_free(&body);

  const char *region = env("AWS_REGION");
  if (!region)
    region = env("AWS_DEFAULT_REGION");
  const char *base = req->base_url && *req->base_url ? req->base_url
                                                     : lc_llm_bedrock.default_base_url;
  const char *mark = strstr(base, REGION_MARK);
  int aws_host = mark || strstr(base, ".amazonaws.com") != NULL;
  if (!rc && mark && !region) {
    snprintf(err, errlen, "AWS_REGION (or AWS_DEFAULT_REGION) is not set (needed "
                          "for the bedrock endpoint)");
    rc = LC_EINVAL;
  }
  if (!rc) {
    size_t n = strlen(base);
    while (n && base[n - 1] == '/')
      n--;
    if (mark)
      rc = lc_buf_printf(&url, "%.*s%s%.*s", (int)(mark - base), base, region,
                         (int)(n - (size_t)(mark - base) - strlen(REGION_MARK)),
                         mark + strlen(REGION_MARK));
    else
      rc = lc_buf_append(&url, base, n);
    if (!rc)
      rc = lc_buf_puts(&url, "/model/");
    if (!rc)
      rc = put_model(&url, req->model);
    if (!rc)
      rc = lc_buf_puts(&url, req->stream ? "/converse-stream" : "/converse");
    if (!rc && !(out->url = lc_buf_steal(&url, NULL)))
      rc = LC_ENOMEM;
  }
  lc_buf_free(&url);
  if (!rc)
    rc = lc_accum_http_header(out, "Content-Type: application/json");
  if (!rc)
    rc = lc_accum_http_header(out, "Accept: %s",
                              req->stream ? "application/vnd.amazon.eventstream"
                                          : "application/json");
  if (!rc)
    rc = auth(req, out, region, aws_host, err, errlen);
  if (rc) {
    lc_llm_http_free(out);
    if (rc != LC_EINVAL)
      snprintf(err, errlen, rc == LC_ETOOBIG ? "header too long" : "out of memory");
  }
  return rc;
}

/* ---- response ---- */

/* input counts every prompt token, cached ones included (llm.h). */
static void usage(struct lc_llm_accum *a, const cJSON *u) {
  if (!cJSON_IsObject(u))
    return;
  long in = lc_accum_long(u, "inputTokens", -1);
  long rd = lc_accum_long(u, "cacheReadInputTokens", 0);
  long wr = lc_accum_long(u, "cacheWriteInputTokens", 0);
  if (in >= 0) {
    a->usage.input = in + rd + wr;
    a->usage.cached = rd;
    a->usage.cache_write = wr;
  }
  a->usage.output = lc_accum_long(u, "outputTokens", a->usage.output);
}

static void stop_reason(struct lc_llm_accum *a, const char *sr) {
  if (!sr)
    return;
  enum lc_llm_finish f = lc_accum_map_finish(sr);
  if (strcmp(sr, "guardrail_intervened") == 0 || strcmp(sr, "content_filtered") == 0)
    f = LC_FINISH_CONTENT_FILTER;
  lc_accum_finish(a, f, sr);
}

/* The reasoning blocks (an array, or NULL) as out->reasoning_state: what
 * goes back with this turn (llm.h). rc: lc_accum_build's. */
static int set_state(struct lc_llm_response *out, int rc, const cJSON *state) {
  if (rc || !state || !cJSON_GetArraySize(state))
    return rc;
  char *txt = cJSON_PrintUnformatted(state);
  out->reasoning_state = txt ? lc_strdup(txt) : NULL;
  cJSON_free(txt);
  if (!out->reasoning_state) return lc_llm_response_nomem(out);
  return 0;
}

static int parse(const char *body, size_t len, struct lc_llm_response *out) {
  cJSON *state = NULL;
  cJSON *root = lc_accum_parse_body(body, len, "Converse response", out);
  if (!root)
    return LC_EINVAL;
  struct lc_llm_accum a;
  lc_accum_init(&a);
  const cJSON *msg = cJSON_GetObjectItemCaseSensitive(
      cJSON_GetObjectItemCaseSensitive(root, "output"), "message");
  const cJSON *content = cJSON_GetObjectItemCaseSensitive(msg, "content");
  if (!cJSON_IsArray(content)) {
    const char *m = lc_accum_str(root, "message");
    if (m)
      lc_accum_fail(&a, LC_LLM_ESERVER, NULL, "%s", m);
    else
      lc_accum_fail(&a, LC_LLM_EBADRESP, NULL,
                    "malformed Converse response: no output.message.content");
  } else {
    const cJSON *b;
    int i = 0;
    cJSON_ArrayForEach(b, content) {
      const char *s;
      const cJSON *tu = cJSON_GetObjectItemCaseSensitive(b, "toolUse");
      const cJSON *rc = cJSON_GetObjectItemCaseSensitive(b, "reasoningContent");
      if ((s = lc_accum_str(b, "text"))) {
        lc_accum_text(&a, s, strlen(s));
      } else if (cJSON_IsObject(tu)) {
        lc_accum_tool_start(&a, i, lc_accum_str(tu, "toolUseId"),
                            lc_accum_str(tu, "name"));
        char *args = lc_accum_print(cJSON_GetObjectItemCaseSensitive(tu, "input"));
        if (args)
          lc_accum_tool_args(&a, i, args, strlen(args));
        lc_free(args);
      } else if (cJSON_IsObject(rc)) {
        const cJSON *rt = cJSON_GetObjectItemCaseSensitive(rc, "reasoningText");
        if ((s = lc_accum_str(rt, "text")))
          lc_accum_reasoning(&a, s, strlen(s));
        if (!state)
          state = cJSON_CreateArray();
        cJSON_AddItemToArray(state, cJSON_Duplicate(b, 1)); /* verbatim */
      }
      i++;
    }
    stop_reason(&a, lc_accum_str(root, "stopReason"));
    usage(&a, cJSON_GetObjectItemCaseSensitive(root, "usage"));
  }
  cJSON_Delete(root);
  int rc = lc_accum_build(&a, out);
  lc_accum_free(&a);
  rc = set_state(out, rc, state);
  cJSON_Delete(state);
  return rc;
}

/* ---- streaming ---- */

/* One reasoning block of a stream, joined from its deltas in buffers
 * (appending to a cJSON string copied the whole text per delta: a stream
 * of many small deltas was quadratic). */
struct br_think {
  int index;
  int redacted; /* its first delta was redactedContent: no reasoningText */
  int has_text, has_sig, has_red;
  struct lc_buf text, sig, red;
};

/* Blocks are found by a linear search per delta: bounded, never quadratic. */
#define BR_MAX_THINK 1024

struct es_state {
  struct lc_es es;
  int stopped;  /* messageStop */
  int metadata; /* metadata (usage): the last event */
  struct br_think *blocks; /* the reasoning blocks, in the order they began */
  size_t n_blocks;
};

static void es_state_free(void *p) {
  struct es_state *s = p;
  lc_es_free(&s->es);
  for (size_t i = 0; i < s->n_blocks; i++) {
    lc_buf_free(&s->blocks[i].text);
    lc_buf_free(&s->blocks[i].sig);
    lc_buf_free(&s->blocks[i].red);
  }
  lc_free(s->blocks);
  lc_free(s);
}

/* Reasoning block ix, made when new; NULL past the cap or out of memory. */
static struct br_think *reasoning_block(struct es_state *s, int ix, int redacted) {
  for (size_t i = 0; i < s->n_blocks; i++)
    if (s->blocks[i].index == ix)
      return &s->blocks[i];
  if (s->n_blocks >= BR_MAX_THINK)
    return NULL;
  void *p = lc_realloc(s->blocks, (s->n_blocks + 1) * sizeof *s->blocks);
  if (!p)
    return NULL;
  s->blocks = p;
  struct br_think *t = &s->blocks[s->n_blocks++];
  memset(t, 0, sizeof *t);
  t->index = ix;
  t->redacted = redacted;
  lc_buf_init(&t->text, LC_ACCUM_MAX_TEXT);
  lc_buf_init(&t->sig, LC_ACCUM_MAX_TEXT);
  lc_buf_init(&t->red, LC_ACCUM_MAX_TEXT);
  return t;
}

static int stream_reasoning(struct lc_llm_stream *st, struct es_state *s, int ix,
                            const cJSON *rc) {
  struct lc_llm_accum *a = &st->acc;
  const char *t = lc_accum_str(rc, "text"), *sig = lc_accum_str(rc, "signature");
  const char *red = lc_accum_str(rc, "redactedContent");
  if (!t && !sig && !red)
    return 0;
  struct br_think *b = reasoning_block(s, ix, red != NULL);
  if (!b)
    return lc_accum_fail(a, LC_LLM_EBADRESP, NULL, "%s",
                         s->n_blocks >= BR_MAX_THINK ? "more than 1024 reasoning blocks"
                                                     : "out of memory");
  if ((t || sig) && b->redacted)
    return lc_accum_fail(a, LC_LLM_EBADRESP, NULL,
                         "reasoning block %d: text after redacted content", ix);
  int rc2 = 0;
  if (t && !(rc2 = lc_buf_puts(&b->text, t)))
    b->has_text = 1;
  if (!rc2 && sig && !(rc2 = lc_buf_puts(&b->sig, sig)))
    b->has_sig = 1;
  if (!rc2 && red && !(rc2 = lc_buf_puts(&b->red, red)))
    b->has_red = 1;
  if (rc2)
    return lc_accum_fail(a, LC_LLM_EBADRESP, NULL, "reasoning block %d: %s", ix,
                         rc2 == LC_ETOOBIG ? "over the size limit" : "out of memory");
  return t ? lc_accum_reasoning(a, t, strlen(t)) : 0;
}

/* The streamed blocks as Converse takes them back (no index), or NULL. */
static cJSON *stream_state(const struct es_state *s) {
  if (!s->n_blocks)
    return NULL;
  cJSON *arr = cJSON_CreateArray();
  for (size_t i = 0; arr && i < s->n_blocks; i++) {
    const struct br_think *t = &s->blocks[i];
    cJSON *b = cJSON_CreateObject();
    if (!b || !cJSON_AddItemToArray(arr, b)) {
      cJSON_Delete(b);
      cJSON_Delete(arr);
      return NULL;
    }
    cJSON *rc = cJSON_AddObjectToObject(b, "reasoningContent");
    cJSON *rt = rc && !t->redacted ? cJSON_AddObjectToObject(rc, "reasoningText") : NULL;
    int ok = rc && (t->redacted || rt);
    if (ok && t->has_text)
      ok = cJSON_AddStringToObject(rt, "text", t->text.data ? t->text.data : "") != NULL;
    if (ok && t->has_sig)
      ok = cJSON_AddStringToObject(rt, "signature", t->sig.data ? t->sig.data : "") != NULL;
    if (ok && t->has_red)
      ok = cJSON_AddStringToObject(rc, "redactedContent", t->red.data ? t->red.data : "") != NULL;
    if (!ok) {
      cJSON_Delete(arr);
      return NULL;
    }
  }
  return arr;
}

static int stream_event(struct lc_llm_stream *st, struct es_state *s,
                        const char *ev, size_t evn, const cJSON *root) {
  struct lc_llm_accum *a = &st->acc;
#define IS(x) (evn == sizeof(x) - 1 && memcmp(ev, x, evn) == 0)
  int ix = (int)lc_accum_long(root, "contentBlockIndex", 0);
  if (IS("contentBlockStart")) {
    const cJSON *tu = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(root, "start"), "toolUse");
    if (cJSON_IsObject(tu))
      return lc_accum_tool_start(a, ix, lc_accum_str(tu, "toolUseId"),
                                 lc_accum_str(tu, "name"));
    return 0;
  }
  if (IS("contentBlockDelta")) {
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(root, "delta");
    const cJSON *tu = cJSON_GetObjectItemCaseSensitive(d, "toolUse");
    const cJSON *rc = cJSON_GetObjectItemCaseSensitive(d, "reasoningContent");
    const char *t;
    if ((t = lc_accum_str(d, "text")))
      return lc_accum_text(a, t, strlen(t));
    if (cJSON_IsObject(tu)) {
      if (!lc_accum_call_by_key(a, ix))
        return lc_accum_fail(a, LC_LLM_EBADRESP, NULL,
                             "toolUse delta for block %d, which is not a toolUse", ix);
      t = lc_accum_str(tu, "input");
      return t ? lc_accum_tool_args(a, ix, t, strlen(t)) : 0;
    }
    if (cJSON_IsObject(rc))
      return stream_reasoning(st, s, ix, rc);
    return 0; /* citations: nothing kept */
  }
  if (IS("messageStop")) {
    s->stopped = 1;
    stop_reason(a, lc_accum_str(root, "stopReason"));
    return 0;
  }
  if (IS("metadata")) {
    s->metadata = 1;
    usage(a, cJSON_GetObjectItemCaseSensitive(root, "usage"));
    return 0;
  }
  return 0; /* messageStart, contentBlockStop, future events */
#undef IS
}

static int on_message(void *ud, const struct lc_es_msg *m) {
  struct lc_llm_stream *st = ud;
  struct es_state *s = st->ext;
  struct lc_llm_accum *a = &st->acc;
  size_t mtn, evn, xn;
  const char *mt = lc_es_header_str(m, ":message-type", &mtn);
  const char *ev = lc_es_header_str(m, ":event-type", &evn);
  const char *xt = lc_es_header_str(m, ":exception-type", &xn);
  char e[96];
  cJSON *root = m->payload_len ? lc_json_parse(m->payload, m->payload_len, e, sizeof e)
                               : cJSON_CreateObject();
  int rc = 0;
  if (mt && mtn == 9 && memcmp(mt, "exception", 9) == 0) {
    const char *msg = lc_accum_str(root, "message");
    if (!msg)
      msg = lc_accum_str(root, "Message");
    char type[96];
    snprintf(type, sizeof type, "%.*s", (int)(xn < 90 ? xn : 90), xt ? xt : "");
    /* Upper-case first letter: the header's spelling of the same name. */
    if (type[0] >= 'a' && type[0] <= 'z')
      type[0] = (char)(type[0] - 'a' + 'A');
    rc = lc_accum_fail(a, kind_for(type, strlen(type), msg, LC_LLM_ESERVER),
                       type[0] ? type : NULL, "%s",
                       msg ? msg : "exception in the event stream");
  } else if (mt && mtn == 5 && memcmp(mt, "error", 5) == 0) {
    size_t cn, en;
    const char *code = lc_es_header_str(m, ":error-code", &cn);
    const char *emsg = lc_es_header_str(m, ":error-message", &en);
    char type[96];
    snprintf(type, sizeof type, "%.*s", (int)(cn < 90 ? cn : 90), code ? code : "");
    rc = lc_accum_fail(a, kind_for(type, strlen(type), NULL, LC_LLM_ESERVER),
                       type[0] ? type : NULL, "%.*s", (int)(en < 400 ? en : 400),
                       emsg ? emsg : "error in the event stream");
  } else if (!root || !cJSON_IsObject(root)) {
    rc = lc_accum_fail(a, LC_LLM_EBADRESP, NULL, "malformed event-stream payload: %s",
                       root ? "not an object" : e);
  } else if (!ev) {
    rc = lc_accum_fail(a, LC_LLM_EBADRESP, NULL, "event-stream message without :event-type");
  } else {
    rc = stream_event(st, s, ev, evn, root);
  }
  cJSON_Delete(root);
  return rc ? LC_EINVAL : 0;
}

static struct lc_llm_stream *stream_new(void) {
  struct lc_llm_stream *st = lc_accum_stream_new();
  struct es_state *s = st ? lc_calloc(1, sizeof *s) : NULL;
  if (!s) {
    lc_accum_stream_free(st);
    return NULL;
  }
  lc_es_init(&s->es, LC_STREAM_MAX_EVENT);
  st->ext = s;
  st->ext_free = es_state_free;
  return st;
}

static int stream_feed(struct lc_llm_stream *st, const char *data, size_t len,
                       lc_llm_delta_fn cb, void *ud) {
  struct es_state *s = st->ext;
  if (st->acc.err)
    return LC_EINVAL;
  lc_accum_set_cb(&st->acc, cb, ud);
  int rc = lc_es_feed(&s->es, data, len, on_message, st);
  if (rc && s->es.failed)
    lc_accum_fail(&st->acc, LC_LLM_EBADRESP, NULL, "%s", s->es.err);
  else if (rc && !st->acc.err)
    lc_accum_fail(&st->acc, LC_LLM_EBADRESP, NULL, "event-stream decoding failed");
  return st->acc.err ? LC_EINVAL : 0;
}

static int stream_end(struct lc_llm_stream *st, struct lc_llm_response *out) {
  struct es_state *s = st->ext;
  if (lc_es_end(&s->es))
    lc_accum_fail(&st->acc, LC_LLM_EBADRESP, NULL,
                  "event stream cut inside a message (cut short)");
  /* messageStop, then metadata with the usage: both or it was cut. */
  st->done = s->stopped && s->metadata;
  int rc = lc_accum_stream_end(st, out, "messageStop and metadata");
  cJSON *state = rc ? NULL : stream_state(s);
  if (!rc && s->n_blocks && !state) {
    lc_llm_response_free(out);
    out->err = LC_LLM_EBADRESP;
    out->err_message = lc_strdup("out of memory");
    return LC_EINVAL;
  }
  rc = set_state(out, rc, state);
  cJSON_Delete(state);
  return rc;
}

const struct lc_llm_adapter lc_llm_bedrock = {
    .name = "bedrock",
    /* build() fills in AWS_REGION (or AWS_DEFAULT_REGION). */
    .default_base_url = "https://bedrock-runtime." REGION_MARK ".amazonaws.com",
    .base_url_env = "AWS_ENDPOINT_URL_BEDROCK_RUNTIME",
    .api_key_env = NULL, /* SigV4 or AWS_BEARER_TOKEN_BEDROCK: see auth() */
    .build = build,
    .parse = parse,
    .parse_error = parse_error,
    .stream_new = stream_new,
    .stream_feed = stream_feed,
    .stream_end = stream_end,
    .stream_free = lc_accum_stream_free,
};
