/* ffi_fn.h: calling C functions in shared libraries through libffi, with every
 * argument checked against a declared signature first.
 *
 * Signature grammar (whitespace anywhere between tokens):
 *   sig  := ret "(" [arg {"," arg}] ")"        at most LC_FFI_MAX_ARGS args
 *   ret  := "void" | scalar | "string" | "string_owned"
 *   arg  := scalar | "string" | "buffer[" N "]" | "len" [ "(" T ")" ]
 *   scalar := bool | char | int8 | int16 | int32 | int | int64 | long
 *           | uint8 | uint16 | uint32 | uint64 | size_t | float | double
 * char is int8 (a small integer, not a character). "()" means no arguments;
 * void is a return type only.
 *
 * Values (JSON, as a model or a script sends them):
 *   bool         true/false only.
 *   integers     integral JSON numbers inside the C type's range. For the
 *                64-bit types (int64, long, uint64, size_t) a number of
 *                magnitude 2^53 or more cannot be exact in JSON (2^53 + 1
 *                parses as 2^53) and is refused, by the args schema too;
 *                pass a decimal string ("9223372036854775807"). Integer
 *                results of 10^15 or more in magnitude come back as decimal
 *                strings: past 2^53 a double rounds, and cJSON prints only
 *                15 significant digits.
 *   float/double finite numbers (float: within FLT_MAX).
 *   string       a JSON string, passed as const char * (the callee must not
 *                keep it past the call). As a return: the NUL-terminated
 *                text is copied out (NULL -> null); the callee's memory is
 *                left alone, or free()d for string_owned.
 *   buffer[N]    an output buffer: N zeroed bytes (1..LC_FFI_MAX_BUFFER)
 *                passed as char *. It is NOT in the caller's argument list;
 *                after the call its text up to the first NUL (or N bytes) is
 *                returned.
 *   len, len(T)  the size of the buffer[N], or the byte length of the
 *                string, nearest before it, filled in by the call (size_t,
 *                or the integer type T). NOT in the caller's argument list.
 *                A size that describes memory is the runtime's to give:
 *                the declaration is refused when a caller-passed integer
 *                sits where C puts such a size (any integer after the first
 *                buffer, a size_t/uint64 anywhere in a signature with a
 *                buffer, or right after a string), since a model choosing
 *                it chooses how far the callee writes or reads. So
 *                "void(buffer[16], size_t)" is refused and
 *                "void(buffer[16], len)" passes 16.
 *   ptr          refused: a raw address cannot be checked.
 * Strings coming back (returns and buffers) must be valid UTF-8.
 *
 * Result: the return value as JSON (null for void), or, when the signature
 * has buffers, an object {"return": r, "buffers": ["...", ...]} with the
 * buffers in declaration order.
 *
 * Errors: lc_ffi_open returns LC_ENOTFOUND (library or symbol; dlerror's text
 * included), LC_EINVAL (bad signature) or LC_ENOMEM. lc_ffi_call returns
 * LC_EINVAL when an argument is rejected (nothing was called), LC_EIO when
 * the function ran but its result could not be returned (invalid UTF-8), or
 * LC_ENOMEM. Messages go into the caller's err buffer and start with the
 * symbol name.
 *
 * Ownership: struct lc_ffi_fn owns the dlopen handle and is freed (and the
 * library dlclose'd) by lc_ffi_free. Calls do not keep the argument tree;
 * the result is a new tree for the caller. A native function that crashes
 * takes the process with it: declaring one is a trust decision. */
#ifndef LC_FFI_FN_H
#define LC_FFI_FN_H

#include <cjson/cJSON.h>
#include <stddef.h>

#define LC_FFI_MAX_ARGS 16
#define LC_FFI_MAX_BUFFER (1 << 20)

struct lc_ffi_fn;

/* lib: a soname such as "libm.so.6" or a path (dlopen with RTLD_NOW |
 * RTLD_LOCAL). Returns 0 and *out, or a negative LC_E* and err. */
int lc_ffi_open(const char *lib, const char *symbol, const char *signature,
                struct lc_ffi_fn **out, char *err, size_t errlen);
/* args: a JSON array (NULL or JSON null = no arguments). On success *result is a new tree
 * (cJSON_Delete it). */
int lc_ffi_call(struct lc_ffi_fn *fn, const cJSON *args, cJSON **result,
                char *err, size_t errlen);
/* "double pow(double, double)"; owned by fn. */
const char *lc_ffi_describe(const struct lc_ffi_fn *fn);
/* Number of arguments a caller passes (buffers and lens excluded). */
int lc_ffi_arity(const struct lc_ffi_fn *fn);
/* Number of buffer[N] parameters (non-zero: results are objects). */
int lc_ffi_nbuffers(const struct lc_ffi_fn *fn);
/* 1 if the return type is an integer type (results may be decimal strings). */
int lc_ffi_returns_integer(const struct lc_ffi_fn *fn);
/* 1 if the function returns void (its result is always null). */
int lc_ffi_returns_void(const struct lc_ffi_fn *fn);
/* A JSON Schema (for schema.h) of the argument array: a tuple with one
 * schema per passed argument, integer ranges included. New tree, NULL on
 * allocation failure. */
cJSON *lc_ffi_args_schema(const struct lc_ffi_fn *fn);
/* Releases fn and dlclose's its library; NULL is fine. */
void lc_ffi_free(struct lc_ffi_fn *fn);

#endif
