"""Regression tests for the defects of issue 11 (found by fuzzing), one group per defect.

Each group names the defect; together they back the promises of
``docs/guarantees.md``. References are written from the formulas (NumPy,
float64) or are exact integer arithmetic, never taken from gradopt itself.
"""

from __future__ import annotations

import inspect
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradopt
import gradopt.compat.keras
import gradopt.compat.torch
from gradopt import schedules
from tests.registry import BY_NAME, NOT_TRANSFORMS, REGISTRY, as_matrices

INT32_MAX = 2**31 - 1

# Named optimizers (every configuration in the registry) and the compat entries.
_NAMED_PACKAGES = ("gradopt.optimizers.", "gradopt.compat.")
NAMED = [
    pytest.param(e, id=e.name) for e in REGISTRY if e.factory.__module__.startswith(_NAMED_PACKAGES)
]
# Entries whose parameters may be vectors and scalars (not only matrices).
ANY_SHAPE = [p for p in NAMED if not p.values[0].matrices_only]
# the entries that take a gradient alone (those that read the loss need value_fn= too)
GRADIENT_ONLY = [p for p in NAMED if not p.values[0].needs_objective]
# both: matrices or vectors, a gradient alone
ANY_SHAPE_GRADIENT_ONLY = [p for p in ANY_SHAPE if p in GRADIENT_ONLY]
COMPAT = [
    pytest.param(module, name, id=f"{module.__name__.split('.')[-1]}.{name}")
    for module in (gradopt.compat.torch, gradopt.compat.keras)
    for name in module.__all__
    # optimizers built from their defaults alone (not wrappers, maps, accessors)
    if not isinstance(getattr(module, name), type)
    and all(
        p.default is not inspect.Parameter.empty
        for p in inspect.signature(getattr(module, name)).parameters.values()
    )
    and name not in NOT_TRANSFORMS
]


def _finite(tree) -> bool:
    leaves = [x for x in jax.tree.leaves(tree) if jnp.issubdtype(jnp.result_type(x), jnp.inexact)]
    return all(bool(jnp.all(jnp.isfinite(jnp.asarray(x, jnp.float32)))) for x in leaves)


# ----------------------------------------------------------------------------
# 1. Python scalar parameters (and gradients), with weight decay


@pytest.mark.parametrize("entry", ANY_SHAPE_GRADIENT_ONLY)
def test_python_float_parameter_with_weight_decay(entry):
    kwargs = {}
    params_sig = inspect.signature(entry.factory).parameters
    if "weight_decay" in params_sig:
        kwargs["weight_decay"] = 0.0625
    tx = entry.make(**kwargs)
    scalars = {"t": 1.5, "a": jnp.array([1.0, -2.0])}
    arrays = {"t": jnp.asarray(1.5), "a": jnp.array([1.0, -2.0])}
    results = []
    for params, grads in (
        (scalars, {"t": 0.5, "a": jnp.array([0.25, 1.0])}),  # Python float gradient too
        (arrays, {"t": jnp.asarray(0.5), "a": jnp.array([0.25, 1.0])}),
    ):
        state = tx.init(params)
        for _ in range(2):
            updates, state = tx.update(grads, state, params, **entry.extra_args)
            params = gradopt.apply_updates(params, updates)
        results.append(params)
    np.testing.assert_allclose(results[0]["t"], results[1]["t"], rtol=1e-6)
    np.testing.assert_allclose(results[0]["a"], results[1]["a"], rtol=1e-6)


# ----------------------------------------------------------------------------
# 3. compat.torch.adagrad with a schedule and lr_decay


def test_torch_adagrad_schedule_with_lr_decay():
    sched = schedules.exponential(0.1, 0.5)  # 0.1 * 0.5**k
    lr_decay, eps = 0.25, 1e-10
    tx = gradopt.compat.torch.adagrad(lr=sched, lr_decay=lr_decay, eps=eps)
    w = {"w": jnp.array([1.0, -2.0])}
    state = tx.init(w)
    ref_w, ref_sum = np.array([1.0, -2.0]), np.zeros(2)
    for t in range(1, 5):  # torch: clr = lr_t / (1 + (t - 1) * lr_decay)
        g = np.array([1.0, -3.0]) * t
        updates, state = tx.update({"w": jnp.asarray(g, jnp.float32)}, state, w)
        w = gradopt.apply_updates(w, updates)
        ref_sum += g * g
        clr = 0.1 * 0.5 ** (t - 1) / (1 + (t - 1) * lr_decay)
        ref_w = ref_w - clr * g / (np.sqrt(ref_sum) + eps)
        np.testing.assert_allclose(w["w"], ref_w, rtol=2e-6)


