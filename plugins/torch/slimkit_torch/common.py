"""Helpers shared by the techniques: checking the head is intact, saving and reloading, counting parameters.

The head's names, the task file and the calibration sample come from
``slimkit_transformers.steps``, shared with the other plugins.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from slimkit.errors import SlimkitError
from slimkit_transformers.steps import carry_task_file, head_module_names, is_head

if TYPE_CHECKING:
    from slimkit.context import StepContext


def head_state(model: Any) -> dict[str, Any]:
    """Copies of the head's tensors, to check at the end of a step that it is intact."""
    heads = head_module_names(model)
    return {k: v.detach().clone() for k, v in model.state_dict().items() if is_head(k, heads)}


def check_head(model: Any, before: dict[str, Any], step: StepContext[Any]) -> None:
    import torch

    after = {k: v for k, v in model.state_dict().items() if k in before}
    changed = [k for k, v in before.items() if k not in after or not torch.equal(v, after[k].to(v.dtype))]
    if changed:
        raise SlimkitError(f"step {step.name!r}: the classification head changed ({', '.join(changed)})")


def save_transformers(model: Any, tokenizer: Any, step: StepContext[Any]) -> None:
    model.save_pretrained(step.output_dir)
    tokenizer.save_pretrained(step.output_dir)
    carry_task_file(step)


def count_params(model: Any) -> tuple[int, int]:
    """(parameters, non-zero parameters)."""
    import torch

    total = nonzero = 0
    for p in model.parameters():
        total += p.numel()
        nonzero += int(torch.count_nonzero(p).item())
    return total, nonzero


def sample_inputs(tokenizer: Any) -> dict[str, Any]:
    """Two short padded texts, for checks that need only some input."""
    return dict(tokenizer(["a short text", "another one, a bit longer than the first"], padding=True,
                          return_tensors="pt"))  # fmt: skip


def reload_check(model: Any, step: StepContext[Any], inputs: dict[str, Any]) -> float:
    """Reload the step's saved folder as slimkit does and compare its logits with ``model``'s; a saved
    model that reloads with other outputs fails the step. Returns the largest difference."""
    import torch

    from slimkit_transformers.models import load_classifier

    reloaded, _ = load_classifier(step.output_dir, device=step.device)
    inputs = {k: v.to(step.device) for k, v in inputs.items()}
    with torch.no_grad():
        diff = float((model.eval()(**inputs).logits - reloaded(**inputs).logits).abs().max())
    if diff > 1e-4:
        raise SlimkitError(f"step {step.name!r}: the saved model reloads with other outputs (max |diff| {diff})")
    return diff
