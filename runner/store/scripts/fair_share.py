"""The fair-share scripts (:mod:`runner.store.fair_share`): holding a job's batches, handing
them out fairly, forgetting a job that ended.

They meet keys they cannot know in advance (the orgs and jobs they pick), so each takes
the *prefixes* of those keys as ``KEYS`` — built by :class:`runner.store.keyspace.Keys` —
and appends the suffixes the key table lists: ``KEYS[1]`` a queue's share prefix,
``KEYS[2]`` every job's share prefix, ``KEYS[3]`` every org's prefix, ``KEYS[4]`` the
piece-time prefix, ``KEYS[5]`` the leases set, ``KEYS[6]`` every job record's prefix (a
batch handed out is counted in its record's ``batches_total`` and its task id joins the
job's ``:tasks``, which a cancel revokes). One Redis, never a cluster: the same
deployment assumption as the rest of the store.

Fair order: a stride scheduler in two levels. Each org holding batches on the queue has a
pass (work it was handed, in seconds, divided by its weight); the org with the least pass
goes next, and within it the job with the least pass (work ÷ its priority's weight).
Newcomers start at the clock (the pass last served) — no credit banked while idle, and no
wait behind the work others were given before they came. A higher priority starts ahead
of the clock (``HEAD_START`` seconds per step above normal) and gains faster; a lower one
starts behind and gains slower, but every pass only grows, so it runs in the end (aging).
"""

__all__ = ["HOLD", "TAKE", "TAKE_WHOLE", "GIVE_BACK", "FORGET", "HEAD_START"]

HEAD_START = 1.0  # seconds of work a job starts ahead of the clock per priority step above normal (5)

_COMMON = """
local qp, jp, op, pp, leases, records = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local FINAL = {['"completed"'] = true, ['"failed"'] = true, ['"cancelled"'] = true, ['"timed_out"'] = true}
local function meta(job)
  local raw = redis.call('HGETALL', jp .. job)
  if #raw == 0 then return nil end
  local m = {}
  for i = 1, #raw, 2 do m[raw[i]] = raw[i + 1] end
  return m
end
local function free(queue_prefix, id, unlisted)
  local value = redis.call('HGET', queue_prefix .. ':inflight', id)
  if not value then return end
  local job, pieces, org = string.match(value, '^(%S+) (%d+) (.+)$')
  redis.call('HDEL', queue_prefix .. ':inflight', id)
  if not unlisted then redis.call('SREM', jp .. job .. ':inflight', id) end
  if redis.call('DECRBY', op .. org .. ':in_flight', pieces) <= 0 then redis.call('DEL', op .. org .. ':in_flight') end
end
local function unlist(queue_prefix, job, org)
  local jobs = queue_prefix .. ':org:' .. org
  redis.call('ZREM', jobs, job)
  redis.call('DEL', jp .. job .. ':ranges')
  if redis.call('ZCARD', jobs) == 0 then redis.call('ZREM', queue_prefix .. ':orgs', org) end
end
"""

# Guided self-scheduling: a batch takes ``left / workers`` pieces (half that, at most ``probe``,
# while the piece time is unknown) — within ``most_seconds`` of work and at least
# ``least_seconds`` of it once the piece time is known, and the whole rest when what would
# remain is under half that floor — or the template's fixed size; never more than
# ``max_batch``, the range's ``span`` or the org's ``room``. (Locals ``workers``, ``max_batch``,
# ``least_seconds``, ``most_seconds``, ``probe`` come from the script using it.)
_SIZE = """
local function batch_size(fixed, left, seconds, span, room)
  local size = fixed
  if size <= 0 then
    local known = seconds and seconds > 0
    -- guided self-scheduling: a share of what is left per process, half of it while the
    -- piece time is unknown; once it is known the floor keeps the tail from going to dust
    size = math.ceil(left / ((known and 1 or 2) * workers))
    if known then
      local least = math.max(1, math.min(max_batch, math.floor(least_seconds / seconds + 0.5)))
      size = math.max(least, math.min(size, math.max(1, math.floor(most_seconds / seconds))))
      -- a rest under half the floor would run alone at the very end, its peers idle: take it now
      if left - size < least / 2 then size = left end
    else
      size = math.min(size, probe)
    end
  end
  return math.max(1, math.min(size, max_batch, span, room))
end
"""

