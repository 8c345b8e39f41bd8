/* secrets.c: registry of known secret values and the in-place scrubber. */
#include "secrets.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lc.h"

extern char **environ;

/* One form of one secret: the raw bytes, or an encoding of them. */
struct form {
  char *s;
  size_t len;
  int json; /* may appear in JSON text as is: an escaped or percent form,
               or a raw value with no quote, backslash or control byte */
  int raw;  /* the value itself (its forms were added with it) */
};

static pthread_rwlock_t lock = PTHREAD_RWLOCK_INITIALIZER;
static _Atomic int nforms_pub; /* for the lock-free "nothing to do" check */
static struct form *forms;
static size_t nforms, capforms;
/* Bit (a << 8 | b) is set when some form has a fragment starting "ab":
 * one test per text byte rejects almost every position. */
static uint64_t bigram[65536 / 64];

#define MASK_LEN (sizeof LC_SECRET_MASK - 1)
/* Enough for any real credential; a longer value is still scrubbed, only
 * its first part is registered (a fragment of it is a match). */
#define MAX_SECRET 4096

static size_t frag_len(const struct form *f) {
  return f->len < LC_SECRET_MIN_FRAGMENT ? f->len : LC_SECRET_MIN_FRAGMENT;
}

static void mark_bigrams(const struct form *f) {
  size_t k = frag_len(f);
  for (size_t o = 0; o + k <= f->len; o++) {
    unsigned b = (unsigned char)f->s[o] << 8 | (unsigned char)f->s[o + 1];
    bigram[b >> 6] |= 1ull << (b & 63);
  }
}

/* Takes s (malloc'd). raw: the value itself (its JSON form is another
 * form). Caller holds the write lock. */
static int add_form(char *s, size_t len, int raw) {
  int json = 1;
  for (size_t i = 0; raw && i < len; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c == '"' || c == '\\' || c < 0x20) json = 0;
  }
  for (size_t i = 0; i < nforms; i++)
    if (forms[i].len == len && memcmp(forms[i].s, s, len) == 0) {
      forms[i].json |= json;
      forms[i].raw |= raw;
      free(s);
      return 0;
    }
  if (nforms == capforms) {
    size_t cap = capforms ? capforms * 2 : 16;
    struct form *v = realloc(forms, cap * sizeof *v);
    if (!v) {
      free(s);
      return LC_ENOMEM;
    }
    forms = v;
    capforms = cap;
  }
  struct form *f = &forms[nforms];
  f->s = s;
  f->len = len;
  f->json = json;
  f->raw = raw;
  mark_bigrams(f);
  nforms++;
  atomic_store(&nforms_pub, (int)nforms);
  return 0;
}

/* JSON string escaping as cJSON and most servers write it; slash: also
 * "\/" (PHP, some proxies). Returns malloc'd text, or NULL. */
static char *json_escape(const char *v, size_t n, int slash, size_t *out) {
  char *o = malloc(n * 6 + 1), *p = o;
  if (!o) return NULL;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)v[i];
    switch (c) {
      case '"': *p++ = '\\'; *p++ = '"'; break;
      case '\\': *p++ = '\\'; *p++ = '\\'; break;
      case '\n': *p++ = '\\'; *p++ = 'n'; break;
      case '\r': *p++ = '\\'; *p++ = 'r'; break;
      case '\t': *p++ = '\\'; *p++ = 't'; break;
      case '\b': *p++ = '\\'; *p++ = 'b'; break;
      case '\f': *p++ = '\\'; *p++ = 'f'; break;
      case '/':
        if (slash) *p++ = '\\';
        *p++ = '/';
        break;
      default:
        if (c < 0x20) {
          static const char hx[] = "0123456789abcdef";
          *p++ = '\\'; *p++ = 'u'; *p++ = '0'; *p++ = '0';
          *p++ = hx[c >> 4]; *p++ = hx[c & 15];
        } else {
          *p++ = (char)c;
        }
    }
  }
  *p = '\0';
  *out = (size_t)(p - o);
  return o;
}

