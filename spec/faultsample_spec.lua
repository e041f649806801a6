-- Fault addresses: perf_event_open page-fault samples say where each fault was.
local vm = require "vmlab"
local faults = require "vmlab.faults"
require "vmlab.assert"

local PAGE = vm.page_size
local sanitized = os.getenv("VMLAB_SANITIZED") ~= nil

-- A sampler, or nil and the kernel's reason (then the spec is pending).
local function sampler(opts)
  local s, err = vm.fault_sampler(opts)
  if not s then pending("the kernel refuses page-fault sampling here: " .. tostring(err)) end
  return s
end

local function inside(r, a) return a >= r.address and a < r.address + r.size end

describe("vm.fault_sampler", function()
  it("sees one fault per page written, each at an address inside the region written", function()
    local s <close> = sampler()
    if not s then return end
    local pages = 512
    local r <close> = assert(vm.mmap(pages * PAGE))
    r:advise("nohugepage")
    s:start()
    r:touch("write")
    s:stop()
    local list, lost = s:read()
    assert.equal(0, lost)
    local hits, seen = 0, {}
    for _, x in ipairs(list) do
      assert.equal("integer", math.type(x.address))
      assert.equal("integer", math.type(x.ip))
      if inside(r, x.address) then
        hits = hits + 1
        seen[(x.address - r.address) // PAGE] = true
      end
    end
    local distinct = 0
    for _ in pairs(seen) do distinct = distinct + 1 end
    assert.equal(pages, distinct) -- every page of the region, once
    assert.is_true(hits >= pages and hits <= pages + 4, ("%d samples inside for %d pages"):format(hits, pages))
    -- and faults elsewhere are few: the sampler looked at this thread only
    assert.is_true(#list - hits <= (sanitized and 128 or 64), ("%d samples outside the region"):format(#list - hits))
  end)

  it("records nothing while stopped and nothing twice: read drains the ring", function()
    local s <close> = sampler()
    if not s then return end
    local r <close> = assert(vm.mmap(64 * PAGE))
    r:advise("nohugepage")
    r:touch("write", { length = 32 * PAGE }) -- not started yet
    s:start()
    r:touch("write", { offset = 32 * PAGE })
    s:stop()
    r:touch("read") -- stopped again: already resident anyway, but no samples
    local first = s:read()
    local n = 0
    for _, x in ipairs(first) do
      if inside(r, x.address) then
        n = n + 1
        assert.is_true(x.address >= r.address + 32 * PAGE, "a sample from before start()")
      end
    end
    assert.equal(32, n)
    assert.equal(0, #s:read())
    assert.equal(#first, s.samples)
  end)

  it("wraps around a small ring when read often, and counts what a full ring loses", function()
    local MANY = 4096 -- pages written, a fault each: more than the ring holds
    -- a ring of 32 KiB (64 KiB with 64 KiB pages): about 1,300 (2,600) samples
    local s <close> = sampler { pages = math.max(1, (32 << 10) // PAGE) }
    if not s then return end
    local r <close> = assert(vm.mmap(MANY * PAGE))
    r:advise("nohugepage")
    s:start()
    local got = 0
    for i = 0, 63 do -- 64 pages per step, read each time: the ring wraps many times
      r:touch("write", { offset = i * 64 * PAGE, length = 64 * PAGE })
      for _, x in ipairs(s:read()) do if inside(r, x.address) then got = got + 1 end end
    end
    s:stop()
    assert.equal(MANY, got)
    assert.equal(0, s.lost)
    -- without reads in between the ring overflows: the lost ones are counted
    local r2 <close> = assert(vm.mmap(MANY * PAGE))
    r2:advise("nohugepage")
    s:start()
    r2:touch("write")
    s:stop()
    local list, lost = s:read()
    assert.is_true(lost > 0)
    assert.equal(lost, list.lost)
    assert.is_true(#list < MANY)
    assert.is_true(#list + lost >= MANY and #list + lost <= MANY + 32,
      ("%d samples + %d lost for %d faults"):format(#list, lost, MANY))
  end)

  it("samples one fault in `period` when asked", function()
    local s <close> = sampler { period = 16 }
    if not s then return end
    local r <close> = assert(vm.mmap(1024 * PAGE))
    r:advise("nohugepage")
    s:start()
    r:touch("write")
    s:stop()
    local n = 0
    for _, x in ipairs(s:read()) do if inside(r, x.address) then n = n + 1 end end
    assert.is_true(n >= 60 and n <= 66, n .. " samples for 1024 faults at period 16")
    assert.equal(16, s.period)
  end)

  it("says what it is, closes twice harmlessly and refuses use after close", function()
    local s = sampler()
    if not s then return end
    assert.matches("^vmlab.FaultSampler all faults, every 1, ring %d+ KiB %(stopped", tostring(s))
    assert.is_false(s.running)
    s:start()
    assert.is_true(s.running)
    assert.matches("running", tostring(s))
    s:close()
    s:close()
    assert.is_true(s.closed)
    assert.matches("closed", tostring(s))
    assert.has_error(function() s:read() end, "attempt to use a closed fault sampler")
  end)

  it("rejects bad options by name", function()
    assert.has_error(function() vm.fault_sampler { kind = "huge" } end)
    assert.has_error(function() vm.fault_sampler { pages = 3 } end)
    assert.has_error(function() vm.fault_sampler { period = 0 } end)
    assert.has_error(function() vm.fault_sampler { colour = "red" } end)
  end)

  it("in a forked child the parent's sampler cannot be read, and closing it there harms nothing", function()
    if not vm.fork then pending("vm.fork is not available in this build") return end
    local s <close> = sampler()
    if not s then return end
    local shared <close> = assert(vm.mmap(PAGE, { share = "shared" }))
    local child = assert(vm.fork(function()
      local ok, err = pcall(s.read, s)
      shared:write(0, (not ok and tostring(err):match("opened before a fork")) and "y" or "n")
      s:close()
      return 0
    end))
    child:wait()
    assert.equal("y", shared:read(0, 1))
    local r <close> = assert(vm.mmap(16 * PAGE))
    s:start()
    r:touch("write")
    s:stop()
    local n = 0
    for _, x in ipairs(s:read()) do if inside(r, x.address) then n = n + 1 end end
    assert.equal(16, n)
  end)
end)

describe("faults.by_region", function()
  it("counts the faults of writing fresh mmap'd memory as anonymous, in that mapping", function()
    local pages = 256
    local r <close> = assert(vm.mmap(pages * PAGE))
    r:advise("nohugepage")
    local report, err = faults.by_region(function() r:touch("write") end, { regions = { mine = r } })
    if not report then pending("the kernel refuses page-fault sampling here: " .. tostring(err)) return end
    assert.equal(pages, report.regions.mine)
    -- plus the interpreter's own (under ASan its allocator's and shadow memory's: more)
    local extra = sanitized and 96 or 32
    assert.is_true(report.by_kind.anonymous >= pages and report.by_kind.anonymous <= pages + extra,
      report.by_kind.anonymous .. " anonymous faults")
    local top = report.mappings[1]
    assert.equal(r.address, top.start)
    assert.equal("anonymous", top.kind)
    assert.equal(pages, top.faults)
    assert.equal(0, report.lost)
    assert.matches("page faults sampled", faults.format(report)[1])
  end)

  it("tells heap, stack, anonymous, file and shared memory apart", function()
    local report, err = faults.demo { pages = 32 }
    if not report then pending("the kernel refuses page-fault sampling here: " .. tostring(err)) return end
    assert.equal(32, report.regions.anonymous)
    assert.equal(32, report.regions.shared)
    assert.is_true(report.by_kind.shared >= 32)
    -- a private file mapping read from the page cache: fault-around maps up to 16 pages a fault
    assert.is_true(report.regions.file >= 1 and report.regions.file <= 32, report.regions.file .. " file faults")
    assert.is_true(report.by_kind.stack >= 1, "no stack faults")
    if not sanitized then -- ASan's allocator does not use the brk heap
      assert.is_true(report.regions.heap >= 1 and report.by_kind.heap >= report.regions.heap)
    end
  end)

  it("puts an address no mapping holds under unmapped, and one from a closed region where it was", function()
    local r = assert(vm.mmap(4 * PAGE))
    local gone = r.address
    local before = vm.proc.maps()
    r:close()
    local now = vm.proc.maps()
    local samples = { { address = 16 }, { address = gone } }
    assert.equal(2, faults.classify(samples, now).by_kind.unmapped)
    local report = faults.classify(samples, now, { maps_before = before })
    assert.equal(1, report.by_kind.unmapped)
    assert.equal(1, report.by_kind.anonymous)
    assert.equal(2, report.total)
  end)

  it("passes an error in the function on, after closing the sampler", function()
    local ok, err = pcall(faults.by_region, function() error("boom", 0) end)
    if ok then pending("the kernel refuses page-fault sampling here: " .. tostring(err)) return end
    assert.equal("boom", err)
  end)
end)

-- perf refused: perf_event_paranoid 3, a seccomp filter or no perf in the
-- kernel. Any machine can refuse it to one process: a child whose descriptor
-- limit is 0 cannot open the perf event (EMFILE), and takes the same paths.
describe("where the kernel refuses perf events", function()
  it("the sampler and faults.by_region return nil and the reason; a fault counter falls back to rusage", function()
    local EMFILE = 24
    local N = 512 -- pages the counter counts: the interpreter's own copy-on-write faults in the
    --              forked child (its heap is shared with the parent) are few against them
    local r, st = vm.child.run(function()
      local r <close> = assert(vm.mmap((32 + N) * PAGE))
      r:advise("nohugepage")
      assert(vm.setrlimit("nofile", 0))
      local s, msg, errno = vm.fault_sampler()
      local report, why, code = faults.by_region(function() r:touch("write", { length = 32 * PAGE }) end)
      local fc <close> = vm.fault_counter("minor")
      local before = fc:read()
      r:touch("write", { offset = 32 * PAGE })
      return { sampler = s == nil, msg = msg, errno = errno, report = report == nil, why = why, code = code,
        source = fc.source, reason = fc.reason, counted = fc:read() - before }
    end)
    assert.is_table(r, st and st.error)
    assert.is_true(r.sampler, "a sampler opened without a descriptor to hold it")
    assert.matches("^perf_event_open: Too many open files", r.msg)
    assert.equal(EMFILE, r.errno)
    assert.is_true(r.report)
    assert.matches("Too many open files", r.why)
    assert.equal(EMFILE, r.code)
    assert.equal("rusage", r.source)
    assert.matches("^perf_event_open: Too many open files", r.reason)
    -- (under ASan the touch faults in shadow memory too)
    assert.within(r.counted, N, N + (sanitized and 128 or 64), ("rusage fallback's faults for %d pages"):format(N))
  end)

  it("is what this machine does where the probes say perf is refused", function()
    local kernel = require "vmlab.kernel"
    local k = kernel()
    local s, msg = vm.fault_sampler()
    if s then s:close() end
    if k.perf_faults then
      -- counting works; sampling needs a ring buffer too, which a limit may still refuse
      if not s then pending("the kernel counts faults but refuses sampling here: " .. tostring(msg)) end
      return
    end
    assert.is_nil(s, "a sampler opened where the probe says perf is refused: " .. k.how.perf_faults)
    assert.matches("^perf_event_open: ", msg)
    local report, why = faults.by_region(function() end)
    assert.is_nil(report)
    assert.matches("^perf_event_open: ", why)
  end)
end)
