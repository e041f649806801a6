/*
 * touch.c - r:touch(), the first-touch loop: one access per page (or per
 * stride), read or write, in address order, random order or as a pointer
 * chase, run in C under the fault guard. It reports the page faults the walk
 * cost (getrusage(2)) and, with sample=N, a timeline of VmRSS/VmSize and
 * faults every N bytes, taken without a Lua call per page.
 */
#include "vmlab.h"

#include <fcntl.h>
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
    for (size_t k = w->from; k < w->to; k++) at = *(volatile const uint64_t *)(base + at);
    return nsamples + (size_t)(at & 0);
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
   in the shuffled order, closing the cycle. */
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

/* Push the hook and return 1, or push nothing and return 0. */
static int touch_hook_push(lua_State *L) {
  if (lua_getfield(L, LUA_REGISTRYINDEX, TOUCH_HOOK_KEY) == LUA_TFUNCTION) return 1;
  lua_pop(L, 1);
  return 0;
}

/* vm.set_touch_hook(fn or nil) -> the previous hook. While set, every
   r:touch walks in pieces of about 64 MiB and calls fn(bytes_walked,
   bytes_total, minor_faults_so_far) after each (outside the loop, so the loop
   itself is unchanged): how `vmlab run` draws a progress bar for experiments
   that touch memory. Not called for order = "chase". */
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

/* r:touch("read"|"write", {offset=, length=, stride=, sample=, value=, order=, seed=, passes=})
   One access per stride (default: one per page), in address order or in a
   seeded random order, passes times over; returns pages, bytes, seconds and
   the page faults it cost (getrusage(2)); with sample=N, a timeline with a
   sample every N bytes walked (VmRSS and VmSize from /proc/self/statm). */
static int touch_region(lua_State *L) {
  vmlab_region *r = vmlab_check_open(L, 1);
  int write = luaL_checkoption(L, 2, NULL, touch_modes) == 1;
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
  const char *order = vmlab_opt_string_field(L, 3, "order", "sequential");
  int chase = strcmp(order, "chase") == 0;
  int random = chase || strcmp(order, "random") == 0;
  if (!random && strcmp(order, "sequential") != 0)
    return luaL_error(L, "bad option 'order' (\"sequential\", \"random\" or \"chase\" expected, got \"%s\")",
                      order);
  lua_Integer seed = vmlab_opt_int_field(L, 3, "seed", 1);
  size_t step = (size_t)stride;
  size_t accesses = (len + step - 1) / step; /* per pass */
  size_t total = len * (size_t)passes;        /* bytes walked, for sampling */
  size_t chunk = sample > 0 ? (size_t)sample : total;
  if (chunk < step) chunk = step;
  size_t per_chunk = chunk / step; /* accesses between samples */
  if (chase && (write || step % 8 != 0 || ((uintptr_t)(r->addr + off) & 7) != 0 || sample > 0 || len < step))
    return luaL_error(L, "bad option 'order' (\"chase\" reads only, with 8-byte aligned offset and stride, no sample)");

  uint32_t *perm = NULL;
  if (random && accesses > 0) {
    if (accesses > UINT32_MAX) return luaL_error(L, "bad option 'order' (random order takes at most 2^32 pages)");
    perm = lua_newuserdatauv(L, accesses * sizeof *perm, 0);
    touch_shuffle(perm, accesses, (uint64_t)seed);
  }
  touch_sample *samples = NULL;
  size_t nsamples = 0, cap = 0;
  if (sample > 0) {
    cap = (accesses * (size_t)passes) / per_chunk + 3;
    samples = lua_newuserdatauv(L, cap * sizeof *samples, 0); /* freed by the GC, even on a fault */
  }
  volatile unsigned char *base = r->addr + off;
  unsigned char v = (unsigned char)value;
  long minor0, major0, minor1, major1;
  if (chase) touch_link(L, base, perm, accesses, step); /* not timed */
  vmlab_faults_now(&minor0, &major0);
  double t0 = vmlab_now();
  if (samples != NULL) touch_take_sample(&samples[nsamples++], t0, 0, minor0, major0);

  size_t total_accesses = accesses * (size_t)passes;
  touch_walk w = {base, step, accesses, per_chunk, len, (size_t)passes, 0, total_accesses, perm, chase, v, write,
                  samples, cap, t0, minor0, major0};
  if (chase || !touch_hook_push(L)) {
    touch_guarded(L, &w, &nsamples);
  } else { /* in pieces of about 64 MiB (whole sample intervals), the hook after each */
    int hook = lua_gettop(L);
    size_t piece = ((TOUCH_HOOK_BYTES / step + per_chunk - 1) / per_chunk) * per_chunk;
    for (size_t k = 0; k < total_accesses; k = w.to) {
      w.from = k;
      w.to = total_accesses - k < piece ? total_accesses : k + piece;
      touch_guarded(L, &w, &nsamples);
      long minor, major;
      vmlab_faults_now(&minor, &major);
      lua_pushvalue(L, hook);
      lua_pushinteger(L, (lua_Integer)touch_walked(&w, w.to));
      lua_pushinteger(L, (lua_Integer)total);
      lua_pushinteger(L, minor - minor0);
      lua_call(L, 3, 0);
    }
    lua_pop(L, 1);
  }

  double seconds = vmlab_now() - t0;
  vmlab_faults_now(&minor1, &major1);
  lua_createtable(L, 0, 8);
  vmlab_set_int(L, "pages", (lua_Integer)(accesses * (size_t)passes));
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
  lua_pushcfunction(L, touch_set_hook);
  lua_setfield(L, -2, "set_touch_hook");
}
