"""``tapd initdb | submit | jobs | show | abort | result | query`` as a user runs them."""

from __future__ import annotations

import subprocess
from pathlib import Path

import psycopg
import pytest

from tapd.store import JobPhase
from tapd.store.migrate import schema_file_version
from tests.cli.conftest import Done
from tests.sites import DaemonProcess, Site, publish_whoami


def one_line_error(done: Done | subprocess.CompletedProcess[str]) -> str:
    """The single ``tapd: ...`` line a failed command printed (and nothing else)."""
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("tapd: ")
    return lines[0]


def test_initdb_creates_then_reports_up_to_date(dsn: str, tmp_path: Path, tapd) -> None:
    config = tmp_path / "tapd.toml"
    config.write_text(f'[database]\ndsn = "{dsn}"\n[runner]\njobs_dir = "{tmp_path}/jobs"\n')
    version = schema_file_version()
    first = tapd("initdb", config=config)
    assert first.returncode == 0, first.stderr
    assert f"created tapd schema 'tapd' (version {version})" in first.stdout
    assert f"created job directory {tmp_path}/jobs" in first.stdout
    second = tapd("initdb", config=config)
    assert second.returncode == 0, second.stderr
    assert f"tapd schema 'tapd' is up to date (version {version})" in second.stdout


def test_submit_list_show_abort(site: Site, site_tapd) -> None:
    submitted = site_tapd(
        "submit",
        "SELECT x FROM public.numbers",
        "--format",
        "csv",
        "--maxrec",
        "5",
        "--run-id",
        "mine",
    )
    assert submitted.returncode == 0, submitted.stderr
    job_id = submitted.stdout.strip()
    assert site.job(job_id).phase == JobPhase.PENDING

    listed = site_tapd("jobs", "--phase", "pending")
    assert listed.returncode == 0
    assert listed.stdout.split()[:2] == [job_id, "PENDING"]

    shown = site_tapd("show", job_id)
    assert shown.returncode == 0
    assert f"jobId: {job_id}" in shown.stdout
    assert "  QUERY: SELECT x FROM public.numbers" in shown.stdout
    assert "  RESPONSEFORMAT: csv" in shown.stdout
    assert "runId: mine" in shown.stdout

    aborted = site_tapd("abort", job_id)
    assert aborted.stdout.strip() == f"{job_id} ABORTED"
    assert "ABORTED" in one_line_error(site_tapd("result", job_id))


def test_submitted_job_runs_and_result_is_written(site: Site, tmp_path: Path) -> None:
    # Real processes end to end: ``tapd submit``, the daemon, ``tapd result``.
    daemon = DaemonProcess(site).start()
    try:
        submitted = site.tapd("submit", "--run", "SELECT x FROM public.numbers", "-f", "csv")
        job_id = submitted.stdout.strip()
        site.wait_phase(job_id)
        out = tmp_path / "out.csv"
        fetched = site.tapd("result", job_id, "-o", str(out))
        assert fetched.returncode == 0, fetched.stderr
        assert out.read_text().splitlines()[:3] == ["x", "1", "2"]
        to_stdout = site.tapd("result", job_id)
        assert to_stdout.stdout.splitlines()[-1] == "100"
    finally:
        daemon.stop()


def test_result_of_a_failed_job_says_why(site: Site, site_tapd) -> None:
    daemon = DaemonProcess(site).start()
    try:
        job_id = site_tapd("submit", "--run", "SELECT nothing FROM nowhere").stdout.strip()
        site.wait_phase(job_id)
    finally:
        daemon.stop()
    line = one_line_error(site_tapd("result", job_id))
    assert line.startswith(f"tapd: job {job_id} is ERROR: ")


def test_query_runs_synchronously_through_the_runner(site: Site, tmp_path: Path, site_tapd) -> None:
    done = site.tapd("query", "SELECT x FROM public.numbers WHERE x <= 3", "--format", "csv")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["x", "1", "2", "3"]
    out = tmp_path / "r.vot"
    truncated = site_tapd("query", "SELECT x FROM public.numbers", "--maxrec", "5", "-o", str(out))
    assert truncated.returncode == 0, truncated.stderr
    assert 'value="OVERFLOW"' in out.read_text()
    assert "truncated at 5 rows" in truncated.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("show", "nosuchjob"), "tapd: no job with id 'nosuchjob'"),
        (("abort", "nosuchjob"), "tapd: no job with id 'nosuchjob'"),
        (("result", "../../etc"), "tapd: no job with id '../../etc'"),
        (("query", "SELECT FROM WHERE"), "tapd: "),
        (("query", "SELECT x FROM public.numbers", "--format", "bogus"), "tapd: "),
    ],
)
def test_bad_requests_get_one_clear_line(site_tapd, args: tuple[str, ...], message: str) -> None:
    assert one_line_error(site_tapd(*args)).startswith(message)


