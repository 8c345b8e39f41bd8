/* util_serve.h: `luact serve` from a Check case: a daemon on a free
 * loopback port in a temporary folder, HTTP requests with libcurl, SSE
 * parsing. (check_serve.c has its own copies; the newer suites share
 * these.)
 *
 * Ownership: struct lc_sd and struct lc_sresp are caller-owned; strings in
 * them are malloc'd and freed by lc_sd_rm / lc_sresp_free. */
#ifndef LC_TEST_UTIL_SERVE_H
#define LC_TEST_UTIL_SERVE_H

#include <cjson/cJSON.h>
#include <sys/types.h>

#define LC_SD_TOKEN "tok-alice-secret-1"
#define LC_SD_TOKEN_B "tok-bob-secret-2"

struct lc_sd {
  char dir[256], agents[300], store[300], log[300], tokens[300];
  char env[4][200]; /* NAME=value set in the daemon's environment ("" none) */
  char args[400];   /* extra options */
  pid_t pid;
  int port;
};

/* A temporary folder with agents/, tokens (alice, bob) and runs.db. */
void lc_sd_setup(struct lc_sd *d);
/* Writes agents/NAME.lua. */
void lc_sd_agent(struct lc_sd *d, const char *name, const char *script);
/* Starts `luact serve` and waits (on its log) until it listens. */
void lc_sd_start(struct lc_sd *d);
/* The same, but 0, or -1 when the daemon died before listening (a crash
 * point at start); then pid is 0 (reaped). */
int lc_sd_try_start(struct lc_sd *d);
/* Sends sig and reaps; returns the wait status. */
int lc_sd_stop(struct lc_sd *d, int sig);
/* SIGTERM, and asserts that the daemon exited 0 by itself: a sanitizer
 * report under abort_on_error ends it by SIGABRT, whose WEXITSTATUS reads
 * 0, so the exit is checked with WIFEXITED (lc_test_exit_code). */
void lc_sd_stop_clean(struct lc_sd *d);
/* tests/daemon/js into out (its absolute path), asserting that the
 * official LangGraph JS SDK is installed there (scripts/test's npm ci). */
void lc_sd_js_dir(char *out, size_t n);
void lc_sd_rm(struct lc_sd *d);

struct lc_sresp {
  long code;
  char *body;
  size_t len;
};

/* One request (token NULL: none; extra: one more header or NULL). */
struct lc_sresp lc_sd_req(struct lc_sd *d, const char *method, const char *path,
                          const char *body, const char *token, const char *extra);
/* The same, but code 0 when no answer came (the daemon died). */
struct lc_sresp lc_sd_req_try(struct lc_sd *d, const char *method, const char *path,
                              const char *body, const char *token, const char *extra);
void lc_sresp_free(struct lc_sresp *r);
/* A request that must answer code: the parsed body (NULL: not JSON). */
cJSON *lc_sd_expect(struct lc_sd *d, const char *method, const char *path, const char *body,
                    long code);

/* One SSE event of a body. */
struct lc_sev {
  char event[48];
  char id[48]; /* "" when none */
  cJSON *data;
};
/* Parses the events of an SSE body (comments skipped); returns the count,
 * *out malloc'd (free with lc_sev_free). */
int lc_sev_parse(const char *body, struct lc_sev **out);
void lc_sev_free(struct lc_sev *ev, int n);
/* Compares two event ids ("N", "N.k", "N.0.k") in stream order. */
int lc_sev_idcmp(const char *a, const char *b);

#endif
