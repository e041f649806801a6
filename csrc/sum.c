/*
 * sum.c - the C half of the number-summing protocol (`vmlab sum`): the line
 * summer that turns text into one result line per input line; reading input
 * straight into a region with a timeout; writing result lines so a failed
 * write leaves only complete lines; the guards around the two processes
 * (standard descriptors, the output file, the shared object handed to the
 * child by descriptor, counting semaphores that garbage cannot break); and a
 * flag-setting handler for SIGINT/SIGTERM/SIGHUP so the protocol can stop and
 * clean up instead of dying.
 *
 * The summer is a streaming parser: text arrives in pieces of any size (a
 * line, or a token, may be cut anywhere) and each completed line gives
 *   the exact integer sum      "42"
 *   a float sum when any token has a fraction or an exponent   "2.5", "-1000.0"
 *   or an error naming the bad token and its column
 *      "error: 'abc' at column 7 is not a number"
 *      "error: the sum 9223372036854775808 does not fit in a 64-bit integer"
 * Integers are added exactly (in 128 bits, so the order of the tokens never
 * matters), and the line's total must fit in 64 bits. Decimal tokens are
 * added as doubles, in order; a line with both gives the exact integer total
 * plus the decimal total, the integer part never rounded on its own first.
 * Tokens are separated by spaces and tabs; "\r\n" ends a line like "\n".
 * Columns count characters (UTF-8 sequences), from 1. Memory stays bounded
 * whatever the input: a token cut between pieces is kept only while it can
 * still be a number, and a decimal token over SUM_TOKEN_MAX bytes is refused.
 */
#include "vmlab.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <math.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define SUM_MT "vmlab.LineSummer"
#define SUM_TOKEN_MAX (1u << 20) /* bytes of a decimal token read whole by strtod */
#define SUM_SHOW 40              /* bytes of a bad token shown in its error line */

/* The grammar of a number, [+-]?(d+(.d*)?|.d+)([eE][+-]?d+)?, one byte at a time. */
enum { T_START, T_SIGN, T_INT, T_DOT0, T_FRAC, T_EXP, T_EXPSIGN, T_EXPDIG, T_BAD };

static int sum_step(int s, unsigned char c) {
  int digit = c >= '0' && c <= '9', e = c == 'e' || c == 'E', sign = c == '+' || c == '-';
  switch (s) {
  case T_START: return sign ? T_SIGN : digit ? T_INT : c == '.' ? T_DOT0 : T_BAD;
  case T_SIGN: return digit ? T_INT : c == '.' ? T_DOT0 : T_BAD;
  case T_INT: return digit ? T_INT : c == '.' ? T_FRAC : e ? T_EXP : T_BAD;
  case T_DOT0: return digit ? T_FRAC : T_BAD;
  case T_FRAC: return digit ? T_FRAC : e ? T_EXP : T_BAD;
  case T_EXP: return sign ? T_EXPSIGN : digit ? T_EXPDIG : T_BAD;
  case T_EXPSIGN:
  case T_EXPDIG: return digit ? T_EXPDIG : T_BAD;
  default: return T_BAD;
  }
}

/* A token cut by the end of a piece, followed byte by byte. */
typedef struct sum_token {
  int state, prev;    /* grammar state after the last byte, and before it */
  int neg, big;       /* integer part: sign, more than 64 bits */
  uint64_t mag, pmag; /* integer magnitude after the last byte, and before it */
  size_t len;         /* bytes of the token so far */
  unsigned char last; /* its last byte */
  int64_t col;        /* its column */
} sum_token;

typedef struct sum_state {
  __int128 isum;        /* exact integer part of the current line */
  double fsum;          /* decimal tokens of the current line */
  int has_float;        /* the line's sum is a float */
  int line_open;        /* bytes of the current line have been seen */
  int in_token;         /* a token cut by the end of a piece is open (tok, carry) */
  int closed;           /* :close() or __close/__gc ran */
  char err[320];        /* first error of the current line, or "" */
  int64_t col;          /* characters of the current line consumed */
  int64_t line_numbers; /* numbers summed in the current line */
  sum_token tok;        /* the open token */
  char *carry;          /* its first bytes (malloc'd): all of them while carry_len == tok.len */
  size_t carry_len, carry_cap;
  int64_t lines, numbers, errors; /* totals */
} sum_state;

