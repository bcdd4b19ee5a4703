"""The ``slimkit`` command. Each command imports what it needs when it runs, so --help stays fast."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from slimkit.errors import ExitCode, PlanRefused, SlimkitError, SpecError


class SlimkitGroup(click.Group):
    """Turns user errors into one line on stderr and a documented exit code, never a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except SpecError as exc:
            for line in exc.lines():
                click.echo(f"Error: {line}", err=True)
            sys.exit(exc.exit_code)
        except PlanRefused as exc:
            what = "study" if ctx.invoked_subcommand == "study" else "pipeline"
            click.echo(f"Error: the {what} cannot run: {len(exc.problems)} problem(s)", err=True)
            for problem in exc.problems:
                click.echo(f"problem: {problem}", err=True)
            sys.exit(exc.exit_code)
        except SlimkitError as exc:
            click.echo(f"Error: {exc}", err=True)
            sys.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("Interrupted: finished steps are kept; run the same command again to resume.", err=True)
            sys.exit(ExitCode.INTERRUPTED)


def _emit_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


@click.group(cls=SlimkitGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="slimkit")
def cli() -> None:
    """Make transformer classifiers cheaper to run, and prove it.

    slimkit runs a pipeline of compression steps (prune, distill, quantize, export) that installed
    plugins provide, and measures every step against the baseline in one session.

    \b
    Start here:
      slimkit plugins --available     plugins you can install
      slimkit techniques              techniques installed now
      slimkit plan pipeline.toml      check a pipeline before any compute
      slimkit run pipeline.toml       run it; results.json and report.md in runs/<name>
      slimkit report runs/<name>      print the report of a run again
      slimkit study study.toml        compare many variants, choose one within an accuracy budget
      slimkit package RUN -o DIR      the chosen model as one folder, with a model card
      slimkit compress MODEL --task T one command: the plugins' recipes for MODEL, the best one chosen

    \b
    Environment:
      SLIMKIT_LOAD_PLUGINS=           load no plugins ("a,b" loads only those)
      SLIMKIT_TRACE_HOOKS=1           print every hook call
      SLIMKIT_CACHE=DIR               where converted source models are cached
      SLIMKIT_TRUST_LOCAL_PLUGINS=1   import pipelines' local plugin files (as --trust-local-plugins)
    """


