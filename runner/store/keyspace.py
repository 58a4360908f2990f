"""Every Redis key Runner writes, one builder each, under a configurable prefix.

No key string exists anywhere else in Runner, Lua included (scripts take their keys as
``KEYS``), so the whole schema reads here. The store's parts (:mod:`runner.store`) share
one ``Keys``, and no module outside the store package calls a builder.

``P`` is ``RUNNER_KEY_PREFIX`` (default ``runner``).

====================================  ======  =================================================
key                                   type    holds
====================================  ======  =================================================
``P:job:{id}``                        hash    the job record; every value JSON-encoded. Besides the job's facts:
                                              ``keys_tracked`` and ``has_failed``/``has_attempts``/``has_metrics``
                                              (the optional keys it made, which its final move expires),
                                              ``share_batch`` (``{queue share prefix} {task id}``: the one batch of a
                                              job handed out whole under fair share, never held)
``P:job:{id}:events``                 stream  state changes and progress, capped (``EVENTS_MAXLEN``)
``P:job:{id}:ending``                 stream  the job's final state (and a small result), added by the move into
                                              it (a retried job's next ending follows): what a waiting client
                                              blocks on, once
``P:job:{id}:pieces``                 list    every piece as JSON, in piece order (claim check)
``P:job:{id}:results``                hash    piece index -> the app's result as JSON (read only: written by
                                              Runner before results were kept per run, for jobs in flight then)
``P:job:{id}:result_runs``            zset    ``start:stop:[result, ...]`` scored by ``start``: a job's results
                                              as a JSON array per recorded run of pieces (no overlaps)
``P:job:{id}:ranges``                 zset    ``start:stop:partial`` scored by ``start``: a combined job's
                                              folded results, one per recorded run of pieces (no overlaps)
``P:job:{id}:failed``                 hash    piece index -> error of a piece that failed for good (and has no result):
                                              in a partial job, the pieces it goes without (``ctx.failed_pieces``)
``P:job:{id}:result``                 string  the assembled output as JSON
``P:job:{id}:attempts``               hash    piece index -> times it failed (drives retries)
``P:job:{id}:deliveries``             hash    app task id:start -> times it started (poison cap)
``P:job:{id}:tasks``                  set     Celery task ids of the job (revoked on cancel/timeout)
``P:job:{id}:metrics``                list    ``ctx.add_metric`` values as JSON ``{name, value, piece}``
``P:job:{id}:metric_series``         hash    metric name -> JSON ``{count, n, sum, min, max, last, series}``: each
                                              metric's summary and its last values ``[step, value]`` (capped), live
``P:job:{id}:logs``                   stream  ``ctx.log`` lines and Runner's lifecycle lines, capped
``P:org:{org}:jobs``                  zset    job ids of one org, scored by creation time
``P:deadlines``                       zset    non-final job ids, scored by deadline (watchdog); a running attached
                                              job's by the earlier of it and last heartbeat + its dead seconds
``P:workers``                         hash    hostname -> its heartbeat, a ``WorkerInfo`` as JSON
``P:leases``                          zset    running tasks ``[name, id, args]`` as JSON, scored by when
                                              their worker last vouched for them (dead-work recovery)
``P:templates``                       hash    ref -> published template as JSON (never expires: ``catalog.py``)
``P:piece_seconds:{ref}#{params}``    string  mean seconds of one piece of the template with those app params (a
                                              digest), lately; sizes the next such jobs' batches; expires in a day
``P:api:key:{id}``                    hash    an HTTP API key: org, argon2 hash of its secret, created_at; a job's
                                              own key (``job_keys.py``) also ``job``, and expires with the job
``P:api:org:{org}:keys``              set     ids of an org's HTTP API keys
``P:api:token:{sha256}``              string  an access token's key id; expires with the token
``P:api:rate:{key id}:{window}``      string  requests of one API key in one rate-limit window
``P:api:link_secret``                 string  the HMAC secret of signed result links (shared by API processes)
``P:ui:session:{sha256}``             hash    a dashboard session (``runner/ui/``): key id, org, CSRF token;
                                              expires (``RUNNER_UI_SESSION_SECONDS``)
``P:imports``                         hash    ref -> imported executable template as JSON (never expires:
                                              ``engines/imports.py``)
``P:schedule:{org}:{name}``           hash    one schedule: ``definition`` (JSON) and its state (``schedules.py``)
``P:schedule:{org}:{name}:jobs``      zset    job ids the schedule fired, scored by due time (epoch ms)
``P:schedule:{org}:{name}:events``    stream  firings, skipped firings, overdue and paused/resumed, capped
``P:org:{org}:schedules``             set     names of one org's schedules
``P:schedules:due``                   zset    ``[org, name]`` as JSON, scored by next due time (epoch ms)
``P:schedules:checks``                zset    ``[org, name]`` as JSON, scored by when overdue is next checked (ms)
``P:org:{org}:sources``               hash    source id -> a Prediction-API source as JSON (``source_records.py``)
``P:org:{org}:source_names``          hash    source name -> its id (a name is unique in an org)
``P:org:{org}:source_versions``       hash    version id -> a source version as JSON (never changes)
``P:org:{org}:source:{id}:versions``  hash    version string -> version id, of one source
``P:org:{org}:inputs``                hash    input id -> a registered input ``{id, uri, kind, …}`` as JSON
``P:org:{org}:quota``                 hash    an org's quotas and share weight (``runner orgs set``): ``max_running_jobs``,
                                              ``max_pieces_in_flight``, ``max_queued_jobs``, ``weight``; absent = none
``P:org:{org}:running``               set     job ids of the org counted against ``max_running_jobs``
``P:org:{org}:waiting``               zset    job ids of the org held ``queued`` by ``max_running_jobs``, by queued time
``P:org:{org}:queued``                zset    job ids of the org in state ``queued`` (waiting ones too), by deadline:
                                              what ``max_queued_jobs`` counts (``runner/store/org_quotas.py``)
``P:orgs``                            set     orgs that have quotas set (``runner orgs`` lists them)
``P:org:{org}:in_flight``             string  pieces of the org's batches handed to the fleet and not yet finished
``P:share:queue:{queue}:orgs``        zset    orgs with held batches on a queue, scored by the work they were given
                                              (weighted): the fair-share order (``runner/store/fair_share.py``)
``P:share:queue:{queue}:org:{org}``   zset    one org's jobs with held batches on a queue, by work given (weighted)
``P:share:queue:{queue}:inflight``    hash    app task id -> ``job pieces org`` of each batch handed to the queue
``P:share:queue:{queue}:clock``       hash    the fair-share clocks: ``orgs`` and ``org:{org}`` (where newcomers start)
``P:share:job:{id}``                  hash    a job's fair-share facts: queue, org, priority, round, piece kind, left
``P:share:job:{id}:ranges``           list    ``start:stop`` piece ranges of the job not yet handed out
``P:share:job:{id}:inflight``         set     the job's app task ids in its queue's ``inflight`` (freed on its end)
``{queue}`` (broker)                   list    a Celery queue in the *broker* Redis (kombu's key; read by metrics)
====================================  ======  =================================================

Every key of a job expires: at creation after its deadline plus retention (so nothing
leaks if the whole fleet dies; keys made later copy the record's lifetime), and once
final after ``retention_hours``. The final move sets that lifetime on the keys the job has
(:meth:`Keys.lifetime_job_keys`' first seven, and of the rest those its record names — a
record from before issue 24, without ``keys_tracked``, has every key expired), not on
every key a job may have: a small job's ending costs nine ``EXPIRE`` s, not sixteen.
"""

