"""The package layout: layers import only the layers below them, and the public
surface never loses a name.

* Layering: every module under ``gradopt/`` is parsed with :mod:`ast`, mapped to
  its layer by its folder, and each of its imports of ``gradopt`` is checked
  against the table in ``docs/architecture.md``.
* Public surface: the sorted public names of each public module are compared
  with ``tests/public_api.txt``. A name may only be added deliberately
  (regenerate the file with ``python -m tests.test_layout --write``); a move that
  drops one fails here.
"""

from __future__ import annotations

import ast
import importlib
import sys
import types
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "gradopt"
API_FILE = Path(__file__).with_name("public_api.txt")

# Layer of each top-level folder (or module) of gradopt, and what it may import.
LAYERS: dict[str, set[str]] = {
    "core": set(),
    "schedules": {"core"},
    "transforms": {"core", "schedules"},
    "optimizers": {"core", "schedules", "transforms"},
    "training": {"core"},
    "data": {"core"},
    "compat": {"core", "schedules", "transforms", "optimizers", "compat"},
    "distributed": {"core", "schedules", "transforms", "optimizers", "distributed"},
    "testing": {"core", "schedules", "transforms", "optimizers", "testing"},
}

PUBLIC_MODULES = (
    "gradopt",
    "gradopt.schedules",
    "gradopt.data",
    "gradopt.compat",
    "gradopt.compat.torch",
    "gradopt.compat.keras",
    "gradopt.distributed",
    "gradopt.distributed.launch",
    "gradopt.testing",
    "gradopt.testing.strategies",
)


def _layer_of(module: str) -> str | None:
    """``gradopt.transforms._moments`` -> ``transforms``; the package face -> None."""
    parts = module.split(".")
    if len(parts) < 2:
        return None
    return parts[1]


def _modules() -> list[tuple[str, Path]]:
    out = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(ROOT).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out.append((".".join(parts), path))
    return out


def _gradopt_imports(module: str, path: Path) -> list[str]:
    """Absolute names of the gradopt modules that ``path`` imports."""
    tree = ast.parse(path.read_text())
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            if name == "gradopt":
                # ``from gradopt import x``: x may be a submodule (``compat``).
                found += [f"gradopt.{a.name}" for a in node.names]
            else:
                found.append(name)
    return [n for n in found if n == "gradopt" or n.startswith("gradopt.")]


def _is_module(name: str) -> bool:
    return importlib.util.find_spec(name) is not None if name.count(".") else True


def test_every_module_belongs_to_a_layer():
    orphans = [m for m, _ in _modules() if m != "gradopt" and _layer_of(m) not in LAYERS]
    assert not orphans, (
        f"modules outside the layer table: {orphans}. Put them in one of the folders "
        f"{sorted(LAYERS)} (see docs/architecture.md), or add the folder to LAYERS here "
        "and to the table in docs/architecture.md."
    )


@pytest.mark.parametrize("module,path", _modules(), ids=lambda x: str(x))
def test_a_layer_imports_only_the_layers_below_it(module, path):
    if module == "gradopt":
        return
    layer = _layer_of(module)
    allowed = LAYERS[layer] | {layer}
    bad = []
    for name in _gradopt_imports(module, path):
        target = _layer_of(name)
        if name == "gradopt" or (name.count(".") == 1 and not _is_module(name)):
            bad.append(f"{name} (the package face)")
        elif target not in allowed:
            bad.append(f"{name} (layer {target!r})")
    assert not bad, (
        f"{module} (layer {layer!r}) imports {bad}; it may import only "
        f"{sorted(allowed)}. Move the shared code down a layer, or import the "
        "private module that defines the name instead of the package."
    )


def public_surface() -> dict[str, list[str]]:
    """Sorted public names of each public module."""
    surface = {}
    for name in PUBLIC_MODULES:
        module = importlib.import_module(name)
        names = getattr(module, "__all__", None)
        if names is None:
            names = [
                n
                for n, v in vars(module).items()
                if not n.startswith("_")
                and not isinstance(v, types.ModuleType)
                and getattr(v, "__module__", name) == name
            ]
        surface[name] = sorted(names)
    return surface


def _format(surface: dict[str, list[str]]) -> str:
    lines = []
    for module, names in surface.items():
        lines += [f"{module}.{n}" for n in names]
    return "\n".join(lines) + "\n"


def test_the_public_surface_matches_the_checked_in_list():
    want = set(API_FILE.read_text().split())
    have = set(_format(public_surface()).split())
    dropped = sorted(want - have)
    added = sorted(have - want)
    assert not dropped, f"public names no longer importable: {dropped}"
    assert not added, (
        f"new public names {added} are not in {API_FILE.name}; if they are meant to be "
        "public, regenerate it with `python -m tests.test_layout --write`."
    )


def test_every_listed_name_is_importable_from_its_module():
    for line in API_FILE.read_text().split():
        module, _, name = line.rpartition(".")
        while module not in PUBLIC_MODULES:  # names of a submodule's members
            module, _, rest = module.rpartition(".")
            name = f"{rest}.{name}"
        obj = importlib.import_module(module)
        for part in name.split("."):
            assert hasattr(obj, part), f"{line} is listed but not importable"
            obj = getattr(obj, part)


if __name__ == "__main__":
    if sys.argv[1:] == ["--write"]:
        API_FILE.write_text(_format(public_surface()))
        print(f"wrote {API_FILE}")
    else:
        print(_format(public_surface()), end="")
