/*
 * shm.c - POSIX shared-memory objects as Regions, and the ways two processes
 * coordinate through one: C11 atomics on 32/64-bit words, futex(2) wait and
 * wake, process-shared POSIX semaphores living inside the region, the lab's
 * sleep-and-poll loop, the counting loops of the race experiment (lab
 * section 13). See shm_overview(7), futex(2), sem_overview(7), stdatomic.h.
 *
 * Every access to region memory runs inside the fault guard, so an object
 * truncated under a mapping raises a Lua error instead of SIGBUS.
 */
#include "vmlab.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <math.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------------ */
/* Names and objects                                                   */

/* Argument idx as an shm name in buf (NAME_MAX + 2 bytes): the leading "/"
   is optional and added; no other "/", not empty, not "." or "..". */
static void shm_check_name(lua_State *L, int idx, char *buf) {
  size_t len;
  const char *s = luaL_checklstring(L, idx, &len);
  if (len > 0 && s[0] == '/') s++, len--;
  luaL_argcheck(L, len > 0, idx, "name is empty");
  luaL_argcheck(L, len <= NAME_MAX, idx, "name is longer than NAME_MAX (255 bytes)");
  luaL_argcheck(L, memchr(s, '/', len) == NULL, idx, "name must not contain '/' after the first character");
  luaL_argcheck(L, memchr(s, '\0', len) == NULL, idx, "name must not contain a NUL byte");
  luaL_argcheck(L, !(len <= 2 && s[0] == '.' && s[len - 1] == '.'), idx, "name must not be '.' or '..'");
  buf[0] = '/';
  memcpy(buf + 1, s, len);
  buf[len + 1] = '\0';
}

/* Push nil, "<call>(<name>): <strerror>", err. */
static int shm_name_error(lua_State *L, const char *call, const char *name, int err) {
  char what[NAME_MAX + 32];
  snprintf(what, sizeof what, "%s(%s)", call, name);
  return vmlab_push_syserror(L, what, err);
}

/* vm.shm_open(name, {create=, exclusive=, size=, mode=0600, keep=}) -> Region,
   or nil, msg, errno. create makes the object (size required; exclusive:
   fail with EEXIST when it exists); without size an existing object is
   mapped whole. The process that created the object unlinks its name when
   the region is closed or collected, unless keep = true. See shm_open(3). */
static int shm_open_region(lua_State *L) {
  static const char *const known[] = {"create", "exclusive", "size", "mode", "keep", NULL};
  char name[NAME_MAX + 2];
  shm_check_name(L, 1, name);
  vmlab_check_known_fields(L, 2, known);
  int create = vmlab_opt_bool_field(L, 2, "create", 0);
  int exclusive = vmlab_opt_bool_field(L, 2, "exclusive", 0);
  int keep = vmlab_opt_bool_field(L, 2, "keep", 0);
  lua_Integer mode = vmlab_opt_int_field(L, 2, "mode", 0600);
  lua_Integer size = vmlab_opt_int_field(L, 2, "size", 0);
  int has_size = 0;
  if (lua_istable(L, 2)) {
    has_size = lua_getfield(L, 2, "size") != LUA_TNIL;
    lua_pop(L, 1);
  }
  if (has_size && size <= 0) luaL_error(L, "bad option 'size' (must be positive)");
  if (has_size && size > (lua_Integer)(INT64_MAX / 2)) luaL_error(L, "bad option 'size' (is too large)");
  if (mode < 0 || mode > 07777) luaL_error(L, "bad option 'mode' (must be a permission mode 0..07777)");
  if (exclusive && !create) luaL_error(L, "bad option 'exclusive' (needs create = true)");
  if (create && !has_size) luaL_error(L, "bad option 'size' (required with create = true)");

  vmlab_region *r = vmlab_region_new(L); /* closed until filled below */
  int fd = -1, created = 0, err = 0;
  for (int tries = 0; fd < 0 && tries < 8; tries++) {
    if (create) { /* try to be the creator first, so we know whether we are */
      fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, (mode_t)mode);
      if (fd >= 0) {
        created = 1;
        break;
      }
      err = errno;
      if (err != EEXIST || exclusive) return shm_name_error(L, "shm_open", name, err);
    }
    fd = shm_open(name, O_RDWR | O_CLOEXEC, 0);
    if (fd < 0) {
      err = errno;
      if (!(create && err == ENOENT)) return shm_name_error(L, "shm_open", name, err);
    }
  }
  if (fd < 0) return shm_name_error(L, "shm_open", name, err);
  if (created && ftruncate(fd, (off_t)size) != 0) {
    err = errno;
    shm_unlink(name);
    close(fd);
    return shm_name_error(L, "ftruncate", name, err);
  }
  struct stat st;
  if (fstat(fd, &st) != 0) {
    err = errno;
    if (created) shm_unlink(name);
    close(fd);
    return shm_name_error(L, "fstat", name, err);
  }
  if (!has_size && st.st_size == 0) {
    close(fd);
    lua_pushnil(L);
    lua_pushfstring(L, "shm_open(%s): the object is empty (size 0); its creator gives opts.size", name);
    lua_pushinteger(L, EINVAL);
    return 3;
  }
  if (has_size && (lua_Integer)st.st_size < size) {
    close(fd);
    lua_pushnil(L);
    lua_pushfstring(L, "shm_open(%s): the object holds %I bytes, fewer than the %I asked for", name,
                    (lua_Integer)st.st_size, size);
    lua_pushinteger(L, EINVAL);
    return 3;
  }
  size_t bytes = has_size ? (size_t)size : (size_t)st.st_size;
  char *copy = strdup(name);
  err = copy == NULL ? ENOMEM : vmlab_shm_region_fill(r, fd, bytes);
  if (err != 0) {
    free(copy);
    if (created) shm_unlink(name);
    close(fd);
    if (copy == NULL) return luaL_error(L, "not enough memory");
    return shm_name_error(L, "mmap", name, err);
  }
  r->name = copy;
  r->unlink_on_close = created && !keep;
  return 1;
}

