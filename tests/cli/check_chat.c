/* check_chat.c: `luact chat` with a person at the terminal (issue 13,
 * first-hour item 5): line editing (arrow keys), history (recalled with
 * Up, kept across sessions in the user's data folder, never a secret),
 * secret input without echo, Ctrl-C that cancels the model's turn and
 * asks again (a workflow goes on with the next line), Ctrl-C at an empty
 * prompt and Ctrl-D that end the chat with 0, a second Ctrl-C in one turn
 * that ends the process as before, Ctrl-C outside a terminal as before,
 * and the run options of `luact run`. The built luact runs on a
 * pseudo-terminal against lc-mockllm; every wait is on output, never on
 * time. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include "util_common.h"
#include "util_mock.h"

static char dir[128];     /* the chat's folder: DIR/chat.lua */
static char env_extra[300] = "LC_CHAT_EXTRA="; /* one more variable, set by a test */
static char data[160];    /* XDG_DATA_HOME */
static char chatdir[192]; /* dir/talk */
static const char *command = "chat"; /* or "run" (of chatdir/chat.lua) */
static char buf[131072];
static size_t len, mark; /* output so far; where the next wait looks from */

static void rm_rf(const char *p) {
  char cmd[512];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", p);
  if (system(cmd) != 0) fprintf(stderr, "cannot remove %s\n", p);
}

static void setup(void) {
  snprintf(dir, sizeof dir, "/tmp/lc_chat_%ld", (long)getpid());
  snprintf(data, sizeof data, "%s/data", dir);
  snprintf(chatdir, sizeof chatdir, "%s/talk", dir);
  rm_rf(dir);
  ck_assert_int_eq(mkdir(dir, 0700), 0);
  ck_assert_int_eq(mkdir(data, 0700), 0);
  ck_assert_int_eq(mkdir(chatdir, 0700), 0);
  buf[0] = '\0';
  len = mark = 0;
  command = "chat";
  snprintf(env_extra, sizeof env_extra, "LC_CHAT_EXTRA=");
}

static void teardown(void) { rm_rf(dir); }

static void write_chat(const char *code) {
  char p[256];
  snprintf(p, sizeof p, "%s/chat.lua", chatdir);
  FILE *f = fopen(p, "w");
  ck_assert_ptr_nonnull(f);
  fputs(code, f);
  ck_assert_int_eq(fclose(f), 0);
}

/* Reads fd into buf until want appears after mark (NULL: until EOF), then
 * moves mark past it. Returns 0, or -1 at EOF (a pty master reads EIO
 * once the child has gone). */
static int wait_for(int fd, const char *want) {
  for (;;) {
    if (want) {
      char *at = strstr(buf + mark, want);
      if (at) {
        mark = (size_t)(at - buf) + strlen(want);
        return 0;
      }
    }
    struct pollfd p = {fd, POLLIN, 0};
    if (poll(&p, 1, -1) < 0 && errno == EINTR) continue;
    ssize_t n = read(fd, buf + len, sizeof buf - 1 - len);
    if (n <= 0) return -1;
    len += (size_t)n;
    buf[len] = '\0';
    if (getenv("LC_CHAT_DEBUG")) fprintf(stderr, "[%.*s]\n", (int)n, buf + len - (size_t)n);
  }
}

static void send_keys(int fd, const char *keys) {
  size_t n = strlen(keys);
  ck_assert_int_eq(write(fd, keys, n), (ssize_t)n);
}

/* The environment: the mock's URL (or none), the data folder. */
static char env_base[160], env_data[256], env_home[256];
static char *env[] = {"PATH=/usr/bin:/bin", "TERM=xterm", "NO_COLOR=1", env_base, env_data,
                      env_home, "LUACT_STORE=off", env_extra,
                      /* The sanitizer build's luact stops at its first finding. */
                      "ASAN_OPTIONS=detect_leaks=1:abort_on_error=1",
                      "UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1", NULL};

