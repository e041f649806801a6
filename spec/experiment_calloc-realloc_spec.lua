-- The calloc-realloc experiment: large blocks are mmap'd, lazily, and remapped when grown.
local experiments = require "vmlab.experiments"

local SANITIZED = os.getenv("VMLAB_SANITIZED") == "1"
local MiB = 1024 * 1024
local SIZE = 64 * MiB

describe("the calloc-realloc experiment", function()
  local res
  setup(function() res = experiments.run("calloc-realloc", { size = SIZE }) end)

  it("a large calloc does not grow RSS: nothing is cleared or touched", function()
    -- ASan's calloc marks the block's shadow memory (1 byte per 8): up to SIZE/8 of RSS.
    local limit = SANITIZED and SIZE // 8 + 4 * MiB or SIZE // 32
    assert.is_true(res.rss_growth_calloc < limit, "RSS grew by " .. res.rss_growth_calloc)
  end)

  it("calloc'd memory reads as zeros, reading it maps no memory, writing it grows RSS by the size", function()
    assert.is_true(res.calloc_zeros)
    assert.is_true(res.rss_growth_read < SIZE // 32, "reading grew RSS by " .. res.rss_growth_read)
    assert.is_true(res.rss_growth_write >= SIZE * 0.9, "writing grew RSS by " .. res.rss_growth_write)
  end)

  it("malloc serves a large block with its own mmap", function()
    if SANITIZED then
      return pending("under AddressSanitizer malloc is ASan's allocator; glibc's mallinfo does not see it")
    end
    assert.equal(1, res.mmapped_blocks_growth)
    assert.is_true(res.mmapped_growth >= SIZE)
  end)

  it("realloc keeps the data", function()
    assert.is_true(res.data_intact)
    assert.equal("integer", math.type(res.old_address))
    assert.equal("integer", math.type(res.new_address))
  end)

  it("growing a large block copies nothing: RSS does not grow by the block's size", function()
    if SANITIZED then return pending("under AddressSanitizer realloc always allocates anew and copies") end
    assert.is_true(res.rss_growth_realloc < SIZE // 8, "RSS grew by " .. res.rss_growth_realloc)
  end)
end)
