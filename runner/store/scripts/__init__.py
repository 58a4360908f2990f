"""Every Lua script Runner runs: each compare-and-set and counter that must be atomic
(job transitions and results, log lines, schedule claims, API token checks, the
Prediction API's names and versions).

Each takes its keys as ``KEYS`` (built by :class:`runner.store.keyspace.Keys`, never here) and is
safe to replay: a client that retries a call whose reply was lost (``redis_connect``)
gets the same outcome as if the first call had answered.
"""

__all__ = ["TRANSITION", "LOAD_PIECES", "RECORD_RANGES", "RECORD_FAILURE", "ADD_LOGS", "CLAIM_SCHEDULE",
           "CLAIM_SCHEDULES", "AUTHENTICATE", "AUTHENTICATE_READ", "CLAIM_NAME", "ADD_METRIC_VALUES", "HMGET_MANY",
           "SEND_IF_ADMITTED"]

# KEYS: job, events[, ending, result, logs, tasks, deliveries, pieces, result runs, ranges, failed,
# attempts, metrics, metric series, legacy results: the keys to expire]. ARGV: target,
# maxlen, expire seconds (0: leave lifetimes alone), token, log line ('' or a JSON
# {fields, maxlen}), n_allowed, allowed..., field, value, ...
# The token makes a replay safe: a retry of a call whose reply was lost finds its own
# token on the record and reports the move it already made. A move into a final state also
# adds it to the ending stream (KEYS[3]), which a waiting client blocks on: it wakes once; a
# completion's result (KEYS[4]) rides along when it is small, so that client reads nothing
# more. The log line (the ending's lifecycle line) goes in with the move: whoever sees the
# final state sees it logged. Expiring, it sets the lifetime of the keys the job has, not of
# every key a job may have: a record made with ``keys_tracked`` (every record since issue 24)
# names the others it made — ``pieces_packed`` (stored pieces), ``pieces_done`` (recorded
# runs), ``has_failed``, ``has_attempts``, ``has_metrics`` — and an older record gets all.
TRANSITION = """
local FINAL = {['"completed"'] = true, ['"failed"'] = true, ['"cancelled"'] = true, ['"timed_out"'] = true}
local f = redis.call('HMGET', KEYS[1], 'state', 'transition_token', 'keys_tracked', 'pieces_packed', 'pieces_done',
                    'has_failed', 'has_attempts', 'has_metrics')
local current = f[1]
if not current then return {0, ''} end
if current == ARGV[1] and f[2] == ARGV[4] then
  return {1, current}
end
local n = tonumber(ARGV[6])
local ok = false
for i = 7, 6 + n do
  if ARGV[i] == current then ok = true end
end
if not ok then return {0, current} end
redis.call('HSET', KEYS[1], 'state', ARGV[1], 'transition_token', ARGV[4], unpack(ARGV, 7 + n))
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*', 'type', 'state', 'state', cjson.decode(ARGV[1]))
if KEYS[3] and FINAL[ARGV[1]] then
  local entry = {'state', cjson.decode(ARGV[1])}
  local result = ARGV[1] == '"completed"' and KEYS[4] and redis.call('GET', KEYS[4])
  if result and #result <= 65536 then
    entry[3], entry[4] = 'result', result
  end
  redis.call('XADD', KEYS[3], 'MAXLEN', '~', 10, '*', unpack(entry))
end
if ARGV[5] ~= '' and KEYS[5] then
  local line = cjson.decode(ARGV[5])
  redis.call('XADD', KEYS[5], 'MAXLEN', '~', line.maxlen, '*', unpack(line.fields))
end
local expire = tonumber(ARGV[3])
if expire > 0 then
  local tracked = f[3]
  for k = 1, (tracked and 7 or #KEYS) do redis.call('EXPIRE', KEYS[k], expire) end
  if tracked then
    local function keep(k) redis.call('EXPIRE', KEYS[k], expire) end
    if f[4] then keep(8) end
    if tonumber(f[5] or '0') > 0 then keep(9) keep(10) end
    if f[6] then keep(11) end
    if f[7] then keep(12) end
    if f[8] then keep(13) keep(14) end
  end
end
return {1, current}
"""

