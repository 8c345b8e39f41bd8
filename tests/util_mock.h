/* util_mock.h: start, drive and stop lc-mockllm from a Check case.
 *
 * Ownership: struct lc_mock is caller-owned (usually on the stack); every
 * successful lc_mock_start* needs one lc_mock_stop. Strings returned by the
 * helpers are malloc'd; free them with free(). */
#ifndef LC_TEST_UTIL_MOCK_H
#define LC_TEST_UTIL_MOCK_H

#include <sys/types.h>

struct lc_mock {
  pid_t pid;
  int port;
  char base_url[64];      /* "http://127.0.0.1:PORT" */
  char script_path[256];  /* temp file we wrote, removed by lc_mock_stop */
  int stdin_fd;           /* write end of the mock's stdin: closing it ends the mock */
  int exit_status;        /* from waitpid, after lc_mock_stop */
};

/* Writes script_json to a temp file and starts the mock on a free port.
 * extra_args: NULL or a NULL-terminated list (e.g. "--latency-ms", "50").
 * Returns 0, or -1 with a message on stderr. */
int lc_mock_start(struct lc_mock *m, const char *script_json);
int lc_mock_start_args(struct lc_mock *m, const char *script_json, const char *const *extra_args);
/* Starts from an existing script file (kept), e.g. an example's script. */
int lc_mock_start_file(struct lc_mock *m, const char *path, const char *const *extra_args);
/* SIGTERM + waitpid; returns the exit status (0 = clean exit). */
int lc_mock_stop(struct lc_mock *m);

/* GET /_requests: the JSON array text, or NULL. */
char *lc_mock_requests(struct lc_mock *m);
/* How many logged requests have this path (with query string, as sent); -1 on error. */
int lc_mock_count_requests(struct lc_mock *m, const char *path);
/* The body of the i-th logged request (0-based) as compact JSON text, or
 * NULL; free with cJSON_free(). */
char *lc_mock_request_body(struct lc_mock *m, int i);
/* Asserts (Check) that request i's body contains needle (JSON-escaped). */
void lc_mock_assert_request_has(struct lc_mock *m, int i, const char *needle);
/* GET /_stats: the JSON object text, or NULL. */
char *lc_mock_stats(struct lc_mock *m);
/* POST /_script and POST /_reset: 0 on a 200 answer. */
int lc_mock_set_script(struct lc_mock *m, const char *script_json);
int lc_mock_reset(struct lc_mock *m);

#endif
