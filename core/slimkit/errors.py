"""Errors that reach users as one line each, never as a traceback.

Every error a user can cause (a bad pipeline file, a missing plugin, a step config that does not
validate) is a ``SlimkitError``; the CLI prints ``str(error)`` and exits with the code the error
carries. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

from collections.abc import Iterable


class ExitCode:
    """Exit codes that scripts can rely on."""

    OK = 0
    STEP_FAILED = 1  # the run went on, wrote results for the steps that finished, then exits 1
    USAGE = 2  # bad input: pipeline file, config, CLI arguments; nothing was computed
    PLAN_REFUSED = 3  # the planner found problems; nothing was computed
    INTERRUPTED = 130


class SlimkitError(Exception):
    """A user-facing error: one line, naming what is wrong and how to fix it."""

    exit_code = ExitCode.USAGE

    def __init__(self, message: str, *, fix: str | None = None) -> None:
        self.message = message
        self.fix = fix
        super().__init__(self.__str__())

    def __str__(self) -> str:
        return f"{self.message} (fix: {self.fix})" if self.fix else self.message


class SpecError(SlimkitError):
    """A pipeline file or a Python-built pipeline does not validate.

    Holds one line per problem so that all of them are shown at once.
    """

    def __init__(self, problems: Iterable[str], *, source: str | None = None) -> None:
        self.problems = list(problems)
        self.source = source
        where = f"{source}: " if source else ""
        super().__init__(where + "; ".join(self.problems))

    def lines(self) -> list[str]:
        where = f"{self.source}: " if self.source else ""
        return [where + p for p in self.problems]


class PluginError(SlimkitError):
    """A plugin broke a contract (bad declaration, name collision, bad return value)."""


class PlanRefused(SlimkitError):
    """The planner found problems; ``problems`` lists every one of them."""

    exit_code = ExitCode.PLAN_REFUSED

    def __init__(self, problems: Iterable[str]) -> None:
        self.problems = list(problems)
        super().__init__(f"the pipeline cannot run: {len(self.problems)} problem(s): " + "; ".join(self.problems))


def error_line(exc: BaseException) -> str:
    """One line for an error a step or a measurer raised, as results.json and the report show it.

    ``SystemExit`` from plugin code is a failure too (a step must raise, not exit the process),
    and is named as such so that ``SystemExit(0)`` is never read as success."""
    if isinstance(exc, SystemExit):
        return f"SystemExit({exc.code!r}): plugin code tried to exit the process"
    text = str(exc).strip()
    first = text.splitlines()[0] if text else ""
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__
