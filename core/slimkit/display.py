"""Progress for people while a run or a study works: Rich on a terminal, plain lines otherwise, or nothing."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager, nullcontext
from typing import Any, TextIO, TypeVar

T = TypeVar("T")


class Display:
    """Progress for people: Rich when writing to a terminal, plain lines otherwise, or nothing."""

    def __init__(self, enabled: bool, file: TextIO | None = None) -> None:
        """``file``: where the lines go (the terminal the CLI kept while libraries print to the run's
        log); None: standard error."""
        self.enabled = enabled
        self.console: Any = None
        # Rich's live displays capture sys.stdout and sys.stderr to print above the spinner; with a
        # terminal of its own, that would bring back the libraries' output the CLI sent to the log.
        self.capture = file is None
        if enabled:
            from rich.console import Console

            self.console = Console(stderr=True) if file is None else Console(file=file)

    def line(self, text: str) -> None:
        if self.console is not None:
            self.console.print(text, highlight=False)

    def status(self, text: str) -> AbstractContextManager[Any]:
        if self.console is not None and self.console.is_terminal:
            from rich.live import Live
            from rich.spinner import Spinner

            return Live(
                Spinner("dots", text), console=self.console, transient=True,
                redirect_stdout=self.capture, redirect_stderr=self.capture,
            )  # fmt: skip
        self.line(text)
        return nullcontext()

    def progress(self, items: Iterable[T], description: str = "", total: int | None = None) -> Iterator[T]:
        """Wrap a long loop of a plugin in a progress bar with its ETA."""
        if self.console is None or not self.console.is_terminal:
            yield from items
            return
        from rich.progress import Progress

        columns = Progress.get_default_columns()
        with Progress(
            *columns, console=self.console, transient=True,
            redirect_stdout=self.capture, redirect_stderr=self.capture,
        ) as bar:  # fmt: skip
            yield from bar.track(items, total=total, description=description)
