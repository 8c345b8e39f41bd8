/* sandbox.c: fresh, capped lua_State per PAL run (memory, instructions,
 * wall clock, print output), allowlisted globals, JSON in and out. */
#include "sandbox.h"

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/wait.h>
#include <signal.h>
#include <poll.h>
#include <fcntl.h>
#include <errno.h>
#include <sys/stat.h>
#include <pthread.h>
#include <seccomp.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>

#include "buf.h"
#include "child.h"
#include "conv.h"
#include "lc.h"
#include "loop.h"
#include "seccomp_dl.h"

enum stop { STOP_NONE, STOP_MEMORY, STOP_INSTR, STOP_TIME, STOP_OUTPUT,
            STOP_CLOSING, STOP_N };

/* Registry keys of the preallocated stop messages: raising a stop must not
 * allocate, because the stop may be the memory cap itself. */
static char stop_keys[STOP_N];
static char box_mt_key;

#define ERR_MAX 4096 /* longest error message copied out of the sandbox */

/* Stack the converter needs at its depth limit (luaL_checkstack(L, 6) per
 * level plus a lua_next pair); reserved up front so it never has to grow the
 * stack, and so never raises, while it holds cJSON trees. */
#define CONV_STACK (8 * (LC_CONV_MAX_DEPTH + 4))

struct run {
  struct lc_sandbox_opts o; /* with defaults filled in */
  lua_State *L;
  size_t used, peak;
  int refused;      /* the previous growth request was refused */
  long refusals;
  long allocs;      /* growth requests, for fail_alloc_after */
  long instr;
  int step;
  double deadline;
  enum stop stop;
  struct lc_buf out;
  const cJSON *input;
};

static struct run *run_of(lua_State *L) {
  void *ud;
  lua_getallocf(L, &ud);
  return ud;
}

/* lua_Alloc for the sandbox state; called by Lua for every allocation.
 * Refuses growth past the cap (never a shrink or a free, which Lua assumes
 * cannot fail). Lua answers a refusal with an emergency collection and one
 * retry; a second refusal in a row means the live data really is over the
 * cap, and that is the sticky memory stop. */
static void *sb_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  struct run *r = ud;
  size_t old = ptr ? osize : 0;
  if (nsize == 0) {
    free(ptr);
    r->used -= old;
    return NULL;
  }
  if (nsize > old) {
    size_t base = r->used - old;
    int refuse = nsize > r->o.mem_limit || base > r->o.mem_limit - nsize;
    if (!refuse && r->o.fail_alloc_after > 0 &&
        ++r->allocs >= r->o.fail_alloc_after)
      refuse = 1;
    if (refuse) {
      /* Sticky when it can never fit, or when Lua's retry after its
       * emergency collection is refused too. (luaL_Buffer growth does not
       * retry and raises a plain "not enough memory" error.) */
      if ((r->refused || nsize > r->o.mem_limit) && !r->stop)
        r->stop = STOP_MEMORY;
      r->refusals++;
      r->refused = 1;
      return NULL;
    }
    r->refused = 0;
  }
  void *p = realloc(ptr, nsize);
  if (!p) {
    if (nsize <= old) return ptr; /* keep the bigger block */
    return NULL;
  }
  r->used = r->used - old + nsize;
  if (r->used > r->peak) r->peak = r->used;
  return p;
}

static void hook(lua_State *L, lua_Debug *ar);

/* [-0, +1, v] Raises the preallocated message of r->stop after re-arming
 * this thread's hook on every instruction, so that a pcall that catches the
 * error gets stopped again at its next instruction. */
static int raise_stop(lua_State *L, struct run *r) {
  lua_sethook(L, hook, LUA_MASKCOUNT | LUA_MASKLINE, 1);
  lua_rawgetp(L, LUA_REGISTRYINDEX, &stop_keys[r->stop]);
  return lua_error(L);
}

static void check_limits(struct run *r) {
  if (r->stop) return;
  if (r->instr > r->o.instr_limit) r->stop = STOP_INSTR;
  else if (lc_now_ms() > r->deadline) r->stop = STOP_TIME;
}

/* Debug hook of every sandbox thread (lua_newthread copies it); called by
 * the VM every r->step instructions, and on every instruction and line once
 * a stop has tripped. */
static void hook(lua_State *L, lua_Debug *ar) {
  struct run *r = run_of(L);
  if (ar->event == LUA_HOOKCOUNT && !r->stop) r->instr += r->step;
  check_limits(r);
  if (r->stop) raise_stop(L, r);
}

/* [-0, +0, v] Charges n instructions and raises if a limit is now hit. */
static void charge(lua_State *L, struct run *r, long n) {
  r->instr += n;
  check_limits(r);
  if (r->stop) raise_stop(L, r);
}

/* Calls upvalue 1 (the wrapped original) with all arguments; returns all
 * its results. Used by the wrappers below after their own checks. */
static int call_orig(lua_State *L) {
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);
  lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);
  return lua_gettop(L);
}

/* ---- the sandbox's replacements for library functions ---- */

static void emit(lua_State *L, struct run *r, const char *s, size_t n) {
  int rc = lc_buf_append(&r->out, s, n);
  if (rc == LC_ETOOBIG) {
    r->stop = STOP_OUTPUT;
    raise_stop(L, r);
  }
  if (rc) luaL_error(L, "host out of memory for print output");
}

/* print: like the base library's, into the bounded buffer. Over the cap is
 * a stop, not a silent truncation. */
static int l_print(lua_State *L) {
  struct run *r = run_of(L);
  if (r->stop) return raise_stop(L, r);
  int n = lua_gettop(L);
  for (int i = 1; i <= n; i++) {
    size_t len;
    const char *s = luaL_tolstring(L, i, &len); /* may run __tostring */
    if (i > 1) emit(L, r, "\t", 1);
    emit(L, r, s, len);
    lua_pop(L, 1);
  }
  emit(L, r, "\n", 1);
  return 0;
}

/* load(chunk [, chunkname]): the mode and env arguments are ignored and
 * forced to "t" and the sandbox globals, because crafted bytecode can crash
 * the VM and a custom env could be used to dodge the global allowlist. */
static int l_load(lua_State *L) {
  lua_settop(L, 2);
  lua_pushliteral(L, "t");
  lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_GLOBALS);
  return call_orig(L);
}

/* setmetatable refusing __gc: finalizers run with hooks disabled (lgc.c
 * GCTM), so one that loops could never be stopped. Lua marks an object for
 * finalization only when its metatable has __gc at setmetatable time, so a
 * field added later is ignored and this check is enough. */
static int l_setmetatable(lua_State *L) {
  lua_settop(L, 2);
  luaL_checktype(L, 1, LUA_TTABLE); /* here, so messages name us */
  luaL_argexpected(L, lua_isnil(L, 2) || lua_istable(L, 2), 2, "nil or table");
  if (lua_type(L, 2) == LUA_TTABLE) {
    lua_pushliteral(L, "__gc");
    if (lua_rawget(L, 2) != LUA_TNIL)
      return luaL_error(L, "__gc metamethods are not allowed in the sandbox");
    lua_pop(L, 1);
  }
  return call_orig(L);
}

/* rawset would bypass the global table's __newindex. */
static int l_rawset(lua_State *L) {
  lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_GLOBALS);
  if (lua_rawequal(L, 1, -1))
    return luaL_error(L, "rawset on the global table is not allowed");
  lua_pop(L, 1);
  return call_orig(L);
}

/* coroutine.create: a thread that ends between two count-hook calls
 * leaves up to one step uncounted, so each new thread is charged a step. */
static int l_cocreate(lua_State *L) {
  struct run *r = run_of(L);
  charge(L, r, r->step);
  return call_orig(L);
}

/* Why the next three exist: a stop is raised from inside the hook, where
 * Lua has set L->allowhook = 0, and that flag comes back only when a pcall
 * on the same thread catches the error. Until then Lua code would run with
 * no hook at all, and two kinds can: the message handler of xpcall (called
 * before the unwinding), and the __close handlers of a coroutine that the
 * stop killed (run by coroutine.close, and by coroutine.wrap on error).
 * After a stop, these refuse to run sandbox code. */

/* Message handler installed by l_xpcall around the script's handler. */
static int l_xmsgh(lua_State *L) {
  if (run_of(L)->stop) return 1; /* pass the stop message on untouched */
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);
  lua_call(L, lua_gettop(L) - 1, 1);
  return 1;
}

