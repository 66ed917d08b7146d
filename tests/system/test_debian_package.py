"""tapd as an operator meets it: the .deb installed with apt on Debian 12, run by systemd.

The steps run in file order against one booted container (see conftest.py),
each building on the previous one, as an operator's session would: install,
prepare the database, start, submit over HTTP, read the journal, reload,
stop, crash, hang, remove, purge.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from booted_container import BootedContainer, Log

pytestmark = [pytest.mark.system, pytest.mark.slow]

HERE = Path(__file__).resolve().parent
TAP = "http://127.0.0.1:8080/tap"
UNITS = ("tapd.service", "tapd-http.service")
MAX_EXPOSURE = 2.0
FINAL_PHASES = {"COMPLETED", "ERROR", "ABORTED"}
#: What the operator changes in /etc/tapd/tapd.toml for this test: short
#: grace and heartbeat timeout keep the stop and crash steps quick.
CONFIG_CHANGES = {
    "#shutdown_grace = 20.0": "shutdown_grace = 4.0",
    "#heartbeat_timeout = 30.0": "heartbeat_timeout = 8.0",
}
QUICK_QUERY = "SELECT TOP 5 id, ra, dec, mag FROM demo.stars ORDER BY id"
#: demo.slow yields one row per half second.
FOUR_SECOND_QUERY = "SELECT TOP 8 n FROM demo.slow"
LONG_QUERY = "SELECT TOP 2000 n FROM demo.slow"

DEMO_DATA = """
SET ROLE tapd;
CREATE SCHEMA demo;
CREATE TABLE demo.stars (id integer PRIMARY KEY, ra double precision,
                         dec double precision, mag real);
INSERT INTO demo.stars
    SELECT g, (g * 7.3)::numeric % 360, (g * 3.1)::numeric % 180 - 90, 10 + (g % 50) / 10.0
    FROM generate_series(1, 1000) AS g;
CREATE FUNCTION demo.slowly(n integer) RETURNS integer
    LANGUAGE sql VOLATILE AS 'SELECT n FROM pg_sleep(0.5)';
CREATE VIEW demo.slow AS SELECT demo.slowly(g) AS n FROM generate_series(1, 100000) AS g;
CREATE VIEW demo.whoami AS SELECT session_user::text AS login, current_user::text AS who;
"""
#: Which role a query's session logged in as, and which it runs as.
WHOAMI = "SELECT login, who FROM demo.whoami"


# -- helpers ---------------------------------------------------------------


def http(
    container: BootedContainer, method: str, url: str, form: dict[str, str] | None = None
) -> dict[str, Any]:
    """One HTTP request from inside the container's network (loopback)."""
    args = [sys.executable, str(HERE / "http_request.py"), method, url]
    if form is not None:
        args.append(json.dumps(form))
    result = subprocess.run(
        container.host_command_in_network(args), capture_output=True, text=True, timeout=60
    )
    if result.returncode != 0:
        raise AssertionError(f"HTTP client failed: {result.stderr}")
    reply: dict[str, Any] = json.loads(result.stdout)
    container.log(f"{method} {url} {form or ''} -> {reply['status']}")
    return reply


def submit(container: BootedContainer, query: str, **parameters: str) -> str:
    """Create and run an async job over HTTP; return its URL."""
    form = {"REQUEST": "doQuery", "LANG": "ADQL", "QUERY": query, "PHASE": "RUN", **parameters}
    reply = http(container, "POST", f"{TAP}/async", form)
    assert reply["status"] == 303, f"job creation answered {reply['status']}: {reply['body']}"
    headers = {k.lower(): v for k, v in reply["headers"].items()}
    location = str(headers["location"])
    return location if location.startswith("http") else f"http://127.0.0.1:8080{location}"


def phase(container: BootedContainer, job_url: str) -> str:
    reply = http(container, "GET", f"{job_url}/phase")
    assert reply["status"] == 200, f"phase answered {reply['status']}: {reply['body']}"
    return str(reply["body"]).strip()


def wait_phase(container: BootedContainer, job_url: str, phases: set[str], timeout: float) -> str:
    seen: list[str] = []

    def reached() -> bool:
        seen.append(phase(container, job_url))
        return seen[-1] in phases

    container.wait_for(
        f"{job_url} to reach {sorted(phases)} (last phase: {seen[-1:]})", reached, timeout
    )
    return seen[-1]


