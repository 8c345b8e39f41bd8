/* ffi_fn.c: native functions declared by signature, called through libffi with
 * every argument checked against the declaration. */
#include "ffi_fn.h"

#include <dlfcn.h>
#include <ffi.h>
#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "lc.h"
#include "utf8.h"

enum kind {
  K_VOID, K_BOOL, K_I8, K_I16, K_I32, K_I64, K_U8, K_U16, K_U32, K_U64,
  K_FLOAT, K_DOUBLE, K_STRING, K_STRING_OWNED, K_BUFFER, K_LEN,
};

/* Type names as written in signatures. int, long and size_t map to fixed
 * widths checked below, so the range checks match the C ABI. */
static const struct tname {
  const char *name;
  enum kind k;
} tnames[] = {
    {"void", K_VOID},     {"bool", K_BOOL},     {"char", K_I8},
    {"int8", K_I8},       {"int16", K_I16},     {"int32", K_I32},
    {"int", K_I32},       {"int64", K_I64},     {"long", K_I64},
    {"uint8", K_U8},      {"uint16", K_U16},    {"uint32", K_U32},
    {"uint64", K_U64},    {"size_t", K_U64},    {"float", K_FLOAT},
    {"double", K_DOUBLE}, {"string", K_STRING}, {"string_owned", K_STRING_OWNED},
};

_Static_assert(sizeof(int) == 4, "int must be 32-bit");
_Static_assert(sizeof(long) == 8 && sizeof(size_t) == 8, "LP64 only");
_Static_assert(sizeof(bool) == 1, "bool must be one byte");

struct ptype {
  enum kind k;
  const char *name; /* static: the spelling used, for messages */
  size_t bufsize;   /* K_BUFFER */
  enum kind lenk;   /* K_LEN: the integer type passed (size_t by default) */
  const char *lenname; /* K_LEN: T of len(T), NULL for plain len */
  int of;           /* K_LEN: index of the buffer or string it measures */
};

struct lc_ffi_fn {
  void *lib;
  void *sym;
  char *symbol;
  char *desc;
  struct ptype ret;
  struct ptype args[LC_FFI_MAX_ARGS];
  int nargs;   /* C parameters */
  int npassed; /* JSON arguments (nargs minus buffers) */
  int nbuf;
  int nlen;    /* len parameters: filled by the call, not passed */
  ffi_type *atypes[LC_FFI_MAX_ARGS];
  ffi_cif cif;
};

#define MAX_EXACT 9007199254740992.0 /* 2^53 */

/* libffi itself, loaded with the first declaration instead of linked:
 * linked, it was mapped by every run and lengthened the search list of
 * every symbol libcurl's dlopen resolves (core/curl_dl.c), while only
 * luact.native uses it. Its functions and its type descriptors (data) are
 * resolved once (pthread_once); everything below uses them through ffi_lib. */
#define LUACT_FFI_SONAME "libffi.so.8"
static struct {
  ffi_status (*prep_cif)(ffi_cif *, ffi_abi, unsigned int, ffi_type *, ffi_type **);
  void (*call)(ffi_cif *, void (*)(void), void *, void **);
  ffi_type *t_void, *t_uint8, *t_sint8, *t_sint16, *t_sint32, *t_sint64, *t_uint16, *t_uint32,
      *t_uint64, *t_float, *t_double, *t_pointer;
} ffi_lib;
static int lib_loaded;
static char lib_err[300];
static pthread_once_t lib_once = PTHREAD_ONCE_INIT;

static void lib_load(void) {
  void *h = dlopen(LUACT_FFI_SONAME, RTLD_LAZY | RTLD_LOCAL);
  if (!h) {
    const char *e = dlerror();
    snprintf(lib_err, sizeof lib_err, "cannot load %s: %s", LUACT_FFI_SONAME,
             e ? e : "unknown error");
    return;
  }
  struct {
    const char *name;
    void **slot;
  } t[] = {
      {"ffi_prep_cif", (void **)&ffi_lib.prep_cif}, {"ffi_call", (void **)&ffi_lib.call},
#define T(n) {"ffi_type_" #n, (void **)&ffi_lib.t_##n},
      T(void) T(uint8) T(sint8) T(sint16) T(sint32) T(sint64) T(uint16) T(uint32) T(uint64)
      T(float) T(double) T(pointer)
#undef T
  };
  for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
    /* POSIX: a data pointer from dlsym may be converted to a function pointer. */
    *t[i].slot = dlsym(h, t[i].name);
    if (!*t[i].slot) {
      snprintf(lib_err, sizeof lib_err, "%s has no %s", LUACT_FFI_SONAME, t[i].name);
      return;
    }
  }
  lib_loaded = 1;
}

