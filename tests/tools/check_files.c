/* check_files.c: the files tool in a mkdtemp tree, through openat2 and
 * through the component-walk fallback (loop index 0 and 1). */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <lauxlib.h>
#include <lualib.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "files.h"
#include "l_files.h"
#include "offload.h"
#include "util_lua.h"
#include "util_tree.h"

static char base[256], rootdir[300];
static struct lc_files_root root;

static void put(const char *rel, const char *data, size_t n) {
  lc_test_tree_put(base, rel, data, n);
}
static void mkd(const char *rel) { lc_test_tree_mkdir(base, rel); }
static void lnk(const char *target, const char *rel) { lc_test_tree_link(base, target, rel); }

static void setup(void) {
  snprintf(base, sizeof base, "/tmp/lc_files_XXXXXX");
  ck_assert_ptr_nonnull(mkdtemp(base));
  snprintf(rootdir, sizeof rootdir, "%s/root", base);
  put("outside.txt", "secret\n", 7);
  mkd("outdir");
  put("outdir/s.txt", "secret\n", 7);
  mkd("root");
  put("root/a.txt", "hello\n", 6);
  mkd("root/sub");
  put("root/sub/b.txt", "bee", 3);
  put("root/sub/s.txt", "inside\n", 7);
  put("root/empty.txt", "", 0);
  put("root/utf8.txt", "\xe6\x97\xa5\xe6\x9c\xac\n", 7);
  put("root/latin1.txt", "caf\xe9\n", 5);
  put("root/bin.dat", "\x7f" "ELF\x00\x01", 6);
  char big[2000];
  memset(big, 'x', sizeof big);
  put("root/big.txt", big, sizeof big);
  lnk("../outside.txt", "root/link_out_file");
  lnk("../outdir", "root/link_out_dir");
  lnk("/etc/passwd", "root/link_abs");
  char abs_in[400];
  snprintf(abs_in, sizeof abs_in, "%s/a.txt", rootdir);
  lnk(abs_in, "root/link_abs_in");
  lnk("sub/b.txt", "root/link_in");
  lnk("sub", "root/link_in_dir");
  lnk("..", "root/sub/up");
  lnk("../..", "root/sub/escape");
  lnk("loop2", "root/loop1");
  lnk("loop1", "root/loop2");
  lnk(".", "root/self");
  char fifo[400];
  snprintf(fifo, sizeof fifo, "%s/fifo", rootdir);
  ck_assert_int_eq(mkfifo(fifo, 0600), 0);
  char err[256];
  ck_assert_msg(lc_files_open_root(&root, rootdir, err, sizeof err) == 0, "%s",
                err);
}

static void teardown(void) {
  lc_files_close_root(&root);
  lc_test_tree_rm(base);
}

/* The loop index picks the resolver: 0 = openat2, 1 = fallback walk. */
#define MODE() lc_files_force_fallback(_i)

static void read_ok(const char *rel, const char *want) {
  char *c = NULL, err[512];
  size_t n = 99;
  int rc = lc_files_read(&root, rel, 0, &c, &n, err, sizeof err);
  ck_assert_msg(rc == 0, "%s: %s", rel, err);
  ck_assert_uint_eq(n, strlen(want));
  ck_assert_mem_eq(c, want, n);
  ck_assert_int_eq(c[n], '\0');
  lc_free(c);
}

static void read_bad(const char *rel, size_t max, int want, const char *msg) {
  char *c = (char *)1, err[512];
  size_t n = 99;
  int rc = lc_files_read(&root, rel, max, &c, &n, err, sizeof err);
  ck_assert_msg(rc == want, "%s: rc %d (want %d): %s", rel, rc, want, err);
  ck_assert_ptr_null(c);
  ck_assert_uint_eq(n, 0);
  if (msg) ck_assert_msg(strstr(err, msg), "%s: '%s' lacks '%s'", rel, err, msg);
}

