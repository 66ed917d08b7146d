"""The ADQL syntax tree: small frozen dataclasses, one per construct.

The parser builds it; the checker resolves names and types over it (without
changing it); the translator emits SQL from it plus the checker's findings.
Every node carries the position (line, column) of its first token for error
messages, and its nesting ``depth`` (bounded by the parser).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, fields


@dataclass(frozen=True)
class Pos:
    """Line and column (both 1-based) of a node's first character."""

    line: int
    column: int

    def __str__(self) -> str:
        return f"line {self.line}, column {self.column}"


@dataclass(frozen=True, eq=False)
class Node:
    """Base of every tree node (identity equality: nodes are keys of the checker's maps)."""

    pos: Pos
    depth: int = field(default=1, kw_only=True, repr=False)


@dataclass(frozen=True)
class Ident:
    """A name as written: regular (case-insensitive) or delimited ("quoted", exact)."""

    text: str
    delimited: bool = False
    pos: Pos | None = field(default=None, compare=False)

    def __str__(self) -> str:
        return '"' + self.text.replace('"', '""') + '"' if self.delimited else self.text


# ---- value and boolean expressions


@dataclass(frozen=True, eq=False)
class Number(Node):
    """A numeric literal; ``text`` is the literal normalised for SQL (hex converted)."""

    text: str
    is_integer: bool


@dataclass(frozen=True, eq=False)
class String(Node):
    value: str


@dataclass(frozen=True, eq=False)
class Null(Node):
    pass


@dataclass(frozen=True, eq=False)
class Boolean(Node):
    value: bool


@dataclass(frozen=True, eq=False)
class ColumnRef(Node):
    """A possibly qualified column name: (schema, table, column) parts as written."""

    parts: tuple[Ident, ...]

    @property
    def name(self) -> Ident:
        return self.parts[-1]


@dataclass(frozen=True, eq=False)
class FunctionCall(Node):
    """A call of a standard ADQL function, an aggregate or a declared UDF.

    ``name`` is upper-case; ``star`` for COUNT(*); ``quantifier`` DISTINCT/ALL.
    """

    name: str
    args: tuple[Expr, ...]
    quantifier: str | None = None
    star: bool = False


@dataclass(frozen=True, eq=False)
class TypeName(Node):
    """A CAST target: ``name`` upper-case (e.g. "DOUBLE PRECISION"), ``length`` for CHAR(n)."""

    name: str
    length: int | None = None


@dataclass(frozen=True, eq=False)
class Cast(Node):
    expr: Expr
    target: TypeName


@dataclass(frozen=True, eq=False)
class Unary(Node):
    op: str  # "-", "+", "~"
    operand: Expr


@dataclass(frozen=True, eq=False)
class Chain(Node):
    """Operands joined by operators of one precedence level, left to right.

    Kept flat so that long sums or concatenations do not make deep trees.
    """

    first: Expr
    rest: tuple[tuple[str, Expr], ...]  # (operator, operand)


@dataclass(frozen=True, eq=False)
class Case(Node):
    """CASE [subject] WHEN ... THEN ... [ELSE ...] END."""

    subject: Expr | None
    whens: tuple[tuple[Expr, Expr], ...]
    else_: Expr | None


@dataclass(frozen=True, eq=False)
class ScalarSubquery(Node):
    query: QueryExpr


@dataclass(frozen=True, eq=False)
class Comparison(Node):
    op: str  # "=", "<>", "<", "<=", ">", ">="
    left: Expr
    right: Expr


@dataclass(frozen=True, eq=False)
class Between(Node):
    expr: Expr
    low: Expr
    high: Expr
    negated: bool


@dataclass(frozen=True, eq=False)
class InList(Node):
    expr: Expr
    items: tuple[Expr, ...]
    negated: bool


@dataclass(frozen=True, eq=False)
class InSubquery(Node):
    expr: Expr
    query: QueryExpr
    negated: bool


@dataclass(frozen=True, eq=False)
class Like(Node):
    expr: Expr
    pattern: Expr
    negated: bool
    case_insensitive: bool


@dataclass(frozen=True, eq=False)
class IsNull(Node):
    expr: Expr
    negated: bool


@dataclass(frozen=True, eq=False)
class Exists(Node):
    query: QueryExpr


