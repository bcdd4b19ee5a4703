"""AWQ through Intel Neural Compressor on a sequence classifier, saved as a GPTQ checkpoint that
slimkit-gptq loads onto GPTQModel's int4 kernel; the head checked bit for bit after reloading."""

from __future__ import annotations

import importlib.metadata as md
import json
import time
from pathlib import Path
from typing import Any

from slimkit.artifacts import Artifact, disk_size
from slimkit.context import StepContext
from slimkit.errors import SlimkitError
from slimkit_awq.config import AwqConfig
from slimkit_gptq.quantize import group_size_problem, reload_checked
from slimkit_transformers.models import read_config_json
from slimkit_transformers.predictors import head_checksum
from slimkit_transformers.steps import calibration_texts, carry_task_file, head_module_names, is_head

# Which module's output each group of Linears reads, per decoder layer (INC's absorb_layer_dict):
# AWQ scales the group's input channels up and divides the absorbing module's weights by the same
# scales. INC 3.10 finds these pairs by tracing the model with TorchScript, which fails on
# transformers 5 Llama ("No absorb layer is detected"), so they are named here, per family.
LLAMA_ABSORB: dict[str, list[str]] = {
    "input_layernorm": ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"],
    "post_attention_layernorm": ["mlp.gate_proj", "mlp.up_proj"],
    "mlp.up_proj": ["mlp.down_proj"],
}
# Mistral and Qwen2/3 decoder layers name their modules as Llama does (Qwen2 adds q/k/v biases, Qwen3 q/k norms).
ABSORB = {family: LLAMA_ABSORB for family in ("llama", "mistral", "qwen2", "qwen3")}
# INC writes damp_percent 0 (a GPTQ-only setting it does not use), which GPTQModel refuses to load;
# 0.01 is the GPTQ default and means nothing for an AWQ checkpoint.
DAMP_PERCENT = 0.01


def absorb_layers(model_config: Any) -> dict[str, list[str]]:
    """The absorb pairs for this model: v_proj absorbs o_proj's scales only when each attention head
    has its own value head (with grouped-query attention v_proj is narrower than o_proj's input)."""
    model_type = model_config.model_type
    if model_type not in ABSORB:
        raise SlimkitError(f"awq.quantize knows the layer pairs of {', '.join(ABSORB)} models, not {model_type!r}")
    pairs = dict(ABSORB[model_type])
    heads = model_config.num_attention_heads
    if (getattr(model_config, "num_key_value_heads", None) or heads) == heads:
        pairs["self_attn.v_proj"] = ["self_attn.o_proj"]
    return pairs


def check_group_size(step: StepContext[AwqConfig]) -> None:
    """Run time: the same check as at plan time, for a model an earlier step reshaped."""
    problem = group_size_problem(step.config.group_size, read_config_json(step.input.path / "config.json"))
    if problem:
        raise SlimkitError(f"step {step.index} ({step.name}): config.group_size: {problem}")


def calibration_ids(step: StepContext[AwqConfig], tokenizer: Any) -> list[Any]:
    """The seeded calibration texts joined with newlines, tokenized and cut into sequences of
    ``max_length`` tokens (the remainder is a shorter last one), batched by
    ``calibration_batch_size``: no padding, so every activation AWQ averages is a real token's."""
    import torch

    config = step.config
    texts = calibration_texts(step, config.calibration_examples)
    ids = tokenizer("\n".join(texts), add_special_tokens=False)["input_ids"]
    if not ids:
        raise SlimkitError(f"step {step.index} ({step.name}): the calibration texts make no tokens")
    size = config.max_length
    full = len(ids) // size
    batches = [
        torch.tensor(
            [ids[(b + i) * size : (b + i + 1) * size] for i in range(min(config.calibration_batch_size, full - b))]
        )
        for b in range(0, full, config.calibration_batch_size)
    ]
    if len(ids) % size:
        batches.append(torch.tensor([ids[full * size :]]))
    return batches


def _fix_damp_percent(folder: Path) -> None:
    for name in ("quantize_config.json", "config.json"):
        path = folder / name
        data = json.loads(path.read_text())
        quant = data.get("quantization_config", data)
        quant["damp_percent"] = DAMP_PERCENT
        path.write_text(json.dumps(data, indent=2) + "\n")