START_TEST(read_inside) {
  MODE();
  read_ok("a.txt", "hello\n");
  read_ok("sub/b.txt", "bee");
  read_ok("./sub//b.txt", "bee");
  read_ok("sub/../a.txt", "hello\n");
  read_ok("empty.txt", "");
  read_ok("utf8.txt", "\xe6\x97\xa5\xe6\x9c\xac\n");
  /* Relative symlinks that stay inside are followed. */
  read_ok("link_in", "bee");
  read_ok("link_in_dir/b.txt", "bee");
  read_ok("sub/up/a.txt", "hello\n");
  read_ok("self/self/self/a.txt", "hello\n");
}
END_TEST

START_TEST(escapes_refused) {
  MODE();
  const char *bad[] = {
      "../outside.txt",       "/etc/passwd",         "sub/../../outside.txt",
      "..",                   "link_out_file",       "link_out_dir/s.txt",
      "link_abs",             "link_abs_in",         "sub/escape/outside.txt",
      "sub/up/../outside.txt", "self/../outside.txt", "/",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    read_bad(bad[i], 0, LC_FILES_EOUTSIDE, NULL);
  read_bad("../outside.txt", 0, LC_FILES_EOUTSIDE, "outside the root");
  read_bad("/etc/passwd", 0, LC_FILES_EOUTSIDE, "absolute paths");
  cJSON *l = NULL;
  char err[256];
  ck_assert_int_eq(lc_files_list(&root, "link_out_dir", 0, &l, err, sizeof err),
                   LC_FILES_EOUTSIDE);
  ck_assert_int_eq(lc_files_list(&root, "..", 0, &l, err, sizeof err),
                   LC_FILES_EOUTSIDE);
  ck_assert_int_eq(lc_files_list(&root, "sub/escape", 0, &l, err, sizeof err),
                   LC_FILES_EOUTSIDE);
  ck_assert_ptr_null(l);
}
END_TEST

START_TEST(errors_are_clear) {
  MODE();
  read_bad("nope.txt", 0, LC_ENOTFOUND, "does not exist");
  read_bad("a.txt/x", 0, LC_ENOTFOUND, NULL);
  read_bad("sub", 0, LC_FILES_ENOTFILE, "is a directory");
  read_bad("link_in_dir", 0, LC_FILES_ENOTFILE, "is a directory");
  /* A FIFO is refused from its type, without being opened: no blocking. */
  read_bad("fifo", 0, LC_FILES_ENOTFILE, "a FIFO");
  read_bad("loop1", 0, LC_EIO, "symbolic links");
  read_bad("loop1/x", 0, LC_EIO, "symbolic links");
  read_bad("big.txt", 1000, LC_ETOOBIG, "2000 bytes, over the limit of 1000");
  read_bad("bin.dat", 0, LC_FILES_EBINARY, "binary file (NUL byte at offset 4)");
  read_bad("latin1.txt", 0, LC_FILES_EBINARY, "not valid UTF-8 at byte 3");
  char *c = NULL, err[256];
  size_t n;
  ck_assert_int_eq(lc_files_read(&root, "big.txt", 2000, &c, &n, err,
                                 sizeof err),
                   0);
  ck_assert_uint_eq(n, 2000);
  lc_free(c);
  cJSON *l = NULL;
  ck_assert_int_eq(lc_files_list(&root, "a.txt", 0, &l, err, sizeof err),
                   LC_FILES_ENOTDIR);
  ck_assert_int_eq(lc_files_list(&root, "fifo", 0, &l, err, sizeof err),
                   LC_FILES_ENOTDIR);
  ck_assert_int_eq(lc_files_list(&root, "nope", 0, &l, err, sizeof err),
                   LC_ENOTFOUND);
  ck_assert_str_eq(lc_files_errcode(LC_FILES_EOUTSIDE), "outside_root");
  ck_assert_str_eq(lc_files_errcode(LC_ETOOBIG), "too_large");
  lc_files_close_root(&root);
  lc_files_close_root(&root);
  read_bad("a.txt", 0, LC_ESTATE, "closed");
}
END_TEST

START_TEST(list_sorted) {
  MODE();
  put("root/sub/bad\xff.txt", "x", 1);
  cJSON *l = NULL;
  char err[256];
  ck_assert_int_eq(lc_files_list(&root, "", 0, &l, err, sizeof err), 0);
  const char *names[] = {"a.txt",         "big.txt",      "bin.dat",
                         "empty.txt",     "fifo",         "latin1.txt",
                         "link_abs",      "link_abs_in",  "link_in",
                         "link_in_dir",   "link_out_dir", "link_out_file",
                         "loop1",         "loop2",        "self",
                         "sub",           "utf8.txt"};
  ck_assert_int_eq(cJSON_GetArraySize(l), (int)(sizeof names / sizeof names[0]));
  for (int i = 0; i < cJSON_GetArraySize(l); i++)
    ck_assert_str_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(l, i), "name")
                         ->valuestring,
                     names[i]);
  char *s = cJSON_PrintUnformatted(cJSON_GetArrayItem(l, 1));
  ck_assert_str_eq(s, "{\"name\":\"big.txt\",\"type\":\"file\",\"size\":2000}");
  free(s);
  s = cJSON_PrintUnformatted(cJSON_GetArrayItem(l, 4));
  ck_assert_str_eq(s, "{\"name\":\"fifo\",\"type\":\"other\",\"size\":0}");
  free(s);
  s = cJSON_PrintUnformatted(cJSON_GetArrayItem(l, 8));
  ck_assert_str_eq(s, "{\"name\":\"link_in\",\"type\":\"link\",\"size\":9}");
  free(s);
  s = cJSON_PrintUnformatted(cJSON_GetArrayItem(l, 15));
  ck_assert_str_eq(s, "{\"name\":\"sub\",\"type\":\"dir\",\"size\":0}");
  free(s);
  cJSON_Delete(l);
  /* Through an inside symlink; a non-UTF-8 name is marked, not dropped. */
  ck_assert_int_eq(lc_files_list(&root, "link_in_dir", 0, &l, err, sizeof err),
                   0);
  s = cJSON_PrintUnformatted(l);
  ck_assert_str_eq(s, "[{\"name\":\"b.txt\",\"type\":\"file\",\"size\":3},"
                      "{\"name\":\"bad\xef\xbf\xbd.txt\",\"type\":\"file\","
                      "\"size\":1,\"lossy\":true},"
                      "{\"name\":\"escape\",\"type\":\"link\",\"size\":5},"
                      "{\"name\":\"s.txt\",\"type\":\"file\",\"size\":7},"
                      "{\"name\":\"up\",\"type\":\"link\",\"size\":2}]");
  free(s);
  cJSON_Delete(l);
  /* Over the entry cap: an error, never a silent partial list. */
  ck_assert_int_eq(lc_files_list(&root, ".", 5, &l, err, sizeof err),
                   LC_ETOOBIG);
  ck_assert_msg(strstr(err, "more than 5 entries"), "%s", err);
  ck_assert_ptr_null(l);
}
END_TEST

