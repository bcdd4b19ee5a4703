"""Progress for people while a run or a study works: Rich on a terminal, plain lines otherwise, or nothing."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager, nullcontext
from typing import Any, TypeVar

T = TypeVar("T")


class Display:
    """Progress for people: Rich when writing to a terminal, plain lines otherwise, or nothing."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.console: Any = None
        if enabled:
            from rich.console import Console

            self.console = Console(stderr=True)

    def line(self, text: str) -> None:
        if self.console is not None:
            self.console.print(text, highlight=False)

    def status(self, text: str) -> AbstractContextManager[Any]:
        if self.console is not None and self.console.is_terminal:
            return self.console.status(text)  # type: ignore[no-any-return]
        self.line(text)
        return nullcontext()

    def progress(self, items: Iterable[T], description: str = "", total: int | None = None) -> Iterator[T]:
        """Wrap a long loop of a plugin in a progress bar."""
        if self.console is None or not self.console.is_terminal:
            yield from items
            return
        from rich.progress import track

        yield from track(items, description=description, total=total, console=self.console, transient=True)
