-- enqueue: create one or many jobs of one class, queued now or scheduled for later.
-- KEYS[1]  base "{prefix}"; job, queue, wake, seq, scheduled and lanes keys are built from
--          it (and the sched:wake channel, published to when a new earliest delayed job
--          arrives)
-- ARGV     N, then what every job shares: name, lane, priority, delay_ms, at_ms (0 = none),
--          max_attempts, timeout seconds (0 = none), result_ttl seconds, check (1: an id
--          that exists is reported with its status, for caller-chosen ids; 0: ids are
--          fresh random), then N pairs: id, params JSON
-- Returns  with check 1: N pairs {created 1|0, status}; with check 0 every job is created
--          with the same status, so just that status (a smaller reply for a big batch).
-- Invariant: a job hash and its place (queue or scheduled) appear together or not at all,
-- and an id that exists is never written: the same call sent twice (its reply was lost,
-- and a worker may have claimed the job meanwhile) creates each job once.
local base = KEYS[1]
local n, name, lane, priority = tonumber(ARGV[1]), ARGV[2], ARGV[3], ARGV[4]
local delay, at = tonumber(ARGV[5]), tonumber(ARGV[6])
local max_attempts, timeout, ttl, check = ARGV[7], ARGV[8], ARGV[9], ARGV[10] == '1'
local now = now_ms()
local now_s = str(now)
local due = now + delay
if at > due then due = at end
local status = 'queued'
if due > now then status = 'scheduled' end
if status == 'queued' then
  expect_types(queue_key(base, lane), 'zset', wake_key(base, lane), 'list')
else
  expect_types(base .. ':scheduled', 'zset')
end
if string.find(lane, '|', 1, true) then expect_types(base .. ':lanes', 'set') end
local ready = {}
local queued = 0
local out
if not check then
  -- fresh ids: every FIFO place reserved at once, every job created alike
  local first_seq = redis.call('INCRBY', base .. ':seq', n) - n
  for i = 0, n - 1 do
    local id = ARGV[11 + 2 * i]
    if redis.call('EXISTS', job_key(base, id)) == 0 then  -- 1: this very call, sent again
      create_job(base, id, status, due, now_s, name, lane, ARGV[12 + 2 * i], priority,
        max_attempts, timeout, ttl, first_seq + i + 1, ready)
      if status == 'queued' then queued = queued + 1 end
    end
  end
  out = status
else
  -- ids of the caller's: a FIFO place only for a new job, so a repeated dispatch writes
  -- nothing at all. Every id is looked up before anything is written.
  local existing = {}
  for i = 0, n - 1 do
    local id = ARGV[11 + 2 * i]
    local got = redis.pcall('HGET', job_key(base, id), 'status')
    if type(got) == 'table' and got['err'] then
      error({err = 'INVALID jobkit: job id ' .. id .. ' is taken by a key that is not a job'})
    end
    existing[i] = got
  end
  out = {}
  for i = 0, n - 1 do
    local id = ARGV[11 + 2 * i]
    if existing[i] then
      out[#out + 1] = 0
      out[#out + 1] = existing[i]
    else
      create_job(base, id, status, due, now_s, name, lane, ARGV[12 + 2 * i], priority,
        max_attempts, timeout, ttl, nil, ready)
      if status == 'queued' then queued = queued + 1 end
      out[#out + 1] = 1
      out[#out + 1] = status
    end
  end
end
add_ready(base, lane, ready)
if queued > 0 then wake(base, lane, queued) end
note_lane(base, lane)
return out
