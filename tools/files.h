/* files.h: the built-in files tool: read and list under one root directory,
 * never outside it.
 *
 * Confinement: the root is held as a directory fd, and every path is
 * resolved by the kernel relative to it with openat2(RESOLVE_BENEATH |
 * RESOLVE_NO_MAGICLINKS), which refuses absolute paths, ".." that climbs
 * out, and symlinks (in any component) that lead out, atomically, so a
 * symlink swapped in mid-call cannot win a race. Without openat2 (ENOSYS:
 * kernels before 5.6, some seccomp filters) a fallback walks the path one
 * component at a time with openat(O_NOFOLLOW) from held directory fds and
 * expands symlinks itself under the same rules; it cannot see a directory
 * being renamed out of the root while it walks (openat2 can).
 * Symlinks inside the root that point inside it are followed (relative
 * targets only: an absolute target is refused even if it names a place
 * inside the root, as RESOLVE_BENEATH does). Hard links cannot be told apart
 * from ordinary files; whoever controls the root controls those.
 *
 * Opening: the path is resolved to an O_PATH fd and its type checked there;
 * only a regular file (read) or a directory (list) is then really opened,
 * through /proc/self/fd/N, which reopens that very inode. So a FIFO never
 * blocks us and a device never sees an open().
 *
 * Reads: regular files only (directories, FIFOs, sockets and devices are
 * "not_a_file"). A file
 * over max_bytes is an error naming its size and the limit, never a silent
 * cut. Content must be UTF-8 text without NUL bytes, else "binary".
 *
 * Ownership: struct lc_files_root is caller-owned; lc_files_close_root is
 * idempotent and safe on a zeroed struct (fd 0 is never taken as a root:
 * lc_files_open_root sets fd = -1 first). Content from lc_files_read is
 * lc_malloc'd (lc_free it); lists are new cJSON trees (cJSON_Delete).
 *
 * Errors: 0 or LC_FILES_EOUTSIDE, LC_ENOTFOUND, LC_ETOOBIG,
 * LC_FILES_ENOTFILE, LC_FILES_ENOTDIR, LC_FILES_EBINARY, LC_EINVAL (bad
 * path), LC_EIO (permissions, symlink loops, other system errors),
 * LC_ESTATE (closed root), LC_ENOMEM; text in err. lc_files_errcode gives
 * the stable string code. */
#ifndef LC_FILES_H
#define LC_FILES_H

#include <cjson/cJSON.h>
#include <stddef.h>

#include "lc.h"

#define LC_FILES_EOUTSIDE (-30)
#define LC_FILES_ENOTFILE (-31)
#define LC_FILES_ENOTDIR (-32)
#define LC_FILES_EBINARY (-33)

#define LC_FILES_DEFAULT_MAX_BYTES (1024 * 1024)
#define LC_FILES_DEFAULT_MAX_ENTRIES 1000

struct lc_files_root {
  int fd; /* O_PATH directory fd; -1 when closed */
};

int lc_files_open_root(struct lc_files_root *root, const char *path,
                       char *err, size_t errlen);
void lc_files_close_root(struct lc_files_root *root);

/* Reads relpath (relative to the root; "" and "." are the root itself).
 * max_bytes 0 = LC_FILES_DEFAULT_MAX_BYTES. On success *content is a new
 * NUL-terminated buffer of *len bytes. */
int lc_files_read(struct lc_files_root *root, const char *relpath,
                  size_t max_bytes, char **content, size_t *len, char *err,
                  size_t errlen);

/* Lists the directory relpath as a new array of {name, type, size} sorted
 * by name (bytewise), without "." and "..". type is "file", "dir", "link"
 * (not followed) or "other"; size is the byte size for files, the target
 * length for links, 0 otherwise. Names that are not UTF-8 have bad bytes
 * replaced by U+FFFD and carry "lossy": true. More than max_entries entries
 * (0 = LC_FILES_DEFAULT_MAX_ENTRIES) is LC_ETOOBIG, not a partial list. */
int lc_files_list(struct lc_files_root *root, const char *relpath,
                  size_t max_entries, cJSON **out, char *err, size_t errlen);

/* "outside_root", "not_found", "too_large", "not_a_file", "not_a_dir",
 * "binary", "invalid_path", "io_error", "closed", "no_memory". */
const char *lc_files_errcode(int rc);

/* Test hook: 1 = always use the component-walk fallback, as on a kernel
 * without openat2. Process-wide. */
void lc_files_force_fallback(int on);

#endif
