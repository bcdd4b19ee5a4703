"""Shared helpers of the benchmark scripts: print a table, write JSON next to it.

Every script imports this module first. Python puts bench/ first on the path when it runs a
script from here, and bench/onnx.py would then shadow the onnx package (imported by torch.onnx,
onnxruntime and slimkit-onnx): importing this module moves bench/ to the end of the path.
"""

from __future__ import annotations

import json
import platform
import sys
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results"
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != BENCH] + [str(BENCH)]


def machine() -> dict[str, Any]:
    from slimkit.hardware import probe

    hw = probe(cuda=False)
    return {"cpu": hw.cpu_model, "cores": hw.physical_cores, "flags": hw.cpu_flags, "python": platform.python_version()}


def table(header: list[str], rows: list[list[Any]]) -> str:
    cells = [header, *[[str(c) for c in r] for r in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def write(name: str, data: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(data | {"machine": machine(), "argv": sys.argv}, indent=2, default=str))
    return path


def session_args(parser: Any) -> None:
    """--sessions and --session-gap, as `slimkit run/study --sessions` (docs/measurement.md#several-sessions)."""
    parser.add_argument("--sessions", type=int, default=1, help="repeat the whole measurement N times, spaced apart")
    parser.add_argument("--session-gap", type=float, default=60.0, metavar="SECONDS", help="pause between sessions")


def measure(plugins: Any, artifacts: list[Any], context: Any, args: Any) -> tuple[dict[str, Any], dict[str, str]]:
    """Every artifact measured together, in ``args.sessions`` sessions (figures: medians across them)."""
    from slimkit.sessions import measure_sessions

    settings = context.settings.model_copy(update={"sessions": args.sessions, "session_gap_s": args.session_gap})
    return measure_sessions(lambda: plugins.measure(artifacts, context), settings, announce=print)


def speedup(metric: Any, baseline: Any) -> float | None:
    """Baseline over candidate (higher is better): the median of the per-session ratios when
    measured in several sessions, since only figures of one session pair up."""
    from slimkit.metrics import compare

    return compare(metric, baseline).get("ratio")
