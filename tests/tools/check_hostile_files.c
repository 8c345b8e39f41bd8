/* check_hostile_files.c: the hostile corpus for luact.tools.files. Each
 * case is one set of requests a model could send to a files tool rooted at
 * BASE/root (max_bytes 4096), against a tree with a secret beside the root,
 * symlinks out of it, a FIFO, a socket, a device node, a sparse 1 GiB file,
 * a non-UTF-8 name and so on. Each case runs twice: with openat2 (index
 * below N) and with the component-walk fallback (index N and up). Each
 * checks a clear refusal or a correct bounded result, and that the host is
 * intact: alive() reads a good file afterwards, lc_test_lua_run_once
 * asserts no task or timer is left and lc_ allocations balance, the secret
 * never appears in what the model gets, and nothing was written.
 *
 * Globals for each case: ROOT, F (the tool), try(args) -> the JSON result
 * or "code:message", tries(list), alive(). */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <unistd.h>

#include "files.h"
#include "lc.h"
#include "util_lua.h"
#include "util_tree.h"

static char base[256], rootdir[300];
static char out[65536], err[8192];

static void put(const char *rel, const char *data, size_t n) {
  lc_test_tree_put(base, rel, data, n);
}
static void mkd(const char *rel) { lc_test_tree_mkdir(base, rel); }
static void lnk(const char *target, const char *rel) { lc_test_tree_link(base, target, rel); }

static void setup(void) {
  snprintf(base, sizeof base, "/tmp/lc_hfiles_XXXXXX");
  ck_assert_ptr_nonnull(mkdtemp(base));
  snprintf(rootdir, sizeof rootdir, "%s/root", base);
  put("secret.txt", "TOPSECRET\n", 10);
  mkd("outdir");
  put("outdir/s.txt", "TOPSECRET\n", 10);
  mkd("root");
  put("root/a.txt", "hello\n", 6);
  mkd("root/notes");
  put("root/notes/s.txt", "inside\n", 7);
  put("root/bin.dat", "ab\0cd", 5);
  put("root/latin1.txt", "caf\xe9\n", 5);
  put("root/\xff\xfe-name.txt", "odd name\n", 9);
  lnk("../secret.txt", "root/out_rel");
  lnk("../outdir", "root/out_dir");
  char abs[400];
  snprintf(abs, sizeof abs, "%s/secret.txt", base);
  lnk(abs, "root/out_abs");
  lnk("/proc/self", "root/proc");
  lnk("/proc/self/fd/0", "root/stdin");
  lnk("/dev/zero", "root/zero");
  lnk("../../../../../../../../../../proc/self/environ", "root/env");
  lnk("loop2", "root/loop1");
  lnk("loop1", "root/loop2");
  lnk("notes", "root/in_dir");
  lnk("notes/..", "root/notes_up");
  char p[400];
  snprintf(p, sizeof p, "%s/pipe", rootdir);
  ck_assert_int_eq(mkfifo(p, 0600), 0);
  /* A device node: only its type is ever looked at (mknod needs
   * CAP_MKNOD; these tests run as root here). */
  snprintf(p, sizeof p, "%s/dev_zero", rootdir);
  ck_assert_msg(mknod(p, S_IFCHR | 0600, makedev(1, 5)) == 0, "mknod: %s", strerror(errno));
  int s = socket(AF_UNIX, SOCK_STREAM, 0);
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  snprintf(sa.sun_path, sizeof sa.sun_path, "%.80s/sock", rootdir);
  ck_assert_int_eq(bind(s, (struct sockaddr *)&sa, sizeof sa), 0);
  close(s);
  /* 1 GiB that takes no disk: a size cap must refuse it before reading. */
  snprintf(p, sizeof p, "%s/huge.log", rootdir);
  int fd = open(p, O_CREAT | O_WRONLY, 0600);
  ck_assert_int_ge(fd, 0);
  ck_assert_int_eq(ftruncate(fd, 1L << 30), 0);
  close(fd);
  mkd("root/many");
  for (int i = 0; i < 1001; i++) {
    char n[64];
    snprintf(n, sizeof n, "root/many/f%04d", i);
    put(n, "", 0);
  }
}

static void teardown(void) {
  lc_files_force_fallback(0);
  lc_test_tree_rm(base);
}

