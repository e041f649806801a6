/*
 * ipc.c - the comparison of IPC methods of lab section 14, measured in C:
 * round-trip latency and one-way bandwidth between this process and a
 * forked child, at equal message sizes, for shared memory (waiting in
 * futex(2), or spinning), a pipe, a Unix stream socket and a POSIX message
 * queue, both processes on one core or on two. The loops run in C so the
 * numbers are the mechanism's, not the interpreter's. See pipe(2),
 * socketpair(2), mq_overview(7), futex(2), sched_setaffinity(2).
 *
 * Every message starts with a command byte: 1 data, 0 stop. The child echoes
 * data messages (round trips), then drains a stream of messages and
 * acknowledges the stop message, then _exit()s. It never touches Lua.
 */
#include "vmlab.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <mqueue.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>


enum { IPC_SHM_FUTEX, IPC_SHM_SPIN, IPC_PIPE, IPC_SOCKET, IPC_MQUEUE };
static const char *const ipc_methods[] = {"shm-futex", "shm-spin", "pipe", "unix-socket", "mqueue", NULL};

#define IPC_SLOTS 8u
#define IPC_WARMUP 20

/* Control words of the shared-memory methods, one cache line each. */
typedef struct ipc_word {
  _Atomic uint32_t v;
  char pad[60];
} ipc_word;
typedef struct ipc_ctl {
  ipc_word ping, pong, head, tail;                     /* sequence numbers */
  ipc_word ping_waiting, pong_waiting, head_waiting, tail_waiting; /* a sleeper is in FUTEX_WAIT */
} ipc_ctl;

typedef struct ipc_chan {
  int method, spin;
  size_t msg;
  int down[2], up[2]; /* pipe: parent->child, child->parent; socket: down[0] parent, down[1] child */
  mqd_t mq_down, mq_up;
  ipc_ctl *ctl;
  unsigned char *ping, *pong, *ring;
  size_t map_size;
} ipc_chan;

/* ------------------------------------------------------------------ */
/* Moving bytes                                                        */

static int ipc_write_full(int fd, const unsigned char *b, size_t n) {
  while (n > 0) {
    ssize_t k = write(fd, b, n);
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) return -1;
    b += k, n -= (size_t)k;
  }
  return 0;
}

static int ipc_read_full(int fd, unsigned char *b, size_t n) {
  while (n > 0) {
    ssize_t k = read(fd, b, n);
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) return -1;
    b += k, n -= (size_t)k;
  }
  return 0;
}

static inline void ipc_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

/* The child, seen from the parent (0 in the child): a wait that lasts checks
   it is still there, so a killed child ends the measurement, not the caller. */
static pid_t ipc_peer;
static int ipc_peer_gone, ipc_peer_status;

static int ipc_peer_alive(void) {
  if (ipc_peer <= 0) return 1; /* the child: PR_SET_PDEATHSIG covers the parent */
  if (!ipc_peer_gone && waitpid(ipc_peer, &ipc_peer_status, WNOHANG) == ipc_peer) ipc_peer_gone = 1;
  return !ipc_peer_gone;
}

/* Wait until the word differs from old, into *v: spin, or sleep in
   FUTEX_WAIT after saying so in *waiting (so the other side wakes only a
   real sleeper). 0, or -1 when the peer is gone. */
static int ipc_await(ipc_word *w, uint32_t old, ipc_word *waiting, int spin, uint32_t *v) {
  unsigned long spins = 0;
  while ((*v = atomic_load(&w->v)) == old) {
    if (spin) {
      ipc_relax();
      if ((++spins & 0xfffff) == 0 && !ipc_peer_alive()) return -1;
      continue;
    }
    atomic_store(&waiting->v, 1);
    if (atomic_load(&w->v) == old) {
      struct timespec ts = {0, 100000000};
      syscall(SYS_futex, &w->v, FUTEX_WAIT, old, &ts, NULL, 0);
    }
    atomic_store(&waiting->v, 0);
    if (atomic_load(&w->v) == old && !ipc_peer_alive()) return -1;
  }
  return 0;
}

