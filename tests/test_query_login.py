"""What ``tapd initdb --owner`` does so the services can log in as the query role."""

from __future__ import annotations

import pytest

from tapd.query_login import (
    HbaRule,
    PeerMapPlan,
    append_line,
    insert_hba_line,
    plan_peer_map,
)

#: Debian 12's pg_hba.conf as pg_createcluster writes it.
DEBIAN = [
    HbaRule(118, "local", ("all",), ("postgres",), "peer"),
    HbaRule(123, "local", ("all",), ("all",), "peer"),
    HbaRule(125, "host", ("all",), ("all",), "scram-sha-256"),
    HbaRule(130, "local", ("replication",), ("all",), "peer"),
]
OURS = HbaRule(123, "local", ("tapd",), ("tapd_query",), "peer", ("map=tapd",))
IDENT = ("tapd", "tapd", "tapd_query")
HBA_LINE = "local tapd tapd_query peer map=tapd"
IDENT_LINE = "tapd tapd tapd_query"


@pytest.mark.parametrize(
    ("rules", "ident", "plan"),
    [
        # Debian's default: peer without a map would refuse the service's user
        (DEBIAN, [], PeerMapPlan(hba_line=HBA_LINE, before=123, ident_line=IDENT_LINE)),
        # done before: nothing to do (again)
        ([OURS, *DEBIAN], [IDENT], PeerMapPlan()),
        ([OURS, *DEBIAN], [], PeerMapPlan(ident_line=IDENT_LINE)),
        # a rule for another database or user does not apply
        (
            [HbaRule(10, "local", ("other",), ("all",), "trust"), *DEBIAN],
            [],
            PeerMapPlan(hba_line=HBA_LINE, before=123, ident_line=IDENT_LINE),
        ),
        ([HbaRule(10, "local", ("all",), ("tapd_query",), "trust")], [], PeerMapPlan()),
        # "sameuser" applies only to a database named after the role
        (
            [HbaRule(10, "local", ("sameuser",), ("all",), "reject"), *DEBIAN],
            [],
            PeerMapPlan(hba_line=HBA_LINE, before=123, ident_line=IDENT_LINE),
        ),
        # the test clusters and many development set-ups
        ([HbaRule(1, "local", ("all",), ("all",), "trust")], [], PeerMapPlan()),
    ],
    ids=["debian", "done", "ident-missing", "other-db", "trust-for-role", "sameuser", "trust"],
)
def test_peer_map_plan(
    rules: list[HbaRule], ident: list[tuple[str, str, str]], plan: PeerMapPlan
) -> None:
    got = plan_peer_map(rules, ident, database="tapd", role="tapd_query", system_user="tapd")
    assert got == plan


@pytest.mark.parametrize(
    ("rule", "says"),
    [
        (
            HbaRule(5, "local", ("all",), ("all",), "scram-sha-256"),
            "asks tapd_query for a password",
        ),
        (HbaRule(5, "local", ("all",), ("all",), "md5"), ".pgpass file of tapd"),
        (HbaRule(5, "local", ("all",), ("+readers",), "peer"), "groups or files"),
        (HbaRule(5, "local", ("@dbs",), ("all",), "peer"), "groups or files"),
        (HbaRule(5, "local", ("all",), ("all",), "peer", ("map=site",)), "by peer"),
        (HbaRule(5, "local", ("all",), ("all",), "reject"), "by reject"),
        (HbaRule(5, "host", ("all",), ("all",), "trust"), "no pg_hba.conf rule"),
    ],
)
def test_what_tapd_cannot_set_up_is_said_to_the_operator(rule: HbaRule, says: str) -> None:
    plan = plan_peer_map([rule], [], database="tapd", role="tapd_query", system_user="tapd")
    assert (plan.hba_line, plan.ident_line) == (None, None)
    assert plan.note is not None and says in plan.note


def test_the_hba_line_goes_in_front_of_the_rule_that_would_refuse() -> None:
    text = "# comment\nlocal all postgres peer\nlocal all all peer\nhost all all ::1/128 md5\n"
    edited = insert_hba_line(text, HBA_LINE, 3, "# tapd")
    assert edited.splitlines() == [
        "# comment",
        "local all postgres peer",
        "# tapd",
        HBA_LINE,
        "local all all peer",
        "host all all ::1/128 md5",
    ]


def test_the_ident_line_is_appended_even_without_a_final_newline() -> None:
    assert append_line("# MAPNAME SYSTEM-USERNAME PG-USERNAME", IDENT_LINE, "# tapd") == (
        f"# MAPNAME SYSTEM-USERNAME PG-USERNAME\n# tapd\n{IDENT_LINE}\n"
    )
