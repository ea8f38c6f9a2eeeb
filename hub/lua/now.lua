-- Redis's clock in milliseconds, for the sweeper's judgement of deadlines.
return now_ms()
