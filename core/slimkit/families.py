"""Model families: the names techniques declare support for, and how a model's config names one.

A family is a Hugging Face ``model_type`` (what ``config.json`` says), so users and plugin authors
meet the name they already know. The table below lists the families slimkit's compatibility tests
build tiny models of; a technique may declare any other ``model_type`` too, or ``"*"`` for every
model (a technique that works on any ``nn.Linear``, for example).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

ANY_FAMILY = "*"


@dataclass(frozen=True)
class Family:
    name: str  # the model_type techniques declare
    kind: Literal["encoder", "decoder"]
    title: str  # how people write it


# The tested families, in the order of the compatibility table.
FAMILIES: tuple[Family, ...] = (
    Family("bert", "encoder", "BERT"),
    Family("roberta", "encoder", "RoBERTa"),
    Family("distilbert", "encoder", "DistilBERT"),
    Family("electra", "encoder", "ELECTRA"),
    Family("deberta-v2", "encoder", "DeBERTa-v2/v3"),
    Family("xlm-roberta", "encoder", "XLM-RoBERTa"),
    Family("mpnet", "encoder", "MPNet"),
    Family("modernbert", "encoder", "ModernBERT"),
    Family("llama", "decoder", "Llama"),
    Family("qwen2", "decoder", "Qwen2"),
    Family("qwen3", "decoder", "Qwen3"),
    Family("gemma3", "decoder", "Gemma 3"),
    Family("mistral", "decoder", "Mistral"),
    Family("phi3", "decoder", "Phi-3"),
)
BY_NAME = {f.name: f for f in FAMILIES}

# model_types that are one family under another name: Gemma 3's text-only checkpoints (1B, and the
# text tower saved alone) say gemma3_text; GGUF files say the architecture without the dash.
ALIASES = {"gemma3_text": "gemma3", "deberta_v2": "deberta-v2", "xlm_roberta": "xlm-roberta"}


def family_name(model_type: str) -> str:
    """The family a ``model_type`` belongs to."""
    return ALIASES.get(model_type, model_type)


def family_of(config: dict[str, Any]) -> str | None:
    """The family of a model from its config.json keys; None when the config names no model_type."""
    model_type = config.get("model_type")
    return family_name(model_type) if isinstance(model_type, str) and model_type else None


def is_decoder_family(family: str) -> bool | None:
    """Whether a tested family is a decoder; None for a family slimkit has not tested."""
    known = BY_NAME.get(family)
    return None if known is None else known.kind == "decoder"


def kind_of(model_type: str | None, architectures: list[str] | None) -> Literal["encoder", "decoder"]:
    """Encoder or decoder: a tested family's own kind, else what the config's architectures say
    (a causal-LM head means a decoder)."""
    known = None if not model_type else is_decoder_family(family_name(model_type))
    if known is None:
        known = any(str(a).endswith("ForCausalLM") for a in architectures or [])
    return "decoder" if known else "encoder"
