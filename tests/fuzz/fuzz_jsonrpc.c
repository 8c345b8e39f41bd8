/* fuzz_jsonrpc.c: MCP's stdio framing and JSON-RPC classification. Split
 * feeds must give the same lines and verdicts as one feed; a parsed
 * message's fields must be consistent with its kind; a line the tool-call
 * answer's fast reading takes (lc_jr_text_answer) must be, to
 * lc_jr_parse, a response with that id and that one text item. */
#include "fuzz_common.h"
#include "jsonrpc.h"

static int on_line(void *ud, const char *line, size_t len) {
  struct lc_buf *b = ud;
  if (memchr(line, '\n', len)) abort(); /* a line never holds its newline */
  struct lc_jr_msg m;
  char err[128];
  int rc = lc_jr_parse(line, len, &m, err, sizeof err);
  long long tid;
  const char *tt;
  size_t tl;
  if (lc_jr_text_answer(line, len, &tid, &tt, &tl)) {
    if (rc != 0 || m.kind != LC_JR_RESPONSE || m.id_num != tid || m.error || !m.result) abort();
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(m.result, "content");
    if (cJSON_GetArraySize(m.result) != 1 || !cJSON_IsArray(c) || cJSON_GetArraySize(c) != 1)
      abort();
    const cJSON *ty = cJSON_GetObjectItemCaseSensitive(c->child, "type");
    const cJSON *tx = cJSON_GetObjectItemCaseSensitive(c->child, "text");
    if (cJSON_GetArraySize(c->child) != 2 || !cJSON_IsString(ty) || strcmp(ty->valuestring, "text") ||
        !cJSON_IsString(tx) || strlen(tx->valuestring) != tl || memcmp(tx->valuestring, tt, tl))
      abort();
    lc_buf_printf(b, "text%lld ", tid);
  }
  if (rc == 0) {
    if (!m.root) abort();
    switch (m.kind) {
    case LC_JR_REQUEST:
      if (!m.method || !m.id) abort();
      break;
    case LC_JR_NOTIFICATION:
      if (!m.method || m.id) abort();
      break;
    case LC_JR_RESPONSE:
      if (!m.id || !!m.result == !!m.error || !m.err_msg) abort();
      break;
    }
    lc_buf_printf(b, "k%d id%lld", (int)m.kind, m.id_num);
    cJSON_Delete(m.root);
  } else {
    if (m.root) abort();
    lc_buf_printf(b, "bad(%s)", err);
  }
  lc_buf_append(b, "\x01", 1);
  return 0;
}

static void run(const uint8_t *d, size_t n, uint32_t seed, struct lc_buf *log) {
  struct lc_jr_split s;
  lc_jr_split_init(&s, 256);
  size_t off = 0;
  int rc = 0;
  while (off < n && !rc) {
    size_t k = seed ? fz_next(&seed, n - off) : n - off;
    rc = lc_jr_split_feed(&s, (const char *)d + off, k, on_line, log);
    off += k;
  }
  lc_buf_printf(log, "rc=%d pending=%zu", rc, rc ? 0 : lc_jr_split_pending(&s));
  lc_jr_split_free(&s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fz_split_diff(run, data, size);
  return 0;
}
