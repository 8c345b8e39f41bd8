/* actions.c: the allowed action set: declared tools + finish, the gate that
 * checks a model's choice before anything runs. */
#include "actions.h"

#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "lc.h"
#include "schema.h"

static const char *find_string_param(const cJSON *schema) {
  const cJSON *props = cJSON_GetObjectItemCaseSensitive(schema, "properties");
  const cJSON *req = cJSON_GetObjectItemCaseSensitive(schema, "required");
  const char *cand = NULL;
  int nreq = cJSON_IsArray(req) ? cJSON_GetArraySize(req) : 0;
  if (nreq == 1 && cJSON_IsString(req->child))
    cand = req->child->valuestring;
  else if (nreq == 0 && cJSON_IsObject(props) && cJSON_GetArraySize(props) == 1)
    cand = props->child->string;
  if (!cand) return NULL;
  const cJSON *p =
      cJSON_IsObject(props) ? cJSON_GetObjectItemCaseSensitive(props, cand) : NULL;
  const cJSON *ty = p ? cJSON_GetObjectItemCaseSensitive(p, "type") : NULL;
  if (ty && !(cJSON_IsString(ty) && strcmp(ty->valuestring, "string") == 0))
    return NULL;
  return cand;
}

/* ---- one action: shared, immutable, counted ---- */

static _Atomic long made, live; /* test hooks */

long lc_action_made(void) { return atomic_load(&made); }
long lc_action_live(void) { return atomic_load(&live); }

int lc_action_new(const char *name, const char *description, cJSON *schema,
                  enum lc_effect effect, struct lc_action **out) {
  *out = NULL;
  if (!schema && !(schema = cJSON_Parse("{\"type\":\"object\",\"properties\":{}}")))
    return LC_ENOMEM;
  struct lc_action *x = lc_calloc(1, sizeof *x);
  if (x) {
    x->name = lc_strdup(name ? name : "");
    x->description = lc_strdup(description ? description : "");
  }
  if (!x || !x->name || !x->description) {
    if (x) {
      lc_free(x->name);
      lc_free(x->description);
      lc_free(x);
    }
    cJSON_Delete(schema);
    return LC_ENOMEM;
  }
  x->schema = schema;
  x->effect = effect;
  x->string_param = find_string_param(schema);
  x->refs = 1;
  atomic_fetch_add(&made, 1);
  atomic_fetch_add(&live, 1);
  *out = x;
  return 0;
}

int lc_action_new_finish(struct lc_action **out) {
  cJSON *schema = cJSON_Parse(
      "{\"type\":\"object\",\"properties\":{\"answer\":{\"type\":\"string\","
      "\"description\":\"the final answer\"}},\"required\":[\"answer\"],"
      "\"additionalProperties\":false}");
  if (!schema) {
    *out = NULL;
    return LC_ENOMEM;
  }
  return lc_action_new("finish", "Give the final answer and end the task.", schema,
                       LC_EFFECT_PURE, out);
}

struct lc_action *lc_action_ref(struct lc_action *x) {
  x->refs++;
  return x;
}

void lc_action_unref(struct lc_action *x) {
  if (!x || --x->refs > 0) return;
  lc_free(x->name);
  lc_free(x->description);
  cJSON_Delete(x->schema);
  lc_schema_free(x->compiled);
  lc_free(x);
  atomic_fetch_sub(&live, 1);
}

int lc_action_compiled(const struct lc_action *x, const struct lc_schema **out,
                       char *err, size_t errlen) {
  if (!x->compiled) {
    struct lc_schema *s = NULL;
    int rc = lc_schema_compile(x->schema, &s, err, errlen);
    if (rc) {
      *out = NULL;
      return rc;
    }
    /* The memo is the one write to a shared action (actions.h). */
    ((struct lc_action *)x)->compiled = s;
  }
  *out = x->compiled;
  return 0;
}

/* ---- the set ---- */

int lc_actions_init(struct lc_actions *a, lc_schema_validate_fn validate,
                    void *validate_ud, struct lc_action *finish) {
  memset(a, 0, sizeof *a);
  a->validate = validate;
  a->validate_ud = validate_ud;
  if (finish) {
    a->finish = lc_action_ref(finish);
    return 0;
  }
  return lc_action_new_finish(&a->finish);
}

void lc_actions_free(struct lc_actions *a) {
  for (size_t i = 0; i < a->n; i++) lc_action_unref(a->v[i]);
  lc_free(a->v);
  lc_action_unref(a->finish);
  a->v = NULL;
  a->finish = NULL;
  a->n = a->cap = 0;
}

