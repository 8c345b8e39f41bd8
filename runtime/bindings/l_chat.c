/* l_chat.c: a person at the terminal: line editing and history for
 * luact.ask, secret input, and Ctrl-C for `luact chat` (see l_chat.h). */
#include "l_chat.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>


#include "edit_dl.h"
#include "l_status.h"
#include "lc.h"
#include "loop.h"
#include "sched.h"

/* Lines kept per chat; the file is rewritten whole after each line. */
#define HISTORY_MAX 1000

/* The one editor of the process (one terminal). */
static struct {
  int inited;
  int active;    /* 0, 1 (libedit), 2 (secret: the reader reads) */
  int installed; /* libedit's callback handler is installed */
  int end;       /* length of the line being typed */
  char *prompt;  /* the active edit's, for a redraw after Ctrl-C */
  lc_l_edit_done_fn done;
  void *ud;
  int got;    /* libedit handed a line (or end of input) ... */
  char *line; /* ... this one, malloc'd by libedit; NULL at Ctrl-D */
  struct termios saved; /* secret: the modes to restore */
  int saved_ok;
  char hist_name[128]; /* whose history is loaded ("" = none) */
  char hist_path[4096];
} ed;

/* Ctrl-C: the chat's thread and the loop that reads it. */
static _Thread_local struct lc_l_intr *intr_head;
static _Thread_local int chat_here;
static struct lc_sigwatch sigw;
static struct lc_loop *sig_loop;
static int pending; /* a Ctrl-C stopped a turn and no prompt came since */

int lc_l_edit_usable(int fd) {
  const char *term = getenv("TERM");
  /* libedit is loaded here, at the first prompt on a terminal; without it
   * the prompt is read as from a pipe. */
  return fd == 0 && isatty(0) && isatty(1) && !(term && !strcmp(term, "dumb")) &&
         lc_edit_dl_ready();
}

int lc_l_edit_active(void) { return ed.active; }

/* ---- history ---- */

static int mkdir_0700(const char *p) { return mkdir(p, 0700) == 0 || errno == EEXIST ? 0 : -1; }

/* The file for name under the user's data folder, its folders made
 * (0700: typed lines are the person's). "" when there is no place. */
