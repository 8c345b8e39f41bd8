/* jsonw.c: streaming JSON writer with cJSON-identical output. */
#include "jsonw.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cnum.h"
#include "lc.h"

/* Escape for each byte: 0 = copy, 'u' = \u00xx, else the letter after '\'. */
static const unsigned char esc[256] = {
    ['\b'] = 'b', ['\f'] = 'f', ['\n'] = 'n', ['\r'] = 'r', ['\t'] = 't',
    [0] = 'u',    [1] = 'u',    [2] = 'u',    [3] = 'u',    [4] = 'u',
    [5] = 'u',    [6] = 'u',    [7] = 'u',    [11] = 'u',   [14] = 'u',
    [15] = 'u',   [16] = 'u',   [17] = 'u',   [18] = 'u',   [19] = 'u',
    [20] = 'u',   [21] = 'u',   [22] = 'u',   [23] = 'u',   [24] = 'u',
    [25] = 'u',   [26] = 'u',   [27] = 'u',   [28] = 'u',   [29] = 'u',
    [30] = 'u',   [31] = 'u',   ['"'] = '"',  ['\\'] = '\\',
};

/* Appends without the NUL bookkeeping of lc_buf_append: the caller
 * reserved the room. */
static inline void put(struct lc_buf *b, const char *p, size_t n) {
  memcpy(b->data + b->len, p, n);
  b->len += n;
}

/* Room for n more bytes and the NUL; the common case stays inline. */
static inline int room(struct lc_buf *b, size_t n) {
  if (b->data && b->len + n + 1 <= b->cap &&
      (!b->limit || b->len + n <= b->limit))
    return 0;
  return lc_buf_reserve(b, n);
}

/* Length of the prefix of s[0..n) that needs no escaping. Eight bytes at a
 * time: a word has a byte below 0x20, '"' or '\\' exactly when one of the
 * classic has-zero-byte tests fires. */
static size_t plain_prefix(const unsigned char *s, size_t n) {
  const uint64_t ones = 0x0101010101010101ull, high = 0x8080808080808080ull;
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t v;
    memcpy(&v, s + i, 8);
    uint64_t lt = (v - ones * 0x20) & ~v;       /* byte < 0x20 */
    uint64_t q = v ^ (ones * '"'), bs = v ^ (ones * '\\');
    uint64_t eq = ((q - ones) & ~q) | ((bs - ones) & ~bs);
    if ((lt | eq) & high)
      break;
  }
  while (i < n && !esc[s[i]])
    i++;
  return i;
}

