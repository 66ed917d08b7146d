"""``tapd status``: the fleet on one screen, for an operator (``--json`` for scripts).

Each runner daemon (host, pid, uptime, heartbeat age, slots busy/usable, why it
is degraded), the jobs by phase, how long the oldest queued job has waited,
the accounts with the most jobs, and the HTTP services seen recently. Exit
status 0 when at least one daemon can run jobs, 1 when none can (3 when the
database cannot be reached), so a monitoring check can call it.

Reading is one round of queries; everything else is pure (``StatusReport``,
``render``, ``as_json``) and tested from tables.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tapd.cli.context import load_cli_config, store_connection
from tapd.store.phases import JobPhase

if TYPE_CHECKING:
    from tapd.store import AccountLoad, JobStore, RunnerInfo, ServiceInfo

    Subparsers = argparse._SubParsersAction[argparse.ArgumentParser]

#: Seconds within which an HTTP service counts as seen recently.
SERVICES_SEEN_WITHIN = 120.0
#: Accounts shown as the heaviest.
HEAVIEST = 5
#: Phases the queue line shows first; the others follow when they hold jobs.
QUEUE_PHASES = (JobPhase.PENDING, JobPhase.QUEUED, JobPhase.EXECUTING)

EXIT_USABLE = 0
EXIT_NONE_USABLE = 1


@dataclass(frozen=True)
class StatusReport:
    """Everything ``tapd status`` shows, as read from the store."""

    runners: Sequence[RunnerInfo]
    heartbeat_timeout: float
    phase_counts: Mapping[JobPhase, int]
    oldest_queued_age: float | None
    heaviest: Sequence[AccountLoad]
    services: Sequence[ServiceInfo]

    def is_usable(self, runner: RunnerInfo) -> bool:
        return runner.is_live(self.heartbeat_timeout) and runner.usable_slots > 0

    @property
    def usable(self) -> bool:
        """Whether any daemon can run a job now."""
        return any(self.is_usable(r) for r in self.runners)


def read_report(store: JobStore, heartbeat_timeout: float) -> StatusReport:
    return StatusReport(
        runners=store.list_runners(),
        heartbeat_timeout=heartbeat_timeout,
        phase_counts=store.phase_counts(),
        oldest_queued_age=store.oldest_queued_age(),
        heaviest=store.heaviest_accounts(HEAVIEST),
        services=store.list_services(SERVICES_SEEN_WITHIN),
    )


def human_duration(seconds: float) -> str:
    """``4.2 s``, ``12 min``, ``3 h 05 min``, ``2 d 04 h``."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes = int(seconds // 60)
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes:02} min"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours:02} h"


def uptime(started: dt.datetime, heartbeat: dt.datetime, heartbeat_age: float) -> float:
    """Seconds since ``started``, by the database's clock (as the heartbeat age is)."""
    return (heartbeat - started).total_seconds() + heartbeat_age


def daemon_state(runner: RunnerInfo, heartbeat_timeout: float) -> str:
    """What an operator should know about one daemon, in a few words."""
    if runner.heartbeat_age >= heartbeat_timeout:
        return f"silent for {human_duration(runner.heartbeat_age)}: given up for dead soon"
    if runner.stopping:
        return "stopping"
    if runner.degraded:
        since = runner.degraded_since
        when = f" since {since.astimezone(dt.UTC):%H:%M:%S}Z" if since else ""
        return f"degraded{when}: {runner.degraded}"
    if runner.usable_slots <= 0:
        return "no usable slot"
    return "ok"


def _table(rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  " + "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        for row in rows
    ]


