"""Parsing: one case per grammar rule, the tree shapes that matter, and the error messages."""

from __future__ import annotations

import pytest

from tapd.adql import (
    MAX_DEPTH,
    MAX_QUERY_LENGTH,
    AdqlSyntaxError,
    AdqlTypeError,
    AdqlUnknownFunction,
    parse_adql,
)
from tapd.adql import tree as t

VALID = [
    # SELECT list, quantifiers, TOP, aliases
    "SELECT * FROM t",
    "SELECT ALL a FROM t",
    'SELECT DISTINCT TOP 5 a, b AS bee, c cee, d AS "Dee" FROM t',
    "SELECT t.* , u.x FROM t, u",
    "SELECT s.t.* FROM s.t",
    # literals
    "SELECT 1, -2, 3.5, .5, 6., 1e3, 1.5E-3, 0x1F, 'it''s', 'a' 'b', NULL, TRUE, FALSE FROM t",
    # operators and precedence
    "SELECT a + b * c - d / e, -a, +b, ~c, a & b | c ^ d, 'x' || name || 'y' FROM t",
    "SELECT ((a)) FROM t",
    # predicates
    "SELECT a FROM t WHERE a = 1 AND b <> 2 OR c != 3 AND NOT d < 4",
    "SELECT a FROM t WHERE a <= 1 AND a >= 0 AND a > -1",
    "SELECT a FROM t WHERE a BETWEEN 1 AND 2 AND b NOT BETWEEN 3 AND 4",
    "SELECT a FROM t WHERE a IN (1, 2, 3) AND b NOT IN (SELECT x FROM u)",
    "SELECT a FROM t WHERE name LIKE 'a%' AND name NOT LIKE '_b' AND name ILIKE 'C%' AND name "
    "NOT ILIKE 'd'",
    "SELECT a FROM t WHERE a IS NULL OR b IS NOT NULL",
    "SELECT a FROM t WHERE EXISTS (SELECT 1 FROM u WHERE u.x = t.a)",
    "SELECT a FROM t WHERE (a = 1 OR (b = 2 AND (c = 3)))",
    "SELECT a FROM t WHERE a = (SELECT max(x) FROM u)",
    # functions
    "SELECT ABS(a), CEILING(a), DEGREES(a), EXP(a), FLOOR(a), LOG(a), LOG10(a), MOD(a, 2), PI(), "
    "POWER(a, 2), RADIANS(a), SQRT(a), RAND(), RAND(1), ROUND(a), ROUND(a, 2), TRUNCATE(a), "
    "TRUNCATE(a, 1) FROM t",
    "SELECT ACOS(a), ASIN(a), ATAN(a), ATAN2(a, b), COS(a), COT(a), SIN(a), TAN(a) FROM t",
    "SELECT LOWER(a), UPPER(a), COALESCE(a, b, 'c'), IN_UNIT(a, 'deg') FROM t",
    "SELECT COUNT(*), COUNT(DISTINCT a), COUNT(ALL a), SUM(a), AVG(a), MIN(a), MAX(a) FROM t",
    "SELECT POINT(1, 2), POINT('ICRS', 1, 2), CIRCLE(1, 2, 3), CIRCLE('', POINT(1, 2), 3), "
    "BOX(1, 2, 3, 4), POLYGON(1, 2, 3, 4, 5, 6), POLYGON(p, q, r), REGION('Circle ICRS 1 2 3') "
    "FROM t",
    "SELECT AREA(c), CENTROID(c), COORD1(p), COORD2(p), COORDSYS(p), DISTANCE(p, q), "
    "DISTANCE(1, 2, 3, 4) FROM t WHERE 1 = CONTAINS(p, c) AND INTERSECTS(c, d) = 0",
    "SELECT CAST(a AS SMALLINT), CAST(a AS INTEGER), CAST(a AS BIGINT), CAST(a AS REAL), "
    "CAST(a AS DOUBLE PRECISION), CAST(a AS CHAR(3)), CAST(a AS VARCHAR), CAST(a AS TIMESTAMP), "
    "CAST('1 2' AS POINT) FROM t",
    "SELECT CASE WHEN a > 1 THEN 'big' WHEN a < 0 THEN 'neg' ELSE 'small' END FROM t",
    "SELECT CASE a WHEN 1 THEN 'one' END FROM t",
    # FROM: joins and subqueries
    "SELECT * FROM t NATURAL JOIN u",
    "SELECT * FROM t NATURAL LEFT OUTER JOIN u",
    "SELECT * FROM t JOIN u ON t.a = u.a",
    "SELECT * FROM t INNER JOIN u USING (a, b)",
    "SELECT * FROM t LEFT JOIN u ON t.a = u.a RIGHT OUTER JOIN v USING (b) FULL JOIN w ON 1 = 1",
    "SELECT * FROM (t JOIN u USING (a)) JOIN (v JOIN w ON v.x = w.x) ON t.a = v.a",
    "SELECT * FROM (SELECT a FROM t) AS q, (SELECT b FROM u) r",
    "SELECT * FROM ((SELECT a FROM t) AS q JOIN u ON q.a = u.a)",
    "SELECT x FROM t JOIN u",
    "SELECT x FROM t INNER JOIN u AS v LEFT OUTER JOIN w RIGHT JOIN x FULL OUTER JOIN y",
    "SELECT x FROM (t JOIN u) JOIN (v LEFT JOIN w)",
    "SELECT x FROM t JOIN u, v JOIN w ON v.a = w.a",
    'SELECT * FROM "My Schema"."My Table" AS "x y"',
    # GROUP BY, HAVING, ORDER BY, OFFSET
    "SELECT a, COUNT(*) FROM t GROUP BY a HAVING COUNT(*) > 1 ORDER BY 2 DESC, a ASC OFFSET 10",
    "SELECT a FROM t ORDER BY t.a, LOG10(b + 1) DESC",
    # set operations and WITH
    "SELECT a FROM t UNION SELECT a FROM u",
    "SELECT a FROM t UNION ALL SELECT a FROM u EXCEPT SELECT a FROM v INTERSECT ALL SELECT a "
    "FROM w",
    "(SELECT TOP 1 a FROM t ORDER BY a) UNION (SELECT TOP 1 a FROM t ORDER BY a DESC) ORDER BY 1",
    "WITH q AS (SELECT a FROM t), r (x) AS (SELECT b FROM u) SELECT * FROM q, r",
    # comments and whitespace
    "-- leading comment\nSELECT a -- trailing\nFROM t -- end",
    "select\ta\r\nfrom\tt",
    'SELECT "select", "distance" FROM t',
    "SELECT dec, public.t.a FROM public.t",
]