static void history_path(const char *name, char *out, size_t n) {
  out[0] = '\0';
  const char *xdg = getenv("XDG_DATA_HOME"), *home = getenv("HOME");
  char base[3072];
  if (xdg && xdg[0] == '/') {
    snprintf(base, sizeof base, "%s", xdg);
  } else if (home && home[0] == '/') {
    snprintf(base, sizeof base, "%s/.local", home);
    mkdir_0700(base);
    snprintf(base, sizeof base, "%s/.local/share", home);
  } else {
    return;
  }
  /* The name is the chat's folder or script name: one path component. */
  char safe[128];
  size_t k = 0;
  for (const char *s = name; *s && k < sizeof safe - 1; s++) {
    int ok = (*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
             *s == '-' || *s == '_' || (*s == '.' && k > 0);
    safe[k++] = ok ? *s : '_';
  }
  safe[k] = '\0';
  if (!k) return;
  char dir[3200];
  if (mkdir_0700(base)) return;
  snprintf(dir, sizeof dir, "%s/luact", base);
  if (mkdir_0700(dir)) return;
  snprintf(dir, sizeof dir, "%s/luact/history", base);
  if (mkdir_0700(dir)) return;
  snprintf(out, n, "%s/%s", dir, safe);
}

static void history_use(const char *name) {
  if (!name) name = "";
  if (!strcmp(name, ed.hist_name)) return;
  clear_history();
  snprintf(ed.hist_name, sizeof ed.hist_name, "%s", name);
  ed.hist_path[0] = '\0';
  if (name[0]) history_path(name, ed.hist_path, sizeof ed.hist_path);
  if (ed.hist_path[0]) read_history(ed.hist_path);
}

static void history_add(const char *line) {
  const char *s = line;
  while (*s == ' ' || *s == '\t') s++;
  if (!*s) return;
  /* The same line again (sent twice, recalled and sent) is kept once. */
  HIST_ENTRY *last = history_length > 0 ? history_get(history_base + history_length - 1) : NULL;
  if (last && last->line && !strcmp(last->line, line)) return;
  add_history(line);
  if (!ed.hist_path[0]) return;
  /* Made 0600 first: write_history keeps the mode of a file it truncates. */
  int fd = open(ed.hist_path, O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) return;
  close(fd);
  write_history(ed.hist_path);
}

/* ---- the editor ---- */

/* libedit's line handler (inside rl_callback_read_char): note only. */
static void on_rl_line(char *line) {
  ed.got = 1;
  ed.line = line;
}

static void restore_tty(void) {
  if (ed.installed) {
    rl_callback_handler_remove(); /* back to the terminal's own modes */
    ed.installed = 0;
  }
  if (ed.saved_ok) {
    tcsetattr(0, TCSANOW, &ed.saved);
    ed.saved_ok = 0;
  }
}

static void at_exit(void) { restore_tty(); }

static void init_once(void) {
  if (ed.inited) return;
  ed.inited = 1;
  /* libedit's handlers, while a prompt is up: Ctrl-Z and a resize redraw
   * the line, and a Ctrl-C that ends the process (luact run) gives the
   * terminal its modes back first. In luact chat SIGINT never reaches
   * them: it is blocked, and read from the loop (lc_l_chat_enable). */
  rl_catch_signals = 1;
  rl_catch_sigwinch = 1;
  rl_readline_name = "luact"; /* "luact:" lines in ~/.editrc */
  rl_instream = stdin;
  rl_outstream = stdout;
  rl_initialize();
  stifle_history(HISTORY_MAX);
  atexit(at_exit);
}

/* Ends the active edit and hands line (lc_malloc'd or NULL) to its owner. */
static void edit_end(char *line, size_t len) {
  lc_l_edit_done_fn done = ed.done;
  void *ud = ed.ud;
  restore_tty();
  ed.active = 0;
  ed.done = NULL;
  lc_free(ed.prompt);
  ed.prompt = NULL;
  lc_l_status_hold(0);
  if (done) done(ud, line, len);
  else lc_free(line);
}

static void install(void) {
  rl_callback_handler_install(ed.prompt ? ed.prompt : "", on_rl_line);
  ed.installed = 1;
  ed.end = 0;
}

int lc_l_edit_start(const char *prompt, size_t plen, int secret, const char *history,
                    lc_l_edit_done_fn done, void *ud) {
  if (ed.active) return LC_ESTATE;
  char *p = lc_malloc(plen + 1);
  if (!p) return LC_ENOMEM;
  for (size_t i = 0; i < plen; i++) p[i] = prompt[i] ? prompt[i] : ' ';
  p[plen] = '\0';
  ed.prompt = p;
  ed.done = done;
  ed.ud = ud;
  pending = 0; /* a prompt: the next Ctrl-C is the prompt's */
  lc_l_status_hold(1); /* no status line over the line being typed */
  if (secret) {
    /* Echo off before the prompt shows: keys typed once it is there
     * must not appear. */
    struct termios t;
    if (tcgetattr(0, &ed.saved) == 0) {
      ed.saved_ok = 1;
      t = ed.saved;
      t.c_lflag &= ~(tcflag_t)(ECHO | ECHOE | ECHOK | ECHONL);
      tcsetattr(0, TCSANOW, &t);
    }
    fwrite(p, 1, plen, stdout);
    fflush(stdout);
    ed.active = 2;
    return 0;
  }
  init_once();
  history_use(history);
  install();
  ed.active = 1;
  return 0;
}

void lc_l_edit_readable(void) {
  if (ed.active != 1 || !ed.installed) return;
  /* libedit updates rl_end only when the line is not empty afterwards
   * (rl_callback_read_char returns early on an empty one): a value it
   * did not overwrite means empty. */
  rl_end = -1;
  rl_callback_read_char();
  ed.end = rl_end < 0 ? 0 : rl_end;
  if (!ed.got) return;
  ed.got = 0;
  char *l = ed.line;
  ed.line = NULL;
  char *c = NULL;
  size_t n = 0;
  if (l) {
    n = strlen(l);
    history_add(l);
    if ((c = lc_malloc(n + 1))) memcpy(c, l, n + 1);
    free(l); /* libedit's */
  } else {
    fputs("\n", stdout); /* Ctrl-D leaves the cursor after the prompt */
    fflush(stdout);
  }
  edit_end(c, n); /* out of memory: the input ends */
}

void lc_l_edit_stop(void) {
  if (!ed.active) return;
  ed.done = NULL; /* the owner went: nobody to hand anything to */
  edit_end(NULL, 0);
  fputs("\n", stdout); /* past the prompt (or the unechoed line) */
  fflush(stdout);
}

/* Ctrl-C at a prompt: clears the line, or on an empty one (and at a
 * secret prompt, whose line cannot be seen) ends the input. */
static void edit_interrupt(void) {
  if (ed.active == 1 && ed.end > 0) {
    rl_callback_handler_remove(); /* cooked again; the next install starts empty */
    ed.installed = 0;
    fputs("^C\n", stdout);
    fflush(stdout);
    install();
    return;
  }
  fputs("\n", stdout);
  fflush(stdout);
  edit_end(NULL, 0);
}

/* ---- Ctrl-C ---- */

void lc_l_intr_link(struct lc_l_intr *i) {
  if (!chat_here || i->linked) return;
  i->prev = NULL;
  i->next = intr_head;
  if (intr_head) intr_head->prev = i;
  intr_head = i;
  i->linked = 1;
}

void lc_l_intr_unlink(struct lc_l_intr *i) {
  if (!i->linked) return;
  if (i->prev) i->prev->next = i->next;
  else intr_head = i->next;
  if (i->next) i->next->prev = i->prev;
  i->prev = i->next = NULL;
  i->linked = 0;
}

/* The second Ctrl-C of a turn: what Ctrl-C always did, the terminal
 * restored first. */
static void hard_exit(void) {
  restore_tty();
  lc_l_status_clear();
  fflush(stdout);
  signal(SIGINT, SIG_DFL);
  lc_signal_block(SIGINT, 0);
  raise(SIGINT);
  _exit(130);
}

/* Loop callback (lc_loop_run_once, from the signalfd): Ctrl-C. */
static void on_sigint(struct lc_loop *loop, struct lc_sigwatch *w) {
  (void)loop;
  (void)w;
  if (ed.active) {
    edit_interrupt();
    return;
  }
  if (pending) hard_exit();
  pending = 1;
  int n = 0;
  for (struct lc_l_intr *i = intr_head, *next; i; i = next) {
    next = i->next;
    n += i->fn(i);
  }
  lc_l_status_clear();
  /* Over the ^C the terminal echoed. */
  fputs(n ? "\r\033[K(cancelled)\n" : "\r\033[K(Ctrl-C again to quit)\n", stdout);
  fflush(stdout);
}

int lc_l_chat_enable(lua_State *L) {
  struct lc_loop *loop = lc_sched_loop(lc_sched_get(L));
  sigw.sig = SIGINT;
  sigw.cb = on_sigint;
  sigw.ud = NULL;
  int rc = lc_loop_signal_watch(loop, &sigw);
  if (rc) return rc;
  sig_loop = loop;
  chat_here = 1;
  pending = 0;
  return 0;
}

void lc_l_chat_disable(lua_State *L) {
  (void)L;
  if (!sig_loop) return;
  lc_loop_signal_unwatch(sig_loop, &sigw);
  sig_loop = NULL;
  chat_here = 0;
}