static sum_state *sum_check(lua_State *L) {
  sum_state *st = luaL_checkudata(L, 1, SUM_MT);
  if (st->closed) luaL_error(L, "attempt to use a closed line summer");
  return st;
}

static int sum_is_delim(unsigned char c) { return c == ' ' || c == '\t' || c == '\n'; }

/* Characters (not UTF-8 continuation bytes) in p[0..n). */
static int64_t sum_chars(const unsigned char *p, size_t n) {
  int64_t c = 0;
  for (size_t i = 0; i < n; i++) c += (p[i] & 0xC0) != 0x80;
  return c;
}

/* The token as a person can read it on one line: at most SUM_SHOW bytes of
   the n at p (of a token of `total` bytes), control bytes escaped. */
static void sum_show(char *out, size_t cap, const unsigned char *p, size_t n, size_t total) {
  size_t o = 0, shown = n > SUM_SHOW ? SUM_SHOW : n;
  while (shown > 0 && shown < n && (p[shown] & 0xC0) == 0x80) shown--; /* whole characters */
  for (size_t i = 0; i < shown && o + 5 < cap; i++) {
    unsigned char c = p[i];
    if (c == '\r') o += (size_t)snprintf(out + o, cap - o, "\\r");
    else if (c < 0x20 || c == 0x7f || c == '\'') o += (size_t)snprintf(out + o, cap - o, "\\x%02x", c);
    else out[o++] = (char)c;
  }
  if (shown < total && o + 4 < cap) memcpy(out + o, "...", 3), o += 3;
  out[o < cap ? o : cap - 1] = '\0';
}

static void sum_fail(sum_state *st, const char *pre, const unsigned char *p, size_t n, size_t total, int64_t col,
                     const char *post) {
  char tok[4 * SUM_SHOW + 8];
  sum_show(tok, sizeof tok, p, n, total);
  snprintf(st->err, sizeof st->err, "%s'%s' at column %lld %s", pre, tok, (long long)col, post);
}

/* An integer token of magnitude mag (big: over 64 bits). */
static void sum_add_integer(sum_state *st, int neg, uint64_t mag, int big, const unsigned char *p, size_t n,
                            size_t total, int64_t col) {
  uint64_t limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
  if (big || mag > limit) {
    sum_fail(st, "", p, n, total, col, "does not fit in a 64-bit integer");
    return;
  }
  st->isum += neg ? -(__int128)mag : (__int128)mag; /* |isum| < 2^63 * tokens: no overflow */
  st->line_numbers++;
}

/* A decimal token (already known to match the grammar), n bytes at p. */
static void sum_add_decimal(sum_state *st, const unsigned char *p, size_t n, int64_t col) {
  if (n > SUM_TOKEN_MAX) {
    sum_fail(st, "", p, n, n, col, "is too long to read as a number (over 1 MiB)");
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
    sum_fail(st, "", p, n, n, col, "is out of the range of a double");
    return;
  }
  st->fsum += v;
  st->has_float = 1;
  st->line_numbers++;
  if (!isfinite(st->fsum)) sum_fail(st, "adding ", p, n, n, col, "overflows the floating-point sum");
}

/* One whole token of the current line, n bytes at p. */
static void sum_token_whole(sum_state *st, const unsigned char *p, size_t n, int64_t col) {
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
      sum_add_integer(st, neg, mag, big, p, n, n, col);
      return;
    }
  }
  int s = T_START;
  for (size_t k = 0; k < n && s != T_BAD; k++) s = sum_step(s, p[k]);
  if (s != T_INT && s != T_FRAC && s != T_EXPDIG) sum_fail(st, "", p, n, n, col, "is not a number");
  else sum_add_decimal(st, p, n, col);
}

