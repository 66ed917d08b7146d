"""The other hosts of a fleet: fetching or removing job files that live on another host.

Each host keeps the files of the jobs it ran (result, error document) and the
inline uploads it received in its own ``runner.jobs_dir``; the job row names
that host (``runner_host``, ``upload_host``). Each ``tapd serve`` advertises
``[http] internal_url`` and a random token in the store's ``hosts`` table
(renewed at every start); another host reads both there and asks for
``<internal_url>/fleet/jobs/<id>/<name>``, presenting the token. Transfers
stream, and give up after ``[http] internal_timeout`` seconds of silence.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import re
import secrets
import socket
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from tapd.errors import TapdError
from tapd.store import HostAddress, JobStore
from tapd.store.jobdir import TEMP_PREFIX

#: Path, under the service's base path, of a job's files served to other hosts.
FLEET_PATH = "/fleet/jobs"
#: Request header carrying the serving host's token.
TOKEN_HEADER = "X-Tapd-Fleet-Token"

_SEGMENT = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")


def host_name() -> str:
    """This host's name, as job rows and the ``hosts`` table record it."""
    return socket.gethostname()


def new_token() -> str:
    return secrets.token_urlsafe(24)


def is_job_file_name(name: str) -> bool:
    """A file of a job directory another host may ask for: ``result.<ext>``,
    ``error.xml`` or ``uploads/<part>`` (never a temporary or hidden file)."""
    parts = name.split("/")
    if len(parts) == 2 and parts[0] != "uploads":
        return False
    return 1 <= len(parts) <= 2 and all(_SEGMENT.match(p) for p in parts)


class HostUnreachable(TapdError):
    """A job's files are on another host that cannot be asked for them now."""

    def __init__(self, host: str, what: str, reason: str) -> None:
        super().__init__(f"{what} is on host {host}, which {reason}; try again later")
        self.host = host


def locate(store: JobStore, host: str, what: str) -> HostAddress:
    """Where ``host`` serves its job files (``HostUnreachable`` if it never said)."""
    address = store.host_address(host)
    if address is None:
        raise HostUnreachable(
            host, what, "does not advertise an internal URL ([http] internal_url)"
        )
    return address


@dataclass
class RemoteFile:
    """An answer being received from another host: headers first, then the body."""

    connection: http.client.HTTPConnection
    response: http.client.HTTPResponse
    host: str
    what: str

    @property
    def content_type(self) -> str | None:
        return self.response.getheader("Content-Type")

    @property
    def length(self) -> str | None:
        return self.response.getheader("Content-Length")

    def read(self, size: int = 65536) -> bytes:
        """The next chunk (b"" at the end); ``HostUnreachable`` if the host falls silent."""
        try:
            return self.response.read1(size)
        except (OSError, http.client.HTTPException) as exc:
            raise HostUnreachable(self.host, self.what, f"stopped answering ({exc})") from None

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.response.close()
        with contextlib.suppress(Exception):
            self.connection.close()


def _request(address: HostAddress, method: str, path: str, timeout: float, what: str) -> RemoteFile:
    url = urllib.parse.urlsplit(address.internal_url)
    connection_class = (
        http.client.HTTPSConnection if url.scheme == "https" else http.client.HTTPConnection
    )
    connection = connection_class(url.hostname or "", url.port, timeout=timeout)
    full_path = url.path.rstrip("/") + path
    try:
        connection.request(method, full_path, headers={TOKEN_HEADER: address.token})
        response = connection.getresponse()
    except (OSError, http.client.HTTPException) as exc:
        connection.close()
        reason = "does not answer in time" if isinstance(exc, TimeoutError) else "does not answer"
        raise HostUnreachable(address.name, what, f"{reason} ({exc})") from None
    answer = RemoteFile(connection, response, address.name, what)
    if response.status >= 500 or response.status in (401, 403):
        answer.close()
        raise HostUnreachable(address.name, what, f"answered {response.status} {response.reason}")
    return answer


def job_file_path(job_id: str, name: str) -> str:
    return f"{FLEET_PATH}/{urllib.parse.quote(job_id)}/{urllib.parse.quote(name)}"


def open_remote_file(
    address: HostAddress, job_id: str, name: str, *, timeout: float, what: str
) -> RemoteFile | None:
    """Start receiving file ``name`` of job ``job_id`` from another host; None
    if that host does not have it. ``HostUnreachable`` if it cannot be asked."""
    answer = _request(address, "GET", job_file_path(job_id, name), timeout, what)
    if answer.response.status != 200:
        answer.close()
        return None
    return answer


def copy_remote_file(
    address: HostAddress, job_id: str, name: str, target: Path, *, timeout: float, what: str
) -> bool:
    """Copy a job file from another host to ``target`` (written whole, then renamed
    into place); False if that host does not have it."""
    remote = open_remote_file(address, job_id, name, timeout=timeout, what=what)
    if remote is None:
        return False
    temp = target.parent / f"{TEMP_PREFIX}{target.name}.{os.getpid()}"
    try:
        with open(temp, "wb") as out:
            while chunk := remote.read():
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, target)
    finally:
        remote.close()
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()
    return True


def delete_remote_job_dir(address: HostAddress, job_id: str, *, timeout: float) -> None:
    """Ask another host to remove the directory of a job that no longer exists."""
    what = f"the directory of job {job_id}"
    path = f"{FLEET_PATH}/{urllib.parse.quote(job_id)}"
    _request(address, "DELETE", path, timeout, what).close()
