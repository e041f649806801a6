/*
 * sum.c - the C half of the number-summing protocol (`vmlab sum`): the line
 * summer that turns text into one result line per input line, reading input
 * straight into a region with a timeout, vm.now(), and a flag-setting
 * handler for SIGINT/SIGTERM/SIGHUP so the protocol can stop and clean up
 * instead of dying.
 *
 * The summer is a streaming parser: text arrives in pieces of any size (a
 * line, or a token, may be cut anywhere) and each completed line gives
 *   the exact 64-bit integer sum      "42"
 *   a float sum when any token has a fraction or an exponent   "2.5", "-1000.0"
 *   or an error naming the bad token and its column
 *      "error: 'abc' at column 7 is not a number"
 *      "error: adding '1' at column 21 overflows the 64-bit integer sum"
 * Tokens are separated by spaces and tabs; "\r\n" ends a line like "\n".
 * Columns count characters (UTF-8 sequences), from 1.
 */
#include "vmlab.h"

#include <errno.h>
#include <math.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#define SUM_MT "vmlab.LineSummer"


typedef struct sum_state {
  int64_t isum;         /* exact integer part of the current line */
  double fsum;          /* fractional tokens of the current line */
  int has_float;        /* the line's sum is a float */
  int line_open;        /* bytes of the current line have been seen */
  int in_token;         /* carry holds a token cut by the end of a piece */
  char err[200];        /* first error of the current line, or "" */
  int64_t col;          /* characters of the current line consumed */
  int64_t tok_col;      /* column of the carried token */
  int64_t line_numbers; /* numbers summed in the current line */
  char *carry;          /* the carried token (malloc'd) */
  size_t carry_len, carry_cap;
  int64_t lines, numbers, errors; /* totals */
} sum_state;

static sum_state *sum_check(lua_State *L) { return luaL_checkudata(L, 1, SUM_MT); }

static int sum_is_delim(unsigned char c) { return c == ' ' || c == '\t' || c == '\n'; }

/* Characters (not UTF-8 continuation bytes) in p[0..n). */
static int64_t sum_chars(const unsigned char *p, size_t n) {
  int64_t c = 0;
  for (size_t i = 0; i < n; i++) c += (p[i] & 0xC0) != 0x80;
  return c;
}

/* The token as a person can read it on one line: at most 40 bytes, control
   bytes escaped. */
static void sum_show(char *out, size_t cap, const unsigned char *p, size_t n) {
  size_t o = 0, shown = n > 40 ? 40 : n;
  while (shown > 0 && shown < n && (p[shown] & 0xC0) == 0x80) shown--; /* whole characters */
  for (size_t i = 0; i < shown && o + 5 < cap; i++) {
    unsigned char c = p[i];
    if (c == '\r') o += (size_t)snprintf(out + o, cap - o, "\\r");
    else if (c < 0x20 || c == 0x7f || c == '\'') o += (size_t)snprintf(out + o, cap - o, "\\x%02x", c);
    else out[o++] = (char)c;
  }
  if (shown < n && o + 4 < cap) memcpy(out + o, "...", 3), o += 3;
  out[o < cap ? o : cap - 1] = '\0';
}

static void sum_fail(sum_state *st, const char *pre, const unsigned char *p, size_t n, int64_t col,
                     const char *post) {
  char tok[180];
  sum_show(tok, sizeof tok, p, n);
  snprintf(st->err, sizeof st->err, "%s'%s' at column %lld %s", pre, tok, (long long)col, post);
}

/* [+-]?(d+(.d*)?|.d+)([eE][+-]?d+)? */
static int sum_is_decimal(const unsigned char *p, size_t n) {
  size_t i = 0, digits = 0;
  if (i < n && (p[i] == '+' || p[i] == '-')) i++;
  while (i < n && p[i] >= '0' && p[i] <= '9') i++, digits++;
  if (i < n && p[i] == '.') {
    i++;
    while (i < n && p[i] >= '0' && p[i] <= '9') i++, digits++;
  }
  if (digits == 0) return 0;
  if (i < n && (p[i] == 'e' || p[i] == 'E')) {
    i++;
    if (i < n && (p[i] == '+' || p[i] == '-')) i++;
    size_t e = 0;
    while (i < n && p[i] >= '0' && p[i] <= '9') i++, e++;
    if (e == 0) return 0;
  }
  return i == n;
}