@cli.command()
@click.option("--all", "show_all", is_flag=True, help="Also list built-in and skipped plugins.")
@click.option("--available", is_flag=True, help="List the plugins in the registry index instead.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def plugins(show_all: bool, available: bool, as_json: bool) -> None:
    """List installed plugins, their versions, techniques and status.

    A plugin that fails to import is listed as 'failed' or 'unavailable' with its error; it never
    stops slimkit from working. Set SLIMKIT_LOAD_PLUGINS= to load none while you fix it.
    """
    if available:
        from slimkit.registry_index import load_index

        index = load_index()
        entries = [e.model_dump() for e in index.plugin]
        if as_json:
            _emit_json(entries)
            return
        if not entries:
            click.echo("No registry index found (set SLIMKIT_REGISTRY to a plugins.toml).")
        for e in entries:
            click.echo(f"{e['name']:<14} {e['distribution']:<22} {e['summary']}")
            click.echo(f"{'':<14} techniques: {', '.join(e['techniques'])}; hardware: {', '.join(e['hardware'])}")
        return
    from slimkit.plugins import build_plugins

    every = list(build_plugins().records.values())
    records = every if show_all else [r for r in every if r.origin != "builtin" and r.status != "skipped"]
    if as_json:
        _emit_json([r.as_dict() for r in records])
        return
    skipped = [r.name for r in every if r.status == "skipped"]
    if not records and skipped:
        click.echo(f"No plugins loaded: SLIMKIT_LOAD_PLUGINS skips {', '.join(skipped)} (--all lists them).")
    elif not records:
        click.echo("No plugins installed. `slimkit plugins --available` lists plugins you can install.")
    for r in records:
        version = f" {r.version}" if r.version else ""
        click.echo(f"{r.name} ({r.distribution or r.origin}{version}): {r.status}")
        if r.techniques:
            click.echo(f"  techniques: {', '.join(r.techniques)}")
        if r.error:
            click.echo(f"  error: {r.error}")


@cli.command()
@click.option(
    "--stage",
    type=click.Choice(["train", "prune", "distill", "quantize", "export"]),
    help="Only techniques of this stage.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON (with each config's JSON Schema).")
def techniques(stage: str | None, as_json: bool) -> None:
    """List installed techniques with their formats, ordering and hardware."""
    from slimkit.plugins import build_plugins

    items = [t for t in build_plugins().techniques.all() if stage is None or t.stage.value == stage]
    if as_json:
        _emit_json([t.describe() for t in items])
        return
    if not items:
        click.echo("No techniques installed. `slimkit plugins --available` lists plugins that provide some.")
    for t in items:
        produces = t.produces or "same"
        click.echo(f"{t.name} [{t.stage.value}] {'/'.join(t.consumes)} -> {produces}  ({t.plugin})")
        click.echo(f"  {t.summary}")
        relations = [
            f"after {', '.join(t.after)}" if t.after else "",
            f"before {', '.join(t.before)}" if t.before else "",
        ]
        if any(relations):
            click.echo(f"  order: {'; '.join(r for r in relations if r)}")
        hw = t.hardware
        extra = f"; faster with {', '.join(hw.cpu_features_beneficial)}" if hw.cpu_features_beneficial else ""
        click.echo(f"  runs on: {', '.join(hw.devices)}{extra}" + (f"; {hw.notes}" if hw.notes else ""))
        if t.families is not None:
            click.echo(f"  families: {t.supported_families()}")


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def hardware(as_json: bool) -> None:
    """Show the CPU, its ISA flags, memory and CUDA devices, as the planner sees them."""
    from slimkit.hardware import probe

    hw = probe()
    if as_json:
        _emit_json(hw.model_dump(mode="json"))
        return
    click.echo(f"CPU: {hw.cpu_model} ({hw.arch}), {hw.physical_cores} physical / {hw.logical_cores} logical cores")
    click.echo(f"ISA flags: {', '.join(hw.cpu_flags) or 'none of interest'}")
    if hw.memory_bytes:
        click.echo(f"Memory: {hw.memory_bytes / 2**30:.1f} GiB")
    if hw.cuda:
        for d in hw.cuda:
            click.echo(f"CUDA {d.index}: {d.name}, capability {d.capability[0]}.{d.capability[1]}")
    else:
        click.echo("CUDA: none" + ("" if hw.cuda_checked else " (torch not installed, not checked)"))


TRUST_HELP = "Allow the local plugin files the file names to be imported (their code runs)."
QUIET_HELP = "Only errors and the final line: no progress, no report (report.md and report.html are still written)."
VERBOSE_HELP = (
    "Show the libraries' own output too (warnings, logs, progress bars); by default it goes to the run's log.txt."
)


def _plugins(trust_local: bool) -> Any:
    from slimkit.plugins import build_plugins

    return build_plugins(trust_local=trust_local)


def _print_plan(plan: Any) -> None:
    click.echo(f"Pipeline {plan.pipeline.name!r} on {plan.device}; source format {plan.source_format}")
    for s in plan.steps:
        click.echo(
            f"  {s.index}. {s.name}: {s.technique.name} [{s.technique.stage.value}] "
            f"{s.input_format} -> {s.output_format}  ({s.technique.plugin})"
        )
        click.echo(f"     {s.reason}")
    _print_notes(plan.warnings, plan.problems)


def _print_notes(warnings: list[str], problems: list[str]) -> None:
    for w in warnings:
        click.echo(f"warning: {w}")
    for p in problems:
        click.echo(f"problem: {p}", err=True)


SpecT = TypeVar("SpecT")


def sessions_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """--sessions and --session-gap: repeat the whole measurement (docs/measurement.md#sessions)."""
    command = click.option(
        "--session-gap",
        type=click.FloatRange(min=0),
        metavar="SECONDS",
        help="Pause between two measurement sessions (overrides measure.session_gap_s; default 60).",
    )(command)
    return click.option(
        "--sessions",
        type=click.IntRange(1, 100),
        help="Measure everything N times, spaced apart; ratios are the median across sessions, with their range.",
    )(command)


def measure_overrides(sessions: int | None, gap: float | None) -> dict[str, Any]:
    """The [measure] fields that --sessions and --session-gap set."""
    overrides: dict[str, Any] = {"sessions": sessions, "session_gap_s": gap}
    return {k: v for k, v in overrides.items() if v is not None}


def with_measure(spec: SpecT, overrides: dict[str, Any]) -> SpecT:
    """A pipeline, study or auto spec whose [measure] table has ``overrides``."""
    if not overrides:
        return spec
    model: Any = spec  # Pipeline, Study or AutoSpec: each has a MeasureSpec in `measure`
    return model.model_copy(update={"measure": model.measure.model_copy(update=overrides)})  # type: ignore[no-any-return]


@cli.command()
@click.argument("pipeline_file", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON.")
@click.option("--trust-local-plugins", is_flag=True, help=TRUST_HELP)
def plan(pipeline_file: Path, as_json: bool, trust_local_plugins: bool) -> None:
    """Check a pipeline file before any compute: techniques, order, formats, hardware, configs,
    and the task's local data files.

    Runs no code from the pipeline's local plugin files unless --trust-local-plugins is given.
    Exit code 3 when the pipeline cannot run; every problem is listed.
    """
    from slimkit.cli_auto import auto_spec_from_file, run_auto
    from slimkit.planner import plan_pipeline
    from slimkit.spec import load_pipeline

    if (auto := auto_spec_from_file(pipeline_file)) is not None:
        plugins = _plugins(trust_local_plugins)
        run_auto(auto, plugins=plugins, plan_only=True, as_json=as_json, quiet=False, force=False)
        return
    result = plan_pipeline(load_pipeline(pipeline_file), plugins=_plugins(trust_local_plugins))
    if as_json:
        _emit_json(result.as_dict())
    else:
        _print_plan(result)
        if result.ok:
            click.echo("The plan is valid.")
    if not result.ok:
        sys.exit(ExitCode.PLAN_REFUSED)


@cli.command()
@click.argument("pipeline_file", type=click.Path(path_type=Path))
@click.option("--force", is_flag=True, help="Recompute every step instead of reusing finished ones.")
@click.option("-o", "--output", type=click.Path(path_type=Path), help="Run directory (default runs/<name>).")
@click.option("--json", "as_json", is_flag=True, help="Print results.json to stdout when done.")
@click.option("-q", "--quiet", is_flag=True, help=QUIET_HELP)
@click.option("-v", "--verbose", is_flag=True, help=VERBOSE_HELP)
@click.option("--trust-local-plugins", is_flag=True, help=TRUST_HELP)
@sessions_options
def run(
    pipeline_file: Path,
    force: bool,
    output: Path | None,
    as_json: bool,
    quiet: bool,
    verbose: bool,
    trust_local_plugins: bool,
    sessions: int | None,
    session_gap: float | None,
) -> None:
    """Run a pipeline: every step, then measure the baseline and each result in one session.

    Finished steps are reused when the same pipeline runs again, so an interrupted run resumes.
    Exit codes (results.json says the same): 0 all done; 1 a step or a measurer failed (earlier
    results are kept and reported); 2 bad input; 3 the plan was refused; 130 interrupted.
    """
    from slimkit.cli_auto import auto_spec_from_file, run_auto
    from slimkit.console import LOG_FILE, libraries_to_log
    from slimkit.report import render_markdown
    from slimkit.results import load_results
    from slimkit.runner import run_pipeline
    from slimkit.spec import load_pipeline

    overrides = measure_overrides(sessions, session_gap)
    if (auto := auto_spec_from_file(pipeline_file)) is not None:
        if output is not None:
            auto = auto.model_copy(update={"output_dir": usable_output(output)})
        plugins = _plugins(trust_local_plugins)
        auto = with_measure(auto, overrides)
        run_auto(auto, plugins=plugins, plan_only=False, as_json=as_json, quiet=quiet, force=force, verbose=verbose)
    pipeline = with_measure(load_pipeline(pipeline_file), overrides)
    if output is not None:
        pipeline = pipeline.model_copy(update={"output_dir": usable_output(output)})
    plugins = _plugins(trust_local_plugins)
    with libraries_to_log(pipeline.run_dir / LOG_FILE, verbose=verbose) as terminal:
        progress = not quiet and not as_json
        result = run_pipeline(pipeline, plugins=plugins, force=force, show_progress=progress, console=terminal)
    results = load_results(result.results_path)
    if as_json:
        _emit_json(results.document())
    else:
        if not quiet:
            click.echo(render_markdown(results))
        click.echo(f"Results: {result.results_path}")
    sys.exit(result.exit_code)


def usable_output(output: Path) -> Path:
    """The -o folder, resolved; one line naming it when it is a file or cannot be written."""
    import os

    path = output.resolve()
    existing = next(p for p in (path, *path.parents) if p.exists())  # "/" at least
    if not existing.is_dir():
        raise SlimkitError(f"-o {output}: {existing} is a file, not a folder", fix="name a folder (created if missing)")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise SlimkitError(f"-o {output}: {existing} cannot be written", fix="name a folder you can write to")
    return path


def _print_study_plan(study_plan: Any) -> None:
    study = study_plan.study
    click.echo(
        f"Study {study.name!r}: {len(study_plan.variants)} variant(s), strategy {study.search.strategy}, "
        f"objective {study.search.objective}, budget {study.search.budget.max_drop_points:g} point(s)"
    )
    for v in study_plan.variants:
        state = "ok" if not v.problems else f"{len(v.problems)} problem(s)"
        click.echo(f"  {v.name}: {' -> '.join(s.label for s in v.pipeline.steps) or '(source)'}  [{state}]")
    warnings: list[str] = []
    for v in study_plan.variants:
        warnings += [w for w in v.warnings if w not in warnings]
    _print_notes(warnings, study_plan.problems)


@cli.command()
@click.argument("study_file", type=click.Path(path_type=Path))
@click.option("--plan", "plan_only", is_flag=True, help="Validate and plan every variant; build nothing.")
@click.option("--force", is_flag=True, help="Rebuild every variant and recompute its steps.")
@click.option("--remeasure", is_flag=True, help="Measure again even when the same models were measured.")
@click.option("--skip-invalid", is_flag=True, help="Run the variants that can run; list the others as invalid.")
@click.option("-o", "--output", type=click.Path(path_type=Path), help="Study directory (default runs/<name>).")
@click.option(
    "--time-budget",
    type=click.FloatRange(min=0, min_open=True),
    metavar="SECONDS",
    help="Stop starting new variants after this long (overrides search.time_budget_s); the best so far is reported.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the plan or results.json as JSON.")
@click.option("-q", "--quiet", is_flag=True, help=QUIET_HELP)
@click.option("-v", "--verbose", is_flag=True, help=VERBOSE_HELP)
@click.option("--trust-local-plugins", is_flag=True, help=TRUST_HELP)
@sessions_options
def study(
    study_file: Path,
    plan_only: bool,
    force: bool,
    remeasure: bool,
    skip_invalid: bool,
    output: Path | None,
    time_budget: float | None,
    as_json: bool,
    quiet: bool,
    verbose: bool,
    trust_local_plugins: bool,
    sessions: int | None,
    session_gap: float | None,
) -> None:
    """Run a compression study: build every variant, measure all in one session, choose one.

    Variants share finished steps through the step store; running the command again resumes and
    builds only what is missing. Writes results.json and report.md (with plots) to runs/<name>.
    Exit codes (results.json says the same): 0 done; 1 a variant or a measurer failed; 2 bad input;
    130 interrupted; 3 a variant cannot run
    (use --skip-invalid to run the others).
    """
    from slimkit.study import load_study

    spec = with_measure(load_study(study_file), measure_overrides(sessions, session_gap))
    if output is not None:
        spec = spec.model_copy(update={"output_dir": usable_output(output)})
    plugins = _plugins(trust_local_plugins)
    if time_budget is not None:
        spec = spec.model_copy(update={"search": spec.search.model_copy(update={"time_budget_s": time_budget})})
    if plan_only:
        from slimkit.study.runner import plan_study

        study_plan = plan_study(spec, plugins=plugins)
        if as_json:
            _emit_json(study_plan.as_dict())
        else:
            _print_study_plan(study_plan)
            if study_plan.ok:
                click.echo("Every variant can run.")
        if not study_plan.ok:
            sys.exit(ExitCode.PLAN_REFUSED)
        return
    from slimkit.console import LOG_FILE, libraries_to_log
    from slimkit.report import render_markdown
    from slimkit.study.runner import run_study

    with libraries_to_log(spec.run_dir / LOG_FILE, verbose=verbose) as terminal:
        result = run_study(
            spec,
            plugins=plugins,
            force=force,
            remeasure=remeasure,
            skip_invalid=skip_invalid,
            show_progress=not quiet and not as_json,
            console=terminal,
        )
    if as_json:
        _emit_json(result.results.document())
    else:
        if not quiet:
            click.echo(render_markdown(result.results))
        click.echo(f"Results: {result.results_path}")
    sys.exit(result.exit_code)


@cli.command()
@click.argument("model")
@click.option("--format", "model_format", help="MODEL's format when its name does not say (default: transformers).")
@click.option("--task", "preset", help="A task preset (e.g. semeval2018-ec); --data/--eval replace its files.")
@click.option("--data", type=click.Path(path_type=Path), help="Training file (CSV, TSV, JSON, JSONL, Parquet).")
@click.option(
    "--eval", "eval_file", type=click.Path(path_type=Path), help="Held-out file that accuracy is measured on."
)
@click.option("--text-column", help="Column of the text (default 'text').")
@click.option("--text-pair-column", help="Column of the second text, for sentence pairs.")
@click.option("--label-column", help="Column of the label (names or ids; default 'label').")
@click.option("--label-columns", help="Comma-separated 0/1 columns, one per label (multi-label).")
@click.option("--problem", type=click.Choice(["single_label", "multi_label"]), help="Default: from the labels.")
@click.option("--goal", type=click.Choice(["speed", "size", "memory"]), default="speed", show_default=True)
@click.option(
    "--budget",
    type=click.FloatRange(min=0),
    default=1.0,
    show_default=True,
    help="Points of accuracy the chosen model may lose.",
)
@click.option("--time-budget", help="Stop starting new variants after this long: 3600, 45m, 2h, 1h30m.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda", "mps"]), default="auto", show_default=True)
@click.option(
    "--finetune",
    type=click.Choice(["auto", "yes", "no"]),
    default="auto",
    show_default=True,
    help="'auto': unless the model is already a classifier with named labels.",
)
@click.option(
    "--epochs", type=click.FloatRange(min=0, min_open=True), help="Fine-tuning epochs (over the train recipe's)."
)
@click.option(
    "--unlabelled",
    metavar="FILE|PRESET",
    help="Unlabelled in-domain texts for distillation, labelled by the teacher: a .txt file (one per line), a "
    "CSV/TSV/JSON/Parquet file with a text column, or a task preset's name (its training texts).",
)
@click.option("--unlabelled-column", help="Column of the texts in --unlabelled's file (default 'text').")
@click.option("--unlabelled-rows", type=click.IntRange(min=1), help="A seeded sample of this many unlabelled texts.")
@click.option("--name", help="Run name (default compress-<model>).")
@click.option("-o", "--output", type=click.Path(path_type=Path), help="Run directory (default runs/<name>).")
@click.option(
    "--store-dir",
    help="Step store to share: a folder or an fsspec URL such as s3://bucket/prefix (default <run dir>/steps).",
)
@click.option("--plan", "plan_only", is_flag=True, help="Show what would be tried and why; build nothing.")
@click.option("--force", is_flag=True, help="Rebuild every variant and recompute its steps.")
@click.option("--json", "as_json", is_flag=True, help="Print the plan or results.json as JSON.")
@click.option("-q", "--quiet", is_flag=True, help=QUIET_HELP)
@click.option("-v", "--verbose", is_flag=True, help=VERBOSE_HELP)
@sessions_options
def compress(
    model: str,
    plan_only: bool,
    force: bool,
    as_json: bool,
    quiet: bool,
    verbose: bool,
    sessions: int | None,
    session_gap: float | None,
    **options: Any,
) -> None:
    """Compress MODEL for --goal within --budget points of accuracy, from the installed plugins' recipes.

    Reads the model's family, fine-tunes it first when its head is not trained, builds every recipe
    that fits the family, device and goal (cheapest first, within --time-budget), measures all in one
    session and chooses the best within the budget. Writes runs/<name>/compress.toml (the same run as
    a pipeline file: `slimkit run` it again to resume), results.json and report.md. Exit codes as
    `slimkit study`; 3 when nothing fits (--plan says why).
    """
    from slimkit.cli_auto import AUTO_FILE, auto_spec_from_file, compress_file_data, run_auto, write_auto_file

    data, run_dir = compress_file_data(model, options)
    if overrides := measure_overrides(sessions, session_gap):
        data["measure"] = overrides  # in compress.toml, so `slimkit run` of it measures the same way
    path = usable_output(run_dir) / AUTO_FILE
    write_auto_file(data, path)
    if not as_json:
        click.echo(f"Wrote {os.path.relpath(path)}")
    spec = auto_spec_from_file(path)
    assert spec is not None
    run_auto(
        spec, plugins=_plugins(False), plan_only=plan_only, as_json=as_json, quiet=quiet, force=force, verbose=verbose
    )


