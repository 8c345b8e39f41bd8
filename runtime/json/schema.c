/* schema.c: compiles JSON Schemas for tool arguments and validates values
 * against them, producing messages written for the model to act on. */
#include "schema.h"

#include <math.h>
#include <regex.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "cnum.h"
#include "lc.h"

enum { /* the public bits (schema.h's flat view uses them) */
  T_NULL = LC_SCHEMA_T_NULL,
  T_BOOL = LC_SCHEMA_T_BOOL,
  T_OBJ = LC_SCHEMA_T_OBJ,
  T_ARR = LC_SCHEMA_T_ARR,
  T_NUM = LC_SCHEMA_T_NUM,
  T_STR = LC_SCHEMA_T_STR,
  T_INT = LC_SCHEMA_T_INT,
};

static const struct {
  const char *name;
  unsigned bit;
} type_names[] = {
    {"null", T_NULL},   {"boolean", T_BOOL}, {"object", T_OBJ},
    {"array", T_ARR},   {"number", T_NUM},   {"string", T_STR},
    {"integer", T_INT},
};

struct prop {
  char *name;
  struct node *schema;
};

/* One compiled (sub)schema. Every node lives on its schema's node list and
 * is freed from there, so $ref may point anywhere, cycles included. */
struct node {
  struct node *next_alloc;
  int boolean;  /* -1: a real schema; 0: the schema false; 1: true */
  unsigned types; /* 0 = any */
  struct node *ref; /* $ref target, not owned */
  /* objects */
  struct prop *props;
  size_t nprops;
  char **required;
  size_t nrequired;
  struct node *addl; /* additionalProperties; NULL = allowed */
  /* enum / const point into the schema's private copy of the document */
  const cJSON *enum_;
  const cJSON *const_;
  /* arrays */
  struct node **prefix;
  size_t nprefix;
  struct node *items; /* items after prefix; NULL = allowed */
  long min_items, max_items; /* -1 = unset */
  int unique;
  /* strings */
  long min_len, max_len;
  char *pattern;
  regex_t re;
  int has_re;
  /* numbers */
  int has_min, has_max, has_xmin, has_xmax, has_mult;
  double min, max, xmin, xmax, mult;
  /* combinators */
  struct node **all_of, **any_of, **one_of;
  size_t nall, nany, none;
  struct node *not_;
};

struct refent {
  char *ref;
  struct node *node;
};

struct lc_schema {
  cJSON *doc;
  struct node *root;
  struct node *nodes;
  char **unknown;
  size_t nunknown;
  int flat; /* see lc_schema_flat */
};

/* ---- paths ------------------------------------------------------------ */

/* A path is a chain of stack frames, formatted only when a message needs it. */
struct seg {
  const struct seg *up;
  const char *key; /* NULL: array index */
  size_t index;
};

static int is_ident(const char *k) {
  if (!*k) return 0;
  for (const char *p = k; *p; p++) {
    int c = (unsigned char)*p;
    int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
             (p != k && c >= '0' && c <= '9');
    if (!ok) return 0;
  }
  return 1;
}

static void put_quoted(struct lc_buf *b, const char *s, size_t max) {
  lc_buf_puts(b, "\"");
  size_t n = 0;
  for (const unsigned char *p = (const unsigned char *)s; *p; p++, n++) {
    if (n >= max) {
      lc_buf_puts(b, "...");
      break;
    }
    if (*p == '"' || *p == '\\') lc_buf_printf(b, "\\%c", *p);
    else if (*p == '\n') lc_buf_puts(b, "\\n");
    else if (*p == '\t') lc_buf_puts(b, "\\t");
    else if (*p < 0x20) lc_buf_printf(b, "\\u%04x", *p);
    else {
      lc_buf_append(b, p, 1);
      /* Copy a whole multibyte sequence at once so truncation cannot split
       * it. */
      while ((p[1] & 0xC0) == 0x80) lc_buf_append(b, ++p, 1);
    }
  }
  lc_buf_puts(b, "\"");
}

static void put_path(struct lc_buf *b, const struct seg *s) {
  const struct seg *stack[LC_SCHEMA_MAX_VDEPTH + 8];
  size_t n = 0;
  for (; s; s = s->up)
    if (n < LC_ARRAY_LEN(stack)) stack[n++] = s;
  lc_buf_puts(b, "$");
  while (n-- > 0) {
    const struct seg *q = stack[n];
    if (!q->key) lc_buf_printf(b, "[%zu]", q->index);
    else if (is_ident(q->key)) lc_buf_printf(b, ".%s", q->key);
    else {
      lc_buf_puts(b, "[");
      put_quoted(b, q->key, 200);
      lc_buf_puts(b, "]");
    }
  }
}

/* JSON pointer for schema locations: "#/properties/a~1b". */
static void put_pointer(struct lc_buf *b, const struct seg *s) {
  const struct seg *stack[LC_SCHEMA_MAX_DEPTH * 2 + 8];
  size_t n = 0;
  for (; s; s = s->up)
    if (n < LC_ARRAY_LEN(stack)) stack[n++] = s;
  /* A $ref target's outermost segment is the reference itself ("#/$defs/x"). */
  if (n && stack[n - 1]->key && stack[n - 1]->key[0] == '#')
    lc_buf_puts(b, stack[--n]->key);
  else
    lc_buf_puts(b, "#");
  while (n-- > 0) {
    const struct seg *q = stack[n];
    if (!q->key) {
      lc_buf_printf(b, "/%zu", q->index);
      continue;
    }
    lc_buf_puts(b, "/");
    for (const char *p = q->key; *p; p++) {
      if (*p == '~') lc_buf_puts(b, "~0");
      else if (*p == '/') lc_buf_puts(b, "~1");
      else lc_buf_append(b, p, 1);
    }
  }
}

/* ---- value rendering ---------------------------------------------------- */

static void put_number(struct lc_buf *b, double d) {
  char tmp[64];
  if (d == floor(d) && fabs(d) < 1e15) {
    snprintf(tmp, sizeof tmp, "%.0f", d);
  } else {
    lc_cnum_fmt(tmp, sizeof tmp, "%.15g", d); /* JSON: '.' in any locale */
    if (lc_cnum_strtod(tmp, NULL) != d) lc_cnum_fmt(tmp, sizeof tmp, "%.17g", d);
  }
  lc_buf_puts(b, tmp);
}

/* Compact JSON for a value in a message; long strings and containers are
 * cut short (a message must stay readable even for a 1 MB argument). */
static void put_json(struct lc_buf *b, const cJSON *v, int depth) {
  if (cJSON_IsNull(v)) lc_buf_puts(b, "null");
  else if (cJSON_IsTrue(v)) lc_buf_puts(b, "true");
  else if (cJSON_IsFalse(v)) lc_buf_puts(b, "false");
  else if (cJSON_IsNumber(v)) put_number(b, v->valuedouble);
  else if (cJSON_IsString(v)) put_quoted(b, v->valuestring, 60);
  else if (cJSON_IsArray(v) || cJSON_IsObject(v)) {
    int arr = cJSON_IsArray(v);
    lc_buf_puts(b, arr ? "[" : "{");
    int i = 0;
    for (const cJSON *c = v->child; c; c = c->next, i++) {
      if (i) lc_buf_puts(b, ",");
      if (i >= 4 || depth >= 2) {
        lc_buf_puts(b, "...");
        break;
      }
      if (!arr) {
        put_quoted(b, c->string ? c->string : "", 40);
        lc_buf_puts(b, ":");
      }
      put_json(b, c, depth + 1);
    }
    lc_buf_puts(b, arr ? "]" : "}");
  } else {
    lc_buf_puts(b, "?");
  }
}

