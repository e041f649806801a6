/*
 * basics.c - the small helpers of the module table: vm.page_size (read once
 * here, for every C file: vmlab_page_size), vm.now, vm.sleep, vm.isatty.
 */
#include "vmlab.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

/* vm.now() -> seconds on the monotonic clock -- see clock_gettime(2) */
static int basics_now(lua_State *L) {
  lua_pushnumber(L, vmlab_now());
  return 1;
}

/* vm.sleep(seconds) -- see nanosleep(2); resumes after signals */
static int basics_sleep(lua_State *L) {
  lua_Number s = luaL_checknumber(L, 1);
  luaL_argcheck(L, s >= 0 && s <= 1e9, 1, "seconds must be between 0 and 1e9");
  struct timespec ts = {(time_t)s, (long)((s - (lua_Number)(time_t)s) * 1e9)};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
  return 0;
}

/* vm.isatty(f) -> bool: f is a file descriptor number or a Lua file
   (io.stdin, io.stdout, ...) -- see isatty(3) */
static int basics_isatty(lua_State *L) {
  int fd;
  if (lua_type(L, 1) == LUA_TNUMBER) {
    fd = (int)vmlab_check_int_range(L, 1, INT_MIN, INT_MAX);
  } else {
    luaL_Stream *f = luaL_checkudata(L, 1, LUA_FILEHANDLE);
    luaL_argcheck(L, f->closef != NULL && f->f != NULL, 1, "file is closed");
    fd = fileno(f->f);
  }
  lua_pushboolean(L, fd >= 0 && isatty(fd));
  return 1;
}

void vmlab_open_basics(lua_State *L) {
  long ps = sysconf(_SC_PAGESIZE);
  if (ps > 0) vmlab_page_size = (size_t)ps;
  lua_pushinteger(L, (lua_Integer)vmlab_page_size);
  lua_setfield(L, -2, "page_size");
  static const luaL_Reg funcs[] = {{"now", basics_now}, {"sleep", basics_sleep}, {"isatty", basics_isatty},
                                   {NULL, NULL}};
  luaL_setfuncs(L, funcs, 0);
}
