"""``transformers.vocabulary``: cut a decoder classifier's vocabulary to the tokens its task uses.

In a small decoder the embedding table is a large share of the weights (SmolLM2-135M: 28 M of
135 M parameters; Qwen and Gemma vocabularies of 150k-260k tokens weigh more), while a classifier
reads only the tokens its task's texts produce. The step tokenizes the training texts with the
model's own tokenizer and keeps:

- every token seen at least ``min_count`` times;
- every added and special token, and every id the model config names (pad, bos, eos, unk);
- the alphabet: every single-character token (byte-level BPE: the 256 byte symbols) and, with
  ``byte_fallback``, the 256 ``<0x..>`` tokens, so that any text still tokenizes;
- for BPE, the parts of every merge that makes a kept token, recursively, so that the kept merges
  (those whose parts and result are all kept) still produce every kept token.

Why texts made of kept tokens tokenize as before: BPE applies, at each step, the best-ranked merge
among those available. The merges the original tokenizer applied to a training word all produce
kept tokens (each merge's result is a final token or a part of a later merge), so they are kept,
and removing other merges never makes one of them unavailable. Unigram picks the best-scoring
segmentation; removing pieces keeps the original segmentation and only removes rivals. The step
checks it on every training text all the same.

The tokenizer is rebuilt from its own ``tokenizer.json`` (vocabulary, merges, added tokens and the
post-processor's ids remapped) with the ``tokenizers`` library; the model keeps its embedding
module and class (Gemma scales its embeddings), with only the kept rows. Only fast tokenizers
whose model is BPE or Unigram are pruned; anything else is refused in one line naming the step.
"""

from __future__ import annotations

import json
import random
import re
import shutil
import tempfile
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from slimkit.errors import SlimkitError
from slimkit_transformers.steps import carry_task_file, step_task

if TYPE_CHECKING:
    from slimkit.artifacts import Artifact
    from slimkit.context import StepContext

NAME = "transformers.vocabulary"
SUPPORTED_MODELS = ("BPE", "Unigram")
TOKENIZER_JSON = "tokenizer.json"
TOKENIZER_CONFIG = "tokenizer_config.json"
# Slow-tokenizer files hold the whole original vocabulary: left beside the pruned tokenizer.json,
# a loader that prefers them would get the old ids.
STALE_FILES = ("vocab.json", "merges.txt", "vocab.txt", "tokenizer.model", "spiece.model", "sentencepiece.bpe.model")
CONFIG_TOKEN_IDS = (
    "pad_token_id", "bos_token_id", "eos_token_id", "unk_token_id", "sep_token_id", "cls_token_id",
    "decoder_start_token_id",
)  # fmt: skip
BYTE_TOKEN = re.compile(r"<0x[0-9A-Fa-f]{2}>")
BATCH = 2048


TrainingSplit = Literal["train", "validation"]


def _training_splits() -> list[TrainingSplit]:
    return ["train", "validation"]


class VocabularyConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    min_count: int = Field(
        default=1,
        ge=1,
        description="A token the texts use fewer times is removed (1 keeps every token they use, so every training "
        "text tokenizes exactly as before).",
    )
    splits: list[TrainingSplit] = Field(
        default_factory=_training_splits,
        description="Task splits whose texts choose the tokens (validation is a slice of the training file); the "
        "eval split never does.",
    )
    extra_texts_file: str | None = Field(
        default=None,
        description="A UTF-8 file with one more text per line whose tokens are kept too (relative to the "
        "pipeline file).",
    )
    check_texts: int = Field(
        default=64,
        ge=0,
        description="Texts that chose the tokens (a seeded sample) whose logits through the reloaded pruned model "
        "are compared with the original's.",
    )


# -- the tokenizer, as tokenizer.json data --------------------------------------------------------


def tokenizer_problem(data: dict[str, Any]) -> str | None:
    """Why this ``tokenizer.json`` cannot be pruned here, or None."""
    kind = (data.get("model") or {}).get("type")
    if kind not in SUPPORTED_MODELS:
        return f"its tokenizer model is {kind}, and only {' and '.join(SUPPORTED_MODELS)} tokenizers are pruned here"
    if kind == "BPE" and (data["model"].get("dropout") or 0) > 0:
        return "its BPE tokenizer has dropout, so a text has no one tokenization to keep"
    return None


