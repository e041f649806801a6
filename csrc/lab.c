/*
 * lab.c - small probes the experiments need and the region API does not
 * cover: an access that may fault (the fault comes back as data), a
 * recursion that runs into the stack guard, the addresses of this module's
 * own global, constant, bss, code, stack and heap objects, resource limits,
 * and a directory listing (the experiments registry finds its files with it).
 */
#include "vmlab.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

/* ------------------------------------------------------------------ */
/* vm.probe(address, "read"|"write" [, {value = 0}])                    */
/* vm.lab.probe(address, "read"|"write" [, {value = 0}]): no guard      */

static const char *const lab_probe_modes[] = {"read", "write", NULL};
static const char *const lab_probe_fields[] = {"catch", "value", NULL};

/* One byte at a: read it, or write v over it. Not instrumented: the address
   may be anything (NULL too), and the sanitizers would flag it themselves. */
__attribute__((no_sanitize("address", "undefined"), noinline)) static unsigned lab_access(uintptr_t a, int write, unsigned char v) {
  volatile unsigned char *p = (volatile unsigned char *)a;
  if (write) {
    *p = v;
    return v;
  }
  return *p;
}

/* The outcome table: the faults the access cost, and the signal if refused. */
static void lab_push_outcome(lua_State *L, const vmlab_guard_info *fi, long minor, long major, lua_Integer value) {
  lua_createtable(L, 0, 7);
  vmlab_set_int(L, "minor_faults", minor);
  vmlab_set_int(L, "major_faults", major);
  if (fi == NULL) {
    vmlab_set_int(L, "value", value);
    return;
  }
  const char *sn = vmlab_signal_name(fi->signal);
  vmlab_set_int(L, "signal", fi->signal);
  vmlab_set_str(L, "signal_name", sn ? sn : "?");
  vmlab_set_int(L, "code", fi->code);
  vmlab_set_str(L, "code_name", vmlab_fault_code_name(fi->signal, fi->code));
  vmlab_set_int(L, "address", (lua_Integer)fi->address);
}

/* The probe; unguarded = 1 for vm.lab.probe. */
static int lab_probe_at(lua_State *L, int unguarded) {
  lua_Integer a = luaL_checkinteger(L, 1);
  luaL_argcheck(L, a >= 0, 1, "address must not be negative");
  int write = vmlab_check_option(L, 2, "read", lab_probe_modes) == 1;
  vmlab_check_known_fields(L, 3, lab_probe_fields);
  int catch = vmlab_opt_bool_field(L, 3, "catch", !unguarded);
  if (!catch && !unguarded)
    return luaL_error(L, "bad option 'catch' (an access with no guard can end the process: use vm.lab.probe)");
  lua_Integer value = vmlab_opt_int_field(L, 3, "value", 0);
  if (value < 0 || value > 255) return luaL_error(L, "bad option 'value' (a byte, 0 to 255)");
  vmlab_guard_state *g = vmlab_guard_enter(L); /* allocated before counting too */
  lua_createtable(L, 0, 7); /* allocate before counting, so Lua's own faults stay out */
  lua_pop(L, 1);
  long minor0, major0, minor1, major1;
  vmlab_faults_now(&minor0, &major0); /* once to warm the path */
  vmlab_faults_now(&minor0, &major0);
  if (!catch) {
    unsigned got = lab_access((uintptr_t)a, write, (unsigned char)value);
    vmlab_faults_now(&minor1, &major1);
    lua_pushboolean(L, 1);
    lab_push_outcome(L, NULL, minor1 - minor0, major1 - major0, (lua_Integer)got);
    return 2;
  }
  volatile unsigned got = 0;
  if (sigsetjmp(g->jmp, 0) != 0) {
    vmlab_faults_now(&minor1, &major1);
    vmlab_guard_info fi = g->last;
    lua_pushboolean(L, 0);
    lab_push_outcome(L, &fi, minor1 - minor0, major1 - major0, 0);
    return 2;
  }
  g->active = 1;
  got = lab_access((uintptr_t)a, write, (unsigned char)value);
  vmlab_guard_end();
  vmlab_faults_now(&minor1, &major1);
  lua_pushboolean(L, 1);
  lab_push_outcome(L, NULL, minor1 - minor0, major1 - major0, (lua_Integer)got);
  return 2;
}

