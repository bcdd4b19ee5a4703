"""A step store shared through a URL (slimkit.remote_store): against a real S3-compatible server
(moto, started on 127.0.0.1 by these tests) and a file:// URL. Each SLIMKIT_CACHE stands for a
machine of its own: its local copy of the store."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from slimkit.artifacts import MANIFEST
from slimkit.errors import SpecError
from slimkit.hardware import Hardware
from slimkit.runner import RunResult
from slimkit.spec import Pipeline, pipeline_from_dict
from toy_plugin import ToyPlugin

HERE = Path(__file__).parent
S3_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    server_module = pytest.importorskip("moto.server")
    pytest.importorskip("s3fs")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = server_module.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3(endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A fresh bucket, the environment pointing at it (as AWS tools read it), and an s3fs client."""
    import s3fs

    for name, value in {**S3_ENV, "AWS_ENDPOINT_URL": endpoint}.items():
        monkeypatch.setenv(name, value)
    fs = s3fs.S3FileSystem(skip_instance_cache=True, use_listings_cache=False)
    bucket = f"store-{uuid.uuid4().hex[:8]}"
    fs.mkdir(bucket)
    return SimpleNamespace(fs=fs, url=f"s3://{bucket}/steps")


@pytest.fixture
def run(
    run_pipeline: Callable[..., RunResult],
    hw: Hardware,
    toy: ToyPlugin,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> Callable[..., RunResult]:
    """Run a two-step toy pipeline on the store at ``url`` as machine ``machine`` (its own cache
    and run folder)."""

    def go(url: str, machine: str, **kw: Any) -> RunResult:
        monkeypatch.setenv("SLIMKIT_CACHE", str(tmp_path / machine / "cache"))
        pipeline = pipeline_from_dict(
            {
                "name": "shared",
                "model": {"source": "toy:0.1,0.5,-0.3,0.04", "format": "toy"},
                "device": "cpu",
                "steps": [
                    {"technique": "toy.prune", "name": "prune"},
                    {"technique": "toy.finetune", "name": "finetune"},
                ],
                "output_dir": str(tmp_path / machine / "run"),
                "store_dir": url,
            }
        )
        return run_pipeline(pipeline, hardware=hw, **kw)

    return go


def statuses(result: RunResult) -> list[str]:
    return [s.status for s in result.steps]


def journal(run_dir: Path, name: str) -> list[dict[str, Any]]:
    lines = (run_dir / "journal.jsonl").read_text().splitlines()
    return [e for e in map(json.loads, lines) if e.get("event") == name]


def events(result: RunResult, name: str) -> list[dict[str, Any]]:
    return journal(result.run_dir, name)


def worker(url: str, machine: Path, log: Path, seconds: float, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(HERE / "remote_store_worker.py"), url, str(machine / "run"), str(log), str(seconds)],
        env={**os.environ, **env, "SLIMKIT_CACHE": str(machine / "cache")},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def s3_env(endpoint: str, **extra: str) -> dict[str, str]:
    return {**S3_ENV, "AWS_ENDPOINT_URL": endpoint, **extra}


# --- the spec --------------------------------------------------------------------------------
def test_a_url_is_kept_as_written_and_a_path_stays_a_path(tmp_path: Path) -> None:
    base = {"name": "p", "model": {"source": "toy:1", "format": "toy"}}
    url = pipeline_from_dict({**base, "store_dir": "s3://bucket/a/b"}, base_dir=tmp_path)
    assert url.store_dir == "s3://bucket/a/b" and url.store_url == "s3://bucket/a/b"
    assert url.model_dump(mode="json")["store_dir"] == "s3://bucket/a/b"
    assert url.steps_dir.is_relative_to(Path(os.environ["SLIMKIT_CACHE"]) / "stores")
    local = pipeline_from_dict({**base, "store_dir": "shared/steps"}, base_dir=tmp_path)
    assert local.store_dir == Path("shared/steps") and local.store_url is None
    assert local.steps_dir == tmp_path / "shared" / "steps"


def test_an_s3_url_without_s3fs_is_refused_in_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "s3fs", None)  # as if it were not installed
    with pytest.raises(SpecError) as caught:
        Pipeline(name="p", model="toy:1", store_dir="s3://bucket/steps")
    message = str(caught.value)
    assert "store_dir" in message and "s3fs" in message and "pip install 'slimkit[s3]'" in message
    assert "\n" not in message


def test_an_unknown_protocol_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="store_dir: nosuch:// is not a protocol"):
        Pipeline(name="p", model="toy:1", store_dir="nosuch://x/y")


