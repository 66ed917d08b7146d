"""The functions a query may call: ADQL 2.1's, plus user-defined ones the site declares.

Anything else is refused, so no PostgreSQL function (``pg_sleep``,
``pg_read_file``, ``dblink``...) can be reached from ADQL. A UDF is declared
by a signature such as
``ivo_healpix_index(hpxOrder INTEGER, long REAL, lat REAL) -> BIGINT``
(configuration key ``adql.udfs``); its PostgreSQL function of the same
(lower-case) name must exist in the database.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

from tapd.adql.errors import AdqlError
from tapd.adql.lexicon import is_reserved
from tapd.adql.types import ADQL_TYPES


@dataclass(frozen=True)
class FunctionSpec:
    """Name, argument count and family of a callable function."""

    name: str  # upper case
    min_args: int
    max_args: int | None  # None: no upper bound
    family: str  # math, trig, string, aggregate, conditional, geometry, unit, udf
    arg_types: tuple[str, ...] = ()  # UDF: ADQL type of each argument
    returns: str | None = None  # UDF: ADQL return type, e.g. "BIGINT", "VARCHAR(20)"

    @property
    def is_aggregate(self) -> bool:
        return self.family == "aggregate"

    def arity_text(self) -> str:
        if self.max_args == self.min_args:
            count = self.min_args
            return f"{count} argument" + ("" if count == 1 else "s")
        if self.max_args is None:
            return f"at least {self.min_args} argument" + ("" if self.min_args == 1 else "s")
        return f"{self.min_args} to {self.max_args} arguments"


def _spec(names: str, low: int, high: int | None, family: str) -> dict[str, FunctionSpec]:
    return {n: FunctionSpec(n, low, high, family) for n in names.split()}


STANDARD_FUNCTIONS: dict[str, FunctionSpec] = {
    **_spec("ABS CEILING DEGREES EXP FLOOR LOG LOG10 RADIANS SQRT", 1, 1, "math"),
    **_spec("MOD POWER", 2, 2, "math"),
    **_spec("PI", 0, 0, "math"),
    **_spec("RAND", 0, 1, "math"),
    **_spec("ROUND TRUNCATE", 1, 2, "math"),
    **_spec("ACOS ASIN ATAN COS COT SIN TAN", 1, 1, "trig"),
    **_spec("ATAN2", 2, 2, "trig"),
    **_spec("LOWER UPPER", 1, 1, "string"),
    **_spec("COUNT SUM AVG MIN MAX", 1, 1, "aggregate"),
    **_spec("COALESCE", 1, None, "conditional"),
    **_spec("AREA CENTROID COORD1 COORD2 COORDSYS REGION", 1, 1, "geometry"),
    **_spec("CONTAINS INTERSECTS", 2, 2, "geometry"),
    **_spec("DISTANCE", 2, 4, "geometry"),
    **_spec("POINT", 2, 3, "geometry"),
    **_spec("CIRCLE", 2, 4, "geometry"),
    **_spec("BOX", 3, 5, "geometry"),
    **_spec("POLYGON", 3, None, "geometry"),
    **_spec("IN_UNIT", 2, 2, "unit"),
}

_TYPE = r"(?:DOUBLE\s+PRECISION|[A-Z]+)(?:\s*\(\s*[0-9]+\s*\))?\s*\*?"
_SIGNATURE = re.compile(
    rf"^\s*(?P<name>[A-Za-z][A-Za-z0-9_]*)\s*\((?P<args>[^()]*(?:\([0-9\s]*\)[^()]*)*)\)\s*->\s*(?P<returns>{_TYPE})\s*$",
    re.IGNORECASE,
)
_ARG = re.compile(
    rf"^\s*(?:(?P<name>[A-Za-z][A-Za-z0-9_]*)\s+)?(?P<type>{_TYPE})\s*$", re.IGNORECASE
)


class UdfSignatureError(AdqlError):
    """A configured UDF signature cannot be read."""


def _normalized_type(text: str) -> tuple[str, str]:
    """(the type as written, upper case and single-spaced; its name without a length)."""
    normalized = re.sub(r"\s+", " ", text.strip().upper()).rstrip("*").strip()
    return normalized, re.sub(r"\s*\(.*$", "", normalized)


def _type_name(text: str, where: str) -> str:
    normalized, base = _normalized_type(text)
    if base not in ADQL_TYPES:
        raise UdfSignatureError(f"{where}: unknown ADQL type {text.strip()!r}")
    return normalized


@lru_cache(maxsize=256)
def parse_udf(signature: str) -> FunctionSpec:
    """A UDF from ``name(arg TYPE, ...) -> TYPE``."""
    match = _SIGNATURE.match(signature)
    if not match:
        raise UdfSignatureError(
            f"cannot read the UDF signature {signature!r}; "
            "write it as name(arg TYPE, ...) -> TYPE, "
            "e.g. ivo_hasword(a VARCHAR, b VARCHAR) -> INTEGER"
        )
    name = match["name"].upper()
    if name in STANDARD_FUNCTIONS:
        raise UdfSignatureError(
            f"the UDF {match['name']} would replace the ADQL function of that name"
        )
    if is_reserved(name):
        raise UdfSignatureError(f"the UDF name {match['name']} is a reserved word")
    arg_text = match["args"].strip()
    arg_types: list[str] = []
    if arg_text:
        for part in re.split(r",(?![^(]*\))", arg_text):
            arg = _ARG.match(part)
            if not arg:
                raise UdfSignatureError(
                    f"cannot read argument {part.strip()!r} of the UDF signature {signature!r}"
                )
            # an unnamed two-word type (DOUBLE PRECISION) is not a name and a type
            whole_is_type = _normalized_type(part)[1] in ADQL_TYPES
            arg_types.append(_type_name(part if whole_is_type else arg["type"], signature))
    returns = _type_name(match["returns"], signature)
    return FunctionSpec(name, len(arg_types), len(arg_types), "udf", tuple(arg_types), returns)


def function_table(udfs: Iterable[str] = ()) -> dict[str, FunctionSpec]:
    """Standard functions plus the declared UDFs, by upper-case name."""
    udf_specs = _udf_table(tuple(udfs))
    if not udf_specs:
        return STANDARD_FUNCTIONS
    return {**STANDARD_FUNCTIONS, **udf_specs}


@lru_cache(maxsize=64)
def _udf_table(udfs: tuple[str, ...]) -> dict[str, FunctionSpec]:
    return {spec.name: spec for spec in map(parse_udf, udfs)}
