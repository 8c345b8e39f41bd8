/* fuzz_schema.c: libFuzzer target for the schema compiler and validator.
 * Input: schema JSON, a NUL byte, value JSON. Neither may crash, leak or
 * recurse without bound, whatever the bytes. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "conv.h"
#include "lc.h"
#include "schema.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *s = (const char *)data;
  const char *nul = memchr(s, 0, size);
  size_t slen = nul ? (size_t)(nul - s) : size;
  const char *v = nul ? nul + 1 : "null";
  size_t vlen = nul ? size - slen - 1 : 4;
  char err[256];
  /* lc_json_parse checks UTF-8 and depth like the runtime's tool path. */
  cJSON *sj = lc_json_parse(s, slen, err, sizeof err);
  if (!sj) return 0;
  struct lc_schema *sc = NULL;
  if (lc_schema_compile(sj, &sc, err, sizeof err) == 0) {
    cJSON *vj = lc_json_parse(v, vlen, err, sizeof err);
    if (vj) {
      struct lc_schema_errors e;
      lc_schema_validate(sc, vj, &e);
      char *m = lc_schema_errors_format(&e);
      lc_free(m);
      lc_schema_errors_free(&e);
      cJSON_Delete(vj);
    }
    for (size_t i = 0; i < lc_schema_unknown_count(sc); i++)
      (void)lc_schema_unknown_at(sc, i);
    lc_schema_free(sc);
  }
  cJSON_Delete(sj);
  return 0;
}
