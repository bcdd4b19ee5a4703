"""Median wall time of `slimkit --help` and `slimkit plugins` with every installed plugin.

    .venv/bin/python bench/cli_startup.py [--runs 10]

Target (issue 2): under 0.5 s each on the 2-core CPU machine. Writes bench/results/cli_startup.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from _common import table, write


def time_command(argv: list[str], runs: int) -> list[float]:
    env = {k: v for k, v in os.environ.items() if k != "SLIMKIT_LOAD_PLUGINS"}  # every plugin loads
    subprocess.run(argv, capture_output=True, check=True, env=env)  # warm the file cache
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(argv, capture_output=True, check=True, env=env)
        samples.append(time.perf_counter() - started)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    exe = shutil.which("slimkit", path=str(Path(sys.executable).parent)) or "slimkit"
    plugins = subprocess.run([exe, "plugins", "--json"], capture_output=True, text=True, check=True).stdout
    rows, data = [], {}
    for name, argv in (("slimkit --help", [exe, "--help"]), ("slimkit plugins", [exe, "plugins"])):
        samples = time_command(argv, args.runs)
        median = statistics.median(samples)
        p90 = sorted(samples)[int(0.9 * (len(samples) - 1))]
        rows.append([name, f"{median:.3f}", f"{p90:.3f}", f"{min(samples):.3f}", "yes" if median < 0.5 else "NO"])
        data[name] = {"median_s": median, "p90_s": p90, "samples_s": samples}
    print(table(["command", "median s", "p90 s", "min s", "< 0.5 s"], rows))
    loaded = [p["name"] for p in json.loads(plugins) if p["status"] == "loaded"]
    print(f"\nplugins loaded: {', '.join(loaded)}")
    print(f"written: {write('cli_startup', {'runs': args.runs, 'results': data, 'plugins': plugins})}")


if __name__ == "__main__":
    main()