static int is_integral(double d) { return isfinite(d) && d == floor(d); }

static const char *type_of(const cJSON *v) {
  if (cJSON_IsNull(v)) return "null";
  if (cJSON_IsBool(v)) return "boolean";
  if (cJSON_IsNumber(v)) return "number";
  if (cJSON_IsString(v)) return "string";
  if (cJSON_IsArray(v)) return "array";
  if (cJSON_IsObject(v)) return "object";
  return "invalid value";
}

/* "string \"two\"", "number 2.5", "object", "null". */
static void put_typed(struct lc_buf *b, const cJSON *v) {
  lc_buf_puts(b, type_of(v));
  if (cJSON_IsNull(v) || cJSON_IsArray(v) || cJSON_IsObject(v)) return;
  lc_buf_puts(b, " ");
  put_json(b, v, 0);
}

/* ---- compiling ---------------------------------------------------------- */

struct cctx {
  struct lc_schema *s;
  const cJSON *root;
  struct refent *refs;
  size_t nrefs, caprefs;
  char *err;
  size_t errlen;
  int rc;
};

/* Records the first compile error; the message names the schema location. */
static void cfail(struct cctx *c, const struct seg *at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void cfail(struct cctx *c, const struct seg *at, const char *fmt, ...) {
  if (c->rc) return;
  c->rc = LC_EINVAL;
  struct lc_buf b;
  lc_buf_init(&b, 0);
  lc_buf_puts(&b, "schema error at ");
  put_pointer(&b, at);
  lc_buf_puts(&b, ": ");
  char tmp[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(tmp, sizeof tmp, fmt, ap);
  va_end(ap);
  lc_buf_puts(&b, tmp);
  if (c->errlen) snprintf(c->err, c->errlen, "%s", b.data ? b.data : tmp);
  lc_buf_free(&b);
}

static void cnomem(struct cctx *c) {
  if (c->rc) return;
  c->rc = LC_ENOMEM;
  if (c->errlen) snprintf(c->err, c->errlen, "out of memory compiling schema");
}

static struct node *new_node(struct cctx *c) {
  struct node *n = lc_calloc(1, sizeof *n);
  if (!n) {
    cnomem(c);
    return NULL;
  }
  n->boolean = -1;
  n->min_items = n->max_items = n->min_len = n->max_len = -1;
  n->next_alloc = c->s->nodes;
  c->s->nodes = n;
  return n;
}

static void free_node(struct node *n) {
  for (size_t i = 0; i < n->nprops; i++) lc_free(n->props[i].name);
  lc_free(n->props);
  for (size_t i = 0; i < n->nrequired; i++) lc_free(n->required[i]);
  lc_free(n->required);
  lc_free(n->prefix);
  lc_free(n->pattern);
  if (n->has_re) regfree(&n->re);
  lc_free(n->all_of);
  lc_free(n->any_of);
  lc_free(n->one_of);
  lc_free(n);
}

static int compile_into(struct cctx *c, struct node *n, const cJSON *j,
                        const struct seg *at, int depth);

static struct node *compile(struct cctx *c, const cJSON *j,
                            const struct seg *at, int depth) {
  struct node *n = new_node(c);
  if (!n) return NULL;
  if (compile_into(c, n, j, at, depth)) return NULL;
  return n;
}

static int is_schema(const cJSON *j) { return cJSON_IsObject(j) || cJSON_IsBool(j); }

static const char *ignored_keywords[] = {
    "description", "title", "default", "examples", "$schema", "$id",
    "$comment", "$defs", "definitions", "$anchor", "deprecated", "readOnly",
    "writeOnly", "additionalItems", /* handled together with array items */
};

static int record_unknown(struct cctx *c, const struct seg *at) {
  struct lc_buf b;
  lc_buf_init(&b, 0);
  put_pointer(&b, at);
  if (!b.data) {
    cnomem(c);
    return -1;
  }
  char **u = lc_realloc(c->s->unknown, (c->s->nunknown + 1) * sizeof *u);
  if (!u) {
    lc_buf_free(&b);
    cnomem(c);
    return -1;
  }
  c->s->unknown = u;
  u[c->s->nunknown++] = lc_buf_steal(&b, NULL);
  return 0;
}

/* Decodes one JSON pointer token (~1 -> /, ~0 -> ~) into a heap string. */
static char *ptr_token(const char *s, size_t n) {
  char *t = lc_malloc(n + 1);
  if (!t) return NULL;
  size_t o = 0;
  for (size_t i = 0; i < n; i++) {
    if (s[i] == '~' && i + 1 < n && (s[i + 1] == '0' || s[i + 1] == '1')) {
      t[o++] = s[i + 1] == '0' ? '~' : '/';
      i++;
    } else {
      t[o++] = s[i];
    }
  }
  t[o] = '\0';
  return t;
}

/* Resolves a local "#/a/b" reference inside the document; NULL if absent. */
static const cJSON *resolve(struct cctx *c, const char *ref, int *oom) {
  const cJSON *cur = c->root;
  const char *p = ref + 1; /* after '#' */
  while (*p == '/') {
    p++;
    size_t len = strcspn(p, "/");
    char *tok = ptr_token(p, len);
    if (!tok) {
      *oom = 1;
      return NULL;
    }
    const cJSON *next = NULL;
    if (cJSON_IsObject(cur)) {
      next = cJSON_GetObjectItemCaseSensitive(cur, tok);
    } else if (cJSON_IsArray(cur)) {
      char *end;
      long i = strtol(tok, &end, 10);
      if (*tok && !*end && i >= 0) next = cJSON_GetArrayItem(cur, (int)i);
    }
    lc_free(tok);
    if (!next) return NULL;
    cur = next;
    p += len;
  }
  return *p ? NULL : cur;
}

static struct node *compile_ref(struct cctx *c, const char *ref,
                                const struct seg *at, int depth) {
  if (ref[0] != '#' || (ref[1] && ref[1] != '/')) {
    cfail(c, at,
          "$ref \"%.200s\" is not supported; only local references such as "
          "\"#/$defs/name\" or \"#/definitions/name\" are",
          ref);
    return NULL;
  }
  for (size_t i = 0; i < c->nrefs; i++)
    if (strcmp(c->refs[i].ref, ref) == 0) return c->refs[i].node;
  int oom = 0;
  const cJSON *target = resolve(c, ref, &oom);
  if (oom) {
    cnomem(c);
    return NULL;
  }
  if (!target) {
    cfail(c, at, "$ref \"%.200s\" does not point to anything in this schema",
          ref);
    return NULL;
  }
  if (!is_schema(target)) {
    cfail(c, at, "$ref \"%.200s\" points to a %s, not a schema", ref,
          type_of(target));
    return NULL;
  }
  if (c->nrefs == c->caprefs) {
    size_t cap = c->caprefs ? c->caprefs * 2 : 8;
    struct refent *r = lc_realloc(c->refs, cap * sizeof *r);
    if (!r) {
      cnomem(c);
      return NULL;
    }
    c->refs = r;
    c->caprefs = cap;
  }
  struct node *n = new_node(c);
  char *copy = lc_strdup(ref);
  if (!n || !copy) {
    lc_free(copy);
    cnomem(c);
    return NULL;
  }
  /* Registered before compiling so that a recursive definition finds itself
   * instead of compiling forever. */
  c->refs[c->nrefs].ref = copy;
  c->refs[c->nrefs].node = n;
  c->nrefs++;
  /* The target is reported at its own location, with the depth so far: refs
   * do not reset the nesting guard. */
  struct seg tseg = {NULL, ref, 0};
  if (compile_into(c, n, target, &tseg, depth + 1)) return NULL;
  return n;
}

static int get_count(struct cctx *c, const cJSON *v, const struct seg *at,
                     long *out) {
  if (!cJSON_IsNumber(v) || !is_integral(v->valuedouble) ||
      v->valuedouble < 0 || v->valuedouble > 1e15) {
    cfail(c, at, "must be a non-negative integer");
    return -1;
  }
  *out = (long)v->valuedouble;
  return 0;
}

static int get_number(struct cctx *c, const cJSON *v, const struct seg *at,
                      double *out) {
  if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble)) {
    cfail(c, at, "must be a number");
    return -1;
  }
  *out = v->valuedouble;
  return 0;
}

