"""User queries run without PostgreSQL's costly JIT stages.

pgsphere's operators carry constant selectivities, so PostgreSQL estimates a
crossmatch of 1,000 uploaded positions against 20 million stars at millions
of rows and spends about a second inlining and optimising LLVM code for a
query that runs in 0.2 s (issue 15, auto_explain on the benchmark catalog).
The query transaction keeps JIT's cheap part (compiled expressions, which
long aggregates gain from) and turns off inlining and optimisation.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import psycopg

from tapd.catalog import load_catalog, publish_table
from tapd.config import load_config
from tapd.runner import run_sync, tap_request

SETTINGS_VIEW = """CREATE VIEW public.planner_settings AS SELECT
    current_setting('jit') AS jit,
    current_setting('jit_inline_above_cost') AS inline_above,
    current_setting('jit_optimize_above_cost') AS optimize_above"""


def test_a_user_query_runs_without_jit_inlining_and_optimisation(dsn: str, tmp_path: Path) -> None:
    config = load_config(None, environ={})
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(SETTINGS_VIEW)
        publish_table(conn, "public.planner_settings", None, config.query_role)
        request = tap_request(
            {
                "LANG": ["ADQL"],
                "QUERY": ["SELECT * FROM public.planner_settings"],
                "FORMAT": ["csv"],
            },
            config,
        )
        out = io.BytesIO()
    conninfo = psycopg.conninfo.make_conninfo(dsn, user=config.query_role)
    with psycopg.connect(conninfo, autocommit=True) as query_session:  # as /sync's
        run_sync(query_session, request, out, config=config, catalog=load_catalog(query_session))
        (row,) = list(csv.DictReader(io.StringIO(out.getvalue().decode())))
        assert row == {"jit": "on", "inline_above": "-1", "optimize_above": "-1"}
        # the connection's own settings are untouched afterwards
        assert query_session.execute("SHOW jit_optimize_above_cost").fetchone() == ("500000",)
