"""tapd(8) documents the command as it is: every sub-command and every setting section."""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tapd.cli import build_parser
from tapd.config import SETTINGS

MAN_PAGE = Path(__file__).resolve().parents[2] / "packaging" / "man" / "tapd.8"


def section(name: str) -> str:
    text = MAN_PAGE.read_text()
    match = re.search(rf"^\.SH {name}\n(.*?)(?=^\.SH )", text, re.M | re.S)
    assert match, f"tapd.8 has no {name} section"
    return match.group(1)


def subcommands(parser: argparse.ArgumentParser, prefix: str = "") -> list[str]:
    """Every sub-command path, e.g. ['initdb', 'adql check', ...]."""
    names = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                nested = subcommands(sub, f"{prefix}{name} ")
                names += nested or [f"{prefix}{name}"]
    return names


def test_every_subcommand_is_in_commands_section() -> None:
    documented = section("COMMANDS").replace("\\-", "-")
    missing = [
        name
        for name in subcommands(build_parser())
        if not re.search(rf'^\.BI? "?{re.escape(name)}\b', documented, re.M)
    ]
    assert missing == []


def test_every_setting_section_is_named_in_configuration() -> None:
    documented = section("CONFIGURATION")
    assert sorted({s.section for s in SETTINGS if f"[{s.section}]" not in documented}) == []


@pytest.mark.skipif(shutil.which("man") is None, reason="man-db is not installed")
def test_man_page_renders_without_warnings() -> None:
    result = subprocess.run(
        ["man", "--warnings", "-l", str(MAN_PAGE)],
        capture_output=True,
        text=True,
        env={"MANWIDTH": "80", "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0
    assert result.stderr == ""
