/*
 * process.c - processes: vm.fork(fn); the Child object that vm.fork and
 * vm.spawn (spawn.c) return (wait, kill, running); signals by name; the
 * parent-death signal; vm.exit.
 *
 * A Child records the pid that created it (its owner). In the owner, __gc
 * and __close of a child that is still running SIGKILL it and reap it, so
 * nothing is left behind; in any other process (a forked child holding a
 * copy) they do nothing. A reaped child's pid is never signalled again: the
 * kernel may have given that number to someone else.
 */
#include "vmlab.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------------ */
/* Signals                                                             */

int vmlab_parse_signal(lua_State *L, int idx, int def, const char **why) {
  int sig = def, t = lua_type(L, idx);
  *why = NULL;
  if (t == LUA_TSTRING) {
    size_t len;
    const char *name = lua_tolstring(L, idx, &len);
    sig = memchr(name, '\0', len) != NULL ? -1 : vmlab_signal_number(name);
    if (sig < 0) *why = lua_pushfstring(L, "unknown signal name '%s'", name);
  } else if (t == LUA_TNUMBER) {
    int isint = 0;
    lua_Integer n = lua_tointegerx(L, idx, &isint); /* 15.0 is 15; 15.5 and 2^32+15 are none */
    if (!isint || n < 0 || n >= NSIG) *why = "signal number out of range";
    else sig = (int)n;
  } else if (t != LUA_TNIL && t != LUA_TNONE) {
    *why = lua_pushfstring(L, "signal name or number expected, got %s", luaL_typename(L, idx));
  }
  return sig;
}

int vmlab_to_signal(lua_State *L, int idx, int def, const char *opt) {
  const char *why;
  int sig = vmlab_parse_signal(L, idx, def, &why);
  if (why != NULL && opt != NULL) luaL_error(L, "bad option '%s' (%s)", opt, why);
  if (why != NULL) luaL_argerror(L, idx, why);
  return sig;
}

/* Push a signal's name: "SIGSEGV", "SIGRTMIN+3", "SIG99". */
static void process_push_signal_name(lua_State *L, int sig) {
  const char *n = vmlab_signal_name(sig);
  if (n != NULL) lua_pushstring(L, n);
  else if (sig >= SIGRTMIN && sig <= SIGRTMAX) lua_pushfstring(L, "SIGRTMIN+%d", sig - SIGRTMIN);
  else lua_pushfstring(L, "SIG%d", sig);
}

/* ------------------------------------------------------------------ */
/* The Child object                                                    */

vmlab_child *vmlab_child_new(lua_State *L) {
  vmlab_child *c = lua_newuserdatauv(L, sizeof *c, 0);
  c->pid = -1;
  c->owner = getpid();
  c->reaped = 1; /* nothing to wait for until fork succeeds */
  c->status = 0;
  luaL_setmetatable(L, VMLAB_CHILD_MT);
  return c;
}

static vmlab_child *process_check_child(lua_State *L, int idx) {
  return luaL_checkudata(L, idx, VMLAB_CHILD_MT);
}

/* waitpid(2) retried on EINTR; stores the status when the child is gone. */
pid_t vmlab_child_waitpid(vmlab_child *c, int flags) {
  int st = 0;
  pid_t r;
  do r = waitpid(c->pid, &st, flags);
  while (r < 0 && errno == EINTR);
  if (r == c->pid) {
    c->status = st;
    c->reaped = 1;
  }
  return r;
}

/* Push the decoded wait status table. */
static void process_push_status(lua_State *L, const vmlab_child *c) {
  int st = c->status;
  lua_createtable(L, 0, 9);
  vmlab_set_int(L, "pid", c->pid);
  vmlab_set_int(L, "status", st);
  vmlab_set_bool(L, "exited", WIFEXITED(st));
  vmlab_set_bool(L, "signaled", WIFSIGNALED(st));
  vmlab_set_bool(L, "core_dumped", WIFSIGNALED(st) && WCOREDUMP(st));
  vmlab_set_bool(L, "ok", WIFEXITED(st) && WEXITSTATUS(st) == 0);
  if (WIFEXITED(st)) vmlab_set_int(L, "code", WEXITSTATUS(st));
  if (WIFSIGNALED(st)) {
    vmlab_set_int(L, "signal", WTERMSIG(st));
    process_push_signal_name(L, WTERMSIG(st));
    lua_setfield(L, -2, "signal_name");
  }
}