static int valid_name(const char *s) {
  size_t n = 0;
  for (; s[n]; n++) {
    char c = s[n];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
          (c >= '0' && c <= '9') || c == '_' || c == '-'))
      return 0;
  }
  return n >= 1 && n <= LC_ACTION_NAME_MAX;
}

/* The rules of a declaration, in the order lc_actions_add has always
 * checked them; schema NULL stands for "no arguments". */
static int check_decl(struct lc_actions *a, const char *name, const cJSON *schema) {
  if (!name || !valid_name(name)) {
    snprintf(a->err, sizeof a->err,
             "action name \"%.64s\" is not 1..64 characters of A-Z a-z 0-9 _ -",
             name ? name : "(null)");
    return LC_EINVAL;
  }
  if (strcasecmp(name, "finish") == 0) {
    snprintf(a->err, sizeof a->err, "\"finish\" is reserved for the answer");
    return LC_EINVAL;
  }
  for (size_t i = 0; i < a->n; i++)
    if (strcasecmp(a->v[i]->name, name) == 0) {
      /* Case-insensitive: lc_actions_find falls back to it. */
      snprintf(a->err, sizeof a->err, "action \"%s\" is declared twice", name);
      return LC_EINVAL;
    }
  const cJSON *ty = cJSON_GetObjectItemCaseSensitive(schema, "type");
  if (schema && !(cJSON_IsObject(schema) && cJSON_IsString(ty) &&
                  strcmp(ty->valuestring, "object") == 0)) {
    snprintf(a->err, sizeof a->err,
             "schema of \"%s\" must be an object schema ({\"type\":\"object\",...})",
             name);
    return LC_EINVAL;
  }
  return 0;
}

/* Appends a reference to x (taken over). */
static int push(struct lc_actions *a, struct lc_action *x) {
  if (a->n == a->cap) {
    size_t cap = a->cap ? a->cap * 2 : 4;
    struct lc_action **v = lc_realloc(a->v, cap * sizeof *v);
    if (!v) {
      lc_action_unref(x);
      snprintf(a->err, sizeof a->err, "out of memory");
      return LC_ENOMEM;
    }
    a->v = v;
    a->cap = cap;
  }
  a->v[a->n++] = x;
  return 0;
}

int lc_actions_add_action(struct lc_actions *a, struct lc_action *x) {
  a->err[0] = '\0';
  int rc = check_decl(a, x->name, x->schema);
  return rc ? rc : push(a, lc_action_ref(x));
}

int lc_actions_add(struct lc_actions *a, const char *name,
                   const char *description, cJSON *schema,
                   enum lc_effect effect) {
  a->err[0] = '\0';
  int rc = check_decl(a, name, schema);
  if (rc) {
    cJSON_Delete(schema);
    return rc;
  }
  struct lc_action *x;
  if (lc_action_new(name, description, schema, effect, &x)) {
    snprintf(a->err, sizeof a->err, "out of memory");
    return LC_ENOMEM;
  }
  return push(a, x);
}

const struct lc_action *lc_actions_find(const struct lc_actions *a,
                                        const char *name) {
  if (!name) return NULL;
  if (strcmp(name, "finish") == 0) return a->finish;
  for (size_t i = 0; i < a->n; i++)
    if (strcmp(a->v[i]->name, name) == 0) return a->v[i];
  if (a->exact) return NULL;
  if (strcasecmp(name, "finish") == 0) return a->finish;
  /* Names are unique ignoring case (lc_actions_add), so this is unique. */
  for (size_t i = 0; i < a->n; i++)
    if (strcasecmp(a->v[i]->name, name) == 0) return a->v[i];
  return NULL;
}

int lc_actions_names(const struct lc_actions *a, const char ***out, size_t *n) {
  const char **v = lc_malloc((a->n + 1) * sizeof *v);
  if (!v) return LC_ENOMEM;
  for (size_t i = 0; i < a->n; i++) v[i] = a->v[i]->name;
  v[a->n] = a->finish->name;
  *out = v;
  *n = a->n + 1;
  return 0;
}

