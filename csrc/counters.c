/*
 * counters.c - the kernel's own counters: vm.rusage(who) and
 * vm.fault_counter(kind), a page-fault counter of this thread from
 * perf_event_open(2), falling back to getrusage(2) deltas (with the reason
 * stated) where perf events are refused.
 */
#include "vmlab.h"

#include <errno.h>
#include <linux/perf_event.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

/* ------------------------------------------------------------------ */
/* rusage                                                              */

static double counters_seconds(struct timeval tv) {
  return (double)tv.tv_sec + (double)tv.tv_usec * 1e-6;
}

/* vm.rusage(who = "self"|"children"|"thread") -> {minor_faults=,
   major_faults=, max_rss= (bytes), user_seconds=, system_seconds=,
   voluntary_switches=, involuntary_switches=, block_input=, block_output=}.
   "children" covers the children that have been waited for.
   See getrusage(2). */
static int counters_rusage(lua_State *L) {
  static const char *const names[] = {"self", "children", "thread", NULL};
  static const int whos[] = {RUSAGE_SELF, RUSAGE_CHILDREN, RUSAGE_THREAD};
  int who = whos[vmlab_check_option(L, 1, "self", names)];
  struct rusage ru;
  if (getrusage(who, &ru) != 0) return vmlab_push_syserror(L, "getrusage", errno);
  lua_createtable(L, 0, 9);
  vmlab_set_int(L, "minor_faults", ru.ru_minflt);
  vmlab_set_int(L, "major_faults", ru.ru_majflt);
  vmlab_set_int(L, "max_rss", (lua_Integer)ru.ru_maxrss * 1024); /* kB */
  lua_pushnumber(L, counters_seconds(ru.ru_utime));
  lua_setfield(L, -2, "user_seconds");
  lua_pushnumber(L, counters_seconds(ru.ru_stime));
  lua_setfield(L, -2, "system_seconds");
  vmlab_set_int(L, "voluntary_switches", ru.ru_nvcsw);
  vmlab_set_int(L, "involuntary_switches", ru.ru_nivcsw);
  vmlab_set_int(L, "block_input", ru.ru_inblock);
  vmlab_set_int(L, "block_output", ru.ru_oublock);
  return 1;
}

/* ------------------------------------------------------------------ */
/* Fault counters                                                      */

enum { COUNTERS_MINOR = 0, COUNTERS_MAJOR = 1, COUNTERS_ALL = 2 };
static const char *const counters_kinds[] = {"minor", "major", "all", NULL};

typedef struct counters_counter {
  int fd;        /* perf event fd, or -1 (rusage source, or closed) */
  int kind;      /* COUNTERS_MINOR/MAJOR/ALL */
  int closed;
  int perf;      /* source is perf (fd while open) */
  int user_only; /* perf counts only faults taken in user mode */
  pid_t owner;   /* the process it counts; a forked copy may not read it */
  long base;     /* rusage source: the count at open/reset */
  uint64_t perf_base; /* perf source: the value at open/reset */
} counters_counter;

static counters_counter *counters_check(lua_State *L, int idx) {
  return luaL_checkudata(L, idx, VMLAB_COUNTER_MT);
}

static counters_counter *counters_check_open(lua_State *L, int idx) {
  counters_counter *c = counters_check(L, idx);
  if (c->closed) luaL_error(L, "attempt to use a closed fault counter");
  if (c->owner != getpid())
    luaL_error(L,
               "this fault counter counts pid %d (it was opened before a fork); "
               "open a new one in this process",
               (int)c->owner);
  return c;
}

static long counters_rusage_now(int kind) {
  long minor, major;
  vmlab_faults_now(&minor, &major);
  return kind == COUNTERS_MINOR ? minor : kind == COUNTERS_MAJOR ? major : minor + major;
}

/* A software page-fault event ("minor", "major" or "all") of this thread
   (pid 0), any CPU, no group, close-on-exec. The caller sets the sampling
   fields of *a (zero for a plain counter); the rest is set here. The fd, or
   -1 and errno. Shared with faultsample.c. See perf_event_open(2). */