static void ipc_post(ipc_word *w, uint32_t v, ipc_word *waiting, int spin) {
  atomic_store(&w->v, v);
  if (!spin && atomic_load(&waiting->v)) syscall(SYS_futex, &w->v, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
}

/* A message queue send or receive that gives up when the peer is gone. */
static int ipc_mq_io(ipc_chan *c, int sending, mqd_t q, unsigned char *b, size_t n) {
  for (;;) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += 100000000;
    if (ts.tv_nsec >= 1000000000) ts.tv_sec++, ts.tv_nsec -= 1000000000;
    ssize_t k = sending ? mq_timedsend(q, (const char *)b, n, 0, &ts) : mq_timedreceive(q, (char *)b, c->msg, NULL, &ts);
    if (k >= 0) return sending || k == (ssize_t)n ? 0 : -1;
    if (errno == EINTR || (errno == ETIMEDOUT && ipc_peer_alive())) continue;
    return -1;
  }
}

/* Message-based methods: side 0 is the parent, 1 the child. */
static int ipc_send(ipc_chan *c, int side, unsigned char *b, size_t n) {
  if (c->method == IPC_MQUEUE) return ipc_mq_io(c, 1, side ? c->mq_up : c->mq_down, b, n);
  if (c->method == IPC_SOCKET) return ipc_write_full(c->down[side], b, n);
  return ipc_write_full(side ? c->up[1] : c->down[1], b, n);
}

static int ipc_recv(ipc_chan *c, int side, unsigned char *b, size_t n) {
  if (c->method == IPC_MQUEUE) return ipc_mq_io(c, 0, side ? c->mq_down : c->mq_up, b, n);
  if (c->method == IPC_SOCKET) return ipc_read_full(c->down[side], b, n);
  return ipc_read_full(side ? c->down[0] : c->up[0], b, n);
}

static int ipc_is_shm(const ipc_chan *c) { return c->method == IPC_SHM_FUTEX || c->method == IPC_SHM_SPIN; }

/* ------------------------------------------------------------------ */
/* The child                                                           */

static void ipc_pin(int cpu) {
  if (cpu < 0) return;
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  sched_setaffinity(0, sizeof set, &set);
}

static void ipc_child(ipc_chan *c, int cpu, pid_t parent) {
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() != parent) _exit(3);
  ipc_peer = 0;
  if (c->down[1] >= 0 && c->method == IPC_PIPE) close(c->down[1]), close(c->up[0]);
  if (c->method == IPC_SOCKET) close(c->down[0]);
  ipc_pin(cpu);
  unsigned char *b = malloc(c->msg);
  if (b == NULL) _exit(2);
  ipc_ctl *k = c->ctl;
  uint32_t seen = 0;
  for (;;) { /* round trips: echo until the stop message */
    if (ipc_is_shm(c)) {
      ipc_await(&k->ping, seen, &k->ping_waiting, c->spin, &seen);
      memcpy(b, c->ping, c->msg);
      if (b[0] == 0) break;
      memcpy(c->pong, b, c->msg);
      ipc_post(&k->pong, seen, &k->pong_waiting, c->spin);
    } else {
      if (ipc_recv(c, 1, b, c->msg) != 0) _exit(1);
      if (b[0] == 0) break;
      if (ipc_send(c, 1, b, c->msg) != 0) _exit(1);
    }
  }
  uint32_t tail = 0, head = 0;
  for (;;) { /* the stream: take messages until the stop message */
    if (ipc_is_shm(c)) {
      if (head == tail) ipc_await(&k->head, tail, &k->head_waiting, c->spin, &head);
      memcpy(b, c->ring + (size_t)(tail % IPC_SLOTS) * c->msg, c->msg);
      ipc_post(&k->tail, ++tail, &k->tail_waiting, c->spin);
      if (b[0] == 0) break;
    } else {
      if (ipc_recv(c, 1, b, c->msg) != 0) _exit(1);
      if (b[0] == 0) break;
    }
  }
  if (!ipc_is_shm(c)) { /* acknowledge the end of the stream */
    b[0] = 0;
    if (ipc_send(c, 1, b, 1) != 0) _exit(1);
  }
  _exit(0);
}

/* ------------------------------------------------------------------ */
/* The parent                                                          */

