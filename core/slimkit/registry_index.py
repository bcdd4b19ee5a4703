"""The index of known plugins (registry/plugins.toml): who provides which technique, and from where.

``slimkit plugins --available`` lists it, ``slimkit install NAME`` installs from it, and the planner
uses it to name the plugin that provides a missing technique.
"""

from __future__ import annotations

import importlib.metadata
import importlib.resources
import os
import sys
import tomllib
from collections.abc import Sequence
from pathlib import Path

from packaging.version import Version
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from slimkit.errors import SlimkitError

INDEX_ENV = "SLIMKIT_REGISTRY"
INDEX_RELPATH = Path("registry") / "plugins.toml"
PACKAGED_INDEX = "plugins_index.toml"


class IndexEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="Short name used by `slimkit install NAME`.")
    distribution: str = Field(description="Distribution name on the package index, e.g. 'slimkit-onnx'.")
    path: str | None = Field(default=None, description="Folder of the distribution inside this checkout.")
    summary: str = Field(description="One line.")
    techniques: list[str] = Field(default_factory=list, description="Technique names it provides.")
    hardware: list[str] = Field(default_factory=list, description="Device kinds and CPU features it targets.")
    install_args: list[str] = Field(
        default_factory=list, description="Extra pip arguments needed to install it (e.g. '--no-deps')."
    )
    no_deps: list[str] = Field(
        default_factory=list,
        description="Requirements installed afterwards with --no-deps (their declared dependencies cannot install).",
    )


class Index(BaseModel):
    model_config = ConfigDict(extra="forbid")

    plugin: list[IndexEntry] = Field(default_factory=list)
    root: Path | None = Field(default=None, description="The checkout holding the index, if any.")

    def by_name(self, name: str) -> IndexEntry | None:
        for entry in self.plugin:
            if name in (entry.name, entry.distribution):
                return entry
        return None

    def provider_of(self, technique: str) -> IndexEntry | None:
        for entry in self.plugin:
            if technique in entry.techniques:
                return entry
        namespace = technique.split(".", 1)[0]
        return self.by_name(namespace)

    def install_hint(self, technique: str) -> str | None:
        entry = self.provider_of(technique)
        return f"slimkit install {entry.name}" if entry else None


def packaged_index() -> Path | None:
    """The copy of registry/plugins.toml that ships inside the slimkit distribution.

    ``core/slimkit/plugins_index.toml`` is a symlink to ``registry/plugins.toml``; building the
    wheel or the sdist copies its content, so an installed slimkit knows the plugins without a
    checkout."""
    resource = importlib.resources.files("slimkit") / PACKAGED_INDEX
    return resource if isinstance(resource, Path) and resource.is_file() else None


def checkout_roots() -> list[Path]:
    """Where a checkout may be: the one slimkit runs from, then the current folder and its parents."""
    cwd = Path.cwd().resolve()
    return [Path(__file__).resolve().parents[2], *cwd.parents, cwd]


def find_index() -> Path | None:
    """SLIMKIT_REGISTRY, else a checkout's registry/plugins.toml, else the copy packaged with slimkit."""
    explicit = os.environ.get(INDEX_ENV)
    if explicit:
        return Path(explicit)
    for root in checkout_roots():
        if (root / INDEX_RELPATH).is_file():
            return root / INDEX_RELPATH
    return packaged_index()


def load_index(path: Path | None = None) -> Index:
    path = path or find_index()
    if path is None or not path.is_file():
        return Index()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        index = Index.model_validate(data)
    except (tomllib.TOMLDecodeError, ValidationError) as exc:
        raise SlimkitError(f"the plugin index {path} is invalid: {str(exc).splitlines()[0]}") from None
    # The packaged copy has no checkout around it: plugins install by name from the package index.
    root = None if path == packaged_index() else path.parent.parent
    return index.model_copy(update={"root": root})


def core_version() -> str:
    """The version of the installed slimkit distribution."""
    return importlib.metadata.version("slimkit")


def compatible_range(version: str) -> str:
    """The plugin versions made for this core: first-party plugins share its major.minor, so core
    0.1.0 takes plugins ``>=0.1,<0.2``."""
    release = Version(version).release
    major, minor = release[0], release[1] if len(release) > 1 else 0
    return f">={major}.{minor},<{major}.{minor + 1}"


def install_commands(entry: IndexEntry, index: Index, pip_args: Sequence[str] = ()) -> list[list[str]]:
    """pip commands: the checkout's folder when slimkit runs from a checkout; else the distribution
    by name, in the version range of the installed core, with the core pinned so that pip never
    swaps it; then the requirements that must skip their own dependencies. ``pip_args`` (index
    options such as ``--find-links DIR``) go to every command."""
    pip = [sys.executable, "-m", "pip", "install"]
    if index.root is None:
        version = core_version()
        targets = [f"{entry.distribution}{compatible_range(version)}", f"slimkit=={version}"]
    elif entry.path and (index.root / entry.path / "pyproject.toml").is_file():
        targets = [str(index.root / entry.path)]
    else:
        targets = [entry.distribution]
    commands = [[*pip, *entry.install_args, *targets, *pip_args]]
    if entry.no_deps:
        commands.append([*pip, "--no-deps", *entry.no_deps, *pip_args])
    return commands
