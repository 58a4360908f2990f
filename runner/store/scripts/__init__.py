"""Every Lua script Runner runs: each compare-and-set and counter that must be atomic
(job transitions and results, log lines, schedule claims, API token checks, the
Prediction API's names and versions).

Each takes its keys as ``KEYS`` (built by :class:`runner.store.keyspace.Keys`, never here) and is
safe to replay: a client that retries a call whose reply was lost (``redis_connect``)
gets the same outcome as if the first call had answered.
"""

__all__ = ["TRANSITION", "RECORD_RESULTS", "RECORD_RANGES", "RECORD_FAILURE", "ADD_LOGS", "CLAIM_SCHEDULE",
           "AUTHENTICATE", "AUTHENTICATE_READ", "CLAIM_NAME", "ADD_METRIC_VALUES", "HMGET_MANY"]

# KEYS: job, events[, every other key of the job, to expire]. ARGV: target, maxlen, expire seconds
# (0: leave lifetimes alone), token, n_allowed, allowed..., field, value, ...
# The token makes a replay safe: a retry of a call whose reply was lost finds its own
# token on the record and reports the move it already made.
TRANSITION = """
local current = redis.call('HGET', KEYS[1], 'state')
if not current then return {0, ''} end
if current == ARGV[1] and redis.call('HGET', KEYS[1], 'transition_token') == ARGV[4] then
  return {1, current}
end
local n = tonumber(ARGV[5])
local ok = false
for i = 6, 5 + n do
  if ARGV[i] == current then ok = true end
end
if not ok then return {0, current} end
redis.call('HSET', KEYS[1], 'state', ARGV[1], 'transition_token', ARGV[4])
local i = 6 + n
while i < #ARGV do
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
  i = i + 2
end
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*', 'type', 'state', 'state', cjson.decode(ARGV[1]))
local expire = tonumber(ARGV[3])
if expire > 0 then
  for k = 1, #KEYS do redis.call('EXPIRE', KEYS[k], expire) end
end
return {1, current}
"""

# KEYS: job, results, failed, events. ARGV: maxlen, index, result, index, result, ...
# Returns {state, pieces done, pieces total, how many of these results were new}.
RECORD_RESULTS = """
local new, unfailed = 0, 0
for i = 2, #ARGV, 2 do
  new = new + redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1])
  unfailed = unfailed + redis.call('HDEL', KEYS[3], ARGV[i])
end
local ttl = redis.call('TTL', KEYS[1])
if ttl > 0 and redis.call('TTL', KEYS[2]) == -1 then redis.call('EXPIRE', KEYS[2], ttl) end
local done = redis.call('HINCRBY', KEYS[1], 'pieces_done', new)
if unfailed > 0 then redis.call('HINCRBY', KEYS[1], 'pieces_failed', -unfailed) end
redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[1], '*', 'type', 'progress', 'done', done)
local state = redis.call('HMGET', KEYS[1], 'state', 'pieces_total')
return {state[1] or '', done, state[2] or '-1', new}
"""

# KEYS: job, ranges, failed, events. ARGV: maxlen, start, stop, partial, start, stop, partial, ...
# Records each run of pieces start..stop-1 (folded into one partial) as the member
# 'start:stop:partial' scored by start, unless it overlaps a run already recorded: then it
# is refused whole (its pieces were counted, or are being counted, by another run).
# Returns {state, pieces done, pieces total, pieces newly counted, refused start, ...}.
RECORD_RANGES = """
local new, refused = 0, {}
for i = 2, #ARGV, 3 do
  local s, e = tonumber(ARGV[i]), tonumber(ARGV[i + 1])
  local clash = false
  local before = redis.call('ZREVRANGEBYSCORE', KEYS[2], s, '-inf', 'LIMIT', 0, 1)
  if #before > 0 and tonumber(string.match(before[1], '^%d+:(%d+):')) > s then clash = true end
  if not clash and #redis.call('ZRANGEBYSCORE', KEYS[2], s, '(' .. ARGV[i + 1], 'LIMIT', 0, 1) > 0 then
    clash = true
  end
  if clash then
    refused[#refused + 1] = ARGV[i]
  else
    redis.call('ZADD', KEYS[2], s, ARGV[i] .. ':' .. ARGV[i + 1] .. ':' .. ARGV[i + 2])
    new = new + (e - s)
    for _, index in ipairs(redis.call('HKEYS', KEYS[3])) do
      local n = tonumber(index)
      if n >= s and n < e then
        redis.call('HDEL', KEYS[3], index)
        redis.call('HINCRBY', KEYS[1], 'pieces_failed', -1)
      end
    end
  end
end
local ttl = redis.call('TTL', KEYS[1])
if ttl > 0 and redis.call('TTL', KEYS[2]) == -1 then redis.call('EXPIRE', KEYS[2], ttl) end
local done = redis.call('HINCRBY', KEYS[1], 'pieces_done', new)
redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[1], '*', 'type', 'progress', 'done', done)
local state = redis.call('HMGET', KEYS[1], 'state', 'pieces_total')
local reply = {state[1] or '', done, state[2] or '-1', new}
for _, s in ipairs(refused) do reply[#reply + 1] = s end
return reply
"""

# KEYS: job, failed, events. ARGV: maxlen, index, error
RECORD_FAILURE = """
local new = redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
local ttl = redis.call('TTL', KEYS[1])
if ttl > 0 and redis.call('TTL', KEYS[2]) == -1 then redis.call('EXPIRE', KEYS[2], ttl) end
local failed = redis.call('HINCRBY', KEYS[1], 'pieces_failed', new)
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[1], '*', 'type', 'piece_failed', 'piece', ARGV[2])
return failed
"""