/* vm.probe(address, mode, opts) -> ok, outcome
   Reads (or, with mode "write", writes opts.value, default 0, over) the byte
   at address under the fault guard. A page fault the kernel resolves is
   invisible: ok is true and outcome is {value=, minor_faults=,
   major_faults=} (the faults this one access cost, from getrusage(2)). One it
   refuses (SIGSEGV, SIGBUS) comes back as data: ok is false and outcome is
   {signal=, signal_name=, code=, code_name=, address=, minor_faults=,
   major_faults=}. See sigaction(2) for si_code. */
static int lab_probe(lua_State *L) { return lab_probe_at(L, 0); }

/* vm.lab.probe(address, mode, opts) -> true, outcome -- the same access with
   no guard (unless {catch = true}): a refused access ends the process with
   the real signal. Use it in a child (vm.fork, vm.child.run). */
static int lab_probe_unguarded(lua_State *L) { return lab_probe_at(L, 1); }

/* ------------------------------------------------------------------ */
/* vm.lab.stack_recurse(frame_size, region, offset [, max_depth])      */

/* Each call holds a frame_size-byte array, writes the depth into its lowest
   byte (so every call touches the stack below the last one) and into the
   region, then calls itself. It never returns: the stack runs into its limit
   and the guard gap below it, and the kernel sends SIGSEGV. */
VMLAB_NO_ASAN __attribute__((noinline)) static long lab_recurse(size_t frame, volatile int64_t *slot, long depth,
                                                                long max_depth) {
  volatile unsigned char buf[frame];
  buf[0] = (unsigned char)depth;
  buf[frame - 1] = 0;
  *slot = depth;
  if (depth >= max_depth) return depth;
  long deeper = lab_recurse(frame, slot, depth + 1, max_depth);
  /* Reading buf (volatile, 0) after the call keeps the frame alive: no tail call. */
  return deeper + buf[frame - 1];
}

/* The stack ran out under the guard (the handler ran on the alternate signal
   stack): end the process by that signal, as it would end with no handler. */
__attribute__((noreturn)) static void lab_die_by(int sig) {
  struct sigaction dfl;
  memset(&dfl, 0, sizeof dfl);
  dfl.sa_handler = SIG_DFL;
  sigemptyset(&dfl.sa_mask);
  sigaction(sig, &dfl, NULL);
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, sig);
  sigprocmask(SIG_UNBLOCK, &set, NULL);
  raise(sig);
  abort();
}

/* vm.lab.stack_recurse(frame_size, region, offset [, max_depth]) -- does not
   return unless max_depth calls fit on the stack (then it returns the
   depth); run it in a child (vm.fork) and read the depth the child reached
   from the (shared) region at offset, a plain native-endian 64-bit integer.
   The writes to the region run under the fault guard (a read-only region
   raises); running out of stack ends the process by SIGSEGV, as it would end
   any program. */
static int lab_stack_recurse(lua_State *L) {
  lua_Integer frame = luaL_checkinteger(L, 1);
  luaL_argcheck(L, frame >= 16 && frame <= (1 << 20), 1, "frame_size must be 16 bytes to 1 MiB");
  vmlab_region *r = vmlab_check_open(L, 2);
  lua_Integer off = luaL_optinteger(L, 3, 0);
  luaL_argcheck(L, off >= 0 && (off % 8) == 0, 3, "offset must be a non-negative multiple of 8");
  luaL_argcheck(L, (lua_Unsigned)off + 8 <= r->size, 3, "offset + 8 is past the end of the region");
  luaL_argcheck(L, (((uintptr_t)r->addr + (uintptr_t)off) & 7) == 0, 3, "offset + the region's address must be 8-byte aligned");
  lua_Integer max_depth = luaL_optinteger(L, 4, (lua_Integer)LONG_MAX);
  luaL_argcheck(L, max_depth > 0, 4, "max_depth must be positive");
  volatile int64_t *slot = (volatile int64_t *)(void *)(r->addr + off);
  const uintptr_t slot_at = (uintptr_t)slot;
  vmlab_guard_state *g = vmlab_guard_enter(L);
  if (sigsetjmp(g->jmp, 0) != 0) {
    if (g->last.signal == SIGBUS || g->last.address - slot_at < 8)
      return vmlab_guard_raise(L, "stack_recurse (writing the depth into the region)");
    lab_die_by(g->last.signal); /* the stack, not the region */
  }
  g->active = 1;
  *slot = 0;
  long d = lab_recurse((size_t)frame, slot, 1, (long)max_depth);
  vmlab_guard_end();
  lua_pushinteger(L, d);
  return 1;
}