typedef struct ipc_opts {
  size_t msg;
  long round_trips, stream_messages;
  double budget;
  int cpu_parent, cpu_child;
} ipc_opts;

typedef struct ipc_result {
  long round_trips, stream_messages;
  double rt_seconds, stream_seconds;
} ipc_result;

/* One round trip; cmd 1 data, 0 stop (no answer). 0 or -1. */
static int ipc_round_trip(ipc_chan *c, unsigned char *out, unsigned char *in, uint32_t seq, int cmd) {
  out[0] = (unsigned char)cmd;
  if (ipc_is_shm(c)) {
    ipc_ctl *k = c->ctl;
    memcpy(c->ping, out, c->msg);
    ipc_post(&k->ping, seq, &k->ping_waiting, c->spin);
    if (cmd == 0) return 0;
    uint32_t v;
    if (ipc_await(&k->pong, seq - 1, &k->pong_waiting, c->spin, &v) != 0) return -1;
    memcpy(in, c->pong, c->msg);
    return 0;
  }
  if (ipc_send(c, 0, out, c->msg) != 0) return -1;
  if (cmd == 0) return 0;
  return ipc_recv(c, 0, in, c->msg);
}

static int ipc_stream_one(ipc_chan *c, unsigned char *out, uint32_t *head, int cmd) {
  out[0] = (unsigned char)cmd;
  if (!ipc_is_shm(c)) return ipc_send(c, 0, out, c->msg);
  ipc_ctl *k = c->ctl;
  uint32_t tail = atomic_load(&k->tail.v);
  while (*head - tail >= IPC_SLOTS)
    if (ipc_await(&k->tail, tail, &k->tail_waiting, c->spin, &tail) != 0) return -1;
  memcpy(c->ring + (size_t)(*head % IPC_SLOTS) * c->msg, out, c->msg);
  ipc_post(&k->head, ++*head, &k->head_waiting, c->spin);
  return 0;
}

/* Run both phases against the forked child; 0 or -1 (the child went away). */
static int ipc_parent(ipc_chan *c, const ipc_opts *o, ipc_result *res) {
  unsigned char *out = calloc(1, c->msg), *in = calloc(1, c->msg);
  int rc = -1;
  if (out == NULL || in == NULL) goto done;
  memset(out + 1, 0x5a, c->msg - 1);
  uint32_t seq = 0;
  for (int i = 0; i < IPC_WARMUP; i++)
    if (ipc_round_trip(c, out, in, ++seq, 1) != 0) goto done;
  double t0 = vmlab_now(), t = t0;
  long n = 0;
  while (n < o->round_trips && (n % 16 != 0 || (t = vmlab_now()) - t0 < o->budget)) {
    if (ipc_round_trip(c, out, in, ++seq, 1) != 0) goto done;
    n++;
  }
  res->rt_seconds = vmlab_now() - t0;
  res->round_trips = n;
  if (ipc_round_trip(c, out, in, ++seq, 0) != 0) goto done;

  uint32_t head = 0;
  t0 = vmlab_now();
  n = 0;
  while (n < o->stream_messages && (n % 16 != 0 || (t = vmlab_now()) - t0 < o->budget)) {
    if (ipc_stream_one(c, out, &head, 1) != 0) goto done;
    n++;
  }
  if (ipc_stream_one(c, out, &head, 0) != 0) goto done;
  if (ipc_is_shm(c)) { /* all taken, the stop message too */
    uint32_t tail = atomic_load(&c->ctl->tail.v);
    while (tail != head)
      if (ipc_await(&c->ctl->tail, tail, &c->ctl->tail_waiting, c->spin, &tail) != 0) goto done;
  } else if (ipc_recv(c, 0, in, 1) != 0) {
    goto done;
  }
  res->stream_seconds = vmlab_now() - t0;
  res->stream_messages = n;
  rc = 0;
done:
  free(out);
  free(in);
  return rc;
}

static void ipc_close(ipc_chan *c) {
  for (int i = 0; i < 2; i++) {
    if (c->down[i] >= 0) close(c->down[i]);
    if (c->up[i] >= 0) close(c->up[i]);
  }
  if (c->mq_down != (mqd_t)-1) mq_close(c->mq_down);
  if (c->mq_up != (mqd_t)-1) mq_close(c->mq_up);
  if (c->ctl != NULL) munmap(c->ctl, c->map_size);
}

