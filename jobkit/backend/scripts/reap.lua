-- reap: settle every running job whose lease ran out.
-- KEYS[1]  base "{prefix:queue}"; running, job, queue, wake, dead, stats, waiter and done keys
--          are built from it
-- KEYS[n]  the slot's fence (last; never exists, never touched): see keys.fenced
-- ARGV     max_crashes, limit
--          max_crashes (default when the job has none), limit per call
-- Returns  *(id, outcome):
--          flat list of pairs (id, outcome): 'requeued' or 'dead' (a crash counted),
--          'returned' (it never started: back to its queue, no attempt used), 'invalid'
--          (its record cannot be trusted: dead, reason invalid_record) or 'dropped'. An
--          id that is not UTF-8 text is given as '<id not UTF-8>' (the reply is decoded).
-- Invariant: idempotent; any number of workers may run it at once. Only an attempt that
-- began (its mark is in `started`: see start_mark) counts as a crash; a job that crashed
-- max_crashes times, or used up its attempts, is a poison pill and goes to `dead`. A job
-- leased MAX_UNSTARTED times in a row and never started is dead too (invalid_record):
-- no worker could read it, so it must not circle for ever.
local MAX_UNSTARTED = 10
local base = KEYS[1]
local default_crashes, limit = tonumber(ARGV[1]), tonumber(ARGV[2])
local running = running_key(base)
local now = now_ms()
local out = {}

local function problem(f)
  if not count_ok(f[2]) or not f[2] then return 'attempts is not a whole number' end
  if not f[3] or not string.match(f[3], '^%d+$') then return 'max_attempts is not a whole number' end
  if not count_ok(f[8]) then return 'max_crashes is not a whole number' end
  if not count_ok(f[9]) then return 'crashes is not a whole number' end
  return requeue_problem(f[4], f[5], f[6])
end

local expired = on(base, 'zset', 'ZRANGEBYSCORE', running, '-inf', now, 'LIMIT', 0, limit)
if #expired > 0 then expect_types(base, started_key(base), 'hash') end
for _, id in ipairs(expired) do
  local jk = job_key(base, id)
  redis.call('ZREM', running, id)
  local f = read_job(jk, 'status', 'attempts', 'max_attempts', 'lane', 'priority', 'seq',
    'result_ttl', 'max_crashes', 'crashes', 'lease', 'started', 'name', 'worker', 'started_at',
    'limits', 'unstarted')
  local began = false  -- the attempt under the lease it held began
  if f and f[10] then
    local mark = start_mark(f[10], id)
    began = redis.call('HDEL', started_key(base), mark) == 1
    began = began or f[11] == f[10]  -- marked in its own record, as an earlier jobkit did
  end
  local outcome = 'dropped'
  if not f then
    invalid_record(base, id, 'its record is not a hash', now)
    outcome = 'invalid'
  elseif f[1] == 'running' then
    local why = problem(f)
    if why then
      invalid_record(base, id, why, now)
      outcome = 'invalid'
    elseif not began and redis.call('HINCRBY', jk, 'unstarted', 1) >= MAX_UNSTARTED then
      redis.call('HSET', jk, 'attempts', math.max(0, tonumber(f[2]) - 1))  -- it never ran
      invalid_record(base, id, 'leased ' .. MAX_UNSTARTED .. ' times and never started: '
        .. 'no worker could read it', now)
      outcome = 'invalid'
    elseif not began then
      -- leased but never started (prefetched by a worker that died, or a claim whose
      -- reply was lost): nothing ran, so no crash and no attempt is counted
      redis.call('HSET', jk, 'status', 'queued', 'attempts', math.max(0, tonumber(f[2]) - 1))
      redis.call('HDEL', jk, 'worker', 'started_at')
      event(base, id, f[12], 'running', 'queued', f[2], f[13], '', 'unstarted')
      push_ready(base, id, f[4], f[5], f[6])
      outcome = 'returned'
    else
      if f[16] then redis.call('HDEL', jk, 'unstarted') end  -- it began: it could be read
      local crashes = redis.call('HINCRBY', jk, 'crashes', 1)
      local max_crashes = tonumber(f[8] or default_crashes)
      local err = cjson.encode({type = 'WorkerLost', traceback = '',
        message = 'lease expired: the worker died or stopped renewing it'})
      redis.call('HSET', jk, 'error', err)
      if crashes >= max_crashes or tonumber(f[2]) >= tonumber(f[3]) then
        redis.call('HSET', jk, 'status', 'dead', 'reason', 'crashed', 'finished_at', now)
        event(base, id, f[12], 'running', 'dead', f[2], f[13], ran_ms(now, f[14]), 'crashed')
        redis.call('PERSIST', jk)
        on(base, 'zset', 'ZADD', dead_key(base), now, id)
        count(base, 'dead', 1)
        notify_done(base, id, tonumber(f[7]) or 86400)
        job_ended(base, id, 'dead')
        outcome = 'dead'
      else
        redis.call('HSET', jk, 'status', 'queued', 'reason', 'crashed')
        event(base, id, f[12], 'running', 'queued', f[2], f[13], ran_ms(now, f[14]), 'crashed')
        push_ready(base, id, f[4], f[5], f[6])
        outcome = 'requeued'
      end
    end
    -- the attempt ended (an invalid record's ends in invalid_record)
    if outcome ~= 'invalid' then limits_end(base, jk, id, f[12], f[15], outcome == 'dead') end
  end
  out[#out + 1] = utf8_ok(id) and id or '<id not UTF-8>'
  out[#out + 1] = outcome
end
return out
