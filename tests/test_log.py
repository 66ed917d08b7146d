"""Log output away from systemd: readable console lines or JSON lines."""

from __future__ import annotations

import io
import json
import sys
from collections.abc import Iterator

import pytest
import structlog

from tapd import log


@pytest.fixture(autouse=True)
def _restore() -> Iterator[None]:
    yield
    log.configure("info", "console")


def test_json_lines_carry_the_event_and_its_fields(capsys: pytest.CaptureFixture[str]) -> None:
    log.configure("info", "json")
    structlog.get_logger().info("job.phase", job_id="abc", phase="COMPLETED", rows=3)
    record = json.loads(capsys.readouterr().err.strip())
    assert record["event"] == "job.phase"
    assert (record["job_id"], record["phase"], record["rows"]) == ("abc", "COMPLETED", 3)
    assert record["level"] == "info" and record["timestamp"].endswith("Z")


def test_console_lines_are_one_line_per_event(capsys: pytest.CaptureFixture[str]) -> None:
    log.configure("info", "console")
    structlog.get_logger().info("job.phase", job_id="abc", phase="ERROR")
    (line,) = capsys.readouterr().err.splitlines()
    assert "job.phase" in line and "job_id=abc" in line and "phase=ERROR" in line


def test_module_level_loggers_follow_a_later_configuration(
    capsys: pytest.CaptureFixture[str],
) -> None:
    early = log.get_logger(component="x")  # made before configure(), as modules do
    log.configure("warning", "json")
    early.info("hidden")
    early.warning("shown")
    (line,) = capsys.readouterr().err.splitlines()
    assert json.loads(line)["event"] == "shown"
    assert json.loads(line)["component"] == "x"


def test_auto_means_journal_only_under_systemd(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    assert log.choose_format("auto") == "console"
    monkeypatch.setenv("JOURNAL_STREAM", "8:1")
    assert log.choose_format("auto") == "journal"
    assert log.choose_format("json") == "json"


def test_events_go_to_the_current_stderr_after_the_configured_one_was_closed(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """An earlier in-process user (a test's capture) may close the stream that was stderr
    when logging was configured; later events go to whatever stderr is now."""
    gone = io.StringIO()
    monkeypatch.setattr(sys, "stderr", gone)
    log.configure("info", "json")
    gone.close()
    monkeypatch.undo()
    log.get_logger().warning("examples.unchecked", file="x.toml")
    assert json.loads(capsys.readouterr().err)["event"] == "examples.unchecked"
