"""The root of tapd's exceptions: errors whose message is written for a user.

Anything raised as a ``TapdError`` is shown to the user as one line (CLI) or an
error document (TAP); any other exception reaching the top is a bug.
"""

from __future__ import annotations


class TapdError(Exception):
    """An error with a message meant for the person who caused it."""

    #: Exit status the CLI uses for this error.
    exit_code: int = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class ConfigError(TapdError):
    """The configuration is malformed or names an unknown key."""

    exit_code = 2


class DatabaseUnavailable(TapdError):
    """PostgreSQL could not be reached."""

    exit_code = 3