static int compile_list(struct cctx *c, const cJSON *v, const struct seg *at,
                        int depth, struct node ***out, size_t *nout) {
  if (!cJSON_IsArray(v) || !v->child) {
    cfail(c, at, "must be a non-empty array of schemas");
    return -1;
  }
  size_t n = (size_t)cJSON_GetArraySize(v);
  struct node **list = lc_calloc(n, sizeof *list);
  if (!list) {
    cnomem(c);
    return -1;
  }
  *out = list;
  *nout = n;
  size_t i = 0;
  for (const cJSON *e = v->child; e; e = e->next, i++) {
    struct seg s = {at, NULL, i};
    if (!is_schema(e)) {
      cfail(c, &s, "must be a schema (an object or a boolean), got %s",
            type_of(e));
      return -1;
    }
    if (!(list[i] = compile(c, e, &s, depth + 1))) return -1;
  }
  return 0;
}

/* Perl classes \d \w \s (and negations) are not POSIX; translate them. */
static char *translate_pattern(const char *p, const char **bad) {
  struct lc_buf b;
  lc_buf_init(&b, 0);
  int in_bracket = 0;
  for (; *p; p++) {
    if (*p == '\\' && p[1]) {
      char e = p[1];
      const char *rep = NULL;
      if (!in_bracket && e >= '1' && e <= '9') {
        /* glibc matches backreferences by backtracking: exponential time on
         * a model's input. */
        *bad = "backreferences (\\1..\\9) are not supported";
        lc_buf_free(&b);
        return NULL;
      }
      if (!in_bracket) {
        switch (e) {
          case 'd': rep = "[0-9]"; break;
          case 'D': rep = "[^0-9]"; break;
          case 'w': rep = "[A-Za-z0-9_]"; break;
          case 'W': rep = "[^A-Za-z0-9_]"; break;
          case 's': rep = "[[:space:]]"; break;
          case 'S': rep = "[^[:space:]]"; break;
        }
      } else {
        switch (e) {
          case 'd': rep = "0-9"; break;
          case 'w': rep = "A-Za-z0-9_"; break;
          case 's': rep = "[:space:]"; break;
          case 'D': case 'W': case 'S':
            *bad = "\\D, \\W and \\S cannot be used inside [...]";
            lc_buf_free(&b);
            return NULL;
        }
      }
      if (rep) lc_buf_puts(&b, rep);
      else lc_buf_append(&b, p, 2);
      p++;
      continue;
    }
    if (!in_bracket && *p == '[') {
      in_bracket = 1;
      lc_buf_append(&b, p, 1);
      /* A ']' right after '[' or '[^' is a literal member. */
      if (p[1] == '^') lc_buf_append(&b, ++p, 1);
      if (p[1] == ']') lc_buf_append(&b, ++p, 1);
      continue;
    }
    if (in_bracket && *p == '[' && (p[1] == ':' || p[1] == '.' || p[1] == '=')) {
      /* [:alpha:] and friends: copy through the closing ":]". */
      char close = p[1];
      const char *end = p + 2;
      while (*end && !(end[0] == close && end[1] == ']')) end++;
      if (*end) {
        lc_buf_append(&b, p, (size_t)(end + 2 - p));
        p = end + 1;
        continue;
      }
    }
    if (in_bracket && *p == ']') in_bracket = 0;
    lc_buf_append(&b, p, 1);
  }
  if (!b.data) lc_buf_puts(&b, "");
  return lc_buf_steal(&b, NULL);
}

/* glibc's regcomp copies the subtree for every repetition, so stacked or
 * nested counts ("a+++++...", "((a{99}){99}){99}") cost exponential time and
 * memory at declaration. Estimate the compiled size of the translated ERE
 * and refuse patterns that would blow up, with a reason the author can fix. */
#define PATTERN_MAX_COST 20000.0
static const char *pattern_too_costly(const char *p) {
  double stack[LC_SCHEMA_MAX_DEPTH + 1];
  int depth = 0;
  double cur = 0, last = 0; /* size so far in this group; last atom's size */
  int after_quant = 0, have_atom = 0;
  if (strlen(p) > 1000) return "pattern longer than 1000 characters";
  while (*p) {
    char ch = *p;
    if (ch == '*' || ch == '+' || ch == '?' || ch == '{') {
      if (after_quant)
        return "a quantifier follows another quantifier (lazy or possessive "
               "forms such as +? and ++ are not POSIX)";
      double mult = ch == '+' ? 2 : 1;
      if (ch == '{') {
        char *end;
        long m = strtol(p + 1, &end, 10), n = m;
        if (end == p + 1) return NULL; /* not a bound: regcomp will judge */
        if (*end == ',') {
          if (end[1] == '}') n = m + 1, end++;
          else n = strtol(end + 1, &end, 10);
        }
        if (*end != '}') return NULL;
        if (m > 255 || n > 255) return "repetition counts above 255";
        mult = (double)(n > m ? n : m);
        if (mult < 1) mult = 1;
        p = end;
      }
      if (have_atom) cur += last * (mult - 1), last *= mult;
      after_quant = 1;
      p++;
      if (cur > PATTERN_MAX_COST) break;
      continue;
    }
    after_quant = 0;
    if (ch == '(') {
      if (depth == LC_SCHEMA_MAX_DEPTH) return "groups nested too deeply";
      stack[depth++] = cur;
      cur = 0;
      have_atom = 0;
      p++;
      continue;
    }
    if (ch == ')' && depth > 0) {
      last = cur + 1;
      cur = stack[--depth] + last;
      have_atom = 1;
      p++;
      continue;
    }
    if (ch == '|') {
      have_atom = 0;
      p++;
      continue;
    }
    if (ch == '\\' && p[1]) p++;
    else if (ch == '[') {
      /* Skip the bracket expression: leading ']' and [:class:] included. */
      p++;
      if (*p == '^') p++;
      if (*p == ']') p++;
      while (*p && *p != ']') {
        if (*p == '[' && (p[1] == ':' || p[1] == '.' || p[1] == '=')) {
          const char *e = strstr(p + 2, p[1] == ':' ? ":]" : p[1] == '.' ? ".]" : "=]");
          if (e) p = e + 1;
        }
        p++;
      }
      if (!*p) return NULL;
    }
    last = 1;
    cur += 1;
    have_atom = 1;
    p++;
  }
  while (depth > 0) cur += stack[--depth];
  return cur > PATTERN_MAX_COST ? "too many repetitions (nested counts "
                                  "multiply)" : NULL;
}

