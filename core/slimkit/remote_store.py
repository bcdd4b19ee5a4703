"""A step store that machines share through an fsspec URL (``store_dir = "s3://bucket/prefix"``).

Each machine keeps a local copy of the steps it used (``$SLIMKIT_CACHE/stores/<url>-<hash>``),
which is an ordinary local store (:mod:`slimkit.store`: verified reuse, ``flock`` claims between
the runs of this machine). The URL holds the same layout::

    <name>-<key>/...                  the step's files, uploaded first
    <name>-<key>/slimkit-artifact.json  the manifest, uploaded last: the step exists from here
    .lock-<key>                       the claim (a lease) while a machine builds the step

**Reuse.** A step is fetched only when its manifest is there; the files it lists are downloaded
into a scratch folder, checked against their sizes and sha256 (all hashed) and moved into place
atomically. A folder without a manifest, or whose files do not match it, is never used: it is
built again and uploaded over.

**Claims.** A process cannot hold a lock on an object store, so a claim is a lease: the object
``.lock-<key>`` holds the owner (pid, host, start) and a heartbeat that the owner rewrites every
``stale_after / 4`` seconds. A waiter that sees the object unchanged for ``stale_after`` seconds
on its own clock (no clock is compared between machines) takes it over. On S3 every step is a
conditional request: created with ``If-None-Match: *``, rewritten and taken over with
``If-Match: <ETag>`` and deleted with ``If-Match``, so one process alone wins a free or stale
claim and a heartbeat of an owner that was taken over fails (it then does not upload). Other
fsspec file systems create the lease exclusively (``open(mode="xb")``) but rewrite it by
read-compare-write: two waiters taking over one stale claim at the same instant may both build
the step. Digests make that cost time, never correctness. ``stale_after`` is
``$SLIMKIT_STORE_STALE_S`` (default 60 s): a machine that is paused longer than that (a frozen VM)
loses its claim.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import importlib.util
import json
import os
import re
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath
from typing import Any

from slimkit.artifacts import MANIFEST, Artifact, atomic_dir, cache_dir
from slimkit.digests import Damaged
from slimkit.errors import SlimkitError
from slimkit.store import verify_step

URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
STALE_ENV = "SLIMKIT_STORE_STALE_S"
DEFAULT_STALE_S = 60.0
INSTALL_FIX = "pip install 'slimkit[s3]'"


def is_url(value: object) -> bool:
    return isinstance(value, str) and URL.match(value) is not None


def _installed(module: str) -> bool:
    if module in sys.modules:
        return sys.modules[module] is not None
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def url_problem(url: str) -> str | None:
    """Why ``url`` cannot be a store on this machine (a missing package, an unknown protocol), in
    one line with the fix; None when it can. Imports nothing heavy (fsspec's registry only)."""
    protocol = url.split("://", 1)[0].lower()
    needs = "s3fs" if protocol in ("s3", "s3a") else "fsspec"
    fix = INSTALL_FIX if needs == "s3fs" else "pip install fsspec"
    if not _installed("fsspec"):
        return f"{protocol}:// needs {needs}, which is not installed (fix: {fix})"
    from fsspec.registry import known_implementations, registry

    if protocol not in registry and protocol not in known_implementations:
        return f"{protocol}:// is not a protocol fsspec knows (fix: an s3:// or file:// URL, or a path)"
    module = str(known_implementations.get(protocol, {}).get("class", "fsspec")).split(".")[0]
    if not _installed(module):
        fix = INSTALL_FIX if module == "s3fs" else f"pip install {module}"
        return f"{protocol}:// needs {module}, which is not installed (fix: {fix})"
    return None


def local_mirror(url: str) -> Path:
    """This machine's copy of the store at ``url``: an ordinary local store, shared by its runs."""
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", url.split("://", 1)[-1]).strip("-.")[:60] or "store"
    return cache_dir() / "stores" / f"{slug}-{hashlib.sha256(url.encode()).hexdigest()[:12]}"


def stale_after() -> float:
    try:
        return max(float(os.environ.get(STALE_ENV) or DEFAULT_STALE_S), 0.1)
    except ValueError:
        return DEFAULT_STALE_S


class RemoteStore:
    """The store at an fsspec URL: fetch a published step, claim a key, publish a built step.

    Errors of the file system (no credentials, no such bucket, a network failure) are raised as
    SlimkitError naming the URL; a published step that does not match its manifest is Damaged."""

    def __init__(self, url: str, *, stale_s: float | None = None) -> None:
        if (problem := url_problem(url)) is not None:
            raise SlimkitError(f"store_dir: {problem}")
        from fsspec.core import url_to_fs

        self.url = url.rstrip("/")
        # Listings are never cached: another machine publishes while this one waits.
        self.fs, root = url_to_fs(self.url, use_listings_cache=False, skip_instance_cache=True)
        self.root = root.rstrip("/")
        self.stale_s = stale_s if stale_s is not None else stale_after()
        self.conditional = "s3" in _protocols(self.fs)

    # Reuse ---------------------------------------------------------------------------------
    def fetch(self, key: str, final: Path) -> Artifact | None:
        """The published step with ``key`` copied into the local ``final`` and verified there, or
        None when none is published. Raises Damaged (naming the remote folder) when one is
        published but its files do not match its manifest: it is then not copied."""
        with self._errors("cannot be read"):
            folder = self._published(key, final.name)
            if folder is None:
                return None
            with atomic_dir(final) as scratch:
                self._download(folder, scratch)
            return verify_step(final)

    def _published(self, key: str, name: str) -> str | None:
        """The remote folder of the step with ``key``, under its own name or another (a store
        shared between pipelines holds the same work under the name each gave it)."""
        if self.fs.exists(f"{self.root}/{name}/{MANIFEST}"):
            return f"{self.root}/{name}"
        # One listing of the store: a glob with a wildcard in the first part walks every folder
        # (on S3, one LIST request per step published).
        try:
            listed = self.fs.ls(self.root, detail=False)
        except FileNotFoundError:  # nothing published yet
            return None
        for folder in sorted(str(p) for p in listed):
            leaf = PurePosixPath(folder).name
            if leaf.endswith(f"-{key}") and not leaf.startswith(".") and self.fs.exists(f"{folder}/{MANIFEST}"):
                return folder
        return None

    def _download(self, folder: str, scratch: Path) -> None:
        where = f"{self.url}/{PurePosixPath(folder).name}"
        try:
            manifest = self.fs.cat_file(f"{folder}/{MANIFEST}")
            files = json.loads(manifest)["files"]
        except (ValueError, KeyError, TypeError, RecursionError, FileNotFoundError):
            raise Damaged(f"{where}: its manifest cannot be read") from None
        if not isinstance(files, dict):
            raise Damaged(f"{where}: its file list is not a table")
        for name in files:
            relative = PurePosixPath(str(name))
            if relative.is_absolute() or ".." in relative.parts or str(relative) in ("", ".", MANIFEST):
                raise Damaged(f"{where}: its file list has a bad entry for {name!r}")
            target = scratch / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                self.fs.get_file(f"{folder}/{relative}", str(target))
            except FileNotFoundError:
                raise Damaged(f"{where}: {relative} is missing") from None
        (scratch / MANIFEST).write_bytes(manifest)
        try:
            verify_step(scratch)  # every file hashed: a fresh folder has no verification cache
        except Damaged as why:
            raise Damaged(f"{where}: {why}") from None

    # Publishing ----------------------------------------------------------------------------
    def publish(self, folder: Path) -> None:
        """Upload a verified local step: its files first, the manifest last (from then on other
        machines see it). Whatever was under its name (a killed upload, a damaged step) goes
        first; the caller holds the key's claim."""
        dest = f"{self.root}/{folder.name}"
        with self._errors("cannot be written"):
            manifest = (folder / MANIFEST).read_bytes()
            files = json.loads(manifest)["files"]
            if self.fs.exists(dest):
                self.fs.rm(dest, recursive=True)
            for name in sorted(files):
                remote = f"{dest}/{name}"
                if not self.conditional:  # object stores have no folders; other file systems do
                    self.fs.makedirs(str(PurePosixPath(remote).parent), exist_ok=True)
                self.fs.put_file(str(folder / name), remote)
            if self.conditional:
                self.fs.pipe_file(f"{dest}/{MANIFEST}", manifest)  # one PUT: atomic on S3
            else:
                part = f"{dest}/.{MANIFEST}.{uuid.uuid4().hex[:8]}"
                self.fs.pipe_file(part, manifest)
                self.fs.mv(part, f"{dest}/{MANIFEST}")

    # Claims --------------------------------------------------------------------------------
    @contextlib.contextmanager
    def claim(
        self, key: str, on_wait: Callable[[str], None] | None = None, on_stale: Callable[[str], None] | None = None
    ) -> Iterator[Lease]:
        """Hold the lease on ``key`` for the block; wait while a live owner holds it, take it over
        once its heartbeat has stopped for ``stale_s``. The lease's ``lost`` says whether another
        process took it over meanwhile (then the caller must not publish)."""
        lease = Lease(self, f"{self.root}/.lock-{key}")
        with self._errors("cannot be claimed"):
            lease.acquire(on_wait, on_stale)
        try:
            yield lease
        finally:
            lease.release()

    @contextlib.contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        try:
            yield
        except (Damaged, SlimkitError, KeyboardInterrupt):
            raise
        except Exception as exc:
            raise SlimkitError(
                f"store_dir {self.url}: {what} ({type(exc).__name__}: {str(exc)[:200]})",
                fix="check the URL and the credentials and endpoint in the environment "
                "(AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_ENDPOINT_URL)",
            ) from None

    # The four operations a lease needs, conditional on S3 ----------------------------------
    def _tag(self, path: str) -> str | None:
        """The lease object's version (S3's ETag, else a hash of its bytes); None when absent."""
        try:
            if self.conditional:
                self.fs.invalidate_cache(path)
                return str(self.fs.info(path)["ETag"])
            return hashlib.sha256(self.fs.cat_file(path)).hexdigest()
        except FileNotFoundError:
            return None

    def _create(self, path: str, data: bytes) -> str | None:
        """Write ``data`` to ``path`` unless it exists; its tag, or None when it existed."""
        try:
            if self.conditional:
                out = self.fs.pipe_file(path, data, mode="create")
                return str(out["ETag"]) if isinstance(out, dict) and "ETag" in out else self._tag(path)
            self.fs.makedirs(str(PurePosixPath(path).parent), exist_ok=True)
            with self.fs.open(path, "xb") as fh:
                fh.write(data)
            return hashlib.sha256(data).hexdigest()
        except FileExistsError:
            return None

    def _replace(self, path: str, data: bytes, tag: str) -> str | None:
        """Write ``data`` over ``path`` if it still has ``tag``; its new tag, or None when not."""
        if self.conditional:
            try:
                out = self.fs.pipe_file(path, data, IfMatch=tag)
            except (OSError, FileNotFoundError):
                if self._tag(path) != tag:
                    return None  # the precondition failed: someone else wrote or removed it
                raise
            return str(out["ETag"]) if isinstance(out, dict) and "ETag" in out else self._tag(path)
        if self._tag(path) != tag:
            return None
        self.fs.pipe_file(path, data)
        return hashlib.sha256(data).hexdigest()

    def _delete(self, path: str, tag: str) -> None:
        """Remove ``path`` if it still has ``tag`` (else another process holds it now)."""
        with contextlib.suppress(OSError):
            if self.conditional:
                bucket, key, _ = self.fs.split_path(path)
                self.fs.call_s3("delete_object", Bucket=bucket, Key=key, IfMatch=tag)
                self.fs.invalidate_cache(path)
            elif self._tag(path) == tag:
                self.fs.rm_file(path)

    def _owner(self, path: str) -> str:
        try:
            owner = json.loads(self.fs.cat_file(path))
            return f"pid {owner['pid']} on {owner['host']} since {owner['since']}"
        except Exception:  # gone, half-written or not ours: only a courtesy for the message
            return "another run"


def _protocols(fs: Any) -> tuple[str, ...]:
    protocol = fs.protocol
    return (protocol,) if isinstance(protocol, str) else tuple(protocol)


class Lease:
    """The claim on one key of a remote store, kept alive by a heartbeat thread."""

    def __init__(self, remote: RemoteStore, path: str) -> None:
        self.remote, self.path = remote, path
        self.tag: str | None = None
        self.lost = False
        self._beat = 0
        self._since = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def _record(self) -> bytes:
        self._beat += 1
        record = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "since": self._since,
            "beat": self._beat,
            "at": dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds"),
        }
        return json.dumps(record).encode()

    def acquire(self, on_wait: Callable[[str], None] | None, on_stale: Callable[[str], None] | None) -> None:
        remote = self.remote
        poll = min(1.0, remote.stale_s / 5)
        seen: str | None = None
        seen_at = time.monotonic()
        told = False
        while (tag := remote._create(self.path, self._record())) is None:
            current = remote._tag(self.path)
            if current is None:
                continue  # released since: try again at once
            if current != seen:  # alive (or new): its staleness is timed on our own clock
                seen, seen_at = current, time.monotonic()
                if not told and on_wait is not None:
                    on_wait(remote._owner(self.path))
                    told = True
            elif time.monotonic() - seen_at >= remote.stale_s:
                owner = remote._owner(self.path)
                if (tag := remote._replace(self.path, self._record(), current)) is not None:
                    if on_stale is not None:
                        on_stale(f"{owner} (no heartbeat for {remote.stale_s:g} s)")
                    break
                seen = None
                continue
            time.sleep(poll)
        self.tag = tag
        self._thread = threading.Thread(target=self._heartbeat, name=f"slimkit-lease-{self.path}", daemon=True)
        self._thread.start()

    def _heartbeat(self) -> None:
        while not self._stop.wait(self.remote.stale_s / 4):
            with self._lock:
                if self.tag is None or self._stop.is_set():
                    return
                try:
                    self.tag = self.remote._replace(self.path, self._record(), self.tag)
                except Exception:  # a network hiccup: try again at the next beat
                    continue
                if self.tag is None:
                    self.lost = True
                    return

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        with self._lock:
            if self.tag is not None:
                self.remote._delete(self.path, self.tag)
                self.tag = None
