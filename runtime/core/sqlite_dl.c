/* sqlite_dl.c: libsqlite3, loaded with dlopen on first use instead of at
 * every start.
 *
 * The run store, luact.sql, the retrieval index and luact serve use SQLite;
 * a run with --no-store that uses none of them (the peer benchmark's) does
 * not. Linked, libsqlite3 was mapped and relocated by every run, and each
 * library mapped at start lengthens the search list of every symbol the
 * dlopen of libcurl resolves (core/curl_dl.c): 1.7M instructions of a
 * one-task run together. So luact_core defines the sqlite3_* functions the
 * runtime calls, with SQLite's own prototypes (written out from
 * <sqlite3.h>); the first call dlopens the library and resolves them all
 * (pthread_once, any thread), every call forwards. If it cannot be loaded,
 * sqlite3_open_v2 fails with SQLITE_CANTOPEN and sqlite3_errmsg says why
 * (printed once on stderr too); nothing else is reachable without a
 * handle. Programs that link libsqlite3 themselves (the tests) still work:
 * dlopen returns the loaded library and dlsym finds its definitions.
 *
 * sqlite3_db_config is variadic: the runtime passes only the options that
 * take (int, int *), the only ones forwarded. */
#include <dlfcn.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>

#ifndef LUACT_SQLITE_SONAME
#define LUACT_SQLITE_SONAME "libsqlite3.so.0"
#endif
#define NOT_LOADED "libsqlite3 could not be loaded"

static struct {
  int (*db_config)(sqlite3 *, int, ...);
  int (*bind_blob)(sqlite3_stmt *a0, int a1, const void *a2, int a3, void (*a4)(void *));
  int (*bind_blob64)(sqlite3_stmt *a0, int a1, const void *a2, sqlite3_uint64 a3,
                     void (*a4)(void *));
  int (*bind_double)(sqlite3_stmt *a0, int a1, double a2);
  int (*bind_int)(sqlite3_stmt *a0, int a1, int a2);
  int (*bind_int64)(sqlite3_stmt *a0, int a1, sqlite3_int64 a2);
  int (*bind_null)(sqlite3_stmt *a0, int a1);
  int (*bind_parameter_count)(sqlite3_stmt *a0);
  int (*bind_parameter_index)(sqlite3_stmt *a0, const char *a1);
  const char *(*bind_parameter_name)(sqlite3_stmt *a0, int a1);
  int (*bind_text)(sqlite3_stmt *a0, int a1, const char *a2, int a3, void (*a4)(void *));
  int (*busy_handler)(sqlite3 *a0, int (*a1)(void *, int), void *a2);
  int (*busy_timeout)(sqlite3 *a0, int a1);
  int (*changes)(sqlite3 *a0);
  int (*clear_bindings)(sqlite3_stmt *a0);
  int (*file_control)(sqlite3 *a0, const char *a1, int a2, void *a3);
  sqlite3_int64 (*changes64)(sqlite3 *a0);
  int (*close)(sqlite3 *a0);
  int (*close_v2)(sqlite3 *a0);
  const void *(*column_blob)(sqlite3_stmt *a0, int a1);
  int (*column_bytes)(sqlite3_stmt *a0, int a1);
  int (*column_count)(sqlite3_stmt *a0);
  double (*column_double)(sqlite3_stmt *a0, int a1);
  int (*column_int)(sqlite3_stmt *a0, int a1);
  sqlite3_int64 (*column_int64)(sqlite3_stmt *a0, int a1);
  const char *(*column_name)(sqlite3_stmt *a0, int a1);
  const unsigned char *(*column_text)(sqlite3_stmt *a0, int a1);
  int (*column_type)(sqlite3_stmt *a0, int a1);
  sqlite3 *(*context_db_handle)(sqlite3_context *a0);
  int (*create_function)(sqlite3 *a0, const char *a1, int a2, int a3, void *a4,
                         void (*a5)(sqlite3_context *, int, sqlite3_value **),
                         void (*a6)(sqlite3_context *, int, sqlite3_value **),
                         void (*a7)(sqlite3_context *));
  int (*enable_load_extension)(sqlite3 *a0, int a1);
  int (*errcode)(sqlite3 *a0);
  const char *(*errmsg)(sqlite3 *a0);
  const char *(*errstr)(int a0);
  int (*exec)(sqlite3 *a0, const char *a1, int (*a2)(void *, int, char **, char **), void *a3,
              char **a4);
  int (*extended_result_codes)(sqlite3 *a0, int a1);
  int (*finalize)(sqlite3_stmt *a0);
  int (*get_autocommit)(sqlite3 *a0);
  void (*free)(void *a0);
  void (*interrupt)(sqlite3 *a0);
  sqlite3_int64 (*last_insert_rowid)(sqlite3 *a0);
  int (*limit)(sqlite3 *a0, int a1, int a2);
  void *(*malloc64)(sqlite3_uint64 a0);
  int (*open_v2)(const char *a0, sqlite3 **a1, int a2, const char *a3);
  int (*prepare_v2)(sqlite3 *a0, const char *a1, int a2, sqlite3_stmt **a3, const char **a4);
  int (*prepare_v3)(sqlite3 *a0, const char *a1, int a2, unsigned int a3, sqlite3_stmt **a4,
                    const char **a5);
  void (*progress_handler)(sqlite3 *a0, int a1, int (*a2)(void *), void *a3);
  int (*reset)(sqlite3_stmt *a0);
  void (*result_error)(sqlite3_context *a0, const char *a1, int a2);
  void (*result_error_nomem)(sqlite3_context *a0);
  void (*result_error_toobig)(sqlite3_context *a0);
  void (*result_int64)(sqlite3_context *a0, sqlite3_int64 a1);
  void (*result_text)(sqlite3_context *a0, const char *a1, int a2, void (*a3)(void *));
  void (*result_text64)(sqlite3_context *a0, const char *a1, sqlite3_uint64 a2, void (*a3)(void *),
                        unsigned char a4);
  void (*result_value)(sqlite3_context *a0, sqlite3_value *a1);
  int (*set_authorizer)(sqlite3 *a0,
                        int (*a1)(void *, int, const char *, const char *, const char *,
                                  const char *),
                        void *a2);
  int (*sleep)(int a0);
  int (*step)(sqlite3_stmt *a0);
  int (*stmt_readonly)(sqlite3_stmt *a0);
  sqlite3_int64 (*total_changes64)(sqlite3 *a0);
  void *(*user_data)(sqlite3_context *a0);
  const void *(*value_blob)(sqlite3_value *a0);
  int (*value_bytes)(sqlite3_value *a0);
  sqlite3_value *(*value_dup)(const sqlite3_value *a0);
  void (*value_free)(sqlite3_value *a0);
  const unsigned char *(*value_text)(sqlite3_value *a0);
  int (*value_type)(sqlite3_value *a0);
  sqlite3_vfs *(*vfs_find)(const char *a0);
  int (*vfs_register)(sqlite3_vfs *a0, int a1);
} fn;
static int loaded; /* 1 when every pointer above is set */
static pthread_once_t load_once = PTHREAD_ONCE_INIT;

