"""The synthetic star catalog ``demo.stars`` of ``tapd demo``, the tests and the benchmarks.

The sky is not uniform: most stars lie in a band about the galactic equator
(a Gaussian in galactic latitude, sigma 3 degrees), the rest spread evenly
over the sphere, so the plane is about 35 times denser than the galactic
poles, as cone searches on real catalogs see it. Magnitudes follow number
counts that grow tenfold every 2.9 magnitudes down to G = 21; parallaxes and
proper motions shrink with brightness, some parallaxes are missing.

Everything is generated inside PostgreSQL (one ``INSERT ... SELECT``, seeded,
so the same ``rows`` always give the same stars) and indexed the way tapd's
translations need it:

* ``pos`` (pgsphere ``spoint``) with a GiST index, for ``POINT`` columns;
* a GiST index on ``spoint(radians(ra), radians(dec))``, the expression
  ``POINT(ra, dec)`` translates to, so cone searches and crossmatches written
  on ra/dec use an index as well;
* B-trees on ``id`` (primary key) and ``gmag``.

The table is analysed (planner statistics, row count for TAP_SCHEMA) and
published in TAP_SCHEMA.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql

SAMPLE_TABLE = "demo.stars"

#: The statements that build the table: (label, SQL with {rows}); run in order.
#: The table is created and filled in one transaction (no WAL with wal_level=minimal).
CREATE_TABLE = """
CREATE TABLE demo.stars (
    id bigint NOT NULL,
    name text NOT NULL,
    ra double precision NOT NULL,
    dec double precision NOT NULL,
    pos spoint NOT NULL,
    gmag real,
    bpmag real,
    rpmag real,
    parallax real,
    pmra real,
    pmdec real
)"""

#: Galactic (l, b) -> ICRS unit vector: the transpose of the Hipparcos matrix A_G
#: (ESA 1997, vol. 1, §1.5.3). The ``OFFSET 0`` fences keep PostgreSQL from
#: inlining a sub-select and so calling random() again for each use of a value.
FILL_TABLE = """
INSERT INTO demo.stars (id, name, ra, dec, pos, gmag, bpmag, rpmag, parallax, pmra, pmdec)
SELECT id,
       'TDS ' || CASE WHEN id < 10000000 THEN lpad(id::text, 7, '0') ELSE id::text END,
       ra, dec, spoint(radians(ra), radians(dec)),
       g, g + 0.45 * colour, g - 0.55 * colour,
       CASE WHEN u_missing < 0.1 THEN NULL
            ELSE round((power(10, -0.2 * (g - 10)) * (0.4 + u_plx))::numeric, 4) END,
       round((pm_scale * n1)::numeric, 3), round((pm_scale * n2)::numeric, 3)