# --- reuse across machines -------------------------------------------------------------------
def test_a_file_url_store_is_shared_like_s3(run: Callable[..., RunResult], tmp_path: Path, toy: ToyPlugin) -> None:
    url = (tmp_path / "shared").as_uri()
    first = run(url, "m1")
    assert first.exit_code == 0 and statuses(first) == ["done", "done"]
    second = run(url, "m2")
    assert second.exit_code == 0 and statuses(second) == ["reused", "reused"]
    assert len(events(second, "step_fetched")) == 2 and toy.executed == ["prune", "finetune"]
    assert sorted(p.name for p in (tmp_path / "shared").iterdir() if p.name.startswith(".")) == []


def test_a_second_machine_copies_the_steps_from_s3_and_builds_nothing(
    run: Callable[..., RunResult], s3: Any, toy: ToyPlugin
) -> None:
    first = run(s3.url, "m1")
    assert first.exit_code == 0 and statuses(first) == ["done", "done"]
    assert len(s3.fs.glob(f"{s3.url}/*/{MANIFEST}")) == 2  # both steps published
    second = run(s3.url, "m2")
    assert second.exit_code == 0 and statuses(second) == ["reused", "reused"]
    assert toy.executed == ["prune", "finetune"]  # nothing built twice
    assert [e["url"] for e in events(second, "step_fetched")] == [s3.url, s3.url]
    weights = [s.artifact.path / "weights.json" for s in second.steps]  # type: ignore[union-attr]
    assert [w.read_bytes() for w in weights] == [
        (s.artifact.path / "weights.json").read_bytes()  # type: ignore[union-attr]
        for s in first.steps
    ]
    assert not [p for p in s3.fs.find(s3.url) if "/.lock-" in p]  # every claim released


@pytest.mark.parametrize("damage", ["no manifest", "a file that does not match"])
def test_a_half_written_remote_step_is_not_trusted(
    run: Callable[..., RunResult], s3: Any, toy: ToyPlugin, damage: str
) -> None:
    assert statuses(run(s3.url, "m1")) == ["done", "done"]
    [manifest] = sorted(p for p in s3.fs.find(s3.url) if p.endswith(MANIFEST) and "/prune-" in p)
    folder = manifest.rsplit("/", 1)[0]
    if damage == "no manifest":
        s3.fs.rm(manifest)  # the files of a killed upload
    else:
        weights = f"{folder}/model/weights.json"
        data = bytearray(s3.fs.cat_file(weights))
        data[2] = ord("9") if data[2] != ord("9") else ord("8")  # same size, other bytes
        s3.fs.pipe_file(weights, bytes(data))
    second = run(s3.url, "m2")
    assert second.exit_code == 0 and statuses(second) == ["done", "reused"]
    assert toy.executed == ["prune", "finetune", "prune"]
    damaged = [w for w in second.warnings if w.startswith("shared step")]
    if damage == "no manifest":  # not a step yet (a killed upload): nothing to report
        assert damaged == []
    else:
        assert damaged == [
            f"shared step {s3.url}/{folder.rsplit('/', 1)[-1]} is damaged "
            "(model/weights.json does not match its sha256); building it again"
        ]
    # Built again and uploaded over: a third machine reuses it.
    third = run(s3.url, "m3")
    assert statuses(third) == ["reused", "reused"] and toy.executed == ["prune", "finetune", "prune"]


# --- claims between processes ----------------------------------------------------------------
def test_two_machines_asking_for_one_step_at_once_build_it_once(s3: Any, endpoint: str, tmp_path: Path) -> None:
    log = tmp_path / "builds.log"
    env = s3_env(endpoint, SLIMKIT_STORE_STALE_S="5")
    workers = [worker(s3.url, tmp_path / f"m{i}", log, 1.5, env) for i in range(2)]
    outputs = [w.communicate(timeout=60) for w in workers]
    assert [w.returncode for w in workers] == [0, 0], [err for _, err in outputs]
    assert log.read_text().split() == ["started", "built"]  # built by one machine only
    steps = [json.loads((tmp_path / f"m{i}" / "run" / "results.json").read_text())["steps"] for i in range(2)]
    assert sorted(s[0]["status"] for s in steps) == ["done", "reused"]
    waits = [e for i in range(2) for e in journal(tmp_path / f"m{i}" / "run", "step_waiting")]
    assert len(waits) == 1 and waits[0]["owner"].startswith("pid ")
    assert not [p for p in s3.fs.find(s3.url) if "/.lock-" in p]