@cli.command()
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option(
    "--variant", help="The variant (or a run's step) to package; default: the study's choice, a run's last step."
)
@click.option("-o", "--output", "dest", type=click.Path(path_type=Path), required=True, help="New folder to write.")
def package(run_dir: Path, variant: str | None, dest: Path) -> None:
    """Write one self-contained folder for a measured model: its files, tokenizer, labels, threshold
    and a README.md model card with the figures measured against the baseline.

    An ONNX package runs with slimkit-runtime (onnxruntime, tokenizers, numpy; no torch). A failed or
    unmeasured variant is refused (exit 2).
    """
    from slimkit.package import package as write_package

    written = write_package(run_dir, usable_output(dest), variant)
    click.echo(f"Packaged into {os.path.relpath(written)}: slimkit-package.json, README.md and the model files")


@cli.command()
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print results.json instead of Markdown.")
def report(run_dir: Path, as_json: bool) -> None:
    """Print the Markdown report of a finished (or failed) run or study from its results.json.

    A file of another shape is one line naming the field (exit code 2)."""
    from slimkit.report import render_markdown
    from slimkit.results import load_results

    results = load_results(run_dir)
    if as_json:
        click.echo(json.dumps(results.document(), indent=2))
        return
    click.echo(render_markdown(results))


