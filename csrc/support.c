/*
 * support.c - the helpers every concern file shares (declared in vmlab.h):
 * argument and option checks that name the argument, the pusher for failed
 * system calls (nil, msg, errno), the page size and a residency count over
 * pages (mincore), the monotonic clock and the rusage fault counts, the
 * metatable of a userdata class, and t[k] = v setters for result tables.
 * It registers nothing: the bindings live in the concern files.
 */
#include "vmlab.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <time.h>

/* sysconf(_SC_PAGESIZE), read by vmlab_open_basics (the first concern opened). */
size_t vmlab_page_size = 4096;

int vmlab_count_resident(uintptr_t start, size_t pages, size_t *resident) {
  unsigned char vec[4096];
  size_t count = 0;
  for (size_t done = 0; done < pages;) {
    size_t n = pages - done < sizeof vec ? pages - done : sizeof vec;
    if (mincore((void *)(start + done * vmlab_page_size), n * vmlab_page_size, vec) != 0) return errno;
    for (size_t i = 0; i < n; i++) count += vec[i] & 1;
    done += n;
  }
  *resident = count;
  return 0;
}

/* Largest byte count we accept: fits size_t, off_t and lua_Integer. */
#define VMLAB_MAX_BYTES ((lua_Integer)(INT64_MAX / 2))

int vmlab_push_syserror(lua_State *L, const char *what, int err) {
  lua_pushnil(L);
  lua_pushfstring(L, "%s: %s", what, strerror(err));
  lua_pushinteger(L, err);
  return 3;
}

static lua_Integer check_integer_arg(lua_State *L, int idx) {
  int isnum = 0;
  lua_Integer v = lua_tointegerx(L, idx, &isnum);
  if (!isnum) {
    if (lua_type(L, idx) == LUA_TNUMBER)
      luaL_argerror(L, idx, "number has no integer representation");
    else
      luaL_typeerror(L, idx, "integer");
  }
  return v;
}

size_t vmlab_check_size(lua_State *L, int idx) {
  lua_Integer v = check_integer_arg(L, idx);
  luaL_argcheck(L, v > 0, idx, "size must be positive");
  luaL_argcheck(L, v <= VMLAB_MAX_BYTES, idx, "size is too large");
  return (size_t)v;
}

size_t vmlab_opt_count(lua_State *L, int idx, size_t def) {
  if (lua_isnoneornil(L, idx)) return def;
  lua_Integer v = check_integer_arg(L, idx);
  luaL_argcheck(L, v >= 0, idx, "must not be negative");
  luaL_argcheck(L, v <= VMLAB_MAX_BYTES, idx, "is too large");
  return (size_t)v;
}

/* Shared by the positional and the table form: offset/length already read. */
static void range_check(lua_State *L, size_t size, lua_Integer off,
                        int has_len, lua_Integer len, size_t *o, size_t *l,
                        const char *offname, const char *lenname) {
  if (off < 0) luaL_error(L, "bad argument '%s' (must not be negative)", offname);
  if ((lua_Unsigned)off > size)
    luaL_error(L, "bad argument '%s' (%I is past the end of a %I-byte region)",
               offname, off, (lua_Integer)size);
  if (!has_len) len = (lua_Integer)(size - (size_t)off);
  if (len < 0) luaL_error(L, "bad argument '%s' (must not be negative)", lenname);
  if ((lua_Unsigned)len > size - (size_t)off)
    luaL_error(L,
               "bad argument '%s' (offset %I + length %I is past the end of a "
               "%I-byte region)",
               lenname, off, len, (lua_Integer)size);
  *o = (size_t)off;
  *l = (size_t)len;
}

void vmlab_check_range(lua_State *L, int off_idx, int len_idx, size_t size,
                       size_t *off, size_t *len) {
  lua_Integer o = 0, l = 0;
  int has_len = 0;
  if (!lua_isnoneornil(L, off_idx)) {
    o = check_integer_arg(L, off_idx);
    luaL_argcheck(L, o >= 0, off_idx, "offset must not be negative");
    luaL_argcheck(L, (lua_Unsigned)o <= size, off_idx, "offset is past the end of the region");
  }
  if (!lua_isnoneornil(L, len_idx)) {
    l = check_integer_arg(L, len_idx);
    has_len = 1;
    luaL_argcheck(L, l >= 0, len_idx, "length must not be negative");
    luaL_argcheck(L, (lua_Unsigned)l <= size - (size_t)o, len_idx,
                  "offset + length is past the end of the region");
  }
  range_check(L, size, o, has_len, l, off, len, "offset", "length");
}

void vmlab_field_range(lua_State *L, int idx, size_t size, size_t *off,
                       size_t *len) {
  lua_Integer o = vmlab_opt_int_field(L, idx, "offset", 0);
  int has_len = 0;
  lua_Integer l = 0;
  if (lua_istable(L, idx)) {
    lua_getfield(L, idx, "length");
    if (!lua_isnil(L, -1)) {
      has_len = 1;
      l = vmlab_opt_int_field(L, idx, "length", 0);
    }
    lua_pop(L, 1);
  }
  range_check(L, size, o, has_len, l, off, len, "opts.offset", "opts.length");
}

static int opt_field(lua_State *L, int idx, const char *k, int type) {
  if (lua_isnoneornil(L, idx)) return 0;
  luaL_checktype(L, idx, LUA_TTABLE);
  int t = lua_getfield(L, idx, k);
  if (t == LUA_TNIL) {
    lua_pop(L, 1);
    return 0;
  }
  if (t != type && !(type == LUA_TNUMBER && t == LUA_TNUMBER))
    luaL_error(L, "bad option '%s' (%s expected, got %s)", k,
               lua_typename(L, type), luaL_typename(L, -1));
  return 1;
}

