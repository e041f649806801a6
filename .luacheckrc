std = "lua54"
max_line_length = 120
files["spec"] = { std = "+busted" }
files["bin/vmlab"] = {}
exclude_files = { "build", "build-asan" }