/* Wait up to `timeout` seconds: pidfd_open(2) + poll(2), else short sleeps. */
static pid_t process_wait_timeout(vmlab_child *c, double timeout) {
  pid_t r = vmlab_child_waitpid(c, WNOHANG);
  if (r != 0) return r;
  double deadline = vmlab_now() + timeout;
#ifdef SYS_pidfd_open
  int pfd = (int)syscall(SYS_pidfd_open, c->pid, 0);
#else
  int pfd = -1;
#endif
  for (;;) {
    double left = deadline - vmlab_now();
    if (left <= 0) break;
    if (pfd >= 0) {
      int ms = left > 1e6 ? 1000000000 : (int)ceil(left * 1000.0);
      poll(&(struct pollfd){.fd = pfd, .events = POLLIN}, 1, ms);
    } else {
      double nap = left < 0.005 ? left : 0.005;
      struct timespec ts = {0, (long)(nap * 1e9)};
      nanosleep(&ts, NULL);
    }
    r = vmlab_child_waitpid(c, WNOHANG);
    if (r != 0) break;
  }
  if (pfd >= 0) close(pfd);
  if (r == 0) r = vmlab_child_waitpid(c, WNOHANG);
  return r;
}

/* child:wait{nohang=, timeout=} -> status table; nil, "running" | "timeout"
   while it runs. See waitpid(2). */
static int child_wait(lua_State *L) {
  static const char *const known[] = {"nohang", "timeout", NULL};
  vmlab_child *c = process_check_child(L, 1);
  vmlab_check_known_fields(L, 2, known);
  int nohang = vmlab_opt_bool_field(L, 2, "nohang", 0);
  double timeout = -1.0;
  if (lua_istable(L, 2)) {
    int t = lua_getfield(L, 2, "timeout");
    if (t != LUA_TNIL) {
      timeout = lua_tonumber(L, -1);
      if (t != LUA_TNUMBER || !(timeout >= 0))
        luaL_error(L, "bad option 'timeout' (number of seconds >= 0 expected)");
    }
    lua_pop(L, 1);
  }
  int has_timeout = timeout >= 0;
  if (!c->reaped) {
    pid_t r;
    if (nohang) r = vmlab_child_waitpid(c, WNOHANG);
    else if (has_timeout) r = process_wait_timeout(c, timeout);
    else r = vmlab_child_waitpid(c, 0);
    if (r < 0) return vmlab_push_syserror(L, "waitpid", errno);
    if (r == 0) {
      lua_pushnil(L);
      lua_pushstring(L, nohang ? "running" : "timeout");
      return 2;
    }
  }
  process_push_status(L, c);
  return 1;
}

/* child:kill(sig = "TERM") -> true or nil, msg, errno. See kill(2). */
static int child_kill(lua_State *L) {
  vmlab_child *c = process_check_child(L, 1);
  int sig = vmlab_to_signal(L, 2, SIGTERM, NULL);
  if (c->pid <= 0 || c->reaped) return vmlab_push_syserror(L, "kill", ESRCH);
  if (kill(c->pid, sig) != 0) return vmlab_push_syserror(L, "kill", errno);
  lua_pushboolean(L, 1);
  return 1;
}

/* Refresh the state without blocking: 1 running, 0 gone. */
static int process_is_running(vmlab_child *c) {
  if (c->pid <= 0 || c->reaped) return 0;
  if (c->owner == getpid()) {
    pid_t r = vmlab_child_waitpid(c, WNOHANG);
    if (r == 0) return 1;
    if (r < 0 && errno == ECHILD) { /* someone else reaped it (SIGCHLD ignored?) */
      c->reaped = 1;
      c->status = 0;
    }
    return 0;
  }
  return kill(c->pid, 0) == 0 || errno == EPERM;
}

/* child:running() -> boolean (reaps it when it has ended). */
static int child_running(lua_State *L) {
  lua_pushboolean(L, process_is_running(process_check_child(L, 1)));
  return 1;
}

/* __gc / __close: in the owner, SIGKILL a running child and reap it. */
static int child_release(lua_State *L) {
  vmlab_child *c = process_check_child(L, 1);
  if (c->pid > 0 && !c->reaped && c->owner == getpid()) {
    if (vmlab_child_waitpid(c, WNOHANG) == 0) {
      kill(c->pid, SIGKILL);
      vmlab_child_waitpid(c, 0);
    }
    c->reaped = 1; /* even on ECHILD: never signal this pid again */
  }
  return 0;
}

