-- emit(user_events, job_events, channel, retention, keep_seconds, event): stores a user-facing event in
-- the user's stream (trimmed to about `retention` entries, and of events older than `keep_seconds`) and,
-- when `job_events` is not '', in the job's timeline, then publishes it on `channel`; returns the stream
-- id, which is the event's id. A new timeline is kept `keep_seconds`; the scripts that start and end a
-- job set its own expiry, which an event changing no job (a duplicate click, a replay) leaves alone.
-- Every script that changes a job's state calls it in the same step, so no event is ever published
-- without being stored, and no state change happens without its event.
local function emit(user_events, job_events, channel, retention, keep_seconds, event)
  local id = redis.call('XADD', user_events, 'MAXLEN', '~', retention, '*', 'e', event)
  redis.call('EXPIRE', user_events, keep_seconds)
  redis.call('XTRIM', user_events, 'MINID', '~', string.format('%d', now_ms() - keep_seconds * 1000))
  local frame = '{"id":"' .. id .. '",' .. string.sub(event, 2)
  if job_events ~= '' then
    redis.call('RPUSH', job_events, frame)
    if redis.call('TTL', job_events) < 0 then redis.call('EXPIRE', job_events, keep_seconds) end
  end
  redis.call('PUBLISH', channel, frame)
  return id
end