static void load(void) {
  /* Linked by the program itself (the tests): maybe in use already. */
  void *had = dlopen(LUACT_SQLITE_SONAME, RTLD_LAZY | RTLD_NOLOAD);
  if (had) dlclose(had);
  void *h = dlopen(LUACT_SQLITE_SONAME, RTLD_LAZY | RTLD_LOCAL);
  if (!h) {
    fprintf(stderr, "luact: cannot load %s: %s\n", LUACT_SQLITE_SONAME, dlerror());
    return;
  }
  struct {
    const char *name;
    void **slot;
  } t[] = {
// clang-format off
#define S(f) {"sqlite3_" #f, (void **)&fn.f},
      S(db_config) S(bind_blob) S(bind_blob64) S(bind_double)
      S(bind_int) S(bind_int64) S(bind_null) S(bind_parameter_count)
      S(bind_parameter_index) S(bind_parameter_name) S(bind_text) S(busy_handler)
      S(busy_timeout) S(changes) S(changes64) S(clear_bindings) S(close)
      S(close_v2) S(column_blob) S(column_bytes) S(column_count)
      S(column_double) S(column_int) S(column_int64) S(column_name)
      S(column_text) S(column_type) S(context_db_handle) S(create_function)
      S(enable_load_extension) S(errcode) S(errmsg) S(errstr)
      S(exec) S(extended_result_codes) S(file_control) S(finalize) S(free) S(get_autocommit)
      S(interrupt) S(last_insert_rowid) S(limit) S(malloc64)
      S(open_v2) S(prepare_v2) S(prepare_v3) S(progress_handler)
      S(reset) S(result_error) S(result_error_nomem) S(result_error_toobig)
      S(result_int64) S(result_text) S(result_text64) S(result_value)
      S(set_authorizer) S(sleep) S(step) S(stmt_readonly)
      S(total_changes64) S(user_data) S(value_blob) S(value_bytes)
      S(value_dup) S(value_free) S(value_text) S(value_type)
      S(vfs_find) S(vfs_register)
#undef S
      // clang-format on
  };
  for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
    /* POSIX: a data pointer from dlsym may be converted to a function pointer. */
    *t[i].slot = dlsym(h, t[i].name);
    if (!*t[i].slot) {
      fprintf(stderr, "luact: %s has no %s\n", LUACT_SQLITE_SONAME, t[i].name);
      return;
    }
  }
  loaded = 1;
  /* No memory statistics: with them every SQLite allocation and free
   * takes a global mutex (the store's writer makes several per journal
   * line: ~3% of a journaled pure effect's CPU). Nothing here reads them
   * (sqlite3_memory_used, a soft heap limit). Only before SQLite's first
   * use in the process: here, under load_once, when we loaded it. */
  int (*config)(int, ...) = had ? NULL : (int (*)(int, ...))dlsym(h, "sqlite3_config");
  if (config) config(SQLITE_CONFIG_MEMSTATUS, 0);
}

