/* secrets.h: the process-wide set of known secret values (API keys,
 * tokens) and the scrubber that removes them from text before the runtime
 * prints or stores it.
 *
 * A value is registered where the runtime reads it: an API key from the
 * environment or from a script's options, an Authorization / x-api-key
 * header a script sets on the http tool, and at start-up every *_API_KEY,
 * *_TOKEN, *_SECRET_ACCESS_KEY environment value. Registering also adds the
 * forms in which the value shows up in other text: JSON-escaped (with and
 * without "\/") and percent-encoded.
 *
 * Scrubbing replaces every run of LC_SECRET_MIN_FRAGMENT or more bytes of a
 * registered form with "[REDACTED]" (the whole value when it is shorter):
 * a proxy that echoes the first 20 characters of a key is caught, while a
 * masked echo such as "sk-...wxyz" (4 characters) is not, and is not a
 * leak. Values shorter than LC_SECRET_MIN_LEN are not registered: those
 * are placeholders ("ollama", "none") whose scrubbing would garble output.
 *
 * The replacement is never longer than what it replaces, so scrubbing works
 * in place and cannot fail: a sink never has to choose between printing a
 * key and printing nothing.
 *
 * Ownership: the registry lives until lc_secrets_reset (tests) or exit, in
 * plain malloc memory (it is shared by every worker and run, outside
 * lc_malloc's per-run accounting). Thread-safe. */
#ifndef LC_SECRETS_H
#define LC_SECRETS_H

#include <stddef.h>

#define LC_SECRET_MIN_LEN 10      /* shorter values are not secrets */
#define LC_SECRET_MIN_FRAGMENT 10 /* shortest partial echo scrubbed */
#define LC_SECRET_MASK "[REDACTED]"

/* Registers value[0..len) (and its encoded forms). Idempotent. Returns 0,
 * or LC_ENOMEM (the value is then not registered). */
int lc_secret_add(const char *value, size_t len);
/* Registers the value of a credential header ("Bearer abc" registers the
 * whole value and "abc") when name is authorization, proxy-authorization,
 * x-api-key, api-key or x-goog-api-key; otherwise does nothing. */
int lc_secret_add_header(const char *name, size_t name_len, const char *value,
                         size_t value_len);
/* getenv that registers the value when the name looks like a credential
 * (*_API_KEY, *_TOKEN, *_SECRET_ACCESS_KEY, *_SECRET). */
const char *lc_secret_getenv(const char *name);
/* Registers every environment value whose name looks like a credential. */
void lc_secrets_from_env(void);
/* Nonzero when any secret is registered (a lock-free check). */
int lc_secrets_any(void);
void lc_secrets_reset(void);

enum { LC_SCRUB_TEXT = 0, LC_SCRUB_JSON = 1 };

/* Scrubs s[0..n) in place; returns the new length (<= n) and NUL-terminates
 * at it when it changed. LC_SCRUB_JSON: s is JSON text; matches are taken
 * in the JSON-escaped forms only and never split an escape sequence, so the
 * result stays valid JSON. */
size_t lc_secrets_scrub(char *s, size_t n, int mode);
/* The same on a NUL-terminated string (NULL is fine). */
void lc_secrets_scrub_str(char *s);

#endif
