/* util_locale.c: a decimal-comma locale made or found at test time. */
#include "util_locale.h"

#include <check.h>
#include <fcntl.h>
#include <locale.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static char dir[64];

static int is_comma(const char *name) {
  if (!setlocale(LC_ALL, name)) return 0;
  if (strcmp(localeconv()->decimal_point, ",") == 0) return 1;
  setlocale(LC_ALL, "C");
  return 0;
}

/* localedef -i de_DE -f ISO-8859-1 <dir>/de_DE, no shell involved. */
static int compile_de(void) {
  strcpy(dir, "/tmp/lc-locale-XXXXXX");
  if (!mkdtemp(dir)) return 0;
  char out[128];
  snprintf(out, sizeof out, "%s/de_DE", dir);
  pid_t pid = fork();
  if (pid == 0) {
    int devnull = open("/dev/null", O_WRONLY);
    if (devnull >= 0) dup2(devnull, 2);
    execlp("localedef", "localedef", "-i", "de_DE", "-f", "ISO-8859-1", out, (char *)NULL);
    _exit(127);
  }
  int st = 0;
  if (pid < 0 || waitpid(pid, &st, 0) != pid) return 0;
  /* localedef exits 1 for warnings yet writes the locale: setlocale decides. */
  return setenv("LOCPATH", dir, 1) == 0;
}

const char *lc_test_comma_locale(void) {
  if (is_comma("de_DE.UTF-8")) return "de_DE.UTF-8";
  if (compile_de() && is_comma("de_DE")) return "de_DE";
  ck_abort_msg("no decimal-comma locale: de_DE.UTF-8 is not installed and "
               "'localedef -i de_DE -f ISO-8859-1' did not make one (it needs "
               "Debian's locales package: run scripts/setup)");
  return NULL;
}

void lc_test_locale_done(void) {
  setlocale(LC_ALL, "C");
  if (dir[0]) {
    char cmd[96];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    dir[0] = '\0';
  }
}
