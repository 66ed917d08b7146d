"""Connection strings naming several hosts: load_balance_hosts=random on any libpq."""

from __future__ import annotations

import psycopg
import pytest

from tapd.store.connection import (
    balanced_dsn,
    connect,
    connect_direct,
    reorder_hosts,
    spread,
    without_load_balancing,
)


@pytest.mark.parametrize(
    ("dsn", "rest", "random"),
    [
        ("host=a,b load_balance_hosts=random", "host=a,b", True),
        ("load_balance_hosts=random host=a,b", "host=a,b", True),
        ("host=a,b load_balance_hosts='random' dbname=t", "host=a,b dbname=t", True),
        ("host=a,b load_balance_hosts=disable", "host=a,b", False),
        ("host=a,b dbname=t", "host=a,b dbname=t", False),
        ("postgresql://a,b/t?load_balance_hosts=random", "postgresql://a,b/t", True),
        (
            "postgresql://a,b/t?target_session_attrs=any&load_balance_hosts=random",
            "postgresql://a,b/t?target_session_attrs=any",
            True,
        ),
        (
            "postgresql://a,b/t?load_balance_hosts=random&target_session_attrs=any",
            "postgresql://a,b/t?target_session_attrs=any",
            True,
        ),
    ],
)
def test_load_balance_hosts_is_taken_out_of_the_string(dsn: str, rest: str, random: bool) -> None:
    assert without_load_balancing(dsn) == (rest, random)


@pytest.mark.parametrize(
    ("parameters", "order", "expected"),
    [
        (
            {"host": "a,b,c", "port": "1,2,3", "dbname": "t"},
            [2, 0, 1],
            {"host": "c,a,b", "port": "3,1,2", "dbname": "t"},
        ),
        ({"host": "a,b", "port": "5432"}, [1, 0], {"host": "b,a", "port": "5432"}),
        (
            {"host": "a,b", "hostaddr": "10.0.0.1,10.0.0.2"},
            [1, 0],
            {"host": "b,a", "hostaddr": "10.0.0.2,10.0.0.1"},
        ),
        ({"host": "a"}, [0], {"host": "a"}),
    ],
)
def test_hosts_ports_and_addresses_move_together(
    parameters: dict[str, str], order: list[int], expected: dict[str, str]
) -> None:
    assert reorder_hosts(parameters, order) == expected


def test_every_order_of_the_hosts_is_used() -> None:
    seen = {spread({"host": "a,b,c", "port": "1,2,3"})["host"] for _ in range(300)}
    assert len(seen) == 6


def test_a_string_without_load_balancing_is_left_alone() -> None:
    assert balanced_dsn("host=a,b dbname=t") == "host=a,b dbname=t"


def test_libpq_connects_with_load_balance_hosts_whatever_its_version(dsn: str) -> None:
    """Debian 12's libpq 15 refuses the keyword: tapd must never pass it on."""
    parameters = psycopg.conninfo.conninfo_to_dict(dsn)
    twice = f"{dsn} host={parameters['host']},{parameters['host']} load_balance_hosts=random"
    with connect(twice) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
    direct = connect_direct(twice, application_name="tapd balanced")
    try:
        assert direct.execute("SELECT current_setting('application_name')").fetchone() == (
            "tapd balanced",
        )
    finally:
        direct.close()