def _merge_parts(merge: str | list[str]) -> tuple[str, str]:
    """A merge as tokenizers writes it: ``["a", "b"]`` (tokenizers >= 0.20) or ``"a b"``."""
    if isinstance(merge, str):
        a, b = merge.split(" ")
        return a, b
    return merge[0], merge[1]


def _vocab_ids(model: dict[str, Any]) -> dict[str, int]:
    if model["type"] == "Unigram":
        return {piece: i for i, (piece, _score) in enumerate(model["vocab"])}
    return dict(model["vocab"])


def _is_alphabet(token: str, model: dict[str, Any]) -> bool:
    """One character, once a BPE model's subword prefix or word suffix is set aside."""
    prefix, suffix = model.get("continuing_subword_prefix") or "", model.get("end_of_word_suffix") or ""
    if prefix and token.startswith(prefix):
        token = token[len(prefix) :]
    if suffix and token.endswith(suffix):
        token = token[: -len(suffix)]
    return len(token) == 1


def select_tokens(data: dict[str, Any], counts: Counter[int], min_count: int, pinned: Iterable[int]) -> dict[str, Any]:
    """The ids to keep (ascending) and why: ``{"kept", "groups"}``.

    ``counts`` are the ids the texts produced (no special tokens added); ``pinned`` ids are kept
    whatever they say (special tokens, the config's ids). ``groups`` counts each reason; a token
    may have several.
    """
    model = data["model"]
    vocab = _vocab_ids(model)
    token_of = {i: t for t, i in vocab.items()}
    added = {int(a["id"]) for a in data.get("added_tokens", [])}
    known = set(token_of) | added
    seen = {i for i, n in counts.items() if n >= min_count}
    pinned_ids = {i for i in pinned if i in known}
    alphabet = {i for t, i in vocab.items() if _is_alphabet(t, model)}
    byte_fallback = {i for t, i in vocab.items() if BYTE_TOKEN.fullmatch(t)} if model.get("byte_fallback") else set()
    kept = seen | added | pinned_ids | alphabet | byte_fallback
    if model["type"] == "Unigram" and model.get("unk_id") is not None:
        kept.add(int(model["unk_id"]))
    if model["type"] == "BPE" and model.get("unk_token") in vocab:
        kept.add(vocab[model["unk_token"]])
    before_closure = len(kept)
    if model["type"] == "BPE":
        kept |= _merge_closure(model, vocab, {token_of[i] for i in kept if i in token_of})
    groups = {
        "from_texts": len(seen),
        "added_or_special": len(added | pinned_ids),
        "alphabet": len(alphabet),
        "byte_fallback": len(byte_fallback),
        "merge_parts": len(kept) - before_closure,
    }
    return {"kept": sorted(kept), "groups": groups}


def _merged(a: str, b: str, model: dict[str, Any]) -> str:
    """The token a merge makes: tokenizers drops the continuing-subword prefix of its second part."""
    prefix = model.get("continuing_subword_prefix") or ""
    return a + b[len(prefix) :]


def _merge_closure(model: dict[str, Any], vocab: dict[str, int], tokens: set[str]) -> set[int]:
    """Ids of the parts of every merge that makes one of ``tokens``, recursively. Every merge that
    makes a token counts, as an edited vocabulary may make one token in two ways."""
    makers: dict[str, list[tuple[str, str]]] = {}
    for merge in model.get("merges", []):
        a, b = _merge_parts(merge)
        makers.setdefault(_merged(a, b, model), []).append((a, b))
    found = set(tokens)
    stack = list(tokens)
    while stack:
        for parts in makers.get(stack.pop(), ()):
            for part in parts:
                if part not in found and part in vocab:
                    found.add(part)
                    stack.append(part)
    return {vocab[t] for t in found}


def _remap_processor(node: Any, remap: dict[int, int]) -> Any:
    """A post-processor's JSON with each special token's id moved to its new place."""
    if isinstance(node, list):
        return [_remap_processor(n, remap) for n in node]
    if not isinstance(node, dict):
        return node
    out = dict(node)
    kind = node.get("type")
    if kind == "TemplateProcessing":
        out["special_tokens"] = {
            name: dict(spec, ids=[remap[int(i)] for i in spec["ids"]]) for name, spec in node["special_tokens"].items()
        }
    elif kind in ("BertProcessing", "RobertaProcessing"):
        for field in ("sep", "cls"):
            token, old = node[field]
            out[field] = [token, remap[int(old)]]
    elif kind == "Sequence":
        out["processors"] = [_remap_processor(p, remap) for p in node["processors"]]
    return out


