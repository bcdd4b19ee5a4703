"""The planner: every check made from declarations alone, every problem reported together."""

from __future__ import annotations

import importlib.metadata as md
import json
import pickle
import warnings
from pathlib import Path
from typing import Any

import pytest

from slimkit import Technique, hookimpl
from slimkit.errors import PlanRefused
from slimkit.hardware import CudaDevice, Hardware
from slimkit.planner import NO_SPEEDUP, WEAK_CPU, Note, Plan, plan_pipeline
from slimkit.plugins import Plugins
from slimkit.registry_index import Index, load_index
from slimkit.spec import Pipeline, pipeline_from_dict

PLUGGY = md.version("pluggy")


class Declares:
    """A plugin that only declares techniques (planning never runs them)."""

    def __init__(self, *declarations: dict[str, Any]) -> None:
        self.declarations = declarations

    @hookimpl
    def register_techniques(self, register):  # type: ignore[no-untyped-def]
        for d in self.declarations:
            register({"summary": "Test technique.", "consumes": ["toy"]} | d)


def toy_pipeline(*steps: dict[str, Any], **fields: Any) -> Pipeline:
    data = {"name": "p", "model": {"source": "toy:0.1,0.5", "format": "toy"}, "steps": list(steps)} | fields
    return pipeline_from_dict(data, base_dir=Path("/nonexistent-base"))


@pytest.fixture
def plan(slimkit_plugins: Plugins, hw: Hardware, toy: Any) -> Any:
    def make(pipeline: Pipeline, *, index: Index | None = None, hardware: Hardware | None = None) -> Plan:
        return plan_pipeline(pipeline, plugins=slimkit_plugins, hardware=hardware or hw, index=index or Index())

    return make


def test_valid_plan(plan: Any) -> None:
    result = plan(
        toy_pipeline(
            {"technique": "toy.prune", "config": {"threshold": 0.3}},
            {"technique": "toy.finetune", "name": "tune"},
            {"technique": "toy.round"},
            {"technique": "toy.export"},
        )
    )
    assert result.ok
    assert result.problems == [] and result.warnings == []
    assert result.device == "cpu"
    assert result.source_format == "toy"
    assert [s.as_dict() for s in result.steps] == [
        {
            "index": 1,
            "name": "toy.prune",
            "technique": "toy.prune",
            "stage": "prune",
            "plugin": "toy",
            "plugin_version": None,
            "config": {"threshold": 0.3},
            "input_format": "toy",
            "output_format": "toy",
            "reason": "named in the pipeline",
        },
        {
            "index": 2,
            "name": "tune",
            "technique": "toy.finetune",
            "stage": "train",
            "plugin": "toy",
            "plugin_version": None,
            "config": {"factor": 2.0},
            "input_format": "toy",
            "output_format": "toy",
            "reason": "named in the pipeline",
        },
        {
            "index": 3,
            "name": "toy.round",
            "technique": "toy.round",
            "stage": "quantize",
            "plugin": "toy",
            "plugin_version": None,
            "config": {"decimals": 1},
            "input_format": "toy",
            "output_format": "toy",
            "reason": "named in the pipeline",
        },
        {
            "index": 4,
            "name": "toy.export",
            "technique": "toy.export",
            "stage": "export",
            "plugin": "toy",
            "plugin_version": None,
            "config": {},
            "input_format": "toy",
            "output_format": "toyx",
            "reason": "named in the pipeline",
        },
    ]
    result.raise_if_problems()  # no problems: no exception
    assert result.as_dict()["ok"] is True


def test_bad_order_says_why(plan: Any) -> None:
    result = plan(toy_pipeline({"technique": "toy.round"}, {"technique": "toy.finetune"}))
    assert result.problems == [
        "step 1 (toy.round) runs before step 2 (toy.finetune), but toy.round declares it must come after 'train' "
        '(fix: reorder the steps, or set order = "auto")'
    ]
    with pytest.raises(PlanRefused) as info:
        result.raise_if_problems()
    assert info.value.exit_code == 3
    assert info.value.problems == result.problems


