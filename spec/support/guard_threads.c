/*
 * guard_threads.c - two threads, each with its own lua_State, catch faults
 * through vmlab at the same time (the fault guard's state is per thread),
 * and each thread that used the guard has an alternate signal stack.
 *
 *   cc -std=gnu11 -I/usr/include/lua5.4 guard_threads.c -llua5.4 -pthread
 *   VMLAB_BUILD=build ./a.out [rounds]     -> prints "ok <faults caught>", exit 0
 *
 * Built and run by spec/safety_guard_threads_spec.lua.
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

static long rounds = 20000;
static pthread_barrier_t start;

/* Each round: a read and a write of a PROT_NONE page (both raise, from the
   guard), then a read and a write of a readable page (both work). */
static const char *const script =
    "local vm = require 'vmlab.core'\n"
    "local rounds, id = ...\n"
    "local none = assert(vm.mmap(vm.page_size, { prot = 'none' }))\n"
    "local rw = assert(vm.mmap(vm.page_size))\n"
    "local caught = 0\n"
    "for i = 1, rounds do\n"
    "  local ok, err = pcall(none.read, none, 0, 1)\n"
    "  assert(not ok and err:find('SIGSEGV', 1, true), err)\n"
    "  ok, err = pcall(none.fill, none, 1)\n"
    "  assert(not ok and err:find('SIGSEGV', 1, true), err)\n"
    "  caught = caught + 2\n"
    "  rw:write(0, string.pack('<i8', i * 2 + id))\n"
    "  assert(string.unpack('<i8', rw:read(0, 8)) == i * 2 + id)\n"
    "  local okp, out = vm.probe(none.address, 'read')\n"
    "  assert(okp == false and out.signal_name == 'SIGSEGV')\n"
    "  caught = caught + 1\n"
    "end\n"
    "return caught\n";

typedef struct job {
  int id;
  long caught;
  int altstack; /* the thread has an alternate signal stack after using the guard */
  char error[512];
} job;

static void *run(void *arg) {
  job *j = arg;
  lua_State *L = luaL_newstate();
  luaL_openlibs(L);
  const char *build = getenv("VMLAB_BUILD");
  lua_getglobal(L, "package");
  lua_pushfstring(L, "%s/?.so", build ? build : "build");
  lua_setfield(L, -2, "cpath");
  lua_pop(L, 1);
  pthread_barrier_wait(&start);
  if (luaL_loadstring(L, script) != LUA_OK) {
    snprintf(j->error, sizeof j->error, "%s", lua_tostring(L, -1));
  } else {
    lua_pushinteger(L, rounds);
    lua_pushinteger(L, j->id);
    if (lua_pcall(L, 2, 1, 0) != LUA_OK)
      snprintf(j->error, sizeof j->error, "%s", lua_tostring(L, -1));
    else
      j->caught = (long)lua_tointeger(L, -1);
  }
  stack_t ss;
  j->altstack = sigaltstack(NULL, &ss) == 0 && !(ss.ss_flags & SS_DISABLE) && ss.ss_size > 0;
  lua_close(L);
  return NULL;
}

int main(int argc, char **argv) {
  if (argc > 1) rounds = atol(argv[1]);
  job jobs[2];
  pthread_t th[2];
  memset(jobs, 0, sizeof jobs);
  pthread_barrier_init(&start, NULL, 2);
  for (int i = 0; i < 2; i++) {
    jobs[i].id = i;
    if (pthread_create(&th[i], NULL, run, &jobs[i]) != 0) {
      fprintf(stderr, "pthread_create failed\n");
      return 2;
    }
  }
  for (int i = 0; i < 2; i++) pthread_join(th[i], NULL);
  int status = 0;
  for (int i = 0; i < 2; i++) {
    if (jobs[i].error[0] != '\0') {
      fprintf(stderr, "thread %d: %s\n", i, jobs[i].error);
      status = 1;
    } else if (jobs[i].caught != 3 * rounds) {
      fprintf(stderr, "thread %d: caught %ld faults, expected %ld\n", i, jobs[i].caught, 3 * rounds);
      status = 1;
    } else if (!jobs[i].altstack) {
      fprintf(stderr, "thread %d: no alternate signal stack after using the guard\n", i);
      status = 1;
    }
  }
  if (status == 0) printf("ok %ld\n", jobs[0].caught + jobs[1].caught);
  return status;
}
