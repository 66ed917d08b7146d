"""Fixtures of the HTTP tests: offline validation against the IVOA schemas in ./schemas."""

from __future__ import annotations

import dataclasses
import functools
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from lxml import etree

from tapd.devcluster import DevCluster

SCHEMAS = Path(__file__).parent / "schemas"

#: schemaLocation URLs found in the IVOA schemas -> local file names.
LOCATIONS = {
    "http://www.ivoa.net/xml/Xlink/xlink.xsd": "xlink.xsd",
    "http://www.ivoa.net/xml/VOResource/v1.0": "VOResource-v1.0.xsd",
    "http://www.ivoa.net/xml/VOResource/VOResource-v1.0.xsd": "VOResource-v1.0.xsd",
    "http://www.ivoa.net/xml/VODataService/v1.1": "VODataService-v1.1.xsd",
    "http://www.ivoa.net/xml/STC/stc-v1.30.xsd": "stc-v1.30.xsd",
    "http://www.w3.org/2001/xml.xsd": "xmlnamespace.xsd",
    "http://www.w3.org/2009/01/xml.xsd": "xmlnamespace.xsd",
}

#: Root namespaces and the schema files that define them, plus the xsi:types they may use.
IMPORTS = {
    "http://www.ivoa.net/xml/UWS/v1.0": "UWS-v1.1.xsd",
    "http://www.ivoa.net/xml/VOSICapabilities/v1.0": "VOSICapabilities-v1.0.xsd",
    "http://www.ivoa.net/xml/VOSIAvailability/v1.0": "VOSIAvailability-v1.0.xsd",
    "http://www.ivoa.net/xml/VOSITables/v1.0": "VOSITables-v1.1.xsd",
    "http://www.ivoa.net/xml/VODataService/v1.1": "VODataService-v1.1.xsd",
    "http://www.ivoa.net/xml/TAPRegExt/v1.0": "TAPRegExt-v1.0-Erratum1.xsd",
    "http://www.ivoa.net/xml/VOResource/v1.0": "VOResource-v1.0.xsd",
}


class _LocalResolver(etree.Resolver):
    def resolve(self, url, pubid, context):  # type: ignore[no-untyped-def]
        name = LOCATIONS.get(url) or (
            Path(url).name if (SCHEMAS / Path(url).name).exists() else None
        )
        if name is None:
            raise AssertionError(f"schema {url} is not available offline")
        return self.resolve_filename(str(SCHEMAS / name), context)


@functools.cache
def _schema() -> etree.XMLSchema:
    imports = "".join(
        f'<xs:import namespace="{ns}" schemaLocation="{(SCHEMAS / f).as_uri()}"/>'
        for ns, f in IMPORTS.items()
    )
    wrapper = (
        '<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema" '
        f'targetNamespace="urn:tapd:test-wrapper">{imports}</xs:schema>'
    )
    parser = etree.XMLParser()
    parser.resolvers.add(_LocalResolver())
    document = etree.fromstring(wrapper.encode(), parser, base_url=str(SCHEMAS / "wrapper.xsd"))
    return etree.XMLSchema(document)


def validation_errors(document: bytes) -> list[str]:
    """Schema violations of ``document`` (empty when valid)."""
    schema = _schema()
    tree = etree.fromstring(document)
    if schema.validate(tree):
        return []
    return [f"line {e.line}: {e.message}" for e in schema.error_log]


def assert_valid(document: bytes) -> None:
    errors = validation_errors(document)
    assert not errors, "\n".join(errors) + "\n" + document.decode()


class SchemaValidator:
    """``errors(document)`` lists violations; ``assert_valid(document)`` fails on any."""

    errors = staticmethod(validation_errors)
    assert_valid = staticmethod(assert_valid)


@pytest.fixture(scope="session")
def ivoa_schemas() -> SchemaValidator:
    """Validates UWS, VOSI and TAPRegExt documents against the IVOA schemas."""
    return SchemaValidator()