int vmlab_shm_region_fill(vmlab_region *r, int fd, size_t bytes) {
  size_t map_size = VMLAB_PAGE_UP(bytes);
  void *p = mmap(NULL, map_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) return errno;
  r->addr = p;
  r->size = bytes;
  r->map_size = map_size;
  r->prot = PROT_READ | PROT_WRITE;
  r->kind = VMLAB_KIND_SHM;
  r->shared = 1;
  r->fd = fd;
  r->owner = getpid();
  r->name = NULL;
  r->unlink_on_close = 0;
  return 0;
}

/* vm.shm_unlink(name) -> true, or nil, msg, errno. See shm_unlink(3). */
static int shm_unlink_name(lua_State *L) {
  char name[NAME_MAX + 2];
  shm_check_name(L, 1, name);
  if (shm_unlink(name) != 0) return shm_name_error(L, "shm_unlink", name, errno);
  lua_pushboolean(L, 1);
  return 1;
}

/* s:unlink() -> true, or nil, msg, errno: remove the region's name now (the
   mapping stays); closing the region later unlinks nothing. */
static int shm_region_unlink(lua_State *L) {
  vmlab_region *r = vmlab_check_open(L, 1);
  luaL_argcheck(L, r->kind == VMLAB_KIND_SHM && r->name != NULL, 1, "not a shared-memory object region");
  r->unlink_on_close = 0;
  if (shm_unlink(r->name) != 0) return shm_name_error(L, "shm_unlink", r->name, errno);
  lua_pushboolean(L, 1);
  return 1;
}

/* vm.shm_list(prefix = "") -> { {name=, size=, mtime=, uid=, mode=}, ... }: the
   objects in /dev/shm whose names start with prefix ("/" optional). */
static int shm_list(lua_State *L) {
  const char *prefix = lua_isnoneornil(L, 1) ? "" : vmlab_check_cstring(L, 1, NULL);
  if (prefix[0] == '/') prefix++;
  size_t plen = strlen(prefix);
  lua_newtable(L);
  DIR *d = opendir("/dev/shm");
  if (d == NULL) return vmlab_push_syserror(L, "opendir(/dev/shm)", errno);
  lua_Integer n = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    struct stat st;
    if (e->d_name[0] == '.' || strncmp(e->d_name, prefix, plen) != 0) continue;
    if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode)) continue;
    lua_createtable(L, 0, 5);
    lua_pushfstring(L, "/%s", e->d_name);
    lua_setfield(L, -2, "name");
    lua_pushinteger(L, (lua_Integer)st.st_size);
    lua_setfield(L, -2, "size");
    lua_pushnumber(L, (lua_Number)st.st_mtim.tv_sec + (lua_Number)st.st_mtim.tv_nsec * 1e-9);
    lua_setfield(L, -2, "mtime");
    lua_pushinteger(L, (lua_Integer)st.st_uid);
    lua_setfield(L, -2, "uid");
    lua_pushinteger(L, (lua_Integer)(st.st_mode & 07777));
    lua_setfield(L, -2, "mode");
    lua_rawseti(L, -2, ++n);
  }
  closedir(d);
  return 1;
}