# ----------------------------------------------------------------------------
# 4. Extreme finite gradients


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16], ids=["float32", "bfloat16"])
@pytest.mark.parametrize("entry", GRADIENT_ONLY)
def test_extreme_finite_gradient_stays_finite(entry, dtype):
    tx = entry.make()
    params = as_matrices(entry, {"w": jnp.array([1.0, -1.0, 1.0], dtype)})
    state = tx.init(params)
    huge = as_matrices(entry, {"w": jnp.array([1e30, -1e30, 1.0], dtype)})
    unit = as_matrices(entry, {"w": jnp.ones(3, dtype)})
    updates, state = tx.update(huge, state, params, **entry.extra_args)
    assert _finite(updates), updates
    assert _finite(state), state
    for _ in range(2):  # the statistics do not stick at inf: later steps still move
        updates, state = tx.update(unit, state, params, **entry.extra_args)
        assert _finite(updates), updates
        assert _finite(state), state
    if not entry.reevaluates:
        assert bool(jnp.all(updates["w"] != 0)), updates


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16], ids=["float32", "bfloat16"])
def test_centered_rmsprop_extreme_gradient_is_not_nan(dtype):
    tx = gradopt.rmsprop(0.1, centered=True)
    params = {"w": jnp.ones(2, dtype)}
    state = tx.init(params)
    updates, state = tx.update({"w": jnp.array([1e30, 1e38], dtype)}, state)
    assert _finite(updates) and _finite(state)
    assert bool(jnp.all(updates["w"] < 0))  # a descent step, in the gradient's direction


def test_second_moment_saturates_and_decays_back():
    """Adam's v saturates just below float32's largest value and decays by b2 per step.

    The gradient is clipped at ``sqrt(max) * (1 - 2**-20)`` before squaring, so
    the square is ``max * (1 - 2**-19)``: within 2e-6 of the largest value.
    """
    tx = gradopt.scale_by_rms(0.999, eps=1e-8, debias=True)
    state = tx.init({"w": jnp.zeros(1)})
    _, state = tx.update({"w": jnp.array([1e30])}, state)
    top = float(np.finfo(np.float32).max)  # g**2 = 1e60 saturates at float32's max
    np.testing.assert_allclose(state.nu["w"], 0.001 * top, rtol=4e-6)
    updates, state = tx.update({"w": jnp.array([1.0])}, state)
    np.testing.assert_allclose(state.nu["w"], 0.999 * 0.001 * top, rtol=4e-6)
    assert 0 < float(updates["w"][0]) < 1e-15  # tiny but not stuck at 0


# ----------------------------------------------------------------------------
# 5. Validation: non-finite and complex hyperparameters, names as written


RANGED = [pytest.param(e, id=e.name) for e in REGISTRY if e.ranges]


@pytest.mark.parametrize("entry", RANGED)
def test_non_finite_hyperparameters_are_rejected(entry):
    for name, r in sorted(entry.ranges.items()):
        if r.low is None and r.high is None:  # an unbounded factor: only the type is checked
            with pytest.raises(TypeError, match=name):
                entry.make(**{name: np.complex64(0.5)})
            continue
        for value in (math.inf, -math.inf, math.nan, np.float32(np.inf)):
            with pytest.raises(ValueError, match=name):
                entry.make(**{name: value})
        with pytest.raises(TypeError, match=name):
            entry.make(**{name: np.complex64(0.5)})


@pytest.mark.parametrize(
    "factory, name",
    [
        (gradopt.add_decayed_weights, "weight_decay"),
        (gradopt.add_gradient_noise, "eta"),
        (gradopt.scale_by_sum_of_squares, "initial_accumulator_value"),
        (gradopt.scale_by_sum_of_squares, "eps"),
        (gradopt.sgd, "learning_rate"),
        (gradopt.adagrad, "weight_decay"),
    ],
)
def test_infinite_hyperparameter_is_rejected(factory, name):
    with pytest.raises(ValueError, match=f"{name} must be a finite number"):
        factory(**{name: math.inf})


_DECAY_LIKE = {"beta_1", "beta_2", "rho", "alpha", "momentum"}
_EPS_LIKE = {"eps", "epsilon"}
# arguments for which -1.0 is valid (Ftrl's and Adafactor's exponents, Muon's coefficients)
_NEGATIVE_OK = {"learning_rate_power", "beta_2_decay", "muon_a", "muon_b", "muon_c"}