lua_Integer vmlab_opt_int_field(lua_State *L, int idx, const char *k,
                                lua_Integer def) {
  if (!opt_field(L, idx, k, LUA_TNUMBER)) return def;
  int isnum = 0;
  lua_Integer v = lua_tointegerx(L, -1, &isnum);
  if (!isnum) luaL_error(L, "bad option '%s' (integer expected, got a fraction)", k);
  lua_pop(L, 1);
  return v;
}

int vmlab_opt_bool_field(lua_State *L, int idx, const char *k, int def) {
  if (!opt_field(L, idx, k, LUA_TBOOLEAN)) return def;
  int v = lua_toboolean(L, -1);
  lua_pop(L, 1);
  return v;
}

void vmlab_check_known_fields(lua_State *L, int idx, const char *const known[]) {
  if (lua_isnoneornil(L, idx)) return;
  luaL_checktype(L, idx, LUA_TTABLE);
  lua_pushnil(L);
  while (lua_next(L, idx) != 0) {
    lua_pop(L, 1);
    int ok = 0;
    if (lua_type(L, -1) == LUA_TSTRING) {
      const char *key = lua_tostring(L, -1);
      for (int i = 0; known[i] != NULL && !ok; i++) ok = strcmp(key, known[i]) == 0;
    }
    if (!ok) {
      lua_pushvalue(L, -1);
      const char *key = luaL_tolstring(L, -1, NULL);
      luaL_error(L, "bad option '%s' (unknown option)", key);
    }
  }
}

lua_Integer vmlab_check_int_range(lua_State *L, int idx, lua_Integer lo, lua_Integer hi) {
  lua_Integer v = check_integer_arg(L, idx);
  if (v < lo || v > hi)
    luaL_argerror(L, idx, lua_pushfstring(L, "%I is out of range (%I .. %I)", v, lo, hi));
  return v;
}

lua_Integer vmlab_opt_int_range_field(lua_State *L, int idx, const char *k, lua_Integer def,
                                      lua_Integer lo, lua_Integer hi) {
  lua_Integer v = vmlab_opt_int_field(L, idx, k, def);
  if (v < lo || v > hi) luaL_error(L, "bad option '%s' (%I is out of range (%I .. %I))", k, v, lo, hi);
  return v;
}

const char *vmlab_check_cstring(lua_State *L, int idx, size_t *len) {
  size_t n;
  const char *s = luaL_checklstring(L, idx, &n);
  luaL_argcheck(L, memchr(s, '\0', n) == NULL, idx, "string contains a NUL byte");
  if (len != NULL) *len = n;
  return s;
}

int vmlab_check_option(lua_State *L, int idx, const char *def, const char *const lst[]) {
  if (lua_type(L, idx) == LUA_TSTRING || lua_type(L, idx) == LUA_TNUMBER) vmlab_check_cstring(L, idx, NULL);
  return luaL_checkoption(L, idx, def, lst);
}

const char *vmlab_push_string_field(lua_State *L, int idx, const char *k) {
  if (!opt_field(L, idx, k, LUA_TSTRING)) {
    lua_pushnil(L);
    return NULL;
  }
  size_t n;
  const char *s = lua_tolstring(L, -1, &n);
  if (memchr(s, '\0', n) != NULL) luaL_error(L, "bad option '%s' (string contains a NUL byte)", k);
  return s;
}

int vmlab_opt_option_field(lua_State *L, int idx, const char *k, const char *def, const char *const lst[]) {
  const char *s = vmlab_push_string_field(L, idx, k);
  if (s == NULL) s = def;
  for (int i = 0; s != NULL && lst[i] != NULL; i++)
    if (strcmp(lst[i], s) == 0) {
      lua_pop(L, 1);
      return i;
    }
  luaL_Buffer b; /* "bad option 'kind' (\"all\", \"minor\" or \"major\" expected, got \"x\")" */
  luaL_buffinit(L, &b);
  for (int i = 0; lst[i] != NULL; i++) {
    if (i > 0) luaL_addstring(&b, lst[i + 1] == NULL ? " or " : ", ");
    luaL_addchar(&b, '"');
    luaL_addstring(&b, lst[i]);
    luaL_addchar(&b, '"');
  }
  luaL_pushresult(&b);
  return luaL_error(L, "bad option '%s' (%s expected, got \"%s\")", k, lua_tostring(L, -1), s != NULL ? s : "nil");
}

double vmlab_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void vmlab_faults_now(long *minor, long *major) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  *minor = ru.ru_minflt;
  *major = ru.ru_majflt;
}

void vmlab_new_class(lua_State *L, const char *name, const luaL_Reg *methods, lua_CFunction index,
                     lua_CFunction release, lua_CFunction tostring) {
  if (luaL_newmetatable(L, name)) {
    lua_newtable(L);
    luaL_setfuncs(L, methods, 0);
    lua_pushcclosure(L, index, 1);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, release);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, release);
    lua_setfield(L, -2, "__close");
    lua_pushcfunction(L, tostring);
    lua_setfield(L, -2, "__tostring");
  }
  lua_pop(L, 1);
}

void vmlab_set_int(lua_State *L, const char *k, lua_Integer v) {
  lua_pushinteger(L, v);
  lua_setfield(L, -2, k);
}

void vmlab_set_num(lua_State *L, const char *k, double v) {
  lua_pushnumber(L, v);
  lua_setfield(L, -2, k);
}

void vmlab_set_bool(lua_State *L, const char *k, int v) {
  lua_pushboolean(L, v);
  lua_setfield(L, -2, k);
}

void vmlab_set_str(lua_State *L, const char *k, const char *v) {
  lua_pushstring(L, v);
  lua_setfield(L, -2, k);
}