int vmlab_perf_fault_event(struct perf_event_attr *a, const char *kind, int exclude_kernel) {
  static const unsigned long long configs[] = {PERF_COUNT_SW_PAGE_FAULTS_MIN, PERF_COUNT_SW_PAGE_FAULTS_MAJ,
                                               PERF_COUNT_SW_PAGE_FAULTS};
  int k = 0;
  while (counters_kinds[k] != NULL && strcmp(counters_kinds[k], kind) != 0) k++;
  if (counters_kinds[k] == NULL) {
    errno = EINVAL;
    return -1;
  }
  a->type = PERF_TYPE_SOFTWARE;
  a->size = sizeof *a;
  a->config = configs[k];
  a->exclude_kernel = exclude_kernel ? 1 : 0;
  a->exclude_hv = 1;
  return (int)syscall(SYS_perf_event_open, a, 0, -1, -1, PERF_FLAG_FD_CLOEXEC);
}

static int counters_perf_open(int kind, int exclude_kernel) {
  struct perf_event_attr a;
  memset(&a, 0, sizeof a);
  return vmlab_perf_fault_event(&a, counters_kinds[kind], exclude_kernel);
}

/* Read a perf counter: 1 ok, 0 failed (errno set). */
static int counters_perf_read(int fd, uint64_t *v) {
  ssize_t n;
  do n = read(fd, v, sizeof *v);
  while (n < 0 && errno == EINTR);
  if (n == (ssize_t)sizeof *v) return 1;
  if (n >= 0) errno = EIO;
  return 0;
}

/* kernel.perf_event_paranoid, or -100 when unreadable. Shared with faultsample.c. */
int vmlab_perf_paranoid(void) {
  int level = -100;
  FILE *f = fopen("/proc/sys/kernel/perf_event_paranoid", "re");
  if (f != NULL) {
    if (fscanf(f, "%d", &level) != 1) level = -100;
    fclose(f);
  }
  return level;
}

void vmlab_push_perf_refusal(lua_State *L, const char *what, int err) {
  int level = err == EACCES || err == EPERM ? vmlab_perf_paranoid() : -100;
  if (level != -100)
    lua_pushfstring(L, "%s: %s (perf_event_paranoid=%d)", what, strerror(err), level);
  else
    lua_pushfstring(L, "%s: %s", what, strerror(err));
}

/* vm.fault_counter(kind = "minor"|"major"|"all", {source = "auto"|"perf"|
   "rusage"}) -> FaultCounter, or nil, msg, errno when source="perf" is
   refused. Counts page faults of this thread from now on; counter.source
   says "perf" or "rusage", counter.reason why perf was not used.
   Faults taken while the kernel copies into user memory (read(2) into a
   fresh buffer) are counted too, unless counter.user_only is true (perf
   allowed only exclude_kernel=1). Pages the kernel fills in on the
   process's behalf (MAP_POPULATE, mlock(2), MADV_POPULATE_*) count in
   getrusage but raise no perf event: the two sources differ there.
   See perf_event_open(2), getrusage(2). */
static int counters_fault_counter(lua_State *L) {
  static const char *const sources[] = {"auto", "perf", "rusage", NULL};
  static const char *const known[] = {"source", NULL};
  int kind = vmlab_check_option(L, 1, "minor", counters_kinds);
  vmlab_check_known_fields(L, 2, known);
  int source = vmlab_opt_option_field(L, 2, "source", "auto", sources);
  lua_settop(L, 2);

  counters_counter *c = lua_newuserdatauv(L, sizeof *c, 1);
  memset(c, 0, sizeof *c);
  c->fd = -1;
  c->kind = kind;
  c->owner = getpid();
  luaL_setmetatable(L, VMLAB_COUNTER_MT);

  if (source == 2) {
    lua_pushliteral(L, "asked for the rusage source");
  } else {
    /* With kernel faults first (matches getrusage); perf_event_paranoid=2
       lets an unprivileged process count user-mode events only. */
    int kerr = 0;
    c->fd = counters_perf_open(kind, 0);
    if (c->fd < 0 && (errno == EACCES || errno == EPERM)) {
      kerr = errno;
      c->fd = counters_perf_open(kind, 1);
      c->user_only = c->fd >= 0;
    }
    if (c->fd >= 0 && !counters_perf_read(c->fd, &c->perf_base)) {
      int err = errno;
      close(c->fd);
      c->fd = -1;
      errno = err;
    }
    if (c->fd >= 0) {
      c->perf = 1;
      if (c->user_only) {
        vmlab_push_perf_refusal(L, "perf_event_open", kerr);
        lua_pushliteral(L, " for kernel-mode faults; counting user-mode faults only");
        lua_concat(L, 2);
      } else {
        lua_pushnil(L);
      }
    } else {
      int err = errno;
      if (source == 1) return vmlab_push_syserror(L, "perf_event_open", err);
      vmlab_push_perf_refusal(L, "perf_event_open", err);
    }
  }
  lua_setiuservalue(L, -2, 1); /* the reason, or nil */
  if (c->fd < 0) c->base = counters_rusage_now(kind);
  return 1;
}

