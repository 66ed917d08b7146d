"""Reading COPY rows straight from libpq: row boundaries survive rows of any size."""

from __future__ import annotations

import signal
import threading
import time
from typing import Any

import psycopg
import pytest

from tapd.formats import binarycopy
from tapd.formats.copyout import CopyInterrupted, CopyOut

BIG = 700_000  # larger than the reader's buffer with batch_bytes=1024


@pytest.fixture(params=[True, False], ids=["off the socket", "through libpq"])
def off_socket(request: pytest.FixtureRequest) -> bool:
    """Both ways of reading a COPY: off the connection's socket, and row by row from libpq."""
    return bool(request.param)


def read_all(
    conn: psycopg.Connection[Any], statement: str, mode: str, off_socket: bool
) -> list[bytes]:
    rows: list[bytes] = []
    copy = CopyOut(
        conn, statement, mode=mode, batch_rows=3, batch_bytes=1024, off_socket=off_socket
    )
    for batch in copy.batches():
        ends = batch.row_ends()
        rows += [batch.data[s:e] for s, e in zip(batch.starts, ends, strict=True)]
    return rows


def binary_values(
    conn: psycopg.Connection[Any], statement: str, off_socket: bool
) -> list[tuple[Any, ...]]:
    """Each row's fields (bytes, None for NULL) of a binary COPY of one text and one int."""
    rows: list[tuple[Any, ...]] = []
    copy = CopyOut(
        conn, statement, mode="binary", batch_rows=3, batch_bytes=1024, off_socket=off_socket
    )
    for batch in copy.batches():
        text, number = binarycopy.split(batch, [None, 4])
        assert isinstance(text, binarycopy.Ragged) and isinstance(number, binarycopy.Fixed)
        offsets = text.offsets
        for i in range(batch.rows):
            value = None if text.nulls[i] else text.values[offsets[i] : offsets[i + 1]].tobytes()
            rows.append((value, None if number.nulls[i] else number.values[i].tobytes()))
    return rows


def test_binary_rows_are_their_fields_whatever_their_size(
    conn: psycopg.Connection[Any], off_socket: bool
) -> None:
    sql = (
        f"COPY (SELECT repeat(chr(65 + i), CASE WHEN i = 3 THEN {BIG} ELSE i END),"
        " CASE WHEN i <> 5 THEN i END"
        " FROM generate_series(0, 7) AS i) TO STDOUT (FORMAT binary)"
    )
    rows = binary_values(conn, sql, off_socket)
    assert [len(text) for text, _ in rows] == [0, 1, 2, BIG, 4, 5, 6, 7]
    assert rows[3][0] == b"D" * BIG and rows[7] == (b"H" * 7, (7).to_bytes(4, "big"))
    assert rows[5][1] is None


def test_binary_copy_without_rows_gives_no_batch(
    conn: psycopg.Connection[Any], off_socket: bool
) -> None:
    sql = "COPY (SELECT 'x', 1 WHERE false) TO STDOUT (FORMAT binary)"
    assert binary_values(conn, sql, off_socket) == []


@pytest.mark.parametrize("mode", ["csv", "lines"])
def test_text_rows_longer_than_the_buffer_stay_whole(
    conn: psycopg.Connection[Any], mode: str, off_socket: bool
) -> None:
    value = f"repeat(E'a\\nb\"', {BIG // 3})" if mode == "csv" else f"repeat('x', {BIG})"
    options = "FORMAT csv" if mode == "csv" else "FORMAT text"
    sql = (
        f"COPY (SELECT i, CASE WHEN i = 2 THEN {value} END FROM generate_series(1, 4) AS i)"
        f" TO STDOUT ({options})"
    )
    rows = read_all(conn, sql, mode, off_socket)
    assert len(rows) == 4
    assert [r.split(b",")[0].split(b"\t")[0] for r in rows] == [b"1", b"2", b"3", b"4"]
    assert all(r.endswith(b"\n") for r in rows)
    assert len(rows[1]) > BIG