@dataclass(frozen=True, eq=False)
class BoolOp(Node):
    op: str  # "AND", "OR"
    operands: tuple[Expr, ...]


@dataclass(frozen=True, eq=False)
class Not(Node):
    operand: Expr


Expr = (
    Number
    | String
    | Null
    | Boolean
    | ColumnRef
    | FunctionCall
    | Cast
    | Unary
    | Chain
    | Case
    | ScalarSubquery
    | Comparison
    | Between
    | InList
    | InSubquery
    | Like
    | IsNull
    | Exists
    | BoolOp
    | Not
)

#: Expressions that are predicates (true/false), allowed where ADQL wants a condition.
PREDICATES = (Comparison, Between, InList, InSubquery, Like, IsNull, Exists, BoolOp, Not)


# ---- queries


@dataclass(frozen=True, eq=False)
class SelectItem(Node):
    expr: Expr
    alias: Ident | None


@dataclass(frozen=True, eq=False)
class Star(Node):
    """``*`` or ``qualifier.*`` in a SELECT list."""

    qualifier: tuple[Ident, ...] | None


@dataclass(frozen=True, eq=False)
class OrderItem(Node):
    expr: Expr
    descending: bool


@dataclass(frozen=True, eq=False)
class TableRef(Node):
    """A table named in FROM: (schema, table) parts as written."""

    parts: tuple[Ident, ...]
    alias: Ident | None


@dataclass(frozen=True, eq=False)
class DerivedTable(Node):
    """A subquery in FROM, which ADQL requires to have an alias."""

    query: QueryExpr
    alias: Ident


@dataclass(frozen=True, eq=False)
class Join(Node):
    kind: str  # "INNER", "LEFT", "RIGHT", "FULL"
    left: FromItem
    right: FromItem
    natural: bool = False
    on: Expr | None = None
    using: tuple[Ident, ...] | None = None


FromItem = TableRef | DerivedTable | Join


@dataclass(frozen=True, eq=False)
class Select(Node):
    quantifier: str | None  # "DISTINCT", "ALL" or None
    top: int | None
    items: tuple[SelectItem | Star, ...]
    from_: tuple[FromItem, ...]
    where: Expr | None = None
    group_by: tuple[Expr, ...] = ()
    having: Expr | None = None
    order_by: tuple[OrderItem, ...] = ()
    offset: int | None = None
    parenthesized: bool = False


@dataclass(frozen=True, eq=False)
class SetOperation(Node):
    """UNION / EXCEPT / INTERSECT, with the ORDER BY and OFFSET of the whole."""

    op: str
    all: bool
    left: QueryExpr
    right: QueryExpr
    order_by: tuple[OrderItem, ...] = ()
    offset: int | None = None
    parenthesized: bool = False


QueryExpr = Select | SetOperation


@dataclass(frozen=True, eq=False)
class CommonTable(Node):
    """One ``name [(columns)] AS (query)`` of a WITH clause."""

    name: Ident
    columns: tuple[Ident, ...] | None
    query: QueryExpr


@dataclass(frozen=True, eq=False)
class Query(Node):
    """A whole ADQL query: optional WITH, then the query expression."""

    with_: tuple[CommonTable, ...]
    body: QueryExpr


_FIELDS: dict[type, tuple[str, ...]] = {}


def _node_fields(cls: type) -> tuple[str, ...]:
    names = _FIELDS.get(cls)
    if names is None:
        names = _FIELDS[cls] = tuple(f.name for f in fields(cls) if f.name not in ("pos", "depth"))
    return names


def children(node: Node) -> Iterator[Node]:
    """The nodes directly below ``node`` (in source order)."""
    for name in _node_fields(type(node)):
        yield from _nodes_in(getattr(node, name))


def _nodes_in(value: object) -> Iterator[Node]:
    if isinstance(value, Node):
        yield value
    elif isinstance(value, tuple):
        for item in value:
            yield from _nodes_in(item)


def walk(node: Node) -> Iterator[Node]:
    """``node`` and every node below it, depth-first (iterative: no recursion limit)."""
    stack = [node]
    while stack:
        current = stack.pop()
        yield current
        stack.extend(reversed(list(children(current))))
