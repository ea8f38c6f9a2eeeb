-- Changes a job that has not ended: its fields, its status, and its event, in one step. A job that ends
-- releases its guard (if the guard is still its own) and leaves the active set.
-- Returns 1 when applied, 0 when the job had already ended, -1 when there is no such job.
local job = KEYS[1]
local guard = KEYS[2]
local active = KEYS[3]
local user_events = KEYS[4]
local job_events = KEYS[5]
local job_id = ARGV[1]
local status = ARGV[2]                    -- '' keeps the status
local fields = cjson.decode(ARGV[3])      -- name -> string, written into the job
local channel = ARGV[4]
local retention = ARGV[5]
local keep_seconds = ARGV[6]
local event = ARGV[7]                     -- '' sends none

local current = redis.call('HGET', job, 'status')
if not current then return -1 end
if current == SUCCESS or current == FAILED then return 0 end
for name, value in pairs(fields) do redis.call('HSET', job, name, value) end
if status ~= '' then redis.call('HSET', job, 'status', status) end
if status == SUCCESS or status == FAILED then
  if redis.call('GET', guard) == job_id then redis.call('DEL', guard) end
  redis.call('ZREM', active, job_id)
end
if event ~= '' then emit(user_events, job_events, channel, retention, keep_seconds, event) end
return 1
