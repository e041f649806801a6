rockspec_format = "3.0"
package = "vmlab"
version = "scm-1"
-- No public repository exists yet: this url is a placeholder for the project's git url.
source = { url = "git+https://github.com/vmlab/vmlab.git" }
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
dependencies = {
  "lua >= 5.4, < 5.5",
  "argparse >= 0.7, < 1", -- every vmlab command line (Debian: lua-argparse)
  "lua-cjson >= 2.1",     -- the JSON records (Debian: lua-cjson)
}
test_dependencies = { "busted >= 2" } -- vmlab.assert (for specs) uses luassert and say, which come with busted
build = {
  type = "builtin",
  modules = {
    ["vmlab.core"] = {
      sources = { "csrc/basics.c",
                  "csrc/blocks.c",
                  "csrc/core.c",
                  "csrc/counters.c",
                  "csrc/faultsample.c",
                  "csrc/frames.c",
                  "csrc/guard.c",
                  "csrc/heap.c",
                  "csrc/ipc.c",
                  "csrc/lab.c",
                  "csrc/pagecache.c",
                  "csrc/process.c",
                  "csrc/region.c",
                  "csrc/shm.c",
                  "csrc/spawn.c",
                  "csrc/sum.c",
                  "csrc/support.c",
                  "csrc/touch.c" },
      defines = { "_GNU_SOURCE" },
      libraries = { "rt", "pthread", "dl" },
      incdirs = { "csrc" },
    },
    ["vmlab.assert"] = "lua/vmlab/assert.lua",
    ["vmlab.cgroup"] = "lua/vmlab/cgroup.lua",
    ["vmlab.child"] = "lua/vmlab/child.lua",
    ["vmlab.html"] = "lua/vmlab/html.lua",
    ["vmlab.kernel"] = "lua/vmlab/kernel.lua",
    ["vmlab.cli"] = "lua/vmlab/cli/init.lua",
    ["vmlab.cli.info"] = "lua/vmlab/cli/info.lua",
    ["vmlab.cli.list"] = "lua/vmlab/cli/list.lua",
    ["vmlab.cli.maps"] = "lua/vmlab/cli/maps.lua",
    ["vmlab.cli.memtest"] = "lua/vmlab/cli/memtest.lua",
    ["vmlab.cli.report"] = "lua/vmlab/cli/report.lua",
    ["vmlab.cli.run"] = "lua/vmlab/cli/run.lua",
    ["vmlab.cli.suggest"] = "lua/vmlab/cli/suggest.lua",
    ["vmlab.cli.sum"] = "lua/vmlab/cli/sum.lua",
    ["vmlab.cli.tour"] = "lua/vmlab/cli/tour.lua",
    ["vmlab.cli.watch"] = "lua/vmlab/cli/watch.lua",
    ["vmlab.experiments.allocators"] = "lua/vmlab/experiments/allocators.lua",
    ["vmlab.experiments.allocators.child"] = "lua/vmlab/experiments/allocators/child.lua",
    ["vmlab.experiments.calloc-realloc"] = "lua/vmlab/experiments/calloc-realloc.lua",
    ["vmlab.experiments.cow"] = "lua/vmlab/experiments/cow.lua",
    ["vmlab.experiments.faults"] = "lua/vmlab/experiments/faults.lua",
    ["vmlab.experiments.file-mmap"] = "lua/vmlab/experiments/file-mmap.lua",
    ["vmlab.experiments"] = "lua/vmlab/experiments/init.lua",
    ["vmlab.experiments.ipc"] = "lua/vmlab/experiments/ipc.lua",
    ["vmlab.experiments.ksm"] = "lua/vmlab/experiments/ksm.lua",
    ["vmlab.experiments.lazy"] = "lua/vmlab/experiments/lazy.lua",
    ["vmlab.experiments.madvise"] = "lua/vmlab/experiments/madvise.lua",
    ["vmlab.experiments.mlock"] = "lua/vmlab/experiments/mlock.lua",
    ["vmlab.experiments.oom"] = "lua/vmlab/experiments/oom.lua",
    ["vmlab.experiments.overcommit"] = "lua/vmlab/experiments/overcommit.lua",
    ["vmlab.experiments.page-table"] = "lua/vmlab/experiments/page-table.lua",
    ["vmlab.experiments.race"] = "lua/vmlab/experiments/race.lua",
    ["vmlab.experiments.read-write"] = "lua/vmlab/experiments/read-write.lua",
    ["vmlab.experiments.regions"] = "lua/vmlab/experiments/regions.lua",
    ["vmlab.experiments.segfault"] = "lua/vmlab/experiments/segfault.lua",
    ["vmlab.experiments.shm-frames"] = "lua/vmlab/experiments/shm-frames.lua",
    ["vmlab.experiments.shm-frames.child"] = "lua/vmlab/experiments/shm-frames/child.lua",
    ["vmlab.experiments.stack-guard"] = "lua/vmlab/experiments/stack-guard.lua",
    ["vmlab.experiments.swap"] = "lua/vmlab/experiments/swap.lua",
    ["vmlab.experiments.thp"] = "lua/vmlab/experiments/thp.lua",
    ["vmlab.experiments.tlb"] = "lua/vmlab/experiments/tlb.lua",
    ["vmlab.faults"] = "lua/vmlab/faults.lua",
    ["vmlab"] = "lua/vmlab/init.lua",
    ["vmlab.describe"] = "lua/vmlab/describe.lua",
    ["vmlab.pagecache"] = "lua/vmlab/pagecache.lua",
    ["vmlab.plot"] = "lua/vmlab/plot.lua",
    ["vmlab.proc"] = "lua/vmlab/proc.lua",
    ["vmlab.args"] = "lua/vmlab/args.lua",
    ["vmlab.progress"] = "lua/vmlab/progress.lua",
    ["vmlab.record"] = "lua/vmlab/record.lua",
    ["vmlab.report"] = "lua/vmlab/report.lua",
    ["vmlab.self"] = "lua/vmlab/self.lua",
    ["vmlab.sum.child"] = "lua/vmlab/sum/child.lua",
    ["vmlab.sum.child_main"] = "lua/vmlab/sum/child_main.lua",
    ["vmlab.sum.names"] = "lua/vmlab/sum/names.lua",
    ["vmlab.sum.parent"] = "lua/vmlab/sum/parent.lua",
    ["vmlab.sum.ring"] = "lua/vmlab/sum/ring.lua",
    ["vmlab.undo"] = "lua/vmlab/undo.lua",
    ["vmlab.units"] = "lua/vmlab/units.lua",
  },
  install = { bin = { vmlab = "bin/vmlab" } },
  -- doc/vmlab.1 (the man page) and doc/vmlab.bash-completion, generated by tools/gen-doc.lua, go into the
  -- rock's doc/ directory (`luarocks doc vmlab`; man -l .../doc/vmlab.1; source the completion)
  copy_directories = { "doc" },
}
