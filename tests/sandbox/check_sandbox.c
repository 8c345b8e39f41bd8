/* check_sandbox.c: the PAL sandbox. One case per hostile program in
 * tests/lua/sandbox/ (first line "-- expect: <code>[: <substring>]", or
 * "-- expect: ok: <json>"; optional second line "-- opts: key=value ..."),
 * plus unit tests of the C API and the Lua binding. */
#include <check.h>
#include <dirent.h>
#include <lauxlib.h>
#include <lualib.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "l_sandbox.h"
#include "lc.h"
#include "child.h"
#include "loop.h"
#include "sandbox.h"
#include "util_common.h"
#include "util_lua.h"

#define MIN_CORPUS 108 /* the files in tests/lua/sandbox: a lost file fails */
#define MAX_CORPUS 512

static char *corpus[MAX_CORPUS];
static int ncorpus;

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

static void corpus_scan(void) {
  char dir[4096];
  snprintf(dir, sizeof dir, "%s/tests/lua/sandbox", lc_test_source_dir());
  DIR *d = opendir(dir);
  if (!d) return;
  struct dirent *e;
  while ((e = readdir(d)) && ncorpus < MAX_CORPUS) {
    size_t n = strlen(e->d_name);
    if (n > 4 && strcmp(e->d_name + n - 4, ".lua") == 0)
      corpus[ncorpus++] = strdup(e->d_name);
  }
  closedir(d);
  qsort(corpus, (size_t)ncorpus, sizeof corpus[0], cmp_str);
}

/* A host Lua state in use around every sandbox run: it must come out
 * untouched. */
static lua_State *host_open(void) {
  lua_State *H = luaL_newstate();
  luaL_openlibs(H);
  ck_assert_int_eq(luaL_dostring(H, "canary = { n = 41 }"), 0);
  return H;
}

static void host_check(lua_State *H) {
  ck_assert_int_eq(
      luaL_dostring(H, "canary.n = canary.n + 1\n"
                       "assert(type(getmetatable('')) == 'table')\n"
                       "assert(('x'):rep(3) == 'xxx' and os and io)\n"
                       "return canary.n"),
      0);
  ck_assert_int_eq(lua_tointeger(H, -1), 42);
  lua_close(H);
}

struct expect {
  char code[32];
  char text[512]; /* substring of the message, or JSON for ok */
};

static void parse_header(const char *src, struct expect *e,
                         struct lc_sandbox_opts *o) {
  memset(e, 0, sizeof *e);
  ck_assert_msg(strncmp(src, "-- expect: ", 11) == 0, "no expect line");
  const char *p = src + 11, *eol = strchr(p, '\n');
  ck_assert_ptr_nonnull(eol);
  size_t n = strcspn(p, ":\n");
  ck_assert_uint_lt(n, sizeof e->code);
  memcpy(e->code, p, n);
  if (p[n] == ':') {
    const char *t = p + n + 1;
    while (*t == ' ') t++;
    size_t tl = (size_t)(eol - t);
    ck_assert_uint_lt(tl, sizeof e->text);
    memcpy(e->text, t, tl);
  }
  /* Generous defaults so that valgrind's slowdown does not turn an
   * instruction stop into a timeout; timeout cases set their own. */
  lc_sandbox_opts_init(o);
  o->wall_ms = 60000;
  const char *l2 = eol + 1;
  if (strncmp(l2, "-- opts:", 8) == 0) {
    char key[32];
    double v;
    const char *q = l2 + 8;
    int used;
    while (sscanf(q, " %31[a-z_]=%lf%n", key, &v, &used) == 2) {
      if (!strcmp(key, "wall_ms")) o->wall_ms = v;
      else if (!strcmp(key, "instr_limit")) o->instr_limit = (long)v;
      else if (!strcmp(key, "mem_limit")) o->mem_limit = (size_t)v;
      else if (!strcmp(key, "output_limit")) o->output_limit = (size_t)v;
      else ck_abort_msg("unknown opt %s", key);
      q += used;
    }
  }
}

