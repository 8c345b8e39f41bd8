/* util_mcp.c: the servers the MCP suites start (util_mcp.h). */
#include "util_mcp.h"

#include <check.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util_common.h"

int lc_test_node_server_start(pid_t *pid, const char *script, ...) {
  char js[600];
  snprintf(js, sizeof js, "%s/tests/mcp/%s", lc_test_source_dir(), script);
  const char *argv[8] = {"node", js};
  int argc = 2;
  va_list ap;
  va_start(ap, script);
  for (const char *a; (a = va_arg(ap, const char *)) != NULL;) {
    ck_assert_int_lt(argc, 7);
    argv[argc++] = a;
  }
  va_end(ap);
  argv[argc] = NULL;
  int p[2];
  ck_assert_int_eq(pipe(p), 0);
  *pid = fork();
  if (*pid == 0) {
    dup2(p[1], 1);
    close(p[0]);
    execvp("node", (char *const *)argv);
    _exit(127);
  }
  close(p[1]);
  FILE *f = fdopen(p[0], "r");
  char line[128];
  int port = 0;
  while (fgets(line, sizeof line, f))
    if (sscanf(line, "listening %d", &port) == 1) break;
  fclose(f);
  ck_assert_msg(port > 0, "%s did not start", script);
  return port;
}

void lc_test_node_server_stop(pid_t pid) {
  kill(pid, SIGKILL);
  waitpid(pid, NULL, 0);
}

pid_t lc_test_mcp_serve_http(const char *dir, const char *token, int *port, FILE **err) {
  int p[2];
  ck_assert_int_eq(pipe(p), 0);
  pid_t pid = fork();
  if (pid == 0) {
    char d[600];
    snprintf(d, sizeof d, "%s/tests/mcp/%s", lc_test_source_dir(), dir);
    prctl(PR_SET_PDEATHSIG, SIGTERM); /* a failed check ends the test process: end with it */
    setenv("LUACT_MCP_TOKEN", token, 1);
    dup2(p[1], 2);
    close(p[0]);
    int devnull = open("/dev/null", O_RDWR);
    dup2(devnull, 0);
    dup2(devnull, 1);
    execl(LC_BINARY_DIR "/luact", "luact", "mcp", "serve", "--http", "0", d, (char *)NULL);
    _exit(127);
  }
  close(p[1]);
  *err = fdopen(p[0], "r");
  char line[256];
  *port = 0;
  while (fgets(line, sizeof line, *err))
    if (sscanf(line, "luact mcp: listening on http://127.0.0.1:%d/mcp", port) == 1) break;
  ck_assert_msg(*port > 0, "the server did not start");
  return pid;
}