def _drop_unused_tensors(folder: Path, biased: set[str]) -> int:
    """Remove what INC's export adds and GPTQModel ignores: a ``scale_bf16_to_fp8`` per layer and a
    zero bias on every quantized Linear that had none (``biased``: the modules that had one). A
    non-zero added bias would be lost on loading, so it is an error, not dropped. Returns the
    number of tensors removed."""
    import torch
    from safetensors.torch import load_file, save_file

    dropped = 0
    for path in sorted(folder.glob("*.safetensors")):
        tensors = load_file(path)
        extra = [
            k
            for k in tensors
            if k.endswith(".scale_bf16_to_fp8") or (k.endswith(".bias") and k.removesuffix(".bias") not in biased)
        ]
        nonzero = [k for k in extra if k.endswith(".bias") and torch.count_nonzero(tensors[k])]
        if nonzero:
            raise SlimkitError(f"the AWQ export added non-zero biases the model does not have: {nonzero[:3]}")
        if extra:
            save_file({k: v for k, v in tensors.items() if k not in extra}, path, metadata={"format": "pt"})
            dropped += len(extra)
        index = folder / "model.safetensors.index.json"
        if extra and index.is_file():
            data = json.loads(index.read_text())
            data["weight_map"] = {k: v for k, v in data["weight_map"].items() if k not in extra}
            index.write_text(json.dumps(data, indent=2) + "\n")
    return dropped


def awq_quantize(step: StepContext[AwqConfig]) -> Artifact:
    import torch

    from slimkit_transformers.models import load_classifier

    started = time.perf_counter()
    check_group_size(step)
    config = step.config
    model, tokenizer = load_classifier(step.input.path, device="cpu", dtype=torch.float32)
    absorb = absorb_layers(model.config)  # refuses an unknown family before calibrating
    heads = head_module_names(model)
    before = {k: v.clone() for k, v in model.state_dict().items() if is_head(k, heads)}
    checksum = head_checksum(model)
    biased = {n for n, m in model.named_modules() if getattr(m, "bias", None) is not None}
    batches = calibration_ids(step, tokenizer)

    from neural_compressor.torch.quantization import AWQConfig, convert, prepare

    common = {"bits": config.bits, "group_size": config.group_size, "use_sym": True}
    qconfig = AWQConfig(
        **common, use_auto_scale=config.auto_scale, use_auto_clip=config.auto_clip, absorb_layer_dict=absorb
    )
    # The heads stay float32. The override repeats bits, group size and symmetry because INC's
    # Hugging Face export asserts they are equal for every module it lists; symmetric weights are
    # what make that export a GPTQ (v1) checkpoint.
    for head in heads:
        qconfig.set_local(head, AWQConfig(dtype="fp32", **common))
    model.config.use_cache = False  # INC replays each block's captured inputs; a cache would grow
    step.log(f"AWQ: {sum(len(b) for b in batches)} calibration sequences of up to {config.max_length} tokens")
    with torch.no_grad():
        model = prepare(model, quant_config=qconfig, example_inputs=batches[0][:1])
        for batch in step.progress(batches, "AWQ calibration"):
            model(batch)
        model = convert(model)
    model.save(str(step.output_dir), format="huggingface")
    _fix_damp_percent(step.output_dir)
    dropped = _drop_unused_tensors(step.output_dir, biased)
    tokenizer.save_pretrained(step.output_dir)  # with slimkit's pad token
    carry_task_file(step)
    del model

    reloaded, modules = reload_checked(step, before, "cpu")
    return step.artifact(
        method="awq",
        bits=config.bits,
        group_size=config.group_size,
        sym=True,
        auto_scale=config.auto_scale,
        auto_clip=config.auto_clip,
        calibration_examples=config.calibration_examples,
        calibration_sequences=sum(len(b) for b in batches),
        absorb_pairs=len(absorb),
        dropped_export_tensors=dropped,
        quantized_linears=len(modules),
        kernel=type(reloaded.get_submodule(modules[0])).__name__,
        head="kept float32, bit-identical after quantization and reload",
        head_checksum=checksum,
        neural_compressor=md.version("neural-compressor-pt"),
        gptqmodel=md.version("gptqmodel"),
        input_bytes=disk_size(step.input.path),
        seconds=round(time.perf_counter() - started, 2),
    )
