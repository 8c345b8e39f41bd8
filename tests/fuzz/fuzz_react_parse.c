/* fuzz_react_parse.c: libFuzzer target for the text-mode ReAct parser.
 * Feeds arbitrary bytes to lc_react_parse, checks the result's invariants,
 * formats the error Observation, and checks nothing leaks (lc_alloc_live).
 * Build: CC=clang cmake -S . -B build-fuzz -DLUACT_FUZZ=ON && cmake --build
 * build-fuzz --target fuzz_react_parse; run: ./build-fuzz/fuzz_react_parse
 * -max_total_time=60 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lc.h"
#include "react_parse.h"

static const char *const allowed[] = {"search", "lookup"};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  long live = lc_alloc_live();
  struct lc_react_step st;
  int rc = lc_react_parse((const char *)data, size, &st);
  if (rc == 0) {
    if (!st.action || st.err != LC_REACT_OK) abort();
    if (st.is_finish && (!st.answer || !*st.answer)) abort();
    if (!st.is_finish && st.answer) abort();
    if (st.input && strlen(st.input) != st.input_len) abort();
    if (st.args && !cJSON_IsObject(st.args)) abort();
  } else if (rc == LC_EINVAL) {
    if (st.err == LC_REACT_OK) abort();
    struct lc_buf b;
    lc_buf_init(&b, 0);
    if (lc_react_format_error(&st, (enum lc_react_style)(size & 1), allowed, 2, &b) ||
        !strstr(b.data, "search, lookup, finish"))
      abort();
    lc_buf_free(&b);
  } else {
    abort(); /* no allocation failures are injected here */
  }
  lc_react_step_free(&st);
  if (lc_alloc_live() != live) abort();
  return 0;
}
