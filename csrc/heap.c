/*
 * heap.c - malloc(3), calloc(3), realloc(3), free(3) and malloc_trim(3) as
 * Regions of kind "heap": the same touch/read/write/resident/frames methods
 * as mapped memory, released with free(3).
 */
#include "vmlab.h"

#include <errno.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* A failed allocation: nil, "malloc: Cannot allocate memory", ENOMEM. */
static int heap_fail(lua_State *L, const char *what) {
  int err = errno ? errno : ENOMEM;
  return vmlab_push_syserror(L, what, err);
}

/* vm.malloc(bytes) -> Region of kind "heap" -- see malloc(3) */
static int heap_malloc(lua_State *L) {
  size_t size = vmlab_check_size(L, 1);
  vmlab_region *r = vmlab_region_new(L);
  errno = 0;
  r->addr = malloc(size);
  if (r->addr == NULL) return heap_fail(L, "malloc");
  r->size = size;
  r->kind = VMLAB_KIND_HEAP;
  r->prot = PROT_READ | PROT_WRITE;
  return 1;
}

/* vm.calloc(n, size) -> Region -- see calloc(3); n * size must not overflow */
static int heap_calloc(lua_State *L) {
  size_t n = vmlab_check_size(L, 1), each = vmlab_check_size(L, 2);
  luaL_argcheck(L, each <= ((size_t)INT64_MAX / 2) / n, 2, "n * size is too large");
  vmlab_region *r = vmlab_region_new(L);
  errno = 0;
  r->addr = calloc(n, each);
  if (r->addr == NULL) return heap_fail(L, "calloc");
  r->size = n * each;
  r->kind = VMLAB_KIND_HEAP;
  r->prot = PROT_READ | PROT_WRITE;
  return 1;
}

/* h:realloc(bytes) -> h, old_address (the block may move) -- see realloc(3).
   On failure the old block stays valid: nil, message, errno. */
static int heap_realloc(lua_State *L) {
  vmlab_region *r = vmlab_check_open(L, 1);
  if (r->kind != VMLAB_KIND_HEAP) return luaL_error(L, "realloc: only heap regions (vm.malloc, vm.calloc) can be reallocated");
  size_t size = vmlab_check_size(L, 2);
  if (r->owner != getpid()) return luaL_error(L, "realloc: this block belongs to process %d", (int)r->owner);
  vmlab_region_check_idle(L, r, "realloc");
  errno = 0;
  void *p = realloc(r->addr, size);
  if (p == NULL) return heap_fail(L, "realloc");
  lua_Integer old = (lua_Integer)(uintptr_t)r->addr;
  r->addr = p;
  r->size = size;
  lua_settop(L, 1);
  lua_pushinteger(L, old);
  return 2;
}

/* vm.malloc_trim(pad) -> true if memory was given back -- see malloc_trim(3) */
static int heap_malloc_trim(lua_State *L) {
  size_t pad = vmlab_opt_count(L, 1, 0);
  lua_pushboolean(L, malloc_trim(pad));
  return 1;
}

/* mallinfo2(3) came with glibc 2.33. Before it, glibc's mallinfo(3) has int
   fields, which wrap past 2 GiB (the fallback, said in the table as
   wraps_at_2gib = true); musl has neither: vm.mallinfo then returns
   nil, message, ENOSYS. Build with -DVMLAB_HAVE_MALLINFO2=0 to try the fallback. */
#ifndef VMLAB_HAVE_MALLINFO2
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 33))
#define VMLAB_HAVE_MALLINFO2 1
#else
#define VMLAB_HAVE_MALLINFO2 0
#endif
#endif

/* vm.mallinfo() -> {arena=, mmapped=, mmapped_blocks=, in_use=, free=, releasable=} -- see mallinfo2(3) */
static int heap_mallinfo(lua_State *L) {
#if VMLAB_HAVE_MALLINFO2
  struct mallinfo2 mi = mallinfo2();
#elif defined(__GLIBC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations" /* only newer glibc deprecates it */
  struct mallinfo mi = mallinfo();
#pragma GCC diagnostic pop
#else
  return vmlab_push_syserror(L, "mallinfo (not in this C library)", ENOSYS);
#endif
#if VMLAB_HAVE_MALLINFO2 || defined(__GLIBC__)
  lua_createtable(L, 0, 7);
  if (!VMLAB_HAVE_MALLINFO2) vmlab_set_bool(L, "wraps_at_2gib", 1);
  vmlab_set_int(L, "arena", (lua_Integer)mi.arena);
  vmlab_set_int(L, "mmapped", (lua_Integer)mi.hblkhd);
  vmlab_set_int(L, "mmapped_blocks", (lua_Integer)mi.hblks);
  vmlab_set_int(L, "in_use", (lua_Integer)mi.uordblks);
  vmlab_set_int(L, "free", (lua_Integer)mi.fordblks);
  vmlab_set_int(L, "releasable", (lua_Integer)mi.keepcost);
  return 1;
#endif
}

void vmlab_open_heap(lua_State *L) {
  static const luaL_Reg methods[] = {{"realloc", heap_realloc}, {NULL, NULL}};
  vmlab_region_add_methods(L, methods);
  static const luaL_Reg funcs[] = {{"malloc", heap_malloc}, {"calloc", heap_calloc},
                                   {"malloc_trim", heap_malloc_trim}, {"mallinfo", heap_mallinfo},
                                   {NULL, NULL}};
  luaL_setfuncs(L, funcs, 0);
}
