"""Pydantic validation errors as the one-line messages users see (pipeline and study files,
technique declarations, step configs)."""

from __future__ import annotations

from pydantic import ValidationError
from pydantic_core import ErrorDetails


def error_message(err: ErrorDetails) -> str:
    """A pydantic error's message without the 'Value error, ' prefix that validators get."""
    msg = err["msg"]
    return msg.removeprefix("Value error, ") if err["type"] == "value_error" else msg


def field_path(loc: tuple[int | str, ...] | list[int | str]) -> str:
    """A pydantic error location as a dotted path; a key that a file spelt with a line break or
    another unprintable character is quoted, so that the error stays on one line."""
    return ".".join(str(x) if str(x).isprintable() else repr(x) for x in loc)


def one_line(exc: ValidationError) -> str:
    """A pydantic error as one line: 'field: message; field: message'."""
    parts = []
    for err in exc.errors():
        loc = field_path(err["loc"]) or "(root)"
        parts.append(f"{loc}: {error_message(err)}")
    return "; ".join(parts)
