/* pq_dl.c: libpq loaded on first use (pq_dl.h says why). luact_core
 * defines the PQ* functions the runtime calls with libpq's prototypes;
 * the first call dlopens the library and resolves them all (pthread_once,
 * any thread); every call forwards. Without the library, the functions
 * answer as libpq does for a NULL connection or result. Programs that
 * link libpq themselves (the tests) still work: dlopen returns the loaded
 * library and dlsym its definitions. */
#include "pq_dl.h"

#include <dlfcn.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <stdio.h>

#ifndef LUACT_PQ_SONAME
#define LUACT_PQ_SONAME "libpq.so.5"
#endif

static struct {
  int (*backendPID)(const PGconn *);
  void (*clear)(PGresult *);
  char *(*cmdTuples)(PGresult *);
  PGconn *(*connectdb)(const char *);
  PGconn *(*connectdbParams)(const char *const *, const char *const *, int);
  int (*consumeInput)(PGconn *);
  char *(*errorMessage)(const PGconn *);
  PGresult *(*exec)(PGconn *, const char *);
  PGresult *(*execParams)(PGconn *, const char *, int, const Oid *, const char *const *,
                          const int *, const int *, int);
  PGresult *(*execPrepared)(PGconn *, const char *, int, const char *const *, const int *,
                            const int *, int);
  void (*finish)(PGconn *);
  char *(*fname)(const PGresult *, int);
  void (*freemem)(void *);
  Oid (*ftype)(const PGresult *, int);
  int (*getisnull)(const PGresult *, int, int);
  int (*getlength)(const PGresult *, int, int);
  char *(*getvalue)(const PGresult *, int, int);
  int (*nfields)(const PGresult *);
  PGnotify *(*notifies)(PGconn *);
  int (*ntuples)(const PGresult *);
  PGresult *(*prepare)(PGconn *, const char *, const char *, int, const Oid *);
  void (*reset)(PGconn *);
  char *(*resultErrorField)(const PGresult *, int);
  char *(*resultErrorMessage)(const PGresult *);
  ExecStatusType (*resultStatus)(const PGresult *);
  PQnoticeProcessor (*setNoticeProcessor)(PGconn *, PQnoticeProcessor, void *);
  int (*socket)(const PGconn *);
  ConnStatusType (*status)(const PGconn *);
  /* pipeline mode (libpq 14+): optional, all or none */
  int (*enterPipelineMode)(PGconn *);
  int (*exitPipelineMode)(PGconn *);
  int (*pipelineSync)(PGconn *);
  int (*sendQueryParams)(PGconn *, const char *, int, const Oid *, const char *const *,
                         const int *, const int *, int);
  PGresult *(*getResult)(PGconn *);
} fn;
static int pipeline; /* 1 when the five above are set */
static int loaded; /* 1 when every pointer above is set */
static pthread_once_t load_once = PTHREAD_ONCE_INIT;

static void load(void) {
  void *h = dlopen(LUACT_PQ_SONAME, RTLD_LAZY | RTLD_LOCAL);
  if (!h) {
    fprintf(stderr, "luact: cannot load %s: %s\n", LUACT_PQ_SONAME, dlerror());
    return;
  }
  struct {
    const char *name;
    void **slot;
  } t[] = {
#define S(f) {"PQ" #f, (void **)&fn.f},
      S(backendPID) S(clear) S(cmdTuples) S(connectdb) S(connectdbParams) S(consumeInput)
      S(errorMessage) S(exec) S(execParams) S(execPrepared) S(prepare) S(finish) S(fname)
      S(freemem) S(ftype) S(getisnull) S(getlength) S(getvalue) S(nfields) S(notifies)
      S(ntuples) S(reset) S(resultErrorField) S(resultErrorMessage) S(resultStatus)
      S(setNoticeProcessor) S(socket) S(status)
#undef S
  };
  for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
    /* POSIX: a data pointer from dlsym may be converted to a function pointer. */
    *t[i].slot = dlsym(h, t[i].name);
    if (!*t[i].slot) {
      fprintf(stderr, "luact: %s has no %s\n", LUACT_PQ_SONAME, t[i].name);
      return;
    }
  }
  struct {
    const char *name;
    void **slot;
  } o[] = {
#define S(f) {"PQ" #f, (void **)&fn.f},
      S(enterPipelineMode) S(exitPipelineMode) S(pipelineSync) S(sendQueryParams) S(getResult)
#undef S
  };
  int all = 1;
  for (size_t i = 0; i < sizeof o / sizeof o[0]; i++) {
    *o[i].slot = dlsym(h, o[i].name);
    all = all && *o[i].slot;
  }
  pipeline = all;
  loaded = 1;
}

static int ready(void) {
  pthread_once(&load_once, load);
  return loaded;
}

