"""What astronomers run on a large catalog, through tapd, on a small copy of the benchmark's one.

Every query shape of issue 15 (``bench/catalog_shapes.py``: cone searches,
crossmatches of uploaded positions in the CONTAINS and the DISTANCE form, box
and polygon with a magnitude cut, whole-table aggregates, TOP N ORDER BY,
large results, TAP_SCHEMA) runs through ``run_sync`` (uploads, translation,
the read-only query transaction, the writer) on a 200,000-star
``demo.stars``, and must return the rows of the hand-written SQL, with a plan
that uses the same indexes. ``bench/catalog_scale.py`` times the same pairs
on 20 million stars.
"""

from __future__ import annotations

import csv
import importlib.util
import io
import math
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tapd.catalog import Catalog, load_catalog
from tapd.config import Config, load_config
from tapd.devcluster import DevCluster
from tapd.runner import run_sync, tap_request
from tapd.sample_catalog import create_sample_catalog
from tapd.uploads import UploadLimits, drop_uploads, load_uploads
from tests.conftest import create_database, drop_database

STARS = 200_000
QUERY_ROLE = "tapd_query"


def _load_shapes() -> Any:
    path = Path(__file__).resolve().parents[2] / "bench" / "catalog_shapes.py"
    spec = importlib.util.spec_from_file_location("catalog_shapes", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("catalog_shapes", module)
    spec.loader.exec_module(module)
    return module


catalog_shapes = _load_shapes()
#: Larger cones than the benchmark's: the catalog is 100 times smaller.
SHAPES = catalog_shapes.shapes(
    top=10_000, big=20_000, uploads=(1_000, 5_000), cone_radii=(1, 3, 10)
)


@pytest.fixture(scope="module")
def stars_dsn(pg_cluster: DevCluster) -> Iterator[str]:
    """A database holding the sample catalog at 200,000 stars (built once per module)."""
    name = "catalog_shapes"
    dsn = create_database(pg_cluster, name)
    with psycopg.connect(dsn, autocommit=True) as conn:
        create_sample_catalog(conn, STARS, QUERY_ROLE)
    yield dsn
    drop_database(pg_cluster, name)


@pytest.fixture(scope="module")
def config() -> Config:
    return load_config(None, environ={})


@pytest.fixture
def conn(stars_dsn: str) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(stars_dsn, autocommit=True) as conn:
        yield conn


@pytest.fixture
def query_conn(stars_dsn: str) -> Iterator[psycopg.Connection[Any]]:
    """A session logged in as the query role, as /sync's are."""
    conninfo = psycopg.conninfo.make_conninfo(stars_dsn, user=QUERY_ROLE)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        yield conn


@pytest.fixture(scope="module")
def uploads(stars_dsn: str, tmp_path_factory: pytest.TempPathFactory) -> dict[int, Any]:
    """The uploaded positions of each size: (array, VOTable file)."""
    folder = tmp_path_factory.mktemp("uploads")
    made = {}
    with psycopg.connect(stars_dsn, autocommit=True) as conn:
        for rows in {s.upload_rows for s in SHAPES if s.upload_rows}:
            positions = catalog_shapes.upload_positions(conn, rows, STARS)
            path = folder / f"pts-{rows}.xml"
            path.write_bytes(catalog_shapes.votable_bytes(positions))
            made[rows] = (positions, path)
    return made


def _value(text: str) -> Any:
    if text == "":
        return None
    try:
        return float(text)
    except ValueError:
        return text


def _rows(records: Any) -> list[tuple[Any, ...]]:
    return [tuple(_value(v) for v in record) for record in records]


def tapd_rows(
    conn: psycopg.Connection[Any], config: Config, shape: Any, upload: Path | None
) -> list[tuple[Any, ...]]:
    """The shape's ADQL through run_sync: rows of its CSV or VOTable result."""
    parameters = {
        "LANG": ["ADQL"],
        "QUERY": [shape.adql],
        "FORMAT": [shape.response_format],
        "MAXREC": ["1000000"],
    }
    if upload is not None:
        parameters["UPLOAD"] = ["pts,param:pts"]
    request = tap_request(parameters, config)
    out = io.BytesIO()
    result = run_sync(
        conn,
        request,
        out,
        config=config,
        catalog=load_catalog(conn),
        resolve_part=lambda part: upload,  # type: ignore[arg-type,return-value]
    )
    assert not result.overflow
    if shape.response_format == "csv":
        return _rows(list(csv.reader(io.StringIO(out.getvalue().decode())))[1:])
    from astropy.io.votable import parse_single_table

    table = parse_single_table(io.BytesIO(out.getvalue())).array
    columns = []
    for name in table.dtype.names:
        column = table[name]
        # a float32 prints (in CSV) as its shortest decimal, which float64(value) is not
        single = column.dtype.kind == "f" and column.dtype.itemsize == 4
        columns.append(
            [
                None if masked else float(str(v)) if single else float(v)
                for v, masked in zip(column.data, column.mask, strict=True)
            ]
        )
    return list(zip(*columns, strict=True))


def load_hand_upload(conn: psycopg.Connection[Any], positions: Any) -> None:
    create, copy, analyze = catalog_shapes.HAND_UPLOAD
    conn.execute("DROP TABLE IF EXISTS pg_temp.hand_pts")
    conn.execute(create)
    with conn.cursor().copy(copy) as writer:
        writer.write(catalog_shapes.csv_bytes(positions))
    conn.execute(analyze)


def hand_rows(conn: psycopg.Connection[Any], shape: Any) -> list[tuple[Any, ...]]:
    """The hand-written SQL's rows, read as tapd's CSV is (COPY ... CSV)."""
    out = io.BytesIO()
    with conn.cursor().copy(f"COPY ({shape.sql}) TO STDOUT (FORMAT csv)") as copy:
        for chunk in copy:
            out.write(chunk)
    return _rows(csv.reader(io.StringIO(out.getvalue().decode())))


def _key(row: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple((v is None, "" if v is None else str(v)) for v in row)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
    return bool(a == b)


def assert_same_rows(got: list[tuple[Any, ...]], expected: list[tuple[Any, ...]], how: str) -> None:
    if how.startswith("column:"):
        column = int(how.split(":")[1])
        got = [(row[column],) for row in got]
        expected = [(row[column],) for row in expected]
    assert len(got) == len(expected)
    for mine, theirs in zip(sorted(got, key=_key), sorted(expected, key=_key), strict=True):
        assert all(_same(a, b) for a, b in zip(mine, theirs, strict=True)), (mine, theirs)


@pytest.mark.parametrize("shape", SHAPES, ids=[s.name for s in SHAPES])
def test_tapd_returns_the_rows_of_the_hand_written_sql(
    conn: psycopg.Connection[Any],
    query_conn: psycopg.Connection[Any],
    config: Config,
    uploads: dict[int, Any],
    shape: Any,
) -> None:
    upload = uploads[shape.upload_rows] if shape.upload_rows else None
    got = tapd_rows(query_conn, config, shape, upload[1] if upload else None)
    if upload is not None:
        load_hand_upload(conn, upload[0])
    expected = hand_rows(conn, shape)
    assert expected, "the shape must select something to compare"
    assert_same_rows(got, expected, shape.compare)


def used_indexes(conn: psycopg.Connection[Any], sql: str, params: Any = ()) -> set[str]:
    """Names of the indexes in the plan PostgreSQL makes for ``sql``."""
    plan = conn.execute("EXPLAIN (FORMAT JSON) " + sql, params).fetchone()[0]  # type: ignore[index]
    found = set()
    stack = list(plan)
    while stack:
        node = stack.pop()
        node = node.get("Plan", node)
        if "Index Name" in node:
            found.add(node["Index Name"])
        stack.extend(node.get("Plans", ()))
    return found


@pytest.mark.parametrize("shape", SHAPES, ids=[s.name for s in SHAPES])
def test_tapd_plans_use_the_indexes_of_the_hand_written_sql(
    conn: psycopg.Connection[Any], config: Config, uploads: dict[int, Any], shape: Any
) -> None:
    from tapd.adql import translate_adql

    catalog: Catalog = load_catalog(conn)
    tables: tuple[Any, ...] = ()
    if shape.upload_rows:
        positions, path = uploads[shape.upload_rows]
        limits = UploadLimits(max_bytes=10**9, max_rows=10**7)
        with conn.transaction():
            tables = load_uploads(
                conn,
                ["pts,param:pts"],
                resolve_part=lambda part: path,
                limits=limits,
                query_role=QUERY_ROLE,
            )
        load_hand_upload(conn, positions)
    translation = translate_adql(shape.adql, catalog.with_uploads(tables), limit=1_000_001)
    mine = used_indexes(conn, translation.sql, translation.params)
    theirs = used_indexes(conn, shape.sql)
    if tables:
        drop_uploads(conn, tables)
    assert mine == theirs, translation.sql


def test_the_shapes_find_what_they_are_meant_to(conn: psycopg.Connection[Any]) -> None:
    """The catalog is dense in the galactic plane and sparse at its pole."""
    dense, sparse = (
        conn.execute(
            "SELECT count(*) FROM demo.stars WHERE pos <@ scircle(spoint(radians(%s),"
            " radians(%s)), radians(1))",
            where,
        ).fetchone()[0]  # type: ignore[index]
        for where in (catalog_shapes.DENSE, catalog_shapes.SPARSE)
    )
    assert dense > 10 * sparse > 0
