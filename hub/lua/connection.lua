-- Takes one of a user's connection slots (an open WebSocket or event stream), or refreshes the one a
-- connection holds. Slots are scored by when they lapse: a slot whose hub died stops being refreshed and
-- is freed by the next open. Times are the Redis server's, the one clock every hub instance shares.
local connections = KEYS[1]
local connection_id = ARGV[1]
local lease_ms = tonumber(ARGV[2])
local cap = tonumber(ARGV[3])  -- 0: refresh a slot already held, whatever the count

local time = redis.call('TIME')
local now_ms = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', connections, '-inf', now_ms)
if cap > 0 and redis.call('ZCARD', connections) >= cap then
    return 0
end
redis.call('ZADD', connections, now_ms + lease_ms, connection_id)
-- Every slot lapses at most `lease_ms` from now, so the set need not outlive that.
redis.call('PEXPIRE', connections, lease_ms)
return 1
