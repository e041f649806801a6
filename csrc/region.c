/*
 * region.c - the Region object: memory you hold, and what you can do to it.
 *
 * vm.mmap() makes one (see mmap(2)); heap.c and shm.c make the other kinds.
 * Every method checks that the region is still open; every access to the
 * memory itself runs inside the fault guard, so a region made read-only,
 * a file truncated under a mapping or a PROT_NONE page gives a Lua error.
 */
#include "vmlab.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

static const char *const prot_names[] = {"none", "r", "w", "rw", "rx", "rwx", "x", NULL};
static const int prot_values[] = {PROT_NONE, PROT_READ, PROT_WRITE, PROT_READ | PROT_WRITE,
                                  PROT_READ | PROT_EXEC, PROT_READ | PROT_WRITE | PROT_EXEC,
                                  PROT_EXEC};
static const char *const kind_names[] = {"mmap", "heap", "shm"};

static int prot_from_name(lua_State *L, const char *name, const char *what) {
  for (size_t i = 0; prot_names[i] != NULL; i++)
    if (strcmp(prot_names[i], name) == 0) return prot_values[i];
  return luaL_error(L, "%s (unknown protection '%s'; use none, r, rw, rx or rwx)", what, name);
}

static const char *prot_name(int prot) {
  for (size_t i = 0; i < sizeof prot_values / sizeof prot_values[0]; i++)
    if (prot_values[i] == prot) return prot_names[i];
  return "?";
}

/* ------------------------------------------------------------------ */
/* The object                                                          */

vmlab_region *vmlab_region_new(lua_State *L) {
  vmlab_region *r = lua_newuserdatauv(L, sizeof *r, 0);
  memset(r, 0, sizeof *r);
  r->fd = -1;
  r->owner = getpid();
  luaL_setmetatable(L, VMLAB_REGION_MT);
  return r;
}

vmlab_region *vmlab_check_region(lua_State *L, int idx) {
  return luaL_checkudata(L, idx, VMLAB_REGION_MT);
}

vmlab_region *vmlab_check_open(lua_State *L, int idx) {
  vmlab_region *r = vmlab_check_region(L, idx);
  if (r->addr == NULL) luaL_error(L, "attempt to use a closed region");
  return r;
}

void vmlab_region_release(vmlab_region *r) {
  if (r->addr == NULL) return;
  /* Fork safety: only the creating process gives anything back. A forked
     child forgets the region; the parent's mapping and name stay intact. */
  if (r->owner == getpid()) {
    if (r->kind == VMLAB_KIND_HEAP)
      free(r->addr);
    else
      munmap(r->addr, r->map_size);
    if (r->fd >= 0) close(r->fd);
    if (r->unlink_on_close && r->name != NULL) shm_unlink(r->name);
    free(r->name);
  }
  r->addr = NULL;
  r->fd = -1;
  r->name = NULL;
  r->locked = 0;
}

void vmlab_region_check_idle(lua_State *L, vmlab_region *r, const char *what) {
  if (r->busy > 0)
    luaL_error(L, "%s: the region is in use by touch (a touch hook cannot close, reallocate or change "
                  "the mapping of the region being walked)", what);
}

/* r:close() -- also __close; closing twice is harmless. Refused while a
   walk (r:touch, from its hook) holds the region. */
static int region_close(lua_State *L) {
  vmlab_region *r = vmlab_check_region(L, 1);
  vmlab_region_check_idle(L, r, "close");
  vmlab_region_release(r);
  return 0;
}

/* __gc: a region being walked is on the walk's stack, so it is never
   collected then; at lua_close everything goes. */
static int region_gc(lua_State *L) {
  vmlab_region_release(vmlab_check_region(L, 1));
  return 0;
}

/* ------------------------------------------------------------------ */
/* vm.mmap(bytes, opts)  -- see mmap(2)                                */

static const char *const mmap_fields[] = {"prot", "share", "file", "offset", "populate", "noreserve",
                                          "hugetlb", "fixed_align", NULL};