# ARGV: job, org, priority, round, piece kind, deadline, fixed batch size (0: none),
# lease template, keep seconds, head start, then start, stop, start, stop, ...
# Returns 1 when held, 0 when this round of the job was held already (a replay).
HOLD = _COMMON + """
local job, org, prio, round = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4]
local m = meta(job)
if m and m.round == round then return 0 end
local left = 0
local ranges = {}
for i = 11, #ARGV, 2 do
  left = left + tonumber(ARGV[i + 1]) - tonumber(ARGV[i])
  ranges[#ranges + 1] = ARGV[i] .. ':' .. ARGV[i + 1]
end
local keep = tonumber(ARGV[9])
redis.call('HSET', jp .. job, 'queue', qp, 'org', org, 'prio', prio, 'round', round, 'kind', ARGV[5],
           'deadline', ARGV[6], 'size', ARGV[7], 'lease', ARGV[8], 'left', left)
redis.call('EXPIRE', jp .. job, keep)
redis.call('DEL', jp .. job .. ':ranges')
if #ranges == 0 then return 1 end
redis.call('RPUSH', jp .. job .. ':ranges', unpack(ranges))
redis.call('EXPIRE', jp .. job .. ':ranges', keep)
local jobs_clock = tonumber(redis.call('HGET', qp .. ':clock', 'org:' .. org) or '0')
redis.call('ZADD', qp .. ':org:' .. org, jobs_clock - (prio - 5) * tonumber(ARGV[10]), job)
if not redis.call('ZSCORE', qp .. ':orgs', org) then
  redis.call('ZADD', qp .. ':orgs', tonumber(redis.call('HGET', qp .. ':clock', 'orgs') or '0'), org)
end
return 1
"""

# ARGV: now, capacity (batches in flight on the queue), freed task id or '', own job or '',
# most seconds per batch, most pieces per batch, least seconds per batch, pieces per batch
# while the piece time is unknown, parallel processes, default piece seconds (for costs),
# and the most pieces the first batch may carry to be run by the caller (0: any).
# Frees the finished batch, then hands out batches while the queue is under capacity
# (one of ``own`` first, whatever the capacity: the partition task runs it in its own
# process). Each batch handed out is leased at ``now``, so a sender that dies before
# sending it leaves it to the lease sweep. The first batch is cut to the caller's fit when
# that costs it at most a quarter of its pieces (the caller then runs it in its own process,
# under the time limit it has left). Returns {job, round, start, stop, deadline}, ...
TAKE = _COMMON + """
local now, capacity, freed, own = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3], ARGV[4]
local most_seconds, max_batch, least_seconds = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
local probe, workers, default_seconds = tonumber(ARGV[8]), tonumber(ARGV[9]), tonumber(ARGV[10])
""" + _SIZE + """
local fit = tonumber(ARGV[11] or '0')
local inflight, orgs, clock = qp .. ':inflight', qp .. ':orgs', qp .. ':clock'
if freed ~= '' then free(qp, freed) end

local function allowance(org)
  local limit = tonumber(redis.call('HGET', op .. org .. ':quota', 'max_pieces_in_flight') or '')
  if not limit then return math.huge end
  return limit - tonumber(redis.call('GET', op .. org .. ':in_flight') or '0')
end

local function size_of(m, seconds, span, room)
  return batch_size(tonumber(m.size), tonumber(m.left), seconds, span, room)
end

local function advance(field, value)
  if value > tonumber(redis.call('HGET', clock, field) or '-1e300') then redis.call('HSET', clock, field, value) end
end

-- hand out one batch of ``job``; false when it has nothing left or its org no room
local function hand(job, m, out)
  local room = allowance(m.org)
  if room <= 0 then return false end
  local range = redis.call('LPOP', jp .. job .. ':ranges')
  if not range then return false end
  local first, stop = string.match(range, '^(%d+):(%d+)$')
  first, stop = tonumber(first), tonumber(stop)
  local seconds = tonumber(redis.call('GET', pp .. m.kind) or '')
  local size = size_of(m, seconds, stop - first, room)
  if #out == 0 and fit > 0 and size > fit and fit * 4 >= size * 3 then size = fit end
  if first + size < stop then redis.call('LPUSH', jp .. job .. ':ranges', (first + size) .. ':' .. stop) end
  m.left = tonumber(m.left) - size
  redis.call('HSET', jp .. job, 'left', m.left)
  local id = job .. '-' .. m.round .. '-' .. first
  redis.call('HSET', inflight, id, job .. ' ' .. size .. ' ' .. m.org)
  redis.call('SADD', jp .. job .. ':inflight', id)
  redis.call('EXPIRE', jp .. job .. ':inflight', redis.call('TTL', jp .. job))
  redis.call('INCRBY', op .. m.org .. ':in_flight', size)
  local lease = string.gsub(m.lease, '"@S@"', tostring(first))
  lease = string.gsub(lease, '@S@', tostring(first))
  lease = string.gsub(lease, '"@E@"', tostring(first + size))
  redis.call('ZADD', leases, now, lease)
  local record = records .. job
  if redis.call('EXISTS', record) == 1 then
    redis.call('HINCRBY', record, 'batches_total', 1)
    redis.call('SADD', record .. ':tasks', id)
    local ttl = redis.call('TTL', record)
    if ttl > 0 then redis.call('EXPIRE', record .. ':tasks', ttl) end
  end
  out[#out + 1] = {job, m.round, first, first + size, m.deadline}
  -- charge the job and its org for the work, weighted
  local cost = size * ((seconds and seconds > 0) and seconds or default_seconds)
  local jobs = qp .. ':org:' .. m.org
  local job_pass = tonumber(redis.call('ZSCORE', jobs, job) or '0')
  local org_pass = tonumber(redis.call('ZSCORE', orgs, m.org) or '0')
  advance('org:' .. m.org, job_pass)
  advance('orgs', org_pass)
  local weight = tonumber(redis.call('HGET', op .. m.org .. ':quota', 'weight') or '1')
  if redis.call('LLEN', jp .. job .. ':ranges') == 0 then
    unlist(qp, job, m.org)
  else
    redis.call('ZADD', jobs, job_pass + cost / (2 ^ ((tonumber(m.prio) - 5) / 1.5)), job)
  end
  if redis.call('ZSCORE', orgs, m.org) then redis.call('ZADD', orgs, org_pass + cost / weight, m.org) end
  return true
end

local out = {}
if own ~= '' then
  local m = meta(own)
  if m and tonumber(m.deadline) > now then hand(own, m, out) end
end
local busy = redis.call('HLEN', inflight)
for _ = 1, 256 do
  if busy >= capacity then break end
  local progressed = false
  for _, org in ipairs(redis.call('ZRANGE', orgs, 0, 15)) do
    local job = redis.call('ZRANGE', qp .. ':org:' .. org, 0, 0)[1]
    local m = job and meta(job)
    if not job then
      redis.call('ZREM', orgs, org)
      progressed = true
      break
    elseif not m or tonumber(m.deadline) <= now then
      unlist(qp, job, org)
      progressed = true
      break
    elseif allowance(org) > 0 then
      if hand(job, m, out) then busy = busy + 1 else unlist(qp, job, org) end
      progressed = true
      break
    end
  end
  if not progressed then break end
end
return out
"""

