/* util_common.h: helpers shared by the Check suites. */
#ifndef LC_TEST_UTIL_COMMON_H
#define LC_TEST_UTIL_COMMON_H

#include <stddef.h>

/* Absolute path of the repository (LC_SOURCE_DIR) and of shared/fixtures/llm. */
const char *lc_test_source_dir(void);
const char *lc_test_fixtures_dir(void); /* $LUACT_FIXTURES or <src>/../shared/fixtures/llm */
/* Reads a whole file; NULL on error. Caller frees with free(). */
char *lc_test_read_file(const char *path, size_t *len);

/* The number after the nth (0-based) "key": in json text, or -1. A
 * scanner for counters in the mock's /_stats and /_requests answers. */
double lc_test_json_num(const char *json, const char *key, int nth);

/* Monotonic seconds, and a pause of ms between two looks at a condition
 * that nothing signals (a log line, a row): a poll with a deadline, never
 * a wait standing in for the event. */
double lc_test_mono_s(void);
void lc_test_nap_ms(long ms);

/* A child's exit code from its wait status, or 128 + the signal that
 * ended it. WEXITSTATUS alone reads 0 for a child killed by a signal (a
 * sanitizer's abort), which would pass an "exited 0" check. */
int lc_test_exit_code(int wait_status);

/* A stream splitter's log of in[0,n) fed as [0,cut) + [cut,n), or a byte
 * at a time when cut > n (max: the splitter's limit), into out. */
typedef void (*lc_test_feed_fn)(const char *in, size_t n, size_t cut, size_t max, char *out,
                                size_t outlen);
/* Asserts that the whole feed's log is want, and that every split and the
 * byte-at-a-time feed give the same log (at most 9000 bytes). */
void lc_test_split_sweep(lc_test_feed_fn run, const char *in, size_t n, size_t max,
                         const char *want);

#endif