def prune_tokenizer_json(data: dict[str, Any], kept: list[int]) -> tuple[dict[str, Any], dict[str, int]]:
    """``tokenizer.json`` data restricted to ``kept`` (old ids, ascending), renumbered 0..len-1,
    and the number of merges before and after. Validated by loading it with ``tokenizers``."""
    from tokenizers import Tokenizer

    remap = {old: new for new, old in enumerate(kept)}
    out = json.loads(json.dumps(data))  # a deep copy
    model = out["model"]
    vocab = _vocab_ids(model)
    merges = {"merges_before": len(model.get("merges", [])), "merges_after": 0}
    if model["type"] == "Unigram":
        pieces = model["vocab"]
        model["vocab"] = [pieces[old] for old in kept if old < len(pieces)]
        if model.get("unk_id") is not None:
            model["unk_id"] = remap[int(model["unk_id"])]
    else:
        model["vocab"] = {t: remap[i] for t, i in vocab.items() if i in remap}
        kept_tokens = set(model["vocab"])
        model["merges"] = [
            m
            for m in model.get("merges", [])
            for a, b in [_merge_parts(m)]
            if a in kept_tokens and b in kept_tokens and _merged(a, b, model) in kept_tokens
        ]
        merges["merges_after"] = len(model["merges"])
    out["added_tokens"] = [dict(a, id=remap[int(a["id"])]) for a in out.get("added_tokens", [])]
    if out.get("post_processor") is not None:
        out["post_processor"] = _remap_processor(out["post_processor"], remap)
    if isinstance(out.get("padding"), dict) and out["padding"].get("pad_id") in remap:
        out["padding"]["pad_id"] = remap[out["padding"]["pad_id"]]
    rebuilt = Tokenizer.from_str(json.dumps(out, ensure_ascii=False))
    return json.loads(rebuilt.to_str()), merges


def write_pruned_tokenizer(tokenizer: Any, kept: list[int], folder: Path) -> tuple[Any, dict[str, int]]:
    """Write ``tokenizer`` restricted to ``kept`` into ``folder`` (tokenizer.json rebuilt, the
    config's ``added_tokens_decoder`` remapped, other files as they were, slow-tokenizer vocabularies
    dropped); return it reloaded with ``AutoTokenizer`` and the merge counts."""
    from tokenizers import Tokenizer

    from slimkit_transformers.models import load_tokenizer

    remap = {old: new for new, old in enumerate(kept)}
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        original = Path(tmp)
        tokenizer.save_pretrained(original)
        data = json.loads((original / TOKENIZER_JSON).read_text(encoding="utf-8"))
        pruned, merges = prune_tokenizer_json(data, kept)
        Tokenizer.from_str(json.dumps(pruned, ensure_ascii=False)).save(str(folder / TOKENIZER_JSON))
        config_path = original / TOKENIZER_CONFIG
        if config_path.is_file():
            config = json.loads(config_path.read_text(encoding="utf-8"))
            if isinstance(config.get("added_tokens_decoder"), dict):
                config["added_tokens_decoder"] = {
                    str(remap[int(i)]): spec for i, spec in config["added_tokens_decoder"].items() if int(i) in remap
                }
            (folder / TOKENIZER_CONFIG).write_text(json.dumps(config, ensure_ascii=False, indent=2), encoding="utf-8")
        for path in original.iterdir():  # special_tokens_map.json, chat_template.jinja, ... as they were
            if path.is_file() and path.name not in (TOKENIZER_JSON, TOKENIZER_CONFIG, *STALE_FILES):
                shutil.copy2(path, folder / path.name)
    return load_tokenizer(folder), merges


# -- texts and checks -------------------------------------------------------------------------------