def test_a_machine_killed_mid_step_publishes_nothing_and_its_claim_goes_stale(
    s3: Any, endpoint: str, tmp_path: Path
) -> None:
    log = tmp_path / "builds.log"
    env = s3_env(endpoint, SLIMKIT_STORE_STALE_S="1")
    killed = worker(s3.url, tmp_path / "m1", log, 60, env)
    deadline = time.monotonic() + 30
    while "started" not in (log.read_text() if log.exists() else ""):
        assert time.monotonic() < deadline and killed.poll() is None, killed.communicate()
        time.sleep(0.05)
    os.kill(killed.pid, signal.SIGKILL)
    killed.communicate()
    assert not [p for p in s3.fs.find(s3.url) if p.endswith(MANIFEST)]  # nothing published
    assert [p for p in s3.fs.find(s3.url) if "/.lock-" in p]  # its claim is left behind
    rerun = worker(s3.url, tmp_path / "m2", log, 0.1, env)
    _, err = rerun.communicate(timeout=60)
    assert rerun.returncode == 0, err
    [stale] = journal(tmp_path / "m2" / "run", "step_claim_stale")
    assert stale["owner"].startswith(f"pid {killed.pid} on ")
    assert log.read_text().split() == ["started", "started", "built"]
    assert len([p for p in s3.fs.find(s3.url) if p.endswith(MANIFEST)]) == 1
    assert not [p for p in s3.fs.find(s3.url) if "/.lock-" in p]


def test_a_study_hands_its_url_to_every_variant(tmp_path: Path) -> None:
    from test_study import study_data

    from slimkit.study import study_from_dict
    from slimkit.study.spec import expand

    study = study_from_dict(study_data(tmp_path, store_dir="s3://bucket/steps"))
    variants = expand(study)
    assert variants and {v.pipeline.store_dir for v in variants} == {"s3://bucket/steps"}
    assert {v.pipeline.steps_dir for v in variants} == {study.steps_dir}  # one local copy for all


def test_a_claim_taken_over_from_a_paused_owner_is_lost_by_it(s3: Any) -> None:
    from slimkit.remote_store import RemoteStore

    remote = RemoteStore(s3.url, stale_s=0.5)
    lock = f"{remote.root}/.lock-k"
    with remote.claim("k") as paused:
        paused._stop.set()  # a machine that stops (a frozen VM): its heartbeat stops with it
        assert paused._thread is not None
        paused._thread.join()
        stale: list[str] = []
        started = time.monotonic()
        with remote.claim("k", on_stale=stale.append) as taker:
            assert time.monotonic() - started >= 0.5 and stale and stale[0].startswith(f"pid {os.getpid()} on ")
            assert paused.tag is not None and remote._replace(lock, b"beat", paused.tag) is None  # refused
            remote._delete(lock, paused.tag)  # the paused owner's release leaves the new claim alone
            assert s3.fs.exists(lock) and not taker.lost
        assert not s3.fs.exists(lock)


def test_variants_built_on_another_machine_are_fetched_for_the_one_measurement(
    tmp_path: Path, toy: ToyPlugin, register_plugin: Any, slimkit_plugins: Any, hw: Hardware,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """Every variant is built by "machine b" (its own cache), whose copy of the store is gone when
    the driver ("machine a") measures: the driver copies each model from the URL, verified."""
    import shutil
    from collections.abc import Sequence

    from test_study import FakeLatency, study_data

    from slimkit import hookimpl
    from slimkit.study import study_from_dict
    from slimkit.study.executors import ExecutorContext, LocalExecutor, VariantJob, VariantOutcome
    from slimkit.study.runner import run_study

    driver, elsewhere = tmp_path / "a" / "cache", tmp_path / "b" / "cache"
    monkeypatch.setenv("SLIMKIT_CACHE", str(driver))

    class Elsewhere:
        name = "elsewhere"

        def run(self, jobs: Sequence[VariantJob], context: ExecutorContext) -> Iterator[VariantOutcome]:
            for job in jobs:
                os.environ["SLIMKIT_CACHE"] = str(elsewhere)
                try:
                    outcome = next(iter(LocalExecutor().run([job], context)))
                finally:
                    os.environ["SLIMKIT_CACHE"] = str(driver)
                shutil.rmtree(elsewhere, ignore_errors=True)  # machine b's disk is not the driver's
                yield dataclasses.replace(outcome, built_on="machine-b")

    class Provider:
        @hookimpl
        def make_executor(self, name: str, options: dict[str, Any]) -> Any:
            return Elsewhere() if name == "elsewhere" else None

    register_plugin(FakeLatency(toy.executed), name="fake")
    register_plugin(Provider(), name="provider")
    url = (tmp_path / "shared").as_uri()
    study = study_from_dict(study_data(tmp_path, store_dir=url, executor={"name": "elsewhere"}), base_dir=tmp_path)
    results = run_study(study, plugins=slimkit_plugins, hardware=hw).results
    assert results.outcome == "done", results.reason
    assert {v.built_on for v in results.variants} == {"machine-b"}
    finished = journal(study.run_dir, "variant_finished")
    assert finished and all(e["status"] == "done" for e in finished)
    copied = list((driver / "stores").glob(f"*/*/{MANIFEST}"))  # what the driver fetched, verified
    assert len(copied) >= len(results.variants) - 1
    measured = [a for a in results.artifacts if a.label != "baseline"]
    assert measured and all(a.metric("latency_ms.b1.s8") is not None for a in measured)
    assert not elsewhere.exists() and (driver / "stores").is_dir()  # read from the driver's copy
