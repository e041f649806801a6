/*
 * frames.c - which physical frame backs each page: /proc/self/pagemap, see
 * proc(5) and the kernel's admin-guide/mm/pagemap.rst. Frame numbers are
 * shown to root (CAP_SYS_ADMIN) only; elsewhere they read as 0 and we say so
 * instead of returning zeros.
 */
#include "vmlab.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <unistd.h>

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
  uintptr_t first_addr = VMLAB_PAGE_DOWN((uintptr_t)r->addr);
  size_t total = (VMLAB_PAGE_UP((uintptr_t)r->addr + r->size) - first_addr) / vmlab_page_size;
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
  if (present && hidden) { /* like a refused system call: nil, message, errno */
    lua_pushnil(L);
    lua_pushstring(L, hidden_reason);
    lua_pushinteger(L, EPERM);
    return 3;
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

/*
 * PAGEMAP_SCAN (Linux 6.7+, see the kernel's admin-guide/mm/pagemap.rst): an
 * ioctl on /proc/self/pagemap that reports page categories for a range,
 * without privilege, PAGE_IS_PFNZERO among them (a page that maps the shared
 * zero page). Older headers lack it: the ABI is stable, so it is spelled out
 * here, and an older kernel answers ENOTTY or EINVAL, which we pass on.
 */
#ifndef PAGEMAP_SCAN
struct page_region {
  uint64_t start, end, categories;
};
struct pm_scan_arg {
  uint64_t size, flags, start, end, walk_end, vec, vec_len, max_pages;
  uint64_t category_inverted, category_mask, category_anyof_mask, return_mask;
};
#define PAGEMAP_SCAN _IOWR('f', 16, struct pm_scan_arg)
#define PAGE_IS_WPALLOWED (1 << 0)
#define PAGE_IS_WRITTEN (1 << 1)
#define PAGE_IS_FILE (1 << 2)
#define PAGE_IS_PRESENT (1 << 3)
#define PAGE_IS_SWAPPED (1 << 4)
#define PAGE_IS_PFNZERO (1 << 5)
#define PAGE_IS_HUGE (1 << 6)
#define PAGE_IS_SOFT_DIRTY (1 << 7)
#endif

static const struct {
  const char *name;
  uint64_t bit;
} frames_scan_categories[] = {
    {"present", PAGE_IS_PRESENT}, {"pfnzero", PAGE_IS_PFNZERO}, {"written", PAGE_IS_WRITTEN},
    {"file", PAGE_IS_FILE},       {"swapped", PAGE_IS_SWAPPED}, {"huge", PAGE_IS_HUGE},
    {"soft_dirty", PAGE_IS_SOFT_DIRTY},
};
#define FRAMES_NCAT (sizeof frames_scan_categories / sizeof frames_scan_categories[0])

/* Count the pages of [start, end) in each category. 0 or errno. */
static int frames_scan(uintptr_t start, uintptr_t end, size_t counts[FRAMES_NCAT]) {
  int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return errno;
  uint64_t all = 0;
  for (size_t c = 0; c < FRAMES_NCAT; c++) all |= frames_scan_categories[c].bit;
  struct page_region vec[64];
  uintptr_t at = start;
  int err = 0;
  while (at < end) {
    struct pm_scan_arg arg = {
        .size = sizeof arg, .start = at, .end = end, .vec = (uintptr_t)vec, .vec_len = 64,
        .category_anyof_mask = all, .return_mask = all,
    };
    int n = ioctl(fd, PAGEMAP_SCAN, &arg);
    if (n < 0) {
      err = errno;
      break;
    }
    for (int i = 0; i < n; i++) {
      size_t pages = (size_t)((vec[i].end - vec[i].start) / vmlab_page_size);
      for (size_t c = 0; c < FRAMES_NCAT; c++)
        if (vec[i].categories & frames_scan_categories[c].bit) counts[c] += pages;
    }
    if (arg.walk_end <= at) { /* no progress: never loop for ever */
      err = EIO;
      break;
    }
    at = (uintptr_t)arg.walk_end;
  }
  close(fd);
  return err;
}

/* Push {pages=, present=, pfnzero=, written=, file=, swapped=, huge=, soft_dirty=}
   for [start, end), or nil, msg, errno (ENOTTY/EINVAL: a kernel before 6.7). */
static int frames_push_scan(lua_State *L, uintptr_t start, uintptr_t end) {
  size_t counts[FRAMES_NCAT] = {0};
  int err = frames_scan(start, end, counts);
  if (err != 0) return vmlab_push_syserror(L, "PAGEMAP_SCAN", err);
  lua_createtable(L, 0, (int)FRAMES_NCAT + 1);
  vmlab_set_int(L, "pages", (lua_Integer)((end - start) / vmlab_page_size));
  for (size_t c = 0; c < FRAMES_NCAT; c++) vmlab_set_int(L, frames_scan_categories[c].name, (lua_Integer)counts[c]);
  return 1;
}

/* r:scan(offset, length) -> page counts by category (PAGEMAP_SCAN), see above */
static int frames_region_scan(lua_State *L) {
  vmlab_region *r = vmlab_check_open(L, 1);
  size_t off, len;
  vmlab_check_range(L, 2, 3, r->size, &off, &len);
  uintptr_t start = VMLAB_PAGE_DOWN((uintptr_t)r->addr + off);
  uintptr_t end = VMLAB_PAGE_UP((uintptr_t)r->addr + off + len);
  return frames_push_scan(L, start, end);
}

/* vm.pagemap_scan(address, length) -> page counts by category for any range of this process */
static int frames_pagemap_scan(lua_State *L) {
  lua_Integer a = luaL_checkinteger(L, 1);
  lua_Integer n = luaL_checkinteger(L, 2);
  luaL_argcheck(L, a >= 0, 1, "address must not be negative");
  luaL_argcheck(L, n > 0, 2, "length must be positive");
  luaL_argcheck(L, (lua_Unsigned)n <= UINTPTR_MAX - (uintptr_t)a - vmlab_page_size, 2, "address + length overflows");
  return frames_push_scan(L, VMLAB_PAGE_DOWN((uintptr_t)a), VMLAB_PAGE_UP((uintptr_t)a + (uintptr_t)n));
}

void vmlab_open_frames(lua_State *L) {
  static const luaL_Reg methods[] = {{"frames", frames_region}, {"scan", frames_region_scan}, {NULL, NULL}};
  vmlab_region_add_methods(L, methods);
  lua_pushcfunction(L, frames_pagemap);
  lua_setfield(L, -2, "pagemap");
  lua_pushcfunction(L, frames_pagemap_scan);
  lua_setfield(L, -2, "pagemap_scan");
}