/* Map size+align bytes, keep an align-aligned window of size bytes. */
static void *map_aligned(size_t size, size_t align, int prot, int flags, int fd, off_t off) {
  if (align <= vmlab_page_size) return mmap(NULL, size, prot, flags, fd, off);
  if (size > SIZE_MAX - align) {
    errno = ENOMEM;
    return MAP_FAILED;
  }
  unsigned char *raw = mmap(NULL, size + align, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (raw == MAP_FAILED) return MAP_FAILED;
  uintptr_t start = ((uintptr_t)raw + align - 1) & ~(uintptr_t)(align - 1);
  unsigned char *p = mmap((void *)start, size, prot, flags | MAP_FIXED, fd, off);
  if (p == MAP_FAILED) {
    int err = errno;
    munmap(raw, size + align);
    errno = err;
    return MAP_FAILED;
  }
  if (start > (uintptr_t)raw) munmap(raw, start - (uintptr_t)raw);
  uintptr_t end = start + size, raw_end = (uintptr_t)raw + size + align;
  if (raw_end > end) munmap((void *)end, raw_end - end);
  return p;
}

static int region_mmap(lua_State *L) {
  int has_file = 0;
  if (lua_istable(L, 2)) {
    vmlab_check_known_fields(L, 2, mmap_fields);
    has_file = lua_getfield(L, 2, "file") != LUA_TNIL;
    lua_pop(L, 1);
  } else if (!lua_isnoneornil(L, 2)) {
    luaL_typeerror(L, 2, "table of options");
  }
  size_t size = (has_file && lua_isnoneornil(L, 1)) ? 0 : vmlab_check_size(L, 1);
  lua_settop(L, 2);
  /* Option strings stay pushed while they are used: an __index metamethod
     may hand out a fresh string with no other anchor. */
  const char *pname = vmlab_push_string_field(L, 2, "prot");
  int prot = prot_from_name(L, pname != NULL ? pname : "rw", "bad option 'prot'");
  lua_pop(L, 1);
  static const char *const share_names[] = {"private", "shared", NULL};
  int shared = vmlab_opt_option_field(L, 2, "share", "private", share_names) == 1;
  const char *path = vmlab_push_string_field(L, 2, "file"); /* stays at index 3 until the region is made */
  lua_Integer offset = vmlab_opt_int_field(L, 2, "offset", 0);
  if (offset < 0 || (offset % (lua_Integer)vmlab_page_size) != 0)
    return luaL_error(L, "bad option 'offset' (must be a non-negative multiple of the page size, %d)",
                      (int)vmlab_page_size);
  if (offset != 0 && path == NULL) return luaL_error(L, "bad option 'offset' (only with 'file')");
  lua_Integer align = vmlab_opt_int_field(L, 2, "fixed_align", 0);
  if (align != 0 && (align < (lua_Integer)vmlab_page_size || (align & (align - 1)) != 0 || align > (1LL << 40)))
    return luaL_error(L, "bad option 'fixed_align' (a power of two from the page size up to 1 TiB)");
  int flags = shared ? MAP_SHARED : MAP_PRIVATE;
  if (vmlab_opt_bool_field(L, 2, "populate", 0)) flags |= MAP_POPULATE;
  if (vmlab_opt_bool_field(L, 2, "noreserve", 0)) flags |= MAP_NORESERVE;
  if (vmlab_opt_bool_field(L, 2, "hugetlb", 0)) {
    if (path != NULL) return luaL_error(L, "bad option 'hugetlb' (not with 'file')");
    flags |= MAP_HUGETLB;
  }

  int fd = -1;
  if (path != NULL) {
    int oflags = (shared && (prot & PROT_WRITE)) ? O_RDWR : O_RDONLY;
    /* O_NONBLOCK: opening a FIFO with no writer (or a device) must not
       block; anything but a regular file is refused just below. */
    fd = open(path, oflags | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    if (fd < 0) {
      int err = errno;
      return vmlab_push_syserror(L, lua_pushfstring(L, "open %s", path), err);
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
      int err = errno;
      close(fd);
      return vmlab_push_syserror(L, "fstat", err);
    }
    if (!S_ISREG(st.st_mode)) {
      close(fd);
      const char *what = S_ISFIFO(st.st_mode) ? "a FIFO" : S_ISDIR(st.st_mode) ? "a directory"
                         : S_ISCHR(st.st_mode) ? "a character device" : S_ISBLK(st.st_mode) ? "a block device"
                         : S_ISSOCK(st.st_mode) ? "a socket" : "not a regular file";
      return luaL_error(L, "bad option 'file' (%s is %s: only regular files can be mapped)", path, what);
    }
    if (size == 0) {
      if (st.st_size <= offset) {
        close(fd);
        return luaL_error(L, "bad option 'file' (%s has no bytes past offset %I)", path, offset);
      }
      size = (size_t)(st.st_size - offset);
    }
  } else {
    flags |= MAP_ANONYMOUS;
  }
  vmlab_region *r = vmlab_region_new(L);
  size_t map_size = VMLAB_PAGE_UP(size);
  if ((flags & MAP_HUGETLB) && map_size % (2u << 20) != 0) map_size = (map_size + (2u << 20) - 1) & ~(size_t)((2u << 20) - 1);
  void *p = map_aligned(map_size, (size_t)align, prot, flags, fd, (off_t)offset);
  if (p == MAP_FAILED) {
    int err = errno;
    if (fd >= 0) close(fd);
    return vmlab_push_syserror(L, "mmap", err);
  }
  r->addr = p;
  r->size = size;
  r->map_size = map_size;
  r->prot = prot;
  r->kind = VMLAB_KIND_MAP;
  r->shared = shared;
  r->fd = fd;
  if (path != NULL) r->name = strdup(path);
  return 1; /* the region, on top of the path (or nil) */
}

/* ------------------------------------------------------------------ */
/* Bytes in and out                                                    */

/* r:read(offset, length) -> string */
static int region_read(lua_State *L) {
  vmlab_region *r = vmlab_check_open(L, 1);
  size_t off, len;
  vmlab_check_range(L, 2, 3, r->size, &off, &len);
  luaL_Buffer b;
  char *dst = luaL_buffinitsize(L, &b, len);
  /* the allocation may have run a finalizer that closed or resized r */
  r = vmlab_check_open(L, 1);
  if (len > r->size || off > r->size - len) return luaL_error(L, "read: the region changed during the call");
  const unsigned char *src = r->addr + off;
  VMLAB_GUARD(L, "read");
  memcpy(dst, src, len);
  vmlab_guard_end();
  luaL_pushresultsize(&b, len);
  return 1;
}

/* r:write(offset, string) */
static int region_write(lua_State *L) {
  vmlab_region *r = vmlab_check_open(L, 1);
  size_t slen, off, len;
  const char *s = luaL_checklstring(L, 3, &slen);
  lua_Integer o = luaL_checkinteger(L, 2);
  luaL_argcheck(L, o >= 0 && (lua_Unsigned)o <= r->size, 2, "offset is outside the region");
  luaL_argcheck(L, slen <= r->size - (size_t)o, 3, "string does not fit: offset + #string is past the end");
  off = (size_t)o;
  len = slen;
  /* a number converted to a string may have run a finalizer that closed or resized r */
  r = vmlab_check_open(L, 1);
  if (len > r->size || off > r->size - len) return luaL_error(L, "write: the region changed during the call");
  unsigned char *dst = r->addr + off;
  VMLAB_GUARD(L, "write");
  memcpy(dst, s, len);
  vmlab_guard_end();
  lua_settop(L, 1);
  return 1;
}

/* r:fill(byte, offset, length) -- memset(3) */
static int region_fill(lua_State *L) {
  vmlab_region *r = vmlab_check_open(L, 1);
  lua_Integer byte = luaL_checkinteger(L, 2);
  luaL_argcheck(L, byte >= 0 && byte <= 255, 2, "byte must be 0 to 255");
  size_t off, len;
  vmlab_check_range(L, 3, 4, r->size, &off, &len);
  unsigned char *dst = r->addr + off;
  VMLAB_GUARD(L, "fill");
  memset(dst, (int)byte, len);
  vmlab_guard_end();
  lua_settop(L, 1);
  return 1;
}

/* ------------------------------------------------------------------ */
/* Page-granular calls                                                 */

/* The page-aligned span [*start, *start + *bytes) for a byte range: mapped
   regions round outward (the mapping owns whole pages); heap blocks round
   inward, so no neighbouring allocation is touched. Raises if empty. */
static void page_span(lua_State *L, vmlab_region *r, int off_idx, int len_idx, uintptr_t *start, size_t *bytes) {
  size_t off, len;
  vmlab_check_range(L, off_idx, len_idx, r->size, &off, &len);
  uintptr_t a = (uintptr_t)r->addr + off, b = a + len;
  if (r->kind == VMLAB_KIND_HEAP) {
    a = VMLAB_PAGE_UP(a);
    b = VMLAB_PAGE_DOWN(b);
    if (b <= a) luaL_error(L, "this part of the heap block holds no whole page");
  } else {
    a = VMLAB_PAGE_DOWN(a);
    b = VMLAB_PAGE_UP(b);
    if (b == a) b = a + vmlab_page_size;
  }
  *start = a;
  *bytes = b - a;
}

static const char *const advice_names[] = {"normal", "random", "sequential", "willneed", "dontneed", "free",
                                           "hugepage", "nohugepage", "cold", "pageout", "populate_read",
                                           "populate_write", "remove", "dontfork", "dofork", "mergeable",
                                           "unmergeable", NULL};
static const int advice_values[] = {
    MADV_NORMAL, MADV_RANDOM, MADV_SEQUENTIAL, MADV_WILLNEED, MADV_DONTNEED,
#ifdef MADV_FREE
    MADV_FREE,
#else
    -1,
#endif
    MADV_HUGEPAGE, MADV_NOHUGEPAGE,
#ifdef MADV_COLD
    MADV_COLD, MADV_PAGEOUT,
#else
    -1, -1,
#endif
#ifdef MADV_POPULATE_READ
    MADV_POPULATE_READ, MADV_POPULATE_WRITE,
#else
    22, 23,
#endif
    MADV_REMOVE, MADV_DONTFORK, MADV_DOFORK,
#ifdef MADV_MERGEABLE
    MADV_MERGEABLE, MADV_UNMERGEABLE,
#else
    -1, -1,
#endif
};

/* r:advise(advice, offset, length) -- madvise(2) */
static int region_advise(lua_State *L) {
  vmlab_region *r = vmlab_check_open(L, 1);
  int i = vmlab_check_option(L, 2, NULL, advice_names);
  uintptr_t start;
  size_t bytes;
  page_span(L, r, 3, 4, &start, &bytes);
  /* The pages of a heap block go back to malloc on close: a dontfork there
     would outlive the block (a later fork's child would miss memory malloc
     handed out again). */
  if (advice_values[i] == MADV_DONTFORK && r->kind == VMLAB_KIND_HEAP)
    return luaL_error(L, "advise: dontfork on a heap block would outlive the block (malloc reuses its pages); "
                         "use vm.mmap");
  /* Advice that throws the contents away would change what a walk reads. */
  if (advice_values[i] == MADV_DONTNEED || advice_values[i] == MADV_REMOVE
#ifdef MADV_FREE
      || advice_values[i] == MADV_FREE
#endif
  )
    vmlab_region_check_idle(L, r, lua_pushfstring(L, "advise(%s)", advice_names[i]));
  if (advice_values[i] < 0) return vmlab_push_syserror(L, "madvise", EINVAL);
  if (madvise((void *)start, bytes, advice_values[i]) != 0) {
    int err = errno;
    return vmlab_push_syserror(L, lua_pushfstring(L, "madvise(%s)", advice_names[i]), err);
  }
  lua_settop(L, 1);
  return 1;
}

/* r:protect(prot) -- mprotect(2) of the whole region */
static int region_protect(lua_State *L) {
  vmlab_region *r = vmlab_check_open(L, 1);
  int prot = prot_from_name(L, vmlab_check_cstring(L, 2, NULL), "bad argument #1 to 'protect'");
  if (r->kind == VMLAB_KIND_HEAP)
    return luaL_error(L, "protect: a heap block shares pages with malloc's own data; use vm.mmap");
  vmlab_region_check_idle(L, r, "protect");
  if (mprotect(r->addr, r->map_size, prot) != 0) {
    int err = errno;
    return vmlab_push_syserror(L, "mprotect", err);
  }
  r->prot = prot;
  lua_settop(L, 1);
  return 1;
}

/* r:lock() / r:unlock() -- mlock(2), munlock(2) of the pages the region
   spans. The raw system calls: a sanitizer runtime may intercept mlock(2) as
   a no-op. */
static int region_set_locked(lua_State *L, int lock) {
  vmlab_region *r = vmlab_check_open(L, 1);
  uintptr_t start = VMLAB_PAGE_DOWN((uintptr_t)r->addr);
  size_t bytes = VMLAB_PAGE_UP((uintptr_t)r->addr + r->size) - start;
  if (syscall(lock ? SYS_mlock : SYS_munlock, (void *)start, bytes) != 0) {
    int err = errno;
    return vmlab_push_syserror(L, lock ? "mlock" : "munlock", err);
  }
  r->locked = lock;
  lua_settop(L, 1);
  return 1;
}

static int region_lock(lua_State *L) { return region_set_locked(L, 1); }
static int region_unlock(lua_State *L) { return region_set_locked(L, 0); }

/* r:sync() -- msync(2) MS_SYNC: a shared file mapping's writes reach the file */
static int region_sync(lua_State *L) {
  vmlab_region *r = vmlab_check_open(L, 1);
  if (r->kind == VMLAB_KIND_HEAP) return luaL_error(L, "sync: only mapped regions can be synced");
  if (msync(r->addr, r->map_size, MS_SYNC) != 0) {
    int err = errno;
    return vmlab_push_syserror(L, "msync", err);
  }
  lua_settop(L, 1);
  return 1;
}

/* r:resident(offset, length) -> resident pages, pages -- mincore(2) */
static int region_resident(lua_State *L) {
  vmlab_region *r = vmlab_check_open(L, 1);
  uintptr_t start;
  size_t bytes;
  page_span(L, r, 2, 3, &start, &bytes);
  size_t pages = bytes / vmlab_page_size, count = 0;
  int err = vmlab_count_resident(start, pages, &count);
  if (err != 0) return vmlab_push_syserror(L, "mincore", err);
  lua_pushinteger(L, (lua_Integer)count);
  lua_pushinteger(L, (lua_Integer)pages);
  return 2;
}

/* ------------------------------------------------------------------ */
/* Seen from Lua                                                       */

static int region_index(lua_State *L) {
  vmlab_region *r = vmlab_check_region(L, 1);
  lua_pushvalue(L, 2);
  if (lua_rawget(L, lua_upvalueindex(1)) != LUA_TNIL) return 1; /* a method */
  size_t klen;
  const char *k = lua_type(L, 2) == LUA_TSTRING ? lua_tolstring(L, 2, &klen) : NULL;
  if (k == NULL || strlen(k) != klen) lua_pushnil(L); /* no such field (a key with a NUL byte neither) */
  else if (strcmp(k, "closed") == 0) lua_pushboolean(L, r->addr == NULL);
  else if (strcmp(k, "kind") == 0) lua_pushstring(L, kind_names[r->kind]);
  else if (r->addr == NULL) luaL_error(L, "attempt to use a closed region");
  else if (strcmp(k, "address") == 0) lua_pushinteger(L, (lua_Integer)(uintptr_t)r->addr);
  else if (strcmp(k, "size") == 0) lua_pushinteger(L, (lua_Integer)r->size);
  else if (strcmp(k, "pages") == 0) lua_pushinteger(L, (lua_Integer)((r->size + vmlab_page_size - 1) / vmlab_page_size));
  else if (strcmp(k, "prot") == 0) lua_pushstring(L, prot_name(r->prot));
  else if (strcmp(k, "shared") == 0) lua_pushboolean(L, r->shared);
  else if (strcmp(k, "locked") == 0) lua_pushboolean(L, r->locked);
  else if (strcmp(k, "name") == 0) r->name ? (void)lua_pushstring(L, r->name) : lua_pushnil(L);
  else lua_pushnil(L);
  return 1;
}

static int region_len(lua_State *L) {
  vmlab_region *r = vmlab_check_open(L, 1);
  lua_pushinteger(L, (lua_Integer)r->size);
  return 1;
}

static void push_human(luaL_Buffer *b, size_t n) {
  static const char *const unit[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = (double)n;
  int i = 0;
  while (v >= 1024 && i < 4) v /= 1024, i++;
  char tmp[48];
  if (i == 0) snprintf(tmp, sizeof tmp, "%zu B", n);
  else snprintf(tmp, sizeof tmp, "%.1f %s", v, unit[i]);
  luaL_addstring(b, tmp);
}

/* "vmlab.Region mmap 0x7f...000-0x7f...000 (64.0 MiB, rw, private, 12/16384 pages resident)";
   past REGION_TOSTRING_PAGES pages: "..., 268435456 pages)" (residency not counted). */
#define REGION_TOSTRING_PAGES ((size_t)1 << 18)
static int region_tostring(lua_State *L) {
  vmlab_region *r = vmlab_check_region(L, 1);
  if (r->addr == NULL) {
    lua_pushfstring(L, "vmlab.Region %s (closed)", kind_names[r->kind]);
    return 1;
  }
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  char tmp[160];
  snprintf(tmp, sizeof tmp, "vmlab.Region %s %p-%p (", kind_names[r->kind], (void *)r->addr, (void *)(r->addr + r->size));
  luaL_addstring(&b, tmp);
  push_human(&b, r->size);
  snprintf(tmp, sizeof tmp, ", %s, %s", prot_name(r->prot), r->shared ? "shared" : "private");
  luaL_addstring(&b, tmp);
  if (r->name) {
    luaL_addstring(&b, ", ");
    luaL_addstring(&b, r->name);
  }
  uintptr_t a = VMLAB_PAGE_DOWN((uintptr_t)r->addr);
  size_t pages = (VMLAB_PAGE_UP((uintptr_t)r->addr + r->size) - a) / vmlab_page_size, res = 0;
  /* mincore(2) costs time in proportion to the pages (about 1 s per TiB):
     count them only up to REGION_TOSTRING_PAGES; r:resident() counts any. */
  int ok = pages <= REGION_TOSTRING_PAGES && vmlab_count_resident(a, pages, &res) == 0;
  if (ok) snprintf(tmp, sizeof tmp, ", %zu/%zu pages resident", res, pages);
  else snprintf(tmp, sizeof tmp, ", %zu pages", pages);
  luaL_addstring(&b, tmp);
  if (r->locked) luaL_addstring(&b, ", locked");
  luaL_addchar(&b, ')');
  luaL_pushresult(&b);
  return 1;
}

static const luaL_Reg region_methods[] = {
    {"read", region_read},       {"write", region_write},   {"fill", region_fill},
    {"advise", region_advise}, {"protect", region_protect}, {"lock", region_lock},   {"unlock", region_unlock},
    {"sync", region_sync},   {"resident", region_resident}, {"close", region_close},
    {NULL, NULL}};

void vmlab_region_add_methods(lua_State *L, const luaL_Reg *methods) {
  luaL_getmetatable(L, VMLAB_REGION_MT);
  lua_getfield(L, -1, "__methods");
  luaL_setfuncs(L, methods, 0);
  lua_pop(L, 2);
}

void vmlab_open_regions(lua_State *L) {
  luaL_newmetatable(L, VMLAB_REGION_MT);
  lua_newtable(L); /* methods */
  luaL_setfuncs(L, region_methods, 0);
  lua_pushvalue(L, -1);
  lua_setfield(L, -3, "__methods");
  lua_pushcclosure(L, region_index, 1);
  lua_setfield(L, -2, "__index");
  static const luaL_Reg meta[] = {{"__gc", region_gc}, {"__close", region_close}, {"__len", region_len},
                                  {"__tostring", region_tostring}, {NULL, NULL}};
  luaL_setfuncs(L, meta, 0);
  lua_pushliteral(L, "vmlab.Region");
  lua_setfield(L, -2, "__name");
  lua_pop(L, 1);
  lua_pushcfunction(L, region_mmap);
  lua_setfield(L, -2, "mmap");
}
