/* react_parse.c: turns one text-mode ReAct reply into thought + action. */
#include "react_parse.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "lc.h"

enum kind { K_TEXT, K_THOUGHT, K_ACTION, K_INPUT, K_FINAL, K_OBS, K_SKIP };

struct line {
  const char *s, *e; /* without the '\n' */
  const char *val;   /* after "Label:" for labelled lines */
  enum kind k;
};

struct sec {
  enum kind k;
  const char *s, *e;
  int claimed; /* an Action Input already taken by a name-only Action */
};

/* One action the reply asks for; more than one distinct is an error. */
struct event {
  int is_finish;
  const char *name, *name_e;
  const char *in, *in_e; /* NULL when there is no input */
  enum lc_react_form form;
};

static int is_hws(int c) { return c == ' ' || c == '\t'; }
static int is_ws(int c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' ||
         c == '\v';
}

static void trim(const char **s, const char **e) {
  while (*s < *e && is_ws((unsigned char)**s)) (*s)++;
  while (*e > *s && is_ws((unsigned char)(*e)[-1])) (*e)--;
}

static int fail_msg(struct lc_react_step *out, enum lc_react_err err,
                    const char *msg) {
  out->err = err;
  snprintf(out->err_detail, sizeof out->err_detail, "%s", msg);
  return LC_EINVAL;
}

/* fmt takes one "%.*s" (alen, a). */
static int fail(struct lc_react_step *out, enum lc_react_err err,
                const char *fmt, const char *a, int alen) {
  out->err = err;
  if (fmt) snprintf(out->err_detail, sizeof out->err_detail, fmt, alen, a);
  return LC_EINVAL;
}

/* Label words, longest first so "Action Input" is not read as "Action". */
static const struct {
  const char *kw;
  enum kind k;
} labels[] = {{"final answer", K_FINAL},
              {"action input", K_INPUT},
              {"action", K_ACTION},
              {"thought", K_THOUGHT},
              {"observation", K_OBS}};

/* Reads "  **Action 2:** rest" and friends: markdown emphasis, headings,
 * quote marks and bullets before the word, a step number after it (the
 * paper's HotpotQA prompts number every line), emphasis around the colon. */
static enum kind match_label(const char *s, const char *e, const char **val) {
  const char *p = s;
  for (;;) {
    while (p < e && (is_hws(*p) || *p == '*' || *p == '_' || *p == '#' ||
                     *p == '>' || *p == '`'))
      p++;
    if (p + 1 < e && (*p == '-' || *p == '+') && is_hws(p[1])) {
      p += 2;
      continue;
    }
    break;
  }
  for (size_t i = 0; i < LC_ARRAY_LEN(labels); i++) {
    size_t n = strlen(labels[i].kw);
    if ((size_t)(e - p) < n || strncasecmp(p, labels[i].kw, n) != 0) continue;
    const char *q = p + n;
    if (q < e && (isalpha((unsigned char)*q) || *q == '_')) continue;
    while (q < e && is_hws(*q)) q++;
    while (q < e && isdigit((unsigned char)*q)) q++;
    while (q < e && (is_hws(*q) || *q == '*' || *q == '_' || *q == '`')) q++;
    if (q >= e || *q != ':') continue;
    q++;
    while (q < e && (*q == '*' || *q == '_' || *q == '`')) q++;
    while (q < e && is_hws(*q)) q++;
    *val = q;
    return labels[i].k;
  }
  return K_TEXT;
}

static int is_fence(const char *s, const char *e) {
  trim(&s, &e);
  return e - s >= 3 && (strncmp(s, "```", 3) == 0 || strncmp(s, "~~~", 3) == 0);
}

/* A line that is only a fence (with an optional language word). */
static int is_fence_line(const char *s, const char *e) {
  trim(&s, &e);
  if (!is_fence(s, e)) return 0;
  for (const char *p = s + 3; p < e; p++)
    if (is_hws(*p)) return 0;
  return 1;
}

/* Removes fences around an input: "```json\n{...}\n```" -> "{...}", and
 * one pair of single backticks around a short input. */
