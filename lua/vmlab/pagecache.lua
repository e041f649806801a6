--- The page cache from a lab script: scratch files written through it, and
-- dropping a file's pages from it so that the next read waits for the disk.
-- The file-mmap and madvise experiments use it.
-- @module vmlab.pagecache
local vm = require "vmlab"
local args = require "vmlab.args"

local M = {}

-- "bad argument #2 to 'pagecache.fill' (a size in bytes expected, got string)", at the caller.
local function bad_arg(fn, i, expected, v) args.bad("pagecache." .. fn, i, expected, v) end

--- Write `size` bytes, all `byte` (a one-character string), to the file at
-- `path` with write(2): the pages sit dirty in the page cache until written back.
function M.fill(path, size, byte)
  if type(path) ~= "string" then bad_arg("fill", 1, "string (a file name)", path) end
  if math.type(size) ~= "integer" or size < 0 then bad_arg("fill", 2, "a size in bytes (an integer >= 0)", size) end
  -- (this message as it was: spec/pagecache_spec.lua matches it)
  if type(byte) ~= "string" or #byte ~= 1 then error("byte must be a one-character string", 2) end
  local f = assert(io.open(path, "wb"))
  local chunk = string.rep(byte, 1 << 20)
  local left = size
  while left > 0 do
    local n = math.min(left, #chunk)
    f:write(n == #chunk and chunk or chunk:sub(1, n))
    left = left - n
  end
  assert(f:close())
end

--- Drop the file's pages from the page cache with
-- posix_fadvise(POSIX_FADV_DONTNEED). That drops clean pages only, and none a
-- mapping holds in its page tables: give a shared mapping `r` of the file to
-- write dirty pages back first (msync), and close mappings that touched it.
-- Returns how the cache was dropped, or nil, message.
function M.drop(path, r)
  if type(path) ~= "string" then bad_arg("drop", 1, "string (a file name)", path) end
  if r ~= nil and not args.is_a(r, "vmlab.Region") then
    bad_arg("drop", 2, "a region or nil", r)
  end
  if r then
    local ok, err = r:sync()
    if not ok then return nil, err end
  end
  local ok, err = vm.fadvise(path, "dontneed")
  if not ok then return nil, err end
  return "posix_fadvise(POSIX_FADV_DONTNEED)"
end

return M
