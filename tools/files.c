/* files.c: the files tool's core: confined path resolution (openat2, or a
 * component walk), reading text files and listing directories. */
#include "files.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "buf.h"
#include "utf8.h"

#define MAX_LINKS 40   /* symlink expansions per lookup, as the kernel's */
#define MAX_DEPTH 256  /* directory fds held by the fallback walk */

static atomic_int fallback_forced;
static atomic_int openat2_missing;

void lc_files_force_fallback(int on) { atomic_store(&fallback_forced, on); }

static int fail(char *err, size_t errlen, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int fail(char *err, size_t errlen, int rc, const char *fmt, ...) {
  if (errlen) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
  }
  return rc;
}

/* ---- confined resolution: every function returns an fd or -errno ---- */

static int openat2_beneath(int dirfd, const char *path, int flags) {
  struct open_how how;
  memset(&how, 0, sizeof how);
  how.flags = (unsigned long long)flags;
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS;
  for (int tries = 0; tries < 16; tries++) {
    long fd = syscall(SYS_openat2, dirfd, path, &how, sizeof how);
    if (fd >= 0) return (int)fd;
    /* EAGAIN: the kernel saw a concurrent rename and refused to guess. */
    if (errno != EAGAIN && errno != EINTR) return -errno;
  }
  return -EAGAIN;
}

/* The fallback walk. Each component is opened O_PATH|O_NOFOLLOW relative to
 * a directory fd we hold, so the kernel never follows a symlink for us; we
 * read links ourselves and refuse absolute targets and ".." above the root.
 * ".." pops our own fd stack instead of asking the kernel for the parent.
 * Returns an O_PATH fd for the final object (symlinks followed). */
static int walk(int rootfd, const char *rel) {
  struct lc_buf path;
  lc_buf_init(&path, 4 * PATH_MAX);
  if (lc_buf_puts(&path, rel)) return -ENAMETOOLONG;
  int stack[MAX_DEPTH];
  int depth = 0, links = 0, result = -EINVAL;
  size_t pos = 0;
  stack[0] = rootfd; /* borrowed; stack[1..depth] are ours */
  for (;;) {
    const char *p = path.data;
    while (p[pos] == '/') pos++;
    if (!p[pos]) {
      result = openat(stack[depth], ".", O_PATH | O_CLOEXEC);
      if (result < 0) result = -errno;
      break;
    }
    size_t start = pos;
    while (p[pos] && p[pos] != '/') pos++;
    size_t clen = pos - start, rest = pos;
    while (p[rest] == '/') rest++;
    int last = p[rest] == '\0', slash = last && rest > pos;
    char comp[NAME_MAX + 1];
    if (clen > NAME_MAX) {
      result = -ENAMETOOLONG;
      break;
    }
    memcpy(comp, p + start, clen);
    comp[clen] = '\0';
    if (strcmp(comp, ".") == 0) continue;
    if (strcmp(comp, "..") == 0) {
      if (depth == 0) {
        result = -EXDEV;
        break;
      }
      close(stack[depth--]);
      continue;
    }
    int fd = openat(stack[depth], comp, O_PATH | O_NOFOLLOW | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
      result = -errno;
      if (fd >= 0) close(fd);
      break;
    }
    if (S_ISLNK(st.st_mode)) {
      char target[PATH_MAX];
      ssize_t n = ++links > MAX_LINKS
                      ? (errno = ELOOP, -1)
                      : readlinkat(fd, "", target, sizeof target - 1);
      close(fd);
      if (n < 0 || n == (ssize_t)sizeof target - 1) {
        result = n < 0 ? -errno : -ENAMETOOLONG;
        break;
      }
      target[n] = '\0';
      if (target[0] == '/') { /* as RESOLVE_BENEATH: never absolute */
        result = -EXDEV;
        break;
      }
      /* Continue with the link text followed by what was left. */
      struct lc_buf np;
      lc_buf_init(&np, path.limit);
      int e = lc_buf_append(&np, target, (size_t)n);
      if (!e && (p[rest] || slash)) e = lc_buf_puts(&np, "/");
      if (!e) e = lc_buf_puts(&np, p + rest);
      lc_buf_free(&path);
      path = np;
      pos = 0;
      if (e) {
        result = -ENAMETOOLONG;
        break;
      }
      continue;
    }
    if (last) {
      if (slash && !S_ISDIR(st.st_mode)) {
        close(fd);
        result = -ENOTDIR;
      } else {
        result = fd;
      }
      break;
    }
    if (!S_ISDIR(st.st_mode)) {
      close(fd);
      result = -ENOTDIR;
      break;
    }
    if (depth + 1 >= MAX_DEPTH) {
      close(fd);
      result = -ENAMETOOLONG;
      break;
    }
    stack[++depth] = fd;
  }
  while (depth > 0) close(stack[depth--]);
  lc_buf_free(&path);
  return result;
}

