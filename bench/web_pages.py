"""What the web pages cost beside the standard answers, in one run.

    .venv/bin/python bench/web_pages.py [--runs 50] [--rows 100000]

Starts the same throwaway service as ``bench/http_latency.py`` (PostgreSQL with
the demo catalog, ``tapd run``, ``tapd serve``) and measures, median of
``--runs`` after a warm-up over one keep-alive connection:

* the query form page (``GET /web/query``: a template, the examples list);
* a synchronous query shown as an HTML page (``POST /web/query`` with
  ``action=run``: the ADQL checked, then run through ``run_sync`` as JSON and
  rendered as a table of its first rows), beside the same query as a VOTable
  from ``POST /sync`` (the baseline: the same work without the page).

The query is the demo's cone search (a few rows, the GiST index), and a
100-row one so the table is as large as the page shows.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

from http_latency import Client, median_ms, running_service

CONE = (
    "SELECT name, ra, dec, gmag, DISTANCE(pos, POINT('ICRS', 10, 20)) AS dist FROM demo.stars"
    " WHERE 1 = CONTAINS(pos, CIRCLE('ICRS', 10, 20, 1)) ORDER BY dist"
)
HUNDRED = "SELECT TOP 100 id, name, ra, dec, gmag, bpmag, rpmag, parallax FROM demo.stars"


def measure(url: str, runs: int) -> dict[str, float]:
    """Medians in ms; the page and its VOTable baseline alternate request by request, so
    a busy machine slows both alike."""
    client = Client(url)

    def get(path: str) -> None:
        status, _, _ = client.request("GET", path)
        assert status == 200, (path, status)

    def post(path: str, form: dict[str, str]) -> None:
        status, _, body = client.request("POST", path, form)
        assert status == 200, (path, status, body[:300])

    def timed(function: Callable[[], None]) -> float:
        started = time.perf_counter()
        function()
        return (time.perf_counter() - started) * 1000

    results = {"form": median_ms(lambda: get("/web/query"), runs)}
    for name, query in (("cone", CONE), ("hundred", HUNDRED)):
        page = {"QUERY": query, "FORMAT": "votable", "action": "run"}
        sync = {"LANG": "ADQL", "QUERY": query}
        pages, votables = [], []
        for n in range(runs + 5):  # the first 5 warm up
            page_ms = timed(lambda f=page: post("/web/query", f))  # type: ignore[misc]
            votable_ms = timed(lambda f=sync: post("/sync", f))  # type: ignore[misc]
            if n >= 5:
                pages.append(page_ms)
                votables.append(votable_ms)
        results[f"{name}_page"] = statistics.median(pages)
        results[f"{name}_votable"] = statistics.median(votables)
    client.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--rows", type=int, default=100_000)
    args = parser.parse_args()
    with running_service(args.rows) as (url, _):
        r = measure(url, args.runs)
    print(f"tapd web pages, median of {args.runs} runs ({args.rows:,}-row demo catalog)")
    print(f"  GET /web/query (the form)                {r['form']:8.2f} ms")
    for name, label in (("cone", "cone search (6 rows)"), ("hundred", "TOP 100, 8 columns")):
        page, votable = r[f"{name}_page"], r[f"{name}_votable"]
        print(f"  {label:<22} as HTML page      {page:8.2f} ms   {page / votable:.1f}x the VOTable")
        print(f"  {'':<22} as VOTable (/sync)  {votable:8.2f} ms")


if __name__ == "__main__":
    main()
