"""Checked ADQL tree -> PostgreSQL + pgsphere SQL (a psycopg query template and its parameters).

Never pastes user text: identifiers come from the catalog or the checker and
are always quoted; string literals become ``%s`` parameters; numbers are
re-emitted from the lexer's validated digits. Geometry uses pgsphere, in
radians inside and degrees at the edges:

* POINT/CIRCLE/BOX/POLYGON build ``spoint``/``scircle``/``sbox``/``spoly``;
* ``1 = CONTAINS(a, b)`` becomes ``a <@ b`` and ``1 = INTERSECTS(a, b)``
  ``a && b`` (so GiST indexes apply); elsewhere they give 1/0;
* ``DISTANCE(p, q) < r`` becomes ``p <@ scircle(q, r) AND distance < r``: the
  first part lets a GiST index on ``p`` answer a cone search (Debian 12's
  pgsphere has no ``spoint_dwithin``), the second keeps the result exact;
* a point in a circle is symmetric (p within r of c is c within r of p), and
  pgsphere's index serves only the left side of ``<@``: the side an index is
  likelier to cover goes there (``index_preference``: a published table's
  columns over an uploaded table's over constants, a bare column over a
  computed point), so ``CONTAINS(POINT(u.ra, u.dec), CIRCLE(s.ra, s.dec, r))``
  probes the catalog ``s`` once per uploaded row instead of scanning it;
* geometry in the final SELECT list comes back as ``float8[]`` in degrees:
  point [ra, dec], circle [ra, dec, radius], polygon [ra1, dec1, ...]. pgsphere
  1.2 cannot return a polygon's vertices, so they are read from its text form,
  which pgsphere prints with 15 significant digits (its maximum, DBL_DIG).

ADQL's ``^`` (bitwise XOR) is PostgreSQL's ``#``. LIKE gets ``ESCAPE ''``
because ADQL patterns have no escape character. Execute ``sql`` with
``params`` (a list, possibly empty): ``%`` in quoted names is doubled.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from tapd.adql import tree as t
from tapd.adql.checker import Findings, OutputColumn, Region, quote
from tapd.adql.errors import AdqlTypeError
from tapd.adql.types import ValueType


@dataclass(frozen=True)
class Sql:
    """A piece of SQL and the parameters of its ``%s`` placeholders, in order."""

    text: str
    params: tuple[object, ...] = ()


def cat(*parts: str | Sql) -> Sql:
    """Concatenate SQL text and pieces, keeping parameters in textual order."""
    texts: list[str] = []
    params: list[object] = []
    for part in parts:
        if isinstance(part, str):
            texts.append(part)
        else:
            texts.append(part.text)
            params.extend(part.params)
    return Sql("".join(texts), tuple(params))


def join(separator: str, parts: Iterable[Sql]) -> Sql:
    items: list[str | Sql] = []
    for i, part in enumerate(parts):
        if i:
            items.append(separator)
        items.append(part)
    return cat(*items)


#: VOTable datatype -> the PostgreSQL type a numeric result column is cast to.
OUTPUT_NUMERIC = {
    "short": "smallint",
    "int": "integer",
    "long": "bigint",
    "float": "real",
    "double": "double precision",
}

_FUNCTION_NAMES = {
    "ABS": "abs",
    "CEILING": "ceiling",
    "DEGREES": "degrees",
    "EXP": "exp",
    "FLOOR": "floor",
    "LOG": "ln",
    "LOG10": "log",
    "PI": "pi",
    "POWER": "power",
    "RADIANS": "radians",
    "SQRT": "sqrt",
    "ACOS": "acos",
    "ASIN": "asin",
    "ATAN": "atan",
    "ATAN2": "atan2",
    "COS": "cos",
    "COT": "cot",
    "SIN": "sin",
    "TAN": "tan",
    "LOWER": "lower",
    "UPPER": "upper",
    "COALESCE": "coalesce",
    "COUNT": "count",
    "SUM": "sum",
    "AVG": "avg",
    "MIN": "min",
    "MAX": "max",
}
_CAST_TYPES = {
    "SMALLINT": "smallint",
    "INTEGER": "integer",
    "BIGINT": "bigint",
    "REAL": "real",
    "DOUBLE PRECISION": "double precision",
    "CHAR": "character",
    "VARCHAR": "character varying",
    "TIMESTAMP": "timestamp",
}
_POLYGON_NUMBERS = (
    "CAST(string_to_array(translate(CAST({} AS text), '{{}}() ', ''), ',') AS float8[])"
)


def _radians(sql: Sql) -> Sql:
    return cat("radians(", sql, ")")


def _point(ra: Sql, dec: Sql) -> Sql:
    return cat("spoint(", _radians(ra), ", ", _radians(dec), ")")


def _literal(value: float) -> str:
    if not math.isfinite(value):  # repr would give inf/nan, which SQL reads as names
        raise ValueError(f"not a finite number: {value!r}")
    text = repr(float(value))
    return f"({text})" if text.startswith("-") else text


def _number_value(expr: t.Expr) -> float | None:
    """The value of a numeric literal (possibly negated), else None."""
    if isinstance(expr, t.Number):
        return float(expr.text)
    if isinstance(expr, t.Unary) and expr.op in "+-" and isinstance(expr.operand, t.Number):
        value = float(expr.operand.text)
        return -value if expr.op == "-" else value
    return None


def _is_constant(expr: t.Node) -> bool:
    return not any(
        isinstance(n, (t.ColumnRef, t.ScalarSubquery, t.Exists, t.InSubquery)) for n in t.walk(expr)
    )


class Translator:
    """Emits SQL for one checked query."""

    def __init__(self, found: Findings) -> None:
        self.found = found

    # ---- queries

    def query(self, query: t.Query, limit: int | None) -> Sql:
        parts: list[str | Sql] = []
        if query.with_:
            ctes = []
            for cte in query.with_:
                name, columns = self.found.ctes[cte]
                head = quote(name)
                if cte.columns is not None:
                    head += "(" + ", ".join(quote(c) for c in columns) + ")"
                ctes.append(cat(head, " AS (", self.query_expr(cte.query, top=False), ")"))
            parts += ["WITH ", join(", ", ctes), " "]
        parts.append(self.query_expr(query.body, top=True, limit=limit))
        return cat(*parts)

    def query_expr(self, node: t.QueryExpr, *, top: bool, limit: int | None = None) -> Sql:
        if isinstance(node, t.Select):
            return self.select(node, top=top, limit=limit)
        op = node.op + (" ALL" if node.all else "")
        body = cat(
            "(",
            self.query_expr(node.left, top=top),
            ") ",
            op,
            " (",
            self.query_expr(node.right, top=top),
            ")",
        )
        tail: list[str | Sql] = []
        if node.order_by:
            tail.append(cat(" ORDER BY ", join(", ", (self.order_item(i) for i in node.order_by))))
        if limit is not None:
            tail.append(f" LIMIT {limit}")
        if node.offset is not None:
            tail.append(f" OFFSET {node.offset}")
        return cat(body, *tail)

    def select(self, node: t.Select, *, top: bool, limit: int | None) -> Sql:
        outputs = self.found.outputs[node]
        items = join(", ", (self.output(o, top) for o in outputs))
        parts: list[str | Sql] = ["SELECT "]
        if node.quantifier == "DISTINCT":
            parts.append("DISTINCT ")
        parts += [items, " FROM ", join(", ", (self.from_item(f) for f in node.from_))]
        if node.where is not None:
            parts += [" WHERE ", self.condition(node.where)]
        if node.group_by:
            parts += [
                " GROUP BY ",
                join(", ", (self.group_item(g, outputs) for g in node.group_by)),
            ]
        if node.having is not None:
            parts += [" HAVING ", self.condition(node.having)]
        if node.order_by:
            parts += [" ORDER BY ", join(", ", (self.order_item(i) for i in node.order_by))]
        rows = node.top
        if limit is not None:
            rows = limit if rows is None else min(rows, limit)
        if rows is not None:
            parts.append(f" LIMIT {rows}")
        if node.offset is not None:
            parts.append(f" OFFSET {node.offset}")
        return cat(*parts)

    def output(self, column: OutputColumn, top: bool) -> Sql:
        sql = Sql(column.star_sql) if column.star_sql is not None else self.expr(column.expr)  # type: ignore[arg-type]
        if top:
            sql = self.result_value(sql, column.vtype, column.is_column)
        return cat(sql, " AS ", quote(column.sql_alias))

    def result_value(self, sql: Sql, vtype: ValueType, is_column: bool) -> Sql:
        """How a value leaves the query: geometry as arrays in degrees, numbers as declared."""
        kind = vtype.geometry
        if kind is not None:
            if not is_column and kind != "polygon":  # evaluate the expression once
                inner = self.result_value(Sql('"_g"."g"'), vtype, True)
                return cat("(SELECT ", inner, " FROM (SELECT ", sql, ' AS "g") AS "_g")')
            if kind == "point":
                return cat(
                    "CASE WHEN ",
                    sql,
                    " IS NULL THEN NULL ELSE ARRAY[degrees(long(",
                    sql,
                    ")), degrees(lat(",
                    sql,
                    "))] END",
                )
            if kind == "circle":
                return cat(
                    "CASE WHEN ",
                    sql,
                    " IS NULL THEN NULL ELSE ARRAY[degrees(long(center(",
                    sql,
                    "))), degrees(lat(center(",
                    sql,
                    "))), degrees(radius(",
                    sql,
                    "))] END",
                )
            if kind == "box":
                corners = [
                    cat(f"degrees({axis}({corner}(", sql, ")))")
                    for corner in ("sw", "se", "ne", "nw")
                    for axis in ("long", "lat")
                ]
                return cat(
                    "CASE WHEN ",
                    sql,
                    " IS NULL THEN NULL ELSE ARRAY[",
                    join(", ", corners),
                    "] END",
                )
            numbers = _POLYGON_NUMBERS.format("__SQL__")
            before, after = numbers.split("__SQL__")
            return cat(
                "(SELECT array_agg(degrees(v) ORDER BY n) FROM unnest(",
                before,
                sql,
                after,
                ") WITH ORDINALITY AS u(v, n))",
            )
        target = OUTPUT_NUMERIC.get(vtype.meta.datatype)
        if (
            target is not None
            and not vtype.meta.arraysize
            and (not is_column or vtype.pg != target)
        ):
            return cat("CAST(", sql, f" AS {target})")
        return sql

    def from_item(self, item: t.FromItem) -> Sql:
        if isinstance(item, t.TableRef):
            return Sql(self.found.from_sql[item])
        if isinstance(item, t.DerivedTable):
            return cat(
                "(", self.query_expr(item.query, top=False), ") AS ", self.found.from_sql[item]
            )
        kind = {"INNER": "JOIN", "LEFT": "LEFT JOIN", "RIGHT": "RIGHT JOIN", "FULL": "FULL JOIN"}[
            item.kind
        ]
        if item.on is not None:
            condition = self.condition(item.on)
        else:
            pairs = self.found.join_conditions[item]
            condition = Sql(" AND ".join(f"{a} = {b}" for a, b in pairs) or "TRUE")
        return cat(
            "(",
            self.from_item(item.left),
            f" {kind} ",
            self.from_item(item.right),
            " ON ",
            condition,
            ")",
        )

    def group_item(self, expr: t.Expr, outputs: list[OutputColumn]) -> Sql:
        named = self.found.group.get(expr)
        if named is None:
            return self.expr(expr)
        if named.startswith("__output__:"):
            alias = named.split(":", 1)[1]
            output = next(o for o in outputs if o.sql_alias == alias)
            return self.expr(output.expr)  # type: ignore[arg-type]
        return Sql(named)

    def order_item(self, item: t.OrderItem) -> Sql:
        named = self.found.order.get(item)
        sql = Sql(named) if named is not None else self.expr(item.expr)
        return cat(sql, " DESC" if item.descending else " ASC")

    # ---- expressions

    def condition(self, expr: t.Expr) -> Sql:
        return self.expr(expr)

    def expr(self, node: t.Expr) -> Sql:
        method = getattr(self, "_" + type(node).__name__)
        result: Sql = method(node)
        return result

    def _Number(self, node: t.Number) -> Sql:
        return Sql(node.text)

    def _String(self, node: t.String) -> Sql:
        # typed text: PostgreSQL cannot type a bare parameter in e.g. 'x' IS NULL
        return Sql("CAST(%s AS text)", (node.value,))

    def operand(self, node: t.Expr, *others: t.Expr) -> Sql:
        """A comparison operand: a string literal compared with something typed stays untyped,
        so that PostgreSQL reads it as the other side's type (e.g. a timestamp)."""
        if isinstance(node, t.String) and any(
            not isinstance(o, (t.String, t.Null)) for o in others
        ):
            return Sql("%s", (node.value,))
        return self.expr(node)

    def _Null(self, node: t.Null) -> Sql:
        return Sql("NULL")

    def _Boolean(self, node: t.Boolean) -> Sql:
        return Sql("TRUE" if node.value else "FALSE")

    def _ColumnRef(self, node: t.ColumnRef) -> Sql:
        return Sql(self.found.columns[node].sql)

    def _Cast(self, node: t.Cast) -> Sql:
        target = node.target
        if target.name in ("POINT", "CIRCLE", "POLYGON"):
            return self._geometry_cast(node)
        pg = _CAST_TYPES[target.name]
        if target.length is not None:
            pg += f"({target.length})"
        elif target.name == "CHAR":
            pg += "(1)"
        return cat("CAST(", self.expr(node.expr), f" AS {pg})")

    def _geometry_cast(self, node: t.Cast) -> Sql:
        kind = node.target.name.lower()
        if isinstance(node.expr, t.Null):
            return Sql(
                f"CAST(NULL AS {dict(point='spoint', circle='scircle', polygon='spoly')[kind]})"
            )
        assert isinstance(node.expr, t.String)
        try:
            values = tuple(float(v) for v in node.expr.value.split())
        except ValueError:
            raise AdqlTypeError(
                f"{node.expr.value!r} is not a DALI {kind} (numbers separated by spaces)",
                node.expr.pos,
            ) from None
        if not all(math.isfinite(v) for v in values):
            raise AdqlTypeError(
                f"{node.expr.value!r} holds a value that is not a finite number", node.expr.pos
            )
        expected = {"point": 2, "circle": 3}.get(kind)
        if (expected and len(values) != expected) or (
            kind == "polygon" and (len(values) < 6 or len(values) % 2)
        ):
            raise AdqlTypeError(
                f"{node.expr.value!r} has the wrong number of values for a DALI {kind}",
                node.expr.pos,
            )
        return self.region(Region(kind, values))

    def _Unary(self, node: t.Unary) -> Sql:
        return cat(f"({node.op} ", self.expr(node.operand), ")")

    def _Chain(self, node: t.Chain) -> Sql:
        parts: list[str | Sql] = ["(", self.expr(node.first)]
        for op, operand in node.rest:
            parts += [f" {'#' if op == '^' else op} ", self.expr(operand)]
        parts.append(")")
        return cat(*parts)

    def _Case(self, node: t.Case) -> Sql:
        parts: list[str | Sql] = ["CASE"]
        if node.subject is not None:
            parts += [" ", self.expr(node.subject)]
        for cond, result in node.whens:
            parts += [" WHEN ", self.expr(cond), " THEN ", self.expr(result)]
        if node.else_ is not None:
            parts += [" ELSE ", self.expr(node.else_)]
        parts.append(" END")
        return cat(*parts)

    def _ScalarSubquery(self, node: t.ScalarSubquery) -> Sql:
        return cat("(", self.query_expr(node.query, top=False), ")")

    def _Comparison(self, node: t.Comparison) -> Sql:
        special = self._geometry_predicate(node) or self._distance_predicate(node)
        if special is not None:
            return special
        left = self.operand(node.left, node.right)
        return cat("(", left, f" {node.op} ", self.operand(node.right, node.left), ")")

    def _geometry_predicate(self, node: t.Comparison) -> Sql | None:
        """``1 = CONTAINS(a, b)`` and the like, as boolean pgsphere operators."""
        if node.op not in ("=", "<>"):
            return None
        for call, other in ((node.left, node.right), (node.right, node.left)):
            if isinstance(call, t.FunctionCall) and call.name in ("CONTAINS", "INTERSECTS"):
                value = _number_value(other)
                if value not in (0.0, 1.0):
                    return None
                truth = (value == 1.0) == (node.op == "=")
                predicate = self.spatial_predicate(call)
                return predicate if truth else cat("(NOT ", predicate, ")")
        return None

    def _distance_predicate(self, node: t.Comparison) -> Sql | None:
        """``DISTANCE(p, q) < r`` as an index-friendly cone test plus the exact distance test."""
        if (
            node.op in ("<", "<=")
            and isinstance(node.left, t.FunctionCall)
            and node.left.name == "DISTANCE"
        ):
            call, radius, op = node.left, node.right, node.op
        elif (
            node.op in (">", ">=")
            and isinstance(node.right, t.FunctionCall)
            and node.right.name == "DISTANCE"
        ):
            call, radius, op = node.right, node.left, {">": "<", ">=": "<="}[node.op]
        else:
            return None
        if not _is_constant(radius):
            return None
        p, q = self.distance_points(call)
        half = len(call.args) // 2
        if self.index_preference(*call.args[half:]) > self.index_preference(*call.args[:half]):
            p, q = q, p  # left of <@, where a GiST index can serve
        r = self.expr(radius)
        exact = cat("degrees(", p, " <-> ", q, f") {op} ", r)
        value = _number_value(radius)
        if value is not None:
            if not 0 <= value <= 90:
                return cat("(", exact, ")")
            return cat("(", p, " <@ scircle(", q, ", radians(", r, ")) AND ", exact, ")")
        return cat(
            "((",
            p,
            " <@ scircle(",
            q,
            ", radians(GREATEST(LEAST(",
            r,
            ", 90), 0))) OR ",
            r,
            " > 90) AND ",
            exact,
            ")",
        )

    def _Between(self, node: t.Between) -> Sql:
        return cat(
            "(",
            self.operand(node.expr, node.low, node.high),
            " NOT BETWEEN " if node.negated else " BETWEEN ",
            self.operand(node.low, node.expr),
            " AND ",
            self.operand(node.high, node.expr),
            ")",
        )

    def _InList(self, node: t.InList) -> Sql:
        return cat(
            "(",
            self.operand(node.expr, *node.items),
            " NOT IN (" if node.negated else " IN (",
            join(", ", (self.operand(i, node.expr) for i in node.items)),
            "))",
        )

    def _InSubquery(self, node: t.InSubquery) -> Sql:
        return cat(
            "(",
            self.expr(node.expr),
            " NOT IN (" if node.negated else " IN (",
            self.query_expr(node.query, top=False),
            "))",
        )

    def _Like(self, node: t.Like) -> Sql:
        op = ("NOT " if node.negated else "") + ("ILIKE" if node.case_insensitive else "LIKE")
        return cat("(", self.expr(node.expr), f" {op} ", self.expr(node.pattern), " ESCAPE '')")

    def _IsNull(self, node: t.IsNull) -> Sql:
        return cat("(", self.expr(node.expr), " IS NOT NULL)" if node.negated else " IS NULL)")

    def _Exists(self, node: t.Exists) -> Sql:
        return cat("EXISTS (", self.query_expr(node.query, top=False), ")")

    def _BoolOp(self, node: t.BoolOp) -> Sql:
        return cat("(", join(f" {node.op} ", (self.expr(o) for o in node.operands)), ")")

    def _Not(self, node: t.Not) -> Sql:
        return cat("(NOT ", self.expr(node.operand), ")")

    # ---- functions

    def _FunctionCall(self, node: t.FunctionCall) -> Sql:
        spec = self.found.functions[node]
        name = node.name
        if spec.family == "udf":
            return cat(quote(name.lower()), "(", join(", ", (self.expr(a) for a in node.args)), ")")
        if spec.family == "geometry":
            return self.geometry(node)
        args = [self.expr(a) for a in node.args]
        if spec.is_aggregate:
            if node.star:
                return Sql("count(*)")
            quantifier = f"{node.quantifier} " if node.quantifier else ""
            return cat(f"{_FUNCTION_NAMES[name]}({quantifier}", args[0], ")")
        arg_types = [self.found.types[a] for a in node.args]
        if name == "RAND":
            return Sql("random()")  # PostgreSQL cannot seed one call: a seed argument is ignored
        if name in ("ROUND", "TRUNCATE", "CEILING", "FLOOR") and arg_types[0].is_integer:
            # whole numbers stay whole numbers of the same type (PostgreSQL would make them double)
            if len(args) == 1:
                return cat("(", args[0], ")")
            pg = "round" if name == "ROUND" else "trunc"
            return cat(
                f"CAST({pg}(CAST(", args[0], " AS numeric), ", args[1], f") AS {arg_types[0].pg})"
            )
        if name in ("ROUND", "TRUNCATE"):
            pg = "round" if name == "ROUND" else "trunc"
            if len(args) == 1:
                return cat(f"{pg}(", args[0], ")")
            return cat(
                f"CAST({pg}(CAST(", args[0], " AS numeric), ", args[1], ") AS double precision)"
            )
        if name == "MOD":
            if arg_types[0].is_integer and arg_types[1].is_integer:
                return cat("mod(", args[0], ", ", args[1], ")")
            return cat(
                "CAST(mod(CAST(",
                args[0],
                " AS numeric), CAST(",
                args[1],
                " AS numeric)) AS double precision)",
            )
        if name == "IN_UNIT":
            return cat("(", args[0], f" * {_literal(self.found.unit_factors[node])})")
        return cat(f"{_FUNCTION_NAMES[name]}(", join(", ", args), ")")

    def _geometry_args(self, node: t.FunctionCall) -> list[t.Expr]:
        args = list(node.args)
        if (
            node.name in ("POINT", "CIRCLE", "BOX", "POLYGON")
            and args
            and isinstance(args[0], (t.String, t.Null))
        ):
            return args[1:]
        return args

    def geometry(self, node: t.FunctionCall) -> Sql:
        name = node.name
        args = self._geometry_args(node)
        sql = [self.expr(a) for a in args]
        kinds = [self.found.types[a].geometry for a in args]
        if name == "POINT":
            return _point(sql[0], sql[1])
        if name == "CIRCLE":
            centre = sql[0] if len(sql) == 2 else _point(sql[0], sql[1])
            return cat("scircle(", centre, ", ", _radians(sql[-1]), ")")
        if name == "BOX":
            if len(sql) == 3:
                return self._box(
                    cat("degrees(long(", sql[0], "))"),
                    cat("degrees(lat(", sql[0], "))"),
                    sql[1],
                    sql[2],
                )
            return self._box(*sql)
        if name == "POLYGON":
            if any(k == "point" for k in kinds):
                rows = [cat(f"({i}, ", s, ")") for i, s in enumerate(sql, start=1)]
                return cat(
                    "(SELECT spoly(v.p ORDER BY v.n) FROM (VALUES ",
                    join(", ", rows),
                    ") AS v(n, p))",
                )
            rows = [
                cat(f"({i}, ", sql[2 * i - 2], ", ", sql[2 * i - 1], ")")
                for i in range(1, len(sql) // 2 + 1)
            ]
            return cat(
                "(SELECT spoly(spoint(radians(v.x), radians(v.y)) ORDER BY v.n) FROM (VALUES ",
                join(", ", rows),
                ") AS v(n, x, y))",
            )
        if name == "REGION":
            return self.region(self.found.regions[node])
        if name == "COORD1":
            return cat("degrees(long(", sql[0], "))")
        if name == "COORD2":
            return cat("degrees(lat(", sql[0], "))")
        if name == "COORDSYS":
            return cat("(CASE WHEN ", sql[0], " IS NULL THEN NULL ELSE 'ICRS' END)")
        if name == "AREA":
            if kinds[0] == "point":
                return cat("(CASE WHEN ", sql[0], " IS NULL THEN NULL ELSE 0.0 END)")
            return cat("degrees(degrees(area(", sql[0], ")))")
        if name == "CENTROID":
            return self._centroid(sql[0], kinds[0])
        if name == "DISTANCE":
            p, q = self.distance_points(node)
            return cat("degrees(", p, " <-> ", q, ")")
        return cat("CAST(", self.spatial_predicate(node), " AS integer)")

    @staticmethod
    def _box(ra: Sql, dec: Sql, width: Sql, height: Sql) -> Sql:
        def corner(sign: str) -> Sql:
            return _point(
                cat("(", ra, f" {sign} (", width, ") / 2.0)"),
                cat("(", dec, f" {sign} (", height, ") / 2.0)"),
            )

        return cat("sbox(", corner("-"), ", ", corner("+"), ")")

    def region(self, region: Region) -> Sql:
        v = [Sql(_literal(x)) for x in region.values]
        if region.kind == "point":
            return _point(v[0], v[1])
        if region.kind == "circle":
            return cat("scircle(", _point(v[0], v[1]), ", ", _radians(v[2]), ")")
        if region.kind == "box":
            return self._box(*v)
        rows = [
            cat(f"({i}, ", v[2 * i - 2], ", ", v[2 * i - 1], ")") for i in range(1, len(v) // 2 + 1)
        ]
        return cat(
            "(SELECT spoly(spoint(radians(v.x), radians(v.y)) ORDER BY v.n) FROM (VALUES ",
            join(", ", rows),
            ") AS v(n, x, y))",
        )

    @staticmethod
    def _centroid(sql: Sql, kind: str | None) -> Sql:
        if kind == "point":
            return sql
        if kind == "circle":
            return cat("center(", sql, ")")
        # polygon or box: the normalised mean of the vertices' unit vectors
        if kind == "box":
            corners = [cat(f"{c}(", sql, ")") for c in ("sw", "se", "ne", "nw")]
            source = cat(
                "(SELECT long(c.p) AS x, lat(c.p) AS y FROM (VALUES ",
                join(", ", (cat("(", c, ")") for c in corners)),
                ") AS c(p))",
            )
        else:
            numbers = _POLYGON_NUMBERS.format("__SQL__")
            before, after = numbers.split("__SQL__")
            source = cat(
                "(SELECT a[2 * i - 1] AS x, a[2 * i] AS y FROM (SELECT ",
                before,
                sql,
                after,
                " AS a) AS s, generate_series(1, array_length(a, 1) / 2) AS i)",
            )
        return cat(
            "(SELECT spoint(atan2(sum(cos(y) * sin(x)), sum(cos(y) * cos(x))), "
            "atan2(sum(sin(y)), "
            "sqrt(power(sum(cos(y) * cos(x)), 2) + power(sum(cos(y) * sin(x)), 2)))) "
            "FROM ",
            source,
            " AS vertices)",
        )

    def distance_points(self, node: t.FunctionCall) -> tuple[Sql, Sql]:
        sql = [self.expr(a) for a in node.args]
        if len(sql) == 4:
            return _point(sql[0], sql[1]), _point(sql[2], sql[3])
        return sql[0], sql[1]

    def spatial_predicate(self, node: t.FunctionCall) -> Sql:
        """CONTAINS / INTERSECTS as a boolean pgsphere expression."""
        a, b = (self.expr(x) for x in node.args)
        ka, kb = (self.found.types[x].geometry for x in node.args)
        if ka == "point" and kb == "point":
            return cat("(", a, " = ", b, ")")
        if ka == "point":
            return self.point_within(node.args[0], node.args[1], a, b)
        if node.name == "CONTAINS":
            return cat("(", a, " <@ ", b, ")")
        if kb == "point":
            return self.point_within(node.args[1], node.args[0], b, a)
        return cat("(", a, " && ", b, ")")

    def point_within(self, point: t.Expr, region: t.Expr, point_sql: Sql, region_sql: Sql) -> Sql:
        """``point <@ region``; for a circle whose centre an index is likelier to
        cover than the point, ``centre <@ scircle(point, radius)`` (the same test)."""
        parts = self._circle_parts(region)
        if parts is not None:
            centre, radius = parts
            here = self.index_preference(point)
            if self.index_preference(*centre) > here and self.index_preference(radius) <= here:
                centre_sql = [self.expr(c) for c in centre]
                swapped = centre_sql[0] if len(centre_sql) == 1 else _point(*centre_sql)
                return cat(
                    "(", swapped, " <@ scircle(", point_sql, ", ", _radians(self.expr(radius)), "))"
                )
        return cat("(", point_sql, " <@ ", region_sql, ")")

    def _circle_parts(self, region: t.Expr) -> tuple[list[t.Expr], t.Expr] | None:
        """(centre, radius) of a ``CIRCLE(...)`` call: the centre as one point or as ra, dec."""
        if not (isinstance(region, t.FunctionCall) and region.name == "CIRCLE"):
            return None
        if self.found.functions[region].family != "geometry":
            return None
        args = self._geometry_args(region)
        return args[:-1], args[-1]

    def index_preference(self, *exprs: t.Expr) -> tuple[int, int]:
        """How likely an index covers the point made of ``exprs`` (larger: likelier).

        Columns of a published table (2) rank above columns of an uploaded one
        (1, a small table the query scans anyway), above constants (0); then a
        bare column (an indexed ``spoint``) above a point computed from columns.
        A radius is ranked the same way: it must not come from a table ranked
        above the point it would be centred on.
        """
        bindings = [
            self.found.columns[n]
            for e in exprs
            for n in t.walk(e)
            if isinstance(n, t.ColumnRef) and n in self.found.columns
        ]
        if not bindings:
            origin = 0
        elif all(b.uploaded for b in bindings):
            origin = 1
        else:
            origin = 2
        return origin, int(len(exprs) == 1 and isinstance(exprs[0], t.ColumnRef))
