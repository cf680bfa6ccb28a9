-- Telling waiting jobs what their dependencies did: prepended (after _lib.lua) to
-- wait.lua and release.lua only, by jobkit/backend/scripts/__init__.py (see the
-- dependencies section of _lib.lua for the keys and why these are apart).
--
-- A waiting job's `deps` lists what it waits for, `waits` how many have not succeeded
-- yet. Its inputs:<id> (dependency -> '=' result, or '!' outcome) makes a notice count
-- once however often it comes, and keeps a notice that arrives before the job is
-- stored, for wait.lua to count.

local function inputs_key(base, id) return base .. ':inputs:' .. id end

local EARLY_TTL = 86400  -- seconds a notice for a dependant not (yet) stored is kept

-- `params` (a JSON object's text) with `field` set to `value` (JSON text): the stored
-- bytes are kept, not decoded and encoded again. The field is absent from params (the
-- dispatch left it out for the result).
local function splice(params, field, value)
  local head = '{' .. cjson.encode(field) .. ':' .. value
  if params == '{}' then return head .. '}' end
  return head .. ',' .. string.sub(params, 2)
end

-- Every dependency succeeded: queue the job, with the result it takes put in its params
-- (`takes`: the field; `gather` '1': a list of every dependency's result, in `deps`
-- order, for a group's callback; else the first's, for a chain's next step).
local function make_ready(base, jk, id)
  local f = redis.call('HMGET', jk, 'name', 'lane', 'priority', 'seq', 'params', 'takes',
    'deps', 'gather')
  local params = f[5]
  if f[6] and f[6] ~= '' then
    local got = redis.call('HGETALL', inputs_key(base, id))
    local by = {}
    for i = 1, #got, 2 do by[got[i]] = string.sub(got[i + 1], 2) end
    local deps = cjson.decode(f[7])
    local value
    if f[8] == '1' then
      local parts = {}
      for i, d in ipairs(deps) do parts[i] = by[d] or 'null' end
      value = '[' .. table.concat(parts, ',') .. ']'
    else
      value = by[deps[1]] or 'null'
    end
    params = splice(params, f[6], value)
  end
  redis.call('HSET', jk, 'status', 'queued', 'params', params)
  redis.call('HDEL', jk, 'waits')
  push_ready(base, id, f[2], f[3], f[4])
  event(base, id, f[1], 'waiting', 'queued', 0)
end

-- A dependency ended without success: the waiting job is cancelled, or dead-lettered
-- when its `on_failure` says 'fail'; either way with reason dependency_failed and an
-- error naming the dependency, and its own dependants are told in turn.
local function fail_waiting(base, jk, id, dep, outcome, now)
  local f = redis.call('HMGET', jk, 'name', 'on_failure', 'result_ttl')
  local err = cjson.encode({type = 'DependencyFailed', traceback = '',
    message = 'dependency ' .. dep .. ' ended ' .. outcome})
  redis.call('HDEL', jk, 'waits')
  redis.call('HSET', jk, 'reason', 'dependency_failed', 'error', err)
  if f[2] ~= 'fail' then
    end_cancelled(base, jk, id, tonumber(f[3]) or 86400, now)  -- tells its dependants
    return
  end
  redis.call('HSET', jk, 'status', 'dead', 'finished_at', now)
  event(base, id, f[1], 'waiting', 'dead', 0, '', '', 'dependency_failed')
  on(base, 'zset', 'ZADD', dead_key(base), now, id)
  count(base, 'dead', 1)
  notify_done(base, id, tonumber(f[3]) or 86400)
  job_ended(base, id, 'dead')
end

-- Tell waiting job `id` (in this shard) that `dep` ended `outcome` (`result`: its result
-- JSON, when the job takes it). 1 counted now, 0 told before (a notice sent twice). A
-- job not stored yet keeps the notice in its inputs, for wait.lua.
local function release(base, id, dep, outcome, result, now)
  local ik = inputs_key(base, id)
  local v = outcome == 'succeeded' and ('=' .. (result or '')) or ('!' .. outcome)
  if redis.call('HSETNX', ik, dep, v) == 0 then return 0 end
  local jk = job_key(base, id)
  local f = read_job(jk, 'status')
  if not f or not f[1] then
    redis.call('EXPIRE', ik, EARLY_TTL)
    return 1
  end
  if f[1] ~= 'waiting' then return 1 end  -- settled already (cancelled by hand, say)
  if outcome ~= 'succeeded' then
    fail_waiting(base, jk, id, dep, outcome, now)
  elseif redis.call('HINCRBY', jk, 'waits', -1) <= 0 then
    make_ready(base, jk, id)
  end
  return 1
end
