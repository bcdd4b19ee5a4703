"""One run of a two-step toy pipeline on a shared store, for the concurrency tests:
``python store_worker.py STORE RUN_DIR BUILD_LOG``. Each step sleeps a little so that runs started
together overlap, and appends one line to BUILD_LOG each time it is really built."""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import slimkit
from slimkit.hardware import Hardware
from slimkit.plugins import build_plugins
from slimkit.runner import run_pipeline
from slimkit.spec import Pipeline
from toy_plugin import ToyPlugin, read, write


class Slow:
    def __init__(self, log: Path) -> None:
        self.log = log

    @slimkit.hookimpl
    def register_techniques(self, register):  # type: ignore[no-untyped-def]
        for name in ("slow.a", "slow.b"):
            register({"name": name, "stage": "train", "summary": "Sleep, then copy.", "consumes": ["toy"]})

    @slimkit.hookimpl
    def train(self, step):  # type: ignore[no-untyped-def]
        if not step.technique.name.startswith("slow."):
            return None
        time.sleep(0.4)
        write(step.output_dir, [w + 1 for w in read(step.input.path)])
        with self.log.open("a") as fh:
            fh.write(f"{step.name}\n")
        return step.artifact()


def main() -> int:
    store, run_dir, log = (Path(a) for a in sys.argv[1:4])
    plugins = build_plugins(entry_points=False)
    plugins.register(ToyPlugin(), "toy", origin="test")
    plugins.register(Slow(log), "slow", origin="test")
    pipeline = (
        Pipeline(name="shared", model={"source": "toy:0.1,0.5", "format": "toy"}, device="cpu")
        .train("slow.a", name="a")
        .train("slow.b", name="b")
    )
    pipeline = pipeline.model_copy(update={"output_dir": run_dir, "store_dir": store})
    hardware = Hardware(
        cpu_model="t", arch="x86_64", logical_cores=2, physical_cores=2, cpu_flags=[], memory_bytes=None
    )
    return run_pipeline(pipeline, plugins=plugins, hardware=hardware).exit_code


if __name__ == "__main__":
    sys.exit(main())
