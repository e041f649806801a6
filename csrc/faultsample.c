/*
 * faultsample.c - vm.fault_sampler(): which addresses faulted.
 *
 * A perf_event_open(2) software event (page faults) of this thread with
 * sample_period 1 writes one record per fault, holding the faulting data
 * address and the instruction that faulted, into a ring buffer the kernel
 * shares with us through mmap(2) (one metadata page plus 2^n data pages).
 * Nothing runs per fault in this process: :read() drains the ring in C.
 * When the ring fills before it is read, the kernel drops samples; the
 * event's own count (read(2) on its fd) still includes those faults, so
 * :read() reports how many were lost.
 * With perf_event_paranoid=2 an unprivileged process may sample only what
 * happens in user mode (exclude_kernel=1): faults taken while the kernel
 * copies into user memory (read(2) into a fresh buffer) are then not seen.
 */
#include "vmlab.h"

#include <errno.h>
#include <linux/perf_event.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#define FAULTSAMPLE_MT "vmlab.FaultSampler"
#define FAULTSAMPLE_MAX_PAGES (1 << 16) /* 256 MiB of ring: plenty */

static const char *const faultsample_kinds[] = {"all", "minor", "major", NULL};

typedef struct faultsample {
  int fd;             /* perf event, or -1 once closed */
  int kind;           /* index into faultsample_kinds */
  int running;        /* enabled by :start() */
  int user_only;      /* exclude_kernel=1: faults in user mode only */
  pid_t owner;        /* the process that opened it */
  unsigned char *ring; /* metadata page + data pages, or NULL */
  size_t ring_size;   /* bytes mapped */
  size_t data_pages;  /* 2^n */
  uint64_t period;    /* one sample every `period` faults */
  uint64_t lost;      /* samples the kernel dropped, all reads */
  uint64_t taken;     /* samples read, all reads */
  uint64_t throttled; /* PERF_RECORD_THROTTLE records seen */
} faultsample;

/* What one PERF_RECORD_SAMPLE carries with sample_type IP|ADDR. */
struct faultsample_record {
  struct perf_event_header header;
  uint64_t ip;
  uint64_t addr;
};

/* ------------------------------------------------------------------ */
/* Opening                                                             */

/* This thread (pid 0), any CPU, disabled until :start(). -1 and errno on failure. */
static int faultsample_open_event(int kind, uint64_t period, int exclude_kernel) {
  struct perf_event_attr a;
  memset(&a, 0, sizeof a);
  a.sample_period = period;
  a.sample_type = PERF_SAMPLE_IP | PERF_SAMPLE_ADDR;
  a.disabled = 1;
  a.wakeup_events = 1u << 30; /* nobody polls: no wakeups needed */
  return vmlab_perf_fault_event(&a, faultsample_kinds[kind], exclude_kernel);
}

/* Push nil, "<what>: <reason> (perf_event_paranoid=N)", err; 3 results. */
static int faultsample_refused(lua_State *L, const char *what, int err) {
  lua_pushnil(L);
  vmlab_push_perf_refusal(L, what, err);
  lua_pushinteger(L, err);
  return 3;
}

static const char *const faultsample_fields[] = {"kind", "period", "pages", "user_only", NULL};

/* vm.fault_sampler({kind = "all"|"minor"|"major", period = 1, pages = 1024,
   user_only = false}) -> FaultSampler, or nil, "perf_event_open: <reason>",
   errno when the kernel refuses (then skip, saying why).
   kind "all" samples every fault the kernel takes for us (also the ones it
   refuses with SIGSEGV); "minor"/"major" only resolved ones, as getrusage(2)
   counts them. pages: data pages of the ring (a power of two; when that
   much locked memory is refused, smaller rings are tried down to 8 pages).
   user_only: sample user-mode faults only (forced where
   perf_event_paranoid >= 2 for an unprivileged process).
   See perf_event_open(2), "MMAP layout" and "PERF_RECORD_SAMPLE". */
