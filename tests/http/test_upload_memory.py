"""Uploads are read as a stream: what a VOTable declares (nrows, arraysize) allocates
nothing, the limits hold while reading, and the HTTP process stays small.

The peak resident memory (VmHWM) of the ``tapd serve`` process is read from /proc
after hostile uploads and a legitimate 20 MB one.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from astropy.io import votable
from astropy.table import Table

from tapd.uploads import UploadError, UploadLimits, load_uploads
from tapd.votable_stream import StreamLimits, VotableError, read_votable_stream
from tests.http.conftest import RunningService, start_service, stop_service

#: The bound the issue sets for the HTTP process, bytes.
PEAK_LIMIT = 150 * 1024 * 1024

HEAD = '<?xml version="1.0"?><VOTABLE version="1.4" xmlns="http://www.ivoa.net/xml/VOTable/v1.3">'


def hostile(fields: str, nrows: str, rows: str = "<TR><TD>1</TD></TR>") -> bytes:
    return (
        f'{HEAD}<RESOURCE><TABLE nrows="{nrows}">{fields}'
        f"<DATA><TABLEDATA>{rows}</TABLEDATA></DATA></TABLE></RESOURCE></VOTABLE>"
    ).encode()


#: The 245-byte file of the issue: a table claiming two billion rows.
NROWS_2E9 = hostile('<FIELD name="a" datatype="int"/>', "2000000000")
NROWS_1E9_3COLS = hostile(
    '<FIELD name="a" datatype="double"/><FIELD name="b" datatype="double"/>'
    '<FIELD name="c" datatype="double"/>',
    "1000000000",
    "<TR><TD>1</TD><TD>2</TD><TD>3</TD></TR>",
)
HUGE_ARRAYSIZE = hostile(
    '<FIELD name="a" datatype="char" arraysize="10000000"/>', "3", "<TR><TD>x</TD></TR>" * 3
)
HOSTILE = {"nrows=2e9": NROWS_2E9, "nrows=1e9, 3 columns": NROWS_1E9_3COLS,
           "arraysize=1e7": HUGE_ARRAYSIZE}  # fmt: skip


def test_the_issue_file_is_245_bytes() -> None:
    assert len(NROWS_2E9) <= 245


def rows_of(data: bytes, tmp_path: Path, limits: StreamLimits) -> list[list[object]]:
    path = tmp_path / "t.vot"
    path.write_bytes(data)
    _, rows = read_votable_stream(path, limits)
    return list(rows)


@pytest.mark.parametrize("name", list(HOSTILE))
def test_declared_sizes_allocate_nothing(tmp_path: Path, name: str) -> None:
    rows = rows_of(HOSTILE[name], tmp_path, StreamLimits(max_rows=10))
    assert 1 <= len(rows) <= 3


def test_rows_beyond_the_limit_stop_the_reading(tmp_path: Path) -> None:
    data = hostile('<FIELD name="a" datatype="int"/>', "5", "<TR><TD>1</TD></TR>" * 50)
    with pytest.raises(VotableError, match="more rows than the limit of 10"):
        rows_of(data, tmp_path, StreamLimits(max_rows=10))


@pytest.mark.parametrize(
    ("fields", "rows", "message"),
    [
        ('<FIELD name="a" datatype="char" arraysize="*"/>', "<TR><TD>" + "x" * 2000 + "</TD></TR>",
         "a cell is longer than the limit of 1000 bytes"),
        ('<FIELD name="a" datatype="char" arraysize="*"/>' * 3,
         "<TR>" + ("<TD>" + "x" * 900 + "</TD>") * 3 + "</TR>", "a row is larger"),
        ('<FIELD name="a" datatype="int"/>', "<TR><TD>1</TD><TD>2</TD></TR>", "more cells"),
        ('<FIELD name="a" datatype="int"/>', "<TR><TD>x1</TD></TR>", "not a valid int"),
    ],
)  # fmt: skip
def test_cells_and_rows_are_checked_while_reading(tmp_path, fields, rows, message) -> None:
    with pytest.raises(VotableError, match=message):
        rows_of(hostile(fields, "1", rows), tmp_path, StreamLimits(10, 1000, 2000))


@pytest.mark.parametrize(
    "data",
    [
        b'<?xml version="1.0"?><!DOCTYPE v [<!ENTITY e "x">]><VOTABLE><RESOURCE><TABLE/>'
        b"</RESOURCE></VOTABLE>",
        HEAD.encode() + b'<RESOURCE><TABLE><FIELD name="a" datatype="int"/><DATA><BINARY2>'
        b'<STREAM href="file:///etc/passwd"/></BINARY2></DATA></TABLE></RESOURCE></VOTABLE>',
        HEAD.encode() + b'<RESOURCE><TABLE><FIELD name="a" datatype="int"/><DATA><BINARY>'
        b"<STREAM encoding='base64'>AAAAAQ=</STREAM></BINARY></DATA></TABLE></RESOURCE></VOTABLE>",
        b"<VOTABLE><RESOURCE><TABLE><FIELD name='a' datatype='int'/><DATA><TABLEDATA><TR><TD>1",
    ],
)
def test_unusable_documents_are_clear_errors(tmp_path: Path, data: bytes) -> None:
    with pytest.raises(VotableError):
        rows_of(data, tmp_path, StreamLimits(10))


def astropy_votable(table: Table, serialisation: str) -> bytes:
    out = io.BytesIO()
    votable.from_table(table).to_xml(out, tabledata_format=serialisation)
    return out.getvalue()


@pytest.mark.parametrize("serialisation", ["tabledata", "binary", "binary2"])
def test_every_serialisation_reads_the_same_values(
    dsn: str, tmp_path: Path, serialisation: str
) -> None:
    import psycopg

    table = Table(
        {
            "i": np.array([1, -2, 3], dtype=np.int32),
            "l": np.array([2**40, 0, -1], dtype=np.int64),
            "d": np.array([1.5, np.nan, -2.25]),
            "f": np.array([0.5, 1.25, 3.0], dtype=np.float32),
            "b": np.array([True, False, True]),
            "s": np.array(["a", "bé", ""]),
            "v": np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]),
        }
    )
    (tmp_path / "part").write_bytes(astropy_votable(table, serialisation))
    with psycopg.connect(dsn) as conn:
        (loaded,) = load_uploads(
            conn,
            ["t,param:part"],
            resolve_part=lambda part: tmp_path / part,
            limits=UploadLimits(max_bytes=1_000_000, max_rows=100),
            query_role=None,
        )
        rows = conn.execute(
            f"SELECT i, l, d, f, b, s, v FROM pg_temp.{loaded.sql_table} ORDER BY i"
        ).fetchall()
    assert rows == [
        (-2, 0, None, 1.25, False, "bé", [3.0, 4.0]),
        (1, 2**40, 1.5, 0.5, True, "a", [1.0, 2.0]),
        (3, -1, -2.25, 3.0, True, None, [5.0, 6.0]),
    ]


def test_an_upload_error_names_the_table(tmp_path: Path, dsn: str) -> None:
    import psycopg

    (tmp_path / "part").write_bytes(NROWS_1E9_3COLS.replace(b"<TD>2</TD>", b"<TD>two</TD>"))
    limits = UploadLimits(max_bytes=10**6, max_rows=10)
    with psycopg.connect(dsn) as conn, pytest.raises(UploadError, match=r"UPLOAD t: .*row 1"):
        load_uploads(conn, ["t,param:part"], resolve_part=lambda part: tmp_path / part,
                     limits=limits, query_role=None)  # fmt: skip


# -- the HTTP process ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def service(pg_cluster, tmp_path_factory) -> Iterator[RunningService]:
    running = start_service(pg_cluster, tmp_path_factory.mktemp("mem"), "http_upload_memory")
    yield running
    stop_service(running, pg_cluster, "http_upload_memory")


def peak_rss(service: RunningService) -> int:
    """VmHWM of the ``tapd serve`` process, bytes."""
    status = Path(f"/proc/{service.processes[-1].pid}/status").read_text()
    match = re.search(r"VmHWM:\s+(\d+) kB", status)
    assert match, status
    return int(match.group(1)) * 1024


def upload(client: httpx.Client, data: bytes, query: str) -> httpx.Response:
    return client.post(
        "/sync",
        data={"LANG": "ADQL", "QUERY": query, "UPLOAD": "t,param:t"},
        files={"t": ("t.vot", data)},
    )


def test_hostile_uploads_keep_the_http_process_small(service) -> None:
    with httpx.Client(base_url=service.url, timeout=120) as client:
        for name, data in HOSTILE.items():
            response = upload(client, data, "SELECT COUNT(*) AS n FROM TAP_UPLOAD.t")
            assert response.status_code == 200, (name, response.text)
        # Big bodies of text parameters (not uploads) within request_max_bytes.
        body = b"QUERY=" + b"x" * 45_000_000
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        assert client.post("/async", content=body, headers=headers).status_code == 413
        fields = [(f"P{i}", (None, b"y" * 900_000)) for i in range(45)]
        assert client.post("/async", files=fields).status_code == 413
    peak = peak_rss(service)
    print(f"peak RSS after the hostile uploads: {peak / 2**20:.1f} MiB")
    assert peak < PEAK_LIMIT


def legitimate_table(size: int) -> bytes:
    """A TABLEDATA VOTable of about ``size`` bytes: id, ra, dec, a name."""
    row = "<TR><TD>{0}</TD><TD>{1!r}</TD><TD>{2!r}</TD><TD>star {0}</TD></TR>"
    head = (
        f'{HEAD}<RESOURCE><TABLE><FIELD name="id" datatype="long"/>'
        '<FIELD name="ra" datatype="double"/><FIELD name="dec" datatype="double"/>'
        '<FIELD name="name" datatype="char" arraysize="*"/><DATA><TABLEDATA>'
    )
    tail = "</TABLEDATA></DATA></TABLE></RESOURCE></VOTABLE>"
    parts = [head]
    total = len(head) + len(tail)
    i = 0
    while True:
        line = row.format(i, (i * 0.37) % 360, (i * 0.11) % 180 - 90)
        if total + len(line) > size:
            break
        parts.append(line)
        total += len(line)
        i += 1
    parts.append(tail)
    return "".join(parts).encode()


@pytest.mark.slow
def test_a_legitimate_20_mb_upload_keeps_the_http_process_small(service) -> None:
    data = legitimate_table(19_900_000)
    with httpx.Client(base_url=service.url, timeout=600) as client:
        response = upload(client, data, "SELECT COUNT(*) AS n FROM TAP_UPLOAD.t")
    assert response.status_code == 200, response.text
    assert b'value="OK"' in response.content
    peak = peak_rss(service)
    print(f"peak RSS after a {len(data) / 1e6:.1f} MB upload: {peak / 2**20:.1f} MiB")
    assert peak < PEAK_LIMIT