static int compile_pattern(struct cctx *c, struct node *n, const cJSON *v,
                           const struct seg *at) {
  if (!cJSON_IsString(v)) {
    cfail(c, at, "must be a string (a POSIX extended regular expression)");
    return -1;
  }
  const char *bad = NULL;
  char *tr = translate_pattern(v->valuestring, &bad);
  if (!tr) {
    if (bad) cfail(c, at, "invalid pattern \"%.200s\": %s", v->valuestring, bad);
    else cnomem(c);
    return -1;
  }
  const char *costly = pattern_too_costly(tr);
  if (costly) {
    lc_free(tr);
    cfail(c, at, "pattern \"%.200s\" is refused: %s", v->valuestring, costly);
    return -1;
  }
  int rc = regcomp(&n->re, tr, REG_EXTENDED | REG_NOSUB);
  lc_free(tr);
  if (rc != 0) {
    char msg[128];
    regerror(rc, &n->re, msg, sizeof msg);
    cfail(c, at,
          "invalid pattern \"%.200s\": %s (patterns are POSIX extended regular "
          "expressions)",
          v->valuestring, msg);
    return -1;
  }
  n->has_re = 1;
  if (!(n->pattern = lc_strdup(v->valuestring))) {
    cnomem(c);
    return -1;
  }
  return 0;
}

static int compile_type(struct cctx *c, struct node *n, const cJSON *v,
                        const struct seg *at) {
  const cJSON *one = v;
  if (cJSON_IsArray(v)) {
    if (!v->child) {
      cfail(c, at, "must not be an empty array");
      return -1;
    }
    one = v->child;
  } else if (!cJSON_IsString(v)) {
    cfail(c, at, "must be a type name or an array of type names");
    return -1;
  }
  size_t i = 0;
  for (; one; one = cJSON_IsArray(v) ? one->next : NULL, i++) {
    struct seg s = {at, NULL, i};
    const struct seg *where = cJSON_IsArray(v) ? &s : at;
    if (!cJSON_IsString(one)) {
      cfail(c, where, "type names must be strings");
      return -1;
    }
    unsigned bit = 0;
    for (size_t k = 0; k < LC_ARRAY_LEN(type_names); k++)
      if (strcmp(one->valuestring, type_names[k].name) == 0)
        bit = type_names[k].bit;
    if (!bit) {
      cfail(c, where,
            "unknown type \"%.100s\"; allowed: string, number, integer, "
            "boolean, object, array, null",
            one->valuestring);
      return -1;
    }
    n->types |= bit;
  }
  return 0;
}

static int compile_object_kw(struct cctx *c, struct node *n, const cJSON *kw,
                             const struct seg *at, int depth) {
  if (strcmp(kw->string, "properties") == 0) {
    if (!cJSON_IsObject(kw)) {
      cfail(c, at, "must be an object mapping property names to schemas");
      return -1;
    }
    size_t cnt = (size_t)cJSON_GetArraySize(kw);
    n->props = lc_calloc(cnt, sizeof *n->props);
    if (!n->props) {
      cnomem(c);
      return -1;
    }
    for (const cJSON *p = kw->child; p; p = p->next) {
      struct seg s = {at, p->string, 0};
      if (!is_schema(p)) {
        cfail(c, &s, "must be a schema (an object or a boolean), got %s",
              type_of(p));
        return -1;
      }
      struct prop *pr = &n->props[n->nprops++];
      if (!(pr->name = lc_strdup(p->string))) {
        cnomem(c);
        return -1;
      }
      if (!(pr->schema = compile(c, p, &s, depth + 1))) return -1;
    }
    return 0;
  }
  if (strcmp(kw->string, "required") == 0) {
    if (!cJSON_IsArray(kw)) {
      cfail(c, at, "must be an array of property names, got %s", type_of(kw));
      return -1;
    }
    size_t cnt = (size_t)cJSON_GetArraySize(kw);
    n->required = lc_calloc(cnt, sizeof *n->required);
    if (!n->required) {
      cnomem(c);
      return -1;
    }
    size_t i = 0;
    for (const cJSON *r = kw->child; r; r = r->next, i++) {
      struct seg s = {at, NULL, i};
      if (!cJSON_IsString(r)) {
        cfail(c, &s, "property names must be strings, got %s", type_of(r));
        return -1;
      }
      if (!(n->required[n->nrequired++] = lc_strdup(r->valuestring))) {
        cnomem(c);
        return -1;
      }
    }
    return 0;
  }
  /* additionalProperties */
  if (!is_schema(kw)) {
    cfail(c, at, "must be a boolean or a schema, got %s", type_of(kw));
    return -1;
  }
  if (cJSON_IsTrue(kw)) return 0;
  n->addl = compile(c, kw, at, depth + 1);
  return n->addl ? 0 : -1;
}

static const char *keywords[] = {
    "type", "properties", "required", "additionalProperties", "enum", "const",
    "items", "prefixItems", "minItems", "maxItems", "uniqueItems", "minLength",
    "maxLength", "pattern", "minimum", "maximum", "exclusiveMinimum",
    "exclusiveMaximum", "multipleOf", "allOf", "anyOf", "oneOf", "not", "$ref",
    "additionalItems",
};

static int is_keyword(const char *k) {
  for (size_t i = 0; i < LC_ARRAY_LEN(keywords); i++)
    if (strcmp(k, keywords[i]) == 0) return 1;
  return 0;
}

/* Is kw's name used by an earlier member of j? Only asked for the few
 * keywords we act on, so the scan stays linear in practice. */
static int has_earlier(const cJSON *j, const cJSON *kw) {
  for (const cJSON *p = j->child; p && p != kw; p = p->next)
    if (p->string && strcmp(p->string, kw->string) == 0) return 1;
  return 0;
}

