--- vmlab.cgroup: this process's memory cgroup, and small groups of vmlab's
-- own with a memory limit (the oom experiment). Works with the cgroup v1
-- memory controller (memory.limit_in_bytes, memory.oom_control) and with v2
-- (memory.max, memory.events); see the kernel's admin-guide/cgroup-v1/memory.rst
-- and admin-guide/cgroup-v2.rst.
--
--     local cgroup = require "vmlab.cgroup"
--     local m = cgroup.memory()      --> { version = 1, path = "/user.slice/...", dir = "/sys/fs/cgroup/memory/...",
--                                    --    limit = math.huge, how = "..." } or nil, why
--     local g <close> = assert(cgroup.create("oom", 64 << 20))   -- vmlab-oom-<pid>-<n>, removed on close
--     g:add(child.pid); g:events() --> { oom_kill = 1, ... }
-- Groups are named vmlab-<what>-<pid>-<n>; cgroup.sweep(what) removes those whose
-- creator is gone (after a SIGKILL, say), and an undo watcher (vmlab.undo)
-- removes each group when its creator dies.
-- @module vmlab.cgroup
local core = require "vmlab.core"

local M = {}

local proc = require "vmlab.proc"
local slurp, first_line, exists = proc.read_file, proc.first_line, proc.exists



local function write(path, value)
  local f, err = io.open(path, "w")
  if not f then return nil, err end
  local ok, werr = f:write(tostring(value), "\n")
  local cok, cerr = f:close()
  if not ok then return nil, ("%s: %s"):format(path, tostring(werr)) end
  if not cok then return nil, ("%s: %s"):format(path, tostring(cerr)) end
  return true
end

--- This process's memory cgroup: { version = 1 | 2, path = (in the hierarchy),
-- mount = (where the hierarchy is mounted), dir = (mount .. path), limit = bytes
-- or math.huge, how = "..." }, or nil and why there is none.
function M.memory()
  local v1path, v2path
  for _, e in ipairs(proc.cgroup() or {}) do
    if e.id == 0 and #e.controllers == 0 then v2path = e.path end
    for _, c in ipairs(e.controllers) do
      if c == "memory" then v1path = e.path end
    end
  end
  local v1mount, v2mount
  for _, m in ipairs(proc.mountinfo() or {}) do
    if m.fstype == "cgroup2" and not v2mount then v2mount = m.mountpoint end
    if m.fstype == "cgroup" and (("," .. m.super_options .. ","):find(",memory,", 1, true)) then
      v1mount = m.mountpoint
    end
  end
  local function dir(mount, path) return mount .. (path == "/" and "" or path) end
  if v1path and v1mount then
    local d = dir(v1mount, v1path)
    local limit = math.tointeger(tonumber(first_line(d .. "/memory.limit_in_bytes") or ""))
    if limit and limit >= (1 << 62) then limit = math.huge end -- v1 writes "no limit" as a huge number
    return { version = 1, path = v1path, mount = v1mount, dir = d, limit = limit,
      how = "read: /proc/self/cgroup names a v1 memory controller, mounted at " .. v1mount }
  elseif v2path and v2mount then
    local d = dir(v2mount, v2path)
    local max = first_line(d .. "/memory.max")
    return { version = 2, path = v2path, mount = v2mount, dir = d,
      limit = max == "max" and math.huge or math.tointeger(tonumber(max or "")),
      how = "read: /proc/self/cgroup has a v2 entry, mounted at " .. v2mount }
  end
  return nil, "read: /proc/self/cgroup names no memory controller"
end

local Group = {}
Group.__index = Group

local counter = 0

