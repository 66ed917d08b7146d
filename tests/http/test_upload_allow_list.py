"""URL uploads: the allow-list compares scheme, host, port and whole path segments exactly.

A local server records every path it is asked for: a refused URL must be
refused before any request is made.
"""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tapd.uploads import UploadError, UploadLimits, fetch_url

BODY = b"<VOTABLE/>"


@dataclass
class Server:
    base: str
    port: int
    requested: list[str] = field(default_factory=list)


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    requested: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            requested.append(self.path)
            self.send_response(200)
            self.send_header("Content-Length", str(len(BODY)))
            self.end_headers()
            self.wfile.write(BODY)

        def log_message(self, *args: object) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    port = httpd.server_address[1]
    yield Server(f"http://127.0.0.1:{port}", port, requested)
    httpd.shutdown()
    httpd.server_close()


#: (allow-list entry, URL, allowed?) with {base} = http://127.0.0.1:<port>, {port} = <port>.
TABLE = [
    ("{base}/ok", "{base}/ok", True),
    ("{base}/ok", "{base}/ok/", True),
    ("{base}/ok", "{base}/ok/t.vot", True),
    ("{base}/ok/", "{base}/ok/sub/t.vot", True),
    ("{base}/ok", "{base}/ok/t.vot?x=1", True),
    ("{base}/ok", "HTTP://127.0.0.1:{port}/ok/t.vot", True),
    ("http://LOCALHOST:{port}/ok", "http://localhost:{port}/ok/t.vot", True),
    ("{base}", "{base}/anything/t.vot", True),
    ("{base}/", "{base}/anything", True),
    ("{base}/ok", "{base}/ok.evil/x", False),
    ("{base}/ok", "{base}/okay", False),
    ("{base}/ok", "{base}/ok/../secret", False),
    ("{base}/ok", "{base}/ok/./t.vot", False),
    ("{base}/ok", "{base}/ok/%2e%2e/secret", False),
    ("{base}/ok", "{base}/ok/%2E./secret", False),
    ("{base}/ok", "{base}/ok%2F..%2Fsecret", False),
    ("{base}/ok", "{base}/ok\\..\\secret", False),
    ("{base}/ok", "{base}/secret", False),
    ("{base}/ok", "http://user@127.0.0.1:{port}/ok/t.vot", False),
    ("{base}/ok", "http://user:pw@127.0.0.1:{port}/ok/t.vot", False),
    ("{base}/ok", "http://127.0.0.1:{port}@127.0.0.2/ok/t.vot", False),
    ("{base}/ok", "https://127.0.0.1:{port}/ok/t.vot", False),
    ("{base}/ok", "http://127.0.0.1:1{port}/ok/t.vot", False),
    ("{base}/ok", "http://127.0.0.1/ok/t.vot", False),
    ("http://127.0.0.1", "http://127.0.0.1:abc/ok", False),
    ("http://127.0.0.1", "http://127.0.0.1.attacker.net/x", False),
    ("http://127.0.0.1:{port}", "http://127.0.0.1:{port}0/x", False),
    ("{base}/ok", "{base}/OK/t.vot", False),
]


@pytest.mark.parametrize(("entry", "url", "allowed"), TABLE)
def test_the_allow_list_admits_whole_segments_of_the_same_origin(
    server: Server, tmp_path: Path, entry: str, url: str, allowed: bool
) -> None:
    entry = entry.format(base=server.base, port=server.port)
    url = url.format(base=server.base, port=server.port)
    limits = UploadLimits(max_bytes=1000, max_rows=10, url_allow=(entry,), fetch_timeout=10)
    server.requested.clear()
    if allowed:
        path = fetch_url(url, limits, tmp_path)
        assert path.read_bytes() == BODY
        assert len(server.requested) == 1
    else:
        with pytest.raises(UploadError, match="not allowed"):
            fetch_url(url, limits, tmp_path)
        assert server.requested == []
    assert [p for p in tmp_path.iterdir() if p.stat().st_size == 0] == []


def test_an_unusable_allow_list_entry_is_named(tmp_path: Path) -> None:
    for entry in ("ftp://archive.org/x", "http://u@archive.org/", "https://archive.org/a/../b"):
        limits = UploadLimits(max_bytes=10, max_rows=1, url_allow=(entry,))
        with pytest.raises(UploadError, match=r"http\.upload_url_allow"):
            fetch_url("https://archive.org/a/t.vot", limits, tmp_path)


def test_serve_refuses_to_start_with_an_unusable_entry() -> None:
    from tapd.config import load_config
    from tapd.errors import ConfigError
    from tapd.http.server import check_settings

    config = load_config(environ={"TAPD_UPLOAD_URL_ALLOW": "https://u@archive.org/"})
    with pytest.raises(ConfigError, match=r"http.upload_url_allow: .*user information"):
        check_settings(config)
