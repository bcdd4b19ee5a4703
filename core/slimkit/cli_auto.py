"""``slimkit compress`` and the ``recipe = "auto"`` files that ``slimkit run`` and ``plan`` accept.

Both end in the same place: an :class:`slimkit.auto.AutoSpec`, planned by :func:`slimkit.auto.plan_auto`
(what will be tried and why, before any compute) and run as a study. ``compress`` also writes that
spec as a pipeline file of a few lines into the run folder, so the run can be repeated or edited.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from slimkit.errors import ExitCode

if TYPE_CHECKING:
    from slimkit.auto import AutoPlan, AutoSpec
    from slimkit.spec import UnlabelledTexts

AUTO_FILE = "compress.toml"


def auto_spec_from_file(path: Path) -> AutoSpec | None:
    """The file's AutoSpec when it says ``recipe = ...``; None for an ordinary pipeline file."""
    from slimkit.auto import auto_from_dict, is_auto
    from slimkit.spec import read_spec_file

    data = read_spec_file(path)
    if not is_auto(data):
        return None
    return auto_from_dict(data, base_dir=path.resolve().parent, source=str(path))


def print_auto_plan(plan: AutoPlan) -> None:
    spec = plan.spec
    family = plan.family or "unknown family"
    click.echo(f"Compress {spec.model.source} ({family}, {plan.kind}) for {spec.goal}, within {spec.budget:g} point(s)")
    if plan.base:
        click.echo(f"  baseline: {plan.base}")
    for c in plan.candidates:
        click.echo(f"  try {c.recipe.name}: {' -> '.join(s.label for s in c.steps)}")
        click.echo(f"      {c.reason}")
    for name, why in plan.left_out:
        click.echo(f"  skip {name}: {why}")
    # Left out when a problem stopped the texts from being given (a missing file: its line says why).
    if spec.unlabelled is not None and (plan.unlabelled_steps or not plan.problems):
        click.echo(f"  unlabelled texts: {_unlabelled_line(spec.unlabelled, plan.unlabelled_steps)}")
    if spec.time_budget:
        click.echo(f"  time budget: {spec.time_budget:g} s (cheapest recipes first; no new variant starts after it)")
    for problem in plan.problems:
        click.echo(f"problem: {problem}", err=True)


def _unlabelled_line(texts: UnlabelledTexts, given: dict[str, list[str]]) -> str:
    source = texts.source + (f" ({texts.max_rows} rows at most)" if texts.max_rows else "")
    if not given:
        return f"{source}, taken by no candidate step (only techniques that declare unlabelled_texts use them)"
    steps = "; ".join(f"every {technique} step ({', '.join(labels)})" for technique, labels in given.items())
    return f"{source}, given to {steps}"


def run_auto(
    spec: AutoSpec, *, plugins: Any, plan_only: bool, as_json: bool, quiet: bool, force: bool, verbose: bool = False
) -> None:
    """Plan, print, and (unless ``plan_only``) run the study; exits with the documented code."""
    from slimkit.auto import plan_auto
    from slimkit.hardware import probe

    plan = plan_auto(spec, plugins, probe(cuda=spec.device in ("auto", "cuda")))
    if as_json and plan_only:
        click.echo(json.dumps(plan.as_dict(), indent=2))
    elif not as_json:
        print_auto_plan(plan)
    if plan.study is None:
        sys.exit(ExitCode.PLAN_REFUSED)
    if plan_only:
        _check_variants(plan, plugins, as_json)
        return
    from slimkit.console import LOG_FILE, libraries_to_log
    from slimkit.report import render_markdown
    from slimkit.study.runner import run_study

    with libraries_to_log(plan.study.run_dir / LOG_FILE, verbose=verbose) as terminal:
        progress = not (quiet or as_json)
        result = run_study(
            plan.study, plugins=plugins, force=force, skip_invalid=True, show_progress=progress, console=terminal
        )
    if as_json:
        click.echo(json.dumps(result.results.document(), indent=2, default=str))
    else:
        if not quiet:
            click.echo(render_markdown(result.results))
        _print_chosen(result.results, result.results_path)
    sys.exit(result.exit_code)


def _check_variants(plan: AutoPlan, plugins: Any, as_json: bool) -> None:
    """Plan every variant as ``slimkit study --plan`` does; exit 3 when one cannot run."""
    from slimkit.study.runner import plan_study

    assert plan.study is not None
    study_plan = plan_study(plan.study, plugins=plugins)
    for v in study_plan.variants:
        for problem in v.problems:
            click.echo(f"problem: variant {v.name}: {problem}", err=True)
    if not study_plan.ok:
        sys.exit(ExitCode.PLAN_REFUSED)
    if not as_json:
        click.echo("Every candidate can run.")


