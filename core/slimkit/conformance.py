"""The conformance kit: what slimkit expects of every technique, checked on tiny models.

A plugin's test suite makes one call (see :func:`slimkit.testing.conformance`) and pytest runs one
test per technique and rule:

- ``declaration``: the declaration validates, its implementation imports, its config's JSON Schema
  documents every field, and it declares the model families it supports;
- ``bad-config``: a misspelt option and an option of the wrong type are refused at plan time, before
  any compute, in one line that names the step and the field;
- ``runs-<family>``: on a tiny random-weight model of each family it declares (fine-tuned first, so
  the head is trained), after whatever installed technique makes its input format: it builds,
  its output reloads in the format it declares, is measured (accuracy and agreement come from
  predictions through the reloaded model), and the classification head is the baseline's;
- ``step-key``: the step's cache key is the same in two fresh processes (no set order, clock or
  random value in it);
- ``reuse``: a second run with the same store reuses the step instead of building it again (a
  technique that writes into its input, or publishes what its digest does not cover, fails here).

Tiny models and the tiny task come from slimkit-transformers' test helpers; the kit needs it
installed. Nothing here is imported by slimkit at run time.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Literal, get_origin

from slimkit.errors import SlimkitError
from slimkit.families import ANY_FAMILY
from slimkit.plugins import LOAD_ENV, Plugins, build_plugins
from slimkit.techniques import Technique

SOURCE_FORMAT = "transformers"
RULES = {
    "declaration": "its declaration must validate, import and document itself",
    "bad-config": "a bad option must be refused at plan time in one line naming the field",
    "runs": "it must build on a tiny model of each family it declares, reload and be measured with its head",
    "step-key": "its step key must be the same in every process",
    "reuse": "a second run must reuse its step",
}
# The baseline every run starts from: a tiny model fine-tuned for a few seconds, so that its head is
# trained and agreement with it means something. Shared through one store by every case.
FINETUNE = {
    "name": "finetune",
    "technique": "transformers.finetune",
    "config": {"epochs": 2, "batch_size": 16, "learning_rate": 1e-3, "max_length": 16},
}
MEASURE = {"batch_sizes": [1], "sequence_lengths": [16], "dynamic_length": False, "latency": False, "threads": 1}
NOT_A_FIELD = "no_such_option"


class ConformanceError(AssertionError):
    """A rule the technique breaks: which technique, which rule, what happened, how to fix it."""

    def __init__(self, technique: str, rule: str, problem: str, fix: str | None = None) -> None:
        self.technique, self.rule, self.problem = technique, rule, problem
        line = f"{technique} breaks '{rule}' ({RULES[rule]}): {problem}"
        super().__init__(line + (f"\n  fix: {fix}" if fix else ""))


class CannotCheck(Exception):
    """This environment cannot run the check (a requirement or device is missing): a skip, with why."""


@dataclass(frozen=True)
class Case:
    technique: str
    rule: str
    family: str | None = None

    def __str__(self) -> str:
        return f"{self.technique}-{self.rule}" + (f"-{self.family}" if self.family else "")


@dataclass
class Kit:
    """The checks for one plugin's techniques. ``plugin``: its entry-point name (installed) or its
    module (loaded without installing, e.g. a plugin being written)."""

    plugin: str | ModuleType
    configs: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    families: Sequence[str] | None = None
    _plugins: Plugins | None = None

    @property
    def name(self) -> str:
        return self.plugin if isinstance(self.plugin, str) else plugin_name(self.plugin)

    def plugins(self) -> Plugins:
        if self._plugins is None:
            plugins = installed_plugins_and(self.plugin if isinstance(self.plugin, ModuleType) else None)
            record = plugins.records.get(self.name)
            if record is None or record.status != "loaded":
                why = record.error if record is not None else "not installed (no 'slimkit' entry point by that name)"
                raise SlimkitError(f"plugin {self.name!r} cannot be checked: {why}")
            self._plugins = plugins
        return self._plugins

    def techniques(self) -> list[Technique]:
        return self.plugins().techniques.of_plugin(self.name)

    def cases(self) -> list[Case]:
        cases: list[Case] = []
        for technique in self.techniques():
            cases += [Case(technique.name, "declaration"), Case(technique.name, "bad-config")]
            cases += [Case(technique.name, "runs", family) for family in self.families_of(technique)]
            cases += [Case(technique.name, "step-key"), Case(technique.name, "reuse")]
        return cases

    def families_of(self, technique: Technique) -> list[str]:
        """The tiny families it declares (all of them for '*'), narrowed to ``families`` when given."""
        from slimkit_transformers.testing import FAMILIES

        declared = technique.families or {}
        found = [f for f in FAMILIES if f in declared or ANY_FAMILY in declared]
        return [f for f in found if self.families is None or f in self.families]

    def check(self, case: Case, work_dir: Path) -> None:
        """Raises ConformanceError when the rule is broken, CannotCheck when it cannot run here."""
        technique = self.plugins().techniques.get(case.technique)
        assert technique is not None, case
        if case.rule == "declaration":
            check_declaration(technique)
            return
        if not self.families_of(technique):
            raise CannotCheck(f"{technique.name} declares no family that the kit has a tiny model of")
        runs = Runs(self, technique, work_dir)
        if case.rule == "runs":
            assert case.family is not None, case
            runs.check_runs(case.family)
        else:
            {"bad-config": runs.check_bad_config, "step-key": runs.check_key, "reuse": runs.check_reuse}[case.rule]()


def plugin_name(module: ModuleType) -> str:
    """The entry-point name a plugin module goes by: ``slimkit_acme_labs`` is 'acme-labs', as
    ``slimkit new-plugin acme-labs`` names it."""
    return module.__name__.removeprefix("slimkit_").replace("_", "-")


def installed_plugins_and(module: ModuleType | None) -> Plugins:
    """Every installed plugin, as users have them (under test none is auto-loaded), plus ``module``
    when it is not installed (a plugin being written)."""
    with _all_installed_plugins():
        plugins = build_plugins()
    if module is not None and plugin_name(module) not in plugins.records:
        plugins.register(module, plugin_name(module), origin="test")
    return plugins


@contextmanager
def _all_installed_plugins() -> Iterator[None]:
    saved = os.environ.pop(LOAD_ENV, None)
    try:
        yield
    finally:
        if saved is not None:
            os.environ[LOAD_ENV] = saved


def check_declaration(technique: Technique) -> None:
    """What registration does not check already: the implementation imports, every field of the
    config and of the models nested in it is documented, families are declared, the summary is
    one line."""
    rule = "declaration"
    try:
        technique.load_implementation()
        schema = technique.config.model_json_schema()
    except Exception as exc:
        raise ConformanceError(technique.name, rule, str(exc).splitlines()[0]) from None
    if undocumented := undocumented_fields(schema):
        raise ConformanceError(
            technique.name, rule, f"the config schema has no description for {', '.join(undocumented)}",
            fix="give every field, nested models' too, Field(description=...)",
        )  # fmt: skip
    if not technique.families:
        raise ConformanceError(
            technique.name, rule, "it declares no model families",
            fix="declare families={'bert': '...', ...} (or {'*': '...'} for any model)",
        )  # fmt: skip
    if not technique.summary.strip() or "\n" in technique.summary:
        raise ConformanceError(technique.name, rule, "its summary must be one line")
    if technique.unlabelled_texts is not None and technique.unlabelled_refusal({"data_file": "t.txt", "max_rows": 9}):
        raise ConformanceError(
            technique.name, rule, f"its config field {technique.unlabelled_texts!r} refuses unlabelled texts",
            fix="type it slimkit.spec.UnlabelledTexts | None",
        )  # fmt: skip


def undocumented_fields(schema: dict[str, Any]) -> list[str]:
    """Fields without a description, the nested models' (``$defs``) as ``Model.field``: registration
    checks only the config's own fields."""
    models = [("", schema), *((f"{name}.", model) for name, model in schema.get("$defs", {}).items())]
    return [
        prefix + field_name
        for prefix, model in models
        for field_name, spec in model.get("properties", {}).items()
        if not spec.get("description")
    ]