START_TEST(corpus_case) {
  ck_assert_msg(ncorpus >= MIN_CORPUS, "corpus has %d files, need %d", ncorpus,
                MIN_CORPUS);
  if (_i >= ncorpus) return;
  const char *name = corpus[_i];
  char path[4096];
  snprintf(path, sizeof path, "%s/tests/lua/sandbox/%s", lc_test_source_dir(),
           name);
  size_t len;
  char *src = lc_test_read_file(path, &len);
  ck_assert_msg(src != NULL, "cannot read %s", path);
  struct expect e;
  struct lc_sandbox_opts o;
  parse_header(src, &e, &o);

  lua_State *H = host_open();
  long live = lc_alloc_live();
  struct lc_sandbox_result r;
  int rc = lc_sandbox_run(src, len, &o, NULL, &r);
  const char *got = lc_sandbox_status_code(r.status);
  ck_assert_msg(rc == 0, "%s: rc %d", name, rc);
  ck_assert_msg(strcmp(got, e.code) == 0, "%s: expected %s, got %s (%s)", name,
                e.code, got, r.error ? r.error : "no message");
  if (r.status == LC_SANDBOX_OK) {
    ck_assert_ptr_nonnull(r.value);
    if (e.text[0]) {
      cJSON *want = cJSON_Parse(e.text);
      ck_assert_msg(want != NULL, "%s: bad expected JSON", name);
      char *have = cJSON_PrintUnformatted(r.value);
      ck_assert_msg(cJSON_Compare(r.value, want, 1), "%s: value %s, want %s",
                    name, have, e.text);
      free(have);
      cJSON_Delete(want);
    }
  } else {
    ck_assert_ptr_nonnull(r.error);
    ck_assert_ptr_null(r.value);
    ck_assert_msg(strstr(r.error, e.text) != NULL,
                  "%s: message \"%.300s\" lacks \"%s\"", name, r.error, e.text);
  }
  ck_assert_msg(r.mem_peak <= o.mem_limit, "%s: peak %zu over cap %zu", name,
                r.mem_peak, o.mem_limit);
  ck_assert_msg(r.mem_after_close == 0, "%s: %zu bytes left", name,
                r.mem_after_close);
  ck_assert_uint_le(r.output_len, o.output_limit);
  lc_sandbox_result_free(&r);
  ck_assert_int_eq(lc_alloc_live(), live);
  host_check(H);
  free(src);
}
END_TEST

/* ---- C API ---- */

static struct lc_sandbox_result run_src(const char *src,
                                        const struct lc_sandbox_opts *o,
                                        const cJSON *input) {
  struct lc_sandbox_result r;
  lc_sandbox_run(src, strlen(src), o, input, &r);
  return r;
}

static void assert_json(const cJSON *v, const char *want) {
  cJSON *w = cJSON_Parse(want);
  ck_assert_ptr_nonnull(w);
  char *have = v ? cJSON_PrintUnformatted(v) : NULL;
  ck_assert_msg(v && cJSON_Compare(v, w, 1), "value %s, want %s",
                have ? have : "(none)", want);
  free(have);
  cJSON_Delete(w);
}

START_TEST(output_capture) {
  struct lc_sandbox_result r =
      run_src("print('a', 1, nil, true) print() print(2.5) return 7", NULL,
              NULL);
  ck_assert_int_eq(r.status, LC_SANDBOX_OK);
  ck_assert_str_eq(r.output, "a\t1\tnil\ttrue\n\n2.5\n");
  ck_assert_uint_eq(r.output_len, strlen("a\t1\tnil\ttrue\n\n2.5\n"));
  assert_json(r.value, "7");
  lc_sandbox_result_free(&r);

  /* Output past the cap is an error, and what fitted is kept. */
  struct lc_sandbox_opts o;
  lc_sandbox_opts_init(&o);
  o.output_limit = 10;
  r = run_src("print('12345') print('67890')", &o, NULL);
  ck_assert_int_eq(r.status, LC_SANDBOX_OUTPUT);
  ck_assert_str_eq(r.output, "12345\n");
  lc_sandbox_result_free(&r);
}
END_TEST

START_TEST(input_global) {
  cJSON *in = cJSON_Parse("{\"xs\":[10,20,30],\"name\":\"bob\",\"z\":null}");
  struct lc_sandbox_result r = run_src(
      "return { n = #input.xs, second = input.xs[2],\n"
      "         hi = 'hi ' .. input.name }",
      NULL, in);
  ck_assert_msg(r.status == LC_SANDBOX_OK, "%s", r.error);
  assert_json(r.value, "{\"n\":3,\"second\":20,\"hi\":\"hi bob\"}");
  lc_sandbox_result_free(&r);
  /* Round trip keeps empty arrays and nulls. */
  cJSON *in2 = cJSON_Parse("{\"a\":[],\"b\":{},\"c\":null}");
  r = run_src("return input", NULL, in2);
  assert_json(r.value, "{\"a\":[],\"b\":{},\"c\":null}");
  lc_sandbox_result_free(&r);
  /* No input: `input` is nil, not an undefined-global error. */
  r = run_src("return input == nil", NULL, NULL);
  assert_json(r.value, "true");
  lc_sandbox_result_free(&r);
  cJSON_Delete(in);
  cJSON_Delete(in2);
}
END_TEST

START_TEST(value_as_json) {
  struct lc_sandbox_result r =
      run_src("return { a = { 1, 2.5, 'x' }, b = { c = false } }", NULL, NULL);
  assert_json(r.value, "{\"a\":[1,2.5,\"x\"],\"b\":{\"c\":false}}");
  lc_sandbox_result_free(&r);
  r = run_src("return 1, 2", NULL, NULL);
  assert_json(r.value, "[1,2]");
  lc_sandbox_result_free(&r);
  r = run_src("return coroutine.create(print)", NULL, NULL);
  ck_assert_int_eq(r.status, LC_SANDBOX_BAD_RESULT);
  ck_assert(strstr(r.error, "cannot encode a thread") != NULL);
  ck_assert_ptr_null(r.value);
  lc_sandbox_result_free(&r);
}
END_TEST