/* ------------------------------------------------------------------ */
/* Words                                                               */

/* Optional argument idx: word size in bits, 32 or 64 (default 64). */
static int shm_check_bits(lua_State *L, int idx) {
  lua_Integer bits = luaL_optinteger(L, idx, 64);
  luaL_argcheck(L, bits == 32 || bits == 64, idx, "bits must be 32 or 64");
  return (int)bits;
}

/* Argument off_idx as the offset of a `bytes`-wide, `align`-aligned object
   inside r; raises naming 'offset'. */
static unsigned char *shm_check_at(lua_State *L, vmlab_region *r, int off_idx, size_t bytes, size_t align) {
  lua_Integer off = luaL_checkinteger(L, off_idx);
  if (off < 0) luaL_argerror(L, off_idx, "offset must not be negative");
  if ((lua_Unsigned)off % align != 0)
    luaL_argerror(L, off_idx, lua_pushfstring(L, "offset %I is not aligned to %d bytes", off, (int)align));
  if (r->size < bytes || (lua_Unsigned)off > r->size - bytes)
    luaL_argerror(L, off_idx, lua_pushfstring(L, "offset %I + %d bytes is past the end of the %I-byte region",
                                              off, (int)bytes, (lua_Integer)r->size));
  unsigned char *p = r->addr + (size_t)off;
  if ((uintptr_t)p % align != 0)
    luaL_argerror(L, off_idx, lua_pushfstring(L, "offset %I: the region itself is not %d-byte aligned", off,
                                              (int)align));
  return p;
}

/* A value for a word of `bits`: any int64 for 64; -2^31 .. 2^32-1 for 32. */
__attribute__((noinline)) static lua_Integer shm_check_value(lua_State *L, int idx, int bits) {
  lua_Integer v = luaL_checkinteger(L, idx);
  if (bits == 32) luaL_argcheck(L, v >= INT32_MIN && v <= (lua_Integer)UINT32_MAX, idx, "value does not fit in 32 bits");
  return v;
}

#define SHM_A32(p) ((_Atomic int32_t *)(void *)(p))
#define SHM_A64(p) ((_Atomic int64_t *)(void *)(p))

/* s:atomic_load(off, bits = 64) -> integer (32-bit words read as signed). */
static int shm_atomic_load(lua_State *L) {
  vmlab_region *r = vmlab_check_open(L, 1);
  int bits = shm_check_bits(L, 3);
  unsigned char *p = shm_check_at(L, r, 2, (size_t)bits / 8, (size_t)bits / 8);
  volatile lua_Integer v; /* volatile: lives across the guard's sigsetjmp */
  VMLAB_GUARD(L, "atomic_load");
  v = bits == 32 ? atomic_load(SHM_A32(p)) : atomic_load(SHM_A64(p));
  vmlab_guard_end();
  lua_pushinteger(L, v);
  return 1;
}

/* s:atomic_store(off, v, bits = 64) */
static int shm_atomic_store(lua_State *L) {
  vmlab_region *r = vmlab_check_open(L, 1);
  int bits = shm_check_bits(L, 4);
  unsigned char *p = shm_check_at(L, r, 2, (size_t)bits / 8, (size_t)bits / 8);
  lua_Integer v = shm_check_value(L, 3, bits);
  VMLAB_GUARD(L, "atomic_store");
  if (bits == 32) atomic_store(SHM_A32(p), (int32_t)(uint32_t)v);
  else atomic_store(SHM_A64(p), (int64_t)v);
  vmlab_guard_end();
  return 0;
}

/* s:atomic_add(off, d, bits = 64) -> the value BEFORE the add (fetch_add);
   wraps around like two's complement. */
static int shm_atomic_add(lua_State *L) {
  vmlab_region *r = vmlab_check_open(L, 1);
  int bits = shm_check_bits(L, 4);
  unsigned char *p = shm_check_at(L, r, 2, (size_t)bits / 8, (size_t)bits / 8);
  lua_Integer d = shm_check_value(L, 3, bits);
  volatile lua_Integer old;
  VMLAB_GUARD(L, "atomic_add");
  old = bits == 32 ? atomic_fetch_add(SHM_A32(p), (int32_t)(uint32_t)d) : atomic_fetch_add(SHM_A64(p), (int64_t)d);
  vmlab_guard_end();
  lua_pushinteger(L, old);
  return 1;
}

/* The compare-and-swap itself, out of line so no local lives across the
   guard's sigsetjmp. */