/* One token of the current line. */
static void sum_token(sum_state *st, const unsigned char *p, size_t n, int64_t col) {
  if (st->err[0] != '\0') return; /* the line already failed: skip the rest */
  size_t i = 0;
  int neg = 0;
  if (p[0] == '+' || p[0] == '-') neg = p[0] == '-', i = 1;
  if (i < n) { /* integer fast path */
    uint64_t mag = 0;
    size_t j = i;
    int big = 0;
    for (; j < n && p[j] >= '0' && p[j] <= '9'; j++) {
      unsigned d = (unsigned)(p[j] - '0');
      if (mag > (UINT64_MAX - d) / 10) big = 1;
      else mag = mag * 10 + d;
    }
    if (j == n) {
      uint64_t limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
      if (big || mag > limit) {
        sum_fail(st, "", p, n, col, "does not fit in a 64-bit integer");
        return;
      }
      int64_t v = neg ? (int64_t)(0 - mag) : (int64_t)mag;
      if (__builtin_add_overflow(st->isum, v, &st->isum)) {
        sum_fail(st, "adding ", p, n, col, "overflows the 64-bit integer sum");
        return;
      }
      st->line_numbers++;
      return;
    }
  }
  if (!sum_is_decimal(p, n)) {
    sum_fail(st, "", p, n, col, "is not a number");
    return;
  }
  char small[128], *buf = n < sizeof small ? small : malloc(n + 1);
  if (buf == NULL) {
    snprintf(st->err, sizeof st->err, "out of memory reading a %zu-byte token at column %lld", n, (long long)col);
    return;
  }
  memcpy(buf, p, n);
  buf[n] = '\0';
  errno = 0;
  double v = strtod(buf, NULL);
  int range = errno == ERANGE && isinf(v);
  if (buf != small) free(buf);
  if (range) {
    sum_fail(st, "", p, n, col, "is out of the range of a double");
    return;
  }
  st->fsum += v;
  st->has_float = 1;
  st->line_numbers++;
  if (!isfinite(st->fsum)) sum_fail(st, "adding ", p, n, col, "overflows the floating-point sum");
}

/* Shortest "%.Ng" that reads back as d, with ".0" when it looks integral. */
static void sum_format_double(char *out, size_t cap, double d) {
  for (int prec = 15; prec <= 17; prec++) {
    snprintf(out, cap, "%.*g", prec, d);
    if (strtod(out, NULL) == d) break;
  }
  if (strpbrk(out, ".eEn") == NULL) strncat(out, ".0", cap - strlen(out) - 1);
}

/* Close the current line: add its result line to b. */
static void sum_end_line(sum_state *st, luaL_Buffer *b) {
  char tmp[256];
  size_t n;
  if (st->err[0] != '\0') {
    n = (size_t)snprintf(tmp, sizeof tmp, "error: %s\n", st->err);
    st->errors++;
  } else if (st->has_float) {
    sum_format_double(tmp, sizeof tmp - 1, (double)st->isum + st->fsum);
    n = strlen(tmp);
    tmp[n++] = '\n';
    st->numbers += st->line_numbers;
  } else { /* integer: by hand, it is the common case */
    char rev[24];
    size_t k = 0;
    uint64_t m = st->isum < 0 ? 0 - (uint64_t)st->isum : (uint64_t)st->isum;
    do rev[k++] = (char)('0' + m % 10), m /= 10;
    while (m != 0);
    n = 0;
    if (st->isum < 0) tmp[n++] = '-';
    while (k > 0) tmp[n++] = rev[--k];
    tmp[n++] = '\n';
    st->numbers += st->line_numbers;
  }
  luaL_addlstring(b, tmp, n < sizeof tmp ? n : sizeof tmp - 1);
  st->lines++;
  st->isum = 0;
  st->fsum = 0;
  st->has_float = 0;
  st->line_open = 0;
  st->err[0] = '\0';
  st->col = 0;
  st->line_numbers = 0;
}