@cli.command()
@click.option("--technique", help="Print the config schema of this technique instead.")
def schema(technique: str | None) -> None:
    """Print the JSON Schema of pipeline files (or of one technique's config)."""
    if technique:
        from slimkit.plugins import build_plugins

        found = build_plugins().techniques.get(technique)
        if found is None:
            raise SlimkitError(f"unknown technique {technique!r}", fix="`slimkit techniques` lists installed ones")
        _emit_json(found.config.model_json_schema())
        return
    from slimkit.spec import pipeline_json_schema

    _emit_json(pipeline_json_schema())


@cli.command()
@click.argument("name")
@click.option("--dry-run", is_flag=True, help="Print the pip command without running it.")
@click.option("--index-url", metavar="URL", help="Passed to pip: the package index to install from.")
@click.option("--extra-index-url", metavar="URL", multiple=True, help="Passed to pip: another package index.")
@click.option("--find-links", metavar="DIR", multiple=True, help="Passed to pip: a folder or page of wheels.")
def install(
    name: str, dry_run: bool, index_url: str | None, extra_index_url: tuple[str, ...], find_links: tuple[str, ...]
) -> None:
    """Install a plugin named in the registry index.

    From its folder when slimkit runs from a checkout; otherwise by distribution name, in the
    version range of the installed slimkit, which stays as it is.
    """
    import shlex

    from slimkit.registry_index import install_commands, load_index

    index = load_index()
    entry = index.by_name(name)
    if entry is None:
        known = ", ".join(e.name for e in index.plugin) or "none"
        raise SlimkitError(
            f"no plugin named {name!r} in the registry index (known: {known})",
            fix="`slimkit plugins --available` lists them; any other plugin installs with pip",
        )
    pip_args = [*(["--index-url", index_url] if index_url else [])]
    pip_args += [arg for url in extra_index_url for arg in ("--extra-index-url", url)]
    pip_args += [arg for folder in find_links for arg in ("--find-links", folder)]
    for i, command in enumerate(install_commands(entry, index, pip_args)):
        click.echo(shlex.join(command))  # quoted: a version range holds < and >
        if not dry_run and (code := subprocess.call(command)) != 0:
            what = entry.distribution if i == 0 else ", ".join(entry.no_deps)
            raise SlimkitError(
                f"pip could not install {what} (pip exited {code}; its output is above)",
                fix="check the plugin is on your package index, or name one with --index-url or --find-links",
            )


@cli.command("new-plugin")
@click.argument("name")
@click.option(
    "--directory", type=click.Path(file_okay=False, path_type=Path), default=Path("."), show_default=True,
    help="Folder to create slimkit-NAME/ in.",
)  # fmt: skip
def new_plugin(name: str, directory: Path) -> None:
    """Create slimkit-NAME/, a plugin distribution with one technique, its tests and a README.

    Its tests pass as generated: `pip install -e "slimkit-NAME[test]"`, then `pytest` in it.
    """
    from slimkit.new_plugin import create_plugin

    target = create_plugin(name, directory)
    click.echo(f"Created {target}: pip install -e '{target}[test]', then pytest in it.")


def main() -> None:
    cli(prog_name="slimkit")
