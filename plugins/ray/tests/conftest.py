"""Ray for the tests: one local instance (2 CPUs) shared by the fast tests, a two-node cluster
started with ``ray start`` for the slow one; and the settings the workers inherit."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

STARTUP_S = 90


@pytest.fixture(autouse=True)
def _plugins_for_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    # The driver loads this plugin through its entry point and the study's local file, which it
    # trusts; both settings travel to the workers (SLIMKIT_* variables are forwarded).
    monkeypatch.setenv("SLIMKIT_LOAD_PLUGINS", "ray")
    monkeypatch.setenv("SLIMKIT_TRUST_LOCAL_PLUGINS", "1")
    monkeypatch.delenv("RAY_ADDRESS", raising=False)


@pytest.fixture(scope="module")
def _ray_module() -> Iterator[None]:
    yield
    import ray

    if ray.is_initialized():
        ray.shutdown()


@pytest.fixture
def local_ray(_ray_module: None) -> Any:
    """A local Ray instance of 2 CPUs shared by a module's tests (not the executor's own)."""
    import ray

    if not ray.is_initialized():
        ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    return ray


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def two_nodes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A head node and a second node (1 CPU each) started by ``ray start --block`` on this machine;
    stopped by signalling those two processes (each stops what it started), never by name."""
    import psutil

    # A throwaway cluster: no token to share between its processes and this driver.
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    ray_bin = Path(sys.executable).with_name("ray")
    port = free_port()
    address = f"127.0.0.1:{port}"
    common = ["--num-cpus=1", "--node-ip-address=127.0.0.1", "--disable-usage-stats", "--block"]
    env = dict(os.environ)
    started: list[subprocess.Popen[bytes]] = []

    def start(*args: str, log: str) -> None:
        with (tmp_path / log).open("wb") as out:
            started.append(
                subprocess.Popen([str(ray_bin), "start", *args, *common], stdout=out, stderr=subprocess.STDOUT, env=env)
            )

    try:
        start("--head", f"--port={port}", "--include-dashboard=false", log="head.log")
        _wait_for(ray_bin, address, started[0], tmp_path / "head.log", nodes=1)
        start(f"--address={address}", log="node.log")
        _wait_for(ray_bin, address, started[1], tmp_path / "node.log", nodes=2)
        yield address
    finally:
        children = [c for p in started for c in _children(psutil, p.pid)]
        for p in reversed(started):
            p.send_signal(signal.SIGTERM)
        for p in reversed(started):
            try:
                p.wait(timeout=60)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        for child in children:  # whatever a `ray start` left behind: ours, by pid
            if child.is_running() and child.status() != psutil.STATUS_ZOMBIE:
                child.kill()


def _children(psutil: Any, pid: int) -> list[Any]:
    try:
        return list(psutil.Process(pid).children(recursive=True))
    except psutil.NoSuchProcess:
        return []


def _wait_for(ray_bin: Path, address: str, node: subprocess.Popen[bytes], log: Path, *, nodes: int) -> None:
    """Until ``ray status`` lists ``nodes`` active nodes."""
    deadline = time.monotonic() + STARTUP_S
    while True:
        if node.poll() is not None:
            pytest.fail(f"ray start exited ({node.returncode}): {log.read_text()[-2000:]}")
        try:
            status = subprocess.run(
                [str(ray_bin), "status", f"--address={address}"],
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
            )
            active = status.stdout.split("Pending:")[0]
            if status.returncode == 0 and len(re.findall(r"^\s*1 node_", active, flags=re.M)) >= nodes:
                return
        except subprocess.TimeoutExpired:
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"{nodes} Ray node(s) at {address} not up in {STARTUP_S} s: {log.read_text()[-2000:]}")
        time.sleep(0.5)