/* Continuation of l_xpcall, and its tail: [f h true results...] on
 * success, [f h true err] on error. */
static int xpcall_done(lua_State *L, int status, lua_KContext base) {
  if (status != LUA_OK && status != LUA_YIELD) {
    lua_pushboolean(L, 0);
    lua_insert(L, -2); /* false err */
    return 2;
  }
  return lua_gettop(L) - (int)base;
}

/* xpcall(f, h, ...) with h wrapped by l_xmsgh; yieldable like the
 * original (lua_pcallk with a continuation). */
static int l_xpcall(lua_State *L) {
  int n = lua_gettop(L);
  luaL_checktype(L, 2, LUA_TFUNCTION);
  lua_pushvalue(L, 2);
  lua_pushcclosure(L, l_xmsgh, 1);
  lua_replace(L, 2);      /* f wh args... */
  lua_pushboolean(L, 1);
  lua_pushvalue(L, 1);
  lua_rotate(L, 3, 2);    /* f wh true f args... */
  int status = lua_pcallk(L, n - 2, LUA_MULTRET, 2, 2, xpcall_done);
  return xpcall_done(L, status, 2);
}

/* coroutine.close: refused after a stop (see above). */
static int l_coclose(lua_State *L) {
  struct run *r = run_of(L);
  if (r->stop) return raise_stop(L, r);
  return call_orig(L);
}

/* The function coroutine.wrap returns. Upvalues: the thread, the original
 * coroutine.resume and coroutine.close. Like lcorolib's auxwrap it closes
 * a coroutine that died by error and re-raises with a position, except
 * after a stop. */
static int l_wrapped(lua_State *L) {
  struct run *r = run_of(L);
  int n = lua_gettop(L);
  lua_pushvalue(L, lua_upvalueindex(2));
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_rotate(L, 1, 2);                  /* resume co args... */
  lua_call(L, n + 1, LUA_MULTRET);      /* ok results... | false err */
  if (lua_toboolean(L, 1)) return lua_gettop(L) - 1;
  if (r->stop) return raise_stop(L, r);
  lua_settop(L, 2);                     /* false err */
  lua_State *co = lua_tothread(L, lua_upvalueindex(1));
  int st = lua_status(co);
  if (st != LUA_OK && st != LUA_YIELD) {
    lua_pushvalue(L, lua_upvalueindex(3));
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_call(L, 1, 2);                  /* false err ok2 err2 */
    if (!lua_toboolean(L, 3)) lua_copy(L, 4, 2);
    lua_settop(L, 2);
  }
  if (lua_type(L, 2) == LUA_TSTRING) {
    luaL_where(L, 1);
    lua_insert(L, 2);
    lua_concat(L, 2);
  }
  return lua_error(L);
}

/* coroutine.wrap(f). Upvalues: the original resume and close. */
static int l_cowrap(lua_State *L) {
  struct run *r = run_of(L);
  luaL_checktype(L, 1, LUA_TFUNCTION);
  charge(L, r, r->step);
  lua_State *co = lua_newthread(L); /* copies this thread's hook */
  lua_pushvalue(L, 1);
  lua_xmove(L, co, 1);
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_pushvalue(L, lua_upvalueindex(2));
  lua_pushcclosure(L, l_wrapped, 3);
  return 1;
}

/* string.rep("", n) (and an empty separator) loops n times in C without
 * allocating, out of reach of both the hook and the memory cap. */
static int l_rep(lua_State *L) {
  size_t l, lsep = 0;
  luaL_checklstring(L, 1, &l);
  luaL_checkinteger(L, 2);
  luaL_optlstring(L, 3, "", &lsep);
  if (l == 0 && lsep == 0) {
    lua_pushliteral(L, "");
    return 1;
  }
  return call_orig(L);
}

/* Most elements a sandbox table can really hold: the C loops of table.move,
 * table.insert and table.remove run over index ranges that need not exist
 * (a border found by #t can be 2^61 with 62 keys, or __len can lie). */
static lua_Unsigned max_elems(struct run *r) {
  return (lua_Unsigned)(r->o.mem_limit / 16) + 1024;
}

static int l_tmove(lua_State *L) {
  struct run *r = run_of(L);
  lua_Integer f = luaL_checkinteger(L, 2), e = luaL_checkinteger(L, 3);
  if (e >= f && (lua_Unsigned)e - (lua_Unsigned)f >= max_elems(r))
    return luaL_error(L, "table.move: range too large for the sandbox");
  return call_orig(L);
}

/* len is #t for remove and #t + 1 for insert, in unsigned arithmetic so a
 * __len returning math.maxinteger cannot overflow. */
static void check_shift(lua_State *L, lua_Unsigned len, lua_Integer pos) {
  struct run *r = run_of(L);
  if (pos < 1) return; /* the original reports the bad position */
  if (len > (lua_Unsigned)pos && len - (lua_Unsigned)pos >= max_elems(r))
    luaL_error(L, "table too long for insert/remove in the sandbox");
}

/* table.insert(t, pos, v) and table.remove(t, pos) shift #t - pos
 * elements; bound that first. (#t may call __len; the original calls it
 * again.) */
static int l_tinsert(lua_State *L) {
  if (lua_gettop(L) == 3 && lua_type(L, 1) == LUA_TTABLE &&
      lua_isinteger(L, 2))
    check_shift(L, (lua_Unsigned)luaL_len(L, 1) + 1u, lua_tointeger(L, 2));
  return call_orig(L);
}

static int l_tremove(lua_State *L) {
  if (lua_gettop(L) >= 2 && lua_type(L, 1) == LUA_TTABLE &&
      lua_isinteger(L, 2))
    check_shift(L, (lua_Unsigned)luaL_len(L, 1), lua_tointeger(L, 2));
  return call_orig(L);
}

static const char *const forbidden[] = {
    "io", "os", "package", "debug", "require", "dofile", "loadfile",
    "collectgarbage", "loadstring", "setfenv", "getfenv", "module",
    "newproxy", "warn", "jit", "ffi", NULL};

static const char *key_text(lua_State *L, int idx, char *buf, size_t n) {
  if (lua_type(L, idx) == LUA_TSTRING) {
    snprintf(buf, n, "%.64s", lua_tostring(L, idx));
    return buf;
  }
  snprintf(buf, n, "(a %s key)", luaL_typename(L, idx));
  return buf;
}

/* __index of the global table: unknown names are errors, not nil. */
static int l_global_index(lua_State *L) {
  char k[80];
  key_text(L, 2, k, sizeof k);
  if (lua_type(L, 2) == LUA_TSTRING) {
    if (strcmp(k, "input") == 0) return 0; /* declared, may be nil */
    for (const char *const *f = forbidden; *f; f++)
      if (strcmp(k, *f) == 0)
        return luaL_error(L, "'%s' is not available in the sandbox", k);
  }
  return luaL_error(L, "undefined global '%s'", k);
}

static int l_global_newindex(lua_State *L) {
  char k[80];
  return luaL_error(L, "cannot create global '%s' (declare it local)",
                    key_text(L, 2, k, sizeof k));
}

/* ---- host functions ---- */

struct box {
  cJSON *args, *result;
};

/* __gc and __close of the box; called by Lua, idempotent. */
static int l_box_free(lua_State *L) {
  struct box *b = lua_touserdata(L, 1);
  if (b) {
    cJSON_Delete(b->args);
    cJSON_Delete(b->result);
    b->args = b->result = NULL;
  }
  return 0;
}

/* Walks v raw (no metamethods), charging an estimate of its JSON size
 * against *left. Without it a DAG that doubles at each level (t = {t, t},
 * 60 times) would make the converter's work exponential in few bytes.
 * Stops descending past the converter's depth limit, which then reports the
 * nesting. Returns 0, or -1 when over budget. [-0, +0, -] given CONV_STACK. */
static int measure(lua_State *L, int idx, int depth, size_t *left) {
  size_t cost = 8;
  int t = lua_type(L, idx);
  if (t == LUA_TSTRING) cost += lua_rawlen(L, idx);
  if (cost > *left) return -1;
  *left -= cost;
  if (t != LUA_TTABLE || depth > LC_CONV_MAX_DEPTH) return 0;
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    if (measure(L, lua_gettop(L) - 1, depth + 1, left) ||
        measure(L, lua_gettop(L), depth + 1, left)) {
      lua_pop(L, 2);
      return -1;
    }
    lua_pop(L, 1);
  }
  return 0;
}

