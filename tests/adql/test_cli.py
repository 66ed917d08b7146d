"""``tapd adql check`` and ``tapd adql translate``."""

from __future__ import annotations

import json
from pathlib import Path

import psycopg
import pytest

from tapd.cli import main


def test_check_accepts_valid_adql_without_a_database(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--dsn", "host=/nonexistent dbname=x", "adql", "check", "SELECT a FROM t"]) == 0
    assert capsys.readouterr().err == ""


def test_check_prints_the_positioned_error_and_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["adql", "check", "SELECT FROM t"]) == 1
    err = capsys.readouterr().err
    assert err == (
        "tapd: Syntax error at line 1, column 8: "
        "expected a column name or expression after SELECT, found 'FROM'.\n"
    )


def test_check_knows_declared_udfs(capsys: pytest.CaptureFixture[str]) -> None:
    query = "SELECT a FROM t WHERE ivo_hasword(a, 'x') = 1"
    assert main(["adql", "check", query]) == 1
    assert "unknown function IVO_HASWORD" in capsys.readouterr().err
    assert (
        main(["adql", "check", "--udf", "ivo_hasword(a VARCHAR, b VARCHAR) -> INTEGER", query]) == 0
    )


def test_check_jsonl_prints_one_verdict_per_case(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cases = tmp_path / "cases.jsonl"
    cases.write_text(
        json.dumps({"id": "a", "query": "SELECT x FROM y"})
        + "\n\n"
        + json.dumps({"id": "b", "query": "SELECT FROM y"})
        + "\n"
        + json.dumps(
            {"id": "c", "query": "SELECT f(x) FROM y", "udfs": ["f(x INTEGER) -> INTEGER"]}
        )
        + "\n"
    )
    assert main(["adql", "check", "--jsonl", str(cases)]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert lines[0] == {"id": "a", "valid": True, "error": None}
    assert lines[1]["id"] == "b" and lines[1]["valid"] is False
    assert lines[1]["error"].startswith("Syntax error at line 1, column 8:")
    assert lines[2] == {"id": "c", "valid": True, "error": None}


def test_check_jsonl_names_a_bad_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cases = tmp_path / "cases.jsonl"
    cases.write_text('{"id": 1, "query": "SELECT a FROM t"}\nnot json\n')
    assert main(["adql", "check", "--jsonl", str(cases)]) == 1
    assert "line 2: not JSON" in capsys.readouterr().err


def test_translate_prints_sql_for_the_published_tables(
    sample_dsn: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        main(
            [
                "adql",
                "translate",
                "--dsn",
                sample_dsn,
                "--maxrec",
                "5",
                "SELECT name FROM stars WHERE name = 'star 1'",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out.splitlines()
    assert out[0] == (
        'SELECT "stars"."name" AS "name" FROM "public"."stars" AS "stars" '
        'WHERE ("stars"."name" = %s) LIMIT 6'
    )
    assert out[1] == '-- parameters: ["star 1"]'
    with psycopg.connect(sample_dsn) as conn:
        assert conn.execute(out[0], json.loads(out[1].split(": ", 1)[1])).fetchall() == [
            ("star 1",)
        ]


def test_translate_reports_unknown_names(
    sample_dsn: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--dsn", sample_dsn, "adql", "translate", "SELECT x FROM nosuch"]) == 1
    assert capsys.readouterr().err.startswith(
        "tapd: Error at line 1, column 15: there is no published table nosuch"
    )
