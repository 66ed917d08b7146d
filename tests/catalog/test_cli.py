"""``tapd publish`` and ``tapd unpublish``."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from tapd.catalog import load_catalog
from tapd.cli import main


@pytest.fixture
def table(dsn: str) -> str:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE public.galaxies (id integer PRIMARY KEY, ra double precision, z real)"
        )
    return dsn


def test_publish_with_a_metadata_file_then_unpublish(
    table: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    metadata = tmp_path / "galaxies.toml"
    metadata.write_text(
        'description = "Galaxies"\n[columns.z]\nucd = "src.redshift"\nprincipal = true\n'
    )
    assert main(["--dsn", table, "publish", "public.galaxies", "--metadata", str(metadata)]) == 0
    assert (
        capsys.readouterr().out
        == "published public.galaxies (3 columns, about 0 rows), readable by tapd_query\n"
    )
    with psycopg.connect(table) as conn:
        published = {t.table_name: t for t in load_catalog(conn).tables}
    z = next(c for c in published["public.galaxies"].columns if c.name == "z")
    assert (z.meta.ucd, z.principal, published["public.galaxies"].description) == (
        "src.redshift",
        True,
        "Galaxies",
    )

    assert main(["--dsn", table, "unpublish", "public.galaxies"]) == 0
    with psycopg.connect(table) as conn:
        assert "public.galaxies" not in {t.table_name for t in load_catalog(conn).tables}


def test_publish_of_a_missing_table_is_one_line(
    table: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--dsn", table, "publish", "public.nothing"]) == 1
    assert (
        capsys.readouterr().err
        == "tapd: there is no table or view public.nothing in the database\n"
    )


def test_unpublish_of_an_unpublished_table_says_so(
    table: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--dsn", table, "unpublish", "public.galaxies"]) == 1
    assert "public.galaxies is not published" in capsys.readouterr().err
