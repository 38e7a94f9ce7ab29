"""Schedules against values recorded from torch.optim.lr_scheduler and Keras 3.

The fixtures are written by tests/fixtures/record_schedules.py; a few schedules
without a peer class are checked against NumPy transcriptions of their formula.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradopt
from gradopt import schedules

FIXTURES = Path(__file__).parent / "fixtures"
TORCH = json.loads((FIXTURES / "schedules_torch.json").read_text())["cases"]
KERAS = json.loads((FIXTURES / "schedules_keras.json").read_text())["cases"]


# ---------------------------------------------------------------------------
# torch.optim.lr_scheduler classes as gradopt schedules, from their recorded arguments


def from_torch(cls: str, lr: float, kw: dict):
    if cls == "StepLR":
        return schedules.step(lr, kw["step_size"], kw.get("gamma", 0.1))
    if cls == "MultiStepLR":
        return schedules.multistep(lr, kw["milestones"], kw.get("gamma", 0.1))
    if cls == "ExponentialLR":
        return schedules.exponential(lr, kw["gamma"])
    if cls == "ConstantLR":
        return schedules.piecewise_constant([kw["total_iters"]], [lr * kw["factor"], lr])
    if cls == "LinearLR":
        start, end = kw.get("start_factor", 1 / 3), kw.get("end_factor", 1.0)
        return schedules.linear(lr * start, lr * end, kw["total_iters"])
    if cls == "PolynomialLR":
        return schedules.polynomial(lr, 0.0, kw["total_iters"], kw.get("power", 1.0))
    if cls == "CosineAnnealingLR":
        return schedules.cosine(lr, kw["T_max"], kw.get("eta_min", 0.0), cyclic=True)
    if cls == "CosineAnnealingWarmRestarts":
        return schedules.cosine_with_restarts(
            lr, kw["T_0"], kw.get("eta_min", 0.0), period_mult=float(kw.get("T_mult", 1))
        )
    if cls == "OneCycleLR":
        return schedules.onecycle(
            kw["max_lr"],
            kw["total_steps"],
            pct_start=kw.get("pct_start", 0.3),
            div_factor=kw.get("div_factor", 25.0),
            final_div_factor=kw.get("final_div_factor", 1e4),
            anneal=kw.get("anneal_strategy", "cos"),
            three_phase=kw.get("three_phase", False),
        )
    if cls == "SequentialLR":
        parts = [from_torch(s["class"], lr, s["kwargs"]) for s in kw["schedulers"]]
        return schedules.join(parts, kw["milestones"])
    if cls == "ChainedScheduler":
        factors = [from_torch(s["class"], 1.0, s["kwargs"]) for s in kw["schedulers"]]
        return schedules.product(lr, *factors)
    raise AssertionError(f"no gradopt counterpart for {cls}")


def from_keras(cls: str, kw: dict):
    init = kw.get("initial_learning_rate")
    if cls == "ExponentialDecay":
        return schedules.exponential(
            init, kw["decay_rate"], kw["decay_steps"], staircase=kw.get("staircase", False)
        )
    if cls == "InverseTimeDecay":
        return schedules.inverse_time(
            init, kw["decay_rate"], kw["decay_steps"], staircase=kw.get("staircase", False)
        )
    if cls == "PolynomialDecay":
        return schedules.polynomial(
            init,
            kw.get("end_learning_rate", 0.0001),
            kw["decay_steps"],
            kw.get("power", 1.0),
            cycle=kw.get("cycle", False),
        )
    if cls == "PiecewiseConstantDecay":
        return schedules.piecewise_constant([b + 1 for b in kw["boundaries"]], kw["values"])
    if cls == "CosineDecay":
        alpha = kw.get("alpha", 0.0)
        if kw.get("warmup_target") is None:
            return schedules.cosine(init, kw["decay_steps"], alpha * init)
        peak = kw["warmup_target"]
        decay = schedules.cosine(peak, kw["decay_steps"], alpha * peak)
        return schedules.warmup(decay, kw["warmup_steps"], init_value=init)
    if cls == "CosineDecayRestarts":
        return schedules.cosine_with_restarts(
            init,
            kw["first_decay_steps"],
            kw.get("alpha", 0.0) * init,
            period_mult=kw.get("t_mul", 2.0),
            peak_decay=kw.get("m_mul", 1.0),
        )
    raise AssertionError(f"no gradopt counterpart for {cls}")


def evaluate(schedule, n: int) -> np.ndarray:
    return np.asarray(jax.jit(schedule)(jnp.arange(n, dtype=jnp.int32)))


def evaluate_cases(cases, build) -> dict[str, np.ndarray]:
    """Every case's schedule at steps 0 .. len(values) - 1, in one compiled program."""
    built = {c["name"]: (build(c), len(c["values"])) for c in cases}

    @jax.jit
    def run():
        return {name: s(jnp.arange(n, dtype=jnp.int32)) for name, (s, n) in built.items()}

    return {name: np.asarray(v) for name, v in run().items()}


