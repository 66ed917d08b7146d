"""Resolve an ADQL tree against the catalog: names, types, output columns.

ADQL's case rules: a regular identifier matches a published name whatever its
case; a "delimited" identifier matches only the exact name. Only published
tables (and the job's uploads, and the query's own WITH tables and
subqueries) can be named; only ADQL functions and declared UDFs can be
called (the parser checked that). The checker does not change the tree: it
returns ``Findings`` — for each column reference the SQL it stands for, for
each expression its ``ValueType``, for each SELECT its output columns — and
the translator emits SQL from tree plus findings.
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from tapd.adql import tree as t
from tapd.adql.errors import AdqlError, AdqlNameError, AdqlTypeError, AdqlUnsupported
from tapd.adql.functions import FunctionSpec, function_table
from tapd.adql.lexicon import split_name
from tapd.adql.types import (
    ADQL_TYPES,
    NULL_TYPE,
    NUMERIC_TYPES,
    ValueType,
    of_column,
    of_pg,
)
from tapd.columns import ColumnMeta

if TYPE_CHECKING:
    from tapd.catalog import Catalog, CatalogTable

MAX_NAME_BYTES = 63  # PostgreSQL's identifier limit (longer names are truncated)
MAX_COLUMNS = 1664  # PostgreSQL's limit on the columns of a SELECT


def quote(name: str) -> str:
    """A PostgreSQL delimited identifier; ``%`` doubled for psycopg's placeholders."""
    return '"' + name.replace('"', '""').replace("%", "%%") + '"'


def _udf_argument_fits(declared: str, arg: ValueType) -> bool:
    """Whether ``arg`` is of the kind the declared ADQL type names (any number
    for a numeric type, any string for CHAR/VARCHAR, ...)."""
    base = re.sub(r"\s*\(.*$", "", declared)
    if base == "REGION":
        return arg.geometry is not None
    if base in ("POINT", "CIRCLE", "POLYGON"):
        return arg.geometry == base.lower()
    pg = ADQL_TYPES[base]
    if pg in NUMERIC_TYPES:
        return arg.is_numeric
    if pg in ("character", "character varying"):
        return arg.is_string
    if pg.startswith("timestamp"):
        return arg.is_timestamp or arg.is_string
    return arg.pg == pg  # boolean, bytea


def _check_udf_arguments(node: t.FunctionCall, spec: FunctionSpec, args: list[ValueType]) -> None:
    """Each argument of a UDF call must fit its declared type (NULL fits any):
    a clear error here rather than PostgreSQL's "function does not exist"."""
    for position, (declared, arg, arg_node) in enumerate(
        zip(spec.arg_types, args, node.args, strict=False), start=1
    ):
        if not arg.is_null and not _udf_argument_fits(declared, arg):
            raise AdqlTypeError(
                f"argument {position} of {node.name} is declared {declared}, "
                f"but this is {arg.describe()}",
                arg_node.pos,
            )


# ---- what the checker finds


@dataclass(frozen=True)
class ColumnBinding:
    """What a column reference stands for: SQL text and type."""

    sql: str
    vtype: ValueType
    name: str  # the column's (unquoted) name, for output naming
    uploaded: bool = False  # a column of a TAP_UPLOAD table (small: not worth an index probe)


@dataclass(frozen=True)
class OutputColumn:
    """One column a SELECT produces."""

    name: str  # unique (case-insensitively) within the SELECT
    sql_alias: str  # the alias used in SQL (unquoted)
    vtype: ValueType
    expr: t.Expr | None  # None for columns coming from a star
    star_sql: str | None = None  # the SQL of a star-expanded column
    is_column: bool = False  # a plain column reference (metadata straight from TAP_SCHEMA)


@dataclass(frozen=True)
class Region:
    """A REGION('...') literal, read as one of the shapes pgsphere has."""

    kind: str  # point, circle, polygon, box
    values: tuple[float, ...]


@dataclass
class Findings:
    """Everything the translator needs besides the tree."""

    columns: dict[t.ColumnRef, ColumnBinding] = field(default_factory=dict)
    types: dict[t.Node, ValueType] = field(default_factory=dict)
    outputs: dict[t.Node, list[OutputColumn]] = field(default_factory=dict)  # Select/SetOperation
    from_sql: dict[t.Node, str] = field(
        default_factory=dict
    )  # TableRef/DerivedTable -> "table AS alias"
    join_conditions: dict[t.Join, list[tuple[str, str]]] = field(
        default_factory=dict
    )  # USING/NATURAL pairs
    order: dict[t.OrderItem, str] = field(default_factory=dict)  # ORDER BY item -> SQL
    group: dict[t.Node, str] = field(default_factory=dict)  # GROUP BY items naming output aliases
    ctes: dict[t.CommonTable, tuple[str, tuple[str, ...]]] = field(default_factory=dict)
    functions: dict[t.FunctionCall, FunctionSpec] = field(default_factory=dict)
    regions: dict[t.FunctionCall, Region] = field(default_factory=dict)
    unit_factors: dict[t.FunctionCall, float] = field(default_factory=dict)

    def type_of(self, node: t.Node) -> ValueType:
        return self.types[node]


# ---- scopes


@dataclass(frozen=True)
class Visible:
    """A column visible in a FROM clause."""

    name: str
    regular: bool
    sql: str
    vtype: ValueType
    is_column: bool = True
    uploaded: bool = False  # of a TAP_UPLOAD table


@dataclass
class Range:
    """A FROM item that can qualify column names (a table, subquery, WITH table)."""

    qualifiers: list[
        list[tuple[str, bool]]
    ]  # accepted qualifier forms, e.g. [[("stars", False)], [("public", False), ("stars", False)]]
    columns: list[Visible]
    label: str  # for messages


@dataclass
class Scope:
    ranges: list[Range]
    visible: list[Visible]  # unqualified lookup and SELECT * order
    parent: Scope | None = None
    outputs: list[OutputColumn] | None = None


@dataclass(frozen=True)
class CteInfo:
    sql_name: str
    columns: list[Visible]  # sql holds the bare quoted column name


def _matches(ident: t.Ident, text: str) -> bool:
    if ident.delimited:
        return ident.text == text
    return ident.text.lower() == text.lower()


T = TypeVar("T")