static int ready(void) {
  pthread_once(&load_once, load);
  return loaded;
}

int sqlite3_db_config(sqlite3 *db, int op, ...) {
  if (!ready()) return SQLITE_MISUSE;
  va_list ap;
  va_start(ap, op);
  int v = va_arg(ap, int);
  int *out = va_arg(ap, int *);
  va_end(ap);
  return fn.db_config(db, op, v, out);
}

int sqlite3_bind_blob(sqlite3_stmt *a0, int a1, const void *a2, int a3, void (*a4)(void *)) {
  return ready() ? fn.bind_blob(a0, a1, a2, a3, a4) : SQLITE_MISUSE;
}
int sqlite3_bind_blob64(sqlite3_stmt *a0, int a1, const void *a2, sqlite3_uint64 a3,
                        void (*a4)(void *)) {
  return ready() ? fn.bind_blob64(a0, a1, a2, a3, a4) : SQLITE_MISUSE;
}
int sqlite3_bind_double(sqlite3_stmt *a0, int a1, double a2) {
  return ready() ? fn.bind_double(a0, a1, a2) : SQLITE_MISUSE;
}
int sqlite3_bind_int(sqlite3_stmt *a0, int a1, int a2) {
  return ready() ? fn.bind_int(a0, a1, a2) : SQLITE_MISUSE;
}
int sqlite3_bind_int64(sqlite3_stmt *a0, int a1, sqlite3_int64 a2) {
  return ready() ? fn.bind_int64(a0, a1, a2) : SQLITE_MISUSE;
}
int sqlite3_bind_null(sqlite3_stmt *a0, int a1) {
  return ready() ? fn.bind_null(a0, a1) : SQLITE_MISUSE;
}
int sqlite3_bind_parameter_count(sqlite3_stmt *a0) {
  return ready() ? fn.bind_parameter_count(a0) : SQLITE_MISUSE;
}
int sqlite3_bind_parameter_index(sqlite3_stmt *a0, const char *a1) {
  return ready() ? fn.bind_parameter_index(a0, a1) : SQLITE_MISUSE;
}
const char *sqlite3_bind_parameter_name(sqlite3_stmt *a0, int a1) {
  return ready() ? fn.bind_parameter_name(a0, a1) : NULL;
}
int sqlite3_bind_text(sqlite3_stmt *a0, int a1, const char *a2, int a3, void (*a4)(void *)) {
  return ready() ? fn.bind_text(a0, a1, a2, a3, a4) : SQLITE_MISUSE;
}
int sqlite3_busy_handler(sqlite3 *a0, int (*a1)(void *, int), void *a2) {
  return ready() ? fn.busy_handler(a0, a1, a2) : SQLITE_MISUSE;
}
int sqlite3_busy_timeout(sqlite3 *a0, int a1) {
  return ready() ? fn.busy_timeout(a0, a1) : SQLITE_MISUSE;
}
int sqlite3_changes(sqlite3 *a0) { return ready() ? fn.changes(a0) : SQLITE_MISUSE; }
sqlite3_int64 sqlite3_changes64(sqlite3 *a0) { return ready() ? fn.changes64(a0) : 0; }
/* As in SQLite, NULL is a no-op: without loading anything (a store that
 * was never opened is closed at every exit). */
