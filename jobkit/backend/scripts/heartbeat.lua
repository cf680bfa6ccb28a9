-- heartbeat: extend the leases a worker still holds.
-- KEYS[1]  base "{prefix:queue}"; running and job:<id> are built from it
-- KEYS[n]  the slot's fence (last; never exists, never touched): see keys.fenced
-- ARGV     lease_ms, *(id, token)
--          lease_ms, then pairs (id, token)
-- Returns  *(code): one code per pair: 1 extended; 2 this token's attempt already ended (the job
--          left `running` under this very lease: completed, failed, requeued, reaped),
--          nothing to renew and nothing lost; 0 lost (another attempt holds the lease,
--          or the job is gone); 3 extended, and its cancel was requested (cancel.lua)
-- Invariant: only the current token holder can keep a job in `running` alive.
local base = KEYS[1]
local lease_ms = tonumber(ARGV[1])
local running = running_key(base)
local deadline = now_ms() + lease_ms
local out = {}
for i = 2, #ARGV, 2 do
  local id, token = ARGV[i], ARGV[i + 1]
  local f = read_job(job_key(base, id), 'status', 'lease', 'cancel')
  if not f or f[2] ~= token then
    out[#out + 1] = 0
  elseif f[1] == 'running' then
    -- the record says this holder's attempt runs, so its entry belongs in `running`:
    -- one lost there (garbage set aside, a partial restore) is put back
    on(base, 'zset', 'ZADD', running, deadline, id)
    out[#out + 1] = f[3] and 3 or 1
  else
    out[#out + 1] = 2
  end
end
return out
