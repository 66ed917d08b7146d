"""``tapd config``: print the commented default configuration."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("config", help="print every setting with its default, as TOML")
    parser.set_defaults(handler=_print_defaults)


def _print_defaults(args: argparse.Namespace) -> int:
    from tapd.config import default_config_text

    print(default_config_text(), end="")
    return 0
