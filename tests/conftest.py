"""Test configuration: JAX is made strict, warnings are errors (see pyproject.toml)."""

import sys

import jax
import pytest

jax.config.update("jax_numpy_dtype_promotion", "strict")
jax.config.update("jax_numpy_rank_promotion", "raise")


def pytest_addoption(parser):
    parser.addoption("--runslow", action="store_true", default=False, help="run slow studies")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--runslow"):
        return
    skip = pytest.mark.skip(reason="slow study: run with --runslow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def x64():
    """Enable 64-bit floats for the duration of one test."""
    with jax.enable_x64(True):
        yield


# ----------------------------------------------------------------------------
# Hypothesis profiles: "small" (the default; derandomized, used by `make test`) and
# "fuzz" (`make fuzz`, --hypothesis-profile=fuzz). tests/test_fuzz.py scales its
# examples per test by the profile's max_examples.

from hypothesis import HealthCheck, Phase, settings  # noqa: E402

# No shrinking: every example costs a few eager JAX runs, and the strict xfails of
# tests/test_fuzz.py would shrink on every run. A failure reports its first example.
_COMMON = {
    "database": None,
    "deadline": None,
    "phases": [Phase.explicit, Phase.reuse, Phase.generate],
    "suppress_health_check": [
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.filter_too_much,
    ],
}
settings.register_profile("small", max_examples=1, derandomize=True, **_COMMON)
settings.register_profile("fuzz", max_examples=4, **_COMMON)
settings.load_profile("small")


def pytest_terminal_summary(terminalreporter):
    fuzz = sys.modules.get("test_fuzz") or sys.modules.get("tests.test_fuzz")
    if fuzz is not None and fuzz.EXAMPLES["n"]:
        terminalreporter.write_line(
            f"tests/test_fuzz.py: {fuzz.EXAMPLES['n']} Hypothesis examples run "
            f"(max_examples={settings.default.max_examples} per entry)"
        )
