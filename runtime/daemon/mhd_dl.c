/* mhd_dl.c: libmicrohttpd for `luact serve`, loaded when the daemon starts
 * instead of at every start of the binary.
 *
 * Linked directly, libmicrohttpd pulled GnuTLS and its eight libraries
 * (p11-kit, nettle, hogweed, gmp, tasn1, idn2, unistring) into every
 * `luact run`: 13 of the 22 libraries an empty script mapped, and the
 * longer search list made the later dlopen of libcurl slower too. Only
 * `luact serve` uses it. So this file defines the MHD_* functions the
 * daemon calls (runtime/daemon/api*.c, wsconn.c); the first one dlopens
 * the library and resolves them once (pthread_once). If the library cannot
 * be loaded, MHD_start_daemon returns NULL, as libmicrohttpd does on
 * failure, after printing the reason once on stderr; nothing else can be
 * reached without a daemon. (runtime/core/curl_dl.c does the same for
 * libcurl; runtime/mcp/mcp_httpd.c has its own table for the MCP server.) */
#include <dlfcn.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>

#ifndef LUACT_MHD_SONAME
#define LUACT_MHD_SONAME "libmicrohttpd.so.12"
#endif

static struct {
  struct MHD_Daemon *(*start_daemon_va)(unsigned int, uint16_t, MHD_AcceptPolicyCallback,
                                        void *, MHD_AccessHandlerCallback, void *, va_list);
  MHD_socket (*quiesce_daemon)(struct MHD_Daemon *);
  void (*stop_daemon)(struct MHD_Daemon *);
  const union MHD_DaemonInfo *(*get_daemon_info)(struct MHD_Daemon *, enum MHD_DaemonInfoType,
                                                 ...);
  const char *(*lookup_connection_value)(struct MHD_Connection *, enum MHD_ValueKind,
                                         const char *);
  int (*get_connection_values)(struct MHD_Connection *, enum MHD_ValueKind,
                               MHD_KeyValueIterator, void *);
  enum MHD_Result (*queue_response)(struct MHD_Connection *, unsigned int,
                                    struct MHD_Response *);
  struct MHD_Response *(*create_response_from_callback)(uint64_t, size_t,
                                                        MHD_ContentReaderCallback, void *,
                                                        MHD_ContentReaderFreeCallback);
  struct MHD_Response *(*create_response_from_buffer)(size_t, void *,
                                                      enum MHD_ResponseMemoryMode);
  void (*destroy_response)(struct MHD_Response *);
  enum MHD_Result (*add_response_header)(struct MHD_Response *, const char *, const char *);
  void (*suspend_connection)(struct MHD_Connection *);
  void (*resume_connection)(struct MHD_Connection *);
  struct MHD_Response *(*create_response_for_upgrade)(MHD_UpgradeHandler, void *);
  enum MHD_Result (*upgrade_action)(struct MHD_UpgradeResponseHandle *, enum MHD_UpgradeAction,
                                    ...);
} fn;
static int loaded; /* 1 when every pointer above is set */
static pthread_once_t load_once = PTHREAD_ONCE_INIT;

static void load(void) {
  void *h = dlopen(LUACT_MHD_SONAME, RTLD_NOW | RTLD_LOCAL);
  if (!h) {
    fprintf(stderr, "luact: cannot load %s: %s\n", LUACT_MHD_SONAME, dlerror());
    return;
  }
  struct {
    const char *name;
    void **slot;
  } t[] = {
#define S(f) {"MHD_" #f, (void **)&fn.f}
      S(start_daemon_va),        S(quiesce_daemon),
      S(stop_daemon),            S(get_daemon_info),
      S(lookup_connection_value), S(queue_response),
      S(create_response_from_callback), S(create_response_from_buffer),
      S(destroy_response),       S(add_response_header),
      S(get_connection_values),  S(suspend_connection),
      S(resume_connection),      S(create_response_for_upgrade),
      S(upgrade_action),
#undef S
  };
  for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
    /* POSIX: a data pointer from dlsym may be converted to a function pointer. */
    *t[i].slot = dlsym(h, t[i].name);
    if (!*t[i].slot) {
      fprintf(stderr, "luact: %s has no %s\n", LUACT_MHD_SONAME, t[i].name);
      return;
    }
  }
  loaded = 1;
}