int sqlite3_close(sqlite3 *a0) { return !a0 ? SQLITE_OK : ready() ? fn.close(a0) : SQLITE_MISUSE; }
int sqlite3_close_v2(sqlite3 *a0) {
  return !a0 ? SQLITE_OK : ready() ? fn.close_v2(a0) : SQLITE_MISUSE;
}
const void *sqlite3_column_blob(sqlite3_stmt *a0, int a1) {
  return ready() ? fn.column_blob(a0, a1) : NULL;
}
int sqlite3_column_bytes(sqlite3_stmt *a0, int a1) {
  return ready() ? fn.column_bytes(a0, a1) : SQLITE_MISUSE;
}
int sqlite3_column_count(sqlite3_stmt *a0) { return ready() ? fn.column_count(a0) : SQLITE_MISUSE; }
double sqlite3_column_double(sqlite3_stmt *a0, int a1) {
  return ready() ? fn.column_double(a0, a1) : 0;
}
int sqlite3_column_int(sqlite3_stmt *a0, int a1) {
  return ready() ? fn.column_int(a0, a1) : SQLITE_MISUSE;
}
sqlite3_int64 sqlite3_column_int64(sqlite3_stmt *a0, int a1) {
  return ready() ? fn.column_int64(a0, a1) : 0;
}
const char *sqlite3_column_name(sqlite3_stmt *a0, int a1) {
  return ready() ? fn.column_name(a0, a1) : NULL;
}
const unsigned char *sqlite3_column_text(sqlite3_stmt *a0, int a1) {
  return ready() ? fn.column_text(a0, a1) : NULL;
}
int sqlite3_column_type(sqlite3_stmt *a0, int a1) {
  return ready() ? fn.column_type(a0, a1) : SQLITE_MISUSE;
}
sqlite3 *sqlite3_context_db_handle(sqlite3_context *a0) {
  return ready() ? fn.context_db_handle(a0) : NULL;
}
int sqlite3_create_function(sqlite3 *a0, const char *a1, int a2, int a3, void *a4,
                            void (*a5)(sqlite3_context *, int, sqlite3_value **),
                            void (*a6)(sqlite3_context *, int, sqlite3_value **),
                            void (*a7)(sqlite3_context *)) {
  return ready() ? fn.create_function(a0, a1, a2, a3, a4, a5, a6, a7) : SQLITE_MISUSE;
}
int sqlite3_enable_load_extension(sqlite3 *a0, int a1) {
  return ready() ? fn.enable_load_extension(a0, a1) : SQLITE_MISUSE;
}
int sqlite3_errcode(sqlite3 *a0) { return ready() ? fn.errcode(a0) : SQLITE_CANTOPEN; }
const char *sqlite3_errmsg(sqlite3 *a0) { return ready() ? fn.errmsg(a0) : NOT_LOADED; }
const char *sqlite3_errstr(int a0) { return ready() ? fn.errstr(a0) : NOT_LOADED; }
int sqlite3_exec(sqlite3 *a0, const char *a1, int (*a2)(void *, int, char **, char **), void *a3,
                 char **a4) {
  return ready() ? fn.exec(a0, a1, a2, a3, a4) : SQLITE_MISUSE;
}
int sqlite3_extended_result_codes(sqlite3 *a0, int a1) {
  return ready() ? fn.extended_result_codes(a0, a1) : SQLITE_MISUSE;
}
int sqlite3_finalize(sqlite3_stmt *a0) {
  return !a0 ? SQLITE_OK : ready() ? fn.finalize(a0) : SQLITE_MISUSE;
}
void sqlite3_free(void *a0) {
  if (a0 && ready()) fn.free(a0);
}
int sqlite3_get_autocommit(sqlite3 *a0) {
  return ready() ? fn.get_autocommit(a0) : 1;
}
int sqlite3_clear_bindings(sqlite3_stmt *a0) {
  return ready() ? fn.clear_bindings(a0) : SQLITE_MISUSE;
}
int sqlite3_file_control(sqlite3 *a0, const char *a1, int a2, void *a3) {
  return ready() ? fn.file_control(a0, a1, a2, a3) : SQLITE_MISUSE;
}
void sqlite3_interrupt(sqlite3 *a0) {
  if (ready()) fn.interrupt(a0);
}
sqlite3_int64 sqlite3_last_insert_rowid(sqlite3 *a0) {
  return ready() ? fn.last_insert_rowid(a0) : 0;
}
int sqlite3_limit(sqlite3 *a0, int a1, int a2) {
  return ready() ? fn.limit(a0, a1, a2) : SQLITE_MISUSE;
}
void *sqlite3_malloc64(sqlite3_uint64 a0) { return ready() ? fn.malloc64(a0) : NULL; }
int sqlite3_open_v2(const char *a0, sqlite3 **a1, int a2, const char *a3) {
  if (ready()) return fn.open_v2(a0, a1, a2, a3);
  if (a1) *a1 = NULL;
  return SQLITE_CANTOPEN;
}
int sqlite3_prepare_v2(sqlite3 *a0, const char *a1, int a2, sqlite3_stmt **a3, const char **a4) {
  return ready() ? fn.prepare_v2(a0, a1, a2, a3, a4) : SQLITE_MISUSE;
}
int sqlite3_prepare_v3(sqlite3 *a0, const char *a1, int a2, unsigned int a3, sqlite3_stmt **a4,
                       const char **a5) {
  return ready() ? fn.prepare_v3(a0, a1, a2, a3, a4, a5) : SQLITE_MISUSE;
}
void sqlite3_progress_handler(sqlite3 *a0, int a1, int (*a2)(void *), void *a3) {
  if (ready()) fn.progress_handler(a0, a1, a2, a3);
}
int sqlite3_reset(sqlite3_stmt *a0) { return ready() ? fn.reset(a0) : SQLITE_MISUSE; }
void sqlite3_result_error(sqlite3_context *a0, const char *a1, int a2) {
  if (ready()) fn.result_error(a0, a1, a2);
}
void sqlite3_result_error_nomem(sqlite3_context *a0) {
  if (ready()) fn.result_error_nomem(a0);
}
void sqlite3_result_error_toobig(sqlite3_context *a0) {
  if (ready()) fn.result_error_toobig(a0);
}
void sqlite3_result_int64(sqlite3_context *a0, sqlite3_int64 a1) {
  if (ready()) fn.result_int64(a0, a1);
}
void sqlite3_result_text(sqlite3_context *a0, const char *a1, int a2, void (*a3)(void *)) {
  if (ready()) fn.result_text(a0, a1, a2, a3);
}
void sqlite3_result_text64(sqlite3_context *a0, const char *a1, sqlite3_uint64 a2,
                           void (*a3)(void *), unsigned char a4) {
  if (ready()) fn.result_text64(a0, a1, a2, a3, a4);
}
void sqlite3_result_value(sqlite3_context *a0, sqlite3_value *a1) {
  if (ready()) fn.result_value(a0, a1);
}
int sqlite3_set_authorizer(sqlite3 *a0,
                           int (*a1)(void *, int, const char *, const char *, const char *,
                                     const char *),
                           void *a2) {
  return ready() ? fn.set_authorizer(a0, a1, a2) : SQLITE_MISUSE;
}
int sqlite3_sleep(int a0) { return ready() ? fn.sleep(a0) : SQLITE_MISUSE; }
int sqlite3_step(sqlite3_stmt *a0) { return ready() ? fn.step(a0) : SQLITE_MISUSE; }
int sqlite3_stmt_readonly(sqlite3_stmt *a0) {
  return ready() ? fn.stmt_readonly(a0) : SQLITE_MISUSE;
}
sqlite3_int64 sqlite3_total_changes64(sqlite3 *a0) { return ready() ? fn.total_changes64(a0) : 0; }
void *sqlite3_user_data(sqlite3_context *a0) { return ready() ? fn.user_data(a0) : NULL; }
const void *sqlite3_value_blob(sqlite3_value *a0) { return ready() ? fn.value_blob(a0) : NULL; }
int sqlite3_value_bytes(sqlite3_value *a0) { return ready() ? fn.value_bytes(a0) : SQLITE_MISUSE; }
sqlite3_value *sqlite3_value_dup(const sqlite3_value *a0) {
  return ready() ? fn.value_dup(a0) : NULL;
}
void sqlite3_value_free(sqlite3_value *a0) {
  if (a0 && ready()) fn.value_free(a0);
}
const unsigned char *sqlite3_value_text(sqlite3_value *a0) {
  return ready() ? fn.value_text(a0) : NULL;
}
int sqlite3_value_type(sqlite3_value *a0) { return ready() ? fn.value_type(a0) : SQLITE_MISUSE; }
sqlite3_vfs *sqlite3_vfs_find(const char *a0) { return ready() ? fn.vfs_find(a0) : NULL; }
int sqlite3_vfs_register(sqlite3_vfs *a0, int a1) {
  return ready() ? fn.vfs_register(a0, a1) : SQLITE_MISUSE;
}