static int sum_carry(sum_state *st, const unsigned char *p, size_t n) {
  if (st->carry_len + n > st->carry_cap) {
    size_t cap = st->carry_cap ? st->carry_cap : 64;
    while (cap < st->carry_len + n) cap *= 2;
    char *c = realloc(st->carry, cap);
    if (c == NULL) return 0;
    st->carry = c;
    st->carry_cap = cap;
  }
  memcpy(st->carry + st->carry_len, p, n);
  st->carry_len += n;
  return 1;
}

/* summer:feed(text) -> results, lines: the result lines ("sum\n" or
   "error: ...\n") of every line that text completes, and how many. */
static int sum_feed(lua_State *L) {
  sum_state *st = sum_check(L);
  size_t len;
  const unsigned char *s = (const unsigned char *)luaL_checklstring(L, 2, &len);
  int64_t before = st->lines;
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  size_t i = 0;
  if (len > 0) st->line_open = 1;
  if (st->in_token) { /* the rest of a token cut by the previous piece */
    size_t j = i;
    while (j < len && !sum_is_delim(s[j])) j++;
    if (!sum_carry(st, s + i, j - i)) return luaL_error(L, "not enough memory");
    st->col += sum_chars(s + i, j - i);
    if (j == len) goto done;
    size_t n = st->carry_len;
    if (s[j] == '\n' && n > 0 && st->carry[n - 1] == '\r') n--;
    if (n > 0) sum_token(st, (const unsigned char *)st->carry, n, st->tok_col);
    st->in_token = 0;
    st->carry_len = 0;
    i = j;
  }
  while (i < len) {
    unsigned char c = s[i];
    if (c == '\n') {
      sum_end_line(st, &b);
      st->line_open = i + 1 < len;
      i++;
      continue;
    }
    if (c == ' ' || c == '\t') {
      st->col++;
      i++;
      continue;
    }
    int64_t col = st->col + 1;
    size_t j = i;
    while (j < len && !sum_is_delim(s[j])) j++;
    st->col += sum_chars(s + i, j - i);
    if (j == len) { /* cut: keep it for the next piece */
      if (!sum_carry(st, s + i, j - i)) return luaL_error(L, "not enough memory");
      st->in_token = 1;
      st->tok_col = col;
      break;
    }
    size_t end = j;
    if (s[j] == '\n' && s[end - 1] == '\r') end--;
    if (end > i) sum_token(st, s + i, end - i, col);
    i = j;
  }
done:
  luaL_pushresult(&b);
  lua_pushinteger(L, (lua_Integer)(st->lines - before));
  return 2;
}

/* summer:finish() -> results, lines: the result of a last line that had no
   newline ("" and 0 when there is none). */
static int sum_finish(lua_State *L) {
  sum_state *st = sum_check(L);
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  int64_t before = st->lines;
  if (st->in_token) {
    size_t n = st->carry_len;
    if (n > 0 && st->carry[n - 1] == '\r') n--;
    if (n > 0) sum_token(st, (const unsigned char *)st->carry, n, st->tok_col);
    st->in_token = 0;
    st->carry_len = 0;
  }
  if (st->line_open) sum_end_line(st, &b);
  luaL_pushresult(&b);
  lua_pushinteger(L, (lua_Integer)(st->lines - before));
  return 2;
}

/* summer:stats() -> {lines=, numbers=, errors=} so far. */
static int sum_stats(lua_State *L) {
  sum_state *st = sum_check(L);
  lua_createtable(L, 0, 3);
  vmlab_set_int(L, "lines", st->lines);
  vmlab_set_int(L, "numbers", st->numbers);
  vmlab_set_int(L, "errors", st->errors);
  return 1;
}