static void set_env(const struct lc_mock *m) {
  snprintf(env_base, sizeof env_base, "OPENAI_BASE_URL=%s/v1",
           m ? m->base_url : "http://127.0.0.1:1");
  snprintf(env_data, sizeof env_data, "XDG_DATA_HOME=%s", data);
  snprintf(env_home, sizeof env_home, "HOME=%s", dir);
}

/* Starts `luact chat OPTS... DIR` on a new pseudo-terminal (tty) or with
 * stdin and stdout on pipes; *fd reads its output (and, on a tty, takes
 * its keys; on pipes *in is its stdin). */
static pid_t start(int tty, const struct lc_mock *mock, const char *const *opts, int *fd,
                   int *in) {
  int m = -1, pp[2], pi[2];
  char slave[128];
  set_env(mock);
  if (tty) {
    m = posix_openpt(O_RDWR | O_NOCTTY);
    ck_assert_int_ge(m, 0);
    ck_assert_int_eq(grantpt(m), 0);
    ck_assert_int_eq(unlockpt(m), 0);
    ck_assert_int_eq(ptsname_r(m, slave, sizeof slave), 0);
  } else {
    ck_assert_int_eq(pipe(pp), 0);
    ck_assert_int_eq(pipe(pi), 0);
  }
  pid_t pid = fork();
  ck_assert_int_ge(pid, 0);
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL); /* a failed assertion leaves no luact behind */
    if (tty) {
      setsid();
      int s = open(slave, O_RDWR);
      if (s < 0) _exit(127);
      dup2(s, 0);
      dup2(s, 1);
      dup2(s, 2);
    } else {
      dup2(pi[0], 0);
      dup2(pp[1], 1);
      dup2(pp[1], 2);
    }
    char bin[512];
    snprintf(bin, sizeof bin, "%s/luact", LC_BINARY_DIR);
    char *argv[16] = {"luact", (char *)command};
    int k = 2;
    for (; opts && *opts && k < 14; opts++) argv[k++] = (char *)*opts;
    char script[256];
    snprintf(script, sizeof script, "%s/chat.lua", chatdir);
    argv[k++] = strcmp(command, "run") ? chatdir : script;
    argv[k] = NULL;
    execve(bin, argv, env);
    _exit(127);
  }
  if (tty) {
    *fd = m;
  } else {
    close(pp[1]);
    close(pi[0]);
    *fd = pp[0];
    *in = pi[1];
  }
  return pid;
}

/* Reads to the end and reaps the child; returns its wait status. */
static int finish(pid_t pid, int fd) {
  wait_for(fd, NULL);
  close(fd);
  int st;
  ck_assert_int_eq(waitpid(pid, &st, 0), pid);
  return st;
}

#define EXITED_0(st) (WIFEXITED(st) && WEXITSTATUS(st) == 0)

/* Echoes each line; "model" asks the model, "pw" asks for a secret,
 * "sleep" waits on something Ctrl-C cannot stop. */
static const char echo_chat[] =
    "while true do\n"
    "  local line, err, code = luact.ask('you> ')\n"
    "  if not line then print('bye ' .. tostring(code)) return 0 end\n"
    "  print('got: [' .. line .. ']')\n"
    "  if line == 'model' then\n"
    "    local r, e, c = luact.llm.chat{model = 'openai:mock', prompt = 'hi', retries = 0}\n"
    "    print('model: ' .. tostring(r and r.text) .. ' ' .. tostring(c))\n"
    "  elseif line == 'pw' then\n"
    "    local p = luact.ask('password: ', {secret = true})\n"
    "    print('secret of ' .. tostring(p and #p) .. ' bytes')\n"
    "  elseif line == 'sleep' then\n"
    "    luact.sleep(1000)\n"
    "  end\n"
    "end\n";

static char *slurp(const char *path) {
  FILE *f = fopen(path, "r");
  if (!f) return NULL;
  static char s[65536];
  size_t n = fread(s, 1, sizeof s - 1, f);
  s[n] = '\0';
  fclose(f);
  return s;
}