/* O_PATH fd for rel beneath rootfd: openat2 when the kernel has it. */
static int resolve(int rootfd, const char *rel) {
  if (!atomic_load(&fallback_forced) && !atomic_load(&openat2_missing)) {
    int fd = openat2_beneath(rootfd, rel, O_PATH | O_CLOEXEC);
    if (fd != -ENOSYS) return fd;
    atomic_store(&openat2_missing, 1);
  }
  return walk(rootfd, rel);
}

static int map_errno(int e, const char *rel, char *err, size_t errlen) {
  switch (e) {
    case EXDEV:
      return fail(err, errlen, LC_FILES_EOUTSIDE,
                  "'%.200s' resolves outside the root", rel);
    case ENOENT:
      return fail(err, errlen, LC_ENOTFOUND, "'%.200s' does not exist", rel);
    case ENOTDIR:
      return fail(err, errlen, LC_ENOTFOUND,
                  "'%.200s' does not exist (a component is not a directory)",
                  rel);
    case ELOOP:
      return fail(err, errlen, LC_EIO,
                  "'%.200s': too many levels of symbolic links", rel);
    case EACCES:
    case EPERM:
      return fail(err, errlen, LC_EIO, "'%.200s': permission denied", rel);
    case ENAMETOOLONG:
      return fail(err, errlen, LC_EINVAL, "'%.200s': path too long", rel);
    case ENOMEM:
      return fail(err, errlen, LC_ENOMEM, "out of memory");
    default:
      return fail(err, errlen, LC_EIO, "'%.200s': %s", rel, strerror(e));
  }
}

static const char *kind(mode_t m) {
  if (S_ISDIR(m)) return "a directory";
  if (S_ISFIFO(m)) return "a FIFO";
  if (S_ISSOCK(m)) return "a socket";
  if (S_ISCHR(m) || S_ISBLK(m)) return "a device";
  if (S_ISLNK(m)) return "a symbolic link";
  return "not a regular file";
}

/* Opens rel for reading, after checking its type on an O_PATH fd: only a
 * regular file (want_dir 0) or a directory (1) is ever really opened, so a
 * FIFO cannot block us and a device never sees an open(). The O_PATH fd is
 * reopened through /proc/self/fd, which names that very inode, so nothing
 * can be swapped in between the check and the open. */
static int open_rel(struct lc_files_root *root, const char *rel, int want_dir,
                    int *out, struct stat *st, char *err, size_t errlen) {
  *out = -1;
  if (!root || root->fd < 0)
    return fail(err, errlen, LC_ESTATE, "files root is closed");
  if (!rel) return fail(err, errlen, LC_EINVAL, "no path");
  if (rel[0] == '/')
    return fail(err, errlen, LC_FILES_EOUTSIDE,
                "'%.200s': absolute paths are not allowed (give a path "
                "relative to the root)",
                rel);
  if (strlen(rel) >= PATH_MAX)
    return fail(err, errlen, LC_EINVAL, "path too long");
  if (!rel[0]) rel = ".";
  int pfd = resolve(root->fd, rel);
  if (pfd < 0) return map_errno(-pfd, rel, err, errlen);
  if (fstat(pfd, st) != 0) {
    int e = errno;
    close(pfd);
    return map_errno(e, rel, err, errlen);
  }
  if (want_dir && !S_ISDIR(st->st_mode)) {
    close(pfd);
    return fail(err, errlen, LC_FILES_ENOTDIR, "'%.200s' is not a directory",
                rel);
  }
  if (!want_dir && !S_ISREG(st->st_mode)) {
    close(pfd);
    return fail(err, errlen, LC_FILES_ENOTFILE,
                "'%.200s' is %s, not a regular file", rel, kind(st->st_mode));
  }
  int flags = O_RDONLY | O_NOCTTY | O_CLOEXEC | (want_dir ? O_DIRECTORY : 0);
  char proc[64];
  snprintf(proc, sizeof proc, "/proc/self/fd/%d", pfd);
  int fd = open(proc, flags);
  if (fd < 0 && errno == ENOENT && !atomic_load(&openat2_missing) &&
      !atomic_load(&fallback_forced)) {
    /* No /proc (a bare chroot): resolve again with the real flags and make
     * sure it is the same inode. */
    fd = openat2_beneath(root->fd, rel, flags);
    if (fd < 0) errno = -fd;
  }
  int e = errno;
  close(pfd);
  if (fd < 0) return map_errno(e, rel, err, errlen);
  struct stat st2;
  if (fstat(fd, &st2) != 0 || st2.st_dev != st->st_dev ||
      st2.st_ino != st->st_ino) {
    close(fd);
    return fail(err, errlen, LC_EIO, "'%.200s' changed while being opened",
                rel);
  }
  *out = fd;
  return 0;
}

