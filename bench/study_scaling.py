"""Study scaling benchmark (issue 23): the same study built by the local executor and by Ray.

    .venv/bin/python bench/study_scaling.py [--quick] [--variants 8] [--seconds 2] [--workers 1,2]
                                            [--real] [--results PATH ...]

A study of fake techniques that only sleep (plugins/ray/tests/sleepy.py: ``--variants`` variants
of ``--seconds`` each, plus the baseline, which has no step) is built three ways with the same
fresh output folder layout: the local executor, then the ray executor (``num_cpus = 1`` per
variant) on a local Ray instance of 1 and of 2 CPUs (``ray.init(num_cpus=N)``, started before
the clock starts). Prints the wall time of each study, its ratio to local, and the overhead per
job: (wall x workers - total sleep) / jobs, the time a worker spent on anything but the
technique. Targets: 2 workers <= 0.6x local; overhead < 2 s per job.

Then a projection from measured per-step build times to N workers: critical path (the longest
chain of one variant's steps) and total work (every distinct step once), projected wall =
max(critical path, total work / N). For the sleeping study, and with ``--real`` for
examples/minilm-semeval-study.toml built locally (resumed: only what its store lacks is built;
the first time that is hours of training), or for any results.json given with ``--results``
(e.g. docs/studies/minilm-semeval-study/results.json). Steps built outside the study (a reused
baseline) have no known time and count as 0; the table says how many.

``--quick``: 4 variants of 0.2 s, to check that the script works (its figures mean nothing).
Writes bench/results/study_scaling.json (study_scaling-quick.json with --quick).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import table, write

REPO = Path(__file__).resolve().parents[1]
SLEEPY = REPO / "plugins" / "ray" / "tests" / "sleepy.py"
REAL_STUDY = REPO / "examples" / "minilm-semeval-study.toml"
TARGET_RATIO, TARGET_OVERHEAD_S = 0.6, 2.0
PROJECT_TO = (1, 2, 4, 8, 16)


def sleeping_study(folder: Path, variants: int, seconds: float, executor: dict[str, Any]) -> Any:
    from slimkit.study.spec import study_from_dict

    data = {
        "name": "scaling",
        "model": {"source": "sleepy:1,2,3", "format": "toy"},
        "device": "cpu",
        "output_dir": str(folder / "study"),
        "plugins": [str(SLEEPY)],
        "executor": executor,
        "blocks": {
            "work": {
                "technique": "sleepy.work",
                "grid": {"tag": list(range(1, variants + 1))},
                "config": {"seconds": seconds},
            }
        },
        "search": {"space": [["work"]], "budget": {"metric": "score"}},
    }
    return study_from_dict(data, base_dir=folder)


def timed(study: Any) -> tuple[float, Any]:
    from slimkit.plugins import build_plugins
    from slimkit.study.runner import run_study

    start = time.monotonic()
    result = run_study(study, plugins=build_plugins(), force=True)
    wall = time.monotonic() - start
    if result.results.outcome != "done":
        raise SystemExit(f"the study failed: {result.results.reason}")
    return wall, result.results


def projection(results: Any) -> dict[str, Any]:
    """Critical path and total work from the variants' step times; projected wall per N.

    A step reused from the store records 0 s; its time is recovered from a variant's build time
    (which counts every step of the variant at the time it took when computed) when it is the
    only step of that variant whose time is not known otherwise; where several are, the rest of
    the variant's time is split evenly between them (counted as estimated)."""
    chains = {
        v.name: (v, [s.key or f"{v.name}/{s.name}" for s in v.step_records])
        for v in results.variants
        if v.status in ("built", "reused")
    }
    known = {s.key: s.seconds for v, _ in chains.values() for s in v.step_records if s.status == "done" and s.key}
    estimated: set[str] = set()
    for split in (False, True):  # exact first; then split what is left
        changed = True
        while changed:
            changed = False
            for v, keys in chains.values():
                missing = sorted({k for k in keys if k not in known})
                if not missing or (len(missing) > 1 and not split):
                    continue
                if v.build_seconds is None or v.steps_of_unknown_time:
                    continue
                rest = max(0.0, v.build_seconds - sum(known.get(k, 0.0) for k in keys))
                known |= {k: rest / len(missing) for k in missing}
                estimated |= set(missing) if len(missing) > 1 else set()
                changed = True
                break  # an exact answer may now exist for another variant
    critical = max((sum(known.get(k, 0.0) for k in keys) for _, keys in chains.values()), default=0.0)
    steps = {k for _, keys in chains.values() for k in keys}
    total = sum(known.get(k, 0.0) for k in steps)
    return {
        "study": results.study,
        "variants": len(chains),
        "steps": len(steps),
        "steps_of_unknown_time": len(steps - set(known)),
        "steps_estimated": len(estimated),
        "critical_path_s": round(critical, 3),
        "total_work_s": round(total, 3),
        "projected_wall_s": {str(n): round(max(critical, total / n), 3) for n in PROJECT_TO},
    }


