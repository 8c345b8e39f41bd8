/* l_native.h: the luact.native Lua submodule (native functions via ffi_fn.h).
 * luaopen_luact assembles it; tests open it directly. */
#ifndef LC_L_NATIVE_H
#define LC_L_NATIVE_H

#include <lua.h>

/* [-0, +1, m] Pushes the module table {declare = ...} and registers the
 * "luact.NativeFn" metatable. */
int lc_open_native(lua_State *L);

#endif
