/* jsonr.h: pull reader for JSON text. Walks a (pointer, length) buffer one
 * value at a time: no tree, no allocation (decoded strings go to a caller's
 * lc_buf, and only when they hold escapes).
 *
 * Strict RFC 8259: one value, optional whitespace around it (a UTF-8 BOM at
 * the very start is skipped, as lc_json_parse does); no control characters
 * in strings, no bad escapes or lone surrogates, numbers in the grammar's
 * form only, UTF-8 validated (no overlongs, no surrogates, <= U+10FFFF).
 * Depth: a value inside more than LC_JSONR_MAX_DEPTH containers is an error,
 * the limit lc_json_parse applies, counted the same way.
 *
 * Use: lc_jsonr_init, then per value either a reader (obj/arr + member/item
 * loops, str, num) or lc_jsonr_skip; lc_jsonr_end checks nothing follows.
 * Every member's value must be read or skipped before the next member.
 *
 * Errors are sticky: the first sets r->err (LC_EINVAL, or LC_ENOMEM from a
 * decode buffer) and r->msg, e.g. "invalid JSON at byte 12 of 40: expected
 * ',' or '}'"; every later call returns r->err. */
#ifndef LC_JSONR_H
#define LC_JSONR_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

#define LC_JSONR_MAX_DEPTH 128 /* = LC_CONV_MAX_DEPTH */
#define LC_JSONR_NONE ((size_t)-1)

enum lc_jsonr_type {
  LC_JSONR_BAD, /* end of input, or a byte that starts no value */
  LC_JSONR_OBJECT,
  LC_JSONR_ARRAY,
  LC_JSONR_STRING,
  LC_JSONR_NUMBER,
  LC_JSONR_TRUE,
  LC_JSONR_FALSE,
  LC_JSONR_NULL
};

struct lc_jsonr {
  const char *s;
  size_t n, pos;
  int depth; /* containers open at pos */
  int first; /* just after '{' or '[' */
  int err;
  const char *key; /* the last member's name, decoded; NULL if too long */
  size_t klen;
  uint64_t kinds[3]; /* bit d set: the container at depth d is an object */
  char kbuf[256];
  char msg[128];
};

void lc_jsonr_init(struct lc_jsonr *r, const char *s, size_t n);
/* Type of the next value; skips whitespace, never fails. */
enum lc_jsonr_type lc_jsonr_peek(struct lc_jsonr *r);
/* Enters an object / array (the next value must be one). */
int lc_jsonr_obj(struct lc_jsonr *r);
int lc_jsonr_arr(struct lc_jsonr *r);
/* 1: a member follows (name in r->key/klen, its value next); 0: the object
 * closed; < 0: error. */
int lc_jsonr_member(struct lc_jsonr *r);
/* 1: an element follows; 0: the array closed; < 0: error. */
int lc_jsonr_item(struct lc_jsonr *r);
/* A string value: *s and *len point into the input when it has no escape, else
 * to its decoded bytes, appended to out (NUL-terminated; they may hold NULs
 * from a \\u0000 escape; never more bytes than the escaped form). */
int lc_jsonr_str(struct lc_jsonr *r, struct lc_buf *out, const char **s,
                 size_t *len);
/* A number value, converted as strtod does. */
int lc_jsonr_num(struct lc_jsonr *r, double *d);
/* Skips (and checks) any value. */
int lc_jsonr_skip(struct lc_jsonr *r);
/* Only whitespace left; else "trailing data after JSON at byte N". */
int lc_jsonr_end(struct lc_jsonr *r);
/* Name of the current member is key (NUL-terminated). */
int lc_jsonr_key_is(const struct lc_jsonr *r, const char *key);

/* Inside an object just entered: walks its members to the end, and for
 * each keys[i] stores where the value of its first occurrence starts in
 * offs[i] (LC_JSONR_NONE if absent). Other values are skipped. */
int lc_jsonr_index(struct lc_jsonr *r, const char *const *keys, size_t nkeys,
                   size_t *offs);
/* Continues at byte off of the same input (an offset from lc_jsonr_index),
 * as a top-level value: for second passes over input already checked. */
void lc_jsonr_seek(struct lc_jsonr *r, size_t off);

/* The error of r as lc_json_parse words it: "invalid UTF-8 at byte N"
 * (anywhere in the input) wins over any other error, as there. */
void lc_jsonr_errmsg(const struct lc_jsonr *r, char *err, size_t errlen);
/* Reads the members of an object just entered (to its end); 0 or < 0. */
typedef int (*lc_jsonr_walk_fn)(struct lc_jsonr *r, void *ud);
/* Checks that s[0..n) is one JSON value; when it is an object (*is_obj),
 * walk reads its members. 0, or < 0 with lc_jsonr_errmsg's message in err
 * ("out of memory" when walk failed without a reader error). */
int lc_jsonr_walk(const char *s, size_t n, lc_jsonr_walk_fn walk, void *ud,
                  int *is_obj, char *err, size_t errlen);
/* Checks that s[0..n) is one JSON value; when it is an object (*is_obj),
 * indexes its members as lc_jsonr_index does. 0, or LC_EINVAL with
 * lc_jsonr_errmsg's message in err. */
int lc_jsonr_check_index(const char *s, size_t n, const char *const *keys,
                         size_t nkeys, size_t *offs, int *is_obj, char *err,
                         size_t errlen);

#endif