def _pick(ident: t.Ident, candidates: Sequence[tuple[str, bool, T]]) -> list[T]:
    """Candidates (text, regular, item) that ``ident`` names, narrowed as ADQL's rules say."""
    found = [c for c in candidates if _matches(ident, c[0])]
    if len(found) > 1 and not ident.delimited:
        regular = [c for c in found if c[1]]
        found = regular or found
        if len(found) > 1:
            exact = [c for c in found if c[0] == ident.text]
            found = exact or found
    return [c[2] for c in found]


#: Per published table: (name, regular, quoted SQL name, type) of its columns.
_COLUMN_CACHE: dict[int, tuple[CatalogTable, list[tuple[str, bool, str, ValueType]]]] = {}


def _table_columns(table: CatalogTable) -> list[tuple[str, bool, str, ValueType]]:
    cached = _COLUMN_CACHE.get(id(table))
    if cached is not None and cached[0] is table:
        return cached[1]
    columns = []
    for column in table.columns:
        (text, delimited), *_ = split_name(column.name) or [(column.name, False)]
        columns.append(
            (text, not delimited, quote(column.sql_name), of_column(column.pg_type, column.meta))
        )
    if len(_COLUMN_CACHE) > 10_000:
        _COLUMN_CACHE.clear()
    _COLUMN_CACHE[id(table)] = (table, columns)
    return columns


def _visible_from_catalog(table: CatalogTable, alias: str) -> list[Visible]:
    prefix = quote(alias) + "."
    uploaded = table.schema_name == "TAP_UPLOAD"
    return [
        Visible(name, regular, prefix + sql, vtype, uploaded=uploaded)
        for name, regular, sql, vtype in _table_columns(table)
    ]


def _number_type(node: t.Number) -> ValueType:
    if node.is_integer:
        value = int(node.text)
        if value <= 2**31 - 1:
            return of_pg("integer")
        if value <= 2**63 - 1:
            return of_pg("bigint")
    return ValueType("numeric", ColumnMeta(name="", datatype="double"))


_NUMERIC_RANK = {name: i for i, name in enumerate(NUMERIC_TYPES)}

_GEOMETRY_META = {
    "point": (
        "spoint",
        ColumnMeta(name="", datatype="double", arraysize="2", xtype="point", unit="deg"),
    ),
    "circle": (
        "scircle",
        ColumnMeta(name="", datatype="double", arraysize="3", xtype="circle", unit="deg"),
    ),
    "polygon": (
        "spoly",
        ColumnMeta(name="", datatype="double", arraysize="*", xtype="polygon", unit="deg"),
    ),
    "box": (
        "sbox",
        ColumnMeta(name="", datatype="double", arraysize="*", xtype="polygon", unit="deg"),
    ),
}


def geometry_type(kind: str) -> ValueType:
    pg, meta = _GEOMETRY_META[kind]
    return ValueType(pg, meta)


DOUBLE = of_pg("double precision")
TEXT = of_pg("text")
INTEGER = of_pg("integer")
BIGINT = of_pg("bigint")
BOOLEAN = of_pg("boolean")


def _promote(types: Iterable[ValueType]) -> ValueType:
    """The PostgreSQL result type of arithmetic over ``types`` (all numeric or NULL)."""
    best = None
    pgs = [vt.pg for vt in types if vt.pg != "unknown"]
    if not pgs:
        return INTEGER
    if "double precision" in pgs or ("real" in pgs and "numeric" in pgs):
        return DOUBLE
    for pg in pgs:
        if best is None or _NUMERIC_RANK[pg] > _NUMERIC_RANK[best]:
            best = pg
    assert best is not None
    if best == "numeric":
        return ValueType("numeric", ColumnMeta(name="", datatype="double"))
    return of_pg(best)


# ---- the checker


