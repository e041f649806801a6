--- The child program of `vmlab sum`, run by the parent with fork + exec:
--   lua5.4 .../vmlab/sum/child_main.lua SHM_NAME OUT_FILE PARENT_PID
-- with the shared-memory object on standard input and the output on
-- standard output. It finds the modules of its own tree first, then runs
-- vmlab.sum.child.
local root = arg and arg[0] and arg[0]:match("^(.*)/vmlab/sum/[^/]*$")
if root then package.path = root .. "/?.lua;" .. root .. "/?/init.lua;" .. package.path end
pcall(function() require("vmlab").set_process_name("vmlab-sum-child") end) -- ps, pgrep, htop
os.exit(require("vmlab.sum.child").main(arg), true)