static int ready(void) {
  pthread_once(&load_once, load);
  return loaded;
}

struct MHD_Daemon *MHD_start_daemon(unsigned int flags, uint16_t port,
                                    MHD_AcceptPolicyCallback apc, void *apc_cls,
                                    MHD_AccessHandlerCallback dh, void *dh_cls, ...) {
  if (!ready()) return NULL;
  va_list ap;
  va_start(ap, dh_cls);
  struct MHD_Daemon *d = fn.start_daemon_va(flags, port, apc, apc_cls, dh, dh_cls, ap);
  va_end(ap);
  return d;
}

/* Every function below takes a daemon or one of its connections or
 * responses, which exist only if MHD_start_daemon loaded the library. */
MHD_socket MHD_quiesce_daemon(struct MHD_Daemon *d) {
  return ready() ? fn.quiesce_daemon(d) : MHD_INVALID_SOCKET;
}
void MHD_stop_daemon(struct MHD_Daemon *d) {
  if (d && ready()) fn.stop_daemon(d);
}
/* The daemon asks only for info types that take no further argument. */
const union MHD_DaemonInfo *MHD_get_daemon_info(struct MHD_Daemon *d,
                                                enum MHD_DaemonInfoType type, ...) {
  return ready() ? fn.get_daemon_info(d, type) : NULL;
}
const char *MHD_lookup_connection_value(struct MHD_Connection *c, enum MHD_ValueKind kind,
                                        const char *key) {
  return ready() ? fn.lookup_connection_value(c, kind, key) : NULL;
}
int MHD_get_connection_values(struct MHD_Connection *c, enum MHD_ValueKind kind,
                              MHD_KeyValueIterator it, void *cls) {
  return ready() ? fn.get_connection_values(c, kind, it, cls) : -1;
}
enum MHD_Result MHD_queue_response(struct MHD_Connection *c, unsigned int status,
                                   struct MHD_Response *r) {
  return ready() ? fn.queue_response(c, status, r) : MHD_NO;
}
struct MHD_Response *MHD_create_response_from_callback(uint64_t size, size_t block,
                                                       MHD_ContentReaderCallback crc,
                                                       void *crc_cls,
                                                       MHD_ContentReaderFreeCallback crfc) {
  return ready() ? fn.create_response_from_callback(size, block, crc, crc_cls, crfc) : NULL;
}
struct MHD_Response *MHD_create_response_from_buffer(size_t size, void *buf,
                                                     enum MHD_ResponseMemoryMode mode) {
  return ready() ? fn.create_response_from_buffer(size, buf, mode) : NULL;
}
void MHD_destroy_response(struct MHD_Response *r) {
  if (r && ready()) fn.destroy_response(r);
}
enum MHD_Result MHD_add_response_header(struct MHD_Response *r, const char *h,
                                        const char *v) {
  return ready() ? fn.add_response_header(r, h, v) : MHD_NO;
}
void MHD_suspend_connection(struct MHD_Connection *c) {
  if (ready()) fn.suspend_connection(c);
}
void MHD_resume_connection(struct MHD_Connection *c) {
  if (ready()) fn.resume_connection(c);
}
struct MHD_Response *MHD_create_response_for_upgrade(MHD_UpgradeHandler h, void *cls) {
  return ready() ? fn.create_response_for_upgrade(h, cls) : NULL;
}
/* The daemon asks only for actions that take no further argument (CLOSE). */
enum MHD_Result MHD_upgrade_action(struct MHD_UpgradeResponseHandle *urh,
                                   enum MHD_UpgradeAction action, ...) {
  return ready() ? fn.upgrade_action(urh, action) : MHD_NO;
}