/* ------------------------------------------------------------------ */
/* vm.addresses()                                                       */

/* Objects of this module in the segments the regions experiment shows. */
int vmlab_lab_global = 42;                             /* .data: an initialised global */
static const char lab_rodata[] = "vmlab constant data"; /* .rodata: a constant */
/* .bss: zero-initialised; page-aligned, so that it starts past the last page
   of .data, in the anonymous mapping the loader adds after the file's data */
static char lab_bss[8192] __attribute__((aligned(4096)));

/* vm.addresses() -> {global=, static_data=, bss=, text=, stack=, heap=}
   global: an initialised C global (.data); static_data: a constant string
   (.rodata); bss: a zero-initialised static array (.bss); text: the address
   of this C function (.text); stack: a local variable of this call; heap: a
   64-byte malloc(3) block (freed again before returning, so it only tells
   where small blocks live). All in this module (vmlab/core.so), not in the
   lua5.4 executable. */
static int lab_addresses(lua_State *L) {
  volatile int local = 1;
  void *block = malloc(64);
  lua_createtable(L, 0, 6);
  vmlab_set_int(L, "global", (lua_Integer)(uintptr_t)&vmlab_lab_global);
  vmlab_set_int(L, "static_data", (lua_Integer)(uintptr_t)lab_rodata);
  vmlab_set_int(L, "bss", (lua_Integer)(uintptr_t)lab_bss);
  vmlab_set_int(L, "text", (lua_Integer)(uintptr_t)&lab_addresses);
  vmlab_set_int(L, "stack", (lua_Integer)(uintptr_t)&local);
  if (block != NULL) vmlab_set_int(L, "heap", (lua_Integer)(uintptr_t)block);
  free(block);
  return 1;
}

/* ------------------------------------------------------------------ */
/* vm.getrlimit(name), vm.setrlimit(name, soft, hard)                  */

static const char *const lab_rlimit_names[] = {"as", "core", "cpu", "data", "fsize", "memlock", "nofile",
                                               "nproc", "rss", "stack", NULL};
static const int lab_rlimit_values[] = {RLIMIT_AS, RLIMIT_CORE, RLIMIT_CPU, RLIMIT_DATA, RLIMIT_FSIZE,
                                        RLIMIT_MEMLOCK, RLIMIT_NOFILE, RLIMIT_NPROC, RLIMIT_RSS,
                                        RLIMIT_STACK};

static void lab_push_rlim(lua_State *L, rlim_t v) {
  if (v == RLIM_INFINITY) lua_pushnumber(L, HUGE_VAL);
  else lua_pushinteger(L, (lua_Integer)v);
}

/* A limit argument: a non-negative integer, math.huge or "unlimited". */
static rlim_t lab_check_rlim(lua_State *L, int idx, rlim_t def) {
  if (lua_isnoneornil(L, idx)) return def;
  if (lua_type(L, idx) == LUA_TSTRING) {
    luaL_argcheck(L, strcmp(vmlab_check_cstring(L, idx, NULL), "unlimited") == 0, idx,
                  "a limit is a non-negative integer, math.huge or \"unlimited\"");
    return RLIM_INFINITY;
  }
  lua_Number n = luaL_checknumber(L, idx);
  if (n == HUGE_VAL) return RLIM_INFINITY;
  int isint = 0;
  lua_Integer i = lua_tointegerx(L, idx, &isint);
  luaL_argcheck(L, isint && i >= 0, idx, "a limit is a non-negative integer, math.huge or \"unlimited\"");
  return (rlim_t)i;
}