/* Left arrow moves into the line, Up recalls the line before; before,
 * the script got "abd\033[Dc". */
START_TEST(arrow_keys_edit_and_recall) {
  write_chat(echo_chat);
  int fd;
  pid_t pid = start(1, NULL, NULL, &fd, NULL);
  ck_assert_int_eq(wait_for(fd, "you> "), 0);
  send_keys(fd, "abd\033[Dc\r");
  ck_assert_msg(wait_for(fd, "got: [") == 0 && wait_for(fd, "]") == 0, "%s", buf);
  ck_assert_msg(strstr(buf, "got: [abcd]"), "%s", buf);
  ck_assert_int_eq(wait_for(fd, "you> "), 0);
  send_keys(fd, "second\r");
  ck_assert_int_eq(wait_for(fd, "got: [second]"), 0);
  ck_assert_int_eq(wait_for(fd, "you> "), 0);
  send_keys(fd, "\033[A\033[A\r"); /* two lines back */
  ck_assert_msg(wait_for(fd, "got: [abcd]") == 0, "%s", buf);
  ck_assert_int_eq(wait_for(fd, "you> "), 0);
  send_keys(fd, "\004"); /* Ctrl-D */
  ck_assert_int_eq(wait_for(fd, "bye eof"), 0);
  int st = finish(pid, fd);
  ck_assert_msg(EXITED_0(st), "status %d: %s", st, buf);
}
END_TEST

/* The history outlives the session: the next chat recalls it with Up. It
 * lives under XDG_DATA_HOME, named for the chat, readable by its owner
 * only, and holds no secret. */
START_TEST(history_across_sessions_without_secrets) {
  write_chat(echo_chat);
  int fd;
  pid_t pid = start(1, NULL, NULL, &fd, NULL);
  ck_assert_int_eq(wait_for(fd, "you> "), 0);
  send_keys(fd, "remember me\r");
  ck_assert_int_eq(wait_for(fd, "you> "), 0);
  send_keys(fd, "pw\r");
  ck_assert_int_eq(wait_for(fd, "password: "), 0);
  send_keys(fd, "hunter2-very-secret\r");
  ck_assert_msg(wait_for(fd, "secret of 19 bytes") == 0, "%s", buf);
  ck_assert_int_eq(wait_for(fd, "you> "), 0);
  send_keys(fd, "\004");
  int st = finish(pid, fd);
  ck_assert_msg(EXITED_0(st), "status %d: %s", st, buf);
  ck_assert_msg(!strstr(buf, "hunter2"), "the secret was echoed: %s", buf);

  char hp[256];
  snprintf(hp, sizeof hp, "%s/luact/history/talk", data);
  struct stat sb;
  ck_assert_int_eq(stat(hp, &sb), 0);
  ck_assert_int_eq(sb.st_mode & 0777, 0600);
  char *h = slurp(hp);
  ck_assert_ptr_nonnull(h);
  ck_assert_msg(strstr(h, "remember") && !strstr(h, "hunter2"), "%s", h);

  buf[0] = '\0';
  len = mark = 0;
  pid = start(1, NULL, NULL, &fd, NULL);
  ck_assert_int_eq(wait_for(fd, "you> "), 0);
  send_keys(fd, "\033[A\033[A\r"); /* "pw", then "remember me" */
  ck_assert_msg(wait_for(fd, "got: [remember me]") == 0, "%s", buf);
  ck_assert_int_eq(wait_for(fd, "you> "), 0);
  send_keys(fd, "\004");
  st = finish(pid, fd);
  ck_assert_msg(EXITED_0(st), "status %d: %s", st, buf);
}
END_TEST

/* The history file stays bounded: 1000 lines (libedit's own header line
 * aside), the oldest dropped. */
