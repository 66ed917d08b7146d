"""Fixtures of the CLI tests: a tapd site (database, sample tables, config file)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.sites import Site, make_site


@pytest.fixture
def site(dsn: str, tmp_path: Path) -> Site:
    return make_site(dsn, tmp_path)