START_TEST(errors_and_traceback) {
  struct lc_sandbox_result r =
      run_src("local function f() error('bad thing') end\nf()", NULL, NULL);
  ck_assert_int_eq(r.status, LC_SANDBOX_ERROR);
  ck_assert_str_eq(r.error, "pal:1: bad thing");
  ck_assert_ptr_nonnull(r.traceback);
  ck_assert(strstr(r.traceback, "stack traceback:") == r.traceback);
  lc_sandbox_result_free(&r);
  r = run_src("return 1 +", NULL, NULL);
  ck_assert_int_eq(r.status, LC_SANDBOX_SYNTAX);
  ck_assert(strstr(r.error, "pal:1:") != NULL);
  lc_sandbox_result_free(&r);
  /* Binary code given directly is refused at load time. */
  r = run_src("\033Lua\x54", NULL, NULL);
  ck_assert_int_eq(r.status, LC_SANDBOX_SYNTAX);
  ck_assert(strstr(r.error, "binary chunk") != NULL);
  lc_sandbox_result_free(&r);
}
END_TEST

static int cb_add(void *ud, const cJSON *args, cJSON **result, char *err,
                  size_t errlen) {
  int *calls = ud;
  ++*calls;
  const cJSON *a = cJSON_GetObjectItem(args, "a"),
              *b = cJSON_GetObjectItem(args, "b");
  if (!cJSON_IsNumber(a) || !cJSON_IsNumber(b)) {
    snprintf(err, errlen, "add needs numbers a and b");
    return LC_EINVAL;
  }
  *result = cJSON_CreateObject();
  cJSON_AddNumberToObject(*result, "sum", a->valuedouble + b->valuedouble);
  return 0;
}

START_TEST(host_functions) {
  int calls = 0;
  struct lc_sandbox_fn fns[] = {{"add", cb_add, &calls}};
  struct lc_sandbox_opts o;
  lc_sandbox_opts_init(&o);
  o.fns = fns;
  o.nfns = 1;
  struct lc_sandbox_result r = run_src(
      "local s = add{ a = 2, b = 3 }.sum\n"
      "local v, msg, code = add{ a = 'x' }\n"
      "return { s, v == nil, msg, code, pcall(add, 5) }",
      &o, NULL);
  ck_assert_msg(r.status == LC_SANDBOX_OK, "%s", r.error);
  ck_assert_int_eq(calls, 2);
  cJSON *v = r.value;
  ck_assert_int_eq(cJSON_GetArrayItem(v, 0)->valueint, 5);
  ck_assert(cJSON_IsTrue(cJSON_GetArrayItem(v, 1)));
  ck_assert_str_eq(cJSON_GetArrayItem(v, 2)->valuestring,
                   "add needs numbers a and b");
  ck_assert_str_eq(cJSON_GetArrayItem(v, 3)->valuestring, "invalid");
  ck_assert(cJSON_IsFalse(cJSON_GetArrayItem(v, 4)));
  lc_sandbox_result_free(&r);

  /* Arguments that cannot be JSON raise, and the callback is not called. */
  r = run_src("return add{ f = print }", &o, NULL);
  ck_assert_int_eq(r.status, LC_SANDBOX_ERROR);
  ck_assert(strstr(r.error, "add: bad argument") != NULL);
  ck_assert_int_eq(calls, 2);
  lc_sandbox_result_free(&r);

  /* A name that shadows a global, or is not an identifier, is refused. */
  struct lc_sandbox_fn bad[] = {{"print", cb_add, &calls}};
  o.fns = bad;
  ck_assert_int_eq(lc_sandbox_run("return 1", 8, &o, NULL, &r), LC_EINVAL);
  lc_sandbox_result_free(&r);
  struct lc_sandbox_fn bad2[] = {{"a.b", cb_add, &calls}};
  o.fns = bad2;
  ck_assert_int_eq(lc_sandbox_run("return 1", 8, &o, NULL, &r), LC_EINVAL);
  lc_sandbox_result_free(&r);
}
END_TEST

START_TEST(fresh_state_each_run) {
  struct lc_sandbox_result r =
      run_src("string.rep = nil; getmetatable = nil; return 1", NULL, NULL);
  ck_assert_int_eq(r.status, LC_SANDBOX_OK);
  lc_sandbox_result_free(&r);
  r = run_src("return ('ab'):rep(2) .. type(getmetatable)", NULL, NULL);
  assert_json(r.value, "\"ababfunction\"");
  lc_sandbox_result_free(&r);
}
END_TEST

START_TEST(allocations_balanced) {
  long live = lc_alloc_live();
  const char *progs[] = {"return 1",
                         "print('x') error('y')",
                         "while true do end",
                         "local s = 'x' while true do s = s .. s end",
                         "return {f = print}",
                         "return 1 +"};
  for (size_t i = 0; i < LC_ARRAY_LEN(progs); i++) {
    struct lc_sandbox_result r = run_src(progs[i], NULL, NULL);
    ck_assert_uint_eq(r.mem_after_close, 0);
    ck_assert_uint_le(r.mem_peak, LC_SANDBOX_DEFAULT_MEM);
    ck_assert_uint_gt(r.mem_peak, 0);
    lc_sandbox_result_free(&r);
    ck_assert_int_eq(lc_alloc_live(), live);
  }
}
END_TEST

