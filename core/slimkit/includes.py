"""``extends``: a pipeline or study file that starts from another file and states only what differs.

``extends = "base.toml"`` (or a list, merged in order) reads the named files and merges the file's
own table over theirs:

- tables merge key by key, recursively; any other value of the extending file (a number, a
  string, an array) replaces the base's;
- the step lists (a pipeline's ``steps``, a study's ``base``) are joined: the base's steps first,
  then the extending file's, except that a step labelled like a base step (the same ``name``, or
  technique when unnamed) replaces that step where it stands. Two steps with one label are an
  error in a single file, so this gives them the only meaning they can have;
- a study that extends a pipeline file studies that pipeline: the pipeline's steps become the
  first base steps and its ``baseline``, which a study does not have, must be the last of them
  (a study's baseline is the output of its base steps).

A base file sits in the same folder as the file that extends it, so every relative path in it
(``store_dir``, a task's data files, ``plugins``, a local ``model.source``) means what it means in
the extending file: fields such as ``model.source`` or ``task.dataset`` can hold a path or a name,
so paths cannot be rewritten safely when a file moves. Files may mix formats (a TOML file can
extend a YAML one); chains are followed, and a cycle is refused, naming the files.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from slimkit.errors import SpecError

EXTENDS = "extends"
# Top-level lists of steps, joined rather than replaced.
STEP_LISTS = ("steps", "base")
# Top-level keys only a study file has.
STUDY_KEYS = ("base", "blocks", "variants", "search", "executor")

Kind = Literal["pipeline", "study"]
Reader = Callable[[Path], dict[str, Any]]


def resolve_extends(path: Path, read: Reader, *, kind: Kind | None = None) -> dict[str, Any]:
    """The table of ``path`` with the files it extends merged in; ``read`` parses one file.

    ``kind`` is what the file is loaded as: a pipeline refuses to extend a study file, and a study
    takes the steps of a pipeline file it extends as base steps. None merges without either rule.
    Raises SpecError (one line, naming the file at fault and the fix).
    """
    own = read(path)
    if EXTENDS not in own:
        return own
    merged: dict[str, Any] = {}
    for base_path in _base_paths(own.pop(EXTENDS), path, (_identity(path),)):
        base = _resolved(base_path, read, (_identity(path), _identity(base_path)))
        if kind == "study":
            base = _as_study_base(base, base_path, path)
        elif kind == "pipeline":
            _refuse_study(base, base_path, path)
        merged = merge(merged, base)
    return merge(merged, own)


def merge(base: dict[str, Any], own: dict[str, Any], *, top: bool = True) -> dict[str, Any]:
    """``own`` over ``base``: tables merge recursively, step lists join, other values replace."""
    out = dict(base)
    for key, value in own.items():
        if key not in out:
            out[key] = value
        elif top and key in STEP_LISTS:
            out[key] = merge_steps(out[key], value)
        elif isinstance(value, dict) and isinstance(out[key], dict):
            out[key] = merge(out[key], value, top=False)
        else:
            out[key] = value
    return out


def merge_steps(base: Any, own: Any) -> Any:
    """The base's steps, then the own steps; an own step labelled like a base step replaces it."""
    if not isinstance(base, list) or not isinstance(own, list):
        return own  # not a list of steps: validation names the field
    out = list(base)
    at = {label: i for i, step in enumerate(base) if (label := step_label(step)) is not None}
    for step in own:
        label = step_label(step)
        if label is not None and label in at:
            out[at.pop(label)] = step  # popped: a second step of that label is appended, a duplicate
        else:
            out.append(step)
    return out


def step_label(step: Any) -> str | None:
    """The label a step is known by (as ``StepSpec.label``), or None for what is not a step table."""
    if not isinstance(step, dict):
        return None
    label = step.get("name") or step.get("technique") or step.get("stage")
    return label if isinstance(label, str) else None


def _resolved(path: Path, read: Reader, chain: tuple[Path, ...]) -> dict[str, Any]:
    own = read(path)
    if EXTENDS not in own:
        return own
    merged: dict[str, Any] = {}
    for base_path in _base_paths(own.pop(EXTENDS), path, chain):
        merged = merge(merged, _resolved(base_path, read, (*chain, _identity(base_path))))
    return merge(merged, own)


def _identity(path: Path) -> Path:
    try:
        return path.resolve()
    except (OSError, RuntimeError):  # a symlink loop; reading the file reports it
        return path.absolute()


def _base_paths(value: Any, path: Path, chain: tuple[Path, ...]) -> list[Path]:
    """The files named by ``extends`` in ``path``, each checked: a file, beside it, not in the chain."""
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, list) or not all(isinstance(n, str) and n.strip() for n in names):
        raise SpecError(
            [f'{EXTENDS}: {value!r} is not a file name (fix: {EXTENDS} = "base.toml", or a list of file names)'],
            source=str(path),
        )
    folder = _identity(path).parent
    paths = []
    for name in names:
        candidate = path.parent / name
        try:
            found = candidate.is_file()
        except (OSError, ValueError):  # a name the OS cannot take (a NUL byte, too long)
            found = False
        if not found:
            raise SpecError(
                [f"{EXTENDS}: no such file: {name!r} (fix: name a file in {folder}, the folder of this file)"],
                source=str(path),
            )
        identity = _identity(candidate)
        if identity.parent != folder:
            raise SpecError(
                [
                    f"{EXTENDS}: {name!r} is not in this file's folder; relative paths in a base file "
                    f"resolve against the folder of the file that extends it (fix: move {identity.name} "
                    f"into {folder})"
                ],
                source=str(path),
            )
        if identity in chain:
            cycle = " -> ".join(p.name for p in (*chain[chain.index(identity) :], identity))
            raise SpecError(
                [f"{EXTENDS}: the files extend each other in a cycle: {cycle} (fix: remove one of these {EXTENDS})"],
                source=str(path),
            )
        paths.append(candidate)
    return paths


def _refuse_study(base: dict[str, Any], base_path: Path, path: Path) -> None:
    study_keys = [k for k in STUDY_KEYS if k in base]
    if study_keys:
        raise SpecError(
            [
                f"{EXTENDS}: {base_path.name} is a study file (it has {study_keys[0]!r}); a pipeline "
                f"extends only pipeline files (fix: extend the pipeline the study extends, or a file "
                f"without study fields)"
            ],
            source=str(path),
        )


def _as_study_base(base: dict[str, Any], base_path: Path, path: Path) -> dict[str, Any]:
    """A pipeline file's table as a study's base: its steps become base steps, its baseline goes."""
    if "steps" not in base and "baseline" not in base:
        return base
    base = dict(base)
    steps = base.pop("steps", [])
    baseline = base.pop("baseline", None)
    last = step_label(steps[-1]) if isinstance(steps, list) and steps else "source"
    if baseline is not None and baseline != last:
        raise SpecError(
            [
                f"{EXTENDS}: {base_path.name} is a pipeline whose baseline {baseline!r} is not its last "
                f"step ({last!r}); a study's baseline is the output of its base steps, which are that "
                f"pipeline's steps (fix: extend a pipeline whose baseline is its last step)"
            ],
            source=str(path),
        )
    if "base" in base:
        base["base"] = merge_steps(steps, base["base"])
    else:
        base["base"] = steps
    return base
