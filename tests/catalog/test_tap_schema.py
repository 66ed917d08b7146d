"""TAP_SCHEMA: created, self-describing, the one source of what is published."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tapd.catalog import (
    CatalogError,
    ensure_tap_schema,
    load_catalog,
    publish_table,
    read_metadata_file,
    tap_schema_keys,
    unpublish_table,
)

ROLE = "tapd_query"
TAP_SCHEMA_TABLES = ["columns", "key_columns", "keys", "schemas", "tables"]


@pytest.fixture
def conn(dsn: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(dsn, autocommit=True) as connection:
        yield connection


@pytest.fixture
def stars(conn: psycopg.Connection) -> None:
    conn.execute(
        """CREATE TABLE public.stars (id integer PRIMARY KEY, name text, ra double precision,
               "Dec" double precision, "size" integer, pos spoint);
           CREATE INDEX ON public.stars (name);
           COMMENT ON TABLE public.stars IS 'Stars from the comment';
           COMMENT ON COLUMN public.stars.name IS 'Name from the comment';
           CREATE TABLE public.obs (obs_id integer PRIMARY KEY,
                                    star integer REFERENCES public.stars (id));"""
    )


def test_tap_schema_describes_its_own_tables_columns_and_keys(conn: psycopg.Connection) -> None:
    """(TAP-80, TAP-83, TAP-85, TAP-86)"""
    ensure_tap_schema(conn, ROLE)
    tables = [r[0] for r in conn.execute("SELECT table_name FROM tap_schema.tables ORDER BY 1")]
    assert tables == [f"tap_schema.{t}" for t in TAP_SCHEMA_TABLES]
    columns = {
        r[0]
        for r in conn.execute(
            "SELECT column_name FROM tap_schema.columns WHERE table_name = 'tap_schema.columns'"
        )
    }
    assert {
        "table_name",
        "column_name",
        "datatype",
        "arraysize",
        "xtype",
        '"size"',
        "description",
        "utype",
        "unit",
        "ucd",
        "indexed",
        "principal",
        "std",
        "column_index",
    } == columns
    keys = {(k.from_table, k.target_table, k.columns) for k in tap_schema_keys(conn)}
    assert ("tap_schema.columns", "tap_schema.tables", (("table_name", "table_name"),)) in keys
    assert ("tap_schema.key_columns", "tap_schema.keys", (("key_id", "key_id"),)) in keys
    assert ("tap_schema.tables", "tap_schema.schemas", (("schema_name", "schema_name"),)) in keys
    std = conn.execute(
        "SELECT min(std), min(principal) FROM tap_schema.columns WHERE column_name <> 'nrows'"
    ).fetchone()
    assert std == (1, 1)  # nrows is tapd's own extension (std 0)


def test_ensure_tap_schema_is_idempotent(conn: psycopg.Connection) -> None:
    ensure_tap_schema(conn, ROLE)
    ensure_tap_schema(conn, ROLE)
    assert conn.execute("SELECT count(*) FROM tap_schema.tables").fetchone() == (5,)


def test_query_role_is_created_to_log_in_and_can_read_tap_schema(
    conn: psycopg.Connection,
) -> None:
    """User queries log in as the query role (it is their session's own role)."""
    ensure_tap_schema(conn, "fresh_role")
    assert conn.execute(
        "SELECT rolcanlogin, rolsuper FROM pg_roles WHERE rolname = 'fresh_role'"
    ).fetchone() == (True, False)
    conninfo = psycopg.conninfo.make_conninfo(conn.info.dsn, user="fresh_role")
    with psycopg.connect(conninfo) as query_session:
        tables = query_session.execute("SELECT count(*) FROM tap_schema.columns").fetchone()
        assert tables is not None and tables[0] > 0


def test_publish_takes_types_indexes_and_comments_from_postgresql(
    conn: psycopg.Connection, stars: None
) -> None:
    """(TAP-83, TAP-84)"""
    table = publish_table(conn, "public.stars", None, ROLE)
    assert table.table_name == "public.stars"
    assert table.description == "Stars from the comment"
    by_name = {c.name: c for c in table.columns}
    assert list(by_name) == ["id", "name", "ra", '"Dec"', '"size"', "pos"]
    assert by_name["name"].meta.description == "Name from the comment"
    assert by_name["name"].indexed and by_name["id"].indexed and not by_name["ra"].indexed
    assert (
        by_name["pos"].meta.datatype,
        by_name["pos"].meta.arraysize,
        by_name["pos"].meta.xtype,
    ) == ("double", "2", "point")
    assert by_name['"Dec"'].sql_name == "Dec" and by_name['"Dec"'].meta.name == "Dec"


def test_publish_applies_metadata_and_grants_select(conn: psycopg.Connection, stars: None) -> None:
    metadata = {
        "description": "Bright stars",
        "columns": {
            "ra": {"unit": "deg", "ucd": "pos.eq.ra;meta.main", "principal": True, "std": True}
        },
    }
    table = publish_table(conn, "public.stars", metadata, ROLE)
    ra = next(c for c in table.columns if c.name == "ra")
    assert (ra.meta.unit, ra.meta.ucd, ra.principal, ra.std) == (
        "deg",
        "pos.eq.ra;meta.main",
        True,
        True,
    )
    assert table.description == "Bright stars"
    with conn.transaction():
        conn.execute(f"SET LOCAL ROLE {ROLE}")
        conn.execute("SELECT * FROM public.stars")


def test_foreign_keys_between_published_tables_become_keys(
    conn: psycopg.Connection, stars: None
) -> None:
    """(TAP-85)"""
    publish_table(conn, "public.obs", None, ROLE)
    assert not [k for k in tap_schema_keys(conn) if k.from_table == "public.obs"]
    publish_table(conn, "public.stars", None, ROLE)
    keys = [k for k in tap_schema_keys(conn) if k.from_table == "public.obs"]
    assert [(k.target_table, k.columns) for k in keys] == [("public.stars", (("star", "id"),))]
    unpublish_table(conn, "public.stars", ROLE)
    assert not [k for k in tap_schema_keys(conn) if k.from_table == "public.obs"]


def test_unpublish_removes_table_and_revokes_select(conn: psycopg.Connection, stars: None) -> None:
    publish_table(conn, "public.stars", None, ROLE)
    unpublish_table(conn, "public.stars", ROLE)
    assert "public.stars" not in {t.table_name for t in load_catalog(conn).tables}
    assert conn.execute(
        "SELECT count(*) FROM tap_schema.columns WHERE table_name = 'public.stars'"
    ).fetchone() == (0,)
    with pytest.raises(psycopg.errors.InsufficientPrivilege), conn.transaction():
        conn.execute(f"SET LOCAL ROLE {ROLE}")
        conn.execute("SELECT * FROM public.stars")


def test_unpublishing_tap_schema_is_refused(conn: psycopg.Connection) -> None:
    ensure_tap_schema(conn, ROLE)
    with pytest.raises(CatalogError, match=r"cannot be unpublished"):
        unpublish_table(conn, "tap_schema.tables", ROLE)


def test_publishing_a_missing_table_says_so(conn: psycopg.Connection) -> None:
    with pytest.raises(CatalogError, match=r"there is no table or view public\.nothing"):
        publish_table(conn, "public.nothing", None, ROLE)


def test_metadata_for_an_unknown_column_is_refused(conn: psycopg.Connection, stars: None) -> None:
    with pytest.raises(CatalogError, match=r"names column.* typo"):
        publish_table(conn, "public.stars", {"columns": {"typo": {"unit": "deg"}}}, ROLE)


def test_metadata_file_is_read_from_toml(tmp_path: Path) -> None:
    path = tmp_path / "stars.toml"
    path.write_text('description = "Stars"\n[columns.ra]\nunit = "deg"\nprincipal = true\n')
    metadata = read_metadata_file(path)
    assert metadata.description == "Stars"
    assert metadata.columns["ra"].unit == "deg" and metadata.columns["ra"].principal is True


def test_metadata_file_with_an_unknown_key_names_it(tmp_path: Path) -> None:
    path = tmp_path / "stars.toml"
    path.write_text('[columns.ra]\nunits = "deg"\n')
    with pytest.raises(CatalogError, match="unknown key 'units'"):
        read_metadata_file(path)


def test_loading_without_tap_schema_says_how_to_create_it(conn: psycopg.Connection) -> None:
    with pytest.raises(CatalogError, match="no TAP_SCHEMA: create it with tapd initdb"):
        load_catalog(conn)


def test_columns_size_is_the_integer_part_of_a_one_dimensional_arraysize(
    conn: psycopg.Connection,
) -> None:
    """TAP_SCHEMA.columns."size": 256 for varchar(256) (arraysize 256*), 3 for
    char(3), NULL for scalars and unbounded text (TAP-83, TAP-84)."""
    ensure_tap_schema(conn, ROLE)
    conn.execute(
        "CREATE TABLE public.sized (code varchar(256), flag char(3), note text, n integer,"
        " pos spoint)"
    )
    publish_table(conn, "public.sized", None, ROLE)
    rows = conn.execute(
        """SELECT column_name, datatype, arraysize, "size" FROM tap_schema.columns
           WHERE table_name = 'public.sized' ORDER BY column_index"""
    ).fetchall()
    assert rows == [
        ("code", "char", "256*", 256),
        ("flag", "char", "3", 3),
        ("note", "char", "*", None),
        ("n", "int", None, None),
        ("pos", "double", "2", 2),
    ]
