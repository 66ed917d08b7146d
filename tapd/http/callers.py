"""Who is asking: a named owner (``http.owner_header``) or an anonymous client address,
and what follows from it for quotas and the job list. Pure decisions, table-tested.

- Named owners: at most ``limits.jobs_per_owner`` stored jobs each.
- Anonymous callers, by ``limits.anonymous_quota``: ``address`` counts their
  jobs per client address against the same limit, ``shared`` counts all
  anonymous jobs as one pool, ``off`` does not count them.
- The job list shows a named owner their jobs; an anonymous caller the
  anonymous jobs from their own address (``http.anonymous_job_list = "own"``)
  or all anonymous jobs (``"all"``).

The client address is the peer's, or the one a trusted proxy forwarded
(uvicorn's ``--forwarded-allow-ips``, env ``FORWARDED_ALLOW_IPS``: 127.0.0.1
by default).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tapd.store import ANY_OWNER, Quota

ANONYMOUS_QUOTAS = ("address", "shared", "off")
ANONYMOUS_JOB_LISTS = ("own", "all")


@dataclass(frozen=True)
class Caller:
    owner: str | None  # None: anonymous
    address: str | None  # the client address (None when the server does not know it)


def quota_for(caller: Caller, *, limit: int, anonymous_quota: str) -> Quota | None:
    """The quota a new job of ``caller`` counts against (None: not counted)."""
    if caller.owner is not None:
        return Quota(
            caller.owner,
            None,
            limit,
            f"you have {limit} jobs, the most this service keeps per user: delete some first",
        )
    if anonymous_quota == "off":
        return None
    if anonymous_quota == "shared":
        return Quota(
            None,
            None,
            limit,
            f"anonymous users have {limit} jobs together, the most this service keeps for them:"
            " try again when some are destroyed, or sign in",
        )
    return Quota(
        None,
        caller.address or "",
        limit,
        f"your address has {limit} anonymous jobs, the most this service keeps per address:"
        " delete some first",
    )


def listing_filter(caller: Caller, *, anonymous_job_list: str) -> dict[str, Any]:
    """Keyword arguments of ``JobStore.list_jobs`` restricting it to what ``caller`` sees."""
    if caller.owner is not None or anonymous_job_list == "all":
        return {"owner": caller.owner, "client_address": ANY_OWNER}
    return {"owner": None, "client_address": caller.address or ""}


def job_address(caller: Caller) -> str | None:
    """The client address stored with a new job (anonymous jobs only)."""
    return (caller.address or "") if caller.owner is None else None