/* RFC 3986 percent-encoding of everything but unreserved bytes. */
static char *pct_encode(const char *v, size_t n, int lower, size_t *out) {
  const char *hx = lower ? "0123456789abcdef" : "0123456789ABCDEF";
  char *o = malloc(n * 3 + 1), *p = o;
  if (!o) return NULL;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)v[i];
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
        c == '-' || c == '.' || c == '_' || c == '~') {
      *p++ = (char)c;
    } else {
      *p++ = '%';
      *p++ = hx[c >> 4];
      *p++ = hx[c & 15];
    }
  }
  *p = '\0';
  *out = (size_t)(p - o);
  return o;
}

static char *dup_n(const char *v, size_t n) {
  char *o = malloc(n + 1);
  if (o) {
    memcpy(o, v, n);
    o[n] = '\0';
  }
  return o;
}

int lc_secret_add(const char *value, size_t len) {
  if (!value) return 0;
  /* Surrounding blanks are not part of a key (a header value, a .env). */
  while (len && (*value == ' ' || *value == '\t')) value++, len--;
  while (len && (value[len - 1] == ' ' || value[len - 1] == '\t' ||
                 value[len - 1] == '\n' || value[len - 1] == '\r'))
    len--;
  if (len < LC_SECRET_MIN_LEN) return 0;
  if (len > MAX_SECRET) len = MAX_SECRET;
  /* Every LLM call registers its key: the usual case is "known", found
   * under the read lock without allocating. */
  int known = 0;
  pthread_rwlock_rdlock(&lock);
  for (size_t i = 0; i < nforms && !known; i++)
    known = forms[i].raw && forms[i].len == len && memcmp(forms[i].s, value, len) == 0;
  pthread_rwlock_unlock(&lock);
  if (known) return 0;
  char *v[5];
  size_t n[5];
  v[0] = dup_n(value, len);
  n[0] = len;
  v[1] = json_escape(value, len, 0, &n[1]);
  v[2] = json_escape(value, len, 1, &n[2]);
  v[3] = pct_encode(value, len, 0, &n[3]);
  v[4] = pct_encode(value, len, 1, &n[4]);
  int rc = 0;
  pthread_rwlock_wrlock(&lock);
  for (int i = 0; i < 5; i++) {
    if (!v[i]) rc = LC_ENOMEM;
    else if (add_form(v[i], n[i], i == 0)) rc = LC_ENOMEM; /* add_form owns v[i] */
  }
  pthread_rwlock_unlock(&lock);
  return rc;
}

int lc_secret_add_header(const char *name, size_t name_len, const char *value,
                         size_t value_len) {
  static const char *const names[] = {"authorization", "proxy-authorization", "x-api-key",
                                      "api-key", "x-goog-api-key", NULL};
  int hit = 0;
  for (int i = 0; names[i]; i++)
    if (strlen(names[i]) == name_len && strncasecmp(name, names[i], name_len) == 0) hit = 1;
  if (!hit || !value) return 0;
  /* "Bearer TOKEN", "Basic B64": the credential is the token (an echo of
   * the whole value then reads "Bearer [REDACTED]"). */
  const char *sp = memchr(value, ' ', value_len);
  if (sp) return lc_secret_add(sp + 1, value_len - (size_t)(sp + 1 - value));
  return lc_secret_add(value, value_len);
}

static int ends_with(const char *s, size_t n, const char *suf) {
  size_t k = strlen(suf);
  return n >= k && strncasecmp(s + n - k, suf, k) == 0;
}

static int credential_name(const char *name, size_t n) {
  return ends_with(name, n, "API_KEY") || ends_with(name, n, "_TOKEN") ||
         ends_with(name, n, "_SECRET_ACCESS_KEY") || ends_with(name, n, "_SECRET");
}

const char *lc_secret_getenv(const char *name) {
  const char *v = getenv(name);
  if (v && credential_name(name, strlen(name))) lc_secret_add(v, strlen(v));
  return v;
}

void lc_secrets_from_env(void) {
  for (char **e = environ; e && *e; e++) {
    const char *eq = strchr(*e, '=');
    if (eq && credential_name(*e, (size_t)(eq - *e))) lc_secret_add(eq + 1, strlen(eq + 1));
  }
}