static ffi_type *ffi_type_of(enum kind k) {
  switch (k) {
    case K_VOID: return ffi_lib.t_void;
    case K_BOOL: return ffi_lib.t_uint8;
    case K_I8: return ffi_lib.t_sint8;
    case K_I16: return ffi_lib.t_sint16;
    case K_I32: return ffi_lib.t_sint32;
    case K_I64: return ffi_lib.t_sint64;
    case K_U8: return ffi_lib.t_uint8;
    case K_U16: return ffi_lib.t_uint16;
    case K_U32: return ffi_lib.t_uint32;
    case K_U64: return ffi_lib.t_uint64;
    case K_FLOAT: return ffi_lib.t_float;
    case K_DOUBLE: return ffi_lib.t_double;
    default: return ffi_lib.t_pointer;
  }
}

static int is_int_kind(enum kind k) { return k >= K_I8 && k <= K_U64; }

static void int_range(enum kind k, int64_t *lo, uint64_t *hi) {
  switch (k) {
    case K_I8: *lo = INT8_MIN, *hi = INT8_MAX; break;
    case K_I16: *lo = INT16_MIN, *hi = INT16_MAX; break;
    case K_I32: *lo = INT32_MIN, *hi = INT32_MAX; break;
    case K_I64: *lo = INT64_MIN, *hi = INT64_MAX; break;
    case K_U8: *lo = 0, *hi = UINT8_MAX; break;
    case K_U16: *lo = 0, *hi = UINT16_MAX; break;
    case K_U32: *lo = 0, *hi = UINT32_MAX; break;
    default: *lo = 0, *hi = UINT64_MAX; break;
  }
}

/* ---- signatures --------------------------------------------------------- */

struct lexer {
  const char *p;
  const char *sig;
  char *err;
  size_t errlen;
};

static int lfail(struct lexer *lx, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static int lfail(struct lexer *lx, const char *fmt, ...) {
  char tmp[256];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(tmp, sizeof tmp, fmt, ap);
  va_end(ap);
  snprintf(lx->err, lx->errlen, "bad signature \"%.120s\": %s", lx->sig, tmp);
  return LC_EINVAL;
}

static void skip_ws(struct lexer *lx) {
  while (*lx->p == ' ' || *lx->p == '\t' || *lx->p == '\n' || *lx->p == '\r')
    lx->p++;
}

static int is_ident_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
         (c >= '0' && c <= '9') || c == '_';
}

/* Reads one type; where is "return type" or "argument N". */
static int read_type(struct lexer *lx, struct ptype *t, const char *where) {
  skip_ws(lx);
  const char *s = lx->p;
  while (is_ident_char(*lx->p)) lx->p++;
  size_t n = (size_t)(lx->p - s);
  if (n == 0) {
    if (!*lx->p) return lfail(lx, "%s is missing", where);
    return lfail(lx, "expected a type name for %s, found '%c'", where, *lx->p);
  }
  if (n == 6 && memcmp(s, "buffer", 6) == 0) {
    skip_ws(lx);
    if (*lx->p != '[')
      return lfail(lx, "%s: buffer needs a size, as in buffer[256]", where);
    lx->p++;
    skip_ws(lx);
    char *end;
    unsigned long long sz = strtoull(lx->p, &end, 10);
    if (end == lx->p || *lx->p == '-' || *lx->p == '+')
      return lfail(lx, "%s: buffer size must be a number, as in buffer[256]", where);
    lx->p = end;
    skip_ws(lx);
    if (*lx->p != ']') return lfail(lx, "%s: missing ']' after the buffer size", where);
    lx->p++;
    if (sz < 1 || sz > LC_FFI_MAX_BUFFER)
      return lfail(lx, "%s: buffer size %llu is outside 1..%d", where, sz,
                   LC_FFI_MAX_BUFFER);
    t->k = K_BUFFER;
    t->name = "buffer";
    t->bufsize = (size_t)sz;
    return 0;
  }
  if (n == 3 && memcmp(s, "len", 3) == 0) {
    /* len or len(T): an integer the call fills in (see the header). */
    t->k = K_LEN;
    t->name = "len";
    t->lenk = K_U64;
    skip_ws(lx);
    const char *save = lx->p;
    if (*lx->p != '(') return 0;
    lx->p++;
    skip_ws(lx);
    if (*lx->p == ')') { /* "len()": a return type with no arguments */
      lx->p = save;
      return 0;
    }
    struct ptype it;
    memset(&it, 0, sizeof it);
    int rc = read_type(lx, &it, where);
    if (rc) return rc;
    if (!is_int_kind(it.k)) {
      lx->p = save;
      return lfail(lx, "%s: len(T) needs an integer type T, not %s", where,
                   it.name);
    }
    skip_ws(lx);
    if (*lx->p != ')') return lfail(lx, "%s: missing ')' after len(%s", where,
                                    it.name);
    lx->p++;
    t->lenk = it.k;
    t->lenname = it.name;
    return 0;
  }
  if (n == 3 && memcmp(s, "ptr", 3) == 0)
    return lfail(lx, "%s: ptr is not supported (a raw address cannot be "
                 "checked); use string for input text or buffer[N] for output",
                 where);
  for (size_t i = 0; i < LC_ARRAY_LEN(tnames); i++) {
    if (strlen(tnames[i].name) == n && memcmp(s, tnames[i].name, n) == 0) {
      t->k = tnames[i].k;
      t->name = tnames[i].name;
      return 0;
    }
  }
  return lfail(lx, "unknown type \"%.*s\" for %s; known: void, bool, char, "
               "int8, int16, int32, int, int64, long, uint8, uint16, uint32, "
               "uint64, size_t, float, double, string, string_owned, "
               "buffer[N], len", (int)(n > 40 ? 40 : n), s, where);
}