def measure_sleeping(args: argparse.Namespace) -> tuple[list[dict[str, Any]], Any]:
    import ray

    runs: list[dict[str, Any]] = []
    jobs = args.variants + 1  # the baseline is a job too, with no step
    sleep_total = args.variants * args.seconds
    with tempfile.TemporaryDirectory() as tmp:
        timed(sleeping_study(Path(tmp, "warm-up"), 1, 0, {"name": "local"}))  # imports, first plugin load: untimed
        wall, local = timed(sleeping_study(Path(tmp, "local"), args.variants, args.seconds, {"name": "local"}))
        runs.append({"executor": "local", "workers": 1, "wall_s": wall})
        for n in args.workers:
            ray.init(address="local", num_cpus=n, include_dashboard=False, log_to_driver=False)
            try:
                executor = {"name": "ray", "options": {"num_cpus": 1}}
                wall, _ = timed(sleeping_study(Path(tmp, f"ray{n}"), args.variants, args.seconds, executor))
            finally:
                ray.shutdown()
            runs.append({"executor": "ray", "workers": n, "wall_s": wall})
    for run in runs:
        run["vs_local"] = run["wall_s"] / runs[0]["wall_s"]
        run["overhead_per_job_s"] = (run["wall_s"] * run["workers"] - sleep_total) / jobs
    return runs, local


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="4 variants of 0.2 s: checks the script, nothing more")
    parser.add_argument("--variants", type=int, default=8, help="variants of the sleeping study (default 8)")
    parser.add_argument("--seconds", type=float, default=2.0, help="seconds each variant sleeps (default 2)")
    parser.add_argument("--workers", default="1,2", help="Ray CPUs (= workers) to try, comma-separated")
    parser.add_argument("--real", action="store_true", help=f"also project {REAL_STUDY.name}, built locally first")
    parser.add_argument("--results", nargs="*", default=[], help="results.json files of studies to project")
    args = parser.parse_args()
    args.workers = [int(n) for n in args.workers.split(",")]
    if args.quick:
        args.variants, args.seconds = 4, 0.2
    os.environ["SLIMKIT_TRUST_LOCAL_PLUGINS"] = "1"  # the sleepy plugin is a local plugin file

    runs, local = measure_sleeping(args)
    print(f"sleeping study: {args.variants} variants x {args.seconds:g} s (+ the baseline, no step)\n")
    rows = [
        [r["executor"], r["workers"], f"{r['wall_s']:.2f}", f"{r['vs_local']:.2f}x", f"{r['overhead_per_job_s']:.2f}"]
        for r in runs
    ]
    print(table(["executor", "workers", "wall s", "vs local", "overhead s/job"], rows))
    two = next((r for r in runs if r["executor"] == "ray" and r["workers"] == 2), None)
    ray_runs = [r for r in runs if r["executor"] == "ray"]
    met = (
        two is not None
        and two["vs_local"] <= TARGET_RATIO
        and all(r["overhead_per_job_s"] < TARGET_OVERHEAD_S for r in ray_runs)
    )
    print(f"\ntarget (2 workers <= {TARGET_RATIO}x local, overhead < {TARGET_OVERHEAD_S:g} s/job): "
          f"{'met' if met else 'NOT met'}{' (--quick: not meaningful)' if args.quick else ''}")  # fmt: skip

    projections = [projection(local)]
    if args.real:
        from slimkit.plugins import build_plugins
        from slimkit.study.runner import run_study
        from slimkit.study.spec import load_study

        projections.append(projection(run_study(load_study(REAL_STUDY), plugins=build_plugins()).results))
    from slimkit.results import load_results

    projections += [projection(load_results(Path(p))) for p in args.results]
    print("\nprojection: wall = max(critical path, total work / N)\n")
    header = [
        "study",
        "variants",
        "steps",
        "unknown",
        "estimated",
        "critical s",
        "total s",
        *[f"N={n}" for n in PROJECT_TO],
    ]
    rows = [
        [p["study"], p["variants"], p["steps"], p["steps_of_unknown_time"], p["steps_estimated"],
         f"{p['critical_path_s']:.1f}",
         f"{p['total_work_s']:.1f}", *[f"{p['projected_wall_s'][str(n)]:.1f}" for n in PROJECT_TO]]
        for p in projections
    ]  # fmt: skip
    print(table(header, rows))
    out = {
        "quick": args.quick,
        "variants": args.variants,
        "seconds": args.seconds,
        "runs": runs,
        "target_met": met,
        "projections": projections,
    }
    print(f"\nwritten: {write('study_scaling-quick' if args.quick else 'study_scaling', out)}")


if __name__ == "__main__":
    main()