static void strip_fences(const char **s, const char **e) {
  trim(s, e);
  if (is_fence(*s, *e)) {
    const char *nl = memchr(*s, '\n', (size_t)(*e - *s));
    *s = nl ? nl + 1 : *e;
    trim(s, e);
  }
  if (*e - *s >= 3 &&
      (strncmp(*e - 3, "```", 3) == 0 || strncmp(*e - 3, "~~~", 3) == 0)) {
    *e -= 3;
    trim(s, e);
  }
  if (*e - *s >= 2 && **s == '`' && (*e)[-1] == '`' &&
      !memchr(*s + 1, '`', (size_t)(*e - *s - 2))) {
    (*s)++;
    (*e)--;
    trim(s, e);
  }
}

/* Where the input of name[...] ends. The balanced close is found first; then
 * the LAST close on that same line wins, so "a]b]" keeps its stray bracket
 * and "[x] (see [1])" on a later line stays out. Without a balanced close
 * (more opens than closes) the last close in the section is taken. */
static const char *find_close(const char *open, const char *e, char oc,
                              char cc) {
  int depth = 0;
  const char *p, *bal = NULL;
  for (p = open; p < e; p++) {
    if (*p == oc) depth++;
    else if (*p == cc && --depth == 0) {
      bal = p;
      break;
    }
  }
  const char *last = NULL;
  if (bal) {
    const char *eol = memchr(bal, '\n', (size_t)(e - bal));
    if (!eol) eol = e;
    last = bal;
    for (p = bal + 1; p < eol; p++)
      if (*p == cc) last = p;
    return last;
  }
  for (p = open + 1; p < e; p++)
    if (*p == cc) last = p;
  return last;
}

static int name_char(int c) {
  return isalnum(c) || c == '_' || c == '-' || c == '.';
}

/* Reads the content of one Action section into ev. Returns 0, or LC_EINVAL
 * with out->err set. *needs_input is set for a bare name (LangChain). */
static int read_action(const char *s, const char *e, struct event *ev,
                       int *needs_input, struct lc_react_step *out) {
  const char *p = s;
  *needs_input = 0;
  while (p < e && (*p == '`' || *p == '"' || *p == '\'' || *p == '*')) p++;
  const char *n0 = p;
  while (p < e && name_char((unsigned char)*p)) p++;
  const char *n1 = p;
  while (n1 > n0 && n1[-1] == '.') n1--; /* "Action: search." */
  if (n1 == n0) {
    const char *eol = memchr(s, '\n', (size_t)(e - s));
    int l = (int)((eol ? eol : e) - s);
    return fail(out, LC_REACT_EFORMAT,
                l ? "the Action line has no action name: \"%.*s\""
                  : "the Action line is empty%.*s",
                s, l > 60 ? 60 : l);
  }
  while (p < e && (*p == '`' || *p == '"' || *p == '\'' || *p == '*')) p++;
  while (p < e && is_hws(*p)) p++;
  ev->name = n0;
  ev->name_e = n1;
  if (p < e && (*p == '[' || *p == '(')) {
    char oc = *p, cc = *p == '[' ? ']' : ')';
    const char *close = find_close(p, e, oc, cc);
    if (!close)
      return fail(out, LC_REACT_EFORMAT,
                  "the input of action \"%.*s\" is not closed: write "
                  "name[input] with the closing ']'",
                  n0, (int)(n1 - n0));
    ev->in = p + 1;
    ev->in_e = close;
    ev->form = LC_REACT_FORM_BRACKET;
    return 0;
  }
  const char *eol = memchr(p, '\n', (size_t)(e - p));
  const char *q = p;
  while (q < (eol ? eol : e) && (is_hws(*q) || *q == '.')) q++;
  if (q == (eol ? eol : e)) {
    *needs_input = 1;
    ev->form = LC_REACT_FORM_LANGCHAIN;
    return 0;
  }
  int l = (int)((eol ? eol : e) - s);
  return fail(out, LC_REACT_EFORMAT,
              "could not read the action in \"Action: %.*s\": write the "
              "action name followed by its input in brackets",
              s, l > 80 ? 80 : l);
}

static int same_span(const char *a, const char *ae, const char *b,
                     const char *be, int nocase) {
  if (!a || !b) return a == b;
  size_t n = (size_t)(ae - a);
  if (n != (size_t)(be - b)) return 0;
  return nocase ? strncasecmp(a, b, n) == 0 : memcmp(a, b, n) == 0;
}

static int is_finish_name(const char *s, const char *e) {
  return e - s == 6 && strncasecmp(s, "finish", 6) == 0;
}

