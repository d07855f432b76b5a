-- wrk script: a full-text search for a random common word.
-- usage: wrk -s random-search.lua URL -- /api/catalog
local prefix = ""
local words = { "oak", "steel", "lamp", "chair", "cotton", "classic", "glass", "mug", "compact", "book" }
function init(args)
  prefix = args[1] or ""
  math.randomseed(os.time() + math.floor(os.clock() * 1000000))
end
function request()
  local q = words[math.random(1, #words)]
  return wrk.format("GET", prefix .. "/search?q=" .. q .. "&page_size=20")
end
