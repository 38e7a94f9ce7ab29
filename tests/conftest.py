"""Test configuration: JAX is made strict, warnings are errors (see pyproject.toml).

Compilation is most of the suite's time (thousands of small XLA programs, each
compiled for a few milliseconds of running). The tests ask XLA's CPU backend
for its classic loop emitters instead of its newer fusion emitters
(``--xla_cpu_use_fusion_emitters=false``): a small program compiles about 1.6x
faster. The flag chooses how XLA emits a fusion's loops, not what it computes
(LLVM's optimisation level and fast-math settings stay XLA's defaults; the
bitwise tests, sharded against unsharded and lookahead's synchronisation, pass
either way). ``--xla_backend_optimization_level=0`` would compile faster still,
but changes rounding enough to fail the L-BFGS comparison with optax, so it is
not used. ``make test-all`` (``GRADOPT_TEST_XLA_DEFAULTS=1``) runs the suite
with XLA's defaults, as users run gradopt.
"""

import os
import shutil
import sys
import tempfile

QUICK_XLA_FLAGS = ("--xla_cpu_use_fusion_emitters=false",)

if os.environ.get("GRADOPT_TEST_XLA_DEFAULTS") != "1":
    # before the first computation initialises the backend; subprocesses inherit it
    _given = os.environ.get("XLA_FLAGS", "")
    _names = {flag.split("=")[0] for flag in _given.split()}
    _extra = [f for f in QUICK_XLA_FLAGS if f.split("=")[0] not in _names]
    os.environ["XLA_FLAGS"] = " ".join([_given, *_extra]).strip()

import jax  # noqa: E402
import pytest  # noqa: E402

jax.config.update("jax_numpy_dtype_promotion", "strict")
jax.config.update("jax_numpy_rank_promotion", "raise")

# One compilation cache per test session, shared by the xdist workers and
# removed at the end. Tests build fresh optimizers (fresh closures) all the
# time, so the same XLA program is compiled again and again, and XLA's
# compilation is most of the suite's time: with the cache, a program already
# compiled by either worker is loaded instead. It starts empty on every run, so
# a local run costs what CI's does.
_CACHE_ENV = "GRADOPT_TEST_COMPILATION_CACHE"


def pytest_configure(config):
    if not hasattr(config, "workerinput"):  # the controller, or a run without xdist
        os.environ[_CACHE_ENV] = tempfile.mkdtemp(prefix="gradopt-tests-xla-")
    jax.config.update("jax_compilation_cache_dir", os.environ[_CACHE_ENV])
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


def pytest_unconfigure(config):
    if not hasattr(config, "workerinput"):
        shutil.rmtree(os.environ.pop(_CACHE_ENV, ""), ignore_errors=True)


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
