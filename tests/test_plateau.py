"""reduce_on_plateau against torch and Keras ReduceLROnPlateau, and a NumPy reference.

Positive metric sequences: the learning rates recorded from the real torch
scheduler and Keras callback by tests/fixtures/record_schedules.py. Negative and
zero metrics: a NumPy transcription of gradopt's rule (where torch's relative
rule differs on purpose, see the docstring of ``reduce_on_plateau``).
"""

from __future__ import annotations

import json
from pathlib import Path

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradopt

FIXTURE = json.loads((Path(__file__).parent / "fixtures" / "schedules_plateau.json").read_text())
METRICS = FIXTURE["metrics"]
CASES = FIXTURE["cases"]
TORCH_DEFAULTS = dict(
    mode="min", factor=0.1, patience=10, threshold=1e-4, threshold_mode="rel", cooldown=0, min_lr=0
)
KERAS_DEFAULTS = dict(mode="min", factor=0.1, patience=10, min_delta=1e-4, cooldown=0, min_lr=0.0)


def gradopt_config(case) -> dict:
    """The reduce_on_plateau arguments equivalent to a recorded torch or Keras configuration."""
    lr = case["lr"]
    if case["library"] == "torch":
        kw = {**TORCH_DEFAULTS, **case["kwargs"]}
        return dict(
            factor=kw["factor"],
            patience=kw["patience"],
            mode=kw["mode"],
            threshold=kw["threshold"],
            threshold_mode=kw["threshold_mode"],
            cooldown=kw["cooldown"],
            min_scale=kw["min_lr"] / lr,
        )
    kw = {**KERAS_DEFAULTS, **case["kwargs"]}
    return dict(
        factor=kw["factor"],
        patience=max(kw["patience"] - 1, 0),
        mode=kw["mode"],
        threshold=kw["min_delta"],
        threshold_mode="abs",
        cooldown=max(kw["cooldown"] - 1, 0),
        min_scale=kw["min_lr"] / lr,
    )


def _scan_scales(tx, values):
    grads = {"w": jnp.ones(2), "b": jnp.ones((), jnp.bfloat16)}

    def body(state, value):
        updates, state = tx.update(grads, state, None, value=value)
        return state, (state.scale, updates["w"][0], updates["b"])

    _, (scales, w, b) = jax.lax.scan(body, tx.init(grads), values)
    return scales, w, b


def run_many(runs) -> list[np.ndarray]:
    """Feed each run's values to its transform one update at a time, all in one program.

    Returns the scale after each value; also checks that the updates carry the scale.
    """
    dtype = jax.dtypes.canonicalize_dtype(jnp.float64)
    inputs = [jnp.asarray(values, dtype) for _, values in runs]
    outputs = jax.jit(
        lambda xs: [_scan_scales(tx, x) for (tx, _), x in zip(runs, xs, strict=True)]
    )(inputs)
    scales = []
    for s, w, b in outputs:
        chex.assert_trees_all_close(w, s.astype(w.dtype))
        assert b.dtype == jnp.bfloat16
        scales.append(np.asarray(s))
    return scales


def run_scales(tx, values) -> np.ndarray:
    return run_many([(tx, values)])[0]


TORCH_CASES = [c for c in CASES if c["library"] == "torch"]
KERAS_CASES = [c for c in CASES if c["library"] == "keras"]


def _recorded_runs(cases):
    return [(gradopt.reduce_on_plateau(**gradopt_config(c)), METRICS[c["metric"]]) for c in cases]


def test_matches_torch(x64):
    for case, scales in zip(TORCH_CASES, run_many(_recorded_runs(TORCH_CASES)), strict=True):
        assert len(set(case["lrs"])) > 2, f"{case['name']} should reduce more than once"
        np.testing.assert_allclose(
            case["lr"] * scales, case["lrs"], rtol=1e-12, err_msg=case["name"]
        )


def test_matches_keras(x64):
    for case, scales in zip(KERAS_CASES, run_many(_recorded_runs(KERAS_CASES)), strict=True):
        assert len(set(case["lrs"])) > 2, f"{case['name']} should reduce more than once"
        # Keras stores the learning rate in a float32 variable: rounding at each reduction.
        np.testing.assert_allclose(
            case["lr"] * scales, case["lrs"], rtol=1e-6, atol=1e-12, err_msg=case["name"]
        )


