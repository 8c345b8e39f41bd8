/* effect_llm.c: LLM calls as journal effects: the normalised request and
 * response as JSON (never the API key, auth headers or base URL), the
 * prompt and tool-schema hashes, and the streamed deltas. */
#include <stdlib.h>
#include <string.h>

#include "effect.h"
#include "jcanon.h"
#include "sha256.h"
#include "lc.h"

static const char *provider_name(enum lc_llm_provider p) {
  const struct lc_llm_adapter *ad = lc_llm_adapter_for(p);
  return ad ? ad->name : "unknown";
}

static cJSON *tool_call_json(const struct lc_llm_tool_call *c) {
  cJSON *o = cJSON_CreateObject();
  if (!o) return NULL;
  if (c->id) cJSON_AddStringToObject(o, "id", c->id);
  if (c->name) cJSON_AddStringToObject(o, "name", c->name);
  /* Parsed when possible: the text a script re-encodes from a table may
   * order keys differently, the value does not change. */
  if (c->args) cJSON_AddItemToObject(o, "arguments", cJSON_Duplicate(c->args, 1));
  else if (c->args_json) cJSON_AddStringToObject(o, "arguments", c->args_json);
  /* Part of what is sent (Gemini's thoughtSignature); absent when none,
   * so the identity of calls without one is unchanged. */
  if (c->signature) cJSON_AddStringToObject(o, "signature", c->signature);
  return o;
}

static cJSON *messages_json(const struct lc_llm_request *r) {
  cJSON *a = cJSON_CreateArray();
  for (size_t i = 0; a && i < r->n_msgs; i++) {
    const struct lc_llm_msg *m = &r->msgs[i];
    cJSON *o = cJSON_CreateObject();
    if (!o || !cJSON_AddItemToArray(a, o)) {
      cJSON_Delete(o);
      cJSON_Delete(a);
      return NULL;
    }
    cJSON_AddStringToObject(o, "role", lc_llm_role_name(m->role));
    if (m->content) lc_effect_add_bytes(o, "content", m->content, m->content_len);
    if (m->n_parts) {
      /* Images by content hash, never inline: the journal stays small and
       * the request's hash still changes when an image does. */
      cJSON *pa = cJSON_AddArrayToObject(o, "parts");
      for (size_t k = 0; pa && k < m->n_parts; k++) {
        const struct lc_llm_part *p = &m->parts[k];
        cJSON *po = cJSON_CreateObject();
        if (!po || !cJSON_AddItemToArray(pa, po)) {
          cJSON_Delete(po);
          break;
        }
        if (p->kind == LC_PART_TEXT) {
          cJSON_AddStringToObject(po, "type", "text");
          lc_effect_add_bytes(po, "text", p->text ? p->text : "", p->text_len);
          continue;
        }
        cJSON_AddStringToObject(po, "type", "image");
        cJSON_AddStringToObject(po, "sha256", p->sha256);
        if (p->media_type[0]) cJSON_AddStringToObject(po, "media_type", p->media_type);
        if (p->url) cJSON_AddStringToObject(po, "source", "url");
        else cJSON_AddNumberToObject(po, "bytes", (double)p->data_len);
        if (p->detail[0]) cJSON_AddStringToObject(po, "detail", p->detail);
      }
    }
    if (m->reasoning_state) cJSON_AddStringToObject(o, "reasoning_state", m->reasoning_state);
    if (m->n_tool_calls) {
      cJSON *tc = cJSON_AddArrayToObject(o, "tool_calls");
      for (size_t k = 0; tc && k < m->n_tool_calls; k++)
        cJSON_AddItemToArray(tc, tool_call_json(&m->tool_calls[k]));
    }
    if (m->tool_call_id) cJSON_AddStringToObject(o, "tool_call_id", m->tool_call_id);
    if (m->name) cJSON_AddStringToObject(o, "name", m->name);
    if (m->is_error) cJSON_AddBoolToObject(o, "is_error", 1);
  }
  return a;
}

