"""The test harness itself: a private cluster with working pgsphere geometry."""

import psycopg


def test_fresh_database_has_working_pgsphere(dsn: str) -> None:
    with psycopg.connect(dsn) as conn:
        cone = "scircle(spoint(radians(%s), radians(20)), radians(1))"
        point = "spoint(radians(10), radians(20))"
        inside = conn.execute(f"SELECT {point} <@ {cone % 10.5}").fetchone()
        outside = conn.execute(f"SELECT {point} <@ {cone % 15}").fetchone()
    assert inside == (True,)
    assert outside == (False,)


def test_cluster_survives_restart(pg_cluster, dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE t (x int)")
        conn.execute("INSERT INTO t VALUES (42)")
    pg_cluster.restart()
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT x FROM t").fetchone() == (42,)