def edit_config(container: BootedContainer, changes: dict[str, str]) -> None:
    """Change lines of /etc/tapd/tapd.toml, as an operator's editor would."""
    config = Path(container.root, "etc/tapd/tapd.toml")
    text = config.read_text()
    for old, new in changes.items():
        assert old in text, f"{old!r} not in /etc/tapd/tapd.toml"
        text = text.replace(old, new)
    config.write_text(text)
    container.log(f"edited /etc/tapd/tapd.toml: {changes}")


def job_id(job_url: str) -> str:
    return job_url.rstrip("/").rsplit("/", 1)[1]


def main_pid(container: BootedContainer) -> int:
    return int(container.show("tapd.service", "MainPID")["MainPID"])


def journal_cursor(container: BootedContainer) -> str:
    out = str(container.run("journalctl", "-n", "0", "--show-cursor", quiet=True).stdout)
    return out.rsplit("-- cursor:", 1)[1].strip()


def journal_since(container: BootedContainer, cursor: str, *args: str) -> str:
    text = str(container.run("journalctl", "--no-pager", "--after-cursor", cursor, *args).stdout)
    container.log(text)
    return text


def backends_running(container: BootedContainer, fragment: str) -> int:
    """PostgreSQL backends (other than ours) whose current query contains ``fragment``."""
    return int(
        container.psql(
            "SELECT count(*) FROM pg_stat_activity WHERE pid <> pg_backend_pid()"
            f" AND state <> 'idle' AND query LIKE '%{fragment}%'"
        )
    )


def tapd_fields(entry: dict[str, str]) -> set[str]:
    """The fields of a journal entry that tapd wrote (not journald's own)."""
    standard = {"MESSAGE", "PRIORITY", "SYSLOG_IDENTIFIER", "CODE_FILE", "CODE_LINE", "CODE_FUNC"}
    return {k for k in entry if k.isupper() and not k.startswith("_") and k not in standard}


def is_directory(container: BootedContainer, path: str) -> bool:
    return bool(container.run("test", "-d", path, check=False, quiet=True).returncode == 0)


def tapd_processes(container: BootedContainer) -> str:
    return str(container.run("pgrep", "-a", "-u", "tapd", check=False, quiet=True).stdout).strip()


# -- steps -----------------------------------------------------------------


def test_package_builds_from_clean_checkout_and_lintian_is_clean(
    build_output: tuple[subprocess.CompletedProcess[str], Path], tapd_deb: Path, say: Log
) -> None:
    _, out = build_output
    lintian = (out / "lintian.log").read_text()
    problems = [line for line in lintian.splitlines() if re.match(r"^[EW]: ", line)]
    assert problems == []
    say(f"built {tapd_deb.name}; lintian: no errors, no warnings")


def test_apt_installs_package_as_operator_would(
    container: BootedContainer, tapd_deb: Path, say: Log
) -> None:
    say(f"apt-get install ./{tapd_deb.name} (dependencies from Debian 12)")
    container.run(
        "apt-get",
        "install",
        "-y",
        "-q",
        "--no-install-recommends",
        f"/srv/systest/{tapd_deb.name}",
        timeout=600,
    )
    version = container.run("tapd", "--version").stdout.strip()
    assert version.startswith("tapd ")
    assert container.run("getent", "passwd", "tapd").stdout.startswith("tapd:")
    jobs = container.run("stat", "-c", "%a %U %G", "/var/lib/tapd/jobs").stdout.split()
    assert jobs == ["750", "tapd", "tapd"]
    conffiles = container.run("dpkg-query", "-W", "-f", "${Conffiles}", "tapd").stdout
    assert "/etc/tapd/tapd.toml" in conffiles
    for unit in UNITS:
        state = container.show(unit, "UnitFileState", "ActiveState")
        assert state == {"UnitFileState": "disabled", "ActiveState": "inactive"}, unit
    say(f"installed {version}: user tapd, /var/lib/tapd/jobs 0750 tapd; units disabled")


