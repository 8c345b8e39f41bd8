/* fuzz_http_path.c: libFuzzer target for the http tool's path check. Input:
 * the path a model gives. A path lc_http_tool_check_path accepts, appended
 * to the base, must parse as a URL and stay under the base as curl will
 * send it (lc_http_tool_check_under, which uses curl's own parser and dot
 * segment removal); anything else aborts. Nothing may crash or leak. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http_tool.h"
#include "lc.h"

#define BASE "http://127.0.0.1:8080/api"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char err[512];
  if (size > 4096) return 0;
  if (lc_http_tool_check_path(BASE, (const char *)data, size, err, sizeof err)) return 0;
  if (memchr(data, 0, size)) abort(); /* a NUL must never pass */
  char url[sizeof BASE + 4096];
  memcpy(url, BASE, sizeof BASE - 1);
  memcpy(url + sizeof BASE - 1, data, size);
  url[sizeof BASE - 1 + size] = '\0';
  if (lc_http_tool_check_url(url, err, sizeof err)) {
    fprintf(stderr, "accepted path, bad URL: %s: %s\n", url, err);
    abort();
  }
  int rc = lc_http_tool_check_under(url, BASE, err, sizeof err);
  if (rc == LC_ENOMEM) return 0;
  if (rc) {
    fprintf(stderr, "accepted path escapes: %s: %s\n", url, err);
    abort();
  }
  return 0;
}