/* Binds len to the nearest buffer or string before it; a len(T) for a
 * buffer must be able to hold the buffer's size. */
static int bind_len(struct lexer *lx, struct lc_ffi_fn *fn, struct ptype *t,
                    const char *where) {
  int of = fn->nargs - 1;
  while (of >= 0 && fn->args[of].k != K_BUFFER && fn->args[of].k != K_STRING)
    of--;
  if (of < 0)
    return lfail(lx, "%s: len must come after the buffer[N] or string it "
                 "measures", where);
  t->of = of;
  int64_t lo;
  uint64_t hi;
  int_range(t->lenk, &lo, &hi);
  if (fn->args[of].k == K_BUFFER && fn->args[of].bufsize > hi)
    return lfail(lx, "%s: len(%s) cannot hold the size of buffer[%zu]", where,
                 t->lenname, fn->args[of].bufsize);
  return 0;
}

/* A size that describes memory is the runtime's to give, never the
 * caller's: a model that picks the size of a buffer[16] picks how far the
 * callee writes, and a length past a string's end is how far it reads.
 * Nothing in a C signature says what an integer means, so the rule goes by
 * where C puts sizes: in a signature with a buffer, any integer after the
 * first buffer, and a size_t or uint64 anywhere; after a string, a size_t
 * or uint64 right behind it. Such a declaration is refused and len
 * offered instead. */
static int check_exposed(struct lexer *lx, const struct lc_ffi_fn *fn) {
  int seen_buf = 0;
  for (int i = 0; i < fn->nargs; i++) {
    const struct ptype *t = &fn->args[i];
    if (t->k == K_BUFFER) seen_buf = 1;
    if (!is_int_kind(t->k)) continue;
    const char *what = NULL;
    if (seen_buf) what = "comes after a buffer[N], where C puts its size";
    else if (t->k == K_U64 && fn->nbuf)
      what = "is a size in a signature with a buffer[N]";
    else if (t->k == K_U64 && i > 0 && fn->args[i - 1].k == K_STRING)
      what = "comes right after a string, where C puts its length";
    if (what)
      return lfail(lx, "argument %d (%s) %s; a size the caller chooses lets "
                   "the callee overrun that memory, so the runtime fills it: "
                   "write len (or len(%s)) after the buffer or string it "
                   "measures", i + 1, t->name, what, t->name);
  }
  return 0;
}

static int parse_sig(struct lc_ffi_fn *fn, const char *sig, char *err,
                     size_t errlen) {
  struct lexer lx = {sig, sig, err, errlen};
  int rc = read_type(&lx, &fn->ret, "the return type");
  if (rc) return rc;
  if (fn->ret.k == K_BUFFER || fn->ret.k == K_LEN)
    return lfail(&lx, "%s is an argument type, not a return type",
                 fn->ret.k == K_LEN ? "len" : "buffer[N]");
  skip_ws(&lx);
  if (*lx.p != '(')
    return lfail(&lx, "expected '(' after the return type, as in \"double(double)\"");
  lx.p++;
  skip_ws(&lx);
  if (*lx.p != ')') {
    for (;;) {
      char where[32];
      snprintf(where, sizeof where, "argument %d", fn->nargs + 1);
      if (fn->nargs == LC_FFI_MAX_ARGS)
        return lfail(&lx, "too many arguments (at most %d)", LC_FFI_MAX_ARGS);
      struct ptype *t = &fn->args[fn->nargs];
      if ((rc = read_type(&lx, t, where))) return rc;
      if (t->k == K_VOID)
        return lfail(&lx, "%s: void is only a return type (write \"()\" for "
                     "no arguments)", where);
      if (t->k == K_STRING_OWNED)
        return lfail(&lx, "%s: string_owned is only a return type; use string",
                     where);
      if (t->k == K_LEN && (rc = bind_len(&lx, fn, t, where))) return rc;
      fn->nargs++;
      if (t->k == K_BUFFER) fn->nbuf++;
      if (t->k == K_LEN) fn->nlen++;
      skip_ws(&lx);
      if (*lx.p == ',') {
        lx.p++;
        continue;
      }
      if (*lx.p == ')') break;
      if (!*lx.p) return lfail(&lx, "missing ')'");
      return lfail(&lx, "expected ',' or ')' after %s, found '%c'", where, *lx.p);
    }
  }
  lx.p++;
  skip_ws(&lx);
  if (*lx.p) return lfail(&lx, "unexpected text after ')': \"%.20s\"", lx.p);
  fn->npassed = fn->nargs - fn->nbuf - fn->nlen;
  return check_exposed(&lx, fn);
}