class Runs:
    """Pipelines on tiny models for one technique, sharing one store and the tiny models of the session."""

    def __init__(self, kit: Kit, technique: Technique, work_dir: Path) -> None:
        self.kit, self.technique, self.work_dir = kit, technique, work_dir
        from slimkit.planner import requirement_problems

        if unmet := requirement_problems(technique.requires):
            raise CannotCheck(f"{technique.name} cannot run here: {'; '.join(unmet)}")
        if "cpu" not in technique.hardware.devices:
            raise CannotCheck(f"{technique.name} does not run on the CPU ({', '.join(technique.hardware.devices)})")

    # -- the rules ------------------------------------------------------------------------
    def check_bad_config(self) -> None:
        name = self.technique.name
        problem = self._refusal({NOT_A_FIELD: 1})
        if problem is None:
            raise ConformanceError(name, "bad-config", f"an unknown option {NOT_A_FIELD!r} was accepted",
                                   fix="set model_config = ConfigDict(extra='forbid') on its config model")  # fmt: skip
        self._one_line_naming(problem, NOT_A_FIELD)
        wrong = wrongly_typed(self.technique)
        if wrong is not None:
            field_name, value = wrong
            problem = self._refusal({field_name: value})
            if problem is None:
                raise ConformanceError(name, "bad-config", f"{field_name} = {value!r} was accepted")
            self._one_line_naming(problem, field_name)

    def check_runs(self, family: str) -> None:
        data = self._run(family, "runs")
        name = self.technique.name
        out = data["artifacts"][-1]
        if out.get("produced_by") != name:
            raise ConformanceError(name, "runs", f"the run's last model is {out.get('label')!r}, not the technique's")
        expected = self._steps(family)[-1]["expected_format"]
        if out["format"] != expected:
            raise ConformanceError(name, "runs", f"it declares {expected!r} but its artifact says {out['format']!r}")
        metrics = {m["name"]: m for m in out["metrics"]}
        missing = [m for m in ("accuracy", "agreement", "size_bytes") if (metrics.get(m) or {}).get("value") is None]
        if missing:
            errors = "; ".join(f"{k}: {v}" for k, v in (data.get("measure_errors") or {}).items())
            raise ConformanceError(
                name, "runs", f"its {out['format']} output on a tiny {family} model reloads and measures without "
                f"{', '.join(missing)}" + (f" ({errors})" if errors else ""),
                fix=f"save a model that the plugin which reads {out['format']!r} can load and predict with",
            )  # fmt: skip
        self._head_intact(family, data, out)

    def check_key(self) -> None:
        family = self.kit.families_of(self.technique)[0]
        pipeline = self._pipeline(family, "step-key")
        keys = [self._keys_in_fresh_process(pipeline, seed) for seed in ("1", "2")]
        if keys[0] != keys[1]:
            raise ConformanceError(
                self.technique.name, "step-key", f"two processes computed {keys[0][-1]} and {keys[1][-1]}",
                fix="keep sets, clocks and random values out of the config (its JSON dump is part of the key)",
            )  # fmt: skip

    def check_reuse(self) -> None:
        family = self.kit.families_of(self.technique)[0]
        self._run(family, "reuse-1")
        data = self._run(family, "reuse-2")
        built = [s["name"] for s in data["steps"] if s["status"] != "reused"]
        if built:
            raise ConformanceError(
                self.technique.name, "reuse", f"the second run built {', '.join(built)} again instead of reusing it",
                fix="write only into step.output_dir, never into the input model's folder, and nothing after returning",
            )  # fmt: skip

    # -- helpers --------------------------------------------------------------------------
    def _steps(self, family: str) -> list[dict[str, Any]]:
        """The steps that make the technique's input format from the source, then the technique."""
        plugins = self.kit.plugins()
        chain = format_path(plugins, SOURCE_FORMAT, self.technique.consumes, family)
        if chain is None:
            raise CannotCheck(f"no installed technique makes {self.technique.consumes} from {SOURCE_FORMAT!r}")
        steps = [{"name": f"make-{t.name.replace('.', '-')}", "technique": t.name} for t in chain]
        fmt = chain[-1].output_format(SOURCE_FORMAT) if chain else SOURCE_FORMAT
        config = dict(self.kit.configs.get(self.technique.name, {}))
        step = {"name": "step", "technique": self.technique.name, "config": config}
        return [*steps, step | {"expected_format": self.technique.output_format(fmt)}]

    def _pipeline(self, family: str, label: str, config: Mapping[str, Any] | None = None) -> dict[str, Any]:
        steps = [{k: v for k, v in s.items() if k != "expected_format"} for s in self._steps(family)]
        if config is not None:
            steps[-1]["config"] = dict(config)
        return {
            "name": "conformance",
            "model": str(tiny_model(family, self.work_dir.parent)),
            "task": tiny_task(self.work_dir.parent),
            "device": "cpu",
            "steps": [FINETUNE, *steps],
            "baseline": "finetune",
            "measure": MEASURE,
            "output_dir": str(self.work_dir / label),
            "store_dir": str(self.work_dir.parent / "store"),
        }

    def _run(self, family: str, label: str) -> dict[str, Any]:
        from slimkit.runner import run_pipeline
        from slimkit.spec import pipeline_from_dict

        name = self.technique.name
        pipeline = pipeline_from_dict(self._pipeline(family, label))
        try:
            result = run_pipeline(pipeline, plugins=self.kit.plugins(), track=False)
        except SlimkitError as exc:
            raise ConformanceError(name, "runs", f"a tiny {family} model was refused: {exc}") from None
        data: dict[str, Any] = json.loads(result.results_path.read_text(encoding="utf-8"))
        if result.exit_code != 0:
            errors = [f"{s['name']}: {s.get('error')}" for s in data["steps"] if s.get("error")]
            if errors or not data.get("measure_errors"):
                raise ConformanceError(
                    name, "runs", f"it failed on a tiny {family} model: {'; '.join(errors) or data.get('reason')}",
                    fix=f"fix it for {family}, or stop declaring {family!r} in families",
                )  # fmt: skip
            out = data["artifacts"][-1]["format"] if data.get("artifacts") else "its"
            measured = "; ".join(f"{k}: {v}" for k, v in data["measure_errors"].items())
            raise ConformanceError(
                name, "runs",
                f"its {out} output on a tiny {family} model could not be reloaded and measured: {measured}",
                fix=f"write what the plugin that reads {out!r} loads, or declare the format it is (produces=...)",
            )  # fmt: skip
        return data

    def _refusal(self, config: Mapping[str, Any]) -> str | None:
        """The plan's refusal of the technique's step with this config, or None when it was accepted."""
        from slimkit.planner import plan_pipeline
        from slimkit.spec import pipeline_from_dict

        family = self.kit.families_of(self.technique)[0]
        try:
            pipeline = pipeline_from_dict(self._pipeline(family, "bad-config", config))
            plan = plan_pipeline(pipeline, plugins=self.kit.plugins())
        except SlimkitError as exc:
            return str(exc)
        except Exception as exc:
            raise ConformanceError(
                self.technique.name, "bad-config", f"planning crashed with {type(exc).__name__}: {exc}",
                fix="raise ValueError in config validators, never another exception",
            ) from None  # fmt: skip
        return "; ".join(plan.problems) or None

    def _one_line_naming(self, problem: str, field_name: str) -> None:
        if "\n" in problem.strip() or field_name not in problem or "step" not in problem:
            raise ConformanceError(
                self.technique.name, "bad-config", f"the refusal must be one line naming the step and {field_name!r}: "
                f"{problem!r}",
            )  # fmt: skip

    def _head_intact(self, family: str, data: dict[str, Any], out: dict[str, Any]) -> None:
        """A transformers output keeps a sequence-classification architecture and the baseline's labels."""
        if out["format"] != SOURCE_FORMAT:
            return
        run_dir = self.work_dir / "runs"
        baseline = next(a for a in data["artifacts"] if a["label"] == "finetune")
        before, after = (_config_of(run_dir, a) for a in (baseline, out))
        if after is None:
            return
        archs = after.get("architectures") or []
        if not any(str(a).endswith("ForSequenceClassification") for a in archs):
            raise ConformanceError(
                self.technique.name, "runs", f"its {family} output has no classification head (architectures {archs})",
                fix="save the model with its head (a ...ForSequenceClassification class)",
            )  # fmt: skip
        if before is not None and before.get("id2label") != after.get("id2label"):
            raise ConformanceError(
                self.technique.name, "runs",
                f"its {family} output's labels {after.get('id2label')} are not the baseline's {before.get('id2label')}",
            )  # fmt: skip

    def _keys_in_fresh_process(self, pipeline: dict[str, Any], hash_seed: str) -> list[str]:
        spec = self.work_dir / "step-key.json"
        spec.parent.mkdir(parents=True, exist_ok=True)
        spec.write_text(json.dumps(pipeline), encoding="utf-8")
        module = [] if isinstance(self.kit.plugin, str) else ["--module", self.kit.plugin.__name__]
        env = dict(os.environ, PYTHONHASHSEED=hash_seed, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
        env.pop(LOAD_ENV, None)
        done = subprocess.run(
            [sys.executable, "-m", "slimkit.conformance", str(spec), *module],
            capture_output=True, text=True, env=env, check=False,
        )  # fmt: skip
        if done.returncode != 0:
            tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
            raise ConformanceError(self.technique.name, "step-key", f"planning in a fresh process failed: {tail}")
        return list(json.loads(done.stdout.strip().splitlines()[-1]))


def _config_of(run_dir: Path, artifact: dict[str, Any]) -> dict[str, Any] | None:
    path = Path(artifact["path"])
    folder = path if path.is_absolute() else run_dir / path
    file = folder / "config.json"
    return json.loads(file.read_text(encoding="utf-8")) if file.is_file() else None


def format_path(plugins: Plugins, start: str, targets: Sequence[str], family: str) -> list[Technique] | None:
    """The shortest chain of installed techniques (each with its default config, each declaring the
    family) that turns ``start`` into one of ``targets``; [] when ``start`` already is one."""
    frontier: list[tuple[str, list[Technique]]] = [(start, [])]
    seen = {start}
    while frontier:
        fmt, chain = frontier.pop(0)
        if fmt in targets:
            return chain
        for t in plugins.techniques.all():
            out = t.output_format(fmt)
            if fmt in t.consumes and out not in seen and t.support_for(family) is not None and _no_options_needed(t):
                seen.add(out)
                frontier.append((out, [*chain, t]))
    return None


def _no_options_needed(technique: Technique) -> bool:
    return all(not f.is_required() for f in technique.config.model_fields.values())


def wrongly_typed(technique: Technique) -> tuple[str, Any] | None:
    """A field of a plain type (number, string, boolean) and a value no such field accepts."""
    for name, spec in technique.config.model_fields.items():
        if spec.annotation in (int, float, bool, str) or get_origin(spec.annotation) is Literal:
            return name, {"not": "valid"}
    return None


# -- the tiny models and task, built once per session -----------------------------------------


def tiny_model(family: str, root: Path) -> Path:
    from slimkit_transformers.testing import build_tiny_model

    folder = root / "models" / family
    if not (folder / "config.json").is_file():
        build_tiny_model(family, folder)
    return folder


def tiny_task(root: Path) -> dict[str, Any]:
    from slimkit_transformers.testing import write_tiny_task

    folder = root / "task"
    marker = folder / "task.json"
    if not marker.is_file():
        task = write_tiny_task(folder, multi_label=False)
        marker.write_text(json.dumps(task), encoding="utf-8")
    return dict(json.loads(marker.read_text(encoding="utf-8")))


def _print_keys(argv: list[str]) -> None:
    """``python -m slimkit.conformance PIPELINE.json [--module M]``: the step keys of its plan, as JSON."""
    import importlib

    from slimkit.planner import plan_pipeline
    from slimkit.runner import step_key
    from slimkit.spec import pipeline_from_dict

    module = importlib.import_module(argv[argv.index("--module") + 1]) if "--module" in argv else None
    plugins = installed_plugins_and(module)
    pipeline = pipeline_from_dict(json.loads(Path(argv[0]).read_text(encoding="utf-8")))
    plan = plan_pipeline(pipeline, plugins=plugins)
    plan.raise_if_problems()
    key, keys = "source", []
    for step in plan.steps:
        key = step_key(key, step, pipeline)
        keys.append(key)
    print(json.dumps(keys))


if __name__ == "__main__":
    _print_keys(sys.argv[1:])