int lc_jsonw_escape(struct lc_buf *b, const char *s, size_t n) {
  static const char hex[] = "0123456789abcdef";
  const unsigned char *u = (const unsigned char *)s;
  size_t i = 0;
  int rc = room(b, n);
  if (rc)
    return rc;
  while (i < n) {
    size_t run = i + plain_prefix(u + i, n - i);
    put(b, s + i, run - i);
    if (run == n)
      break;
    /* 6 bytes for this escape plus the rest unescaped. */
    if ((rc = room(b, 6 + (n - run - 1))))
      return rc;
    unsigned char c = u[run], e = esc[c];
    if (e == 'u') {
      char x[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
      put(b, x, 6);
    } else {
      char x[2] = {'\\', (char)e};
      put(b, x, 2);
    }
    i = run + 1;
  }
  b->data[b->len] = '\0';
  return 0;
}


size_t lc_jsonw_fmt_num(double d, char *out) {
  if (isnan(d) || isinf(d)) {
    memcpy(out, "null", 5);
    return 4;
  }
  /* Integral values below 1e15 print as their digits under "%1.15g":
   * hand-rolled, as snprintf is slow and this is the common case. -0.0
   * takes the slow path ("-0", as cJSON prints it). */
  if (d > -1e15 && d < 1e15 && d == (double)(long long)d &&
      !(d == 0 && signbit(d))) {
    long long vi = (long long)d;
    char tmp[24];
    size_t k = 0;
    unsigned long long v = vi < 0 ? 0ull - (unsigned long long)vi
                                  : (unsigned long long)vi;
    do {
      tmp[k++] = (char)('0' + v % 10);
      v /= 10;
    } while (v);
    size_t n = 0;
    if (vi < 0)
      out[n++] = '-';
    while (k)
      out[n++] = tmp[--k];
    out[n] = '\0';
    return n;
  }
  /* Exact: 15 digits when they read back as the same double, else 17.
   * (cJSON accepts a 15-digit form within an epsilon, which can lose the
   * last bit; a journal replays the value it printed, so it must be
   * exact.) In the "C" locale: JSON's decimal point is '.' whatever
   * LC_NUMERIC says. */
  int n = lc_cnum_fmt(out, 32, "%1.15g", d);
  if (lc_cnum_strtod(out, NULL) != d)
    n = lc_cnum_fmt(out, 32, "%1.17g", d);
  return (size_t)n;
}

void lc_jsonw_init(struct lc_jsonw *w, struct lc_buf *b) {
  w->b = b;
  w->err = 0;
  w->depth = 0;
  w->after_key = 0;
  w->more[0] = 0;
}

void lc_jsonw_reopen(struct lc_jsonw *w, struct lc_buf *b, int depth, int more) {
  lc_jsonw_init(w, b);
  if (depth < 0 || depth > LC_JSONW_MAX_DEPTH) {
    w->err = LC_EINVAL;
    return;
  }
  for (int i = 0; i < depth; i++)
    w->more[i] = 1;
  w->depth = depth;
  w->more[depth] = more != 0;
}

int lc_jsonw_finish(const struct lc_jsonw *w) { return w->err; }

/* Separator before a value (or key) at the current level. */
static int sep(struct lc_jsonw *w, size_t extra) {
  if (w->err)
    return w->err;
  int comma = !w->after_key && w->more[w->depth];
  int rc = room(w->b, extra + 1);
  if (rc)
    return w->err = rc;
  if (comma)
    w->b->data[w->b->len++] = ',';
  w->after_key = 0;
  w->more[w->depth] = 1;
  return 0;
}

static void open(struct lc_jsonw *w, char c) {
  if (sep(w, 1))
    return;
  if (w->depth >= LC_JSONW_MAX_DEPTH) {
    w->err = LC_EINVAL;
    return;
  }
  w->b->data[w->b->len++] = c;
  w->b->data[w->b->len] = '\0';
  w->more[++w->depth] = 0;
}

static void close_(struct lc_jsonw *w, char c) {
  if (w->err)
    return;
  int rc = room(w->b, 1);
  if (rc) {
    w->err = rc;
    return;
  }
  w->b->data[w->b->len++] = c;
  w->b->data[w->b->len] = '\0';
  if (w->depth > 0)
    w->depth--;
  w->after_key = 0;
}

void lc_jsonw_obj(struct lc_jsonw *w) { open(w, '{'); }
void lc_jsonw_obj_end(struct lc_jsonw *w) { close_(w, '}'); }
void lc_jsonw_arr(struct lc_jsonw *w) { open(w, '['); }
void lc_jsonw_arr_end(struct lc_jsonw *w) { close_(w, ']'); }

/* '"' + escaped s + '"' + tail (0 or ':'); the opening quote's room was
 * reserved by sep(). */
static void quoted(struct lc_jsonw *w, const char *s, size_t n, char tail) {
  struct lc_buf *b = w->b;
  b->data[b->len++] = '"';
  int rc = lc_jsonw_escape(b, s, n);
  if (!rc)
    rc = room(b, 2);
  if (rc) {
    w->err = rc;
    return;
  }
  b->data[b->len++] = '"';
  if (tail)
    b->data[b->len++] = tail;
  b->data[b->len] = '\0';
}

void lc_jsonw_key(struct lc_jsonw *w, const char *key) {
  if (sep(w, 1))
    return;
  quoted(w, key, strlen(key), ':');
  w->after_key = 1;
}

void lc_jsonw_str(struct lc_jsonw *w, const char *s, size_t n) {
  if (sep(w, 1))
    return;
  quoted(w, s, n, 0);
}

void lc_jsonw_cstr(struct lc_jsonw *w, const char *s) {
  lc_jsonw_str(w, s ? s : "", s ? strlen(s) : 0);
}

void lc_jsonw_raw(struct lc_jsonw *w, const char *json, size_t n) {
  if (sep(w, n))
    return;
  put(w->b, json, n);
  w->b->data[w->b->len] = '\0';
}

size_t lc_jsonw_value_at(struct lc_jsonw *w) {
  if (sep(w, 0))
    return w->b->len;
  w->after_key = 1; /* the separator is out: the value writes none */
  return w->b->len;
}

size_t lc_jsonw_fmt_milli(long k, char *out) {
  if (k < 0 || k >= 1000000000000L) return lc_jsonw_fmt_num((double)k / 1000, out);
  size_t n = lc_jsonw_fmt_num((double)(k / 1000), out); /* integral: no printf */
  long frac = k % 1000;
  if (frac) {
    out[n++] = '.';
    out[n++] = (char)('0' + frac / 100);
    out[n++] = (char)('0' + frac / 10 % 10);
    out[n++] = (char)('0' + frac % 10);
    while (out[n - 1] == '0')
      n--;
  }
  out[n] = '\0';
  return n;
}

void lc_jsonw_num(struct lc_jsonw *w, double d) {
  char tmp[32];
  size_t n = lc_jsonw_fmt_num(d, tmp);
  lc_jsonw_raw(w, tmp, n);
}

void lc_jsonw_bool(struct lc_jsonw *w, int v) {
  if (v)
    lc_jsonw_raw(w, "true", 4);
  else
    lc_jsonw_raw(w, "false", 5);
}

void lc_jsonw_null(struct lc_jsonw *w) { lc_jsonw_raw(w, "null", 4); }

void lc_jsonw_cjson(struct lc_jsonw *w, const cJSON *j) {
  if (w->err)
    return;
  if (!j) { /* cJSON_PrintUnformatted(NULL) prints nothing: keep JSON valid */
    lc_jsonw_null(w);
    return;
  }
  switch (j->type & 0xFF) {
  case cJSON_False: lc_jsonw_bool(w, 0); break;
  case cJSON_True: lc_jsonw_bool(w, 1); break;
  case cJSON_NULL: lc_jsonw_null(w); break;
  case cJSON_Number: lc_jsonw_num(w, j->valuedouble); break;
  case cJSON_String: lc_jsonw_cstr(w, j->valuestring); break;
  case cJSON_Raw:
    if (j->valuestring)
      lc_jsonw_raw(w, j->valuestring, strlen(j->valuestring));
    else
      w->err = LC_EINVAL; /* cJSON fails the whole print */
    break;
  case cJSON_Array:
    lc_jsonw_arr(w);
    for (const cJSON *c = j->child; c && !w->err; c = c->next)
      lc_jsonw_cjson(w, c);
    lc_jsonw_arr_end(w);
    break;
  case cJSON_Object:
    lc_jsonw_obj(w);
    for (const cJSON *c = j->child; c && !w->err; c = c->next) {
      if (!c->string) { /* cJSON fails the whole print */
        w->err = LC_EINVAL;
        break;
      }
      lc_jsonw_key(w, c->string);
      lc_jsonw_cjson(w, c);
    }
    lc_jsonw_obj_end(w);
    break;
  default: w->err = LC_EINVAL; /* cJSON_Invalid */
  }
}