/* ---- public API ---- */

int lc_files_open_root(struct lc_files_root *root, const char *path,
                       char *err, size_t errlen) {
  if (errlen) err[0] = '\0';
  if (!root) return fail(err, errlen, LC_EINVAL, "no root");
  root->fd = -1;
  if (!path || !path[0]) return fail(err, errlen, LC_EINVAL, "no root path");
  int fd = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) {
    int e = errno;
    if (e == ENOTDIR)
      return fail(err, errlen, LC_FILES_ENOTDIR, "root '%.200s' is not a "
                  "directory", path);
    return map_errno(e, path, err, errlen);
  }
  root->fd = fd;
  return 0;
}

void lc_files_close_root(struct lc_files_root *root) {
  if (!root || root->fd < 0) return;
  close(root->fd);
  root->fd = -1;
}

int lc_files_read(struct lc_files_root *root, const char *relpath,
                  size_t max_bytes, char **content, size_t *len, char *err,
                  size_t errlen) {
  if (errlen) err[0] = '\0';
  if (!content || !len) return fail(err, errlen, LC_EINVAL, "no output");
  *content = NULL;
  *len = 0;
  if (!max_bytes) max_bytes = LC_FILES_DEFAULT_MAX_BYTES;
  int fd;
  struct stat st;
  int rc = open_rel(root, relpath, 0, &fd, &st, err, errlen);
  if (rc) return rc;
  if ((unsigned long long)st.st_size > max_bytes) {
    close(fd);
    return fail(err, errlen, LC_ETOOBIG,
                "'%.200s' is %lld bytes, over the limit of %zu bytes", relpath,
                (long long)st.st_size, max_bytes);
  }
  /* The size can change under us; the buffer limit catches growth. */
  struct lc_buf b;
  lc_buf_init(&b, max_bytes);
  rc = lc_buf_append(&b, "", 0); /* an empty file still gets a buffer */
  if (rc) fail(err, errlen, rc, "out of memory");
  char chunk[16384];
  while (rc == 0) {
    ssize_t n = read(fd, chunk, sizeof chunk);
    if (n == 0) break;
    if (n < 0) {
      if (errno == EINTR) continue;
      rc = map_errno(errno, relpath, err, errlen);
      break;
    }
    rc = lc_buf_append(&b, chunk, (size_t)n);
    if (rc == LC_ETOOBIG)
      fail(err, errlen, rc, "'%.200s' grew past the limit of %zu bytes "
           "while being read", relpath, max_bytes);
    else if (rc)
      fail(err, errlen, rc, "out of memory");
  }
  close(fd);
  size_t bad = 0;
  const char *nul = rc ? NULL : memchr(b.data, 0, b.len);
  if (!rc && nul)
    rc = fail(err, errlen, LC_FILES_EBINARY,
              "'%.200s' is a binary file (NUL byte at offset %zu)", relpath,
              (size_t)(nul - b.data));
  else if (!rc && !lc_utf8_valid(b.data, b.len, &bad))
    rc = fail(err, errlen, LC_FILES_EBINARY,
              "'%.200s' is a binary file (not valid UTF-8 at byte %zu)",
              relpath, bad);
  if (rc) {
    lc_buf_free(&b);
    return rc;
  }
  *content = lc_buf_steal(&b, len);
  return 0;
}

