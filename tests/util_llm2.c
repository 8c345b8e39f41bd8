/* util_llm2.c: the shared/fixtures/llm2 recordings that luact's
 * Responses, OpenAI chat, Anthropic and DeepSeek paths cover, for the
 * conformance_llm2 suites: listing, loading, the recorded request turned
 * into a normalised one, the request shape, and the answer checks. */
#include "util_llm2.h"

#include <check.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "lc.h"
#include "util_common.h"
#include "util_conformance.h"

const char *l2_fx_dir(void) {
  static char buf[4096];
  const char *env = getenv("LUACT_FIXTURES2");
  if (env && *env) return env;
  snprintf(buf, sizeof buf, "%s/../shared/fixtures/llm2", LC_SOURCE_DIR);
  return buf;
}

static const char *const prefixes[] = {"responses-", "deepseek-responses-",
                                       "openai-chat-image-", "anthropic-image-"};

char *l2_ids[64];
int l2_n_ids;

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

void l2_list_ids(void) {
  if (l2_n_ids) return;
  DIR *d = opendir(l2_fx_dir());
  if (!d) return;
  struct dirent *e;
  while ((e = readdir(d)) && l2_n_ids < 64) {
    size_t n = strlen(e->d_name);
    if (n <= 5 || strcmp(e->d_name + n - 5, ".json") != 0) continue;
    for (size_t k = 0; k < LC_ARRAY_LEN(prefixes); k++)
      if (strncmp(e->d_name, prefixes[k], strlen(prefixes[k])) == 0) {
        l2_ids[l2_n_ids++] = strndup(e->d_name, n - 5);
        break;
      }
  }
  closedir(d);
  qsort(l2_ids, (size_t)l2_n_ids, sizeof *l2_ids, cmp_str);
}

cJSON *l2_load_fx(const char *id) {
  char path[8192];
  snprintf(path, sizeof path, "%s/%s.json", l2_fx_dir(), id);
  return lc_conf_load_json(path);
}

cJSON *l2_load_exp(void) {
  char path[4096];
  snprintf(path, sizeof path, "%s/tests/conformance/expected_llm2.json", LC_SOURCE_DIR);
  return lc_conf_load_json(path);
}

enum lc_llm_provider l2_prov_of(const cJSON *fx) {
  const char *p = lc_conf_jstr(fx, "provider");
  if (strcmp(p, "anthropic") == 0) return LC_PROV_ANTHROPIC;
  if (strcmp(p, "openai") == 0) return LC_PROV_OPENAI;
  return LC_PROV_OPENAI_RESPONSES; /* openai-responses, DeepSeek's clone */
}

/* ---- recorded request -> normalised request ---- */

static char *dup(const char *s) { return lc_strdup(s ? s : ""); }

static struct lc_llm_msg *add_msg(struct lc_llm_request *q, enum lc_llm_role role) {
  q->msgs = lc_realloc(q->msgs, (q->n_msgs + 1) * sizeof *q->msgs);
  ck_assert_ptr_nonnull(q->msgs);
  struct lc_llm_msg *m = &q->msgs[q->n_msgs++];
  memset(m, 0, sizeof *m);
  m->role = role;
  return m;
}

static struct lc_llm_part *add_part(struct lc_llm_msg *m) {
  m->parts = lc_realloc(m->parts, (m->n_parts + 1) * sizeof *m->parts);
  ck_assert_ptr_nonnull(m->parts);
  return &m->parts[m->n_parts++];
}

/* A recorded image reference: a URL, a data: URL or bare base64 whose long
 * tail the fixture trimmed ("...[TRIMMED: n more chars ...]"): what is left
 * is cut to whole base64 quads, which still start with the PNG magic. */