static char *make_desc(const struct lc_ffi_fn *fn) {
  struct lc_buf b;
  lc_buf_init(&b, 0);
  lc_buf_printf(&b, "%s %s(", fn->ret.name, fn->symbol);
  for (int i = 0; i < fn->nargs; i++) {
    if (i) lc_buf_puts(&b, ", ");
    if (fn->args[i].k == K_BUFFER) lc_buf_printf(&b, "buffer[%zu]", fn->args[i].bufsize);
    else if (fn->args[i].k == K_LEN && fn->args[i].lenname)
      lc_buf_printf(&b, "len(%s)", fn->args[i].lenname);
    else lc_buf_puts(&b, fn->args[i].name);
  }
  lc_buf_puts(&b, ")");
  return lc_buf_steal(&b, NULL);
}

void lc_ffi_free(struct lc_ffi_fn *fn) {
  if (!fn) return;
  if (fn->lib) dlclose(fn->lib);
  lc_free(fn->symbol);
  lc_free(fn->desc);
  lc_free(fn);
}

int lc_ffi_open(const char *lib, const char *symbol, const char *signature,
                struct lc_ffi_fn **out, char *err, size_t errlen) {
  *out = NULL;
  if (errlen) err[0] = '\0';
  if (!lib || !*lib || !symbol || !*symbol || !signature) {
    snprintf(err, errlen, "native function needs a library, a symbol and a signature");
    return LC_EINVAL;
  }
  struct lc_ffi_fn *fn = lc_calloc(1, sizeof *fn);
  if (!fn) goto nomem;
  /* The signature first: a typo is reported even when the library is
   * missing, and no library is loaded for a declaration that cannot work. */
  int rc = parse_sig(fn, signature, err, errlen);
  if (rc) {
    lc_ffi_free(fn);
    return rc;
  }
  if (!(fn->symbol = lc_strdup(symbol))) goto nomem;
  pthread_once(&lib_once, lib_load);
  if (!lib_loaded) {
    snprintf(err, errlen, "native functions need libffi: %s", lib_err);
    lc_ffi_free(fn);
    return LC_ENOTFOUND;
  }
  dlerror();
  fn->lib = dlopen(lib, RTLD_NOW | RTLD_LOCAL);
  if (!fn->lib) {
    const char *e = dlerror();
    snprintf(err, errlen, "cannot load library \"%.200s\": %s", lib,
             e ? e : "unknown error");
    lc_ffi_free(fn);
    return LC_ENOTFOUND;
  }
  dlerror();
  fn->sym = dlsym(fn->lib, symbol);
  const char *e = dlerror();
  if (e || !fn->sym) {
    snprintf(err, errlen, "no symbol \"%.100s\" in \"%.200s\": %s", symbol, lib,
             e ? e : "symbol is NULL");
    lc_ffi_free(fn);
    return LC_ENOTFOUND;
  }
  for (int i = 0; i < fn->nargs; i++)
    fn->atypes[i] = ffi_type_of(fn->args[i].k == K_LEN ? fn->args[i].lenk
                                                        : fn->args[i].k);
  if (ffi_lib.prep_cif(&fn->cif, FFI_DEFAULT_ABI, (unsigned)fn->nargs,
                   ffi_type_of(fn->ret.k), fn->atypes) != FFI_OK) {
    snprintf(err, errlen, "%s: libffi cannot prepare this signature", symbol);
    lc_ffi_free(fn);
    return LC_EINVAL;
  }
  if (!(fn->desc = make_desc(fn))) goto nomem;
  *out = fn;
  return 0;
nomem:
  lc_ffi_free(fn);
  snprintf(err, errlen, "out of memory declaring native function");
  return LC_ENOMEM;
}