int lc_secrets_any(void) { return atomic_load(&nforms_pub) > 0; }

void lc_secrets_reset(void) {
  pthread_rwlock_wrlock(&lock);
  for (size_t i = 0; i < nforms; i++) free(forms[i].s);
  free(forms);
  forms = NULL;
  nforms = capforms = 0;
  memset(bigram, 0, sizeof bigram);
  atomic_store(&nforms_pub, 0);
  pthread_rwlock_unlock(&lock);
}

/* Length of the longest registered run starting at s[i] (0 if none). */
static size_t match_at(const char *s, size_t n, size_t i, int mode) {
  size_t best = 0;
  for (size_t f = 0; f < nforms; f++) {
    const struct form *fm = &forms[f];
    if (mode == LC_SCRUB_JSON && !fm->json) continue;
    size_t k = frag_len(fm);
    if (n - i < k) continue;
    for (size_t o = 0; o + k <= fm->len; o++) {
      if (fm->s[o] != s[i] || fm->s[o + 1] != s[i + 1] || memcmp(fm->s + o, s + i, k)) continue;
      size_t l = k;
      while (i + l < n && o + l < fm->len && s[i + l] == fm->s[o + l]) l++;
      if (l > best) best = l;
    }
  }
  return best;
}

/* The scrub works in place: input byte i is at s[i] once i >= r (not read
 * yet); bytes in [done, r) were copied unchanged to r - w places earlier,
 * and their old places may hold output by now. */
struct cursor {
  const char *s;
  size_t n, r, w, done;
};

static char in_at(const struct cursor *c, size_t i) {
  return i < c->r ? c->s[i - (c->r - c->w)] : c->s[i];
}

/* Does input byte j (>= done) start an escape (a backslash after an even
 * run of them since done; a match never ends inside an escape, so done is
 * a boundary)? */
static int escape_starts(const struct cursor *c, size_t j) {
  if (in_at(c, j) != '\\') return 0;
  size_t run = 0;
  while (j > c->done + run && in_at(c, j - 1 - run) == '\\') run++;
  return run % 2 == 0;
}

static size_t escape_len(const struct cursor *c, size_t j) {
  return j + 1 < c->n && in_at(c, j + 1) == 'u' ? 6 : 2;
}

size_t lc_secrets_scrub(char *s, size_t n, int mode) {
  if (!s || n < 2 || !lc_secrets_any()) return n;
  pthread_rwlock_rdlock(&lock);
  struct cursor c = {s, n, 0, 0, 0}; /* read, write; done: settled input */
  int changed = 0;
  while (c.r < n) {
    size_t l = 0, r = c.r;
    if (r + 1 < n) {
      unsigned b = (unsigned char)s[r] << 8 | (unsigned char)s[r + 1];
      if (bigram[b >> 6] & (1ull << (b & 63))) l = match_at(s, n, r, mode);
    }
    if (!l) {
      s[c.w++] = s[c.r++];
      continue;
    }
    size_t start = r, end = r + l;
    if (mode == LC_SCRUB_JSON) {
      /* Never cut an escape sequence in two: the rest would be invalid
       * JSON, or a lone '"' would end the string early. */
      for (size_t j = start; j > c.done && start - j < 6;) {
        j--;
        if (escape_starts(&c, j) && j + escape_len(&c, j) > start) {
          start = j;
          break;
        }
      }
      for (size_t p = start; p < end;) {
        if (in_at(&c, p) == '\\') {
          size_t e = p + escape_len(&c, p);
          if (e > n) e = n;
          if (e > end) end = e;
          p = e;
        } else {
          p++;
        }
      }
    }
    c.w -= r - start; /* bytes already copied 1:1 from start..r */
    memcpy(s + c.w, LC_SECRET_MASK, MASK_LEN);
    c.w += MASK_LEN;
    c.r = c.done = end;
    changed = 1;
  }
  pthread_rwlock_unlock(&lock);
  if (changed && c.w < n) s[c.w] = '\0';
  return c.w;
}

void lc_secrets_scrub_str(char *s) {
  if (s) lc_secrets_scrub(s, strlen(s), LC_SCRUB_TEXT);
}