/* Type of one property schema in a few characters. */
static int render_type(const cJSON *p, struct lc_buf *b) {
  const cJSON *en = cJSON_GetObjectItemCaseSensitive(p, "enum");
  if (cJSON_IsArray(en) && en->child) {
    int rc = 0;
    for (const cJSON *x = en->child; x && !rc; x = x->next) {
      char *s = cJSON_PrintUnformatted(x);
      if (!s) return LC_ENOMEM;
      rc = lc_buf_printf(b, "%s%s", x == en->child ? "" : "|", s);
      cJSON_free(s);
    }
    return rc;
  }
  const cJSON *ty = cJSON_GetObjectItemCaseSensitive(p, "type");
  if (cJSON_IsArray(ty)) {
    int rc = 0;
    for (const cJSON *x = ty->child; x && !rc; x = x->next)
      if (cJSON_IsString(x))
        rc = lc_buf_printf(b, "%s%s", x == ty->child ? "" : "|", x->valuestring);
    return rc;
  }
  if (!cJSON_IsString(ty)) return lc_buf_puts(b, "any");
  if (strcmp(ty->valuestring, "array") == 0) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(p, "items");
    if (cJSON_IsObject(it)) {
      int rc = render_type(it, b);
      return rc ? rc : lc_buf_puts(b, "[]");
    }
  }
  return lc_buf_puts(b, ty->valuestring);
}

static int is_required(const cJSON *schema, const char *key) {
  const cJSON *req = cJSON_GetObjectItemCaseSensitive(schema, "required");
  const cJSON *x;
  cJSON_ArrayForEach(x, req) if (cJSON_IsString(x) && strcmp(x->valuestring, key) == 0) return 1;
  return 0;
}

int lc_actions_render_input(const struct lc_action *act, struct lc_buf *out) {
  const cJSON *props = cJSON_GetObjectItemCaseSensitive(act->schema, "properties");
  /* Plain text only when that is all there is; with optional extras the
   * model sees the full object (plain text is still accepted). */
  if (act->string_param && cJSON_GetArraySize(props) <= 1)
    return lc_buf_printf(out, "<%s>", act->string_param);
  int rc = lc_buf_puts(out, "{");
  const cJSON *p;
  int first = 1;
  cJSON_ArrayForEach(p, props) {
    if (rc) break;
    rc = lc_buf_printf(out, "%s\"%s\"%s: ", first ? "" : ", ", p->string,
                       is_required(act->schema, p->string) ? "" : "?");
    if (!rc) rc = render_type(p, out);
    first = 0;
  }
  return rc ? rc : lc_buf_puts(out, "}");
}

int lc_actions_render_params(const struct lc_action *act, struct lc_buf *out) {
  const cJSON *props = cJSON_GetObjectItemCaseSensitive(act->schema, "properties");
  const cJSON *p;
  int rc = 0, first = 1;
  cJSON_ArrayForEach(p, props) {
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(p, "description");
    if (!cJSON_IsString(d) || !*d->valuestring) continue;
    rc = lc_buf_printf(out, "%s%s: %s", first ? "" : "; ", p->string, d->valuestring);
    if (rc) return rc;
    first = 0;
  }
  return rc;
}

static int list_names(const struct lc_actions *a, struct lc_buf *b) {
  int rc = lc_buf_puts(b, "Allowed actions: ");
  for (size_t i = 0; !rc && i < a->n; i++) rc = lc_buf_printf(b, "%s, ", a->v[i]->name);
  return rc ? rc : lc_buf_puts(b, "finish.");
}

static void copy_err(struct lc_buf *b, char *err, size_t errlen) {
  if (!errlen) return;
  snprintf(err, errlen, "%s", b->data ? b->data : "out of memory");
}