def assert_cases_close(cases, got, *, dtype, rtol, atol_fraction):
    failures = []
    for case in cases:
        values = got[case["name"]]
        assert values.dtype == dtype, (case["name"], values.dtype)
        atol = atol_fraction * max(abs(v) for v in case["values"])
        if not np.allclose(values, case["values"], rtol=rtol, atol=atol):
            worst = int(np.argmax(np.abs(values - case["values"])))
            failures.append(
                f"{case['name']}: step {worst}: {values[worst]!r} != {case['values'][worst]!r}"
            )
    assert not failures, "\n".join(failures)


def _torch_schedule(case):
    return from_torch(case["class"], case["lr"], case["kwargs"])


def _keras_schedule(case):
    return from_keras(case["class"], case["kwargs"])


def test_matches_torch_float64(x64):
    got = evaluate_cases(TORCH, _torch_schedule)
    assert_cases_close(TORCH, got, dtype=np.float64, rtol=1e-12, atol_fraction=1e-15)


def test_matches_torch_float32():
    got = evaluate_cases(TORCH, _torch_schedule)
    assert_cases_close(TORCH, got, dtype=np.float32, rtol=2e-6, atol_fraction=1e-7)


def test_matches_keras():
    # Keras computes in float32; so does gradopt without x64.
    got = evaluate_cases(KERAS, _keras_schedule)
    assert_cases_close(KERAS, got, dtype=np.float32, rtol=2e-6, atol_fraction=1e-7)


def test_every_recorded_class_is_covered():
    assert len({c["class"] for c in TORCH}) == 10 and len({c["class"] for c in KERAS}) == 6


def test_torch_sequential_warmup_is_warmup(x64):
    """SequentialLR([LinearLR(s, 1, W), CosineAnnealingLR]) is warmup(cosine, W, s * lr)."""
    (case,) = [c for c in TORCH if c["name"] == "sequential_warmup_cosine"]
    lr = case["lr"]
    sched = schedules.warmup(schedules.cosine(lr, 30, cyclic=True), 5, init_value=0.2 * lr)
    np.testing.assert_allclose(evaluate(sched, 40), case["values"], rtol=1e-12, atol=1e-15)


def test_fixtures_record_versions():
    for name in ("schedules_torch.json", "schedules_keras.json"):
        versions = json.loads((FIXTURES / name).read_text())["versions"]
        assert versions["torch"].startswith("2.") and versions["keras"].startswith("3.")


# ---------------------------------------------------------------------------
# NumPy references for the schedules without a peer class