/* vm.getrlimit(name) -> soft, hard  -- see getrlimit(2)
   name: "as", "core", "cpu", "data", "fsize", "memlock", "nofile", "nproc",
   "rss", "stack". Bytes (or a count, or seconds for "cpu"); no limit
   (RLIM_INFINITY) is math.huge, so `size < soft` works either way. */
static int lab_getrlimit(lua_State *L) {
  int which = lab_rlimit_values[vmlab_check_option(L, 1, NULL, lab_rlimit_names)];
  struct rlimit rl;
  if (getrlimit(which, &rl) != 0) {
    int err = errno;
    return vmlab_push_syserror(L, "getrlimit", err);
  }
  lab_push_rlim(L, rl.rlim_cur);
  lab_push_rlim(L, rl.rlim_max);
  return 2;
}

/* vm.setrlimit(name, soft [, hard]) -> true | nil, msg, errno  -- see setrlimit(2)
   soft/hard: integer, math.huge or "unlimited"; hard defaults to the current
   hard limit. Raising the hard limit needs privilege. */
static int lab_setrlimit(lua_State *L) {
  int which = lab_rlimit_values[vmlab_check_option(L, 1, NULL, lab_rlimit_names)];
  struct rlimit rl;
  if (getrlimit(which, &rl) != 0) {
    int err = errno;
    return vmlab_push_syserror(L, "getrlimit", err);
  }
  rl.rlim_cur = lab_check_rlim(L, 2, rl.rlim_cur);
  rl.rlim_max = lab_check_rlim(L, 3, rl.rlim_max);
  if (setrlimit(which, &rl) != 0) {
    int err = errno;
    return vmlab_push_syserror(L, "setrlimit", err);
  }
  lua_pushboolean(L, 1);
  return 1;
}

/* ------------------------------------------------------------------ */
/* vm.listdir(path)                                                     */

static int lab_cmp(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* vm.listdir(path) -> {name, ...} sorted, without "." and ".."
   | nil, msg, errno  -- see opendir(3), readdir(3) */
static int lab_listdir(lua_State *L) {
  const char *path = vmlab_check_cstring(L, 1, NULL);
  DIR *d = opendir(path);
  if (d == NULL) {
    int err = errno;
    return vmlab_push_syserror(L, lua_pushfstring(L, "opendir %s", path), err);
  }
  size_t n = 0, cap = 16;
  char **names = malloc(cap * sizeof *names);
  int err = names == NULL ? ENOMEM : 0;
  struct dirent *de;
  while (err == 0 && (errno = 0, de = readdir(d)) != NULL) {
    if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) continue;
    if (n == cap) {
      char **more = realloc(names, 2 * cap * sizeof *names);
      if (more == NULL) { err = ENOMEM; break; }
      names = more;
      cap *= 2;
    }
    names[n] = strdup(de->d_name);
    if (names[n] == NULL) { err = ENOMEM; break; }
    n++;
  }
  if (err == 0 && errno != 0) err = errno;
  closedir(d);
  if (err == 0) {
    qsort(names, n, sizeof *names, lab_cmp);
    lua_createtable(L, n <= INT_MAX ? (int)n : 0, 0);
    for (size_t i = 0; i < n; i++) {
      lua_pushstring(L, names[i]);
      lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
  }
  for (size_t i = 0; i < n; i++) free(names[i]);
  free(names);
  if (err != 0) return vmlab_push_syserror(L, "readdir", err);
  return 1;
}

void vmlab_open_lab(lua_State *L) {
  static const luaL_Reg funcs[] = {{"probe", lab_probe},         {"addresses", lab_addresses},
                                   {"getrlimit", lab_getrlimit}, {"setrlimit", lab_setrlimit},
                                   {"listdir", lab_listdir},     {NULL, NULL}};
  luaL_setfuncs(L, funcs, 0);
  /* vm.lab: the probes that can end the process on purpose, kept apart */
  static const luaL_Reg lab[] = {{"probe", lab_probe_unguarded}, {"stack_recurse", lab_stack_recurse},
                                 {NULL, NULL}};
  luaL_newlib(L, lab);
  lua_setfield(L, -2, "lab");
}
