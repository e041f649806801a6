/*
 * touch.c - r:touch(), the first-touch loop: one access per page (or per
 * stride), read or write, in address order, random order or as a pointer
 * chase, run in C under the fault guard. It reports the page faults the walk
 * cost (getrusage(2)) and, with sample=N, a timeline of VmRSS/VmSize and
 * faults every N bytes, taken without a Lua call per page.
 */
#include "vmlab.h"

#include <fcntl.h>
#include <stdint.h>
#include <sys/mman.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>


/* /proc/self/statm, opened once per process (reopened after fork). */
static int statm_fd = -1;
static pid_t statm_pid = 0;

static void statm_read(size_t *virt, size_t *rss) {
  char buf[128];
  *virt = *rss = 0;
  if (statm_fd < 0 || statm_pid != getpid()) {
    if (statm_fd >= 0 && statm_pid == getpid()) close(statm_fd);
    statm_fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
    statm_pid = getpid();
    if (statm_fd < 0) return;
  }
  ssize_t n = pread(statm_fd, buf, sizeof buf - 1, 0);
  if (n <= 0) return;
  buf[n] = '\0';
  char *end;
  unsigned long long v = strtoull(buf, &end, 10);
  unsigned long long res = strtoull(end, NULL, 10);
  *virt = (size_t)v * vmlab_page_size;
  *rss = (size_t)res * vmlab_page_size;
}

typedef struct touch_sample {
  double t;
  size_t bytes, rss, virt;
  long minor, major;
} touch_sample;

static void touch_take_sample(touch_sample *s, double t0, size_t bytes, long minor0, long major0) {
  long minor, major;
  vmlab_faults_now(&minor, &major);
  statm_read(&s->virt, &s->rss);
  s->t = vmlab_now() - t0;
  s->bytes = bytes;
  s->minor = minor - minor0;
  s->major = major - major0;
}

static const char *const touch_modes[] = {"read", "write", NULL};
static const char *const touch_fields[] = {"offset", "length", "stride", "sample", "value",
                                           "order", "seed", "passes", NULL};

/* A seeded random permutation of 0..n-1 (Fisher-Yates, xorshift64*). */
static void touch_shuffle(uint32_t *perm, size_t n, uint64_t seed) {
  uint64_t x = seed * 0x9E3779B97F4A7C15ULL + 0x2545F4914F6CDD1DULL;
  for (size_t i = 0; i < n; i++) perm[i] = (uint32_t)i;
  for (size_t i = n; i > 1; i--) {
    x ^= x >> 12, x ^= x << 25, x ^= x >> 27;
    size_t j = (size_t)((x * 0x2545F4914F6CDD1DULL) % i);
    uint32_t t = perm[i - 1];
    perm[i - 1] = perm[j];
    perm[j] = t;
  }
}

typedef struct touch_walk {
  volatile unsigned char *base;
  size_t step, accesses, per_chunk, len, passes;
  size_t from, to;      /* the part to walk now, in accesses counted over all passes */
  const uint32_t *perm; /* random order, or NULL */
  int chase;            /* dependent loads: each read gives the next offset */
  size_t last;          /* chase: the offset of the last slot; a larger one ends the walk */
  unsigned char value;
  int write;
  touch_sample *samples;
  size_t cap;
  double t0;
  long minor0, major0;
} touch_walk;

/* Bytes walked once k accesses (counted over all passes) are done. */
static size_t touch_walked(const touch_walk *w, size_t k) {
  size_t pass = k / w->accesses, in_pass = (k % w->accesses) * w->step;
  return pass * w->len + (in_pass < w->len ? in_pass : w->len);
}

/* The loop itself: accesses from..to-1 (counted over all passes), one per
   step, a sample every per_chunk accesses of a pass and at its end.
   Returns the number of samples taken. */
__attribute__((noinline)) VMLAB_NO_ASAN static size_t touch_walk_run(const touch_walk *w, size_t nsamples) {
  volatile unsigned char *base = w->base;
  const size_t step = w->step, n = w->accesses;
  const uint32_t *perm = w->perm;
  unsigned sink = 0;
  if (w->chase) { /* a pointer chase: no two loads overlap, so each TLB miss is paid in full */
    uint64_t at = (uint64_t)perm[0] * step;
    for (size_t k = w->from; k < w->to; k++) {
      at = *(volatile const uint64_t *)(base + at);
      if (at > w->last) return SIZE_MAX; /* the chain was changed under the walk: never leave the region */
    }
    return nsamples;
  }
  for (size_t k = w->from; k < w->to;) {
    size_t pass = k / n, i = k % n;
    size_t stop = i - i % w->per_chunk + w->per_chunk; /* the next sample point */
    if (stop > n) stop = n;
    if (pass * n + stop > w->to) stop = w->to - pass * n;
    k = pass * n + stop;
    if (perm == NULL && w->write)
      for (; i < stop; i++) base[i * step] = w->value;
    else if (perm == NULL)
      for (; i < stop; i++) sink += base[i * step];
    else if (w->write)
      for (; i < stop; i++) base[(size_t)perm[i] * step] = w->value;
    else
      for (; i < stop; i++) sink += base[(size_t)perm[i] * step];
    if (w->samples != NULL && nsamples < w->cap && (stop % w->per_chunk == 0 || stop == n)) {
      touch_take_sample(&w->samples[nsamples++], w->t0, touch_walked(w, k), w->minor0, w->major0);
    }
  }
  (void)sink;
  return nsamples;
}