def test_units_verify_and_expose_at_most_2(container: BootedContainer, say: Log) -> None:
    verify = container.run("systemd-analyze", "verify", *UNITS, check=False)
    assert verify.returncode == 0 and verify.stderr.strip() == "", verify.stderr
    scores = {}
    for unit in UNITS:
        text = container.run("systemd-analyze", "security", "--no-pager", unit, check=False).stdout
        match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", text)
        assert match, text
        scores[unit] = float(match.group(1))
    say(
        "systemd-analyze verify: clean; security exposure: "
        + ", ".join(f"{unit} {score}" for unit, score in scores.items())
    )
    assert all(score <= MAX_EXPOSURE for score in scores.values()), scores


def test_operator_prepares_database_and_configuration(container: BootedContainer, say: Log) -> None:
    say("operator: createuser/createdb tapd, tapd initdb --owner tapd, tapd publish, tapd.toml")
    container.run("runuser", "-u", "postgres", "--", "createuser", "tapd")
    container.run("runuser", "-u", "postgres", "--", "createdb", "--owner", "tapd", "tapd")
    initdb = container.run("runuser", "-u", "postgres", "--", "tapd", "initdb", "--owner", "tapd")
    # user queries log in as tapd_query: initdb maps the system user tapd to it
    assert "query login: added 'local tapd tapd_query peer map=tapd'" in initdb.stdout, initdb
    assert "query login: added 'tapd tapd tapd_query'" in initdb.stdout, initdb
    login = container.run(
        "runuser",
        "-u",
        "tapd",
        "--",
        "psql",
        "-XAtq",
        "-U",
        "tapd_query",
        "-d",
        "tapd",
        "-c",
        "SELECT session_user",
    )
    assert login.stdout.strip() == "tapd_query"
    refused = container.run(
        "runuser",
        "-u",
        "tapd",
        "--",
        "psql",
        "-XAtq",
        "-U",
        "tapd_query",
        "-d",
        "tapd",
        "-c",
        "SET ROLE tapd",
        check=False,
    )
    assert refused.returncode != 0 and "permission denied" in refused.stderr, refused
    # a second initdb (an upgrade) finds the map in place and adds nothing
    again = container.run("runuser", "-u", "postgres", "--", "tapd", "initdb", "--owner", "tapd")
    assert "query login: added" not in again.stdout, again
    container.psql(DEMO_DATA)
    for table in ("demo.stars", "demo.slow", "demo.whoami"):
        container.run("runuser", "-u", "tapd", "--", "tapd", "publish", table)
    edit_config(container, CONFIG_CHANGES)
    say("the system user tapd logs in as tapd_query (peer map added by initdb), not back to tapd")


def test_services_start_and_are_active(container: BootedContainer, say: Log) -> None:
    container.systemctl("enable", "--now", *UNITS)
    for unit in UNITS:
        assert container.systemctl("is-active", unit, check=False).strip() == "active", (
            container.systemctl("status", unit, check=False)
        )
    container.wait_for(
        "the HTTP service to answer",
        lambda: http(container, "GET", f"{TAP}/availability")["status"] == 200,
        timeout=30,
    )
    status = container.show("tapd.service", "StatusText")["StatusText"]
    say(f"systemctl enable --now: both active; tapd reports status {status!r}")


def test_http_job_completes_and_journal_shows_its_events(
    container: BootedContainer, say: Log
) -> None:
    job = submit(container, QUICK_QUERY)
    final = wait_phase(container, job, FINAL_PHASES, timeout=60)
    assert final == "COMPLETED", http(container, "GET", job)["body"]
    result = http(container, "GET", f"{job}/results/result")
    assert result["status"] == 200 and "VOTABLE" in str(result["body"]), result["body"]
    say(f"job {job_id(job)} submitted over HTTP: COMPLETED, result fetched")

    events: list[dict[str, str]] = []

    def logged() -> bool:
        # journald stores datagrams asynchronously: poll briefly for the final event.
        out = container.run(
            "journalctl",
            "-u",
            "tapd",
            f"JOB_ID={job_id(job)}",
            "-o",
            "json",
            "--no-pager",
            quiet=True,
        ).stdout
        events[:] = [json.loads(line) for line in out.splitlines()]
        return any(event.get("PHASE") == "COMPLETED" for event in events)

    container.wait_for(f"journal events of job {job_id(job)} under -u tapd", logged, timeout=15)
    assert all(event["JOB_ID"] == job_id(job) for event in events)
    completed = next(event for event in events if event.get("PHASE") == "COMPLETED")
    assert completed.get("ROWS") == "5" and "RUNNER_PID" in completed, completed
    summary = [f"{e.get('MESSAGE')} {sorted(tapd_fields(e))}" for e in events[:4]]
    say(f"journalctl -u tapd JOB_ID={job_id(job)}: " + "; ".join(summary))


