/*
 * blocks.c - many heap blocks at once, the workload that shows how an
 * allocator behaves (the allocators experiment): vm.blocks(count, size)
 * mallocs and writes `count` blocks of `size` bytes in C, b:free(step) frees
 * all but every step-th, b:close() frees the rest. Lua itself allocates
 * nothing per block, so what the allocator does is what RSS shows.
 * vm.allocator_purge() asks whichever allocator serves this process to give
 * its free memory back: jemalloc's mallctl("arena.<all>.purge"), mimalloc's
 * mi_collect(true), tcmalloc's MallocExtension_ReleaseFreeMemory(), else
 * glibc's malloc_trim(0). See malloc(3), malloc_trim(3), dlsym(3).
 */
#include "vmlab.h"

#include <dlfcn.h>
#include <errno.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define BLOCKS_MT "vmlab.Blocks"
#define BLOCKS_MAX_COUNT ((lua_Integer)1 << 26)

typedef struct blocks {
  void **ptr;    /* count slots, NULL once freed; NULL array once closed */
  size_t count;  /* slots */
  size_t live;   /* blocks not freed yet */
  size_t size;   /* bytes of each block */
  pid_t owner;   /* only the process that allocated frees */
  double seconds; /* time vm.blocks took (malloc + first write) */
} blocks;

static blocks *blocks_check(lua_State *L, int idx) {
  return (blocks *)luaL_checkudata(L, idx, BLOCKS_MT);
}

static blocks *blocks_check_open(lua_State *L, int idx) {
  blocks *b = blocks_check(L, idx);
  if (b->ptr == NULL) luaL_error(L, "attempt to use closed blocks");
  if (b->owner != getpid()) luaL_error(L, "these blocks belong to process %d", (int)b->owner);
  return b;
}

/* Free every block still held (owner only); safe to call twice. */
static void blocks_release(blocks *b) {
  if (b->ptr == NULL) return;
  if (b->owner == getpid()) {
    for (size_t i = 0; i < b->count; i++) free(b->ptr[i]);
    free(b->ptr);
  }
  b->ptr = NULL;
  b->live = 0;
}

/* vm.blocks(count, size) -> Blocks, or nil, msg, errno (nothing held then).
   Each block is malloc'd and written in full (every page of it is real). */
static int blocks_new(lua_State *L) {
  lua_Integer count = vmlab_check_int_range(L, 1, 1, BLOCKS_MAX_COUNT);
  size_t size = vmlab_check_size(L, 2);
  luaL_argcheck(L, size > 0, 2, "size must be positive");
  blocks *b = lua_newuserdatauv(L, sizeof *b, 0);
  memset(b, 0, sizeof *b);
  b->owner = getpid();
  luaL_setmetatable(L, BLOCKS_MT);
  b->ptr = calloc((size_t)count, sizeof *b->ptr);
  if (b->ptr == NULL) return vmlab_push_syserror(L, "blocks", ENOMEM);
  b->count = (size_t)count;
  b->size = size;
  double t0 = vmlab_now();
  for (size_t i = 0; i < b->count; i++) {
    errno = 0;
    b->ptr[i] = malloc(size);
    if (b->ptr[i] == NULL) {
      int err = errno ? errno : ENOMEM;
      blocks_release(b);
      return vmlab_push_syserror(L, "malloc", err);
    }
    memset(b->ptr[i], (int)(i & 0xff) | 1, size);
    b->live++;
  }
  b->seconds = vmlab_now() - t0;
  return 1;
}

/* b:free(step = 1) -> freed, seconds: frees every block whose index is not a
   multiple of step (step 1: all of them; step 10: nine in ten, scattered). */
static int blocks_free(lua_State *L) {
  blocks *b = blocks_check_open(L, 1);
  lua_Integer step = lua_isnoneornil(L, 2) ? 1 : vmlab_check_int_range(L, 2, 1, BLOCKS_MAX_COUNT);
  size_t freed = 0;
  double t0 = vmlab_now();
  for (size_t i = 0; i < b->count; i++) {
    if (b->ptr[i] != NULL && (step == 1 || i % (size_t)step != 0)) {
      free(b->ptr[i]);
      b->ptr[i] = NULL;
      freed++;
    }
  }
  b->live -= freed;
  lua_pushinteger(L, (lua_Integer)freed);
  lua_pushnumber(L, vmlab_now() - t0);
  return 2;
}

