-- KEYS[1]: a lock; ARGV[1]: the token its holder set. Deletes the lock only while it is still that
-- holder's: a lock that expired and was taken by another call stays theirs. Returns 1 when released.
local lock = KEYS[1]
local token = ARGV[1]

if redis.call('GET', lock) ~= token then return 0 end
return redis.call('DEL', lock)