/* Follow n more bytes of the open token; keep them while the token can still
   be a number and is short enough to be read whole (and always its first
   bytes, for an error line). Returns 0 when out of memory. */
static int sum_token_more(sum_state *st, const unsigned char *p, size_t n) {
  sum_token *t = &st->tok;
  for (size_t i = 0; i < n; i++) {
    if (t->state == T_BAD) { /* no number any more: only a last '\r' may be taken back */
      t->prev = T_BAD;
      break;
    }
    unsigned char c = p[i];
    t->prev = t->state;
    t->pmag = t->mag;
    t->state = sum_step(t->state, c);
    if (t->state == T_SIGN) t->neg = c == '-';
    else if (t->state == T_INT) {
      unsigned d = (unsigned)(c - '0');
      if (t->mag > (UINT64_MAX - d) / 10) t->big = 1;
      else t->mag = t->mag * 10 + d;
    }
  }
  if (n > 0) t->last = p[n - 1];
  size_t keep = n, limit = t->state == T_BAD ? SUM_SHOW + 8 : SUM_TOKEN_MAX + 1;
  if (st->carry_len != t->len) keep = 0; /* already cut short: keep no more */
  else if (st->carry_len + keep > limit) keep = st->carry_len >= limit ? 0 : limit - st->carry_len;
  t->len += n;
  if (keep == 0) return 1;
  if (st->carry_len + keep > st->carry_cap) {
    size_t cap = st->carry_cap ? st->carry_cap : 64;
    while (cap < st->carry_len + keep) cap *= 2;
    char *c = realloc(st->carry, cap);
    if (c == NULL) return 0;
    st->carry = c;
    st->carry_cap = cap;
  }
  memcpy(st->carry + st->carry_len, p, keep);
  st->carry_len += keep;
  return 1;
}

/* A token starts at the end of a piece, at column col. */
static int sum_token_start(sum_state *st, const unsigned char *p, size_t n, int64_t col) {
  memset(&st->tok, 0, sizeof st->tok);
  st->tok.state = st->tok.prev = T_START;
  st->tok.col = col;
  st->carry_len = 0;
  st->in_token = 1;
  return sum_token_more(st, p, n);
}

/* The open token ends, at a '\n' or the end of the input when eol (a last
   '\r' is then part of the line end, not of the token). */
static void sum_token_end(sum_state *st, int eol) {
  sum_token *t = &st->tok;
  int state = t->state;
  uint64_t mag = t->mag;
  size_t len = t->len, kept = st->carry_len;
  if (eol && len > 0 && t->last == '\r') {
    state = t->prev;
    mag = t->pmag;
    len--;
    if (kept > len) kept = len;
  }
  st->in_token = 0;
  st->carry_len = 0;
  if (len == 0 || st->err[0] != '\0') return;
  const unsigned char *p = (const unsigned char *)st->carry;
  if (kept == len) sum_token_whole(st, p, len, t->col);
  else if (state == T_INT) sum_add_integer(st, t->neg, mag, t->big, p, kept, len, t->col);
  else if (state == T_FRAC || state == T_EXPDIG)
    sum_fail(st, "", p, kept, len, t->col, "is too long to read as a number (over 1 MiB)");
  else sum_fail(st, "", p, kept, len, t->col, "is not a number");
}

/* Shortest "%.Ng" that reads back as d, with ".0" when it looks integral. */
static void sum_format_double(char *out, size_t cap, double d) {
  for (int prec = 15; prec <= 17; prec++) {
    snprintf(out, cap, "%.*g", prec, d);
    if (strtod(out, NULL) == d) break;
  }
  if (strpbrk(out, ".eEn") == NULL) strncat(out, ".0", cap - strlen(out) - 1);
}

/* v in decimal at out (room for 41 bytes + NUL); returns the length. */
static size_t sum_format_int(char *out, __int128 v) {
  char rev[48];
  size_t k = 0, n = 0;
  unsigned __int128 m = v < 0 ? 0 - (unsigned __int128)v : (unsigned __int128)v;
  do rev[k++] = (char)('0' + (int)(m % 10)), m /= 10;
  while (m != 0);
  if (v < 0) out[n++] = '-';
  while (k > 0) out[n++] = rev[--k];
  out[n] = '\0';
  return n;
}