@pytest.mark.parametrize("query", VALID)
def test_valid_adql_parses(query: str) -> None:
    parse_adql(query)


INVALID = [
    (
        "SELECT FROM t",
        "line 1, column 8: expected a column name or expression after SELECT, found 'FROM'",
    ),
    ("SELECT a FROM", "expected a name"),
    ("SELECT a FROM t WHERE", "after WHERE, found the end of the query"),
    ("SELECT a FROM t WHERE a", "WHERE needs a condition"),
    ("SELECT a FROM t WHERE 1 = 1 AND a", "AND needs a condition"),
    ("SELECT a > 1 FROM t", "a condition (comparison"),
    ("SELECT a FROM t ORDER a", "expected BY after ORDER, found 'a'"),
    ("SELECT a FROM t GROUP a", "expected BY after GROUP"),
    ("SELECT TOP 1.5 a FROM t", "TOP needs a whole number"),
    ("SELECT a FROM t OFFSET 1e3", "OFFSET needs a whole number"),
    ("SELECT user FROM t", "user is a reserved word"),
    ("SELECT a FROM select", "expected a name"),
    ("SELECT a AS from FROM t", "expected a name after AS"),
    ("SELECT a FROM t; DROP TABLE t", "unexpected ';'"),
    ("SELECT a FROM t /* comment */", "no /* ... */ comments"),
    ("SELECT a /* x */ FROM t", "no /* ... */ comments"),
    ("SELECT 'abc FROM t", "a string that is never closed"),
    ('SELECT "abc FROM t', "a delimited name that is never closed"),
    ('SELECT "" FROM t', "cannot be empty"),
    ("SELECT a FROM t WHERE a = #1", "unexpected character '#'"),
    ("SELECT ABS(a, b) FROM t", "ABS takes 1 argument, not 2"),
    ("SELECT DISTANCE(a, b, c) FROM t", "DISTANCE takes 2 points or 4 numbers"),
    ("SELECT SUM(*) FROM t", "only COUNT takes"),
    ("SELECT ABS(DISTINCT a) FROM t", "only allowed in aggregate"),
    ("SELECT CAST(a AS FLOAT) FROM t", "cannot CAST to FLOAT"),
    ("SELECT CAST(a AS INTEGER(3)) FROM t", "INTEGER takes no length"),
    ("SELECT a FROM t JOIN u ON", "a column name or expression"),
    ("SELECT a FROM t NATURAL JOIN u ON t.a = u.a", "found 'ON'"),
    ("SELECT a FROM (SELECT a FROM t)", "expected"),
    (
        "SELECT a FROM t ORDER BY a UNION SELECT a FROM u",
        "ORDER BY and OFFSET can only follow the last query",
    ),
    ("SELECT a FROM (WITH q AS (SELECT 1 FROM t) SELECT * FROM q) AS x", "found 'WITH'"),
    ("SELECT a FROM t WHERE CONTAINS(p, c)", "CONTAINS(...) gives 1 or 0"),
    ("SELECT POINT(1) FROM t", "POINT takes 2 to 3 arguments"),
    ("SELECT CIRCLE('ICRS', 1, 2) FROM t", "wrong arguments for CIRCLE"),
    ("SELECT POLYGON(1, 2, 3, 4, 5) FROM t", "wrong arguments for POLYGON"),
    ("SELECT a.b.c.d.e FROM t", "at most 4 parts"),
    ("SELECT a FROM t WHERE a = 1 )", "found ')'"),
    ("", "the query is empty"),
    ("   -- only a comment", "the query is empty"),
    ("SELECT _a FROM t", "must start with a letter"),
]