/* methods through the method table (upvalue 1) */
static int sum_index(lua_State *L) {
  sum_check(L);
  lua_pushvalue(L, 2);
  lua_rawget(L, lua_upvalueindex(1));
  return 1;
}

/* "vmlab.LineSummer (12 lines, 120 numbers, 1 error line, a line in progress)" */
static int sum_tostring(lua_State *L) {
  sum_state *st = sum_check(L);
  lua_pushfstring(L, "vmlab.LineSummer (%I lines, %I numbers, %I error line%s%s)", (lua_Integer)st->lines,
                  (lua_Integer)st->numbers, (lua_Integer)st->errors, st->errors == 1 ? "" : "s",
                  st->line_open ? ", a line in progress" : "");
  return 1;
}

/* summer:pending() -> true while a line has started but not ended. */
static int sum_pending(lua_State *L) {
  lua_pushboolean(L, sum_check(L)->line_open);
  return 1;
}

static int sum_gc(lua_State *L) {
  sum_state *st = sum_check(L);
  free(st->carry);
  st->carry = NULL;
  st->carry_len = st->carry_cap = 0;
  return 0;
}

/* vm.line_summer() -> a LineSummer (see the top of sum.c). */
static int sum_new(lua_State *L) {
  sum_state *st = lua_newuserdatauv(L, sizeof *st, 0);
  memset(st, 0, sizeof *st);
  luaL_setmetatable(L, SUM_MT);
  return 1;
}

/* ------------------------------------------------------------------ */
/* Input                                                               */

/* r:read_from(fd, off, len, timeout_s) -> n (0 at end of file); false,
   "timeout" | "interrupted"; or nil, msg, errno. One read(2) of at most len
   bytes into the region at off, once fd is readable (poll(2), up to
   timeout_s; none waits for ever): it returns what is there, not a full
   buffer, so a pause in the input is seen at once. */
static int sum_read_from(lua_State *L) {
  vmlab_region *r = vmlab_check_open(L, 1);
  lua_Integer fd = luaL_checkinteger(L, 2);
  luaL_argcheck(L, fd >= 0 && fd <= INT32_MAX, 2, "fd must be a file descriptor number");
  size_t off, len;
  vmlab_check_range(L, 3, 4, r->size, &off, &len);
  int ms = -1;
  if (!lua_isnoneornil(L, 5)) {
    lua_Number t = luaL_checknumber(L, 5);
    luaL_argcheck(L, t >= 0 && t < 2e6, 5, "timeout must be a number of seconds >= 0");
    ms = (int)ceil(t * 1000.0);
  }
  struct pollfd pfd = {.fd = (int)fd, .events = POLLIN};
  int rc = poll(&pfd, 1, ms);
  int err = errno;
  if (rc == 0 || (rc < 0 && err == EINTR)) {
    lua_pushboolean(L, 0);
    lua_pushstring(L, rc == 0 ? "timeout" : "interrupted");
    return 2;
  }
  if (rc < 0) return vmlab_push_syserror(L, "poll", err);
  ssize_t n = read((int)fd, r->addr + off, len);
  err = errno;
  if (n < 0 && (err == EINTR || err == EAGAIN)) {
    lua_pushboolean(L, 0);
    lua_pushstring(L, err == EINTR ? "interrupted" : "timeout");
    return 2;
  }
  if (n < 0) return vmlab_push_syserror(L, "read", err);
  lua_pushinteger(L, (lua_Integer)n);
  return 1;
}

/* ------------------------------------------------------------------ */
/* Stopping on a signal                                                */

static volatile sig_atomic_t sum_caught_sig = 0;
static struct sigaction sum_saved[NSIG];
static unsigned char sum_have_saved[NSIG];

static void sum_on_signal(int sig) { sum_caught_sig = sig; }

/* The signal given by number or name ("INT", "SIGINT", "sigint") at stack
   index idx; errors name argument arg. */