# ARGV: job, org, round, piece kind, deadline, fixed batch size (0: none), lease template,
# start, stop (the job's one range), now, most seconds per batch, most pieces per batch, least
# seconds per batch, pieces per batch while the piece time is unknown, parallel processes,
# default piece seconds[, the batch's start as Journal.begin_args gives it].
# A job whose pieces all fit the one batch its partition task takes and runs itself (a
# small job, most often) never waits in the fair order: holding its ranges, listing it and
# forgetting it would be all its fair-share cost. So it is handed out whole here, unheld:
# counted in the queue's in-flight batches and its org's pieces in flight (its quota holds),
# leased, recorded on the job's record (``share_batch``: what frees its slot when the job
# ends first, ``fanned_out``: a re-run partition task sends nothing again) and charged to its
# org's pass when the org has batches held on the queue (the order between orgs stays fair).
# Returns {{job, round, start, stop, deadline}}, or {} when the job is not such a job (its
# org lacks room, its deadline passed, or it needs more batches): hold it instead. With the
# batch's start, the process that takes it starts it in the same call — its delivery counted,
# its event and log lines written, {state, deliveries, deadline} returned second —
# and only while the job is running (the move to it may have failed in the same round trip).
TAKE_WHOLE = _COMMON + """
local job, org, round, kind, deadline = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local first, stop, now = tonumber(ARGV[8]), tonumber(ARGV[9]), tonumber(ARGV[10])
local most_seconds, max_batch, least_seconds = tonumber(ARGV[11]), tonumber(ARGV[12]), tonumber(ARGV[13])
local probe, workers, default_seconds = tonumber(ARGV[14]), tonumber(ARGV[15]), tonumber(ARGV[16])
""" + _SIZE + """
local pieces = stop - first
if tonumber(deadline) <= now or pieces <= 0 then return {} end
local record = records .. job
local begin = ARGV[17] and ARGV[17] ~= '' and cjson.decode(ARGV[17])
local facts = begin and redis.call('HMGET', record, 'state', 'deadline')
if begin and facts[1] ~= '"running"' then return {} end
local limit = tonumber(redis.call('HGET', op .. org .. ':quota', 'max_pieces_in_flight') or '')
if limit and limit - tonumber(redis.call('GET', op .. org .. ':in_flight') or '0') < pieces then return {} end
local fixed = tonumber(ARGV[6])
local seconds = fixed <= 0 and tonumber(redis.call('GET', pp .. kind) or '') or nil
if batch_size(fixed, pieces, seconds, pieces, pieces) < pieces then return {} end
local id = job .. '-' .. round .. '-' .. first
local out = {{job, round, first, stop, deadline}}
if begin then  -- the process taking it starts it here: Journal.begin_batch's writes and reads
  local n = redis.call('HINCRBY', record .. ':deliveries', begin.delivery, 1)
  redis.call('XADD', record .. ':events', 'MAXLEN', begin.events_maxlen, '*', unpack(begin.event))
  for _, line in ipairs(begin.logs) do
    redis.call('XADD', record .. ':logs', 'MAXLEN', '~', begin.logs_maxlen, '*', unpack(line))
  end
  out[2] = {facts[1], n, facts[2] or false}
end
if redis.call('HSETNX', qp .. ':inflight', id, job .. ' ' .. pieces .. ' ' .. org) == 0 then return out end
redis.call('INCRBY', op .. org .. ':in_flight', pieces)
local lease = string.gsub(ARGV[7], '"@S@"', tostring(first))
lease = string.gsub(lease, '@S@', tostring(first))
lease = string.gsub(lease, '"@E@"', tostring(stop))
redis.call('ZADD', leases, now, lease)
if redis.call('EXISTS', record) == 1 then  -- its tasks set has its partition task's id, and a lifetime, already
  redis.call('HSET', record, 'batches_total', 1, 'fanned_out', 'true', 'share_batch', cjson.encode(qp .. ' ' .. id))
  redis.call('SADD', record .. ':tasks', id)
end
local org_pass = redis.call('ZSCORE', qp .. ':orgs', org)
if org_pass then
  local weight = tonumber(redis.call('HGET', op .. org .. ':quota', 'weight') or '1')
  local cost = pieces * ((seconds and seconds > 0) and seconds or default_seconds)
  redis.call('ZADD', qp .. ':orgs', tonumber(org_pass) + cost / weight, org)
end
return out
"""