static cJSON *tools_json(const struct lc_llm_request *r) {
  cJSON *a = cJSON_CreateArray();
  for (size_t i = 0; a && i < r->n_tools; i++) {
    const struct lc_llm_tool *t = &r->tools[i];
    cJSON *o = cJSON_CreateObject();
    if (!o || !cJSON_AddItemToArray(a, o)) {
      cJSON_Delete(o);
      cJSON_Delete(a);
      return NULL;
    }
    cJSON_AddStringToObject(o, "name", t->name ? t->name : "");
    if (t->description) cJSON_AddStringToObject(o, "description", t->description);
    if (t->schema) cJSON_AddItemToObject(o, "parameters", cJSON_Duplicate(t->schema, 1));
    if (t->strict) cJSON_AddBoolToObject(o, "strict", 1);
  }
  return a;
}

cJSON *lc_effect_llm_request_json(const struct lc_llm_request *r) {
  static const char *const choices[] = {"auto", "none", "required", "named"};
  static const char *const formats[] = {"text", "json", "json_schema"};
  cJSON *o = cJSON_CreateObject();
  if (!o) return NULL;
  cJSON_AddStringToObject(o, "provider", provider_name(r->provider));
  cJSON_AddStringToObject(o, "model", r->model ? r->model : "");
  cJSON *m = messages_json(r);
  if (!m) goto nomem;
  cJSON_AddItemToObject(o, "messages", m);
  if (r->n_tools) {
    cJSON *t = tools_json(r);
    if (!t) goto nomem;
    cJSON_AddItemToObject(o, "tools", t);
  }
  if (r->tool_choice != LC_TOOL_CHOICE_AUTO)
    cJSON_AddStringToObject(o, "tool_choice", choices[r->tool_choice]);
  if (r->tool_choice_name) cJSON_AddStringToObject(o, "tool_choice_name", r->tool_choice_name);
  if (r->set & LC_SET_TEMPERATURE) cJSON_AddNumberToObject(o, "temperature", r->temperature);
  if (r->set & LC_SET_TOP_P) cJSON_AddNumberToObject(o, "top_p", r->top_p);
  if (r->set & LC_SET_TOP_K) cJSON_AddNumberToObject(o, "top_k", r->top_k);
  if (r->set & LC_SET_MAX_TOKENS) cJSON_AddNumberToObject(o, "max_tokens", r->max_tokens);
  if (r->set & LC_SET_SEED) cJSON_AddNumberToObject(o, "seed", (double)r->seed);
  if (r->n_stop) {
    cJSON *s = cJSON_AddArrayToObject(o, "stop");
    for (size_t i = 0; s && i < r->n_stop; i++)
      cJSON_AddItemToArray(s, cJSON_CreateString(r->stop[i]));
  }
  if (r->format != LC_FORMAT_TEXT) cJSON_AddStringToObject(o, "format", formats[r->format]);
  if (r->response_schema)
    cJSON_AddItemToObject(o, "response_schema", cJSON_Duplicate(r->response_schema, 1));
  if (r->response_schema_name)
    cJSON_AddStringToObject(o, "response_schema_name", r->response_schema_name);
  if (r->stream) cJSON_AddBoolToObject(o, "stream", 1);
  if (r->reasoning_effort) cJSON_AddStringToObject(o, "reasoning_effort", r->reasoning_effort);
  if (r->reasoning_summary) cJSON_AddStringToObject(o, "reasoning_summary", r->reasoning_summary);
  if (r->thinking_budget) cJSON_AddNumberToObject(o, "thinking_budget", r->thinking_budget);
  if (r->cache_key) cJSON_AddStringToObject(o, "cache_key", r->cache_key);
  if (r->cache_control) cJSON_AddBoolToObject(o, "cache_control", 1);
  if (r->previous_response_id)
    cJSON_AddStringToObject(o, "previous_response_id", r->previous_response_id);
  if (r->store) cJSON_AddBoolToObject(o, "store", 1);
  /* Deliberately absent: api_key and base_url. */
  return o;
nomem:
  cJSON_Delete(o);
  return NULL;
}

/* lc_jcanon_hash of a tree already in canonical order (the same text:
 * lc_jcanon_print is a sorted copy printed unformatted). */
