"""One run of a one-step toy pipeline on a shared store given as a URL, for tests/test_remote_store.py:
``python remote_store_worker.py URL RUN_DIR BUILD_LOG SECONDS``. The step appends ``started`` to
BUILD_LOG, sleeps SECONDS (so that runs started together overlap, or a test can kill it mid-step),
then appends ``built``. The environment gives the endpoint, the credentials and SLIMKIT_CACHE
(one per worker: each stands for a machine of its own)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import slimkit
from slimkit.hardware import Hardware
from slimkit.plugins import build_plugins
from slimkit.runner import run_pipeline
from slimkit.spec import pipeline_from_dict
from toy_plugin import ToyPlugin, read, write


class Slow:
    def __init__(self, log: Path, seconds: float) -> None:
        self.log, self.seconds = log, seconds

    def note(self, line: str) -> None:
        with self.log.open("a") as fh:
            fh.write(f"{line}\n")

    @slimkit.hookimpl
    def register_techniques(self, register):  # type: ignore[no-untyped-def]
        register({"name": "slow.a", "stage": "train", "summary": "Sleep, then copy.", "consumes": ["toy"]})

    @slimkit.hookimpl
    def train(self, step):  # type: ignore[no-untyped-def]
        if step.technique.name != "slow.a":
            return None
        self.note("started")
        time.sleep(self.seconds)
        write(step.output_dir, [w + 1 for w in read(step.input.path)])
        self.note("built")
        return step.artifact()


def main() -> int:
    url, run_dir, log, seconds = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]), float(sys.argv[4])
    plugins = build_plugins(entry_points=False)
    plugins.register(ToyPlugin(), "toy", origin="test")
    plugins.register(Slow(log, seconds), "slow", origin="test")
    pipeline = pipeline_from_dict(
        {
            "name": "shared",
            "model": {"source": "toy:0.1,0.5", "format": "toy"},
            "device": "cpu",
            "steps": [{"technique": "slow.a", "name": "a"}],
            "output_dir": str(run_dir),
            "store_dir": url,
        }
    )
    hardware = Hardware(
        cpu_model="t", arch="x86_64", logical_cores=2, physical_cores=2, cpu_flags=[], memory_bytes=None
    )
    return run_pipeline(pipeline, plugins=plugins, hardware=hardware).exit_code or 0


if __name__ == "__main__":
    sys.exit(main())
