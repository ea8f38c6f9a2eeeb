-- Tells the user their click found a job already running, but only while that job still holds the guard:
-- a job's end releases the guard in the same step as its last event, so `report.duplicate` can never land
-- after `report.completed` or `report.failed`. Returns 1 when told, 0 when the job has ended meanwhile
-- (the click may then start a new job).
local guard = KEYS[1]
local user_events = KEYS[2]
local job_events = KEYS[3]
local job_id = ARGV[1]
local channel = ARGV[2]
local retention = ARGV[3]
local keep_seconds = ARGV[4]
local event = ARGV[5]

if redis.call('GET', guard) ~= job_id then return 0 end
emit(user_events, job_events, channel, retention, keep_seconds, event)
return 1