@pytest.mark.parametrize(("query", "message"), INVALID)
def test_invalid_adql_is_refused_with_a_clear_message(query: str, message: str) -> None:
    with pytest.raises(AdqlSyntaxError) as info:
        parse_adql(query)
    text = str(info.value)
    assert message in text
    assert text.startswith("Syntax error")
    assert "\n" not in text


def test_error_positions_count_lines_and_columns() -> None:
    with pytest.raises(AdqlSyntaxError) as info:
        parse_adql("SELECT a\nFROM t\nWHERE a = = 1")
    assert info.value.pos == t.Pos(3, 11)
    assert str(info.value).startswith("Syntax error at line 3, column 11: ")


def test_end_of_query_errors_point_after_the_last_character() -> None:
    with pytest.raises(AdqlSyntaxError) as info:
        parse_adql("SELECT a\nFROM t WHERE")
    assert info.value.pos == t.Pos(2, 13)


@pytest.mark.parametrize(
    ("query", "kind"),
    [
        ("SELECT x FROM t JOIN u", "INNER"),
        ("SELECT x FROM t INNER JOIN u", "INNER"),
        ("SELECT x FROM t LEFT JOIN u", "LEFT"),
        ("SELECT x FROM t LEFT OUTER JOIN u", "LEFT"),
        ("SELECT x FROM t RIGHT OUTER JOIN u", "RIGHT"),
        ("SELECT x FROM t FULL OUTER JOIN u", "FULL"),
    ],
)
def test_a_join_without_on_or_using_has_no_condition(query: str, kind: str) -> None:
    body = parse_adql(query).body
    assert isinstance(body, t.Select)
    (join,) = body.from_
    assert isinstance(join, t.Join)
    assert (join.kind, join.on, join.using, join.natural) == (kind, None, None, False)


