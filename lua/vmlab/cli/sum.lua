--- `vmlab sum`: the lab's parent/child number summing over POSIX shared memory.
--
--   vmlab sum [--out FILE] [--sync futex|poll|sem] [--keep] < numbers.txt
--
-- One result line per input line on standard output, or in FILE with --out
-- (created or replaced: the user named it): the sum, or "error: ..."
-- naming the bad token and its column. At the end, on stderr: lines,
-- numbers, error lines, seconds, lines per second.
-- Exit status: 0 every line was processed; 1 the protocol failed (the child
-- died, input could not be read, the output could not be written, ...);
-- 2 bad usage (also: a closed standard input, an output that cannot be
-- opened); 128+n stopped by signal n (130 for SIGINT, 143 for SIGTERM)
-- after both processes cleaned up.
local parent = require "vmlab.sum.parent"

local M = { summary = "sum lines of numbers in a child over POSIX shared memory (lab section 8)" }

function M.parser()
  local p = require("vmlab.cli").new("vmlab sum",
    "Sum each line of numbers from stdin in a child process (fork + exec) that "
    .. "receives the input through a POSIX shared-memory object; one result line per input line.")
  p:epilog("From a terminal each line is handed over as it is typed and an empty line ends the input; from a "
    .. "pipe or file the input travels in batches and ends at end of file.\n"
    .. "Exit status: 0 every line processed, 1 the protocol failed, 2 bad usage (or an output that cannot be "
    .. "opened), 128+n stopped by signal n.")
  p:option("-o --out", "Results file, created or replaced (default '-': standard output).", "-")
  p:option("-s --sync", "How the processes wait for each other: futex (sleep in futex(2)), "
    .. "poll (the lab's flag + usleep(1000), one line per handoff) or sem (POSIX semaphores).", "futex")
    :choices({ "futex", "poll", "sem" })
  p:option("--slots", "Slots in the ring (futex, sem).", "16"):convert(math.tointeger)
  p:option("--slot-size", "Bytes per slot.", "65536"):convert(math.tointeger)
  p:flag("-q --quiet", "No end-of-run line on stderr.")
  p:flag("-k --keep", "Leave the shared-memory object's name in /dev/shm (ls /dev/shm shows it) until the run "
    .. "ends; it is unlinked on every way out (default: unlinked at once, the child gets it by descriptor).")
  return p
end

function M.main(argv)
  local cli = require "vmlab.cli"
  local args, code = cli.parse(M.parser(), argv)
  if not args then return code end
  if not args.slots or args.slots < 1 or args.slots > 448 then
    return cli.usage_error("vmlab sum", "--slots must be an integer 1..448")
  end
  if not args.slot_size or args.slot_size < 1 or args.slot_size > (1 << 30) then
    return cli.usage_error("vmlab sum", "--slot-size must be an integer 1..1073741824")
  end
  local res = parent.run({ out = args.out, sync = args.sync, slots = args.slots, slot_size = args.slot_size,
    keep = args.keep })
  if res.message then io.stderr:write("vmlab sum: ", res.message, "\n") end
  if not args.quiet then io.stderr:write("vmlab sum: ", parent.summary(res), "\n") end
  return res.code
end

return M
