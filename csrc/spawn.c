/*
 * spawn.c - vm.spawn(argv, opts): fork(2) + execvp(3) of another program,
 * with its standard streams, working directory, environment and
 * parent-death signal set in the child. A failure there (exec, chdir, dup2,
 * prctl) comes back through a close-on-exec pipe as nil, "exec: ...", errno.
 * The program inherits only fds 0, 1 and 2. Returns the same Child object as
 * vm.fork (process.c).
 */
#include "vmlab.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

extern char **environ;

/* execvpe(3) is a GNU extension (glibc; musl with _GNU_SOURCE). Without it the
   child sets environ and calls execvp(3), which searches PATH the same way.
   Build with -DVMLAB_HAVE_EXECVPE=0 to try the fallback. */
#ifndef VMLAB_HAVE_EXECVPE
#if defined(__GLIBC__) || defined(__linux__)
#define VMLAB_HAVE_EXECVPE 1
#else
#define VMLAB_HAVE_EXECVPE 0
#endif
#endif


/* What a failed child reports through its close-on-exec pipe. */
typedef struct spawn_exec_error {
  int stage; /* index into spawn_stage_names */
  int err;
} spawn_exec_error;

static const char *const spawn_stage_names[] = {"exec", "chdir", "dup2", "prctl"};

/* A NULL-terminated array of copies of `n` strings taken from the Lua stack
   values at base..base+n-1 (already checked: strings without NUL), in one
   userdata left on the stack. */
static char **spawn_string_array(lua_State *L, int base, int n) {
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

/* The string (or number, converted in place) at stack index i must hold no
   NUL byte: exec(2) would silently cut it there. */
static int spawn_has_nul(lua_State *L, int i) {
  size_t len;
  const char *s = lua_tolstring(L, i, &len);
  return memchr(s, '\0', len) != NULL;
}

/* argv table at idx -> char *[]; the userdata holding it is pushed. */
static char **spawn_check_argv(lua_State *L, int idx) {
  luaL_checktype(L, idx, LUA_TTABLE);
  lua_Integer n = luaL_len(L, idx);
  luaL_argcheck(L, n >= 1, idx, "argv must hold at least the program name");
  luaL_argcheck(L, n < 100000, idx, "argv is too long");
  luaL_checkstack(L, (int)n + 4, "argv is too long");
  int base = lua_gettop(L) + 1;
  for (lua_Integer i = 1; i <= n; i++) {
    int t = lua_geti(L, idx, i); /* stays on the stack: anchored until copied */
    if (t != LUA_TSTRING && t != LUA_TNUMBER)
      luaL_error(L, "bad argument #%d to 'spawn' (argv[%d] must be a string, got %s)", idx,
                 (int)i, luaL_typename(L, -1));
    if (spawn_has_nul(L, -1))
      luaL_error(L, "bad argument #%d to 'spawn' (argv[%d] contains a NUL byte)", idx, (int)i);
  }
  char **argv = spawn_string_array(L, base, (int)n);
  lua_replace(L, base);
  lua_settop(L, base);
  return argv;
}

/* opts.env (the table at env, or nil): {NAME = "value" | false} merged over
   the inherited environment (or over nothing with clear). Pushes the holder
   userdata. */
static char **spawn_build_env(lua_State *L, int env, int clear) {
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
      if (lua_type(L, -2) != LUA_TSTRING || lua_rawlen(L, -2) == 0 || spawn_has_nul(L, -2) ||
          strchr(lua_tostring(L, -2), '=') != NULL)
        luaL_error(L, "bad option 'env' (keys must be variable names without '=' or NUL)");
      if (lua_type(L, -1) == LUA_TBOOLEAN && !lua_toboolean(L, -1)) {
        lua_pop(L, 1);
        continue;
      }
      if (lua_type(L, -1) != LUA_TSTRING && lua_type(L, -1) != LUA_TNUMBER)
        luaL_error(L, "bad option 'env' (value of %s must be a string or false)", lua_tostring(L, -2));
      if (spawn_has_nul(L, -1))
        luaL_error(L, "bad option 'env' (value of %s contains a NUL byte)", lua_tostring(L, -2));
      lua_pushfstring(L, "%s=%s", lua_tostring(L, -2), lua_tostring(L, -1));
      lua_insert(L, -3); /* entry below key and value */
      lua_pop(L, 1);
      n++;
      luaL_checkstack(L, 3, "environment is too large");
    }
  }
  return spawn_string_array(L, base, n);
}

/* The redirection value at stack index v (checked already): a path ("null"
   is /dev/null; say "./null" for a file of that name) or an open Lua file;
   -> fd >= 3, close-on-exec; -1 when absent; -2 with errno set on failure.
   Never raises, so no descriptor opened before it can leak. */
