-- wrk script: GET a random product among the first 1,000 under the given prefix.
-- usage: wrk -s random-product.lua URL -- /api/catalog
local prefix = ""
function init(args)
  prefix = args[1] or ""
  math.randomseed(os.time() + math.floor(os.clock() * 1000000))
end
function request()
  local id = string.format("p%07d", math.random(1, 1000))
  return wrk.format("GET", prefix .. "/products/" .. id)
end