# -- a running tapd HTTP service (and, when available, a runner daemon) -------------


@dataclasses.dataclass
class RunningService:
    """A ``tapd serve`` process on loopback with its own database and jobs directory."""

    url: str
    dsn: str
    jobs_dir: Path
    env: dict[str, str]
    processes: list[subprocess.Popen[bytes]]
    log_dir: Path

    def log_text(self) -> str:
        return "".join(p.read_text(errors="replace") for p in sorted(self.log_dir.glob("*.log")))


def create_database(cluster: DevCluster, name: str) -> str:
    """A database cloned from the session's pgsphere template (see tests/conftest.py)."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(cluster.admin_dsn(), autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE tapd_template").format(sql.Identifier(name))
        )
    return cluster.admin_dsn(name)


def drop_database(cluster: DevCluster, name: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(cluster.admin_dsn(), autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_until_serving(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"tapd serve exited with {process.returncode}:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(url + "/async", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"tapd serve did not answer within 30 s:\n{log.read_text()}")


def start_service(
    pg_cluster: DevCluster,
    workdir: Path,
    name: str,
    settings: dict[str, str] | None = None,
    daemon: bool = False,
    sample_rows: int | None = None,
    prepare: Callable[[str], None] | None = None,
) -> RunningService:
    """Database ``name`` with tapd's schema (and the demo catalog of ``sample_rows`` stars),
    ``prepare(dsn)`` when given (e.g. tables to publish before the service first reads
    TAP_SCHEMA), then ``tapd serve`` (and ``tapd run``)."""
    dsn = create_database(pg_cluster, name)
    jobs_dir = workdir / "jobs"
    jobs_dir.mkdir(parents=True)
    log_dir = workdir / "logs"
    log_dir.mkdir()
    port = free_port()
    env = {
        **os.environ,
        "TAPD_DSN": dsn,
        "TAPD_JOBS_DIR": str(jobs_dir),
        "TAPD_PORT": str(port),
        "TAPD_HOST": "127.0.0.1",
        "TAPD_FORMAT": "json",
        "TAPD_CONFIG": str(workdir / "none.toml"),
        **(settings or {}),
    }
    (workdir / "none.toml").write_text("")
    python = sys.executable
    subprocess.run([python, "-m", "tapd", "initdb"], env=env, check=True, capture_output=True)
    if sample_rows is not None:
        import psycopg

        from tapd.demo import create_sample_catalog

        with psycopg.connect(dsn, autocommit=True) as conn:
            create_sample_catalog(conn, sample_rows, "tapd_query")
    if prepare is not None:
        prepare(dsn)
    processes = []
    if daemon:
        runner_log = (log_dir / "runner.log").open("wb")
        processes.append(
            subprocess.Popen(
                [python, "-m", "tapd", "run"], env=env, stdout=runner_log, stderr=subprocess.STDOUT
            )
        )
    serve_log_path = log_dir / "serve.log"
    serve_log = serve_log_path.open("wb")
    server = subprocess.Popen(
        [python, "-m", "tapd", "serve"], env=env, stdout=serve_log, stderr=subprocess.STDOUT
    )
    processes.append(server)
    url = f"http://127.0.0.1:{port}/tap"
    service = RunningService(url, dsn, jobs_dir, env, processes, log_dir)
    try:
        _wait_until_serving(url, server, serve_log_path)
    except BaseException:
        stop_service(service, pg_cluster, name)
        raise
    return service


def stop_service(service: RunningService, pg_cluster: DevCluster, name: str) -> None:
    for process in service.processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for process in service.processes:
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    drop_database(pg_cluster, name)


@pytest.fixture
def client(service: RunningService) -> Iterator[httpx.Client]:
    """An HTTP client of the test module's ``service`` (redirects not followed)."""
    with httpx.Client(base_url=service.url, follow_redirects=False, timeout=60) as c:
        yield c