static int compile_into(struct cctx *c, struct node *n, const cJSON *j,
                        const struct seg *at, int depth) {
  if (depth > LC_SCHEMA_MAX_DEPTH) {
    cfail(c, at, "schema nested deeper than %d levels", LC_SCHEMA_MAX_DEPTH);
    return -1;
  }
  if (cJSON_IsBool(j)) {
    n->boolean = cJSON_IsTrue(j);
    return 0;
  }
  if (!cJSON_IsObject(j)) {
    cfail(c, at, "a schema must be an object or a boolean, got %s", type_of(j));
    return -1;
  }
  const cJSON *items_array = NULL;
  int xmin_bool = 0, xmax_bool = 0;
  for (const cJSON *kw = j->child; kw; kw = kw->next) {
    const char *k = kw->string ? kw->string : "";
    struct seg s = {at, k, 0};
    int rc = 0;
    if (is_keyword(k) && has_earlier(j, kw)) {
      /* JSON allows it, but which one would win is anyone's guess. */
      cfail(c, &s, "keyword \"%s\" appears more than once", k);
      return -1;
    }
    if (strcmp(k, "type") == 0) {
      rc = compile_type(c, n, kw, &s);
    } else if (strcmp(k, "properties") == 0 || strcmp(k, "required") == 0 ||
               strcmp(k, "additionalProperties") == 0) {
      rc = compile_object_kw(c, n, kw, &s, depth);
    } else if (strcmp(k, "enum") == 0) {
      if (!cJSON_IsArray(kw) || !kw->child) {
        cfail(c, &s, "must be a non-empty array of allowed values");
        rc = -1;
      }
      n->enum_ = kw;
    } else if (strcmp(k, "const") == 0) {
      n->const_ = kw;
    } else if (strcmp(k, "items") == 0) {
      if (cJSON_IsArray(kw)) {
        items_array = kw; /* draft-7 tuple form, handled below */
      } else if (!is_schema(kw)) {
        cfail(c, &s, "must be a schema (an object or a boolean), got %s",
              type_of(kw));
        rc = -1;
      } else if (!cJSON_IsTrue(kw)) {
        rc = (n->items = compile(c, kw, &s, depth + 1)) ? 0 : -1;
      }
    } else if (strcmp(k, "prefixItems") == 0) {
      rc = compile_list(c, kw, &s, depth, &n->prefix, &n->nprefix);
    } else if (strcmp(k, "minItems") == 0) {
      rc = get_count(c, kw, &s, &n->min_items);
    } else if (strcmp(k, "maxItems") == 0) {
      rc = get_count(c, kw, &s, &n->max_items);
    } else if (strcmp(k, "uniqueItems") == 0) {
      if (!cJSON_IsBool(kw)) {
        cfail(c, &s, "must be a boolean");
        rc = -1;
      }
      n->unique = cJSON_IsTrue(kw);
    } else if (strcmp(k, "minLength") == 0) {
      rc = get_count(c, kw, &s, &n->min_len);
    } else if (strcmp(k, "maxLength") == 0) {
      rc = get_count(c, kw, &s, &n->max_len);
    } else if (strcmp(k, "pattern") == 0) {
      rc = compile_pattern(c, n, kw, &s);
    } else if (strcmp(k, "minimum") == 0) {
      rc = get_number(c, kw, &s, &n->min);
      n->has_min = 1;
    } else if (strcmp(k, "maximum") == 0) {
      rc = get_number(c, kw, &s, &n->max);
      n->has_max = 1;
    } else if (strcmp(k, "exclusiveMinimum") == 0) {
      if (cJSON_IsBool(kw)) xmin_bool = cJSON_IsTrue(kw); /* draft 4 */
      else rc = get_number(c, kw, &s, &n->xmin), n->has_xmin = 1;
    } else if (strcmp(k, "exclusiveMaximum") == 0) {
      if (cJSON_IsBool(kw)) xmax_bool = cJSON_IsTrue(kw);
      else rc = get_number(c, kw, &s, &n->xmax), n->has_xmax = 1;
    } else if (strcmp(k, "multipleOf") == 0) {
      rc = get_number(c, kw, &s, &n->mult);
      if (!rc && n->mult <= 0) {
        cfail(c, &s, "must be a number greater than 0");
        rc = -1;
      }
      n->has_mult = 1;
    } else if (strcmp(k, "allOf") == 0) {
      rc = compile_list(c, kw, &s, depth, &n->all_of, &n->nall);
    } else if (strcmp(k, "anyOf") == 0) {
      rc = compile_list(c, kw, &s, depth, &n->any_of, &n->nany);
    } else if (strcmp(k, "oneOf") == 0) {
      rc = compile_list(c, kw, &s, depth, &n->one_of, &n->none);
    } else if (strcmp(k, "not") == 0) {
      if (!is_schema(kw)) {
        cfail(c, &s, "must be a schema (an object or a boolean), got %s",
              type_of(kw));
        rc = -1;
      } else {
        rc = (n->not_ = compile(c, kw, &s, depth + 1)) ? 0 : -1;
      }
    } else if (strcmp(k, "$ref") == 0) {
      if (!cJSON_IsString(kw)) {
        cfail(c, &s, "must be a string such as \"#/$defs/name\"");
        rc = -1;
      } else {
        rc = (n->ref = compile_ref(c, kw->valuestring, &s, depth)) ? 0 : -1;
      }
    } else {
      int known = 0;
      for (size_t i = 0; i < LC_ARRAY_LEN(ignored_keywords); i++)
        if (strcmp(k, ignored_keywords[i]) == 0) known = 1;
      if (!known) rc = record_unknown(c, &s);
    }
    if (rc || c->rc) return -1;
  }
  if (xmin_bool) {
    if (!n->has_min) {
      cfail(c, at, "exclusiveMinimum: true needs \"minimum\"");
      return -1;
    }
    n->has_min = 0, n->has_xmin = 1, n->xmin = n->min;
  }
  if (xmax_bool) {
    if (!n->has_max) {
      cfail(c, at, "exclusiveMaximum: true needs \"maximum\"");
      return -1;
    }
    n->has_max = 0, n->has_xmax = 1, n->xmax = n->max;
  }
  if (items_array) {
    struct seg s = {at, "items", 0};
    if (n->prefix) {
      cfail(c, &s, "an array \"items\" cannot be combined with prefixItems");
      return -1;
    }
    if (items_array->child &&
        compile_list(c, items_array, &s, depth, &n->prefix, &n->nprefix))
      return -1;
    const cJSON *ai = cJSON_GetObjectItemCaseSensitive(j, "additionalItems");
    if (ai) {
      struct seg s2 = {at, "additionalItems", 0};
      if (!is_schema(ai)) {
        cfail(c, &s2, "must be a boolean or a schema, got %s", type_of(ai));
        return -1;
      }
      if (!cJSON_IsTrue(ai) && !(n->items = compile(c, ai, &s2, depth + 1)))
        return -1;
    }
  }
  return 0;
}

/* Bounded depth check before cJSON_Duplicate, which recurses without one. */
static int doc_depth_ok(const cJSON *j, int depth) {
  if (depth > 4 * LC_SCHEMA_MAX_DEPTH) return 0;
  for (const cJSON *c = j->child; c; c = c->next)
    if (!doc_depth_ok(c, depth + 1)) return 0;
  return 1;
}

/* ---- the flat view (schema.h) ----
 * Which keywords validate() applies to a scalar: $ref, type, enum, const,
 * the string or number keywords, and the combinators. A node with none of
 * them besides type checks a scalar by its type alone. */
static int scalar_by_type(const struct node *n) {
  if (n->boolean == 1) return 1;
  if (n->boolean == 0) return 0;
  return !n->ref && !n->enum_ && !n->const_ && n->min_len < 0 && n->max_len < 0 &&
         !n->pattern && !n->has_re && !n->has_min && !n->has_max && !n->has_xmin &&
         !n->has_xmax && !n->has_mult && !n->nall && !n->nany && !n->none && !n->not_;
}

/* An object passes the root's own checks (type, no whole-value keyword
 * but required): only its members are left. */
static int flat_root(const struct node *n) {
  return n->boolean == -1 && !n->ref && (n->types == 0 || (n->types & T_OBJ)) &&
         !n->enum_ && !n->const_ && !n->nall && !n->nany && !n->none && !n->not_;
}

int lc_schema_flat(const struct lc_schema *s) { return s->flat; }

int lc_schema_flat_key(const struct lc_schema *s, const char *k, size_t kl,
                       unsigned *types) {
  const struct node *root = s->root, *n = NULL;
  if (!s->flat) return 0;
  for (size_t i = 0; i < root->nprops; i++) /* the first match, as find_prop */
    if (strncmp(root->props[i].name, k, kl) == 0 && root->props[i].name[kl] == '\0') {
      n = root->props[i].schema;
      break;
    }
  if (!n) {
    if (!root->addl) { /* any other key is allowed */
      *types = 0;
      return 1;
    }
    n = root->addl; /* false (not allowed) is not scalar_by_type */
  }
  if (!scalar_by_type(n)) return 0;
  *types = n->boolean == 1 ? 0 : n->types;
  return 1;
}

const char *lc_schema_flat_required(const struct lc_schema *s, size_t i) {
  return i < s->root->nrequired ? s->root->required[i] : NULL;
}

void lc_schema_free(struct lc_schema *s) {
  if (!s) return;
  for (struct node *n = s->nodes, *next; n; n = next) {
    next = n->next_alloc;
    free_node(n);
  }
  for (size_t i = 0; i < s->nunknown; i++) lc_free(s->unknown[i]);
  lc_free(s->unknown);
  cJSON_Delete(s->doc);
  lc_free(s);
}

