"""Recurring jobs, one concept in one package: ``spec`` (what a schedule is and when it is
due), ``sweep`` (the firing every worker's watchdog runs, through admission), ``handle``
(what a user calls: create, list, the :class:`Schedule` handle). Their records live in
the store (``runner/store/schedule_records.py``)."""

from runner.schedules.spec import (
    ALL_CAP, LATE_AFTER, NAME_PATTERN, CatchUp, Firing, ScheduleInfo, ScheduleSpec, parse_duration, timing_errors,
)

__all__ = ["CatchUp", "ScheduleSpec", "ScheduleInfo", "Firing", "parse_duration", "timing_errors", "ALL_CAP",
           "LATE_AFTER", "NAME_PATTERN"]