/* Swaps root/flip between a link to sub (inside) and to ../outdir until
 * told to stop; rename() makes each swap atomic. */
static atomic_int stop_flipping;

static void *flipper(void *arg) {
  (void)arg;
  char tmp[400], flip[400];
  snprintf(tmp, sizeof tmp, "%s/flip.tmp", rootdir);
  snprintf(flip, sizeof flip, "%s/flip", rootdir);
  for (unsigned i = 0; !atomic_load(&stop_flipping); i++) {
    unlink(tmp);
    if (symlink(i & 1 ? "../outdir" : "sub", tmp) == 0) rename(tmp, flip);
  }
  return NULL;
}

START_TEST(symlink_race) {
  MODE();
  lnk("sub", "root/flip");
  atomic_store(&stop_flipping, 0);
  pthread_t t;
  ck_assert_int_eq(pthread_create(&t, NULL, flipper, NULL), 0);
  int inside = 0, refused = 0;
  for (int i = 0; i < 3000; i++) {
    char *c = NULL, err[256];
    size_t n;
    int rc = lc_files_read(&root, "flip/s.txt", 0, &c, &n, err, sizeof err);
    if (rc == 0) {
      ck_assert_str_eq(c, "inside\n"); /* never the secret */
      inside++;
      lc_free(c);
    } else {
      ck_assert_msg(rc == LC_FILES_EOUTSIDE || rc == LC_ENOTFOUND, "%d %s",
                    rc, err);
      refused++;
    }
  }
  atomic_store(&stop_flipping, 1);
  pthread_join(t, NULL);
  ck_assert_int_eq(inside + refused, 3000);
}
END_TEST

