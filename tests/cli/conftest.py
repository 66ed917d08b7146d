"""Fixtures of the CLI tests: a tapd site (database, sample tables, config file) and
``tapd ARGS`` run in this process."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from tapd.cli import main
from tests.sites import Site, make_site


@pytest.fixture
def site(dsn: str, tmp_path: Path) -> Site:
    return make_site(dsn, tmp_path)


@dataclass
class Done:
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture
def tapd(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch):
    """``tapd ARGS`` run in this process (the CLI's whole path, minus interpreter start)."""
    monkeypatch.delenv("JOURNAL_STREAM", raising=False)

    def run(*args: str, config: Path | None = None) -> Done:
        options = ["--config", str(config)] if config else []
        capsys.readouterr()
        status = main([*options, "--log-level", "warning", *args])
        out, err = capsys.readouterr()
        return Done(status, out, err)

    return run


@pytest.fixture
def site_tapd(site: Site, tapd):
    return lambda *args: tapd(*args, config=site.config_path)
