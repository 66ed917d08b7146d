"""``tapd demo --stars N``: the size of the sample catalog, checked before anything starts."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


@pytest.mark.parametrize(
    ("value", "message"),
    [("0", "at least one star, not 0"), ("many", "'many' is not a whole number")],
)
def test_a_star_count_that_cannot_be_a_catalog_is_refused_in_one_line(
    value: str, message: str
) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "tapd", "demo", "--stars", value],
        capture_output=True,
        text=True,
        env={**os.environ, "TAPD_CONFIG": os.devnull},
        timeout=60,
    )
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr
