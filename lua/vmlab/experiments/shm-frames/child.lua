--- The exec'd child of the shm-frames experiment:
--   lua5.4 .../vmlab/experiments/shm-frames/child.lua SHM_NAME PAGES
-- It opens the object by name (no O_CREAT), maps it wherever the kernel
-- likes, reads its first PAGES pages, and writes into the report area that
-- follows them: its mapping's address, its pid, and the frame number of
-- every page (or -1 when frame numbers are hidden), then what a process
-- without privilege sees: its mapping's smaps Shared_* bytes and the pages
-- PAGEMAP_SCAN calls file-backed/shared. See vmlab.experiments.shm-frames.
local root = arg and arg[0] and arg[0]:match("^(.*)/vmlab/experiments/shm%-frames/[^/]*$")
if root then package.path = root .. "/?.lua;" .. root .. "/?/init.lua;" .. package.path end
local vm = require "vmlab"

local name, pages = arg[1], math.tointeger(tonumber(arg[2] or ""))
if not (name and pages and pages > 0) then
  io.stderr:write("usage: child.lua SHM_NAME PAGES\n")
  os.exit(2)
end
local s, err = vm.shm_open(name)
if not s then
  io.stderr:write("shm-frames child: ", err, "\n")
  os.exit(1)
end
local report = pages * vm.page_size
if s.size < report + 24 + 8 * pages then
  io.stderr:write("shm-frames child: the object is too small for ", pages, " pages and a report\n")
  os.exit(1)
end
s:touch("read", { length = report })
local frames = s:frames(0, pages)
s:atomic_store(report, s.address)
s:atomic_store(report + 8, vm.getpid())
s:atomic_store(report + 16, frames and pages or -1)
for i = 1, pages do s:atomic_store(report + 16 + 8 * i, frames and frames[i] or 0) end
if s.size >= report + 40 + 8 * pages then
  local m = vm.proc.mapping_at(s.address)
  s:atomic_store(report + 24 + 8 * pages, m and ((m.Shared_Clean or 0) + (m.Shared_Dirty or 0)) or -1)
  local scan = s:scan(0, report)
  s:atomic_store(report + 32 + 8 * pages, scan and scan.file or -1)
end
s:close()
os.exit(0)
