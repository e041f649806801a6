/*
 * process.c - processes: vm.fork(fn), vm.spawn(argv, opts), the Child object
 * (wait, kill, running), signals by name, parent-death signal, vm.exit.
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

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

extern char **environ;

typedef struct process_child {
  pid_t pid;    /* > 0 once forked */
  pid_t owner;  /* the process that forked it: only it waits, kills on __gc */
  int reaped;   /* status below is final */
  int status;   /* raw wait status */
} process_child;

/* ------------------------------------------------------------------ */
/* Signals                                                             */

/* Stack value idx as a signal: a number 0..NSIG-1 or a name; def when nil.
   Errors name the option `opt`, or argument idx when opt is NULL. */
static int process_to_signal(lua_State *L, int idx, int def, const char *opt) {
  const char *why = NULL;
  int sig = def, t = lua_type(L, idx);
  if (t == LUA_TSTRING) {
    sig = vmlab_signal_number(lua_tostring(L, idx));
    if (sig < 0) why = lua_pushfstring(L, "unknown signal name '%s'", lua_tostring(L, idx));
  } else if (t == LUA_TNUMBER) {
    sig = (int)lua_tointeger(L, idx);
    if (!lua_isinteger(L, idx) || lua_tointeger(L, idx) < 0 || lua_tointeger(L, idx) >= NSIG)
      why = "signal number out of range";
  } else if (t != LUA_TNIL && t != LUA_TNONE) {
    why = lua_pushfstring(L, "signal name or number expected, got %s", luaL_typename(L, idx));
  }
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

static process_child *process_new_child(lua_State *L) {
  process_child *c = lua_newuserdatauv(L, sizeof *c, 0);
  c->pid = -1;
  c->owner = getpid();
  c->reaped = 1; /* nothing to wait for until fork succeeds */
  c->status = 0;
  luaL_setmetatable(L, VMLAB_CHILD_MT);
  return c;
}

static process_child *process_check_child(lua_State *L, int idx) {
  return luaL_checkudata(L, idx, VMLAB_CHILD_MT);
}

/* waitpid(2) retried on EINTR; stores the status when the child is gone. */
static pid_t process_waitpid(process_child *c, int flags) {
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
static void process_push_status(lua_State *L, const process_child *c) {
  int st = c->status;
  lua_createtable(L, 0, 9);
#define SETF(k, push, v) (push(L, v), lua_setfield(L, -2, k))
  SETF("pid", lua_pushinteger, c->pid);
  SETF("status", lua_pushinteger, st);
  SETF("exited", lua_pushboolean, WIFEXITED(st));
  SETF("signaled", lua_pushboolean, WIFSIGNALED(st));
  SETF("core_dumped", lua_pushboolean, WIFSIGNALED(st) && WCOREDUMP(st));
  SETF("ok", lua_pushboolean, WIFEXITED(st) && WEXITSTATUS(st) == 0);
  if (WIFEXITED(st)) SETF("code", lua_pushinteger, WEXITSTATUS(st));
#undef SETF
  if (WIFSIGNALED(st)) {
    lua_pushinteger(L, WTERMSIG(st));
    lua_setfield(L, -2, "signal");
    process_push_signal_name(L, WTERMSIG(st));
    lua_setfield(L, -2, "signal_name");
  }
}

/* Wait up to `timeout` seconds: pidfd_open(2) + poll(2), else short sleeps. */
static pid_t process_wait_timeout(process_child *c, double timeout) {
  pid_t r = process_waitpid(c, WNOHANG);
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
    r = process_waitpid(c, WNOHANG);
    if (r != 0) break;
  }
  if (pfd >= 0) close(pfd);
  if (r == 0) r = process_waitpid(c, WNOHANG);
  return r;
}

/* child:wait{nohang=, timeout=} -> status table; nil, "running" | "timeout"
   while it runs. See waitpid(2). */
static int child_wait(lua_State *L) {
  static const char *const known[] = {"nohang", "timeout", NULL};
  process_child *c = process_check_child(L, 1);
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
    if (nohang) r = process_waitpid(c, WNOHANG);
    else if (has_timeout) r = process_wait_timeout(c, timeout);
    else r = process_waitpid(c, 0);
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
  process_child *c = process_check_child(L, 1);
  int sig = process_to_signal(L, 2, SIGTERM, NULL);
  if (c->pid <= 0 || c->reaped) return vmlab_push_syserror(L, "kill", ESRCH);
  if (kill(c->pid, sig) != 0) return vmlab_push_syserror(L, "kill", errno);
  lua_pushboolean(L, 1);
  return 1;
}

/* Refresh the state without blocking: 1 running, 0 gone. */
static int process_is_running(process_child *c) {
  if (c->pid <= 0 || c->reaped) return 0;
  if (c->owner == getpid()) {
    pid_t r = process_waitpid(c, WNOHANG);
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
  process_child *c = process_check_child(L, 1);
  if (c->pid > 0 && !c->reaped && c->owner == getpid()) {
    if (process_waitpid(c, WNOHANG) == 0) {
      kill(c->pid, SIGKILL);
      process_waitpid(c, 0);
    }
    c->reaped = 1; /* even on ECHILD: never signal this pid again */
  }
  return 0;
}

static int child_tostring(lua_State *L) {
  process_child *c = process_check_child(L, 1);
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
  process_child *c = process_check_child(L, 1);
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
static void process_child_main(lua_State *L, int fidx, int nargs) {
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
  process_child *c = process_new_child(L);
  fflush(NULL); /* else buffered output is printed by both processes */
  pid_t pid = fork();
  if (pid < 0) return vmlab_push_syserror(L, "fork", errno);
  if (pid == 0) process_child_main(L, 1, nargs);
  c->pid = pid;
  c->reaped = 0;
  return 1;
}

/* ------------------------------------------------------------------ */
/* spawn                                                               */

/* What a failed child reports through its close-on-exec pipe. */
typedef struct process_exec_error {
  int stage; /* index into process_stage_names */
  int err;
} process_exec_error;

static const char *const process_stage_names[] = {"exec", "chdir", "dup2", "prctl"};

/* A NULL-terminated array of copies of `n` strings taken from the Lua stack
   values at base..base+n-1, in one userdata left on the stack. */
static char **process_string_array(lua_State *L, int base, int n) {
  size_t bytes = sizeof(char *) * (size_t)(n + 1);
  for (int i = 0; i < n; i++) bytes += lua_rawlen(L, base + i) + 1;
  char **arr = lua_newuserdatauv(L, bytes, 0);
  char *p = (char *)(arr + n + 1);
  for (int i = 0; i < n; i++) {
    size_t len;
    const char *s = lua_tolstring(L, base + i, &len);
    memcpy(p, s, len + 1);
    arr[i] = p;
    p += len + 1;
  }
  arr[n] = NULL;
  return arr;
}

/* argv table at idx -> char *[]; the userdata holding it is pushed. */
static char **process_check_argv(lua_State *L, int idx) {
  luaL_checktype(L, idx, LUA_TTABLE);
  lua_Integer n = luaL_len(L, idx);
  luaL_argcheck(L, n >= 1, idx, "argv must hold at least the program name");
  luaL_argcheck(L, n < 100000, idx, "argv is too long");
  luaL_checkstack(L, (int)n + 4, "argv is too long");
  int base = lua_gettop(L) + 1;
  for (lua_Integer i = 1; i <= n; i++) {
    int t = lua_geti(L, idx, i);
    if (t != LUA_TSTRING && t != LUA_TNUMBER)
      luaL_error(L, "bad argument #%d to 'spawn' (argv[%d] must be a string, got %s)", idx,
                 (int)i, luaL_typename(L, -1));
    lua_tostring(L, -1);
  }
  char **argv = process_string_array(L, base, (int)n);
  lua_replace(L, base);
  lua_settop(L, base);
  return argv;
}

/* opts.env: {NAME = "value" | false} merged over the inherited environment
   (or over nothing with opts.clear_env). Pushes the holder userdata. */
static char **process_build_env(lua_State *L, int opts, int clear) {
  int env = lua_gettop(L) + 1;
  lua_getfield(L, opts, "env");
  if (!lua_isnil(L, env) && !lua_istable(L, env))
    luaL_error(L, "bad option 'env' (table expected, got %s)", luaL_typename(L, env));
  int base = lua_gettop(L) + 1, n = 0;
  if (!clear) {
    for (char **e = environ; *e != NULL; e++) {
      const char *eq = strchr(*e, '=');
      if (eq == NULL) continue;
      if (lua_istable(L, env)) {
        lua_pushlstring(L, *e, (size_t)(eq - *e));
        int t = lua_rawget(L, env);
        lua_pop(L, 1);
        if (t != LUA_TNIL) continue; /* overridden or removed */
      }
      luaL_checkstack(L, 2, "environment is too large");
      lua_pushstring(L, *e);
      n++;
    }
  }
  if (lua_istable(L, env)) {
    lua_pushnil(L);
    while (lua_next(L, env) != 0) {
      if (lua_type(L, -2) != LUA_TSTRING || lua_rawlen(L, -2) == 0 ||
          strchr(lua_tostring(L, -2), '=') != NULL)
        luaL_error(L, "bad option 'env' (keys must be variable names without '=')");
      if (lua_type(L, -1) == LUA_TBOOLEAN && !lua_toboolean(L, -1)) {
        lua_pop(L, 1);
        continue;
      }
      if (lua_type(L, -1) != LUA_TSTRING && lua_type(L, -1) != LUA_TNUMBER)
        luaL_error(L, "bad option 'env' (value of %s must be a string or false)", lua_tostring(L, -2));
      lua_pushfstring(L, "%s=%s", lua_tostring(L, -2), lua_tostring(L, -1));
      lua_insert(L, -3); /* entry below key and value */
      lua_pop(L, 1);
      n++;
      luaL_checkstack(L, 3, "environment is too large");
    }
  }
  char **envp = process_string_array(L, base, n);
  lua_replace(L, env);
  lua_settop(L, env);
  return envp;
}

/* opts.stdin/stdout/stderr (checked already): a path ("null" is /dev/null;
   say "./null" for a file of that name) or an open Lua file;
   -> fd >= 3, close-on-exec; -1 when absent; -2 with errno set on failure. */
static int process_redirect_fd(lua_State *L, int opts, const char *k, int flags) {
  int fd = -1, t = lua_getfield(L, opts, k);
  if (t == LUA_TSTRING) {
    const char *path = lua_tostring(L, -1);
    fd = open(strcmp(path, "null") == 0 ? "/dev/null" : path, flags | O_CLOEXEC, 0666);
  } else if (t != LUA_TNIL) {
    luaL_Stream *s = luaL_checkudata(L, -1, LUA_FILEHANDLE);
    fflush(s->f);
    fd = fcntl(fileno(s->f), F_DUPFD_CLOEXEC, 3);
  }
  lua_pop(L, 1);
  if (fd < 0) return t == LUA_TNIL ? -1 : -2;
  if (fd < 3) { /* keep it clear of the slots it is going to replace */
    int moved = fcntl(fd, F_DUPFD_CLOEXEC, 3);
    int err = errno;
    close(fd);
    errno = err;
    if (moved < 0) return -2;
    fd = moved;
  }
  return fd;
}

/* In the spawned child: redirect, chdir, exec; report failure and _exit. */
static void process_spawn_child(int errfd, const int fds[3], const char *cwd, int deathsig,
                                pid_t parent, char **argv, char **envp) {
  process_exec_error e = {0, 0};
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL);
  for (int i = 0; i < 3; i++)
    if (fds[i] >= 0 && dup2(fds[i], i) < 0) {
      e.stage = 2;
      goto fail;
    }
  if (deathsig > 0) {
    if (prctl(PR_SET_PDEATHSIG, (unsigned long)deathsig) != 0) {
      e.stage = 3;
      goto fail;
    }
    if (getppid() != parent) _exit(127); /* the parent is already gone */
  }
#ifdef SYS_close_range
  /* Only 0, 1 and 2 go through exec, whatever the parent left open
     (Lua's io.open does not use O_CLOEXEC). */
  syscall(SYS_close_range, 3u, ~0u, CLOSE_RANGE_CLOEXEC);
#endif
  if (cwd != NULL && chdir(cwd) != 0) {
    e.stage = 1;
    goto fail;
  }
  execvpe(argv[0], argv, envp);
fail:
  e.err = errno;
  while (write(errfd, &e, sizeof e) < 0 && errno == EINTR) {
  }
  _exit(127);
}

/* vm.spawn({prog, args...}, {cwd=, env=, clear_env=, stdin=, stdout=,
   stderr=, death_signal=}) -> Child, or nil, "exec: No such file or
   directory", errno. stdin/stdout/stderr: a path, "null" or a Lua file;
   stdout/stderr paths are created or truncated. env: {NAME = "value" or
   false (removed)} over the inherited environment (none with clear_env).
   The program inherits no descriptor but 0, 1 and 2. death_signal: sent
   to it when the spawning thread ends. See fork(2), execvp(3), prctl(2). */
static int process_spawn(lua_State *L) {
  static const char *const known[] = {"cwd", "env", "clear_env", "stdin", "stdout",
                                      "stderr", "death_signal", NULL};
  lua_settop(L, 2);
  char **argv = process_check_argv(L, 1); /* holder at 3 */
  vmlab_check_known_fields(L, 2, known);
  if (lua_isnil(L, 2)) {
    lua_newtable(L);
    lua_replace(L, 2);
  }
  const char *cwd = vmlab_opt_string_field(L, 2, "cwd", NULL);
  int clear = vmlab_opt_bool_field(L, 2, "clear_env", 0);
  lua_getfield(L, 2, "death_signal");
  int deathsig = process_to_signal(L, -1, 0, "death_signal");
  lua_pop(L, 1);
  lua_getfield(L, 2, "env");
  int want_env = !lua_isnil(L, -1) || clear;
  lua_pop(L, 1);
  char **envp = want_env ? process_build_env(L, 2, clear) : environ;
  if (!want_env) lua_pushnil(L); /* keep the stack shape: holder at 4 */
  process_child *c = process_new_child(L);

  static const char *const names[3] = {"stdin", "stdout", "stderr"};
  int fds[3] = {-1, -1, -1}, pfd[2] = {-1, -1}, err = 0;
  const char *what = NULL;
  for (int i = 0; i < 3; i++) { /* check all before opening any: no fd leaks on a raise */
    int t = lua_getfield(L, 2, names[i]);
    luaL_Stream *s = t == LUA_TUSERDATA ? luaL_testudata(L, -1, LUA_FILEHANDLE) : NULL;
    if (t != LUA_TNIL && t != LUA_TSTRING && (s == NULL || s->closef == NULL))
      luaL_error(L, "bad option '%s' (path or open file expected, got %s)", names[i],
                 s != NULL ? "a closed file" : luaL_typename(L, -1));
    lua_pop(L, 1);
  }
  for (int i = 0; i < 3 && what == NULL; i++) {
    int flags = i == 0 ? O_RDONLY : O_WRONLY | O_CREAT | O_TRUNC;
    fds[i] = process_redirect_fd(L, 2, names[i], flags);
    if (fds[i] == -2) {
      err = errno;
      what = lua_pushfstring(L, "open %s", names[i]);
    }
  }
  if (what == NULL && pipe2(pfd, O_CLOEXEC) != 0) {
    err = errno;
    what = "pipe2";
  }
  pid_t pid = -1;
  if (what == NULL) {
    pid_t parent = getpid();
    pid = fork();
    if (pid == 0) process_spawn_child(pfd[1], fds, cwd, deathsig, parent, argv, envp);
    if (pid < 0) {
      err = errno;
      what = "fork";
    }
  }
  for (int i = 0; i < 3; i++)
    if (fds[i] >= 0) close(fds[i]);
  if (pfd[1] >= 0) close(pfd[1]);
  if (pid > 0) {
    c->pid = pid;
    c->reaped = 0;
    process_exec_error e;
    ssize_t got;
    do got = read(pfd[0], &e, sizeof e);
    while (got < 0 && errno == EINTR);
    if (got == (ssize_t)sizeof e) { /* exec never happened: reap, report */
      process_waitpid(c, 0);
      err = e.err;
      what = process_stage_names[e.stage >= 0 && e.stage < 4 ? e.stage : 0];
    }
  }
  if (pfd[0] >= 0) close(pfd[0]);
  if (what != NULL) return vmlab_push_syserror(L, what, err);
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
  int sig = process_to_signal(L, 2, SIGTERM, NULL);
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
  int sig = process_to_signal(L, 1, 0, NULL);
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

void vmlab_open_process(lua_State *L) {
  static const luaL_Reg methods[] = {
      {"wait", child_wait}, {"kill", child_kill}, {"running", child_running}, {NULL, NULL}};
  static const luaL_Reg funcs[] = {
      {"fork", process_fork},
      {"spawn", process_spawn},
      {"getpid", process_getpid},
      {"getppid", process_getppid},
      {"kill", process_kill},
      {"exit", process_exit},
      {"set_parent_death_signal", process_set_parent_death_signal},
      {"get_parent_death_signal", process_get_parent_death_signal},
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
