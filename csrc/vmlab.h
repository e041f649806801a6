/*
 * vmlab.h - the one private header of the vmlab.core C module.
 *
 * Every C file in csrc/ includes this and nothing of each other's. It holds:
 *   - the Region object (memory you hold: an mmap'd area, a malloc'd block
 *     or a POSIX shared-memory object), shared by regions, heap and shm;
 *   - the argument checks that turn bad input into Lua errors naming the
 *     argument, and the pusher for failed system calls (nil, msg, errno);
 *   - the fault guard, which turns SIGSEGV/SIGBUS inside a guarded memory
 *     access into a Lua error instead of a dead interpreter;
 *   - one vmlab_open_<concern>() entry point per C file, called by core.c
 *     (registration only); the shared helpers are defined in support.c.
 */
#ifndef VMLAB_H
#define VMLAB_H

#include <setjmp.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <lua.h>
#include <lauxlib.h>

#define VMLAB_REGION_MT "vmlab.Region"
#define VMLAB_CHILD_MT "vmlab.Child"
#define VMLAB_COUNTER_MT "vmlab.FaultCounter"

/* ------------------------------------------------------------------ */
/* Regions                                                             */

enum vmlab_kind {
  VMLAB_KIND_MAP = 0,  /* mmap(2): anonymous or file */
  VMLAB_KIND_HEAP = 1, /* malloc(3)/calloc(3): released with free(3) */
  VMLAB_KIND_SHM = 2   /* shm_open(3) + mmap(2) MAP_SHARED */
};

typedef struct vmlab_region {
  unsigned char *addr; /* first byte; NULL once closed */
  size_t size;         /* usable bytes */
  size_t map_size;     /* bytes to munmap (page-rounded); 0 for heap */
  int prot;            /* current PROT_* as far as we know */
  int kind;            /* enum vmlab_kind */
  int shared;          /* MAP_SHARED */
  int locked;          /* mlock(2) held */
  int fd;              /* backing file or shm fd kept open, or -1 */
  int unlink_on_close; /* shm: the creator unlinks the name on close */
  pid_t owner;         /* process that created it: only it releases */
  char *name;          /* file path or shm name (malloc'd), or NULL */
  int busy;            /* walks (r:touch) in progress: close, realloc, protect refuse */
} vmlab_region;

/* Page size from sysconf(_SC_PAGESIZE), set once by vmlab_open_basics. */
extern size_t vmlab_page_size;
/* An address rounded down / up to a page boundary (support.c holds the size). */
#define VMLAB_PAGE_DOWN(x) ((uintptr_t)(x) & ~(uintptr_t)(vmlab_page_size - 1))
#define VMLAB_PAGE_UP(x) VMLAB_PAGE_DOWN((uintptr_t)(x) + vmlab_page_size - 1)
/* How many of the `pages` mapped pages from page-aligned `start` are resident
   (mincore(2)): 0 with *resident set, or the errno of a failed mincore. */
int vmlab_count_resident(uintptr_t start, size_t pages, size_t *resident);

/* Push a new, zeroed, closed Region userdata with its metatable. */
vmlab_region *vmlab_region_new(lua_State *L);
/* Check that argument idx is a Region (any state). */
vmlab_region *vmlab_check_region(lua_State *L, int idx);
/* Check that argument idx is an open Region, else "attempt to use a closed region". */
vmlab_region *vmlab_check_open(lua_State *L, int idx);
/* Add functions to the Region method table (used by heap.c, shm.c). */
void vmlab_region_add_methods(lua_State *L, const luaL_Reg *methods);
/* Map `bytes` of the shared-memory object open on fd (read and write,
   MAP_SHARED) into the closed region r, which then owns fd (name NULL, no
   unlink on close). 0, or the errno of a failed mmap (r untouched, fd still
   the caller's). shm.c; vm.shm_open and vm.shm_adopt use it. */
int vmlab_shm_region_fill(vmlab_region *r, int fd, size_t bytes);
/* Release what a region holds; safe to call twice and in a forked child. */
void vmlab_region_release(vmlab_region *r);
/* Raise "<what>: the region is in use by touch ..." while a walk holds it. */
void vmlab_region_check_idle(lua_State *L, vmlab_region *r, const char *what);

/*
 * The metatable of a full-userdata class other than Region, made once: its
 * methods reached through `index` (a closure whose upvalue is the method
 * table, so it can serve fields too), `release` as __gc and __close, and
 * `tostring`. Leaves the stack as it was.
 */
void vmlab_new_class(lua_State *L, const char *name, const luaL_Reg *methods, lua_CFunction index,
                     lua_CFunction release, lua_CFunction tostring);