START_TEST(limits_reported) {
  struct lc_sandbox_opts o;
  lc_sandbox_opts_init(&o);
  o.instr_limit = 5000;
  struct lc_sandbox_result r = run_src("while true do end", &o, NULL);
  ck_assert_int_eq(r.status, LC_SANDBOX_INSTRUCTIONS);
  ck_assert_int_gt(r.instructions, 5000);
  ck_assert_int_le(r.instructions, 5000 + LC_SANDBOX_HOOK_STEP);
  lc_sandbox_result_free(&r);

  lc_sandbox_opts_init(&o);
  o.wall_ms = 50;
  o.instr_limit = 1000000000000L;
  r = run_src("while true do end", &o, NULL);
  ck_assert_int_eq(r.status, LC_SANDBOX_TIMEOUT);
  ck_assert(r.elapsed_ms >= 50); /* a lower bound only: the machine is shared */
  lc_sandbox_result_free(&r);

  lc_sandbox_opts_init(&o);
  o.mem_limit = 256 << 10;
  r = run_src("local t = {} for i = 1, 1e6 do t[i] = i end", &o, NULL);
  ck_assert_int_eq(r.status, LC_SANDBOX_MEMORY);
  ck_assert_uint_le(r.mem_peak, 256 << 10);
  lc_sandbox_result_free(&r);

  /* A cap too small for the libraries themselves is a clean memory stop. */
  o.mem_limit = 1024;
  r = run_src("return 1", &o, NULL);
  ck_assert_int_eq(r.status, LC_SANDBOX_MEMORY);
  ck_assert_uint_eq(r.mem_after_close, 0);
  lc_sandbox_result_free(&r);
}
END_TEST

/* Fail the Nth Lua allocation and all later ones: every N must end cleanly
 * with ok or memory and leave nothing behind. */
START_TEST(oom_each_allocation) {
  struct lc_sandbox_opts o;
  lc_sandbox_opts_init(&o);
  o.fail_alloc_after = _i;
  long live = lc_alloc_live();
  struct lc_sandbox_result r = run_src(
      "local t = {} for i = 1, 50 do t[i] = { i, tostring(i) } end\n"
      "print(#t) return t[50]",
      &o, NULL);
  ck_assert_msg(r.status == LC_SANDBOX_OK || r.status == LC_SANDBOX_MEMORY,
                "N=%d: %s %s", _i, lc_sandbox_status_code(r.status), r.error);
  if (r.status == LC_SANDBOX_OK) assert_json(r.value, "[50,\"50\"]");
  ck_assert_uint_eq(r.mem_after_close, 0);
  lc_sandbox_result_free(&r);
  ck_assert_int_eq(lc_alloc_live(), live);
}
END_TEST

/* Half the runs are children spawned from three threads at once, half
 * run in the calling thread. Children are posix_spawn'ed (vfork + exec:
 * nothing runs between the two that could take a lock), so this holds
 * under ASan too: GCC 12's libasan installs no fork handlers, and a fork
 * while another thread held its allocator lock used to hang the child. */
static void *thread_run(void *arg) {
  int *ok = arg;
  struct lc_sandbox_opts o; /* loose clock: valgrind serialises threads */
  lc_sandbox_opts_init(&o);
  o.instr_limit = 200000;
  o.wall_ms = 120000;
  o.in_process = 1;
  struct lc_sandbox_opts plain;
  lc_sandbox_opts_init(&plain);
  plain.in_process = 0;
  for (int i = 0; i < 20; i++) {
    struct lc_sandbox_result r = run_src(
        "local s = 0 for i = 1, 10000 do s = s + i end return s", &plain, NULL);
    if (r.status == LC_SANDBOX_OK && r.value->valuedouble == 50005000.0) ++*ok;
    lc_sandbox_result_free(&r);
    r = run_src("while true do end", &o, NULL);
    if (r.status == LC_SANDBOX_INSTRUCTIONS) ++*ok;
    lc_sandbox_result_free(&r);
  }
  return NULL;
}

START_TEST(threads_independent) {
  pthread_t t[3];
  int ok[3] = {0, 0, 0};
  for (int i = 0; i < 3; i++) pthread_create(&t[i], NULL, thread_run, &ok[i]);
  for (int i = 0; i < 3; i++) pthread_join(t[i], NULL);
  for (int i = 0; i < 3; i++) ck_assert_int_eq(ok[i], 40);
}
END_TEST


/* ---- the child process ---- */

/* Mutation guard: each coroutine.create is charged one hook step (a thread
 * that dies between two hook calls would leave its count unpaid). 1000
 * creates of an empty function cost ~6000 VM instructions uncharged. */
