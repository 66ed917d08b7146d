"""Time to parse, check and translate ADQL: the IVOA conformance cases, one by one.

    .venv/bin/python bench/adql_translate.py [--repeat 30] [--cases PATH]

For every valid case of ``../shared/reference/adql-cases/ivoa-lyonetia.json``
a catalog holding exactly the tables and columns the query names is made up
first (columns typed "unknown", so any use type-checks), then
``translate_adql`` (parse + check + translate) is timed. Cases whose names
cannot be published that way (e.g. columns of subquery aliases that do not
exist) are timed with ``parse_adql`` only and reported separately. Each case
runs ``--repeat`` times; its median CPU time (``time.process_time``: other
load on a shared machine does not count) is one sample; the report gives the
median and 95th percentile over cases, and the same figures for a floor
measured in the same run: one regular-expression tokenization pass over the
same text (no parser can be faster), as a ratio.

Targets (issue 3): median < 1 ms, p95 < 5 ms.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

from tapd.adql import AdqlError, AdqlNameError, parse_adql, translate_adql, warm_up
from tapd.adql import tree as t
from tapd.catalog import Catalog, CatalogColumn, CatalogTable
from tapd.columns import ColumnMeta

REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference"
DEFAULT_CASES = REFERENCE / "adql-cases" / "ivoa-lyonetia.json"
TOKEN = re.compile(
    r"\s+|--[^\n]*|'(?:[^']|'')*'|\"(?:[^\"]|\"\")+\"|[A-Za-z_][A-Za-z0-9_]*|[0-9.]+|."
)
MISSING_COLUMN = re.compile(r"there is no column ([^\s;.]+)|(\S+) has no column ([^\s;.]+)")


def _table(parts: tuple[str, ...], columns: list[str]) -> CatalogTable:
    name = ".".join(parts)
    meta = [CatalogColumn(c, c, "unknown", ColumnMeta(c, "char", "*")) for c in columns]
    schema = parts[0] if len(parts) > 1 else "public"
    qualified = name if len(parts) > 1 else f"public.{name}"
    return CatalogTable(schema, qualified, schema, parts[-1], tuple(meta))


def catalog_for(text: str, udfs: list[str]) -> Catalog | None:
    """A catalog publishing what ``text`` names, found by trial; None if that does not converge."""
    query = parse_adql(text, udfs)
    tables: dict[tuple[str, ...], list[str]] = {}
    for node in t.walk(query):
        if isinstance(node, t.TableRef):
            tables.setdefault(tuple(p.text for p in node.parts), ["bench_dummy"])
    ctes = {c.name.text.lower() for c in query.with_}
    tables = {k: v for k, v in tables.items() if not (len(k) == 1 and k[0].lower() in ctes)}
    for _ in range(60):
        catalog = Catalog(tuple(_table(parts, cols) for parts, cols in tables.items()))
        try:
            translate_adql(text, catalog, udfs=udfs)
            return catalog
        except AdqlNameError as exc:
            using = re.search(r"has no column named (\S+) for USING", exc.detail)
            if using:
                for columns in tables.values():
                    if using[1] not in columns:
                        columns.append(using[1].strip('"'))
                continue
            missing = MISSING_COLUMN.search(exc.detail)
            if not missing or not tables:
                return None
            column = (missing[1] or missing[3]).strip('"')
            owner = missing[2]
            owned = [k for k in tables if owner and ".".join(k).lower().endswith(owner.lower())]
            target = owned[0] if owned else next(iter(tables))
            if column in tables[target]:
                return None
            tables[target].append(column)
        except AdqlError:
            return None
    return None


def median_seconds(function: Callable[[], object], repeat: int) -> float:
    """Median CPU time of ``function`` (CPU, not wall-clock: the benchmark machine is shared)."""
    samples = []
    for _ in range(repeat):
        started = time.process_time()
        function()
        samples.append(time.process_time() - started)
    return statistics.median(samples)


def summary(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--cases", type=Path, default=DEFAULT_CASES)
    args = parser.parse_args()
    if not args.cases.exists():
        print(f"conformance cases not found at {args.cases}", file=sys.stderr)
        return 1
    cases = [c for c in json.loads(args.cases.read_text()) if c["expected_valid"]]
    warm_up()
    full, parse_only, floor = [], [], []
    for case in cases:
        text, udfs = case["query"], case["udfs"]
        catalog = catalog_for(text, udfs)
        floor.append(median_seconds(partial(TOKEN.findall, text), args.repeat))
        if catalog is not None:
            work = partial(translate_adql, text, catalog, udfs=udfs)
            full.append(median_seconds(work, args.repeat))
        else:
            parse_only.append(median_seconds(partial(parse_adql, text, udfs), args.repeat))
    print(f"command: .venv/bin/python bench/adql_translate.py --repeat {args.repeat}")
    print(
        f"valid conformance cases: {len(cases)}; CPU time per case (median of {args.repeat} runs)"
    )
    print(f"{'':38s} {'':4s}        {'median':>9s}  {'p95':>9s}")
    groups = (
        ("parse+check+translate", full),
        ("parse only (names not publishable)", parse_only),
        ("all valid cases", full + parse_only),
        ("floor: regex tokenization", floor),
    )
    for label, samples in groups:
        if samples:
            median, p95 = summary(samples)
            print(
                f"{label:38s} {len(samples):4d} cases  {median * 1e3:6.3f} ms  {p95 * 1e3:6.3f} ms"
            )
    median, p95 = summary(full + parse_only)
    floor_median, floor_p95 = summary(floor)
    print(f"ratio to the floor: median x{median / floor_median:.0f}, p95 x{p95 / floor_p95:.0f}")
    verdict = "met" if median < 1e-3 and p95 < 5e-3 else "NOT met"
    print(f"targets (median < 1 ms, p95 < 5 ms): {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