static void image_part(struct lc_llm_msg *m, const char *url, const char *b64,
                       const char *mt) {
  struct lc_llm_part *p = add_part(m);
  char err[200];
  if (url && strncmp(url, "data:", 5) != 0) {
    ck_assert_msg(lc_llm_part_image_url(p, url, err, sizeof err) == 0, "%s", err);
    return;
  }
  struct lc_buf b;
  lc_buf_init(&b, 0);
  if (url) {
    const char *c = strchr(url, ',');
    ck_assert_ptr_nonnull(c);
    lc_buf_append(&b, url, (size_t)(c + 1 - url));
    b64 = c + 1;
  } else {
    lc_buf_printf(&b, "data:%s;base64,", mt);
  }
  const char *t = strstr(b64, "...[TRIMMED");
  size_t n = t ? (size_t)(t - b64) : strlen(b64);
  n -= n % 4;
  lc_buf_append(&b, b64, n);
  ck_assert_msg(lc_llm_part_image_data_url(p, b.data, b.len, err, sizeof err) == 0,
                "%s", err);
  lc_buf_free(&b);
}

static void text_or_parts(struct lc_llm_msg *m, const cJSON *content) {
  if (cJSON_IsString(content)) {
    m->content = dup(content->valuestring);
    m->content_len = strlen(m->content);
    return;
  }
  const cJSON *p;
  int first = 1;
  cJSON_ArrayForEach(p, content) {
    const char *type = lc_conf_jstr(p, "type");
    const char *text = lc_conf_jstr(p, "text");
    if (text && first) { /* the leading text is the message's content */
      m->content = dup(text);
      m->content_len = strlen(text);
    } else if (text) {
      ck_assert_int_eq(lc_llm_part_text(add_part(m), text, strlen(text)), 0);
    } else if (strcmp(type, "input_image") == 0) {
      image_part(m, lc_conf_jstr(p, "image_url"), NULL, NULL);
      snprintf(m->parts[m->n_parts - 1].detail, 8, "%s",
               lc_conf_jstr(p, "detail") ? lc_conf_jstr(p, "detail") : "");
    } else if (strcmp(type, "image_url") == 0) {
      const cJSON *iu = cJSON_GetObjectItem(p, "image_url");
      image_part(m, lc_conf_jstr(iu, "url"), NULL, NULL);
      snprintf(m->parts[m->n_parts - 1].detail, 8, "%s",
               lc_conf_jstr(iu, "detail") ? lc_conf_jstr(iu, "detail") : "");
    } else if (strcmp(type, "image") == 0) {
      const cJSON *src = cJSON_GetObjectItem(p, "source");
      if (strcmp(lc_conf_jstr(src, "type"), "url") == 0)
        image_part(m, lc_conf_jstr(src, "url"), NULL, NULL);
      else
        image_part(m, NULL, lc_conf_jstr(src, "data"), lc_conf_jstr(src, "media_type"));
    } else {
      ck_abort_msg("content part %s", type);
    }
    first = 0;
  }
}

static void add_tools(struct lc_llm_request *q, const cJSON *tools) {
  int n = cJSON_GetArraySize(tools);
  if (!n) return;
  q->tools = lc_calloc((size_t)n, sizeof *q->tools);
  const cJSON *t;
  cJSON_ArrayForEach(t, tools) {
    struct lc_llm_tool *d = &q->tools[q->n_tools++];
    const cJSON *fn = cJSON_GetObjectItem(t, "function");
    if (!fn) fn = t; /* Responses tools are flat */
    d->name = dup(lc_conf_jstr(fn, "name"));
    d->description = dup(lc_conf_jstr(fn, "description"));
    d->schema = cJSON_Duplicate(cJSON_GetObjectItem(fn, "parameters"), 1);
    d->strict = cJSON_IsTrue(cJSON_GetObjectItem(fn, "strict"));
  }
}