START_TEST(cocreate_charged) {
  struct lc_sandbox_opts o;
  lc_sandbox_opts_init(&o);
  o.wall_ms = 60000;
  const char *src =
      "local f = function() end\n"
      "for i = 1, 1000 do coroutine.create(f) end\n"
      "return 1";
  struct lc_sandbox_result r = run_src(src, &o, NULL);
  ck_assert_int_eq(r.status, LC_SANDBOX_OK);
  ck_assert_int_ge(r.instructions, 1000L * LC_SANDBOX_HOOK_STEP);
  lc_sandbox_result_free(&r);
  o.instr_limit = 50000; /* the loop alone fits; the charges do not */
  r = run_src(src, &o, NULL);
  ck_assert_msg(r.status == LC_SANDBOX_INSTRUCTIONS, "got %s",
                lc_sandbox_status_code(r.status));
  lc_sandbox_result_free(&r);
  /* coroutine.wrap is charged the same way. */
  o.instr_limit = 50000;
  r = run_src("local f = function() end\n"
              "for i = 1, 1000 do coroutine.wrap(f) end\n"
              "return 1", &o, NULL);
  ck_assert_int_eq(r.status, LC_SANDBOX_INSTRUCTIONS);
  lc_sandbox_result_free(&r);
}
END_TEST

/* The largest result a program may return comes back whole from the
 * child: a string of control characters at the result limit is six times
 * longer as JSON. */
START_TEST(largest_result_from_child) {
  struct lc_sandbox_opts o;
  lc_sandbox_opts_init(&o);
  o.wall_ms = 60000;
  struct lc_sandbox_result r =
      run_src("return string.rep('\\1', 1024 * 1024 - 100)", &o, NULL);
  ck_assert_msg(r.status == LC_SANDBOX_OK, "%s: %s",
                lc_sandbox_status_code(r.status), r.error);
  ck_assert(cJSON_IsString(r.value));
  ck_assert_uint_eq(strlen(r.value->valuestring), 1024 * 1024 - 100);
  lc_sandbox_result_free(&r);
}
END_TEST

struct jobwait {
  int done;
};
static void job_done(struct lc_sandbox_job *j, void *ud) {
  (void)j;
  ((struct jobwait *)ud)->done = 1;
}

/* Starts `while true do end` for a long time and drives loop until the
 * child has installed its filter. */
static struct lc_sandbox_job *start_spinner(struct lc_loop *loop,
                                            struct jobwait *w, double wall) {
  struct lc_sandbox_opts o;
  lc_sandbox_opts_init(&o);
  o.wall_ms = wall;
  o.instr_limit = 1000000000000L;
  struct lc_sandbox_job *j;
  const char *src = "while true do end";
  ck_assert_int_eq(
      lc_sandbox_start(loop, src, strlen(src), &o, NULL, job_done, w, &j), 0);
  while (!lc_sandbox_job_started(j) && !w->done) lc_loop_run_once(loop, -1);
  ck_assert_msg(!w->done, "the child ended before it started");
  return j;
}

static char *proc_read(int pid, const char *what, size_t *n) {
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/%s", pid, what);
  int fd = open(path, O_RDONLY | O_CLOEXEC); /* /proc files have no size */
  ck_assert_msg(fd >= 0, "cannot open %s: %s", path, strerror(errno));
  size_t cap = 65536;
  char *s = malloc(cap + 1);
  ck_assert_ptr_nonnull(s);
  *n = 0;
  ssize_t got;
  while ((got = read(fd, s + *n, cap - *n)) > 0) *n += (size_t)got;
  close(fd);
  s[*n] = '\0';
  return s;
}

static void assert_limit(const char *limits, const char *name,
                         const char *want) {
  const char *l = strstr(limits, name);
  ck_assert_msg(l != NULL, "no %s in limits", name);
  char soft[32], hard[32];
  ck_assert_int_eq(sscanf(l + strlen(name), " %31s %31s", soft, hard), 2);
  ck_assert_msg(!strcmp(soft, want) && !strcmp(hard, want),
                "%s: %s %s, want %s", name, soft, hard, want);
}

/* The child sees no environment (a canary set here is absent), no
 * descriptor of ours (one opened without CLOEXEC included), runs under
 * rlimits and a seccomp filter with no_new_privs. Checked from /proc while
 * it runs, once it reported that its filter is in place. */