def test_fits_and_sync_results_work_in_the_sandbox(container: BootedContainer, say: Log) -> None:
    # FITS goes through numpy and astropy: MemoryDenyWriteExecute must not break them.
    job = submit(container, QUICK_QUERY, RESPONSEFORMAT="fits")
    assert wait_phase(container, job, FINAL_PHASES, timeout=60) == "COMPLETED"
    fits = http(container, "GET", f"{job}/results/result")
    assert fits["status"] == 200 and str(fits["body"]).startswith("SIMPLE  ="), fits["body"]
    sync = http(
        container,
        "POST",
        f"{TAP}/sync",
        {"REQUEST": "doQuery", "LANG": "ADQL", "QUERY": QUICK_QUERY, "RESPONSEFORMAT": "csv"},
    )
    assert sync["status"] == 200 and len(str(sync["body"]).splitlines()) == 6, sync["body"]
    say("FITS result of an async job and a CSV /sync answer, both from the sandboxed services")


def test_queries_run_logged_in_as_the_query_role(container: BootedContainer, say: Log) -> None:
    sync = http(
        container,
        "POST",
        f"{TAP}/sync",
        {"REQUEST": "doQuery", "LANG": "ADQL", "QUERY": WHOAMI, "RESPONSEFORMAT": "csv"},
    )
    assert str(sync["body"]).splitlines() == ["login,who", "tapd_query,tapd_query"], sync
    job = submit(container, WHOAMI, RESPONSEFORMAT="csv")
    assert wait_phase(container, job, FINAL_PHASES, timeout=60) == "COMPLETED"
    result = http(container, "GET", f"{job}/results/result")
    assert str(result["body"]).splitlines() == ["login,who", "tapd_query,tapd_query"], result
    query = container.run("runuser", "-u", "tapd", "--", "tapd", "query", WHOAMI, "--format", "csv")
    assert query.stdout.splitlines() == ["login,who", "tapd_query,tapd_query"], query
    say("/sync, an async job and tapd query all ran logged in as tapd_query")


def test_reload_rereads_configuration_and_keeps_running_job(
    container: BootedContainer, say: Log
) -> None:
    pid = main_pid(container)
    job = submit(container, FOUR_SECOND_QUERY)
    wait_phase(container, job, {"EXECUTING"}, timeout=30)
    edit_config(container, {"#max_jobs = 4": "max_jobs = 3"})
    container.systemctl("reload", "tapd")
    assert wait_phase(container, job, FINAL_PHASES, timeout=60) == "COMPLETED"
    assert main_pid(container) == pid
    assert container.systemctl("is-active", "tapd", check=False).strip() == "active"
    status = container.show("tapd.service", "StatusText")["StatusText"]
    assert "3 slots" in status, status
    say(
        f"systemctl reload tapd during job {job_id(job)}: same daemon (PID {pid}),"
        f" job COMPLETED, new max_jobs in effect ({status!r})"
    )


def test_stop_during_long_job_ends_it_within_grace(container: BootedContainer, say: Log) -> None:
    job = submit(container, LONG_QUERY)
    wait_phase(container, job, {"EXECUTING"}, timeout=30)
    container.wait_for(
        "the job's query to run in PostgreSQL",
        lambda: backends_running(container, "slow") > 0,
        timeout=30,
    )
    cursor = journal_cursor(container)
    started = time.monotonic()
    container.systemctl("stop", "tapd", timeout=120)
    took = time.monotonic() - started
    state = container.show(
        "tapd.service", "ActiveState", "Result", "ExecMainCode", "ExecMainStatus"
    )
    assert state == {
        "ActiveState": "inactive",
        "Result": "success",
        "ExecMainCode": "1",
        "ExecMainStatus": "0",
    }, state
    systemd_said = journal_since(container, cursor, "-u", "tapd")
    assert "SIGKILL" not in systemd_said and "timed out" not in systemd_said, systemd_said
    assert "tapd run" not in tapd_processes(container)
    assert backends_running(container, "slow") == 0
    final = phase(container, job)
    assert final in FINAL_PHASES, final
    say(
        f"systemctl stop tapd during job {job_id(job)}: clean exit in {took:.1f} s"
        f" (grace 4 s), job {final}, no process or backend left"
    )


