/* util_durable.c: see util_durable.h. */
#include "util_durable.h"

#include <check.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util_common.h"

static void set_env(void) {
  setenv("LUACT", LC_BINARY_DIR "/luact", 1);
  setenv("LC_BIN", LC_BINARY_DIR, 1);
  setenv("LC_SRC", lc_test_source_dir(), 1);
  const char *keys[] = {"OPENAI_API_KEY", "OPENAI_BASE_URL", "ANTHROPIC_API_KEY",
                        "ANTHROPIC_BASE_URL", "OLLAMA_HOST", "LUACT_MODEL", "LUACT_CRASH_AT",
                        "LUACT_STORE"};
  for (size_t i = 0; i < sizeof keys / sizeof *keys; i++) unsetenv(keys[i]);
}

static pid_t spawn_v(const char *dir, const char *out_path, const char *err_path,
                     const char *fmt, va_list ap) {
  char cmd[8192];
  int n = vsnprintf(cmd, sizeof cmd, fmt, ap);
  ck_assert_msg(n > 0 && (size_t)n < sizeof cmd, "command too long");
  set_env();
  pid_t pid = fork();
  ck_assert_int_ge(pid, 0);
  if (pid == 0) {
    int o = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    int e = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    int in = open("/dev/null", O_RDONLY);
    if (o < 0 || e < 0 || in < 0 || dup2(o, 1) < 0 || dup2(e, 2) < 0 || dup2(in, 0) < 0 ||
        chdir(dir ? dir : lc_test_source_dir()))
      _exit(126);
    char full[8300];
    snprintf(full, sizeof full, "exec env %s", cmd); /* env: VAR=x prefixes */
    execl("/bin/sh", "sh", "-c", full, (char *)NULL);
    _exit(127);
  }
  return pid;
}

pid_t lc_dur_spawn(const char *dir, const char *out_path, const char *err_path, const char *fmt,
                   ...) {
  va_list ap;
  va_start(ap, fmt);
  pid_t p = spawn_v(dir, out_path, err_path, fmt, ap);
  va_end(ap);
  return p;
}

int lc_dur_wait(pid_t pid) {
  int st;
  while (waitpid(pid, &st, 0) < 0) ck_assert_int_eq(errno, EINTR);
  return WIFEXITED(st) ? WEXITSTATUS(st) : WIFSIGNALED(st) ? 128 + WTERMSIG(st) : -1;
}

int lc_dur_sh(const char *dir, char **out, char **err, const char *fmt, ...) {
  static unsigned long k;
  char op[128], ep[128];
  snprintf(op, sizeof op, "/tmp/lc_dur_%ld_%lu.out", (long)getpid(), k);
  snprintf(ep, sizeof ep, "/tmp/lc_dur_%ld_%lu.err", (long)getpid(), k++);
  va_list ap;
  va_start(ap, fmt);
  pid_t p = spawn_v(dir, op, ep, fmt, ap);
  va_end(ap);
  int code = lc_dur_wait(p);
  if (out) {
    *out = lc_test_read_file(op, NULL);
    ck_assert_ptr_nonnull(*out);
  }
  if (err) {
    *err = lc_test_read_file(ep, NULL);
    ck_assert_ptr_nonnull(*err);
  }
  unlink(op);
  unlink(ep);
  return code;
}

void lc_dur_tmpdir(char *buf, size_t n) {
  snprintf(buf, n, "/tmp/lc-durable-XXXXXX");
  ck_assert_ptr_nonnull(mkdtemp(buf));
}

void lc_dur_rmrf(const char *dir) {
  if (!dir[0]) return;
  char cmd[600];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
}

void lc_dur_write(const char *dir, const char *name, const char *text) {
  char p[600];
  snprintf(p, sizeof p, "%s/%s", dir, name);
  FILE *f = fopen(p, "w");
  ck_assert_ptr_nonnull(f);
  ck_assert_int_eq(fputs(text, f) >= 0, 1);
  ck_assert_int_eq(fclose(f), 0);
}

int lc_dur_lines(const char *dir, const char *name) {
  char p[600];
  snprintf(p, sizeof p, "%s/%s", dir, name);
  char *t = lc_test_read_file(p, NULL);
  if (!t) return 0;
  int n = 0;
  for (char *c = t; *c; c++) n += *c == '\n';
  free(t);
  return n;
}

static const cJSON *find_key(const cJSON *o, const char *key) {
  if (cJSON_IsObject(o)) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (v) return v;
  }
  const cJSON *c;
  cJSON_ArrayForEach(c, o) {
    const cJSON *v = find_key(c, key);
    if (v) return v;
  }
  return NULL;
}

char *lc_dur_json_str(const char *json, const char *key) {
  cJSON *o = cJSON_Parse(json);
  const cJSON *v = o ? find_key(o, key) : NULL;
  char *s = NULL;
  if (cJSON_IsString(v)) s = strdup(v->valuestring);
  else if (v) s = cJSON_PrintUnformatted(v);
  cJSON_Delete(o);
  return s;
}

char *lc_dur_newest_run(const char *dir, const char *store) {
  char *out = NULL;
  int rc = lc_dur_sh(dir, &out, NULL, "\"$LUACT\" runs list --json --limit 1 --store '%s'", store);
  char *id = rc == 0 ? lc_dur_json_str(out, "id") : NULL;
  free(out);
  return id;
}
