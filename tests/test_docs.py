"""The docs stay true to the code: hook reference, docstring shape, CLI commands, pipeline fields.

Pure Python and fast: imports slimkit's specs, CLI and spec models, never torch.
"""

from __future__ import annotations

import importlib.util
import inspect
import json
import re
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from pydantic import BaseModel

from slimkit import hookspecs
from slimkit.auto import AutoSpec
from slimkit.cli import cli
from slimkit.spec import MeasureSpec, ModelSource, Pipeline, StepSpec, TaskSpec

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_hooks", DOCS / "gen_hooks.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


GEN = _generator()
SPECS = GEN.hook_specs()
SPEC_IDS = [name for name, _, _ in SPECS]


def _hooks_md() -> str:
    return (DOCS / "hooks.md").read_text(encoding="utf-8")


def test_hooks_md_is_generated_from_the_specs() -> None:
    assert _hooks_md() == GEN.render(), "docs/hooks.md is out of date: run `python docs/gen_hooks.py`"


def test_every_module_level_spec_is_found() -> None:
    # The generator finds specs through pluggy's own parsing; nothing marked @hookspec escapes it.
    marked = [n for n, fn in vars(hookspecs).items() if inspect.isfunction(fn) and hasattr(fn, "slimkit_spec")]
    assert sorted(marked) == sorted(SPEC_IDS)
    assert SPEC_IDS[0] == "register_techniques"  # source order, not alphabetical


@pytest.mark.parametrize(("name", "fn", "opts"), SPECS, ids=SPEC_IDS)
def test_hook_is_documented_with_its_signature(name: str, fn: Any, opts: dict[str, Any]) -> None:
    text = _hooks_md()
    params = list(inspect.signature(fn).parameters)
    headings = re.findall(rf"^## {name}\((.*)\)$", text, flags=re.M)
    assert len(headings) == 1, f"docs/hooks.md needs exactly one '## {name}(...)' section"
    documented = [p.strip() for p in headings[0].split(",") if p.strip()]
    assert documented == params, f"{name}: documented {documented}, spec has {params}"
    assert f"```python\n{GEN.signature_line(name, fn)}\n```" in text


def test_hooks_md_documents_no_hook_that_does_not_exist() -> None:
    documented = re.findall(r"^## (\w+)\(", _hooks_md(), flags=re.M)
    assert documented == SPEC_IDS


@pytest.mark.parametrize(("name", "fn", "opts"), SPECS, ids=SPEC_IDS)
def test_hookspec_docstring_shape(name: str, fn: Any, opts: dict[str, Any]) -> None:
    doc = inspect.getdoc(fn) or ""
    lines = doc.splitlines()
    assert lines and lines[0].strip() and not lines[0].startswith(("Fires:", ":param")), f"{name}: no summary line"
    assert sum(line.startswith("Fires: ") for line in lines) == 1, f"{name}: needs one 'Fires:' line"
    params = list(inspect.signature(fn).parameters)
    documented = re.findall(r"^:param (\w+):", doc, flags=re.M)
    assert documented == params, f"{name}: ':param' lines {documented} do not match the parameters {params}"
    assert sum(line.startswith("Returns: ") for line in lines) == 1, f"{name}: needs one 'Returns:' line"
    assert re.search(r"^Added in \d+\.\d+", doc, flags=re.M), f"{name}: needs an 'Added in X.Y' line"
    stops = "Stops at the first non-None result." in doc
    assert stops == bool(opts.get("firstresult")), (
        f"{name}: say 'Stops at the first non-None result.' exactly when the spec is firstresult"
    )


def test_every_cli_command_is_in_the_readme() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    missing = [name for name in cli.commands if f"slimkit {name}" not in readme]
    assert not missing, f"README.md does not mention: {', '.join('slimkit ' + n for n in missing)}"


def _section(text: str, model: type[BaseModel]) -> str:
    """The '## ...' section of docs/pipeline-file.md whose heading names the model in backticks,
    up to the next heading of any level."""
    parts = re.split(r"^(?=#{1,6} )", text, flags=re.M)
    found = [p for p in parts if p.startswith("## ") and f"`{model.__name__}`" in p.splitlines()[0]]
    assert len(found) == 1, f"docs/pipeline-file.md needs one '## ... `{model.__name__}`' section"
    return found[0]


def _documented_default(model: type[BaseModel], name: str) -> str:
    field = model.model_fields[name]
    if field.is_required():
        return "required"
    value = field.get_default(call_default_factory=True)
    if value is None:
        return "unset"
    if isinstance(value, BaseModel):
        return "table"
    return f"`{json.dumps(value)}`"


DOCUMENTED = [
    *(("pipeline-file.md", m) for m in (Pipeline, ModelSource, TaskSpec, StepSpec, MeasureSpec)),
    ("compress.md", AutoSpec),
]


@pytest.mark.parametrize(("doc", "model"), DOCUMENTED, ids=lambda m: getattr(m, "__name__", ""))
def test_file_docs_document_every_field(doc: str, model: type[BaseModel]) -> None:
    section = _section((DOCS / doc).read_text(encoding="utf-8"), model)
    rows = {
        m["field"]: [cell.strip() for cell in m["rest"].split(" | ")]
        for m in re.finditer(r"^\| `(?P<field>\w+)` \| (?P<rest>.*) \|$", section, flags=re.M)
    }
    fields = list(model.model_fields)
    assert [f for f in fields if f not in rows] == [], f"{model.__name__}: fields missing from its table"
    assert [r for r in rows if r not in fields] == [], f"{model.__name__}: the table lists fields that do not exist"
    for name in fields:
        # Columns: field | type | default | meaning
        assert rows[name][1] == _documented_default(model, name), f"{model.__name__}.{name}: default is out of date"