def test_server_error_raises_after_the_rows_before_it(
    conn: psycopg.Connection[Any], off_socket: bool
) -> None:
    sql = "COPY (SELECT 1 / (3 - i) FROM generate_series(1, 5) AS i) TO STDOUT"
    copy = CopyOut(conn, sql, mode="lines", off_socket=off_socket)
    seen = []
    with pytest.raises(psycopg.errors.DivisionByZero) as raised:
        for batch in copy.batches():
            seen.append(batch.values())
    assert b"".join(seen) == b"0\n1\n"
    assert raised.value.diag.sqlstate == "22012"
    assert raised.value.diag.message_primary == "division by zero"
    assert conn.info.transaction_status == psycopg.pq.TransactionStatus.INERROR
    conn.rollback()
    assert conn.execute("SELECT 1").fetchone() == (1,)


@pytest.mark.parametrize("rows", [3, 100_000])
def test_a_copy_left_at_its_last_batch_leaves_the_connection_usable(
    conn: psycopg.Connection[Any], rows: int, off_socket: bool
) -> None:
    """A writer that fails on the last batch (for a small result, the only one) abandons a
    COPY that libpq has already read to its end: the connection still takes queries."""
    sql = f"COPY (SELECT i FROM generate_series(1, {rows}) AS i) TO STDOUT"
    batches = CopyOut(conn, sql, mode="lines", off_socket=off_socket).batches()
    seen = 0
    for batch in batches:
        seen += batch.rows
        if seen == rows:
            batches.close()  # as write_result does when the writer raises
    assert seen == rows
    conn.rollback()
    assert conn.execute("SELECT 2").fetchone() == (2,)


def test_rows_of_a_slow_query_come_as_they_arrive_when_asked(
    conn: psycopg.Connection[Any], off_socket: bool
) -> None:
    """With ``stall_seconds``, rows already read do not wait for a full batch
    (a slow query's progress shows); without, they do. (Each row is larger
    than the server's 8 kB send buffer, which it flushes only when full.)"""
    sql = (
        "COPY (SELECT g, repeat('x', 9000) FROM generate_series(1, 4) AS g"
        " CROSS JOIN LATERAL (SELECT pg_sleep(0.7 + 0 * g)) AS pause) TO STDOUT"
    )
    patient = [b.rows for b in CopyOut(conn, sql, mode="lines", off_socket=off_socket).batches()]
    eager_copy = CopyOut(conn, sql, mode="lines", stall_seconds=0.1, off_socket=off_socket)
    eager = [b.rows for b in eager_copy.batches()]
    assert patient == [4]
    assert sum(eager) == 4 and len(eager) >= 2


@pytest.mark.parametrize(
    "sql",
    [
        "COPY (SELECT i FROM generate_series(1, 10) AS i) TO STDOUT; COMMIT",
        "COMMIT; COPY (SELECT 1) TO STDOUT",
        "COPY (SELECT 1) TO STDOUT; SET SESSION AUTHORIZATION DEFAULT",
    ],
)
def test_statements_stacked_with_the_copy_are_refused_and_the_connection_stays_usable(
    conn: psycopg.Connection[Any], off_socket: bool, sql: str
) -> None:
    """The COPY goes alone (the extended protocol), read through libpq or off the socket:
    the server refuses the text as a whole, runs none of it, and says so."""
    with pytest.raises(psycopg.errors.SyntaxError, match="multiple commands"):
        CopyOut(conn, sql, mode="lines", off_socket=off_socket).start()
    # a COMMIT that ran would have ended the transaction
    assert conn.info.transaction_status == psycopg.pq.TransactionStatus.INERROR
    conn.rollback()
    assert conn.execute("SELECT 3").fetchone() == (3,)