# KEYS: job, logs. ARGV: maxlen, line (a JSON object of strings), line, ...
# One round trip for log lines whose stream lives exactly as long as the job's record.
# (A replay after a lost reply may repeat a line; log lines are not counted.)
ADD_LOGS = """
local ttl = redis.call('TTL', KEYS[1])
for i = 2, #ARGV do
  local args = {'XADD', KEYS[2], 'MAXLEN', '~', ARGV[1], '*'}
  for k, v in pairs(cjson.decode(ARGV[i])) do
    args[#args + 1] = k
    args[#args + 1] = v
  end
  redis.call(unpack(args))
end
if ttl > 0 then redis.call('EXPIRE', KEYS[2], ttl) end
return ttl
"""

# KEYS: sorted set, schedule hash. ARGV: member, expected score, new score, token, token field.
# Exactly one caller sees its expected score and moves it; a replay (same token, reply lost)
# finds the score already moved by itself and reports the same win.
CLAIM_SCHEDULE = """
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if score and tonumber(score) == tonumber(ARGV[3]) and redis.call('HGET', KEYS[2], ARGV[5]) == ARGV[4] then
  return 1
end
if not score or tonumber(score) ~= tonumber(ARGV[2]) then return 0 end
if redis.call('EXISTS', KEYS[2]) == 0 then
  redis.call('ZREM', KEYS[1], ARGV[1])
  return 0
end
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
redis.call('HSET', KEYS[2], ARGV[5], ARGV[4])
return 1
"""

# KEYS: token, key record, rate counter. ARGV: key id, window seconds.
# The counter moves only for a valid token, so bogus tokens cannot spend a key's quota.
# Returns the key's org, the count, and the job a job's own key is scoped to ('' for none).
AUTHENTICATE = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return {0} end
local found = redis.call('HMGET', KEYS[2], 'org', 'job')
local org = found[1]
if not org then return {0} end
local n = redis.call('INCR', KEYS[3])
if n == 1 then redis.call('EXPIRE', KEYS[3], ARGV[2]) end
return {1, org, n, found[2] or ''}
"""

# KEYS: token, key record, rate counter, job record, job's metric series. ARGV: key id,
# window seconds, job id, requests allowed per window. AUTHENTICATE, then (for a request
# within the limit, of the job's own org, and of that job for a job's own key) the job's
# record and metric series, so `GET /v1/jobs/{id}` is one round trip. Record fields are
# JSON, so the org field of the key's org reads as cjson.encode(org) (org names are plain).
# Returns {1, org, count, job, record (flat), series (flat)}; both empty when not readable.
AUTHENTICATE_READ = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return {0} end
local found = redis.call('HMGET', KEYS[2], 'org', 'job')
local org = found[1]
if not org then return {0} end
local n = redis.call('INCR', KEYS[3])
if n == 1 then redis.call('EXPIRE', KEYS[3], ARGV[2]) end
local job = found[2] or ''
if n > tonumber(ARGV[4]) or (job ~= '' and job ~= ARGV[3])
   or redis.call('HGET', KEYS[4], 'org') ~= cjson.encode(org) then
  return {1, org, n, job, {}, {}}
end
return {1, org, n, job, redis.call('HGETALL', KEYS[4]), redis.call('HGETALL', KEYS[5])}
"""

# KEYS: index hash, records hash. ARGV: index field, new id, record JSON.
# The id already under the field, else the new one with its record (both written at once).
CLAIM_NAME = """
local found = redis.call('HGET', KEYS[1], ARGV[1])
if found then return found end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
return ARGV[2]
"""

# KEYS: metrics list, metric series hash, job record. ARGV: series cap, then each value as JSON
# ({name, value, step?, ...}): appended to the list (what output.json summarizes) and folded into
# its name's summary (count, n numeric, sum, min, max, last) and series ([step, value], the
# latest `cap`). A value that is not a number counts, but has no sum/min/max.
ADD_METRIC_VALUES = """
local cap = tonumber(ARGV[1])
local stats = {}
for i = 2, #ARGV do
  redis.call('RPUSH', KEYS[1], ARGV[i])
  local item = cjson.decode(ARGV[i])
  local name = tostring(item.name)
  local s = stats[name]
  if not s then
    local raw = redis.call('HGET', KEYS[2], name)
    if raw then s = cjson.decode(raw) else s = {count = 0, n = 0, series = {}} end
    stats[name] = s
  end
  local v, step = item.value, item.step
  if type(step) ~= 'number' then step = s.count end
  s.count = s.count + 1
  s.last = v
  if type(v) == 'number' then
    s.n = s.n + 1
    s.sum = (s.sum or 0) + v
    if s.min == nil or v < s.min then s.min = v end
    if s.max == nil or v > s.max then s.max = v end
  end
  table.insert(s.series, {step, v})
end
for name, s in pairs(stats) do
  if #s.series > cap then
    local kept = {}
    for j = #s.series - cap + 1, #s.series do table.insert(kept, s.series[j]) end
    s.series = kept
  end
  redis.call('HSET', KEYS[2], name, cjson.encode(s))
end
local ttl = redis.call('TTL', KEYS[3])
if ttl > 0 then
  redis.call('EXPIRE', KEYS[1], ttl)
  redis.call('EXPIRE', KEYS[2], ttl)
end
return #ARGV - 1
"""

# KEYS: job records. ARGV: field names. Read-only: the named fields of every record, flat
# (record by record, a missing one as false), in one command — a pipeline of thousands of
# HMGETs costs the client far more than the server (the dashboard's filtered job list).
HMGET_MANY = """
local out = {}
for _, key in ipairs(KEYS) do
  local row = redis.call('HMGET', key, unpack(ARGV))
  for j = 1, #ARGV do out[#out + 1] = row[j] or false end  -- a nil would end the list
end
return out
"""