/* [-0, +0, -] Converts the value at idx for the host without running any
 * sandbox code, charging *budget (shared by several values). Returns 0
 * and *out, or LC_ETOOBIG / LC_EINVAL / LC_ENOMEM
 * with a message in err. */
static int value_to_json(lua_State *L, int idx, size_t *budget, cJSON **out,
                         char *err, size_t errlen) {
  *out = NULL;
  idx = lua_absindex(L, idx);
  if (!lua_checkstack(L, CONV_STACK)) {
    snprintf(err, errlen, "not enough memory to convert the value");
    return LC_ENOMEM;
  }
  if (measure(L, idx, 0, budget)) {
    snprintf(err, errlen, "value too large (over the result limit)");
    return LC_ETOOBIG;
  }
  return lc_conv_to_json(L, idx, out, err, errlen);
}

static const char *rc_code(int rc) {
  switch (rc) {
    case LC_ETIMEOUT: return "timeout";
    case LC_EINVAL: return "invalid";
    case LC_ENOTFOUND: return "not_found";
    default: return "error";
  }
}

/* A host function as seen by the sandbox: f(table) -> value, or
 * nil, message, code when the callback fails. Raises on a bad argument. */
static int l_hostfn(lua_State *L) {
  const struct lc_sandbox_fn *f = lua_touserdata(L, lua_upvalueindex(1));
  struct run *r = run_of(L);
  if (r->stop) return raise_stop(L, r);
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  /* The box owns both trees from here, so a raise anywhere below (memory)
   * leaks nothing: the box's __gc frees them. */
  struct box *b = lua_newuserdatauv(L, sizeof *b, 0); /* t box */
  b->args = b->result = NULL;
  lua_rawgetp(L, LUA_REGISTRYINDEX, &box_mt_key);
  lua_setmetatable(L, -2);
  char err[512];
  size_t budget = r->o.result_limit;
  int rc = value_to_json(L, 1, &budget, &b->args, err, sizeof err);
  if (rc) return luaL_error(L, "%s: bad argument: %s", f->name, err);
  err[0] = '\0';
  rc = f->fn(f->ud, b->args, &b->result, err, sizeof err);
  cJSON_Delete(b->args);
  b->args = NULL;
  check_limits(r); /* the callback's time counts */
  if (r->stop) return raise_stop(L, r);
  if (rc < 0) {
    lua_pushnil(L);
    lua_pushstring(L, err[0] ? err : "host function failed");
    lua_pushstring(L, rc_code(rc));
    return 3;
  }
  lc_conv_push_json(L, b->result); /* t box value */
  cJSON_Delete(b->result);
  b->result = NULL;
  return 1;
}

/* ---- state setup ---- */

static void wrap(lua_State *L, int t, const char *name, lua_CFunction f) {
  lua_getfield(L, t, name);
  lua_pushcclosure(L, f, 1);
  lua_setfield(L, t, name);
}

static void drop(lua_State *L, int t, const char *name) {
  t = lua_absindex(L, t);
  lua_pushnil(L);
  lua_setfield(L, t, name);
}

/* Called by lua_pcall in lc_sandbox_run with the run as light userdata.
 * Builds the environment; any memory error is reported by the pcall. */
static int l_setup(lua_State *L) {
  struct run *r = lua_touserdata(L, 1);
  /* Our own library list (linit.c says to copy it): nothing else. */
  static const luaL_Reg libs[] = {
      {LUA_GNAME, luaopen_base},         {LUA_TABLIBNAME, luaopen_table},
      {LUA_STRLIBNAME, luaopen_string},  {LUA_MATHLIBNAME, luaopen_math},
      {LUA_UTF8LIBNAME, luaopen_utf8},   {LUA_COLIBNAME, luaopen_coroutine},
      {NULL, NULL}};
  for (const luaL_Reg *l = libs; l->func; l++) {
    luaL_requiref(L, l->name, l->func, 1);
    lua_pop(L, 1);
  }
  lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_GLOBALS);
  int g = lua_gettop(L);
  drop(L, g, "dofile");
  drop(L, g, "loadfile");
  drop(L, g, "collectgarbage");
  drop(L, g, "warn");
  wrap(L, g, "load", l_load);
  wrap(L, g, "setmetatable", l_setmetatable);
  wrap(L, g, "rawset", l_rawset);
  lua_pushcfunction(L, l_print);
  lua_setfield(L, g, "print");

  lua_getfield(L, g, LUA_STRLIBNAME);
  drop(L, -1, "dump");
  wrap(L, lua_gettop(L), "rep", l_rep);
  lua_pop(L, 1);
  lua_getfield(L, g, LUA_MATHLIBNAME);
  drop(L, -1, "random"); /* see sandbox.h: randomness is an effect */
  drop(L, -1, "randomseed");
  lua_pop(L, 1);
  lua_getfield(L, g, LUA_COLIBNAME);
  int co = lua_gettop(L);
  lua_getfield(L, co, "resume");
  lua_getfield(L, co, "close");
  lua_pushcclosure(L, l_cowrap, 2);
  lua_setfield(L, co, "wrap");
  wrap(L, co, "create", l_cocreate);
  wrap(L, co, "close", l_coclose);
  lua_pop(L, 1);
  lua_pushcfunction(L, l_xpcall);
  lua_setfield(L, g, "xpcall");
  lua_getfield(L, g, LUA_TABLIBNAME);
  wrap(L, lua_gettop(L), "move", l_tmove);
  wrap(L, lua_gettop(L), "insert", l_tinsert);
  wrap(L, lua_gettop(L), "remove", l_tremove);
  lua_pop(L, 1);

  /* Strings share one metatable; protect it from getmetatable(""). */
  lua_pushliteral(L, "");
  lua_getmetatable(L, -1);
  lua_pushboolean(L, 0);
  lua_setfield(L, -2, "__metatable");
  lua_pop(L, 2);

  lua_pushfstring(L, "memory limit exceeded (%I bytes)",
                  (lua_Integer)r->o.mem_limit);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &stop_keys[STOP_MEMORY]);
  lua_pushfstring(L, "instruction limit exceeded (%I)",
                  (lua_Integer)r->o.instr_limit);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &stop_keys[STOP_INSTR]);
  lua_pushfstring(L, "time limit exceeded (%I ms)",
                  (lua_Integer)r->o.wall_ms);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &stop_keys[STOP_TIME]);
  lua_pushfstring(L, "output limit exceeded (%I bytes)",
                  (lua_Integer)r->o.output_limit);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &stop_keys[STOP_OUTPUT]);
  lua_pushliteral(L, "sandbox closing");
  lua_rawsetp(L, LUA_REGISTRYINDEX, &stop_keys[STOP_CLOSING]);

  /* Keeps "__jsontype" interned so the converter's raw lookup never
   * allocates. */
  lc_conv_push_array_mt(L);
  lua_pop(L, 1);

  lua_createtable(L, 0, 2);
  lua_pushcfunction(L, l_box_free);
  lua_setfield(L, -2, "__gc");
  lua_pushcfunction(L, l_box_free);
  lua_setfield(L, -2, "__close");
  lua_rawsetp(L, LUA_REGISTRYINDEX, &box_mt_key);

  for (size_t i = 0; i < r->o.nfns; i++) {
    const struct lc_sandbox_fn *f = &r->o.fns[i];
    if (lua_getfield(L, g, f->name) != LUA_TNIL)
      return luaL_error(L, "host function '%s' shadows a global", f->name);
    lua_pop(L, 1);
    lua_pushlightuserdata(L, (void *)f);
    lua_pushcclosure(L, l_hostfn, 1);
    lua_setfield(L, g, f->name);
  }

  if (r->input) {
    lc_conv_push_json(L, r->input);
    lua_setfield(L, g, "input");
  }

  lua_createtable(L, 0, 3);
  lua_pushcfunction(L, l_global_index);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, l_global_newindex);
  lua_setfield(L, -2, "__newindex");
  lua_pushboolean(L, 0);
  lua_setfield(L, -2, "__metatable");
  lua_setmetatable(L, g);
  return 0;
}

/* Message handler of the main pcall: a clean string (never a metamethod
 * of the error object) plus a bounded traceback. A stop is passed on as is. */