# KEYS: job, pieces. ARGV: start, stop (exclusive). Read-only: the job's generated pieces'
# description, or the stored list elements holding pieces start..stop-1 — packed
# `pieces_packed` pieces an element (a JSON array each), or one a piece (a job stored before
# packing, or of large pieces) — in one round trip. Returns {description or '', pack, elements}.
LOAD_PIECES = """
local f = redis.call('HMGET', KEYS[1], 'pieces_generated', 'pieces_packed')
if f[1] then return {f[1], 1, {}} end
local pack, start, stop = tonumber(f[2] or '1'), tonumber(ARGV[1]), tonumber(ARGV[2])
if stop <= start then return {'', pack, {}} end
return {'', pack, redis.call('LRANGE', KEYS[2], math.floor(start / pack), math.floor((stop - 1) / pack))}
"""

# Prepended to the scripts that count pieces: whether a count settled the job's last piece
# (the assembly follows). A piece settles with its result or, in a job that tolerates
# failed pieces (``min_success_ratio`` or ``max_failed_pieces`` on its record:
# runner/partial.py), with its final failure. ``new``: results (or failures) newly
# counted; ``unfailed``: failures a new result replaced. Counting is one script, so
# exactly one caller sees the job settle. Returns {state, done, total, failed, settled}.
_SETTLES = """
local function settles(job, done, new, unfailed)
  local f = redis.call('HMGET', job, 'state', 'pieces_total', 'pieces_failed', 'min_success_ratio',
                       'max_failed_pieces')
  local total, failed = tonumber(f[2] or '-1'), tonumber(f[3] or '0')
  local settled = 0
  if (f[4] and f[4] ~= 'null') or (f[5] and f[5] ~= 'null') then
    if new - unfailed > 0 and done + failed == total then settled = 1 end
  elseif new > 0 and done == total then
    settled = 1
  end
  return {f[1] or '', done, f[2] or '-1', failed, settled}
end
"""

# KEYS: job, runs, failed, events[, per-piece results]. ARGV: maxlen, start, stop, value, start, stop,
# value, ... Records each run of pieces start..stop-1 as the member 'start:stop:value' scored by
# start, unless it overlaps a run already recorded: then it is refused whole (its pieces were
# counted, or are being counted, by another run). The value is the run's results folded into
# one partial (the ranges key, an assembler that combines) or all of them as one JSON array
# (the result runs key): either way a run costs Redis a few commands, whatever its length.
# The per-piece results hash (optional KEYS[5]) is what a job in flight when Runner kept
# results per piece may hold: a run meeting one of its pieces is refused too.
# Returns {state, pieces done, pieces total, pieces newly counted, settled, refused start, ...}.
RECORD_RANGES = _SETTLES + """
local new, refused, unfailed = 0, {}, 0
local legacy = KEYS[5] and redis.call('EXISTS', KEYS[5]) == 1
for i = 2, #ARGV, 3 do
  local s, e = tonumber(ARGV[i]), tonumber(ARGV[i + 1])
  local clash = false
  local before = redis.call('ZREVRANGEBYSCORE', KEYS[2], s, '-inf', 'LIMIT', 0, 1)
  if #before > 0 and tonumber(string.match(before[1], '^%d+:(%d+):')) > s then clash = true end
  if not clash and #redis.call('ZRANGEBYSCORE', KEYS[2], s, '(' .. ARGV[i + 1], 'LIMIT', 0, 1) > 0 then
    clash = true
  end
  if legacy and not clash then
    for n = s, e - 1 do
      if redis.call('HEXISTS', KEYS[5], n) == 1 then clash = true break end
    end
  end
  if clash then
    refused[#refused + 1] = ARGV[i]
  else
    redis.call('ZADD', KEYS[2], s, ARGV[i] .. ':' .. ARGV[i + 1] .. ':' .. ARGV[i + 2])
    new = new + (e - s)
    local failed = redis.call('HLEN', KEYS[3])  -- pieces of the run that had failed: by the cheaper of the two
    if failed > 0 and failed <= e - s then
      for _, index in ipairs(redis.call('HKEYS', KEYS[3])) do
        local n = tonumber(index)
        if n >= s and n < e then unfailed = unfailed + redis.call('HDEL', KEYS[3], index) end
      end
    elseif failed > 0 then
      for first = s, e - 1, 500 do
        local fields = {}
        for n = first, math.min(first + 499, e - 1) do fields[#fields + 1] = n end
        unfailed = unfailed + redis.call('HDEL', KEYS[3], unpack(fields))
      end
    end
  end
end
if unfailed > 0 then redis.call('HINCRBY', KEYS[1], 'pieces_failed', -unfailed) end
local ttl = redis.call('TTL', KEYS[1])
if ttl > 0 and redis.call('TTL', KEYS[2]) == -1 then redis.call('EXPIRE', KEYS[2], ttl) end
local done = redis.call('HINCRBY', KEYS[1], 'pieces_done', new)
redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[1], '*', 'type', 'progress', 'done', done)
local s = settles(KEYS[1], done, new, unfailed)
local reply = {s[1], done, s[3], new, s[5]}
for _, start in ipairs(refused) do reply[#reply + 1] = start end
return reply
"""

