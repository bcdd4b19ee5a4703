"""The folder an exported model lives in: its model file, a manifest of facts, and beside them the
files every later step and predictor needs (tokenizer, label config, task facts).

One layout serves every format that ships its own runtime files (ONNX, OpenVINO IR): each plugin
names its manifest, its model file's suffix and the files that belong to the model itself.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from slimkit.errors import SlimkitError


def folder_of(path: Path) -> Path:
    return path if path.is_dir() else path.parent


@dataclass(frozen=True)
class FolderLayout:
    manifest: str  # e.g. "slimkit-onnx.json"
    file_key: str  # the manifest's key naming the model file, e.g. "onnx_file"
    suffix: str  # the model file's suffix, e.g. ".onnx"
    model_suffixes: tuple[str, ...]  # the model's own files, never copied as sidecars
    producer: str  # the technique that writes such folders, for the fix of an error
    described: str  # "one .onnx file", for the error

    def read_manifest(self, path: Path) -> dict[str, Any]:
        manifest = folder_of(path) / self.manifest
        return json.loads(manifest.read_text(encoding="utf-8")) if manifest.is_file() else {}

    def write_manifest(self, folder: Path, data: dict[str, Any]) -> None:
        (folder / self.manifest).write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")

    def model_file(self, path: Path) -> Path:
        """An artifact's model file: the path itself, the manifest's file, or the folder's only one."""
        if path.is_file():
            return path
        named = self.read_manifest(path).get(self.file_key)
        if named and (path / named).is_file():
            return path / str(named)
        found = sorted(path.glob(f"*{self.suffix}"))
        if len(found) == 1:
            return found[0]
        raise SlimkitError(
            f"{path}: expected {self.described}, found {len(found)}",
            fix=f"point the pipeline at a folder written by {self.producer}, or at the {self.suffix} file itself",
        )

    def copy_sidecars(self, source: Path, target: Path) -> list[str]:
        """Copy the tokenizer, label config and task facts beside the new model (never the model itself)."""
        copied = []
        for item in sorted(folder_of(source).iterdir()):
            if not item.is_file() or item.name == self.manifest or self._is_model(item.name):
                continue
            shutil.copy2(item, target / item.name)
            copied.append(item.name)
        return copied

    def _is_model(self, name: str) -> bool:
        return Path(name).suffix in self.model_suffixes or f"{self.suffix}." in name  # model.onnx.data too
