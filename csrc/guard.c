/*
 * guard.c - turn SIGSEGV/SIGBUS inside a vmlab memory access into a Lua
 * error. See the "Fault guard" section of vmlab.h; see sigaction(2).
 */
#include "vmlab.h"

#include <dlfcn.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>

_Thread_local vmlab_guard_state *vmlab_guard_tls __attribute__((tls_model("initial-exec"))) = NULL;

static struct sigaction guard_old_segv, guard_old_bus;
static pthread_once_t guard_install_once = PTHREAD_ONCE_INIT;

/* Per-thread resources, given back by the key's destructor at thread exit:
   the state and, when the guard installed it, the alternate signal stack. */
typedef struct guard_thread {
  vmlab_guard_state state; /* first: vmlab_guard_tls points here */
  void *altstack;          /* mmap'd by us, or NULL (the thread had one) */
  size_t altstack_size;
} guard_thread;

static pthread_key_t guard_key;
static pthread_once_t guard_key_once = PTHREAD_ONCE_INIT;

static void guard_thread_free(void *p) {
  guard_thread *t = p;
  if (t->altstack != NULL) {
    stack_t cur;
    if (sigaltstack(NULL, &cur) == 0 && cur.ss_sp == t->altstack && !(cur.ss_flags & SS_ONSTACK)) {
      stack_t off = {.ss_flags = SS_DISABLE};
      sigaltstack(&off, NULL);
    }
    munmap(t->altstack, t->altstack_size);
  }
  if (vmlab_guard_tls == &t->state) vmlab_guard_tls = NULL;
  free(t);
}

static void guard_make_key(void) { pthread_key_create(&guard_key, guard_thread_free); }

/* 64 KiB (at least 4 x SIGSTKSZ) with a PROT_NONE guard page below it. */
static void guard_altstack(guard_thread *t) {
  stack_t cur;
  if (sigaltstack(NULL, &cur) != 0 || !(cur.ss_flags & SS_DISABLE)) return; /* keep the thread's own */
  size_t size = (size_t)64 << 10;
  if (size < 4 * (size_t)SIGSTKSZ) size = 4 * (size_t)SIGSTKSZ;
  size = VMLAB_PAGE_UP(size);
  unsigned char *p = mmap(NULL, size + vmlab_page_size, PROT_READ | PROT_WRITE,
                          MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) return; /* faults are still caught, only not a stack overflow */
  mprotect(p, vmlab_page_size, PROT_NONE);
  stack_t ss = {.ss_sp = p + vmlab_page_size, .ss_size = size, .ss_flags = 0};
  if (sigaltstack(&ss, NULL) != 0) {
    munmap(p, size + vmlab_page_size);
    return;
  }
  t->altstack = p;
  t->altstack_size = size + vmlab_page_size;
}

vmlab_guard_state *vmlab_guard_enter(lua_State *L) {
  if (vmlab_guard_tls != NULL) return vmlab_guard_tls;
  pthread_once(&guard_key_once, guard_make_key);
  guard_thread *t = calloc(1, sizeof *t);
  if (t == NULL) {
    luaL_error(L, "fault guard: cannot allocate this thread's state");
    return NULL;
  }
  guard_altstack(t);
  pthread_setspecific(guard_key, t);
  vmlab_guard_tls = &t->state;
  return vmlab_guard_tls;
}

static void guard_handler(int sig, siginfo_t *si, void *uctx) {
  /* si_code > 0: the kernel raised it for an access; <= 0: kill(2), raise(3)... */
  int from_kernel = si->si_code > 0;
  vmlab_guard_state *g = vmlab_guard_tls;
  if (g != NULL && g->active && from_kernel) {
    g->active = 0;
    g->last.signal = sig;
    g->last.code = si->si_code;
    g->last.address = (uintptr_t)si->si_addr;
    siglongjmp(g->jmp, 1);
  }
  /* Not ours: put back what was there before and let the fault repeat (or
     hand it straight to a previous SA_SIGINFO handler, e.g. a sanitizer's). */
  const struct sigaction *old = sig == SIGBUS ? &guard_old_bus : &guard_old_segv;
  if ((old->sa_flags & SA_SIGINFO) && old->sa_sigaction != NULL) {
    old->sa_sigaction(sig, si, uctx);
    return;
  }
  if (old->sa_handler != SIG_IGN && old->sa_handler != SIG_DFL &&
      old->sa_handler != NULL) {
    old->sa_handler(sig);
    return;
  }
  sigaction(sig, old, NULL);
  /* A faulting access repeats by itself when we return; a sent signal does
     not, so send it again, now with the old disposition (SA_NODEFER: it is
     delivered at once). */
  if (!from_kernel) raise(sig);
}