/* Set up the channel; NULL or the name of the call that failed. */
static const char *ipc_open(ipc_chan *c) {
  if (ipc_is_shm(c)) {
    size_t m = (c->msg + 63) / 64 * 64;
    c->map_size = sizeof(ipc_ctl) + (2 + IPC_SLOTS) * m;
    void *p = mmap(NULL, c->map_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return "mmap";
    c->ctl = p;
    c->ping = (unsigned char *)p + sizeof(ipc_ctl);
    c->pong = c->ping + m;
    c->ring = c->pong + m;
    return NULL;
  }
  if (c->method == IPC_PIPE) {
    if (pipe2(c->down, O_CLOEXEC) != 0) return "pipe2";
    if (pipe2(c->up, O_CLOEXEC) != 0) return "pipe2";
    return NULL;
  }
  if (c->method == IPC_SOCKET) return socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, c->down) ? "socketpair" : NULL;
  /* POSIX message queues: RLIMIT_MSGQUEUE (800 KB by default) bounds both queues together */
  static unsigned serial;
  long depth = (long)(300000 / c->msg);
  struct mq_attr a = {.mq_maxmsg = depth < 1 ? 1 : depth > 10 ? 10 : depth, .mq_msgsize = (long)c->msg};
  char name[64];
  snprintf(name, sizeof name, "/vmlab-ipc-%d-%u", (int)getpid(), serial++);
  c->mq_down = mq_open(name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600, &a);
  if (c->mq_down == (mqd_t)-1) return "mq_open";
  mq_unlink(name);
  snprintf(name, sizeof name, "/vmlab-ipc-%d-%u", (int)getpid(), serial++);
  c->mq_up = mq_open(name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600, &a);
  if (c->mq_up == (mqd_t)-1) return "mq_open";
  mq_unlink(name);
  return NULL;
}

static int ipc_opt_cpu(lua_State *L, const char *k) {
  lua_Integer v = vmlab_opt_int_field(L, 2, k, -1);
  if (v < -1 || v >= CPU_SETSIZE) luaL_error(L, "bad option '%s' (a CPU number, or -1 for no pinning)", k);
  return (int)v;
}

/* vm.ipc_measure(method, {message_bytes=64, round_trips=100000, stream_messages=100000,
   budget=0.25, cpu_parent=-1, cpu_child=-1}) -> {method=, message_bytes=, round_trips=,
   round_trip_ns=, stream_messages=, bytes_per_second=}, or nil, msg, errno.
   method: "shm-futex" | "shm-spin" | "pipe" | "unix-socket" | "mqueue". Each phase stops at
   its count or after budget seconds; cpu_* pin the two processes (-1: no pinning). */