def _allowed(module, fname, name, value) -> bool:
    """True if the registry's declared range for this compat argument contains ``value``."""
    entry = BY_NAME.get(f"compat.{module.__name__.split('.')[-1]}.{fname}")
    r = None if entry is None else entry.ranges.get(name)
    if r is None or math.isnan(value) or math.isinf(value):
        return False
    above = r.low is None or (value > r.low if r.low_open else value >= r.low)
    below = r.high is None or (value < r.high if r.high_open else value <= r.high)
    return above and below


@pytest.mark.parametrize("module, fname", COMPAT)
def test_compat_errors_name_the_argument_as_written(module, fname):
    factory = getattr(module, fname)
    where = f"{module.__name__}.{fname}"
    checked = 0
    for name, p in inspect.signature(factory).parameters.items():
        default = p.default
        if isinstance(default, tuple) and name != "betas":  # etas, step_sizes, eps pairs
            for i, item in enumerate(default):
                if isinstance(item, (int, float)) and not isinstance(item, bool):
                    bad = tuple(math.inf if j == i else x for j, x in enumerate(default))
                    with pytest.raises(ValueError, match=rf"{where}: {name}\[{i}\] "):
                        factory(**{name: bad})
                    checked += 1
            continue
        if isinstance(default, bool) or not isinstance(default, (int, float)):
            continue
        bad = [math.inf, math.nan] if name in _NEGATIVE_OK else [-1.0, math.inf, math.nan]
        if name in _DECAY_LIKE:
            bad.append(1.0)
        if name in _EPS_LIKE:
            bad.append(0.0)
        for value in bad:
            if _allowed(module, fname, name, value):  # e.g. ASGD's alpha is a power, not a decay
                continue
            with pytest.raises(ValueError) as info:
                factory(**{name: value})
            assert f"{where}: {name} " in str(info.value), (name, value, str(info.value))
        with pytest.raises(TypeError, match=f"{where}: {name} "):
            factory(**{name: np.complex64(0.5)})
        checked += 1
    if "betas" in inspect.signature(factory).parameters:
        for i, betas in enumerate([(1.0, 0.999), (0.9, math.inf)]):
            with pytest.raises(ValueError, match=rf"{where}: betas\[{i}\]"):
                factory(betas=betas)
        checked += 1
    assert checked >= 2


@pytest.mark.parametrize("factory", [gradopt.adam, gradopt.adamw, gradopt.amsgrad, gradopt.nadam])
@pytest.mark.parametrize("name", ["mu_dtype", "nu_dtype"])
def test_moment_dtype_errors_name_the_argument(factory, name):
    with pytest.raises(TypeError, match=f"{name} must be None or a floating dtype"):
        factory(**{name: jnp.int32})


# ----------------------------------------------------------------------------
# 6. Wrong-shape gradients


def test_apply_updates_checks_shapes():
    with pytest.raises(ValueError, match=r"\['w'\] has shape \(1,\)"):
        gradopt.apply_updates({"w": jnp.zeros(())}, {"w": jnp.ones(1)})
    with pytest.raises(ValueError, match=r"\['w'\] has shape \(2,\)"):
        gradopt.apply_updates({"w": jnp.zeros(3)}, {"w": jnp.ones(2)})


@pytest.mark.parametrize("entry", ANY_SHAPE)
def test_wrong_shape_gradient_is_refused(entry):
    tx = entry.make()
    for shape, wrong in (((), (1,)), ((3,), (2,)), ((2, 1), (1, 2))):
        params = {"w": jnp.ones(shape), "b": jnp.ones(2)}
        grads = {"w": jnp.ones(wrong), "b": jnp.ones(2)}
        state = tx.init(params)
        with pytest.raises(ValueError, match=r"\['w'\] has shape"):
            tx.update(grads, state, params, **entry.extra_args)  # refused by update
        with pytest.raises(ValueError, match=r"\['w'\] has shape"):  # without: at the latest
            updates, _ = entry.update(tx, grads, state, params)
            gradopt.apply_updates(params, updates)


# ----------------------------------------------------------------------------
# 7. Integer, bool and uint8 gradients


