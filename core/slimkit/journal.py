"""The journal of a run or a study: ``journal.jsonl``, one JSON line per event, appended in order."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any


class Journal:
    """Append-only JSON lines: what happened, when, in order."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def write(self, event: str, **data: Any) -> None:
        record = {"time": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "event": event, **data}
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(record, default=str) + "\n")