const char *lc_ffi_describe(const struct lc_ffi_fn *fn) { return fn->desc; }
int lc_ffi_arity(const struct lc_ffi_fn *fn) { return fn->npassed; }
int lc_ffi_nbuffers(const struct lc_ffi_fn *fn) { return fn->nbuf; }
int lc_ffi_returns_void(const struct lc_ffi_fn *fn) { return fn->ret.k == K_VOID; }
int lc_ffi_returns_integer(const struct lc_ffi_fn *fn) {
  return is_int_kind(fn->ret.k);
}

/* ---- calls -------------------------------------------------------------- */

union val {
  bool b;
  int8_t i8;
  int16_t i16;
  int32_t i32;
  int64_t i64;
  uint8_t u8;
  uint16_t u16;
  uint32_t u32;
  uint64_t u64;
  float f;
  double d;
  const char *s;
  char *buf;
};

struct callctx {
  const struct lc_ffi_fn *fn;
  char *err;
  size_t errlen;
};

static int afail(struct callctx *c, int argno, const struct ptype *t,
                 const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static int afail(struct callctx *c, int argno, const struct ptype *t,
                 const char *fmt, ...) {
  char tmp[256];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(tmp, sizeof tmp, fmt, ap);
  va_end(ap);
  snprintf(c->err, c->errlen, "%s: argument %d (%s): %s", c->fn->symbol, argno,
           t->name, tmp);
  return LC_EINVAL;
}

static void describe_json(const cJSON *v, char *out, size_t n) {
  if (cJSON_IsNull(v)) snprintf(out, n, "null");
  else if (cJSON_IsBool(v)) snprintf(out, n, "boolean %s", cJSON_IsTrue(v) ? "true" : "false");
  else if (cJSON_IsNumber(v)) snprintf(out, n, "number %.17g", v->valuedouble);
  else if (cJSON_IsString(v)) snprintf(out, n, "string \"%.40s%s\"", v->valuestring,
                                       strlen(v->valuestring) > 40 ? "..." : "");
  else if (cJSON_IsArray(v)) snprintf(out, n, "array");
  else if (cJSON_IsObject(v)) snprintf(out, n, "object");
  else snprintf(out, n, "invalid value");
}

/* Strict decimal: optional '-', digits only, no spaces or '+'. */
static int parse_decimal(const char *s, int *neg, uint64_t *mag) {
  *neg = 0;
  if (*s == '-') *neg = 1, s++;
  if (!*s) return -1;
  uint64_t m = 0;
  for (; *s; s++) {
    if (*s < '0' || *s > '9') return -1;
    unsigned d = (unsigned)(*s - '0');
    if (m > (UINT64_MAX - d) / 10) return -2;
    m = m * 10 + d;
  }
  *mag = m;
  return 0;
}

static int convert_int(struct callctx *c, int argno, const struct ptype *t,
                       const cJSON *v, union val *out) {
  int64_t lo;
  uint64_t hi;
  int_range(t->k, &lo, &hi);
  int wide = t->k == K_I64 || t->k == K_U64;
  int neg = 0;
  uint64_t mag = 0;
  char got[96];
  if (cJSON_IsNumber(v)) {
    double d = v->valuedouble;
    if (!isfinite(d) || d != floor(d)) {
      describe_json(v, got, sizeof got);
      return afail(c, argno, t, "expected an integer, got %s", got);
    }
    /* 2^53 itself is where doubles stop being exact: a parsed 2^53 + 1
     * reads as 2^53, so it is as ambiguous as anything above. */
    if (fabs(d) >= MAX_EXACT) {
      if (wide)
        return afail(c, argno, t, "%.17g is too large to be exact in JSON; "
                     "pass it as a decimal string", d);
      return afail(c, argno, t, "%.17g is out of range (%" PRId64 "..%" PRIu64 ")",
                   d, lo, hi);
    }
    neg = d < 0;
    mag = (uint64_t)fabs(d);
  } else if (cJSON_IsString(v) && wide) {
    int r = parse_decimal(v->valuestring, &neg, &mag);
    if (r == -1)
      return afail(c, argno, t, "string \"%.40s\" is not a decimal integer",
                   v->valuestring);
    if (r == -2)
      return afail(c, argno, t, "%.40s is out of range (%" PRId64 "..%" PRIu64 ")",
                   v->valuestring, lo, hi);
  } else {
    describe_json(v, got, sizeof got);
    return afail(c, argno, t, "expected an integer%s, got %s",
                 wide ? " (or a decimal string)" : "", got);
  }
  /* Range check on sign + magnitude, so INT64_MIN and UINT64_MAX are exact. */
  int ok = neg ? (mag == 0 || (lo < 0 && mag <= (uint64_t)INT64_MAX + 1 &&
                               (lo == INT64_MIN || mag <= (uint64_t)(-lo))))
               : mag <= hi;
  if (!ok)
    return afail(c, argno, t, "%s%" PRIu64 " is out of range (%" PRId64 "..%" PRIu64 ")",
                 neg ? "-" : "", mag, lo, hi);
  int64_t sv = neg ? (mag == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)mag)
                   : (int64_t)mag;
  switch (t->k) {
    case K_I8: out->i8 = (int8_t)sv; break;
    case K_I16: out->i16 = (int16_t)sv; break;
    case K_I32: out->i32 = (int32_t)sv; break;
    case K_I64: out->i64 = sv; break;
    case K_U8: out->u8 = (uint8_t)mag; break;
    case K_U16: out->u16 = (uint16_t)mag; break;
    case K_U32: out->u32 = (uint32_t)mag; break;
    default: out->u64 = mag; break;
  }
  return 0;
}