int lc_schema_compile(const cJSON *schema, struct lc_schema **out, char *err,
                      size_t errlen) {
  *out = NULL;
  if (errlen) err[0] = '\0';
  if (!schema) {
    snprintf(err, errlen, "schema error at #: no schema given");
    return LC_EINVAL;
  }
  if (!doc_depth_ok(schema, 0)) {
    snprintf(err, errlen, "schema error at #: document nested deeper than %d",
             4 * LC_SCHEMA_MAX_DEPTH);
    return LC_EINVAL;
  }
  struct lc_schema *s = lc_calloc(1, sizeof *s);
  if (!s) {
    snprintf(err, errlen, "out of memory compiling schema");
    return LC_ENOMEM;
  }
  struct cctx c = {.s = s, .err = err, .errlen = errlen};
  /* enum/const point into this private copy, so the caller's tree may go. */
  s->doc = cJSON_Duplicate(schema, 1);
  if (!s->doc) cnomem(&c);
  else {
    c.root = s->doc;
    s->root = compile(&c, s->doc, NULL, 0);
  }
  for (size_t i = 0; i < c.nrefs; i++) lc_free(c.refs[i].ref);
  lc_free(c.refs);
  if (c.rc || !s->root) {
    lc_schema_free(s);
    return c.rc ? c.rc : LC_ENOMEM;
  }
  s->flat = flat_root(s->root);
  *out = s;
  return 0;
}

size_t lc_schema_unknown_count(const struct lc_schema *s) { return s->nunknown; }

const char *lc_schema_unknown_at(const struct lc_schema *s, size_t i) {
  return i < s->nunknown ? s->unknown[i] : NULL;
}

/* ---- validating --------------------------------------------------------- */

struct vctx {
  struct lc_schema_errors *errs;
  size_t cap;  /* messages kept; smaller for anyOf/oneOf branch probes */
  int oom;
};

static void add_err(struct vctx *v, const struct seg *path, const char *fmt,
                    ...) __attribute__((format(printf, 3, 4)));

/* Adds one error (counted always, kept while under the cap). Callers render
 * values into scratch buffers and pass them as %s, keeping fmt checkable. */
static void add_err(struct vctx *v, const struct seg *path, const char *fmt,
                    ...) {
  struct lc_schema_errors *e = v->errs;
  e->total++;
  if (e->count >= v->cap || e->count >= LC_SCHEMA_MAX_ERRORS) return;
  struct lc_buf p, m;
  lc_buf_init(&p, 0);
  lc_buf_init(&m, 0);
  put_path(&p, path);
  va_list ap;
  va_start(ap, fmt);
  char tmp[256];
  int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
  va_end(ap);
  if (n >= 0 && (size_t)n < sizeof tmp) {
    lc_buf_puts(&m, tmp);
  } else if (n >= 0) {
    char *big = lc_malloc((size_t)n + 1);
    if (big) {
      va_start(ap, fmt);
      vsnprintf(big, (size_t)n + 1, fmt, ap);
      va_end(ap);
      lc_buf_puts(&m, big);
      lc_free(big);
    }
  }
  if (!p.data || !m.data) {
    lc_buf_free(&p);
    lc_buf_free(&m);
    v->oom = 1;
    return;
  }
  e->items[e->count].path = lc_buf_steal(&p, NULL);
  e->items[e->count].message = lc_buf_steal(&m, NULL);
  e->count++;
}

/* Renders a value for a message into a small scratch buffer owned by the
 * caller; returns "" if allocation failed (the message is still useful). */
static const char *typed(struct lc_buf *b, const cJSON *v) {
  lc_buf_reset(b);
  put_typed(b, v);
  return b->data ? b->data : "";
}

static const char *jsontext(struct lc_buf *b, const cJSON *v) {
  lc_buf_reset(b);
  put_json(b, v, 0);
  return b->data ? b->data : "";
}

static int validate(const struct node *n, const cJSON *v, const struct seg *path,
                    struct vctx *x, int depth);

static int type_ok(unsigned types, const cJSON *v) {
  if (!types) return 1;
  if (cJSON_IsNull(v)) return types & T_NULL;
  if (cJSON_IsBool(v)) return types & T_BOOL;
  if (cJSON_IsString(v)) return types & T_STR;
  if (cJSON_IsArray(v)) return types & T_ARR;
  if (cJSON_IsObject(v)) return types & T_OBJ;
  if (cJSON_IsNumber(v))
    return (types & T_NUM) || ((types & T_INT) && is_integral(v->valuedouble));
  return 0;
}

static void put_types(struct lc_buf *b, unsigned types) {
  int first = 1;
  size_t nbits = 0;
  for (size_t k = 0; k < LC_ARRAY_LEN(type_names); k++)
    if (types & type_names[k].bit) nbits++;
  size_t i = 0;
  /* Listed in a fixed, readable order. */
  static const unsigned order[] = {T_STR, T_INT, T_NUM, T_BOOL, T_OBJ, T_ARR, T_NULL};
  for (size_t k = 0; k < LC_ARRAY_LEN(order); k++) {
    if (!(types & order[k])) continue;
    const char *name = "";
    for (size_t t = 0; t < LC_ARRAY_LEN(type_names); t++)
      if (type_names[t].bit == order[k]) name = type_names[t].name;
    if (!first) lc_buf_puts(b, i + 1 == nbits ? " or " : ", ");
    lc_buf_puts(b, name);
    first = 0;
    i++;
  }
}

static size_t utf8_len(const char *s) {
  size_t n = 0;
  for (; *s; s++)
    if (((unsigned char)*s & 0xC0) != 0x80) n++;
  return n;
}


static const struct prop *find_prop(const struct node *n, const char *k) {
  for (size_t i = 0; i < n->nprops; i++)
    if (strcmp(n->props[i].name, k) == 0) return &n->props[i];
  return NULL;
}

static void check_object(const struct node *n, const cJSON *v,
                         const struct seg *path, struct vctx *x, int depth) {
  for (size_t i = 0; i < n->nrequired; i++) {
    if (!cJSON_GetObjectItemCaseSensitive(v, n->required[i])) {
      struct lc_buf b;
      lc_buf_init(&b, 0);
      put_quoted(&b, n->required[i], 200);
      add_err(x, path, "missing required property %s", b.data ? b.data : "");
      lc_buf_free(&b);
    }
  }
  for (const cJSON *m = v->child; m; m = m->next) {
    const char *k = m->string ? m->string : "";
    struct seg s = {path, k, 0};
    const struct prop *p = find_prop(n, k);
    if (p) {
      validate(p->schema, m, &s, x, depth + 1);
      continue;
    }
    if (!n->addl) continue;
    if (n->addl->boolean != 0) {
      validate(n->addl, m, &s, x, depth + 1);
      continue;
    }
    struct lc_buf b;
    lc_buf_init(&b, 0);
    lc_buf_puts(&b, "property not allowed; allowed: ");
    if (!n->nprops) lc_buf_puts(&b, "(none)");
    const char *best = NULL;
    size_t bestd = 3; /* suggest only close matches */
    for (size_t i = 0; i < n->nprops; i++) {
      if (i) lc_buf_puts(&b, ", ");
      if (i == 30) {
        lc_buf_printf(&b, "... (%zu more)", n->nprops - i);
        break;
      }
      lc_buf_puts(&b, n->props[i].name);
    }
    for (size_t i = 0; i < n->nprops; i++) {
      size_t d = lc_edit_distance(k, n->props[i].name);
      if (d < bestd) bestd = d, best = n->props[i].name;
    }
    if (best) {
      lc_buf_puts(&b, " (did you mean ");
      put_quoted(&b, best, 200);
      lc_buf_puts(&b, "?)");
    }
    add_err(x, &s, "%s", b.data ? b.data : "property not allowed");
    lc_buf_free(&b);
  }
}

