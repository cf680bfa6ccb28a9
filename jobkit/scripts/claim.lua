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
local now_s, deadline = str(now), str(now + lease_ms)  -- written for every job
local running = base .. ':running'
local out, got = {}, 0
local leases = {}  -- score, id pairs for `running`, added in one call
local pos = 5
for g = 1, groups do
  local count = tonumber(ARGV[pos])
  local lanes = {}
  for j = 1, count do lanes[j] = ARGV[pos + j] end
  pos = pos + count + 1
  while got < want do
    local lane, ids
    if count == 1 then  -- one lane: pop what we want at once
      lane = lanes[1]
      local popped = redis.call('ZPOPMIN', queue_key(base, lane), want - got)
      ids = {}
      for k = 1, #popped, 2 do ids[#ids + 1] = popped[k] end
    else  -- the best head among this group's lanes
      local best, best_score = nil, nil
      for j = 1, count do
        local head = redis.call('ZRANGE', queue_key(base, lanes[j]), 0, 0, 'WITHSCORES')
        if head[1] and (best_score == nil or tonumber(head[2]) < best_score) then
          best, best_score = j, tonumber(head[2])
        end
      end
      ids = {}
      if best then
        lane = lanes[best]
        ids[1] = redis.call('ZPOPMIN', queue_key(base, lane))[1]
      end
    end
    if #ids == 0 then break end
    for _, id in ipairs(ids) do
      local jk = job_key(base, id)
      local f = redis.call('HMGET', jk, 'status', 'attempts', 'lease', 'name', 'params', 'timeout')
      -- an id whose hash vanished or that was cancelled meanwhile is simply dropped
      if f[1] == 'queued' then
        local attempts = (tonumber(f[2]) or 0) + 1
        local token = (tonumber(f[3]) or 0) + 1
        redis.call('HSET', jk, 'status', 'running', 'attempts', attempts, 'lease', token,
          'worker', worker, 'started_at', now_s)
        leases[#leases + 1] = deadline
        leases[#leases + 1] = id
        out[#out + 1] = id
        out[#out + 1] = token
        out[#out + 1] = f[4] or ''
        out[#out + 1] = f[5] or ''
        out[#out + 1] = attempts
        out[#out + 1] = f[6] or '0'
        out[#out + 1] = lane
        got = got + 1
      end
    end
  end
  if got >= want then break end
end
if #leases > 0 then redis.call('ZADD', running, unpack(leases)) end
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