/* Close the current line: add its result line to b. */
static void sum_end_line(sum_state *st, luaL_Buffer *b) {
  char tmp[400];
  size_t n = 0;
  if (st->err[0] == '\0' && st->has_float) {
    /* the exact integer total, split in a double and what that double
       missed (exact), added to the decimal total: one rounding at the end */
    double hi = (double)st->isum;
    double lo = (double)(st->isum - (__int128)hi);
    double v = hi + (lo + st->fsum);
    if (isfinite(v)) {
      sum_format_double(tmp, sizeof tmp - 1, v);
      n = strlen(tmp);
    } else {
      snprintf(st->err, sizeof st->err, "the sum overflows the floating-point range");
    }
  } else if (st->err[0] == '\0') {
    if (st->isum > INT64_MAX || st->isum < INT64_MIN) {
      char num[48];
      sum_format_int(num, st->isum);
      snprintf(st->err, sizeof st->err, "the sum %s does not fit in a 64-bit integer", num);
    } else {
      n = sum_format_int(tmp, st->isum);
    }
  }
  if (st->err[0] != '\0') {
    n = (size_t)snprintf(tmp, sizeof tmp, "error: %s", st->err);
    if (n > sizeof tmp - 2) n = sizeof tmp - 2;
    st->errors++;
  } else {
    st->numbers += st->line_numbers;
  }
  tmp[n++] = '\n';
  luaL_addlstring(b, tmp, n);
  st->lines++;
  st->isum = 0;
  st->fsum = 0;
  st->has_float = 0;
  st->line_open = 0;
  st->err[0] = '\0';
  st->col = 0;
  st->line_numbers = 0;
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
    size_t j = 0;
    while (j < len && !sum_is_delim(s[j])) j++;
    if (!sum_token_more(st, s, j)) return luaL_error(L, "not enough memory");
    st->col += sum_chars(s, j);
    if (j == len) goto done;
    sum_token_end(st, s[j] == '\n');
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
    if (j == len) { /* cut: follow it into the next piece */
      if (!sum_token_start(st, s + i, j - i, col)) return luaL_error(L, "not enough memory");
      break;
    }
    size_t end = j;
    if (s[j] == '\n' && s[end - 1] == '\r') end--;
    if (end > i) sum_token_whole(st, s + i, end - i, col);
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
  if (st->in_token) sum_token_end(st, 1);
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

/* summer:pending() -> true while a line has started but not ended. */
static int sum_pending(lua_State *L) {
  lua_pushboolean(L, sum_check(L)->line_open);
  return 1;
}

/* methods through the method table (upvalue 1); a closed summer still has
   its close method and its tostring */
static int sum_index(lua_State *L) {
  luaL_checkudata(L, 1, SUM_MT);
  lua_pushvalue(L, 2);
  lua_rawget(L, lua_upvalueindex(1));
  return 1;
}

/* "vmlab.LineSummer (12 lines, 120 numbers, 1 error line, a line in progress)" */
static int sum_tostring(lua_State *L) {
  sum_state *st = luaL_checkudata(L, 1, SUM_MT);
  lua_pushfstring(L, "vmlab.LineSummer (%I lines, %I numbers, %I error line%s%s)", (lua_Integer)st->lines,
                  (lua_Integer)st->numbers, (lua_Integer)st->errors, st->errors == 1 ? "" : "s",
                  st->closed ? ", closed" : st->line_open ? ", a line in progress" : "");
  return 1;
}

/* summer:close() -- also __gc and __close; closing twice is harmless. Any
   other use afterwards raises "attempt to use a closed line summer". */
static int sum_close(lua_State *L) {
  sum_state *st = luaL_checkudata(L, 1, SUM_MT);
  free(st->carry);
  st->carry = NULL;
  st->carry_len = st->carry_cap = 0;
  st->in_token = 0;
  st->closed = 1;
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
/* Descriptors and output                                              */

static volatile sig_atomic_t sum_caught_sig = 0;

static int sum_check_fd(lua_State *L, int idx) {
  lua_Integer fd = luaL_checkinteger(L, idx);
  luaL_argcheck(L, fd >= 0 && fd <= INT32_MAX, idx, "fd must be a file descriptor number (0 .. 2^31-1)");
  return (int)fd;
}

/* vm.write_lines(fd, text) -> lines: write text (whole result lines) to fd,
   with as many write(2) calls as it takes; returns the number of lines
   written (all of them). A failure leaves only complete lines behind: in a
   regular file the bytes of a cut last line are removed again (ftruncate(2)),
   and it returns nil, msg, errno, lines (the lines that reached fd). A
   signal caught by vm.signal_catch that interrupts it between two lines
   returns false, "interrupted", lines. See write(2). */
static int sum_write_lines(lua_State *L) {
  int fd = sum_check_fd(L, 1);
  size_t len;
  const char *s = luaL_checklstring(L, 2, &len);
  struct stat st;
  int regular = fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
  off_t start = -1;
  if (regular) {
    int fl = fcntl(fd, F_GETFL);
    start = fl >= 0 && (fl & O_APPEND) ? st.st_size : lseek(fd, 0, SEEK_CUR);
  }
  size_t done = 0;
  int err = 0, interrupted = 0;
  while (done < len) {
    ssize_t n = write(fd, s + done, len - done);
    if (n > 0) {
      done += (size_t)n;
      continue;
    }
    if (n < 0 && errno == EINTR) {
      if (sum_caught_sig != 0 && (done == 0 || s[done - 1] == '\n')) {
        interrupted = 1;
        break;
      }
      continue;
    }
    err = n < 0 ? errno : EIO;
    break;
  }
  size_t whole = 0; /* bytes up to the end of the last complete line written */
  lua_Integer lines = 0;
  for (const char *p = s, *end = s + done; p < end;) {
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    if (nl == NULL) break;
    lines++;
    p = nl + 1;
    whole = (size_t)(p - s);
  }
  if (err != 0 && whole < done && regular && start >= 0) { /* take the cut line back */
    if (ftruncate(fd, start + (off_t)whole) == 0) lseek(fd, start + (off_t)whole, SEEK_SET);
  }
  if (err != 0) {
    vmlab_push_syserror(L, "write", err);
    lua_pushinteger(L, lines);
    return 4;
  }
  if (interrupted) {
    lua_pushboolean(L, 0);
    lua_pushliteral(L, "interrupted");
    lua_pushinteger(L, lines);
    return 3;
  }
  lua_pushinteger(L, lines);
  return 1;
}

/* vm.fill_std_fds() -> {fd, ...}, or nil, msg, errno: open /dev/null on
   each of the descriptors 0, 1 and 2 that is closed, so that nothing opened
   later (a shared-memory object, an output file) takes its number and gets
   read or written as standard input, output or error. Returns the list of
   those that were closed (empty when none). Call it before opening anything
   that stays open. See open(2), fcntl(2). */
static int sum_fill_std_fds(lua_State *L) {
  lua_newtable(L);
  lua_Integer n = 0;
  for (int fd = 0; fd <= 2; fd++) {
    if (fcntl(fd, F_GETFD) >= 0 || errno != EBADF) continue;
    int got = open("/dev/null", fd == 0 ? O_RDONLY : O_WRONLY);
    if (got < 0) return vmlab_push_syserror(L, "open /dev/null", errno);
    if (got != fd) { /* cannot happen when the lower ones are open, but be sure */
      int rc = dup2(got, fd), err = errno;
      close(got);
      if (rc < 0) return vmlab_push_syserror(L, "dup2", err);
    }
    lua_pushinteger(L, fd);
    lua_rawseti(L, -2, ++n);
  }
  return 1;
}

/* A Lua file's close function (the io library calls it once). */
static int sum_file_close(lua_State *L) {
  luaL_Stream *p = luaL_checkudata(L, 1, LUA_FILEHANDLE);
  int ok = fclose(p->f) == 0;
  return luaL_fileresult(L, ok, NULL);
}

/* Push a Lua file (io library) on fd, which it then owns; mode for fdopen.
   Returns 0 (fd closed, errno set) when that fails. */
static int sum_push_file(lua_State *L, int fd, const char *mode) {
  luaL_Stream *p = lua_newuserdatauv(L, sizeof(luaL_Stream), 0);
  p->closef = NULL; /* a closed file until the FILE is there */
  p->f = NULL;
  luaL_setmetatable(L, LUA_FILEHANDLE);
  p->f = fdopen(fd, mode);
  if (p->f == NULL) {
    int err = errno;
    close(fd);
    lua_pop(L, 1);
    errno = err;
    return 0;
  }
  p->closef = sum_file_close;
  return 1;
}

/* vm.open_output(path) -> file (a Lua file for writing), or false,
   "no reader" (a FIFO that nobody has open for reading yet: try again
   later), or nil, msg, errno. A regular file is created (mode 0666 less the
   umask) or truncated. It opens with O_NONBLOCK, so a FIFO never blocks the
   caller (signals are seen between tries), then puts the descriptor back in
   blocking mode. See open(2), fifo(7). */
static int sum_open_output(lua_State *L) {
  size_t len;
  const char *path = luaL_checklstring(L, 1, &len);
  luaL_argcheck(L, len > 0 && memchr(path, '\0', len) == NULL, 1, "path must be a non-empty string without NUL");
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_NONBLOCK | O_NOCTTY | O_CLOEXEC, 0666);
  if (fd < 0 && errno == ENXIO) {
    lua_pushboolean(L, 0);
    lua_pushliteral(L, "no reader");
    return 2;
  }
  if (fd < 0) {
    int err = errno;
    return vmlab_push_syserror(L, lua_pushfstring(L, "open %s", path), err);
  }
  int fl = fcntl(fd, F_GETFL);
  if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) < 0 || !sum_push_file(L, fd, "w")) {
    int err = errno;
    if (fl < 0) close(fd);
    return vmlab_push_syserror(L, lua_pushfstring(L, "open %s", path), err);
  }
  return 1;
}

