"""UWS control values from requests: WAIT, PHASE, LAST, AFTER, DESTRUCTION, EXECUTIONDURATION.

Pure parsing; a bad value is a ``BadRequest`` naming the parameter and what is
accepted. Names are matched case-insensitively (DALI 3.1) by ``RequestForm``;
the values RUN, ABORT and DELETE case-insensitively too (astroquery sends
``phase=run``, UWS-49).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from tapd.http.problems import BadRequest
from tapd.store.phases import JobPhase


def parse_wait(value: str | None) -> int | None:
    """WAIT seconds; -1 means as long as the server allows; None when absent."""
    if value is None:
        return None
    try:
        seconds = int(value.strip())
    except ValueError:
        raise BadRequest(
            f"WAIT must be an integer number of seconds (or -1), got {value!r}"
        ) from None
    if seconds < -1:
        raise BadRequest(f"WAIT must be -1 or at least 0, got {value!r}")
    return seconds


def parse_phase_name(value: str, parameter: str = "PHASE") -> JobPhase:
    """A UWS phase name (any case)."""
    try:
        return JobPhase(value.strip().upper())
    except ValueError:
        names = ", ".join(p.value for p in JobPhase)
        raise BadRequest(f"{parameter} must be one of {names}; got {value!r}") from None


#: Largest LAST accepted (more jobs than any list holds; beyond it is a typo or a probe).
MAX_LAST = 1_000_000_000


def parse_last(value: str | None) -> int | None:
    """LAST=n: the n most recently created jobs (0 < n <= ``MAX_LAST``)."""
    if value is None:
        return None
    try:
        count = int(value.strip())
    except ValueError:
        raise BadRequest(f"LAST must be a positive integer, got {value!r}") from None
    if not 0 < count <= MAX_LAST:
        raise BadRequest(f"LAST must be a positive integer up to {MAX_LAST}, got {value!r}")
    return count


def parse_timestamp(value: str, parameter: str) -> dt.datetime:
    """An ISO 8601 instant; without a zone it is UTC (UWS times are UTC)."""
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise BadRequest(
            f"{parameter} must be an ISO 8601 time such as 2030-01-02T03:04:05Z, got {value!r}"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    try:
        return moment.astimezone(dt.UTC)
    except OverflowError:  # 9999-12-31T23:59:59-01:00 is past the last representable UTC time
        raise BadRequest(
            f"{parameter} {value!r} is outside the years 1 to 9999 once converted to UTC"
        ) from None


def parse_execution_duration(value: str) -> int:
    """EXECUTIONDURATION: whole seconds, 0 meaning no limit."""
    try:
        seconds = int(value.strip())
    except ValueError:
        raise BadRequest(
            f"EXECUTIONDURATION must be a whole number of seconds, got {value!r}"
        ) from None
    if seconds < 0:
        raise BadRequest(f"EXECUTIONDURATION must not be negative, got {value!r}")
    return seconds


def parse_maxrec(value: str) -> int:
    """MAXREC: a non-negative integer (checked early so a typo is not a silent default)."""
    try:
        rows = int(value.strip())
    except ValueError:
        raise BadRequest(f"MAXREC must be a non-negative integer, got {value!r}") from None
    if rows < 0:
        raise BadRequest(f"MAXREC must be a non-negative integer, got {value!r}")
    return rows


@dataclass(frozen=True)
class PhaseRequest:
    """What a client asked of ``/phase``: run or abort."""

    action: str  # "RUN" or "ABORT"


def parse_phase_action(value: str | None) -> PhaseRequest:
    """PHASE=RUN or PHASE=ABORT posted to ``/phase`` (or with the creating POST)."""
    if value is None:
        raise BadRequest("POST to the phase resource needs PHASE=RUN or PHASE=ABORT")
    action = value.strip().upper()
    if action not in {"RUN", "ABORT"}:
        raise BadRequest(f"PHASE must be RUN or ABORT, got {value!r}")
    return PhaseRequest(action)