/* counter:read() -> faults since open or the last reset; nil, msg, errno
   when the perf read fails. See read(2) on a perf event fd. */
static int counter_read(lua_State *L) {
  counters_counter *c = counters_check_open(L, 1);
  if (c->fd >= 0) {
    uint64_t v;
    if (!counters_perf_read(c->fd, &v)) return vmlab_push_syserror(L, "read", errno);
    lua_pushinteger(L, (lua_Integer)(v - c->perf_base));
  } else {
    lua_pushinteger(L, counters_rusage_now(c->kind) - c->base);
  }
  return 1;
}

/* counter:reset() -> the counter: counting starts again from 0. */
static int counter_reset(lua_State *L) {
  counters_counter *c = counters_check_open(L, 1);
  if (c->fd >= 0) {
    uint64_t v;
    if (!counters_perf_read(c->fd, &v)) return vmlab_push_syserror(L, "read", errno);
    c->perf_base = v;
  } else {
    c->base = counters_rusage_now(c->kind);
  }
  lua_settop(L, 1);
  return 1;
}

/* counter:close(), __gc, __close: idempotent; the fd is this process's own
   copy, so closing it in a forked child does not disturb the parent. */
static int counter_close(lua_State *L) {
  counters_counter *c = counters_check(L, 1);
  if (!c->closed) {
    if (c->fd >= 0) close(c->fd);
    c->fd = -1;
    c->closed = 1;
  }
  return 0;
}

static int counter_tostring(lua_State *L) {
  counters_counter *c = counters_check(L, 1);
  const char *src = c->perf ? "perf" : "rusage";
  if (c->closed) {
    lua_pushfstring(L, "vmlab.FaultCounter %s (closed)", counters_kinds[c->kind]);
  } else if (c->owner != getpid()) {
    lua_pushfstring(L, "vmlab.FaultCounter %s (%s, counts pid %d)", counters_kinds[c->kind], src,
                    (int)c->owner);
  } else {
    uint64_t v = 0;
    lua_Integer n = c->fd >= 0 ? (counters_perf_read(c->fd, &v) ? (lua_Integer)(v - c->perf_base) : -1)
                               : counters_rusage_now(c->kind) - c->base;
    lua_pushfstring(L, "vmlab.FaultCounter %s (%s%s): %I faults", counters_kinds[c->kind], src,
                    c->user_only ? ", user mode only" : "", n);
  }
  return 1;
}

/* counter.kind, .source, .reason, .user_only, .closed, then the methods. */
static int counter_index(lua_State *L) {
  counters_counter *c = counters_check(L, 1);
  const char *k = lua_tostring(L, 2);
  if (k == NULL) k = "";
  if (strcmp(k, "kind") == 0) lua_pushstring(L, counters_kinds[c->kind]);
  else if (strcmp(k, "source") == 0) lua_pushstring(L, c->perf ? "perf" : "rusage");
  else if (strcmp(k, "reason") == 0) lua_getiuservalue(L, 1, 1);
  else if (strcmp(k, "user_only") == 0) lua_pushboolean(L, c->user_only);
  else if (strcmp(k, "closed") == 0) lua_pushboolean(L, c->closed);
  else {
    lua_pushvalue(L, 2);
    lua_rawget(L, lua_upvalueindex(1));
  }
  return 1;
}

void vmlab_open_counters(lua_State *L) {
  static const luaL_Reg methods[] = {
      {"read", counter_read}, {"reset", counter_reset}, {"close", counter_close}, {NULL, NULL}};
  vmlab_new_class(L, VMLAB_COUNTER_MT, methods, counter_index, counter_close, counter_tostring);
  lua_pushcfunction(L, counters_rusage);
  lua_setfield(L, -2, "rusage");
  lua_pushcfunction(L, counters_fault_counter);
  lua_setfield(L, -2, "fault_counter");
  /* clock ticks per second: the unit of utime/stime in /proc/PID/stat */
  lua_pushinteger(L, sysconf(_SC_CLK_TCK));
  lua_setfield(L, -2, "clock_ticks");
}