/* vm.shm_adopt(fd) -> Region, or nil, msg, errno: map the whole
   shared-memory object open on descriptor fd (a regular file opened for
   reading and writing, e.g. handed down by vm.spawn as standard input),
   shared and writable. The region keeps a duplicate of the descriptor
   (close-on-exec); when fd is 0, 1 or 2 it is then reopened on /dev/null,
   so the object never stays a standard stream. The region has no name:
   closing it unlinks nothing. See mmap(2). */
static int sum_shm_adopt(lua_State *L) {
  int fd = sum_check_fd(L, 1);
  struct stat st;
  if (fstat(fd, &st) != 0) return vmlab_push_syserror(L, "fstat", errno);
  int fl = fcntl(fd, F_GETFL);
  if (!S_ISREG(st.st_mode) || st.st_size <= 0 || fl < 0 || (fl & O_ACCMODE) != O_RDWR) {
    lua_pushnil(L);
    lua_pushfstring(L, "descriptor %d is not a shared-memory object open for reading and writing", fd);
    lua_pushinteger(L, EINVAL);
    return 3;
  }
  if ((uint64_t)st.st_size > (uint64_t)(SIZE_MAX / 2)) return vmlab_push_syserror(L, "mmap", EFBIG);
  vmlab_region *r = vmlab_region_new(L); /* closed until filled below */
  int own = fcntl(fd, F_DUPFD_CLOEXEC, 3);
  if (own < 0) return vmlab_push_syserror(L, "fcntl(F_DUPFD_CLOEXEC)", errno);
  int err = vmlab_shm_region_fill(r, own, (size_t)st.st_size);
  if (err != 0) {
    close(own);
    return vmlab_push_syserror(L, "mmap", err);
  }
  if (fd <= 2) {
    int null = open("/dev/null", fd == 0 ? O_RDONLY : O_WRONLY | O_CLOEXEC);
    if (null >= 0) {
      dup2(null, fd);
      close(null);
    }
  }
  return 1;
}

