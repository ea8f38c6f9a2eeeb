-- Stores and publishes one event that changes no job (a duplicate click, a replay).
local user_events = KEYS[1]
local job_events = KEYS[2]
local channel = ARGV[1]
local retention = ARGV[2]
local keep_seconds = ARGV[3]
local event = ARGV[4]

return emit(user_events, job_events, channel, retention, keep_seconds, event)
