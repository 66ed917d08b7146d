"""Service limits applied to what clients ask for: executionDuration and destruction.

Values are clamped, never obeyed blindly (UWS 1.1 §2.1.4-2.1.5, checklist
D-05, INT-18): too long becomes the maximum, a destruction time in the past
becomes a short grace period instead of destroying the job at once.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tapd.config import Config

#: A destruction time asked for in the past is moved this far into the future.
PAST_DESTRUCTION_GRACE = dt.timedelta(seconds=60)


def execution_duration_for(requested: int | None, config: Config) -> int:
    """Seconds a job may run: the default when not asked; 0 (unlimited) and
    anything longer become the configured maximum."""
    limit = int(config.execution_duration_max)
    if requested is None:
        return min(int(config.execution_duration_default), limit)
    if requested <= 0 or requested > limit:
        return limit
    return requested


def destruction_for(
    creation: dt.datetime,
    requested: dt.datetime | None,
    config: Config,
    now: dt.datetime | None = None,
) -> dt.datetime:
    """When a job is destroyed: the default retention when not asked, never later
    than the maximum retention after creation, never in the past."""
    now = now or dt.datetime.now(dt.UTC)
    latest = creation + dt.timedelta(seconds=config.destruction_max)
    if requested is None:
        return min(creation + dt.timedelta(seconds=config.destruction_default), latest)
    if requested < now:
        return min(now + PAST_DESTRUCTION_GRACE, latest)
    return min(requested, latest)