int lc_actions_check(const struct lc_actions *a, const char *name,
                     const cJSON *args, const char *text,
                     const struct lc_action **out_action, cJSON **out_args,
                     char *err, size_t errlen) {
  *out_action = NULL;
  *out_args = NULL;
  struct lc_buf b;
  lc_buf_init(&b, 0);
  int rc;
  const struct lc_action *act = lc_actions_find(a, name);
  if (!act) {
    rc = lc_buf_printf(&b, "Unknown action \"%.80s\". ", name ? name : "");
    if (!rc) rc = list_names(a, &b);
    copy_err(&b, err, errlen);
    lc_buf_free(&b);
    return rc ? rc : LC_ENOTFOUND;
  }
  cJSON *obj = NULL;
  if (args) {
    if (!cJSON_IsObject(args)) {
      rc = lc_buf_printf(&b, "The input of \"%s\" must be a JSON object: ", act->name);
      goto bad;
    }
    obj = cJSON_Duplicate(args, 1);
  } else if (text && *text) {
    if (!act->string_param) {
      rc = lc_buf_printf(&b, "\"%s\" takes a JSON object as input, not plain text: ",
                         act->name);
      goto bad;
    }
    obj = cJSON_CreateObject();
    if (obj && !cJSON_AddStringToObject(obj, act->string_param, text)) {
      cJSON_Delete(obj);
      obj = NULL;
    }
  } else {
    obj = cJSON_CreateObject();
  }
  if (!obj) {
    lc_buf_free(&b);
    if (errlen) snprintf(err, errlen, "out of memory");
    return LC_ENOMEM;
  }
  if (a->validate) {
    char verr[512];
    verr[0] = '\0';
    if (a->validate(a->validate_ud, act, obj, verr, sizeof verr) != 0) {
      cJSON_Delete(obj);
      rc = lc_buf_printf(&b, "Invalid input for \"%s\": %s. Expected: ", act->name,
                         verr[0] ? verr : "does not match the schema");
      goto bad;
    }
  }
  *out_action = act;
  *out_args = obj;
  return 0;
bad:
  /* Every argument error ends with the expected input so the model can
   * repair its call in one step. */
  if (!rc) rc = lc_buf_printf(&b, "%s[", act->name);
  if (!rc) rc = lc_actions_render_input(act, &b);
  if (!rc) rc = lc_buf_puts(&b, "]");
  copy_err(&b, err, errlen);
  lc_buf_free(&b);
  return rc ? rc : LC_EINVAL;
}

void lc_actions_llm_tools_free(struct lc_llm_tool *t, size_t n) {
  if (!t) return;
  for (size_t i = 0; i < n; i++) {
    if (!(t[i].borrowed & LC_LLM_TOOL_BORROWED_TEXT)) {
      lc_free(t[i].name);
      lc_free(t[i].description);
    }
    if (!(t[i].borrowed & LC_LLM_TOOL_BORROWED_SCHEMA)) cJSON_Delete(t[i].schema);
    lc_free(t[i].schema_json);
  }
  lc_free(t);
}

int lc_actions_to_llm_tools(const struct lc_actions *a, int include_finish,
                            struct lc_llm_tool **out, size_t *n) {
  size_t total = a->n + (include_finish ? 1 : 0);
  *out = NULL;
  *n = 0;
  struct lc_llm_tool *t = lc_calloc(total ? total : 1, sizeof *t);
  if (!t) return LC_ENOMEM;
  for (size_t i = 0; i < total; i++) {
    const struct lc_action *x = i < a->n ? a->v[i] : a->finish;
    /* Borrowed, never changed through the tool (actions.h). */
    t[i].name = x->name;
    t[i].description = x->description;
    t[i].schema = x->schema;
    t[i].borrowed = LC_LLM_TOOL_BORROWED;
  }
  *out = t;
  *n = total;
  return 0;
}

cJSON *lc_actions_decoding_schema(const struct lc_actions *a) {
  cJSON *root = cJSON_CreateObject();
  if (!root || !cJSON_AddStringToObject(root, "type", "object")) goto fail;
  cJSON *props = cJSON_AddObjectToObject(root, "properties");
  cJSON *th = cJSON_AddObjectToObject(props, "thought");
  cJSON *act = cJSON_AddObjectToObject(props, "action");
  cJSON *in = cJSON_AddObjectToObject(props, "input");
  if (!th || !act || !in || !cJSON_AddStringToObject(th, "type", "string") ||
      !cJSON_AddStringToObject(act, "type", "string"))
    goto fail;
  cJSON *en = cJSON_AddArrayToObject(act, "enum");
  cJSON *any = cJSON_AddArrayToObject(in, "anyOf");
  const char *req[] = {"thought", "action", "input"};
  cJSON *rq = cJSON_CreateStringArray(req, 3);
  if (!rq) goto fail;
  cJSON_AddItemToObject(root, "required", rq);
  if (!en || !any || !cJSON_AddFalseToObject(root, "additionalProperties"))
    goto fail;
  for (size_t i = 0; i <= a->n; i++) {
    const struct lc_action *x = i < a->n ? a->v[i] : a->finish;
    cJSON *nm = cJSON_CreateString(x->name);
    cJSON *sc = cJSON_Duplicate(x->schema, 1);
    if (!nm || !sc) {
      cJSON_Delete(nm);
      cJSON_Delete(sc);
      goto fail;
    }
    cJSON_AddItemToArray(en, nm);
    cJSON_AddItemToArray(any, sc);
  }
  return root;
fail:
  cJSON_Delete(root);
  return NULL;
}
