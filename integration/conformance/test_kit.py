"""The conformance kit fails, with one clear message, on a plugin that breaks each of its rules; and
passes a technique that keeps them all."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from slimkit.conformance import ConformanceError, Kit

pytest.importorskip("slimkit_transformers", reason="the kit's tiny models come from slimkit-transformers")
sys.path.insert(0, str(Path(__file__).parent))
import broken_plugin


@pytest.fixture(scope="module")
def kit() -> Iterator[Kit]:
    yield Kit(broken_plugin, families=["bert", "llama"])


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("kit")


def _broken(kit: Kit, root: Path, technique: str, rule: str, family: str | None = None) -> str:
    from slimkit.conformance import Case

    case = Case(f"broken.{technique}", rule, family)
    with pytest.raises(ConformanceError) as caught:
        kit.check(case, root / str(case))
    assert caught.value.technique == case.technique and caught.value.rule == rule
    return str(caught.value)


def test_a_technique_that_keeps_every_rule_passes(kit: Kit, root: Path) -> None:
    from slimkit.conformance import Case

    cases = [c for c in kit.cases() if c.technique == "broken.fine"]
    assert [str(c) for c in cases] == [
        "broken.fine-declaration", "broken.fine-bad-config", "broken.fine-runs-bert", "broken.fine-runs-llama",
        "broken.fine-step-key", "broken.fine-reuse",
    ]  # fmt: skip
    for case in cases:
        kit.check(case, root / str(case))
    assert Case("broken.fine", "runs", "bert") in cases


def test_no_families_declared(kit: Kit, root: Path) -> None:
    assert "declares no model families" in _broken(kit, root, "no-families", "declaration")


def test_an_implementation_that_cannot_be_imported(kit: Kit, root: Path) -> None:
    assert "'broken_plugin:nowhere' cannot be loaded" in _broken(kit, root, "missing-code", "declaration")


def test_a_nested_option_without_a_description(kit: Kit, root: Path) -> None:
    message = _broken(kit, root, "undocumented-nested", "declaration")
    assert "the config schema has no description for Inner.depth" in message


def test_a_config_that_crashes_instead_of_refusing(kit: Kit, root: Path) -> None:
    message = _broken(kit, root, "crashing-config", "bad-config")
    assert "planning crashed with TypeError" in message and "raise ValueError" in message


def test_a_declared_family_it_cannot_build(kit: Kit, root: Path) -> None:
    from slimkit.conformance import Case

    kit.check(Case("broken.fails-on-llama", "runs", "bert"), root / "ok")
    message = _broken(kit, root, "fails-on-llama", "runs", "llama")
    assert "failed on a tiny llama model" in message and "cannot handle this model" in message
    assert "stop declaring 'llama'" in message


def test_an_output_that_is_not_the_declared_format(kit: Kit, root: Path) -> None:
    message = _broken(kit, root, "wrong-format", "runs", "bert")
    assert "its onnx output on a tiny bert model could not be reloaded and measured" in message
    assert "expected one .onnx file, found 0" in message and "declare the format it is" in message


def test_an_output_without_its_head(kit: Kit, root: Path) -> None:
    assert "output has no classification head" in _broken(kit, root, "drops-head", "runs", "bert")


def test_a_step_key_that_changes_between_processes(kit: Kit, root: Path) -> None:
    assert "two processes computed" in _broken(kit, root, "unstable-key", "step-key")


def test_a_technique_that_writes_into_its_input_is_not_reused(kit: Kit, root: Path) -> None:
    message = _broken(kit, root, "writes-input", "reuse")
    assert "the second run built" in message and "never into the input model's folder" in message