@pytest.mark.parametrize("entry", NAMED)
def test_non_float_gradient_is_refused(entry):
    tx = entry.make()
    params = as_matrices(entry, {"w": jnp.ones(2), "b": jnp.ones(2)})
    state = tx.init(params)
    for dtype in (jnp.int32, jnp.bool_, jnp.uint8):
        grads = as_matrices(entry, {"w": jnp.ones(2), "b": jnp.ones(2, dtype)})
        with pytest.raises(TypeError) as info:
            entry.update(tx, grads, state, params)
        message = str(info.value)
        assert "['b']" in message and jnp.dtype(dtype).name in message, message
        assert "astype" in message, message


def test_wider_prefers_floats():
    from gradopt.core._numerics import wider

    assert wider(jnp.int32, jnp.float32) == jnp.float32
    assert wider(jnp.float32, jnp.int32) == jnp.float32


# ----------------------------------------------------------------------------
# 9. onecycle with a one-step (or empty) rise


@pytest.mark.parametrize("three_phase", [False, True])
@pytest.mark.parametrize("anneal", ["cos", "linear"])
@pytest.mark.parametrize("total", [1, 2, 10])
def test_onecycle_single_warmup_step_is_finite(total, anneal, three_phase):
    sched = schedules.onecycle(
        1.0, total, pct_start=1 / total, anneal=anneal, three_phase=three_phase
    )
    values = sched(jnp.arange(12))  # one shape for every case; jit: see the boundary test
    assert bool(jnp.all(jnp.isfinite(values))), values
    assert float(values[0]) == 1.0  # the rise is over at step 0: the peak
    if total > 1:  # the last step is the final value, initial / final_div_factor
        np.testing.assert_allclose(sched(total - 1), 1.0 / 25.0 / 1e4, rtol=1e-5, atol=1e-7)


# ----------------------------------------------------------------------------
# 10. Staircases under jit, and every schedule jit against eager at its boundaries


