"""``slimkit new-plugin NAME``: a ready plugin distribution, from the templates in plugin_template/.

The files are ``string.Template``s (``$name``, ``$module``...), so the core needs no template
engine. What they make passes its own tests as generated: slimkit's conformance kit on its one
technique, and a test of what the technique does.
"""

from __future__ import annotations

import re
from importlib.resources import files
from pathlib import Path
from string import Template

from slimkit.errors import SlimkitError
from slimkit.registry_index import compatible_range, core_version

NAME = re.compile(r"^[a-z][a-z0-9]*(?:[-_][a-z0-9]+)*$")
# Template file -> its place in the new distribution ("package" is the module's folder).
FILES = {
    "pyproject.toml.tmpl": "pyproject.toml",
    "README.md.tmpl": "README.md",
    "package/__init__.py.tmpl": "{module}/__init__.py",
    "package/prune.py.tmpl": "{module}/prune.py",
    "tests/test_package.py.tmpl": "tests/test_{module}.py",
}


def names(name: str) -> dict[str, str]:
    """What the templates fill in: the plugin's name, distribution, module and technique namespace."""
    if not NAME.match(name):
        raise SlimkitError(
            f"{name!r} is not a plugin name", fix="use lower-case letters and digits, words joined by '-' (e.g. 'acme')"
        )
    namespace = name.replace("-", "_")
    return {
        "name": name,
        "distribution": f"slimkit-{name}",
        "module": f"slimkit_{namespace}",
        "namespace": namespace,
        "core_range": compatible_range(core_version()),
    }


def create_plugin(name: str, parent: Path) -> Path:
    """Write ``slimkit-NAME/`` under ``parent`` and return it; an existing folder is never touched."""
    values = names(name)
    target = parent / values["distribution"]
    if target.exists():
        raise SlimkitError(f"{target} already exists", fix="choose another name or folder (--directory)")
    templates = files("slimkit") / "plugin_template"
    rendered = {
        Path(dest.format(**values)): Template((templates / source).read_text(encoding="utf-8")).substitute(values)
        for source, dest in FILES.items()
    }
    for relative, text in rendered.items():
        path = target / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return target