START_TEST(history_is_bounded) {
  write_chat(echo_chat);
  char hd[256], hp[300];
  snprintf(hd, sizeof hd, "%s/luact", data);
  ck_assert_int_eq(mkdir(hd, 0700), 0);
  snprintf(hd, sizeof hd, "%s/luact/history", data);
  ck_assert_int_eq(mkdir(hd, 0700), 0);
  snprintf(hp, sizeof hp, "%s/talk", hd);
  FILE *f = fopen(hp, "w");
  ck_assert_ptr_nonnull(f);
  fputs("_HiStOrY_V2_\n", f);
  for (int i = 0; i < 1500; i++) fprintf(f, "old%d\n", i);
  ck_assert_int_eq(fclose(f), 0);
  int fd;
  pid_t pid = start(1, NULL, NULL, &fd, NULL);
  ck_assert_int_eq(wait_for(fd, "you> "), 0);
  send_keys(fd, "newest\r");
  ck_assert_int_eq(wait_for(fd, "got: [newest]"), 0);
  ck_assert_int_eq(wait_for(fd, "you> "), 0);
  send_keys(fd, "\004");
  int st = finish(pid, fd);
  ck_assert_msg(EXITED_0(st), "status %d: %s", st, buf);
  f = fopen(hp, "r");
  ck_assert_ptr_nonnull(f);
  char line[256];
  int n = 0, has_newest = 0, has_oldest = 0;
  while (fgets(line, sizeof line, f)) {
    n++;
    has_newest |= !strcmp(line, "newest\n");
    has_oldest |= !strcmp(line, "old0\n");
  }
  fclose(f);
  ck_assert_msg(n <= 1001 && has_newest && !has_oldest, "%d lines, newest %d, old0 %d", n,
                has_newest, has_oldest);
}
END_TEST

/* A model that does not answer: the status line says we wait; Ctrl-C
 * cancels the call ("cancelled" to the script), says so and prompts
 * again, the process lives on; Ctrl-D then ends it with 0. Before, Ctrl-C
 * killed the process. */
START_TEST(ctrl_c_cancels_the_turn) {
  struct lc_mock m;
  ck_assert_int_eq(lc_mock_start(&m, "[{\"reply\": {\"delay_ms\": 100000, \"openai\": "
                                     "{\"text\": \"late\"}}}]"),
                   0);
  write_chat(echo_chat);
  int fd;
  pid_t pid = start(1, &m, NULL, &fd, NULL);
  ck_assert_int_eq(wait_for(fd, "you> "), 0);
  send_keys(fd, "model\r");
  ck_assert_msg(wait_for(fd, "luact: waiting for mock") == 0, "%s", buf); /* thinking */
  send_keys(fd, "\003");
  ck_assert_msg(wait_for(fd, "(cancelled)") == 0, "%s", buf);
  ck_assert_msg(wait_for(fd, "model: nil cancelled") == 0, "%s", buf);
  ck_assert_int_eq(wait_for(fd, "you> "), 0);
  ck_assert_int_eq(kill(pid, 0), 0); /* alive, and asking */
  send_keys(fd, "still here\r");
  ck_assert_int_eq(wait_for(fd, "got: [still here]"), 0);
  ck_assert_int_eq(wait_for(fd, "you> "), 0);
  send_keys(fd, "\004");
  int st = finish(pid, fd);
  lc_mock_stop(&m);
  ck_assert_msg(EXITED_0(st), "status %d: %s", st, buf);
}
END_TEST

/* The reply comes: the status line is erased before it prints, and the
 * prompt after it has no status text over it. */
START_TEST(thinking_sign_cleared_before_the_reply) {
  struct lc_mock m;
  ck_assert_int_eq(lc_mock_start(&m, "[{\"reply\": {\"openai\": {\"text\": \"hello there\"}}}]"),
                   0);
  write_chat(echo_chat);
  int fd;
  pid_t pid = start(1, &m, NULL, &fd, NULL);
  ck_assert_int_eq(wait_for(fd, "you> "), 0);
  send_keys(fd, "model\r");
  ck_assert_msg(wait_for(fd, "model: hello there") == 0, "%s", buf);
  const char *w = strstr(buf, "luact: waiting for mock");
  const char *r = strstr(buf, "model: hello there");
  ck_assert_msg(w && w < r, "no thinking sign before the reply: %s", buf);
  const char *erase = strstr(w, "\r\033[K");
  ck_assert_msg(erase && erase < r, "the status line was not erased: %s", buf);
  ck_assert_int_eq(wait_for(fd, "you> "), 0);
  send_keys(fd, "\004");
  int st = finish(pid, fd);
  lc_mock_stop(&m);
  ck_assert_msg(EXITED_0(st), "status %d: %s", st, buf);
}
END_TEST

