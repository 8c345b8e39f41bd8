/* fuzz_oauth.c: the MCP client's WWW-Authenticate parser and endpoint
 * rule (runtime/mcp/oauth.c), fed by a hostile server. Every value must
 * come back NUL-terminated inside its buffer with no control character;
 * the same bytes parse the same way twice; the endpoint rule never
 * accepts plain http off loopback. */
#include <strings.h>

#include "fuzz_common.h"
#include "oauth.h"

static void check_field(const char *s, size_t cap) {
  size_t n = strnlen(s, cap);
  if (n == cap) abort(); /* not terminated inside its buffer */
  for (size_t i = 0; i < n; i++)
    if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  struct lc_oauth_challenge a, b;
  int ra = lc_oauth_parse_challenge((const char *)data, size, &a);
  int rb = lc_oauth_parse_challenge((const char *)data, size, &b);
  if (ra != rb || memcmp(&a, &b, sizeof a)) abort();
  if (ra != 0 && ra != 1) abort();
  check_field(a.resource_metadata, sizeof a.resource_metadata);
  check_field(a.scope, sizeof a.scope);
  check_field(a.error, sizeof a.error);
  check_field(a.error_description, sizeof a.error_description);
  if (!ra && (a.scope[0] || a.error[0] || a.resource_metadata[0])) abort();
  /* the same bytes as a URL (NUL-terminated copy) */
  char *u = lc_malloc(size + 1);
  if (!u) return 0;
  memcpy(u, data, size);
  u[size] = '\0';
  if (lc_oauth_url_ok(u)) {
    if (strncasecmp(u, "https://", 8) && strncasecmp(u, "http://", 7)) abort();
    if (!strncasecmp(u, "http://", 7)) {
      const char *h = u + 7;
      if (strncasecmp(h, "localhost", 9) && strncmp(h, "127.", 4) && strncmp(h, "[::1]", 5))
        abort();
    }
  }
  lc_free(u);
  return 0;
}