class Checker:
    """Resolves one query; ``check`` returns the findings for the translator."""

    def __init__(self, catalog: Catalog, udfs: Sequence[str] = ()) -> None:
        self.catalog = catalog
        self.functions = function_table(udfs)
        self.found = Findings()
        self._aliases: set[str] = set()

    # ---- helpers

    def alias(self, preferred: str) -> str:
        """A unique SQL alias (case-sensitively unique, within PostgreSQL's length limit)."""
        base = preferred if preferred and len(preferred.encode()) <= MAX_NAME_BYTES - 4 else "t"
        candidate, n = base, 1
        while candidate in self._aliases:
            n += 1
            candidate = f"{base}_{n}"
        self._aliases.add(candidate)
        return candidate

    # ---- queries

    def check(self, query: t.Query) -> list[OutputColumn]:
        cte_list: list[tuple[t.Ident, CteInfo]] = []
        for cte in query.with_:
            if any(
                _matches(cte.name, name.text) or _matches(name, cte.name.text)
                for name, _ in cte_list
            ):
                raise AdqlNameError(f"WITH defines {cte.name} twice", cte.pos)
            outputs = self.query_expr(cte.query, None, cte_list)
            names = [o.sql_alias for o in outputs]
            if cte.columns is not None:
                if len(cte.columns) != len(outputs):
                    raise AdqlError(
                        f"WITH {cte.name} names {len(cte.columns)} columns "
                        f"but its query gives {len(outputs)}",
                        cte.pos,
                    )
                names = self._unique_names([c.text for c in cte.columns])
                visible = [
                    Visible(c.text, not c.delimited, quote(sql), o.vtype)
                    for c, sql, o in zip(cte.columns, names, outputs, strict=True)
                ]
            else:
                visible = [Visible(o.name, True, quote(o.sql_alias), o.vtype) for o in outputs]
            info = CteInfo(self.alias(cte.name.text), visible)
            self.found.ctes[cte] = (info.sql_name, tuple(names))
            cte_list.append((cte.name, info))
        return self.query_expr(query.body, None, cte_list, top=True)

    def query_expr(
        self,
        node: t.QueryExpr,
        parent: Scope | None,
        ctes: list[tuple[t.Ident, CteInfo]],
        *,
        top: bool = False,
    ) -> list[OutputColumn]:
        """Check a query; ``top`` for the main query, whose geometry leaves as arrays."""
        if isinstance(node, t.Select):
            return self.select(node, parent, ctes, top=top)
        left = self.query_expr(node.left, parent, ctes, top=top)
        right = self.query_expr(node.right, parent, ctes, top=top)
        if len(left) != len(right):
            raise AdqlError(
                f"{node.op} needs the same number of columns on both sides, "
                f"not {len(left)} and {len(right)}",
                node.right.pos,
            )
        for position, (a, b) in enumerate(zip(left, right, strict=True), start=1):
            try:
                self.comparable(a.vtype, b.vtype, node)
            except AdqlTypeError:
                raise AdqlTypeError(
                    f"{node.op} cannot combine {a.vtype.describe()} with {b.vtype.describe()} "
                    f"in column {position}",
                    node.right.pos,
                ) from None
            if not top and not node.all and a.vtype.geometry:
                raise AdqlUnsupported(
                    f"{node.op} without ALL cannot compare geometries (column {position}) "
                    f"inside a subquery; use {node.op} ALL or move it to the main query",
                    node.pos,
                )
        self.found.outputs[node] = left
        for item in node.order_by:
            self.found.order[item] = self._order_by_output(item, left, node.op)
        return left

    def _order_by_output(self, item: t.OrderItem, outputs: list[OutputColumn], op: str) -> str:
        expr = item.expr
        if isinstance(expr, t.Number) and expr.is_integer:
            return self._order_position(expr, outputs)
        if isinstance(expr, t.ColumnRef) and len(expr.parts) == 1:
            found = _pick(expr.name, [(o.name, True, o) for o in outputs])
            if len(found) == 1:
                return quote(found[0].sql_alias)
        raise AdqlError(
            f"ORDER BY after {op} can only name result columns or their positions", item.pos
        )

    @staticmethod
    def _order_position(expr: t.Number, outputs: list[OutputColumn]) -> str:
        position = int(expr.text)
        if not 1 <= position <= len(outputs):
            raise AdqlError(f"ORDER BY {position}: the query has {len(outputs)} columns", expr.pos)
        return str(position)

    def select(
        self,
        node: t.Select,
        parent: Scope | None,
        ctes: list[tuple[t.Ident, CteInfo]],
        *,
        top: bool = False,
    ) -> list[OutputColumn]:
        scope = Scope([], [], parent)
        for item in node.from_:
            ranges, visible = self.from_item(item, scope, ctes)
            scope.ranges += ranges
            scope.visible += visible
        self._check_duplicate_ranges(scope.ranges, node)
        outputs = self.select_list(node, scope, ctes)
        scope.outputs = outputs
        if node.quantifier == "DISTINCT" and not top:
            for output in outputs:
                if output.vtype.geometry:
                    raise AdqlUnsupported(
                        f"SELECT DISTINCT cannot compare geometries ({output.name}) inside a "
                        "subquery; move DISTINCT to the main query",
                        node.pos,
                    )
        if node.where is not None:
            self.condition(node.where, scope, ctes, "WHERE", allow_aggregates=False)
        for expr in node.group_by:
            self.group_item(expr, scope, ctes, outputs)
        if node.having is not None:
            self.condition(node.having, scope, ctes, "HAVING", allow_aggregates=True)
        for order in node.order_by:
            self.order_item(order, scope, ctes, outputs)
        self.found.outputs[node] = outputs
        return outputs

    def _check_duplicate_ranges(self, ranges: list[Range], node: t.Select) -> None:
        seen: dict[tuple[str, ...], str] = {}
        for r in ranges:
            key = tuple(text if delimited else text.lower() for text, delimited in r.qualifiers[0])
            if key in seen:
                raise AdqlNameError(
                    f"{r.label} appears twice in FROM; "
                    "give one of them an alias (FROM t AS a, t AS b)",
                    node.pos,
                )
            seen[key] = r.label

    # ---- FROM

    def from_item(
        self, item: t.FromItem, scope: Scope, ctes: list[tuple[t.Ident, CteInfo]]
    ) -> tuple[list[Range], list[Visible]]:
        if isinstance(item, t.TableRef):
            return self.table_ref(item, ctes)
        if isinstance(item, t.DerivedTable):
            outputs = self.query_expr(item.query, None, ctes)
            alias = self.alias(item.alias.text)
            self.found.from_sql[item] = quote(alias)
            columns = [
                Visible(o.name, True, f"{quote(alias)}.{quote(o.sql_alias)}", o.vtype, o.is_column)
                for o in outputs
            ]
            qualifier = [(item.alias.text, item.alias.delimited)]
            return [Range([qualifier], columns, str(item.alias))], columns
        return self.join(item, scope, ctes)

    def table_ref(
        self, item: t.TableRef, ctes: list[tuple[t.Ident, CteInfo]]
    ) -> tuple[list[Range], list[Visible]]:
        parts = item.parts
        if len(parts) == 3:
            raise AdqlUnsupported(
                f"catalog-qualified table names ({parts[0]}.{parts[1]}.{parts[2]}) "
                "are not supported",
                item.pos,
            )
        if len(parts) == 1:
            cte_found = _pick(
                parts[0], [(name.text, not name.delimited, info) for name, info in ctes]
            )
            if cte_found:
                info: CteInfo = cte_found[-1]
                label = item.alias or parts[0]
                alias = self.alias(label.text)
                self.found.from_sql[item] = f"{quote(info.sql_name)} AS {quote(alias)}"
                columns = [
                    Visible(c.name, c.regular, f"{quote(alias)}.{c.sql}", c.vtype, c.is_column)
                    for c in info.columns
                ]
                qualifier = [(label.text, label.delimited)]
                return [Range([qualifier], columns, str(label))], columns
        table = self.find_table(item)
        published = split_name(table.table_name)
        alias_ident = item.alias
        alias = self.alias(alias_ident.text if alias_ident else published[-1][0])
        self.found.from_sql[item] = (
            f"{quote(table.sql_schema)}.{quote(table.sql_table)} AS {quote(alias)}"
        )
        columns = _visible_from_catalog(table, alias)
        if alias_ident is not None:
            qualifiers = [[(alias_ident.text, alias_ident.delimited)]]
        else:
            qualifiers = [[published[-1]], published] if len(published) > 1 else [published]
        return [Range(qualifiers, columns, table.table_name)], columns

    def find_table(self, item: t.TableRef) -> CatalogTable:
        parts = item.parts
        candidates = self.catalog.tables_by_name.get(parts[-1].text.lower(), ())
        options = []
        for table in candidates:
            published = split_name(table.table_name)
            if len(parts) == 2 and (len(published) < 2 or not _matches(parts[0], published[-2][0])):
                continue
            options.append((published[-1][0], not published[-1][1], table))
        found: list[CatalogTable] = _pick(parts[-1], options)
        if len(found) > 1:
            # unqualified: prefer the public schema, as PostgreSQL's search path would
            public = [tb for tb in found if tb.sql_schema == "public"]
            if len(parts) == 1 and len(public) == 1:
                return public[0]
            names = ", ".join(sorted(tb.table_name for tb in found))
            raise AdqlNameError(
                f"table name {parts[-1]} is ambiguous: write one of {names}", item.pos
            )
        if not found:
            written = ".".join(str(p) for p in parts)
            hint = self._table_hint(parts[-1])
            raise AdqlNameError(f"there is no published table {written}{hint}", item.pos)
        return found[0]

    def _table_hint(self, name: t.Ident) -> str:
        similar = [
            tb.table_name
            for tb in self.catalog.tables
            if split_name(tb.table_name)[-1][0].lower() == name.text.lower()
        ]
        if similar:
            return f" (did you mean {' or '.join(sorted(similar))}?)"
        return "; the published tables are listed in TAP_SCHEMA.tables"

    def join(
        self, item: t.Join, scope: Scope, ctes: list[tuple[t.Ident, CteInfo]]
    ) -> tuple[list[Range], list[Visible]]:
        left_ranges, left = self.from_item(item.left, scope, ctes)
        right_ranges, right = self.from_item(item.right, scope, ctes)
        ranges = left_ranges + right_ranges
        if item.on is not None:
            join_scope = Scope(ranges, left + right, scope.parent)
            self.condition(item.on, join_scope, ctes, "ON", allow_aggregates=False)
            return ranges, left + right
        if item.natural:
            names = [
                t.Ident(c.name, not c.regular)
                for c in left
                if any(_matches(t.Ident(c.name, not c.regular), r.name) for r in right)
            ]
        else:
            names = list(item.using or ())
        merged: list[Visible] = []
        pairs: list[tuple[str, str]] = []
        used_left: set[int] = set()
        used_right: set[int] = set()
        for ident in names:
            lc = self._side_column(ident, left, "left", item)
            rc = self._side_column(ident, right, "right", item)
            used_left.add(id(lc))
            used_right.add(id(rc))
            pairs.append((lc.sql, rc.sql))
            if item.kind == "FULL":
                sql = f"COALESCE({lc.sql}, {rc.sql})"
            elif item.kind == "RIGHT":
                sql = rc.sql
            else:
                sql = lc.sql
            merged.append(
                Visible(
                    lc.name,
                    lc.regular,
                    sql,
                    lc.vtype,
                    lc.is_column,
                    uploaded=lc.uploaded and rc.uploaded,
                )
            )
        self.found.join_conditions[item] = pairs
        visible = (
            merged
            + [c for c in left if id(c) not in used_left]
            + [c for c in right if id(c) not in used_right]
        )
        return ranges, visible

    @staticmethod
    def _side_column(ident: t.Ident, columns: list[Visible], side: str, item: t.Join) -> Visible:
        found: list[Visible] = _pick(ident, [(c.name, c.regular, c) for c in columns])
        if len(found) != 1:
            problem = "no column" if not found else "more than one column"
            raise AdqlNameError(
                f"the {side} side of the join has {problem} named {ident} for USING",
                ident.pos or item.pos,
            )
        return found[0]

    # ---- SELECT list, GROUP BY, ORDER BY

    def select_list(
        self, node: t.Select, scope: Scope, ctes: list[tuple[t.Ident, CteInfo]]
    ) -> list[OutputColumn]:
        raw: list[tuple[str, ValueType, t.Expr | None, str | None, bool]] = []
        for position, item in enumerate(node.items, start=1):
            if isinstance(item, t.Star):
                for column in self.star(item, scope):
                    raw.append((column.name, column.vtype, None, column.sql, column.is_column))
                continue
            vtype = self.value(item.expr, scope, ctes, allow_aggregates=True)
            is_column = isinstance(item.expr, t.ColumnRef)
            if item.alias is not None:
                name = item.alias.text
            elif is_column:
                name = self.found.columns[item.expr].name  # type: ignore[index]
            elif isinstance(item.expr, t.FunctionCall):
                name = item.expr.name.lower()
            else:
                name = f"col{position}"
            raw.append((name, vtype, item.expr, None, is_column))
        if len(raw) > MAX_COLUMNS:
            raise AdqlError(
                f"the query selects {len(raw)} columns; PostgreSQL allows at most {MAX_COLUMNS}",
                node.pos,
            )
        names = self._unique_names([r[0] for r in raw])
        outputs = []
        for (_, vtype, expr, star_sql, is_column), name in zip(raw, names, strict=True):
            sql_alias = name if len(name.encode()) <= MAX_NAME_BYTES else self.alias("col")
            outputs.append(
                OutputColumn(name, sql_alias, vtype.with_meta(name=name), expr, star_sql, is_column)
            )
        return outputs

    @staticmethod
    def _unique_names(names: list[str]) -> list[str]:
        """``names`` with repeats renamed ``name_2``, ``name_3``... (TAP 1.1 §3.2: unique names)."""
        taken = set(names)
        seen: set[str] = set()
        next_suffix: dict[str, int] = {}
        result = []
        for name in names:
            candidate = name
            if candidate in seen:
                n = next_suffix.get(name, 2)
                while f"{name}_{n}" in taken or f"{name}_{n}" in seen:
                    n += 1
                next_suffix[name] = n + 1
                candidate = f"{name}_{n}"
            seen.add(candidate)
            result.append(candidate)
        return result

    def star(self, item: t.Star, scope: Scope) -> list[Visible]:
        if item.qualifier is None:
            if not scope.visible:
                raise AdqlError("SELECT * needs a table in FROM", item.pos)
            return scope.visible
        range_ = self._find_range(item.qualifier, scope, item.pos)
        if range_ is None:
            raise AdqlNameError(
                f"{'.'.join(map(str, item.qualifier))}.* names no table in FROM", item.pos
            )
        return range_.columns

    @staticmethod
    def _find_range(qualifier: Sequence[t.Ident], scope: Scope, pos: t.Pos) -> Range | None:
        matches = []
        for r in scope.ranges:
            for form in r.qualifiers:
                if len(form) == len(qualifier) and all(
                    _matches(q, text) for q, (text, _) in zip(qualifier, form, strict=True)
                ):
                    matches.append(r)
                    break
        if len(matches) > 1:
            raise AdqlNameError(
                f"{'.'.join(map(str, qualifier))} is ambiguous: give the tables aliases", pos
            )
        return matches[0] if matches else None

    def group_item(
        self,
        expr: t.Expr,
        scope: Scope,
        ctes: list[tuple[t.Ident, CteInfo]],
        outputs: list[OutputColumn],
    ) -> None:
        if isinstance(expr, t.Number) and expr.is_integer:
            self.found.group[expr] = self._order_position(expr, outputs)
            self.found.types[expr] = INTEGER
            return
        if (
            isinstance(expr, t.ColumnRef)
            and len(expr.parts) == 1
            and self._lookup(expr, scope, quiet=True) is None
        ):
            found = _pick(expr.name, [(o.name, True, o) for o in outputs if o.expr is not None])
            if len(found) == 1:
                output: OutputColumn = found[0]
                self.found.group[expr] = "__output__:" + output.sql_alias
                self.found.types[expr] = output.vtype
                return
        vtype = self.value(expr, scope, ctes, allow_aggregates=False)
        if vtype.geometry:
            raise AdqlUnsupported(
                f"GROUP BY cannot use {vtype.describe()}: geometries have no order", expr.pos
            )

    def order_item(
        self,
        item: t.OrderItem,
        scope: Scope,
        ctes: list[tuple[t.Ident, CteInfo]],
        outputs: list[OutputColumn],
    ) -> None:
        expr = item.expr
        if isinstance(expr, t.Number) and expr.is_integer:
            self.found.order[item] = self._order_position(expr, outputs)
            return
        if isinstance(expr, t.ColumnRef) and len(expr.parts) == 1:
            found = _pick(expr.name, [(o.name, True, o) for o in outputs])
            if len(found) == 1:
                self.found.order[item] = quote(found[0].sql_alias)
                return
        vtype = self.value(expr, scope, ctes, allow_aggregates=True)
        if vtype.geometry:
            raise AdqlUnsupported(
                f"ORDER BY cannot use {vtype.describe()}: geometries have no order", expr.pos
            )

    # ---- expressions

    def condition(
        self,
        expr: t.Expr,
        scope: Scope,
        ctes: list[tuple[t.Ident, CteInfo]],
        where: str,
        *,
        allow_aggregates: bool,
    ) -> None:
        vtype = self.expr(expr, scope, ctes, allow_aggregates)
        if vtype.pg not in ("boolean", "unknown"):
            raise AdqlTypeError(f"{where} needs a condition", expr.pos)

    def value(
        self,
        expr: t.Expr,
        scope: Scope,
        ctes: list[tuple[t.Ident, CteInfo]],
        *,
        allow_aggregates: bool,
    ) -> ValueType:
        return self.expr(expr, scope, ctes, allow_aggregates)

    def expr(
        self, node: t.Expr, scope: Scope, ctes: list[tuple[t.Ident, CteInfo]], aggregates: bool
    ) -> ValueType:
        vtype = self._expr(node, scope, ctes, aggregates)
        self.found.types[node] = vtype
        return vtype

    def _expr(
        self, node: t.Expr, scope: Scope, ctes: list[tuple[t.Ident, CteInfo]], aggregates: bool
    ) -> ValueType:
        def sub(expr: t.Expr) -> ValueType:
            return self.expr(expr, scope, ctes, aggregates)

        if isinstance(node, t.Number):
            return _number_type(node)
        if isinstance(node, t.String):
            return TEXT
        if isinstance(node, t.Null):
            return NULL_TYPE
        if isinstance(node, t.Boolean):
            return BOOLEAN
        if isinstance(node, t.ColumnRef):
            binding = self._lookup(node, scope)
            assert binding is not None
            self.found.columns[node] = binding
            return binding.vtype
        if isinstance(node, t.FunctionCall):
            return self.function(node, scope, ctes, aggregates)
        if isinstance(node, t.Cast):
            return self.cast(node, sub(node.expr))
        if isinstance(node, t.Unary):
            operand = sub(node.operand)
            if node.op == "~":
                self._need_integer(operand, node.operand, "~")
            else:
                self._need_number(operand, node.operand, node.op)
            return operand if operand.pg != "unknown" else INTEGER
        if isinstance(node, t.Chain):
            return self.chain(node, sub)
        if isinstance(node, t.Case):
            return self.case(node, scope, ctes, aggregates)
        if isinstance(node, t.ScalarSubquery):
            outputs = self.query_expr(node.query, scope, ctes)
            if len(outputs) != 1:
                raise AdqlError(
                    f"a subquery used as a value must give one column, not {len(outputs)}", node.pos
                )
            return outputs[0].vtype.with_meta(name="")
        if isinstance(node, t.Comparison):
            self.comparable(sub(node.left), sub(node.right), node)
            return BOOLEAN
        if isinstance(node, t.Between):
            vt = sub(node.expr)
            self.comparable(vt, sub(node.low), node)
            self.comparable(vt, sub(node.high), node)
            return BOOLEAN
        if isinstance(node, t.InList):
            vt = sub(node.expr)
            for item in node.items:
                self.comparable(vt, sub(item), item)
            return BOOLEAN
        if isinstance(node, t.InSubquery):
            vt = sub(node.expr)
            outputs = self.query_expr(node.query, scope, ctes)
            if len(outputs) != 1:
                raise AdqlError(
                    f"the subquery after IN must give one column, not {len(outputs)}",
                    node.query.pos,
                )
            self.comparable(vt, outputs[0].vtype, node)
            return BOOLEAN
        if isinstance(node, t.Like):
            for part in (node.expr, node.pattern):
                vt = sub(part)
                if not (vt.is_string or vt.pg == "unknown"):
                    raise AdqlTypeError(
                        f"{'ILIKE' if node.case_insensitive else 'LIKE'} compares strings, "
                        f"but this is {vt.describe()}",
                        part.pos,
                    )
            return BOOLEAN
        if isinstance(node, t.IsNull):
            sub(node.expr)
            return BOOLEAN
        if isinstance(node, t.Exists):
            self.query_expr(node.query, scope, ctes)
            return BOOLEAN
        if isinstance(node, t.BoolOp):
            for item in node.operands:
                sub(item)
            return BOOLEAN
        if isinstance(node, t.Not):
            sub(node.operand)
            return BOOLEAN
        raise AssertionError(f"unexpected node {node!r}")  # pragma: no cover

    def _lookup(self, node: t.ColumnRef, scope: Scope, quiet: bool = False) -> ColumnBinding | None:
        parts = node.parts
        if len(parts) == 4:
            raise AdqlUnsupported("catalog-qualified column names are not supported", node.pos)
        current: Scope | None = scope
        while current is not None:
            if len(parts) == 1:
                found: list[Visible] = _pick(
                    parts[0], [(c.name, c.regular, c) for c in current.visible]
                )
                if len(found) > 1:
                    raise AdqlNameError(
                        f"column name {parts[0]} is ambiguous: "
                        f"qualify it with its table, as in t.{parts[0]}",
                        node.pos,
                    )
                if found:
                    c = found[0]
                    return ColumnBinding(c.sql, c.vtype, c.name, c.uploaded)
            else:
                range_ = self._find_range(parts[:-1], current, node.pos)
                if range_ is not None:
                    found = _pick(parts[-1], [(c.name, c.regular, c) for c in range_.columns])
                    if not found:
                        names = ", ".join(c.name for c in range_.columns[:30])
                        raise AdqlNameError(
                            f"{range_.label} has no column {parts[-1]}; its columns are {names}",
                            node.pos,
                        )
                    if len(found) > 1:
                        raise AdqlNameError(
                            f"{range_.label} has several columns named {parts[-1]}", node.pos
                        )
                    c = found[0]
                    return ColumnBinding(c.sql, c.vtype, c.name, c.uploaded)
            current = current.parent
        if quiet:
            return None
        written = ".".join(str(p) for p in parts)
        if len(parts) > 1:
            raise AdqlNameError(
                f"{'.'.join(str(p) for p in parts[:-1])} (in {written}) names no table in FROM",
                node.pos,
            )
        names = ", ".join(c.name for c in scope.visible[:30])
        hint = f"; the tables in FROM have {names}" if names else ""
        if scope.outputs:
            for output in scope.outputs:
                if _matches(parts[0], output.name):
                    hint = "; a SELECT alias cannot be used here, repeat the expression instead"
        raise AdqlNameError(f"there is no column {written}{hint}", node.pos)

    # ---- types of operators

    @staticmethod
    def _need_number(vtype: ValueType, node: t.Expr, what: str) -> None:
        if not (vtype.is_numeric or vtype.pg == "unknown"):
            raise AdqlTypeError(f"{what} needs a number, but this is {vtype.describe()}", node.pos)

    @staticmethod
    def _need_integer(vtype: ValueType, node: t.Expr, what: str) -> None:
        if not (vtype.is_integer or vtype.pg == "unknown"):
            raise AdqlTypeError(
                f"{what} needs a whole number (integer type), but this is {vtype.describe()}",
                node.pos,
            )

    @staticmethod
    def _need_string(vtype: ValueType, node: t.Expr, what: str) -> None:
        if not vtype.is_string:
            raise AdqlTypeError(f"{what} needs a string, but this is {vtype.describe()}", node.pos)

    def chain(self, node: t.Chain, sub: Callable[[t.Expr], ValueType]) -> ValueType:
        """Operators of one level, left to right (|| and the bitwise ones share a level)."""
        left_node: t.Expr = node.first
        left = sub(node.first)
        for op, operand in node.rest:
            right = sub(operand)
            if op == "||":
                for vt, e in ((left, left_node), (right, operand)):
                    if vt.geometry:
                        raise AdqlTypeError(f"|| joins strings, but this is {vt.describe()}", e.pos)
                left = TEXT
            elif op in ("|", "&", "^"):
                self._need_integer(left, left_node, f"the bitwise operator {op}")
                self._need_integer(right, operand, f"the bitwise operator {op}")
                left = _promote([left, right])
            else:
                self._need_number(left, left_node, f"the operator {op}")
                self._need_number(right, operand, f"the operator {op}")
                left = _promote([left, right])
        return left

    def comparable(self, a: ValueType, b: ValueType, node: t.Node) -> None:
        if a.pg == "unknown" or b.pg == "unknown":
            return
        kinds = []
        for vt in (a, b):
            if vt.is_numeric:
                kinds.append("number")
            elif vt.is_string:
                kinds.append("string")
            elif vt.is_timestamp:
                kinds.append("timestamp")
            elif vt.geometry:
                kinds.append(vt.geometry)
            else:
                kinds.append(vt.pg)
        if kinds[0] == kinds[1] or {"timestamp", "string"} == set(kinds):
            return
        raise AdqlTypeError(f"cannot compare {a.describe()} with {b.describe()}", node.pos)

    def case(
        self, node: t.Case, scope: Scope, ctes: list[tuple[t.Ident, CteInfo]], aggregates: bool
    ) -> ValueType:
        subject = (
            self.expr(node.subject, scope, ctes, aggregates) if node.subject is not None else None
        )
        results = []
        for cond, result in node.whens:
            vt = self.expr(cond, scope, ctes, aggregates)
            if subject is not None:
                self.comparable(subject, vt, cond)
            results.append(self.expr(result, scope, ctes, aggregates))
        if node.else_ is not None:
            results.append(self.expr(node.else_, scope, ctes, aggregates))
        return self._common(results, node)

    def _common(self, types: list[ValueType], node: t.Node) -> ValueType:
        known = [vt for vt in types if vt.pg != "unknown"]
        if not known:
            return NULL_TYPE
        first = known[0]
        for vt in known[1:]:
            self.comparable(first, vt, node)
        if first.is_numeric:
            return _promote(known)
        if first.is_string:
            return (
                TEXT if len({vt.pg for vt in known}) > 1 else first.with_meta(unit=None, ucd=None)
            )
        return first

    def cast(self, node: t.Cast, source: ValueType) -> ValueType:
        target = node.target.name
        pg = ADQL_TYPES[target]
        if target in ("POINT", "CIRCLE", "POLYGON"):
            if not (source.is_string or source.pg == "unknown"):
                raise AdqlTypeError(
                    f"CAST to {target} needs a DALI string such as '10 20', "
                    f"not {source.describe()}",
                    node.expr.pos,
                )
            if not isinstance(node.expr, (t.String, t.Null)):
                raise AdqlUnsupported(
                    f"CAST to {target} is supported for string literals only", node.expr.pos
                )
            return geometry_type(target.lower())
        if source.geometry:
            raise AdqlTypeError(f"cannot CAST {source.describe()} to {target}", node.expr.pos)
        if node.target.length is not None:
            return of_pg(f"{pg}({node.target.length})")
        if target == "CHAR":
            return of_pg("character(1)")
        return of_pg(pg)

    # ---- functions

    def function(
        self,
        node: t.FunctionCall,
        scope: Scope,
        ctes: list[tuple[t.Ident, CteInfo]],
        aggregates: bool,
    ) -> ValueType:
        spec = self.functions[node.name]
        self.found.functions[node] = spec
        if spec.is_aggregate and not aggregates:
            raise AdqlError(
                f"the aggregate function {node.name} cannot be used in WHERE, ON or GROUP BY",
                node.pos,
            )
        inner_aggregates = aggregates and not spec.is_aggregate
        args = [self.expr(a, scope, ctes, inner_aggregates) for a in node.args]
        name = node.name
        if spec.family == "udf":
            _check_udf_arguments(node, spec, args)
            return self._udf_type(spec)
        if spec.is_aggregate:
            return self.aggregate(node, args)
        if spec.family in ("math", "trig"):
            return self.math(node, args)
        if name in ("LOWER", "UPPER"):
            self._need_string(args[0], node.args[0], name)
            return TEXT
        if name == "COALESCE":
            return self._common(args, node)
        if name == "IN_UNIT":
            return self.in_unit(node, args)
        return self.geometry(node, args)

    @staticmethod
    def _udf_type(spec: FunctionSpec) -> ValueType:
        assert spec.returns is not None
        match = re.match(r"^([A-Z ]+?)\s*(?:\(\s*([0-9]+)\s*\))?$", spec.returns)
        assert match
        base = ADQL_TYPES[match[1].strip()]
        if base in ("spoint", "scircle", "spoly"):
            return geometry_type({"spoint": "point", "scircle": "circle", "spoly": "polygon"}[base])
        return of_pg(f"{base}({match[2]})" if match[2] else base)

    def aggregate(self, node: t.FunctionCall, args: list[ValueType]) -> ValueType:
        if node.name == "COUNT":
            return BIGINT.with_meta(ucd="meta.number")
        arg = args[0]
        if node.name in ("MIN", "MAX"):
            if arg.geometry:
                raise AdqlTypeError(f"{node.name} cannot compare geometries", node.args[0].pos)
            return arg.with_meta(description=None, ucd=None, utype=None)
        self._need_number(arg, node.args[0], node.name)
        if node.name == "AVG":
            return DOUBLE.with_meta(unit=arg.meta.unit)
        if arg.pg in ("smallint", "integer", "bigint"):
            return BIGINT.with_meta(unit=arg.meta.unit)
        return (arg if arg.pg in ("real", "double precision") else DOUBLE).with_meta(
            unit=arg.meta.unit, ucd=None, description=None, utype=None
        )

    def math(self, node: t.FunctionCall, args: list[ValueType]) -> ValueType:
        for vt, e in zip(args, node.args, strict=True):
            self._need_number(vt, e, node.name)
        name = node.name
        if name in ("ROUND", "TRUNCATE") and len(args) == 2:
            self._need_integer(args[1], node.args[1], f"the second argument of {name}")
        if name in ("ABS", "CEILING", "FLOOR", "ROUND", "TRUNCATE") and args[0].is_integer:
            return args[0].with_meta(description=None, ucd=None, utype=None)
        if name == "MOD" and args[0].is_integer and args[1].is_integer:
            return _promote(args)
        if name in ("ABS", "CEILING", "FLOOR", "ROUND", "TRUNCATE"):
            return DOUBLE.with_meta(unit=args[0].meta.unit)
        return DOUBLE

    def in_unit(self, node: t.FunctionCall, args: list[ValueType]) -> ValueType:
        self._need_number(args[0], node.args[0], "IN_UNIT")
        target = node.args[1]
        if not isinstance(target, t.String):
            raise AdqlUnsupported(
                "the unit of IN_UNIT must be a string literal, e.g. 'deg'", target.pos
            )
        source = args[0].meta.unit
        if not source:
            raise AdqlTypeError(
                "IN_UNIT needs a value with a unit, but this one has none", node.args[0].pos
            )
        self.found.unit_factors[node] = _unit_factor(source, target.value, node)
        return DOUBLE.with_meta(unit=target.value)

    def geometry(self, node: t.FunctionCall, args: list[ValueType]) -> ValueType:
        name = node.name
        call_args = list(node.args)
        if (
            name in ("POINT", "CIRCLE", "BOX", "POLYGON")
            and call_args
            and isinstance(call_args[0], (t.String, t.Null))
        ):
            call_args, args = call_args[1:], args[1:]  # coordinate system: accepted, ignored
        if name == "POINT":
            for vt, e in zip(args, call_args, strict=True):
                self._need_number(vt, e, "POINT")
            return geometry_type("point")
        if name in ("CIRCLE", "BOX"):
            size = 1 if name == "CIRCLE" else 2
            centre_args = len(args) - size
            if centre_args == 1:
                self._need_geometry(args[0], call_args[0], name, ("point",))
            for vt, e in zip(
                args[(centre_args == 1 and 1) or 0 :],
                call_args[(centre_args == 1 and 1) or 0 :],
                strict=True,
            ):
                self._need_number(vt, e, name)
            return geometry_type("circle" if name == "CIRCLE" else "box")
        if name == "POLYGON":
            if all(vt.geometry == "point" or vt.pg == "unknown" for vt in args) and any(
                vt.geometry for vt in args
            ):
                if len(args) < 3:
                    raise AdqlError("POLYGON needs at least 3 points", node.pos)
            else:
                if len(args) % 2 or len(args) < 6:
                    raise AdqlError(
                        "POLYGON needs at least 3 vertices as pairs of numbers (ra1, dec1, ...)",
                        node.pos,
                    )
                for vt, e in zip(args, call_args, strict=True):
                    self._need_number(vt, e, "POLYGON")
            return geometry_type("polygon")
        if name == "REGION":
            return self.region(node)
        if name in ("COORD1", "COORD2"):
            self._need_geometry(args[0], call_args[0], name, ("point",))
            return DOUBLE.with_meta(unit="deg")
        if name == "COORDSYS":
            self._need_geometry(args[0], call_args[0], name, ("point", "circle", "polygon", "box"))
            return TEXT
        if name == "AREA":
            self._need_geometry(args[0], call_args[0], name, ("point", "circle", "polygon", "box"))
            return DOUBLE.with_meta(unit="deg**2", ucd="phys.angArea")
        if name == "CENTROID":
            self._need_geometry(args[0], call_args[0], name, ("point", "circle", "box", "polygon"))
            return geometry_type("point")
        if name == "DISTANCE":
            if len(args) == 4:
                for vt, e in zip(args, call_args, strict=True):
                    self._need_number(vt, e, "DISTANCE")
            else:
                for vt, e in zip(args, call_args, strict=True):
                    self._need_geometry(vt, e, "DISTANCE", ("point",))
            return DOUBLE.with_meta(unit="deg", ucd="pos.angDistance")
        # CONTAINS, INTERSECTS
        for vt, e in zip(args, call_args, strict=True):
            self._need_geometry(vt, e, name, ("point", "circle", "polygon", "box"))
        if (
            name == "CONTAINS"
            and args[1].geometry == "point"
            and args[0].geometry not in ("point", None)
        ):
            raise AdqlTypeError(
                "CONTAINS(a, b) asks whether a lies inside b, and only a point lies "
                f"inside a point; did you mean CONTAINS(POINT(...), {args[0].geometry})?",
                node.pos,
            )
        return INTEGER

    @staticmethod
    def _need_geometry(vtype: ValueType, node: t.Expr, what: str, kinds: tuple[str, ...]) -> None:
        if vtype.pg == "unknown" or vtype.geometry in kinds:
            return
        wanted = " or ".join(f"a {k}" for k in kinds)
        raise AdqlTypeError(f"{what} needs {wanted}, but this is {vtype.describe()}", node.pos)

    def region(self, node: t.FunctionCall) -> ValueType:
        arg = node.args[0]
        if not isinstance(arg, t.String):
            raise AdqlUnsupported("REGION is supported for string literals only", arg.pos)
        region = parse_stcs(arg.value, arg.pos)
        self.found.regions[node] = region
        return geometry_type(region.kind)


