rockspec_format = "3.0"
package = "vmlab"
version = "scm-1"
source = { url = "git+file:///work/main" }
description = {
  summary = "Virtual-memory experiments on Linux from Lua: page faults, the zero page, copy-on-write, shared memory",
  detailed = [[
vmlab is a Lua 5.4 module in C for watching how memory really works: lazy allocation, first-touch page faults,
the shared zero page, copy-on-write after fork, POSIX shared memory seen at two addresses on the same frames, and
a parent/child protocol that sums numbers through shared memory. Numbers come from the kernel itself
(getrusage, perf_event_open, /proc/self/status, smaps, pagemap).
]],
  license = "MIT",
  labels = { "linux", "memory", "mmap", "education" },
}
supported_platforms = { "linux" }
dependencies = { "lua >= 5.4, < 5.5" }
build = {
  type = "builtin",
  modules = {
    ["vmlab.core"] = {
      sources = { "csrc/core.c", "csrc/guard.c", "csrc/region.c", "csrc/heap.c", "csrc/process.c",
                  "csrc/shm.c", "csrc/counters.c", "csrc/lab.c" },
      defines = { "_GNU_SOURCE" },
      libraries = { "rt", "pthread" },
      incdirs = { "csrc" },
    },
    ["vmlab"] = "lua/vmlab/init.lua",
    ["vmlab.units"] = "lua/vmlab/units.lua",
    ["vmlab.cli"] = "lua/vmlab/cli/init.lua",
  },
  install = { bin = { vmlab = "bin/vmlab" } },
}