/* For order="chase": write into each visited slot the offset of the next one,
   in the shuffled order, closing the cycle. Every slot is 8 bytes inside the
   walked range (n counts only slots that fit), and the region is private
   memory of this process (touch_region checks), so read mode changes nothing
   another process or the file sees. */
__attribute__((noinline)) static int touch_link(lua_State *L, volatile unsigned char *base, const uint32_t *perm,
                                                size_t n, size_t step) {
  VMLAB_GUARD(L, "touch (chase setup)");
  for (size_t i = 0; i < n; i++)
    *(volatile uint64_t *)(base + (size_t)perm[i] * step) = (uint64_t)perm[(i + 1) % n] * step;
  vmlab_guard_end();
  return 0;
}

/* ------------------------------------------------------------------ */
/* The touch hook: one Lua function, called between pieces of every touch */

#define TOUCH_HOOK_KEY "vmlab.touch_hook"
#define TOUCH_HOOK_BYTES ((size_t)64 << 20)
#define TOUCH_HOOK_ACCESSES ((size_t)16384) /* 64 MiB of 4 KiB pages */

/* Push the hook and return 1, or push nothing and return 0. */
static int touch_hook_push(lua_State *L) {
  if (lua_getfield(L, LUA_REGISTRYINDEX, TOUCH_HOOK_KEY) == LUA_TFUNCTION) return 1;
  lua_pop(L, 1);
  return 0;
}

/* vm.set_touch_hook(fn or nil) -> the previous hook. While set, every
   r:touch walks in pieces of about 64 MiB (and at least 16384 accesses, so
   with a huge stride a piece is longer) and calls fn(bytes_walked,
   bytes_total, minor_faults_so_far) after each (outside the loop, so the loop
   itself is unchanged): how `vmlab run` draws a progress bar for experiments
   that touch memory. Not called for order = "chase". The time and faults the
   hook itself costs are left out of the touch's result. While the hook runs, the
   region being walked refuses close, realloc, protect and advice that drops
   its contents ("the region is in use by touch"). */
static int touch_set_hook(lua_State *L) {
  if (!lua_isnoneornil(L, 1)) luaL_checktype(L, 1, LUA_TFUNCTION);
  lua_settop(L, 1);
  lua_getfield(L, LUA_REGISTRYINDEX, TOUCH_HOOK_KEY);
  lua_pushvalue(L, 1);
  lua_setfield(L, LUA_REGISTRYINDEX, TOUCH_HOOK_KEY);
  return 1;
}

/* The walk inside the fault guard; kept apart so no local of touch_region
   lives across the sigsetjmp. */
__attribute__((noinline)) static int touch_guarded(lua_State *L, const touch_walk *w, size_t *nsamples) {
  VMLAB_GUARD(L, w->write ? "touch (write)" : "touch (read)");
  *nsamples = touch_walk_run(w, *nsamples);
  vmlab_guard_end();
  return 0;
}

/* A walk's hold on its region: r->busy counts the walks in progress (Lua
   code can run during one: the hook, finalizers); a to-be-closed token gives
   the hold back however the walk ends. */
#define TOUCH_HOLD_MT "vmlab.TouchHold"

static int touch_hold_release(lua_State *L) {
  vmlab_region **held = luaL_checkudata(L, 1, TOUCH_HOLD_MT);
  if (*held != NULL) (*held)->busy--;
  *held = NULL;
  return 0;
}

/* Push the token (closed by lua_closeslot or by an error unwinding). */
static void touch_hold(lua_State *L, vmlab_region *r) {
  vmlab_region **held = lua_newuserdatauv(L, sizeof *held, 0);
  *held = NULL;
  luaL_setmetatable(L, TOUCH_HOLD_MT);
  lua_toclose(L, -1);
  *held = r;
  r->busy++;
}

/* At most this many timeline samples (56 MiB of them): more raise. */
#define TOUCH_MAX_SAMPLES ((size_t)1 << 20)

static const char *const touch_orders[] = {"sequential", "random", "chase", NULL};