static int shm_cas(unsigned char *p, int bits, lua_Integer expect, lua_Integer want, lua_Integer *found) {
  int ok;
  if (bits == 32) {
    int32_t e = (int32_t)(uint32_t)expect;
    ok = atomic_compare_exchange_strong(SHM_A32(p), &e, (int32_t)(uint32_t)want);
    *found = e;
  } else {
    int64_t e = (int64_t)expect;
    ok = atomic_compare_exchange_strong(SHM_A64(p), &e, (int64_t)want);
    *found = e;
  }
  return ok;
}

/* s:compare_swap(off, old, new, bits = 64) -> swapped (boolean), the value
   found before (equal to old when swapped). */
static int shm_compare_swap(lua_State *L) {
  vmlab_region *r = vmlab_check_open(L, 1);
  int bits = shm_check_bits(L, 5);
  unsigned char *p = shm_check_at(L, r, 2, (size_t)bits / 8, (size_t)bits / 8);
  lua_Integer expect = shm_check_value(L, 3, bits), want = shm_check_value(L, 4, bits), found;
  volatile int ok;
  VMLAB_GUARD(L, "compare_swap");
  ok = shm_cas(p, bits, expect, want, &found);
  vmlab_guard_end();
  lua_pushboolean(L, ok);
  lua_pushinteger(L, found);
  return 2;
}

/* ------------------------------------------------------------------ */
/* Waiting                                                             */

/* Optional timeout in seconds at idx into *ts; returns 0 when absent (wait
   for ever). */
static int shm_opt_timeout(lua_State *L, int idx, struct timespec *ts) {
  if (lua_isnoneornil(L, idx)) return 0;
  lua_Number t = luaL_checknumber(L, idx);
  luaL_argcheck(L, t >= 0 && t < 1e9, idx, "timeout must be a number of seconds >= 0");
  ts->tv_sec = (time_t)t;
  ts->tv_nsec = (long)((t - (lua_Number)ts->tv_sec) * 1e9);
  if (ts->tv_nsec > 999999999) ts->tv_nsec = 999999999;
  return 1;
}

/* s:wait(off, expected, timeout_s) -> "woken" | "timeout" | "changed" (the
   32-bit word at off no longer held expected) | "interrupted" (a signal),
   or nil, msg, errno. FUTEX_WAIT; private futex for private mappings.
   "woken" may be spurious: re-check the word. See futex(2). */
static int shm_wait(lua_State *L) {
  vmlab_region *r = vmlab_check_open(L, 1);
  unsigned char *p = shm_check_at(L, r, 2, 4, 4);
  lua_Integer expected = shm_check_value(L, 3, 32);
  struct timespec ts;
  int timed = shm_opt_timeout(L, 4, &ts);
  int op = FUTEX_WAIT | (r->shared ? 0 : FUTEX_PRIVATE_FLAG);
  long rc = syscall(SYS_futex, (uint32_t *)(void *)p, op, (uint32_t)expected, timed ? &ts : NULL, NULL, 0);
  int err = errno;
  if (rc == 0) lua_pushliteral(L, "woken");
  else if (err == ETIMEDOUT) lua_pushliteral(L, "timeout");
  else if (err == EAGAIN) lua_pushliteral(L, "changed");
  else if (err == EINTR) lua_pushliteral(L, "interrupted");
  else return vmlab_push_syserror(L, "futex(FUTEX_WAIT)", err);
  return 1;
}

/* s:wake(off, count = all) -> number of waiters woken. See futex(2). */
static int shm_wake(lua_State *L) {
  vmlab_region *r = vmlab_check_open(L, 1);
  unsigned char *p = shm_check_at(L, r, 2, 4, 4);
  lua_Integer count = luaL_optinteger(L, 3, INT_MAX);
  luaL_argcheck(L, count >= 0 && count <= INT_MAX, 3, "count must be 0 .. INT_MAX");
  int op = FUTEX_WAKE | (r->shared ? 0 : FUTEX_PRIVATE_FLAG);
  long rc = syscall(SYS_futex, (uint32_t *)(void *)p, op, (int)count, NULL, NULL, 0);
  if (rc < 0) return vmlab_push_syserror(L, "futex(FUTEX_WAKE)", errno);
  lua_pushinteger(L, rc);
  return 1;
}

/* s:sleep_poll(off, busy, interval_s = 0.001, timeout_s) -> "changed" |
   "timeout" | "interrupted": the lab's loop `while (word == busy)
   usleep(1000);` on the 32-bit word at off, with an atomic load. */
