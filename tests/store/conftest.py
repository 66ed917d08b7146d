"""A job store in a fresh database for each test."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest

from tapd.store import JobStore, initialise_schema


@pytest.fixture
def conn(dsn: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(dsn, autocommit=True) as connection:
        yield connection


@pytest.fixture
def store(conn: psycopg.Connection) -> JobStore:
    initialise_schema(conn)
    return JobStore(conn)
