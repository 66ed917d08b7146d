"""``tapd serve`` (the TAP/UWS HTTP service) and ``tapd demo`` (everything on loopback)."""

from __future__ import annotations

import argparse

from tapd.cli.context import load_cli_config


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add this module's sub-commands."""
    serve = subparsers.add_parser(
        "serve",
        help="run the TAP 1.1 / UWS 1.1 HTTP service",
        description="Serve /sync, /async, /capabilities, /availability and /tables under "
        "[http] base_path. Runner daemons (tapd run) execute the jobs. With [http] "
        "owner_header set, the named request header (set by a trusted reverse proxy "
        "after authentication) is the job owner; each owner sees only their own jobs.",
    )
    serve.add_argument("--host", help="address to bind (default: [http] host)")
    serve.add_argument("--port", type=int, help="port to bind (default: [http] port)")
    serve.set_defaults(handler=_serve)

    demo = subparsers.add_parser(
        "demo",
        help="try tapd: throwaway PostgreSQL with a sample catalog, a runner, the HTTP service",
        description="Starts a private PostgreSQL with pgsphere and a 100,000-star sample "
        "catalog (dense along the galactic plane), one runner daemon and the HTTP service on "
        "127.0.0.1, prints the TAP URL and runs until Ctrl-C; then removes everything it "
        "created.",
    )
    demo.add_argument("--port", type=int, default=8080, help="HTTP port (default 8080)")
    demo.add_argument(
        "--stars",
        "--rows",
        dest="stars",
        type=_star_count,
        default=100_000,
        metavar="N",
        help="stars in the sample catalog (default 100000; 20 million take about 15 minutes"
        " and 6 GB)",
    )
    demo.set_defaults(handler=_demo)


def _serve(args: argparse.Namespace) -> int:
    from tapd.http.server import run_server

    config = load_cli_config(args)
    overrides = {}
    if args.host:
        overrides["host"] = args.host
    if args.port is not None:
        overrides["port"] = args.port
    if overrides:
        config = config.replace(**overrides)
    run_server(config)
    return 0


def _demo(args: argparse.Namespace) -> int:
    from tapd.demo import run_demo

    config = load_cli_config(args)
    return run_demo(config, port=args.port, rows=args.stars)


def _star_count(text: str) -> int:
    try:
        value = int(text.replace("_", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"the catalog needs at least one star, not {value}")
    return value