static int l_msgh(lua_State *L) {
  struct run *r = run_of(L);
  if (r->stop) return 1;
  switch (lua_type(L, 1)) {
    case LUA_TSTRING:
      break;
    case LUA_TNUMBER:
      lua_pushvalue(L, 1);
      lua_tolstring(L, -1, NULL); /* converts the copy in place */
      break;
    default:
      lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
  }
  luaL_traceback(L, L, lua_tostring(L, -1), 1);
  return 1;
}

static int l_panic(lua_State *L) {
  fprintf(stderr, "luact sandbox: unprotected Lua error\n");
  abort();
}

/* ---- running ---- */

void lc_sandbox_opts_init(struct lc_sandbox_opts *o) {
  memset(o, 0, sizeof *o);
  o->mem_limit = LC_SANDBOX_DEFAULT_MEM;
  o->instr_limit = LC_SANDBOX_DEFAULT_INSTR;
  o->wall_ms = LC_SANDBOX_DEFAULT_WALL_MS;
  o->output_limit = LC_SANDBOX_DEFAULT_OUTPUT;
  o->result_limit = LC_SANDBOX_DEFAULT_RESULT;
  o->chunkname = "=pal";
}

const char *lc_sandbox_status_code(enum lc_sandbox_status s) {
  switch (s) {
    case LC_SANDBOX_OK: return "ok";
    case LC_SANDBOX_SYNTAX: return "syntax";
    case LC_SANDBOX_ERROR: return "error";
    case LC_SANDBOX_MEMORY: return "memory";
    case LC_SANDBOX_INSTRUCTIONS: return "instructions";
    case LC_SANDBOX_TIMEOUT: return "timeout";
    case LC_SANDBOX_OUTPUT: return "output";
    case LC_SANDBOX_BAD_RESULT: return "bad_result";
    case LC_SANDBOX_DIED: return "died";
    case LC_SANDBOX_VIOLATION: return "violation";
  }
  return "error";
}

void lc_sandbox_result_free(struct lc_sandbox_result *r) {
  if (!r) return;
  cJSON_Delete(r->value);
  lc_free(r->output);
  lc_free(r->error);
  lc_free(r->traceback);
  r->value = NULL;
  r->output = r->error = r->traceback = NULL;
}

static int ident_char(char c, int first) {
  return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
         (!first && c >= '0' && c <= '9');
}

static int valid_name(const char *s) {
  if (!s || !ident_char(*s, 1)) return 0;
  for (s++; *s; s++)
    if (!ident_char(*s, 0)) return 0;
  return 1;
}

static void set_error(struct lc_sandbox_result *out, enum lc_sandbox_status s,
                      const char *msg, size_t n) {
  out->status = s;
  lc_free(out->error);
  if (n > ERR_MAX) {
    out->error = lc_malloc(ERR_MAX + 4);
    if (out->error) {
      memcpy(out->error, msg, ERR_MAX);
      memcpy(out->error + ERR_MAX, "...", 4);
    }
  } else {
    out->error = lc_strndup(msg, n);
  }
}

/* Copies the error value at the top of L without running any of its
 * metamethods; splits off the traceback l_msgh appended. */
static void take_error(lua_State *L, struct lc_sandbox_result *out,
                       enum lc_sandbox_status s) {
  char buf[128];
  switch (lua_type(L, -1)) {
    case LUA_TSTRING: {
      size_t n;
      const char *m = lua_tolstring(L, -1, &n);
      const char *tb = NULL;
      for (const char *p = m; (p = memchr(p, '\n', n - (size_t)(p - m)));
           p++)
        if (strncmp(p, "\nstack traceback:\n", 18) == 0) tb = p;
      if (tb) {
        out->traceback = lc_strndup(tb + 1, n - (size_t)(tb + 1 - m));
        n = (size_t)(tb - m);
      }
      set_error(out, s, m, n);
      return;
    }
    case LUA_TNUMBER:
      if (lua_isinteger(L, -1))
        snprintf(buf, sizeof buf, "%lld", (long long)lua_tointeger(L, -1));
      else
        snprintf(buf, sizeof buf, "%.14g", lua_tonumber(L, -1));
      break;
    default:
      snprintf(buf, sizeof buf, "(error object is a %s value)",
               luaL_typename(L, -1));
  }
  set_error(out, s, buf, strlen(buf));
}

/* The plain error lauxlib raises when a luaL_Buffer cannot grow (after
 * l_msgh added its traceback). */
static int is_memerr(lua_State *L, int idx) {
  static const char m[] = "not enough memory";
  size_t n;
  if (lua_type(L, idx) != LUA_TSTRING) return 0;
  const char *s = lua_tolstring(L, idx, &n);
  return n >= sizeof m - 1 && memcmp(s, m, sizeof m - 1) == 0 &&
         (n == sizeof m - 1 || s[sizeof m - 1] == '\n');
}

static const enum lc_sandbox_status stop_status[STOP_N] = {
    [STOP_MEMORY] = LC_SANDBOX_MEMORY, [STOP_INSTR] = LC_SANDBOX_INSTRUCTIONS,
    [STOP_TIME] = LC_SANDBOX_TIMEOUT, [STOP_OUTPUT] = LC_SANDBOX_OUTPUT,
    [STOP_CLOSING] = LC_SANDBOX_ERROR};

static void take_stop(struct run *r, struct lc_sandbox_result *out) {
  char buf[128];
  switch (r->stop) {
    case STOP_MEMORY:
      snprintf(buf, sizeof buf, "memory limit exceeded (%zu bytes)",
               r->o.mem_limit);
      break;
    case STOP_INSTR:
      snprintf(buf, sizeof buf, "instruction limit exceeded (%ld)",
               r->o.instr_limit);
      break;
    case STOP_TIME:
      snprintf(buf, sizeof buf, "time limit exceeded (%.0f ms)", r->o.wall_ms);
      break;
    case STOP_OUTPUT:
      snprintf(buf, sizeof buf, "output limit exceeded (%zu bytes)",
               r->o.output_limit);
      break;
    default:
      snprintf(buf, sizeof buf, "sandbox stopped");
  }
  set_error(out, stop_status[r->stop], buf, strlen(buf));
}

/* Converts results base..top into out->value (null, the value, or an
 * array of them). */
static void take_results(lua_State *L, struct run *r, int base,
                         struct lc_sandbox_result *out) {
  int top = lua_gettop(L), n = top - base + 1;
  char err[512];
  size_t budget = r->o.result_limit;
  cJSON *v = NULL;
  int rc = 0;
  if (n <= 0) {
    v = cJSON_CreateNull();
  } else if (n == 1) {
    rc = value_to_json(L, base, &budget, &v, err, sizeof err);
  } else {
    v = cJSON_CreateArray();
    for (int i = base; v && i <= top && rc == 0; i++) {
      cJSON *c = NULL;
      rc = value_to_json(L, i, &budget, &c, err, sizeof err);
      if (rc == 0) cJSON_AddItemToArray(v, c);
    }
  }
  if (rc == 0 && !v) {
    rc = LC_ENOMEM;
    snprintf(err, sizeof err, "host out of memory");
  }
  if (rc) {
    cJSON_Delete(v);
    char msg[600];
    snprintf(msg, sizeof msg, "cannot return this value: %s", err);
    set_error(out, rc == LC_ENOMEM && r->stop ? LC_SANDBOX_MEMORY
                                              : LC_SANDBOX_BAD_RESULT,
              msg, strlen(msg));
    return;
  }
  out->status = LC_SANDBOX_OK;
  out->value = v;
}

/* Runs in this process. t0 is when the run began (the wall-clock cap counts
 * from there; a child gets its parent's start time), 0 for now. */