def test_before_relation_is_checked_too(plan: Any) -> None:
    result = plan(toy_pipeline({"technique": "toy.finetune"}, {"technique": "toy.prune"}))
    assert result.problems == [
        "step 1 (toy.finetune) runs before step 2 (toy.prune), but toy.prune declares it must come before 'train' "
        '(fix: reorder the steps, or set order = "auto")'
    ]


def test_format_mismatch_suggests_moving_the_step(plan: Any) -> None:
    result = plan(toy_pipeline({"technique": "toy.export"}, {"technique": "toy.round"}))
    assert result.problems == [
        "step 2 (toy.round): toy.round needs toy input but step 1 gives toyx "
        "(fix: move it before step 1 (toy.export), which turns toy into toyx)"
    ]


def test_format_mismatch_suggests_a_converter(plan: Any, register_plugin: Any) -> None:
    register_plugin(
        Declares({"name": "conv.import", "stage": "export", "consumes": ["onnx"], "produces": "toy"}), name="conv"
    )
    result = plan(
        toy_pipeline({"technique": "toy.round"}, model={"source": "m.onnx", "format": "onnx"}),
    )
    assert result.source_format == "onnx"
    assert result.problems == [
        "step 1 (toy.round): toy.round needs toy input but the model source gives onnx "
        "(fix: add a step such as conv.import before it)"
    ]


def test_format_mismatch_without_a_known_fix(plan: Any) -> None:
    result = plan(toy_pipeline({"technique": "toy.round"}, model={"source": "m.gguf", "format": "gguf"}))
    assert result.problems == [
        "step 1 (toy.round): toy.round needs toy input but the model source gives gguf "
        "(fix: start from a model in toy format, or remove the step)"
    ]


def test_source_format_is_guessed(plan: Any) -> None:
    assert plan(Pipeline(model="model.onnx")).source_format == "onnx"
    assert plan(Pipeline(model="org/model")).source_format == "transformers"


def hardware_plugin(**hardware: Any) -> Declares:
    return Declares({"name": "hw.q", "stage": "quantize", "hardware": hardware, "goals": ["speed"]})


def test_device_mismatch_is_a_problem(plan: Any, register_plugin: Any) -> None:
    register_plugin(hardware_plugin(devices=["cuda"]), name="hw")
    result = plan(toy_pipeline({"technique": "hw.q"}))
    assert result.problems == ["step 1 (hw.q): hw.q runs on cuda, not cpu"]


def test_missing_required_cpu_feature_is_a_problem(plan: Any, register_plugin: Any) -> None:
    register_plugin(hardware_plugin(cpu_features_required=["avx2", "not_a_flag"]), name="hw")
    assert plan(toy_pipeline({"technique": "hw.q"})).problems == ["step 1 (hw.q): hw.q needs CPU features not_a_flag"]


def test_wrong_cpu_architecture_is_a_problem(plan: Any, register_plugin: Any) -> None:
    register_plugin(hardware_plugin(cpu_arch=["aarch64", "arm64"]), name="hw")
    assert plan(toy_pipeline({"technique": "hw.q"})).problems == [
        "step 1 (hw.q): hw.q needs a aarch64 or arm64 CPU, this is x86_64"
    ]


def test_missing_beneficial_feature_is_a_warning(plan: Any, register_plugin: Any) -> None:
    register_plugin(hardware_plugin(cpu_features_beneficial=["avx512_vnni", "amx"]), name="hw")
    result = plan(toy_pipeline({"technique": "hw.q"}))
    assert result.ok
    assert result.warnings == ["step 1 (hw.q): hw.q this CPU lacks avx512_vnni / amx, so little speed-up is expected"]
    assert [w.code for w in result.warnings] == [WEAK_CPU]
    # One of them is enough.
    amx = Hardware(
        cpu_model="x", arch="x86_64", logical_cores=1, physical_cores=1, cpu_flags=["amx_tile"], memory_bytes=1
    )
    assert plan(toy_pipeline({"technique": "hw.q"}), hardware=amx).warnings == []


