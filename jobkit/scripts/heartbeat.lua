-- heartbeat: extend the leases a worker still holds.
-- KEYS[1]  base "{prefix}"
-- ARGV     lease_ms, then pairs (id, token)
-- Returns  one flag per pair: 1 extended, 0 lost (token stale or job not running)
-- Invariant: only the current token holder can keep a job in `running` alive.
local base = KEYS[1]
local lease_ms = tonumber(ARGV[1])
local deadline = now_ms() + lease_ms
local out = {}
for i = 2, #ARGV, 2 do
  local id, token = ARGV[i], ARGV[i + 1]
  local f = redis.call('HMGET', job_key(base, id), 'status', 'lease')
  if f[1] == 'running' and f[2] == token then
    redis.call('ZADD', base .. ':running', 'XX', deadline, id)
    out[#out + 1] = 1
  else
    out[#out + 1] = 0
  end
end
return out