def gather_texts(step: StepContext[VocabularyConfig]) -> tuple[list[str], dict[str, Any]]:
    """The texts whose tokens are kept (a sentence-pair task's second texts too), and their count
    per source. Never the eval split."""
    cfg = step.config
    task = step_task(step)
    texts: list[str] = []
    used: dict[str, Any] = {"splits": {}}
    for name in cfg.splits:
        split = getattr(task, name)
        part = split.texts + (split.text_pairs or [])
        texts += part
        used["splits"][name] = len(part)
    if cfg.extra_texts_file is not None:
        path = Path(step.pipeline.resolve_path(cfg.extra_texts_file))
        if not path.is_file():
            raise SlimkitError(f"step {step.name!r}: config.extra_texts_file: no such file {path}")
        lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        texts += lines
        used["extra_texts_file"] = len(lines)
    used["total"] = len(texts)
    return texts, used


def encode(tokenizer: Any, texts: list[str], *, special: bool) -> list[list[int]]:
    ids: list[list[int]] = []
    for start in range(0, len(texts), BATCH):
        ids += tokenizer(texts[start : start + BATCH], add_special_tokens=special)["input_ids"]
    return ids


def compare_tokenizations(old: Any, new: Any, kept: list[int], texts: list[str]) -> dict[str, Any]:
    """Tokenize ``texts`` with both tokenizers (special tokens added, as the model sees them).

    ``in_vocabulary``: texts whose original ids are all kept; ``identical``: those of them whose
    pruned ids are the original ids remapped (all of them, or the pruning is wrong).
    ``new_unk_texts``: texts with an unknown token after pruning and none before. Two private
    keys, for the caller to pop: ``_wrong`` (the first in-vocabulary text tokenized differently,
    its expected and its pruned ids) and ``_identical_rows`` (the indices of the identical texts).
    """
    remap = {o: n for n, o in enumerate(kept)}
    before, after = encode(old, texts, special=True), encode(new, texts, special=True)
    facts: dict[str, Any] = {"texts": len(texts), "in_vocabulary": 0, "identical": 0, "changed": 0}
    facts |= {"tokens": 0, "tokens_outside_vocab": 0, "unk_tokens_before": 0, "unk_tokens_after": 0}
    facts["new_unk_texts"] = 0
    first_wrong: tuple[str, list[int], list[int]] | None = None
    facts["_identical_rows"] = identical_rows = []
    for row, (text, a, b) in enumerate(zip(texts, before, after, strict=True)):
        mapped = [remap.get(i) for i in a]
        outside = sum(1 for i in mapped if i is None)
        unk_a = a.count(old.unk_token_id) if old.unk_token_id is not None else 0
        unk_b = b.count(new.unk_token_id) if new.unk_token_id is not None else 0
        facts["tokens"] += len(a)
        facts["tokens_outside_vocab"] += outside
        facts["unk_tokens_before"] += unk_a
        facts["unk_tokens_after"] += unk_b
        facts["new_unk_texts"] += int(unk_b > 0 and unk_a == 0)
        same = mapped == b
        facts["changed"] += int(not same)
        if not outside:
            facts["in_vocabulary"] += 1
            facts["identical"] += int(same)
            if same:
                identical_rows.append(row)
            if not same and first_wrong is None:
                first_wrong = (text, [i for i in mapped if i is not None], b)
    facts["identical_share"] = facts["identical"] / facts["in_vocabulary"] if facts["in_vocabulary"] else 1.0
    facts["first_wrong"] = None if first_wrong is None else first_wrong[0][:80]
    if first_wrong is not None:
        facts["_wrong"] = first_wrong
    return facts


def select_rows(model: Any, kept: list[int]) -> None:
    """Keep only the ``kept`` rows of the input embeddings (and of output embeddings a model has),
    in place: the module keeps its class (Gemma's scaled embedding) and its padding index follows."""
    import torch

    index = torch.tensor(kept, dtype=torch.long)
    remap = {o: n for n, o in enumerate(kept)}
    embedding = model.get_input_embeddings()
    weight = embedding.weight
    with torch.no_grad():
        embedding.weight = torch.nn.Parameter(weight.detach()[index].clone(), requires_grad=weight.requires_grad)
    embedding.num_embeddings = len(kept)
    if getattr(embedding, "padding_idx", None) is not None:
        embedding.padding_idx = remap.get(int(embedding.padding_idx))
    output = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    if output is not None and output.weight is not weight and output.weight.shape[0] == weight.shape[0]:
        with torch.no_grad():
            output.weight = torch.nn.Parameter(output.weight.detach()[index].clone())
            if getattr(output, "bias", None) is not None:
                output.bias = torch.nn.Parameter(output.bias.detach()[index].clone())
        output.out_features = len(kept)
    elif output is not None:
        output.weight = embedding.weight  # tied


