-- Lab: KSM -- identical pages merged into one frame, and a write taking one apart again.
-- Run from a built checkout:  lua5.4 examples/ksm.lua
-- KSM must run (/sys/kernel/mm/ksm/run = 1), or this must run as root: then
-- KSM is started for the run and its settings are put back afterwards.
local root = (arg and arg[0] or ""):match("^(.*)/examples/[^/]*$") or "."
package.path = root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;" .. package.path
package.cpath = root .. "/build/?.so;" .. package.cpath
local units = require "vmlab.units"
local experiments = require "vmlab.experiments"
local report = require "vmlab.report"

-- Step 1. Is KSM built in, is it running?
local k = require("vmlab.kernel")()
print(("KSM: %s, run = %s, root: %s"):format(k.ksm and "built in" or "not in this kernel", tostring(k.ksm_run),
  k.root and "yes" or "no"))

-- Step 2. 32 pages of the same bytes, and 32 pages each different, advised MADV_MERGEABLE.
local function show(label, t)
  if not t then return end
  print(("  %-12s frames %s, exclusive pages %s, merged (ksm_stat) %s, Rss %s, Pss %s"):format(label,
    tostring(t.distinct_frames or "hidden"), tostring(t.exclusive_pages or "?"), tostring(t.merging_pages or "?"),
    units.bytes(t.rss or 0), units.bytes(t.pss or 0)))
end
local results = {}
for _, content in ipairs { "same", "distinct" } do
  local r = experiments.run("ksm", { size = 32 * require("vmlab").page_size, content = content, timeout = 4 })
  results[content] = r
  print(("%s contents:%s"):format(content, r.ksm_refused and (" not measured: " .. r.ksm_refused) or ""))
  show("before", r.before)
  show("merged", r.merged)
  -- Step 3. Write one page: how many faults, and does it get its own frame?
  if r.after_write then
    print(("  write to page 0: %d fault(s); its frame %s -> %s"):format(r.write_faults, tostring(r.merged.frame0),
      tostring(r.after_write.frame0)))
    show("after write", r.after_write)
  end
end

-- Step 4. What the lab claims, each decided from these numbers (identical pages first, then distinct ones):
for _, content in ipairs { "same", "distinct" } do
  print(("\n%s contents:"):format(content))
  print(table.concat(report.claims_lines({}, results[content], experiments.get("ksm")), "\n"))
end

-- The same, with every number:  bin/vmlab run ksm [--content distinct]