def test_joins_without_conditions_group_from_the_left() -> None:
    body = parse_adql("SELECT x FROM a JOIN b JOIN c ON c.x = b.x").body
    assert isinstance(body, t.Select)
    (outer,) = body.from_
    assert isinstance(outer, t.Join) and outer.on is not None
    assert isinstance(outer.left, t.Join) and outer.left.on is None
    assert isinstance(outer.right, t.TableRef)


@pytest.mark.parametrize(
    ("query", "name", "column"),
    [
        ("SELECT nosuch(a) FROM t", "NOSUCH", 8),
        ("SELECT a FROM t WHERE pg_sleep(10) IS NULL", "PG_SLEEP", 23),
        ("SELECT a\nFROM t\nWHERE 1 = ABS(Foo(a))", "FOO", 15),
        ("SELECT COUNT(DISTINCT bar(a)) FROM t", "BAR", 23),
        ("SELECT baz(*) FROM t", "BAZ", 8),
    ],
)
def test_an_unknown_function_is_reported_as_unknown_with_its_name_and_position(
    query: str, name: str, column: int
) -> None:
    with pytest.raises(AdqlUnknownFunction) as info:
        parse_adql(query)
    assert not isinstance(info.value, AdqlSyntaxError)
    assert info.value.function == name
    assert info.value.pos == t.Pos(query.count("\n") + 1, column)
    text = str(info.value)
    assert not text.startswith("Syntax error")
    assert f"at {info.value.pos}: unknown function {name};" in text


@pytest.mark.parametrize(
    ("query", "column", "kind"),
    [
        ("SELECT POINT(1, 2) || 'a' FROM t", 8, "point"),
        ("SELECT 'a' || CIRCLE(1, 2, 3) FROM t", 15, "circle"),
        ("SELECT a || 'b' || POLYGON(1, 2, 3, 4, 5, 6) FROM t", 20, "polygon"),
        ("SELECT BOX(1, 2, 3, 4) || a FROM t", 8, "box"),
        ("SELECT a || CENTROID(c) FROM t", 13, "point"),
        ("SELECT a || REGION('Circle ICRS 1 2 3') FROM t", 13, "region"),
        ("SELECT a || CAST('1 2' AS POINT) FROM t", 13, "point"),
        ("SELECT a || (POINT(1, 2)) FROM t", 14, "point"),
        ("SELECT a FROM t WHERE a || POINT(1, 2) = 'x'", 28, "point"),
    ],
)
def test_concatenating_a_geometry_is_refused_without_a_catalog(
    query: str, column: int, kind: str
) -> None:
    with pytest.raises(AdqlTypeError) as info:
        parse_adql(query)
    assert info.value.pos == t.Pos(1, column)
    assert f"|| joins strings, but this is a {kind}" in str(info.value)


def test_a_udf_declared_to_return_a_geometry_cannot_be_concatenated() -> None:
    udf = "my_centre(a VARCHAR) -> POINT"
    parse_adql("SELECT DISTANCE(my_centre(a), POINT(1, 2)) FROM t", [udf])
    with pytest.raises(AdqlTypeError, match="joins strings, but this is a point"):
        parse_adql("SELECT 'x' || my_centre(a) FROM t", [udf])


def test_regular_and_delimited_names_are_kept_apart() -> None:
    query = parse_adql('SELECT Ra, "Ra" FROM t')
    body = query.body
    assert isinstance(body, t.Select)
    names = [item.expr.name for item in body.items]  # type: ignore[union-attr]
    assert names == [t.Ident("Ra", False), t.Ident("Ra", True)]


def test_delimited_names_unescape_doubled_quotes() -> None:
    body = parse_adql('SELECT "a""b" FROM t').body
    assert body.items[0].expr.name == t.Ident('a"b', True)  # type: ignore[union-attr]


def test_hex_literals_become_decimal() -> None:
    body = parse_adql("SELECT 0xff FROM t").body
    assert body.items[0].expr.text == "255"  # type: ignore[union-attr]


def test_and_or_chains_are_flat() -> None:
    condition = " OR ".join(f"a = {i}" for i in range(500))
    where = parse_adql(f"SELECT a FROM t WHERE {condition}").body.where  # type: ignore[union-attr]
    assert isinstance(where, t.BoolOp) and len(where.operands) == 500
    assert where.depth < 5