static int ipc_measure(lua_State *L) {
  static const char *const known[] = {"message_bytes", "round_trips", "stream_messages", "budget",
                                      "cpu_parent", "cpu_child", NULL};
  ipc_chan c;
  memset(&c, 0, sizeof c);
  c.method = vmlab_check_option(L, 1, NULL, ipc_methods);
  vmlab_check_known_fields(L, 2, known);
  ipc_opts o;
  lua_Integer msg = vmlab_opt_int_field(L, 2, "message_bytes", 64);
  if (msg < 1 || msg > (1 << 24)) luaL_error(L, "bad option 'message_bytes' (must be 1 .. 16 MiB)");
  o.msg = (size_t)msg;
  o.round_trips = (long)vmlab_opt_int_range_field(L, 2, "round_trips", 100000, 1, LONG_MAX);
  o.stream_messages = (long)vmlab_opt_int_range_field(L, 2, "stream_messages", 100000, 1, LONG_MAX);
  /* The budget is checked as a number before it becomes anything else:
     converting 1e300 or NaN to an integer is undefined behaviour. */
  double budget = 0.25;
  if (lua_istable(L, 2)) {
    int t = lua_getfield(L, 2, "budget");
    if (t != LUA_TNIL && t != LUA_TNUMBER)
      luaL_error(L, "bad option 'budget' (number of seconds expected, got %s)", luaL_typename(L, -1));
    if (t == LUA_TNUMBER) budget = (double)lua_tonumber(L, -1);
    lua_pop(L, 1);
  }
  if (!(budget >= 0.001 && budget <= 600)) luaL_error(L, "bad option 'budget' (seconds, 0.001 .. 600)");
  o.budget = budget;
  o.cpu_parent = ipc_opt_cpu(L, "cpu_parent");
  o.cpu_child = ipc_opt_cpu(L, "cpu_child");
  c.msg = o.msg;
  c.spin = c.method == IPC_SHM_SPIN;
  c.down[0] = c.down[1] = c.up[0] = c.up[1] = -1;
  c.mq_down = c.mq_up = (mqd_t)-1;

  const char *failed = ipc_open(&c);
  if (failed != NULL) {
    int err = errno;
    ipc_close(&c);
    return vmlab_push_syserror(L, failed, err);
  }
  cpu_set_t saved;
  int have_saved = sched_getaffinity(0, sizeof saved, &saved) == 0;
  pid_t parent = getpid();
  fflush(NULL);
  pid_t pid = fork();
  if (pid < 0) {
    int err = errno;
    ipc_close(&c);
    return vmlab_push_syserror(L, "fork", err);
  }
  if (pid == 0) ipc_child(&c, o.cpu_child, parent);
  ipc_peer = pid;
  ipc_peer_gone = 0;
  if (c.method == IPC_PIPE) { /* keep only our ends: a dead child then reads as end of file */
    close(c.down[0]), close(c.up[1]);
    c.down[0] = c.up[1] = -1;
  } else if (c.method == IPC_SOCKET) {
    close(c.down[1]);
    c.down[1] = -1;
  }
  struct sigaction ign, old_pipe; /* a dead child makes write(2) fail with EPIPE, not kill us */
  memset(&ign, 0, sizeof ign);
  ign.sa_handler = SIG_IGN;
  sigaction(SIGPIPE, &ign, &old_pipe);
  ipc_pin(o.cpu_parent);
  ipc_result res;
  memset(&res, 0, sizeof res);
  int rc = ipc_parent(&c, &o, &res);
  if (rc != 0 && !ipc_peer_gone) kill(pid, SIGKILL);
  int status = ipc_peer_status;
  if (!ipc_peer_gone)
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
  ipc_peer = 0;
  sigaction(SIGPIPE, &old_pipe, NULL);
  if (have_saved) sched_setaffinity(0, sizeof saved, &saved);
  ipc_close(&c);
  if (rc != 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    lua_pushnil(L);
    if (WIFSIGNALED(status))
      lua_pushfstring(L, "ipc %s: the child was killed by %s", ipc_methods[c.method],
                      vmlab_signal_name(WTERMSIG(status)) ? vmlab_signal_name(WTERMSIG(status)) : "a signal");
    else
      lua_pushfstring(L, "ipc %s: the child failed (exit code %d)", ipc_methods[c.method],
                      WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    lua_pushinteger(L, EPIPE);
    return 3;
  }
  lua_createtable(L, 0, 8);
  lua_pushstring(L, ipc_methods[c.method]);
  lua_setfield(L, -2, "method");
  lua_pushinteger(L, (lua_Integer)o.msg);
  lua_setfield(L, -2, "message_bytes");
  lua_pushinteger(L, res.round_trips);
  lua_setfield(L, -2, "round_trips");
  lua_pushnumber(L, res.round_trips > 0 ? res.rt_seconds * 1e9 / (double)res.round_trips : 0);
  lua_setfield(L, -2, "round_trip_ns");
  lua_pushinteger(L, res.stream_messages);
  lua_setfield(L, -2, "stream_messages");
  lua_pushnumber(L, res.stream_seconds > 0 ? (double)res.stream_messages * (double)o.msg / res.stream_seconds : 0);
  lua_setfield(L, -2, "bytes_per_second");
  return 1;
}

void vmlab_open_ipc(lua_State *L) {
  lua_pushcfunction(L, ipc_measure);
  lua_setfield(L, -2, "ipc_measure");
}
