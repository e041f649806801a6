--- vmlab.sum.ring: the shared object of `vmlab sum` and the handoff of its
-- slots between the parent (producer) and the child (consumer).
--
-- Layout of the object (offsets in bytes; every word is accessed with C11
-- atomics, seq_cst):
--
--     0 magic "vmlabsum" (i64)    8 version (i32)     12 sync (i32: 1 futex, 2 poll, 3 sem)
--    16 slot count (i32)         20 slot size (i32)  24 parent pid (i64)  32 child pid (i64)
--    40 child state (i32: 0 starting, 1 attached, 2 done, 3 failed)
--    44 parent state (i32: 0 running, 1 end of input, 2 abort)
--    48 data_seq (i32 futex word: the parent bumps it after each publish or state change)
--    52 space_seq (i32 futex word: the child bumps it after each slot it frees, and on attach)
--    64 head (i64, slots published; own cache line)   128 tail (i64, slots freed; own cache line)
--   192 lines, 200 numbers, 208 error lines, 216 lines written (i64: the child's running totals;
--       "written" counts the result lines that reached the output)
--   256 items, 320 spaces (the `sem` handoff: a count (u32) and its sleepers (u32) each, see
--       r:count_post/r:count_wait in sum.c: semaphores whose words garbage cannot turn into an abort)
--   384 ready (i32: the lab's data_ready flag, `poll`)
--   512 slot lengths (i64 each)                      4096 slot data (slots x slot size)
--
-- Handoffs: `futex` and `sem` run a ring of slots, one batch of input bytes
-- per slot, the waiting side sleeping in futex(2) or on a counting semaphore
-- (count_wait, like sem_wait(3)); `poll` is
-- the lab's protocol, one slot, a ready flag polled with usleep(1000).
-- Neither side trusts what it reads from shared memory: head, tail, slot
-- lengths, semaphore counts and the child's totals are read once, bounded,
-- then used; a bad one is a protocol error ("protocol: ..."), and so is a
-- fault on an object that was truncated under the mapping.
-- @module vmlab.sum.ring
local args = require "vmlab.args"

local ring = {}

ring.MAGIC = string.unpack("<i8", "vmlabsum")
ring.VERSION = 2
ring.SYNC = { futex = 1, poll = 2, sem = 3 }
ring.SYNC_NAME = { "futex", "poll", "sem" }
ring.CHILD = { starting = 0, attached = 1, done = 2, failed = 3 }
ring.PARENT = { running = 0, eof = 1, abort = 2 }
ring.SLOTS, ring.SLOT_SIZE = 16, 64 * 1024

local O = {
  magic = 0, version = 8, sync = 12, slots = 16, slot_size = 20, parent_pid = 24, child_pid = 32,
  child_state = 40, parent_state = 44, data_seq = 48, space_seq = 52, head = 64, tail = 128,
  lines = 192, numbers = 200, errors = 208, written = 216, items = 256, spaces = 320, ready = 384, lens = 512,
  data = 4096,
}
ring.OFFSET = O
local MAX_SLOTS = (O.data - O.lens) // 8
local MAX_SLOT_SIZE = 1 << 30
local SPIN = 100 -- loads of a futex word before sleeping on it (some microseconds)

local function protocol(fmt, ...) error("protocol: " .. fmt:format(...), 0) end

-- Arguments: "bad argument #1 to 'sum.ring.attach' (a vmlab.Region expected, got nil)", at the caller.
local function bad_arg(fn, i, expected, v) args.bad("sum.ring." .. fn, i, expected, v) end
local function check_region(fn, s)
  if not args.is_a(s, "vmlab.Region") then
    bad_arg(fn, 1, "a vmlab.Region (the shared object)", s)
  end
end
local function check_int(fn, i, v, what)
  if math.type(v) ~= "integer" then bad_arg(fn, i, what, v) end
end
local function check_word(fn, i, v, words, what)
  if type(v) ~= "string" or words[v] == nil then bad_arg(fn, i, what, v) end
end
local function check_ring(fn, s, sync, slots, slot_size)
  check_region(fn, s)
  check_word(fn, 2, sync, ring.SYNC, "a sync method (futex, poll or sem)")
  local ok, why = ring.check_geometry(slots, slot_size)
  if not ok then error(("bad argument to 'sum.ring.%s' (%s)"):format(fn, why), 3) end
end

-- The most a semaphore may count: spaces <= slots; items <= one per
-- published slot plus the ends the parent announces.
local function sem_max(sem, slots) return sem == O.spaces and slots or slots + 4 end

-- Tell the other side that the word at seq changed: bump it and wake its
-- waiters (futex), or post the semaphore at sem (sync "sem").
local function notify(s, sync, seq, sem, slots)
  if sync == "sem" then
    local ok, why = s:count_post(sem, sem_max(sem, slots))
    if not ok then protocol("%s", why) end
  else
    s:atomic_add(seq, 1, 32)
    s:wake(seq)
  end
end

--- Bytes of the object for `slots` slots of `slot_size` bytes.
function ring.size(slots, slot_size)
  check_int("size", 1, slots, "a slot count (integer)")
  check_int("size", 2, slot_size, "a slot size in bytes (integer)")
  return O.data + slots * slot_size
end

--- Check a geometry; returns true or nil, reason.
function ring.check_geometry(slots, slot_size)
  if math.type(slots) ~= "integer" or slots < 1 or slots > MAX_SLOTS then
    return nil, ("slot count must be 1..%d"):format(MAX_SLOTS)
  end
  if math.type(slot_size) ~= "integer" or slot_size < 1 or slot_size > MAX_SLOT_SIZE then
    return nil, ("slot size must be 1..%d bytes"):format(MAX_SLOT_SIZE)
  end
  return true
end

--- The parent fills the header of a new object (all else is zero).
function ring.init(s, sync, slots, slot_size, parent_pid)
  check_ring("init", s, sync, slots, slot_size)
  check_int("init", 5, parent_pid, "a pid (integer)")
  s:atomic_store(O.version, ring.VERSION, 32)
  s:atomic_store(O.sync, ring.SYNC[sync], 32)
  s:atomic_store(O.slots, slots, 32)
  s:atomic_store(O.slot_size, slot_size, 32)
  s:atomic_store(O.parent_pid, parent_pid)
  if sync == "sem" then
    s:atomic_store(O.items, 0, 32)
    s:atomic_store(O.spaces, slots, 32)
  end
  s:atomic_store(O.magic, ring.MAGIC) -- last: the header is complete
end

--- The child checks the header of the object it opened, reading each field
-- once; returns the geometry { sync=, slots=, slot_size=, parent_pid= } or nil, reason.
function ring.attach(s)
  check_region("attach", s)
  if s.size < O.data then return nil, ("the object is %d bytes, too small for a header"):format(s.size) end
  if s:atomic_load(O.magic) ~= ring.MAGIC then return nil, "the object is not a vmlab sum ring (bad magic)" end
  local version = s:atomic_load(O.version, 32)
  if version ~= ring.VERSION then return nil, ("protocol version %d, expected %d"):format(version, ring.VERSION) end
  local sync = ring.SYNC_NAME[s:atomic_load(O.sync, 32)]
  if not sync then return nil, "unknown sync method in the header" end
  local slots, slot_size = s:atomic_load(O.slots, 32), s:atomic_load(O.slot_size, 32)
  local ok, why = ring.check_geometry(slots, slot_size)
  if not ok then return nil, why end
  if sync == "poll" and slots ~= 1 then return nil, "the poll protocol has exactly one slot" end
  if ring.size(slots, slot_size) > s.size then
    return nil, ("%d slots of %d bytes do not fit in the %d-byte object"):format(slots, slot_size, s.size)
  end
  return { sync = sync, slots = slots, slot_size = slot_size, parent_pid = s:atomic_load(O.parent_pid) }
end

--- The child announces itself: its pid, state "attached", and a wake for a
-- parent that may be waiting.
function ring.announce(s, pid)
  check_region("announce", s)
  check_int("announce", 2, pid, "a pid (integer)")
  s:atomic_store(O.child_pid, pid)
  ring.set_child_state(s, "attached")
end

function ring.set_child_state(s, state)
  check_region("set_child_state", s)
  check_word("set_child_state", 2, state, ring.CHILD, "a child state (starting, attached, done or failed)")
  s:atomic_store(O.child_state, ring.CHILD[state], 32)
  notify(s, "futex", O.space_seq)
end

function ring.child_state(s)
  check_region("child_state", s)
  local v = s:atomic_load(O.child_state, 32)
  for k, n in pairs(ring.CHILD) do if n == v then return k end end
  return "unknown"
end

--- The child's running totals, stored after each batch; `written`: the
-- result lines that reached the output.
function ring.store_stats(s, st, written)
  check_region("store_stats", s)
  if type(st) ~= "table" then bad_arg("store_stats", 2, "a table {lines=, numbers=, errors=}", st) end
  for _, k in ipairs { "lines", "numbers", "errors" } do
    if math.type(st[k]) ~= "integer" then
      error(("sum.ring.store_stats: st.%s must be an integer, not %s"):format(k, type(st[k])), 2)
    end
  end
  if written ~= nil then check_int("store_stats", 3, written, "a count of lines written (integer) or nil") end
  s:atomic_store(O.lines, st.lines)
  s:atomic_store(O.numbers, st.numbers)
  s:atomic_store(O.errors, st.errors)
  s:atomic_store(O.written, written or 0)
end

--- The child's totals as the parent reads them, bounded by what it handed
-- over (`bytes` of input: no more lines than bytes + 1, no more numbers
-- than bytes, no more error lines or lines written than lines). Returns
-- { lines=, numbers=, errors=, written= } or nil, "protocol: ...".
function ring.stats(s, bytes)
  check_region("stats", s)
  if bytes ~= nil then check_int("stats", 2, bytes, "a byte count (integer) or nil") end
  local st = { lines = s:atomic_load(O.lines), numbers = s:atomic_load(O.numbers), errors = s:atomic_load(O.errors),
    written = s:atomic_load(O.written) }
  bytes = bytes or math.maxinteger - 1
  if st.lines < 0 or st.lines > bytes + 1 or st.numbers < 0 or st.numbers > bytes or st.errors < 0
    or st.errors > st.lines or st.written < 0 or st.written > st.lines then
    return nil, ("protocol: the child's totals are impossible for %d bytes of input (lines %d, numbers %d, "
      .. "error lines %d, written %d)"):format(bytes, st.lines, st.numbers, st.errors, st.written)
  end
  return st
end

-- Producer ------------------------------------------------------------------

local Producer = {}
Producer.__index = Producer

--- The parent's side: p:acquire(timeout) -> offset of a free slot's data;
-- p:publish(len); p:finish("eof"|"abort").
function ring.producer(s, sync, slots, slot_size)
  check_ring("producer", s, sync, slots, slot_size)
  return setmetatable({ s = s, sync = sync, slots = slots, slot_size = slot_size, head = 0, holding = false },
    Producer)
end

--- Wait up to `timeout` seconds for a free slot. Returns the offset of its
-- data, or false, "timeout" | "interrupted"; raises on a protocol error.
function Producer:acquire(timeout)
  local s, slots = self.s, self.slots
  if self.holding then return O.data + (self.head % slots) * self.slot_size end
  if self.sync == "poll" then
    if s:atomic_load(O.ready, 32) ~= 0 then
      local r = s:sleep_poll(O.ready, 1, 0.001, timeout) -- the lab: while (ready == 1) usleep(1000);
      if r ~= "changed" or s:atomic_load(O.ready, 32) ~= 0 then return false, r == "changed" and "timeout" or r end
    end
  elseif self.sync == "sem" then
    local ok, why = s:count_wait(O.spaces, timeout, slots)
    if ok == nil then protocol("%s", why) end
    if not ok then return false, why end
  else
    while true do
      local seq = s:atomic_load(O.space_seq, 32)
      local used = self.head - s:atomic_load(O.tail)
      if used < 0 or used > slots then error("protocol: the child's tail is out of range", 0) end
      if used < slots then break end
      local r = s:wait(O.space_seq, seq, timeout)
      if r == "timeout" or r == "interrupted" then return false, r end
    end
  end
  self.holding = true
  return O.data + (self.head % slots) * self.slot_size
end

--- Hand the acquired slot, holding `len` bytes, to the child.
function Producer:publish(len)
  local s = self.s
  assert(self.holding, "publish without acquire")
  if math.type(len) ~= "integer" or len < 0 or len > self.slot_size then
    error(("bad argument #1 to 'publish' (a length of 0..%d bytes expected, got %s)"):format(self.slot_size,
      tostring(len)), 2)
  end
  self.holding = false
  if self.sync == "poll" then
    s:atomic_store(O.lens, len)
    s:atomic_store(O.ready, 1, 32) -- the lab: data_ready = 1
    return
  end
  s:atomic_store(O.lens + (self.head % self.slots) * 8, len)
  self.head = self.head + 1
  s:atomic_store(O.head, self.head)
  notify(s, self.sync, O.data_seq, O.items, self.slots)
end

--- Tell the child that input ended ("eof") or that it must stop ("abort").
-- For poll, "eof" waits (up to `timeout`) for the last line to be taken and
-- then sets the lab's end flag (2); returns false, why when that timed out.
function Producer:finish(state, timeout)
  local s = self.s
  if state ~= "eof" and state ~= "abort" then
    error(("bad argument #1 to 'finish' (\"eof\" or \"abort\" expected, got %s)"):format(tostring(state)), 2)
  end
  if self.sync == "poll" and state == "eof" then
    local ok, why = self:acquire(timeout)
    if not ok then return false, why end
    self.holding = false
    s:atomic_store(O.ready, 2, 32)
  end
  s:atomic_store(O.parent_state, ring.PARENT[state], 32)
  if self.sync == "sem" then -- a wake for the child: best effort, the state word above is what counts
    s:count_post(O.items, sem_max(O.items, self.slots))
  else
    notify(s, self.sync, O.data_seq, O.items, self.slots)
  end
  return true
end

-- Consumer ------------------------------------------------------------------

local Consumer = {}
Consumer.__index = Consumer

--- The child's side: c:take(timeout) -> the next batch of input bytes.
function ring.consumer(s, geometry)
  if type(geometry) ~= "table" then bad_arg("consumer", 2, "a geometry table (ring.attach's)", geometry) end
  check_ring("consumer", s, geometry.sync, geometry.slots, geometry.slot_size)
  return setmetatable({ s = s, sync = geometry.sync, slots = geometry.slots, slot_size = geometry.slot_size,
    tail = 0 }, Consumer)
end

-- Copy the slot out (read its length once, bound it), then free it.
function Consumer:copy_slot(slot, len_offset)
  local s = self.s
  local len = s:atomic_load(len_offset)
  if len < 0 or len > self.slot_size then protocol("slot length %d is out of 0..%d", len, self.slot_size) end
  return s:read(O.data + slot * self.slot_size, len)
end

local function parent_state_name(v)
  if v == ring.PARENT.eof then return "eof" end
  if v == ring.PARENT.abort then return "abort" end
  return nil
end

--- Wait up to `timeout` for the next batch. Returns its bytes (a string),
-- or nil, "eof" | "abort" | "timeout" | "interrupted"; raises "protocol: ..."
-- when the header holds something impossible.
function Consumer:take(timeout)
  local s, slots = self.s, self.slots
  if self.sync == "poll" then
    local ready = s:atomic_load(O.ready, 32)
    if ready == 0 then
      local ended = parent_state_name(s:atomic_load(O.parent_state, 32))
      if ended then return nil, ended end
      local r = s:sleep_poll(O.ready, 0, 0.001, timeout) -- the lab: while (ready == 0) usleep(1000);
      if r ~= "changed" then return nil, r end
      ready = s:atomic_load(O.ready, 32)
    end
    if ready == 2 then return nil, "eof" end
    if ready ~= 1 then protocol("ready flag %d is not 0, 1 or 2", ready) end
    local data = self:copy_slot(0, O.lens)
    s:atomic_store(O.ready, 0, 32) -- the lab: data_ready = 0, then process the local copy
    return data
  end
  while true do
    local seq = s:atomic_load(O.data_seq, 32)
    local state = s:atomic_load(O.parent_state, 32)
    local head = s:atomic_load(O.head)
    local avail = head - self.tail
    if avail < 0 or avail > slots then
      protocol("head %d is out of range (tail %d, %d slots)", head, self.tail, slots)
    end
    if self.sync == "sem" and avail == 0 and state == ring.PARENT.running then
      local ok, why = s:count_wait(O.items, timeout, sem_max(O.items, slots)) -- a token per slot, one per end
      if ok == nil then protocol("%s", why) end
      if not ok then return nil, why end
      self.token = true
    elseif avail > 0 then
      if self.sync == "sem" and not self.token then
        local ok, why = s:count_wait(O.items, timeout, sem_max(O.items, slots))
        if ok == nil then protocol("%s", why) end
        if not ok then return nil, why end
      end
      self.token = false
      local slot = self.tail % slots
      local data = self:copy_slot(slot, O.lens + slot * 8)
      self.tail = self.tail + 1
      s:atomic_store(O.tail, self.tail)
      notify(s, self.sync, O.space_seq, O.spaces, slots)
      return data
    else
      local ended = parent_state_name(state)
      if ended then return nil, ended end
      if self.sync ~= "sem" then
        for _ = 1, SPIN do -- a short spin first: the parent is often about to publish
          if s:atomic_load(O.data_seq, 32) ~= seq then break end
        end
        local r = s:wait(O.data_seq, seq, timeout)
        if r == "timeout" or r == "interrupted" then return nil, r end
      end
    end
  end
end

return ring
