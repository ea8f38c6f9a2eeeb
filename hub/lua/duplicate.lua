-- Tells the user their click found a job already running, but only while that job still holds the guard:
-- a job's end releases the guard in the same step as its last event, so `report.duplicate` can never land
-- after `report.completed` or `report.failed`. Returns 1 when told, 0 when the job has ended meanwhile
-- (the click may then start a new job).
-- Safe to run twice: `told` (named by the click) is set in the same step, so a re-sent call answers 1
-- without a second event.
local guard = KEYS[1]
local user_events = KEYS[2]
local job_events = KEYS[3]
local told = KEYS[4]
local job_id = ARGV[1]
local told_ms = ARGV[2]                   -- how long `told` is kept: longer than any re-send takes
local channel = ARGV[3]
local retention = ARGV[4]
local keep_seconds = ARGV[5]
local event = ARGV[6]

if redis.call('EXISTS', told) == 1 then return 1 end
if redis.call('GET', guard) ~= job_id then return 0 end
redis.call('SET', told, '1', 'PX', told_ms)
emit(user_events, job_events, channel, retention, keep_seconds, event)
return 1
