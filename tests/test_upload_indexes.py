"""Which positions of uploaded tables get an index: a table of (columns, rows, uploads) cases."""

from __future__ import annotations

import pytest

from tapd.upload_indexes import INDEX_MIN_ROWS, PositionColumn, indexed_positions

BIG = INDEX_MIN_ROWS
RA_DEC = [
    PositionColumn("id", "integer", "meta.id"),
    PositionColumn("RA", "double precision", None),
    PositionColumn("Dec", "double precision", None),
]
BY_UCD = [
    PositionColumn("alpha", "double precision", "pos.eq.ra"),
    PositionColumn("delta", "double precision", "pos.eq.dec"),
    PositionColumn("ra_err", "real", "stat.error;pos.eq.ra"),
    PositionColumn("raj2000", "double precision", "pos.eq.ra;meta.main"),
    PositionColumn("dej2000", "double precision", "POS.EQ.DEC; META.MAIN"),
]
POINT = [PositionColumn("pos", "spoint", "pos.eq"), PositionColumn("ra", "real", None)]
TEXT_RA = [PositionColumn("ra", "text", None), PositionColumn("dec", "double precision", None)]


@pytest.mark.parametrize(
    ("columns", "rows", "uploads", "expected"),
    [
        (RA_DEC, BIG, 1, []),  # one upload: the catalog's index serves its crossmatch
        (RA_DEC, BIG - 1, 2, []),  # small: a scan per probe is cheap
        (RA_DEC, BIG, 2, [("RA", "Dec")]),  # names, whatever their case
        (BY_UCD, BIG, 3, [("raj2000", "dej2000")]),  # UCDs, meta.main first
        (BY_UCD[:2], BIG, 2, [("alpha", "delta")]),
        (POINT, BIG, 2, [("pos",)]),  # a point column; ra without dec is no pair
        (TEXT_RA, BIG, 2, []),  # not numbers
    ],
)
def test_positions_indexed(
    columns: list[PositionColumn], rows: int, uploads: int, expected: list[tuple[str, ...]]
) -> None:
    assert indexed_positions(columns, rows, uploads) == expected
