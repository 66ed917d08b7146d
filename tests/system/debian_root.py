"""A cached Debian 12 root with systemd, PostgreSQL 15 and pgsphere, and per-run copies of it.

The first run debootstraps bookworm (minbase plus systemd, systemd-sysv, dbus),
installs PostgreSQL 15 and pgsphere in it, and downloads (without installing)
the Debian packages tapd depends on, so that the test's ``apt-get install
./tapd_*.deb`` resolves the package's own Depends as an operator's would, but
from local archives. The root is kept in ``/var/cache/tapd-systest``
(``TAPD_SYSTEST_CACHE``) under a name derived from everything that went into
it, and rebuilt after ``MAX_AGE_DAYS``. Each run boots an overlay of it, so
every run starts from the same clean state and the cache is never written to.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

SUITE = "bookworm"
CACHE_FORMAT = 2
MAX_AGE_DAYS = 14
#: Installed in the cached root: what an archive host has before tapd arrives.
BASE_PACKAGES = ("postgresql-15", "postgresql-15-pgsphere", "procps", "man-db", "ca-certificates")
DEFAULT_MIRROR = "http://deb.debian.org/debian"
# No file of the test's own may have "tapd" in its name: the purge step looks for those.
READY_MARK = ".systest-root-ready"

Log = Callable[[str], None]


def cache_dir() -> Path:
    return Path(os.environ.get("TAPD_SYSTEST_CACHE", "/var/cache/tapd-systest"))


def debian_mirror(apt_dir: Path = Path("/etc/apt")) -> str:
    """The host's Debian mirror (from its apt sources), else deb.debian.org."""
    sources = [*sorted((apt_dir / "sources.list.d").glob("*")), apt_dir / "sources.list"]
    for source in sources:
        try:
            text = source.read_text()
        except OSError:
            continue
        for uri in re.findall(r"(?:^URIs:\s*|^deb\s+(?:\[[^\]]*\]\s+)?)(\S+)", text, re.M):
            if str(uri).rstrip("/").endswith("/debian"):
                return str(uri).rstrip("/")
    return DEFAULT_MIRROR


def package_names(depends: str) -> list[str]:
    """Package names of a Depends field: first alternative, no versions or :any."""
    names = []
    for relation in depends.split(","):
        first = relation.split("|")[0].strip()
        name = re.split(r"[\s(:]", first, maxsplit=1)[0]
        if name:
            names.append(name)
    return sorted(set(names))


def deb_depends(deb: Path) -> list[str]:
    """What ``apt-get install ./deb`` will have to install for it."""
    fields = subprocess.run(
        ["dpkg-deb", "-f", str(deb), "Depends", "Recommends"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    text = " ".join(line.split(":", 1)[1] for line in fields.splitlines() if ":" in line)
    return package_names(text.replace("\n", ","))


def cache_key(download: Sequence[str], mirror: str) -> str:
    recipe = {
        "format": CACHE_FORMAT,
        "suite": SUITE,
        "mirror": mirror,
        "base": BASE_PACKAGES,
        "download": sorted(download),
    }
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:16]


@contextmanager
def _locked(directory: Path) -> Iterator[None]:
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def cached_root(download: Sequence[str], log: Log) -> Path:
    """The cached root for this recipe, built first when missing or too old."""
    mirror = debian_mirror()
    directory = cache_dir()
    root = directory / f"rootfs-{cache_key(download, mirror)}"
    with _locked(directory):
        mark = root / READY_MARK
        if mark.exists() and time.time() - mark.stat().st_mtime < MAX_AGE_DAYS * 86400:
            log(f"cached Debian root {root}")
            return root
        for stale in directory.glob("rootfs-*"):
            shutil.rmtree(stale, ignore_errors=True)
        building = directory / f"{root.name}.building"
        _build_root(building, mirror, download, log)
        building.rename(root)
        (root / READY_MARK).touch()
    return root


def _run(command: Sequence[str], log: Log, timeout: float) -> None:
    log("$ " + " ".join(command))
    result = subprocess.run(
        command, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout
    )
    if result.returncode != 0:
        raise RuntimeError(
            f"{command[0]} failed with status {result.returncode}:\n"
            + (result.stdout + result.stderr)[-4000:]
        )


def _build_root(root: Path, mirror: str, download: Sequence[str], log: Log) -> None:
    log(f"building the cached Debian root (cold cache): debootstrap {SUITE} from {mirror}")
    started = time.monotonic()
    _run(
        [
            "debootstrap",
            "--variant=minbase",
            "--include=systemd,systemd-sysv,dbus",
            SUITE,
            str(root),
            mirror,
        ],
        log,
        timeout=900,
    )
    security = (
        mirror.replace("/debian", "/debian-security")
        if "deb.debian.org" in mirror
        else ("http://deb.debian.org/debian-security")
    )
    (root / "etc/apt/sources.list").write_text(
        f"deb {mirror} {SUITE} main\n"
        f"deb {mirror} {SUITE}-updates main\n"
        f"deb {security} {SUITE}-security main\n"
    )
    (root / "etc/apt/apt.conf.d/90systest").write_text('Acquire::Languages "none";\n')
    (root / "etc/hostname").write_text("systest\n")
    # Nothing may start while packages are installed outside a booted system.
    policy = root / "usr/sbin/policy-rc.d"
    policy.write_text("#!/bin/sh\nexit 101\n")
    policy.chmod(0o755)
    script = (
        "set -e; export DEBIAN_FRONTEND=noninteractive; apt-get update -q;"
        f" apt-get install -y -q --no-install-recommends {' '.join(BASE_PACKAGES)};"
        " apt-get clean;"
        f" apt-get install -y -q --no-install-recommends --download-only {' '.join(download)}"
    )
    _run(nspawn_command(root, "sh", "-c", script, network=True), log, timeout=900)
    policy.unlink()
    log(f"cached Debian root ready in {time.monotonic() - started:.0f} s")


def nspawn_command(root: Path, *command: str, network: bool = False) -> list[str]:
    """Run one command in ``root`` under systemd-nspawn (not booted)."""
    return [
        "systemd-nspawn",
        "-D",
        str(root),
        "--register=no",
        "--keep-unit",
        "-q",
        "--pipe",
        *([] if network else ["--private-network"]),
        "--",
        *command,
    ]


class RunRoot:
    """A per-run writable view of the cached root: an overlay, else a copy."""

    def __init__(self, lower: Path) -> None:
        self.base = Path(tempfile.mkdtemp(prefix="tapd-systest-", dir="/var/tmp"))
        self.path = self.base / "root"
        self.path.mkdir()
        upper, work = self.base / "upper", self.base / "work"
        upper.mkdir()
        work.mkdir()
        mounted = subprocess.run(
            [
                "mount",
                "-t",
                "overlay",
                "overlay",
                "-o",
                f"lowerdir={lower},upperdir={upper},workdir={work}",
                str(self.path),
            ],
            capture_output=True,
        )
        self.overlay = mounted.returncode == 0
        if not self.overlay:
            subprocess.run(["cp", "-a", "--reflink=auto", f"{lower}/.", str(self.path)], check=True)

    def remove(self) -> None:
        unmounted = subprocess.run(["umount", str(self.path)], capture_output=True)
        if self.overlay and unmounted.returncode != 0:
            subprocess.run(["umount", "-l", str(self.path)], capture_output=True)
        shutil.rmtree(self.base, ignore_errors=True)
