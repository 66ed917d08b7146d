"""The Debian package's files agree with the code they ship (no build needed).

The package itself is built, lintian-checked, installed and run by the
system test (tests/system); these checks catch drift early and cheaply.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from tapd import __version__
from tapd.config import SETTINGS, default_config_text, parse_toml

REPO = Path(__file__).resolve().parents[2]
DEBIAN = REPO / "packaging" / "debian"
#: PyPI distribution names whose Debian 12 package is not python3-<name>.
DEBIAN_NAMES = {"python-multipart": "python3-multipart"}


def control_field(package: str, field: str) -> list[str]:
    """The names in one relation field of a binary package in debian/control."""
    stanzas = (DEBIAN / "control").read_text().split("\n\n")
    stanza = next(s for s in stanzas if re.search(rf"^Package: {package}$", s, re.M))
    match = re.search(rf"^{field}:(.*(?:\n[ \t].*)*)", stanza, re.M)
    assert match, f"no {field} in debian/control for {package}"
    return [
        re.split(r"[\s(]", r.strip(), maxsplit=1)[0] for r in match.group(1).split(",") if r.strip()
    ]


def test_changelog_version_is_the_package_version() -> None:
    first = (DEBIAN / "changelog").read_text().splitlines()[0]
    assert re.match(rf"^tapd \({re.escape(__version__)}\) ", first), first


def test_every_runtime_dependency_is_a_debian_depends() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    wanted = {
        DEBIAN_NAMES.get(name, f"python3-{name}")
        for name in (
            re.split(r"[<>=!~ ;\[]", dep, maxsplit=1)[0].lower() for dep in project["dependencies"]
        )
    }
    assert wanted - set(control_field("tapd", "Depends")) == set()


#: Speed-ups of the ``fast`` extra that Debian 12 does not package (it ships
#: only psycopg's Python implementation).
NOT_IN_DEBIAN = {"psycopg[binary]"}


def test_every_optional_speed_up_is_a_debian_recommends() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    names = {
        re.split(r"[<>=!~ ;]", dep, maxsplit=1)[0].lower()
        for dep in project["optional-dependencies"]["fast"]
    }
    fast = {f"python3-{name}" for name in names - NOT_IN_DEBIAN}
    assert fast == {"python3-uvloop", "python3-httptools"}
    assert fast - set(control_field("tapd", "Recommends")) == set()


def test_shipped_default_config_is_valid_and_sets_nothing() -> None:
    text = default_config_text()
    assert parse_toml(text, "tapd.toml") == {}
    for setting in SETTINGS:
        assert f"#{setting.name} = " in text


def test_stop_timeout_outlasts_the_default_shutdown_grace() -> None:
    unit = (REPO / "systemd" / "tapd.service").read_text()
    stop = int(re.search(r"^TimeoutStopSec=(\d+)s?$", unit, re.M).group(1))  # type: ignore[union-attr]
    grace = next(s.default for s in SETTINGS if s.name == "shutdown_grace")
    # The daemon needs time after the grace period to cancel queries and reap children.
    assert stop >= grace + 15
    assert re.search(r"^KillMode=mixed$", unit, re.M)


def test_watchdog_outlasts_the_default_waits_for_a_silent_database() -> None:
    """The daemon's loop waits up to connect_timeout (a reconnect) or
    keepalive_timeout (a half-open connection) before it notices by itself."""
    unit = (REPO / "systemd" / "tapd.service").read_text()
    watchdog = int(re.search(r"^WatchdogSec=(\d+)s?$", unit, re.M).group(1))  # type: ignore[union-attr]
    defaults = {s.name: s.default for s in SETTINGS}
    assert watchdog > defaults["connect_timeout"] + 2
    assert watchdog > defaults["keepalive_timeout"] + 2


def test_units_run_the_installed_command_as_tapd() -> None:
    for name, command in (("tapd.service", "run"), ("tapd-http.service", "serve")):
        unit = (REPO / "systemd" / name).read_text()
        assert re.search(rf"^ExecStart=/usr/bin/tapd {command}$", unit, re.M), name
        assert re.search(r"^User=tapd$", unit, re.M), name
    sysusers = (REPO / "systemd" / "tapd.sysusers").read_text()
    assert re.search(r"^u tapd ", sysusers, re.M)
    tmpfiles = (REPO / "systemd" / "tapd.tmpfiles").read_text()
    assert re.search(r"^d /var/lib/tapd/jobs\s+0750 tapd tapd ", tmpfiles, re.M)