static int run_here(const char *code, size_t len,
                    const struct lc_sandbox_opts *o, const cJSON *input,
                    double t0, struct lc_sandbox_result *out) {
  if (!out) return LC_EINVAL;
  memset(out, 0, sizeof *out);
  if (!(t0 > 0)) t0 = lc_now_ms();
  struct run r;
  memset(&r, 0, sizeof r);
  lc_sandbox_opts_init(&r.o);
  if (o) {
    struct lc_sandbox_opts d = r.o;
    r.o = *o;
    if (!r.o.mem_limit) r.o.mem_limit = d.mem_limit;
    if (r.o.instr_limit <= 0) r.o.instr_limit = d.instr_limit;
    if (!(r.o.wall_ms > 0)) r.o.wall_ms = d.wall_ms;
    if (!r.o.output_limit) r.o.output_limit = d.output_limit;
    if (!r.o.result_limit) r.o.result_limit = d.result_limit;
    if (!r.o.chunkname) r.o.chunkname = d.chunkname;
  }
  if (!code) {
    set_error(out, LC_SANDBOX_ERROR, "no code", 7);
    return LC_EINVAL;
  }
  for (size_t i = 0; i < r.o.nfns; i++) {
    if (!valid_name(r.o.fns[i].name) || !r.o.fns[i].fn) {
      const char *m = "host function needs an identifier name and a callback";
      set_error(out, LC_SANDBOX_ERROR, m, strlen(m));
      return LC_EINVAL;
    }
  }
  r.step = r.o.instr_limit < LC_SANDBOX_HOOK_STEP ? (int)r.o.instr_limit
                                                  : LC_SANDBOX_HOOK_STEP;
  r.deadline = t0 + r.o.wall_ms;
  r.input = input;
  lc_buf_init(&r.out, r.o.output_limit);

  int ret = 0;
  lua_State *L = lua_newstate(sb_alloc, &r);
  if (!L) {
    r.stop = STOP_MEMORY;
    take_stop(&r, out);
    goto done;
  }
  r.L = L;
  lua_atpanic(L, l_panic);
  lua_pushcfunction(L, l_setup);
  lua_pushlightuserdata(L, &r);
  int rc = lua_pcall(L, 1, 0, 0);
  if (rc != LUA_OK) {
    if (rc == LUA_ERRMEM || r.stop) {
      if (!r.stop) r.stop = STOP_MEMORY;
      take_stop(&r, out);
    } else {
      take_error(L, out, LC_SANDBOX_ERROR);
      ret = LC_EINVAL; /* e.g. a host function shadowing a global */
    }
    goto close;
  }
  lua_pushcfunction(L, l_msgh); /* msgh */
  rc = luaL_loadbufferx(L, code, len, r.o.chunkname, "t");
  if (rc != LUA_OK) {
    if (rc == LUA_ERRMEM || r.stop) {
      if (!r.stop) r.stop = STOP_MEMORY;
      take_stop(&r, out);
    } else {
      take_error(L, out, LC_SANDBOX_SYNTAX);
    }
    goto close;
  }
  /* Set before the chunk runs, hence before any coroutine exists: every
   * thread the chunk creates copies it (lstate.c lua_newthread). */
  lua_sethook(L, hook, LUA_MASKCOUNT, r.step);
  rc = lua_pcall(L, 0, LUA_MULTRET, 1); /* msgh results... */
  if (!r.stop && rc == LUA_ERRMEM) r.stop = STOP_MEMORY;
  if (!r.stop && rc != LUA_OK && r.refusals && is_memerr(L, -1))
    r.stop = STOP_MEMORY;
  /* One long C call (see sandbox.h) can overrun the deadline with no hook
   * call after it; the result still says so. */
  check_limits(&r);
  if (r.stop) take_stop(&r, out);
  else if (rc != LUA_OK) take_error(L, out, LC_SANDBOX_ERROR);
  else take_results(L, &r, 2, out);

close:
  /* Nothing of the sandbox may run during lua_close; __gc is refused by
   * setmetatable, and this makes any other Lua code raise at once. */
  if (!r.stop) r.stop = STOP_CLOSING;
  lua_sethook(L, hook, LUA_MASKCOUNT | LUA_MASKLINE, 1);
  lua_close(L);
done:
  out->mem_peak = r.peak;
  out->mem_after_close = r.used;
  out->instructions = r.instr;
  out->output = lc_buf_steal(&r.out, &out->output_len);
  lc_buf_free(&r.out);
  out->elapsed_ms = lc_now_ms() - t0;
  if (!out->output || (out->status != LC_SANDBOX_OK && !out->error)) {
    lc_sandbox_result_free(out);
    out->status = LC_SANDBOX_ERROR;
    return LC_ENOMEM;
  }
  return ret;
}

/* ---- isolation: the run in a child process ----
 *
 * The count hook and the deadline only act between VM instructions, so a
 * single library call (a backtracking pattern such as ("a"):rep(3000):
 * find(".-.-.-b"), or a naive plain find of a huge near-match) can run far
 * past the wall-clock cap; and a Lua bug (5.4.4 overflows the C stack with
 * deeply nested coroutine.close) can crash the state. In a child process
 * neither can hurt the host: the parent kills it at the deadline, and a
 * crash is a "died" result.
 *
 * How the child is made: posix_spawn of this same executable
 * (/proc/self/exe) with a marker argument, caught by the constructor below
 * before main runs. glibc's posix_spawn is clone(CLONE_VM|CLONE_VFORK) +
 * execve: its cost does not grow with the parent's memory (fork copies the
 * page tables of a daemon holding thousands of runs), it runs nothing but
 * async-signal-safe code before the exec (a fork of a threaded process can
 * inherit a held allocator lock: the ASan hang), and the child starts with
 * a fresh address space (no copy of the parent's heap, API keys included),
 * the environment and descriptors we give it, and nothing else. A zygote
 * would save the exec (~1 ms) but needs its own protocol and process
 * management; a PAL run follows an LLM call, so the exec is noise.
 *
 * Descriptors of the child: 0 and 1 are /dev/null, 2 is /dev/null too
 * (sanitizer builds keep the parent's stderr so that a report is seen),
 * 3 the request (a sealed-size memfd: writing it never blocks the parent),
 * 4 the write end of the result pipe. Everything else is closed at the
 * spawn (closefrom), whatever its CLOEXEC flag. The environment is empty.
 *
 * The child then reads the request, sets PR_SET_PDEATHSIG (SIGKILL when the
 * thread that spawned it exits: a dying parent takes its sandboxes along),
 * rlimits, and a seccomp filter that allows what a pure Lua state needs
 * (memory, the clock, write to its pipe, exit); any other system call kills
 * it (SIGSYS), reported as "violation". It writes 'R' (started), runs, and
 * writes one frame of native-endian fields and raw bytes.
 *
 * The parent never blocks: the pipe and the child (child.c: its pidfd, or
 * a poll where the kernel gives none) are watched by the loop, a timer
 * kills the child at the deadline, and the exit status comes once it has
 * ended. */

#define CHILD_ARG "--luact-sandbox-child"
#define REQ_FD 3
#define OUT_FD 4
#define REQ_MAGIC 0x6c637362u
#define GRACE_MS 250.0 /* start-up (an exec) and the write of the result */

/* ThreadSanitizer too: like ASan it maps shadow memory as it goes (an
 * address-space cap killed every sandbox child of a TSan build with exit
 * status 66) and needs the same extra system calls when it reports. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define SANITIZED 1
#endif
#endif
#ifndef SANITIZED
#define SANITIZED 0
#endif

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

struct req {
  uint32_t magic;
  int32_t ppid;       /* the parent: the child exits if it is gone */
  double t0;          /* CLOCK_MONOTONIC ms at the start of the run */
  double wall_ms;
  size_t mem_limit, output_limit, result_limit;
  long instr_limit, test_syscall;
  size_t len[3];      /* chunkname, code, input JSON */
};

struct frame {
  int status;
  int ret;
  size_t mem_peak;
  long instructions;
  double elapsed_ms;
  size_t len[4]; /* value JSON, output, error, traceback */
};

static int write_all(int fd, const void *p, size_t n) {
  const char *c = p;
  while (n) {
    ssize_t w = write(fd, c, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return -1;
    c += w;
    n -= (size_t)w;
  }
  return 0;
}

/* ---- the child side ---- */

static int pread_all(int fd, void *p, size_t n, off_t off) {
  char *c = p;
  while (n) {
    ssize_t got = pread(fd, c, n, off);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) return -1;
    c += got;
    off += got;
    n -= (size_t)got;
  }
  return 0;
}

static void set_limit(int res, rlim_t v) {
  struct rlimit cur;
  if (getrlimit(res, &cur) == 0 && cur.rlim_max != RLIM_INFINITY &&
      cur.rlim_max < v)
    v = cur.rlim_max; /* never try to raise */
  struct rlimit l = {v, v};
  if (setrlimit(res, &l) != 0) _exit(5);
}

/* Belt and braces under the Lua allocator's cap and the filter: no core
 * dumps (they would hold the program's data), no files, no processes, no
 * new descriptors beyond the ones it has, CPU time a little over the wall
 * cap (SIGXCPU, reported as a timeout), a fixed 8 MiB stack (so a C-stack
 * overflow is a crash at the same depth whatever the parent's ulimit), and
 * an address-space cap well over the memory cap (not in ASan builds: ASan
 * reserves terabytes of shadow). */
