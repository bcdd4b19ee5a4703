"""Technique implementations named by 'module:function' in tests/test_dispatch.py."""

from __future__ import annotations

import json

from slimkit import Artifact, StepContext
from toy_plugin import RoundConfig, read


def halve(step: StepContext[RoundConfig]) -> Artifact:
    weights = [round(w / 2, step.config.decimals) for w in read(step.input.path)]
    (step.output_dir / "weights.json").write_text(json.dumps(weights))
    return step.artifact(halved=len(weights))


NOT_A_FUNCTION = 3
