"""TAP 1.1 query parameters of a job or sync request, checked the way DALI says.

Names are case-insensitive (DALI 3.1); LANG, QUERY, RESPONSEFORMAT (or its
synonym FORMAT), MAXREC, RUNID and REQUEST take one value each and repeating
one is an error (DALI 3.2); UPLOAD may repeat; anything else is ignored (TAP
2.7). For async jobs the check happens when the job runs, not when the
parameters arrive (TAP 2.7).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from tapd.errors import TapdError

#: TAP/DALI parameters that take exactly one value.
SINGLE_VALUED = ("LANG", "QUERY", "RESPONSEFORMAT", "FORMAT", "MAXREC", "RUNID", "REQUEST")

#: LANG values this service runs (TAP 2.7.1: the bare name and versioned forms).
LANGUAGES = {"ADQL": "ADQL", "ADQL-2.0": "ADQL", "ADQL-2.1": "ADQL"}

#: RESPONSEFORMAT when the client gives none (TAP 2.7.3: VOTable).
DEFAULT_FORMAT = "votable"


class ParameterError(TapdError):
    """A TAP parameter is missing, repeated or malformed; the message names it."""


@dataclass(frozen=True)
class TapRequest:
    """What a TAP query asks for, checked."""

    lang: str  # "ADQL"
    query: str  # the ADQL text, as submitted
    format_name: str  # RESPONSEFORMAT/FORMAT as given (or DEFAULT_FORMAT)
    maxrec: int  # rows to return at most (already capped by limits.maxrec_max)
    maxrec_given: bool  # the client set MAXREC (else the service default applies)
    uploads: tuple[str, ...]  # the UPLOAD values ("name,URI[;name,URI...]")
    run_id: str | None


def parse_tap_parameters(
    parameters: Mapping[str, Sequence[str]], *, maxrec_default: int, maxrec_max: int
) -> TapRequest:
    """A ``TapRequest`` from parameters (names in any case, each a list of values)."""
    values: dict[str, list[str]] = {}
    for name, given in parameters.items():
        values.setdefault(name.upper(), []).extend(given)

    def single(name: str) -> str | None:
        found = values.get(name, [])
        if len(found) > 1:
            raise ParameterError(f"{name} was given {len(found)} times; it takes one value")
        return found[0] if found else None

    for name in SINGLE_VALUED:
        single(name)

    request = single("REQUEST")
    if request is not None and request.strip().lower() != "doquery":
        raise ParameterError(f"REQUEST must be doQuery (or left out), got {request!r}")

    lang = single("LANG")
    if lang is None or not lang.strip():
        raise ParameterError("LANG is missing: give LANG=ADQL")
    language = LANGUAGES.get(lang.strip().upper())
    if language is None:
        raise ParameterError(
            f"unknown query language {lang!r}: this service runs " + ", ".join(sorted(LANGUAGES))
        )

    query = single("QUERY")
    if query is None or not query.strip():
        raise ParameterError("QUERY is missing: give the ADQL query to run")

    response_format = single("RESPONSEFORMAT")
    format_alias = single("FORMAT")
    if response_format and format_alias and response_format != format_alias:
        raise ParameterError(
            f"RESPONSEFORMAT={response_format!r} and FORMAT={format_alias!r} disagree; give one"
        )
    format_name = (response_format or format_alias or "").strip() or DEFAULT_FORMAT

    maxrec_text = single("MAXREC")
    if maxrec_text is None or not maxrec_text.strip():
        maxrec = maxrec_default
    else:
        try:
            maxrec = int(maxrec_text.strip())
        except ValueError:
            raise ParameterError(
                f"MAXREC must be a non-negative integer, got {maxrec_text!r}"
            ) from None
        if maxrec < 0:
            raise ParameterError(f"MAXREC must be a non-negative integer, got {maxrec_text!r}")

    return TapRequest(
        lang=language,
        query=query,
        format_name=format_name,
        maxrec=min(maxrec, maxrec_max),
        maxrec_given=maxrec_text is not None and bool(maxrec_text.strip()),
        uploads=tuple(v for v in values.get("UPLOAD", []) if v.strip()),
        run_id=single("RUNID"),
    )
