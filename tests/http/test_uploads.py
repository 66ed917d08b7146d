"""TAP_UPLOAD: VOTables become per-session temporary tables the query role can read."""

from __future__ import annotations

import datetime as dt
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tapd.uploads import (
    UploadError,
    UploadLimits,
    drop_uploads,
    load_uploads,
    parse_upload_parameter,
)

LIMITS = UploadLimits(max_bytes=1_000_000, max_rows=1000)

FIELDS = """
<FIELD name="id" datatype="long"/>
<FIELD name="Flux" datatype="float" unit="mJy" ucd="phot.flux"/>
<FIELD name="ra" datatype="double" unit="deg"/>
<FIELD name="ok" datatype="boolean"/>
<FIELD name="small" datatype="short"/>
<FIELD name="label" datatype="unicodeChar" arraysize="*"/>
<FIELD name="odd name" datatype="char" arraysize="*"/>
<FIELD name="t" datatype="char" arraysize="*" xtype="timestamp"/>
<FIELD name="pos" datatype="double" arraysize="2" xtype="point" unit="deg"/>
<FIELD name="c" datatype="double" arraysize="3" xtype="circle" unit="deg"/>
<FIELD name="poly" datatype="double" arraysize="*" xtype="polygon" unit="deg"/>
<FIELD name="vec" datatype="int" arraysize="*"/>
"""

ROWS = """
<TR><TD>1</TD><TD>1.5</TD><TD>10.25</TD><TD>T</TD><TD>3</TD><TD>Étoile</TD><TD>a,b</TD>
<TD>2020-01-02T03:04:05</TD><TD>10 20</TD><TD>10 20 1</TD><TD>1 2 3 4 5 1</TD><TD>1 2 3</TD></TR>
<TR><TD>9223372036854775807</TD><TD>NaN</TD><TD/><TD>F</TD><TD/><TD/><TD/><TD/><TD/><TD/><TD/><TD/></TR>
"""


def votable(fields: str = FIELDS, rows: str = ROWS) -> bytes:
    return f"""<?xml version="1.0"?>
<VOTABLE version="1.4" xmlns="http://www.ivoa.net/xml/VOTable/v1.3">
<RESOURCE><TABLE>{fields}<DATA><TABLEDATA>{rows}</TABLEDATA></DATA></TABLE></RESOURCE>
</VOTABLE>""".encode()


