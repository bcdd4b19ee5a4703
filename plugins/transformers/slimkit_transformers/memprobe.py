"""Peak resident memory of one model, in a fresh process: ``python -m slimkit_transformers.memprobe``.

Loads the artifact through the ``load_predictor`` hook (so any installed format works), runs one
batch of real-length inputs, and prints one JSON line with ``peak_rss_bytes`` (VmHWM, else ru_maxrss) and the
RSS before loading (imports alone), so readers can tell the model's share.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys


def _rss_now() -> int:
    with open("/proc/self/statm") as fh:
        import os

        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _peak_rss() -> int:
    """This process's peak resident memory.

    Linux keeps ru_maxrss across fork and exec, so in a child of a large process it reports the
    parent's RSS at fork time; VmHWM belongs to the new address space and starts from zero at exec.
    """
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024  # kB
    except OSError:
        pass
    scale = 1 if sys.platform == "darwin" else 1024  # macOS reports bytes, Linux KiB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--artifact", required=True, help="the artifact as JSON")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--length", type=int, default=128)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--plugin", action="append", default=[], help="plugin module to register (repeatable)")
    parser.add_argument("--parent", type=int, help="pid of the run that started this probe: end with it")
    args = parser.parse_args(argv)
    if args.parent is not None:
        from slimkit.processes import die_with_parent

        die_with_parent(args.parent)  # a run killed by SIGKILL must not leave this probe running

    import torch

    from slimkit.artifacts import Artifact
    from slimkit.plugins import build_plugins

    torch.set_num_threads(args.threads)
    import importlib

    plugins = build_plugins(entry_points=not args.plugin)
    for module in args.plugin:
        plugins.register(importlib.import_module(module), module.rsplit(".", 1)[-1], origin="test")
    artifact = Artifact.model_validate_json(args.artifact)
    rss_imports = _rss_now()
    predictor = plugins.load_predictor(artifact, args.device, args.threads)
    if predictor is None:
        print(f"no installed plugin loads format {artifact.format!r}", file=sys.stderr)
        return 2
    text = "The quick brown fox jumps over the lazy dog. " * 40
    encoded = predictor.encode([text] * args.batch, max_length=args.length, pad_to_max=True)
    predictor(encoded)
    peak = _peak_rss()
    print(json.dumps({"peak_rss_bytes": peak, "rss_after_imports_bytes": rss_imports}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