/* The same inside luact.react: its call ends, the run fails with that
 * reason, and the chat asks again. */
START_TEST(ctrl_c_cancels_a_react_turn) {
  struct lc_mock m;
  ck_assert_int_eq(lc_mock_start(&m, "[{\"reply\": {\"delay_ms\": 100000, \"openai\": "
                                     "{\"text\": \"late\"}}}]"),
                   0);
  write_chat("while true do\n"
             "  local q = luact.ask('you> ')\n"
             "  if not q then return 0 end\n"
             "  local r = luact.react{model = 'openai:mock', question = q, retries = 0}\n"
             "  print('react ' .. r.status .. ': ' .. tostring(r.reason))\n"
             "end\n");
  int fd;
  pid_t pid = start(1, &m, NULL, &fd, NULL);
  ck_assert_int_eq(wait_for(fd, "you> "), 0);
  send_keys(fd, "what now\r");
  ck_assert_msg(wait_for(fd, "waiting for mock") == 0, "%s", buf);
  send_keys(fd, "\003");
  ck_assert_msg(wait_for(fd, "(cancelled)") == 0, "%s", buf);
  ck_assert_msg(wait_for(fd, "react failed: LLM error (cancelled): interrupted (Ctrl-C)") == 0,
                "%s", buf);
  ck_assert_int_eq(wait_for(fd, "you> "), 0);
  send_keys(fd, "\004");
  int st = finish(pid, fd);
  lc_mock_stop(&m);
  ck_assert_msg(EXITED_0(st), "status %d: %s", st, buf);
}
END_TEST

/* A call that starts while the person types (another task's) draws no
 * status line over the prompt. Before, "luact: waiting for mock" replaced
 * the prompt line. */
START_TEST(no_status_line_over_the_prompt) {
  struct lc_mock m;
  ck_assert_int_eq(lc_mock_start(&m, "[{\"times\": 1, \"reply\": {\"openai\": {\"text\": "
                                     "\"one\"}}}, {\"reply\": {\"delay_ms\": 100000, "
                                     "\"openai\": {\"text\": \"late\"}}}]"),
                   0);
  write_chat("luact.spawn(function()\n"
             "  luact.llm.chat{model = 'openai:mock', prompt = '1', retries = 0}\n"
             "  luact.llm.chat{model = 'openai:mock', prompt = '2', retries = 0}\n"
             "end)\n"
             "print('got: [' .. tostring(luact.ask('you> ')) .. ']')\n"
             "io.stdout:flush()\n"
             "os.exit(0)\n");
  int fd;
  pid_t pid = start(1, &m, NULL, &fd, NULL);
  ck_assert_int_eq(wait_for(fd, "you> "), 0);
  size_t prompt_end = mark;
  /* The second call has gone out (its status report came before). */
  while (lc_mock_count_requests(&m, "/v1/chat/completions") < 2) poll(NULL, 0, 5);
  send_keys(fd, "typed");
  ck_assert_int_eq(wait_for(fd, "typed"), 0);
  ck_assert_msg(!strstr(buf + prompt_end, "waiting for"), "status over the prompt: %s", buf);
  send_keys(fd, "\r");
  ck_assert_msg(wait_for(fd, "got: [typed]") == 0, "%s", buf);
  int st = finish(pid, fd);
  lc_mock_stop(&m);
  ck_assert_msg(EXITED_0(st), "status %d: %s", st, buf);
}
END_TEST