/* A child process (vm.fork, vm.spawn): "vmlab.Child" userdata (process.c). */
typedef struct vmlab_child {
  pid_t pid;   /* > 0 once forked */
  pid_t owner; /* the process that forked it: only it waits, kills on __gc */
  int reaped;  /* status below is final */
  int status;  /* raw wait status */
} vmlab_child;

/* Push a new Child (pid -1, nothing to wait for yet). */
vmlab_child *vmlab_child_new(lua_State *L);
/* waitpid(2) for the child, recording its status once it is reaped. */
pid_t vmlab_child_waitpid(vmlab_child *c, int flags);
/* Stack value idx as a signal: a number 0..NSIG-1 or a name ("TERM",
   "SIGTERM", "sigterm"), def when nil. *why is NULL, or says what is wrong
   (then the result means nothing, and a message may have been pushed). */
int vmlab_parse_signal(lua_State *L, int idx, int def, const char **why);
/* The same, raising on a wrong value: errors name the option opt, or
   argument idx when opt is NULL. */
int vmlab_to_signal(lua_State *L, int idx, int def, const char *opt);

/* ------------------------------------------------------------------ */
/* Arguments                                                           */

/* A positive byte count (> 0) that fits a size_t and an off_t. */
size_t vmlab_check_size(lua_State *L, int idx);
/* An optional non-negative integer, with default. */
size_t vmlab_opt_count(lua_State *L, int idx, size_t def);
/*
 * offset (arg off_idx, default 0) and length (arg len_idx, default: to the
 * end) inside [0, size): raises naming the argument when negative, past the
 * end, or when offset + length overflows.
 */
void vmlab_check_range(lua_State *L, int off_idx, int len_idx, size_t size,
                       size_t *off, size_t *len);
/* Same, reading "offset" and "length" fields of the table at idx (or none). */
void vmlab_field_range(lua_State *L, int idx, size_t size, size_t *off,
                       size_t *len);
/* Optional integer/boolean field of an options table (idx may be none); string
   fields: vmlab_push_string_field, vmlab_opt_option_field below. */
lua_Integer vmlab_opt_int_field(lua_State *L, int idx, const char *k,
                                lua_Integer def);
int vmlab_opt_bool_field(lua_State *L, int idx, const char *k, int def);
/* Raise if the table at idx has a key that is not in the NULL-ended list. */
void vmlab_check_known_fields(lua_State *L, int idx, const char *const known[]);
/* Argument idx as an integer lo..hi (the range of the C type it becomes);
   raises naming the argument, with the range, otherwise. */
lua_Integer vmlab_check_int_range(lua_State *L, int idx, lua_Integer lo, lua_Integer hi);
/* Optional integer field k of the options table at idx (default def), lo..hi. */
lua_Integer vmlab_opt_int_range_field(lua_State *L, int idx, const char *k, lua_Integer def,
                                      lua_Integer lo, lua_Integer hi);
/* Argument idx as a C string: a string (or number) without NUL bytes,
   else raises naming the argument. */
const char *vmlab_check_cstring(lua_State *L, int idx, size_t *len);
/* luaL_checkoption that also refuses a NUL byte ("rw\0" is not "rw"). */
int vmlab_check_option(lua_State *L, int idx, const char *def, const char *const lst[]);
/* String option k of the table at idx: PUSHES one value, the string or nil
   when the field (or the whole table) is absent, and returns it (NULL for
   nil). The pointer stays valid while that value stays on the stack (a value
   from an __index metamethod has no other anchor). Raises naming the option
   when it is not a string or holds a NUL byte. */
const char *vmlab_push_string_field(lua_State *L, int idx, const char *k);
/* String option k of the table at idx, one of the NULL-ended list lst (def
   when absent): its index. Raises naming the option and the choices. */
int vmlab_opt_option_field(lua_State *L, int idx, const char *k, const char *def, const char *const lst[]);

/* ------------------------------------------------------------------ */
/* Errors                                                              */

/* Push nil, "<what>: <strerror(err)>", err and return 3. Save errno first! */
int vmlab_push_syserror(lua_State *L, const char *what, int err);

/* ------------------------------------------------------------------ */
/* Fault guard                                                         */
/*
 * A process-wide SIGSEGV/SIGBUS handler is installed once. Outside a guarded
 * section it restores the previous disposition and returns, so the fault
 * repeats and ends the process exactly as it would have. Inside one it
 * records the siginfo and siglongjmp()s back to the VMLAB_GUARD() point.
 * The guard's state (jump buffer, flag, last fault) is per thread, so threads
 * with their own lua_State each catch their own faults; the first guarded
 * access of a thread also gives it an alternate signal stack (sigaltstack(2);
 * the handler runs with SA_ONSTACK), so a fault on an exhausted stack is
 * caught too.
 *
 *   VMLAB_GUARD(L, "write");        -- a fault from here on raises
 *   ... touch memory: no Lua API calls, no allocations ...
 *   vmlab_guard_end();
 *
 * The fault raises "<what>: SIGSEGV (SEGV_ACCERR) at 0x..." from the function
 * that set the guard (so VMLAB_GUARD must be used in that function's own body;
 * locals changed after it must not be needed once a fault has happened).
 * Code that wants the fault as data (lab.c probes) uses sigsetjmp itself on
 * vmlab_guard_enter(L)->jmp and reads vmlab_guard_tls->last.
 */
