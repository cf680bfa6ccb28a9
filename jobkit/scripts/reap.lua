-- reap: treat every running job whose lease ran out as a crashed attempt.
-- KEYS[1]  base "{prefix}"
-- ARGV     max_crashes (default when the job has none), limit per call
-- Returns  flat list of pairs (id, outcome 'requeued' | 'dead' | 'dropped')
-- Invariant: idempotent; any number of workers may run it at once. A job that crashed
-- max_crashes times, or used up its attempts, is a poison pill and goes to `dead`.
local base = KEYS[1]
local default_crashes, limit = tonumber(ARGV[1]), tonumber(ARGV[2])
local now = now_ms()
local running = base .. ':running'
local out = {}
local expired = redis.call('ZRANGEBYSCORE', running, '-inf', now, 'LIMIT', 0, limit)
for _, id in ipairs(expired) do
  local jk = job_key(base, id)
  redis.call('ZREM', running, id)
  local f = redis.call('HMGET', jk, 'status', 'attempts', 'max_attempts', 'lane',
    'priority', 'seq', 'result_ttl', 'max_crashes')
  local outcome = 'dropped'
  if f[1] == 'running' then
    local crashes = redis.call('HINCRBY', jk, 'crashes', 1)
    local max_crashes = tonumber(f[8] or default_crashes) or default_crashes
    local err = cjson.encode({type = 'WorkerLost', traceback = '',
      message = 'lease expired: the worker died or stopped renewing it'})
    redis.call('HSET', jk, 'error', err)
    if crashes >= max_crashes or tonumber(f[2]) >= tonumber(f[3]) then
      redis.call('HSET', jk, 'status', 'dead', 'reason', 'crashed', 'finished_at', now)
      redis.call('PERSIST', jk)
      redis.call('ZADD', base .. ':dead', now, id)
      redis.call('HINCRBY', base .. ':stats', 'dead', 1)
      notify_done(base, id, tonumber(f[7]) or 86400)
      outcome = 'dead'
    else
      redis.call('HSET', jk, 'status', 'queued', 'reason', 'crashed')
      push_ready(base, id, f[4], f[5], f[6])
      outcome = 'requeued'
    end
  end
  out[#out + 1] = id
  out[#out + 1] = outcome
end
return out
