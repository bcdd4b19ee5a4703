"""Hand a finished run or study to the installed trackers (the ``after_run`` hook)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from slimkit.plugins import Plugins


def track(plugins: Plugins, run_dir: Path, results: Any, tracking: dict[str, Any], say: Callable[[str], None]) -> None:
    """Every tracker records the results; its line (where it recorded them) or its failure is shown.
    results.json is already written: a tracker that fails leaves the outcome as it is."""
    lines, errors = plugins.after_run(run_dir, results, tracking)
    for line in lines:
        say(line)
    for plugin, error in errors.items():
        say(f"! tracker {plugin!r} failed, the results are still in {run_dir / 'results.json'}: {error}")