/* 1-based line and column of byte at in [s, e). */
static void where(const char *s, const char *at, int *line, int *col) {
  *line = 1;
  *col = 1;
  for (const char *p = s; p < at; p++) {
    if (*p == '\n') {
      (*line)++;
      *col = 1;
    } else {
      (*col)++;
    }
  }
}

/* Locating a JSON syntax error. cJSON's error pointer is approximate (one
 * byte late, and the last byte when input runs out), so a failed parse is
 * re-scanned by this syntax-only reader to tell the model exactly where.
 * Returns the offset of the first bad byte, n when the text ends too early,
 * or (size_t)-1 when it finds nothing wrong. */
struct jscan {
  const char *s;
  size_t n, i;
  int depth;
};

static void jws(struct jscan *j) {
  while (j->i < j->n && is_ws((unsigned char)j->s[j->i])) j->i++;
}

static int jlit(struct jscan *j, const char *w) {
  for (; *w; w++, j->i++)
    if (j->i >= j->n || j->s[j->i] != *w) return -1;
  return 0;
}

static int jstring(struct jscan *j) {
  j->i++; /* opening quote */
  while (j->i < j->n) {
    unsigned char c = (unsigned char)j->s[j->i];
    if (c == '"') {
      j->i++;
      return 0;
    }
    if (c < 0x20) return -1;
    if (c == '\\') {
      j->i++;
      if (j->i >= j->n) return -1;
      c = (unsigned char)j->s[j->i];
      if (c == 'u') {
        for (int k = 0; k < 4; k++) {
          j->i++;
          if (j->i >= j->n || !isxdigit((unsigned char)j->s[j->i])) return -1;
        }
      } else if (!strchr("\"\\/bfnrt", c) || !c) {
        return -1;
      }
    }
    j->i++;
  }
  return -1;
}

static int jdigits(struct jscan *j) {
  size_t st = j->i;
  while (j->i < j->n && isdigit((unsigned char)j->s[j->i])) j->i++;
  return j->i > st ? 0 : -1;
}

static int jvalue(struct jscan *j);

static int jnumber(struct jscan *j) {
  if (j->s[j->i] == '-') j->i++;
  if (j->i < j->n && j->s[j->i] == '0') j->i++;
  else if (jdigits(j)) return -1;
  if (j->i < j->n && j->s[j->i] == '.') {
    j->i++;
    if (jdigits(j)) return -1;
  }
  if (j->i < j->n && (j->s[j->i] == 'e' || j->s[j->i] == 'E')) {
    j->i++;
    if (j->i < j->n && (j->s[j->i] == '+' || j->s[j->i] == '-')) j->i++;
    if (jdigits(j)) return -1;
  }
  return 0;
}

static int jcontainer(struct jscan *j, char close) {
  if (++j->depth > 512) return -1;
  j->i++;
  jws(j);
  if (j->i < j->n && j->s[j->i] == close) {
    j->i++;
    j->depth--;
    return 0;
  }
  for (;;) {
    jws(j);
    if (close == '}') {
      if (j->i >= j->n || j->s[j->i] != '"' || jstring(j)) return -1;
      jws(j);
      if (j->i >= j->n || j->s[j->i] != ':') return -1;
      j->i++;
    }
    if (jvalue(j)) return -1;
    jws(j);
    if (j->i >= j->n) return -1;
    if (j->s[j->i] == close) {
      j->i++;
      j->depth--;
      return 0;
    }
    if (j->s[j->i] != ',') return -1;
    j->i++;
  }
}

static int jvalue(struct jscan *j) {
  jws(j);
  if (j->i >= j->n) return -1;
  switch (j->s[j->i]) {
  case '{': return jcontainer(j, '}');
  case '[': return jcontainer(j, ']');
  case '"': return jstring(j);
  case 't': return jlit(j, "true");
  case 'f': return jlit(j, "false");
  case 'n': return jlit(j, "null");
  default:
    if (j->s[j->i] == '-' || isdigit((unsigned char)j->s[j->i])) return jnumber(j);
    return -1;
  }
}

static size_t json_error_at(const char *s, size_t n) {
  struct jscan j = {s, n, 0, 0};
  if (jvalue(&j)) return j.i < n ? j.i : n;
  return (size_t)-1;
}

/* Parses [s, e) as JSON. A JSON object may be followed by text on later
 * lines (models comment after it); anything else after it on the same line
 * is an error. Returns the tree, or NULL with out->err = EJSON. */
