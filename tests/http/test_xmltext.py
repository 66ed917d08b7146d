"""XML escaping: plain values pass untouched, markup is escaped, what XML forbids is replaced."""

from __future__ import annotations

import pytest

from tapd.http.xmltext import attr, text


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("phot.mag;em.opt", "phot.mag;em.opt"),
        ("", ""),
        (42, "42"),
        ("a < b && c > d", "a &lt; b &amp;&amp; c &gt; d"),
        ('say "hi"\n', 'say "hi"\n'),
        ("bell\x07 and nul\x00", "bell\ufffd and nul\ufffd"),
        ("lone \ud800 surrogate", "lone \ufffd surrogate"),
        ("\ufffe<\uffff", "\ufffd&lt;\ufffd"),
        ("étoile ☆", "étoile ☆"),
    ],
)
def test_text_escapes_markup_and_replaces_what_xml_forbids(value: object, expected: str) -> None:
    assert text(value) == expected


def test_attributes_also_escape_quotes_and_whitespace() -> None:
    assert attr('a "b"\n<c>') == "a &quot;b&quot;&#10;&lt;c&gt;"