struct lc_llm_request *l2_request_of(const cJSON *fx, enum lc_llm_provider prov) {
  const cJSON *b = cJSON_GetObjectItem(cJSON_GetObjectItem(fx, "request"), "body");
  struct lc_llm_request *q = lc_calloc(1, sizeof *q);
  q->provider = prov;
  q->model = dup(lc_conf_jstr(b, "model"));
  q->api_key = dup("test-key");
  q->stream = cJSON_IsTrue(cJSON_GetObjectItem(b, "stream"));
  const cJSON *v;
  if ((v = cJSON_GetObjectItem(b, "temperature"))) {
    q->set |= LC_SET_TEMPERATURE;
    q->temperature = v->valuedouble;
  }
  if ((v = cJSON_GetObjectItem(b, "max_output_tokens")) ||
      (prov == LC_PROV_ANTHROPIC && (v = cJSON_GetObjectItem(b, "max_tokens")))) {
    q->set |= LC_SET_MAX_TOKENS;
    q->max_tokens = v->valueint;
  }
  if ((v = cJSON_GetObjectItem(b, "reasoning"))) {
    if (lc_conf_jstr(v, "effort")) q->reasoning_effort = dup(lc_conf_jstr(v, "effort"));
    if (lc_conf_jstr(v, "summary")) q->reasoning_summary = dup(lc_conf_jstr(v, "summary"));
  }
  if (cJSON_IsTrue(cJSON_GetObjectItem(b, "store"))) q->store = 1;
  const cJSON *fmt = cJSON_GetObjectItem(cJSON_GetObjectItem(b, "text"), "format");
  if (fmt && strcmp(lc_conf_jstr(fmt, "type"), "json_schema") == 0) {
    q->format = LC_FORMAT_JSON_SCHEMA;
    q->response_schema = cJSON_Duplicate(cJSON_GetObjectItem(fmt, "schema"), 1);
    q->response_schema_name = dup(lc_conf_jstr(fmt, "name"));
  }
  add_tools(q, cJSON_GetObjectItem(b, "tools"));
  if (lc_conf_jstr(b, "instructions")) {
    struct lc_llm_msg *m = add_msg(q, LC_ROLE_SYSTEM);
    m->content = dup(lc_conf_jstr(b, "instructions"));
    m->content_len = strlen(m->content);
  }
  const cJSON *items = cJSON_GetObjectItem(b, prov == LC_PROV_OPENAI_RESPONSES ? "input" : "messages");
  if (cJSON_IsString(items)) {
    struct lc_llm_msg *m = add_msg(q, LC_ROLE_USER);
    m->content = dup(items->valuestring);
    m->content_len = strlen(m->content);
    return q;
  }
  const cJSON *it;
  cJSON_ArrayForEach(it, items) {
    const char *type = lc_conf_jstr(it, "type");
    const char *role = lc_conf_jstr(it, "role");
    if (type && strcmp(type, "function_call") == 0) {
      struct lc_llm_msg *m = q->n_msgs ? &q->msgs[q->n_msgs - 1] : NULL;
      if (!m || m->role != LC_ROLE_ASSISTANT || m->content)
        m = add_msg(q, LC_ROLE_ASSISTANT);
      m->tool_calls = lc_realloc(m->tool_calls, (m->n_tool_calls + 1) * sizeof *m->tool_calls);
      struct lc_llm_tool_call *c = &m->tool_calls[m->n_tool_calls++];
      memset(c, 0, sizeof *c);
      c->id = dup(lc_conf_jstr(it, "call_id"));
      c->name = dup(lc_conf_jstr(it, "name"));
      c->args_json = dup(lc_conf_jstr(it, "arguments"));
      if (lc_conf_jstr(it, "id")) c->signature = dup(lc_conf_jstr(it, "id"));
    } else if (type && strcmp(type, "function_call_output") == 0) {
      struct lc_llm_msg *m = add_msg(q, LC_ROLE_TOOL);
      m->tool_call_id = dup(lc_conf_jstr(it, "call_id"));
      m->content = dup(lc_conf_jstr(it, "output"));
      m->content_len = strlen(m->content);
    } else {
      ck_assert_ptr_nonnull(role);
      enum lc_llm_role r = strcmp(role, "user") == 0        ? LC_ROLE_USER
                           : strcmp(role, "assistant") == 0 ? LC_ROLE_ASSISTANT
                                                            : LC_ROLE_SYSTEM;
      text_or_parts(add_msg(q, r), cJSON_GetObjectItem(it, "content"));
    }
  }
  return q;
}

