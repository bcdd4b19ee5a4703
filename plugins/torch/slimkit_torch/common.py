"""Helpers shared by the techniques: checking the head is intact, saving, counting parameters.

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