static int blocks_close(lua_State *L) {
  blocks_release(blocks_check(L, 1));
  return 0;
}

static int blocks_len(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)blocks_check_open(L, 1)->live);
  return 1;
}

/* fields: count (slots), live, size, bytes (live * size), seconds, closed */
static int blocks_index(lua_State *L) {
  blocks *b = blocks_check(L, 1);
  const char *k = lua_type(L, 2) == LUA_TSTRING ? lua_tostring(L, 2) : "";
  if (strcmp(k, "count") == 0) lua_pushinteger(L, (lua_Integer)b->count);
  else if (strcmp(k, "live") == 0) lua_pushinteger(L, (lua_Integer)b->live);
  else if (strcmp(k, "size") == 0) lua_pushinteger(L, (lua_Integer)b->size);
  else if (strcmp(k, "bytes") == 0) lua_pushinteger(L, (lua_Integer)(b->live * b->size));
  else if (strcmp(k, "seconds") == 0) lua_pushnumber(L, b->seconds);
  else if (strcmp(k, "closed") == 0) lua_pushboolean(L, b->ptr == NULL);
  else {
    lua_pushvalue(L, 2);
    lua_rawget(L, lua_upvalueindex(1));
  }
  return 1;
}

static int blocks_tostring(lua_State *L) {
  blocks *b = blocks_check(L, 1);
  if (b->ptr == NULL) lua_pushliteral(L, "vmlab.Blocks (closed)");
  else
    lua_pushfstring(L, "vmlab.Blocks %I of %I blocks of %I bytes live", (lua_Integer)b->live, (lua_Integer)b->count,
                    (lua_Integer)b->size);
  return 1;
}

/* vm.allocator_purge() -> method: ask the allocator serving this process to
   return its free memory to the kernel; the string names what was called. */
static int blocks_purge(lua_State *L) {
  typedef int (*mallctl_fn)(const char *, void *, size_t *, void *, size_t);
  typedef void (*collect_fn)(_Bool);
  typedef void (*release_fn)(void);
  void *f;
  if ((f = dlsym(RTLD_DEFAULT, "mallctl")) != NULL) {
    /* 4096 is MALLCTL_ARENAS_ALL in jemalloc 5 */
    int rc = ((mallctl_fn)f)("arena.4096.purge", NULL, NULL, NULL, 0);
    if (rc != 0) return vmlab_push_syserror(L, "mallctl(arena.4096.purge)", rc);
    lua_pushliteral(L, "mallctl(\"arena.4096.purge\")");
  } else if ((f = dlsym(RTLD_DEFAULT, "mi_collect")) != NULL) {
    ((collect_fn)f)(1);
    lua_pushliteral(L, "mi_collect(true)");
  } else if ((f = dlsym(RTLD_DEFAULT, "MallocExtension_ReleaseFreeMemory")) != NULL) {
    ((release_fn)f)();
    lua_pushliteral(L, "MallocExtension_ReleaseFreeMemory()");
  } else {
    malloc_trim(0);
    lua_pushliteral(L, "malloc_trim(0)");
  }
  return 1;
}

void vmlab_open_blocks(lua_State *L) {
  static const luaL_Reg methods[] = {{"free", blocks_free}, {"close", blocks_close}, {NULL, NULL}};
  vmlab_new_class(L, BLOCKS_MT, methods, blocks_index, blocks_close, blocks_tostring);
  luaL_getmetatable(L, BLOCKS_MT);
  lua_pushcfunction(L, blocks_len);
  lua_setfield(L, -2, "__len");
  lua_pop(L, 1);
  lua_pushcfunction(L, blocks_new);
  lua_setfield(L, -2, "blocks");
  lua_pushcfunction(L, blocks_purge);
  lua_setfield(L, -2, "allocator_purge");
}
