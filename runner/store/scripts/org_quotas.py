"""The org-quota scripts (:mod:`runner.store.org_quotas`): setting an org's limits, counting
a job among its org's queued jobs against ``max_queued_jobs``, letting a job run or
holding it against ``max_running_jobs``, and the sweep's step that starts held jobs.

Each takes its keys as ``KEYS`` (built by :class:`runner.store.keyspace.Keys`); the
promote step is handed the records it reads (running and waiting jobs) as ``KEYS`` too.
"""

__all__ = ["QUOTA_SET", "QUOTA_ENTER_QUEUE", "QUOTA_ADMIT_TO_RUN", "QUOTA_PROMOTE"]

# KEYS: quota hash, orgs set, waiting zset. ARGV: org, field, value ('' clears it), field, value, ...
# Sets and clears an org's limits at once; the org stays listed while it has a limit or a
# job waiting. Returns how many limits the org has now.
QUOTA_SET = """
for i = 2, #ARGV, 2 do
  if ARGV[i + 1] == '' then redis.call('HDEL', KEYS[1], ARGV[i])
  else redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
end
local n = redis.call('HLEN', KEYS[1])
if n > 0 or redis.call('ZCARD', KEYS[3]) > 0 then redis.call('SADD', KEYS[2], ARGV[1])
else redis.call('SREM', KEYS[2], ARGV[1]) end
return n
"""

# KEYS: quota hash, queued zset[, what to undo when refused: the job's record, events,
# tasks and logs keys, then its org's job index and the deadlines zset].
# ARGV: job id, its deadline, now.
# Counts the job among its org's queued jobs unless that would pass max_queued_jobs:
# check and add in one step, so racing submitters (any number of API processes) admit
# exactly the limit. Run last in the transaction that writes a new job (``jobs.create``),
# a refusal deletes what that transaction wrote: nobody ever sees a refused job. Ids past
# their deadline are forgotten first (the watchdog ends those jobs; an id whose record
# expired unseen would otherwise count forever). Replay-safe: an id already counted is
# admitted again. An org without the limit only has the job counted (no count, no
# forgetting: the next count under a limit does that). Returns {admitted, queued count or
# -1, limit or -1}.
QUOTA_ENTER_QUEUE = """
local limit = tonumber(redis.call('HGET', KEYS[1], 'max_queued_jobs'))
if not limit then
  redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
  return {1, -1, -1}
end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[3])
local count = redis.call('ZCARD', KEYS[2])
if redis.call('ZSCORE', KEYS[2], ARGV[1]) then return {1, count, limit} end
if limit and count >= limit then
  if #KEYS > 2 then
    redis.call('DEL', KEYS[3], KEYS[4], KEYS[5], KEYS[6])
    redis.call('ZREM', KEYS[7], ARGV[1])
    redis.call('ZREM', KEYS[8], ARGV[1])
  end
  return {0, count, limit}
end
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
return {1, count + 1, limit or -1}
"""

# KEYS: quota hash, running set, waiting zset, queued zset, job record.
# ARGV: job id, org, now, partition task id.
# At the start of a job's partition task: the job runs (joins the running set, leaves
# the queued count) if its org is under max_running_jobs and nobody waits before it;
# else it is held in the waiting zset with a note on its record (its state stays queued)
# and the sweep starts it later. A job already counted running (a redelivery, or one the
# sweep started) goes on. Returns {1} to run, {0, note, newly held (1/0)} to wait.
QUOTA_ADMIT_TO_RUN = """
local id = ARGV[1]
local record = redis.call('HMGET', KEYS[5], 'state', 'waiting')
local state = record[1]
if not state then return {0, '', 0} end
local limit = tonumber(redis.call('HGET', KEYS[1], 'max_running_jobs'))
if limit and state == '"queued"' and redis.call('SISMEMBER', KEYS[2], id) == 0 then
  local held = redis.call('ZSCORE', KEYS[3], id)
  local running, ahead = redis.call('SCARD', KEYS[2]), redis.call('ZCARD', KEYS[3])
  if held then ahead = ahead - 1 end
  if limit and (held or running >= limit or ahead > 0) then
    local note
    if running >= limit then
      note = string.format('waiting: org %s has %d running jobs, its limit (max_running_jobs)', ARGV[2], running)
    else
      note = string.format('waiting: org %s has %d running jobs and %d waiting before this one (max_running_jobs %d)',
                           ARGV[2], running, ahead, limit)
    end
    if not held then
      redis.call('ZADD', KEYS[3], ARGV[3], id)
      redis.call('HSET', KEYS[5], 'waiting', cjson.encode(note), 'waiting_task', cjson.encode(ARGV[4]))
      return {0, note, 1}
    end
    return {0, note, 0}
  end
end
redis.call('SADD', KEYS[2], id)
redis.call('ZREM', KEYS[4], id)
if record[2] then  -- it was held: it waits no more
  redis.call('ZREM', KEYS[3], id)
  redis.call('HDEL', KEYS[5], 'waiting')
end
return {1}
"""

# KEYS: quota hash, running set, waiting zset, queued zset, then the records of the
# running jobs named in ARGV, then the records of the candidates.
# ARGV: n final states, final states (JSON)..., n running ids, running ids..., candidate ids (oldest first).
# The sweep's step for one org: forget running ids whose job ended or expired, drop
# candidates whose job is no longer queued, and move the oldest waiting jobs into the
# running set while the org is under max_running_jobs (their note cleared). Of several
# sweepers, each job is moved by exactly one: a job is moved only while it is in the
# waiting zset, and moving removes it. Returns the ids moved, oldest first.
QUOTA_PROMOTE = """
local final, a = {}, 2
for i = a, a + tonumber(ARGV[1]) - 1 do final[ARGV[i]] = true end
a = a + tonumber(ARGV[1])
local n_running = tonumber(ARGV[a])
a = a + 1
for i = 0, n_running - 1 do
  local state = redis.call('HGET', KEYS[5 + i], 'state')
  if not state or final[state] then redis.call('SREM', KEYS[2], ARGV[a + i]) end
end
local limit = tonumber(redis.call('HGET', KEYS[1], 'max_running_jobs'))
local moved = {}
for i = a + n_running, #ARGV do
  local id, record = ARGV[i], KEYS[5 + i - a]
  if redis.call('ZSCORE', KEYS[3], id) then
    if redis.call('HGET', record, 'state') ~= '"queued"' then
      redis.call('ZREM', KEYS[3], id)
      redis.call('ZREM', KEYS[4], id)
    else
      if limit and redis.call('SCARD', KEYS[2]) >= limit then break end
      redis.call('SADD', KEYS[2], id)
      redis.call('ZREM', KEYS[3], id)
      redis.call('HDEL', record, 'waiting')
      moved[#moved + 1] = id
    end
  end
end
return moved
"""