typedef struct vmlab_guard_info {
  int signal;      /* SIGSEGV or SIGBUS */
  int code;        /* si_code: SEGV_MAPERR, SEGV_ACCERR, BUS_ADRERR, ... */
  uintptr_t address;
} vmlab_guard_info;

/* One thread's guard (guard.c allocates it on the thread's first guard). */
typedef struct vmlab_guard_state {
  sigjmp_buf jmp;
  volatile sig_atomic_t active;
  vmlab_guard_info last;
} vmlab_guard_state;

/* This thread's state, or NULL before its first guard (initial-exec TLS:
   the signal handler reads it without calling into the dynamic linker). */
extern _Thread_local vmlab_guard_state *vmlab_guard_tls __attribute__((tls_model("initial-exec")));
/* This thread's state, made (with its alternate signal stack) on first use;
   raises if that cannot be allocated. */
vmlab_guard_state *vmlab_guard_enter(lua_State *L);

/* The handler runs with SA_NODEFER, so no signal mask needs restoring. */
#define VMLAB_GUARD(L, what)                                                 \
  if (sigsetjmp(vmlab_guard_enter(L)->jmp, 0) != 0)                          \
    return vmlab_guard_raise((L), (what));                                   \
  vmlab_guard_tls->active = 1
#define vmlab_guard_end() (vmlab_guard_tls->active = 0)

void vmlab_guard_install(void);
/* Raise a Lua error describing the fault just caught during <what>. */
int vmlab_guard_raise(lua_State *L, const char *what);
const char *vmlab_signal_name(int sig);
/* Signal number for a name ("TERM", "SIGTERM", "sigterm"), or -1. */
int vmlab_signal_number(const char *name);
const char *vmlab_fault_code_name(int sig, int code);

/* The touch loops count page faults: AddressSanitizer's shadow-memory checks
   would add faults of their own, so those loops are left uninstrumented
   (the regions they walk are range-checked before). */
#define VMLAB_NO_ASAN __attribute__((no_sanitize_address))

/* ------------------------------------------------------------------ */
/* Time and counters shared by the touch loop and the counters module  */

double vmlab_now(void); /* CLOCK_MONOTONIC seconds */
void vmlab_faults_now(long *minor, long *major); /* getrusage(RUSAGE_SELF) */

/* perf page-fault events (counters.c, used by faultsample.c too) */
struct perf_event_attr;
int vmlab_perf_fault_event(struct perf_event_attr *a, const char *kind, int exclude_kernel);
int vmlab_perf_paranoid(void); /* kernel.perf_event_paranoid, or -100 when unreadable */
/* Push "<what>: <strerror(err)>", plus " (perf_event_paranoid=N)" when the
   kernel refused by policy (EACCES, EPERM) and the setting could be read:
   out of descriptors (EMFILE) it is not the reason. */
void vmlab_push_perf_refusal(lua_State *L, const char *what, int err);

/* t[k] = v for the table on top of the stack. */
void vmlab_set_int(lua_State *L, const char *k, lua_Integer v);
void vmlab_set_num(lua_State *L, const char *k, double v);
void vmlab_set_bool(lua_State *L, const char *k, int v);
void vmlab_set_str(lua_State *L, const char *k, const char *v);

/* ------------------------------------------------------------------ */
/* One entry point per concern; each adds fields to the table on top.  */

void vmlab_open_basics(lua_State *L);
void vmlab_open_guard(lua_State *L);
void vmlab_open_regions(lua_State *L);
void vmlab_open_touch(lua_State *L);
void vmlab_open_frames(lua_State *L);
void vmlab_open_pagecache(lua_State *L);
void vmlab_open_heap(lua_State *L);
void vmlab_open_process(lua_State *L);
void vmlab_open_spawn(lua_State *L);
void vmlab_open_shm(lua_State *L);
void vmlab_open_counters(lua_State *L);
void vmlab_open_lab(lua_State *L);
void vmlab_open_faultsample(lua_State *L);
void vmlab_open_sum(lua_State *L);
void vmlab_open_ipc(lua_State *L);
void vmlab_open_blocks(lua_State *L);

/* The module entry point (require "vmlab.core"). */
int luaopen_vmlab_core(lua_State *L);

#endif