/* Order-insensitive structural hash consistent with cJSON_Compare, so that
 * uniqueItems is O(n log n) on large arrays instead of pairwise. */
static uint64_t hash_json(const cJSON *v) {
  uint64_t h = 1469598103934665603ull;
  if (cJSON_IsNumber(v)) {
    double d = v->valuedouble;
    if (d == 0) d = 0; /* -0 == 0 */
    uint64_t bits;
    memcpy(&bits, &d, sizeof bits);
    return h ^ (bits * 1099511628211ull) ^ 1;
  }
  if (cJSON_IsString(v)) {
    for (const unsigned char *p = (const unsigned char *)v->valuestring; *p; p++)
      h = (h ^ *p) * 1099511628211ull;
    return h ^ 2;
  }
  if (cJSON_IsArray(v)) {
    for (const cJSON *c = v->child; c; c = c->next)
      h = (h ^ hash_json(c)) * 1099511628211ull;
    return h ^ 3;
  }
  if (cJSON_IsObject(v)) {
    uint64_t sum = 0;
    for (const cJSON *c = v->child; c; c = c->next) {
      uint64_t k = 1469598103934665603ull;
      for (const unsigned char *p = (const unsigned char *)(c->string ? c->string : "");
           *p; p++)
        k = (k ^ *p) * 1099511628211ull;
      sum += k * 31 + hash_json(c);
    }
    return h ^ sum ^ 4;
  }
  return h ^ (uint64_t)(v->type & 0xFF) ^ 5;
}

struct hitem {
  uint64_t h;
  size_t i;
  const cJSON *v;
};

static int cmp_hitem(const void *a, const void *b) {
  const struct hitem *x = a, *y = b;
  if (x->h != y->h) return x->h < y->h ? -1 : 1;
  return x->i < y->i ? -1 : x->i > y->i;
}

static void check_unique(const cJSON *v, const struct seg *path, struct vctx *x) {
  size_t n = (size_t)cJSON_GetArraySize(v);
  if (n < 2) return;
  struct hitem *h = lc_malloc(n * sizeof *h);
  if (!h) {
    x->oom = 1;
    return;
  }
  size_t i = 0;
  for (const cJSON *c = v->child; c; c = c->next, i++)
    h[i] = (struct hitem){hash_json(c), i, c};
  qsort(h, n, sizeof *h, cmp_hitem);
  size_t a = 0, b = 0;
  int dup = 0;
  for (size_t s = 0; s < n && !dup; ) {
    size_t e = s + 1;
    while (e < n && h[e].h == h[s].h) e++;
    for (size_t p = s; p < e && !dup; p++)
      for (size_t q = p + 1; q < e && !dup; q++)
        if (cJSON_Compare(h[p].v, h[q].v, 1)) dup = 1, a = h[p].i, b = h[q].i;
    s = e;
  }
  if (dup) {
    struct lc_buf t;
    lc_buf_init(&t, 0);
    const cJSON *item = cJSON_GetArrayItem(v, (int)a);
    add_err(x, path, "items must be unique; items [%zu] and [%zu] are equal (%s)",
            a, b, jsontext(&t, item));
    lc_buf_free(&t);
  }
  lc_free(h);
}

static void check_array(const struct node *n, const cJSON *v,
                        const struct seg *path, struct vctx *x, int depth) {
  size_t cnt = (size_t)cJSON_GetArraySize(v);
  if (n->min_items >= 0 && cnt < (size_t)n->min_items)
    add_err(x, path, "must have at least %ld item%s; got %zu", n->min_items,
            n->min_items == 1 ? "" : "s", cnt);
  if (n->max_items >= 0 && cnt > (size_t)n->max_items)
    add_err(x, path, "must have at most %ld item%s; got %zu", n->max_items,
            n->max_items == 1 ? "" : "s", cnt);
  size_t i = 0;
  for (const cJSON *c = v->child; c; c = c->next, i++) {
    struct seg s = {path, NULL, i};
    if (i < n->nprefix) validate(n->prefix[i], c, &s, x, depth + 1);
    else if (n->items && n->items->boolean == 0) {
      add_err(x, &s, "too many items; at most %zu allowed", n->nprefix);
      break;
    } else if (n->items) {
      validate(n->items, c, &s, x, depth + 1);
    }
  }
  if (n->unique) check_unique(v, path, x);
}

static void check_string(const struct node *n, const cJSON *v,
                         const struct seg *path, struct vctx *x) {
  struct lc_buf t;
  lc_buf_init(&t, 0);
  if (n->min_len >= 0 || n->max_len >= 0) {
    size_t len = utf8_len(v->valuestring);
    if (n->min_len >= 0 && len < (size_t)n->min_len)
      add_err(x, path, "must be at least %ld character%s long; got %zu (%s)",
              n->min_len, n->min_len == 1 ? "" : "s", len, jsontext(&t, v));
    if (n->max_len >= 0 && len > (size_t)n->max_len)
      add_err(x, path, "must be at most %ld character%s long; got %zu (%s)",
              n->max_len, n->max_len == 1 ? "" : "s", len, jsontext(&t, v));
  }
  if (n->has_re && regexec(&n->re, v->valuestring, 0, NULL, 0) != 0) {
    struct lc_buf p;
    lc_buf_init(&p, 0);
    put_quoted(&p, n->pattern, 200);
    add_err(x, path, "must match the pattern %s; got %s", p.data ? p.data : "",
            jsontext(&t, v));
    lc_buf_free(&p);
  }
  lc_buf_free(&t);
}

static void check_number(const struct node *n, const cJSON *v,
                         const struct seg *path, struct vctx *x) {
  double d = v->valuedouble;
  struct lc_buf t, lim;
  lc_buf_init(&t, 0);
  lc_buf_init(&lim, 0);
#define BOUND(cond, op, bound)                                          \
  if (cond) {                                                           \
    lc_buf_reset(&lim);                                                 \
    put_number(&lim, bound);                                            \
    add_err(x, path, "must be " op " %s; got %s", lim.data ? lim.data : "", \
            jsontext(&t, v));                                           \
  }
  BOUND(n->has_min && !(d >= n->min), ">=", n->min)
  BOUND(n->has_max && !(d <= n->max), "<=", n->max)
  BOUND(n->has_xmin && !(d > n->xmin), ">", n->xmin)
  BOUND(n->has_xmax && !(d < n->xmax), "<", n->xmax)
#undef BOUND
  if (n->has_mult) {
    double q = d / n->mult;
    /* Relative tolerance: 0.3 / 0.1 is 2.9999999999999996 in binary. */
    int ok = isfinite(q) && fabs(q - nearbyint(q)) <= 1e-9 * fmax(1.0, fabs(q));
    if (!ok) {
      lc_buf_reset(&lim);
      put_number(&lim, n->mult);
      add_err(x, path, "must be a multiple of %s; got %s",
              lim.data ? lim.data : "", jsontext(&t, v));
    }
  }
  lc_buf_free(&t);
  lc_buf_free(&lim);
}

