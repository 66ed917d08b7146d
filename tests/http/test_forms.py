"""Reading request parameters: urlencoded, multipart (python-multipart 0.0.5 and 0.0.2x)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tapd.http.forms import Limits, RequestForm, read_form, referenced_parts
from tapd.http.problems import BadRequest, PayloadTooLarge, UnsupportedMediaType

BOUNDARY = "XyZzY0123"
LIMITS = Limits(request_max_bytes=100_000, upload_max_bytes=10_000)


def multipart(*parts: tuple[str, str | None, bytes], boundary: str = BOUNDARY) -> bytes:
    lines = b""
    for name, filename, data in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        lines += f"--{boundary}\r\nContent-Disposition: {disposition}\r\n".encode()
        if filename:
            lines += b"Content-Type: application/x-votable+xml\r\n"
        lines += b"\r\n" + data + b"\r\n"
    return lines + f"--{boundary}--\r\n".encode()


async def _chunks(body: bytes, size: int) -> AsyncIterator[bytes]:
    for start in range(0, len(body), size):
        yield body[start : start + size]


def read(
    body: bytes,
    content_type: str | None,
    spool: Path,
    query: bytes = b"",
    limits: Limits = LIMITS,
    chunk: int = 7,
    length: str | None = None,
) -> RequestForm:
    return asyncio.run(read_form(content_type, length, _chunks(body, chunk), query, limits, spool))


def test_urlencoded_and_query_string_parameters_keep_order_and_names(tmp_path: Path) -> None:
    body = b"lang=ADQL&QUERY=SELECT+1%2B2&empty="
    form = read(body, "application/x-www-form-urlencoded", tmp_path, query=b"RUNID=x")
    assert form.fields == [("RUNID", "x"), ("lang", "ADQL"), ("QUERY", "SELECT 1+2"), ("empty", "")]
    assert form.last("Lang") == "ADQL"
    assert form.values("query") == ["SELECT 1+2"]


def test_multipart_text_fields_and_file_parts_are_separated(tmp_path: Path) -> None:
    votable = b"<VOTABLE>" + b"x" * 5000 + b"</VOTABLE>"
    body = multipart(
        ("REQUEST", None, b"doQuery"),
        ("UPLOAD", None, b"t1,param:t1"),
        ("t1", "t1.xml", votable),
        ("QUERY", None, "SELECT 'é'".encode()),
    )
    form = read(body, f"multipart/form-data; boundary={BOUNDARY}", tmp_path)
    assert form.fields == [
        ("REQUEST", "doQuery"),
        ("UPLOAD", "t1,param:t1"),
        ("QUERY", "SELECT 'é'"),
    ]
    part = form.parts["t1"]
    assert part.filename == "t1.xml"
    assert part.path.read_bytes() == votable
    assert part.size == len(votable)
    form.discard_files()
    assert not part.path.exists()


def test_part_referenced_by_upload_without_filename_becomes_a_file(tmp_path: Path) -> None:
    body = multipart(("UPLOAD", None, b"mine,param:data"), ("data", None, b"\xff\xfe binary"))
    form = read(body, f'multipart/form-data; boundary="{BOUNDARY}"', tmp_path)
    assert form.parts["data"].path.read_bytes() == b"\xff\xfe binary"
    assert form.fields == [("UPLOAD", "mine,param:data")]


def test_oversize_upload_is_refused_and_leaves_no_file(tmp_path: Path) -> None:
    body = multipart(("t", "t.xml", b"y" * 20_000))
    with pytest.raises(PayloadTooLarge, match="'t' is larger than the upload limit of 10000 bytes"):
        read(body, f"multipart/form-data; boundary={BOUNDARY}", tmp_path, chunk=4096)
    assert list(tmp_path.iterdir()) == []


def test_oversize_body_is_refused_by_declared_length_before_reading(tmp_path: Path) -> None:
    with pytest.raises(PayloadTooLarge, match="100001 bytes exceeds the limit of 100000"):
        read(b"", "application/x-www-form-urlencoded", tmp_path, length="100001")


def test_oversize_body_is_refused_while_streaming(tmp_path: Path) -> None:
    body = multipart(*[(f"f{i}", f"f{i}", b"z" * 9_000) for i in range(15)])
    with pytest.raises(PayloadTooLarge, match="exceeds the limit of 100000 bytes"):
        read(body, f"multipart/form-data; boundary={BOUNDARY}", tmp_path, chunk=8192)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'--XyZzY0123\r\nContent-Disposition: form-data; name="a"\r\n\r\nvalue', "ended before"),
        (b"this is not multipart at all", "malformed multipart"),
        (b"", "ended before"),
    ],
)
def test_malformed_multipart_is_a_bad_request(tmp_path: Path, body: bytes, message: str) -> None:
    with pytest.raises(BadRequest, match=message):
        read(body, f"multipart/form-data; boundary={BOUNDARY}", tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_multipart_without_boundary_is_a_bad_request(tmp_path: Path) -> None:
    with pytest.raises(BadRequest, match="no boundary"):
        read(b"x", "multipart/form-data", tmp_path)


def test_non_utf8_text_field_is_a_bad_request(tmp_path: Path) -> None:
    body = multipart(("QUERY", None, b"SELECT \xff"))
    with pytest.raises(BadRequest, match="'QUERY' is not UTF-8"):
        read(body, f"multipart/form-data; boundary={BOUNDARY}", tmp_path)


def test_bad_percent_encoding_is_a_bad_request(tmp_path: Path) -> None:
    with pytest.raises(BadRequest, match="not valid UTF-8"):
        read(b"QUERY=%FF", "application/x-www-form-urlencoded", tmp_path)


def test_unknown_body_type_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UnsupportedMediaType, match="application/json"):
        read(b'{"QUERY": 1}', "application/json", tmp_path)


def test_empty_body_without_type_is_fine(tmp_path: Path) -> None:
    assert read(b"", None, tmp_path, query=b"WAIT=3").fields == [("WAIT", "3")]


def test_part_name_that_is_a_path_is_refused(tmp_path: Path) -> None:
    body = multipart(("../../etc/x", "x.xml", b"<VOTABLE/>"))
    with pytest.raises(BadRequest, match=r"part name '\.\./\.\./etc/x' is not usable"):
        read(body, f"multipart/form-data; boundary={BOUNDARY}", tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_referenced_parts_reads_every_upload_item() -> None:
    fields = [("upload", "a,param:p1;b,http://x/y"), ("UPLOAD", "c, param:p2"), ("X", "d,param:no")]
    assert referenced_parts(fields) == {"p1", "p2"}
