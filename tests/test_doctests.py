"""Every ``Example:`` in gradopt's docstrings runs as a doctest, under the strict conftest.

Each example starts from an empty namespace, so it must import what it uses: what a
user copies from the docs runs as it is.
"""

import doctest
import importlib
import pkgutil

import pytest

import gradopt


def _modules():
    names = ["gradopt"]
    for info in pkgutil.walk_packages(gradopt.__path__, prefix="gradopt."):
        names.append(info.name)
    return sorted(names)


def _examples():
    finder = doctest.DocTestFinder(exclude_empty=True)
    found = []
    for name in _modules():
        module = importlib.import_module(name)
        for test in finder.find(module, name, globs={}):
            if test.examples and test.name not in {t.name for t in found}:
                found.append(test)
    return found


_EXAMPLES = _examples()
_FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def test_every_module_is_searched_and_examples_are_found():
    assert "gradopt.compat.torch" in _modules()
    assert len(_EXAMPLES) >= 30, [t.name for t in _EXAMPLES]


@pytest.mark.parametrize("test", _EXAMPLES, ids=lambda t: t.name)
def test_docstring_example_runs(test):
    runner = doctest.DocTestRunner(optionflags=_FLAGS)
    out = []
    result = runner.run(test, out=out.append, clear_globs=True)
    assert result.failed == 0, "".join(out)
