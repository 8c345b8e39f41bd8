/* util_tree.c: scratch folder trees (util_tree.h). */
#include "util_tree.h"

#include <check.h>
#include <ftw.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

void lc_test_tree_put(const char *base, const char *rel, const char *data, size_t n) {
  char p[1024];
  snprintf(p, sizeof p, "%s/%s", base, rel);
  FILE *f = fopen(p, "wb");
  ck_assert_msg(f != NULL, "%s", p);
  ck_assert_uint_eq(fwrite(data, 1, n, f), n);
  fclose(f);
}

void lc_test_tree_mkdir(const char *base, const char *rel) {
  char p[1024];
  snprintf(p, sizeof p, "%s/%s", base, rel);
  ck_assert_int_eq(mkdir(p, 0755), 0);
}

void lc_test_tree_link(const char *base, const char *target, const char *rel) {
  char p[1024];
  snprintf(p, sizeof p, "%s/%s", base, rel);
  ck_assert_msg(symlink(target, p) == 0, "symlink %s", p);
}

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw) {
  (void)sb, (void)flag, (void)ftw;
  return remove(p);
}

void lc_test_tree_rm(const char *dir) { nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS); }