static int sum_check_signal(lua_State *L, int idx, int arg) {
  int sig = -1;
  if (lua_type(L, idx) == LUA_TNUMBER) {
    int isint = 0;
    lua_Integer n = lua_tointegerx(L, idx, &isint);
    if (isint && n > 0 && n < NSIG) sig = (int)n;
  } else if (lua_type(L, idx) == LUA_TSTRING) {
    sig = vmlab_signal_number(lua_tostring(L, idx));
  }
  if (sig < 0) luaL_argerror(L, arg, lua_pushfstring(L, "unknown signal '%s'", luaL_tolstring(L, idx, NULL)));
  if (sig == SIGKILL || sig == SIGSTOP || sig == SIGSEGV || sig == SIGBUS)
    luaL_argerror(L, arg, "SIGKILL, SIGSTOP, SIGSEGV and SIGBUS cannot be caught here");
  return sig;
}

/* vm.signal_catch(sig or {sig, ...}) -> true, or nil, msg, errno: from now on
   these signals only set a flag (read with vm.signal_caught) and interrupt a
   blocking wait (no SA_RESTART), so the program can stop and clean up.
   See sigaction(2). */
static int sum_signal_catch(lua_State *L) {
  int sigs[NSIG], n = 0;
  if (lua_istable(L, 1)) {
    lua_Integer len = luaL_len(L, 1);
    luaL_argcheck(L, len >= 1 && len < NSIG, 1, "a list of 1 or more signals");
    for (lua_Integer i = 1; i <= len; i++) {
      lua_geti(L, 1, i);
      sigs[n++] = sum_check_signal(L, -1, 1);
      lua_pop(L, 1);
    }
  } else {
    sigs[n++] = sum_check_signal(L, 1, 1);
  }
  for (int i = 0; i < n; i++) { /* all checked: now install */
    int sig = sigs[i];
    struct sigaction sa, old;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = sum_on_signal;
    sigemptyset(&sa.sa_mask);
    if (sigaction(sig, &sa, &old) != 0) return vmlab_push_syserror(L, "sigaction", errno);
    if (!sum_have_saved[sig]) sum_saved[sig] = old, sum_have_saved[sig] = 1;
  }
  lua_pushboolean(L, 1);
  return 1;
}

/* vm.signal_caught(clear = false) -> "SIGINT" (the last signal caught) or nil. */
static int sum_signal_caught(lua_State *L) {
  int sig = sum_caught_sig;
  if (lua_toboolean(L, 1)) sum_caught_sig = 0;
  if (sig == 0) lua_pushnil(L);
  else lua_pushstring(L, vmlab_signal_name(sig) ? vmlab_signal_name(sig) : "SIG?");
  return 1;
}

/* vm.signal_restore() -> true: put back what signal_catch replaced. */
static int sum_signal_restore(lua_State *L) {
  for (int sig = 1; sig < NSIG; sig++)
    if (sum_have_saved[sig]) sigaction(sig, &sum_saved[sig], NULL), sum_have_saved[sig] = 0;
  lua_pushboolean(L, 1);
  return 1;
}

void vmlab_open_sum(lua_State *L) {
  static const luaL_Reg methods[] = {{"feed", sum_feed},     {"finish", sum_finish}, {"stats", sum_stats},
                                     {"pending", sum_pending}, {NULL, NULL}};
  vmlab_new_class(L, SUM_MT, methods, sum_index, sum_gc, sum_tostring);
  static const luaL_Reg region_methods[] = {{"read_from", sum_read_from}, {NULL, NULL}};
  vmlab_region_add_methods(L, region_methods);
  static const luaL_Reg funcs[] = {{"signal_catch", sum_signal_catch}, {"signal_caught", sum_signal_caught},
                                   {"signal_restore", sum_signal_restore}, {NULL, NULL}};
  luaL_setfuncs(L, funcs, 0);
  lua_pushcfunction(L, sum_new);
  lua_setfield(L, -2, "line_summer");
}
