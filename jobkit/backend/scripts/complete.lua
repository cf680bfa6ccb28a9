-- complete: record successes, once each, for the holders of the current leases.
-- KEYS[1]  base "{prefix:queue}"; job:<id>, running, finished, stats, waiter:<id> and
--          done:<id> are built from it
-- KEYS[n]  the slot's fence (last; never exists, never touched): see keys.fenced
-- ARGV     *(id, token, result, ttl)
--          groups of 4: id, token, result JSON, result_ttl seconds (one or many jobs)
-- Returns  *(flag): one flag per job: 1 recorded (now, or by this same call sent before and its
--          reply lost), 0 refused (stale token or job no longer running)
-- Invariant: a job is recorded succeeded at most once; a zombie with an old token loses.
-- A success clears the reason and error of earlier attempts: they no longer describe it.
-- Jobs waiting for it are told (see dependencies in _lib.lua).
local base = KEYS[1]
local now = str(now_ms())  -- written for every job
local about = {}  -- name, attempts, worker, started_at of each finished job, for its event
local out = {}
local finished = {}  -- ids leaving `running`
local at = {}  -- their place in ARGV
local stale = {}  -- those with a reason or error of an earlier attempt to clear
local marks = {}  -- their attempts' start marks (see start_mark)
local ended = {}  -- for the batch's event (see events)
for i = 1, #ARGV, 4 do
  local id, token = ARGV[i], ARGV[i + 1]  -- strings: see str
  local f = read_job(job_key(base, id), 'status', 'lease', 'reason', 'name', 'attempts',
    'worker', 'started_at', 'limits', 'unstarted')
  if f and f[1] == 'running' and f[2] == token then
    finished[#finished + 1] = id
    at[#finished] = i
    stale[#finished] = f[3] or f[9]  -- f[9]: `unstarted`, moot once an attempt began
    marks[#finished] = start_mark(token, id)
    about[#finished] = f
    out[#out + 1] = 1
  elseif f and f[1] == 'succeeded' and f[2] == token then
    out[#out + 1] = 1  -- this holder's success is recorded already: a re-sent call
  else
    out[#out + 1] = 0
  end
end
-- in chunks: unpack() of a very large batch would overflow Lua's C stack
for i = 1, #finished, 1000 do
  on(base, 'zset', 'ZREM', running_key(base), unpack(finished, i, math.min(i + 999, #finished)))
end
unmark(base, marks)
note_finished(base, now, finished)
-- Result waiters are looked up with one MGET per chunk (see notify_done), not one call
-- per job; the first also reads `waited`, which depend.lua sets once one of the queue's
-- jobs is waited for (see dependencies in _lib.lua): an unmarked queue's jobs are not
-- looked at for dependants. (In the MGET: a command fewer per call than an EXISTS.)
local waited, waiting = false, {}
for i = 1, #finished, 1000 do
  local wk, from = {}, 1
  if i == 1 then wk[1], from = waited_key(base), 2 end
  for j = i, math.min(i + 999, #finished) do wk[#wk + 1] = waiter_key(base, finished[j]) end
  local got = redis.call('MGET', unpack(wk))
  if i == 1 then waited = got[1] ~= false end
  for k = from, #got do waiting[#waiting + 1] = got[k] end
end
for j, id in ipairs(finished) do
  local jk, i = job_key(base, id), at[j]
  redis.call('HSET', jk, 'status', 'succeeded', 'result', ARGV[i + 2], 'finished_at', now)
  if stale[j] then redis.call('HDEL', jk, 'reason', 'error', 'unstarted') end
  local f = about[j]
  ended[j] = {id, f[4] or '', f[5] or '', f[6] or '', ran_ms(now, f[7])}
  limits_end(base, jk, id, f[4], f[8], true)
  redis.call('EXPIRE', jk, ARGV[i + 3])
  -- jobs waiting for this one: looked for only in a queue where jobs were ever waited for
  if waited then job_ended(base, id, 'succeeded', ARGV[i + 2]) end
end
for j, id in ipairs(finished) do  -- after the records: a waiter told reads them
  if waiting[j] then push_done(base, id, ARGV[at[j] + 3]) end
end
events(base, 'running', 'succeeded', ended)
if #finished > 0 then count(base, 'succeeded', #finished) end
return out