/* ---- shape ---- */

/* One line per item: kind/role, then each content part's type; images by
 * their form (url, data:<media type>, base64 source) and the first bytes
 * of the payload; calls by call_id and name; outputs by call_id. */
static void shape_items(struct lc_buf *o, const cJSON *items) {
  const cJSON *it;
  cJSON_ArrayForEach(it, items) {
    const char *type = lc_conf_jstr(it, "type");
    const char *role = lc_conf_jstr(it, "role");
    /* "developer" is what some SDKs call the system role. */
    if (role && strcmp(role, "developer") == 0) role = "system";
    lc_buf_printf(o, "%s/%s", type && strcmp(type, "message") ? type : "msg", role ? role : "-");
    if (type && strcmp(type, "function_call") == 0)
      lc_buf_printf(o, " %s %s %s", lc_conf_jstr(it, "call_id"), lc_conf_jstr(it, "name"),
                    lc_conf_jstr(it, "arguments"));
    if (type && strcmp(type, "function_call_output") == 0)
      lc_buf_printf(o, " %s", lc_conf_jstr(it, "call_id"));
    const cJSON *c = cJSON_GetObjectItem(it, "content");
    /* A string content is one text part. */
    if (cJSON_IsString(c)) lc_buf_printf(o, " text");
    const cJSON *p;
    cJSON_ArrayForEach(p, (cJSON_IsArray(c) ? c : NULL)) {
      const char *pt = lc_conf_jstr(p, "type");
      const char *url = lc_conf_jstr(p, "image_url");
      if (!url) url = lc_conf_jstr(cJSON_GetObjectItem(p, "image_url"), "url");
      const cJSON *src = cJSON_GetObjectItem(p, "source");
      if (src && lc_conf_jstr(src, "url")) url = lc_conf_jstr(src, "url");
      if (pt && (strcmp(pt, "input_text") == 0 || strcmp(pt, "output_text") == 0)) pt = "text";
      lc_buf_printf(o, " %s", pt);
      if (url) lc_buf_printf(o, "(%.60s)", url);
      if (src && lc_conf_jstr(src, "data"))
        lc_buf_printf(o, "(%s %.60s)", lc_conf_jstr(src, "media_type"), lc_conf_jstr(src, "data"));
    }
    lc_buf_puts(o, "\n");
  }
}