def _config_ids(config: Any) -> list[int]:
    ids: list[int] = []
    for attr in CONFIG_TOKEN_IDS:
        value = getattr(config, attr, None)
        ids += [value] if isinstance(value, int) else [v for v in value if isinstance(v, int)] if value else []
    return ids


def remap_config_ids(config: Any, remap: dict[int, int]) -> None:
    """The special-token ids of a model or generation config, moved to their new places."""
    for attr in CONFIG_TOKEN_IDS:
        value = getattr(config, attr, None)
        if isinstance(value, int):
            setattr(config, attr, remap.get(value))
        elif isinstance(value, list):
            setattr(config, attr, [remap[v] for v in value if v in remap])


def _logits(model: Any, tokenizer: Any, texts: list[str]) -> Any:
    import torch

    out = []
    with torch.inference_mode():
        for start in range(0, len(texts), 16):
            batch = tokenizer(texts[start : start + 16], padding=True, truncation=True, max_length=256,
                              return_tensors="pt")  # fmt: skip
            out.append(model(**batch).logits.float())
    return torch.cat(out) if out else torch.zeros(0)


def _problem(step: StepContext[Any], what: str, fix: str | None = None) -> SlimkitError:
    return SlimkitError(f"step {step.name!r}: {NAME} cannot prune this model: {what}", fix=fix)


def _decoder_and_tokenizer(step: StepContext[Any]) -> tuple[Any, Any, dict[str, Any]]:
    """The input model, its fast tokenizer and tokenizer.json's data; one line when they do not fit."""
    from slimkit_transformers.models import is_decoder, load_classifier

    model, tokenizer = load_classifier(step.input.path)
    if not is_decoder(model.config):
        raise _problem(step, f"{model.config.model_type} is not a decoder", fix="use textpruner.vocabulary on encoders")
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        raise _problem(step, f"{type(tokenizer).__name__} is not a fast tokenizer (no tokenizer.json)")
    data = json.loads(backend.to_str())
    if problem := tokenizer_problem(data):
        raise _problem(step, problem)
    rows = int(model.get_input_embeddings().weight.shape[0])
    if len(tokenizer) > rows:
        raise _problem(step, f"its tokenizer has {len(tokenizer)} tokens and its embeddings {rows} rows")
    return model, tokenizer, data


def shrink_model(model: Any, kept: list[int], remap: dict[int, int], pad_token_id: int | None) -> None:
    """Keep the embedding rows of ``kept`` and renumber every token id the configs name."""
    select_rows(model, kept)
    model.config.vocab_size = len(kept)
    text_config = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    if text_config is not model.config:
        text_config.vocab_size = len(kept)
        remap_config_ids(text_config, remap)
    remap_config_ids(model.config, remap)
    if getattr(model, "generation_config", None) is not None:
        remap_config_ids(model.generation_config, remap)
    model.config.pad_token_id = pad_token_id


def _same_tokens(
    step: StepContext[VocabularyConfig], tokenizer: Any, pruned: Any, kept: list[int], texts: list[str]
) -> tuple[dict[str, Any], list[int]]:
    """The training texts' tokenization check, and the rows tokenized identically; a text that the
    pruned tokenizer splits otherwise fails the step (with ``min_count = 1`` none may)."""
    check = compare_tokenizations(tokenizer, pruned, kept, texts)
    wrong, identical_rows = check.pop("_wrong", None), check.pop("_identical_rows")
    if wrong is not None or (step.config.min_count == 1 and check["identical"] != len(texts)):
        text, expected, got = wrong or ("?", [], [])
        raise SlimkitError(
            f"step {step.name!r}: {NAME}: the pruned tokenizer tokenizes the training text {text[:60]!r} differently "
            f"({got[:12]} instead of {expected[:12]})"
        )
    return check, identical_rows