static const char prelude_fmt[] =
    "ROOT = '%s'\n"
    "F = luact.tools.files{root = ROOT, max_bytes = 4096}\n"
    "function try(args)\n"
    "  local r, msg, code = F(args)\n"
    "  if r == nil then return tostring(code) .. ':' .. tostring(msg) end\n"
    "  return luact.json.encode(r)\n"
    "end\n"
    "function tries(list)\n"
    "  local o = {}\n"
    "  for i, a in ipairs(list) do o[i] = try(a) end\n"
    "  return table.concat(o, '\\n')\n"
    "end\n"
    "function J(text) return assert(luact.json.decode(text)) end\n"
    "function alive()\n"
    "  assert(try{action = 'read', path = 'a.txt'} == '{\"content\":\"hello\\\\n\",\"path\":\"a.txt\"}',"
    "    'host damaged')\n"
    "  return 'alive'\n"
    "end\n";

struct hcase {
  const char *name;
  const char *code;
  const char *want;
  const char *want2;
};

#define FAILED "tool_error:tool files failed: "
#define OUTSIDE "resolves outside the root"

static const struct hcase cases[] = {
    {"dotdot_traversal",
     "return tries{{action = 'read', path = '../secret.txt'},"
     "  {action = 'read', path = 'notes/../../secret.txt'}, {action = 'list', path = '..'},"
     "  {action = 'read', path = 'notes/../../../../../../etc/passwd'}} .. '|' .. alive()",
     FAILED "'../secret.txt' " OUTSIDE, FAILED "'..' " OUTSIDE},
    {"absolute_paths",
     "return tries{{action = 'read', path = '/etc/passwd'}, {action = 'list', path = '/'},"
     "  {action = 'read', path = '//etc//passwd'}, {action = 'read', path = '/proc/self/environ'}}"
     " .. '|' .. alive()",
     FAILED "'/etc/passwd': absolute paths are not allowed", FAILED "'/': absolute paths"},
    {"symlinks_pointing_out",
     "return tries{{action = 'read', path = 'out_rel'}, {action = 'read', path = 'out_abs'},"
     "  {action = 'read', path = 'out_dir/s.txt'}, {action = 'list', path = 'out_dir'}}"
     " .. '|' .. alive()",
     FAILED "'out_rel' " OUTSIDE "\n" FAILED "'out_abs' " OUTSIDE, FAILED "'out_dir' " OUTSIDE},
    {"symlinks_into_proc_and_dev",
     "return tries{{action = 'read', path = 'proc/environ'}, {action = 'read', path = 'stdin'},"
     "  {action = 'read', path = 'zero'}, {action = 'read', path = 'env'},"
     "  {action = 'list', path = 'proc/fd'}} .. '|' .. alive()",
     FAILED "'proc/environ' " OUTSIDE "\n" FAILED "'stdin' " OUTSIDE "\n" FAILED "'zero' " OUTSIDE,
     FAILED "'env' " OUTSIDE},
    {"symlinks_inside_are_fine",
     "return tries{{action = 'read', path = 'in_dir/s.txt'},"
     "  {action = 'read', path = 'notes_up/a.txt'}} .. '|' .. alive()",
     "{\"content\":\"inside\\n\",\"path\":\"in_dir/s.txt\"}\n"
     "{\"content\":\"hello\\n\",\"path\":\"notes_up/a.txt\"}|alive", NULL},
    {"symlink_loop",
     "return try{action = 'read', path = 'loop1'} .. '|' .. alive()",
     FAILED "'loop1': too many levels of symbolic links|alive", NULL},
    {"fifo_does_not_block",
     /* Nobody writes to the FIFO: opening it to read would hang. */
     "return tries{{action = 'read', path = 'pipe'}, {action = 'list', path = 'pipe'}}"
     " .. '|' .. alive()",
     FAILED "'pipe' is a FIFO, not a regular file\n" FAILED "'pipe' is not a directory|alive",
     NULL},
    {"device_and_socket",
     "return tries{{action = 'read', path = 'dev_zero'}, {action = 'read', path = 'sock'}}"
     " .. '|' .. alive()",
     FAILED "'dev_zero' is a device, not a regular file\n"
     FAILED "'sock' is a socket, not a regular file|alive", NULL},
    {"huge_file_over_cap",
     "return try{action = 'read', path = 'huge.log'} .. '|' .. alive()",
     FAILED "'huge.log' is 1073741824 bytes, over the limit of 4096 bytes|alive", NULL},
    {"nul_bytes_in_path",
     /* JSON's \u0000 ends the string when it is decoded, so the tool reads
      * "a.txt", inside the root; a raw NUL in a Lua string is refused. */
     "local a = try(J('{\"action\":\"read\",\"path\":\"a.txt\\\\u0000/../../secret.txt\"}'))\n"
     "local b = try{action = 'read', path = 'a.txt\\0/../../secret.txt'}\n"
     "return a .. '\\n' .. b .. '|' .. alive()",
     "{\"content\":\"hello\\n\",\"path\":\"a.txt\"}\ninvalid_arguments:invalid arguments for "
     "files: value is not JSON: string contains a NUL byte at $.path|alive", NULL},
    {"very_long_names",
     "return tries{{action = 'read', path = string.rep('n', 300)},"
     "  {action = 'read', path = string.rep('a/', 3000) .. 'x'},"
     "  {action = 'read', path = string.rep('x', 100000)}} .. '|' .. alive()",
     "path too long", "path too long|alive"},
    {"non_utf8_names",
     "local l = try{action = 'list', path = '.'}\n"
     "local r = try{action = 'read', path = '\\255\\254-name.txt'}\n"
     "local r2 = try{action = 'read', path = '\\u{FFFD}\\u{FFFD}-name.txt'}\n"
     "return (l:match('{[^{}]*-name.txt[^{}]*}') or l) .. '\\n' .. r .. '\\n' .. r2 .. '|' .. alive()",
     "\"lossy\":true", "string is not valid UTF-8 (byte 0) at $.path\n" FAILED},
    {"binary_and_latin1_content",
     "return tries{{action = 'read', path = 'bin.dat'}, {action = 'read', path = 'latin1.txt'}}"
     " .. '|' .. alive()",
     FAILED "'bin.dat' is a binary file (NUL byte at offset 2)\n"
     FAILED "'latin1.txt' is a binary file (not valid UTF-8 at byte 3)|alive", NULL},
    {"writing_in_read_only_mode",
     "return tries{{action = 'write', path = 'written.txt', content = 'x'},"
     "  {action = 'delete', path = 'a.txt'}, {action = 'read', path = 'a.txt', mode = 'w'}}"
     " .. '|' .. alive()",
     "invalid_arguments:invalid arguments for files: $.action: must be one of \"read\", "
     "\"list\"; got \"write\"",
     "$.mode: property not allowed"},
    {"too_many_entries",
     "return try{action = 'list', path = 'many'} .. '|' .. alive()",
     FAILED "'many' has more than 1000 entries (the limit); list a subdirectory|alive", NULL},
    {"wrong_kinds",
     "return tries{{action = 'read', path = 'notes'}, {action = 'list', path = 'a.txt'},"
     "  {action = 'read', path = '.'}, {action = 'read', path = 'a.txt/'},"
     "  {action = 'read'}, {action = 'read', path = ''}, {path = 'a.txt'}} .. '|' .. alive()",
     FAILED "'notes' is a directory, not a regular file\n" FAILED "'a.txt' is not a directory",
     "action 'read' needs a 'path'"},
    {"dot_spellings_inside",
     "return tries{{action = 'read', path = './notes/./s.txt'},"
     "  {action = 'read', path = 'notes//s.txt'}, {action = 'read', path = '%2e%2e/secret.txt'},"
     "  {action = 'read', path = 'notes\\\\..\\\\..\\\\secret.txt'}} .. '|' .. alive()",
     "\"content\":\"inside\\n\"", "'%2e%2e/secret.txt' does not exist"},
};