def test_recorded_cases_cover_both_libraries_and_modes():
    assert len(TORCH_CASES) == 6 and len(KERAS_CASES) == 5
    assert {c["kwargs"].get("mode", "min") for c in CASES} == {"min", "max"}
    assert min(min(v) for v in METRICS.values()) > 0.0  # positive metrics only


def test_matches_torch_in_float32():
    case = next(c for c in TORCH_CASES if c["name"] == "torch_min_abs")
    scales = run_scales(gradopt.reduce_on_plateau(**gradopt_config(case)), METRICS["loss"])
    assert scales.dtype == np.float32
    np.testing.assert_allclose(case["lr"] * scales, case["lrs"], rtol=1e-6)


# ---------------------------------------------------------------------------
# negative and zero metrics: a NumPy reference written from the rule


def reference_scales(values, *, factor, patience, mode, threshold, threshold_mode, cooldown,
                     min_scale):  # fmt: skip
    scale, best, bad, cool = 1.0, (np.inf if mode == "min" else -np.inf), 0, 0
    out = []
    for v in values:
        if np.isinf(best):
            improved = v < best if mode == "min" else v > best
        else:
            margin = threshold * abs(best) if threshold_mode == "rel" else threshold
            improved = v < best - margin if mode == "min" else v > best + margin
        if improved:
            best, bad = v, 0
        else:
            bad += 1
        if cool > 0:
            cool, bad = cool - 1, 0
        if bad > patience:
            scale, cool, bad = max(scale * factor, min_scale), cooldown, 0
        out.append(scale)
    return np.array(out)


def torch_rule_reduces(values, *, patience, threshold):
    """torch's min/rel rule, ``v < best * (1 - threshold)``: does it ever reduce?"""
    best, bad = np.inf, 0
    for v in values:
        if v < best * (1 - threshold):
            best, bad = v, 0
        else:
            bad += 1
        if bad > patience:
            return True
    return False


RNG = np.random.default_rng(7)
NEGATIVE_LOSS = np.concatenate(
    [
        -1.0 - np.linspace(0.0, 2.0, 15),  # improving, negative
        np.full(12, -3.0),  # an exact negative plateau
        -3.0 - 1e-6 * np.arange(12),  # improvements far below a 1e-4 relative threshold
        -3.5 + 0.01 * RNG.standard_normal(15),
    ]
)
ZERO_CROSSING = np.concatenate(
    [np.linspace(1.0, 0.0, 8), np.zeros(10), -1e-3 * np.arange(6), np.full(8, -5e-3)]
)
NEGATIVE_REWARD = np.concatenate(
    [-10.0 + np.arange(10.0), np.full(10, -1.0), -1.0 + 1e-5 * np.arange(10)]
)
NEGATIVE_CONFIGS = [
    ("negative_min_rel", NEGATIVE_LOSS, dict(mode="min", threshold_mode="rel", threshold=1e-4)),
    ("negative_min_abs", NEGATIVE_LOSS, dict(mode="min", threshold_mode="abs", threshold=1e-3)),
    ("zero_min_rel", ZERO_CROSSING, dict(mode="min", threshold_mode="rel", threshold=1e-4)),
    ("zero_min_abs", ZERO_CROSSING, dict(mode="min", threshold_mode="abs", threshold=1e-2)),
    ("negative_max_rel", NEGATIVE_REWARD, dict(mode="max", threshold_mode="rel", threshold=1e-3)),
    ("negative_max_abs", -NEGATIVE_LOSS, dict(mode="max", threshold_mode="abs", threshold=0.0)),
]


def test_negative_and_zero_metrics_against_numpy(x64):
    runs, wants = [], []
    for name, values, config in NEGATIVE_CONFIGS:
        full = dict(factor=0.5, patience=2, cooldown=1, min_scale=0.01, **config)
        wants.append(reference_scales(values, **full))
        assert wants[-1][-1] < 1.0, f"the reference for {name} should reduce at least once"
        runs.append((gradopt.reduce_on_plateau(**full), values))
    for (name, _, _), want, got in zip(NEGATIVE_CONFIGS, wants, run_many(runs), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-12, err_msg=name)


