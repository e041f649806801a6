-- Lab: the OOM killer. A child writes past its memory cgroup's limit and the
-- kernel kills it; the same child under RLIMIT_AS sees malloc return NULL.
-- Run as root from a built checkout:  lua5.4 examples/oom.lua
-- (without root no cgroup can be made: only the RLIMIT_AS half runs, and the claims say so)
local root = (arg and arg[0] or ""):match("^(.*)/examples/[^/]*$") or "."
package.path = root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;" .. package.path
package.cpath = root .. "/build/?.so;" .. package.cpath
local units = require "vmlab.units"
local experiments = require "vmlab.experiments"
local report = require "vmlab.report"

local MiB = 1024 * 1024

-- Step 1. A 32 MiB group, a child that tries to write 128 MiB, a MiB at a time.
local r = experiments.run("oom", { limit = 32 * MiB, write = 128 * MiB })

-- Step 2. What the child managed before the end, MiB by MiB (RSS as it noted it).
if r.cgroup then
  print(("group %s (cgroup v%d), the child's oom_score before: %d"):format(r.cgroup_dir, r.cgroup.version,
    r.cgroup.oom_score_before))
  local tl = r.timeline
  for i = 1, #tl, math.max(1, #tl // 8) do
    print(("  after %10s written   RSS %10s"):format(units.bytes(tl[i].bytes), units.bytes(tl[i].rss)))
  end
  print(("  the end: %s, oom_kill %s"):format(r.cgroup.signaled and ("killed by " .. tostring(r.cgroup.signal))
    or ("exit code " .. tostring(r.cgroup.exit_code)), tostring(r.cgroup.oom_kill)))
  if r.kernel_log_found then print("  the kernel's log: " .. r.kernel_log) end
else
  print("no memory cgroup: " .. tostring(r.cgroup_refused))
end
if r.rlimit then
  print(("RLIMIT_AS child: malloc'd %s, then %s"):format(units.bytes(r.rlimit.bytes_written),
    tostring(r.rlimit.malloc_error or "no failure")))
end

-- Step 3. The claims, decided from these numbers.
for _, line in ipairs(report.claims_lines({}, r, experiments.get("oom"))) do print(line) end