def test_a_connection_lost_during_the_copy_raises(
    conn: psycopg.Connection[Any], tables_dsn: str, off_socket: bool
) -> None:
    """The backend killed while rows stream: an OperationalError, not a hang."""
    pid = conn.info.backend_pid
    sql = (  # a few batches of rows, then a stall
        "COPY (SELECT i FROM generate_series(1, 1000000) AS i"
        " WHERE i < 200000 OR pg_sleep(60) IS NULL) TO STDOUT"
    )
    copy = CopyOut(conn, sql, mode="lines", off_socket=off_socket)
    with pytest.raises(psycopg.OperationalError):
        for _ in copy.batches():
            with psycopg.connect(tables_dsn, autocommit=True) as admin:
                admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
    with pytest.raises(psycopg.OperationalError):
        conn.execute("SELECT 1")


@pytest.mark.parametrize("mode", ["lines", "binary"])
def test_a_copy_left_while_the_server_still_sends_leaves_the_connection_usable(
    conn: psycopg.Connection[Any], mode: str, off_socket: bool
) -> None:
    """A writer failing on its first batch of a large result: the COPY is stopped, nothing
    of it is left for the next statement, and no thread is left reading the socket."""
    options = " (FORMAT binary)" if mode == "binary" else ""
    rows = "SELECT i, repeat('x', 100) FROM generate_series(1, 3000000) AS i"
    sql = f"COPY ({rows}) TO STDOUT{options}"
    threads = threading.active_count()
    batches = CopyOut(conn, sql, mode=mode, off_socket=off_socket).batches()
    first = next(batches)
    assert first.rows > 0
    batches.close()  # as write_result does when the writer raises
    assert threading.active_count() == threads
    conn.rollback()
    assert conn.execute("SELECT 4").fetchone() == (4,)
    assert conn.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS


class _Alarm(Exception):
    pass


def _raise_alarm(signum: int, frame: object) -> None:
    raise _Alarm


@pytest.mark.parametrize("rows_first", [False, True])
def test_a_signal_handler_raising_while_the_query_runs_stops_it(
    conn: psycopg.Connection[Any], off_socket: bool, rows_first: bool
) -> None:
    """A job's abort is a signal whose handler raises: it ends the wait for rows (before
    the first or between two), the query is cancelled and the connection stays usable."""
    sql = (
        "COPY (SELECT i FROM generate_series(1, 2) AS i"
        f" WHERE i = {1 if rows_first else 0} OR pg_sleep(60) IS NULL) TO STDOUT"
    )
    previous = signal.signal(signal.SIGALRM, _raise_alarm)
    started = time.monotonic()
    try:
        signal.setitimer(signal.ITIMER_REAL, 1.0)
        with pytest.raises(_Alarm):
            copy = CopyOut(conn, sql, stall_seconds=0.1, off_socket=off_socket)
            copy.start()
            for _ in copy.batches():
                pass
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert time.monotonic() - started < 30
    conn.rollback()
    assert conn.execute("SELECT 5").fetchone() == (5,)


def test_an_interrupted_copy_is_not_started(conn: psycopg.Connection[Any]) -> None:
    copy = CopyOut(conn, "COPY (SELECT pg_sleep(60)) TO STDOUT", interrupted=lambda: True)
    with pytest.raises(CopyInterrupted):
        copy.start()
    assert conn.execute("SELECT 1").fetchone() == (1,)  # nothing was sent


def test_an_interrupted_copy_cancels_itself_when_a_cancel_was_missed(
    conn: psycopg.Connection[Any], off_socket: bool
) -> None:
    """PostgreSQL drops a cancel that arrives between statements; the COPY sends its own
    (also read off the socket, as /sync reads its COPY)."""
    stop = threading.Event()
    statement = "COPY (SELECT 1 FROM pg_sleep(60)) TO STDOUT"
    copy = CopyOut(conn, statement, interrupted=stop.is_set, off_socket=off_socket)
    # as if the caller's cancel had reached the server too early: no cancel request
    threading.Timer(0.5, stop.set).start()
    started = time.monotonic()
    with pytest.raises(psycopg.errors.QueryCanceled):
        list(copy.batches())
    assert time.monotonic() - started < 30  # generous: expected within RECANCEL_INTERVAL
    conn.rollback()
    assert conn.execute("SELECT 1").fetchone() == (1,)
