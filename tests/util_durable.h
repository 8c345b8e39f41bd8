/* util_durable.h: running the built luact as a user would, for the suites
 * of durable runs (tests/effects/check_resume.c, tests/store/check_store.c,
 * tests/cli/check_durable.c).
 *
 * Commands are shell text run by /bin/sh in dir (NULL: the source tree),
 * with $LUACT, $LC_BIN (the build folder) and $LC_SRC set and no provider
 * keys from the caller's environment. Strings returned are malloc'd. */
#ifndef LC_TEST_UTIL_DURABLE_H
#define LC_TEST_UTIL_DURABLE_H

#include <sys/types.h>

/* Runs cmd (printf format) in dir and waits; *out and *err (if not NULL)
 * get what it printed. Returns its exit code, or 128 + the signal that
 * ended it. */
int lc_dur_sh(const char *dir, char **out, char **err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Starts cmd in dir with `exec`, so that the pid is the command's own (a
 * test can SIGKILL it); stdout and stderr go to out_path / err_path. */
pid_t lc_dur_spawn(const char *dir, const char *out_path, const char *err_path,
                   const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* Waits for pid: exit code, or 128 + signal. */
int lc_dur_wait(pid_t pid);

/* A fresh folder under /tmp (buf), and rm -rf of it. */
void lc_dur_tmpdir(char *buf, size_t n);
void lc_dur_rmrf(const char *dir);
/* Writes text to dir/name (Check-asserts on failure). */
void lc_dur_write(const char *dir, const char *name, const char *text);
/* Lines in dir/name (0 when there is no such file). */
int lc_dur_lines(const char *dir, const char *name);
/* The value of "key" in the first JSON object of text that has it, as a
 * string (malloc'd), or NULL. For `luact runs show --json`. */
char *lc_dur_json_str(const char *json, const char *key);
/* The id of the newest run in the store (luact runs list --json), or NULL. */
char *lc_dur_newest_run(const char *dir, const char *store);

#endif