static void run_lua(const char *chunk) {
  lua_State *L = luaL_newstate();
  luaL_openlibs(L);
  lc_open_files(L);
  lua_setglobal(L, "files");
  lua_pushstring(L, rootdir);
  lua_setglobal(L, "ROOT");
  int rc = luaL_dostring(L, chunk);
  ck_assert_msg(rc == LUA_OK, "lua: %s", lua_tostring(L, -1));
  lua_close(L);
}

/* The binding's behaviour, the same inline (a bare state) and as jobs on
 * the offload pool (a luact task). */
static const char binding_chunk[] =
      "local r = assert(files.root(ROOT))\n"
      "assert(r:read('a.txt') == 'hello\\n')\n"
      "assert(r:read('link_in') == 'bee')\n"
      "local function fails(want, ok, msg, code)\n"
      "  assert(ok == nil and type(msg) == 'string' and code == want,\n"
      "    tostring(msg) .. ' / ' .. tostring(code))\n"
      "end\n"
      "fails('outside_root', r:read('../outside.txt'))\n"
      "fails('outside_root', r:read('/etc/passwd'))\n"
      "fails('outside_root', r:read('link_out_file'))\n"
      "fails('not_found', r:read('nope'))\n"
      "fails('too_large', r:read('big.txt', {max_bytes = 100}))\n"
      "fails('not_a_file', r:read('sub'))\n"
      "fails('not_a_file', r:read('fifo'))\n"
      "fails('binary', r:read('bin.dat'))\n"
      "fails('invalid_path', r:read('a.txt\\0x'))\n"
      "fails('not_a_dir', r:list('a.txt'))\n"
      "fails('too_large', r:list('.', {max_entries = 2}))\n"
      "local l = assert(r:list('sub'))\n"
      "assert(#l == 4 and l[1].name == 'b.txt' and l[1].type == 'file'\n"
      "  and l[1].size == 3 and l[4].name == 'up' and l[4].type == 'link')\n"
      "assert(#assert(r:list()) == 17)\n"
      "assert(not pcall(r.read, r, 'a.txt', {max_bytes = 0}))\n"
      "assert(not pcall(r.read, r, {}))\n"
      "r:close(); r:close()\n"
      "assert(tostring(r):find('closed'))\n"
      "assert(not pcall(r.read, r, 'a.txt'))\n"
      "fails('not_found', files.root(ROOT .. '/nope'))\n"
      "fails('not_a_dir', files.root(ROOT .. '/a.txt'))\n"
      "do local c <close> = assert(files.root(ROOT)); C = c end\n"
      "assert(tostring(C):find('closed'))\n"
      "local g = files.root(ROOT); g = nil; collectgarbage()\n";

START_TEST(lua_binding) { run_lua(binding_chunk); }
END_TEST

static int l_release_hold(lua_State *L) {
  (void)L;
  lc_offload_test_hold(0);
  return 0;
}

