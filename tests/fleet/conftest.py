"""Fixtures of the fleet test: the whole fleet once per session (``tests.fleet.topology``).

Missing prerequisites (root, patroni, etcd, ...) skip the tests, except in CI
(CI=true), where they fail.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.fleet.topology import AUDIT_SQL, Fleet, missing_prerequisite, on_primary, running_fleet


@pytest.fixture(scope="session")
def fleet() -> Iterator[Fleet]:
    reason = missing_prerequisite()
    if reason:
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    with running_fleet() as running:
        yield running


@pytest.fixture
def audited(fleet: Fleet) -> Iterator[None]:
    """Every phase change of the test's jobs recorded in public.fleet_audit."""
    on_primary(fleet, AUDIT_SQL)
    yield
    on_primary(fleet, "DROP TRIGGER IF EXISTS fleet_audit ON tapd.jobs")
