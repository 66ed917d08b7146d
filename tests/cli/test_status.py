"""``tapd status`` (the fleet at a glance) and the owner options of ``tapd jobs`` and
``tapd abort``, as an operator uses them."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from typing import Any

import pytest

from tapd.cli.status import StatusReport, as_json, daemon_state, human_duration, render
from tapd.config import load_config
from tapd.http.app import create_app
from tapd.store import AccountLoad, JobPhase, RunnerInfo, ServiceInfo
from tests.cli.test_jobs_cli import one_line_error
from tests.sites import DaemonProcess, Site

NOW = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.UTC)


def runner(**kw: Any) -> RunnerInfo:
    fields: dict[str, Any] = {
        "instance": "i1",
        "host": "archive-1",
        "boot_id": "b",
        "pid": 4242,
        "started": NOW - dt.timedelta(hours=3, minutes=5),
        "heartbeat": NOW,
        "heartbeat_age": 1.5,
        "max_jobs": 4,
        "running": 1,
        "stopping": False,
        "usable_slots": 4,
    }
    return RunnerInfo(**(fields | kw))


def report(runners: list[RunnerInfo], **kw: Any) -> StatusReport:
    fields: dict[str, Any] = {
        "runners": runners,
        "heartbeat_timeout": 30.0,
        "phase_counts": {JobPhase.QUEUED: 7, JobPhase.EXECUTING: 1, JobPhase.COMPLETED: 40},
        "oldest_queued_age": 125.0,
        "heaviest": [AccountLoad("alice", None, 1, 6), AccountLoad(None, "192.0.2.7", 0, 1)],
        "services": [],
    }
    return StatusReport(**(fields | kw))


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (4.24, "4.2 s"),
        (59.9, "59.9 s"),
        (754, "12 min"),
        (11100, "3 h 05 min"),
        (187200, "2 d 04 h"),
    ],
)
def test_durations_read_as_an_operator_says_them(seconds: float, text: str) -> None:
    assert human_duration(seconds) == text


@pytest.mark.parametrize(
    ("changes", "state"),
    [
        ({}, "ok"),
        ({"stopping": True}, "stopping"),
        ({"heartbeat_age": 45.0}, "silent for 45.0 s: given up for dead soon"),
        (
            {"degraded": "spares cannot connect: too many clients", "degraded_since": NOW},
            "degraded since 12:00:00Z: spares cannot connect: too many clients",
        ),
        ({"usable_slots": 0}, "no usable slot"),
    ],
)
def test_daemon_state_says_what_needs_attention(changes: dict[str, Any], state: str) -> None:
    assert daemon_state(runner(**changes), 30.0) == state


@pytest.mark.parametrize(
    ("runners", "usable"),
    [
        ([], False),
        ([runner()], True),
        ([runner(usable_slots=0)], False),
        ([runner(stopping=True)], False),
        ([runner(heartbeat_age=31.0)], False),
        ([runner(usable_slots=0), runner(instance="i2")], True),
    ],
)
def test_usable_means_some_daemon_can_run_a_job_now(runners, usable: bool) -> None:
    assert report(runners).usable is usable
    assert as_json(report(runners))["usable"] is usable


def test_the_screen_shows_daemons_queue_owners_and_services() -> None:
    service = ServiceInfo(
        "s1",
        "web-1",
        77,
        "https://archive.example/tap",
        "http://127.0.0.1:9181/metrics",
        NOW - dt.timedelta(minutes=12),
        NOW,
        3.0,
    )
    lines = render(report([runner()], services=[service]))
    text = "\n".join(lines)
    assert lines[0] == "daemons: 1 registered, 1 usable"
    assert "archive-1  4242  3 h 05 min  1.5 s ago  1/4/4" in text
    assert "jobs: 0 PENDING, 7 QUEUED, 1 EXECUTING, 40 COMPLETED" in text
    assert "oldest queued job waiting: 2 min" in text
    assert "alice" in text and "192.0.2.7 (anonymous)" in text
    assert "https://archive.example/tap" in text and "http://127.0.0.1:9181/metrics" in text


def test_the_screen_says_when_no_daemon_can_run_jobs() -> None:
    text = "\n".join(render(report([runner(usable_slots=0)], services=[])))
    assert "no daemon can run jobs: queued jobs wait" in text
    assert "http services seen in the last 2 min: none" in text


# -- against a real database, daemon and HTTP service ---------------------------------


def submit_as(site: Site, owner: str | None, n: int, *, address: str | None = None) -> list[str]:
    with site.store() as store:
        return [
            store.create_job(
                {"LANG": "ADQL", "QUERY": "SELECT x FROM public.numbers"},
                execution_duration=60,
                destruction=None,
                owner=owner,
                client_address=address,
                queue=True,
            ).job_id
            for _ in range(n)
        ]


def test_status_without_a_daemon_exits_non_zero_and_shows_the_queue(site: Site, site_tapd) -> None:
    submit_as(site, "alice", 3)
    submit_as(site, None, 1, address="192.0.2.7")
    done = site_tapd("status")
    assert done.returncode == 1
    assert "daemons: 0 registered, 0 usable" in done.stdout
    assert "4 QUEUED" in done.stdout
    report = json.loads(site_tapd("status", "--json").stdout)
    assert report["usable"] is False
    assert report["jobs"]["QUEUED"] == 4
    assert report["oldest_queued_age_s"] >= 0
    assert report["heaviest_owners"][:2] == [
        {"owner": "alice", "address": None, "running": 0, "queued": 3},
        {"owner": None, "address": "192.0.2.7", "running": 0, "queued": 1},
    ]


def test_status_lists_the_running_daemon_and_the_http_service(site: Site) -> None:
    site.write_config(metrics={"listen": ""})
    daemon = DaemonProcess(site).start()
    app = create_app(load_config(site.config_path, environ={}))

    async def status_while_serving() -> Any:
        async with app.router.lifespan_context(app):  # the service starts and registers
            return await asyncio.to_thread(site.tapd, "status", "--json")

    try:
        done = asyncio.run(status_while_serving())
    finally:
        daemon.stop()
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["usable"] is True
    (seen,) = report["daemons"]
    assert (seen["pid"], seen["slots"]["max"], seen["live"]) == (daemon.pid, 4, True)
    assert seen["heartbeat_age_s"] < 30 and seen["uptime_s"] >= 0
    (service,) = report["http_services"]
    assert service["url"] == "http://127.0.0.1:8080/tap"
    assert site.tapd("status", "--json").returncode == 1  # the daemon is gone


def test_jobs_and_abort_by_owner_count_first_and_need_yes(site: Site, site_tapd) -> None:
    alices = submit_as(site, "alice", 3)
    bobs = submit_as(site, "bob", 1)
    anonymous = submit_as(site, None, 2, address="192.0.2.7")

    listed = site_tapd("jobs", "--owner", "alice")
    assert sorted(line.split()[0] for line in listed.stdout.splitlines()) == sorted(alices)
    listed = site_tapd("jobs", "--address", "192.0.2.7")
    assert sorted(line.split()[0] for line in listed.stdout.splitlines()) == sorted(anonymous)

    asked = site_tapd("abort", "--owner", "alice")
    assert one_line_error(asked) == (
        "tapd: alice has 3 unfinished jobs (3 QUEUED); add --yes to abort them"
    )
    assert {site.job(j).phase for j in alices} == {JobPhase.QUEUED}

    done = site_tapd("abort", "--owner", "alice", "--yes")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "aborted 3 jobs of alice"
    assert {site.job(j).phase for j in alices} == {JobPhase.ABORTED}
    assert site.job(bobs[0]).phase == JobPhase.QUEUED

    done = site_tapd("abort", "--address", "192.0.2.7", "--yes")
    assert done.stdout.strip() == "aborted 2 jobs of anonymous client 192.0.2.7"
    assert site_tapd("abort", "--owner", "alice").stdout.strip() == "alice has no unfinished jobs"
    assert "not both" in one_line_error(site_tapd("abort", bobs[0], "--owner", "bob"))
    assert "give a JOBID" in one_line_error(site_tapd("abort"))
