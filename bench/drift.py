"""Which part of the machine drifts: memory bandwidth or compute? (issue 21, docs/measurement.md)

Alternates, for a fixed time, two probes on one thread: a 64 MB array copy (larger than the
L3 cache, so it runs at the memory bandwidth the VM gets from its host) and a 256x256 float32
matrix product (256 KB, resident in the core's L2, so it runs at the core's compute rate). Each
sample is the median of a short burst (10 copies, 200 products). If both probes moved together,
the machine's speed would drift as a whole and a latency ratio would cancel it; if only the
copy moves, a model that streams its weights from memory (an fp32 baseline at batch 1) and one
whose weights stay in cache (a small int8 model) drift apart, and so does their ratio.

    .venv/bin/python bench/drift.py --seconds 90

Nothing else may run on the machine meanwhile.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")  # one core, before numpy loads its BLAS

import numpy as np

import _common

COPY_BYTES = 64 * 2**20
MATMUL_SIDE = 256


def _burst(call: Callable[[], Any], calls: int) -> float:
    """The median duration of ``calls`` calls, in ms."""
    durations = []
    for _ in range(calls):
        started = time.perf_counter()
        call()
        durations.append(time.perf_counter() - started)
    return float(np.median(durations)) * 1e3


def _summary(samples: list[float]) -> dict[str, float]:
    values = np.asarray(samples)
    p10, p90 = np.percentile(values, [10, 90])
    return {
        "median_ms": float(np.median(values)),
        "min_ms": float(values.min()),
        "max_ms": float(values.max()),
        "p10_ms": float(p10),
        "p90_ms": float(p90),
        "max_over_min": float(values.max() / values.min()),
        "p90_over_p10": float(p90 / p10),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--seconds", type=float, default=90.0)
    args = parser.parse_args()
    source = np.ones(COPY_BYTES // 8)
    target = np.empty_like(source)
    matrix = np.random.default_rng(0).random((MATMUL_SIDE, MATMUL_SIDE), dtype=np.float32)
    copies: list[float] = []
    products: list[float] = []
    deadline = time.perf_counter() + args.seconds
    while time.perf_counter() < deadline:
        copies.append(_burst(lambda: np.copyto(target, source), 10))
        products.append(_burst(lambda: matrix @ matrix, 200))
    stats = {"copy_64mb": _summary(copies), "matmul_256": _summary(products)}
    correlation = float(np.corrcoef(copies, products)[0, 1])
    rows = [
        [name, f"{s['median_ms']:.4f}", f"{s['p10_ms']:.4f}-{s['p90_ms']:.4f}", f"{s['min_ms']:.4f}-{s['max_ms']:.4f}",
         f"{(s['p90_over_p10'] - 1) * 100:.1f} %", f"{(s['max_over_min'] - 1) * 100:.1f} %"]
        for name, s in stats.items()
    ]  # fmt: skip
    header = ["probe", "median ms", "p10-p90", "min-max", "p90/p10 - 1", "max/min - 1"]
    print(_common.table(header, rows))
    print(f"{len(copies)} samples of each in {args.seconds:g} s; correlation of the two probes {correlation:.2f}")
    path = _common.write(
        "drift", {"seconds": args.seconds, "samples": len(copies), "probes": stats,
                  "correlation": correlation, "copy_ms": copies, "matmul_ms": products},
    )  # fmt: skip
    print(f"wrote {os.path.relpath(path)}")


if __name__ == "__main__":
    main()