def test_long_sums_are_flat() -> None:
    expr = parse_adql("SELECT " + " + ".join(["a"] * 1000) + " FROM t").body.items[0].expr  # type: ignore[union-attr]
    assert isinstance(expr, t.Chain) and len(expr.rest) == 999


def test_order_by_after_a_union_orders_the_whole_result() -> None:
    body = parse_adql("SELECT a FROM t UNION SELECT a FROM u ORDER BY a OFFSET 2").body
    assert isinstance(body, t.SetOperation)
    assert len(body.order_by) == 1 and body.offset == 2
    assert isinstance(body.right, t.Select) and not body.right.order_by


def test_intersect_binds_tighter_than_union() -> None:
    body = parse_adql("SELECT a FROM t UNION SELECT a FROM u INTERSECT SELECT a FROM v").body
    assert isinstance(body, t.SetOperation) and body.op == "UNION"
    assert isinstance(body.right, t.SetOperation) and body.right.op == "INTERSECT"


def test_udfs_are_accepted_only_when_declared() -> None:
    udf = "ivo_hasword(a VARCHAR, b VARCHAR) -> INTEGER"
    parse_adql("SELECT a FROM t WHERE ivo_hasword(a, 'x') = 1", [udf])
    with pytest.raises(AdqlUnknownFunction, match="unknown function IVO_HASWORD"):
        parse_adql("SELECT a FROM t WHERE ivo_hasword(a, 'x') = 1")
    with pytest.raises(AdqlSyntaxError, match="IVO_HASWORD takes 2 arguments, not 1"):
        parse_adql("SELECT a FROM t WHERE ivo_hasword(a) = 1", [udf])


@pytest.mark.parametrize(
    "signature",
    [
        "g(VARCHAR, DOUBLE PRECISION) -> INTEGER",
        "g(a VARCHAR, b DOUBLE PRECISION) -> INTEGER",
        "g(VARCHAR, DOUBLE) -> INTEGER",
    ],
)
def test_udf_arguments_may_be_unnamed_two_word_types(signature: str) -> None:
    parse_adql("SELECT a FROM t WHERE g(a, 1.5) = 1", [signature])
    with pytest.raises(AdqlSyntaxError, match="G takes 2 arguments, not 1"):
        parse_adql("SELECT a FROM t WHERE g(a) = 1", [signature])


def test_too_long_a_query_is_refused_before_parsing() -> None:
    with pytest.raises(AdqlSyntaxError, match="too long"):
        parse_adql("SELECT a FROM t WHERE a IN (" + "1, " * MAX_QUERY_LENGTH + "1)")


def test_nesting_just_inside_the_bound_parses() -> None:
    depth = MAX_DEPTH // 4
    parse_adql("SELECT " + "ABS(" * depth + "a" + ")" * depth + " FROM t")


@pytest.mark.parametrize(
    "query",
    [
        "SELECT " + "ABS(" * 5000 + "a" + ")" * 5000 + " FROM t",
        "SELECT a FROM t WHERE " + "NOT " * 5000 + "a = 1",
        "SELECT " + "- " * 5000 + "a FROM t",
        "SELECT a FROM t WHERE a IN " + "(SELECT a FROM t WHERE a IN " * 300 + "(1)" + ")" * 300,
        "SELECT " + "(" * 20000 + "a" + ")" * 20000 + " FROM t",
        "SELECT " + "CASE WHEN a = 1 THEN " * 2000 + "1" + " END" * 2000 + " FROM t",
    ],
    ids=["functions", "not", "minus", "subqueries", "parentheses", "case"],
)
def test_deep_nesting_is_refused_cleanly(query: str) -> None:
    try:
        parse_adql(query)
    except AdqlSyntaxError as exc:
        assert "nested too deeply" in str(exc) or "too long" in str(exc)
    else:
        # bare parentheses add no depth to the tree: a harmless query
        assert query.startswith("SELECT (((")
