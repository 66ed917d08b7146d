"""The query shapes of issue 15 on the sample catalog ``demo.stars``: ADQL beside hand-written SQL.

Each ``Shape`` is one thing astronomers run on a large catalog, written twice:
as the ADQL a user sends to tapd, and as the SQL a PostgreSQL/pgsphere expert
would write for the same answer. ``bench/catalog_scale.py`` times both on 20
million stars; ``tests/runner/test_catalog_shapes.py`` checks on a small
catalog that they return the same rows and use the same indexes. Upload shapes
name ``TAP_UPLOAD.pts`` in ADQL and ``pg_temp.hand_pts`` in SQL: a table of
``id``, ``ra``, ``dec`` (``upload_positions`` makes one).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

#: (ra, dec) in the galactic plane at l = 30 deg (about 35 times the polar density) and
#: at the north galactic pole.
DENSE = (281.5216, -2.6091)
SPARSE = (192.8595, 27.1283)

#: Crossmatch radius: one arcsecond.
MATCH_RADIUS = 1 / 3600


@dataclass(frozen=True)
class Shape:
    """One query shape. ``sql`` is a SELECT (run as ``COPY (sql) TO STDOUT``)."""

    name: str
    adql: str
    sql: str
    #: rows of the uploaded table of positions the query joins (0: none)
    upload_rows: int = 0
    #: tapd's RESPONSEFORMAT (the hand-written SQL's COPY is CSV, or binary for binary formats)
    response_format: str = "csv"
    #: how the two results are compared in the tests: "rows" (as multisets), "column:N"
    #: (the multiset of column N: an ORDER BY with ties may pick other rows of equal value)
    compare: str = "rows"


def _point(ra: str, dec: str) -> str:
    return f"spoint(radians({ra}), radians({dec}))"


STAR = _point("s.ra", "s.dec")


def cone(label: str, where: tuple[float, float], radius: float) -> Shape:
    ra, dec = where
    return Shape(
        name=f"cone {radius * 60:g}' {label}" if radius < 1 else f"cone {radius:g} deg {label}",
        adql=(
            f"SELECT s.id, s.ra, s.dec, s.gmag, DISTANCE(POINT(s.ra, s.dec), POINT({ra}, {dec}))"
            f" AS dist FROM demo.stars AS s"
            f" WHERE 1 = CONTAINS(POINT(s.ra, s.dec), CIRCLE({ra}, {dec}, {radius!r}))"
        ),
        sql=(
            f"SELECT s.id, s.ra, s.dec, s.gmag, degrees({STAR} <-> {_point(str(ra), str(dec))})"
            f" AS dist FROM demo.stars AS s"
            f" WHERE {STAR} <@ scircle({_point(str(ra), str(dec))}, radians({radius!r}))"
        ),
    )


#: Best match per uploaded source, in ADQL (no DISTINCT ON, no window functions): the
#: candidate pairs, and of them those at the smallest distance of their source.
_BEST_MATCH_ADQL = """WITH m AS (
  SELECT u.id AS uid, s.id AS sid, DISTANCE(POINT(u.ra, u.dec), POINT(s.ra, s.dec)) AS dist
  FROM TAP_UPLOAD.pts AS u JOIN demo.stars AS s ON {condition}
)
SELECT m.uid, m.sid, m.dist FROM m
JOIN (SELECT uid, MIN(dist) AS best FROM m GROUP BY uid) AS b
  ON b.uid = m.uid AND m.dist = b.best"""

_BEST_MATCH_SQL = (
    "SELECT DISTINCT ON (u.id) u.id, s.id,"
    f" degrees({_point('u.ra', 'u.dec')} <-> {STAR}) AS dist"
    " FROM pg_temp.hand_pts AS u JOIN demo.stars AS s"
    f" ON {STAR} <@ scircle({_point('u.ra', 'u.dec')}, radians({MATCH_RADIUS!r}))"
    " ORDER BY u.id, dist"
)


def crossmatch(rows: int, form: str) -> Shape:
    condition = {
        "CONTAINS": (f"1 = CONTAINS(POINT(u.ra, u.dec), CIRCLE(s.ra, s.dec, {MATCH_RADIUS!r}))"),
        "DISTANCE": f"DISTANCE(POINT(u.ra, u.dec), POINT(s.ra, s.dec)) < {MATCH_RADIUS!r}",
    }[form]
    return Shape(
        name=f"crossmatch {rows:,} {form}",
        adql=_BEST_MATCH_ADQL.format(condition=condition),
        sql=_BEST_MATCH_SQL,
        upload_rows=rows,
    )


def shapes(
    *,
    top: int,
    big: int,
    uploads: Sequence[int],
    cone_radii: Sequence[float] = (1 / 60, 10 / 60, 1.0),
) -> list[Shape]:
    """Every shape: ``top`` rows of the ORDER BY gmag query, ``big`` rows of the
    large results, ``uploads`` sizes of the crossmatched tables, cone searches of
    ``cone_radii`` degrees (a smaller catalog needs larger cones)."""
    ra, dec = DENSE
    polygon = [ra - 1, dec - 1, ra + 1, dec - 1, ra + 0.5, dec + 1, ra - 0.5, dec + 1]
    polygon_adql = ", ".join(repr(round(v, 4)) for v in polygon)
    polygon_sql = ",".join(
        f"({round(a, 4)!r}d, {round(b, 4)!r}d)"
        for a, b in zip(polygon[::2], polygon[1::2], strict=True)
    )
    result = [
        cone(label, where, radius)
        for radius in cone_radii
        for label, where in (("dense", DENSE), ("sparse", SPARSE))
    ]
    result += [crossmatch(rows, form) for rows in uploads for form in ("CONTAINS", "DISTANCE")]
    result += [
        Shape(
            name="box 2x1 deg, G < 19",
            adql=(
                "SELECT s.id, s.ra, s.dec, s.gmag FROM demo.stars AS s"
                f" WHERE 1 = CONTAINS(POINT(s.ra, s.dec), BOX({ra}, {dec}, 2, 1))"
                " AND s.gmag < 19"
            ),
            sql=(
                "SELECT s.id, s.ra, s.dec, s.gmag FROM demo.stars AS s"
                f" WHERE {STAR} <@ sbox({_point(repr(ra - 1), repr(dec - 0.5))},"
                f" {_point(repr(ra + 1), repr(dec + 0.5))}) AND s.gmag < 19"
            ),
        ),
        Shape(
            name="polygon 3 deg2, G < 19",
            adql=(
                "SELECT s.id, s.ra, s.dec, s.gmag FROM demo.stars AS s"
                f" WHERE 1 = CONTAINS(POINT(s.ra, s.dec), POLYGON({polygon_adql}))"
                " AND s.gmag < 19"
            ),
            sql=(
                "SELECT s.id, s.ra, s.dec, s.gmag FROM demo.stars AS s"
                f" WHERE {STAR} <@ spoly '{{{polygon_sql}}}' AND s.gmag < 19"
            ),
        ),
        Shape(
            name="aggregate by FLOOR(ra)",
            adql=(
                "SELECT FLOOR(ra) AS bin, COUNT(*) AS n, AVG(gmag) AS mean_gmag"
                " FROM demo.stars GROUP BY FLOOR(ra)"
            ),
            sql=(
                "SELECT floor(ra) AS bin, count(*) AS n, avg(gmag) AS mean_gmag"
                " FROM demo.stars GROUP BY floor(ra)"
            ),
        ),
        Shape(
            name="aggregate whole table",
            adql=(
                "SELECT COUNT(*) AS n, AVG(gmag) AS mean_gmag, MAX(parallax) AS max_parallax"
                " FROM demo.stars"
            ),
            sql=(
                "SELECT count(*) AS n, avg(gmag) AS mean_gmag, max(parallax) AS max_parallax"
                " FROM demo.stars"
            ),
        ),
        Shape(
            name=f"TOP {top:,} ORDER BY gmag",
            adql=f"SELECT TOP {top} id, ra, dec, gmag FROM demo.stars ORDER BY gmag",
            sql=f"SELECT id, ra, dec, gmag FROM demo.stars ORDER BY gmag LIMIT {top}",
            compare="column:3",
        ),
    ]
    for fmt in ("votable", "csv"):
        result.append(
            Shape(
                name=f"{big:,} rows {'BINARY2' if fmt == 'votable' else 'CSV'}",
                adql=f"SELECT id, ra, dec, gmag, parallax FROM demo.stars WHERE id <= {big}",
                sql=f"SELECT id, ra, dec, gmag, parallax FROM demo.stars WHERE id <= {big}",
                response_format=fmt,
            )
        )
    result.append(
        Shape(
            name="TAP_SCHEMA.columns",
            adql="SELECT * FROM TAP_SCHEMA.columns",
            sql="SELECT * FROM tap_schema.columns",
        )
    )
    return result


def upload_positions(conn: Any, rows: int, stars: int, seed: int = 15) -> np.ndarray[Any, Any]:
    """``rows`` positions (id, ra, dec): four in five are catalog stars moved by about 0.3
    arcsec (each has a match within ``MATCH_RADIUS``), the rest random points in the
    galactic band (most have none)."""
    rng = np.random.default_rng(seed)
    matched = rows * 4 // 5
    ids = rng.choice(stars, size=matched, replace=False) + 1
    found = conn.execute(
        "SELECT ra, dec FROM demo.stars WHERE id = ANY(%s) ORDER BY id", (sorted(ids.tolist()),)
    ).fetchall()
    ra = np.array([r[0] for r in found], dtype=float)
    dec = np.array([r[1] for r in found], dtype=float)
    offset = 0.3 / 3600
    ra = ra + rng.normal(0, offset, len(ra)) / np.cos(np.radians(dec))
    dec = dec + rng.normal(0, offset, len(dec))
    others = rows - len(ra)
    ra = np.concatenate((ra, rng.uniform(DENSE[0] - 20, DENSE[0] + 20, others))) % 360
    dec = np.concatenate((dec, rng.uniform(DENSE[1] - 5, DENSE[1] + 5, others)))
    table = np.zeros(rows, dtype=[("id", "i4"), ("ra", "f8"), ("dec", "f8")])
    table["id"] = np.arange(1, rows + 1)
    table["ra"] = ra
    table["dec"] = np.clip(dec, -90, 90)
    return table


def votable_bytes(positions: np.ndarray[Any, Any]) -> bytes:
    """The positions as a VOTable (TABLEDATA, as pyvo sends uploads)."""
    from astropy.table import Table

    table = Table(positions)
    table["ra"].unit = "deg"
    table["dec"].unit = "deg"
    out = io.BytesIO()
    table.write(out, format="votable")
    return out.getvalue()


def csv_bytes(positions: np.ndarray[Any, Any]) -> bytes:
    """The positions as CSV without header (for ``COPY ... FROM STDIN (FORMAT csv)``)."""
    return "".join(f"{i},{ra!r},{dec!r}\n" for i, ra, dec in positions.tolist()).encode()


#: The hand-written side's upload: what a person loading the same table would run.
HAND_UPLOAD = (
    "CREATE TEMP TABLE hand_pts (id integer, ra double precision, dec double precision)",
    "COPY pg_temp.hand_pts FROM STDIN (FORMAT csv)",
    "ANALYZE pg_temp.hand_pts",
)
