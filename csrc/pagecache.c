/*
 * pagecache.c - the page cache seen from a file: how much of it is cached
 * (mincore(2) over a read-only mapping that touches nothing) and advice to
 * the kernel about it (posix_fadvise(2)), e.g. to drop it so that the next
 * access through a mapping costs major faults.
 */
#include "vmlab.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *const fadvise_names[] = {"normal", "sequential", "random", "noreuse", "willneed", "dontneed", NULL};
static const int fadvise_values[] = {POSIX_FADV_NORMAL,   POSIX_FADV_SEQUENTIAL, POSIX_FADV_RANDOM,
                                     POSIX_FADV_NOREUSE,  POSIX_FADV_WILLNEED,   POSIX_FADV_DONTNEED};

/* What kind of file st describes, for the refusal below. */
static const char *pagecache_file_type(const struct stat *st) {
  if (S_ISFIFO(st->st_mode)) return "a FIFO";
  if (S_ISDIR(st->st_mode)) return "a directory";
  if (S_ISCHR(st->st_mode)) return "a character device";
  if (S_ISBLK(st->st_mode)) return "a block device";
  if (S_ISSOCK(st->st_mode)) return "a socket";
  return "not a regular file";
}

/* Open path read-only for its page cache: never blocks (O_NONBLOCK, so a
   FIFO without a writer does not hang the open), and only a regular file is
   kept. Returns the fd; or pushes nil, "<path>: ...", errno (EINVAL for a
   file that is not a regular one) and returns -1. *st is filled. */
static int pagecache_open(lua_State *L, const char *path, struct stat *st) {
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
  if (fd < 0) {
    int err = errno;
    vmlab_push_syserror(L, lua_pushfstring(L, "open %s", path), err);
    return -1;
  }
  if (fstat(fd, st) != 0) {
    int err = errno;
    close(fd);
    vmlab_push_syserror(L, lua_pushfstring(L, "fstat %s", path), err);
    return -1;
  }
  if (!S_ISREG(st->st_mode)) {
    close(fd);
    lua_pushnil(L);
    lua_pushfstring(L, "%s: %s, not a regular file: it has no page cache to look at", path,
                    pagecache_file_type(st));
    lua_pushinteger(L, EINVAL);
    return -1;
  }
  return fd;
}

/* vm.fadvise(path, advice, offset, length) -> true -- see posix_fadvise(2).
   "dontneed" drops the file's clean, unmapped pages from the page cache.
   Only regular files: anything else gives nil, msg, EINVAL. */
static int pagecache_fadvise(lua_State *L) {
  const char *path = vmlab_check_cstring(L, 1, NULL);
  int advice = fadvise_values[vmlab_check_option(L, 2, NULL, fadvise_names)];
  lua_Integer off = luaL_optinteger(L, 3, 0), len = luaL_optinteger(L, 4, 0);
  luaL_argcheck(L, off >= 0, 3, "offset must not be negative");
  luaL_argcheck(L, len >= 0, 4, "length must not be negative (0 means to the end)");
  struct stat st;
  int fd = pagecache_open(L, path, &st);
  if (fd < 0) return 3;
  if (advice == POSIX_FADV_DONTNEED) fdatasync(fd); /* only clean pages can be dropped */
  int err = posix_fadvise(fd, (off_t)off, (off_t)len, advice);
  close(fd);
  if (err != 0) return vmlab_push_syserror(L, "posix_fadvise", err);
  lua_pushboolean(L, 1);
  return 1;
}

/* vm.file_resident(path) -> cached pages, pages -- mincore(2) of a fresh
   read-only mapping, so the check itself brings nothing into the cache.
   Only regular files: anything else gives nil, msg, EINVAL. */
static int pagecache_file_resident(lua_State *L) {
  const char *path = vmlab_check_cstring(L, 1, NULL);
  struct stat st;
  int fd = pagecache_open(L, path, &st);
  if (fd < 0) return 3;
  if (st.st_size <= 0) {
    close(fd);
    lua_pushinteger(L, 0);
    lua_pushinteger(L, 0);
    return 2;
  }
  size_t size = (size_t)st.st_size, pages = size / vmlab_page_size + (size % vmlab_page_size != 0);
  void *p = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
  int err = errno;
  close(fd);
  if (p == MAP_FAILED) return vmlab_push_syserror(L, "mmap", err);
  size_t cached = 0;
  err = vmlab_count_resident((uintptr_t)p, pages, &cached);
  munmap(p, size);
  if (err != 0) return vmlab_push_syserror(L, "mincore", err);
  lua_pushinteger(L, (lua_Integer)cached);
  lua_pushinteger(L, (lua_Integer)pages);
  return 2;
}

void vmlab_open_pagecache(lua_State *L) {
  static const luaL_Reg funcs[] = {{"fadvise", pagecache_fadvise}, {"file_resident", pagecache_file_resident},
                                   {NULL, NULL}};
  luaL_setfuncs(L, funcs, 0);
}