static int child_tostring(lua_State *L) {
  vmlab_child *c = process_check_child(L, 1);
  if (c->pid <= 0) {
    lua_pushstring(L, "vmlab.Child (not started)");
    return 1;
  }
  if (process_is_running(c)) {
    if (c->owner == getpid())
      lua_pushfstring(L, "vmlab.Child pid %d (running)", (int)c->pid);
    else
      lua_pushfstring(L, "vmlab.Child pid %d (running, owned by pid %d)", (int)c->pid, (int)c->owner);
  } else if (!c->reaped) {
    lua_pushfstring(L, "vmlab.Child pid %d (gone, owned by pid %d)", (int)c->pid, (int)c->owner);
  } else if (WIFSIGNALED(c->status)) {
    lua_pushfstring(L, "vmlab.Child pid %d (killed by ", (int)c->pid);
    process_push_signal_name(L, WTERMSIG(c->status));
    lua_pushstring(L, WCOREDUMP(c->status) ? ", core dumped)" : ")");
    lua_concat(L, 3);
  } else {
    lua_pushfstring(L, "vmlab.Child pid %d (exited %d)", (int)c->pid, WEXITSTATUS(c->status));
  }
  return 1;
}

/* child.pid, child.owner, then the methods. */
static int child_index(lua_State *L) {
  vmlab_child *c = process_check_child(L, 1);
  const char *k = lua_type(L, 2) == LUA_TSTRING ? lua_tostring(L, 2) : "";
  if (strcmp(k, "pid") == 0) lua_pushinteger(L, c->pid);
  else if (strcmp(k, "owner") == 0) lua_pushinteger(L, c->owner);
  else {
    lua_pushvalue(L, 2);
    lua_rawget(L, lua_upvalueindex(1));
  }
  return 1;
}

/* ------------------------------------------------------------------ */
/* fork                                                                */

/* Message handler for the child's pcall: message + traceback. */
static int process_traceback(lua_State *L) {
  const char *msg = lua_tostring(L, 1);
  if (msg == NULL) {
    if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING)
      msg = lua_tostring(L, -1);
    else
      msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
  }
  luaL_traceback(L, L, msg, 1);
  return 1;
}

/* In the forked child: run fn(...) at stack index fidx with nargs, never return. */
static void vmlab_child_main(lua_State *L, int fidx, int nargs) {
  lua_pushcfunction(L, process_traceback);
  int h = lua_gettop(L);
  lua_pushvalue(L, fidx);
  for (int i = 1; i <= nargs; i++) lua_pushvalue(L, fidx + i);
  int code;
  if (lua_pcall(L, nargs, 1, h) != LUA_OK) {
    fflush(NULL);
    fprintf(stderr, "vmlab.fork: child %d failed: %s\n", (int)getpid(), lua_tostring(L, -1));
    code = 1;
  } else if (lua_isnil(L, -1)) {
    code = 0;
  } else if (lua_isboolean(L, -1)) {
    code = lua_toboolean(L, -1) ? 0 : 1;
  } else {
    int isint = 0;
    lua_Integer n = lua_type(L, -1) == LUA_TNUMBER ? lua_tointegerx(L, -1, &isint) : 0;
    if (isint && n >= 0 && n <= 255) {
      code = (int)n;
    } else {
      fflush(NULL);
      if (isint)
        fprintf(stderr, "vmlab.fork: child %d returned %lld, not an exit code 0..255\n",
                (int)getpid(), (long long)n);
      else
        fprintf(stderr,
                "vmlab.fork: child %d returned a %s; expected nil, a boolean or an "
                "exit code 0..255\n",
                (int)getpid(), luaL_typename(L, -1));
      code = 1;
    }
  }
  fflush(NULL);
  _exit(code);
}

/* vm.fork(fn, ...) -> Child, or nil, msg, errno. The child runs fn(...) and
   ends with _exit: an integer result is the exit code, nil/true 0, false 1,
   an error prints its traceback and exits 1. See fork(2), _exit(2). */
static int process_fork(lua_State *L) {
  luaL_checktype(L, 1, LUA_TFUNCTION);
  int nargs = lua_gettop(L) - 1;
  luaL_checkstack(L, nargs + 4, "too many arguments");
  vmlab_child *c = vmlab_child_new(L);
  fflush(NULL); /* else buffered output is printed by both processes */
  pid_t pid = fork();
  if (pid < 0) return vmlab_push_syserror(L, "fork", errno);
  if (pid == 0) vmlab_child_main(L, 1, nargs);
  c->pid = pid;
  c->reaped = 0;
  return 1;
}

/* ------------------------------------------------------------------ */
/* Small process calls                                                 */

