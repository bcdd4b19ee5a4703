"""The index of known plugins (registry/plugins.toml): who provides which technique, and from where.

``slimkit plugins --available`` lists it, ``slimkit install NAME`` installs from it, and the planner
uses it to name the plugin that provides a missing technique.
"""

from __future__ import annotations

import os
import sys
import tomllib
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from slimkit.errors import SlimkitError

INDEX_ENV = "SLIMKIT_REGISTRY"
INDEX_RELPATH = Path("registry") / "plugins.toml"


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


def find_index() -> Path | None:
    """SLIMKIT_REGISTRY, else the checkout slimkit runs from, else the current folder's checkout."""
    explicit = os.environ.get(INDEX_ENV)
    if explicit:
        return Path(explicit)
    candidates = [Path(__file__).resolve().parents[2], *Path.cwd().resolve().parents, Path.cwd().resolve()]
    for root in candidates:
        if (root / INDEX_RELPATH).is_file():
            return root / INDEX_RELPATH
    return None


def load_index(path: Path | None = None) -> Index:
    path = path or find_index()
    if path is None or not path.is_file():
        return Index()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        index = Index.model_validate(data)
    except (tomllib.TOMLDecodeError, ValidationError) as exc:
        raise SlimkitError(f"the plugin index {path} is invalid: {str(exc).splitlines()[0]}") from None
    root = path.parent.parent
    return index.model_copy(update={"root": root})


def install_commands(entry: IndexEntry, index: Index) -> list[list[str]]:
    """pip commands: the checkout's folder when slimkit runs from a checkout, else the name; then
    the requirements that must skip their own dependencies."""
    target = entry.distribution
    if entry.path and index.root is not None and (index.root / entry.path / "pyproject.toml").is_file():
        target = str(index.root / entry.path)
    pip = [sys.executable, "-m", "pip", "install"]
    commands = [[*pip, *entry.install_args, target]]
    if entry.no_deps:
        commands.append([*pip, "--no-deps", *entry.no_deps])
    return commands