static int spawn_redirect_fd(lua_State *L, int v, int flags) {
  int fd = -1, t = lua_type(L, v);
  if (t == LUA_TSTRING) {
    const char *path = lua_tostring(L, v);
    fd = open(strcmp(path, "null") == 0 ? "/dev/null" : path, flags | O_CLOEXEC, 0666);
  } else if (t != LUA_TNIL) {
    luaL_Stream *s = lua_touserdata(L, v);
    if (s->closef == NULL || s->f == NULL) { /* closed since the check (by a finalizer?) */
      errno = EBADF;
      return -2;
    }
    fflush(s->f);
    fd = fcntl(fileno(s->f), F_DUPFD_CLOEXEC, 3);
  }
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
static void spawn_child_main(int errfd, const int fds[3], const char *cwd, int deathsig,
                                pid_t parent, char **argv, char **envp, const char *argv0) {
  const char *file = argv[0];
  if (argv0 != NULL) argv[0] = (char *)argv0; /* this process's own copy (after fork) */
  spawn_exec_error e = {0, 0};
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
#if VMLAB_HAVE_EXECVPE
  execvpe(file, argv, envp);
#else
  /* no execvpe(3): this is the child after fork, so its environ may change */
  environ = envp;
  execvp(file, argv);
#endif
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
   to it when the spawning thread ends. argv0: the name the program sees as
   its argv[0] (ps, pgrep -f, htop), prog is still what is run.
   See fork(2), execvp(3), prctl(2). */
static int spawn_process(lua_State *L) {
  static const char *const known[] = {"cwd", "env", "clear_env", "stdin", "stdout",
                                      "stderr", "death_signal", "argv0", NULL};
  static const char *const names[3] = {"stdin", "stdout", "stderr"};
  static const char *const open_what[3] = {"open stdin", "open stdout", "open stderr"};
  lua_settop(L, 2);
  char **argv = spawn_check_argv(L, 1); /* holder at 3 */
  vmlab_check_known_fields(L, 2, known);
  if (lua_isnil(L, 2)) {
    lua_newtable(L);
    lua_replace(L, 2);
  }
  /* Each option is read once (an __index metamethod may answer differently
     each time) and its value kept on the stack while it is used. */
  const char *cwd = vmlab_push_string_field(L, 2, "cwd"); /* at 4 */
  const char *argv0 = vmlab_push_string_field(L, 2, "argv0"); /* at 5: kept while used */
  int clear = vmlab_opt_bool_field(L, 2, "clear_env", 0);
  lua_getfield(L, 2, "death_signal");
  int deathsig = vmlab_to_signal(L, -1, 0, "death_signal");
  lua_pop(L, 1);
  int env = lua_gettop(L) + 1; /* 5 */
  lua_getfield(L, 2, "env");
  if (!lua_isnil(L, env) && !lua_istable(L, env))
    luaL_error(L, "bad option 'env' (table expected, got %s)", luaL_typename(L, env));
  int redir = lua_gettop(L) + 1; /* 6, 7, 8: stdin, stdout, stderr */
  for (int i = 0; i < 3; i++) { /* check all before opening any: no fd leaks on a raise */
    int t = lua_getfield(L, 2, names[i]);
    luaL_Stream *s = t == LUA_TUSERDATA ? luaL_testudata(L, -1, LUA_FILEHANDLE) : NULL;
    if (t != LUA_TNIL && t != LUA_TSTRING && (s == NULL || s->closef == NULL || s->f == NULL))
      luaL_error(L, "bad option '%s' (path or open file expected, got %s)", names[i],
                 s != NULL ? "a closed file" : luaL_typename(L, -1));
    if (t == LUA_TSTRING && spawn_has_nul(L, -1))
      luaL_error(L, "bad option '%s' (path contains a NUL byte)", names[i]);
  }
  int want_env = !lua_isnil(L, env) || clear;
  char **envp = want_env ? spawn_build_env(L, env, clear) : environ;
  if (!want_env) lua_pushnil(L); /* keep the stack shape: holder at 9 */
  vmlab_child *c = vmlab_child_new(L);

  int fds[3] = {-1, -1, -1}, pfd[2] = {-1, -1}, err = 0;
  const char *what = NULL;
  for (int i = 0; i < 3 && what == NULL; i++) {
    int flags = i == 0 ? O_RDONLY : O_WRONLY | O_CREAT | O_TRUNC;
    fds[i] = spawn_redirect_fd(L, redir + i, flags);
    if (fds[i] == -2) {
      err = errno;
      what = open_what[i];
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
    if (pid == 0) spawn_child_main(pfd[1], fds, cwd, deathsig, parent, argv, envp, argv0);
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
    spawn_exec_error e;
    ssize_t got;
    do got = read(pfd[0], &e, sizeof e);
    while (got < 0 && errno == EINTR);
    if (got == (ssize_t)sizeof e) { /* exec never happened: reap, report */
      vmlab_child_waitpid(c, 0);
      err = e.err;
      what = spawn_stage_names[e.stage >= 0 && e.stage < 4 ? e.stage : 0];
    }
  }
  if (pfd[0] >= 0) close(pfd[0]);
  if (what != NULL) return vmlab_push_syserror(L, what, err);
  return 1;
}

/* vm.exec({prog, args...}, {argv0=}) -> only on failure: nil, "exec: ...",
   errno. Replaces this process's program (same pid, descriptors, environment)
   with prog found on PATH; argv0 is the name it sees as argv[0] (default
   prog). Standard C streams are flushed first. See execvp(3). */
static int spawn_exec(lua_State *L) {
  static const char *const known[] = {"argv0", NULL};
  lua_settop(L, 2);
  char **argv = spawn_check_argv(L, 1); /* holder at 3 */
  vmlab_check_known_fields(L, 2, known);
  const char *argv0 = vmlab_push_string_field(L, 2, "argv0"); /* at 4 */
  const char *file = argv[0];
  if (argv0 != NULL) argv[0] = (char *)argv0;
  fflush(NULL);
  execvp(file, argv);
  int err = errno;
  argv[0] = (char *)file;
  return vmlab_push_syserror(L, "exec", err);
}

void vmlab_open_spawn(lua_State *L) {
  lua_pushcfunction(L, spawn_process);
  lua_setfield(L, -2, "spawn");
  lua_pushcfunction(L, spawn_exec);
  lua_setfield(L, -2, "exec");
}