@pytest.fixture
def conn(dsn: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(dsn) as connection:
        connection.execute("CREATE ROLE upload_reader NOLOGIN")
        connection.commit()
        yield connection
        connection.rollback()
        connection.execute("DROP OWNED BY upload_reader")
        connection.execute("DROP ROLE upload_reader")
        connection.commit()


def load(conn: psycopg.Connection, tmp_path: Path, data: bytes, name: str = "t1", **limits: int):
    (tmp_path / "part").write_bytes(data)
    used = UploadLimits(**{"max_bytes": LIMITS.max_bytes, "max_rows": LIMITS.max_rows, **limits})
    return load_uploads(
        conn,
        [f"{name},param:part"],
        resolve_part=lambda part: tmp_path / part,
        limits=used,
        query_role="upload_reader",
    )


def test_every_type_round_trips_and_the_query_role_can_read_it(conn, tmp_path: Path) -> None:
    (table,) = load(conn, tmp_path, votable())
    conn.commit()
    assert table.table_name == "TAP_UPLOAD.t1"
    assert table.schema_name == "TAP_UPLOAD"
    conn.execute("SET TRANSACTION READ ONLY")
    conn.execute("SET LOCAL ROLE upload_reader")
    rows = conn.execute(
        'SELECT id, "Flux", ra, ok, small, label, "odd name", t,'
        " degrees(long(pos)), degrees(lat(pos)), degrees(radius(c)), npoints(poly), vec"
        f" FROM pg_temp.{table.sql_table} ORDER BY id"
    ).fetchall()
    first = (1, 1.5, 10.25, True, 3, "Étoile", "a,b", dt.datetime(2020, 1, 2, 3, 4, 5))
    assert rows[0][:8] == first
    assert rows[0][8:11] == pytest.approx((10.0, 20.0, 1.0))
    assert rows[0][11:] == (3, [1, 2, 3])
    assert rows[1] == (9223372036854775807, None, None, False, None, None, None, None,
                       None, None, None, None, None)  # fmt: skip
    conn.rollback()


def test_catalog_entry_describes_the_uploaded_columns(conn, tmp_path: Path) -> None:
    (table,) = load(conn, tmp_path, votable())
    by_name = {c.sql_name: c for c in table.columns}
    assert by_name["Flux"].name == "Flux"
    assert by_name["Flux"].meta.unit == "mJy"
    assert by_name["Flux"].meta.ucd == "phot.flux"
    assert by_name["odd name"].name == '"odd name"'
    assert by_name["pos"].pg_type == "spoint"
    assert (by_name["pos"].meta.datatype, by_name["pos"].meta.arraysize) == ("double", "2")
    assert by_name["pos"].meta.xtype == "point"
    assert by_name["t"].pg_type == "timestamp"


def test_uploads_are_dropped_on_request(conn, tmp_path: Path) -> None:
    tables = load(conn, tmp_path, votable())
    drop_uploads(conn, tables)
    exists = conn.execute("SELECT to_regclass(%s)", (f"pg_temp.{tables[0].sql_table}",))
    assert exists.fetchone() == (None,)


def test_malformed_votable_is_a_clear_error(conn, tmp_path: Path) -> None:
    with pytest.raises(UploadError, match="UPLOAD t1: not a readable VOTable"):
        load(conn, tmp_path, b"<VOTABLE><RESOURCE><TABLE><FIELD name='a' datatype='int'")


def test_too_many_rows_is_refused(conn, tmp_path: Path) -> None:
    with pytest.raises(UploadError, match="UPLOAD t1: the table has more rows than the limit of 1"):
        load(conn, tmp_path, votable(), max_rows=1)


def test_too_large_part_is_refused(conn, tmp_path: Path) -> None:
    with pytest.raises(UploadError, match="larger than the limit of 100 bytes"):
        load(conn, tmp_path, votable(), max_bytes=100)


def test_duplicate_column_names_are_refused(conn, tmp_path: Path) -> None:
    fields = '<FIELD name="a" datatype="int"/><FIELD name="A" datatype="int"/>'
    with pytest.raises(UploadError, match="column name 'A' appears twice"):
        load(conn, tmp_path, votable(fields, "<TR><TD>1</TD><TD>2</TD></TR>"))


def test_missing_part_is_a_clear_error(conn, tmp_path: Path) -> None:
    with pytest.raises(UploadError, match="param:nothing refers to no part"):
        load_uploads(conn, ["t,param:nothing"], resolve_part=lambda p: tmp_path / p,
                     limits=LIMITS, query_role=None)  # fmt: skip


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("1bad,param:x", "'1bad' is not an ADQL regular identifier"),
        ("a.b,param:x", "'a.b' is not an ADQL regular identifier"),
        ("noURI", "must have the form name,URI"),
        ("a,param:x;A,param:y", "'A' is given twice"),
    ],
)
def test_bad_upload_parameters_are_refused(value: str, message: str) -> None:
    with pytest.raises(UploadError, match=message):
        parse_upload_parameter([value])


def test_several_uploads_accumulate() -> None:
    specs = parse_upload_parameter(["a,param:x;b,http://h/b.xml", "c,param:z"])
    assert [(s.table, s.uri) for s in specs] == [
        ("a", "param:x"),
        ("b", "http://h/b.xml"),
        ("c", "param:z"),
    ]


def test_url_uploads_are_refused_unless_allowed(conn) -> None:
    with pytest.raises(UploadError, match="fetches no uploads from URLs"):
        load_uploads(conn, ["t,http://127.0.0.1:9/x.xml"], resolve_part=Path,
                     limits=LIMITS, query_role=None)  # fmt: skip
    with pytest.raises(UploadError, match="'file:///etc/passwd' is not supported"):
        load_uploads(conn, ["t,file:///etc/passwd"], resolve_part=Path,
                     limits=LIMITS, query_role=None)  # fmt: skip


@pytest.fixture
def votable_server() -> Iterator[str]:
    body = votable()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/elsewhere":
                self.send_response(302)
                self.send_header("Location", "http://127.0.0.2:1/evil.xml")
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_allowed_url_upload_is_fetched(conn, votable_server: str) -> None:
    limits = UploadLimits(max_bytes=1_000_000, max_rows=1000, url_allow=(votable_server + "/",))
    (table,) = load_uploads(conn, [f"remote,{votable_server}/t.xml"], resolve_part=Path,
                            limits=limits, query_role=None)  # fmt: skip
    assert conn.execute(f"SELECT count(*) FROM pg_temp.{table.sql_table}").fetchone() == (2,)


def test_redirect_off_the_allow_list_is_refused(conn, votable_server: str) -> None:
    limits = UploadLimits(max_bytes=1_000_000, max_rows=1000, url_allow=(votable_server + "/",))
    with pytest.raises(UploadError, match=r"redirects to 'http://127\.0\.0\.2:1/evil\.xml'"):
        load_uploads(conn, [f"r,{votable_server}/elsewhere"], resolve_part=Path,
                     limits=limits, query_role=None)  # fmt: skip