#define N ((int)LC_ARRAY_LEN(cases))

/* Swaps root/flip between notes (inside) and ../outdir while a case reads
 * through it. */
static atomic_int stop_flipping;

static void *flipper(void *arg) {
  (void)arg;
  char tmp[400], flip[400];
  snprintf(tmp, sizeof tmp, "%s/flip.tmp", rootdir);
  snprintf(flip, sizeof flip, "%s/flip", rootdir);
  for (unsigned i = 0; !atomic_load(&stop_flipping); i++) {
    unlink(tmp);
    if (symlink(i & 1 ? "../outdir" : "notes", tmp) == 0) rename(tmp, flip);
  }
  return NULL;
}

static void run_case(const char *name, const char *code, const char *want,
                     const char *want2) {
  char prelude[2048];
  snprintf(prelude, sizeof prelude, prelude_fmt, rootdir);
  int rc = lc_test_lua_run_once(NULL, prelude, code, out, sizeof out, err, sizeof err);
  ck_assert_msg(rc == 0, "%s: %s", name, err);
  ck_assert_msg(strstr(out, want) != NULL, "%s:\n got [%.4000s]\n want [%s]", name, out,
                want);
  ck_assert_msg(!want2 || strstr(out, want2), "%s:\n got [%.4000s]\n want [%s]", name, out,
                want2);
  ck_assert_msg(strstr(out, "alive") != NULL, "%s: host check did not run", name);
  ck_assert_msg(!strstr(out, "TOPSECRET"), "%s: the secret leaked: %s", name, out);
  char p[400];
  snprintf(p, sizeof p, "%s/written.txt", rootdir);
  ck_assert_msg(access(p, F_OK) != 0, "%s: a file was written", name);
}