static void child_limits(const struct req *q) {
  set_limit(RLIMIT_CORE, 0);
  set_limit(RLIMIT_FSIZE, 0);
  set_limit(RLIMIT_NPROC, 0);
  set_limit(RLIMIT_MEMLOCK, 0);
  set_limit(RLIMIT_MSGQUEUE, 0);
  set_limit(RLIMIT_NOFILE, OUT_FD + 1);
  set_limit(RLIMIT_STACK, 8u << 20);
  set_limit(RLIMIT_CPU, (rlim_t)(q->wall_ms / 1000.0) + 2);
  if (!SANITIZED)
    set_limit(RLIMIT_AS, (rlim_t)q->mem_limit * 2 + ((rlim_t)1 << 30));
}

/* Allows what a pure Lua state needs, kills the process on anything else.
 * No open, no socket, no exec, no fork/clone, no kill of others; memory
 * only without PROT_EXEC; write only to stderr and the result pipe. ASan
 * (sanitizer builds) also needs to install its handlers' alternate stack,
 * read /proc/self/maps and the like when it reports: those calls are added
 * there only. */
static int child_filter(void) {
  scmp_filter_ctx f = seccomp_init(SCMP_ACT_KILL_PROCESS);
  if (!f) return -1;
  static const int allow[] = {
      SCMP_SYS(read),          SCMP_SYS(close),
      SCMP_SYS(exit),          SCMP_SYS(exit_group),
      SCMP_SYS(brk),           SCMP_SYS(munmap),
      SCMP_SYS(mremap),        SCMP_SYS(madvise),
      SCMP_SYS(rt_sigreturn),  SCMP_SYS(rt_sigprocmask),
      SCMP_SYS(clock_gettime), SCMP_SYS(gettimeofday),
      SCMP_SYS(futex),         SCMP_SYS(getpid),
      SCMP_SYS(gettid),        SCMP_SYS(fstat),
      SCMP_SYS(newfstatat),    SCMP_SYS(lseek),
  };
  static const int allow_sanitized[] = {
      SCMP_SYS(sigaltstack),  SCMP_SYS(rt_sigaction), SCMP_SYS(open),
      SCMP_SYS(openat),       SCMP_SYS(readlink),     SCMP_SYS(readlinkat),
      SCMP_SYS(prlimit64),    SCMP_SYS(getrlimit),    SCMP_SYS(sched_yield),
      SCMP_SYS(sched_getaffinity), SCMP_SYS(uname),   SCMP_SYS(prctl),
      SCMP_SYS(pread64),      SCMP_SYS(getdents64),   SCMP_SYS(mincore),
      SCMP_SYS(getppid),      SCMP_SYS(ioctl),        SCMP_SYS(write),
      SCMP_SYS(mmap),         SCMP_SYS(mprotect),     SCMP_SYS(nanosleep),
      SCMP_SYS(clock_nanosleep), SCMP_SYS(fcntl)};
  int rc = 0;
  for (size_t i = 0; i < LC_ARRAY_LEN(allow); i++)
    rc |= seccomp_rule_add(f, SCMP_ACT_ALLOW, allow[i], 0);
  if (SANITIZED) {
    for (size_t i = 0; i < LC_ARRAY_LEN(allow_sanitized); i++)
      rc |= seccomp_rule_add(f, SCMP_ACT_ALLOW, allow_sanitized[i], 0);
  } else {
    rc |= seccomp_rule_add(f, SCMP_ACT_ALLOW, SCMP_SYS(write), 1,
                           SCMP_A0(SCMP_CMP_EQ, 2, 0)); /* datum_b unused by EQ */
    rc |= seccomp_rule_add(f, SCMP_ACT_ALLOW, SCMP_SYS(write), 1,
                           SCMP_A0(SCMP_CMP_EQ, OUT_FD, 0));
    rc |= seccomp_rule_add(f, SCMP_ACT_ALLOW, SCMP_SYS(mmap), 1,
                           SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0));
    rc |= seccomp_rule_add(f, SCMP_ACT_ALLOW, SCMP_SYS(mprotect), 1,
                           SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0));
  }
  /* abort() signals itself (l_panic). */
  rc |= seccomp_rule_add(f, SCMP_ACT_ALLOW, SCMP_SYS(tgkill), 1,
                         SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)getpid(), 0));
  /* seccomp_load sets PR_SET_NO_NEW_PRIVS first (libseccomp's default). */
  if (rc == 0) rc = seccomp_load(f);
  seccomp_release(f);
  return rc;
}

/* Writes the frame of one run to fd and exits. */
static void child_reply(int fd, const struct lc_sandbox_result *r, int ret) {
  char *value = r->value ? cJSON_PrintUnformatted(r->value) : NULL;
  const char *parts[4] = {value, r->output, r->error, r->traceback};
  struct frame f = {.status = (int)r->status, .ret = ret,
                    .mem_peak = r->mem_peak,
                    .instructions = r->instructions,
                    .elapsed_ms = r->elapsed_ms};
  if (r->value && !value) f.ret = LC_ENOMEM;
  f.len[0] = value ? strlen(value) : 0;
  f.len[1] = r->output ? r->output_len : 0;
  f.len[2] = r->error ? strlen(r->error) : 0;
  f.len[3] = r->traceback ? strlen(r->traceback) : 0;
  int bad = write_all(fd, &f, sizeof f);
  for (int i = 0; i < 4 && !bad; i++)
    bad = f.len[i] && write_all(fd, parts[i], f.len[i]);
  _exit(bad ? 1 : 0); /* no atexit handlers, no stdio flushing */
}

/* The child's main: reads the request from REQ_FD, confines itself, runs,
 * replies on OUT_FD. Never returns. */
static void child_main(void) {
  /* Spawned with exactly 0-4 open; close anything else all the same. */
  syscall(SYS_close_range, OUT_FD + 1, ~0u, 0);
  struct req q;
  if (pread_all(REQ_FD, &q, sizeof q, 0) || q.magic != REQ_MAGIC) _exit(2);
  size_t total = q.len[0] + q.len[1] + q.len[2];
  if (total < q.len[1] || total > ((size_t)1 << 40)) _exit(2);
  char *buf = malloc(total + 3);
  if (!buf || pread_all(REQ_FD, buf, total, sizeof q)) _exit(2);
  close(REQ_FD);
  char *name = buf, *code = buf + q.len[0] + 1, *json = code + q.len[1] + 1;
  memmove(json, buf + q.len[0] + q.len[1], q.len[2]);
  memmove(code, buf + q.len[0], q.len[1]);
  name[q.len[0]] = code[q.len[1]] = json[q.len[2]] = '\0';
  prctl(PR_SET_NAME, "luact-sandbox"); /* for ps; "exe" otherwise */
  if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) _exit(3);
  if (getppid() != q.ppid) _exit(3); /* the parent died before the prctl */
  /* Before the caps: loading maps memory and opens the library (under
   * ThreadSanitizer, the address-space cap made it fail). */
  if (!lc_seccomp_dl_load()) _exit(4);
  child_limits(&q);
  cJSON *input = NULL;
  if (q.len[2] && !(input = cJSON_Parse(json))) _exit(2);
  struct lc_sandbox_opts o;
  lc_sandbox_opts_init(&o);
  o.mem_limit = q.mem_limit;
  o.instr_limit = q.instr_limit;
  o.wall_ms = q.wall_ms;
  o.output_limit = q.output_limit;
  o.result_limit = q.result_limit;
  o.chunkname = name;
  if (child_filter() != 0) _exit(4);
  if (write_all(OUT_FD, "R", 1)) _exit(1);
  if (q.test_syscall) syscall(q.test_syscall, -1L, 0L, 0L, 0L, 0L, 0L);
  struct lc_sandbox_result r;
  int ret = run_here(code, q.len[1], &o, input, q.t0, &r);
  child_reply(OUT_FD, &r, ret);
}

/* Runs before main in every program linked with this file (glibc passes
 * argc/argv/envp to ELF constructors): the child side of a spawn. */
__attribute__((constructor)) static void child_entry(int argc, char **argv,
                                                     char **envp) {
  (void)envp;
  if (argc == 2 && argv && argv[1] && strcmp(argv[1], CHILD_ARG) == 0)
    child_main();
}

/* ---- the parent side ---- */

static atomic_long live_children;

enum job_state { J_RUNNING, J_DONE };