static int convert_arg(struct callctx *c, int argno, const struct ptype *t,
                       const cJSON *v, union val *out) {
  char got[96];
  switch (t->k) {
    case K_BOOL:
      if (!cJSON_IsBool(v)) break;
      out->b = cJSON_IsTrue(v);
      return 0;
    case K_FLOAT:
    case K_DOUBLE: {
      if (!cJSON_IsNumber(v)) break;
      double d = v->valuedouble;
      if (!isfinite(d)) return afail(c, argno, t, "must be a finite number");
      if (t->k == K_FLOAT) {
        if (fabs(d) > FLT_MAX)
          return afail(c, argno, t, "%.17g is out of range for float", d);
        out->f = (float)d;
      } else {
        out->d = d;
      }
      return 0;
    }
    case K_STRING:
      if (!cJSON_IsString(v) || !v->valuestring) break;
      out->s = v->valuestring;
      return 0;
    default:
      return convert_int(c, argno, t, v, out);
  }
  describe_json(v, got, sizeof got);
  const char *want = t->k == K_BOOL ? "true or false"
                     : t->k == K_STRING ? "a string" : "a number";
  return afail(c, argno, t, "expected %s, got %s", want, got);
}

/* The value of len parameter i: the size of the buffer, or the byte
 * length of the string, it measures (already converted: it comes first). */
static int fill_len(struct callctx *c, int i, union val *vals) {
  const struct ptype *t = &c->fn->args[i], *of = &c->fn->args[t->of];
  uint64_t n = of->k == K_BUFFER ? of->bufsize : strlen(vals[t->of].s);
  int64_t lo;
  uint64_t hi;
  int_range(t->lenk, &lo, &hi);
  if (n > hi) {
    snprintf(c->err, c->errlen, "%s: argument %d (string) is %" PRIu64
             " bytes, more than len(%s) at parameter %d can hold",
             c->fn->symbol, t->of + 1, n, t->lenname ? t->lenname : "size_t",
             i + 1);
    return LC_EINVAL;
  }
  switch (t->lenk) {
    case K_I8: vals[i].i8 = (int8_t)n; break;
    case K_I16: vals[i].i16 = (int16_t)n; break;
    case K_I32: vals[i].i32 = (int32_t)n; break;
    case K_I64: vals[i].i64 = (int64_t)n; break;
    case K_U8: vals[i].u8 = (uint8_t)n; break;
    case K_U16: vals[i].u16 = (uint16_t)n; break;
    case K_U32: vals[i].u32 = (uint32_t)n; break;
    default: vals[i].u64 = n; break;
  }
  return 0;
}

/* Copies a returned C string into JSON; NULL -> null. */
static int text_to_json(struct callctx *c, const char *s, size_t n,
                        const char *what, cJSON **out) {
  if (!s) {
    *out = cJSON_CreateNull();
    return *out ? 0 : LC_ENOMEM;
  }
  size_t bad;
  if (!lc_utf8_valid(s, n, &bad)) {
    snprintf(c->err, c->errlen, "%s: %s is not valid UTF-8 (byte %zu)",
             c->fn->symbol, what, bad);
    return LC_EIO;
  }
  /* cJSON_CreateString needs a terminated copy when n stops short of it. */
  char *tmp = lc_strndup(s, n);
  if (!tmp) return LC_ENOMEM;
  *out = cJSON_CreateString(tmp);
  lc_free(tmp);
  return *out ? 0 : LC_ENOMEM;
}

/* Integers at or above 10^15 come back as decimal strings: past 2^53 a
 * double rounds, and cJSON prints only 15 significant digits before that. */