static void check_enum(const struct node *n, const cJSON *v,
                       const struct seg *path, struct vctx *x) {
  for (const cJSON *e = n->enum_->child; e; e = e->next)
    if (cJSON_Compare(e, v, 1)) return;
  struct lc_buf b, t;
  lc_buf_init(&b, 0);
  lc_buf_init(&t, 0);
  int i = 0;
  for (const cJSON *e = n->enum_->child; e; e = e->next, i++) {
    if (i == 30) {
      lc_buf_printf(&b, ", ... (%d more)", cJSON_GetArraySize(n->enum_) - i);
      break;
    }
    if (i) lc_buf_puts(&b, ", ");
    put_json(&b, e, 0);
  }
  add_err(x, path, "must be one of %s; got %s", b.data ? b.data : "",
          jsontext(&t, v));
  lc_buf_free(&b);
  lc_buf_free(&t);
}

/* Runs n on v into a private error list; returns the number of errors. The
 * branch's messages are kept (up to keep) for the summary. */
static size_t probe(const struct node *n, const cJSON *v, const struct seg *path,
                    struct vctx *x, int depth, struct lc_schema_errors *sub,
                    size_t keep) {
  memset(sub, 0, sizeof *sub);
  struct vctx y = {sub, keep, 0};
  validate(n, v, path, &y, depth);
  if (y.oom) x->oom = 1;
  return sub->total;
}

/* "alternative 2: expected string, got number 5; $.a: ..." with the path
 * dropped where it is the combinator's own. */
static void summarise(struct lc_buf *b, size_t idx, const struct lc_schema_errors *sub,
                      const struct seg *path) {
  struct lc_buf here;
  lc_buf_init(&here, 0);
  put_path(&here, path);
  lc_buf_printf(b, "(%zu) ", idx + 1);
  for (size_t i = 0; i < sub->count; i++) {
    if (i) lc_buf_puts(b, "; ");
    if (!here.data || strcmp(sub->items[i].path, here.data) != 0)
      lc_buf_printf(b, "%s: ", sub->items[i].path);
    lc_buf_puts(b, sub->items[i].message);
  }
  if (sub->total > sub->count) lc_buf_printf(b, "; ... (%zu more)", sub->total - sub->count);
  lc_buf_free(&here);
}

static void check_choices(const struct node *n, const cJSON *v,
                          const struct seg *path, struct vctx *x, int depth) {
  for (size_t i = 0; i < n->nall; i++) validate(n->all_of[i], v, path, x, depth + 1);
  struct lc_schema_errors sub;
  if (n->nany) {
    struct lc_buf b;
    lc_buf_init(&b, 0);
    int ok = 0;
    for (size_t i = 0; i < n->nany && !ok; i++) {
      if (probe(n->any_of[i], v, path, x, depth + 1, &sub, 2) == 0) ok = 1;
      else {
        if (i) lc_buf_puts(&b, " | ");
        summarise(&b, i, &sub, path);
      }
      lc_schema_errors_free(&sub);
    }
    if (!ok)
      add_err(x, path, "must match at least one of these %zu alternatives (anyOf), "
              "none matched: %s", n->nany, b.data ? b.data : "");
    lc_buf_free(&b);
  }
  if (n->none) {
    struct lc_buf b;
    lc_buf_init(&b, 0);
    size_t matched[2], nm = 0;
    for (size_t i = 0; i < n->none && nm < 2; i++) {
      if (probe(n->one_of[i], v, path, x, depth + 1, &sub, 2) == 0) matched[nm++] = i;
      else {
        if (b.len) lc_buf_puts(&b, " | ");
        summarise(&b, i, &sub, path);
      }
      lc_schema_errors_free(&sub);
    }
    if (nm == 0)
      add_err(x, path, "must match exactly one of these %zu alternatives (oneOf), "
              "none matched: %s", n->none, b.data ? b.data : "");
    else if (nm == 2)
      add_err(x, path, "must match exactly one of the %zu alternatives (oneOf) "
              "but matches both (%zu) and (%zu); make the value specific to one",
              n->none, matched[0] + 1, matched[1] + 1);
    lc_buf_free(&b);
  }
  if (n->not_) {
    size_t bad = probe(n->not_, v, path, x, depth + 1, &sub, 0);
    lc_schema_errors_free(&sub);
    if (bad == 0) {
      struct lc_buf t;
      lc_buf_init(&t, 0);
      add_err(x, path, "must not match the schema under \"not\"; got %s",
              typed(&t, v));
      lc_buf_free(&t);
    }
  }
}

static int validate(const struct node *n, const cJSON *v, const struct seg *path,
                    struct vctx *x, int depth) {
  if (depth > LC_SCHEMA_MAX_VDEPTH) {
    add_err(x, path, "value or schema nested deeper than %d levels "
            "(recursive $ref?); not checked further", LC_SCHEMA_MAX_VDEPTH);
    return -1;
  }
  if (n->boolean == 1) return 0;
  if (n->boolean == 0) {
    add_err(x, path, "no value is allowed here");
    return -1;
  }
  size_t before = x->errs->total;
  if (n->ref) validate(n->ref, v, path, x, depth + 1);
  if (!type_ok(n->types, v)) {
    struct lc_buf b, t;
    lc_buf_init(&b, 0);
    lc_buf_init(&t, 0);
    put_types(&b, n->types);
    add_err(x, path, "expected %s, got %s", b.data ? b.data : "", typed(&t, v));
    lc_buf_free(&b);
    lc_buf_free(&t);
    /* The other keywords would only repeat the type mismatch. */
    return -1;
  }
  if (n->enum_) check_enum(n, v, path, x);
  if (n->const_ && !cJSON_Compare(n->const_, v, 1)) {
    struct lc_buf b, t;
    lc_buf_init(&b, 0);
    lc_buf_init(&t, 0);
    put_json(&b, n->const_, 0);
    add_err(x, path, "must be %s; got %s", b.data ? b.data : "", jsontext(&t, v));
    lc_buf_free(&b);
    lc_buf_free(&t);
  }
  if (cJSON_IsObject(v)) check_object(n, v, path, x, depth);
  else if (cJSON_IsArray(v)) check_array(n, v, path, x, depth);
  else if (cJSON_IsString(v)) check_string(n, v, path, x);
  else if (cJSON_IsNumber(v)) check_number(n, v, path, x);
  check_choices(n, v, path, x, depth);
  return x->errs->total == before ? 0 : -1;
}

int lc_schema_validate(const struct lc_schema *s, const cJSON *value,
                       struct lc_schema_errors *out) {
  memset(out, 0, sizeof *out);
  struct vctx x = {out, LC_SCHEMA_MAX_ERRORS, 0};
  if (!value) {
    add_err(&x, NULL, "no value given");
    return LC_EINVAL;
  }
  validate(s->root, value, NULL, &x, 0);
  if (x.oom) return LC_ENOMEM;
  return out->total ? LC_EINVAL : 0;
}

char *lc_schema_errors_format(const struct lc_schema_errors *e) {
  struct lc_buf b;
  lc_buf_init(&b, 0);
  for (size_t i = 0; i < e->count; i++) {
    if (i) lc_buf_puts(&b, "\n");
    lc_buf_printf(&b, "%s: %s", e->items[i].path, e->items[i].message);
  }
  if (e->total > e->count)
    lc_buf_printf(&b, "%s(%zu more error%s not shown)", e->count ? "\n" : "",
                  e->total - e->count, e->total - e->count == 1 ? "" : "s");
  if (!b.data && lc_buf_puts(&b, "") != 0) return NULL;
  return lc_buf_steal(&b, NULL);
}

void lc_schema_errors_free(struct lc_schema_errors *e) {
  for (size_t i = 0; i < e->count; i++) {
    lc_free(e->items[i].path);
    lc_free(e->items[i].message);
  }
  e->count = 0;
  e->total = 0;
}