static cJSON *parse_json(const char *s, const char *e, const char *what,
                         struct lc_react_step *out) {
  const char *end = NULL;
  cJSON *j = cJSON_ParseWithLengthOpts(s, (size_t)(e - s), &end, 0);
  const char *at = end && end >= s && end <= e ? end : e;
  if (!j) {
    size_t off = json_error_at(s, (size_t)(e - s));
    if (off != (size_t)-1) at = s + off;
  }
  if (j) {
    const char *p = at;
    while (p < e && is_hws(*p)) p++;
    if (p == e || *p == '\n' || *p == '\r') return j;
    cJSON_Delete(j);
    at = p;
  }
  int line, col;
  where(s, at, &line, &col);
  char near[32];
  size_t k = 0;
  for (const char *p = at; p < e && k < 20; p++) near[k++] = *p == '\n' ? ' ' : *p;
  near[k] = '\0';
  out->err = LC_REACT_EJSON;
  if (k)
    snprintf(out->err_detail, sizeof out->err_detail,
             "%s is not valid JSON: error at line %d, column %d, near \"%s\"",
             what, line, col, near);
  else
    snprintf(out->err_detail, sizeof out->err_detail,
             "%s is not valid JSON: it ends too early (line %d, column %d); "
             "check for a missing '}' or '\"'",
             what, line, col);
  return NULL;
}

static char *dupspan(const char *s, const char *e) {
  return lc_strndup(s, (size_t)(e - s));
}

/* Fills out from the chosen event: input, args, finish answer. */
static int finish_event(const struct event *ev, struct lc_react_step *out) {
  out->form = ev->form;
  out->is_finish = ev->is_finish;
  out->action = ev->is_finish ? lc_strdup("finish") : dupspan(ev->name, ev->name_e);
  if (!out->action) return LC_ENOMEM;
  if (!ev->in) {
    if (ev->is_finish)
      return fail_msg(out, LC_REACT_ENOANSWER, "finish has no answer");
    return 0;
  }
  const char *s = ev->in, *e = ev->in_e;
  strip_fences(&s, &e);
  out->input = dupspan(s, e);
  if (!out->input) return LC_ENOMEM;
  out->input_len = (size_t)(e - s);
  const char *as = s, *ae = e; /* the answer text for finish */
  char *decoded = NULL;
  if (s < e && *s == '{') {
    out->args = parse_json(s, e, ev->is_finish ? "the answer" : "the input", out);
    if (!out->args) {
      /* A finish answer may legitimately be prose that starts with '{'. */
      if (!ev->is_finish) return LC_EINVAL;
      out->err = LC_REACT_OK;
      out->err_detail[0] = '\0';
    }
  } else if (s < e && *s == '"') {
    /* LangChain strips quotes around the input; decode a JSON string. */
    cJSON *j = cJSON_ParseWithLength(s, (size_t)(e - s));
    if (j && cJSON_IsString(j)) {
      decoded = lc_strdup(j->valuestring);
      if (!decoded) {
        cJSON_Delete(j);
        return LC_ENOMEM;
      }
      lc_free(out->input);
      out->input = decoded;
      out->input_len = strlen(decoded);
      as = decoded;
      ae = decoded + out->input_len;
    }
    cJSON_Delete(j);
  }
  if (!ev->is_finish) return 0;
  if (out->args) {
    cJSON *a = cJSON_GetObjectItemCaseSensitive(out->args, "answer");
    if (cJSON_IsString(a)) {
      as = a->valuestring;
      ae = as + strlen(as);
    }
  }
  trim(&as, &ae);
  if (as == ae)
    return fail_msg(out, LC_REACT_ENOANSWER, "finish has no answer");
  out->answer = dupspan(as, ae);
  return out->answer ? 0 : LC_ENOMEM;
}

/* The whole reply as one JSON object with an "action" member. Returns 1 when
 * it was that form (out filled or out->err set via *rc), 0 otherwise. */
