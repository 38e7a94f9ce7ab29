"""The second-order study: its budget accounting on a tiny problem, and (slow) a smoke run."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradopt
from experiments import second_order as study

_rng = np.random.default_rng(0)
X = jnp.asarray(_rng.normal(size=(64, 64)).astype(np.float32))
Y = jnp.asarray(_rng.integers(0, 10, size=64).astype(np.int32))
START = {"w": jnp.zeros((64, 10)), "b": jnp.zeros(10)}


def _run(spec, budget, steps):
    def evaluate(p):
        return study.logistic_loss(p, X, Y)

    return study.run_method(spec, study.logistic_loss, START, (X, Y), None, budget, steps, evaluate)


def test_budget_counts_what_each_method_evaluated():
    units = 64 / study.BATCH  # a full-batch gradient here is half a 128-example gradient
    gd = _run(("grad", gradopt.sgd(0.5), True), 1e9, 3)
    assert [r[1] for r in gd] == pytest.approx([0.0, units, 2 * units, 3 * units])
    newton = _run(("newton", gradopt.newton(damping=1e-3), True), 1e9, 2)
    per_step = units * (1 + 2 * 650)  # the gradient and d Hessian-vector products
    assert [r[1] for r in newton] == pytest.approx([0.0, per_step, 2 * per_step])
    assert newton[-1][3] < gd[-1][3]  # and Newton's step does more per iteration
    lbfgs = _run(("lbfgs", gradopt.lbfgs(), True), 1e9, 3)
    # the first gradient, then one value-and-gradient per line-search trial (>= 1 a step)
    assert lbfgs[1][1] >= 2 * units and lbfgs[3][1] >= 4 * units
    assert all(np.isfinite(r[3]) for r in lbfgs)


def test_runs_stop_at_the_budget():
    curve = _run(("grad", gradopt.sgd(0.5), True), 1.2, 50)
    assert curve[-1][1] >= 1.2 and curve[-2][1] < 1.2


@pytest.mark.slow
def test_smoke_run_writes_figures_numbers_and_verdict(tmp_path):
    result = study.main(["--smoke", "--out", str(tmp_path)])
    for name in ("second_order.png", "second_order_valley.png", "second_order.csv", "summary.md"):
        assert (tmp_path / name).stat().st_size > 0, name
    saved = json.loads((tmp_path / "result.json").read_text())
    assert saved["headline"] == result.headline
    assert any("slide's claim" in f for f in result.findings)


def test_benchmark_case_9_times_refresh_and_other_steps_apart():
    from experiments.benchmarks import preconditioners

    # the benchmark's MLP broadcasts its biases; optax.adam mixes int and float
    with jax.numpy_rank_promotion("allow"), jax.numpy_dtype_promotion("standard"):
        rows = preconditioners.case_preconditioners(reps=1, depth=1, width=4)
    steps = {(r["impl"], r["name"].split(", ")[-1]) for r in rows if r["metric"] == "step"}
    for impl in ("optax", "gradopt.adam", "gradopt.shampoo", "gradopt.soap"):
        assert (impl, "refresh step") in steps and (impl, "non-refresh step") in steps
    for impl in ("gradopt.shampoo", "gradopt.soap"):  # the floor of the non-refresh step
        assert (impl, "matrix products only") in steps
    per_param = {r["impl"]: r["bytes_per_param"] for r in rows if r["metric"] == "state bytes"}
    assert per_param["gradopt.shampoo"] > per_param["gradopt.adam"]
