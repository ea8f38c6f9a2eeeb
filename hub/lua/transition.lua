-- Changes a job that has not ended: its fields, its status, its liveness, and its event, in one step. A
-- job that ends releases its guard (if the guard is still its own), leaves the active set, and stops
-- being alive.
-- When the job's record is gone (Redis lost its data: a restart without persistence, a failover to a
-- replica that was behind) and the change ends the job, the record is written anew from `record`, so the
-- mentor still hears how it ended, exactly once.
-- Returns 1 when applied, 2 when applied to a restored record, 0 when the job had already ended, and -1
-- when there is no such job and the change does not end it.
local job = KEYS[1]
local guard = KEYS[2]
local active = KEYS[3]
local alive = KEYS[4]
local user_events = KEYS[5]
local job_events = KEYS[6]
local job_id = ARGV[1]
local status = ARGV[2]                    -- '' keeps the status
local fields = cjson.decode(ARGV[3])      -- name -> string, written into the job
local alive_ms = ARGV[4]                  -- '' leaves liveness alone; else the job is alive this long
local record = cjson.decode(ARGV[5])      -- the job as it was first written, to restore a lost record
local channel = ARGV[6]
local retention = ARGV[7]
local keep_seconds = ARGV[8]              -- how long the job's records outlive its end
local event = ARGV[9]                     -- '' sends none

local ends = status == SUCCESS or status == FAILED
local applied = 1
local current = redis.call('HGET', job, 'status')
if not current then
  if not ends then return -1 end
  for name, value in pairs(record) do redis.call('HSET', job, name, value) end
  applied = 2
elseif current == SUCCESS or current == FAILED then
  return 0
end
for name, value in pairs(fields) do redis.call('HSET', job, name, value) end
if status ~= '' then redis.call('HSET', job, 'status', status) end
if ends then
  if redis.call('GET', guard) == job_id then redis.call('DEL', guard) end
  redis.call('ZREM', active, job_id)
  redis.call('DEL', alive)
elseif alive_ms ~= '' then
  redis.call('SET', alive, '1', 'PX', alive_ms)
end
if event ~= '' then emit(user_events, job_events, channel, retention, keep_seconds, event) end
if ends then
  -- The report file is kept REPORT_RETENTION from about now: the job's records a little longer.
  redis.call('EXPIRE', job, keep_seconds)
  redis.call('EXPIRE', job_events, keep_seconds)
end
return applied