# ARGV: job, its batch's task id, start, stop. A batch that stopped early to let a newly
# arrived job start (``workers/batch.py``) frees its slot and gives pieces start..stop-1
# back, to be handed out again first among the job's; a job no longer listed is listed
# again at its org's clock (and its org at the queue's). A job handed out whole
# (``TAKE_WHOLE``), which has no share keys, is held here — from the optional ARGV org,
# priority, round, piece kind, deadline, fixed size, lease template, keep seconds — unless it
# ended. Returns 0 for a job forgotten.
GIVE_BACK = _COMMON + """
local job, id, first, stop = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local m = meta(job)
if not m and first < stop and #ARGV > 4 then  -- handed out whole: held now, if it goes on
  local f = redis.call('HMGET', records .. job, 'share_batch', 'state')
  if f[1] and f[2] and not FINAL[f[2]] then
    free(qp, id, true)
    id = ''
    redis.call('HSET', jp .. job, 'queue', qp, 'org', ARGV[5], 'prio', ARGV[6], 'round', ARGV[7], 'kind', ARGV[8],
               'deadline', ARGV[9], 'size', ARGV[10], 'lease', ARGV[11], 'left', 0)
    redis.call('EXPIRE', jp .. job, ARGV[12])
    redis.call('HDEL', records .. job, 'share_batch')
    m = {org = ARGV[5]}
  end
end
if id ~= '' then free(qp, id) end
if not m or first >= stop then return 0 end
redis.call('LPUSH', jp .. job .. ':ranges', first .. ':' .. stop)
if #ARGV > 4 then redis.call('EXPIRE', jp .. job .. ':ranges', redis.call('TTL', jp .. job)) end
redis.call('HINCRBY', jp .. job, 'left', stop - first)
local jobs = qp .. ':org:' .. m.org
if not redis.call('ZSCORE', jobs, job) then
  redis.call('ZADD', jobs, tonumber(redis.call('HGET', qp .. ':clock', 'org:' .. m.org) or '0'), job)
end
if not redis.call('ZSCORE', qp .. ':orgs', m.org) then
  redis.call('ZADD', qp .. ':orgs', tonumber(redis.call('HGET', qp .. ':clock', 'orgs') or '0'), m.org)
end
return 1
"""

# ARGV: job. Unlists the job, frees its batches in flight and deletes its share keys (a job
# handed out whole has none: its record's ``share_batch`` names its one batch).
FORGET = _COMMON + """
local job = ARGV[1]
local batch = redis.call('HGET', records .. job, 'share_batch')
if batch then  -- handed out whole (a later round, or a run after a re-queue, may be held too)
  local queue_prefix, id = string.match(cjson.decode(batch), '^(%S+) (%S+)$')
  free(queue_prefix, id, true)
end
local m = meta(job)
if not m then return batch and 1 or 0 end
unlist(m.queue, job, m.org)
for _, id in ipairs(redis.call('SMEMBERS', jp .. job .. ':inflight')) do free(m.queue, id) end
redis.call('DEL', jp .. job, jp .. job .. ':ranges', jp .. job .. ':inflight')
return 1
"""