static int shm_sleep_poll(lua_State *L) {
  vmlab_region *r = vmlab_check_open(L, 1);
  unsigned char *p = shm_check_at(L, r, 2, 4, 4);
  int32_t busy = (int32_t)(uint32_t)shm_check_value(L, 3, 32);
  lua_Number interval = luaL_optnumber(L, 4, 0.001);
  luaL_argcheck(L, interval >= 0 && interval <= 10, 4, "interval must be 0 .. 10 seconds");
  struct timespec limit = {0, 0};
  int timed = shm_opt_timeout(L, 5, &limit);
  double deadline = vmlab_now() + (double)limit.tv_sec + (double)limit.tv_nsec * 1e-9;
  const char *volatile result = "changed"; /* volatile: set after the guard's sigsetjmp */
  VMLAB_GUARD(L, "sleep_poll");
  while (atomic_load(SHM_A32(p)) == busy) {
    if (timed && vmlab_now() >= deadline) {
      result = "timeout";
      break;
    }
    struct timespec nap = {(time_t)interval, (long)((interval - floor(interval)) * 1e9)};
    if (nanosleep(&nap, NULL) != 0 && errno == EINTR) {
      result = "interrupted";
      break;
    }
  }
  vmlab_guard_end();
  lua_pushstring(L, result);
  return 1;
}

/* ------------------------------------------------------------------ */
/* POSIX semaphores inside the region                                  */
/*
 * A semaphore takes vm.sem_size bytes at its offset: the sem_t, then a
 * marker word that s:sem_init writes once sem_init(3) has made the sem_t and
 * s:sem_destroy clears. Every call checks the marker first, and (where the C
 * library's layout was recognised at load time) that glibc's words are ones
 * sem_init could have written: its count at most SEM_VALUE_MAX and its
 * private/shared futex flag the one this region's semaphores get. Bytes that
 * never were a semaphore, or were overwritten since, so give nil, "... no
 * semaphore at offset N ...", EINVAL (as sem_post(3) documents for "not a
 * valid semaphore") and never reach glibc, which aborts the process on a
 * futex flag it does not know.
 */

#define SHM_SEM_MARKER UINT64_C(0x766d6c61622d736d) /* "vmlab-sm" */

typedef struct shm_sem {
  sem_t sem;
  uint64_t marker; /* SHM_SEM_MARKER while sem holds a semaphore */
} shm_sem;

/* glibc's struct new_sem with 64-bit atomics (nptl/internaltypes.h): the
   count in the low 32 bits of data, the waiters above, then the futex flag. */
typedef struct shm_glibc_sem {
  uint64_t data;
  int private_flag;
  int pad;
} shm_glibc_sem;

/* Set by shm_sem_probe: 1 when sem_init writes what shm_glibc_sem says, and
   the flag it writes for a private (0) and a process-shared (1) semaphore. */
static int shm_sem_layout_known;
static int shm_sem_flag[2];

/* Make two semaphores on the side and see whether their words are laid out
   as glibc's are on this machine; else only the marker is checked. */
static void shm_sem_probe(void) {
  sem_t a, b;
  shm_glibc_sem ga, gb;
  memset(&a, 0, sizeof a);
  memset(&b, 0, sizeof b);
  if (sizeof(sem_t) < sizeof(shm_glibc_sem) || sem_init(&a, 0, 5) != 0 || sem_init(&b, 1, 7) != 0) return;
  memcpy(&ga, &a, sizeof ga);
  memcpy(&gb, &b, sizeof gb);
  sem_destroy(&a);
  sem_destroy(&b);
  if (ga.data != 5 || gb.data != 7 || ga.private_flag == gb.private_flag) return;
  shm_sem_flag[0] = ga.private_flag;
  shm_sem_flag[1] = gb.private_flag;
  shm_sem_layout_known = 1;
}

/* 1 when the record holds a semaphore sem_init made for a region that is
   shared (or not) and its words are still ones glibc accepts. Run inside
   the fault guard: it reads region memory. */
static int shm_sem_valid(shm_sem *s, int shared) {
  if (__atomic_load_n(&s->marker, __ATOMIC_ACQUIRE) != SHM_SEM_MARKER) return 0;
  if (!shm_sem_layout_known) return 1;
  shm_glibc_sem *g = (shm_glibc_sem *)(void *)&s->sem;
  uint64_t data = __atomic_load_n(&g->data, __ATOMIC_RELAXED);
  int flag = __atomic_load_n(&g->private_flag, __ATOMIC_RELAXED);
  return (data & UINT32_MAX) <= (uint64_t)SEM_VALUE_MAX && flag == shm_sem_flag[shared ? 1 : 0];
}

