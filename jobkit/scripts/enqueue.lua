-- enqueue: create one or many jobs, queued now or scheduled for later.
-- KEYS[1]  base "{prefix}"; job, queue, wake, scheduled and lanes keys are built from it
--          (and the sched:wake channel, published to when a new earliest delayed job arrives)
-- ARGV[1]  number of jobs N, then N groups of 11 values:
--          id, name, lane, queue, params JSON, priority, delay_ms, at_ms (0 = none),
--          max_attempts, timeout seconds (0 = none), result_ttl seconds
-- Returns  N pairs {created 1|0, status}: an existing id is left untouched (idempotency).
-- Invariant: a job hash and its place (queue or scheduled) appear together or not at all.
local base = KEYS[1]
local n = tonumber(ARGV[1])
local now = now_ms()
local out = {}
for i = 0, n - 1 do
  local o = 1 + i * 11
  local id, name, lane, queue = ARGV[o + 1], ARGV[o + 2], ARGV[o + 3], ARGV[o + 4]
  local params, priority = ARGV[o + 5], ARGV[o + 6]
  local delay, at = tonumber(ARGV[o + 7]), tonumber(ARGV[o + 8])
  local jk = job_key(base, id)
  local existing = redis.call('HGET', jk, 'status')
  if existing then
    out[#out + 1] = 0
    out[#out + 1] = existing
  else
    local due = now + delay
    if at > due then due = at end
    local status = 'queued'
    if due > now then status = 'scheduled' end
    create_job(base, id, status, due, now, name, lane, queue, params, priority,
      ARGV[o + 9], ARGV[o + 10], ARGV[o + 11])
    out[#out + 1] = 1
    out[#out + 1] = status
  end
end
return out