START_TEST(child_confined) {
  setenv("LUACT_TEST_CANARY", "sk-canary-not-for-the-child", 1);
  int leak = open("/dev/null", O_RDONLY); /* no O_CLOEXEC on purpose */
  ck_assert_int_ge(leak, 0);
  ck_assert_int_eq(dup2(leak, 77), 77);
  struct lc_loop *loop;
  ck_assert_int_eq(lc_loop_new(&loop), 0);
  struct jobwait w = {0};
  struct lc_sandbox_job *j = start_spinner(loop, &w, 60000);
  int pid = lc_sandbox_job_pid(j);
  size_t n;
  char *env = proc_read(pid, "environ", &n);
  ck_assert_msg(n == 0, "child environment: %.*s", (int)n, env);
  free(env);

  char dir[64];
  snprintf(dir, sizeof dir, "/proc/%d/fd", pid);
  DIR *d = opendir(dir);
  ck_assert_ptr_nonnull(d);
  struct dirent *e;
  int seen = 0;
  while ((e = readdir(d))) {
    if (e->d_name[0] == '.') continue;
    int fd = atoi(e->d_name);
    char path[320], target[256];
    snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
    ssize_t tl = readlink(path, target, sizeof target - 1);
    ck_assert_int_gt(tl, 0);
    target[tl] = '\0';
    /* 0 and 1 are /dev/null, 2 too outside sanitizer builds, 4 the pipe. */
    ck_assert_msg(fd == 0 || fd == 1 || fd == 2 || fd == 4,
                  "child has fd %d (%s)", fd, target);
    if (fd == 4) ck_assert_msg(!strncmp(target, "pipe:", 5), "fd 4: %s", target);
#if !defined(__SANITIZE_ADDRESS__)
    else ck_assert_msg(!strcmp(target, "/dev/null"), "fd %d: %s", fd, target);
#endif
    seen++;
  }
  closedir(d);
  ck_assert_int_eq(seen, 4);

  char *lim = proc_read(pid, "limits", &n);
  assert_limit(lim, "Max core file size", "0");
  assert_limit(lim, "Max file size", "0");
  assert_limit(lim, "Max processes", "0");
  assert_limit(lim, "Max open files", "5");
  assert_limit(lim, "Max cpu time", "62");
  free(lim);
  char *st = proc_read(pid, "status", &n);
  ck_assert_msg(strstr(st, "\nSeccomp:\t2\n") != NULL, "no filter: %s", st);
  ck_assert_msg(strstr(st, "\nNoNewPrivs:\t1\n") != NULL, "may gain privileges");
  free(st);

  ck_assert_int_eq(lc_sandbox_live(), 1);
  lc_sandbox_job_free(j); /* kills and reaps; no callback */
  ck_assert_int_eq(w.done, 0);
  ck_assert_int_eq(lc_sandbox_live(), 0);
  ck_assert_int_eq(lc_loop_pending(loop), 0);
  lc_loop_free(loop);
  close(77);
  close(leak);
  unsetenv("LUACT_TEST_CANARY");
}
END_TEST

/* A system call outside the filter kills the child: "violation", never
 * ENOMEM or an ok run. (Arguments are -1 and 0: harmless if allowed.) */
START_TEST(forbidden_syscall) {
  static const long calls[] = {SYS_socket, SYS_connect, SYS_clone,
                               SYS_execve, SYS_ptrace,  SYS_kill,
                               SYS_setsid, SYS_chdir};
  for (size_t i = 0; i < LC_ARRAY_LEN(calls); i++) {
    struct lc_sandbox_opts o;
    lc_sandbox_opts_init(&o);
    o.wall_ms = 60000;
    o.test_syscall = calls[i];
    struct lc_sandbox_result r;
    int rc = lc_sandbox_run("return 1", 8, &o, NULL, &r);
    ck_assert_int_eq(rc, 0);
    ck_assert_msg(r.status == LC_SANDBOX_VIOLATION, "syscall %ld: %s (%s)",
                  calls[i], lc_sandbox_status_code(r.status),
                  r.error ? r.error : "");
    ck_assert_ptr_nonnull(strstr(r.error, "sandbox violation"));
    ck_assert_str_eq(lc_sandbox_status_code(r.status), "violation");
    lc_sandbox_result_free(&r);
  }
  ck_assert_int_eq(lc_sandbox_live(), 0);
}
END_TEST

/* The child dies with its parent: a process of ours starts a long run and
 * is SIGKILLed; the grandchild must exit (waited for on its pidfd; the
 * case's timeout is far below the run's caps). */
START_TEST(child_dies_with_parent) {
  int p[2];
  ck_assert_int_eq(pipe(p), 0);
  pid_t mid = fork();
  ck_assert_int_ge(mid, 0);
  if (mid == 0) {
    close(p[0]);
    struct lc_loop *loop;
    if (lc_loop_new(&loop)) _exit(1);
    struct jobwait w = {0};
    struct lc_sandbox_job *j = start_spinner(loop, &w, 600000);
    int pid = lc_sandbox_job_pid(j);
    if (write(p[1], &pid, sizeof pid) != sizeof pid) _exit(1);
    for (;;) lc_loop_run_once(loop, -1);
  }
  close(p[1]);
  int gc = 0;
  ck_assert_int_eq(read(p[0], &gc, sizeof gc), (ssize_t)sizeof gc);
  close(p[0]);
  int pidfd = (int)syscall(SYS_pidfd_open, gc, 0);
  ck_assert_int_ge(pidfd, 0);
  struct pollfd pf = {.fd = pidfd, .events = POLLIN};
  ck_assert_int_eq(poll(&pf, 1, 0), 0); /* running */
  ck_assert_int_eq(kill(mid, SIGKILL), 0);
  int st;
  ck_assert_int_eq(waitpid(mid, &st, 0), mid);
  int pr;
  while ((pr = poll(&pf, 1, -1)) < 0 && errno == EINTR) {
  }
  ck_assert_int_eq(pr, 1); /* the grandchild is gone */
  close(pidfd);
}
END_TEST