_STCS_FRAMES = {
    "ICRS",
    "FK4",
    "FK5",
    "J2000",
    "B1950",
    "GALACTIC",
    "ECLIPTIC",
    "UNKNOWNFRAME",
    "GEOCENTER",
    "BARYCENTER",
    "TOPOCENTER",
    "HELIOCENTER",
    "UNKNOWNREFPOS",
    "SPHERICAL2",
}
_STCS_SHAPES = {
    "POSITION": ("point", 2, 2),
    "CIRCLE": ("circle", 3, 3),
    "BOX": ("box", 4, 4),
    "POLYGON": ("polygon", 6, None),
}


def parse_stcs(text: str, pos: t.Pos) -> Region:
    """The simple STC-S shapes pgsphere can hold: Position, Circle, Box, Polygon."""
    words = text.split()
    if not words or words[0].upper() not in _STCS_SHAPES:
        shape = words[0] if words else "''"
        raise AdqlUnsupported(
            f"REGION: the STC-S shape {shape} is not supported; "
            "use Position, Circle, Box or Polygon",
            pos,
        )
    kind, low, high = _STCS_SHAPES[words[0].upper()]
    rest = [w for w in words[1:] if w.upper() not in _STCS_FRAMES]
    try:
        values = tuple(float(w) for w in rest)
    except ValueError:
        raise AdqlUnsupported(
            f"REGION: cannot read {text!r} as a simple STC-S {words[0]}", pos
        ) from None
    if (
        len(values) < low
        or (high is not None and len(values) > high)
        or (kind == "polygon" and len(values) % 2)
    ):
        raise AdqlUnsupported(f"REGION: wrong number of values in {text!r}", pos)
    if not all(math.isfinite(v) for v in values):
        raise AdqlUnsupported(f"REGION: {text!r} holds a value that is not a finite number", pos)
    return Region(kind, values)


