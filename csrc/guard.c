/*
 * guard.c - turn SIGSEGV/SIGBUS inside a vmlab memory access into a Lua
 * error. See the "Fault guard" section of vmlab.h; see sigaction(2).
 */
#include "vmlab.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

sigjmp_buf vmlab_guard_jmp;
volatile sig_atomic_t vmlab_guard_active = 0;
vmlab_guard_info vmlab_guard_last;

static struct sigaction guard_old_segv, guard_old_bus;
static int guard_installed = 0;

static void guard_handler(int sig, siginfo_t *si, void *uctx) {
  /* si_code > 0: the kernel raised it for an access; <= 0: kill(2), raise(3)... */
  int from_kernel = si->si_code > 0;
  if (vmlab_guard_active && from_kernel) {
    vmlab_guard_active = 0;
    vmlab_guard_last.signal = sig;
    vmlab_guard_last.code = si->si_code;
    vmlab_guard_last.address = (uintptr_t)si->si_addr;
    siglongjmp(vmlab_guard_jmp, 1);
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

void vmlab_guard_install(void) {
  if (guard_installed) return;
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = guard_handler;
  sa.sa_flags = SA_SIGINFO | SA_NODEFER | SA_ONSTACK;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGSEGV, &sa, &guard_old_segv);
  sigaction(SIGBUS, &sa, &guard_old_bus);
  guard_installed = 1;
}

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
  vmlab_guard_info fi = vmlab_guard_last;
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
  const char *n = vmlab_signal_name((int)luaL_checkinteger(L, 1));
  if (n == NULL) luaL_pushfail(L);
  else lua_pushstring(L, n);
  return 1;
}

void vmlab_open_guard(lua_State *L) {
  vmlab_guard_install();
  lua_pushcfunction(L, guard_signal_name);
  lua_setfield(L, -2, "signal_name");
}