static int try_json_form(const char *s, const char *e, struct lc_react_step *out,
                         int *rc) {
  if (e - s < 2 || *s != '{' || e[-1] != '}') return 0;
  cJSON *j = cJSON_ParseWithLength(s, (size_t)(e - s));
  cJSON *act = j ? cJSON_GetObjectItemCaseSensitive(j, "action") : NULL;
  if (!cJSON_IsString(act)) {
    cJSON_Delete(j);
    return 0;
  }
  cJSON *th = cJSON_GetObjectItemCaseSensitive(j, "thought");
  cJSON *in = cJSON_GetObjectItemCaseSensitive(j, "input");
  if (!in) in = cJSON_GetObjectItemCaseSensitive(j, "action_input");
  const char *name = act->valuestring;
  *rc = LC_ENOMEM;
  out->form = LC_REACT_FORM_JSON;
  out->is_finish = strcasecmp(name, "finish") == 0 ||
                   strcasecmp(name, "final answer") == 0;
  if (cJSON_IsString(th) && !(out->thought = lc_strdup(th->valuestring))) goto done;
  if (!(out->action = lc_strdup(out->is_finish ? "finish" : name))) goto done;
  if (!*name) {
    *rc = fail_msg(out, LC_REACT_EFORMAT, "\"action\" is empty");
    goto done;
  }
  if (cJSON_IsString(in)) {
    if (!(out->input = lc_strdup(in->valuestring))) goto done;
    out->input_len = strlen(out->input);
  } else if (in && !cJSON_IsNull(in)) {
    if (!(out->input = cJSON_PrintUnformatted(in))) goto done;
    /* cJSON's allocator is not ours: copy so lc_free can release it. */
    char *copy = lc_strdup(out->input);
    cJSON_free(out->input);
    if (!(out->input = copy)) goto done;
    out->input_len = strlen(copy);
    if (cJSON_IsObject(in)) out->args = cJSON_DetachItemViaPointer(j, in);
  }
  *rc = 0;
  if (out->is_finish) {
    const char *a = NULL;
    if (cJSON_IsString(in)) a = in->valuestring;
    else if (out->args) {
      cJSON *x = cJSON_GetObjectItemCaseSensitive(out->args, "answer");
      if (cJSON_IsString(x)) a = x->valuestring;
    }
    const char *as = a, *ae = a ? a + strlen(a) : NULL;
    if (a) trim(&as, &ae);
    if (!a || as == ae)
      *rc = fail_msg(out, LC_REACT_ENOANSWER, "finish has no answer");
    else if (!(out->answer = dupspan(as, ae)))
      *rc = LC_ENOMEM;
  }
done:
  cJSON_Delete(j);
  return 1;
}

