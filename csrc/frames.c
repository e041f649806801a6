/*
 * frames.c - which physical frame backs each page: /proc/self/pagemap, see
 * proc(5) and the kernel's admin-guide/mm/pagemap.rst. Frame numbers are
 * shown to root (CAP_SYS_ADMIN) only; elsewhere they read as 0 and we say so
 * instead of returning zeros.
 */
#include "vmlab.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#define PAGE_DOWN(x) ((x) & ~(uintptr_t)(vmlab_page_size - 1))
#define PAGE_UP(x) PAGE_DOWN((x) + vmlab_page_size - 1)


#define PM_PRESENT (1ULL << 63)
#define PM_SWAPPED (1ULL << 62)
#define PM_FILE_SHARED (1ULL << 61)
#define PM_EXCLUSIVE (1ULL << 56)
#define PM_SOFT_DIRTY (1ULL << 55)
#define PM_PFN_MASK ((1ULL << 55) - 1)

/* Read count pagemap entries from the page holding address. 0 or errno. */
static int frames_pagemap_read(uintptr_t address, size_t count, uint64_t *out) {
  int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return errno;
  size_t want = count * sizeof *out, got = 0;
  off_t at = (off_t)(address / vmlab_page_size * sizeof *out);
  while (got < want) {
    ssize_t n = pread(fd, (char *)out + got, want - got, at + (off_t)got);
    if (n <= 0) {
      int err = n < 0 ? errno : EIO;
      close(fd);
      return err;
    }
    got += (size_t)n;
  }
  close(fd);
  return 0;
}

static const char hidden_reason[] =
    "frame numbers are hidden: /proc/self/pagemap shows PFN 0 without CAP_SYS_ADMIN";

/* r:frames(first_page, count) -> {pfn or false, ...}  (false: not present) */
static int frames_region(lua_State *L) {
  vmlab_region *r = vmlab_check_open(L, 1);
  uintptr_t first_addr = PAGE_DOWN((uintptr_t)r->addr);
  size_t total = (PAGE_UP((uintptr_t)r->addr + r->size) - first_addr) / vmlab_page_size;
  size_t first = vmlab_opt_count(L, 2, 0);
  luaL_argcheck(L, first < total, 2, "first_page is past the last page of the region");
  size_t count = vmlab_opt_count(L, 3, total - first);
  luaL_argcheck(L, count <= total - first, 3, "first_page + count is past the end of the region");
  luaL_argcheck(L, count > 0, 3, "count must be positive");
  uint64_t *e = lua_newuserdatauv(L, count * sizeof *e, 0);
  int err = frames_pagemap_read(first_addr + first * vmlab_page_size, count, e);
  if (err != 0) return vmlab_push_syserror(L, "pagemap", err);
  int present = 0, hidden = 1;
  lua_createtable(L, (int)count, 0);
  for (size_t i = 0; i < count; i++) {
    if (e[i] & PM_PRESENT) {
      present = 1;
      if (e[i] & PM_PFN_MASK) hidden = 0;
      lua_pushinteger(L, (lua_Integer)(e[i] & PM_PFN_MASK));
    } else {
      lua_pushboolean(L, 0);
    }
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
  if (present && hidden) {
    lua_pushnil(L);
    lua_pushstring(L, hidden_reason);
    return 2;
  }
  return 1;
}

/* vm.pagemap(address) -> {present=, pfn=, swapped=, file_or_shared=, exclusive=, soft_dirty=, physical_address=}
   for any address of this process (a global, a stack slot, a heap block). */
static int frames_pagemap(lua_State *L) {
  lua_Integer a = luaL_checkinteger(L, 1);
  luaL_argcheck(L, a >= 0, 1, "address must not be negative");
  uint64_t e;
  int err = frames_pagemap_read((uintptr_t)a, 1, &e);
  if (err != 0) return vmlab_push_syserror(L, "pagemap", err);
  uint64_t pfn = e & PM_PFN_MASK;
  lua_createtable(L, 0, 8);
  vmlab_set_bool(L, "present", (e & PM_PRESENT) != 0);
  vmlab_set_bool(L, "swapped", (e & PM_SWAPPED) != 0);
  vmlab_set_bool(L, "file_or_shared", (e & PM_FILE_SHARED) != 0);
  vmlab_set_bool(L, "exclusive", (e & PM_EXCLUSIVE) != 0);
  vmlab_set_bool(L, "soft_dirty", (e & PM_SOFT_DIRTY) != 0);
  if ((e & PM_PRESENT) && pfn != 0) {
    vmlab_set_int(L, "pfn", (lua_Integer)pfn);
    vmlab_set_int(L, "physical_address", (lua_Integer)(pfn * vmlab_page_size + ((uintptr_t)a & (vmlab_page_size - 1))));
  } else if (e & PM_PRESENT) {
    vmlab_set_str(L, "hidden", hidden_reason);
  }
  return 1;
}

void vmlab_open_frames(lua_State *L) {
  static const luaL_Reg methods[] = {{"frames", frames_region}, {NULL, NULL}};
  vmlab_region_add_methods(L, methods);
  lua_pushcfunction(L, frames_pagemap);
  lua_setfield(L, -2, "pagemap");
}