static int sorted_hash(const cJSON *j, char out[65]) {
  if (!j) return lc_jcanon_hash(j, out);
  char *s = cJSON_PrintUnformatted(j);
  if (!s) return LC_ENOMEM;
  lc_sha256_hex(s, strlen(s), out);
  cJSON_free(s);
  return 0;
}

int lc_effect_llm_begin(const struct lc_effect_src *src, const struct lc_llm_request *r,
                        struct lc_effect_op *e) {
  cJSON *req = lc_effect_llm_request_json(r);
  char name[256], ph[65], th[65];
  int rc = LC_ENOMEM;
  if (!req) {
    lc_journal_fail(src->j, LC_JOURNAL_EIO, "journal: out of memory");
    return LC_ENOMEM;
  }
  snprintf(name, sizeof name, "%s:%s", provider_name(r->provider), r->model ? r->model : "");
  /* The prompt is the messages (system included); the tool version is the
   * declared tools' names, descriptions and schemas. req is ours: sorted
   * once here, it is hashed and journaled as it is (lc_jcanon_hash and
   * lc_effect_begin each copied and sorted it: three copies per call). */
  lc_jcanon_sort(req, 1);
  if (sorted_hash(cJSON_GetObjectItemCaseSensitive(req, "messages"), ph) ||
      (r->n_tools && sorted_hash(cJSON_GetObjectItemCaseSensitive(req, "tools"), th))) {
    cJSON_Delete(req);
    lc_journal_fail(src->j, LC_JOURNAL_EIO, "journal: out of memory");
    return LC_ENOMEM;
  }
  struct lc_effect_who w;
  src->next(src->ud, &w);
  struct lc_effect_desc d = {.kind = "llm", .name = name, .request = req,
                             .cls = LC_EFFECT_PURE, .prompt_hash = ph,
                             .tools_hash = r->n_tools ? th : NULL, .request_sorted = 1};
  rc = lc_effect_begin(src->j, &w, &d, e);
  cJSON_Delete(req);
  return rc;
}

/* ---- response ---- */

static cJSON *usage_json(const struct lc_llm_usage *u) {
  cJSON *o = cJSON_CreateObject();
  if (!o) return NULL;
  cJSON_AddNumberToObject(o, "input", (double)u->input);
  cJSON_AddNumberToObject(o, "output", (double)u->output);
  if (u->cached) cJSON_AddNumberToObject(o, "cached", (double)u->cached);
  if (u->cache_write) cJSON_AddNumberToObject(o, "cache_write", (double)u->cache_write);
  if (u->reasoning) cJSON_AddNumberToObject(o, "reasoning", (double)u->reasoning);
  if (u->has_cost) cJSON_AddNumberToObject(o, "cost", u->cost);
  return o;
}

static void add_str(cJSON *o, const char *k, const char *v) {
  if (v) cJSON_AddStringToObject(o, k, v);
}

