/* util_ship.c: the ShopBot shipping service as a child (util_ship.h). */
#include "util_ship.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <unistd.h>

/* Reads "listening on 127.0.0.1:PORT" a byte at a time; -1 on failure. */
static int read_port(int fd) {
  char line[128];
  size_t n = 0;
  while (n < sizeof line - 1) {
    struct pollfd p = {fd, POLLIN, 0};
    int r = poll(&p, 1, 20000);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0 || read(fd, line + n, 1) != 1) return -1;
    if (line[n] == '\n') break;
    n++;
  }
  line[n] = '\0';
  int port;
  return sscanf(line, "listening on 127.0.0.1:%d", &port) == 1 ? port : -1;
}

pid_t lc_test_ship_start(const char *db, char *url, size_t n) {
  int fds[2];
  ck_assert_int_eq(pipe2(fds, O_CLOEXEC), 0);
  pid_t pid = fork();
  ck_assert_int_ge(pid, 0);
  if (pid == 0) {
    dup2(fds[1], 1);
    execl(LC_BINARY_DIR "/shopbot-shipping", "shopbot-shipping", "--db", db, "--port", "0",
          (char *)NULL);
    _exit(127);
  }
  close(fds[1]);
  int port = read_port(fds[0]);
  close(fds[0]);
  ck_assert_int_gt(port, 0);
  snprintf(url, n, "http://127.0.0.1:%d", port);
  return pid;
}