static int parse(char *t, size_t n, struct lc_react_step *out) {
  size_t nl = 1;
  for (size_t i = 0; i < n; i++) nl += t[i] == '\n';
  struct line *L = lc_calloc(nl, sizeof *L);
  struct sec *S = NULL; /* sized by labelled lines once they are known */
  struct event *E = NULL;
  struct lc_buf th; /* Thought sections joined by '\n' */
  lc_buf_init(&th, 0);
  int rc = LC_ENOMEM;
  if (!L) goto out;

  size_t k = 0;
  for (char *p = t, *end = t + n;;) {
    char *q = memchr(p, '\n', (size_t)(end - p));
    L[k].s = p;
    L[k].e = q ? q : end;
    k++;
    if (!q) break;
    p = q + 1;
  }

  /* Fences around the whole reply: the first non-blank line opens one; the
   * last non-blank line closes it only if the first opened it, so a fenced
   * Action Input at the end of the reply keeps its closing fence. */
  size_t first = 0, last = k;
  while (first < k) {
    const char *a = L[first].s, *b = L[first].e;
    trim(&a, &b);
    if (a != b) break;
    first++;
  }
  while (last > first) {
    const char *a = L[last - 1].s, *b = L[last - 1].e;
    trim(&a, &b);
    if (a != b) break;
    last--;
  }
  if (first < last && is_fence_line(L[first].s, L[first].e)) {
    L[first].k = K_SKIP;
    if (last - 1 > first && is_fence_line(L[last - 1].s, L[last - 1].e))
      L[last - 1].k = K_SKIP;
  }
  {
    const char *a = NULL, *b = NULL;
    for (size_t i = first; i < last; i++) {
      if (L[i].k == K_SKIP) continue;
      if (!a) a = L[i].s;
      b = L[i].e;
    }
    if (a) trim(&a, &b);
    if (!a || a == b) {
      rc = fail_msg(out, LC_REACT_EEMPTY, "the reply is empty");
      goto out;
    }
    if (try_json_form(a, b, out, &rc)) goto out;
  }

  /* Label every line; cut at the first Observation after an action. An
   * Observation before any action (an echo of the last one) is ignored. */
  int seen_action = 0, any_label = 0;
  size_t cut = k, nlab = 0;
  for (size_t i = 0; i < k; i++) {
    if (L[i].k == K_SKIP) continue;
    L[i].k = match_label(L[i].s, L[i].e, &L[i].val);
    if (L[i].k == K_OBS && seen_action) {
      cut = i;
      out->observation_cut = 1;
      break;
    }
    if (L[i].k == K_ACTION || L[i].k == K_FINAL) seen_action = 1;
    if (L[i].k != K_TEXT) nlab++;
    if (L[i].k != K_TEXT && L[i].k != K_OBS) any_label = 1;
  }

  /* Sections: a labelled line plus the unlabelled lines after it. Text
   * before the first label is one K_TEXT section (an untagged thought). */
  S = lc_calloc(nlab + 1, sizeof *S); /* + the untagged preamble */
  E = lc_calloc(nlab ? nlab : 1, sizeof *E);
  if (!S || !E) goto out;
  size_t ns = 0;
  for (size_t i = 0; i < cut; i++) {
    if (L[i].k == K_SKIP) continue;
    if (L[i].k == K_TEXT && ns > 0) {
      S[ns - 1].e = L[i].e;
      continue;
    }
    S[ns].k = L[i].k;
    S[ns].s = L[i].k == K_TEXT ? L[i].s : L[i].val;
    S[ns].e = L[i].e;
    ns++;
  }

  size_t ne = 0;
  for (size_t i = 0; i < ns; i++) {
    struct sec *sc = &S[i];
    const char *s = sc->s, *e = sc->e;
    trim(&s, &e);
    if (sc->k == K_THOUGHT && s < e) {
      if ((th.len && (rc = lc_buf_puts(&th, "\n"))) ||
          (rc = lc_buf_append(&th, s, (size_t)(e - s))))
        goto out;
    } else if (sc->k == K_FINAL) {
      E[ne].is_finish = 1;
      E[ne].form = LC_REACT_FORM_FINAL;
      E[ne].in = s;
      E[ne].in_e = e;
      ne++;
    } else if (sc->k == K_ACTION) {
      int needs_input;
      struct event *ev = &E[ne];
      if ((rc = read_action(s, e, ev, &needs_input, out))) goto out;
      if (needs_input) {
        /* LangChain: the next Action Input before another action. */
        for (size_t j = i + 1; j < ns; j++) {
          if (S[j].k == K_ACTION || S[j].k == K_FINAL) break;
          if (S[j].k == K_INPUT && !S[j].claimed) {
            S[j].claimed = 1;
            ev->in = S[j].s;
            ev->in_e = S[j].e;
            trim(&ev->in, &ev->in_e);
            break;
          }
        }
      }
      ev->is_finish = is_finish_name(ev->name, ev->name_e);
      ne++;
    }
  }
  rc = LC_ENOMEM;
  if (th.len && !(out->thought = lc_buf_steal(&th, NULL))) goto out;
  if (!out->thought && ns > 0 && S[0].k == K_TEXT) {
    const char *s = S[0].s, *e = S[0].e;
    trim(&s, &e);
    if (s < e && !(out->thought = dupspan(s, e))) goto out;
  }

  if (ne == 0) {
    rc = any_label ? fail_msg(out, LC_REACT_ENOACTION, "the reply has no Action line")
                   : fail_msg(out, LC_REACT_EFORMAT, "the reply is not in the expected format: no "
                          "Thought/Action lines found");
    goto out;
  }
  /* The same action written twice is harmless; two different ones are an
   * error, since running one of them would be a guess. */
  for (size_t i = 1; i < ne; i++) {
    int same = E[i].is_finish == E[0].is_finish &&
               (E[0].is_finish ||
                same_span(E[i].name, E[i].name_e, E[0].name, E[0].name_e, 1)) &&
               same_span(E[i].in, E[i].in_e, E[0].in, E[0].in_e, 0);
    if (!same) {
      const char *a = E[0].is_finish ? "finish" : E[0].name;
      int al = E[0].is_finish ? 6 : (int)(E[0].name_e - E[0].name);
      const char *b = E[i].is_finish ? "finish" : E[i].name;
      int bl = E[i].is_finish ? 6 : (int)(E[i].name_e - E[i].name);
      out->err = LC_REACT_EMULTI;
      snprintf(out->err_detail, sizeof out->err_detail,
               "the reply has %zu actions (%.*s, then %.*s)", ne, al > 40 ? 40 : al,
               a, bl > 40 ? 40 : bl, b);
      rc = LC_EINVAL;
      goto out;
    }
  }
  rc = finish_event(&E[0], out);

out:
  lc_buf_free(&th);
  lc_free(L);
  lc_free(S);
  lc_free(E);
  return rc;
}

