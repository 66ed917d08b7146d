"""The database set-up tapd(8) and the README give operators, on a real PostgreSQL.

A superuser runs ``tapd initdb --owner tapd`` once (pgsphere needs a
superuser); from then on the unprivileged role owns tapd's tables, may run
``tapd initdb`` itself, and may switch to the query role as the runner does.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from tapd.cli import main
from tapd.devcluster import DevCluster

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
    # The service role can now upgrade the schema itself and run queries as the query role.
    assert main(["--dsn", f"{dsn} user={role}", "--log-format", "console", "initdb"]) == 0
    assert "up to date" in capsys.readouterr().out
    with psycopg.connect(f"{dsn} user={role}") as conn:
        owners = conn.execute(
            "SELECT DISTINCT pg_get_userbyid(relowner) FROM pg_class c"
            " JOIN pg_namespace n ON n.oid = relnamespace"
            " WHERE nspname IN ('tapd', 'tap_schema') AND relkind = 'r'"
        ).fetchall()
        assert owners == [(role,)]
        conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(f"{role}_query")))
        assert conn.execute("SELECT count(*) > 0 FROM tap_schema.tables").fetchone() == (True,)


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