/* r:touch("read"|"write", {offset=, length=, stride=, sample=, value=, order=, seed=, passes=})
   One access per stride (default: one per page), in address order or in a
   seeded random order, passes times over; returns pages, bytes, seconds and
   the page faults it cost (getrusage(2)); with sample=N, a timeline with a
   sample every N bytes walked (VmRSS and VmSize from /proc/self/statm).
   order = "chase" reads as a pointer chase: it first writes the chain (the
   offset of the next slot) into the first 8 bytes of each stride it visits,
   so it reads only, needs a writable private region (vm.mmap private or a
   heap block: never a shared mapping or object, whose other users and file
   would see the chain) and visits only strides with 8 bytes inside the range. */
static int touch_region(lua_State *L) {
  vmlab_region *r = vmlab_check_open(L, 1);
  int write = vmlab_check_option(L, 2, NULL, touch_modes) == 1;
  vmlab_check_known_fields(L, 3, touch_fields);
  size_t off, len;
  vmlab_field_range(L, 3, r->size, &off, &len);
  lua_Integer stride = vmlab_opt_int_field(L, 3, "stride", (lua_Integer)vmlab_page_size);
  if (stride <= 0) return luaL_error(L, "bad option 'stride' (must be positive)");
  lua_Integer sample = vmlab_opt_int_field(L, 3, "sample", 0);
  if (sample < 0) return luaL_error(L, "bad option 'sample' (must not be negative)");
  lua_Integer value = vmlab_opt_int_field(L, 3, "value", 1);
  if (value < 0 || value > 255) return luaL_error(L, "bad option 'value' (a byte, 0 to 255)");
  lua_Integer passes = vmlab_opt_int_field(L, 3, "passes", 1);
  if (passes < 1 || passes > 1000000) return luaL_error(L, "bad option 'passes' (1 to 1000000)");
  int order = vmlab_opt_option_field(L, 3, "order", "sequential", touch_orders);
  int chase = order == 2, random = order >= 1;
  lua_Integer seed = vmlab_opt_int_field(L, 3, "seed", 1);
  /* The option lookups may have run Lua code (an __index metamethod), and so
     may the allocations below (finalizers), the hook, and the guard's error:
     look at the region again, then hold it (close, realloc, protect refuse)
     until the walk is over. */
  r = vmlab_check_open(L, 1);
  if (len > r->size || off > r->size - len)
    return luaL_error(L, "touch: the region changed while its options were read");
  lua_settop(L, 3);
  touch_hold(L, r); /* index 4, to be closed */
  size_t step = (size_t)stride;
  size_t total; /* bytes walked, for sampling */
  if (__builtin_mul_overflow(len, (size_t)passes, &total) || total > (size_t)INT64_MAX)
    return luaL_error(L, "bad option 'passes' (length x passes is too large)");
  size_t accesses = len / step + (len % step != 0); /* per pass */
  if (chase) {
    if (write || step % 8 != 0 || ((uintptr_t)(r->addr + off) & 7) != 0 || sample > 0 || len < 8)
      return luaL_error(L, "bad option 'order' (\"chase\" reads only, with 8-byte aligned offset and stride, "
                           "no sample, at least 8 bytes)");
    if (r->shared)
      return luaL_error(L, "bad option 'order' (\"chase\" writes its chain into the memory it walks: not in a "
                           "shared region, whose other users or file would see it; use a private one)");
    if (!(r->prot & PROT_WRITE))
      return luaL_error(L, "bad option 'order' (\"chase\" writes its chain into the memory it walks: the region "
                           "must be writable)");
    accesses = (len - 8) / step + 1; /* the strides with a whole 8-byte slot inside the range */
  }
  size_t total_accesses = accesses * (size_t)passes; /* <= total: no overflow */
  size_t chunk = sample > 0 ? (size_t)sample : total;
  if (chunk < step) chunk = step;
  size_t per_chunk = chunk / step; /* accesses between samples */

  uint32_t *perm = NULL;
  if (random && accesses > 0) {
    if (accesses > UINT32_MAX) return luaL_error(L, "bad option 'order' (random order takes at most 2^32 pages)");
    perm = lua_newuserdatauv(L, accesses * sizeof *perm, 0);
    touch_shuffle(perm, accesses, (uint64_t)seed);
  }
  touch_sample *samples = NULL;
  size_t nsamples = 0, cap = 0;
  if (sample > 0) {
    cap = total_accesses / per_chunk + 3; /* one per interval, the end of each pass, the start */
    if (cap > TOUCH_MAX_SAMPLES + 3 || (size_t)passes > TOUCH_MAX_SAMPLES)
      return luaL_error(L, "bad option 'sample' (a sample every %I bytes takes more than %I samples; sample less often)",
                        sample, (lua_Integer)TOUCH_MAX_SAMPLES);
    cap += (size_t)passes; /* a pass that ends between two sample points adds one */
    samples = lua_newuserdatauv(L, cap * sizeof *samples, 0); /* freed by the GC, even on a fault */
  }
  volatile unsigned char *base = r->addr + off;
  unsigned char v = (unsigned char)value;
  long minor0, major0, minor1, major1;
  if (chase) touch_link(L, base, perm, accesses, step); /* not timed */
  int hooked = !chase && touch_hook_push(L);
  int hook = lua_gettop(L);
  unsigned char *const addr0 = r->addr;
  const size_t size0 = r->size;
  vmlab_faults_now(&minor0, &major0);
  double t0 = vmlab_now();
  if (samples != NULL) touch_take_sample(&samples[nsamples++], t0, 0, minor0, major0);

  touch_walk w = {base, step, accesses, per_chunk, len, (size_t)passes, 0, total_accesses, perm, chase,
                  chase ? (accesses - 1) * step : 0, v, write, samples, cap, t0, minor0, major0};
  if (!hooked) {
    touch_guarded(L, &w, &nsamples);
    if (nsamples == SIZE_MAX) return luaL_error(L, "touch (chase): the chain was changed during the walk");
  } else { /* in pieces of about 64 MiB, the hook after each: at least TOUCH_HOOK_ACCESSES accesses (so
              a stride over 64 MiB still walks, and the time around each hook call stays small next to
              the walk), whole sample intervals when they are shorter */
    size_t piece = TOUCH_HOOK_BYTES / step;
    if (piece < TOUCH_HOOK_ACCESSES) piece = TOUCH_HOOK_ACCESSES;
    if (sample > 0 && per_chunk <= piece) piece = (piece + per_chunk - 1) / per_chunk * per_chunk;
    for (size_t k = 0; k < total_accesses; k = w.to) {
      w.from = k;
      w.to = total_accesses - k <= piece ? total_accesses : k + piece;
      touch_guarded(L, &w, &nsamples);
      long minor, major, minor_h, major_h;
      vmlab_faults_now(&minor, &major);
      double h0 = vmlab_now();
      lua_pushvalue(L, hook);
      lua_pushinteger(L, (lua_Integer)touch_walked(&w, w.to));
      lua_pushinteger(L, (lua_Integer)total);
      lua_pushinteger(L, minor - minor0);
      lua_call(L, 3, 0);
      /* the hook's own time and faults are not the walk's: leave them out */
      vmlab_faults_now(&minor_h, &major_h);
      t0 += vmlab_now() - h0;
      minor0 += minor_h - minor;
      major0 += major_h - major;
      w.t0 = t0;
      w.minor0 = minor0;
      w.major0 = major0;
      /* close, realloc and protect refuse while the hold is on; never walk on through a stale pointer */
      if (r->addr != addr0 || r->size != size0)
        return luaL_error(L, "touch: the region changed under the walk (in the touch hook)");
    }
    lua_settop(L, hook - 1);
  }
  lua_closeslot(L, 4); /* the hold */

  double seconds = vmlab_now() - t0;
  vmlab_faults_now(&minor1, &major1);
  lua_createtable(L, 0, 8);
  vmlab_set_int(L, "pages", (lua_Integer)total_accesses);
  vmlab_set_int(L, "bytes", (lua_Integer)total);
  vmlab_set_num(L, "seconds", seconds);
  vmlab_set_int(L, "minor_faults", minor1 - minor0);
  vmlab_set_int(L, "major_faults", major1 - major0);
  lua_pushstring(L, write ? "write" : "read");
  lua_setfield(L, -2, "mode");
  if (samples != NULL) {
    lua_createtable(L, (int)nsamples, 0);
    for (size_t i = 0; i < nsamples; i++) {
      lua_createtable(L, 0, 6);
      vmlab_set_num(L, "t", samples[i].t);
      vmlab_set_int(L, "bytes", (lua_Integer)samples[i].bytes);
      vmlab_set_int(L, "rss", (lua_Integer)samples[i].rss);
      vmlab_set_int(L, "virt", (lua_Integer)samples[i].virt);
      vmlab_set_int(L, "minor_faults", samples[i].minor);
      vmlab_set_int(L, "major_faults", samples[i].major);
      lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    lua_setfield(L, -2, "timeline");
  }
  return 1;
}

void vmlab_open_touch(lua_State *L) {
  static const luaL_Reg methods[] = {{"touch", touch_region}, {NULL, NULL}};
  vmlab_region_add_methods(L, methods);
  luaL_newmetatable(L, TOUCH_HOLD_MT);
  lua_pushcfunction(L, touch_hold_release);
  lua_setfield(L, -2, "__close");
  lua_pushcfunction(L, touch_hold_release);
  lua_setfield(L, -2, "__gc");
  lua_pop(L, 1);
  lua_pushcfunction(L, touch_set_hook);
  lua_setfield(L, -2, "set_touch_hook");
}
