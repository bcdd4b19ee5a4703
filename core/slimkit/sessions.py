"""Repeating the whole measurement in several sessions, spaced apart.

One session (every artifact loaded, timed in rotated blocks) gives ratios that hold within it, but
a small shared machine drifts: the same models measured an hour apart gave ratios a third apart.
Several sessions, each interleaved as usual, give each figure's median across sessions and each
ratio's median and range (see :func:`slimkit.metrics.compare`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from statistics import median
from typing import Any

from slimkit.metrics import Metric
from slimkit.spec import MeasureSpec

Measured = tuple[dict[str, list[Metric]], dict[str, str]]


def measure_sessions(
    measure_once: Callable[[], Measured],
    settings: MeasureSpec,
    *,
    announce: Callable[[str], None] = lambda line: None,
    sleep: Callable[[float], None] = time.sleep,
) -> Measured:
    """Call ``measure_once`` ``settings.sessions`` times, ``settings.session_gap_s`` apart, and combine."""
    if settings.sessions <= 1:
        return measure_once()
    runs: list[Measured] = []
    for number in range(1, settings.sessions + 1):
        if number > 1 and settings.session_gap_s > 0:
            announce(f"pausing {settings.session_gap_s:g} s before measurement session {number}/{settings.sessions}")
            sleep(settings.session_gap_s)
        announce(f"measurement session {number}/{settings.sessions}")
        runs.append(measure_once())
    return combine_sessions([metrics for metrics, _ in runs]), _errors([errors for _, errors in runs])


def combine_sessions(sessions: list[dict[str, list[Metric]]]) -> dict[str, list[Metric]]:
    """One metric per artifact and name: the first session's record, its value the median across
    sessions, ``sessions`` every session's value (None where that session had none)."""
    combined: dict[str, list[Metric]] = {}
    for key, first in sessions[0].items():
        named = [{m.name: m for m in session.get(key, [])} for session in sessions]
        combined[key] = [_combine(metric, [n.get(metric.name) for n in named]) for metric in first]
    return combined


def _combine(first: Metric, records: list[Metric | None]) -> Metric:
    values = [r.value if r is not None else None for r in records]
    present = [v for v in values if v is not None]
    spread = _median_spread([r.spread for r in records if r is not None and r.value is not None])
    return first.model_copy(
        update={
            "value": median(present) if present else None,
            "spread": spread,
            "sessions": values,
            # Each session's own spread and varying details stay readable (e.g. the ratio of the
            # fastest calls, or per-round ratios from each round's block median).
            "details": first.details
            | {"session_spreads": [r.spread if r is not None else {} for r in records]}
            | _varying_details(records),
        }
    )


def _varying_details(records: list[Metric | None]) -> dict[str, list[Any]]:
    """``session_<key>``: every session's value of each detail that differs between sessions (None
    where a session lacks it); a detail that every session agrees on stays the first record's alone."""
    keys = sorted({key for r in records if r is not None for key in r.details})
    varying: dict[str, list[Any]] = {}
    for key in keys:
        values = [r.details.get(key) if r is not None else None for r in records]
        if len({json.dumps(v, sort_keys=True, default=str) for v in values}) > 1:
            varying[f"session_{key}"] = values
    return varying


def _median_spread(spreads: list[dict[str, float]]) -> dict[str, float]:
    """Each spread figure (p90, p99, min...) as its median across sessions."""
    names = {name for spread in spreads for name in spread}
    return {name: median(s[name] for s in spreads if name in s) for name in sorted(names)}


def _errors(sessions: list[dict[str, str]]) -> dict[str, str]:
    """A measurer that failed in any session, with the sessions it failed in when not all."""
    errors: dict[str, str] = {}
    for number, session in enumerate(sessions, start=1):
        for plugin, error in session.items():
            errors.setdefault(plugin, error if _in_all(plugin, sessions) else f"session {number}: {error}")
    return errors


def _in_all(plugin: str, sessions: list[dict[str, str]]) -> bool:
    return all(plugin in session for session in sessions)
