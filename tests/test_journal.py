"""Log events reach journald as native-protocol datagrams with queryable fields."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from tapd import log
from tapd.journal import encode_event, field_name, parse_datagram


@pytest.fixture
def journal_socket(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[socket.socket]:
    path = tmp_path / "journal.sock"
    receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    receiver.bind(str(path))
    receiver.settimeout(5)
    monkeypatch.setenv("TAPD_JOURNAL_SOCKET", str(path))
    monkeypatch.setenv("JOURNAL_STREAM", "8:1234")
    yield receiver
    receiver.close()
    log.configure("info", "console")


def test_events_become_journal_fields_under_systemd(journal_socket: socket.socket) -> None:
    log.configure("info", "auto")  # JOURNAL_STREAM is set: journal
    structlog.get_logger().warning(
        "job.phase",
        job_id="abc",
        phase="ERROR",
        runner_pid=42,
        duration_ms=17,
        rows=3,
        sqlstate="42P01",
    )
    fields = parse_datagram(journal_socket.recv(65536))
    assert fields["JOB_ID"] == "abc"
    assert fields["PHASE"] == "ERROR"
    assert fields["RUNNER_PID"] == "42"
    assert fields["DURATION_MS"] == "17"
    assert fields["ROWS"] == "3"
    assert fields["SQLSTATE"] == "42P01"
    assert fields["PRIORITY"] == "4"
    assert fields["SYSLOG_IDENTIFIER"] == "tapd"
    assert fields["TAPD_EVENT"] == "job.phase"
    assert fields["MESSAGE"].startswith("job.phase job_id=abc phase=ERROR")


def test_levels_map_to_syslog_priorities_and_filtering_applies(
    journal_socket: socket.socket,
) -> None:
    log.configure("debug", "journal")
    logger = structlog.get_logger()
    logger.debug("a")
    logger.info("b")
    logger.error("c")
    priorities = [parse_datagram(journal_socket.recv(65536))["PRIORITY"] for _ in range(3)]
    assert priorities == ["7", "6", "3"]
    log.configure("warning", "journal")
    structlog.get_logger().info("hidden")
    structlog.get_logger().warning("shown")
    assert parse_datagram(journal_socket.recv(65536))["TAPD_EVENT"] == "shown"


def test_multi_line_values_use_the_length_prefixed_form() -> None:
    datagram = encode_event({"event": "x", "level": "error", "error": "line 1\nline 2"})
    assert b"ERROR\n" in datagram
    assert parse_datagram(datagram)["ERROR"] == "line 1\nline 2"


def test_field_names_are_journal_safe() -> None:
    assert field_name("job_id") == "JOB_ID"
    assert field_name("_secret") == "SECRET"
    assert field_name("a-b.c") == "A_B_C"
    assert field_name("1x") == "F_1X"