def _unit_factor(source: str, target: str, node: t.FunctionCall) -> float:
    try:
        from astropy import units
    except ImportError:  # pragma: no cover - astropy is a dependency
        raise AdqlUnsupported("IN_UNIT is not available on this service", node.pos) from None

    def parse(text: str) -> Any:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")  # astropy 5 warns (not raises) on unknown VOUnits
            try:
                unit = units.Unit(text, format="vounit", parse_strict="raise")
            except ValueError:
                return None
        if caught or isinstance(unit, units.UnrecognizedUnit):
            return None
        return unit

    source_unit = parse(source)
    if source_unit is None:
        raise AdqlUnsupported(f"IN_UNIT: the column's unit {source!r} is not a VOUnit", node.pos)
    target_unit = parse(target)
    if target_unit is None:
        raise AdqlTypeError(f"IN_UNIT: {target!r} is not a VOUnit", node.args[1].pos)
    try:
        return float(source_unit.to(target_unit))
    except units.UnitConversionError:
        raise AdqlTypeError(f"IN_UNIT cannot convert {source} to {target}", node.pos) from None


def check_query(
    query: t.Query, catalog: Catalog, udfs: Sequence[str] = ()
) -> tuple[Findings, list[OutputColumn]]:
    """Resolve ``query`` against ``catalog``.

    Raises an ``AdqlError`` for anything not published or ill-typed.
    """
    checker = Checker(catalog, udfs)
    outputs = checker.check(query)
    return checker.found, outputs
