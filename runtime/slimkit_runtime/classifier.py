"""The classifier: a package folder's manifest, tokenizer and model (an ONNX graph or an OpenVINO IR)."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from slimkit_runtime.backends import OnnxBackend, OpenVinoBackend

MANIFEST = "slimkit-package.json"
SCHEMA = "slimkit.package/1"
FORMATS = ("onnx", "openvino")


class PackageError(Exception):
    """The folder is not a package this runtime can serve; the message names the file and the fix."""


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PackageError(f"{path}: missing; is this a folder written by `slimkit package`?") from None
    except json.JSONDecodeError as exc:
        raise PackageError(f"{path}: not valid JSON ({exc}); write the package again") from None
    if not isinstance(data, dict):
        raise PackageError(f"{path}: not a JSON object; write the package again")
    return data


class Classifier:
    """A packaged text classifier. Build it with :meth:`load`."""

    def __init__(self, folder: Path, manifest: dict[str, Any], backend: Any, tokenizer: Any) -> None:
        self.folder = folder
        self.manifest = manifest
        self.labels: list[str] = list(manifest["labels"])
        self.multi_label: bool = manifest["problem"] == "multi_label"
        threshold = manifest.get("threshold")  # null for single-label tasks and untuned multi-label ones
        self.threshold: float = 0.5 if threshold is None else float(threshold)
        self.backend = backend
        self.tokenizer = tokenizer
        self.input_names: list[str] = backend.input_names

    @classmethod
    def load(
        cls, folder: str | os.PathLike[str], *, threads: int | None = None, providers: Sequence[str] | None = None
    ) -> Classifier:
        """Load a package folder. ``threads``: the engine's intra-op threads (default: its own
        choice); ``providers``: ONNX Runtime's execution providers in order of preference (default:
        CPU). An ``openvino`` package runs on OpenVINO's CPU plugin (``slimkit-runtime[openvino]``)."""
        root = Path(folder)
        manifest = _read_json(root / MANIFEST)
        if manifest.get("schema") != SCHEMA:
            raise PackageError(f"{root / MANIFEST}: schema {manifest.get('schema')!r}, this runtime reads {SCHEMA}")
        kind = manifest.get("format")
        if kind not in FORMATS:
            raise PackageError(
                f"{root / MANIFEST}: a {kind} package; slimkit-runtime serves ONNX and OpenVINO packages "
                "(load this one with transformers)"
            )
        model = root / str(manifest.get("model_file"))
        if not model.is_file():
            raise PackageError(f"{model}: missing; write the package again")
        backend = (
            _onnx(model, threads, providers) if kind == "onnx" else _openvino(root, model, manifest, threads, providers)
        )
        return cls(root, manifest, backend, _tokenizer(root, manifest))

    def encode(self, texts: Sequence[str], pairs: Sequence[str] | None = None) -> dict[str, np.ndarray]:
        """The graph's inputs for ``texts`` (and second texts), padded to the longest in the batch."""
        batch = list(texts) if pairs is None else list(zip(texts, pairs, strict=True))
        encodings = self.tokenizer.encode_batch(batch)
        arrays = {
            "input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
            "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
            "token_type_ids": np.array([e.type_ids for e in encodings], dtype=np.int64),
        }
        return {name: arrays[name] for name in self.input_names}

    def logits(self, texts: Sequence[str], pairs: Sequence[str] | None = None, *, batch_size: int = 32) -> np.ndarray:
        """Raw scores, shape (len(texts), len(labels)), batch by batch."""
        if isinstance(texts, str):
            raise TypeError("give a list of texts, not one string")
        out = []
        for start in range(0, len(texts), batch_size):
            part = pairs[start : start + batch_size] if pairs is not None else None
            out.append(self.backend(self.encode(texts[start : start + batch_size], part)))
        if not out:
            return np.zeros((0, len(self.labels)), dtype=np.float32)
        return np.concatenate(out).astype(np.float32)

    def predict_proba(
        self, texts: Sequence[str], pairs: Sequence[str] | None = None, *, batch_size: int = 32
    ) -> np.ndarray:
        """Probabilities: sigmoids for a multi-label task, a softmax over labels for a single-label one."""
        scores = self.logits(texts, pairs, batch_size=batch_size)
        if self.multi_label:
            return 1.0 / (1.0 + np.exp(-scores))
        shifted = np.exp(scores - scores.max(axis=1, keepdims=True))
        return shifted / shifted.sum(axis=1, keepdims=True)

    def predict(
        self, texts: Sequence[str], pairs: Sequence[str] | None = None, *, batch_size: int = 32
    ) -> list[str] | list[list[str]]:
        """Label names: one per text, or for a multi-label task a list per text (every label whose
        sigmoid reaches the threshold slimkit tuned and measured with)."""
        probs = self.predict_proba(texts, pairs, batch_size=batch_size)
        if self.multi_label:
            return [[self.labels[j] for j in np.flatnonzero(row >= self.threshold)] for row in probs]
        return [self.labels[int(i)] for i in probs.argmax(axis=1)]


def _onnx(model: Path, threads: int | None, providers: Sequence[str] | None) -> OnnxBackend:
    return OnnxBackend(model, threads=threads, providers=providers)


def _openvino(
    root: Path, model: Path, manifest: dict[str, Any], threads: int | None, providers: Sequence[str] | None
) -> OpenVinoBackend:
    if providers is not None:
        raise PackageError(f"{root / MANIFEST}: an OpenVINO package runs on OpenVINO's CPU plugin; drop providers")
    try:
        import openvino  # type: ignore[import-untyped]  # noqa: F401
    except ImportError:
        raise PackageError(
            f"{root / MANIFEST}: an OpenVINO package needs OpenVINO; pip install 'slimkit-runtime[openvino]'"
        ) from None
    return OpenVinoBackend(model, threads=threads, precision=str(manifest.get("inference_precision") or "f32"))


def _tokenizer(root: Path, manifest: dict[str, Any]) -> Any:
    """The saved fast tokenizer, set to pad and truncate as slimkit did when it measured: to the
    longest text of each batch, at most ``max_length`` tokens, on the sides its config names."""
    from tokenizers import Tokenizer

    path = root / "tokenizer.json"
    if not path.is_file():
        raise PackageError(f"{path}: missing; the package needs a fast tokenizer's tokenizer.json")
    tokenizer = Tokenizer.from_file(str(path))
    config = _read_json(root / "tokenizer_config.json")
    pad = _token_text(config.get("pad_token"))
    pad_id = tokenizer.token_to_id(pad) if pad is not None else None
    if pad_id is None:
        where = root / "tokenizer_config.json"
        raise PackageError(f"{where}: no pad token the tokenizer knows; write the package again")
    side = str(config.get("truncation_side", "right"))
    tokenizer.enable_truncation(int(manifest["max_length"]), strategy="longest_first", direction=side)
    tokenizer.enable_padding(direction=str(config.get("padding_side", "right")), pad_id=pad_id, pad_token=pad)
    return tokenizer


def _token_text(token: Any) -> str | None:
    """A special token as tokenizer_config.json writes it: a string, or an AddedToken's dict."""
    if isinstance(token, dict):
        return str(token.get("content")) if token.get("content") is not None else None
    return None if token is None else str(token)
