"""tapd's configuration: one schema, read from TOML, ``--config`` and ``TAPD_*``.

Every setting is declared once in ``SETTINGS`` (section, name, type, default,
help); the TOML file groups them in sections, the environment names them
``TAPD_<NAME>`` (e.g. ``TAPD_DSN``, ``TAPD_JOBS_DIR``). Unknown keys and values
of the wrong type are refused with a message naming the key.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tapd.errors import ConfigError

DEFAULT_CONFIG_FILE = Path("/etc/tapd/tapd.toml")

#: TAPD_* environment variables that are not settings (TAPD_ADQL_CASES: where the test
#: suite finds the IVOA conformance cases; CI exports it for every process it starts;
#: TAPD_SKIP_SYSTEM_TEST, TAPD_SKIP_FLEET_TEST: scripts/test leaves out the system or
#: the fleet test; TAPD_FLEET_KEEP: the fleet test keeps its logs).
NON_SETTING_VARIABLES = frozenset(
    {
        "TAPD_CONFIG",
        "TAPD_PG_BINDIR",
        "TAPD_JOURNAL_SOCKET",
        "TAPD_ADQL_CASES",
        "TAPD_SKIP_SYSTEM_TEST",
        "TAPD_SKIP_FLEET_TEST",
        "TAPD_FLEET_KEEP",
    }
)


@dataclass(frozen=True)
class Setting:
    section: str
    name: str
    type: type
    default: Any
    help: str
    choices: tuple[str, ...] = ()
    minimum: float | None = None


SETTINGS: tuple[Setting, ...] = (
    # [database]
    Setting(
        "database",
        "dsn",
        str,
        "dbname=tapd",
        "libpq connection string of the job store and catalog",
    ),
    Setting("database", "schema", str, "tapd", "PostgreSQL schema holding tapd's job tables"),
    Setting(
        "database",
        "query_role",
        str,
        "tapd_query",
        "role that user queries run as (SELECT on published tables only)",
    ),
    Setting(
        "database",
        "query_dsn",
        str,
        "",
        "connection string user queries log in with, as query_role (never in a session of"
        " the job tables' owner), e.g. every node with target_session_attrs=prefer-standby"
        " load_balance_hosts=random (standbys, spread); queries with uploads log in on dsn's"
        " server when it reaches a standby; empty: dsn with user=query_role",
    ),
    Setting(
        "database",
        "connect_timeout",
        float,
        10.0,
        "seconds to wait for the database server when opening a connection (per host)",
        minimum=1,
    ),
    Setting(
        "database",
        "keepalive_timeout",
        float,
        15.0,
        "seconds after which a TCP connection whose server stopped answering counts as"
        " dead (TCP keepalives, tcp_user_timeout); keep it below systemd's WatchdogSec",
        minimum=2,
    ),
    # [runner]
    Setting(
        "runner",
        "jobs_dir",
        str,
        "/var/lib/tapd/jobs",
        "directory holding one sub-directory per job",
    ),
    Setting("runner", "max_jobs", int, 4, "jobs this daemon runs at once", minimum=1),
    Setting(
        "runner",
        "poll_interval",
        float,
        2.0,
        "seconds between queue polls (NOTIFY is only a hint)",
        minimum=0.05,
    ),
    Setting(
        "runner", "heartbeat_interval", float, 5.0, "seconds between runner heartbeats", minimum=0.1
    ),
    Setting(
        "runner",
        "heartbeat_timeout",
        float,
        30.0,
        "seconds without heartbeat after which a daemon counts as dead",
        minimum=1,
    ),
    Setting(
        "runner",
        "shutdown_grace",
        float,
        20.0,
        "seconds running jobs get to finish when the daemon stops",
        minimum=0,
    ),
    Setting(
        "runner",
        "shutdown_policy",
        str,
        "abort",
        "what happens to jobs still running after the grace period",
        choices=("abort", "requeue"),
    ),
    Setting(
        "runner",
        "fetch_batch_rows",
        int,
        10000,
        "rows fetched per batch from the server-side cursor",
        minimum=1,
    ),
    Setting(
        "runner",
        "sweep_interval",
        float,
        30.0,
        "seconds between sweeps that destroy jobs past their destruction time",
        minimum=0.1,
    ),
    Setting(
        "runner",
        "spare_ready_timeout",
        float,
        60.0,
        "seconds a spare child may take to connect and warm up before it is killed and replaced",
        minimum=0.5,
    ),
    Setting(
        "runner",
        "retry_backoff_max",
        float,
        30.0,
        "longest wait, seconds, before a database operation that keeps failing is tried"
        " again (the wait doubles from 0.5 s)",
        minimum=0.5,
    ),
    # [limits]
    Setting(
        "limits",
        "execution_duration_default",
        int,
        600,
        "executionDuration of a new job, seconds",
        minimum=1,
    ),
    Setting(
        "limits",
        "execution_duration_max",
        int,
        3600,
        "largest executionDuration a client may set, seconds",
        minimum=1,
    ),
    Setting(
        "limits",
        "sync_execution_duration",
        int,
        60,
        "time limit of a synchronous query, seconds",
        minimum=1,
    ),
    Setting(
        "limits",
        "destruction_default",
        int,
        7 * 86400,
        "seconds from creation to destruction of a job",
        minimum=60,
    ),
    Setting(
        "limits",
        "destruction_max",
        int,
        30 * 86400,
        "latest destruction a client may set, seconds after creation",
        minimum=60,
    ),
    Setting(
        "limits",
        "maxrec_default",
        int,
        100000,
        "rows returned when the client gives no MAXREC",
        minimum=0,
    ),
    Setting("limits", "maxrec_max", int, 10000000, "largest MAXREC honoured", minimum=0),
    Setting(
        "limits", "upload_max_bytes", int, 20_000_000, "largest uploaded table, bytes", minimum=0
    ),
    Setting(
        "limits", "upload_max_rows", int, 1_000_000, "most rows of an uploaded table", minimum=0
    ),
    Setting(
        "limits", "jobs_per_owner", int, 100, "most unfinished or stored jobs per owner", minimum=1
    ),
    Setting(
        "limits",
        "upload_max_cell_bytes",
        int,
        1_000_000,
        "largest cell of an uploaded table, bytes (checked while reading; a row may hold"
        " 4 MB in all)",
        minimum=100,
    ),
    Setting(
        "limits",
        "upload_fetch_timeout",
        float,
        30.0,
        "longest a URL upload may take to fetch in all, seconds",
        minimum=1,
    ),
    Setting(
        "limits",
        "running_per_owner",
        int,
        0,
        "jobs one owner (or anonymous client address) runs at once on all daemons together;"
        " 0: half the job slots of the live daemons, at least 1",
        minimum=0,
    ),
    Setting(
        "limits",
        "anonymous_quota",
        str,
        "address",
        "how anonymous jobs count against jobs_per_owner: per client address,"
        " all anonymous jobs as one shared pool, or off (not counted)",
        choices=("address", "shared", "off"),
    ),
    Setting(
        "limits",
        "query_max_bytes",
        int,
        100_000,
        "longest QUERY accepted (/sync and /async), bytes",
        minimum=100,
    ),
    Setting(
        "limits",
        "parameter_max_bytes",
        int,
        10_000,
        "longest value of any other parameter, bytes (uploaded tables have upload_max_bytes)",
        minimum=100,
    ),
    Setting(
        "limits",
        "request_max_bytes",
        int,
        50_000_000,
        "largest HTTP request body, bytes",
        minimum=1024,
    ),
    # [http]
    Setting("http", "host", str, "127.0.0.1", "address the HTTP service binds to"),
    Setting("http", "port", int, 8080, "port the HTTP service binds to", minimum=0),
    Setting("http", "base_path", str, "/tap", "URL path of the TAP service"),
    Setting(
        "http",
        "public_url",
        str,
        "",
        "externally visible base URL (behind a proxy); empty: derived from requests",
    ),
    Setting(
        "http",
        "wait_max",
        int,
        8,
        "longest a WAIT request blocks, seconds (keep below clients' 10 s timeouts)",
        minimum=0,
    ),
    Setting(
        "http",
        "pool_size",
        int,
        10,
        "database connections of the HTTP service:"
        " sync_slots for /sync, the rest (at least 2) for job control",
        minimum=2,
    ),
    Setting(
        "http",
        "sync_slots",
        int,
        4,
        "synchronous queries run at once (each holds one connection)",
        minimum=1,
    ),
    Setting(
        "http",
        "sync_slot_wait",
        float,
        5.0,
        "longest a /sync request waits for a free slot before a 503 with Retry-After, seconds",
        minimum=0,
    ),
    Setting(
        "http",
        "owner_header",
        str,
        "",
        "request header naming the authenticated user, set by a trusted reverse proxy"
        " that also removes it from client requests; empty: all jobs anonymous",
    ),
    Setting(
        "http",
        "anonymous_job_list",
        str,
        "own",
        "which anonymous jobs the job list shows an anonymous caller: those from its own"
        " client address, or all anonymous jobs",
        choices=("own", "all"),
    ),
    Setting(
        "http",
        "internal_url",
        str,
        "",
        "URL at which the other hosts of a fleet reach this host's service (for job files"
        " in its jobs directory), e.g. http://10.0.0.11:8080/tap; empty: a single host",
    ),
    Setting(
        "http",
        "internal_timeout",
        float,
        10.0,
        "seconds to wait for another host of the fleet (to connect, and for each read)"
        " when relaying job files it holds",
        minimum=0.1,
    ),
    Setting(
        "http",
        "upload_url_allow",
        list,
        [],
        "URLs under which UPLOAD may fetch (scheme, host, port equal; path by whole segments;"
        " empty: URL uploads off)",
    ),
    Setting(
        "http",
        "cors_origins",
        list,
        [],
        "web origins (e.g. https://notebook.example.org, or *) whose pages may read"
        " this service's answers (CORS); empty: none",
    ),
    # [metrics]
    Setting(
        "metrics",
        "listen",
        str,
        "127.0.0.1:9181",
        "HOST:PORT where tapd serve offers Prometheus metrics, off the public TAP"
        " path; empty: no metrics",
    ),
    Setting("metrics", "path", str, "/metrics", "URL path of the metrics on that address"),
    # [service]: what the web pages tell people about this service
    Setting("service", "title", str, "TAP service", "name of the service, shown on its web pages"),
    Setting(
        "service",
        "description",
        str,
        "",
        "what the service holds, one paragraph shown on its home page",
    ),
    Setting(
        "service",
        "contact",
        str,
        "",
        "who answers questions about the service, e.g. 'Archive team <archive@example.org>'",
    ),
    Setting(
        "service",
        "data_licence",
        str,
        "",
        "the licence of the data, e.g. 'CC BY 4.0' or a URL",
    ),
    Setting(
        "service",
        "examples",
        str,
        "",
        "TOML file of example queries for /examples and the query form;"
        " empty: examples over TAP_SCHEMA only",
    ),
    # [adql]
    Setting(
        "adql",
        "udfs",
        list,
        [],
        "user-defined function signatures accepted in ADQL,"
        " e.g. 'ivo_hasword(a VARCHAR, b VARCHAR) -> INTEGER'",
    ),
    # [log]
    Setting(
        "log",
        "level",
        str,
        "info",
        "least severe level logged",
        choices=("debug", "info", "warning", "error"),
    ),
    Setting(
        "log",
        "format",
        str,
        "auto",
        "console, json, journal, or auto (journal under systemd)",
        choices=("auto", "console", "json", "journal"),
    ),
)

_BY_NAME = {s.name: s for s in SETTINGS}


@dataclass(frozen=True)
class Config:
    """Validated settings; field names are the setting names."""

    values: Mapping[str, Any]
    source: str = "defaults"

    def __getattr__(self, name: str) -> Any:
        try:
            return self.values[name]
        except KeyError:
            raise AttributeError(name) from None

    def replace(self, **changes: Any) -> Config:
        """A copy with some settings changed (validated)."""
        merged = dict(self.values)
        for key, value in changes.items():
            merged[key] = _coerce(_setting(key, "override"), value, "override")
        return dataclasses.replace(self, values=merged)

    @property
    def jobs_path(self) -> Path:
        return Path(self.values["jobs_dir"])

    @property
    def query_conninfo(self) -> str:
        """The connection string of user queries' sessions: ``query_dsn``, or ``dsn``
        logging in as ``query_role``."""
        if self.values["query_dsn"]:
            return str(self.values["query_dsn"])
        return self.primary_query_conninfo

    @property
    def primary_query_conninfo(self) -> str:
        """``dsn`` logging in as ``query_role`` (without the owner's password): user
        queries that need the primary (uploads, when ``query_dsn`` reaches a standby)."""
        return _as_role(str(self.values["dsn"]), str(self.values["query_role"]))


@functools.lru_cache(maxsize=16)
def _as_role(dsn: str, role: str) -> str:
    """``dsn`` logging in as ``role`` (built once per process: a daemon that asks
    before forking spares its children)."""
    import psycopg
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    try:
        parameters = conninfo_to_dict(dsn)
    except psycopg.ProgrammingError as exc:
        raise ConfigError(f"database.dsn is not a connection string: {exc}") from None
    parameters.pop("password", None)  # the owner's; the query role's comes from .pgpass
    parameters["user"] = role
    return make_conninfo("", **parameters)


def _setting(name: str, where: str) -> Setting:
    try:
        return _BY_NAME[name]
    except KeyError:
        raise ConfigError(f"{where}: unknown setting {name!r}") from None


def _coerce(setting: Setting, value: Any, where: str) -> Any:
    key = f"{setting.section}.{setting.name}"
    expected = setting.type
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if expected is list and isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]
    if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
        raise ConfigError(
            f"{where}: {key} must be {expected.__name__}, got {type(value).__name__} {value!r}"
        )
    if setting.choices and value not in setting.choices:
        raise ConfigError(
            f"{where}: {key} must be one of {', '.join(setting.choices)}, got {value!r}"
        )
    if setting.minimum is not None and isinstance(value, int | float) and value < setting.minimum:
        raise ConfigError(f"{where}: {key} must be at least {setting.minimum:g}, got {value!r}")
    return value


def _from_env_text(setting: Setting, text: str, where: str) -> Any:
    try:
        if setting.type is int:
            return int(text)
        if setting.type is float:
            return float(text)
    except ValueError:
        raise ConfigError(f"{where}: must be {setting.type.__name__}, got {text!r}") from None
    return text


def parse_toml(text: str, where: str) -> dict[str, Any]:
    """Settings from a TOML document whose tables are the sections."""
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{where}: not valid TOML: {exc}") from None
    values: dict[str, Any] = {}
    for section, table in document.items():
        if not isinstance(table, dict):
            raise ConfigError(f"{where}: {section!r} must be a [section], e.g. [database]")
        for name, value in table.items():
            setting = _setting(name, where)
            if setting.section != section:
                raise ConfigError(
                    f"{where}: {name!r} belongs in [{setting.section}], not [{section}]"
                )
            values[name] = _coerce(setting, value, where)
    return values


def load_config(path: Path | None = None, environ: Mapping[str, str] | None = None) -> Config:
    """Defaults, then the file (``path`` or /etc/tapd/tapd.toml if present), then TAPD_*."""
    environ = os.environ if environ is None else environ
    values = {s.name: s.default for s in SETTINGS}
    sources = ["defaults"]
    file = path or (Path(environ["TAPD_CONFIG"]) if environ.get("TAPD_CONFIG") else None)
    if file is None and DEFAULT_CONFIG_FILE.exists():
        file = DEFAULT_CONFIG_FILE
    if file is not None:
        try:
            text = file.read_text()
        except OSError as exc:
            raise ConfigError(f"cannot read configuration {file}: {exc.strerror}") from None
        values.update(parse_toml(text, str(file)))
        sources.append(str(file))
    for key, text in environ.items():
        if (
            not key.startswith("TAPD_")
            or key in NON_SETTING_VARIABLES
            or key.startswith("TAPD_TEST")
        ):
            continue
        name = key[5:].lower()
        setting = _setting(name, f"environment variable {key}")
        values[name] = _coerce(setting, _from_env_text(setting, text, key), key)
        sources.append(key)
    return Config(values=values, source=", ".join(sources))


def default_config_text() -> str:
    """A commented TOML file listing every setting with its default (for /etc/tapd)."""
    lines = [
        "# tapd configuration. Every setting is shown with its default, commented out.",
        "# Environment variables TAPD_<NAME> (e.g. TAPD_DSN) override this file.",
        "",
    ]
    section = None
    for s in SETTINGS:
        if s.section != section:
            section = s.section
            lines += ["", f"[{section}]"]
        lines.append(f"# {s.help}")
        lines.append(f"#{s.name} = {_toml_value(s.default)}")
    return "\n".join(lines).lstrip("\n") + "\n"


def _toml_value(value: Any) -> str:
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return repr(value)
