"""Job commands start quickly because they import only what they need.

What a command imports is visible (``python -X importtime``) and does not
depend on the machine's speed; ``bench/cli_latency.py`` measures the time.
"""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tests.sites import Site

#: Modules whose import costs a job command more than the rest of its work.
HEAVY = (
    "tapd.adql",
    "tapd.catalog",
    "tapd.runner",
    "tapd.formats",
    "tapd.http",
    "lark",
    "astropy",
    "numpy",
    "pyarrow",
    "starlette",
    "uvicorn",
)
#: What printing a command's help needs none of: no database, no logging, no settings.
NOT_FOR_HELP = (*HEAVY, "psycopg", "structlog", "tomllib", "tapd.config")

JOB_COMMANDS = ("submit", "jobs", "show", "abort", "result", "status")

_IMPORT_LINE = re.compile(r"^import time:\s+\d+ \|\s+\d+ \|\s+(\S+)$", re.M)


def imported_modules(site: Site | None, *args: str) -> set[str]:
    options = ["--config", str(site.config_path)] if site else []
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "tapd", *options, *args],
        capture_output=True,
        text=True,
        env=site.env() if site else None,
        timeout=60,
    )
    assert "Traceback" not in done.stderr, done.stderr
    return set(_IMPORT_LINE.findall(done.stderr))


def among(modules: set[str], packages: tuple[str, ...]) -> list[str]:
    return sorted(m for m in modules if m.split(".")[0] in packages or m.startswith(packages))


@pytest.mark.parametrize("command", [None, *JOB_COMMANDS])
def test_help_imports_neither_database_nor_logging(command: str | None) -> None:
    modules = imported_modules(None, *([command] if command else []), "--help")
    assert "argparse" in modules  # the measurement works
    assert among(modules, NOT_FOR_HELP) == []


def test_job_commands_import_no_query_machinery(site: Site) -> None:
    job_id = site.submit("SELECT x FROM public.numbers", run=False)
    for args in (("jobs",), ("show", job_id), ("abort", job_id), ("status",)):
        modules = imported_modules(site, *args)
        assert "psycopg" in modules, args  # it did reach the database
        assert among(modules, HEAVY) == [], args


def test_store_package_exports_every_name_it_lists() -> None:
    import tapd.store

    assert sorted(tapd.store.__all__) == sorted(tapd.store._MODULE_OF)
    assert [n for n in tapd.store.__all__ if getattr(tapd.store, n, None) is None] == []
    with pytest.raises(AttributeError):
        tapd.store.no_such_name  # noqa: B018
