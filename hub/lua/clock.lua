-- now_ms(): Redis's own clock, the one clock every hub and worker agrees on, so no decision compares
-- two machines' clocks.
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