/* Ctrl-C at an empty prompt ends the input (exit 0); on a line being
 * typed it only clears the line. */
START_TEST(ctrl_c_at_the_prompt) {
  write_chat(echo_chat);
  int fd;
  pid_t pid = start(1, NULL, NULL, &fd, NULL);
  ck_assert_int_eq(wait_for(fd, "you> "), 0);
  send_keys(fd, "half a li");
  ck_assert_int_eq(wait_for(fd, "half a li"), 0);
  send_keys(fd, "\003");
  ck_assert_int_eq(wait_for(fd, "you> "), 0);
  send_keys(fd, "new\r");
  ck_assert_msg(wait_for(fd, "got: [new]") == 0, "%s", buf);
  ck_assert_int_eq(wait_for(fd, "you> "), 0);
  /* Typed and erased: empty again. Ctrl-L redraws the prompt once the
   * keys before it were taken (a Ctrl-C sooner would flush them). */
  send_keys(fd, "x\177\014");
  ck_assert_int_eq(wait_for(fd, "you> "), 0);
  send_keys(fd, "\003");
  ck_assert_msg(wait_for(fd, "bye eof") == 0, "%s", buf);
  int st = finish(pid, fd);
  ck_assert_msg(EXITED_0(st), "status %d: %s", st, buf);
}
END_TEST

/* Nothing to cancel (a sleep): the first Ctrl-C says how to quit, the
 * second ends the process by SIGINT, as Ctrl-C always did. */
START_TEST(ctrl_c_twice_quits) {
  write_chat(echo_chat);
  int fd;
  pid_t pid = start(1, NULL, NULL, &fd, NULL);
  ck_assert_int_eq(wait_for(fd, "you> "), 0);
  send_keys(fd, "sleep\r");
  ck_assert_int_eq(wait_for(fd, "got: [sleep]"), 0);
  send_keys(fd, "\003");
  ck_assert_msg(wait_for(fd, "(Ctrl-C again to quit)") == 0, "%s", buf);
  send_keys(fd, "\003");
  int st = finish(pid, fd);
  ck_assert_msg(WIFSIGNALED(st) && WTERMSIG(st) == SIGINT, "status %d: %s", st, buf);
}
END_TEST

/* luact run edits lines too, but Ctrl-C keeps its default there: at the
 * prompt it ends the process, and the terminal gets its modes back. */
START_TEST(run_ctrl_c_at_the_prompt_restores_the_terminal) {
  command = "run";
  write_chat(echo_chat);
  int fd;
  pid_t pid = start(1, NULL, NULL, &fd, NULL);
  ck_assert_int_eq(wait_for(fd, "you> "), 0);
  send_keys(fd, "abd\033[Dc\r");
  ck_assert_msg(wait_for(fd, "got: [abcd]") == 0, "%s", buf);
  ck_assert_int_eq(wait_for(fd, "you> "), 0);
  send_keys(fd, "\003");
  wait_for(fd, NULL);
  int st;
  ck_assert_int_eq(waitpid(pid, &st, 0), pid);
  ck_assert_msg(WIFSIGNALED(st) && WTERMSIG(st) == SIGINT, "status %d: %s", st, buf);
  struct termios t;
  ck_assert_int_eq(tcgetattr(fd, &t), 0); /* the pair's modes, from the master */
  close(fd);
  ck_assert_msg((t.c_lflag & (ICANON | ECHO)) == (ICANON | ECHO), "left raw: lflag %#x",
                (unsigned)t.c_lflag);
  char hp[256];
  snprintf(hp, sizeof hp, "%s/luact/history/chat", data); /* named for the script */
  ck_assert_msg(slurp(hp) && strstr(slurp(hp), "abcd"), "no history in %s", hp);
}
END_TEST

