"""The database set-up tapd(8) and the README give operators, on a real PostgreSQL.

A superuser runs ``tapd initdb --owner tapd`` once (pgsphere needs a
superuser); from then on the unprivileged role owns tapd's tables and may run
``tapd initdb`` itself and end the query role's sessions, and user queries log
in as the query role, which cannot become the owner.
"""

from __future__ import annotations

import contextlib
import itertools
import threading
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from tapd.cli import main
from tapd.devcluster import DevCluster
from tapd.store import JobStore
from tapd.store.connector import job_application_name
from tests.sites import wait_for

_counter = itertools.count()


@pytest.fixture
def service_role(pg_cluster: DevCluster) -> tuple[str, str]:
    """A fresh login role without privileges and a database it owns (no pgsphere yet)."""
    name = f"svc_{next(_counter)}"
    with psycopg.connect(pg_cluster.admin_dsn(), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(name)))
        conn.execute(
            sql.SQL("CREATE DATABASE {} OWNER {} TEMPLATE template0").format(
                sql.Identifier(name), sql.Identifier(name)
            )
        )
    return name, f"host={pg_cluster.socket_dir} port={pg_cluster.port} dbname={name}"


def test_superuser_initdb_with_owner_hands_the_database_to_the_service_role(
    pg_cluster: DevCluster,
    service_role: tuple[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    role, dsn = service_role
    monkeypatch.setenv("TAPD_JOBS_DIR", str(tmp_path / "jobs"))
    monkeypatch.setenv("TAPD_QUERY_ROLE", f"{role}_query")
    admin = f"{dsn} user={pg_cluster.superuser}"
    assert main(["--dsn", admin, "--log-format", "console", "initdb", "--owner", role]) == 0
    # The service role can now upgrade the schema itself.
    assert main(["--dsn", f"{dsn} user={role}", "--log-format", "console", "initdb"]) == 0
    out, err = capsys.readouterr()
    assert "up to date" in out and "warning" not in err
    with psycopg.connect(f"{dsn} user={role}") as conn:
        owners = conn.execute(
            "SELECT DISTINCT pg_get_userbyid(relowner) FROM pg_class c"
            " JOIN pg_namespace n ON n.oid = relnamespace"
            " WHERE nspname IN ('tapd', 'tap_schema') AND relkind = 'r'"
        ).fetchall()
        assert owners == [(role,)]
    # User queries log in as the query role: it reads TAP_SCHEMA, keeps uploads in
    # temporary tables, and can become no other role.
    with psycopg.connect(f"{dsn} user={role}_query", autocommit=True) as conn:
        assert conn.execute("SELECT count(*) > 0 FROM tap_schema.tables").fetchone() == (True,)
        conn.execute("CREATE TEMP TABLE upload (x int)")
        assert conn.info.parameter_status("is_superuser") == "off"
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(role)))


def test_the_owner_ends_a_job_query_running_as_the_query_role(
    pg_cluster: DevCluster,
    service_role: tuple[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A killed child's query, an abort, a requeue: the daemon and the HTTP service
    (logged in as the owner) cancel and end the job's sessions, which are the query
    role's."""
    role, dsn = service_role
    monkeypatch.setenv("TAPD_JOBS_DIR", str(tmp_path / "jobs"))
    monkeypatch.setenv("TAPD_QUERY_ROLE", f"{role}_query")
    admin = f"{dsn} user={pg_cluster.superuser}"
    assert main(["--dsn", admin, "--log-format", "console", "initdb", "--owner", role]) == 0
    query = psycopg.connect(
        f"{dsn} user={role}_query", application_name=job_application_name("j1"), autocommit=True
    )

    def sleep() -> None:
        with contextlib.suppress(psycopg.Error):  # cancelled, then terminated
            query.execute("SELECT pg_sleep(60)")

    running = threading.Thread(target=sleep, daemon=True)
    try:
        with (
            psycopg.connect(f"{dsn} user={role}", autocommit=True) as owner,
            psycopg.connect(admin, autocommit=True) as watcher,
        ):
            store = JobStore(owner, "tapd")
            running.start()
            wait_for(
                lambda: [
                    s
                    for s in JobStore(watcher, "tapd").job_sessions("j1")
                    if s["state"] == "active"
                ],
                30,
                "the query to run",
            )
            assert store.cancel_job_queries("j1") == 1
            assert store.terminate_job_backends("j1") == 1
            wait_for(lambda: not store.job_sessions("j1"), 30, "the session to end")
    finally:
        running.join(30)
        query.close()


def test_upgrade_by_the_owner_warns_when_the_query_role_cannot_log_in(
    pg_cluster: DevCluster,
    service_role: tuple[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A database set up by an older tapd (query role NOLOGIN, entered by SET ROLE)."""
    role, dsn = service_role
    monkeypatch.setenv("TAPD_JOBS_DIR", str(tmp_path / "jobs"))
    monkeypatch.setenv("TAPD_QUERY_ROLE", f"{role}_query")
    admin = f"{dsn} user={pg_cluster.superuser}"
    assert main(["--dsn", admin, "--log-format", "console", "initdb", "--owner", role]) == 0
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("ALTER ROLE {} NOLOGIN").format(sql.Identifier(f"{role}_query")))
    capsys.readouterr()
    assert main(["--dsn", f"{dsn} user={role}", "--log-format", "console", "initdb"]) == 0
    err = capsys.readouterr().err
    assert f"the query role '{role}_query' cannot log in" in err
    assert "tapd initdb --owner OWNER" in err


def test_initdb_without_superuser_names_the_command_that_installs_pgsphere(
    service_role: tuple[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    role, dsn = service_role
    monkeypatch.setenv("TAPD_JOBS_DIR", str(tmp_path / "jobs"))
    status = main(["--dsn", f"{dsn} user={role}", "--log-format", "console", "initdb"])
    assert status != 0
    assert "runuser -u postgres -- tapd initdb --owner tapd" in capsys.readouterr().err


def test_initdb_owner_that_does_not_exist_is_one_clear_line(
    pg_cluster: DevCluster,
    service_role: tuple[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _, dsn = service_role
    monkeypatch.setenv("TAPD_JOBS_DIR", str(tmp_path / "jobs"))
    admin = f"{dsn} user={pg_cluster.superuser}"
    assert main(["--dsn", admin, "--log-format", "console", "initdb", "--owner", "nobody"]) != 0
    assert "role 'nobody' does not exist" in capsys.readouterr().err