def test_no_speedup_device_warns_only_when_speed_is_the_goal(plan: Any, register_plugin: Any) -> None:
    register_plugin(hardware_plugin(speedup_devices=[], notes="it only saves memory"), name="hw")
    warning = "step 1 (hw.q): hw.q gives no speed-up on cpu: it only saves memory"
    assert plan(toy_pipeline({"technique": "hw.q", "goal": "speed"})).warnings == [warning]
    assert plan(toy_pipeline({"technique": "hw.q"})).warnings == [warning]
    assert plan(toy_pipeline({"technique": "hw.q", "goal": "size"})).warnings == []
    assert plan(toy_pipeline({"technique": "hw.q", "goal": "size"})).ok


def test_warnings_are_notes_that_read_as_their_text() -> None:
    note = Note(NO_SPEEDUP, "step 1 (q): q gives no speed-up on cpu")
    assert note == note.text == str(note) == "step 1 (q): q gives no speed-up on cpu" and type(str(note)) is str
    assert json.dumps({"warnings": [note]}) == '{"warnings": ["step 1 (q): q gives no speed-up on cpu"]}'
    copy = pickle.loads(pickle.dumps(note))  # executors may ship plans to other processes
    assert (copy, copy.code) == (note, NO_SPEEDUP)


def test_goal_decides_on_the_code_not_the_wording(
    plan: Any, register_plugin: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import slimkit.planner

    register_plugin(hardware_plugin(), name="hw")
    notes = [Note(NO_SPEEDUP, "is slow here"), Note("other", "gives no speed-up, but not about speed")]
    monkeypatch.setattr(slimkit.planner, "hardware_fit", lambda *a: ([], notes))
    assert plan(toy_pipeline({"technique": "hw.q", "goal": "size"})).warnings == [
        "step 1 (hw.q): hw.q gives no speed-up, but not about speed"
    ]


def test_cuda_capability(plan: Any, register_plugin: Any) -> None:
    register_plugin(hardware_plugin(devices=["cpu", "cuda"], min_cuda_capability=(8, 0)), name="hw")
    old_gpu = Hardware(
        cpu_model="x",
        arch="x86_64",
        logical_cores=1,
        physical_cores=1,
        cpu_flags=[],
        memory_bytes=1,
        cuda=[CudaDevice(index=0, name="T4", capability=(7, 5), memory_bytes=2**34)],
        cuda_checked=True,
    )
    result = plan(toy_pipeline({"technique": "hw.q"}), hardware=old_gpu)
    assert result.device == "cuda"  # 'auto' picks CUDA when present
    assert result.problems == ["step 1 (hw.q): hw.q needs CUDA capability 8.0, this GPU has 7.5"]
    new_gpu = old_gpu.model_copy(update={"cuda": [CudaDevice(index=0, name="H100", capability=(9, 0), memory_bytes=1)]})
    assert plan(toy_pipeline({"technique": "hw.q"}), hardware=new_gpu).ok
    assert plan(toy_pipeline({"technique": "hw.q"}, device="cpu"), hardware=old_gpu).device == "cpu"


def test_a_device_the_machine_lacks_is_refused(plan: Any, hw: Hardware) -> None:
    checked = hw.model_copy(update={"cuda_checked": True})
    result = plan(toy_pipeline({"technique": "toy.prune"}, device="cuda"), hardware=checked)
    assert "device: 'cuda' was asked, but this machine has no CUDA device" in result.problems[0]
    unchecked = plan(toy_pipeline({"technique": "toy.prune"}, device="cuda"), hardware=hw)
    assert not any("device:" in p for p in unchecked.problems)
    assert any("cannot be checked" in w for w in unchecked.warnings)
    assert any("'mps' needs an Apple-silicon Mac" in p for p in plan(toy_pipeline(device="mps"), hardware=hw).problems)


class ReadsModels:
    """A plugin whose technique checks its config against the source model's config at plan time."""

    def __init__(self) -> None:
        self.reads = 0

    @hookimpl
    def register_techniques(self, register):  # type: ignore[no-untyped-def]
        def check(config, model_config):  # type: ignore[no-untyped-def]
            return None if model_config["hidden_size"] % 64 == 0 else "hidden_size is not a multiple of 64"

        register(Technique(name="shape.q", stage="quantize", summary="x", consumes=["toy"], check_model=check))

    @hookimpl
    def model_config(self, source, pipeline, cache_dir):  # type: ignore[no-untyped-def]
        self.reads += 1
        return {"hidden_size": 96} if source.source.startswith("toy:") else None


def test_techniques_check_the_source_model_at_plan_time(plan: Any, register_plugin: Any) -> None:
    reader = ReadsModels()
    register_plugin(reader, name="shapes")
    result = plan(toy_pipeline({"technique": "shape.q"}, {"name": "again", "technique": "shape.q"}))
    assert result.problems == [
        "step 1 (shape.q): hidden_size is not a multiple of 64",
        "step 2 (again): hidden_size is not a multiple of 64",
    ]
    assert reader.reads == 1  # read once per plan
    # After a prune step the shapes are not known at plan time: the technique checks when it runs.
    assert plan(toy_pipeline({"technique": "toy.prune"}, {"technique": "shape.q"})).ok
    # A source no plugin can read is not a problem either.
    assert plan(toy_pipeline({"technique": "shape.q"}, model={"source": "other", "format": "toy"})).ok


def write_index(tmp_path: Path) -> Path:
    path = tmp_path / "registry" / "plugins.toml"
    path.parent.mkdir()
    path.write_text(
        """
[[plugin]]
name = "onnx"
distribution = "slimkit-onnx-test-not-installed"
summary = "ONNX export and quantization."
techniques = ["onnx.export", "onnx.quantize-dynamic"]
hardware = ["cpu"]

[[plugin]]
name = "bnb"
distribution = "slimkit-bnb-test-not-installed"
summary = "bitsandbytes."
hardware = ["cuda"]
"""
    )
    return path


def test_missing_technique_names_the_plugin_from_the_index(plan: Any, tmp_path: Path) -> None:
    index = load_index(write_index(tmp_path))
    assert index.root == tmp_path
    result = plan(
        toy_pipeline(
            {"technique": "onnx.quantize-dynamic"},
            {"technique": "bnb.int8", "name": "int8"},
            {"technique": "nobody.knows"},
        ),
        index=index,
    )
    assert result.problems == [
        "step 1 (onnx.quantize-dynamic): technique 'onnx.quantize-dynamic' is not installed; "
        "it comes with slimkit-onnx-test-not-installed (fix: slimkit install onnx)",
        "step 2 (int8): technique 'bnb.int8' is not installed; "
        "it comes with slimkit-bnb-test-not-installed (fix: slimkit install bnb)",
        "step 3 (nobody.knows): unknown technique 'nobody.knows' (installed: toy.export, toy.fail, toy.finetune, "
        "toy.prune, toy.round; see `slimkit techniques`)",
    ]


def test_missing_technique_of_a_broken_plugin_names_its_error(plan: Any, slimkit_plugins: Plugins) -> None:
    from slimkit.plugins import PluginRecord

    slimkit_plugins.records["onnx"] = PluginRecord(
        name="onnx", origin="entry-point", status="unavailable", error="ModuleNotFoundError: No module named 'onnx'"
    )
    result = plan(toy_pipeline({"technique": "onnx.export"}))
    assert result.problems == [
        "step 1 (onnx.export): technique 'onnx.export' is unavailable because plugin 'onnx' is unavailable: "
        "ModuleNotFoundError: No module named 'onnx'"
    ]
    assert result.warnings == ["plugin 'onnx' is unavailable: ModuleNotFoundError: No module named 'onnx'"]


def test_pipeline_requirements(plan: Any, tmp_path: Path) -> None:
    index = load_index(write_index(tmp_path))
    result = plan(
        toy_pipeline(
            {"technique": "toy.prune"},
            requires=[
                "slimkit-onnx-test-not-installed>=0.1",
                "some-other-dist-not-installed",
                f"pluggy=={PLUGGY}",
                "pluggy<0.1",
                "pluggy<0.1; python_version < '3'",
                "not a requirement!",
            ],
        ),
        index=index,
    )
    assert result.problems == [
        "the pipeline needs slimkit-onnx-test-not-installed>=0.1 (not installed; fix: slimkit install onnx)",
        "the pipeline needs some-other-dist-not-installed (not installed; "
        "fix: pip install 'some-other-dist-not-installed')",
        f"the pipeline needs pluggy<0.1 but pluggy {PLUGGY} is installed",
        "the pipeline invalid requirement 'not a requirement!'",
    ]


def test_auto_order_sorts_stably_by_relations(plan: Any) -> None:
    pipeline = toy_pipeline(
        {"technique": "toy.round"},
        {"technique": "toy.export"},
        {"technique": "toy.fail", "name": "unrelated"},
        {"technique": "toy.finetune"},
        {"technique": "toy.prune"},
        order="auto",
    )
    result = plan(pipeline)
    # prune before train, round after both; the unrelated step keeps its place among the free ones.
    # export has no relation, but is free first; the format chain then breaks for what follows it.
    assert [(s.index, s.name) for s in result.steps] == [
        (1, "toy.export"),
        (2, "unrelated"),
        (3, "toy.prune"),
        (4, "toy.finetune"),
        (5, "toy.round"),
    ]
    assert result.problems[0] == (
        "step 3 (toy.prune): toy.prune needs toy input but step 2 gives toyx "
        "(fix: move it before step 1 (toy.export), which turns toy into toyx)"
    )


def test_auto_order_fixes_a_bad_order(plan: Any) -> None:
    pipeline = toy_pipeline(
        {"technique": "toy.round"},
        {"technique": "toy.finetune"},
        {"technique": "toy.prune"},
        {"technique": "toy.export"},
        order="auto",
    )
    result = plan(pipeline)
    assert result.ok, result.problems
    assert [s.name for s in result.steps] == ["toy.prune", "toy.finetune", "toy.round", "toy.export"]
    assert [s.index for s in result.steps] == [1, 2, 3, 4]


def test_auto_order_reports_a_cycle(plan: Any, register_plugin: Any) -> None:
    register_plugin(
        Declares(
            {"name": "cyc.a", "stage": "prune", "after": ["cyc.b"]},
            {"name": "cyc.b", "stage": "prune", "after": ["cyc.a"]},
        ),
        name="cyc",
    )
    result = plan(
        toy_pipeline({"technique": "toy.prune"}, {"technique": "cyc.a"}, {"technique": "cyc.b"}, order="auto")
    )
    assert result.problems[0] == "order = 'auto' cannot order these steps, their relations form a cycle: cyc.a, cyc.b"
    assert [s.name for s in result.steps] == ["toy.prune", "cyc.a", "cyc.b"]


def test_conflicting_techniques(plan: Any, register_plugin: Any) -> None:
    register_plugin(Declares({"name": "cf.sparse", "stage": "prune", "conflicts": ["quantize"]}), name="cf")
    result = plan(toy_pipeline({"technique": "cf.sparse"}, {"technique": "toy.round"}))
    assert result.problems == [
        "step 1 (cf.sparse) and step 2 (toy.round) cannot be combined: cf.sparse and toy.round conflict"
    ]


def test_config_problems_name_step_and_field(plan: Any) -> None:
    result = plan(
        toy_pipeline(
            {"technique": "toy.prune", "config": {"threshold": -1, "treshold": 0.5}},
            {"technique": "toy.round", "config": {"decimals": "two"}},
        )
    )
    assert result.problems == [
        "step 1 (toy.prune): config.threshold: Input should be greater than or equal to 0",
        "step 1 (toy.prune): config.treshold: unknown option",
        "step 2 (toy.round): config.decimals: Input should be a valid integer",
    ]
    # The refused plan can still be shown: only the options that validated, without serializer warnings.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        data = result.as_dict()
    assert [s["config"] for s in data["steps"]] == [{"threshold": 0.25}, {"decimals": 1}]


def test_a_technique_that_reads_the_task_needs_one(plan: Any, register_plugin: Any) -> None:
    register_plugin(Declares({"name": "data.tune", "stage": "train", "needs_task": True}), name="data")
    result = plan(toy_pipeline({"technique": "toy.prune"}, {"technique": "data.tune", "name": "tune"}))
    assert result.problems == [
        "step 2 (tune): data.tune reads the pipeline's task, and this pipeline has none (fix: add a [task] table)"
    ]
    with_task = toy_pipeline({"technique": "data.tune"}, task={"data_files": {"train": "t.csv"}, "labels": ["a"]})
    assert plan(with_task).ok
    assert plan(toy_pipeline({"technique": "toy.round"})).ok  # a technique that does not read it needs none


def test_python_requirement_of_a_technique(plan: Any, register_plugin: Any) -> None:
    register_plugin(Declares({"name": "req.old", "stage": "prune", "requires": ["pluggy<0.1"]}), name="req")
    result = plan(toy_pipeline({"technique": "req.old"}))
    assert result.problems == [f"step 1 (req.old): req.old needs pluggy<0.1 but pluggy {PLUGGY} is installed"]


def test_stage_only_step_picks_by_goal_and_says_why(plan: Any, register_plugin: Any) -> None:
    register_plugin(
        Declares(
            {"name": "pick.fast", "stage": "quantize", "goals": ["speed"]},
            {"name": "pick.small", "stage": "quantize", "goals": ["size"]},
            {"name": "pick.gpu", "stage": "quantize", "goals": ["speed"], "hardware": {"devices": ["cuda"]}},
            {"name": "pick.onnx", "stage": "quantize", "goals": ["speed"], "consumes": ["onnx"]},
        ),
        name="pick",
    )
    result = plan(toy_pipeline({"stage": "quantize", "goal": "speed"}))
    assert result.ok
    (step,) = result.steps
    # pick.fast and toy.round both match 'speed' and fit equally well: the name breaks the tie.
    assert (step.name, step.technique.name) == ("quantize", "pick.fast")
    assert step.reason == (
        "picked for goal speed, toy input on cpu over toy.round, pick.small, toy.fail; "
        "ruled out pick.gpu (runs on cuda, not cpu); pick.onnx (consumes onnx, not toy)"
    )
    # A higher priority wins among those that match the goal.
    register_plugin(Declares({"name": "pri.top", "stage": "quantize", "goals": ["speed"], "priority": 5}), name="pri")
    assert plan(toy_pipeline({"stage": "quantize", "goal": "speed"})).steps[0].technique.name == "pri.top"
    small = plan(toy_pipeline({"stage": "quantize", "goal": "size"})).steps[0]
    assert small.technique.name == "pick.small"
    assert small.reason.startswith("picked for goal size, toy input on cpu over ")


def test_stage_only_step_prefers_techniques_that_pay_off_here(plan: Any, register_plugin: Any) -> None:
    register_plugin(
        Declares(
            {"name": "pay.amx", "stage": "prune", "goals": ["speed"], "hardware": {"cpu_features_beneficial": ["amx"]}},
            {
                "name": "pay.avx",
                "stage": "prune",
                "goals": ["speed"],
                "hardware": {"cpu_features_beneficial": ["avx2"]},
            },
        ),
        name="pay",
    )
    step = plan(toy_pipeline({"stage": "prune", "goal": "speed", "name": "p1"})).steps[0]
    assert step.technique.name == "pay.avx"


def test_stage_with_nothing_that_fits(plan: Any, register_plugin: Any) -> None:
    register_plugin(Declares({"name": "gpu.only", "stage": "distill", "hardware": {"devices": ["cuda"]}}), name="gpu")
    result = plan(toy_pipeline({"stage": "distill"}, {"stage": "quantize", "goal": "speed"}))
    assert result.problems == ["step 1 (distill): no distill technique fits: gpu.only: runs on cuda, not cpu"]


def test_stage_that_no_plugin_offers(plan: Any) -> None:
    assert plan(toy_pipeline({"stage": "distill"})).problems == [
        "step 1 (distill): no installed plugin offers a distill technique "
        "(fix: `slimkit plugins --available` lists plugins that do)"
    ]


def test_named_technique_of_another_stage(plan: Any) -> None:
    result = plan(toy_pipeline({"technique": "toy.round", "stage": "prune"}))
    assert result.problems == ["step 1 (toy.round): toy.round is a quantize technique, not prune"]


def test_all_problems_are_reported_together(plan: Any, register_plugin: Any) -> None:
    register_plugin(hardware_plugin(devices=["cuda"]), name="hw")
    result = plan(
        toy_pipeline(
            {"technique": "toy.prune", "config": {"bogus": 1}},
            {"technique": "toy.missing"},
            {"technique": "hw.q"},
        )
    )
    assert result.problems == [
        "step 2 (toy.missing): unknown technique 'toy.missing' (installed: hw.q, toy.export, toy.fail, toy.finetune, "
        "toy.prune, toy.round; see `slimkit techniques`)",
        "step 1 (toy.prune): config.bogus: unknown option",
        "step 3 (hw.q): hw.q runs on cuda, not cpu",
    ]
    result = plan(
        toy_pipeline(
            {"technique": "toy.round", "config": {"decimals": 9}},
            {"technique": "toy.finetune"},
            {"technique": "hw.q"},
        )
    )
    assert result.problems == [
        "step 1 (toy.round): config.decimals: Input should be less than or equal to 6",
        "step 3 (hw.q): hw.q runs on cuda, not cpu",
        "step 1 (toy.round) runs before step 2 (toy.finetune), but toy.round declares it must come after 'train' "
        '(fix: reorder the steps, or set order = "auto")',
    ]
    with pytest.raises(PlanRefused) as info:
        result.raise_if_problems()
    assert str(info.value).startswith("the pipeline cannot run: 3 problem(s): step 1 (toy.round): config.decimals")


def test_local_plugins_listed_in_the_pipeline_are_loaded(plan: Any, tmp_path: Path, slimkit_plugins: Any) -> None:
    (tmp_path / "extra.py").write_text(
        "import slimkit\n\n"
        "@slimkit.hookimpl\n"
        "def register_techniques(register):\n"
        "    register({'name': 'extra.noop', 'stage': 'prune', 'summary': 's', 'consumes': ['toy']})\n"
    )
    pipeline = pipeline_from_dict(
        {
            "model": {"source": "toy:1", "format": "toy"},
            "plugins": ["extra.py", "missing.py"],
            "steps": [{"technique": "extra.noop"}],
        },
        base_dir=tmp_path,
    )
    slimkit_plugins.trust_local = True
    result = plan(pipeline)
    assert result.warnings == ["plugins: runs code from local plugin file(s) extra.py, missing.py (trusted)"]
    assert result.problems == [
        f"local plugin file not found: {tmp_path / 'missing.py'} (fix: fix the path in the pipeline's 'plugins')"
    ]
    assert result.steps[0].technique.plugin == "local:extra"


def test_local_plugin_code_runs_only_when_trusted(plan: Any, tmp_path: Path, slimkit_plugins: Any) -> None:
    # Planning a pipeline someone sent must not run the code its local plugin files hold.
    marker = tmp_path / "ran"
    (tmp_path / "payload.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    pipeline = pipeline_from_dict(
        {"model": {"source": "toy:1", "format": "toy"}, "plugins": ["payload.py"]}, base_dir=tmp_path
    )
    result = plan(pipeline)
    assert result.problems == [
        "plugins: the file names local plugin code (payload.py) that is not imported without your trust "
        "(fix: read it, then pass --trust-local-plugins or set SLIMKIT_TRUST_LOCAL_PLUGINS=1)"
    ]
    assert not marker.exists()
    slimkit_plugins.trust_local = True
    assert plan(pipeline).problems == []
    assert marker.exists()