static int cmp_names(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* A JSON-safe copy of a file name: invalid UTF-8 bytes become U+FFFD. */
static char *utf8_name(const char *s, int *lossy) {
  struct lc_buf b;
  lc_buf_init(&b, 0);
  size_t n = strlen(s), bad;
  *lossy = 0;
  while (!lc_utf8_valid(s, n, &bad)) {
    *lossy = 1;
    if (lc_buf_append(&b, s, bad) || lc_buf_puts(&b, "\xEF\xBF\xBD")) {
      lc_buf_free(&b);
      return NULL;
    }
    s += bad + 1;
    n -= bad + 1;
  }
  if (lc_buf_append(&b, s, n)) {
    lc_buf_free(&b);
    return NULL;
  }
  return lc_buf_steal(&b, NULL);
}

static cJSON *entry(int dfd, const char *name, int *gone) {
  struct stat st;
  *gone = 0;
  if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
    *gone = 1; /* removed since readdir: leave it out */
    return NULL;
  }
  const char *type = S_ISREG(st.st_mode)   ? "file"
                     : S_ISDIR(st.st_mode) ? "dir"
                     : S_ISLNK(st.st_mode) ? "link"
                                           : "other";
  double size =
      S_ISREG(st.st_mode) || S_ISLNK(st.st_mode) ? (double)st.st_size : 0;
  int lossy;
  char *u = utf8_name(name, &lossy);
  cJSON *o = cJSON_CreateObject();
  if (!u || !o || !cJSON_AddStringToObject(o, "name", u) ||
      !cJSON_AddStringToObject(o, "type", type) ||
      !cJSON_AddNumberToObject(o, "size", size) ||
      (lossy && !cJSON_AddTrueToObject(o, "lossy"))) {
    cJSON_Delete(o);
    o = NULL;
  }
  lc_free(u);
  return o;
}

int lc_files_list(struct lc_files_root *root, const char *relpath,
                  size_t max_entries, cJSON **out, char *err, size_t errlen) {
  if (errlen) err[0] = '\0';
  if (!out) return fail(err, errlen, LC_EINVAL, "no output");
  *out = NULL;
  if (!max_entries) max_entries = LC_FILES_DEFAULT_MAX_ENTRIES;
  int fd;
  struct stat st;
  int rc = open_rel(root, relpath, 1, &fd, &st, err, errlen);
  if (rc) return rc;
  DIR *d = fdopendir(fd);
  if (!d) {
    int e = errno;
    close(fd);
    return map_errno(e, relpath, err, errlen);
  }
  char **names = NULL;
  size_t count = 0, cap = 0;
  cJSON *arr = NULL;
  for (;;) {
    errno = 0; /* readdir reports errors only through errno */
    struct dirent *de = readdir(d);
    if (!de) break;
    if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
      continue;
    if (count == max_entries) {
      rc = fail(err, errlen, LC_ETOOBIG,
                "'%.200s' has more than %zu entries (the limit); list a "
                "subdirectory",
                relpath, max_entries);
      goto out;
    }
    if (count == cap) {
      size_t ncap = cap ? cap * 2 : 64;
      char **nn = lc_realloc(names, ncap * sizeof *nn);
      if (!nn) goto oom;
      names = nn;
      cap = ncap;
    }
    if (!(names[count] = lc_strdup(de->d_name))) goto oom;
    count++;
  }
  if (errno) {
    rc = map_errno(errno, relpath, err, errlen);
    goto out;
  }
  if (count) qsort(names, count, sizeof *names, cmp_names);
  if (!(arr = cJSON_CreateArray())) goto oom;
  for (size_t i = 0; i < count; i++) {
    int gone;
    cJSON *e = entry(dirfd(d), names[i], &gone);
    if (gone) continue;
    if (!e) goto oom;
    cJSON_AddItemToArray(arr, e);
  }
  *out = arr;
  arr = NULL;
  goto out;
oom:
  rc = fail(err, errlen, LC_ENOMEM, "out of memory");
out:
  cJSON_Delete(arr);
  for (size_t i = 0; i < count; i++) lc_free(names[i]);
  lc_free(names);
  closedir(d);
  return rc;
}

const char *lc_files_errcode(int rc) {
  switch (rc) {
    case 0: return "ok";
    case LC_FILES_EOUTSIDE: return "outside_root";
    case LC_ENOTFOUND: return "not_found";
    case LC_ETOOBIG: return "too_large";
    case LC_FILES_ENOTFILE: return "not_a_file";
    case LC_FILES_ENOTDIR: return "not_a_dir";
    case LC_FILES_EBINARY: return "binary";
    case LC_EINVAL: return "invalid_path";
    case LC_ESTATE: return "closed";
    case LC_ENOMEM: return "no_memory";
    default: return "io_error";
  }
}
