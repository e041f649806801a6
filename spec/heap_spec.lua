-- The heap: malloc, calloc, realloc, free and malloc_trim as regions.
local vm = require "vmlab"
local kernel = require "vmlab.kernel"
require "vmlab.assert"

local PAGE = vm.page_size

describe("heap blocks", function()
  it("malloc gives a block the same methods as a mapping", function()
    local h <close> = assert(vm.malloc(100))
    assert.equal("heap", h.kind)
    assert.equal(100, h.size)
    h:write(0, "abc")
    assert.equal("abc", h:read(0, 3))
    assert.matches("vmlab.Region heap", tostring(h))
  end)

  it("a large malloc is lazy: writing it faults once per page", function()
    local size = 64 * 1024 * 1024
    local h <close> = assert(vm.malloc(size))
    -- a fault per base page even where THP is "always" (advice on a block covers its whole pages)
    h:advise("nohugepage")
    -- glibc serves this with mmap; the first page holds malloc's header and is already there (with THP
    -- "always" its write may have faulted in a whole huge page: those pages do not fault again)
    local already = h:resident()
    assert.faults_near(size // PAGE - already, function() h:touch("write") end, "3%")
  end)

  it("calloc of a large block costs no RSS until touched", function()
    local h <close> = assert(vm.calloc((64 << 20) // PAGE, PAGE))
    local resident = h:resident()
    -- malloc's header write faults one page in, or one huge page where THP is "always"
    local k = kernel()
    local most = k.thp_enabled == "always" and math.max(2, (k.huge_page_size or 0) // PAGE) or 2
    assert.is_true(resident <= most, resident .. " pages resident right after calloc (THP " .. k.thp_enabled .. ")")
    assert.equal(("\0"):rep(16), h:read(PAGE * 100, 16))
  end)

  it("realloc keeps the contents and may move the block", function()
    local h <close> = assert(vm.malloc(64))
    h:write(0, "keep me")
    local same, old = h:realloc(8 * 1024 * 1024)
    assert.equal(h, same)
    assert.is_number(old)
    assert.equal(8 * 1024 * 1024, h.size)
    assert.equal("keep me", h:read(0, 7))
  end)

  it("malloc_trim and mallinfo answer", function()
    assert.is_boolean(vm.malloc_trim())
    local mi = vm.mallinfo()
    assert.is_true(mi.arena >= 0 and mi.in_use >= 0)
  end)

  it("an impossible allocation returns nil, a message and errno", function()
    local h, msg, errno = vm.malloc(1 << 60)
    assert.is_nil(h)
    assert.equal("malloc: Cannot allocate memory", msg)
    assert.equal(12, errno)
    local h2 = vm.malloc(64)
    local ok, msg2 = h2:realloc(1 << 60)
    assert.is_nil(ok)
    assert.equal("realloc: Cannot allocate memory", msg2)
    assert.equal(64, h2.size) -- the old block is still there
    h2:close()
  end)

  it("bad arguments raise errors naming them", function()
    assert.has_error(function() vm.malloc(0) end, "bad argument #1 to 'malloc' (size must be positive)")
    assert.has_error(function() vm.calloc(1, -1) end, "bad argument #2 to 'calloc' (size must be positive)")
    assert.has_error(function() vm.calloc(1 << 40, 1 << 40) end, "bad argument #2 to 'calloc' (n * size is too large)")
    local h <close> = assert(vm.malloc(PAGE))
    assert.has_error(function() h:protect("r") end)
    assert.has_error(function() h:realloc(0) end)
    local r <close> = assert(vm.mmap(PAGE))
    assert.has_error(function() r:realloc(2 * PAGE) end)
  end)

  it("a block can be closed (freed) once; using it afterwards raises", function()
    local h = assert(vm.malloc(PAGE))
    h:close()
    h:close()
    assert.has_error(function() h:read(0, 1) end, "attempt to use a closed region")
    assert.has_error(function() h:realloc(10) end, "attempt to use a closed region")
  end)
end)