static int faultsample_new(lua_State *L) {
  vmlab_check_known_fields(L, 1, faultsample_fields);
  int kind = vmlab_opt_option_field(L, 1, "kind", "all", faultsample_kinds);
  lua_Integer period = vmlab_opt_int_field(L, 1, "period", 1);
  if (period < 1) return luaL_error(L, "bad option 'period' (must be positive)");
  lua_Integer pages = vmlab_opt_int_field(L, 1, "pages", 1024);
  if (pages < 1 || pages > FAULTSAMPLE_MAX_PAGES || (pages & (pages - 1)) != 0)
    return luaL_error(L, "bad option 'pages' (a power of two from 1 to %d)", FAULTSAMPLE_MAX_PAGES);
  int user_only = vmlab_opt_bool_field(L, 1, "user_only", 0);

  faultsample *s = lua_newuserdatauv(L, sizeof *s, 0);
  memset(s, 0, sizeof *s);
  s->fd = -1;
  s->kind = kind;
  s->owner = getpid();
  s->period = (uint64_t)period;
  luaL_setmetatable(L, FAULTSAMPLE_MT);

  /* Faults in kernel mode too where allowed (as getrusage counts them);
     perf_event_paranoid=2 lets an unprivileged process see user mode only. */
  int fd = user_only ? -1 : faultsample_open_event(kind, s->period, 0);
  if (fd < 0 && (user_only || errno == EACCES || errno == EPERM)) {
    fd = faultsample_open_event(kind, s->period, 1);
    user_only = 1;
  }
  if (fd < 0) {
    int err = errno;
    return faultsample_refused(L, "perf_event_open", err);
  }
  s->fd = fd;
  s->user_only = user_only;

  /* The ring counts against perf_event_mlock_kb and RLIMIT_MEMLOCK: halve
     it until the kernel agrees. */
  size_t n = (size_t)pages;
  for (;;) {
    size_t bytes = (n + 1) * vmlab_page_size;
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p != MAP_FAILED) {
      s->ring = p;
      s->ring_size = bytes;
      s->data_pages = n;
      break;
    }
    int err = errno;
    if ((err != EPERM && err != ENOMEM) || n <= 8) {
      close(fd);
      s->fd = -1;
      return faultsample_refused(L, "mmap (perf ring buffer)", err);
    }
    n /= 2;
  }
  return 1;
}

/* ------------------------------------------------------------------ */
/* The object                                                          */

static faultsample *faultsample_check(lua_State *L, int idx) {
  return luaL_checkudata(L, idx, FAULTSAMPLE_MT);
}

static faultsample *faultsample_check_open(lua_State *L, int idx) {
  faultsample *s = faultsample_check(L, idx);
  if (s->fd < 0) luaL_error(L, "attempt to use a closed fault sampler");
  /* The ring is not copied into a forked child (the kernel marks it
     VM_DONTCOPY), and the event still samples the parent's thread. */
  if (s->owner != getpid())
    luaL_error(L, "this fault sampler samples pid %d (it was opened before a fork); open a new one here",
               (int)s->owner);
  return s;
}

/* Idempotent; in a forked child only the child's copy of the fd goes (the
   ring is not mapped there, and the parent's event stays as it is). */
static void faultsample_release(faultsample *s) {
  if (s->fd < 0) return;
  if (s->owner == getpid() && s->ring != NULL) munmap(s->ring, s->ring_size);
  close(s->fd);
  s->fd = -1;
  s->ring = NULL;
  s->running = 0;
}

/* sampler:close() -- also __gc and __close; closing twice is harmless */
static int faultsample_close(lua_State *L) {
  faultsample_release(faultsample_check(L, 1));
  return 0;
}

static int faultsample_ioctl(lua_State *L, faultsample *s, unsigned long request, const char *what) {
  if (ioctl(s->fd, request, 0) != 0) {
    int err = errno;
    return vmlab_push_syserror(L, what, err);
  }
  lua_settop(L, 1);
  return 1;
}

/* sampler:start() -> sampler: sampling begins (again) -- PERF_EVENT_IOC_ENABLE */
static int faultsample_start(lua_State *L) {
  faultsample *s = faultsample_check_open(L, 1);
  int n = faultsample_ioctl(L, s, PERF_EVENT_IOC_ENABLE, "ioctl(PERF_EVENT_IOC_ENABLE)");
  if (n == 1) s->running = 1;
  return n;
}

/* sampler:stop() -> sampler: sampling pauses; samples stay in the ring -- PERF_EVENT_IOC_DISABLE */
static int faultsample_stop(lua_State *L) {
  faultsample *s = faultsample_check_open(L, 1);
  int n = faultsample_ioctl(L, s, PERF_EVENT_IOC_DISABLE, "ioctl(PERF_EVENT_IOC_DISABLE)");
  if (n == 1) s->running = 0;
  return n;
}

/* Copy len bytes at ring offset pos (mod size) out of the data area. */
static void faultsample_copy(const unsigned char *data, uint64_t size, uint64_t pos, void *dst, size_t len) {
  size_t at = (size_t)(pos & (size - 1));
  size_t first = len < size - at ? len : (size_t)(size - at);
  memcpy(dst, data + at, first);
  if (first < len) memcpy((unsigned char *)dst + first, data, len - first);
}

/* sampler:read() -> { {address=, ip=}, ... , lost = n }, lost
   Drains the ring: every sample since the last read, oldest first (address:
   the faulting data address; ip: the instruction that faulted). lost: the
   faults counted since the last read whose samples the kernel dropped
   because the ring was full (read more often, or give a bigger `pages`);
   the running total is sampler.lost. */
