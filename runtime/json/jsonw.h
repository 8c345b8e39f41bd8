/* jsonw.h: a small streaming JSON writer that appends to an lc_buf. The
 * adapters build request bodies with it instead of a cJSON tree (one node
 * allocation per value, then a print and a copy).
 *
 * Output is byte-for-byte what cJSON_PrintUnformatted prints for the same
 * values in the same order: strings escape '"', '\\', \b \f \n \r \t and
 * other bytes below 0x20 as \u00xx; every other byte (UTF-8 included) is
 * copied as it is, so text must already be UTF-8; numbers use cJSON's
 * format ("%1.15g", or "%1.17g" when 15 digits do not round-trip; NaN and
 * infinities print as null).
 * Unlike cJSON, strings carry a length, so a NUL byte is written as \u0000
 * instead of ending the string.
 *
 * Commas and nesting are tracked by the writer: call lc_jsonw_key before
 * each member value inside an object; array elements need nothing.
 *
 * Ownership: the writer borrows the buffer; the caller owns and frees it.
 * Errors: the first failure (LC_ENOMEM, LC_ETOOBIG from the buffer's limit,
 * LC_EINVAL for nesting deeper than LC_JSONW_MAX_DEPTH) is kept in w->err
 * and every later call does nothing; lc_jsonw_finish returns it. */
#ifndef LC_JSONW_H
#define LC_JSONW_H

#include <cjson/cJSON.h>
#include <stddef.h>

#include "buf.h"

#define LC_JSONW_MAX_DEPTH 200

struct lc_jsonw {
  struct lc_buf *b;
  int err;
  int depth;
  int after_key; /* the next value follows a key: no comma */
  unsigned char more[LC_JSONW_MAX_DEPTH + 1]; /* level has members */
};

void lc_jsonw_init(struct lc_jsonw *w, struct lc_buf *b);
/* Resumes at the end of b as a writer that has opened depth levels (each
 * with members already, the innermost only when more is set) and written
 * no key: to append to an array an earlier writer left open. */
void lc_jsonw_reopen(struct lc_jsonw *w, struct lc_buf *b, int depth, int more);
/* 0, or the first error. Does not check that every level was closed. */
int lc_jsonw_finish(const struct lc_jsonw *w);

void lc_jsonw_obj(struct lc_jsonw *w); /* { */
void lc_jsonw_obj_end(struct lc_jsonw *w);
void lc_jsonw_arr(struct lc_jsonw *w); /* [ */
void lc_jsonw_arr_end(struct lc_jsonw *w);
/* "key": (the key is a NUL-terminated C string). */
void lc_jsonw_key(struct lc_jsonw *w, const char *key);
void lc_jsonw_str(struct lc_jsonw *w, const char *s, size_t n);
void lc_jsonw_cstr(struct lc_jsonw *w, const char *s); /* NULL prints "" */
void lc_jsonw_num(struct lc_jsonw *w, double d);
void lc_jsonw_bool(struct lc_jsonw *w, int v);
void lc_jsonw_null(struct lc_jsonw *w);
/* A value that is already JSON text, copied verbatim (not checked). */
void lc_jsonw_raw(struct lc_jsonw *w, const char *json, size_t n);
/* Writes the separator the next value needs and returns the buffer offset
 * where that value will start: the bytes from there to the end of the
 * value are the value alone, for a caller that keeps them (wire caches). */
size_t lc_jsonw_value_at(struct lc_jsonw *w);
/* A cJSON tree, printed as cJSON_PrintUnformatted would. */
void lc_jsonw_cjson(struct lc_jsonw *w, const cJSON *j);

/* Appends s as a JSON string body (no quotes) with the escaping above.
 * Returns 0 or the buffer's error. For callers that write keys by hand. */
int lc_jsonw_escape(struct lc_buf *b, const char *s, size_t n);
/* Formats d as cJSON does into out (at least 32 bytes); returns the length. */
size_t lc_jsonw_fmt_num(double d, char *out);
/* lc_jsonw_fmt_num((double)k / 1000) for 0 <= k < 1e12 (a duration in ms
 * with microseconds: "0.052", "12.5", "3"), without printf: below 1e12 the
 * digits are at most 12, so "%1.15g" prints the exact decimal and it reads
 * back as that double. Other k: lc_jsonw_fmt_num. */
size_t lc_jsonw_fmt_milli(long k, char *out);

#endif
