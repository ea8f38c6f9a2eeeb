-- Registers a worker as alive for `ttl_ms` more (when `worker_id` is not ''), forgets workers whose time
-- ran out, and returns how many are alive, all on Redis's clock.
local workers = KEYS[1]
local worker_id = ARGV[1]
local ttl_ms = tonumber(ARGV[2])

local now = now_ms()
redis.call('ZREMRANGEBYSCORE', workers, '-inf', now)
if worker_id ~= '' then redis.call('ZADD', workers, now + ttl_ms, worker_id) end
return redis.call('ZCARD', workers)