# KEYS: job, failed, events, results, run zsets (ranges, result runs). ARGV: maxlen, index, error
# A piece failed for good: recorded once, unless it has a result (or lies in a recorded run)
# from another run of it, which a failure never undoes. Returns {pieces failed, pieces done,
# pieces total, 1 if newly recorded, settled, min_success_ratio, max_failed_pieces}.
RECORD_FAILURE = _SETTLES + """
local index = tonumber(ARGV[2])
local kept = redis.call('HEXISTS', KEYS[4], ARGV[2]) == 1
for k = 5, #KEYS do
  if kept then break end
  local before = redis.call('ZREVRANGEBYSCORE', KEYS[k], index, '-inf', 'LIMIT', 0, 1)
  kept = #before > 0 and tonumber(string.match(before[1], '^%d+:(%d+):')) > index
end
local new = 0
if not kept then
  new = redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
  local ttl = redis.call('TTL', KEYS[1])
  if ttl > 0 and redis.call('TTL', KEYS[2]) == -1 then
    redis.call('EXPIRE', KEYS[2], ttl)
    redis.call('HSET', KEYS[1], 'has_failed', 1)  -- the job's final move sets its lifetime
  end
  redis.call('HINCRBY', KEYS[1], 'pieces_failed', new)
  redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[1], '*', 'type', 'piece_failed', 'piece', ARGV[2])
end
-- a replay (a batch re-run after its process died, maybe before it assembled) settles a job
-- still running whose every piece is settled, as the first record did
local replay = 0
if new == 0 and redis.call('HGET', KEYS[1], 'state') == '"running"' then replay = 1 end
local s = settles(KEYS[1], tonumber(redis.call('HGET', KEYS[1], 'pieces_done') or '0'), new + replay, 0)
local limits = redis.call('HMGET', KEYS[1], 'min_success_ratio', 'max_failed_pieces')
return {s[4], s[2], s[3], new, s[5], limits[1] or 'null', limits[2] or 'null'}
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

# KEYS: due sorted set, then per schedule its hash and its jobs sorted set. ARGV: token field,
# then per schedule: member, expected due, next due, token, SHA1 of the caller's definition,
# how many recent job ids to return. A sweep's claims in one round trip, each the
# compare-and-set of CLAIM_SCHEDULE (a replay finds its own token and wins again), made only
# when the caller's definition is the stored one. Per schedule: {1, recent job ids newest
# first...} won; {0} lost (or the schedule is gone: its due time is dropped); {-1, definition}
# the caller's definition is not the stored one (nothing claimed: plan again with this one).
CLAIM_SCHEDULES = """
local out = {}
for i = 0, (#KEYS - 1) / 2 - 1 do
  local hash, jobs, a = KEYS[2 + 2 * i], KEYS[3 + 2 * i], 2 + 6 * i
  local member, due, nxt, token = ARGV[a], tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2]), ARGV[a + 3]
  local definition = redis.call('HGET', hash, 'definition')
  local score = redis.call('ZSCORE', KEYS[1], member)
  local won = false
  if score then score = tonumber(score) end
  if not definition then
    if score == due then redis.call('ZREM', KEYS[1], member) end
    out[#out + 1] = {0}
  elseif redis.sha1hex(definition) ~= ARGV[a + 4] then
    out[#out + 1] = {-1, definition}
  elseif score == nxt and redis.call('HGET', hash, ARGV[1]) == token then
    won = true
  elseif score ~= due then
    out[#out + 1] = {0}
  else
    redis.call('ZADD', KEYS[1], nxt, member)
    redis.call('HSET', hash, ARGV[1], token)
    won = true
  end
  if won then
    local reply = {1}
    local recent = tonumber(ARGV[a + 5])
    if recent > 0 then
      for _, id in ipairs(redis.call('ZREVRANGE', jobs, 0, recent - 1)) do reply[#reply + 1] = id end
    end
    out[#out + 1] = reply
  end
end
return out
"""

# KEYS: token, key record, rate counter. ARGV: key id, window seconds.
# The counter moves only for a valid token, so bogus tokens cannot spend a key's quota.
# Returns the key's org, the count, and the job a job's own key is scoped to ('' for none).
_CHECK_TOKEN = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return {0} end
local found = redis.call('HMGET', KEYS[2], 'org', 'job')
local org = found[1]
if not org then return {0} end
local n = redis.call('INCR', KEYS[3])
if n == 1 then redis.call('EXPIRE', KEYS[3], ARGV[2]) end
"""
AUTHENTICATE = _CHECK_TOKEN + """
return {1, org, n, found[2] or ''}
"""

# KEYS: token, key record, rate counter, job record, job's metric series. ARGV: key id,
# window seconds, job id, requests allowed per window. AUTHENTICATE, then (for a request
# within the limit, of the job's own org, and of that job for a job's own key) the job's
# record and metric series, so `GET /v1/jobs/{id}` is one round trip. Record fields are
# JSON, so the org field of the key's org reads as cjson.encode(org) (org names are plain).
# Returns {1, org, count, job, record (flat), series (flat)}; both empty when not readable.
AUTHENTICATE_READ = _CHECK_TOKEN + """
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
  redis.call('HSET', KEYS[3], 'has_metrics', 1)  -- the job's final move sets their lifetime
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

# KEYS: the new job's record, then each broker list a message goes to. ARGV: each list's
# message, then channel, message pairs to publish. Run last in the transaction that writes
# a new job (``jobs.create(..., send=...)``), after the quota's check: sends its partition
# task (and Celery's task-sent event) only if the record is still there, i.e. the job was
# admitted. The record's ``partition_sent`` makes a replay safe: a transaction retried
# after its reply was lost sends nothing twice. Returns 1 if sent, 0 if not.
SEND_IF_ADMITTED = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if redis.call('HSETNX', KEYS[1], 'partition_sent', 'true') == 0 then return 0 end
for i = 2, #KEYS do redis.call('LPUSH', KEYS[i], ARGV[i - 1]) end
local i = #KEYS
while i < #ARGV do
  redis.call('PUBLISH', ARGV[i], ARGV[i + 1])
  i = i + 2
end
return 1
"""
