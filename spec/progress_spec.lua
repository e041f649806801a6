-- The progress bar: drawn in place on a terminal, silent otherwise.
local vm = require "vmlab"
local progress = require "vmlab.progress"

local PAGE = vm.page_size

-- A fake output that keeps what is written.
local function sink()
  local s = { text = "" }
  function s:write(...)
    for _, x in ipairs { ... } do self.text = self.text .. x end
    return self
  end
  return s
end

describe("the progress bar", function()
  it("redraws in place with \\r and shows bytes done, RSS and faults", function()
    local out = sink()
    local bar = progress.new { total = 1 << 30, label = "write", enabled = true, out = out, interval = 0 }
    bar:update(256 << 20, { rss = 300 << 20, faults = 65536 })
    bar:update(512 << 20, { rss = 556 << 20, faults = 131072 })
    bar:finish()
    assert.matches("^\r", out.text)
    local _, redraws = out.text:gsub("\r", "")
    assert.equal(2, redraws)
    assert.matches("\rwrite  %[############............%]  50%%  512.0 MiB of 1.0 GiB  RSS 556.0 MiB  faults 131,072",
      out.text)
    assert.matches("\n$", out.text)
  end)

  it("writes nothing at all when disabled (--json)", function()
    local out = sink()
    local bar = progress.new { total = 100, enabled = false, out = out }
    bar:update(50, { rss = 1, faults = 1 })
    bar:clear()
    bar:finish()
    assert.equal("", out.text)
  end)

  it("is off by itself when stdout is not a terminal", function()
    local cmd = ("LUA_PATH=%q LUA_CPATH=%q lua5.4 -e %q | cat"):format(package.path, package.cpath,
      'io.write(tostring(require("vmlab.progress").is_terminal()))')
    local p = assert(io.popen(cmd))
    local got = p:read("a")
    p:close()
    assert.equal("false", got)
  end)

  it("asks isatty(3) of a file or a descriptor; a pseudo-terminal is one, a pipe or a file is not", function()
    assert.is_false(progress.is_terminal(sink()))
    local f = assert(io.tmpfile())
    assert.is_false(vm.isatty(f))
    f:close()
    assert.has_error(function() vm.isatty(f) end, "bad argument #1 to 'isatty' (file is closed)")
    assert.is_false(vm.isatty(-1))
    assert.has_error(function() vm.isatty("stdout") end)
    -- script(1) runs the command on a new pseudo-terminal
    if not os.execute("command -v script >/dev/null 2>&1") then return pending("script(1) is not installed") end
    local cmd = ("script -qec %q /dev/null </dev/null"):format(("LUA_PATH=%q LUA_CPATH=%q lua5.4 -e %q"):format(
      package.path, package.cpath, 'local p = require "vmlab.progress" io.write(tostring(p.is_terminal()), " ", '
        .. 'tostring(require("vmlab").isatty(1)))'))
    local p = assert(io.popen(cmd))
    local got = p:read("a")
    p:close()
    assert.matches("^true true", got)
  end)

  it("draws no faster than its interval, but always the last step", function()
    local out = sink()
    local bar = progress.new { total = 100, enabled = true, out = out, interval = 3600 }
    bar:update(10)
    bar:update(20)
    bar:update(100)
    local _, redraws = out.text:gsub("\r", "")
    assert.equal(2, redraws)
  end)
end)

