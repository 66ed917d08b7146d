"""Shared fixtures: a real, throwaway PostgreSQL cluster with pgsphere.

One cluster per test session (initdb into a temp dir, unix socket only); each
test that asks for ``dsn`` gets a fresh database cloned from a template that
already has pgsphere, so tests never see each other's rows.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import psycopg
import pytest

from tapd.devcluster import DevCluster
from tapd.pgsphere import install_pgsphere

TEMPLATE_DB = "tapd_template"
_counter = itertools.count()


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[DevCluster]:
    """A running private PostgreSQL server for the whole test session."""
    cluster = DevCluster(dbname=TEMPLATE_DB)
    cluster.start()
    with psycopg.connect(cluster.dsn, autocommit=True) as conn:
        install_pgsphere(conn)
    try:
        yield cluster
    finally:
        cluster.cleanup()


def create_database(cluster: DevCluster, name: str) -> str:
    """A new database cloned from the pgsphere template; returns its DSN."""
    with psycopg.connect(cluster.admin_dsn(), autocommit=True) as conn:
        conn.execute(
            psycopg.sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                psycopg.sql.Identifier(name), psycopg.sql.Identifier(TEMPLATE_DB)
            )
        )
    return cluster.admin_dsn(name)


def drop_database(cluster: DevCluster, name: str) -> None:
    with psycopg.connect(cluster.admin_dsn(), autocommit=True) as conn:
        conn.execute(
            psycopg.sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                psycopg.sql.Identifier(name)
            )
        )


@pytest.fixture
def dsn(pg_cluster: DevCluster) -> Iterator[str]:
    """DSN of a fresh database (with pgsphere) for one test."""
    name = f"test_{next(_counter)}"
    yield create_database(pg_cluster, name)
    drop_database(pg_cluster, name)
