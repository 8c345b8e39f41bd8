/* l_status.c: the live status line on a terminal (see l_status.h). */
#include "l_status.h"

#include <lauxlib.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "engine.h"
#include "l_engine.h"
#include "llm_call.h"

#define ERASE "\r\033[K"

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static int drawn;  /* the line is on the screen */
static int active; /* calls between their first SEND and their END */
static int held;   /* a line is being typed: draw nothing over it */

int lc_l_status_colour(void) {
  const char *nc = getenv("NO_COLOR"), *term = getenv("TERM");
  return isatty(2) && !(nc && *nc) && !(term && !strcmp(term, "dumb"));
}

static void clear_locked(void) {
  if (!drawn) return;
  fputs(ERASE, stderr);
  fflush(stderr);
  drawn = 0;
}

void lc_l_status_hold(int on) {
  pthread_mutex_lock(&mu);
  held = on;
  if (on) clear_locked();
  pthread_mutex_unlock(&mu);
}

void lc_l_status_clear(void) {
  pthread_mutex_lock(&mu);
  clear_locked();
  pthread_mutex_unlock(&mu);
}

/* Columns of the terminal on stderr (80 when unknown): a line longer than
 * that would wrap, and \r would then redraw only its last row. */
static size_t columns(void) {
  struct winsize w;
  if (ioctl(2, TIOCGWINSZ, &w) == 0 && w.ws_col > 1) return w.ws_col;
  return 80;
}

/* Called by llm_call.c (from the loop, or for TOKENS from the transfer's
 * write callback: it only prints). */
static void on_status(void *ud, const struct lc_llm_status *s) {
  (void)ud;
  const char *model = s->model && *s->model ? s->model : "the model";
  char line[512], att[64] = "";
  const char *colour = "\033[36m"; /* cyan: waiting */
  if (s->attempt > 1) snprintf(att, sizeof att, " (attempt %d of %d)", s->attempt, s->max_attempts);
  switch (s->kind) {
    case LC_LLM_ST_SEND:
      snprintf(line, sizeof line, "luact: waiting for %s%s", model, att);
      break;
    case LC_LLM_ST_WAIT:
    case LC_LLM_ST_TOKENS:
      if (s->tokens > 0) {
        colour = "\033[32m"; /* green: streaming */
        snprintf(line, sizeof line, "luact: %s streaming, %ld token%s in %.0f s%s", model,
                 s->tokens, s->tokens == 1 ? "" : "s", s->waited_s, att);
      } else {
        snprintf(line, sizeof line, "luact: waiting for %s, %.0f s%s", model, s->waited_s, att);
      }
      break;
    case LC_LLM_ST_RETRY: {
      char code[32] = "";
      if (s->http_status) snprintf(code, sizeof code, " (HTTP %d)", s->http_status);
      colour = "\033[33m"; /* yellow: trouble */
      snprintf(line, sizeof line, "luact: %s: %s%s, retry %d of %d in %.1f s", model,
               s->error ? s->error : "error", code, s->attempt,
               s->max_attempts > 1 ? s->max_attempts - 1 : 1, s->delay_s);
      break;
    }
    case LC_LLM_ST_END:
    default:
      line[0] = '\0';
  }
  pthread_mutex_lock(&mu);
  if (s->kind == LC_LLM_ST_SEND && s->attempt == 1) active++;
  if (s->kind == LC_LLM_ST_END) {
    if (active > 0) active--;
    if (active == 0) clear_locked();
  } else if (!held) {
    size_t n = strlen(line), max = columns() - 1;
    if (n > max) n = max;
    for (size_t i = 0; i < n; i++) /* a model name is the script's: no escapes */
      if ((unsigned char)line[i] < 0x20 || line[i] == 0x7f) line[i] = ' ';
    int c = lc_l_status_colour();
    fprintf(stderr, ERASE "%s%.*s%s", c ? colour : "", (int)n, line, c ? "\033[0m" : "");
    fflush(stderr);
    drawn = 1;
  }
  pthread_mutex_unlock(&mu);
}

/* Does L show live output on this terminal? */
static int live_here(lua_State *L) {
  struct lc_run_opts ro;
  lc_l_get_run_opts(L, &ro);
  return !ro.quiet && isatty(2);
}

void lc_l_status_attach(lua_State *L, struct lc_llm_opts *o) {
  if (!live_here(L)) return;
  o->status = on_status;
  o->status_ud = NULL;
}

void lc_l_print_cost(FILE *f, const struct lc_engine_usage *u) {
  if (u->cost_unknown) fputs("cost unknown", f);
  else fprintf(f, "$%.4f", u->cost_usd);
}

/* term.live() -> whether live lines go to stderr by default. */
static int l_term_live(lua_State *L) {
  lua_pushboolean(L, live_here(L));
  return 1;
}

/* term.clear(): erases the status line before a line of one's own. */
static int l_term_clear(lua_State *L) {
  (void)L;
  lc_l_status_clear();
  return 0;
}

void lc_l_push_term(lua_State *L) {
  static const luaL_Reg fns[] = {{"live", l_term_live}, {"clear", l_term_clear}, {NULL, NULL}};
  luaL_newlib(L, fns);
}