/* The handler and the threads' key destructor live in this library: keep it
   loaded for the life of the process (lua_close would dlclose it, leaving
   the signal handler pointing at unmapped code). */
static void guard_pin_library(void) {
  Dl_info info;
  if (dladdr((void *)guard_handler, &info) != 0 && info.dli_fname != NULL)
    dlopen(info.dli_fname, RTLD_NOW | RTLD_NOLOAD | RTLD_NODELETE);
}

static void guard_install_now(void) {
  guard_pin_library();
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = guard_handler;
  sa.sa_flags = SA_SIGINFO | SA_NODEFER | SA_ONSTACK;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGSEGV, &sa, &guard_old_segv);
  sigaction(SIGBUS, &sa, &guard_old_bus);
}

/* Once per process, whichever thread opens the module first. */
void vmlab_guard_install(void) { pthread_once(&guard_install_once, guard_install_now); }

const char *vmlab_signal_name(int sig) {
  switch (sig) {
#define S(x) case x: return #x;
    S(SIGHUP) S(SIGINT) S(SIGQUIT) S(SIGILL) S(SIGTRAP) S(SIGABRT) S(SIGBUS)
    S(SIGFPE) S(SIGKILL) S(SIGUSR1) S(SIGSEGV) S(SIGUSR2) S(SIGPIPE) S(SIGALRM)
    S(SIGTERM) S(SIGCHLD) S(SIGCONT) S(SIGSTOP) S(SIGTSTP) S(SIGTTIN) S(SIGTTOU)
    S(SIGURG) S(SIGXCPU) S(SIGXFSZ) S(SIGVTALRM) S(SIGPROF) S(SIGWINCH) S(SIGIO)
    S(SIGPWR) S(SIGSYS)
#undef S
    default: return NULL;
  }
}

int vmlab_signal_number(const char *name) {
  if (strncasecmp(name, "SIG", 3) == 0) name += 3;
  for (int sig = 1; sig < NSIG; sig++) {
    const char *n = vmlab_signal_name(sig);
    if (n != NULL && strcasecmp(n + 3, name) == 0) return sig;
  }
  return -1;
}

const char *vmlab_fault_code_name(int sig, int code) {
  if (sig == SIGSEGV) {
    switch (code) {
      case SEGV_MAPERR: return "SEGV_MAPERR";
      case SEGV_ACCERR: return "SEGV_ACCERR";
#ifdef SEGV_PKUERR
      case SEGV_PKUERR: return "SEGV_PKUERR";
#endif
      default: break;
    }
  } else if (sig == SIGBUS) {
    switch (code) {
      case BUS_ADRALN: return "BUS_ADRALN";
      case BUS_ADRERR: return "BUS_ADRERR";
      case BUS_OBJERR: return "BUS_OBJERR";
#ifdef BUS_MCEERR_AR
      case BUS_MCEERR_AR: return "BUS_MCEERR_AR";
#endif
      default: break;
    }
  }
  return "SI_UNKNOWN";
}

int vmlab_guard_raise(lua_State *L, const char *what) {
  vmlab_guard_info fi = vmlab_guard_tls->last;
  const char *why = "";
  if (fi.signal == SIGSEGV && fi.code == SEGV_ACCERR)
    why = ": the protection does not allow this access";
  else if (fi.signal == SIGSEGV && fi.code == SEGV_MAPERR)
    why = ": nothing is mapped there";
  else if (fi.signal == SIGBUS)
    why = ": no backing storage there (past the end of the file or object?)";
  return luaL_error(L, "%s: %s (%s) at %p%s", what,
                    vmlab_signal_name(fi.signal), vmlab_fault_code_name(fi.signal, fi.code),
                    (void *)fi.address, why);
}

/* vmlab.signal_name(n) -> "SIGSEGV" or nil */
static int guard_signal_name(lua_State *L) {
  const char *n = vmlab_signal_name((int)vmlab_check_int_range(L, 1, INT_MIN, INT_MAX));
  if (n == NULL) luaL_pushfail(L);
  else lua_pushstring(L, n);
  return 1;
}

void vmlab_open_guard(lua_State *L) {
  vmlab_guard_install();
  lua_pushcfunction(L, guard_signal_name);
  lua_setfield(L, -2, "signal_name");
}
