-- emit(user_events, job_events, channel, retention, keep_seconds, event): stores a user-facing event in
-- the user's stream (trimmed to about `retention` entries) and, when `job_events` is not '', in the job's
-- timeline, then publishes it on `channel`; returns the stream id, which is the event's id.
-- Every script that changes a job's state calls it in the same step, so no event is ever published
-- without being stored, and no state change happens without its event.
local function emit(user_events, job_events, channel, retention, keep_seconds, event)
  local id = redis.call('XADD', user_events, 'MAXLEN', '~', retention, '*', 'e', event)
  redis.call('EXPIRE', user_events, keep_seconds)
  local frame = '{"id":"' .. id .. '",' .. string.sub(event, 2)
  if job_events ~= '' then
    redis.call('RPUSH', job_events, frame)
    redis.call('EXPIRE', job_events, keep_seconds)
  end
  redis.call('PUBLISH', channel, frame)
  return id
end