int lc_effect_llm_end(struct lc_effect_op *e, const struct lc_llm_response *r, cJSON *deltas) {
  if (!e->recording) {
    cJSON_Delete(deltas);
    return 0;
  }
  cJSON *body = cJSON_CreateObject(), *extra = cJSON_CreateObject();
  if (!body || !extra) goto nomem;
  if (r->err != LC_LLM_OK) {
    cJSON_AddStringToObject(body, "kind", lc_llm_err_name(r->err));
    add_str(body, "message", r->err_message);
    add_str(body, "type", r->err_type);
    if (r->retry_after_s >= 0) cJSON_AddNumberToObject(body, "retry_after_s", r->retry_after_s);
  } else {
    if (r->text) lc_effect_add_bytes(body, "text", r->text, r->text_len);
    add_str(body, "reasoning", r->reasoning);
    if (r->n_tool_calls) {
      cJSON *a = cJSON_AddArrayToObject(body, "tool_calls");
      for (size_t i = 0; a && i < r->n_tool_calls; i++) {
        cJSON *c = cJSON_CreateObject();
        if (!c) goto nomem;
        cJSON_AddItemToArray(a, c);
        add_str(c, "id", r->tool_calls[i].id);
        add_str(c, "name", r->tool_calls[i].name);
        add_str(c, "arguments_json", r->tool_calls[i].args_json);
        /* A replayed turn must send it back as the live one would. */
        add_str(c, "signature", r->tool_calls[i].signature);
      }
    }
    /* What the next turn must send back (encrypted reasoning, thinking
     * signatures): a replayed run sends the same requests. */
    add_str(body, "reasoning_state", r->reasoning_state);
    cJSON_AddStringToObject(body, "finish", lc_llm_finish_name(r->finish));
    add_str(body, "finish_raw", r->finish_raw);
    add_str(body, "model", r->model);
    add_str(body, "id", r->id);
  }
  add_str(body, "request_id", r->request_id);
  cJSON_AddNumberToObject(body, "http_status", r->http_status);
  cJSON_AddNumberToObject(body, "attempts", r->attempts);
  if (deltas) {
    cJSON_AddItemToObject(body, "deltas", deltas);
    deltas = NULL;
  }
  cJSON_AddItemToObject(extra, "usage", usage_json(&r->usage));
  cJSON_AddNumberToObject(extra, "latency_ms", r->latency_ms);
  if (r->err != LC_LLM_OK) return lc_effect_end(e, NULL, body, extra);
  return lc_effect_end(e, body, NULL, extra);
nomem:
  cJSON_Delete(body);
  cJSON_Delete(extra);
  cJSON_Delete(deltas);
  return lc_effect_end(e, NULL, NULL, NULL);
}

static const char *jstr(const cJSON *o, const char *k) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
  return cJSON_IsString(v) ? v->valuestring : NULL;
}

static double jnum(const cJSON *o, const char *k, double dflt) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
  return cJSON_IsNumber(v) ? v->valuedouble : dflt;
}

static int dup_opt(char **dst, const char *s) {
  if (!s) return 0;
  return (*dst = lc_strdup(s)) ? 0 : LC_ENOMEM;
}

int lc_effect_llm_replay(struct lc_effect_op *e, struct lc_llm_response *r) {
  const cJSON *res = lc_effect_result(e), *err = lc_effect_error(e);
  const cJSON *body = res ? res : err;
  if (!cJSON_IsObject(body)) {
    char msg[700];
    snprintf(msg, sizeof msg, "replay: effect %s has no usable recorded answer", e->id);
    lc_journal_fail(e->j, LC_JOURNAL_MISMATCH, msg);
    return LC_EINVAL;
  }
  int rc = 0;
  if (err) {
    const char *kind = jstr(err, "kind");
    r->err = LC_LLM_ESERVER;
    for (int k = 1; kind && k < LC_LLM_E__COUNT; k++)
      if (strcmp(lc_llm_err_name((enum lc_llm_err)k), kind) == 0) r->err = (enum lc_llm_err)k;
    rc |= dup_opt(&r->err_message, jstr(err, "message"));
    rc |= dup_opt(&r->err_type, jstr(err, "type"));
    r->retry_after_s = jnum(err, "retry_after_s", -1);
  } else {
    char *text;
    size_t n;
    int t = lc_effect_get_bytes(res, "text", &text, &n);
    if (t == 0) {
      r->text = text;
      r->text_len = n;
    } else if (t != LC_ENOTFOUND) {
      rc = t;
    }
    rc |= dup_opt(&r->reasoning, jstr(res, "reasoning"));
    rc |= dup_opt(&r->reasoning_state, jstr(res, "reasoning_state"));
    const cJSON *tc = cJSON_GetObjectItemCaseSensitive(res, "tool_calls");
    int ntc = cJSON_IsArray(tc) ? cJSON_GetArraySize(tc) : 0;
    if (ntc > 0 && !(r->tool_calls = lc_calloc((size_t)ntc, sizeof *r->tool_calls)))
      rc = LC_ENOMEM;
    for (const cJSON *c = ntc > 0 ? tc->child : NULL; c && !rc; c = c->next) {
      struct lc_llm_tool_call *d = &r->tool_calls[r->n_tool_calls++];
      const char *aj = jstr(c, "arguments_json");
      rc |= dup_opt(&d->id, jstr(c, "id"));
      rc |= dup_opt(&d->name, jstr(c, "name"));
      rc |= dup_opt(&d->args_json, aj ? aj : "{}");
      rc |= dup_opt(&d->signature, jstr(c, "signature"));
      if (!rc) d->args = cJSON_Parse(d->args_json);
    }
    const char *fin = jstr(res, "finish");
    for (int f = 0; fin && f <= LC_FINISH_OTHER; f++)
      if (strcmp(lc_llm_finish_name((enum lc_llm_finish)f), fin) == 0)
        r->finish = (enum lc_llm_finish)f;
    rc |= dup_opt(&r->finish_raw, jstr(res, "finish_raw"));
    rc |= dup_opt(&r->model, jstr(res, "model"));
    rc |= dup_opt(&r->id, jstr(res, "id"));
  }
  rc |= dup_opt(&r->request_id, jstr(body, "request_id"));
  r->http_status = (int)jnum(body, "http_status", 0);
  r->attempts = (int)jnum(body, "attempts", 1);
  const cJSON *u = lc_effect_member(e, "usage");
  if (u) {
    r->usage.input = (long)jnum(u, "input", 0);
    r->usage.output = (long)jnum(u, "output", 0);
    r->usage.cached = (long)jnum(u, "cached", 0);
    r->usage.cache_write = (long)jnum(u, "cache_write", 0);
    r->usage.reasoning = (long)jnum(u, "reasoning", 0);
    if (cJSON_GetObjectItemCaseSensitive(u, "cost")) {
      r->usage.has_cost = 1;
      r->usage.cost = jnum(u, "cost", 0);
    }
  }
  const cJSON *lat = lc_effect_member(e, "latency_ms");
  r->latency_ms = cJSON_IsNumber(lat) ? lat->valuedouble : 0;
  return rc ? LC_ENOMEM : 0;
}

