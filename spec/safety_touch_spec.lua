-- Regressions of issue 9 (families 1, 2, 3, 7): r:touch never writes outside
-- what it walks, never changes memory others see in read mode, never walks on
-- through a region its hook closed or changed, checks the size of its
-- timeline, and calls its hook every ~64 MiB whatever the stride.
local vm = require "vmlab"

local MiB = 1 << 20

-- Run fn in a child; what it returned and its status (a crash is a status,
-- not a dead test runner).
local function in_child(fn)
  return vm.child.run(fn, { timeout = 60 })
end

describe("safety: touch", function()
  after_each(function() vm.set_touch_hook(nil) end)

  it("a pointer chase writes its chain only inside the range it walks, never past its end", function()
    local r <close> = assert(vm.mmap(vm.page_size))
    r:fill(0xAA)
    -- 9 bytes with a stride of 8: one whole 8-byte slot (at 0); bytes 8.. are not walked
    local t = r:touch("read", { order = "chase", stride = 8, length = 9 })
    assert.equal(1, t.pages)
    assert.equal(("\xAA"):rep(64), r:read(8, 64))
    -- a 9-byte heap block: the chain stays inside the block (ASan sees any overflow)
    local h <close> = assert(vm.malloc(9))
    assert.equal(1, h:touch("read", { order = "chase", stride = 8 }).pages)
    -- too short for one slot
    assert.has_error(function() h:touch("read", { order = "chase", stride = 8, offset = 8 }) end)
  end)

  it("a pointer chase in read mode refuses a shared file mapping and leaves the file as it was", function()
    local path = os.tmpname()
    local f = assert(io.open(path, "wb"))
    local text = ("vmlab\n"):rep(4 * vm.page_size // 6 + 1):sub(1, 4 * vm.page_size)
    f:write(text)
    f:close()
    local r <close> = assert(vm.mmap(nil, { file = path, share = "shared" }))
    local ok, err = pcall(r.touch, r, "read", { order = "chase" })
    r:close()
    f = assert(io.open(path, "rb"))
    local after = f:read("a")
    f:close()
    os.remove(path)
    assert.is_false(ok)
    assert.matches("shared", err)
    assert.equal(text, after)
  end)

  it("a pointer chase refuses shared anonymous memory and read-only regions with a clear error", function()
    local s <close> = assert(vm.mmap(4 * vm.page_size, { share = "shared" }))
    assert.has_error(function() s:touch("read", { order = "chase" }) end)
    local ro <close> = assert(vm.mmap(4 * vm.page_size, { prot = "r" }))
    local ok, err = pcall(ro.touch, ro, "read", { order = "chase" })
    assert.is_false(ok)
    assert.matches("writable", err)
  end)

  it("a touch hook cannot close the region being walked: close raises 'in use by touch'; the walk finishes", function()
    local result, status = in_child(function()
      local r = assert(vm.mmap(160 * MiB, { noreserve = true }))
      local refused = {}
      vm.set_touch_hook(function()
        local ok, err = pcall(r.close, r)
        refused[#refused + 1] = not ok and err:match("in use by touch") ~= nil
      end)
      local t = r:touch("write")
      vm.set_touch_hook(nil)
      local closed_after = r:close() == nil and r.closed
      return { pages = t.pages, refused = refused, closed_after = closed_after }
    end)
    assert.is_nil(status.error)
    assert.is_true(status.exited, "the child died by " .. tostring(status.signal_name))
    assert.equal(160 * MiB // vm.page_size, result.pages)
    assert.is_true(#result.refused >= 2)
    for _, refused in ipairs(result.refused) do assert.is_true(refused) end
    assert.is_true(result.closed_after)
  end)

  it("a touch hook cannot realloc, protect or drop the pages of the region being walked", function()
    local result, status = in_child(function()
      local h = assert(vm.malloc(130 * MiB))
      local r = assert(vm.mmap(130 * MiB))
      local errs = {}
      vm.set_touch_hook(function()
        errs[#errs + 1] = select(2, pcall(h.realloc, h, 16))
      end)
      h:touch("write")
      vm.set_touch_hook(function()
        errs[#errs + 1] = select(2, pcall(r.protect, r, "none"))
        errs[#errs + 1] = select(2, pcall(r.advise, r, "dontneed"))
      end)
      r:touch("write")
      vm.set_touch_hook(nil)
      -- after the walk, all of it works again
      assert(h:realloc(16))
      assert(r:protect("r"))
      h:close()
      r:close()
      return errs
    end)
    assert.is_nil(status.error)
    assert.is_true(status.exited, "the child died by " .. tostring(status.signal_name))
    assert.is_true(#result >= 6)
    for _, e in ipairs(result) do assert.matches("in use by touch", e) end
  end)

  it("an options table whose __index closes or shrinks the region does not make touch walk freed memory", function()
    local r = assert(vm.mmap(64 * vm.page_size))
    local opts = setmetatable({}, { __index = function(_, k) if k == "seed" then r:close() end end })
    local ok, err = pcall(r.touch, r, "write", opts)
    assert.is_false(ok)
    assert.matches("closed", err)
    local h <close> = assert(vm.malloc(1 << 20))
    local shrink = setmetatable({}, { __index = function(_, k) if k == "seed" then h:realloc(16) end end })
    ok, err = pcall(h.touch, h, "write", shrink)
    assert.is_false(ok)
    assert.matches("changed", err)
  end)

  it("an error in the touch hook ends the walk and gives the region back", function()
    local r <close> = assert(vm.mmap(130 * MiB, { noreserve = true }))
    vm.set_touch_hook(function() error("stop here") end)
    assert.has_error(function() r:touch("read") end, nil)
    vm.set_touch_hook(nil)
    assert(r:protect("r"))
    r:close()
    assert.is_true(r.closed)
  end)

  it("a timeline too large to hold raises instead of overflowing its buffer", function()
    local result, status = in_child(function()
      local r, merr = vm.mmap(4129981496591, { noreserve = true })
      if not r then return { refused = merr } end -- strict overcommit (policy 2) charges even noreserve
      local ok, err = pcall(r.touch, r, "read", { stride = 1, sample = 1, passes = 93053 })
      local ok2, err2 = pcall(r.touch, r, "read", { stride = 1, sample = 1 })
      return { ok = ok, err = err, ok2 = ok2, err2 = err2 }
    end)
    assert.is_nil(status.error)
    if result and result.refused then
      local policy = require("vmlab.kernel")().overcommit_memory
      assert.equal(2, policy, "a 3.75 TiB noreserve mapping was refused under overcommit policy " .. tostring(policy))
      return require("vmlab.assert").pending("overcommit 2 refuses the 3.75 TiB mapping: " .. tostring(result.refused))
    end
    assert.is_true(status.exited, "the child died by " .. tostring(status.signal_name))
    assert.is_false(result.ok)
    assert.matches("bad option 'sample'", result.err)
    assert.is_false(result.ok2)
    assert.matches("bad option 'sample'", result.err2)
  end)

  it("length x passes that does not fit raises naming the option", function()
    -- PROT_NONE: were the size not checked, the first access would fault (and raise) at once
    local r <close> = assert(vm.mmap(1 << 44, { noreserve = true, prot = "none" }))
    local ok, err = pcall(r.touch, r, "read", { passes = 1000000 })
    assert.is_false(ok)
    assert.matches("passes", err)
  end)

  it("with a stride over 64 MiB, r:touch under a touch hook returns and the hook sees the walk end", function()
    local result, status = in_child(function()
      local r = assert(vm.mmap(256 * MiB, { noreserve = true }))
      local seen = {}
      vm.set_touch_hook(function(done, total) seen[#seen + 1] = { done, total } end)
      local t = r:touch("read", { stride = 128 * MiB })
      local many = r:touch("read", { stride = 128 * MiB, passes = 20000 }) -- 40,000 accesses
      return { pages = t.pages, seen = seen, many = many.pages }
    end)
    assert.is_false(status.timed_out or false, "r:touch never returned")
    assert.is_nil(status.error)
    assert.equal(2, result.pages)
    assert.equal(40000, result.many)
    -- the hook runs after pieces of at least 16384 accesses: 1 for the first walk, 3 for the second
    assert.equal(4, #result.seen)
    assert.same({ 256 * MiB, 256 * MiB }, result.seen[1])
    assert.same({ 20000 * 256 * MiB, 20000 * 256 * MiB }, result.seen[4])
  end)

  it("without sample, a touch hook runs about every 64 MiB, not once at the end", function()
    local r <close> = assert(vm.mmap(256 * MiB, { noreserve = true }))
    local seen = {}
    vm.set_touch_hook(function(done, total) seen[#seen + 1] = { done, total } end)
    r:touch("read")
    vm.set_touch_hook(nil)
    assert.equal(4, #seen)
    for i, s in ipairs(seen) do
      assert.equal(i * 64 * MiB, s[1])
      assert.equal(256 * MiB, s[2])
    end
  end)

  it("a touch hook with sample keeps the timeline the same as without a hook", function()
    local r <close> = assert(vm.mmap(200 * MiB, { noreserve = true }))
    local calls = 0
    vm.set_touch_hook(function() calls = calls + 1 end)
    local t = r:touch("read", { sample = 16 * MiB })
    vm.set_touch_hook(nil)
    assert.is_true(calls >= 3)
    local plain = r:touch("read", { sample = 16 * MiB })
    assert.equal(#plain.timeline, #t.timeline)
    for i, s in ipairs(t.timeline) do assert.equal(plain.timeline[i].bytes, s.bytes) end
  end)
end)
