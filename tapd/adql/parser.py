"""ADQL text -> syntax tree (``tapd.adql.tree``), or one clear ``AdqlSyntaxError``.

lark's LALR(1) parser runs with the ``_TreeBuilder`` callbacks below, so the
tree is built bottom-up while parsing (no recursion, whatever the input).
The builder also enforces what the grammar leaves open: predicates only where
a condition belongs, values elsewhere, reserved words not used as names,
whole numbers after TOP and OFFSET, CAST targets, and the bounds on nesting.
``parse_adql`` then checks every function call against the registry of ADQL
functions and declared UDFs.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterable, Mapping, Sequence
from importlib import resources
from typing import Any, TypeVar, cast

import lark
from lark import Token
from lark.exceptions import UnexpectedCharacters, UnexpectedInput, UnexpectedToken

from tapd.adql import tree as t
from tapd.adql.errors import AdqlSyntaxError, AdqlTypeError, AdqlUnknownFunction
from tapd.adql.functions import STANDARD_FUNCTIONS, FunctionSpec, function_table
from tapd.adql.lexicon import is_reserved
from tapd.adql.types import ADQL_TYPES, CAST_TARGETS, GEOMETRY_KINDS

#: Longest query text accepted, in characters.
MAX_QUERY_LENGTH = 100_000
#: Most items in a SELECT list (PostgreSQL's limit on result columns).
MAX_SELECT_ITEMS = 1664
#: Longest numeric literal accepted, in characters.
MAX_NUMBER_LENGTH = 100
#: Deepest nesting of expressions and subqueries accepted.
MAX_DEPTH = 100
#: Most operands in one chain of arithmetic, bitwise or || operators (PostgreSQL
#: parses such chains recursively and runs out of stack at a few thousand).
MAX_CHAIN = 1000

_GEOMETRY_CONSTRUCTORS = ("POINT", "CIRCLE", "BOX", "POLYGON")


def _pos(item: Any) -> t.Pos:
    if isinstance(item, Token):
        return t.Pos(item.line or 1, item.column or 1)
    if isinstance(item, t.Node):
        return item.pos
    if isinstance(item, t.Ident) and item.pos is not None:
        return item.pos
    raise TypeError(f"no position for {item!r}")


def _depth_of(value: Any) -> int:
    depth = getattr(value, "depth", None)
    if depth is not None:
        return depth  # type: ignore[no-any-return]
    if value.__class__ is tuple:
        return max(map(_depth_of, value), default=0)
    return 0


N = TypeVar("N", bound=t.Node)


def _make(cls: type[N], pos: t.Pos, *args: Any, **kwargs: Any) -> N:
    """A node with its depth computed from its children; refuses too deep a tree."""
    depth = 1 + max(map(_depth_of, args), default=0)
    if kwargs:
        depth = max(depth, 1 + max(map(_depth_of, kwargs.values())))
    if depth > MAX_DEPTH:
        raise AdqlSyntaxError(
            f"the query is nested too deeply (more than {MAX_DEPTH} levels); simplify it", pos
        )
    return cls(pos, *args, depth=depth, **kwargs)


def _value(expr: t.Expr) -> t.Expr:
    """``expr``, which must be a value (not a condition)."""
    if isinstance(expr, t.PREDICATES):
        raise AdqlSyntaxError(
            "a condition (comparison, LIKE, IN, BETWEEN, AND/OR...) cannot be used as a value here",
            expr.pos,
        )
    return expr


def _condition(expr: t.Expr, where: str) -> t.Expr:
    """``expr``, which must be a condition (a predicate), as WHERE/ON/HAVING/WHEN need."""
    if isinstance(expr, (*t.PREDICATES, t.Boolean)):
        return expr
    if isinstance(expr, t.FunctionCall) and expr.name in ("CONTAINS", "INTERSECTS"):
        hint = f"{expr.name}(...) gives 1 or 0: compare it, as in 1 = {expr.name}(...)"
    else:
        hint = "compare it with something, e.g. x = 1"
    raise AdqlSyntaxError(f"{where} needs a condition, but this is a value; {hint}", expr.pos)


#: Functions that always yield a geometry (ADQL 2.1 §4.2), by the kind they yield.
_GEOMETRY_RESULTS = {
    "POINT": "point",
    "CENTROID": "point",
    "CIRCLE": "circle",
    "BOX": "box",
    "POLYGON": "polygon",
    "REGION": "region",
}


def _evident_geometry(expr: t.Expr) -> str | None:
    """The geometry kind ``expr`` yields whatever the catalog says, or None if not evident."""
    if isinstance(expr, t.FunctionCall):
        kind = _GEOMETRY_RESULTS.get(expr.name)
        spec = getattr(_parsing, "functions", STANDARD_FUNCTIONS).get(expr.name)
        if kind is None and spec is not None and spec.returns is not None:
            return GEOMETRY_KINDS.get(ADQL_TYPES.get(spec.returns, ""))  # a UDF's declared type
        return kind
    if isinstance(expr, t.Cast):
        return GEOMETRY_KINDS.get(ADQL_TYPES[expr.target.name])
    return None


def _refuse_geometry(expr: t.Expr, op: str) -> None:
    """A type error when ``expr`` is evidently a geometry (the checker finds the others)."""
    kind = _evident_geometry(expr)
    if kind is not None:
        raise AdqlTypeError(f"{op} joins strings, but this is a {kind}", expr.pos)


def _whole_number(token: Token, after: str, largest: int = 2**63 - 1) -> int:
    text = str(token)
    if not text.isdigit():
        raise AdqlSyntaxError(f"{after} needs a whole number, found {text}", _pos(token))
    if len(text.lstrip("0")) > len(str(largest)) or int(text) > largest:
        raise AdqlSyntaxError(f"{after} takes at most {largest}", _pos(token))
    return int(text)


def _with_trailing_order(query: t.QueryExpr, clauses: list[Any]) -> t.QueryExpr:
    """``query`` with an ORDER BY / OFFSET written after its closing parenthesis."""
    parts = dict(clauses)
    if not parts:
        return query
    if isinstance(query, t.Select) or query.order_by or query.offset is not None:
        raise AdqlSyntaxError(
            "this ORDER BY or OFFSET follows a query in parentheses that cannot take it; "
            "put it inside the parentheses",
            query.pos,
        )
    return dataclasses.replace(
        query, order_by=parts.get("order_by", ()), offset=parts.get("offset"), depth=query.depth
    )


class _TreeBuilder:
    """lark callbacks, one per grammar rule or alias, building ``tapd.adql.tree`` nodes."""

    # ---- names and literals

    def name(self, c: list[Token]) -> t.Ident:
        token = c[0]
        pos = _pos(token)
        if token.type == "DELIMITED":
            return t.Ident(str(token)[1:-1].replace('""', '"'), True, pos)
        text = str(token)
        if is_reserved(text):
            raise AdqlSyntaxError(
                f"{text} is a reserved word; to use it as a name, "
                f'put it in double quotes: "{text.lower()}"',
                pos,
            )
        return t.Ident(text, False, pos)

    def qualified_name(self, c: list[Any]) -> tuple[t.Ident, ...]:
        if len(c) == 1:
            return (c[0],)
        return (*c[0], c[-1])

    def number(self, c: list[Token]) -> t.Number:
        text = str(c[0])
        if len(text) > MAX_NUMBER_LENGTH:
            raise AdqlSyntaxError(
                f"a number may have at most {MAX_NUMBER_LENGTH} characters", _pos(c[0])
            )
        return _make(t.Number, _pos(c[0]), text, text.isdigit())

    def hexnum(self, c: list[Token]) -> t.Number:
        digits = str(c[0])[2:].lstrip("0")
        if len(digits) > 16:
            raise AdqlSyntaxError("a hexadecimal number may have at most 64 bits", _pos(c[0]))
        return _make(t.Number, _pos(c[0]), str(int(digits or "0", 16)), True)

    def string(self, c: list[Token]) -> t.String:
        value = "".join(str(tok)[1:-1].replace("''", "'") for tok in c)
        if "\x00" in value:
            raise AdqlSyntaxError("a string cannot contain the NUL character", _pos(c[0]))
        return _make(t.String, _pos(c[0]), value)

    def null(self, c: list[Token]) -> t.Null:
        return _make(t.Null, _pos(c[0]))

    def true(self, c: list[Token]) -> t.Boolean:
        return _make(t.Boolean, _pos(c[0]), True)

    def false(self, c: list[Token]) -> t.Boolean:
        return _make(t.Boolean, _pos(c[0]), False)

    # ---- value expressions

    def column_ref(self, c: list[Any]) -> t.ColumnRef:
        parts: tuple[t.Ident, ...] = c[0]
        if len(parts) > 4:
            raise AdqlSyntaxError(
                "a column name has at most 4 parts (catalog.schema.table.column)", _pos(parts[0])
            )
        return _make(t.ColumnRef, _pos(parts[0]), parts)

    def args(self, c: list[t.Expr]) -> tuple[t.Expr, ...]:
        return tuple(_value(e) for e in c)

    def function_call(self, c: list[Any]) -> t.FunctionCall:
        args = c[2] if len(c) > 2 else ()
        return _checked(_make(t.FunctionCall, _pos(c[0]), str(c[0]).upper(), args))

    def function_call_quantified(self, c: list[Any]) -> t.FunctionCall:
        call = _make(t.FunctionCall, _pos(c[0]), str(c[0]).upper(), c[3], quantifier=c[2][1])
        return _checked(call)

    def function_call_star(self, c: list[Any]) -> t.FunctionCall:
        return _checked(_make(t.FunctionCall, _pos(c[0]), str(c[0]).upper(), (), star=True))

    def cast_type(self, c: list[Token]) -> t.TypeName:
        words = [str(tok).upper() for tok in c if tok.type == "IDENT"]
        lengths = [tok for tok in c if tok.type == "NUMBER"]
        name = " ".join(words)
        pos = _pos(c[0])
        if name not in CAST_TARGETS:
            raise AdqlSyntaxError(
                f"cannot CAST to {' '.join(str(tok) for tok in c if tok.type == 'IDENT')}; "
                f"ADQL can cast to {', '.join(CAST_TARGETS)}",
                pos,
            )
        length = None
        if lengths:
            if name not in ("CHAR", "VARCHAR"):
                raise AdqlSyntaxError(f"{name} takes no length", _pos(lengths[0]))
            length = _whole_number(lengths[0], name, largest=10_485_760)  # PostgreSQL's limit
            if length < 1:
                raise AdqlSyntaxError(f"{name} needs a length of at least 1", _pos(lengths[0]))
        return _make(t.TypeName, pos, name, length)

    def cast(self, c: list[Any]) -> t.Cast:
        return _make(t.Cast, _pos(c[0]), _value(c[2]), c[4])

    def when_clause(self, c: list[Any]) -> tuple[str, t.Expr, t.Expr]:
        return ("when", c[1], _value(c[3]))

    def else_clause(self, c: list[Any]) -> tuple[str, t.Expr]:
        return ("else", _value(c[1]))

    def _case(self, c: list[Any], subject: t.Expr | None) -> t.Case:
        whens = []
        else_ = None
        for item in c:
            if isinstance(item, tuple) and item[0] == "when":
                cond = _value(item[1]) if subject is not None else _condition(item[1], "WHEN")
                whens.append((cond, item[2]))
            elif isinstance(item, tuple) and item[0] == "else":
                else_ = item[1]
        return _make(t.Case, _pos(c[0]), subject, tuple(whens), else_)

    def searched_case(self, c: list[Any]) -> t.Case:
        return self._case(c, None)

    def simple_case(self, c: list[Any]) -> t.Case:
        return self._case(c, _value(c[1]))

    def paren(self, c: list[Any]) -> t.Expr:
        expr: t.Expr = c[1]
        return expr

    def scalar_subquery(self, c: list[Any]) -> t.ScalarSubquery:
        return _make(t.ScalarSubquery, c[0].pos, c[0])

    def unary(self, c: list[Any]) -> t.Unary:
        return _make(t.Unary, _pos(c[0]), str(c[0]), _value(c[1]))

    def _chain(self, c: list[Any]) -> t.Chain:
        if len(c) > 2 * MAX_CHAIN:
            raise AdqlSyntaxError(
                f"this expression chains more than {MAX_CHAIN} operands; split it up", _pos(c[0])
            )
        first = _value(c[0])
        rest = tuple((str(c[i]), _value(c[i + 1])) for i in range(1, len(c), 2))
        if any(op == "||" for op, _ in rest):
            for operand in (first, *(e for _, e in rest)):
                _refuse_geometry(operand, "||")
        return _make(t.Chain, _pos(first), first, rest)

    value = additive = term = _chain

    # ---- predicates

    def comparison(self, c: list[Any]) -> t.Comparison:
        op = "<>" if str(c[1]) == "!=" else str(c[1])
        return _make(t.Comparison, _pos(c[0]), op, _value(c[0]), _value(c[2]))

    @staticmethod
    def _negated(c: list[Any]) -> bool:
        return any(isinstance(x, Token) and x.type == "NOT" for x in c)

    def between(self, c: list[Any]) -> t.Between:
        values = [x for x in c if not isinstance(x, Token)]
        return _make(t.Between, _pos(c[0]), *(_value(v) for v in values), self._negated(c))

    def in_(self, c: list[Any]) -> t.InList | t.InSubquery:
        kind, payload = c[-1]
        if kind == "subquery":
            return _make(t.InSubquery, _pos(c[0]), _value(c[0]), payload, self._negated(c))
        return _make(t.InList, _pos(c[0]), _value(c[0]), payload, self._negated(c))

    def in_subquery(self, c: list[Any]) -> tuple[str, t.QueryExpr]:
        return ("subquery", c[0])

    def in_list(self, c: list[Any]) -> tuple[str, tuple[t.Expr, ...]]:
        return ("list", tuple(_value(e) for e in c if not isinstance(e, Token)))

    def _like(self, c: list[Any], case_insensitive: bool) -> t.Like:
        return _make(
            t.Like, _pos(c[0]), _value(c[0]), _value(c[-1]), self._negated(c), case_insensitive
        )

    def like(self, c: list[Any]) -> t.Like:
        return self._like(c, False)

    def ilike(self, c: list[Any]) -> t.Like:
        return self._like(c, True)

    def is_null(self, c: list[Any]) -> t.IsNull:
        return _make(t.IsNull, _pos(c[0]), _value(c[0]), self._negated(c[1:]))

    def exists(self, c: list[Any]) -> t.Exists:
        return _make(t.Exists, _pos(c[0]), c[1])

    def _bool(self, c: list[Any], op: str) -> t.BoolOp:
        operands = tuple(_condition(x, op) for x in c if not isinstance(x, Token))
        return _make(t.BoolOp, operands[0].pos, op, operands)

    def expr(self, c: list[Any]) -> t.BoolOp:
        return self._bool(c, "OR")

    def and_expr(self, c: list[Any]) -> t.BoolOp:
        return self._bool(c, "AND")

    def not_(self, c: list[Any]) -> t.Not:
        return _make(t.Not, _pos(c[0]), _condition(c[1], "NOT"))

    # ---- FROM

    def alias(self, c: list[Any]) -> t.Ident:
        ident: t.Ident = c[-1]
        return ident

    def table_name(self, c: list[Any]) -> t.TableRef:
        parts: tuple[t.Ident, ...] = c[0]
        if len(parts) > 3:
            raise AdqlSyntaxError(
                "a table name has at most 3 parts (catalog.schema.table)", _pos(parts[0])
            )
        return _make(t.TableRef, _pos(parts[0]), parts, c[1] if len(c) > 1 else None)

    def derived_table(self, c: list[Any]) -> t.DerivedTable:
        return _make(t.DerivedTable, c[0].pos, c[0], c[1])

    def paren_join(self, c: list[Any]) -> t.Join:
        join: t.Join = c[0]
        return join

    def join_type(self, c: list[Token]) -> str:
        return str(c[0].type)

    def join_on(self, c: list[Any]) -> tuple[str, t.Expr]:
        return ("on", _condition(c[1], "ON"))

    def join_using(self, c: list[Any]) -> tuple[str, tuple[t.Ident, ...]]:
        return ("using", tuple(x for x in c if isinstance(x, t.Ident)))

    def joined_table(self, c: list[Any]) -> t.Join:
        left = c[0]
        kind = c[1] if isinstance(c[1], str) and not isinstance(c[1], Token) else "INNER"
        if not isinstance(c[-1], tuple):  # no ON or USING: every pair of rows
            return _make(t.Join, _pos(left), kind, left, c[-1])
        right = c[-2]
        spec_kind, spec = c[-1]
        if spec_kind == "on":
            return _make(t.Join, _pos(left), kind, left, right, on=spec)
        return _make(t.Join, _pos(left), kind, left, right, using=spec)

    def natural_join(self, c: list[Any]) -> t.Join:
        left, right = c[0], c[-1]
        kinds = [x for x in c[1:-1] if isinstance(x, str) and not isinstance(x, Token)]
        return _make(t.Join, _pos(left), kinds[0] if kinds else "INNER", left, right, natural=True)

    # ---- SELECT

    def set_quantifier(self, c: list[Token]) -> tuple[str, str]:
        return ("quantifier", str(c[0].type))

    def top(self, c: list[Token]) -> tuple[str, int]:
        return ("top", _whole_number(c[1], "TOP"))

    def select_expr(self, c: list[Any]) -> t.SelectItem:
        return _make(t.SelectItem, c[0].pos, _value(c[0]), c[1] if len(c) > 1 else None)

    def select_all(self, c: list[Token]) -> t.Star:
        return _make(t.Star, _pos(c[0]), None)

    def select_qualified_all(self, c: list[Any]) -> t.Star:
        return _make(t.Star, _pos(c[0][0]), c[0])

    def select_list(self, c: list[Any]) -> tuple[str, tuple[Any, ...]]:
        if len(c) > MAX_SELECT_ITEMS:
            raise AdqlSyntaxError(
                f"the query selects {len(c)} columns; PostgreSQL allows at most {MAX_SELECT_ITEMS}",
                _pos(c[0]),
            )
        return ("items", tuple(c))

    def from_clause(self, c: list[Any]) -> tuple[str, tuple[Any, ...]]:
        return ("from_", tuple(c[1:]))

    def where_clause(self, c: list[Any]) -> tuple[str, t.Expr]:
        return ("where", _condition(c[1], "WHERE"))

    def group_by_clause(self, c: list[Any]) -> tuple[str, tuple[t.Expr, ...]]:
        return ("group_by", tuple(_value(e) for e in c[2:]))

    def having_clause(self, c: list[Any]) -> tuple[str, t.Expr]:
        return ("having", _condition(c[1], "HAVING"))

    def order_item(self, c: list[Any]) -> t.OrderItem:
        descending = len(c) > 1 and c[1].type == "DESC"
        return _make(t.OrderItem, c[0].pos, _value(c[0]), descending)

    def order_by_clause(self, c: list[Any]) -> tuple[str, tuple[t.OrderItem, ...]]:
        return ("order_by", tuple(c[2:]))

    def offset_clause(self, c: list[Token]) -> tuple[str, int]:
        return ("offset", _whole_number(c[1], "OFFSET"))

    def select_query(self, c: list[Any]) -> t.Select:
        parts = dict(x for x in c[1:])
        return _make(
            t.Select,
            _pos(c[0]),
            parts.get("quantifier"),
            parts.get("top"),
            parts["items"],
            parts["from_"],
            where=parts.get("where"),
            group_by=parts.get("group_by", ()),
            having=parts.get("having"),
            order_by=parts.get("order_by", ()),
            offset=parts.get("offset"),
        )

    # ---- query expressions

    def subquery(self, c: list[Any]) -> t.QueryExpr:
        query = _with_trailing_order(c[1], c[2:])
        return dataclasses.replace(query, parenthesized=True, depth=query.depth)

    def _set_operation(self, c: list[Any], op: str) -> t.SetOperation:
        left, right = c[0], c[-1]
        is_all = any(isinstance(x, Token) and x.type == "ALL" for x in c)
        if (left.order_by or left.offset is not None) and not left.parenthesized:
            raise AdqlSyntaxError(
                f"ORDER BY and OFFSET can only follow the last query of {op}; "
                "put the query in parentheses to order it on its own",
                left.pos,
            )
        order_by: tuple[t.OrderItem, ...] = ()
        offset = None
        if not right.parenthesized and (right.order_by or right.offset is not None):
            # "A UNION B ORDER BY x" orders the whole result, not B.
            order_by, offset = right.order_by, right.offset
            right = dataclasses.replace(right, order_by=(), offset=None, depth=right.depth)
        return _make(
            t.SetOperation, left.pos, op, is_all, left, right, order_by=order_by, offset=offset
        )

    def union(self, c: list[Any]) -> t.SetOperation:
        return self._set_operation(c, "UNION")

    def except_(self, c: list[Any]) -> t.SetOperation:
        return self._set_operation(c, "EXCEPT")

    def intersect(self, c: list[Any]) -> t.SetOperation:
        return self._set_operation(c, "INTERSECT")

    def column_list(self, c: list[t.Ident]) -> tuple[t.Ident, ...]:
        return tuple(c)

    def cte(self, c: list[Any]) -> t.CommonTable:
        columns = c[1] if isinstance(c[1], tuple) else None
        return _make(t.CommonTable, _pos(c[0]), c[0], columns, c[-1])

    def with_clause(self, c: list[Any]) -> tuple[str, tuple[t.CommonTable, ...]]:
        return ("with", tuple(c[1:]))

    def query(self, c: list[Any]) -> t.Query:
        with_: tuple[t.CommonTable, ...] = ()
        if isinstance(c[0], tuple) and c[0][0] == "with":
            with_, c = c[0][1], c[1:]
        body = _with_trailing_order(c[0], c[1:])
        return _make(t.Query, body.pos if not with_ else with_[0].pos, with_, body)

    def start(self, c: list[Any]) -> t.Query:
        query: t.Query = c[0]
        return query


_parser_lock = threading.Lock()
_parser: lark.Lark | None = None


def _grammar() -> str:
    return resources.files("tapd.adql").joinpath("adql.lark").read_text()


def get_parser() -> lark.Lark:
    """The shared LALR parser (built once per process; call early to pay the ~0.1 s up front)."""
    global _parser
    if _parser is None:
        with _parser_lock:
            if _parser is None:
                _parser = lark.Lark(
                    _grammar(),
                    parser="lalr",
                    lexer="basic",
                    transformer=_TreeBuilder(),
                    propagate_positions=False,
                    maybe_placeholders=False,
                )
    return _parser


# ---- error messages

_EXPRESSION_STARTS = {
    "IDENT",
    "DELIMITED",
    "NUMBER",
    "HEXNUM",
    "STRING",
    "NULL",
    "TRUE",
    "FALSE",
    "LPAR",
    "PLUS",
    "MINUS",
    "TILDE",
    "CAST",
    "CASE",
}
_OPERATORS = {
    "COMP_OP",
    "CONCAT",
    "BITOR",
    "BITXOR",
    "BITAND",
    "PLUS",
    "MINUS",
    "STAR",
    "SOLIDUS",
    "AND",
    "OR",
    "NOT",
    "IN",
    "BETWEEN",
    "LIKE",
    "ILIKE",
    "IS",
}
_PUNCTUATION = {
    "RPAR": "')'",
    "LPAR": "'('",
    "COMMA": "','",
    "DOT": "'.'",
    "STAR": "'*'",
    "$END": "the end of the query",
    "NUMBER": "a number",
}
#: Order in which expected keywords are listed (most helpful first).
_KEYWORD_ORDER = [
    "SELECT",
    "FROM",
    "WHERE",
    "ON",
    "USING",
    "JOIN",
    "AS",
    "GROUP",
    "BY",
    "ORDER",
    "HAVING",
    "OFFSET",
    "THEN",
    "WHEN",
    "ELSE",
    "END",
    "AND",
    "UNION",
    "INTERSECT",
    "EXCEPT",
]
_KEYWORD_TEXT = {"GROUP": "GROUP BY", "ORDER": "ORDER BY"}
_JOIN_WORDS = {"INNER", "LEFT", "RIGHT", "FULL", "NATURAL", "JOIN"}
_SET_OPERATORS = {"UNION", "INTERSECT", "EXCEPT"}
_KEYWORDS = frozenset(
    """
    SELECT FROM WHERE AS AND OR NOT IN BETWEEN LIKE ILIKE IS NULL TRUE FALSE EXISTS GROUP
    BY HAVING ORDER ASC DESC TOP OFFSET DISTINCT ALL JOIN INNER LEFT RIGHT FULL OUTER
    NATURAL ON USING UNION INTERSECT EXCEPT WITH CAST CASE WHEN THEN ELSE END
    """.split()  # noqa: SIM905
)


def _describe_expected(expected: Iterable[str]) -> str:
    names = set(expected)
    items: list[str] = []
    if names & {"NUMBER", "STRING", "CASE"} and "IDENT" in names:
        items.append("a column name or expression")
        names -= _EXPRESSION_STARTS | {"EXISTS", "NOT", "ALL", "DISTINCT", "TOP", "STAR"}
    elif names & {"IDENT", "DELIMITED"}:
        items.append("a name")
        names -= {"IDENT", "DELIMITED"}
    if names & _JOIN_WORDS:
        names = (names - _JOIN_WORDS) | {"JOIN"}
    if names - _SET_OPERATORS - {"$END", "RPAR"}:
        names -= _SET_OPERATORS
    had_operator = bool(names & _OPERATORS) and len(names - _OPERATORS) > 0
    if had_operator:
        names -= _OPERATORS
    keywords = sorted(
        (n for n in names if n not in _PUNCTUATION and n.isalpha() and n.isupper()),
        key=lambda n: (_KEYWORD_ORDER.index(n) if n in _KEYWORD_ORDER else 99, n),
    )
    items += [_KEYWORD_TEXT.get(k, k) for k in keywords]
    items += [_PUNCTUATION[n] for n in sorted(names) if n in _PUNCTUATION and n != "$END"]
    if "COMP_OP" in names:
        items.append("a comparison operator")
    if had_operator:
        items.append("an operator")
    if len(items) > 6:
        items = [*items[:5], "..."]
    if "$END" in names:
        items.append("the end of the query")
    if not items:
        return "something else"
    if len(items) == 1:
        return items[0]
    return ", ".join(items[:-1]) + " or " + items[-1]


def _token_text(token: Token) -> str:
    if token.type == "$END":
        return "the end of the query"
    text = str(token)
    if len(text) > 40:
        text = text[:37] + "..."
    return f"'{text}'"


def _previous_token(text: str, offset: int) -> Token | None:
    previous = None
    try:
        for token in get_parser().lex(text):
            if token.start_pos is None or token.start_pos >= offset:
                break
            previous = token
    except UnexpectedInput:
        pass
    return previous


def _after(token: Token | None) -> str:
    if token is None:
        return ""
    if token.type in _KEYWORDS:
        return f" after {str(token).upper()}"
    return f" after {_token_text(token)}"


def _syntax_error(text: str, exc: UnexpectedInput) -> AdqlSyntaxError:
    if isinstance(exc, UnexpectedCharacters):
        pos = t.Pos(exc.line, exc.column)
        offset = exc.pos_in_stream or 0
        char = text[offset] if offset < len(text) else ""
        if text.startswith('""', offset):
            return AdqlSyntaxError("a name in double quotes cannot be empty", pos)
        if char == "_" or char.isdigit():
            return AdqlSyntaxError(
                'a name must start with a letter; put other names in double quotes, as in "_name"',
                pos,
            )
        if char == '"':
            return AdqlSyntaxError(
                "this double quote starts a delimited name that is never closed", pos
            )
        if char == "'":
            return AdqlSyntaxError("this quote starts a string that is never closed", pos)
        if char == ";":
            return AdqlSyntaxError("unexpected ';': ADQL takes one query, without a semicolon", pos)
        shown = repr(char) if char.isprintable() else f"U+{ord(char):04X}"
        return AdqlSyntaxError(f"unexpected character {shown}", pos)
    assert isinstance(exc, UnexpectedToken)
    token = exc.token
    if (
        token.type in ("SOLIDUS", "STAR")
        and "/*" in text[(token.start_pos or 1) - 1 : (token.end_pos or 0) + 1]
    ):
        return AdqlSyntaxError(
            "ADQL has no /* ... */ comments; comment with -- to the end of the line",
            t.Pos(token.line or 1, token.column or 1),
        )
    if token.type == "$END":
        pos = _end_position(text)
        previous = _previous_token(text, len(text) + 1)
    else:
        pos = t.Pos(token.line or 1, token.column or 1)
        previous = _previous_token(text, token.start_pos or 0)
    try:
        acceptable = exc.interactive_parser.accepts()  # type: ignore[no-untyped-call]
    except Exception:  # the precise set is a nicety; lark's own set is a superset
        acceptable = exc.expected
    expected = _describe_expected(acceptable or exc.expected)
    return AdqlSyntaxError(
        f"expected {expected}{_after(previous)}, found {_token_text(token)}", pos
    )


def _end_position(text: str) -> t.Pos:
    line = text.count("\n") + 1
    column = len(text) - (text.rfind("\n") + 1) + 1
    return t.Pos(line, column)


# ---- functions


def _could_be_point(expr: t.Expr) -> bool:
    return not isinstance(expr, (t.Number, t.String, t.Boolean))


def _check_geometry_arguments(call: t.FunctionCall) -> None:
    """Argument shapes of POINT/CIRCLE/BOX/POLYGON (optional coordinate system first)."""
    args = call.args
    if args and isinstance(args[0], (t.String, t.Null)):
        args = args[1:]  # the deprecated coordinate-system argument
    n = len(args)
    name = call.name
    if name == "POINT":
        ok = n == 2
        usage = "POINT([coordsys,] ra, dec)"
    elif name == "CIRCLE":
        ok = n == 3 or (n == 2 and _could_be_point(args[0]))
        usage = "CIRCLE([coordsys,] ra, dec, radius) or CIRCLE([coordsys,] point, radius)"
    elif name == "BOX":
        ok = n == 4 or (n == 3 and _could_be_point(args[0]))
        usage = "BOX([coordsys,] ra, dec, width, height) or BOX([coordsys,] point, width, height)"
    else:
        numbers = any(isinstance(a, t.Number) for a in args)
        ok = (n >= 6 and n % 2 == 0) or (n >= 3 and not numbers and all(map(_could_be_point, args)))
        usage = (
            "POLYGON([coordsys,] ra1, dec1, ra2, dec2, ra3, dec3, ...) "
            "or POLYGON([coordsys,] point1, point2, point3, ...)"
        )
    if not ok:
        raise AdqlSyntaxError(f"wrong arguments for {name}: write {usage}", call.pos)


def check_function(node: t.FunctionCall, functions: Mapping[str, FunctionSpec]) -> None:
    """``node`` names a known function with a fitting number of arguments."""
    spec = functions.get(node.name)
    if spec is None:
        raise AdqlUnknownFunction(node.name, node.pos)
    if node.star and node.name != "COUNT":
        raise AdqlSyntaxError(f"only COUNT takes *, not {node.name}", node.pos)
    if node.quantifier and not spec.is_aggregate:
        raise AdqlSyntaxError(
            f"{node.quantifier} is only allowed in aggregate functions, not in {node.name}",
            node.pos,
        )
    count = len(node.args) + (1 if node.star else 0)
    if count < spec.min_args or (spec.max_args is not None and count > spec.max_args):
        raise AdqlSyntaxError(f"{node.name} takes {spec.arity_text()}, not {count}", node.pos)
    if node.name == "DISTANCE" and count == 3:
        raise AdqlSyntaxError(
            "DISTANCE takes 2 points or 4 numbers (ra1, dec1, ra2, dec2), not 3 arguments",
            node.pos,
        )
    if node.name in _GEOMETRY_CONSTRUCTORS:
        _check_geometry_arguments(node)


#: The functions the query being parsed (in this thread) may call.
_parsing = threading.local()


def _checked(call: t.FunctionCall) -> t.FunctionCall:
    check_function(call, getattr(_parsing, "functions", STANDARD_FUNCTIONS))
    return call


# ---- entry point


def parse_adql(text: str, udfs: Sequence[str] = ()) -> t.Query:
    """The syntax tree of an ADQL 2.1 query; ``AdqlSyntaxError`` when it is not one.

    No catalog is needed: names are not resolved, but functions are checked
    against ADQL's and the declared ``udfs`` (signatures like
    ``ivo_hasword(a VARCHAR, b VARCHAR) -> INTEGER``).
    """
    if not isinstance(text, str):
        raise AdqlSyntaxError("the query must be text")
    if len(text) > MAX_QUERY_LENGTH:
        raise AdqlSyntaxError(
            f"the query is too long ({len(text)} characters; "
            f"at most {MAX_QUERY_LENGTH} are accepted)"
        )
    if not text.strip() or all(
        not line.strip() or line.strip().startswith("--") for line in text.splitlines()
    ):
        raise AdqlSyntaxError("the query is empty")
    parser = get_parser()
    _parsing.functions = function_table(udfs)
    try:
        query = cast(t.Query, parser.parse(text))
    except UnexpectedInput as exc:
        raise _syntax_error(text, exc) from None
    finally:
        _parsing.functions = STANDARD_FUNCTIONS
    return query