#define MAX_PRINTED 1000000000000000ull

static cJSON *int_to_json(int neg, uint64_t mag) {
  if (mag < MAX_PRINTED)
    return cJSON_CreateNumber(neg ? -(double)mag : (double)mag);
  char tmp[32];
  snprintf(tmp, sizeof tmp, "%s%" PRIu64, neg ? "-" : "", mag);
  return cJSON_CreateString(tmp);
}

union retval {
  ffi_arg a;
  ffi_sarg s;
  int64_t i64;
  uint64_t u64;
  float f;
  double d;
  char *p;
};

static int ret_to_json(struct callctx *c, const struct ptype *t,
                       union retval *r, cJSON **out) {
  int64_t sv = 0;
  switch (t->k) {
    case K_VOID: *out = cJSON_CreateNull(); break;
    /* libffi widens small integer returns to ffi_arg: narrow them back. */
    case K_BOOL: *out = cJSON_CreateBool((uint8_t)r->a != 0); break;
    case K_I8: sv = (int8_t)r->s; goto sint;
    case K_I16: sv = (int16_t)r->s; goto sint;
    case K_I32: sv = (int32_t)r->s; goto sint;
    case K_I64: sv = r->i64; goto sint;
    case K_U8: *out = int_to_json(0, (uint8_t)r->a); break;
    case K_U16: *out = int_to_json(0, (uint16_t)r->a); break;
    case K_U32: *out = int_to_json(0, (uint32_t)r->a); break;
    case K_U64: *out = int_to_json(0, r->u64); break;
    case K_FLOAT:
    case K_DOUBLE: {
      double d = t->k == K_FLOAT ? (double)r->f : r->d;
      if (!isfinite(d)) {
        /* JSON has no NaN or infinity; say so rather than invent a value. */
        snprintf(c->err, c->errlen, "%s: returned %s, which JSON cannot hold",
                 c->fn->symbol, isnan(d) ? "NaN" : d > 0 ? "infinity" : "-infinity");
        return LC_EIO;
      }
      *out = cJSON_CreateNumber(d);
      break;
    }
    case K_STRING:
    case K_STRING_OWNED: {
      int rc = text_to_json(c, r->p, r->p ? strlen(r->p) : 0, "returned string", out);
      /* Free whatever the outcome: the declaration says we own it. */
      if (t->k == K_STRING_OWNED) free(r->p);
      return rc;
    }
    default: return LC_EINVAL;
  }
  return *out ? 0 : LC_ENOMEM;
sint:
  *out = sv < 0 ? int_to_json(1, (uint64_t)0 - (uint64_t)sv) : int_to_json(0, (uint64_t)sv);
  return *out ? 0 : LC_ENOMEM;
}

static void put_arg_list(struct lc_buf *b, const struct lc_ffi_fn *fn) {
  int first = 1;
  for (int i = 0; i < fn->nargs; i++) {
    if (fn->args[i].k == K_BUFFER || fn->args[i].k == K_LEN) continue;
    lc_buf_printf(b, "%s%s", first ? "" : ", ", fn->args[i].name);
    first = 0;
  }
}