static int faultsample_read(lua_State *L) {
  faultsample *s = faultsample_check_open(L, 1);
  struct perf_event_mmap_page *meta = (struct perf_event_mmap_page *)(void *)s->ring;
  const unsigned char *data = s->ring + vmlab_page_size;
  uint64_t size = (uint64_t)s->data_pages * vmlab_page_size;
  /* The event's count includes every fault, sampled or not: read it
     before the head, so a sample written in between is never called lost. */
  uint64_t count = 0;
  ssize_t got;
  do got = read(s->fd, &count, sizeof count);
  while (got < 0 && errno == EINTR);
  if (got != (ssize_t)sizeof count) {
    int err = got < 0 ? errno : EIO;
    return vmlab_push_syserror(L, "read (perf event count)", err);
  }
  uint64_t head = __atomic_load_n(&meta->data_head, __ATOMIC_ACQUIRE);
  uint64_t tail = meta->data_tail;
  lua_Integer n = 0;
  uint64_t room = head - tail <= size ? (head - tail) / sizeof(struct faultsample_record) : 0;
  lua_createtable(L, (int)room, 1); /* at most a ring's worth: fits an int */
  while (tail < head) {
    struct perf_event_header h;
    faultsample_copy(data, size, tail, &h, sizeof h);
    if (h.size < sizeof h || h.size > head - tail) break; /* torn: should not happen */
    if (h.type == PERF_RECORD_SAMPLE && h.size >= sizeof(struct faultsample_record)) {
      struct faultsample_record rec;
      faultsample_copy(data, size, tail, &rec, sizeof rec);
      lua_createtable(L, 0, 2);
      vmlab_set_int(L, "address", (lua_Integer)rec.addr);
      vmlab_set_int(L, "ip", (lua_Integer)rec.ip);
      lua_rawseti(L, -2, ++n);
    } else if (h.type == PERF_RECORD_THROTTLE) {
      s->throttled++;
    }
    tail += h.size;
  }
  /* Hand the space back only once the records are copied out. */
  __atomic_store_n(&meta->data_tail, tail, __ATOMIC_RELEASE);
  /* The kernel writes its PERF_RECORD_LOST only once space frees up, so a
     ring that filled up after the last fault would hide it: the count is
     the reliable measure (PERF_RECORD_LOST records are skipped above). */
  s->taken += (uint64_t)n;
  uint64_t expected = count / s->period, lost = 0;
  if (expected > s->taken + s->lost) lost = expected - s->taken - s->lost;
  s->lost += lost;
  vmlab_set_int(L, "lost", (lua_Integer)lost);
  lua_pushinteger(L, (lua_Integer)lost);
  return 2;
}

/* sampler.kind, .period, .running, .user_only, .closed, .lost, .samples,
   .throttled, .ring_bytes, then the methods. */
static int faultsample_index(lua_State *L) {
  faultsample *s = faultsample_check(L, 1);
  const char *k = lua_tostring(L, 2);
  if (k == NULL) k = "";
  if (strcmp(k, "kind") == 0) lua_pushstring(L, faultsample_kinds[s->kind]);
  else if (strcmp(k, "period") == 0) lua_pushinteger(L, (lua_Integer)s->period);
  else if (strcmp(k, "running") == 0) lua_pushboolean(L, s->running);
  else if (strcmp(k, "user_only") == 0) lua_pushboolean(L, s->user_only);
  else if (strcmp(k, "closed") == 0) lua_pushboolean(L, s->fd < 0);
  else if (strcmp(k, "lost") == 0) lua_pushinteger(L, (lua_Integer)s->lost);
  else if (strcmp(k, "samples") == 0) lua_pushinteger(L, (lua_Integer)s->taken);
  else if (strcmp(k, "throttled") == 0) lua_pushinteger(L, (lua_Integer)s->throttled);
  else if (strcmp(k, "ring_bytes") == 0) lua_pushinteger(L, (lua_Integer)(s->data_pages * vmlab_page_size));
  else {
    lua_pushvalue(L, 2);
    lua_rawget(L, lua_upvalueindex(1));
  }
  return 1;
}

/* "vmlab.FaultSampler all faults, every 1, ring 4096 KiB (running, user mode only): 12 samples read, 0 lost" */
static int faultsample_tostring(lua_State *L) {
  faultsample *s = faultsample_check(L, 1);
  if (s->fd < 0) {
    lua_pushfstring(L, "vmlab.FaultSampler %s faults (closed)", faultsample_kinds[s->kind]);
    return 1;
  }
  lua_pushfstring(L, "vmlab.FaultSampler %s faults, every %I, ring %I KiB (%s%s%s): %I samples read, %I lost",
                  faultsample_kinds[s->kind], (lua_Integer)s->period,
                  (lua_Integer)(s->data_pages * vmlab_page_size / 1024),
                  s->running ? "running" : "stopped", s->user_only ? ", user mode only" : "",
                  s->owner != getpid() ? ", opened before a fork" : "", (lua_Integer)s->taken,
                  (lua_Integer)s->lost);
  return 1;
}

void vmlab_open_faultsample(lua_State *L) {
  static const luaL_Reg methods[] = {{"start", faultsample_start}, {"stop", faultsample_stop},
                                     {"read", faultsample_read},   {"close", faultsample_close},
                                     {NULL, NULL}};
  vmlab_new_class(L, FAULTSAMPLE_MT, methods, faultsample_index, faultsample_close, faultsample_tostring);
  lua_pushcfunction(L, faultsample_new);
  lua_setfield(L, -2, "fault_sampler");
}
