"""The one PostgreSQL -> VOTable / FITS type mapping."""

from __future__ import annotations

import pytest

from tapd.sqltypes import VOType, fits_tform, votable_type


@pytest.mark.parametrize(
    ("pg_type", "vo", "tform"),
    [
        ("smallint", VOType("short"), "I"),
        ("integer", VOType("int"), "J"),
        ("bigint", VOType("long"), "K"),
        ("real", VOType("float"), "E"),
        ("double precision", VOType("double"), "D"),
        ("numeric(10,2)", VOType("double"), "D"),
        ("boolean", VOType("boolean"), "L"),
        ("text", VOType("char", "*"), "PA"),
        ("character varying(20)", VOType("char", "20*"), "PA"),
        ("character(8)", VOType("char", "8"), "8A"),
        ("character(1)", VOType("char"), "A"),
        ("timestamp without time zone", VOType("char", "*", "timestamp"), "PA"),
        ("timestamp with time zone", VOType("char", "*", "timestamp"), "PA"),
        ("date", VOType("char", "*", "timestamp"), "PA"),
        ("bytea", VOType("unsignedByte", "*"), "PB"),
        ("integer[]", VOType("int", "*"), "PJ"),
        ("double precision[]", VOType("double", "*"), "PD"),
        ("spoint", VOType("double", "2", "point"), "2D"),
        ("scircle", VOType("double", "3", "circle"), "3D"),
        ("spoly", VOType("double", "*", "polygon"), "PD"),
        ("sbox", VOType("double", "*", "polygon"), "PD"),
        ("text[]", VOType("char", "*"), "PA"),
        ("interval", VOType("char", "*"), "PA"),
    ],
)
def test_each_published_type_maps_to_votable_and_fits(pg_type: str, vo: VOType, tform: str) -> None:
    assert votable_type(pg_type) == vo
    assert fits_tform(vo) == tform