FROM (
    SELECT id, g, colour, u_missing, u_plx, n1, n2,
           greatest(0.3, power(10, -0.2 * (g - 14))) * 4 AS pm_scale,
           CASE WHEN degrees(atan2(y, x)) < 0 THEN degrees(atan2(y, x)) + 360
                ELSE degrees(atan2(y, x)) END AS ra,
           degrees(asin(greatest(-1, least(1, z)))) AS dec
    FROM (
        SELECT id, g, colour, u_missing, u_plx, n1, n2,
               -0.0548755604162154 * xg + 0.4941094278755837 * yg - 0.8676661490190047 * zg AS x,
               -0.8734370902348850 * xg - 0.4448296299600112 * yg - 0.1980763734312015 * zg AS y,
               -0.4838350155487132 * xg + 0.7469822444972189 * yg + 0.4559837761750669 * zg AS z
        FROM (
            SELECT id, g, colour, u_missing, u_plx, n1, n2,
                   cos(b) * cos(l) AS xg, cos(b) * sin(l) AS yg, sin(b) AS zg
            FROM (
                SELECT i AS id,
                       2 * pi() * random() AS l,
                       CASE WHEN random() < 0.7
                            THEN greatest(-pi() / 2, least(pi() / 2, radians(3)
                                 * sqrt(-2 * ln(1 - random())) * cos(2 * pi() * random())))
                            ELSE asin(2 * random() - 1) END AS b,
                       greatest(3, 21 + ln(1 - random()) / (0.35 * ln(10)))::real AS g,
                       (0.3 + 1.8 * power(random(), 2))::real AS colour,
                       random() AS u_missing,
                       random() AS u_plx,
                       sqrt(-2 * ln(1 - random())) * cos(2 * pi() * random()) AS n1,
                       sqrt(-2 * ln(1 - random())) * cos(2 * pi() * random()) AS n2
                FROM generate_series(1, {rows}) AS i
                OFFSET 0
            ) AS drawn
            OFFSET 0
        ) AS galactic
    ) AS icrs
    OFFSET 0
) AS stars"""

#: Indexes, built after the rows are in (much faster than maintaining them while loading).
INDEXES = (
    "ALTER TABLE demo.stars ADD PRIMARY KEY (id)",
    "CREATE INDEX stars_pos ON demo.stars USING gist (pos)",
    "CREATE INDEX stars_radec ON demo.stars USING gist (spoint(radians(ra), radians(dec)))",
    "CREATE INDEX stars_gmag ON demo.stars (gmag)",
)

#: TAP_SCHEMA metadata of the sample catalog (``tapd.catalog.publish_table``).
SAMPLE_METADATA: dict[str, Any] = {
    "description": (
        "Synthetic stars, dense along the galactic plane and sparse towards its poles"
        " (tapd demo catalog)"
    ),
    "columns": {
        "id": {"description": "Star identifier", "ucd": "meta.id;meta.main", "principal": True},
        "name": {"description": "Star name", "ucd": "meta.id", "principal": True},
        "ra": {
            "description": "Right ascension (ICRS)",
            "unit": "deg",
            "ucd": "pos.eq.ra;meta.main",
            "principal": True,
        },
        "dec": {
            "description": "Declination (ICRS)",
            "unit": "deg",
            "ucd": "pos.eq.dec;meta.main",
            "principal": True,
        },
        "pos": {"description": "Position as a point (ra, dec)", "unit": "deg", "ucd": "pos.eq"},
        "gmag": {
            "description": "G magnitude",
            "unit": "mag",
            "ucd": "phot.mag;em.opt",
            "principal": True,
        },
        "bpmag": {"description": "Blue magnitude", "unit": "mag", "ucd": "phot.mag;em.opt.B"},
        "rpmag": {"description": "Red magnitude", "unit": "mag", "ucd": "phot.mag;em.opt.R"},
        "parallax": {"description": "Parallax", "unit": "mas", "ucd": "pos.parallax"},
        "pmra": {
            "description": "Proper motion in right ascension (times cos dec)",
            "unit": "mas/yr",
            "ucd": "pos.pm;pos.eq.ra",
        },
        "pmdec": {
            "description": "Proper motion in declination",
            "unit": "mas/yr",
            "ucd": "pos.pm;pos.eq.dec",
        },
    },
}


def create_sample_catalog(conn: psycopg.Connection[Any], rows: int, query_role: str) -> None:
    """Create, fill, index, analyse and publish ``demo.stars`` with ``rows`` synthetic stars.

    ``conn`` must be in autocommit mode (ANALYZE runs outside a transaction).
    Deterministic: the same ``rows`` give the same stars.
    """
    from tapd.catalog import publish_table

    with conn.transaction():
        conn.execute("CREATE SCHEMA IF NOT EXISTS demo")
        conn.execute("COMMENT ON SCHEMA demo IS 'The tapd demo catalog'")
        conn.execute("DROP TABLE IF EXISTS demo.stars")
        conn.execute(CREATE_TABLE)
        conn.execute("SELECT setseed(0.42)")
        conn.execute(sql.SQL(FILL_TABLE.format(rows="{}")).format(sql.Literal(int(rows))))
    for statement in INDEXES:
        conn.execute(statement)
    conn.execute("VACUUM (ANALYZE) demo.stars")  # statistics and the visibility map
    publish_table(conn, SAMPLE_TABLE, SAMPLE_METADATA, query_role)