def test_sigkill_restarts_daemon_and_killed_job_ends_in_final_phase(
    container: BootedContainer, say: Log
) -> None:
    container.systemctl("start", "tapd")
    before = container.show("tapd.service", "MainPID", "NRestarts")
    job = submit(container, LONG_QUERY)
    wait_phase(container, job, {"EXECUTING"}, timeout=30)
    container.systemctl("kill", "-s", "KILL", "tapd")

    def restarted() -> bool:
        now = container.show("tapd.service", "MainPID", "NRestarts", "ActiveState")
        return (
            now["ActiveState"] == "active"
            and now["MainPID"] not in ("0", before["MainPID"])
            and int(now["NRestarts"]) > int(before["NRestarts"])
        )

    container.wait_for("systemd to restart tapd", restarted, timeout=60)
    final = wait_phase(container, job, FINAL_PHASES, timeout=120)
    say(
        f"systemctl kill -s KILL tapd: restarted by systemd (PID {main_pid(container)}),"
        f" killed job {job_id(job)} ended {final}"
    )


def test_hung_main_loop_is_killed_by_watchdog_and_restarted(
    container: BootedContainer, say: Log
) -> None:
    before = container.show("tapd.service", "MainPID", "NRestarts")
    cursor = journal_cursor(container)
    container.run("kill", "-STOP", before["MainPID"])

    def restarted() -> bool:
        now = container.show("tapd.service", "MainPID", "NRestarts", "ActiveState")
        return (
            now["ActiveState"] == "active"
            and now["MainPID"] not in ("0", before["MainPID"])
            and int(now["NRestarts"]) > int(before["NRestarts"])
        )

    container.wait_for("the watchdog to restart tapd", restarted, timeout=120, interval=1)
    # SIGABRT is the watchdog's signal (WatchdogSignal=); nothing else sends it.
    assert "signal SIGABRT" in journal_since(container, cursor, "-u", "tapd")
    job = submit(container, QUICK_QUERY)
    assert wait_phase(container, job, FINAL_PHASES, timeout=60) == "COMPLETED"
    say(
        f"SIGSTOP of the main loop (PID {before['MainPID']}): watchdog timeout, restarted as"
        f" PID {main_pid(container)}, next job COMPLETED"
    )


def test_remove_then_purge_leave_no_process_and_no_files(
    container: BootedContainer, say: Log
) -> None:
    files = container.run("dpkg-query", "-L", "tapd", quiet=True).stdout.split("\n")
    owned = [f for f in files if f and not is_directory(container, f)]
    container.run("apt-get", "remove", "-y", "-q", "tapd", timeout=300)
    assert tapd_processes(container) == ""
    for unit in UNITS:
        assert container.show(unit, "LoadState")["LoadState"] == "not-found", unit
    assert container.run("test", "-f", "/etc/tapd/tapd.toml", check=False).returncode == 0
    assert container.run("test", "-d", "/var/lib/tapd/jobs", check=False).returncode == 0
    say("apt-get remove tapd: services stopped, no process left; config and job files kept")

    container.run("apt-get", "purge", "-y", "-q", "tapd", timeout=300)
    assert tapd_processes(container) == ""
    left = [
        f for f in owned if container.run("test", "-e", f, check=False, quiet=True).returncode == 0
    ]
    assert left == []
    for path in ("/etc/tapd", "/var/lib/tapd"):
        assert container.run("test", "-e", path, check=False).returncode != 0, path
    by_user = container.run(
        "find",
        "/",
        "-xdev",
        "(",
        "-user",
        "tapd",
        "-o",
        "-group",
        "tapd",
        ")",
        "-print",
        check=False,
    ).stdout.split()
    assert by_user == []
    named = container.run(
        "find",
        "/",
        "-xdev",
        "-name",
        "*tapd*",
        "-not",
        "-path",
        "/srv/systest/*",
        # `man tapd` (systemd-analyze verify runs it) leaves a formatted copy in
        # man-db's cache, which man-db's daily job expires; it is not the package's.
        "-not",
        "-path",
        "/var/cache/man/*",
        "-print",
        check=False,
    ).stdout.split()
    assert named == [], "\n".join(named)
    say(
        "apt-get purge tapd: no process, no file of the package, no file of user tapd,"
        " no path named *tapd* left"
    )