def _print_chosen(results: Any, results_path: Path) -> None:
    chosen = results.selection.chosen if results.selection else None
    found = next((a for a in results.artifacts if a.label == chosen), None)
    if found is None:
        click.echo(f"No variant was chosen. Results: {results_path}")
        return
    model = (results_path.parent / found.path).resolve()
    click.echo(f"Chosen: {chosen} ({found.format}) at {os.path.relpath(model)}")
    click.echo(f"Report: {os.path.relpath(results_path.parent / 'report.md')}")


def toml_value(value: Any) -> str:
    """A TOML value for the plain data an AutoSpec holds (strings, numbers, booleans, lists, tables)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a valid TOML basic string
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{json.dumps(k)} = {toml_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"no TOML form for {type(value).__name__}")


def write_auto_file(data: dict[str, Any], path: Path) -> None:
    """Write the pipeline file ``compress`` ran (top-level keys, then the task table), atomically."""
    from slimkit.artifacts import write_text_atomic

    lines = ["# Written by `slimkit compress`; run it again with `slimkit run` on this file."]
    lines += [f"{k} = {toml_value(v)}" for k, v in data.items() if not isinstance(v, dict)]
    for key, table in data.items():
        if isinstance(table, dict):
            lines += ["", f"[{key}]", *(f"{k} = {toml_value(v)}" for k, v in table.items())]
    write_text_atomic(path, "\n".join(lines) + "\n")


def _from(run_dir: Path, path: Path) -> str:
    """A path given on the command line, written relative to the run folder (where the file lives)."""
    return os.path.relpath(path.resolve(), run_dir.resolve())


def compress_file_data(model: str, options: dict[str, Any]) -> tuple[dict[str, Any], Path]:
    """The ``recipe = "auto"`` file's table from ``compress``'s arguments, and the run folder."""
    from slimkit.errors import SlimkitError

    stem = Path(model).stem if Path(model).suffix == ".gguf" else Path(model.rstrip("/")).name
    name = options["name"] or "compress-" + "".join(c if c.isalnum() or c in "._-" else "-" for c in stem)
    run_dir = options["output"] or Path("runs") / name
    task: dict[str, Any] = {"preset": options["preset"]} if options["preset"] else {}
    if options["data"] or options["eval_file"]:
        if not (options["data"] and options["eval_file"]):
            raise SlimkitError("--data and --eval go together: name the training file and the held-out file")
        task["data_files"] = {"train": _from(run_dir, options["data"]), "eval": _from(run_dir, options["eval_file"])}
        task["eval_split"] = "eval"
    if not task:
        raise SlimkitError("no data: give --data TRAIN --eval HELD_OUT, or --task PRESET")
    for key in ("text_column", "text_pair_column", "label_column", "problem"):
        if options[key]:
            task[key] = options[key]
    if options["label_columns"]:
        task |= {"label_columns": options["label_columns"].split(","), "label_format": "binary_columns"}
    source = _from(run_dir, Path(model)) if Path(model).exists() else model
    model_table = {"source": source, "format": options["model_format"]} if options["model_format"] else source
    data: dict[str, Any] = {"name": name, "model": model_table, "recipe": "auto", "goal": options["goal"]}
    data |= {"budget": options["budget"], "device": options["device"], "finetune": options["finetune"]}
    data["output_dir"] = "."
    if options["time_budget"]:
        data["time_budget"] = options["time_budget"]
    if options["store_dir"]:
        from slimkit.remote_store import is_url

        store = options["store_dir"]
        data["store_dir"] = store if is_url(store) else _from(run_dir, Path(store))
    if options["epochs"]:
        data["train"] = {"epochs": options["epochs"]}
    if options["unlabelled"]:
        data["unlabelled"] = _unlabelled_table(run_dir, options)
    elif options["unlabelled_column"] or options["unlabelled_rows"]:
        raise SlimkitError("--unlabelled-column and --unlabelled-rows go with --unlabelled: name the texts")
    data["task"] = task
    return data, run_dir


def _unlabelled_table(run_dir: Path, options: dict[str, Any]) -> dict[str, Any]:
    """``--unlabelled``: a file of texts (written relative to the run folder), or a task preset's name."""
    from slimkit.errors import SlimkitError

    value = options["unlabelled"]
    path = Path(value)
    if path.is_file():
        table: dict[str, Any] = {"data_file": _from(run_dir, path)}
    elif path.suffix or len(path.parts) > 1:
        raise SlimkitError(
            f"--unlabelled: no such file {value}", fix="name a file of texts, or a task preset such as goemotions"
        )
    else:
        table = {"preset": value}
    if options["unlabelled_column"]:
        if "preset" in table or path.suffix.lower() == ".txt":
            raise SlimkitError(
                f"--unlabelled-column: {value} has no columns (a preset's texts, or a .txt of one text per line)",
                fix="drop --unlabelled-column, or name a CSV/TSV/JSON/Parquet file",
            )
        table["text_column"] = options["unlabelled_column"]
    if options["unlabelled_rows"]:
        table["max_rows"] = options["unlabelled_rows"]
    return table