/* Not a terminal: Ctrl-C (SIGINT) ends luact chat as it always did. */
START_TEST(ctrl_c_outside_a_terminal) {
  write_chat("print('ready') io.stdout:flush()\nreturn luact.ask('you> ')\n");
  int fd, in;
  pid_t pid = start(0, NULL, NULL, &fd, &in);
  ck_assert_int_eq(wait_for(fd, "ready"), 0);
  kill(pid, SIGINT);
  int st = finish(pid, fd);
  close(in);
  ck_assert_msg(WIFSIGNALED(st) && WTERMSIG(st) == SIGINT, "status %d: %s", st, buf);
}
END_TEST

/* A workflow whose model turn is cancelled asks again and goes on with
 * the person's next line: the second request carries it. */
START_TEST(workflow_goes_on_after_a_cancelled_turn) {
  struct lc_mock m;
  ck_assert_int_eq(
      lc_mock_start(&m, "[{\"times\": 1, \"reply\": {\"delay_ms\": 100000, \"openai\": "
                        "{\"text\": \"late\"}}},"
                        "{\"reply\": {\"openai\": {\"tool_calls\": [{\"name\": \"finish\", "
                        "\"arguments\": {\"summary\": \"all done\"}}]}}}]"),
      0);
  write_chat(
      "local wf = luact.workflow{name = 'w', initial = 'talk', model = 'openai:mock',\n"
      "  system = 'be brief', states = {talk = {description = 'talk', ask_user = true,\n"
      "  finish = true}}}\n"
      "local function input() return luact.ask('you> ') end\n"
      "local r = wf:run{message = input(), input = input, retries = 0,\n"
      "  on_event = function(ev) if ev.kind == 'cancelled' then print('turn cancelled') end end}\n"
      "print('status ' .. r.status .. ': ' .. tostring(r.summary))\n"
      "return 0\n");
  int fd;
  pid_t pid = start(1, &m, NULL, &fd, NULL);
  ck_assert_int_eq(wait_for(fd, "you> "), 0);
  send_keys(fd, "hello\r");
  ck_assert_msg(wait_for(fd, "waiting for mock") == 0, "%s", buf);
  /* Until the mock has the request (and so used its stalling rule): a
   * turn cancelled before would make the next request stall instead. */
  while (lc_mock_count_requests(&m, "/v1/chat/completions") < 1) poll(NULL, 0, 5);
  send_keys(fd, "\003");
  ck_assert_msg(wait_for(fd, "(cancelled)") == 0, "%s", buf);
  ck_assert_msg(wait_for(fd, "turn cancelled") == 0, "%s", buf);
  ck_assert_int_eq(wait_for(fd, "you> "), 0);
  send_keys(fd, "try again please\r");
  ck_assert_msg(wait_for(fd, "status finished: all done") == 0, "%s", buf);
  int st = finish(pid, fd);
  ck_assert_int_eq(lc_mock_count_requests(&m, "/v1/chat/completions"), 2);
  lc_mock_assert_request_has(&m, 1, "try again please");
  lc_mock_stop(&m);
  ck_assert_msg(EXITED_0(st), "status %d: %s", st, buf);
}
END_TEST

/* The run options of luact run: --record writes the journal (the typed
 * lines in it, the secret scrubbed); a durable run (--store) ended with
 * Ctrl-D exits 0, not "waiting for input". */