/* Runs code as a luact task (files = luact.files), RELEASE() lets the
 * offload pool go; the task's result must be "ok". */
static void run_task(const char *code) {
  struct lc_test_lua t;
  lc_test_lua_open(&t);
  lua_getglobal(t.L, "luact");
  lua_getfield(t.L, -1, "files");
  lua_setglobal(t.L, "files");
  lua_pop(t.L, 1);
  lua_pushstring(t.L, rootdir);
  lua_setglobal(t.L, "ROOT");
  lua_register(t.L, "RELEASE", l_release_hold);
  char out[64], err[2048];
  int rc = lc_test_lua_run(&t, code, out, sizeof out, err, sizeof err);
  lc_offload_test_hold(0);
  ck_assert_msg(rc == 0, "lua: %s", err);
  ck_assert_str_eq(out, "ok");
  lc_test_lua_close(&t); /* nothing of a call left behind */
}

START_TEST(lua_binding_in_a_task) {
  char code[sizeof binding_chunk + 32];
  snprintf(code, sizeof code, "%s\nreturn 'ok'", binding_chunk);
  run_task(code);
}
END_TEST

/* A read and a list wait for a disk off the loop: with the pool held,
 * the ticker completes its ticks while both are in flight (before, they
 * ran on the loop and were done before the ticker's first tick); then
 * the root is closed under them, and they still read through their own
 * hold on it. */
START_TEST(reads_wait_off_the_loop) {
  lc_offload_test_hold(1);
  run_task(
      "local r = assert(files.root(ROOT))\n"
      "local got, list\n"
      "local a = luact.spawn(function() got = r:read('a.txt') end)\n"
      "local b = luact.spawn(function() list = r:list('sub') end)\n"
      "local ticks = 0\n"
      "for i = 1, 50 do\n"
      "  luact.sleep(0)\n"
      "  assert(got == nil and list == nil, 'a call ended on the loop')\n"
      "  ticks = ticks + 1\n"
      "end\n"
      "r:close()\n"
      "RELEASE()\n"
      "assert(luact.wait(a)); assert(luact.wait(b))\n"
      "assert(ticks == 50 and got == 'hello\\n', tostring(got))\n"
      "assert(#list == 4 and list[1].name == 'b.txt')\n"
      "return 'ok'\n");
}
END_TEST

/* A task killed while its read waits (luact.timeout) leaves the call
 * behind it: queued, it never runs; the next read works. */
START_TEST(killed_while_waiting) {
  lc_offload_test_hold(1);
  run_task(
      "local r = assert(files.root(ROOT))\n"
      "local v, msg, code = luact.timeout(0.01, function() return r:read('a.txt') end)\n"
      "assert(v == nil and code == 'timeout', tostring(msg))\n"
      "RELEASE()\n"
      "assert(r:read('a.txt') == 'hello\\n')\n"
      "return 'ok'\n");
}
END_TEST


Suite *files_suite(void) {
  Suite *s = suite_create("files");
  TCase *tc = tcase_create("core");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_set_timeout(tc, 20);
  tcase_add_loop_test(tc, read_inside, 0, 2);
  tcase_add_loop_test(tc, escapes_refused, 0, 2);
  tcase_add_loop_test(tc, errors_are_clear, 0, 2);
  tcase_add_loop_test(tc, list_sorted, 0, 2);
  tcase_add_loop_test(tc, symlink_race, 0, 2);
  suite_add_tcase(s, tc);
  TCase *tl = tcase_create("lua");
  tcase_add_checked_fixture(tl, setup, teardown);
  tcase_add_test(tl, lua_binding);
  tcase_add_test(tl, lua_binding_in_a_task);
  tcase_add_test(tl, reads_wait_off_the_loop);
  tcase_add_test(tl, killed_while_waiting);
  suite_add_tcase(s, tl);
  return s;
}
