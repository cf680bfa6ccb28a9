-- complete: record successes, once each, for the holders of the current leases.
-- KEYS[1]  base "{prefix}"; job:<id>, running, stats and done:<id> are built from it
-- ARGV     groups of 4: id, token, result JSON, result_ttl seconds (one or many jobs)
-- Returns  one flag per job: 1 recorded, 0 refused (stale token or job no longer running)
-- Invariant: a job is recorded succeeded at most once; a zombie with an old token loses.
local base = KEYS[1]
local now = now_ms()
local out = {}
local finished = {}  -- ids leaving `running`, removed in one call
for i = 1, #ARGV, 4 do
  local id, token, ttl = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 3])
  local jk = job_key(base, id)
  local f = redis.call('HMGET', jk, 'status', 'lease')
  if f[1] == 'running' and f[2] == token then
    redis.call('HSET', jk, 'status', 'succeeded', 'result', ARGV[i + 2], 'finished_at', now)
    redis.call('EXPIRE', jk, ttl)
    notify_done(base, id, ttl)
    finished[#finished + 1] = id
    out[#out + 1] = 1
  else
    out[#out + 1] = 0
  end
end
-- in chunks: unpack() of a very large batch would overflow Lua's C stack
for i = 1, #finished, 1000 do
  redis.call('ZREM', base .. ':running', unpack(finished, i, math.min(i + 999, #finished)))
end
if #finished > 0 then redis.call('HINCRBY', base .. ':stats', 'succeeded', #finished) end
return out