def test_unchanged_negative_value_is_not_an_improvement():
    """A constant negative loss triggers a reduction after patience + 1 evaluations.

    torch's relative rule would count every repeat as an improvement and never reduce.
    """
    values = np.full(8, -2.0)
    assert not torch_rule_reduces(values, patience=2, threshold=1e-4)
    tx = gradopt.reduce_on_plateau(0.5, 2)
    negative, zeros = run_many([(tx, values), (tx, np.zeros(8))])
    # step 0 improves on +inf; steps 1, 2, 3 are bad; the third bad one (> patience) reduces.
    np.testing.assert_allclose(negative, [1, 1, 1, 0.5, 0.5, 0.5, 0.25, 0.25])
    np.testing.assert_allclose(zeros, [1, 1, 1, 0.5, 0.5, 0.5, 0.25, 0.25])


def test_nan_value_is_never_an_improvement():
    scales = run_scales(gradopt.reduce_on_plateau(0.5, 0), [1.0, np.nan, 0.5, np.nan])
    np.testing.assert_allclose(scales, [1.0, 0.5, 0.5, 0.25])


# ---------------------------------------------------------------------------
# protocol: chain, jit without recompiles, traced hyperparameters, errors


def test_in_a_chain_with_a_learning_rate_and_no_recompile():
    tx = gradopt.chain(gradopt.scale_by_learning_rate(0.1), gradopt.reduce_on_plateau(0.5, 0))
    params = {"w": jnp.ones(3)}
    state = tx.init(params)
    traces = []

    @jax.jit
    def step(state, value):
        traces.append(None)
        return tx.update(params, state, params, value=value)

    outputs = []
    for value in [1.0, 2.0, 0.5, 0.7]:
        updates, new_state = step(state, jnp.float32(value))
        chex.assert_trees_all_equal_structs(new_state, state)
        chex.assert_trees_all_equal_shapes_and_dtypes(new_state, state)
        state = new_state
        outputs.append(float(updates["w"][0]))
    assert len(traces) == 1
    np.testing.assert_allclose(outputs, [-0.1, -0.05, -0.05, -0.025], rtol=1e-6)


def test_vmap_over_factor():
    factors = jnp.array([0.1, 0.5, 0.9])
    values = jnp.array([1.0, 1.0, 1.0])

    def run(factor):
        tx = gradopt.reduce_on_plateau(factor, 1)
        state = tx.init(None)
        for v in values:
            _, state = tx.update({"w": jnp.ones(2)}, state, value=v)
        return state.scale

    chex.assert_trees_all_close(jax.jit(jax.vmap(run))(factors), factors)


def test_equal_configurations_are_equal():
    assert gradopt.reduce_on_plateau(0.5, 3) == gradopt.reduce_on_plateau(0.5, 3)
    assert gradopt.reduce_on_plateau(0.5, 3) != gradopt.reduce_on_plateau(0.5, 4)


def test_missing_or_non_scalar_value_raises():
    tx = gradopt.reduce_on_plateau()
    state = tx.init({"w": jnp.ones(2)})
    with pytest.raises(TypeError, match="value=loss"):
        tx.update({"w": jnp.ones(2)}, state)
    with pytest.raises(ValueError, match="must be a scalar"):
        tx.update({"w": jnp.ones(2)}, state, value=jnp.ones(2))


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(factor=1.0), ValueError, r"factor must be in \[0, 1\)"),
        (dict(factor=-0.1), ValueError, "factor"),
        (dict(patience=-1), ValueError, "patience"),
        (dict(patience=2.5), ValueError, "whole number"),
        (dict(mode="auto"), ValueError, "'min', 'max'"),
        (dict(threshold=-1e-4), ValueError, "threshold"),
        (dict(threshold_mode="relative"), ValueError, "'rel', 'abs'"),
        (dict(cooldown=-2), ValueError, "cooldown"),
        (dict(min_scale=1.5), ValueError, "min_scale"),
        (dict(factor="0.1"), TypeError, "factor"),
    ],
)
def test_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match) as info:
        gradopt.reduce_on_plateau(**kwargs)
    assert "gradopt.reduce_on_plateau" in str(info.value)
