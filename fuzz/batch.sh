#!/bin/bash
# fuzz/batch.sh SEED - one fuzz batch in a fresh process, run by fuzz/run.lua.
# Makes a fresh temp dir (the batch's cwd: the only place it writes files),
# runs fuzz/fuzz.lua there in the background and watches it by pid: past
# FUZZ_TIMEOUT seconds or FUZZ_MEM_KB of RSS it is killed (SIGKILL, by pid,
# with the children it forked). Then it looks for a death by signal, a
# sanitizer report on stderr and leftover /dev/shm objects of the batch, and
# prints one line:
#   RESULT seed=S status=ok|crash|sanitizer|hang|memory|leftover|oracle|error rc=N <stats> last=<last call>
# On anything but ok the log, stdout and stderr are kept in FUZZ_KEEP.
# Environment: FUZZ_ROOT (checkout), FUZZ_CALLS, FUZZ_TIMEOUT, FUZZ_MEM_KB,
# FUZZ_KEEP, FUZZ_FLAVOUR; LUA_PATH/LUA_CPATH and any sanitizer variables are
# passed through to the batch.
set -u
seed=$1
# The sanitizer runtime is preloaded into the batch only: ps, grep, sleep and
# the rest of this script run without it (ps under libasan can deadlock).
FUZZ_PRELOAD=${FUZZ_PRELOAD:-${LD_PRELOAD:-}}
unset LD_PRELOAD
LUA=${LUA:-lua5.4}
tmp=$(mktemp -d /tmp/vmlab-fuzz.XXXXXX) || { echo "RESULT seed=$seed status=error rc=-1 mktemp failed"; exit 0; }
log=$tmp/calls.log
( cd "$tmp" || exit 97; if [ -n "$FUZZ_PRELOAD" ]; then export LD_PRELOAD="$FUZZ_PRELOAD"; fi; exec "$LUA" "$FUZZ_ROOT/fuzz/fuzz.lua" --seed "$seed" --calls "$FUZZ_CALLS" --log "$log" --tmp "$tmp" ) \
  </dev/null >"$tmp/out" 2>"$tmp/err" &
pid=$!
status=ok
SECONDS=0 # bash: wall-clock seconds since here (a tick of the loop below can take long on a busy machine)
kill_tree() { # the batch and the processes it forked, by pid (from /proc: ps can block on other processes)
  kids=
  read -r kids 2>/dev/null <"/proc/$pid/task/$pid/children"
  kill -KILL "$pid" 2>/dev/null
  for c in $kids; do kill -KILL "$c" 2>/dev/null; done
}
while :; do
  st=
  read -r _ _ st _ 2>/dev/null <"/proc/$pid/stat" # builtins only: no fork per tick
  [ -z "$st" ] || [ "$st" = Z ] && break
  rss=0
  while read -r k v _; do [ "$k" = VmRSS: ] && rss=$v && break; done 2>/dev/null <"/proc/$pid/status"
  if [ "${rss:-0}" -gt "$FUZZ_MEM_KB" ]; then status=memory; kill_tree; break; fi
  if [ "$SECONDS" -ge "$FUZZ_TIMEOUT" ]; then status=hang; kill_tree; break; fi
  sleep 0.1
done
wait "$pid" 2>/dev/null
rc=$?
if [ "$status" = ok ]; then
  if [ "$rc" -gt 128 ]; then status=crash
  elif [ "$rc" = 3 ]; then status=oracle
  elif [ "$rc" != 0 ]; then status=error
  fi
fi
if grep -qE 'ERROR: AddressSanitizer|runtime error:|UndefinedBehaviorSanitizer|ERROR: LeakSanitizer|AddressSanitizer:DEADLYSIGNAL' "$tmp/err"; then
  status=sanitizer
fi
left=$(ls /dev/shm 2>/dev/null | grep "^vmlab-fuzz-$pid-")
if [ -n "$left" ]; then
  [ "$status" = ok ] && status=leftover
  for n in $left; do rm -f "/dev/shm/$n"; done # ours: the prefix carries the batch's pid
fi
stats=$(grep '^fuzz-batch' "$tmp/out" | sed 's/^fuzz-batch //')
if [ -z "$stats" ]; then
  n=$(grep -c ' call ' "$log" 2>/dev/null)
  stats="calls=${n:-0} callables=0"
fi
last=$(grep -E ' (call|oracle) ' "$log" 2>/dev/null | tail -n 1 | cut -c1-300)
if [ "$status" != ok ]; then
  mkdir -p "$FUZZ_KEEP"
  base="$FUZZ_KEEP/$FUZZ_FLAVOUR-seed$seed"
  cp "$log" "$base.log" 2>/dev/null
  cp "$tmp/err" "$base.err"
  cp "$tmp/out" "$base.out"
  [ -n "$left" ] && echo "$left" >"$base.leftover"
fi
rm -rf "$tmp"
echo "RESULT seed=$seed status=$status rc=$rc $stats last=$last"