int lc_pq_available(void) { return ready(); }
int lc_pq_has_pipeline(void) { return ready() && pipeline; }

/* Without the library no connection or result exists: every call below
 * gets NULL ones, and answers as libpq does for those. */
int PQbackendPID(const PGconn *c) { return ready() ? fn.backendPID(c) : 0; }
void PQclear(PGresult *r) {
  if (r && ready()) fn.clear(r);
}
char *PQcmdTuples(PGresult *r) { return ready() ? fn.cmdTuples(r) : (char *)""; }
PGconn *PQconnectdb(const char *conninfo) { return ready() ? fn.connectdb(conninfo) : NULL; }
PGconn *PQconnectdbParams(const char *const *keys, const char *const *values, int expand) {
  return ready() ? fn.connectdbParams(keys, values, expand) : NULL;
}
int PQconsumeInput(PGconn *c) { return ready() ? fn.consumeInput(c) : 0; }
char *PQerrorMessage(const PGconn *c) {
  return ready() ? fn.errorMessage(c) : (char *)"libpq could not be loaded";
}
PGresult *PQexec(PGconn *c, const char *q) { return ready() ? fn.exec(c, q) : NULL; }
PGresult *PQexecParams(PGconn *c, const char *q, int n, const Oid *types,
                       const char *const *values, const int *lengths, const int *formats,
                       int rformat) {
  return ready() ? fn.execParams(c, q, n, types, values, lengths, formats, rformat) : NULL;
}
PGresult *PQexecPrepared(PGconn *c, const char *name, int n, const char *const *vals,
                         const int *lens, const int *fmts, int rfmt) {
  return ready() ? fn.execPrepared(c, name, n, vals, lens, fmts, rfmt) : NULL;
}
PGresult *PQprepare(PGconn *c, const char *name, const char *q, int n, const Oid *types) {
  return ready() ? fn.prepare(c, name, q, n, types) : NULL;
}
void PQfinish(PGconn *c) {
  if (c && ready()) fn.finish(c);
}
char *PQfname(const PGresult *r, int i) { return ready() ? fn.fname(r, i) : NULL; }
void PQfreemem(void *p) {
  if (p && ready()) fn.freemem(p);
}
Oid PQftype(const PGresult *r, int i) { return ready() ? fn.ftype(r, i) : InvalidOid; }
int PQgetisnull(const PGresult *r, int t, int f) { return ready() ? fn.getisnull(r, t, f) : 1; }
int PQgetlength(const PGresult *r, int t, int f) { return ready() ? fn.getlength(r, t, f) : 0; }
char *PQgetvalue(const PGresult *r, int t, int f) { return ready() ? fn.getvalue(r, t, f) : NULL; }
int PQnfields(const PGresult *r) { return ready() ? fn.nfields(r) : 0; }
PGnotify *PQnotifies(PGconn *c) { return ready() ? fn.notifies(c) : NULL; }
int PQntuples(const PGresult *r) { return ready() ? fn.ntuples(r) : 0; }
void PQreset(PGconn *c) {
  if (ready()) fn.reset(c);
}
char *PQresultErrorField(const PGresult *r, int code) {
  return ready() ? fn.resultErrorField(r, code) : NULL;
}
char *PQresultErrorMessage(const PGresult *r) {
  return ready() ? fn.resultErrorMessage(r) : (char *)"libpq could not be loaded";
}
ExecStatusType PQresultStatus(const PGresult *r) {
  return ready() ? fn.resultStatus(r) : PGRES_FATAL_ERROR;
}
PQnoticeProcessor PQsetNoticeProcessor(PGconn *c, PQnoticeProcessor p, void *arg) {
  return ready() ? fn.setNoticeProcessor(c, p, arg) : NULL;
}
int PQsocket(const PGconn *c) { return ready() ? fn.socket(c) : -1; }
ConnStatusType PQstatus(const PGconn *c) { return ready() ? fn.status(c) : CONNECTION_BAD; }
/* Pipeline mode: called only when lc_pq_has_pipeline() said so. */
int PQenterPipelineMode(PGconn *c) { return lc_pq_has_pipeline() ? fn.enterPipelineMode(c) : 0; }
int PQexitPipelineMode(PGconn *c) { return lc_pq_has_pipeline() ? fn.exitPipelineMode(c) : 0; }
int PQpipelineSync(PGconn *c) { return lc_pq_has_pipeline() ? fn.pipelineSync(c) : 0; }
int PQsendQueryParams(PGconn *c, const char *q, int n, const Oid *types,
                      const char *const *values, const int *lengths, const int *formats,
                      int rformat) {
  return lc_pq_has_pipeline() ? fn.sendQueryParams(c, q, n, types, values, lengths, formats, rformat)
                              : 0;
}
PGresult *PQgetResult(PGconn *c) { return lc_pq_has_pipeline() ? fn.getResult(c) : NULL; }
