"""journald's native protocol: each log event one datagram of queryable fields.

Under systemd (JOURNAL_STREAM set) events go to /run/systemd/journal/socket
(or $TAPD_JOURNAL_SOCKET, which tests point at a socket of their own) so that
``journalctl -u tapd JOB_ID=...`` finds them. Every event key becomes a field
(``job_id`` -> ``JOB_ID``); MESSAGE is a readable line, PRIORITY the syslog
level, SYSLOG_IDENTIFIER ``tapd``, TAPD_EVENT the event name. A value with a
newline uses the protocol's length-prefixed form.
"""

from __future__ import annotations

import os
import re
import socket
import struct
import sys
from collections.abc import Mapping
from typing import Any

DEFAULT_SOCKET = "/run/systemd/journal/socket"

#: structlog level -> syslog priority.
PRIORITIES = {
    "debug": 7,
    "info": 6,
    "warning": 4,
    "warn": 4,
    "error": 3,
    "exception": 3,
    "critical": 2,
}

#: Largest value sent (journald accepts big datagrams, but a runaway message should not).
MAX_VALUE_BYTES = 64 * 1024

_NOT_FIELD_CHARS = re.compile(r"[^A-Z0-9_]")
_DROPPED_KEYS = frozenset({"timestamp", "level", "event"})


def field_name(key: str) -> str:
    """A journal field name for an event key: upper case, [A-Z0-9_], no leading '_'."""
    name = _NOT_FIELD_CHARS.sub("_", key.upper()).lstrip("_")
    if not name or name[0].isdigit():
        name = "F_" + name
    return name[:64]


def _field(name: str, value: str) -> bytes:
    data = value.encode("utf-8", "replace")[:MAX_VALUE_BYTES]
    if b"\n" in data:
        return name.encode() + b"\n" + struct.pack("<Q", len(data)) + data + b"\n"
    return name.encode() + b"=" + data + b"\n"


def _text(value: Any) -> str:
    return value if isinstance(value, str) else str(value)


def message_line(event: str, fields: Mapping[str, Any]) -> str:
    """The MESSAGE: the event name followed by key=value pairs."""
    parts = [event] + [f"{k}={_text(v)}" for k, v in fields.items() if k != "exception"]
    line = " ".join(parts)
    if "exception" in fields:
        line += "\n" + _text(fields["exception"])
    return line


def encode_event(event_dict: Mapping[str, Any], identifier: str = "tapd") -> bytes:
    """One native-protocol datagram for a structlog event dict."""
    event = _text(event_dict.get("event", ""))
    level = _text(event_dict.get("level", "info")).lower()
    fields = {k: v for k, v in event_dict.items() if k not in _DROPPED_KEYS}
    out = [
        _field("MESSAGE", message_line(event, fields)),
        _field("PRIORITY", str(PRIORITIES.get(level, 6))),
        _field("SYSLOG_IDENTIFIER", identifier),
        _field("SYSLOG_PID", str(os.getpid())),
        _field("TAPD_EVENT", event),
    ]
    for key, value in fields.items():
        if value is None:
            continue
        out.append(_field(field_name(key), _text(value)))
    return b"".join(out)


def journal_renderer(logger: Any, method_name: str, event_dict: dict[str, Any]) -> bytes:
    """structlog's last processor under systemd: the datagram to send."""
    event_dict.setdefault("level", method_name)
    return encode_event(event_dict)


class JournalLogger:
    """Sends rendered events to journald; falls back to stderr if that fails."""

    def __init__(self, path: str | None = None) -> None:
        self.path = path or os.environ.get("TAPD_JOURNAL_SOCKET") or DEFAULT_SOCKET
        self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)

    def msg(self, message: bytes) -> None:
        try:
            self._socket.sendto(message, self.path)
        except OSError:
            sys.stderr.write(_fallback_line(message) + "\n")
            sys.stderr.flush()

    log = debug = info = warn = warning = error = critical = exception = fatal = msg


def _fallback_line(datagram: bytes) -> str:
    for line in datagram.split(b"\n"):
        if line.startswith(b"MESSAGE="):
            return line[len(b"MESSAGE=") :].decode("utf-8", "replace")
    return datagram[:200].decode("utf-8", "replace")


class JournalLoggerFactory:
    """One journal socket per process (shared by every logger)."""

    def __init__(self, path: str | None = None) -> None:
        self._logger = JournalLogger(path)

    def __call__(self, *args: Any) -> JournalLogger:
        return self._logger


def parse_datagram(datagram: bytes) -> dict[str, str]:
    """The fields of a native-protocol datagram (for tests and debugging)."""
    fields: dict[str, str] = {}
    rest = datagram
    while rest:
        newline = rest.index(b"\n")
        line = rest[:newline]
        if b"=" in line:
            name, _, value = line.partition(b"=")
            fields[name.decode()] = value.decode()
            rest = rest[newline + 1 :]
        else:
            (size,) = struct.unpack("<Q", rest[newline + 1 : newline + 9])
            value = rest[newline + 9 : newline + 9 + size]
            fields[line.decode()] = value.decode()
            rest = rest[newline + 9 + size + 1 :]
    return fields