static const char *const delta_kinds[] = {"text", "reasoning", "tool_call", "tool_arguments"};

int lc_effect_llm_add_delta(cJSON **deltas, const struct lc_llm_delta *d) {
  if (!*deltas && !(*deltas = cJSON_CreateArray())) return LC_ENOMEM;
  cJSON *o = cJSON_CreateObject();
  if (!o || !cJSON_AddItemToArray(*deltas, o)) {
    cJSON_Delete(o);
    return LC_ENOMEM;
  }
  cJSON_AddStringToObject(o, "type", delta_kinds[d->kind]);
  if (d->kind == LC_DELTA_TOOL_START || d->kind == LC_DELTA_TOOL_ARGS || d->index)
    cJSON_AddNumberToObject(o, "index", d->index);
  if (d->id) cJSON_AddStringToObject(o, "id", d->id);
  if (d->name) cJSON_AddStringToObject(o, "name", d->name);
  if (d->text) return lc_effect_add_bytes(o, "text", d->text, d->len);
  return 0;
}

void lc_effect_llm_each_delta(const struct lc_effect_op *e, lc_llm_delta_fn cb, void *ud) {
  const cJSON *res = lc_effect_result(e);
  const cJSON *a = res ? cJSON_GetObjectItemCaseSensitive(res, "deltas") : NULL;
  if (!cJSON_IsArray(a)) return;
  for (const cJSON *o = a->child; o; o = o->next) {
    struct lc_llm_delta d = {0};
    const char *k = jstr(o, "type");
    int kind = -1;
    for (int i = 0; k && i < 4; i++)
      if (strcmp(delta_kinds[i], k) == 0) kind = i;
    if (kind < 0) continue;
    d.kind = (enum lc_llm_delta_kind)kind;
    d.index = (int)jnum(o, "index", 0);
    d.id = jstr(o, "id");
    d.name = jstr(o, "name");
    char *text = NULL;
    size_t n = 0;
    if (lc_effect_get_bytes(o, "text", &text, &n) == 0) {
      d.text = text;
      d.len = n;
    }
    cb(ud, &d);
    lc_free(text);
  }
}
