/* jsonr.c: the pull JSON reader (jsonr.h): tokenizing, string decoding
 * and checking, straight over the caller's bytes. */
#include "jsonr.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cnum.h"
#include "lc.h"
#include "utf8.h"

static int fail(struct lc_jsonr *r, size_t at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(struct lc_jsonr *r, size_t at, const char *fmt, ...) {
  if (r->err)
    return r->err;
  r->err = LC_EINVAL;
  int k = snprintf(r->msg, sizeof r->msg, "invalid JSON at byte %zu of %zu: ",
                   at, r->n);
  va_list ap;
  va_start(ap, fmt);
  if (k > 0 && (size_t)k < sizeof r->msg)
    vsnprintf(r->msg + k, sizeof r->msg - (size_t)k, fmt, ap);
  va_end(ap);
  return r->err;
}

static int fail_utf8(struct lc_jsonr *r, size_t at) {
  if (r->err)
    return r->err;
  r->err = LC_EINVAL;
  snprintf(r->msg, sizeof r->msg, "invalid UTF-8 at byte %zu", at);
  return r->err;
}

void lc_jsonr_init(struct lc_jsonr *r, const char *s, size_t n) {
  r->s = s;
  r->n = n;
  r->pos = 0;
  r->depth = 0;
  r->first = 0;
  r->err = 0;
  r->key = NULL;
  r->klen = 0;
  r->msg[0] = '\0';
  /* cJSON skips a BOM when more bytes follow; lc_json_parse accepted it. */
  if (n > 4 && memcmp(s, "\xEF\xBB\xBF", 3) == 0)
    r->pos = 3;
}

static inline void skip_ws(struct lc_jsonr *r) {
  const char *s = r->s;
  size_t i = r->pos, n = r->n;
  while (i < n && (s[i] == ' ' || s[i] == '\n' || s[i] == '\r' || s[i] == '\t'))
    i++;
  r->pos = i;
}

enum lc_jsonr_type lc_jsonr_peek(struct lc_jsonr *r) {
  skip_ws(r);
  if (r->err || r->pos >= r->n)
    return LC_JSONR_BAD;
  switch (r->s[r->pos]) {
  case '{': return LC_JSONR_OBJECT;
  case '[': return LC_JSONR_ARRAY;
  case '"': return LC_JSONR_STRING;
  case 't': return LC_JSONR_TRUE;
  case 'f': return LC_JSONR_FALSE;
  case 'n': return LC_JSONR_NULL;
  case '-':
  case '0': case '1': case '2': case '3': case '4':
  case '5': case '6': case '7': case '8': case '9':
    return LC_JSONR_NUMBER;
  default: return LC_JSONR_BAD;
  }
}

/* Where a value starts: checks there is one and that it is not too deep. */
static int value_start(struct lc_jsonr *r) {
  if (r->err)
    return r->err;
  skip_ws(r);
  if (r->pos >= r->n)
    return fail(r, r->pos, "unexpected end");
  if (r->depth > LC_JSONR_MAX_DEPTH) {
    r->err = LC_EINVAL;
    snprintf(r->msg, sizeof r->msg, "JSON nested deeper than %d (byte %zu)",
             LC_JSONR_MAX_DEPTH, r->pos);
    return r->err;
  }
  return 0;
}

static int is_obj(const struct lc_jsonr *r) {
  int d = r->depth - 1;
  return d >= 0 && (r->kinds[d >> 6] >> (d & 63) & 1);
}

static int enter(struct lc_jsonr *r, char c, int obj) {
  if (value_start(r))
    return r->err;
  if (r->s[r->pos] != c)
    return fail(r, r->pos, "expected '%c'", c);
  int d = r->depth;
  if (obj)
    r->kinds[d >> 6] |= (uint64_t)1 << (d & 63);
  else
    r->kinds[d >> 6] &= ~((uint64_t)1 << (d & 63));
  r->depth++;
  r->pos++;
  r->first = 1;
  return 0;
}

int lc_jsonr_obj(struct lc_jsonr *r) { return enter(r, '{', 1); }
int lc_jsonr_arr(struct lc_jsonr *r) { return enter(r, '[', 0); }

/* ---- strings ---- */

/* Length of the UTF-8 sequence at p (lc_utf8_valid's rules), 0 if bad. */
static size_t utf8_seq(const unsigned char *p, size_t left) {
  unsigned c = p[0], cp, min;
  size_t len;
  if ((c & 0xE0) == 0xC0)
    len = 2, cp = c & 0x1F, min = 0x80;
  else if ((c & 0xF0) == 0xE0)
    len = 3, cp = c & 0x0F, min = 0x800;
  else if ((c & 0xF8) == 0xF0)
    len = 4, cp = c & 0x07, min = 0x10000;
  else
    return 0;
  if (len > left)
    return 0;
  for (size_t k = 1; k < len; k++) {
    if ((p[k] & 0xC0) != 0x80)
      return 0;
    cp = (cp << 6) | (p[k] & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
    return 0;
  return len;
}

static int hex4(const char *p, unsigned *out) {
  unsigned v = 0;
  for (int i = 0; i < 4; i++) {
    unsigned c = (unsigned char)p[i], d;
    if (c >= '0' && c <= '9')
      d = c - '0';
    else if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f')
      d = (c | 0x20) - 'a' + 10;
    else
      return -1;
    v = v << 4 | d;
  }
  *out = v;
  return 0;
}

#define ONES 0x0101010101010101ull
#define HIGH 0x8080808080808080ull
#define HAS_ZERO(x) (((x) - ONES) & ~(x) & HIGH)

/* Any byte that ends a plain run: '"', '\\', < 0x20, or >= 0x80. */
static inline uint64_t special8(uint64_t x) {
  return (x & HIGH) | (((x) - ONES * 0x20) & ~(x) & HIGH) |
         HAS_ZERO(x ^ (ONES * '"')) | HAS_ZERO(x ^ (ONES * '\\'));
}

/* Checks the string starting at r->pos ('"'); on success *end is the
 * offset of its closing quote and *esc whether it holds escapes. The
 * position is not moved. */
static int scan_str(struct lc_jsonr *r, size_t *end, int *esc) {
  const unsigned char *s = (const unsigned char *)r->s;
  size_t n = r->n, i = r->pos + 1;
  int e = 0;
  for (;;) {
    while (i + 8 <= n) {
      uint64_t x, m;
      memcpy(&x, s + i, 8);
      if ((m = special8(x))) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
        /* The lowest flag is exact (borrows only run upwards): the first
         * special byte. */
        i += (size_t)__builtin_ctzll(m) >> 3;
#endif
        break;
      }
      i += 8;
    }
    if (i >= n)
      return fail(r, i, "unterminated string");
    unsigned c = s[i];
    if (c == '"') {
      *end = i;
      *esc = e;
      return 0;
    }
    if (c == '\\') {
      e = 1;
      if (i + 1 >= n)
        return fail(r, i, "unterminated string");
      switch (s[i + 1]) {
      case '"': case '\\': case '/': case 'b': case 'f': case 'n': case 'r':
      case 't':
        i += 2;
        continue;
      case 'u': break;
      default: return fail(r, i, "bad escape in string");
      }
      unsigned u, lo;
      if (i + 6 > n || hex4((const char *)s + i + 2, &u))
        return fail(r, i, "bad \\u escape in string");
      if (u >= 0xDC00 && u <= 0xDFFF)
        return fail(r, i, "lone surrogate in string");
      if (u >= 0xD800 && u <= 0xDBFF) {
        if (i + 12 > n || s[i + 6] != '\\' || s[i + 7] != 'u' ||
            hex4((const char *)s + i + 8, &lo) || lo < 0xDC00 || lo > 0xDFFF)
          return fail(r, i, "lone surrogate in string");
        i += 12;
      } else {
        i += 6;
      }
      continue;
    }
    if (c < 0x20)
      return fail(r, i, "control character in string");
    if (c >= 0x80) {
      size_t k = utf8_seq(s + i, n - i);
      if (!k)
        return fail_utf8(r, i);
      i += k;
      continue;
    }
    i++;
  }
}

/* Decodes the checked string body s[0..n) into out (room for n bytes: no
 * escape decodes to more bytes than it takes); returns the length. */
static size_t decode(const char *s, size_t n, char *out) {
  size_t i = 0, o = 0;
  while (i < n) {
    const char *bs = memchr(s + i, '\\', n - i);
    size_t run = bs ? (size_t)(bs - (s + i)) : n - i;
    memcpy(out + o, s + i, run);
    o += run;
    i += run;
    if (i >= n)
      break;
    char c = s[i + 1];
    i += 2;
    switch (c) {
    case 'b': out[o++] = '\b'; continue;
    case 'f': out[o++] = '\f'; continue;
    case 'n': out[o++] = '\n'; continue;
    case 'r': out[o++] = '\r'; continue;
    case 't': out[o++] = '\t'; continue;
    case 'u': break;
    default: out[o++] = c; continue; /* " \ / */
    }
    unsigned cp = 0, lo = 0;
    hex4(s + i, &cp);
    i += 4;
    if (cp >= 0xD800 && cp <= 0xDBFF) {
      hex4(s + i + 2, &lo);
      i += 6;
      cp = 0x10000 + ((cp & 0x3FF) << 10 | (lo & 0x3FF));
    }
    if (cp < 0x80) {
      out[o++] = (char)cp;
    } else if (cp < 0x800) {
      out[o++] = (char)(0xC0 | cp >> 6);
      out[o++] = (char)(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      out[o++] = (char)(0xE0 | cp >> 12);
      out[o++] = (char)(0x80 | (cp >> 6 & 0x3F));
      out[o++] = (char)(0x80 | (cp & 0x3F));
    } else {
      out[o++] = (char)(0xF0 | cp >> 18);
      out[o++] = (char)(0x80 | (cp >> 12 & 0x3F));
      out[o++] = (char)(0x80 | (cp >> 6 & 0x3F));
      out[o++] = (char)(0x80 | (cp & 0x3F));
    }
  }
  return o;
}

int lc_jsonr_str(struct lc_jsonr *r, struct lc_buf *out, const char **s,
                 size_t *len) {
  if (value_start(r))
    return r->err;
  if (r->s[r->pos] != '"')
    return fail(r, r->pos, "expected a string");
  size_t end;
  int esc;
  if (scan_str(r, &end, &esc))
    return r->err;
  const char *body = r->s + r->pos + 1;
  size_t raw = end - r->pos - 1;
  if (!esc) {
    *s = body;
    *len = raw;
  } else {
    if (lc_buf_reserve(out, raw)) {
      r->err = LC_ENOMEM;
      snprintf(r->msg, sizeof r->msg, "out of memory");
      return r->err;
    }
    char *at = out->data + out->len;
    *len = decode(body, raw, at);
    out->len += *len;
    out->data[out->len] = '\0';
    *s = at;
  }
  r->pos = end + 1;
  return 0;
}

/* ---- containers ---- */

static void close_(struct lc_jsonr *r) {
  r->pos++;
  r->depth--;
  r->first = 0;
}

/* Moves past the separator before the next element of the open object or
 * array: 1 at an element, 0 at the container's end (now closed), or the
 * error. */
static int next_elem(struct lc_jsonr *r, char closer, const char *unterminated,
                     const char *expected) {
  skip_ws(r);
  if (r->pos >= r->n)
    return fail(r, r->pos, "%s", unterminated);
  char c = r->s[r->pos];
  if (c == closer) {
    close_(r);
    return 0;
  }
  if (r->first) {
    r->first = 0;
    return 1;
  }
  if (c != ',')
    return fail(r, r->pos, "%s", expected);
  r->pos++;
  return 1;
}

int lc_jsonr_member(struct lc_jsonr *r) {
  if (r->err)
    return r->err;
  if (!is_obj(r))
    return fail(r, r->pos, "not in an object");
  int k = next_elem(r, '}', "unterminated object", "expected ',' or '}'");
  if (k != 1)
    return k;
  skip_ws(r);
  if (r->pos >= r->n)
    return fail(r, r->pos, "unterminated object");
  if (r->s[r->pos] != '"')
    return fail(r, r->pos, "expected a member name");
  size_t end;
  int esc;
  if (scan_str(r, &end, &esc))
    return r->err;
  const char *body = r->s + r->pos + 1;
  size_t raw = end - r->pos - 1;
  if (!esc) {
    r->key = body;
    r->klen = raw;
  } else if (raw < sizeof r->kbuf) {
    r->klen = decode(body, raw, r->kbuf);
    r->kbuf[r->klen] = '\0';
    r->key = r->kbuf;
  } else {
    r->key = NULL; /* longer than any name a caller looks for */
    r->klen = 0;
  }
  r->pos = end + 1;
  skip_ws(r);
  if (r->pos >= r->n || r->s[r->pos] != ':')
    return fail(r, r->pos, "expected ':'");
  r->pos++;
  return 1;
}

int lc_jsonr_item(struct lc_jsonr *r) {
  if (r->err)
    return r->err;
  if (r->depth < 1 || is_obj(r))
    return fail(r, r->pos, "not in an array");
  return next_elem(r, ']', "unterminated array", "expected ',' or ']'");
}

int lc_jsonr_key_is(const struct lc_jsonr *r, const char *key) {
  return r->key && strlen(key) == r->klen && memcmp(r->key, key, r->klen) == 0;
}

/* ---- numbers and literals ---- */

static int is_digit(char c) { return c >= '0' && c <= '9'; }

/* Checks the number at r->pos; *end is where it stops, *plain whether it
 * is a short integer (exact as a double). */
static int scan_num(struct lc_jsonr *r, size_t *end, int *plain) {
  const char *s = r->s;
  size_t i = r->pos, n = r->n;
  if (s[i] == '-')
    i++;
  if (i >= n || !is_digit(s[i]))
    return fail(r, i, "bad number");
  size_t d0 = i;
  if (s[i] == '0')
    i++;
  else
    while (i < n && is_digit(s[i]))
      i++;
  *plain = i - d0 <= 15;
  if (i < n && s[i] == '.') {
    i++;
    if (i >= n || !is_digit(s[i]))
      return fail(r, i, "bad number");
    while (i < n && is_digit(s[i]))
      i++;
    *plain = 0;
  }
  if (i < n && (s[i] == 'e' || s[i] == 'E')) {
    i++;
    if (i < n && (s[i] == '+' || s[i] == '-'))
      i++;
    if (i >= n || !is_digit(s[i]))
      return fail(r, i, "bad number");
    while (i < n && is_digit(s[i]))
      i++;
    *plain = 0;
  }
  *end = i;
  return 0;
}

int lc_jsonr_num(struct lc_jsonr *r, double *d) {
  if (value_start(r))
    return r->err;
  size_t end;
  int plain;
  if (scan_num(r, &end, &plain))
    return r->err;
  const char *s = r->s + r->pos;
  size_t len = end - r->pos;
  if (plain) {
    size_t i = s[0] == '-';
    long long v = 0;
    for (; i < len; i++)
      v = v * 10 + (s[i] - '0');
    *d = s[0] == '-' ? -(double)v : (double)v;
  } else {
    char tmp[64], *p = tmp;
    if (len >= sizeof tmp && !(p = lc_malloc(len + 1))) {
      r->err = LC_ENOMEM;
      snprintf(r->msg, sizeof r->msg, "out of memory");
      return r->err;
    }
    memcpy(p, s, len);
    p[len] = '\0';
    *d = lc_cnum_strtod(p, NULL); /* '.' whatever the locale */
    if (p != tmp)
      lc_free(p);
  }
  r->pos = end;
  return 0;
}

static int literal(struct lc_jsonr *r) {
  static const char *const words[] = {"true", "false", "null"};
  const char *w;
  switch (r->s[r->pos]) {
  case 't': w = words[0]; break;
  case 'f': w = words[1]; break;
  case 'n': w = words[2]; break;
  default: return fail(r, r->pos, "unexpected character");
  }
  size_t k = strlen(w);
  if (r->n - r->pos < k || memcmp(r->s + r->pos, w, k) != 0)
    return fail(r, r->pos, "unexpected character");
  r->pos += k;
  return 0;
}

/* ---- skipping ---- */

/* One scalar, or the opening of a container (then 1). */
static int skip_one(struct lc_jsonr *r) {
  if (value_start(r))
    return r->err;
  size_t end;
  int esc;
  switch (r->s[r->pos]) {
  case '{': return enter(r, '{', 1) ? r->err : 1;
  case '[': return enter(r, '[', 0) ? r->err : 1;
  case '"':
    if (scan_str(r, &end, &esc))
      return r->err;
    r->pos = end + 1;
    return 0;
  case '-':
  case '0': case '1': case '2': case '3': case '4':
  case '5': case '6': case '7': case '8': case '9':
    if (scan_num(r, &end, &esc))
      return r->err;
    r->pos = end;
    return 0;
  default: return literal(r);
  }
}

int lc_jsonr_skip(struct lc_jsonr *r) {
  int base = r->depth;
  for (;;) {
    int rc = skip_one(r);
    if (rc < 0)
      return rc;
    /* After a value (rc 0) or an opening (rc 1): find the next value. */
    for (;;) {
      if (r->depth == base)
        return 0;
      rc = is_obj(r) ? lc_jsonr_member(r) : lc_jsonr_item(r);
      if (rc < 0)
        return rc;
      if (rc == 1)
        break; /* a value follows */
    }
  }
}

int lc_jsonr_end(struct lc_jsonr *r) {
  if (r->err)
    return r->err;
  skip_ws(r);
  if (r->pos < r->n) {
    r->err = LC_EINVAL;
    snprintf(r->msg, sizeof r->msg, "trailing data after JSON at byte %zu",
             r->pos);
  }
  return r->err;
}

int lc_jsonr_index(struct lc_jsonr *r, const char *const *keys, size_t nkeys,
                   size_t *offs) {
  for (size_t i = 0; i < nkeys; i++)
    offs[i] = LC_JSONR_NONE;
  int rc;
  while ((rc = lc_jsonr_member(r)) == 1) {
    for (size_t i = 0; i < nkeys; i++) {
      if (offs[i] == LC_JSONR_NONE && lc_jsonr_key_is(r, keys[i])) {
        skip_ws(r);
        offs[i] = r->pos;
        break;
      }
    }
    if (lc_jsonr_skip(r))
      return r->err;
  }
  return rc;
}

void lc_jsonr_seek(struct lc_jsonr *r, size_t off) {
  r->pos = off;
  r->depth = 0;
  r->first = 0;
}

void lc_jsonr_errmsg(const struct lc_jsonr *r, char *err, size_t errlen) {
  size_t bad;
  if (r->err == LC_EINVAL && !lc_utf8_valid(r->s, r->n, &bad))
    snprintf(err, errlen, "invalid UTF-8 at byte %zu", bad);
  else
    snprintf(err, errlen, "%s", r->msg);
}

int lc_jsonr_walk(const char *s, size_t n, lc_jsonr_walk_fn walk, void *ud,
                  int *is_obj, char *err, size_t errlen) {
  struct lc_jsonr r;
  lc_jsonr_init(&r, s, n);
  *is_obj = lc_jsonr_peek(&r) == LC_JSONR_OBJECT;
  int rc = *is_obj ? lc_jsonr_obj(&r) : 0;
  if (!rc)
    rc = *is_obj ? walk(&r, ud) : lc_jsonr_skip(&r);
  if (rc >= 0 && !r.err && !lc_jsonr_end(&r))
    return 0;
  if (!r.err) { /* walk failed on its own (out of memory) */
    snprintf(err, errlen, "out of memory");
    return rc < 0 ? rc : LC_ENOMEM;
  }
  lc_jsonr_errmsg(&r, err, errlen);
  return r.err;
}

struct index_ud {
  const char *const *keys;
  size_t nkeys, *offs;
};

static int index_walk(struct lc_jsonr *r, void *ud) {
  struct index_ud *x = ud;
  return lc_jsonr_index(r, x->keys, x->nkeys, x->offs);
}

int lc_jsonr_check_index(const char *s, size_t n, const char *const *keys,
                         size_t nkeys, size_t *offs, int *is_obj, char *err,
                         size_t errlen) {
  struct index_ud x = {keys, nkeys, offs};
  return lc_jsonr_walk(s, n, index_walk, &x, is_obj, err, errlen);
}
