/* util_tree.h: scratch folder trees for the file and SQL tool suites:
 * files, folders and symbolic links under a base folder, and its removal.
 * Each helper fails the test when the file system says no. */
#ifndef LC_TEST_UTIL_TREE_H
#define LC_TEST_UTIL_TREE_H

#include <stddef.h>

/* base/rel holds data[0,n) (created or truncated). */
void lc_test_tree_put(const char *base, const char *rel, const char *data, size_t n);
/* base/rel is a new folder (0755). */
void lc_test_tree_mkdir(const char *base, const char *rel);
/* base/rel is a symbolic link to target (as given: relative or absolute). */
void lc_test_tree_link(const char *base, const char *target, const char *rel);
/* Removes dir and everything below it; links are removed, never followed. */
void lc_test_tree_rm(const char *dir);

#endif
