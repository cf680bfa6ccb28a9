-- claim: take up to N ready jobs for one worker child, each with its own lease.
-- KEYS[1]  base "{prefix}"; queue, wake, job and running keys are built from it
-- ARGV     worker name, lease_ms, N, G (number of lane groups), then G groups of
--          (count, lane...) in the order the worker checks its queues
-- Returns  flat list of 7-tuples: id, token, name, params, attempts, timeout, lane
-- Invariant: a job leaves its queue only together with its entry in `running`, and every
-- claim bumps the job's fencing token (`lease`), so older holders are refused later.
local base, worker = KEYS[1], ARGV[1]
local lease_ms, want, groups = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local now = now_ms()
local running = base .. ':running'
local out, got = {}, 0
local pos = 5
for g = 1, groups do
  local count = tonumber(ARGV[pos])
  local lanes = {}
  for j = 1, count do lanes[j] = ARGV[pos + j] end
  pos = pos + count + 1
  while got < want do
    -- the best head among this group's lanes (one lane: no comparison needed)
    local best, best_score = nil, nil
    for j = 1, count do
      local head = redis.call('ZRANGE', queue_key(base, lanes[j]), 0, 0, 'WITHSCORES')
      if head[1] and (best_score == nil or tonumber(head[2]) < best_score) then
        best, best_score = j, tonumber(head[2])
      end
    end
    if best == nil then break end
    local lane = lanes[best]
    local popped = redis.call('ZPOPMIN', queue_key(base, lane))
    local id = popped[1]
    local jk = job_key(base, id)
    -- an id whose hash vanished or that was cancelled meanwhile is simply dropped
    if redis.call('HGET', jk, 'status') == 'queued' then
      local attempts = redis.call('HINCRBY', jk, 'attempts', 1)
      local token = redis.call('HINCRBY', jk, 'lease', 1)
      redis.call('HSET', jk, 'status', 'running', 'worker', worker, 'started_at', now)
      redis.call('ZADD', running, now + lease_ms, id)
      local f = redis.call('HMGET', jk, 'name', 'params', 'timeout')
      out[#out + 1] = id
      out[#out + 1] = token
      out[#out + 1] = f[1] or ''
      out[#out + 1] = f[2] or ''
      out[#out + 1] = attempts
      out[#out + 1] = f[3] or '0'
      out[#out + 1] = lane
      got = got + 1
    end
  end
  if got >= want then break end
end
if got < want then
  -- every lane we serve is empty: drop stale wake tokens so idle waits really block
  pos = 5
  for g = 1, groups do
    local count = tonumber(ARGV[pos])
    for j = 1, count do redis.call('DEL', wake_key(base, ARGV[pos + j])) end
    pos = pos + count + 1
  end
end
return out
