"""Data a test reads from outside the repository: a skip on a developer's machine, a
failure in CI (``CI=true``, which ``.ci/run`` sets), so a CI run without the data
cannot stay green."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import NoReturn

import pytest


def running_in_ci(environ: Mapping[str, str] = os.environ) -> bool:
    """True when ``CI`` says so (CI services set ``CI=true``)."""
    return environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def missing_data(message: str) -> NoReturn:
    """Skip the test, or fail it when running in CI."""
    if running_in_ci():
        pytest.fail(f"{message} (CI=true: the data this test needs must be present)", False)
    pytest.skip(message)
