-- cancelled: end a running attempt whose cancel was requested (see cancel.lua); its
-- supervisor has killed the child that ran it.
-- KEYS[1]  base "{prefix:queue}"   KEYS[2]  job:<id>   (running is built from KEYS[1])
-- KEYS[n]  the slot's fence (last; never exists, never touched): see keys.fenced
-- ARGV     id, token, ttl
--          id, token, result_ttl seconds (used if the request lost its own)
-- Returns  flag: 1 ended cancelled (now, or by this same call sent before and its reply lost),
--          0 refused (another attempt holds the job, or this one ended otherwise)
-- Invariant: only the holder of the current token ends the attempt, and the job leaves
-- `running` for no queue: it never runs again.
local base, jk = KEYS[1], KEYS[2]
local id, token = ARGV[1], ARGV[2]
local f = read_job(jk, 'status', 'lease', 'cancel')
if not f or f[2] ~= token then return 0 end
if f[1] == 'cancelled' then return 1 end
if f[1] ~= 'running' then return 0 end
on(base, 'zset', 'ZREM', running_key(base), id)
unmark(base, {start_mark(token, id)})
end_cancelled(base, jk, id, tonumber(f[3]) or tonumber(ARGV[3]), now_ms())
return 1