struct lc_sandbox_job {
  struct lc_loop *loop;
  enum job_state state;
  pid_t pid;
  struct lc_child ch;
  int has_child, rfd;
  struct lc_fdwatch wr;
  struct lc_timer deadline;
  double t0, wall;
  char *in;              /* bytes from the child: 'R', frame, parts */
  size_t nin, cap, max_in;
  int eof, timed_out, overflow, nomem;
  struct lc_sandbox_result res;
  int ret;
  lc_sandbox_done_fn done;
  void *ud;
};

long lc_sandbox_live(void) { return atomic_load(&live_children); }
int lc_sandbox_job_pid(const struct lc_sandbox_job *j) { return (int)j->pid; }
int lc_sandbox_job_started(const struct lc_sandbox_job *j) {
  return j->nin > 0 && j->in[0] == 'R';
}
int lc_sandbox_job_rc(const struct lc_sandbox_job *j) { return j->ret; }
struct lc_sandbox_result *lc_sandbox_job_result(struct lc_sandbox_job *j) {
  return &j->res;
}

/* Reads what the pipe holds (non-blocking). Past max_in the child is not
 * ours any more (an honest one stays under it): killed, bad result. */
static void job_drain(struct lc_sandbox_job *j) {
  while (!j->eof) {
    if (j->cap - j->nin < 4096) {
      size_t lim = j->max_in + 4096;
      char *p = NULL;
      if (j->cap < lim) {
        size_t nc = j->cap ? j->cap * 2 : 16384;
        if (nc > lim) nc = lim;
        if ((p = lc_realloc(j->in, nc))) {
          j->in = p;
          j->cap = nc;
        } else {
          j->nomem = 1; /* the host's failure, not the child's */
        }
      } else {
        j->overflow = 1;
      }
      if (!p) {
        lc_child_kill(&j->ch, SIGKILL);
        return;
      }
    }
    ssize_t got = read(j->rfd, j->in + j->nin, j->cap - j->nin);
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) return; /* EAGAIN: more later */
    if (got == 0) j->eof = 1;
    j->nin += (size_t)got;
  }
}

/* The frame, if the child sent a whole one: 0, else -1. */
static int job_parse(struct lc_sandbox_job *j) {
  struct frame f;
  struct lc_sandbox_result *out = &j->res;
  if (j->nin < 1 + sizeof f || j->in[0] != 'R') return -1;
  memcpy(&f, j->in + 1, sizeof f);
  size_t off = 1 + sizeof f, left = j->nin - off;
  for (int i = 0; i < 4; i++) {
    if (f.len[i] > left) return -1;
    left -= f.len[i];
  }
  if (left || f.status < LC_SANDBOX_OK || f.status > LC_SANDBOX_VIOLATION)
    return -1;
  char *parts[4];
  for (int i = 0; i < 4; i++) {
    parts[i] = lc_strndup(j->in + off, f.len[i]);
    off += f.len[i];
  }
  out->status = (enum lc_sandbox_status)f.status;
  out->mem_peak = f.mem_peak;
  out->instructions = f.instructions;
  out->output = parts[1];
  out->output_len = f.len[1];
  out->error = f.len[2] ? parts[2] : NULL;
  out->traceback = f.len[3] ? parts[3] : NULL;
  if (!f.len[2]) lc_free(parts[2]);
  if (!f.len[3]) lc_free(parts[3]);
  j->ret = f.ret;
  if (!parts[0] || !parts[1] || (f.len[2] && !parts[2]) ||
      (f.len[3] && !parts[3]))
    j->ret = LC_ENOMEM;
  else if (f.len[0] && !(out->value = cJSON_Parse(parts[0])))
    j->ret = LC_ENOMEM;
  lc_free(parts[0]);
  return 0;
}

/* Fills j->res from what the child sent and how it ended. */
static void job_result(struct lc_sandbox_job *j) {
  struct lc_sandbox_result *out = &j->res;
  /* lost: the kernel reaped it (SIGCHLD ignored), the frame decides */
  int st = j->ch.lost ? 0 : j->ch.status;
  int clean = WIFEXITED(st) && WEXITSTATUS(st) == 0;
  int sig = WIFSIGNALED(st) ? WTERMSIG(st) : 0;
  char msg[160];
  int n;
  if (j->nomem) {
    lc_sandbox_result_free(out);
    out->status = LC_SANDBOX_ERROR;
    j->ret = LC_ENOMEM;
    return;
  }
  if (clean && !j->overflow && job_parse(j) == 0) {
    /* a whole result: even if the deadline fired as it arrived */
  } else if (j->overflow) {
    n = snprintf(msg, sizeof msg, "the sandbox sent more than its limits allow");
    set_error(out, LC_SANDBOX_BAD_RESULT, msg, (size_t)n);
  } else if (j->timed_out || sig == SIGXCPU) {
    n = snprintf(msg, sizeof msg, "time limit exceeded (%.0f ms)", j->wall);
    set_error(out, LC_SANDBOX_TIMEOUT, msg, (size_t)n);
  } else if (sig == SIGSYS) {
    n = snprintf(msg, sizeof msg,
                 "sandbox violation: the program's process made a "
                 "forbidden system call and was killed");
    set_error(out, LC_SANDBOX_VIOLATION, msg, (size_t)n);
  } else {
    if (sig)
      n = snprintf(msg, sizeof msg, "the sandbox process died (%s)",
                   strsignal(sig));
    else
      n = snprintf(msg, sizeof msg,
                   "the sandbox process died (exit status %d, no result)",
                   WEXITSTATUS(st));
    set_error(out, LC_SANDBOX_DIED, msg, (size_t)n);
  }
  out->elapsed_ms = lc_now_ms() - j->t0;
  if (!out->output && (out->output = lc_malloc(1))) out->output[0] = '\0';
  if (!out->output || (out->status != LC_SANDBOX_OK && !out->error)) {
    lc_sandbox_result_free(out);
    out->status = LC_SANDBOX_ERROR;
    j->ret = LC_ENOMEM;
  }
}

/* Stops watching and closes; the child must be reaped already. */
static void job_release(struct lc_sandbox_job *j) {
  if (j->loop) {
    if (j->rfd >= 0) lc_loop_unwatch(j->loop, &j->wr);
    lc_timer_stop(j->loop, &j->deadline);
  }
  if (j->rfd >= 0) close(j->rfd);
  if (j->has_child) lc_child_close(&j->ch);
  j->has_child = 0;
  j->rfd = -1;
}

/* The child has been reaped: finish. done may free j. */
static void job_finish(struct lc_sandbox_job *j) {
  job_drain(j); /* the child is gone: what it wrote is all there */
  job_release(j);
  atomic_fetch_sub(&live_children, 1);
  job_result(j);
  lc_free(j->in);
  j->in = NULL;
  j->nin = j->cap = 0;
  j->state = J_DONE;
  j->done(j, j->ud);
}

/* Watcher of the result pipe (from the loop). */
static void on_pipe(struct lc_loop *loop, struct lc_fdwatch *w,
                    unsigned events) {
  struct lc_sandbox_job *j = w->ud;
  job_drain(j);
  if (j->eof && j->rfd >= 0) {
    lc_loop_unwatch(loop, &j->wr); /* the child watch says when it is gone */
    close(j->rfd);
    j->rfd = -1;
  }
}

/* The child ended and was reaped (from the loop, child.c). */
static void on_child_exit(struct lc_child *c, void *ud) {
  (void)c;
  job_finish(ud);
}

/* Deadline timer (from the loop): kill; the child watch reports the end. */
static void on_deadline(struct lc_loop *loop, struct lc_timer *t) {
  struct lc_sandbox_job *j = t->ud;
  j->timed_out = 1;
  lc_child_kill(&j->ch, SIGKILL);
}

/* The request the child reads from its REQ_FD: a memfd, so that writing
 * it never blocks however large the code and input are. -1 on failure. */
