/* fuzz_jsonr.c: the pull JSON reader against lc_json_parse (cJSON). A text
 * the reader takes must be one cJSON takes too, with the same tree (built
 * here through the pull API); the pull API must agree with
 * lc_jsonr_check_index; nothing may read outside the input. cJSON takes
 * some texts the reader refuses (control characters in strings or as
 * whitespace, "01", bad \u hex): those are not compared. */
#include <cjson/cJSON.h>
#include <stdio.h>

#include "conv.h"
#include "fuzz_common.h"
#include "jsonr.h"

/* A tree from the reader; NULL on a reader error. *odd: a key the reader
 * does not decode (longer than its key buffer), or a number longer than
 * cJSON's 63-character buffer: no comparison then. */
static cJSON *build(struct lc_jsonr *r, struct lc_buf *tmp, int *odd) {
  const char *s;
  size_t n;
  double d;
  cJSON *j = NULL;
  switch (lc_jsonr_peek(r)) {
  case LC_JSONR_OBJECT:
    if (lc_jsonr_obj(r))
      return NULL;
    j = cJSON_CreateObject();
    for (int rc; (rc = lc_jsonr_member(r)) != 0;) {
      if (rc < 0)
        goto bad;
      if (!r->key)
        *odd = 1;
      char *k = r->key ? strndup(r->key, r->klen) : strdup("?");
      cJSON *v = build(r, tmp, odd);
      if (!v) {
        free(k);
        goto bad;
      }
      cJSON_AddItemToObject(j, k, v);
      free(k);
    }
    return j;
  case LC_JSONR_ARRAY:
    if (lc_jsonr_arr(r))
      return NULL;
    j = cJSON_CreateArray();
    for (int rc; (rc = lc_jsonr_item(r)) != 0;) {
      if (rc < 0)
        goto bad;
      cJSON *v = build(r, tmp, odd);
      if (!v)
        goto bad;
      cJSON_AddItemToArray(j, v);
    }
    return j;
  case LC_JSONR_STRING: {
    lc_buf_reset(tmp);
    if (lc_jsonr_str(r, tmp, &s, &n))
      return NULL;
    char *c = strndup(s, n); /* cJSON's strings end at a NUL too */
    j = cJSON_CreateString(c);
    free(c);
    return j;
  }
  case LC_JSONR_NUMBER: {
    size_t at = r->pos;
    if (lc_jsonr_num(r, &d))
      return NULL;
    if (r->pos - at > 63)
      *odd = 1;
    return cJSON_CreateNumber(d);
  }
  default: {
    size_t at = r->pos;
    if (lc_jsonr_skip(r))
      return NULL;
    char c = r->s[at];
    return c == 't' ? cJSON_CreateTrue()
           : c == 'f' ? cJSON_CreateFalse()
                      : cJSON_CreateNull();
  }
  }
bad:
  cJSON_Delete(j);
  return NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  /* An exact-size copy, so ASan sees any read past the end. */
  char *s = malloc(size ? size : 1);
  memcpy(s, data, size);
  static const char *const keys[] = {"a", "choices", "id"};
  size_t offs[3];
  int is_obj;
  char err[128];
  int rc = lc_jsonr_check_index(s, size, keys, 3, offs, &is_obj, err,
                                sizeof err);
  if (rc && !err[0])
    abort();

  struct lc_jsonr r;
  struct lc_buf tmp;
  lc_buf_init(&tmp, 0);
  lc_jsonr_init(&r, s, size);
  int odd = 0;
  cJSON *mine = build(&r, &tmp, &odd);
  if (mine && lc_jsonr_end(&r)) {
    cJSON_Delete(mine);
    mine = NULL;
  }
  if ((mine != NULL) != (rc == 0))
    abort(); /* the pull API and the checker disagree */
  if (!rc && is_obj) {
    for (size_t i = 0; i < 3; i++) { /* offsets of first occurrences */
      const cJSON *v = cJSON_GetObjectItemCaseSensitive(mine, keys[i]);
      if ((v == NULL) != (offs[i] == LC_JSONR_NONE) && !odd)
        abort();
    }
  }
  char perr[96];
  cJSON *ref = lc_json_parse(s, size, perr, sizeof perr);
  if (mine && !odd) {
    if (!ref)
      abort(); /* the reader took it, cJSON did not */
    /* Printed, not cJSON_Compare: that one pairs duplicate keys wrongly. */
    char *a = cJSON_PrintUnformatted(ref), *b = cJSON_PrintUnformatted(mine);
    if (!a || !b || strcmp(a, b) != 0)
      abort(); /* read otherwise */
    cJSON_free(a);
    cJSON_free(b);
  }
  /* Invalid UTF-8 is reported first and at the same byte by both. */
  if (!ref && strncmp(perr, "invalid UTF-8", 13) == 0 && strcmp(perr, err))
    abort();
  cJSON_Delete(ref);
  cJSON_Delete(mine);
  lc_buf_free(&tmp);
  free(s);
  return 0;
}
