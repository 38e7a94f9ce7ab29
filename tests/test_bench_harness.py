"""The benchmark harness and the sweep study's bookkeeping, on small inputs (no timing asserted)."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments import sweep
from experiments.benchmarks import __main__ as bench
from experiments.benchmarks import cases, impls
from experiments.benchmarks.timing import array_passes, bytes_accessed


def _compile(fn, *args):
    return jax.jit(fn).lower(*args).compile()


def test_array_passes_counts_loops_over_arrays_not_scalars():
    tree = {k: jnp.ones(1000, jnp.float32) for k in "abc"}
    scale = _compile(lambda t: jax.tree.map(lambda x: 2.0 * x + 1.0, t), tree)
    assert array_passes(scale) == 3  # one fused loop per leaf
    scalar = _compile(lambda c: c + 1, jnp.zeros((), jnp.int32))
    assert array_passes(scalar) == 0
    assert bytes_accessed(scale) == pytest.approx(3 * 2 * 4000, rel=0.1)


def test_one_expression_adam_follows_the_adam_formula():
    params = {"a": jnp.linspace(-1.0, 1.0, 5), "b": jnp.ones(3)}
    grads = {"a": jnp.linspace(0.5, -2.0, 5), "b": jnp.array([1e-3, -4.0, 0.0])}
    tx = impls.one_expression_adam()
    state = tx.init(params)
    for _ in range(3):
        updates, state = tx.update(grads, state)
    for k in params:  # NumPy float64, constant gradient: m = (1 - b1^t) g, v = (1 - b2^t) g^2
        g = np.asarray(grads[k], np.float64)
        m_hat, v_hat = g, g * g
        expected = -impls.LEARNING_RATE * m_hat / (np.sqrt(v_hat) + 1e-8)
        np.testing.assert_allclose(updates[k], expected, rtol=1e-4, atol=1e-9)
    assert int(state.count) == 3


def _step(impl, ms, **more):
    return {"case": "1", "name": "n", "metric": "step", "impl": impl, "median_ms": ms, **more}


def test_bandwidth_and_ratios_and_verdicts():
    rows = [
        _step("optax", 10.0),
        _step("gradopt", 8.0),
        _step("torch fused", 5.0),
        _step(impls.COPY_JAX, 4.0),
    ]
    cases.add_bandwidth(rows, num_params=1_000_000)
    bench.add_ratios(rows)
    by = {r["impl"]: r for r in rows}
    assert by[impls.COPY_JAX]["gb_per_s"] == pytest.approx(8e6 / 4e-3 / 1e9)
    assert by["gradopt"]["gb_per_s"] == pytest.approx(28e6 / 8e-3 / 1e9)
    assert by["gradopt"]["fraction_of_copy"] == pytest.approx(3.5 / 2.0)
    assert "ratio_vs_optax" not in by[impls.COPY_JAX]
    targets = {t["target"]: t for t in bench.default_path(rows)}
    assert targets["10 x 2M step / optax"]["measured"] == pytest.approx(0.8)
    assert targets["10 x 2M step / optax"]["met"] is True
    assert targets["10 x 2M step / torch fused"]["met"] is False  # 1.6 > 1.3
    assert targets["1,000 x 1k step / optax"]["met"] is None  # case 2 not run


def test_sweep_best_learning_rate_and_whether_it_is_inside_the_grid():
    lrs = np.asarray([1e-2, 1e-1, 1.0, 10.0], np.float32)
    final = {
        "inside": np.asarray([2.0, 0.5, 0.7, np.nan]),
        "edge": np.asarray([2.0, 1.0, 0.5, 0.1]),
    }
    best = sweep.best_per_optimizer(final, ["inside", "edge"], lrs, start_loss=2.3)
    assert [b["interior"] for b in best] == [True, False]
    assert best[0]["lr"] == pytest.approx(0.1) and best[0]["helping"] == 3
    assert sweep.curve_gap(np.asarray([1.0, np.nan]), np.asarray([1.0, np.inf])) == 0.0


@pytest.mark.slow
def test_benchmark_smoke_writes_the_default_path_rows(tmp_path):
    with jax.numpy_dtype_promotion("standard"):  # optax itself is not strict-promotion clean
        record = bench.main(["--smoke", "--out", str(tmp_path)])
    saved = json.loads((tmp_path / "benchmark-smoke.json").read_text())
    assert saved["default_path"] == json.loads(json.dumps(record["default_path"]))
    plain = [r for r in saved["rows"] if r["impl"] == "gradopt" and r["case"] == "1"]
    assert all(r["array_passes_per_leaf"] >= 1 for r in plain)
    assert any("fraction_of_copy" in r for r in plain)
    assert "Default path" in (tmp_path / "benchmark-smoke.md").read_text()
