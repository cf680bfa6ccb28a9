-- recount: once the archivers have read all of a queue's event stream, set the count of
-- entries their group has read to the count of entries ever added: its lag is then 0.
-- KEYS[1]  base "{prefix:queue}" (the events stream is built from it)
-- KEYS[n]  the slot's fence (last; never exists, never touched): see keys.fenced
-- ARGV     group
--          the archivers' group name
-- Returns  flag: 1 if the count was set, 0 if it was right already, or the group is behind (or
--          missing)
-- Why: when entries were trimmed before the group read them, Redis (7.0) leaves the
-- group's entries-read short of entries-added for good, so its lag would never fall back
-- to 0 and every check would report the old loss again. The count is set only while the
-- group's last delivered id is the stream's last id (nothing waits), checked here, in the
-- same script, so an archiver that reads meanwhile is never moved back.
-- Running it twice has the effect of running it once.
local events, group = events_key(KEYS[1]), ARGV[1]
if redis.call('TYPE', events).ok ~= 'stream' then return 0 end
local function field(list, name)
  for i = 1, #list, 2 do
    if list[i] == name then return list[i + 1] end
  end
end
local stream = redis.call('XINFO', 'STREAM', events)
local last, added = field(stream, 'last-generated-id'), field(stream, 'entries-added')
for _, g in ipairs(redis.call('XINFO', 'GROUPS', events)) do
  if field(g, 'name') == group then
    if field(g, 'last-delivered-id') ~= last or field(g, 'lag') == 0 then return 0 end
    redis.call('XGROUP', 'SETID', events, group, last, 'ENTRIESREAD', added)
    return 1
  end
end
return 0