int lc_react_parse(const char *text, size_t len, struct lc_react_step *out) {
  memset(out, 0, sizeof *out);
  /* A private copy with CRLF / CR -> LF and NUL -> space, so every later
   * step sees plain '\n' lines and C strings come out whole. */
  char *t = lc_malloc(len + 1);
  if (!t) return LC_ENOMEM;
  size_t n = 0;
  for (size_t i = 0; i < len; i++) {
    char c = text[i];
    if (c == '\r') {
      if (i + 1 < len && text[i + 1] == '\n') continue;
      c = '\n';
    } else if (c == '\0') {
      c = ' ';
    }
    t[n++] = c;
  }
  t[n] = '\0';
  int rc = parse(t, n, out);
  lc_free(t);
  return rc;
}

void lc_react_step_free(struct lc_react_step *st) {
  if (!st) return;
  lc_free(st->thought);
  lc_free(st->action);
  lc_free(st->input);
  lc_free(st->answer);
  cJSON_Delete(st->args);
  st->thought = st->action = st->input = st->answer = NULL;
  st->args = NULL;
}

const char *lc_react_err_name(enum lc_react_err e) {
  switch (e) {
  case LC_REACT_OK: return "ok";
  case LC_REACT_EEMPTY: return "empty";
  case LC_REACT_ENOACTION: return "no_action";
  case LC_REACT_EMULTI: return "multiple_actions";
  case LC_REACT_ENOANSWER: return "no_answer";
  case LC_REACT_EJSON: return "bad_json";
  case LC_REACT_EFORMAT: return "bad_format";
  }
  return "unknown";
}

int lc_react_format_error(const struct lc_react_step *st,
                          enum lc_react_style style,
                          const char *const *allowed, size_t n_allowed,
                          struct lc_buf *out) {
  const char *what = st->err_detail[0] ? st->err_detail : NULL;
  if (!what) {
    switch (st->err) {
    case LC_REACT_EEMPTY: what = "the reply is empty"; break;
    case LC_REACT_ENOACTION: what = "the reply has no Action line"; break;
    case LC_REACT_EMULTI: what = "the reply has more than one action"; break;
    case LC_REACT_ENOANSWER: what = "finish has no answer"; break;
    case LC_REACT_EJSON: what = "the input is not valid JSON"; break;
    default: what = "the reply is not in the expected format"; break;
    }
  }
  int rc = lc_buf_printf(out, "Invalid reply: %s.", what);
  if (!rc && st->err == LC_REACT_EMULTI)
    rc = lc_buf_puts(out, " Write exactly one action, then stop and wait for "
                          "its Observation.");
  if (!rc && st->err == LC_REACT_EJSON)
    rc = lc_buf_puts(out, " Give the input as one JSON object on the same "
                          "line, e.g. {\"name\": \"value\"}.");
  if (!rc)
    rc = lc_buf_puts(
        out, style == LC_REACT_STYLE_LANGCHAIN
                 ? "\nReply in exactly this format:\nThought: <your "
                   "reasoning>\nAction: <action name>\nAction Input: "
                   "<input>\nWhen you know the answer, reply:\nThought: "
                   "<your reasoning>\nFinal Answer: <the answer>\n"
                 : "\nReply in exactly this format:\nThought: <your "
                   "reasoning>\nAction: <action name>[<input>]\nWhen you "
                   "know the answer, reply:\nThought: <your "
                   "reasoning>\nAction: finish[<the answer>]\n");
  if (!rc) rc = lc_buf_puts(out, "Allowed actions: ");
  int has_finish = 0;
  for (size_t i = 0; !rc && i < n_allowed; i++) {
    has_finish |= strcmp(allowed[i], "finish") == 0;
    rc = lc_buf_printf(out, "%s%s", i ? ", " : "", allowed[i]);
  }
  if (!rc && !has_finish) rc = lc_buf_puts(out, n_allowed ? ", finish" : "finish");
  if (!rc) rc = lc_buf_puts(out, ".");
  return rc;
}
