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
    local pages = 4096
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