/* Push nil, "<what>: no semaphore at offset N ...", EINVAL; 3 results. */
static int shm_sem_invalid(lua_State *L, const char *what, int off_idx) {
  lua_pushnil(L);
  lua_pushfstring(L,
                  "%s: no semaphore at offset %I (s:sem_init never made one there, it was destroyed, "
                  "or its bytes were overwritten)",
                  what, lua_tointeger(L, off_idx));
  lua_pushinteger(L, EINVAL);
  return 3;
}

static shm_sem *shm_check_sem(lua_State *L, vmlab_region *r, int off_idx) {
  return (shm_sem *)(void *)shm_check_at(L, r, off_idx, sizeof(shm_sem), _Alignof(shm_sem));
}

/* s:sem_init(off, value = 0) -> true, or nil, msg, errno: a semaphore at off
   (vm.sem_size bytes), process-shared when the region is shared. See
   sem_init(3). */
static int shm_sem_init(lua_State *L) {
  vmlab_region *r = vmlab_check_open(L, 1);
  shm_sem *s = shm_check_sem(L, r, 2);
  lua_Integer v = luaL_optinteger(L, 3, 0);
  luaL_argcheck(L, v >= 0 && v <= SEM_VALUE_MAX, 3, "value must be 0 .. SEM_VALUE_MAX");
  volatile int rc, err = 0;
  VMLAB_GUARD(L, "sem_init");
  __atomic_store_n(&s->marker, 0, __ATOMIC_RELEASE);
  rc = sem_init(&s->sem, r->shared, (unsigned)v);
  err = errno;
  if (rc == 0) __atomic_store_n(&s->marker, SHM_SEM_MARKER, __ATOMIC_RELEASE);
  vmlab_guard_end();
  if (rc != 0) return vmlab_push_syserror(L, "sem_init", err);
  lua_pushboolean(L, 1);
  return 1;
}

/* The semaphore calls without a wait: one shape, run under the fault guard
   once the bytes at off hold a semaphore. */
enum { SHM_SEM_POST, SHM_SEM_VALUE, SHM_SEM_DESTROY };

static int shm_sem_call(lua_State *L, int op) {
  static const char *const what[] = {"sem_post", "sem_value", "sem_destroy"};
  static const char *const call[] = {"sem_post", "sem_getvalue", "sem_destroy"};
  vmlab_region *r = vmlab_check_open(L, 1);
  shm_sem *s = shm_check_sem(L, r, 2);
  int v = 0;
  volatile int rc = 0, err = 0, valid;
  VMLAB_GUARD(L, what[op]);
  valid = shm_sem_valid(s, r->shared);
  if (valid) {
    if (op == SHM_SEM_POST) {
      rc = sem_post(&s->sem);
    } else if (op == SHM_SEM_VALUE) {
      rc = sem_getvalue(&s->sem, &v);
    } else {
      __atomic_store_n(&s->marker, 0, __ATOMIC_RELEASE); /* the bytes are no semaphore any more */
      rc = sem_destroy(&s->sem);
    }
    err = errno;
  }
  vmlab_guard_end();
  if (!valid) return shm_sem_invalid(L, what[op], 2);
  if (rc != 0) return vmlab_push_syserror(L, call[op], err);
  if (op == SHM_SEM_VALUE) lua_pushinteger(L, v);
  else lua_pushboolean(L, 1);
  return 1;
}

/* s:sem_post(off) -> true, or nil, msg, errno. See sem_post(3). */
static int shm_sem_post(lua_State *L) { return shm_sem_call(L, SHM_SEM_POST); }

/* s:sem_wait(off, timeout_s) -> true when acquired; false, "timeout" |
   "interrupted"; or nil, msg, errno. timeout 0 tries without blocking; none
   waits for ever. See sem_wait(3), sem_clockwait(3) (CLOCK_MONOTONIC). */

/* sem_clockwait(3) with CLOCK_MONOTONIC (glibc 2.30+) is not moved by a
   change of the wall clock. Elsewhere (older glibc, musl) the fallback is
   sem_timedwait(3) on CLOCK_REALTIME with the same remaining time: a wall-
   clock step during the wait lengthens or shortens it. Build with
   -DVMLAB_HAVE_SEM_CLOCKWAIT=0 to try the fallback. */
#ifndef VMLAB_HAVE_SEM_CLOCKWAIT
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 30))
#define VMLAB_HAVE_SEM_CLOCKWAIT 1
#else
#define VMLAB_HAVE_SEM_CLOCKWAIT 0
#endif
#endif