/* A program that ignores SIGCHLD has its children reaped by the kernel:
 * runs still end, with their result (or "died" without one), never hang.
 * Run twice: the child watched through its pidfd, then polled (child.c),
 * as where the kernel gives no pidfd. */
START_TEST(sigchld_ignored) {
  lc_child_force_poll(_i);
  signal(SIGCHLD, SIG_IGN);
  struct lc_sandbox_opts o;
  lc_sandbox_opts_init(&o);
  o.wall_ms = 60000;
  struct lc_sandbox_result r = run_src("return 6 * 7", &o, NULL);
  ck_assert_int_eq(r.status, LC_SANDBOX_OK);
  ck_assert_int_eq(r.value->valueint, 42);
  lc_sandbox_result_free(&r);
  o.test_syscall = SYS_socket;
  r = run_src("return 1", &o, NULL);
  ck_assert_int_eq(r.status, LC_SANDBOX_DIED);
  lc_sandbox_result_free(&r);
  ck_assert_int_eq(lc_sandbox_live(), 0);
  signal(SIGCHLD, SIG_DFL);
  lc_child_force_poll(0);
}
END_TEST

/* Where the kernel gives no pidfd (valgrind, some containers) the child
 * is polled (child.c): a violation, the time cap and a cancel end as they
 * do with a pidfd (a result and an ignored SIGCHLD: sigchld_ignored). */
START_TEST(polled_child_ends_as_with_a_pidfd) {
  lc_child_force_poll(1);
  struct lc_sandbox_opts o;
  lc_sandbox_opts_init(&o);
  o.wall_ms = 60000;
  o.test_syscall = SYS_socket;
  struct lc_sandbox_result r = run_src("return 1", &o, NULL);
  ck_assert_int_eq(r.status, LC_SANDBOX_VIOLATION);
  lc_sandbox_result_free(&r);
  struct lc_loop *loop;
  ck_assert_int_eq(lc_loop_new(&loop), 0);
  struct jobwait w = {0};
  struct lc_sandbox_job *j = start_spinner(loop, &w, 300);
  while (!w.done) lc_loop_run_once(loop, -1);
  ck_assert_int_eq(lc_sandbox_job_result(j)->status, LC_SANDBOX_TIMEOUT);
  lc_sandbox_job_free(j);
  w = (struct jobwait){0};
  j = start_spinner(loop, &w, 60000);
  lc_sandbox_job_free(j); /* cancelled: killed and reaped, no callback */
  ck_assert_int_eq(w.done, 0);
  ck_assert_int_eq(lc_loop_pending(loop), 0);
  lc_loop_free(loop);
  ck_assert_int_eq(lc_sandbox_live(), 0);
  lc_child_force_poll(0);
}
END_TEST

static void tick(struct lc_loop *loop, struct lc_timer *t) {
  long *n = t->ud;
  ++*n;
  lc_timer_start(loop, t, 1);
}

/* A run driven by the loop leaves the loop free: a ticker on the same loop
 * completes its ticks while the program is still running, and the program
 * then runs until its time cap. */
START_TEST(loop_runs_beside_child) {
  struct lc_loop *loop;
  ck_assert_int_eq(lc_loop_new(&loop), 0);
  struct jobwait w = {0};
  struct lc_sandbox_job *j = start_spinner(loop, &w, 1500);
  long ticks = 0, during = -1;
  struct lc_timer t;
  lc_timer_init(&t, tick, &ticks);
  lc_timer_start(loop, &t, 1);
  while (!w.done) {
    lc_loop_run_once(loop, -1);
    if (ticks >= 20 && during < 0) during = ticks;
  }
  lc_timer_stop(loop, &t);
  ck_assert_msg(during >= 20, "the ticker stalled: %ld ticks", ticks);
  ck_assert_int_eq(lc_sandbox_job_rc(j), 0);
  ck_assert_int_eq(lc_sandbox_job_result(j)->status, LC_SANDBOX_TIMEOUT);
  lc_sandbox_job_free(j);
  ck_assert_int_eq(lc_loop_pending(loop), 0);
  lc_loop_free(loop);
}
END_TEST

/* ---- Lua binding ---- */

static lua_State *binding_state(void) {
  lua_State *L = host_open();
  lc_open_sandbox(L);
  lua_setglobal(L, "sandbox");
  return L;
}

static void lua_ok(lua_State *L, const char *src) {
  if (luaL_dostring(L, src) != 0)
    ck_abort_msg("%s", lua_tostring(L, -1));
}

START_TEST(binding_result) {
  lua_State *L = binding_state();
  lua_ok(L,
         "local r = sandbox.run('print(\"hi\") return { a = input.x * 2 }',"
         "                      { input = { x = 21 } })\n"
         "assert(r.ok == true and r.value.a == 42, 'value')\n"
         "assert(r.output == 'hi\\n', 'output')\n"
         "assert(r.memory > 0 and r.instructions >= 0)\n"
         "local r2 = sandbox.run('local x = 1')\n"
         "assert(r2.ok and r2.value == nil)");
  host_check(L);
}
END_TEST