START_TEST(run_options_record_and_store) {
  write_chat(echo_chat);
  char jp[256], sp[256];
  snprintf(jp, sizeof jp, "%s/chat.journal", dir);
  snprintf(sp, sizeof sp, "%s/runs.db", dir);
  const char *rec[] = {"--record", jp, NULL};
  int fd;
  pid_t pid = start(1, NULL, rec, &fd, NULL);
  ck_assert_int_eq(wait_for(fd, "you> "), 0);
  send_keys(fd, "abd\033[Dc\r");
  ck_assert_int_eq(wait_for(fd, "got: [abcd]"), 0);
  ck_assert_int_eq(wait_for(fd, "you> "), 0);
  send_keys(fd, "pw\r");
  ck_assert_int_eq(wait_for(fd, "password: "), 0);
  send_keys(fd, "hunter2-very-secret\r");
  ck_assert_int_eq(wait_for(fd, "you> "), 0);
  send_keys(fd, "\004");
  int st = finish(pid, fd);
  ck_assert_msg(EXITED_0(st), "status %d: %s", st, buf);
  char *j = slurp(jp);
  ck_assert_ptr_nonnull(j);
  ck_assert_msg(strstr(j, "abcd") && !strstr(j, "hunter2"), "%s", j);

  buf[0] = '\0';
  len = mark = 0;
  const char *store[] = {"--store", sp, NULL};
  pid = start(1, NULL, store, &fd, NULL);
  ck_assert_int_eq(wait_for(fd, "you> "), 0);
  send_keys(fd, "durable\r");
  ck_assert_int_eq(wait_for(fd, "got: [durable]"), 0);
  ck_assert_int_eq(wait_for(fd, "you> "), 0);
  send_keys(fd, "\004");
  st = finish(pid, fd);
  ck_assert_msg(EXITED_0(st), "status %d: %s", st, buf);
  ck_assert_msg(!strstr(buf, "waiting for input"), "%s", buf);
  struct stat sb;
  ck_assert_int_eq(stat(sp, &sb), 0);
}
END_TEST

/* libedit is loaded at the first prompt on a terminal (bindings/edit_dl.c).
 * Where it cannot be (here a libedit.so.2 that is no library, found
 * first), the chat says why once and reads lines as the terminal gives
 * them: the input still works. */
START_TEST(without_libedit_the_prompt_still_reads) {
  char lib[200], p[300];
  snprintf(lib, sizeof lib, "%s/nolib", dir);
  ck_assert_int_eq(mkdir(lib, 0700), 0);
  snprintf(p, sizeof p, "%s/libedit.so.2", lib);
  FILE *f = fopen(p, "w");
  ck_assert_ptr_nonnull(f);
  ck_assert_int_eq(fclose(f), 0);
  snprintf(env_extra, sizeof env_extra, "LD_LIBRARY_PATH=%s", lib);
  write_chat(echo_chat);
  int fd;
  pid_t pid = start(1, NULL, NULL, &fd, NULL);
  ck_assert_int_eq(wait_for(fd, "you> "), 0);
  ck_assert_msg(strstr(buf, "cannot load libedit.so.2 (no line editing)"), "%s", buf);
  send_keys(fd, "plain line\r");
  ck_assert_msg(wait_for(fd, "got: [plain line]") == 0, "%s", buf);
  ck_assert_int_eq(wait_for(fd, "you> "), 0);
  send_keys(fd, "\004"); /* Ctrl-D: end of input in the terminal's cooked mode */
  ck_assert_msg(wait_for(fd, "bye eof") == 0, "%s", buf);
  int st = finish(pid, fd);
  ck_assert_msg(EXITED_0(st), "status %d: %s", st, buf);
}
END_TEST

Suite *chat_suite(void) {
  Suite *s = suite_create("chat");
  TCase *tc = tcase_create("terminal");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, arrow_keys_edit_and_recall);
  tcase_add_test(tc, history_across_sessions_without_secrets);
  tcase_add_test(tc, history_is_bounded);
  tcase_add_test(tc, ctrl_c_cancels_the_turn);
  tcase_add_test(tc, ctrl_c_cancels_a_react_turn);
  tcase_add_test(tc, thinking_sign_cleared_before_the_reply);
  tcase_add_test(tc, no_status_line_over_the_prompt);
  tcase_add_test(tc, ctrl_c_at_the_prompt);
  tcase_add_test(tc, ctrl_c_twice_quits);
  tcase_add_test(tc, ctrl_c_outside_a_terminal);
  tcase_add_test(tc, run_ctrl_c_at_the_prompt_restores_the_terminal);
  tcase_add_test(tc, workflow_goes_on_after_a_cancelled_turn);
  tcase_add_test(tc, run_options_record_and_store);
  tcase_add_test(tc, without_libedit_the_prompt_still_reads);
  suite_add_tcase(s, tc);
  return s;
}