static int shm_sem_clockwait(sem_t *sem, const struct timespec *monotonic_deadline) {
#if VMLAB_HAVE_SEM_CLOCKWAIT
  return sem_clockwait(sem, CLOCK_MONOTONIC, monotonic_deadline);
#else
  struct timespec now, real;
  clock_gettime(CLOCK_MONOTONIC, &now);
  clock_gettime(CLOCK_REALTIME, &real);
  long long left = (long long)(monotonic_deadline->tv_sec - now.tv_sec) * 1000000000LL +
                   (monotonic_deadline->tv_nsec - now.tv_nsec);
  if (left < 0) left = 0;
  real.tv_sec += (time_t)(left / 1000000000LL);
  real.tv_nsec += (long)(left % 1000000000LL);
  if (real.tv_nsec >= 1000000000L) real.tv_sec++, real.tv_nsec -= 1000000000L;
  return sem_timedwait(sem, &real);
#endif
}

static int shm_sem_wait(lua_State *L) {
  vmlab_region *r = vmlab_check_open(L, 1);
  shm_sem *s = shm_check_sem(L, r, 2);
  struct timespec rel, abs;
  int timed = shm_opt_timeout(L, 3, &rel);
  if (timed) {
    clock_gettime(CLOCK_MONOTONIC, &abs);
    abs.tv_sec += rel.tv_sec;
    abs.tv_nsec += rel.tv_nsec;
    if (abs.tv_nsec >= 1000000000L) abs.tv_sec++, abs.tv_nsec -= 1000000000L;
  }
  volatile int rc = 0, err = 0, valid;
  VMLAB_GUARD(L, "sem_wait");
  valid = shm_sem_valid(s, r->shared);
  if (valid) {
    if (!timed) rc = sem_wait(&s->sem);
    else if (rel.tv_sec == 0 && rel.tv_nsec == 0) rc = sem_trywait(&s->sem);
    else rc = shm_sem_clockwait(&s->sem, &abs);
    err = errno;
  }
  vmlab_guard_end();
  if (!valid) return shm_sem_invalid(L, "sem_wait", 2);
  if (rc == 0) {
    lua_pushboolean(L, 1);
    return 1;
  }
  if (err == ETIMEDOUT || err == EAGAIN || err == EINTR) {
    lua_pushboolean(L, 0);
    lua_pushstring(L, err == EINTR ? "interrupted" : "timeout");
    return 2;
  }
  return vmlab_push_syserror(L, "sem_wait", err);
}

/* s:sem_value(off) -> the semaphore's count, or nil, msg, errno. See
   sem_getvalue(3). */
static int shm_sem_value(lua_State *L) { return shm_sem_call(L, SHM_SEM_VALUE); }

/* s:sem_destroy(off) -> true, or nil, msg, errno: the bytes at off are no
   semaphore any more. See sem_destroy(3). */
static int shm_sem_destroy(lua_State *L) { return shm_sem_call(L, SHM_SEM_DESTROY); }

/* ------------------------------------------------------------------ */
/* The race loops (lab section 13); each returns the seconds it took   */

/* Word at off_idx, count n at n_idx, delta d at d_idx; bits at bits_idx. */
typedef struct shm_loop {
  unsigned char *p;
  int bits;
  lua_Integer d, n;
} shm_loop;

static shm_loop shm_check_loop(lua_State *L, vmlab_region *r, int off_idx, int d_idx, int n_idx, int bits_idx) {
  shm_loop lp;
  lp.bits = shm_check_bits(L, bits_idx);
  lp.p = shm_check_at(L, r, off_idx, (size_t)lp.bits / 8, (size_t)lp.bits / 8);
  lp.d = shm_check_value(L, d_idx, lp.bits);
  lp.n = luaL_checkinteger(L, n_idx);
  luaL_argcheck(L, lp.n >= 0, n_idx, "count must not be negative");
  return lp;
}

/* One plain read-modify-write: volatile keeps the compiler from merging the
   n steps into one, so each is a separate load, add and store that another
   process can interleave with: `counter++` of the lab. */
static inline void shm_plain_step(const shm_loop *lp) {
  if (lp->bits == 32) {
    volatile uint32_t *w = (volatile uint32_t *)(void *)lp->p;
    *w = *w + (uint32_t)lp->d;
  } else {
    volatile uint64_t *w = (volatile uint64_t *)(void *)lp->p;
    *w = *w + (uint64_t)lp->d;
  }
}