def prune_vocabulary(step: StepContext[VocabularyConfig]) -> Artifact:
    """``transformers.vocabulary``: keep the embedding rows and tokenizer entries the task's
    training texts need, and check that they tokenize and classify exactly as before."""
    from slimkit.artifacts import disk_size
    from slimkit_transformers.models import load_classifier
    from slimkit_transformers.predictors import head_checksum

    cfg = step.config
    texts, used = gather_texts(step)
    if not texts:
        raise SlimkitError(f"step {step.name!r}: config.splits: no training texts to choose tokens from",
                           fix="name 'train' in config.splits, or set config.extra_texts_file")  # fmt: skip
    model, tokenizer, data = _decoder_and_tokenizer(step)
    embedding = model.get_input_embeddings()
    rows_before, width = int(embedding.weight.shape[0]), int(embedding.weight.shape[1])
    params_before = int(sum(p.numel() for p in model.parameters()))
    head_before = head_checksum(model)

    counts: Counter[int] = Counter(i for ids in encode(tokenizer, texts, special=False) for i in ids)
    pinned = [*tokenizer.all_special_ids, *_config_ids(model.config)]
    if getattr(embedding, "padding_idx", None) is not None:
        pinned.append(int(embedding.padding_idx))
    chosen = select_tokens(data, counts, cfg.min_count, pinned)
    kept: list[int] = chosen["kept"]
    remap = {old: new for new, old in enumerate(kept)}

    pruned_tokenizer, merges = write_pruned_tokenizer(tokenizer, kept, step.output_dir)
    if len(pruned_tokenizer) != len(kept):
        raise _problem(step, f"the rebuilt tokenizer has {len(pruned_tokenizer)} tokens, not {len(kept)}")
    check, identical_rows = _same_tokens(step, tokenizer, pruned_tokenizer, kept, texts)

    # The logits check reads texts that keep their tokens: a seeded sample, in the texts' order.
    rows = sorted(random.Random(step.seed).sample(identical_rows, min(cfg.check_texts, len(identical_rows))))
    check_sample = [texts[i] for i in rows]
    logits_before = _logits(model, tokenizer, check_sample)
    shrink_model(model, kept, remap, pruned_tokenizer.pad_token_id)
    if head_checksum(model) != head_before:
        raise SlimkitError(f"step {step.name!r}: {NAME} changed the classification head")
    model.save_pretrained(step.output_dir)
    has_task_file = carry_task_file(step)

    reloaded, reloaded_tokenizer = load_classifier(step.output_dir)
    logits_after = _logits(reloaded, reloaded_tokenizer, check_sample)
    max_diff = float((logits_after - logits_before).abs().max()) if check_sample else 0.0
    if max_diff > 1e-3:
        raise SlimkitError(
            f"step {step.name!r}: {NAME}: the reloaded pruned model's logits differ by {max_diff:.3g} on training texts"
        )
    task = step_task(step)
    eval_texts = task.eval.texts + (task.eval.text_pairs or [])  # texts only: eval labels are never read
    coverage = compare_tokenizations(tokenizer, pruned_tokenizer, kept, eval_texts)
    coverage.pop("_wrong", None), coverage.pop("_identical_rows")
    step.log(f"vocabulary {rows_before} -> {len(kept)} tokens; embeddings {rows_before * width} -> "
             f"{len(kept) * width} parameters")  # fmt: skip
    return step.artifact(
        tokenizer_model=data["model"]["type"],
        vocab_size_before=rows_before,
        tokenizer_size_before=len(tokenizer),
        vocab_size_after=len(kept),
        kept_token_share=len(kept) / rows_before,
        kept_tokens=chosen["groups"],
        merges_before=merges["merges_before"],
        merges_after=merges["merges_after"],
        min_count=cfg.min_count,
        texts_used=used,
        embedding_params_before=rows_before * width,
        embedding_params_after=len(kept) * width,
        params_before=params_before,
        params_after=int(sum(p.numel() for p in reloaded.parameters())),
        size_bytes_before=disk_size(step.input.path),
        size_bytes_after=disk_size(step.output_dir),
        training_texts_check=check,
        logits_check={"texts": len(check_sample), "max_abs_diff": max_diff},
        eval_texts_check=coverage,
        head_checksum=head_before,
        task_file_copied=has_task_file,
    )