/* r:as_file() -> a Lua file (read and write) on a duplicate of the
   descriptor behind the region (a shared-memory object or a mapped file),
   to hand the object to vm.spawn as a standard stream; or nil, msg, errno. */
static int sum_as_file(lua_State *L) {
  vmlab_region *r = vmlab_check_open(L, 1);
  luaL_argcheck(L, r->fd >= 0, 1, "no descriptor behind this region");
  int fd = fcntl(r->fd, F_DUPFD_CLOEXEC, 3);
  if (fd < 0 || !sum_push_file(L, fd, "r+")) return vmlab_push_syserror(L, "as_file", errno);
  return 1;
}

/* ------------------------------------------------------------------ */
/* Counting semaphores that garbage cannot break                       */
/*
 * The `sem` handoff of `vmlab sum` counts free and filled slots like
 * sem_post(3)/sem_wait(3), but on two plain 32-bit words the program owns
 * (the count, then the number of sleepers), with C11 atomics and futex(2):
 * glibc's sem_t aborts the process when its words hold garbage; here a count
 * out of 0..max is reported, and a garbage sleeper word only costs a wake.
 */

static _Atomic uint32_t *sum_check_count(lua_State *L, vmlab_region *r, int idx) {
  lua_Integer off = luaL_checkinteger(L, idx);
  luaL_argcheck(L, off >= 0 && off % 4 == 0 && (size_t)off <= r->size && r->size - (size_t)off >= 8, idx,
                "offset must be a multiple of 4 with 8 bytes of the region from there");
  return (_Atomic uint32_t *)(void *)(r->addr + off);
}