/* s:plain_add_n(off, d, n, bits = 64) -> seconds: n non-atomic `*p = *p + d`. */
static int shm_plain_add_n(lua_State *L) {
  vmlab_region *r = vmlab_check_open(L, 1);
  shm_loop lp = shm_check_loop(L, r, 2, 3, 4, 5);
  double t0 = vmlab_now();
  VMLAB_GUARD(L, "plain_add_n");
  for (lua_Integer i = 0; i < lp.n; i++) shm_plain_step(&lp);
  vmlab_guard_end();
  lua_pushnumber(L, vmlab_now() - t0);
  return 1;
}

/* s:atomic_add_n(off, d, n, bits = 64) -> seconds: n atomic fetch_adds. */
static int shm_atomic_add_n(lua_State *L) {
  vmlab_region *r = vmlab_check_open(L, 1);
  shm_loop lp = shm_check_loop(L, r, 2, 3, 4, 5);
  double t0 = vmlab_now();
  VMLAB_GUARD(L, "atomic_add_n");
  if (lp.bits == 32)
    for (lua_Integer i = 0; i < lp.n; i++) atomic_fetch_add(SHM_A32(lp.p), (int32_t)(uint32_t)lp.d);
  else
    for (lua_Integer i = 0; i < lp.n; i++) atomic_fetch_add(SHM_A64(lp.p), (int64_t)lp.d);
  vmlab_guard_end();
  lua_pushnumber(L, vmlab_now() - t0);
  return 1;
}

/* s:sem_add_n(sem_off, off, d, n, bits = 64) -> seconds, or nil, msg, errno:
   n plain increments, each between sem_wait and sem_post of the semaphore at
   sem_off (initialised to 1 with s:sem_init). The counter must not overlap
   the semaphore's vm.sem_size bytes. */
static int shm_sem_add_n(lua_State *L) {
  vmlab_region *r = vmlab_check_open(L, 1);
  shm_sem *s = shm_check_sem(L, r, 2);
  shm_loop lp = shm_check_loop(L, r, 3, 4, 5, 6);
  unsigned char *sem_start = (unsigned char *)s, *sem_end = sem_start + sizeof(shm_sem);
  if (lp.p < sem_end && lp.p + lp.bits / 8 > sem_start)
    luaL_argerror(L, 3, lua_pushfstring(L, "the counter at offset %I overlaps the semaphore at offset %I (%d bytes)",
                                        lua_tointeger(L, 3), lua_tointeger(L, 2), (int)sizeof(shm_sem)));
  volatile int err = 0;
  const char *volatile failed = NULL;
  double t0 = vmlab_now();
  VMLAB_GUARD(L, "sem_add_n");
  for (lua_Integer i = 0; i < lp.n && failed == NULL; i++) {
    if (!shm_sem_valid(s, r->shared)) {
      failed = "no semaphore";
      break;
    }
    while (sem_wait(&s->sem) != 0) {
      if (errno != EINTR) {
        err = errno;
        failed = "sem_wait";
        break;
      }
    }
    if (failed != NULL) break;
    shm_plain_step(&lp);
    if (sem_post(&s->sem) != 0) {
      err = errno;
      failed = "sem_post";
    }
  }
  vmlab_guard_end();
  if (failed != NULL && strcmp(failed, "no semaphore") == 0) return shm_sem_invalid(L, "sem_add_n", 2);
  if (failed != NULL) return vmlab_push_syserror(L, failed, err);
  lua_pushnumber(L, vmlab_now() - t0);
  return 1;
}

void vmlab_open_shm(lua_State *L) {
  static const luaL_Reg methods[] = {
      {"atomic_load", shm_atomic_load}, {"atomic_store", shm_atomic_store}, {"atomic_add", shm_atomic_add},
      {"compare_swap", shm_compare_swap}, {"wait", shm_wait}, {"wake", shm_wake},
      {"sleep_poll", shm_sleep_poll}, {"sem_init", shm_sem_init}, {"sem_post", shm_sem_post},
      {"sem_wait", shm_sem_wait}, {"sem_value", shm_sem_value}, {"sem_destroy", shm_sem_destroy},
      {"plain_add_n", shm_plain_add_n}, {"atomic_add_n", shm_atomic_add_n}, {"sem_add_n", shm_sem_add_n},
      {"unlink", shm_region_unlink}, {NULL, NULL}};
  static const luaL_Reg funcs[] = {
      {"shm_open", shm_open_region}, {"shm_unlink", shm_unlink_name}, {"shm_list", shm_list}, {NULL, NULL}};
  shm_sem_probe();
  vmlab_region_add_methods(L, methods);
  luaL_setfuncs(L, funcs, 0);
  lua_pushinteger(L, (lua_Integer)sizeof(shm_sem));
  lua_setfield(L, -2, "sem_size"); /* bytes a semaphore takes in a region */
}