/* vm.getpid(), vm.getppid() -> integer. See getpid(2), getppid(2). */
static int process_getpid(lua_State *L) { return lua_pushinteger(L, getpid()), 1; }
static int process_getppid(lua_State *L) { return lua_pushinteger(L, getppid()), 1; }

/* vm.kill(pid, sig = "TERM") -> true or nil, msg, errno. pid > 0, or a
   negated process group < -1 (0 and -1 are refused). See kill(2). */
static int process_kill(lua_State *L) {
  lua_Integer pid = luaL_checkinteger(L, 1);
  luaL_argcheck(L, pid > 0 || pid < -1, 1,
                "pid must be a process id (> 0) or a negated process group (< -1)");
  luaL_argcheck(L, pid <= INT32_MAX && pid >= -(lua_Integer)INT32_MAX, 1, "pid out of range");
  int sig = vmlab_to_signal(L, 2, SIGTERM, NULL);
  if (kill((pid_t)pid, sig) != 0) return vmlab_push_syserror(L, "kill", errno);
  lua_pushboolean(L, 1);
  return 1;
}

/* vm.exit(code = 0): flush stdio and _exit, skipping atexit handlers and
   Lua's __gc: the way out of a forked child. true is 0, false is 1.
   See _exit(2). */
static int process_exit(lua_State *L) {
  int code = 0;
  if (lua_isboolean(L, 1)) code = lua_toboolean(L, 1) ? 0 : 1;
  else if (!lua_isnoneornil(L, 1)) {
    lua_Integer n = luaL_checkinteger(L, 1);
    luaL_argcheck(L, n >= 0 && n <= 255, 1, "exit code must be 0..255");
    code = (int)n;
  }
  fflush(NULL);
  _exit(code);
  return 0;
}

/* vm.set_parent_death_signal(sig) -> true or nil, msg, errno: the kernel
   sends sig to this process when its parent thread ends (0 clears).
   See prctl(2) PR_SET_PDEATHSIG. */
static int process_set_parent_death_signal(lua_State *L) {
  luaL_checkany(L, 1);
  int sig = vmlab_to_signal(L, 1, 0, NULL);
  if (prctl(PR_SET_PDEATHSIG, (unsigned long)sig) != 0)
    return vmlab_push_syserror(L, "prctl", errno);
  lua_pushboolean(L, 1);
  return 1;
}

/* vm.get_parent_death_signal() -> signal number (0: none). See prctl(2). */
static int process_get_parent_death_signal(lua_State *L) {
  int sig = 0;
  if (prctl(PR_GET_PDEATHSIG, &sig) != 0) return vmlab_push_syserror(L, "prctl", errno);
  lua_pushinteger(L, sig);
  return 1;
}

/* vm.set_process_name(name) -> true or nil, msg, errno: the name ps, top,
   htop (in comm mode), pgrep without -f and /proc/self/comm show for this
   thread (at most 15 bytes are kept). See prctl(2) PR_SET_NAME. */
static int process_set_process_name(lua_State *L) {
  size_t len;
  const char *name = luaL_checklstring(L, 1, &len);
  luaL_argcheck(L, len > 0 && memchr(name, '\0', len) == NULL, 1, "a name without NUL bytes expected");
  if (prctl(PR_SET_NAME, (unsigned long)name, 0UL, 0UL, 0UL) != 0) return vmlab_push_syserror(L, "prctl", errno);
  lua_pushboolean(L, 1);
  return 1;
}

void vmlab_open_process(lua_State *L) {
  static const luaL_Reg methods[] = {
      {"wait", child_wait}, {"kill", child_kill}, {"running", child_running}, {NULL, NULL}};
  static const luaL_Reg funcs[] = {
      {"fork", process_fork},
            {"getpid", process_getpid},
      {"getppid", process_getppid},
      {"kill", process_kill},
      {"exit", process_exit},
      {"set_parent_death_signal", process_set_parent_death_signal},
      {"get_parent_death_signal", process_get_parent_death_signal},
      {"set_process_name", process_set_process_name},
      {NULL, NULL}};
  vmlab_new_class(L, VMLAB_CHILD_MT, methods, child_index, child_release, child_tostring);
  luaL_setfuncs(L, funcs, 0);
  /* vm.signals: "SIGTERM" -> 15, ... */
  lua_newtable(L);
  for (int sig = 1; sig < NSIG; sig++) {
    const char *n = vmlab_signal_name(sig);
    if (n == NULL) continue;
    lua_pushinteger(L, sig);
    lua_setfield(L, -2, n);
  }
  lua_setfield(L, -2, "signals");
}