START_TEST(binding_nil_msg_code) {
  lua_State *L = binding_state();
  lua_ok(L,
         "local function expect(code, src, opts)\n"
         "  local r, msg, c, d = sandbox.run(src, opts)\n"
         "  assert(r == nil, src)\n"
         "  assert(c == code, ('%s: got %s (%s)'):format(src, c, msg))\n"
         "  assert(type(msg) == 'string' and type(d) == 'table')\n"
         "  return msg, d\n"
         "end\n"
         "expect('syntax', 'return +')\n"
         "local m, d = expect('error', 'print(1) error(\"boom\")')\n"
         "assert(m:find('boom') and d.output == '1\\n' and d.traceback)\n"
         "expect('memory', 'local s = \"x\" while true do s = s .. s end')\n"
         "expect('instructions', 'while true do end', { instr_limit = 1000 })\n"
         "expect('timeout', 'while true do end',"
         "       { wall_ms = 30, instr_limit = 1e12 })\n"
         "expect('output', 'while true do print(1) end')\n"
         "expect('bad_result', 'return print')\n"
         "expect('error', 'return io')\n");
  /* Misuse raises. */
  ck_assert_int_ne(luaL_dostring(L, "sandbox.run({})"), 0);
  lua_pop(L, 1);
  ck_assert_int_ne(luaL_dostring(L, "sandbox.run('x', { wall_ms = 'a' })"), 0);
  lua_pop(L, 1);
  ck_assert_int_ne(luaL_dostring(L, "sandbox.run('x', { input = print })"), 0);
  lua_pop(L, 1);
  host_check(L);
}
END_TEST

/* Inside a task, luact.sandbox.run yields while the child runs: a ticker
 * task beside it completes its ticks while the program spins to its time
 * cap (a run on the loop thread would leave it at most one tick). A task
 * killed while waiting kills its child. */
START_TEST(binding_yields_in_task) {
  char out[256], err[1024];
  int rc = lc_test_lua_run_once(
      NULL, NULL,
      "local running, ticks = true, 0\n"
      "local t = luact.spawn(function()\n"
      "  while running do luact.sleep(0.001); ticks = ticks + 1 end\n"
      "end)\n"
      "local r, msg, code = luact.sandbox.run('while true do end',\n"
      "  { wall_ms = 1500, instr_limit = 1e12 })\n"
      "running = false\n"
      "luact.wait(t)\n"
      /* started is set in the same resume that starts the child (the task
       * only yields once its program runs): waiting for it, not a timer,
       * puts the kill on a running child. */
      "local started = false\n"
      "local k = luact.spawn(function()\n"
      "  started = true\n"
      "  return luact.sandbox.run('while true do end',\n"
      "    { wall_ms = 600000, instr_limit = 1e12 })\n"
      "end)\n"
      "while not started do luact.sleep(0) end\n"
      "luact.kill(k)\n"
      "return code .. '|' .. tostring(ticks >= 20) .. '|' .. ticks",
      out, sizeof out, err, sizeof err);
  ck_assert_msg(rc == 0, "%s", err);
  ck_assert_msg(strncmp(out, "timeout|true|", 13) == 0, "%s", out);
  ck_assert_int_eq(lc_sandbox_live(), 0);
}
END_TEST

Suite *sandbox_suite(void) {
  corpus_scan();
  Suite *s = suite_create("sandbox");
  TCase *tc = tcase_create("corpus");
  tcase_set_timeout(tc, 120);
  tcase_add_loop_test(tc, corpus_case, 0, ncorpus > 1 ? ncorpus : 1);
  suite_add_tcase(s, tc);

  tc = tcase_create("api");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, output_capture);
  tcase_add_test(tc, input_global);
  tcase_add_test(tc, value_as_json);
  tcase_add_test(tc, errors_and_traceback);
  tcase_add_test(tc, host_functions);
  tcase_add_test(tc, fresh_state_each_run);
  tcase_add_test(tc, allocations_balanced);
  tcase_add_test(tc, limits_reported);
  tcase_add_loop_test(tc, oom_each_allocation, 1, 400);
  tcase_add_test(tc, threads_independent);
  tcase_add_test(tc, cocreate_charged);
  tcase_add_test(tc, largest_result_from_child);
  suite_add_tcase(s, tc);

  tc = tcase_create("child");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, child_confined);
  tcase_add_test(tc, forbidden_syscall);
  tcase_add_test(tc, child_dies_with_parent);
  tcase_add_test(tc, loop_runs_beside_child);
  tcase_add_loop_test(tc, sigchld_ignored, 0, 2);
  tcase_add_test(tc, polled_child_ends_as_with_a_pidfd);
  suite_add_tcase(s, tc);

  tc = tcase_create("binding");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, binding_result);
  tcase_add_test(tc, binding_nil_msg_code);
  tcase_add_test(tc, binding_yields_in_task);
  suite_add_tcase(s, tc);
  return s;
}