START_TEST(hostile_files) {
  lc_files_force_fallback(_i >= N);
  const struct hcase *h = &cases[_i % N];
  run_case(h->name, h->code, h->want, h->want2);
}
END_TEST

/* The race as a model meets it: many reads through a link that flips
 * between inside and outside; never the secret, only the inside text or
 * a refusal. Which of those a read meets depends on the scheduler (on a
 * loaded machine every read of the slower fallback walk can be refused),
 * so the inside text is asked for once the link holds still. */
START_TEST(hostile_files_symlink_race) {
  lc_files_force_fallback(_i);
  lnk("notes", "root/flip");
  atomic_store(&stop_flipping, 0);
  pthread_t t;
  ck_assert_int_eq(pthread_create(&t, NULL, flipper, NULL), 0);
  run_case("symlink_race",
           "local seen = {}\n"
           "for i = 1, 2000 do\n"
           "  local r = try{action = 'read', path = 'flip/s.txt'}\n"
           "  local k = r:find('inside', 1, true) and 'inside' or r:find('does not exist', 1, true)"
           "    and 'gone' or r:find('outside the root', 1, true) and 'refused' or r\n"
           "  seen[k] = true\n"
           "end\n"
           "local keys = {}\n"
           "for k in pairs(seen) do keys[#keys + 1] = k end\n"
           "table.sort(keys)\n"
           "return table.concat(keys, ',') .. '|' .. alive()",
           "|alive", NULL);
  atomic_store(&stop_flipping, 1);
  pthread_join(t, NULL);
  /* Only the three expected outcomes were seen. */
  char *bar = strchr(out, '|');
  ck_assert_ptr_nonnull(bar);
  *bar = '\0';
  for (char *k = strtok(out, ","); k; k = strtok(NULL, ","))
    ck_assert_msg(!strcmp(k, "inside") || !strcmp(k, "gone") || !strcmp(k, "refused"),
                  "unexpected outcome: %s", k);
  /* The same read through the link, now pointing inside for good. */
  char tmp[400], flip[400];
  snprintf(tmp, sizeof tmp, "%s/flip.tmp", rootdir);
  snprintf(flip, sizeof flip, "%s/flip", rootdir);
  unlink(tmp);
  ck_assert_int_eq(symlink("notes", tmp), 0);
  ck_assert_int_eq(rename(tmp, flip), 0);
  run_case("symlink_settled", "return try{action = 'read', path = 'flip/s.txt'} .. '|' .. alive()",
           "\"content\":\"inside\\n\"", NULL);
}
END_TEST

Suite *hostile_files_suite(void) {
  Suite *s = suite_create("hostile_files");
  TCase *tc = tcase_create("corpus");
  tcase_set_timeout(tc, 60);
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_loop_test(tc, hostile_files, 0, 2 * N);
  tcase_add_loop_test(tc, hostile_files_symlink_race, 0, 2);
  suite_add_tcase(s, tc);
  return s;
}