def test_malformed_configuration_names_the_bad_key(tmp_path: Path, tapd) -> None:
    config = tmp_path / "tapd.toml"
    config.write_text('[runner]\nmax_jobs = "four"\n')
    line = one_line_error(tapd("jobs", config=config))
    assert "runner.max_jobs must be int" in line
    config.write_text("[runner\n")
    assert "not valid TOML" in one_line_error(tapd("run", config=config))
    config.write_text("[runner]\nmax_jobz = 4\n")
    assert "unknown setting 'max_jobz'" in one_line_error(tapd("run", config=config))


@pytest.mark.parametrize("command", ["initdb", "run", "jobs", "submit", "query"])
def test_unreachable_database_is_one_line_and_a_non_zero_exit(
    tmp_path: Path, command: str, tapd
) -> None:
    config = tmp_path / "tapd.toml"
    config.write_text(
        f'[database]\ndsn = "host={tmp_path} port=1 dbname=x"\n[runner]\njobs_dir = "{tmp_path}"\n'
    )
    args = [command] + (["SELECT 1"] if command in ("submit", "query") else [])
    done = tapd(*args, config=config)
    assert "cannot connect to PostgreSQL" in one_line_error(done)
    assert done.returncode == 3


def test_query_logs_in_as_the_query_role(site: Site, site_tapd) -> None:
    publish_whoami(site.dsn)
    done = site_tapd("query", "SELECT login, who FROM public.whoami", "--format", "csv")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["login,who", "tapd_query,tapd_query"]


def test_a_query_role_that_cannot_log_in_is_one_line(site: Site, site_tapd) -> None:
    """(``tapd run`` keeps running: its spares report the refusal, see tests/daemon.)"""
    with psycopg.connect(site.dsn, autocommit=True) as conn:
        conn.execute("DROP ROLE IF EXISTS tapd_nologin")
        conn.execute("CREATE ROLE tapd_nologin NOLOGIN")
    site.write_config(database={"query_role": "tapd_nologin"})
    done = site_tapd("query", "SELECT 1")
    line = one_line_error(done)
    assert "not permitted to log in" in line and "'tapd_nologin'" in line, line
    assert "QUERY LOGIN in tapd(8)" in line
    assert done.returncode == 2


def test_daemon_without_schema_says_to_run_initdb(dsn: str, tmp_path: Path, tapd) -> None:
    config = tmp_path / "tapd.toml"
    config.write_text(f'[database]\ndsn = "{dsn}"\n[runner]\njobs_dir = "{tmp_path}"\n')
    assert "run `tapd initdb` first" in one_line_error(tapd("run", config=config))


@pytest.mark.parametrize("jobs_dir", ["missing/deeper", "a-file"])
def test_daemon_with_unusable_job_directory_is_one_line(
    site: Site, tmp_path: Path, jobs_dir: str, site_tapd
) -> None:
    (tmp_path / "a-file").write_text("")
    site.write_config(runner={"jobs_dir": str(tmp_path / jobs_dir)})
    line = one_line_error(site_tapd("run"))
    assert f"job directory {tmp_path / jobs_dir} is not writable" in line


def test_bad_input_from_a_real_process_is_one_line_without_traceback(site: Site) -> None:
    done = site.tapd("show", "nosuchjob")  # the installed entry point, not main()
    assert one_line_error(done) == "tapd: no job with id 'nosuchjob'"
    assert done.returncode == 4


def test_query_is_stopped_at_the_sync_time_limit(site: Site, site_tapd) -> None:
    site.write_config(limits={"sync_execution_duration": 1})
    line = one_line_error(site_tapd("query", "SELECT x FROM public.sleepy"))
    assert "time limit of synchronous queries of 1 s" in line
    with site.store() as store:
        active = store.conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%pg_sleep%'"
            " AND pid <> pg_backend_pid()"
        ).fetchone()
    assert active == (0,)
