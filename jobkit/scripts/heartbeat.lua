-- heartbeat: extend the leases a worker still holds.
-- KEYS[1]  base "{prefix}"; running and job:<id> are built from it
-- ARGV     lease_ms, then pairs (id, token)
-- Returns  one code per pair: 1 extended; 2 not extended because this token's attempt
--          has ended (its outcome was recorded before the supervisor heard of it);
--          0 lost (another holder has it, or it is gone)
-- Invariant: only the current token holder can keep a job in `running` alive.
local base = KEYS[1]
local lease_ms = tonumber(ARGV[1])
local running = base .. ':running'
expect_types(running, 'zset')
local deadline = now_ms() + lease_ms
local out = {}
for i = 2, #ARGV, 2 do
  local id, token = ARGV[i], ARGV[i + 1]
  local f = read_job(job_key(base, id), 'status', 'lease')
  if f and f[1] == 'running' and f[2] == token then
    redis.call('ZADD', running, 'XX', deadline, id)
    out[#out + 1] = 1
  elseif f and f[1] and f[2] == token then
    out[#out + 1] = 2
  else
    out[#out + 1] = 0
  end
end
return out