-- Where a new group may go, best first: under our own group (delegation,
-- containers), then at the hierarchy's root (v2: only there is the memory
-- controller surely enabled for children).
local function parents(m)
  local list = {}
  if m.version == 1 then list[#list + 1] = m.dir end
  if m.version == 2 then
    local ctl = slurp(m.dir .. "/cgroup.subtree_control") or ""
    if ctl:find("memory", 1, true) then list[#list + 1] = m.dir end
  end
  if m.dir ~= m.mount then
    local ctl = m.version == 2 and (slurp(m.mount .. "/cgroup.subtree_control") or "") or "memory"
    if ctl:find("memory", 1, true) then list[#list + 1] = m.mount end
  end
  return list
end

--- A new memory cgroup `vmlab-<what>-<pid>-<n>` limited to `limit` bytes (no
-- swap either where the kernel accounts it), guarded by an undo watcher that
-- removes it if this process dies first.
-- @return the group, or nil and why it cannot be made (not root, read-only
--   cgroupfs, no memory controller)
function M.create(what, limit)
  if type(what) ~= "string" or not what:match("^[%w_]+$") or #what > 32 then
    error("bad argument #1 to 'create' (a short name of letters, digits and _ expected)", 2)
  end
  if math.type(limit) ~= "integer" or limit < 1 then
    error("bad argument #2 to 'create' (a limit in bytes, a positive integer, expected)", 2)
  end
  local m, why = M.memory()
  if not m then return nil, why end
  local undo = require("vmlab.undo")
  local tried = {}
  for _, parent in ipairs(parents(m)) do
    counter = counter + 1
    local name = ("vmlab-%s-%d-%d"):format(what, core.getpid(), counter)
    local d = parent .. "/" .. name
    local u = undo.new("cgroup " .. name)
    u:command("rmdir " .. undo.quote(d))
    local ok, err = u:arm()
    if ok then ok = os.execute("mkdir " .. undo.quote(d) .. " 2>/dev/null") end
    if ok then
      local g = setmetatable({ dir = d, name = name, version = m.version, undo = u, limit = limit }, Group)
      local lok, lerr
      if m.version == 1 then
        lok, lerr = write(d .. "/memory.limit_in_bytes", limit)
        local memsw = d .. "/memory.memsw.limit_in_bytes"
        if lok and exists(memsw) then write(memsw, limit) end
      else
        lok, lerr = write(d .. "/memory.max", limit)
        if lok and exists(d .. "/memory.swap.max") then write(d .. "/memory.swap.max", 0) end
      end
      if lok then return g end
      g:remove()
      err = lerr
    else
      u:run()
    end
    tried[#tried + 1] = ("%s: %s"):format(d, tostring(err or "mkdir failed"))
  end
  if #tried == 0 then
    return nil, ("no place for a memory cgroup: the v%d hierarchy at %s has no memory controller for children")
      :format(m.version, m.mount)
  end
  return nil, "cannot make a memory cgroup (" .. table.concat(tried, "; ") .. ")"
end

--- Move process `pid` into the group.
function Group:add(pid)
  return write(self.dir .. "/cgroup.procs", pid)
end

--- The group's counters: { oom_kill=, oom=, max= (times the limit was hit),
-- usage=, max_usage= (v1) } as far as the version has them.
function Group:events()
  local t = {}
  if self.version == 1 then
    for k, v in (slurp(self.dir .. "/memory.oom_control") or ""):gmatch("(%S+)%s+(%d+)") do t[k] = tonumber(v) end
    t.max = tonumber(first_line(self.dir .. "/memory.failcnt") or "")
    t.max_usage = tonumber(first_line(self.dir .. "/memory.max_usage_in_bytes") or "")
    t.usage = tonumber(first_line(self.dir .. "/memory.usage_in_bytes") or "")
  else
    for k, v in (slurp(self.dir .. "/memory.events") or ""):gmatch("(%S+)%s+(%d+)") do t[k] = tonumber(v) end
    t.usage = tonumber(first_line(self.dir .. "/memory.current") or "")
    t.max_usage = tonumber(first_line(self.dir .. "/memory.peak") or "")
  end
  return t
end

--- Remove the group (its processes must have ended); safe to call twice.
function Group:remove()
  if self.removed then return true end
  self.removed = true
  return self.undo:run()
end

Group.__close = Group.remove
Group.__gc = Group.remove

--- Remove groups `vmlab-<what>-<pid>-<n>` whose creator pid is gone (left by a
-- SIGKILL of both the creator and its undo watcher). Only empty groups can be removed.
function M.sweep(what)
  if type(what) ~= "string" or not what:match("^[%w_]+$") then
    error("bad argument #1 to 'sweep' (a name of letters, digits and _ expected)", 2)
  end
  local m = M.memory()
  if not m then return 0 end
  local removed = 0
  for _, parent in ipairs(parents(m)) do
    for _, name in ipairs(core.listdir(parent) or {}) do
      local pid = name:match("^vmlab%-" .. what .. "%-(%d+)%-%d+$")
      pid = pid and math.tointeger(tonumber(pid))
      if pid and pid ~= core.getpid() and not proc.alive(pid) then
        if os.execute("rmdir " .. require("vmlab.undo").quote(parent .. "/" .. name) .. " 2>/dev/null") then
          removed = removed + 1
        end
      end
    end
  end
  return removed
end

return M
