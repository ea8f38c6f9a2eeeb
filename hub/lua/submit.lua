-- Creates a job and its report.submitted event, unless the user already has a job running for the
-- batch: then returns {0, <that job's id>}. Any number of simultaneous clicks make exactly one job.
-- Safe to run twice: a click's own job id comes in ARGV, so a re-sent submit (its reply was lost) finds
-- the job it made and returns {1, job_id} again, never its own guard as someone else's job.
local guard = KEYS[1]
local job = KEYS[2]
local user_jobs = KEYS[3]
local active = KEYS[4]
local user_events = KEYS[5]
local job_events = KEYS[6]
local job_id = ARGV[1]
local record = cjson.decode(ARGV[2])      -- the job's first fields, name -> string
local deadline_ms = tonumber(ARGV[3])     -- after submission: the sweeper fails the job if it has not ended
local recent_jobs = tonumber(ARGV[4])     -- how many of the user's jobs `user_jobs` keeps
local channel = ARGV[5]
local retention = ARGV[6]
local keep_seconds = ARGV[7]              -- how long the job's records outlive its end
local event = ARGV[8]

if redis.call('EXISTS', job) == 1 then return {1, job_id} end
local running = redis.call('GET', guard)
if running then return {0, running} end
local now = now_ms()
redis.call('SET', guard, job_id, 'PX', deadline_ms)
for name, value in pairs(record) do redis.call('HSET', job, name, value) end
redis.call('HSET', job, 'submittedAt', string.format('%d', now))
redis.call('ZADD', user_jobs, now, job_id)
redis.call('ZREMRANGEBYRANK', user_jobs, 0, -(recent_jobs + 1))
redis.call('EXPIRE', user_jobs, keep_seconds)
redis.call('ZADD', active, now + deadline_ms, job_id)
emit(user_events, job_events, channel, retention, keep_seconds, event)
-- Kept through the job's run at the longest, and then as long as after its end (see transition.lua).
local kept_ms = deadline_ms + keep_seconds * 1000
redis.call('PEXPIRE', job, kept_ms)
redis.call('PEXPIRE', job_events, kept_ms)
return {1, job_id}
