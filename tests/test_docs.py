"""The documentation: every public name is in the API reference, and the
getting-started training loop runs as written.

These tests read the Markdown sources under ``docs/`` and the package; they
do not build the site (``make docs`` does, with ``mkdocs build --strict``).
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import re
from pathlib import Path

import jax
import numpy as np
import pytest

import gradopt

DOCS = Path(__file__).resolve().parent.parent / "docs"
API = DOCS / "api"

# Public modules whose names the API reference documents, besides ``gradopt`` itself.
SUBMODULES = (
    "gradopt.schedules",
    "gradopt.data",
    "gradopt.compat.torch",
    "gradopt.compat.keras",
    "gradopt.testing",
    "gradopt.testing.strategies",
    "gradopt.distributed",
)

_DIRECTIVE = re.compile(r"^:::\s+([\w.]+)\s*$", re.MULTILINE)
_IMAGE = re.compile(r"!\[[^\]]*\]\(([^)\s]+)")


def _public_names(module) -> list[str]:
    """``__all__`` if the module defines it, else its public functions and classes."""
    names = getattr(module, "__all__", None)
    if names is not None:
        return list(names)
    return sorted(
        name
        for name, value in vars(module).items()
        if not name.startswith("_")
        and callable(value)
        and getattr(value, "__module__", "").startswith(module.__name__)
    )


def _expected() -> list[str]:
    """Qualified paths of every public name: ``gradopt.adam``, ``gradopt.schedules.cosine``."""
    paths = [f"gradopt.{name}" for name in gradopt.__all__ if name not in _module_names()]
    for module_name in SUBMODULES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError:
            continue  # not written yet; the name check below covers it once it lands
        paths += [f"{module_name}.{name}" for name in _public_names(module)]
    return paths


def _module_names() -> set[str]:
    """Names in ``gradopt.__all__`` that are modules (documented through their members)."""
    return {n for n in gradopt.__all__ if type(getattr(gradopt, n, None)).__name__ == "module"}


def _documented() -> dict[str, Path]:
    found = {}
    for page in sorted(API.glob("*.md")):
        for target in _DIRECTIVE.findall(page.read_text()):
            found[target] = page
    return found


def _resolve(path: str):
    """Import the longest module prefix of ``path`` and get the rest as attributes."""
    parts = path.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ModuleNotFoundError:
            continue
        for attr in parts[i:]:
            obj = getattr(obj, attr)
        return obj
    raise ModuleNotFoundError(path)


def test_every_public_name_is_in_the_api_reference():
    documented = _documented()
    missing = [path for path in _expected() if path not in documented]
    assert not missing, (
        f"{len(missing)} public names have no `::: name` block under docs/api/: {missing}. "
        "Add each to the API page of its group."
    )


def test_every_api_block_names_an_existing_object():
    stale = []
    for path, page in _documented().items():
        try:
            _resolve(path)
        except (AttributeError, ModuleNotFoundError):
            stale.append(f"{path} ({page.name})")
    assert not stale, f"API blocks name objects that do not exist: {stale}"


def test_public_submodules_are_documented_at_all():
    """Guards the test above against a submodule that silently fails to import."""
    documented = _documented()
    for module_name in ("gradopt.schedules", "gradopt.data"):
        if importlib.util.find_spec(module_name) is None:
            pytest.skip(f"{module_name} is not in the package yet")
        assert any(p.startswith(module_name + ".") for p in documented), module_name


def test_images_referenced_by_the_docs_exist():
    broken = []
    for page in DOCS.rglob("*.md"):
        for target in _IMAGE.findall(page.read_text()):
            if "://" not in target and not (page.parent / target).resolve().is_file():
                broken.append(f"{page.relative_to(DOCS)}: {target}")
    assert not broken, f"missing images: {broken}"


def _snippet(page: Path, marker: str) -> str:
    text = page.read_text()
    match = re.search(rf"<!-- test: {re.escape(marker)} -->\s*```python\n(.*?)```", text, re.DOTALL)
    assert match, f"no ```python block after <!-- test: {marker} --> in {page}"
    return match.group(1)


def test_getting_started_training_loop_runs(capsys):
    code = _snippet(DOCS / "getting-started.md", "training-loop")
    assert len([line for line in code.splitlines() if line.strip()]) <= 17
    namespace: dict = {"__name__": "docs_snippet"}
    exec(compile(code, "getting-started.md", "exec"), namespace)  # noqa: S102
    assert "loss" in capsys.readouterr().out
    params = jax.device_get(namespace["params"])
    np.testing.assert_allclose(params["w"], [1.0, -2.0, 0.5], atol=1e-3)
    np.testing.assert_allclose(params["b"], 0.3, atol=1e-3)
    assert float(namespace["value"]) < 1e-5


def test_every_python_block_in_the_docs_parses():
    fence = re.compile(r"^([ \t]*)```python\n(.*?)^\1```", re.DOTALL | re.MULTILINE)
    errors, blocks = [], 0
    for page in sorted(DOCS.rglob("*.md")):
        for indent, code in fence.findall(page.read_text()):
            blocks += 1
            code = "\n".join(line[len(indent) :] for line in code.splitlines())
            try:
                ast.parse(code)
            except SyntaxError as e:
                errors.append(f"{page.relative_to(DOCS)}: {e}")
    assert blocks >= 10, f"found only {blocks} python blocks: is the fence pattern right?"
    assert not errors, errors