int lc_ffi_call(struct lc_ffi_fn *fn, const cJSON *args, cJSON **result,
                char *err, size_t errlen) {
  *result = NULL;
  if (errlen) err[0] = '\0';
  struct callctx c = {fn, err, errlen};
  if (cJSON_IsNull(args)) args = NULL; /* null = no arguments */
  if (args && !cJSON_IsArray(args)) {
    snprintf(err, errlen, "%s: arguments must be a JSON array", fn->symbol);
    return LC_EINVAL;
  }
  int given = args ? cJSON_GetArraySize(args) : 0;
  if (given != fn->npassed) {
    struct lc_buf b;
    lc_buf_init(&b, 0);
    put_arg_list(&b, fn);
    snprintf(err, errlen, "%s: expects %d argument%s (%s)%s, got %d", fn->symbol,
             fn->npassed, fn->npassed == 1 ? "" : "s", b.data ? b.data : "",
             fn->nbuf || fn->nlen ? "; buffer and len parameters are filled by "
                                    "the call and not passed"
                                  : "",
             given);
    lc_buf_free(&b);
    return LC_EINVAL;
  }
  union val vals[LC_FFI_MAX_ARGS];
  void *avalues[LC_FFI_MAX_ARGS];
  char *bufs[LC_FFI_MAX_ARGS] = {0};
  int rc = 0;
  const cJSON *a = args ? args->child : NULL;
  int argno = 0;
  for (int i = 0; i < fn->nargs; i++) {
    avalues[i] = &vals[i];
    if (fn->args[i].k == K_BUFFER) {
      if (!(bufs[i] = lc_calloc(1, fn->args[i].bufsize))) {
        rc = LC_ENOMEM;
        snprintf(err, errlen, "%s: out of memory for buffer", fn->symbol);
        goto done;
      }
      vals[i].buf = bufs[i];
      continue;
    }
    if (fn->args[i].k == K_LEN) {
      if ((rc = fill_len(&c, i, vals))) goto done;
      continue;
    }
    argno++;
    if ((rc = convert_arg(&c, argno, &fn->args[i], a, &vals[i]))) goto done;
    a = a->next;
  }
  union retval r;
  memset(&r, 0, sizeof r);
  ffi_lib.call(&fn->cif, FFI_FN(fn->sym), &r, avalues);

  cJSON *ret = NULL;
  if ((rc = ret_to_json(&c, &fn->ret, &r, &ret))) goto done;
  if (!fn->nbuf) {
    *result = ret;
    goto done;
  }
  cJSON *obj = cJSON_CreateObject(), *list = cJSON_CreateArray();
  if (!obj || !list) {
    cJSON_Delete(obj);
    cJSON_Delete(list);
    cJSON_Delete(ret);
    rc = LC_ENOMEM;
    goto done;
  }
  cJSON_AddItemToObject(obj, "return", ret);
  cJSON_AddItemToObject(obj, "buffers", list);
  for (int i = 0, k = 0; i < fn->nargs; i++) {
    if (fn->args[i].k != K_BUFFER) continue;
    char what[48];
    snprintf(what, sizeof what, "buffer %d (parameter %d)", ++k, i + 1);
    cJSON *s = NULL;
    if ((rc = text_to_json(&c, bufs[i], strnlen(bufs[i], fn->args[i].bufsize),
                           what, &s))) {
      cJSON_Delete(obj);
      goto done;
    }
    cJSON_AddItemToArray(list, s);
  }
  *result = obj;
done:
  if (rc == LC_ENOMEM && !err[0])
    snprintf(err, errlen, "%s: out of memory", fn->symbol);
  for (int i = 0; i < fn->nargs; i++) lc_free(bufs[i]);
  return rc;
}

cJSON *lc_ffi_args_schema(const struct lc_ffi_fn *fn) {
  cJSON *s = cJSON_CreateObject();
  cJSON *pre = s ? cJSON_AddArrayToObject(s, "prefixItems") : NULL;
  if (!pre) goto fail;
  cJSON_AddStringToObject(s, "type", "array");
  for (int i = 0; i < fn->nargs; i++) {
    const struct ptype *t = &fn->args[i];
    if (t->k == K_BUFFER || t->k == K_LEN) continue;
    cJSON *a = cJSON_CreateObject();
    if (!a) goto fail;
    cJSON_AddItemToArray(pre, a);
    if (t->k == K_BOOL) cJSON_AddStringToObject(a, "type", "boolean");
    else if (t->k == K_STRING) cJSON_AddStringToObject(a, "type", "string");
    else if (t->k == K_FLOAT || t->k == K_DOUBLE) cJSON_AddStringToObject(a, "type", "number");
    else if (t->k == K_I64 || t->k == K_U64) {
      /* Full range needs decimal strings; see the header. */
      /* A JSON number is a double after parsing: 2^53 + 1 arrives as 2^53
       * and would be called silently as its neighbour. So numbers stop
       * below 2^53 (exact), and larger values are decimal strings. */
      cJSON *any = cJSON_Parse(t->k == K_I64
          ? "[{\"type\":\"integer\",\"minimum\":-9007199254740991,"
            "\"maximum\":9007199254740991},"
            "{\"type\":\"string\",\"pattern\":\"^-?[0-9]+$\"}]"
          : "[{\"type\":\"integer\",\"minimum\":0,\"maximum\":9007199254740991},"
            "{\"type\":\"string\",\"pattern\":\"^[0-9]+$\"}]");
      if (!any) goto fail;
      cJSON_AddItemToObject(a, "anyOf", any);
    } else {
      int64_t lo;
      uint64_t hi;
      int_range(t->k, &lo, &hi);
      cJSON_AddStringToObject(a, "type", "integer");
      cJSON_AddNumberToObject(a, "minimum", (double)lo);
      cJSON_AddNumberToObject(a, "maximum", (double)hi);
    }
    cJSON_AddStringToObject(a, "description", t->name);
  }
  cJSON_AddNumberToObject(s, "minItems", fn->npassed);
  cJSON_AddNumberToObject(s, "maxItems", fn->npassed);
  if (!cJSON_AddFalseToObject(s, "items")) goto fail;
  return s;
fail:
  cJSON_Delete(s);
  return NULL;
}