static uint32_t sum_check_max(lua_State *L, int idx) {
  lua_Integer max = luaL_checkinteger(L, idx);
  luaL_argcheck(L, max >= 1 && max <= INT32_MAX, idx, "max must be 1 .. 2^31-1");
  return (uint32_t)max;
}

static int sum_bad_count(lua_State *L, const char *what, lua_Integer off, uint32_t v, uint32_t max) {
  lua_pushnil(L);
  lua_pushfstring(L, "%s: the count at offset %I holds %I, out of 0..%I", what, off, (lua_Integer)v,
                  (lua_Integer)max);
  lua_pushinteger(L, EINVAL);
  return 3;
}

/* r:count_post(off, max) -> true, or nil, msg, errno: add one to the count
   at off (which must hold 0 .. max-1), waking one sleeper if there is one. */
static int sum_count_post(lua_State *L) {
  vmlab_region *r = vmlab_check_open(L, 1);
  _Atomic uint32_t *v = sum_check_count(L, r, 2);
  uint32_t max = sum_check_max(L, 3);
  int op = FUTEX_WAKE | (r->shared ? 0 : FUTEX_PRIVATE_FLAG);
  uint32_t c;
  int ok;
  VMLAB_GUARD(L, "count_post");
  c = atomic_load(v);
  while ((ok = c < max) && !atomic_compare_exchange_weak(v, &c, c + 1)) {
  }
  if (ok && atomic_load(v + 1) != 0) syscall(SYS_futex, (uint32_t *)v, op, 1, NULL, NULL, 0);
  vmlab_guard_end();
  if (!ok) return sum_bad_count(L, "count_post", lua_tointeger(L, 2), c, max);
  lua_pushboolean(L, 1);
  return 1;
}

/* r:count_wait(off, timeout_s, max) -> true when it took one from the count
   at off; false, "timeout" | "interrupted"; or nil, msg, errno (the count
   holds more than max). timeout 0 only tries; none waits for ever. */