def test_constant_linear_and_callable_against_numpy():
    k = np.arange(30, dtype=np.float64)
    np.testing.assert_allclose(evaluate(schedules.constant(0.3), 30), np.full(30, 0.3), rtol=1e-7)
    alpha = np.minimum(k / 12.0, 1.0)
    np.testing.assert_allclose(
        evaluate(schedules.linear(0.5, 0.02, 12), 30),
        (1 - alpha) * 0.5 + alpha * 0.02,
        rtol=1e-6,
    )
    sched = schedules.from_callable(
        lambda s, lr: lr * 0.5 ** jnp.asarray(s // 10, jnp.float32), lr=0.8
    )
    np.testing.assert_allclose(evaluate(sched, 30), 0.8 * 0.5 ** (k // 10), rtol=1e-7)


def test_join_of_three_against_numpy():
    sched = schedules.join(
        [0.01, schedules.linear(0.1, 0.0, 10), schedules.exponential(0.05, 0.9)], [3, 8]
    )
    k = np.arange(20)
    want = np.where(k < 3, 0.01, np.where(k < 8, 0.1 * (1 - (k - 3) / 10), 0.05 * 0.9 ** (k - 8.0)))
    np.testing.assert_allclose(evaluate(sched, 20), want, rtol=1e-6)


def test_cosine_with_restarts_is_exact_at_every_restart():
    # period_mult=3 from 2: periods 2, 6, 18, ... start at 0, 2, 8, 26, 80, 242, 728, 2186.
    sched = jax.jit(schedules.cosine_with_restarts(1.0, 2, period_mult=3.0))
    starts = np.array([0, 2, 8, 26, 80, 242, 728, 2186])
    chex.assert_trees_all_close(sched(jnp.asarray(starts, jnp.int32)), jnp.ones(8), atol=1e-6)
    periods = np.diff(starts)
    last = 0.5 * (1.0 + np.cos(np.pi * (periods - 1.0) / periods))
    got = sched(jnp.asarray(starts[1:] - 1, jnp.int32))
    np.testing.assert_allclose(got, last, rtol=1e-5, atol=1e-7)


def test_onecycle_holds_final_value_after_total_steps():
    sched = schedules.onecycle(1.0, 20)
    tail = evaluate(sched, 40)[19:]
    np.testing.assert_allclose(tail, np.full(21, 1.0 / 25.0 / 1e4), rtol=1e-5)


# ---------------------------------------------------------------------------
# tracing: jit, traced steps, vmap over parameters, value equality


ALL = {
    "constant": schedules.constant(0.1),
    "linear": schedules.linear(0.1, 0.01, 10),
    "piecewise_constant": schedules.piecewise_constant([3, 6], [0.1, 0.05, 0.01]),
    "step": schedules.step(0.1, 4, 0.5),
    "multistep": schedules.multistep(0.1, [2, 9]),
    "exponential": schedules.exponential(0.1, 0.5, 4, staircase=True),
    "inverse_time": schedules.inverse_time(0.1, 0.5, 4),
    "polynomial": schedules.polynomial(0.1, 0.0, 10, 2.0, cycle=True),
    "cosine": schedules.cosine(0.1, 10),
    "cosine_with_restarts": schedules.cosine_with_restarts(0.1, 3, period_mult=2.0),
    "warmup": schedules.warmup(schedules.cosine(0.1, 10), 3),
    "onecycle": schedules.onecycle(0.1, 12, three_phase=True),
    "join": schedules.join([schedules.linear(0.0, 0.1, 4), 0.1], [4]),
    "product": schedules.product(0.1, schedules.step(1.0, 3)),
    "from_callable": schedules.from_callable(lambda k: 0.1 / (1.0 + jnp.asarray(k, jnp.float32))),
}


def test_every_public_name_is_covered():
    assert sorted(ALL) == sorted(schedules.__all__)


def test_traced_steps_in_scan_match_array_evaluation():
    """Every schedule, one program: a traced int32 step in a scan, an array of steps, an int."""

    def body(count, _):
        return count + 1, {name: sched(count) for name, sched in ALL.items()}

    @jax.jit
    def run():
        _, scanned = jax.lax.scan(body, jnp.zeros([], jnp.int32), length=16)
        steps = jnp.arange(16, dtype=jnp.int32)
        at_once = {name: sched(steps) for name, sched in ALL.items()}
        at_five = {name: sched(5) for name, sched in ALL.items()}
        return scanned, at_once, at_five

    scanned, at_once, at_five = run()
    chex.assert_trees_all_close(scanned, at_once)
    chex.assert_trees_all_close(at_five, {name: v[5] for name, v in scanned.items()})
    chex.assert_tree_all_finite(scanned)
    for name, values in scanned.items():
        assert values.shape == (16,) and values.dtype == jnp.float32, name
    # the scan really varies with the step (a constant step would pass the checks above)
    assert float(jnp.max(scanned["cosine"]) - jnp.min(scanned["cosine"])) > 0.05


def test_vmap_over_schedule_parameters():
    peaks = jnp.array([0.1, 0.2, 0.4])
    periods = jnp.array([5.0, 10.0, 20.0])
    steps = jnp.arange(12, dtype=jnp.int32)

    def curve(peak, period):
        return schedules.cosine_with_restarts(peak, period, 0.01, period_mult=2.0)(steps)

    @jax.jit
    def run():
        swept = jax.vmap(curve)(peaks, periods)
        one_by_one = jnp.stack(
            [
                schedules.cosine_with_restarts(p, t, 0.01, period_mult=2.0)(steps)
                for p, t in [(0.1, 5), (0.2, 10), (0.4, 20)]
            ]
        )
        # every argument may be traced, including staircase values and onecycle's peak
        piecewise = jax.vmap(lambda v: schedules.piecewise_constant([3], [v, v / 2])(steps))(peaks)
        onecycle = jax.vmap(lambda m: schedules.onecycle(m, 12, div_factor=10.0)(0))(peaks)
        return swept, one_by_one, piecewise, onecycle

    swept, one_by_one, piecewise, onecycle = run()
    chex.assert_trees_all_close(swept, one_by_one, rtol=1e-6)
    chex.assert_trees_all_close(piecewise[:, 3], peaks / 2)
    chex.assert_trees_all_close(onecycle, peaks / 10.0)


def test_equal_schedules_are_equal_and_do_not_recompile():
    a = schedules.warmup(schedules.cosine(0.1, 100), 10, init_value=0.0)
    b = schedules.warmup(schedules.cosine(0.1, 100), 10, init_value=0.0)
    assert a == b and hash(a) == hash(b)
    assert a != schedules.warmup(schedules.cosine(0.2, 100), 10, init_value=0.0)
    tx_a = gradopt.scale_by_learning_rate(a)
    tx_b = gradopt.scale_by_learning_rate(b)
    assert tx_a == tx_b

    compiled = jax.jit(lambda tx, g, s: tx.update(g, s), static_argnums=0)
    grads = {"w": jnp.ones(2)}
    state = tx_a.init(grads)
    _, state = compiled(tx_a, grads, state)
    _, state = compiled(tx_b, grads, state)
    assert compiled._cache_size() == 1


def test_schedule_drives_an_optimizer_from_step_zero():
    sched = schedules.onecycle(0.5, 10, anneal="linear")
    tx = gradopt.chain(gradopt.scale_by_learning_rate(sched))
    grads = {"a": jnp.ones(3), "b": jnp.ones((), jnp.bfloat16)}
    state = tx.init(grads)

    def body(state, _):
        updates, state = tx.update(grads, state)
        return state, updates

    _, updates = jax.jit(lambda s: jax.lax.scan(body, s, length=10))(state)
    want = -jax.jit(sched)(jnp.arange(10, dtype=jnp.int32))
    chex.assert_trees_all_close(updates["a"], jnp.broadcast_to(want[:, None], (10, 3)))
    assert updates["b"].dtype == jnp.bfloat16
    chex.assert_trees_all_close(updates["b"].astype(jnp.float32), want, rtol=1e-2)


# ---------------------------------------------------------------------------
# validation


BAD = [
    (lambda: schedules.constant("0.1"), TypeError, "value"),
    (lambda: schedules.linear(0.1, 0.0, 0), ValueError, r"transition_steps must be in \(0"),
    (lambda: schedules.piecewise_constant([5, 2], [1, 2, 3]), ValueError, "non-decreasing"),
    (lambda: schedules.piecewise_constant([5], [1.0]), ValueError, "one more entry"),
    (lambda: schedules.piecewise_constant(5, [1.0, 2.0]), TypeError, "list or tuple"),
    (lambda: schedules.step(0.1, -3), ValueError, "step_size"),
    (lambda: schedules.step(0.1, 3, gamma=-0.5), ValueError, "gamma"),
    (lambda: schedules.multistep(0.1, [-1, 4]), ValueError, r"milestones\[0\]"),
    (lambda: schedules.exponential(0.1, 0.9, 0), ValueError, "decay_steps"),
    (lambda: schedules.exponential(0.1, 0.9, staircase=1), TypeError, "staircase"),
    (lambda: schedules.inverse_time(0.1, -1.0), ValueError, "decay_rate"),
    (lambda: schedules.polynomial(0.1, 0.0, 10, power=-1.0), ValueError, "power"),
    (lambda: schedules.cosine(0.1, 0), ValueError, "decay_steps"),
    (lambda: schedules.cosine(0.1, jnp.ones(3)), ValueError, "scalar"),
    (
        lambda: schedules.cosine_with_restarts(0.1, 10, period_mult=0.5),
        ValueError,
        r"period_mult must be in \[1, inf\), got 0.5. Use 1.0",
    ),
    (lambda: schedules.warmup(schedules.cosine(0.1, 10), -1), ValueError, "warmup_steps"),
    (lambda: schedules.warmup("cosine", 10), TypeError, "schedule"),
    (lambda: schedules.onecycle(0.1, 10, pct_start=1.5), ValueError, "pct_start"),
    (lambda: schedules.onecycle(0.1, 10, anneal="cosine"), ValueError, "'cos', 'linear'"),
    (lambda: schedules.join([0.1, 0.2], [3, 5]), ValueError, "one more schedule"),
    (lambda: schedules.join([0.1, 0.2, 0.3], [5, 5]), ValueError, "strictly increasing"),
    (lambda: schedules.product(0.1, "x"), TypeError, r"schedules\[1\]"),
    (lambda: schedules.from_callable(3.0), TypeError, "callable"),
    (
        lambda: schedules.from_callable(lambda k: 0.1 if k < 10 else 0.01),
        TypeError,
        "jnp.where",
    ),
    (lambda: schedules.from_callable(lambda k: jnp.zeros(2)), ValueError, "scalar"),
]


@pytest.mark.parametrize("index", range(len(BAD)))
def test_bad_arguments_raise_with_a_fix(index):
    build, error, match = BAD[index]
    with pytest.raises(error, match=match) as info:
        build()
    assert "gradopt.schedules." in str(info.value)


def test_traced_arguments_are_not_validated():
    # A negative traced gamma cannot be checked at construction; it is accepted.
    out = jax.jit(lambda g: schedules.step(1.0, 2, g)(4))(jnp.float32(-0.5))
    assert math.isclose(float(out), 0.25)
