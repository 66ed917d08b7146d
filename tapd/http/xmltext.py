"""XML text and attribute escaping that never produces an ill-formed document.

User-supplied values (ADQL text, RUNID, owner names) end up in UWS and VOSI
documents; characters XML 1.0 forbids (most C0 controls, lone surrogates,
U+FFFE/U+FFFF) are replaced by U+FFFD so a hostile value cannot break them.
"""

from __future__ import annotations

import datetime as dt
import re

_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_TEXT_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;"})
_ATTR_ESCAPES = str.maketrans(
    {
        "&": "&amp;",
        "<": "&lt;",
        ">": "&gt;",
        '"': "&quot;",
        "\n": "&#10;",
        "\r": "&#13;",
        "\t": "&#9;",
    }
)


#: Anything ``text`` would change; most values hold none of it (one search instead of two passes).
_TEXT_SPECIAL = re.compile("[&<>\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def text(value: object) -> str:
    """``value`` as XML character data."""
    value = str(value)
    if not _TEXT_SPECIAL.search(value):
        return value
    return _ILLEGAL.sub("\ufffd", value).translate(_TEXT_ESCAPES)


def attr(value: object) -> str:
    """``value`` as the content of a double-quoted XML attribute."""
    return _ILLEGAL.sub("\ufffd", str(value)).translate(_ATTR_ESCAPES)


def utc_timestamp(moment: dt.datetime) -> str:
    """ISO 8601 in UTC with milliseconds and ``Z`` (UWS 1.1 §2.2.1): 2026-01-02T03:04:05.678Z."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    moment = moment.astimezone(dt.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
