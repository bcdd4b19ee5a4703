"""The step store: verified reuse, damaged steps built again, claims shared between processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from slimkit import digests, store
from slimkit.artifacts import MANIFEST
from slimkit.claims import claim
from slimkit.hardware import Hardware
from slimkit.runner import RunResult
from slimkit.spec import Pipeline
from toy_plugin import ToyPlugin

HERE = Path(__file__).parent


@pytest.fixture
def run(run_pipeline: Callable[..., RunResult], hw: Hardware) -> Callable[..., RunResult]:
    def go(pipeline: Pipeline, **kw: Any) -> RunResult:
        return run_pipeline(pipeline, hardware=hw, **kw)

    return go


def two_steps() -> Pipeline:
    source = {"source": "toy:0.1,0.5,-0.3,0.04", "format": "toy"}
    return Pipeline(name="run", model=source, device="cpu").prune("toy.prune").train("toy.finetune")


def first_step_folder(result: RunResult) -> Path:
    return result.steps[0].artifact.path.parent  # type: ignore[union-attr]


def write_manifest_text(folder: Path, text: str) -> None:
    (folder / MANIFEST).write_text(text, encoding="utf-8")


def edit_manifest(folder: Path, change: Callable[[dict[str, Any]], None]) -> None:
    document = json.loads((folder / MANIFEST).read_text())
    change(document)
    write_manifest_text(folder, json.dumps(document))


def truncate(folder: Path) -> None:
    weights = folder / "model" / "weights.json"
    weights.write_bytes(weights.read_bytes()[:5])


def flip_a_byte(folder: Path) -> None:
    weights = folder / "model" / "weights.json"
    data = bytearray(weights.read_bytes())
    data[2] = ord("9") if data[2] != ord("9") else ord("8")  # same size, other content
    weights.write_bytes(bytes(data))


def point_at(target: str) -> Callable[[Path], None]:
    def change(folder: Path) -> None:
        edit_manifest(folder, lambda d: d["artifact"].update(path=target))

    return change


def older_manifest(folder: Path) -> None:
    """The manifest an older slimkit wrote: the artifact alone, no digests."""
    document = json.loads((folder / MANIFEST).read_text())
    write_manifest_text(folder, json.dumps(document["artifact"]))


def replace_by_folder(folder: Path) -> None:
    weights = folder / "model" / "weights.json"
    weights.unlink()
    weights.mkdir()


def replace_by_link(folder: Path) -> None:
    weights = folder / "model" / "weights.json"
    copy = folder.parent / "copy.json"
    copy.write_bytes(weights.read_bytes())
    weights.unlink()
    weights.symlink_to(copy)


def spoil_cache_and_flip(folder: Path) -> None:
    (folder / digests.VERIFIED_CACHE).write_text('{"model/weights.json": 5}')
    flip_a_byte(folder)


DAMAGE = {
    "truncated weights": (truncate, "has 5 bytes"),
    "a flipped byte": (flip_a_byte, "does not match its sha256"),
    "a path to another model": (point_at("../../../../slimkit-cache"), "points outside the step folder"),
    "an absolute path": (point_at("/etc/hostname"), "points outside the step folder"),
    "a path climbing out": (point_at("model/../../other"), "points outside the step folder"),
    "a garbage manifest": (lambda f: write_manifest_text(f, "{not json"), "cannot be read"),
    "an empty manifest": (lambda f: write_manifest_text(f, ""), "cannot be read"),
    "a manifest that is a list": (lambda f: write_manifest_text(f, "[1]"), "not a manifest"),
    "a manifest without digests": (older_manifest, "without file digests"),
    "a listed file missing": (lambda f: (f / "model" / "weights.json").unlink(), "is missing"),
    "an empty file list": (lambda f: edit_manifest(f, lambda d: d.update(files={})), "is not in its file list"),
    "a file list that is not a table": (lambda f: edit_manifest(f, lambda d: d.update(files=[])), "not a table"),
    "a size that is a string": (
        lambda f: edit_manifest(f, lambda d: d["files"]["model/weights.json"].update(size="21")),
        "bad entry for 'model/weights.json'",
    ),
    "a file replaced by a folder": (replace_by_folder, "is missing"),
    "a file replaced by a link": (replace_by_link, "is not a regular file"),
    "a garbage verification cache and a flipped byte": (spoil_cache_and_flip, "does not match its sha256"),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_damaged_step_is_built_again_with_one_warning(run: Any, toy: ToyPlugin, damage: str) -> None:
    spoil, why = DAMAGE[damage]
    first = run(two_steps())
    folder = first_step_folder(first)
    good = (folder / "model" / "weights.json").read_bytes()
    spoil(folder)
    toy.executed.clear()

    again = run(two_steps())
    assert again.exit_code == 0
    assert [s.status for s in again.steps] == ["done", "reused"]  # the second step's input is unchanged
    assert toy.executed == ["toy.prune"]
    damaged = [w for w in again.warnings if "is damaged" in w]
    assert len(damaged) == 1 and why in damaged[0] and damaged[0].endswith("building it again")
    assert (folder / "model" / "weights.json").read_bytes() == good  # rebuilt in place, whole
    results = json.loads(again.results_path.read_text())
    assert damaged[0] in results["warnings"]
    events = [json.loads(line) for line in (again.run_dir / "journal.jsonl").read_text().splitlines()]
    assert any(e["event"] == "step_damaged" for e in events)
    # The rebuilt step is trusted again.
    toy.executed.clear()
    assert [s.status for s in run(two_steps()).steps] == ["reused", "reused"]
    assert toy.executed == []


def test_reuse_hashes_only_files_whose_size_or_mtime_changed(
    run: Any, toy: ToyPlugin, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = first_step_folder(run(two_steps()))
    hashed: list[str] = []
    real = digests.sha256_file
    monkeypatch.setattr(digests, "sha256_file", lambda p: hashed.append(p.name) or real(p))

    run(two_steps())
    assert hashed == []  # as published: the fingerprints recorded when it was hashed still hold
    weights = folder / "model" / "weights.json"
    os.utime(weights, ns=(time.time_ns(), time.time_ns() + 10**9))  # touched, not changed
    run(two_steps())
    assert hashed == ["weights.json"]
    run(two_steps())
    assert hashed == ["weights.json"]  # verified once, remembered in the verification cache


def test_a_copied_store_is_hashed_even_when_its_mtimes_were_kept(run: Any, toy: ToyPlugin, tmp_path: Path) -> None:
    """cp -a keeps mtimes but not inodes or ctimes: damage in transit is caught."""
    folder = first_step_folder(run(two_steps()))
    copy = tmp_path / "copied-store"
    subprocess.run(["cp", "-a", str(folder.parent), str(copy)], check=True)
    weights = copy / folder.name / "model" / "weights.json"
    kept = weights.stat()
    flip_a_byte(copy / folder.name)
    os.utime(weights, ns=(kept.st_atime_ns, kept.st_mtime_ns))  # the mtime put back, as a copy tool would
    with pytest.raises(digests.Damaged, match="does not match its sha256"):
        store.verify_step(copy / folder.name)


def test_a_published_step_lists_every_file_with_its_digest(run: Any, toy: ToyPlugin) -> None:
    folder = first_step_folder(run(two_steps()))
    document = json.loads((folder / MANIFEST).read_text())
    assert document["schema"] == store.STEP_SCHEMA
    assert document["artifact"]["path"] == "model"
    weights = folder / "model" / "weights.json"
    assert document["files"] == {
        "model/weights.json": {"size": weights.stat().st_size, "sha256": digests.sha256_file(weights)}
    }


def test_a_claim_waits_for_its_holder_and_is_free_when_the_holder_is_killed(tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path; from slimkit.claims import claim\n"
            "with claim(Path(sys.argv[1]), 'k1'):\n    print('held', flush=True); time.sleep(60)",
            str(tmp_path),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        owners: list[str] = []
        killer = __import__("threading").Timer(1.0, lambda: os.kill(holder.pid, signal.SIGKILL))
        killer.start()
        started = time.monotonic()
        with claim(tmp_path, "k1", on_wait=owners.append):
            waited = time.monotonic() - started
        killer.join()
    finally:
        holder.kill()
        holder.wait()
    # It waited for the live holder (named by pid), and took the key as soon as the kernel freed it.
    assert len(owners) == 1 and owners[0].startswith(f"pid {holder.pid} on ")
    assert 0.9 < waited < 10
    assert not (tmp_path / ".lock-k1").exists()


def test_concurrent_runs_on_one_store_build_each_step_once(tmp_path: Path) -> None:
    store_dir, log = tmp_path / "store", tmp_path / "builds.log"
    env = dict(os.environ, SLIMKIT_CACHE=str(tmp_path / "cache"))
    # Four runs of one pipeline into one run folder, and four into folders of their own.
    run_dirs = [tmp_path / "runs" / "same"] * 4 + [tmp_path / "runs" / f"own{i}" for i in range(4)]
    workers = [
        subprocess.Popen(
            [sys.executable, str(HERE / "store_worker.py"), str(store_dir), str(d), str(log)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for d in run_dirs
    ]
    outputs = [w.communicate(timeout=120) for w in workers]
    # Only the failing workers' stderr, so that pytest does not cut the one that matters.
    failed = [err[-3000:] for w, (_, err) in zip(workers, outputs, strict=True) if w.returncode]
    assert not failed, "\n---\n".join(failed)
    assert sorted(log.read_text().split()) == ["a", "b"]  # each step built by exactly one run
    for run_dir in set(run_dirs):
        results = json.loads((run_dir / "results.json").read_text())
        assert results["outcome"] == "done"
    statuses = sorted(
        tuple(s["status"] for s in json.loads((d / "results.json").read_text())["steps"]) for d in set(run_dirs[4:])
    )
    assert all(set(s) <= {"done", "reused"} for s in statuses)
    leftovers = [p.name for p in store_dir.iterdir() if p.name.startswith((".tmp-", ".lock-", ".trash-"))]
    assert leftovers == []
    assert len([p for p in store_dir.iterdir() if not p.name.startswith(".")]) == 2


def test_a_child_ends_with_its_parent_even_when_the_parent_is_killed(tmp_path: Path) -> None:
    child_code = (
        "import sys, time; from slimkit.processes import die_with_parent\n"
        "die_with_parent(int(sys.argv[1])); time.sleep(60)"
    )
    parent_code = (
        "import os, subprocess, sys, time\n"
        f"child = subprocess.Popen([sys.executable, '-c', {child_code!r}, str(os.getpid())])\n"
        "print(child.pid, flush=True); time.sleep(60)"
    )
    parent = subprocess.Popen([sys.executable, "-c", parent_code], stdout=subprocess.PIPE, text=True)
    assert parent.stdout is not None
    child_pid = int(parent.stdout.readline())
    time.sleep(0.5)  # the child has called die_with_parent
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 10
    while _alive(child_pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(child_pid)


def _alive(pid: int) -> bool:
    """Whether pid runs (a zombie, dead but not yet reaped by init, counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_leftovers_of_a_killed_run_are_removed_by_the_next_claim_holder(
    run: Any, toy: ToyPlugin, tmp_path: Path
) -> None:
    folder = first_step_folder(run(two_steps()))
    steps = folder.parent
    left = [steps / f".tmp-{folder.name}-0123abcd", steps / f".trash-{folder.name}-89abcdef"]
    other = steps / f".tmp-{folder.name}-longer-name-0123abcd"  # another step whose name starts alike
    for path in [*left, other]:
        (path / "model").mkdir(parents=True)
    run(two_steps(), force=True)
    assert [p.exists() for p in left] == [False, False] and other.exists()


def test_a_step_that_writes_a_link_fails(run: Any, toy: ToyPlugin, register_plugin: Any, tmp_path: Path) -> None:
    from test_runner import Custom

    def linking(step: Any) -> Any:
        (step.output_dir / "weights.json").symlink_to(tmp_path / "elsewhere.json")
        return step.artifact()

    register_plugin(Custom(linking), name="custom")
    result = run(two_steps().prune("custom.prune", name="link"))
    assert result.exit_code == 1
    assert result.steps[2].error == (
        "PluginError: the output holds model/weights.json, which is not a regular file (a link?); write the file itself"
    )