from __future__ import annotations

__all__ = ["Keys"]


class Keys:
    """Builds the keys of one Runner installation (``prefix``)."""

    def __init__(self, prefix: str = "runner") -> None:
        self.prefix = prefix

    def piece_seconds_key(self, kind: str) -> str:
        return f"{self.prefix}:piece_seconds:{kind}"

    def job_key(self, job_id: str) -> str:
        return f"{self.prefix}:job:{job_id}"

    def events_key(self, job_id: str) -> str:
        return f"{self.prefix}:job:{job_id}:events"

    def ending_key(self, job_id: str) -> str:
        return f"{self.prefix}:job:{job_id}:ending"

    def pieces_key(self, job_id: str) -> str:
        return f"{self.prefix}:job:{job_id}:pieces"

    def results_key(self, job_id: str) -> str:
        return f"{self.prefix}:job:{job_id}:results"

    def result_runs_key(self, job_id: str) -> str:
        return f"{self.prefix}:job:{job_id}:result_runs"

    def ranges_key(self, job_id: str) -> str:
        return f"{self.prefix}:job:{job_id}:ranges"

    def failed_key(self, job_id: str) -> str:
        return f"{self.prefix}:job:{job_id}:failed"

    def result_key(self, job_id: str) -> str:
        return f"{self.prefix}:job:{job_id}:result"

    def attempts_key(self, job_id: str) -> str:
        return f"{self.prefix}:job:{job_id}:attempts"

    def deliveries_key(self, job_id: str) -> str:
        return f"{self.prefix}:job:{job_id}:deliveries"

    def tasks_key(self, job_id: str) -> str:
        return f"{self.prefix}:job:{job_id}:tasks"

    def metrics_key(self, job_id: str) -> str:
        return f"{self.prefix}:job:{job_id}:metrics"

    def metric_series_key(self, job_id: str) -> str:
        return f"{self.prefix}:job:{job_id}:metric_series"

    def logs_key(self, job_id: str) -> str:
        return f"{self.prefix}:job:{job_id}:logs"

    def org_jobs_key(self, org: str) -> str:
        return f"{self.prefix}:org:{org}:jobs"

    def deadlines_key(self) -> str:
        return f"{self.prefix}:deadlines"

    def workers_key(self) -> str:
        return f"{self.prefix}:workers"

    def leases_key(self) -> str:
        return f"{self.prefix}:leases"

    def templates_key(self) -> str:
        return f"{self.prefix}:templates"

    # HTTP API (runner/api/): API keys, tokens, rate limits, signed links
    def api_key_key(self, key_id: str) -> str:
        return f"{self.prefix}:api:key:{key_id}"

    def api_org_keys_key(self, org: str) -> str:
        return f"{self.prefix}:api:org:{org}:keys"

    def api_token_key(self, digest: str) -> str:
        return f"{self.prefix}:api:token:{digest}"

    def api_rate_key(self, key_id: str, window: int) -> str:
        return f"{self.prefix}:api:rate:{key_id}:{window}"

    def api_link_secret_key(self) -> str:
        return f"{self.prefix}:api:link_secret"

    def ui_session_key(self, digest: str) -> str:
        return f"{self.prefix}:ui:session:{digest}"

    def imports_key(self) -> str:
        return f"{self.prefix}:imports"

    def schedule_key(self, org: str, name: str) -> str:
        return f"{self.prefix}:schedule:{org}:{name}"

    def schedule_jobs_key(self, org: str, name: str) -> str:
        return f"{self.prefix}:schedule:{org}:{name}:jobs"

    def schedule_events_key(self, org: str, name: str) -> str:
        return f"{self.prefix}:schedule:{org}:{name}:events"

    def org_schedules_key(self, org: str) -> str:
        return f"{self.prefix}:org:{org}:schedules"

    def schedules_due_key(self) -> str:
        return f"{self.prefix}:schedules:due"

    def schedules_checks_key(self) -> str:
        return f"{self.prefix}:schedules:checks"

    # Prediction-API records (runner/store/source_records.py): config, so they never expire
    def sources_key(self, org: str) -> str:
        return f"{self.prefix}:org:{org}:sources"

    def source_names_key(self, org: str) -> str:
        return f"{self.prefix}:org:{org}:source_names"

    def source_versions_key(self, org: str) -> str:
        return f"{self.prefix}:org:{org}:source_versions"

    def source_version_ids_key(self, org: str, source_id: str) -> str:
        return f"{self.prefix}:org:{org}:source:{source_id}:versions"

    def inputs_key(self, org: str) -> str:
        return f"{self.prefix}:org:{org}:inputs"

    # sharing a fleet: org quotas (runner/store/org_quotas.py), fair share (runner/store/fair_share.py)
    def org_quota_key(self, org: str) -> str:
        return f"{self.prefix}:org:{org}:quota"

    def org_running_key(self, org: str) -> str:
        return f"{self.prefix}:org:{org}:running"

    def org_waiting_key(self, org: str) -> str:
        return f"{self.prefix}:org:{org}:waiting"

    def org_queued_key(self, org: str) -> str:
        return f"{self.prefix}:org:{org}:queued"

    def orgs_key(self) -> str:
        return f"{self.prefix}:orgs"

    def share_prefix(self, queue: str) -> str:
        """The prefix of one queue's fair-share keys (its Lua builds ``:orgs``, ``:org:{org}``,
        ``:inflight``, ``:clock`` from it, as the table above lists)."""
        return f"{self.prefix}:share:queue:{queue}"

    def share_inflight_key(self, queue: str) -> str:
        return f"{self.share_prefix(queue)}:inflight"

    def org_in_flight_key(self, org: str) -> str:
        return f"{self.prefix}:org:{org}:in_flight"

    def org_prefix(self) -> str:
        """The prefix of every org's keys (fair-share Lua reads ``{org}:quota`` and
        ``{org}:in_flight`` of the orgs it meets)."""
        return f"{self.prefix}:org:"

    def share_jobs_prefix(self) -> str:
        """The prefix of every job's fair-share keys (``{id}``, ``{id}:ranges``, ``{id}:inflight``)."""
        return f"{self.prefix}:share:job:"

    def piece_seconds_prefix(self) -> str:
        return f"{self.prefix}:piece_seconds:"

    def share_job_key(self, job_id: str) -> str:
        return f"{self.prefix}:share:job:{job_id}"

    def share_job_ranges_key(self, job_id: str) -> str:
        return f"{self.prefix}:share:job:{job_id}:ranges"

    def share_job_inflight_key(self, job_id: str) -> str:
        return f"{self.prefix}:share:job:{job_id}:inflight"

    def org_jobs_pattern(self) -> str:
        """A ``SCAN`` pattern matching every org's job index (metrics read every org)."""
        return f"{self.prefix}:org:*:jobs"

    def org_of_jobs_key(self, key: str) -> str:
        """The org an ``org_jobs_key`` belongs to (inverse of :meth:`org_jobs_key`)."""
        return key[len(f"{self.prefix}:org:"):-len(":jobs")]

    @staticmethod
    def broker_queue_key(queue: str) -> str:
        """The list kombu's Redis transport keeps a queue's messages in (the queue's name)."""
        return queue

    def lifetime_job_keys(self, job_id: str) -> list[str]:
        """Every key a job may have, in the order the final move expires them
        (``scripts.TRANSITION``): the keys every job has, then those it may make."""
        return [
            self.job_key(job_id), self.events_key(job_id), self.ending_key(job_id), self.result_key(job_id),
            self.logs_key(job_id), self.tasks_key(job_id), self.deliveries_key(job_id), self.pieces_key(job_id),
            self.result_runs_key(job_id), self.ranges_key(job_id), self.failed_key(job_id), self.attempts_key(job_id),
            self.metrics_key(job_id), self.metric_series_key(job_id), self.results_key(job_id),
        ]

    def all_job_keys(self, job_id: str) -> list[str]:
        """Every key a job may have (deleting or expiring a job covers them all)."""
        return [
            self.job_key(job_id), self.events_key(job_id), self.ending_key(job_id), self.result_key(job_id),
            self.logs_key(job_id), self.pieces_key(job_id), self.results_key(job_id), self.result_runs_key(job_id),
            self.ranges_key(job_id), self.failed_key(job_id), self.attempts_key(job_id), self.deliveries_key(job_id),
            self.tasks_key(job_id), self.metrics_key(job_id), self.metric_series_key(job_id),
        ]