static int sum_count_wait(lua_State *L) {
  vmlab_region *r = vmlab_check_open(L, 1);
  _Atomic uint32_t *v = sum_check_count(L, r, 2);
  double timeout = -1;
  if (!lua_isnoneornil(L, 3)) {
    timeout = luaL_checknumber(L, 3);
    luaL_argcheck(L, timeout >= 0 && timeout < 1e9, 3, "timeout must be a number of seconds >= 0");
  }
  uint32_t max = sum_check_max(L, 4);
  int op = FUTEX_WAIT | (r->shared ? 0 : FUTEX_PRIVATE_FLAG);
  double deadline = vmlab_now() + timeout;
  uint32_t c = 0;
  int res = -1, err = 0; /* 0 taken, 1 timeout, 2 interrupted, 3 bad count, 4 futex error */
  VMLAB_GUARD(L, "count_wait");
  for (int spins = 0; res < 0; spins++) {
    c = atomic_load(v);
    if (c > max) res = 3;
    else if (c > 0) {
      if (atomic_compare_exchange_weak(v, &c, c - 1)) res = 0;
    } else if (spins < 200 && timeout != 0) { /* a short spin first: the other side is often just about to post */
#if defined(__x86_64__) || defined(__i386__)
      __builtin_ia32_pause();
#endif
    } else {
      double left = deadline - vmlab_now();
      if (timeout >= 0 && left <= 0) {
        res = 1;
        break;
      }
      struct timespec ts = {(time_t)left, (long)((left - floor(left)) * 1e9)};
      atomic_fetch_add(v + 1, 1);
      long rc = syscall(SYS_futex, (uint32_t *)v, op, 0u, timeout >= 0 ? &ts : NULL, NULL, 0);
      int e = errno;
      atomic_fetch_sub(v + 1, 1);
      if (rc != 0 && e == EINTR) res = 2;
      else if (rc != 0 && e == ETIMEDOUT) res = 1;
      else if (rc != 0 && e != EAGAIN) res = 4, err = e;
    }
  }
  vmlab_guard_end();
  if (res == 0) {
    lua_pushboolean(L, 1);
    return 1;
  }
  if (res == 3) return sum_bad_count(L, "count_wait", lua_tointeger(L, 2), c, max);
  if (res == 4) return vmlab_push_syserror(L, "futex(FUTEX_WAIT)", err);
  lua_pushboolean(L, 0);
  lua_pushstring(L, res == 1 ? "timeout" : "interrupted");
  return 2;
}

/* ------------------------------------------------------------------ */
/* Stopping on a signal                                                */

static struct sigaction sum_saved[NSIG];
static unsigned char sum_have_saved[NSIG];

static void sum_on_signal(int sig) { sum_caught_sig = sig; }

/* The signal given by number or name ("INT", "SIGINT", "sigint") at stack
   index idx; errors name argument arg. */
static int sum_check_signal(lua_State *L, int idx, int arg) {
  const char *why;
  idx = lua_absindex(L, idx); /* the parser may push its own message */
  int sig = vmlab_parse_signal(L, idx, -1, &why);
  if (why != NULL || sig <= 0)
    luaL_argerror(L, arg, lua_pushfstring(L, "unknown signal '%s'", luaL_tolstring(L, idx, NULL)));
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
  static const luaL_Reg methods[] = {{"feed", sum_feed},       {"finish", sum_finish}, {"stats", sum_stats},
                                     {"pending", sum_pending}, {"close", sum_close},   {NULL, NULL}};
  vmlab_new_class(L, SUM_MT, methods, sum_index, sum_close, sum_tostring);
  static const luaL_Reg region_methods[] = {{"read_from", sum_read_from}, {"as_file", sum_as_file},
                                            {"count_post", sum_count_post}, {"count_wait", sum_count_wait},
                                            {NULL, NULL}};
  vmlab_region_add_methods(L, region_methods);
  static const luaL_Reg funcs[] = {{"signal_catch", sum_signal_catch}, {"signal_caught", sum_signal_caught},
                                   {"signal_restore", sum_signal_restore}, {"write_lines", sum_write_lines},
                                   {"fill_std_fds", sum_fill_std_fds}, {"open_output", sum_open_output},
                                   {"shm_adopt", sum_shm_adopt}, {"line_summer", sum_new}, {NULL, NULL}};
  luaL_setfuncs(L, funcs, 0);
}
