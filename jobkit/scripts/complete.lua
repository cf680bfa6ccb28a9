-- complete: record successes, once each, for the holders of the current leases.
-- KEYS[1]  base "{prefix}"; job:<id>, running, stats, waiter:<id> and done:<id> are
--          built from it
-- ARGV     groups of 4: id, token, result JSON, result_ttl seconds (one or many jobs)
-- Returns  one flag per job: 1 recorded (now, or by this same call sent before and its
--          reply lost), 0 refused (stale token or job no longer running)
-- Invariant: a job is recorded succeeded at most once; a zombie with an old token loses.
-- A success clears the reason and error of earlier attempts: they no longer describe it.
local base = KEYS[1]
expect_types(base .. ':running', 'zset', base .. ':stats', 'hash')
local now = str(now_ms())  -- written for every job
local out = {}
local finished = {}  -- ids leaving `running`, removed in one call
local ttls = {}
for i = 1, #ARGV, 4 do
  local id, token, ttl = ARGV[i], ARGV[i + 1], ARGV[i + 3]  -- strings: see str
  local jk = job_key(base, id)
  local f = read_job(jk, 'status', 'lease', 'reason')
  if f and f[1] == 'running' and f[2] == token then
    redis.call('HSET', jk, 'status', 'succeeded', 'result', ARGV[i + 2], 'finished_at', now)
    if f[3] then redis.call('HDEL', jk, 'reason', 'error') end
    redis.call('EXPIRE', jk, ttl)
    finished[#finished + 1] = id
    ttls[#finished] = ttl
    out[#out + 1] = 1
  elseif f and f[1] == 'succeeded' and f[2] == token then
    out[#out + 1] = 1  -- this holder's success is recorded already: a re-sent call
  else
    out[#out + 1] = 0
  end
end
-- in chunks: unpack() of a very large batch would overflow Lua's C stack. Waiters are
-- looked up with one MGET per chunk (see notify_done), not one call per job.
for i = 1, #finished, 1000 do
  local last = math.min(i + 999, #finished)
  redis.call('ZREM', base .. ':running', unpack(finished, i, last))
  local wk = {}
  for j = i, last do wk[#wk + 1] = waiter_key(base, finished[j]) end
  local waiting = redis.call('MGET', unpack(wk))
  for j = 1, #waiting do
    if waiting[j] then push_done(base, finished[i + j - 1], ttls[i + j - 1]) end
  end
end
if #finished > 0 then redis.call('HINCRBY', base .. ':stats', 'succeeded', #finished) end
return out