static char *shape(const cJSON *body, enum lc_llm_provider prov) {
  struct lc_buf o;
  lc_buf_init(&o, 0);
  const char *ins = lc_conf_jstr(body, "instructions");
  /* instructions and a leading system (developer) item say the same */
  if (ins) lc_buf_printf(&o, "msg/system text\n");
  shape_items(&o, cJSON_GetObjectItem(body, prov == LC_PROV_OPENAI_RESPONSES ? "input" : "messages"));
  const cJSON *t;
  cJSON_ArrayForEach(t, cJSON_GetObjectItem(body, "tools")) {
    const cJSON *fn = cJSON_GetObjectItem(t, "function");
    if (!fn) fn = t;
    char *ps = cJSON_PrintUnformatted(cJSON_GetObjectItem(fn, "parameters"));
    lc_buf_printf(&o, "tool %s %s strict=%d %s\n", lc_conf_jstr(t, "type"), lc_conf_jstr(fn, "name"),
                  cJSON_IsTrue(cJSON_GetObjectItem(fn, "strict")), ps);
    free(ps);
  }
  const cJSON *fmt = cJSON_GetObjectItem(cJSON_GetObjectItem(body, "text"), "format");
  if (fmt) {
    char *ss = cJSON_PrintUnformatted(cJSON_GetObjectItem(fmt, "schema"));
    lc_buf_printf(&o, "format %s %s %s\n", lc_conf_jstr(fmt, "type"), lc_conf_jstr(fmt, "name"), ss ? ss : "-");
    free(ss);
  }
  const cJSON *r = cJSON_GetObjectItem(body, "reasoning");
  if (r) lc_buf_printf(&o, "reasoning %s %s\n", lc_conf_jstr(r, "effort"), lc_conf_jstr(r, "summary"));
  const cJSON *v;
  if ((v = cJSON_GetObjectItem(body, "temperature"))) lc_buf_printf(&o, "temperature %g\n", v->valuedouble);
  if ((v = cJSON_GetObjectItem(body, "max_output_tokens"))) lc_buf_printf(&o, "max_output_tokens %d\n", v->valueint);
  if ((v = cJSON_GetObjectItem(body, "max_tokens"))) lc_buf_printf(&o, "max_tokens %d\n", v->valueint);
  lc_buf_printf(&o, "model %s stream %d\n", lc_conf_jstr(body, "model"),
                cJSON_IsTrue(cJSON_GetObjectItem(body, "stream")));
  return lc_buf_steal(&o, NULL);
}

void l2_check_shape(const char *id, const cJSON *fx, enum lc_llm_provider prov,
                        const char *built, size_t len) {
  const cJSON *rec = cJSON_GetObjectItem(cJSON_GetObjectItem(fx, "request"), "body");
  cJSON *b = cJSON_ParseWithLength(built, len);
  ck_assert_msg(b != NULL, "%s: built body is not JSON", id);
  char *want = shape(rec, prov), *got = shape(b, prov);
  ck_assert_msg(strcmp(want, got) == 0, "%s: request shape\n--- built:\n%s--- recorded:\n%s", id,
                got, want);
  if (prov == LC_PROV_OPENAI_RESPONSES) {
    /* Stateless unless asked; encrypted reasoning asked for exactly when
     * reasoning settings are sent without store (the recorded request did
     * so where it set reasoning and was stateless or asked itself). */
    int store = cJSON_IsTrue(cJSON_GetObjectItem(rec, "store"));
    ck_assert_int_eq(cJSON_IsTrue(cJSON_GetObjectItem(b, "store")), store);
    const cJSON *inc = cJSON_GetObjectItem(b, "include");
    ck_assert_int_eq(inc != NULL, cJSON_GetObjectItem(rec, "reasoning") && !store);
  }
  lc_free(want);
  lc_free(got);
  cJSON_Delete(b);
}


void l2_check_answer(const char *id, const struct lc_llm_response *r, const cJSON *exp) {
  lc_conf_check_answer(id, r, exp);
  const cJSON *u = cJSON_GetObjectItem(exp, "usage");
  ck_assert_int_eq(r->usage.reasoning, cJSON_GetObjectItem(u, "reasoning")->valueint);
  const cJSON *rs = cJSON_GetObjectItem(exp, "reasoning_state_items");
  if (rs) {
    int n = 0;
    if (r->reasoning_state) {
      cJSON *a = cJSON_Parse(r->reasoning_state);
      ck_assert_msg(cJSON_IsArray(a), "%s: reasoning_state %s", id, r->reasoning_state);
      n = cJSON_GetArraySize(a);
      const cJSON *it;
      /* replayable: its encrypted form, or (a stored response) its id */
      cJSON_ArrayForEach(it, a) ck_assert(cJSON_GetObjectItem(it, "encrypted_content") ||
                                          cJSON_IsString(cJSON_GetObjectItem(it, "id")));
      cJSON_Delete(a);
    }
    ck_assert_int_eq(n, rs->valueint);
  }
}
