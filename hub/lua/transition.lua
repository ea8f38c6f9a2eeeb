-- Changes a job that has not ended: its fields, its status, its liveness, and its event, in one step. A
-- job that ends releases its guard (if the guard is still its own), leaves the active set, and stops
-- being alive.
-- Runs: a worker's run starts with PROCESSING under a token of its own (`run`), which the job keeps; a
-- change from any other run is refused, so a run that was replaced can neither report progress nor end
-- the job (a FAILED from one run never overrides a SUCCESS from another).
-- Safe to run twice: a change that ends the job stores `token` (`endedBy`), so a re-sent one (its reply
-- was lost) answers 3, "already applied by you", rather than 0, "someone else ended it".
-- When the job's record is gone (Redis lost its data: a restart without persistence, a failover to a
-- replica that was behind) and the change starts or ends the job, the record is written anew from
-- `record` (what the queued arq job carries), so the sweeper watches it again and the mentor still hears
-- how it ended, exactly once.
-- Returns 1 when applied, 2 when applied to a restored record, 3 when this token had already ended it, 0
-- when the job had already ended otherwise, -1 when there is no such job and the change neither starts
-- nor ends it, -2 when another run holds the job, and -3 when the job is not in the `expect`ed status.
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
local run = ARGV[6]                       -- the worker run making the change; '' for the hub and sweeper
local token = ARGV[7]                     -- this change's own id, kept when it ends the job
local expect = ARGV[8]                    -- '' any status not ended; else the job must be in this one
local deadline_ms = tonumber(ARGV[9])     -- a job's time from submission to its deadline
local channel = ARGV[10]
local retention = ARGV[11]
local keep_seconds = ARGV[12]             -- how long the job's records outlive its end
local event = ARGV[13]                    -- '' sends none

local ends = status == SUCCESS or status == FAILED
local applied = 1
local current = redis.call('HGET', job, 'status')
if not current then
  if not ends and status ~= PROCESSING then return -1 end
  for name, value in pairs(record) do redis.call('HSET', job, name, value) end
  applied = 2
  if not ends then
    local left_ms = math.max(tonumber(record.submittedAt) + deadline_ms - now_ms(), 1000)
    redis.call('SET', guard, job_id, 'NX', 'PX', left_ms)
    redis.call('ZADD', active, now_ms() + left_ms, job_id)
    redis.call('PEXPIRE', job, left_ms + keep_seconds * 1000)
  end
elseif current == SUCCESS or current == FAILED then
  if token ~= '' and redis.call('HGET', job, 'endedBy') == token then return 3 end
  return 0
elseif expect ~= '' and current ~= expect then
  return -3
elseif run ~= '' and status ~= PROCESSING and redis.call('HGET', job, 'run') ~= run then
  return -2
end
for name, value in pairs(fields) do redis.call('HSET', job, name, value) end
if status ~= '' then redis.call('HSET', job, 'status', status) end
if status == PROCESSING and run ~= '' then redis.call('HSET', job, 'run', run) end
if ends then
  if token ~= '' then redis.call('HSET', job, 'endedBy', token) end
  if redis.call('GET', guard) == job_id then redis.call('DEL', guard) end
  redis.call('ZREM', active, job_id)
  redis.call('DEL', alive)
elseif alive_ms ~= '' then
  redis.call('SET', alive, run, 'PX', alive_ms)
end
if event ~= '' then emit(user_events, job_events, channel, retention, keep_seconds, event) end
if ends then
  -- The report file is kept REPORT_RETENTION from about now: the job's records a little longer.
  redis.call('EXPIRE', job, keep_seconds)
  redis.call('EXPIRE', job_events, keep_seconds)
end
return applied
