"""Errors in ADQL a user wrote: one sentence, with line and column where known."""

from __future__ import annotations

from tapd.adql.tree import Pos
from tapd.errors import TapdError


class AdqlError(TapdError):
    """The query is not valid ADQL for this service (bad syntax, unknown name, wrong type...)."""

    def __init__(self, message: str, pos: Pos | None = None) -> None:
        self.pos = pos
        self.detail = message
        where = f" at {pos}" if pos is not None else ""
        end = "" if message.endswith((".", "?", "!")) else "."
        super().__init__(f"{self._kind}{where}: {message}{end}")

    _kind = "Error"


class AdqlSyntaxError(AdqlError):
    """The text is not ADQL 2.1 (grammar, reserved word, wrong arguments, bounds)."""

    _kind = "Syntax error"


class AdqlNameError(AdqlError):
    """A table or column that is not published, or a name that is ambiguous."""


class AdqlUnknownFunction(AdqlNameError):
    """A call of a function that is neither ADQL's nor a declared UDF (``function``: its name)."""

    def __init__(self, function: str, pos: Pos | None = None) -> None:
        self.function = function
        super().__init__(
            f"unknown function {function}; it is neither an ADQL 2.1 function nor a "
            "user-defined function of this service",
            pos,
        )


class AdqlTypeError(AdqlError):
    """An operand or argument of the wrong kind (e.g. a string where a point is needed)."""


class AdqlUnsupported(AdqlError):
    """Valid ADQL that this service cannot run (e.g. REGION with a non-literal argument)."""
