"""Rebuild a WordPiece tokenizer from the tokens TextPruner kept.

TextPruner writes only a new ``vocab.txt``. A fast tokenizer is loaded from ``tokenizer.json``
first (in transformers 5 always), so that file must hold the pruned vocabulary too, and every id
that the tokenizer files name (added tokens, the post-processor's [CLS]/[SEP]) must follow the
tokens to their new places. Normalizer, pre-tokenizer and decoder are kept as they were, so a text
made of kept tokens tokenizes exactly as before, with remapped ids.
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

from slimkit.errors import SlimkitError

TOKENIZER_JSON = "tokenizer.json"
TOKENIZER_CONFIG = "tokenizer_config.json"


def wordpiece_problem(tokenizer: Any) -> str | None:
    """Why this tokenizer cannot be pruned here, or None."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return f"{type(tokenizer).__name__} is not a fast (tokenizers-backed) tokenizer"
    kind = json.loads(backend.to_str()).get("model", {}).get("type")
    if kind != "WordPiece":
        return f"its tokenizer is {kind}, and only WordPiece vocabularies are pruned here"
    return None


def _remap_processor(node: Any, remap: dict[int, int]) -> Any:
    """The post-processor's JSON with each special token's id moved to its new place."""
    if isinstance(node, list):
        return [_remap_processor(n, remap) for n in node]
    if not isinstance(node, dict):
        return node
    kind = node.get("type")
    out = dict(node)
    if kind == "TemplateProcessing":
        out["special_tokens"] = {
            name: dict(spec, ids=[remap[i] for i in spec["ids"]]) for name, spec in node["special_tokens"].items()
        }
    elif kind in ("BertProcessing", "RobertaProcessing"):
        for field in ("sep", "cls"):
            token, old = node[field]
            out[field] = [token, remap[old]]
    elif kind == "Sequence":
        out["processors"] = [_remap_processor(p, remap) for p in node["processors"]]
    return out


def write_pruned_tokenizer(tokenizer: Any, kept: list[int], folder: Path, save_vocab: Any) -> Any:
    """Write the tokenizer restricted to ``kept`` (old ids, ascending) into ``folder``; return it reloaded.

    ``save_vocab`` is TextPruner's ``tokenizer_helper.save_vocab``, which writes ``vocab.txt``.
    """
    from transformers import AutoTokenizer

    remap = {old: new for new, old in enumerate(kept)}
    missing = [t for t in tokenizer.all_special_ids if t not in remap]
    if missing:
        raise SlimkitError(f"textpruner.vocabulary: special token ids {missing} were not kept")
    tokens = tokenizer.convert_ids_to_tokens(kept)
    with tempfile.TemporaryDirectory() as tmp:
        original = Path(tmp)
        tokenizer.save_pretrained(original)
        data = json.loads((original / TOKENIZER_JSON).read_text(encoding="utf-8"))
        data["model"]["vocab"] = {token: i for i, token in enumerate(tokens)}
        data["added_tokens"] = [dict(t, id=remap[t["id"]]) for t in data.get("added_tokens", []) if t["id"] in remap]
        if data.get("post_processor") is not None:
            data["post_processor"] = _remap_processor(data["post_processor"], remap)
        if isinstance(data.get("padding"), dict) and data["padding"].get("pad_id") in remap:
            data["padding"]["pad_id"] = remap[data["padding"]["pad_id"]]
        config = json.loads((original / TOKENIZER_CONFIG).read_text(encoding="utf-8"))
        if "added_tokens_decoder" in config:
            config["added_tokens_decoder"] = {
                str(remap[int(i)]): spec for i, spec in config["added_tokens_decoder"].items() if int(i) in remap
            }
        for path in original.iterdir():  # special_tokens_map.json and the like, as they were
            if path.name not in (TOKENIZER_JSON, TOKENIZER_CONFIG, "vocab.txt"):
                shutil.copy2(path, folder / path.name)
    (folder / TOKENIZER_JSON).write_text(json.dumps(data, ensure_ascii=False, indent=2), encoding="utf-8")
    (folder / TOKENIZER_CONFIG).write_text(json.dumps(config, ensure_ascii=False, indent=2), encoding="utf-8")
    with contextlib.redirect_stdout(io.StringIO()):  # it prints "Reinitialize the tokenizer!"
        save_vocab(tokenizer, kept, str(folder))
    return AutoTokenizer.from_pretrained(folder)


def check_remapped(old: Any, new: Any, kept: list[int], texts: list[str]) -> dict[str, int]:
    """Tokenize ``texts`` with both tokenizers. Texts made only of kept tokens must get the same ids,
    remapped; raise otherwise. Returns how many texts were compared and how many were in vocabulary."""
    remap = {o: n for n, o in enumerate(kept)}
    compared = 0
    if not texts:
        return {"texts": 0, "in_vocabulary": 0}
    before = old(texts, add_special_tokens=True)["input_ids"]
    after = new(texts, add_special_tokens=True)["input_ids"]
    for text, a, b in zip(texts, before, after, strict=True):
        if all(i in remap for i in a):
            compared += 1
            if [remap[i] for i in a] != b:
                raise SlimkitError(
                    f"textpruner.vocabulary: the pruned tokenizer tokenizes {text[:60]!r} differently "
                    f"({b[:12]} instead of {[remap[i] for i in a][:12]})"
                )
    return {"texts": len(texts), "in_vocabulary": compared}