def _staircase_table():
    """Per schedule kind: (factory of step size s, exact value at integer step k)."""
    return {
        "step": (lambda s: schedules.step(1.0, s, 0.5), lambda k, s: 0.5 ** (k // s)),
        "exponential": (
            lambda s: schedules.exponential(1.0, 0.5, s, staircase=True),
            lambda k, s: 0.5 ** (k // s),
        ),
        "inverse_time": (
            lambda s: schedules.inverse_time(1.0, 1.0, s, staircase=True),
            lambda k, s: 1.0 / (1.0 + k // s),
        ),
        "polynomial": (  # cycle=True: T = s * max(ceil(k / s), 1)
            lambda s: schedules.polynomial(1.0, 0.0, s, 1.0, cycle=True),
            lambda k, s: (lambda big: (big - k) / big)(s * np.maximum(-(-k // s), 1)),
        ),
    }


@pytest.mark.parametrize("kind", ["step", "exponential", "inverse_time", "polynomial"])
def test_staircase_schedules_are_exact_under_jit(kind):
    make, exact = _staircase_table()[kind]
    # Step sizes whose float32 reciprocal is inexact (41 * float32(1/41) < 1) and a
    # few others, as integers and as floats (the float path is corrected, not divided).
    ints = [1, 3, 7, 41, 47, 55, 61, 82, 83, 94, 97, 4097]
    sizes = ints + [float(s) for s in (41, 97, 4097)]
    multiples = (1, 2, 3, 4, 49)
    steps = {s: np.array([n * int(s) + d for n in multiples for d in (-1, 0, 1)]) for s in sizes}

    def evaluate(ks):
        return [make(s)(ks[s]) for s in sizes]

    eager = evaluate({s: jnp.asarray(v, jnp.int32) for s, v in steps.items()})
    jitted = jax.jit(evaluate)({s: jnp.asarray(v, jnp.int32) for s, v in steps.items()})
    for s, e, j in zip(sizes, eager, jitted, strict=True):
        want = exact(steps[s], int(s)).astype(np.float32)
        np.testing.assert_allclose(e, want, rtol=2e-6, atol=1e-7, err_msg=f"eager, s={s}")
        np.testing.assert_allclose(j, want, rtol=2e-6, atol=1e-7, err_msg=f"jit, s={s}")


def _around(*points):
    """The step before each boundary and the boundary itself."""
    return sorted({max(int(p) + d, 0) for p in points for d in (-1, 0)})


# name -> (schedule, boundary steps). Every public schedule appears at least once.
BOUNDARY_CASES = {
    "constant": (schedules.constant(0.3), _around(0, 1)),
    "linear": (schedules.linear(1.0, 0.1, 41), _around(0, 41)),
    "piecewise_constant": (
        schedules.piecewise_constant((41, 82, 300), (1.0, 0.5, 0.25, 0.125)),
        _around(41, 82, 300),
    ),
    "step": (schedules.step(1.0, 41, 0.5), _around(41, 82, 123, 164)),
    "multistep": (schedules.multistep(1.0, (41, 82, 82), 0.5), _around(41, 82)),
    "exponential": (schedules.exponential(1.0, 0.5, 41), _around(41, 82)),
    "exponential-staircase": (
        schedules.exponential(1.0, 0.5, 41, staircase=True),
        _around(41, 82, 123, 41 * 49),
    ),
    "inverse_time": (
        schedules.inverse_time(1.0, 0.5, 47, staircase=True),
        _around(47, 94, 141, 47 * 61),
    ),
    "polynomial": (
        schedules.polynomial(1.0, 0.1, 41, 2.0, cycle=True),
        _around(41, 82, 123, 41 * 49),
    ),
    "cosine": (schedules.cosine(1.0, 41, 0.1, cyclic=True), _around(41, 82, 123, 41 * 49)),
    "cosine_with_restarts": (
        schedules.cosine_with_restarts(1.0, 41, 0.0, period_mult=2.0, peak_decay=0.5),
        _around(41, 123, 287),
    ),
    "warmup": (schedules.warmup(schedules.step(1.0, 41, 0.5), 7), _around(7, 48, 89)),
    "onecycle": (
        schedules.onecycle(1.0, 100, pct_start=0.41, three_phase=True),
        _around(40, 81, 99),
    ),
    "join": (
        schedules.join([schedules.constant(1.0), schedules.step(1.0, 41, 0.5)], (13,)),
        _around(13, 54, 95),
    ),
    "product": (
        schedules.product(schedules.step(1.0, 41, 0.5), schedules.step(1.0, 29, 0.5)),
        _around(29, 41, 58, 82),
    ),
    "from_callable": (
        schedules.from_callable(lambda k: 1.0 / (1.0 + jnp.asarray(k, jnp.float32))),
        _around(0, 41),
    ),
}


def test_boundary_cases_cover_every_schedule():
    covered = {name.split("-")[0] for name in BOUNDARY_CASES}
    assert covered == set(schedules.__all__)


@pytest.mark.parametrize("name", sorted(BOUNDARY_CASES))
def test_every_schedule_jit_matches_eager_at_boundaries(name):
    sched, points = BOUNDARY_CASES[name]
    eager = np.asarray([sched(k) for k in points])  # one Python int at a time
    jitted = np.asarray(jax.jit(sched)(jnp.asarray(points, jnp.int32)))
    np.testing.assert_allclose(jitted, eager, rtol=2e-6, atol=1e-7)


# ----------------------------------------------------------------------------
# 11. Cyclic cosine at large steps


@pytest.mark.parametrize("period", [3, 7, 1000])
def test_cyclic_cosine_keeps_its_phase_at_large_steps(period):
    sched = schedules.cosine(1.0, period, cyclic=True)
    steps = [10**7, 10**7 + 1, 10**9, INT32_MAX]
    want = [0.5 * (1 + math.cos(math.pi * (k % (2 * period)) / period)) for k in steps]
    ks = jnp.asarray(steps, jnp.int32)
    np.testing.assert_allclose(sched(ks), want, atol=2e-6)
    np.testing.assert_allclose(jax.jit(sched)(ks), want, atol=2e-6)
    assert abs(float(schedules.cosine(1, 3, cyclic=True)(10**7)) - 0.25) < 1e-6


# ----------------------------------------------------------------------------
# 12. Step counters saturate


@pytest.mark.parametrize("entry", NAMED)
def test_step_counters_saturate_at_int32_max(entry):
    tx = entry.make()
    params = as_matrices(entry, {"w": jnp.array([1.0, -2.0])})
    state = tx.init(params)

    def near_max(x):
        if jnp.result_type(x) == jnp.int32:
            return jnp.full_like(x, INT32_MAX - 1)
        return x

    state = jax.tree.map(near_max, state)
    for _ in range(3):
        grads = as_matrices(entry, {"w": jnp.array([0.5, 1.0])})
        updates, state = entry.update(tx, grads, state, params)
        assert _finite(updates), updates
    counters = [x for x in jax.tree.leaves(state) if jnp.result_type(x) == jnp.int32]
    assert all(int(c) == INT32_MAX for c in counters), counters