describe("progress.touch", function()
  it("touches in chunks and adds up to what one touch reports, timeline included", function()
    local pages = (16 << 20) // PAGE -- 16 MiB
    local r <close> = assert(vm.mmap(pages * PAGE))
    r:advise("nohugepage")
    local out = sink()
    local chunks = 0
    local t = progress.touch(r, "write", { chunk = 4 << 20, sample = 1 << 20, progress = { enabled = true, out = out,
      interval = 0 }, on_chunk = function() chunks = chunks + 1 end })
    assert.equal(4, chunks)
    assert.equal(pages, t.pages)
    assert.equal(pages * PAGE, t.bytes)
    assert.is_true(t.minor_faults >= pages and t.minor_faults <= pages * 1.02 + 8, t.minor_faults .. " faults")
    assert.equal(17, #t.timeline) -- 0, then every MiB of 16
    local prev
    for _, s in ipairs(t.timeline) do
      if prev then
        assert.is_true(s.bytes == prev.bytes + (1 << 20), "bytes run on across chunks")
        assert.is_true(s.t >= prev.t and s.minor_faults >= prev.minor_faults)
      end
      prev = s
    end
    assert.equal(pages * PAGE, prev.bytes)
    assert.equal(t.minor_faults, prev.minor_faults)
    local _, redraws = out.text:gsub("\r", "")
    assert.equal(4, redraws)
    assert.matches("100%%  16.0 MiB of 16.0 MiB", out.text)
  end)

  it("stops early when on_chunk says so", function()
    local r <close> = assert(vm.mmap(1024 * PAGE))
    local t = progress.touch(r, "read", { chunk = 256 * PAGE, progress = { enabled = false },
      on_chunk = function(sofar) return sofar.bytes < 512 * PAGE end })
    assert.equal(512, t.pages)
  end)
end)

describe("the touch hook", function()
  local MiB = 1024 * 1024

  it("is called after each piece of about 64 MiB with bytes walked, the total and faults so far", function()
    local r <close> = assert(vm.mmap(200 * MiB))
    r:advise("nohugepage")
    local calls = {}
    local previous = vm.set_touch_hook(function(done, total, faults) calls[#calls + 1] = { done, total, faults } end)
    local ok, t = pcall(r.touch, r, "write", { sample = MiB })
    vm.set_touch_hook(previous)
    assert.is_true(ok, t)
    assert.equal(4, #calls) -- 64 + 64 + 64 + 8 MiB
    for i, c in ipairs(calls) do
      assert.equal(math.min(i * 64 * MiB, 200 * MiB), c[1])
      assert.equal(200 * MiB, c[2])
      if i > 1 then assert.is_true(c[3] > calls[i - 1][3], "faults grow from piece to piece") end
    end
    -- the walk in pieces is the same walk: one fault per page, one sample per MiB
    assert.is_true(t.minor_faults >= t.pages * 0.98 and t.minor_faults <= t.pages * 1.02, t.minor_faults)
    assert.equal(201, #t.timeline)
    for i = 2, #t.timeline do assert.equal(t.timeline[i - 1].bytes + MiB, t.timeline[i].bytes) end
  end)

  it("set_touch_hook returns the previous hook, and nil removes it", function()
    local function f() end
    local before = vm.set_touch_hook(f)
    assert.equal(f, vm.set_touch_hook(nil))
    assert.is_nil(vm.set_touch_hook(before))
    assert.has_error(function() vm.set_touch_hook(42) end)
  end)

  it("an error in the hook stops the touch with that error", function()
    local r <close> = assert(vm.mmap(128 * MiB))
    local previous = vm.set_touch_hook(function() error("stop here") end)
    local ok, err = pcall(r.touch, r, "read")
    vm.set_touch_hook(previous)
    assert.is_false(ok)
    assert.matches("stop here", err)
  end)

  it("during_touches draws a bar for every touch and wipes it at the end", function()
    local out = { text = "" }
    function out:write(...) self.text = self.text .. table.concat({ ... }) end
    local stop = progress.during_touches { label = "demo", enabled = true, out = out }
    local r <close> = assert(vm.mmap(160 * MiB))
    r:touch("write")
    stop()
    assert.matches("demo .* of 160%.0 MiB", out.text)
    assert.matches("100%%", out.text)
    assert.matches("\r\27%[K$", out.text) -- wiped
    assert.is_nil(vm.set_touch_hook(nil)) -- and the hook is gone
  end)

  it("during_touches does nothing when the bar is not enabled", function()
    local out = { text = "" }
    function out:write(...) self.text = self.text .. table.concat({ ... }) end
    local stop = progress.during_touches { enabled = false, out = out }
    assert.is_nil(vm.set_touch_hook(nil))
    local r <close> = assert(vm.mmap(80 * MiB))
    r:touch("write")
    stop()
    assert.equal("", out.text)
  end)
end)