def render(report: StatusReport) -> list[str]:
    """The screen, as lines."""
    usable = [r for r in report.runners if report.is_usable(r)]
    lines = [f"daemons: {len(report.runners)} registered, {len(usable)} usable"]
    if report.runners:
        rows = [["HOST", "PID", "UPTIME", "HEARTBEAT", "SLOTS busy/usable/max", "STATE"]]
        for r in report.runners:
            rows.append(
                [
                    r.host,
                    str(r.pid),
                    human_duration(uptime(r.started, r.heartbeat, r.heartbeat_age)),
                    f"{human_duration(r.heartbeat_age)} ago",
                    f"{r.running}/{r.usable_slots}/{r.max_jobs}",
                    daemon_state(r, report.heartbeat_timeout),
                ]
            )
        lines += _table(rows)
    if not usable:
        lines.append("  no daemon can run jobs: queued jobs wait")
    counts = report.phase_counts
    shown = [*QUEUE_PHASES, *(p for p in JobPhase if p not in QUEUE_PHASES and counts.get(p))]
    lines.append("jobs: " + ", ".join(f"{counts.get(p, 0)} {p.value}" for p in shown))
    if report.oldest_queued_age is not None:
        lines.append(f"oldest queued job waiting: {human_duration(report.oldest_queued_age)}")
    if report.heaviest:
        lines.append("heaviest owners:")
        rows = [["OWNER", "RUNNING", "QUEUED"]]
        rows += [[a.name, str(a.running), str(a.queued)] for a in report.heaviest]
        lines += _table(rows)
    seen = human_duration(SERVICES_SEEN_WITHIN)
    if report.services:
        lines.append(f"http services seen in the last {seen}:")
        rows = [["HOST", "PID", "UPTIME", "HEARTBEAT", "URL", "METRICS"]]
        for s in report.services:
            rows.append(
                [
                    s.host,
                    str(s.pid),
                    human_duration(uptime(s.started, s.heartbeat, s.heartbeat_age)),
                    f"{human_duration(s.heartbeat_age)} ago",
                    s.url,
                    s.metrics_url or "-",
                ]
            )
        lines += _table(rows)
    else:
        lines.append(f"http services seen in the last {seen}: none")
    return lines


def as_json(report: StatusReport) -> dict[str, Any]:
    """The report for scripts: durations in seconds, times in ISO 8601."""
    return {
        "usable": report.usable,
        "daemons": [
            {
                "host": r.host,
                "pid": r.pid,
                "instance": r.instance,
                "uptime_s": round(uptime(r.started, r.heartbeat, r.heartbeat_age), 3),
                "heartbeat_age_s": round(r.heartbeat_age, 3),
                "slots": {"max": r.max_jobs, "busy": r.running, "usable": r.usable_slots},
                "live": r.is_live(report.heartbeat_timeout),
                "usable": report.is_usable(r),
                "stopping": r.stopping,
                "degraded": r.degraded,
                "degraded_since": r.degraded_since.isoformat() if r.degraded_since else None,
                "database_reconnects": r.reconnects,
            }
            for r in report.runners
        ],
        "jobs": {p.value: report.phase_counts.get(p, 0) for p in JobPhase},
        "oldest_queued_age_s": report.oldest_queued_age,
        "heaviest_owners": [
            {"owner": a.owner, "address": a.address, "running": a.running, "queued": a.queued}
            for a in report.heaviest
        ],
        "http_services": [
            {
                "host": s.host,
                "pid": s.pid,
                "url": s.url,
                "metrics_url": s.metrics_url,
                "uptime_s": round(uptime(s.started, s.heartbeat, s.heartbeat_age), 3),
                "heartbeat_age_s": round(s.heartbeat_age, 3),
            }
            for s in report.services
        ],
    }


def register(subparsers: Subparsers) -> None:
    p = subparsers.add_parser(
        "status",
        help="the runner daemons, the queue and the HTTP services at a glance",
        description=(
            "Exit status 0 when at least one daemon can run jobs, 1 when none can,"
            " 3 when the database cannot be reached."
        ),
    )
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(handler=_status)


def _status(args: argparse.Namespace) -> int:
    from tapd.store import JobStore, require_current_schema

    config = load_cli_config(args, configure_logging=False)
    with store_connection(config, application_name="tapd status") as conn:
        require_current_schema(conn, config.schema)
        report = read_report(JobStore(conn, config.schema), float(config.heartbeat_timeout))
    if args.json:
        json.dump(as_json(report), sys.stdout, indent=2)
        print()
    else:
        print("\n".join(render(report)))
    return EXIT_USABLE if report.usable else EXIT_NONE_USABLE