static int make_request(const char *code, size_t len,
                        const struct lc_sandbox_opts *o, const cJSON *input,
                        double t0) {
  struct lc_sandbox_opts d;
  lc_sandbox_opts_init(&d);
  if (!o) o = &d;
  struct req q = {.magic = REQ_MAGIC, .ppid = (int32_t)getpid(), .t0 = t0};
  q.wall_ms = o->wall_ms > 0 ? o->wall_ms : d.wall_ms;
  q.mem_limit = o->mem_limit ? o->mem_limit : d.mem_limit;
  q.output_limit = o->output_limit ? o->output_limit : d.output_limit;
  q.result_limit = o->result_limit ? o->result_limit : d.result_limit;
  q.instr_limit = o->instr_limit > 0 ? o->instr_limit : d.instr_limit;
  q.test_syscall = o->test_syscall;
  const char *name = o->chunkname ? o->chunkname : d.chunkname;
  char *json = input ? cJSON_PrintUnformatted(input) : NULL;
  if (input && !json) return -1;
  q.len[0] = strlen(name);
  q.len[1] = len;
  q.len[2] = json ? strlen(json) : 0;
  int fd = memfd_create("luact-sandbox-request", MFD_CLOEXEC);
  int bad = fd < 0 || write_all(fd, &q, sizeof q) ||
            write_all(fd, name, q.len[0]) || write_all(fd, code, len) ||
            (json && write_all(fd, json, q.len[2]));
  cJSON_free(json);
  if (bad) {
    if (fd >= 0) close(fd);
    return -1;
  }
  return fd;
}

/* Spawns the child with its request on REQ_FD and the pipe's write end on
 * OUT_FD. 0 or -1 (errno). */
/* What the child execs: /proc/self/exe (the running binary even if its
 * file was replaced since), unless the kernel's /proc/self/exe is not the
 * program being run: under valgrind it is valgrind's tool (stat sees the
 * kernel's link; open and readlink are the tool's view of the program),
 * and then the program's own path. */
static char self_path[4096] = "/proc/self/exe";
static pthread_once_t self_once = PTHREAD_ONCE_INIT;

static void find_self(void) {
  struct stat k, v;
  int fd = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  int same = stat("/proc/self/exe", &k) == 0 && fstat(fd, &v) == 0 && k.st_ino == v.st_ino &&
             k.st_dev == v.st_dev;
  close(fd);
  if (same) return;
  char buf[sizeof self_path];
  ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) return;
  buf[n] = '\0';
  memcpy(self_path, buf, (size_t)n + 1);
}

static int spawn_child(int reqfd, int wfd, pid_t *pid) {
  pthread_once(&self_once, find_self);
  posix_spawn_file_actions_t fa;
  posix_spawnattr_t at;
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  if (posix_spawn_file_actions_init(&fa)) return -1;
  if (posix_spawnattr_init(&at)) {
    posix_spawn_file_actions_destroy(&fa);
    return -1;
  }
  int rc = posix_spawn_file_actions_adddup2(&fa, reqfd, REQ_FD);
  rc = rc ? rc : posix_spawn_file_actions_adddup2(&fa, wfd, OUT_FD);
  rc = rc ? rc : posix_spawn_file_actions_addopen(&fa, 0, "/dev/null",
                                                  O_RDONLY, 0);
  rc = rc ? rc : posix_spawn_file_actions_addopen(&fa, 1, "/dev/null",
                                                  O_WRONLY, 0);
  if (!SANITIZED)
    rc = rc ? rc : posix_spawn_file_actions_addopen(&fa, 2, "/dev/null",
                                                    O_WRONLY, 0);
  rc = rc ? rc : posix_spawn_file_actions_addclosefrom_np(&fa, OUT_FD + 1);
  /* Default dispositions and an empty mask, whatever the parent set. */
  rc = rc ? rc : posix_spawnattr_setsigmask(&at, &none);
  rc = rc ? rc : posix_spawnattr_setsigdefault(&at, &all);
  rc = rc ? rc : posix_spawnattr_setflags(
                     &at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  char *argv[] = {"luact-sandbox", CHILD_ARG, NULL};
  char *envp[] = {NULL};
  if (!rc) rc = posix_spawn(pid, self_path, &fa, &at, argv, envp);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&at);
  if (rc) {
    errno = rc;
    return -1;
  }
  return 0;
}

int lc_sandbox_start(struct lc_loop *loop, const char *code, size_t len,
                     const struct lc_sandbox_opts *o, const cJSON *input,
                     lc_sandbox_done_fn done, void *ud,
                     struct lc_sandbox_job **out) {
  *out = NULL;
  if (!loop || !code || !done ||
      (o && (o->nfns || o->fail_alloc_after || o->in_process)))
    return LC_EINVAL;
  struct lc_sandbox_job *j = lc_calloc(1, sizeof *j);
  if (!j) return LC_ENOMEM;
  j->loop = loop;
  j->done = done;
  j->ud = ud;
  j->rfd = -1;
  j->t0 = lc_now_ms();
  j->wall = o && o->wall_ms > 0 ? o->wall_ms : LC_SANDBOX_DEFAULT_WALL_MS;
  size_t ol = o && o->output_limit ? o->output_limit
                                   : LC_SANDBOX_DEFAULT_OUTPUT;
  size_t rl = o && o->result_limit ? o->result_limit
                                   : LC_SANDBOX_DEFAULT_RESULT;
  /* JSON escapes can make a string six times longer than its bytes. */
  j->max_in = sizeof(struct frame) + ol + 6 * rl + 4 * ERR_MAX + 65536;
  lc_timer_init(&j->deadline, on_deadline, j);
  int reqfd = make_request(code, len, o, input, j->t0);
  if (reqfd < 0) {
    lc_free(j);
    return errno == ENOMEM || errno == 0 ? LC_ENOMEM : LC_EIO;
  }
  int p[2];
  if (pipe2(p, O_CLOEXEC) < 0) {
    close(reqfd);
    lc_free(j);
    return LC_EIO;
  }
  int rc = spawn_child(reqfd, p[1], &j->pid);
  close(reqfd);
  close(p[1]);
  j->rfd = p[0];
  if (rc < 0) {
    close(p[0]);
    lc_free(j);
    return LC_EIO;
  }
  atomic_fetch_add(&live_children, 1);
  /* Not reaped until we say so, so the pid cannot be reused before this. */
  lc_child_open(&j->ch, loop, j->pid);
  j->has_child = 1;
  fcntl(j->rfd, F_SETFL, O_NONBLOCK);
  j->wr = (struct lc_fdwatch){.fd = j->rfd, .events = LC_READ,
                              .cb = on_pipe, .ud = j};
  if (lc_loop_watch(loop, &j->wr) < 0 || lc_child_watch(&j->ch, on_child_exit, j) < 0 ||
      lc_timer_start(loop, &j->deadline, j->wall + GRACE_MS) < 0) {
    lc_sandbox_job_free(j);
    return LC_ENOMEM;
  }
  *out = j;
  return 0;
}

void lc_sandbox_job_free(struct lc_sandbox_job *j) {
  if (!j) return;
  if (j->state == J_RUNNING) {
    /* Cancelled: kill and reap now. After SIGKILL the wait is the
     * kernel's teardown of the process, not anything the program does. */
    lc_child_kill(&j->ch, SIGKILL);
    lc_child_reap(&j->ch, 1);
    job_release(j);
    atomic_fetch_sub(&live_children, 1);
  }
  lc_sandbox_result_free(&j->res);
  lc_free(j->in);
  lc_free(j);
}

/* ---- the synchronous form ---- */

static void sync_done(struct lc_sandbox_job *j, void *ud) {
  (void)j;
  *(int *)ud = 1;
}

int lc_sandbox_run(const char *code, size_t len,
                   const struct lc_sandbox_opts *o, const cJSON *input,
                   struct lc_sandbox_result *out) {
  if (!out) return LC_EINVAL;
  if (!code || (o && (o->nfns || o->fail_alloc_after || o->in_process)))
    return run_here(code, len, o, input, 0, out);
  memset(out, 0, sizeof *out);
  struct lc_loop *loop;
  if (lc_loop_new(&loop) < 0) return LC_ENOMEM;
  struct lc_sandbox_job *j;
  int fin = 0;
  int rc = lc_sandbox_start(loop, code, len, o, input, sync_done, &fin, &j);
  if (rc == LC_EIO) {
    char msg[160];
    int n = snprintf(msg, sizeof msg,
                     "cannot start the sandbox process (%s)", strerror(errno));
    set_error(out, LC_SANDBOX_DIED, msg, (size_t)n);
    out->output = lc_strdup("");
    rc = out->output && out->error ? 0 : LC_ENOMEM;
  } else if (rc == 0) {
    while (!fin) lc_loop_run_once(loop, -1);
    rc = j->ret;
    *out = j->res;
    memset(&j->res, 0, sizeof j->res);
    lc_sandbox_job_free(j);
  }
  lc_loop_free(loop);
  return rc;
}
