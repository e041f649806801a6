--- "Did you mean ...?" for misspelled command and experiment names: the
-- known names closest to a word by edit distance (Damerau-Levenshtein with
-- adjacent transpositions, so `lazzy`, `lzay` and `lay` all find `lazy`).
--
--   local suggest = require "vmlab.cli.suggest"
--   suggest.closest("lazzy", experiments.names())   --> { "lazy" }
--   suggest.hint("lazzy", experiments.names())      --> "did you mean 'lazy'?"  (or nil)
-- @module vmlab.cli.suggest
local suggest = {}

--- Edit distance between strings a and b: insertions, deletions,
-- substitutions and swaps of two neighbouring characters each count 1.
function suggest.distance(a, b)
  local la, lb = #a, #b
  if la == 0 then return lb end
  if lb == 0 then return la end
  local d = {}
  for i = 0, la do d[i] = { [0] = i } end
  for j = 0, lb do d[0][j] = j end
  for i = 1, la do
    local ca = a:byte(i)
    for j = 1, lb do
      local cb = b:byte(j)
      local cost = ca == cb and 0 or 1
      local v = math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost)
      if i > 1 and j > 1 and ca == b:byte(j - 1) and a:byte(i - 1) == cb then
        v = math.min(v, d[i - 2][j - 2] + 1)
      end
      d[i][j] = v
    end
  end
  return d[la][lb]
end

--- The names closest to word, best first: those within a distance of about
-- a third of the word (at least 1, at most 3), and names that begin with the
-- word (`vmlab run page` -> page-table). Case is ignored.
-- @param word what was typed
-- @param names the known names
-- @return a list (empty when nothing is close)
function suggest.closest(word, names)
  local w = tostring(word):lower()
  local limit = math.max(1, math.min(3, #w // 3))
  local found = {}
  for _, n in ipairs(names) do
    local d = suggest.distance(w, n:lower())
    if d > limit and #w >= 3 and n:lower():sub(1, #w) == w then d = limit end
    if d <= limit then found[#found + 1] = { name = n, d = d } end
  end
  table.sort(found, function(x, y)
    if x.d ~= y.d then return x.d < y.d end
    return x.name < y.name
  end)
  local list = {}
  for i, f in ipairs(found) do list[i] = f.name end
  return list
end

--- The hint to print after "unknown ...": "did you mean 'lazy'?",
-- "did you mean 'cow' or 'ipc'?", or nil when nothing is close.
function suggest.hint(word, names)
  local c = suggest.closest(word, names)
  if #c == 0 then return nil end
  local quoted = {}
  for i = 1, math.min(#c, 3) do quoted[i] = "'" .. c[i] .. "'" end
  if #quoted == 1 then return ("did you mean %s?"):format(quoted[1]) end
  return ("did you mean %s or %s?"):format(table.concat(quoted, ", ", 1, #quoted - 1), quoted[#quoted])
end

--- One line for an unknown name: "unknown WHAT 'word'; did you mean 'x'?".
-- @param what "command", "experiment", ...
function suggest.unknown(what, word, names)
  local h = suggest.hint(word, names)
  return ("unknown %s '%s'%s"):format(what, tostring(word), h and ("; " .. h) or "")
end

return suggest
