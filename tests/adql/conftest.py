"""A small published sample catalog shared by the ADQL tests of one module.

``public.stars`` (40 stars on a grid around ra 10..50, dec -20..20, with
point, circle, polygon and box columns and a GiST index on ``pos``) and
``public.sightings`` (rows pointing at stars, with their own positions) are
created once per test module in a fresh database and published.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import psycopg
import pytest

from tapd.catalog import Catalog, ensure_tap_schema, load_catalog, publish_table
from tapd.devcluster import DevCluster

QUERY_ROLE = "tapd_query"
_counter = itertools.count()

SAMPLE_SQL = """
CREATE TABLE public.stars (
    id integer PRIMARY KEY,
    name text NOT NULL,
    ra double precision,
    dec double precision,
    pos spoint,
    mag real,
    flags smallint,
    "Kind" text,
    "size" integer,
    footprint spoly,
    beam scircle,
    field sbox,
    observed timestamp
);
INSERT INTO public.stars
SELECT i,
       'star ' || i,
       10 + (i % 8) * 5 + 0.25,
       -20 + (i / 8) * 10 + 0.5,
       spoint(radians(10 + (i % 8) * 5 + 0.25), radians(-20 + (i / 8) * 10 + 0.5)),
       CASE WHEN i % 5 = 0 THEN NULL ELSE 10 + i / 4.0 END,
       i % 4,
       CASE WHEN i % 2 = 0 THEN 'Even' ELSE 'odd' END,
       i * 3,
       spoly(format('{(%sd,%sd),(%sd,%sd),(%sd,%sd)}',
                    10 + (i % 8) * 5, -20 + (i / 8) * 10,
                    11 + (i % 8) * 5, -20 + (i / 8) * 10,
                    10.5 + (i % 8) * 5, -19 + (i / 8) * 10)),
       scircle(spoint(radians(10 + (i % 8) * 5), radians(-20 + (i / 8) * 10)), radians(0.5)),
       sbox(spoint(radians(10 + (i % 8) * 5), radians(-20 + (i / 8) * 10)),
            spoint(radians(12 + (i % 8) * 5), radians(-19 + (i / 8) * 10))),
       timestamp '2020-01-01 00:00:00' + i * interval '1 day'
FROM generate_series(0, 39) AS i;
CREATE INDEX stars_pos ON public.stars USING gist (pos);
COMMENT ON COLUMN public.stars.name IS 'Name of the star';

CREATE TABLE public.sightings (
    sighting_id integer PRIMARY KEY,
    star_id integer REFERENCES public.stars (id),
    ra double precision,
    dec double precision,
    pos spoint,
    note varchar(20)
);
INSERT INTO public.sightings
SELECT 100 + i, i % 40,
       10 + (i % 8) * 5 + 0.25 + (i % 3) * 0.004,
       -20 + ((i % 40) / 8) * 10 + 0.5,
       spoint(radians(10 + (i % 8) * 5 + 0.25 + (i % 3) * 0.004),
              radians(-20 + ((i % 40) / 8) * 10 + 0.5)),
       CASE WHEN i % 3 = 0 THEN NULL ELSE 'note ' || i END
FROM generate_series(0, 59) AS i;
CREATE INDEX sightings_pos ON public.sightings USING gist (pos);
ANALYZE public.stars;
ANALYZE public.sightings;
"""

STARS_METADATA = {
    "description": "Sample stars",
    "columns": {
        "ra": {"unit": "deg", "ucd": "pos.eq.ra;meta.main", "description": "Right ascension"},
        "dec": {"unit": "deg", "ucd": "pos.eq.dec;meta.main", "description": "Declination"},
        "pos": {"unit": "deg", "ucd": "pos.eq"},
        "mag": {"unit": "mag", "ucd": "phot.mag"},
    },
}


@pytest.fixture(scope="module")
def sample_dsn(pg_cluster: DevCluster) -> Iterator[str]:
    """A database with the sample tables published (shared by one test module)."""
    name = f"adql_sample_{next(_counter)}"
    with psycopg.connect(pg_cluster.admin_dsn(), autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{pg_cluster.dbname}"')
    dsn = pg_cluster.admin_dsn(name)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(SAMPLE_SQL.encode())
        ensure_tap_schema(conn, QUERY_ROLE)
        publish_table(conn, "public.stars", STARS_METADATA, QUERY_ROLE)
        publish_table(conn, "public.sightings", None, QUERY_ROLE)
    yield dsn
    with psycopg.connect(pg_cluster.admin_dsn(), autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="module")
def sample_conn(sample_dsn: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(sample_dsn, autocommit=True) as conn:
        yield conn


@pytest.fixture(scope="module")
def catalog(sample_conn: psycopg.Connection) -> Catalog:
    return load_catalog(sample_conn)
