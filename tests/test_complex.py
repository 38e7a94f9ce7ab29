"""Complex parameters (issue 19): the checks optax runs on its optimizers, and optax's trajectories.

For every named optimizer of the registry that supports complex parameters
(``optimizer=True``, ``supports_complex=True``), the six checks of the issue:

1. the optimum of a parabola and of the Rosenbrock function within 3e-2 after
   10,000 jitted steps, for float32 and complex64 parameters (one jitted
   ``lax.scan`` per optimizer runs the four problems, with the settings of the
   entry's ``converges``);
2. an unexpected extra keyword argument to ``update`` is accepted;
3. ``optax.inject_hyperparams`` wraps it and changes nothing;
4. the updates keep the gradient's dtype (bfloat16, float32, complex64);
5. under ``lax.cond`` the parameters keep their dtype (float16, bfloat16,
   float32, float64, complex64, complex128, one tree);
6. inside ``optax.MultiSteps`` the waiting steps give zero updates.

Then trajectories equal to optax's on complex parameters (rtol 1e-5, 200
steps) where optax has the same rule, and a NumPy complex128 transcription
where it does not (Adadelta, which optax refuses for complex; AMSGrad, whose
maximum optax takes after the bias correction). The statistics' dtypes,
refusals, the docs section and the kit's own failures are in
``tests/test_complex_rules.py``.

The complex gradient convention: ``jax.grad`` of a real loss returns the
conjugate of the steepest-ascent direction, so every loop here passes
``jnp.conj(grad)`` (``docs/complex.md``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import optax.contrib
import pytest

import gradopt
from tests.registry import REGISTRY

OPTIMIZERS = [
    pytest.param(e, id=e.name) for e in REGISTRY if e.optimizer and e.supports_complex is True
]


def abs_sq(x):
    return jnp.real(x * jnp.conj(x))


# ----------------------------------------------------------------------------
# 1. parabola and Rosenbrock, float32 and complex64, 10,000 jitted steps


def parabola(dtype):
    """``sum |w - target|**2``: start (-1, 10, 1), optimum (1, -1, 1)."""
    start = jnp.asarray([-1.0, 10.0, 1.0], dtype)
    target = jnp.asarray([1.0, -1.0, 1.0], dtype)
    return start, target, lambda w: jnp.sum(abs_sq(w - target))


def rosenbrock(dtype):
    """``|a - x|**2 + 100 |y - x**2|**2``, ``a = 1`` (``1 + i`` for complex); optimum (a, a**2)."""
    a = 1.0 + 1.0j if jnp.issubdtype(dtype, jnp.complexfloating) else 1.0
    start = jnp.zeros(2, dtype)
    target = jnp.asarray([a, a * a], dtype)
    a = jnp.asarray(a, dtype)

    def loss(w):
        return abs_sq(a - w[0]) + 100.0 * abs_sq(w[1] - w[0] * w[0])

    return start, target, loss


PROBLEMS = {"quadratic": parabola, "rosenbrock": rosenbrock}
DTYPES = (jnp.float32, jnp.complex64)


def _solve(entry, tx, start, loss, steps=10_000):
    def body(carry, _):
        w, state = carry
        g = jnp.conj(jax.grad(loss)(w))  # the conjugate: the steepest-ascent direction
        updates, state = tx.update(g, state, w, **entry.extra_args)
        return (gradopt.apply_updates(w, updates), state), None

    (w, _), _ = jax.lax.scan(body, (start, tx.init(start)), None, length=steps)
    return w


@pytest.mark.parametrize("entry", OPTIMIZERS)
def test_parabola_and_rosenbrock_in_float32_and_complex64(entry):
    """The settings are the entry's ``converges`` ones (a problem without them is not run).

    Methods that evaluate the loss themselves (``needs_objective``) have no
    ``converges`` settings (the registry's objective is not these problems'):
    their complex convergence is tested with the problem's loss as ``value_fn``
    in ``tests/test_complex_second_order.py``.
    """
    if entry.needs_objective and not entry.converges:
        pytest.skip("needs the problem's loss: tests/test_complex_second_order.py")
    runs = [
        (problem, dtype, PROBLEMS[problem](dtype))
        for problem in sorted(entry.converges)
        for dtype in DTYPES
    ]
    assert runs, f"{entry.name}: no converges settings in the registry"
    txs = {p: entry.make(**entry.converges[p].kwargs) for p in entry.converges}

    @jax.jit
    def solve_all(starts):
        return [
            _solve(entry, txs[p], s, loss)
            for (p, _, (_, _, loss)), s in zip(runs, starts, strict=True)
        ]

    finals = solve_all([start for _, _, (start, _, _) in runs])
    for (problem, dtype, (_, target, _)), final in zip(runs, finals, strict=True):
        assert final.dtype == jnp.dtype(dtype)
        np.testing.assert_allclose(
            np.asarray(final),
            np.asarray(target),
            rtol=3e-2,
            atol=3e-2,
            err_msg=f"{entry.name} on {problem} in {jnp.dtype(dtype).name}",
        )


# ----------------------------------------------------------------------------
# 2-6: extra keywords, optax.inject_hyperparams, dtypes, lax.cond, MultiSteps


def _tree(dtypes, seed=0):
    """Params and two gradients: one (2, 3) leaf per dtype, complex ones with both parts."""
    rng = np.random.default_rng(seed)

    def leaf(dtype):
        x = rng.normal(size=(2, 3))
        if jnp.issubdtype(dtype, jnp.complexfloating):
            x = x + 1j * rng.normal(size=(2, 3))
        return jnp.asarray(x).astype(dtype)

    names = [jnp.dtype(d).name for d in dtypes]
    make = lambda: {n: leaf(d) for n, d in zip(names, dtypes, strict=True)}  # noqa: E731
    return make(), [make(), make()]


def _run(tx, params, grads, **extra):
    state = tx.init(params)
    outs = []
    for g in grads:
        u, state = tx.update(g, state, params, **extra)
        outs.append(u)
    return outs


@pytest.mark.parametrize("entry", OPTIMIZERS)
def test_an_unexpected_extra_keyword_is_accepted(entry):
    params, grads = _tree((jnp.float32, jnp.complex64))
    tx = entry.make()
    got = _run(tx, params, grads, **entry.extra_args, unexpected_keyword=jnp.asarray(1.0))
    want = _run(tx, params, grads, **entry.extra_args)
    jax.tree.map(np.testing.assert_array_equal, got, want)


def _skip_optax_wrapper(entry):
    """optax's wrappers call a transform that is not an optax
    ``GradientTransformationExtraArgs`` through ``optax.with_extra_args_support``,
    which drops the extra arguments: ``value_fn=`` never reaches a gradopt
    transform that needs it (for real parameters as well)."""
    if entry.needs_objective:
        pytest.skip("optax's wrappers drop value_fn= for gradopt transforms (real ones too)")


@pytest.mark.parametrize("entry", OPTIMIZERS)
def test_optax_inject_hyperparams_wraps_it(entry):
    _skip_optax_wrapper(entry)
    params, grads = _tree((jnp.float32, jnp.complex64))
    # optax casts the injected values to the parameters' highest dtype, complex64
    # here, unless told otherwise: hyperparameters stay real (docs/complex.md)
    with jax.numpy_dtype_promotion("standard"):
        inject = optax.inject_hyperparams(
            entry.factory, static_args=entry.static_args, hyperparam_dtype=jnp.float32
        )
        injected = inject(**entry.kwargs)
        # jitted: optax rebuilds the optimizer from its arrays at every update
        got = jax.jit(lambda p, g: _run(injected, p, g, **entry.extra_args))(params, grads)
    want = _run(entry.make(), params, grads, **entry.extra_args)
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
        assert a.dtype == b.dtype
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("entry", OPTIMIZERS)
def test_updates_keep_the_gradient_dtype(entry):
    params, grads = _tree((jnp.bfloat16, jnp.float32, jnp.complex64))
    for g, u in zip(grads, _run(entry.make(), params, grads, **entry.extra_args), strict=True):
        assert jax.tree.map(lambda x: x.dtype, u) == jax.tree.map(lambda x: x.dtype, g)
        assert all(bool(jnp.all(jnp.isfinite(x))) for x in jax.tree.leaves(u))


COND_DTYPES = (
    jnp.float16,
    jnp.bfloat16,
    jnp.float32,
    jnp.float64,
    jnp.complex64,
    jnp.complex128,
)


@pytest.mark.parametrize("entry", OPTIMIZERS)
def test_params_keep_their_dtype_under_lax_cond(entry, x64):
    params, grads = _tree(COND_DTYPES)
    tx = entry.make()

    def step(w, state, g):
        updates, state = tx.update(g, state, w, **entry.extra_args)
        return gradopt.apply_updates(w, updates), state

    def skip(w, state, g):
        del g
        return w, state

    @jax.jit
    def cond_step(pred, w, state, g):
        return jax.lax.cond(pred, step, skip, w, state, g)

    state = tx.init(params)
    # two steps: ADOPT's first step only initialises its second moment (a zero update)
    new, state = cond_step(jnp.asarray(True), params, state, grads[0])
    new, _ = cond_step(jnp.asarray(True), new, state, grads[1])
    assert {k: v.dtype for k, v in new.items()} == {k: v.dtype for k, v in params.items()}
    assert all(bool(jnp.all(jnp.isfinite(v))) for v in new.values())
    if not entry.reevaluates:  # (LM rejects the steps of gradients that are not the loss's)
        assert not np.array_equal(np.asarray(new["complex64"]), np.asarray(params["complex64"]))


@pytest.mark.parametrize("entry", OPTIMIZERS)
def test_zero_updates_inside_optax_multisteps(entry):
    """optax.MultiSteps casts its accumulator to ``accumulator_dtype`` (float32 when None,
    which drops the imaginary part, optax's own optimizers included): complex64 here."""
    _skip_optax_wrapper(entry)
    tx = entry.make()
    cases = ((jnp.float32, None), (jnp.complex64, jnp.complex64))
    trees = [_tree((dtype,)) for dtype, _ in cases]

    @jax.jit
    def two_steps(trees):
        out = []
        for (_, accumulator_dtype), (params, grads) in zip(cases, trees, strict=True):
            multi = optax.MultiSteps(tx, every_k_schedule=2, accumulator_dtype=accumulator_dtype)
            state = multi.init(params)
            first, state = multi.update(grads[0], state, params, **entry.extra_args)
            second, _ = multi.update(grads[1], state, params, **entry.extra_args)
            out.append((first, second))
        return out

    with jax.numpy_dtype_promotion("standard"):  # optax's accumulation mixes dtypes
        results = two_steps(trees)
    for (params, grads), (first, second) in zip(trees, results, strict=True):
        for g, u in zip(jax.tree.leaves(grads[0]), jax.tree.leaves(first), strict=True):
            assert u.dtype == g.dtype
            np.testing.assert_array_equal(np.asarray(u), np.zeros(u.shape))
        mean = jax.tree.map(lambda a, b: (a + b) / 2, grads[0], grads[1])
        (want,) = _run(tx, params, [mean], **entry.extra_args)
        for a, b in zip(jax.tree.leaves(second), jax.tree.leaves(want), strict=True):
            assert a.dtype == b.dtype
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-7)


# ----------------------------------------------------------------------------
# trajectories on complex parameters: optax's, 200 steps

STEPS = 200


def _complex_problem(seed=1):
    """Complex64 params (a (3, 2) matrix and a scalar) and 200 random complex gradients."""
    rng = np.random.default_rng(seed)

    def c(*shape):
        return (rng.normal(size=(*shape,)) + 1j * rng.normal(size=(*shape,))).astype(np.complex64)

    params = {"w": jnp.asarray(c(3, 2)), "b": jnp.asarray(c())}
    grads = {"w": jnp.asarray(c(STEPS, 3, 2)), "b": jnp.asarray(c(STEPS))}
    return params, grads


def _trajectory(tx, params, grads):
    def body(carry, g):
        w, state = carry
        updates, state = tx.update(g, state, w)
        w = gradopt.apply_updates(w, updates)
        return (w, state), w

    return jax.lax.scan(body, (params, tx.init(params)), grads)[1]


def _amsgrad_nu_max_raw(learning_rate, b1=0.9, b2=0.999, eps=1e-8):
    """The AMSGrad denominator without the bias correction of the maximum, from gradopt's
    primitives: optax.scale_by_amsgrad(bias_correction_nu=False)."""
    return gradopt.chain(
        gradopt.divide(
            gradopt.chain(gradopt.ema(b1), gradopt.bias_correction(b1)),
            gradopt.root_mean_square(b2, eps=eps, amsgrad=True),
        ),
        gradopt.scale_by_learning_rate(learning_rate),
    )


AGAINST_OPTAX = {
    "sgd-momentum": (gradopt.sgd(0.05, momentum=0.9), optax.sgd(0.05, momentum=0.9)),
    "sgd-nesterov": (
        gradopt.sgd(0.05, momentum=0.9, nesterov=True),
        optax.sgd(0.05, momentum=0.9, nesterov=True),
    ),
    "adagrad": (
        gradopt.adagrad(0.1, initial_accumulator_value=0.1, eps=1e-7, eps_inside_sqrt=True),
        optax.adagrad(0.1, initial_accumulator_value=0.1, eps=1e-7),
    ),
    "rmsprop": (
        gradopt.rmsprop(0.01, decay=0.9, eps=1e-8, eps_inside_sqrt=True),
        optax.rmsprop(0.01, decay=0.9, eps=1e-8),
    ),
    "rmsprop-centered": (
        gradopt.rmsprop(0.01, decay=0.9, eps=1e-8, eps_inside_sqrt=True, centered=True),
        optax.rmsprop(0.01, decay=0.9, eps=1e-8, centered=True),
    ),
    "adam": (gradopt.adam(0.01), optax.adam(0.01)),
    "adamw": (gradopt.adamw(0.01, weight_decay=0.1), optax.adamw(0.01, weight_decay=0.1)),
    "amsgrad-stages": (
        _amsgrad_nu_max_raw(0.01),
        optax.chain(optax.scale_by_amsgrad(bias_correction_nu=False), optax.scale(-0.01)),
    ),
    "adamax": (gradopt.adamax(0.01, eps_inside_max=True), optax.adamax(0.01)),
    "nadam": (gradopt.nadam(0.01, momentum_decay=None), optax.nadam(0.01)),
}

# the optimizers added after issue 19 (issues 16-18), where optax supports complex
AGAINST_OPTAX |= {
    "radam": (gradopt.radam(0.01, b2=0.9), optax.radam(0.01, b2=0.9)),
    "adabelief": (gradopt.adabelief(0.01), optax.adabelief(0.01)),
    "yogi": (gradopt.yogi(0.01), optax.yogi(0.01)),
    "nadamw": (
        gradopt.nadamw(0.01, weight_decay=0.1),
        optax.nadamw(0.01, weight_decay=0.1),
    ),
    "adamaxw": (
        gradopt.adamaxw(0.01, weight_decay=0.1),
        optax.adamaxw(0.01, weight_decay=0.1),
    ),
    "adopt-noclip": (
        gradopt.adopt(0.01, use_clipping=False),
        optax.contrib.adopt(0.01, use_clipping=False),
    ),
    "ademamix": (
        gradopt.ademamix(0.01, b3=0.99, alpha=2.0),
        optax.contrib.ademamix(0.01, b3=0.99, alpha=2.0),
    ),
    "lamb": (gradopt.lamb(0.01, weight_decay=0.1), optax.lamb(0.01, weight_decay=0.1)),
    "lars": (gradopt.lars(0.1, weight_decay=0.1), optax.lars(0.1, weight_decay=0.1)),
    "novograd": (
        gradopt.novograd(0.01, weight_decay=0.1),
        optax.novograd(0.01, weight_decay=0.1),
    ),
    "adafactor-factored": (  # min_dim_size_to_factor=1: the (3, 2) leaf is factored
        gradopt.adafactor(0.01, min_dim_size_to_factor=1),
        optax.adafactor(0.01, min_dim_size_to_factor=1),
    ),
    "schedule_free_sgd": (
        gradopt.schedule_free_sgd(0.02, b1=0.8, weight_decay=0.01),
        optax.contrib.schedule_free_sgd(0.02, b1=0.8, weight_decay=0.01),
    ),
    "schedule_free_adamw": (
        gradopt.schedule_free_adamw(0.02, b1=0.95, b2=0.99, weight_decay=0.05),
        optax.contrib.schedule_free_adamw(0.02, b1=0.95, b2=0.99, weight_decay=0.05),
    ),
}


@pytest.mark.parametrize("name", sorted(AGAINST_OPTAX))
def test_complex_trajectory_equals_optax(name):
    ours, theirs = AGAINST_OPTAX[name]
    params, grads = _complex_problem()
    got = jax.jit(_trajectory, static_argnums=0)(ours, params, grads)
    with jax.numpy_dtype_promotion("standard"):
        want = jax.jit(_trajectory, static_argnums=0)(theirs, params, grads)
    assert jax.tree.map(lambda x: x.dtype, got) == jax.tree.map(lambda x: x.dtype, want)
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)
    assert not np.allclose(np.asarray(got["w"][-1]), np.asarray(params["w"]))


def _numpy_run(step, params, grads):
    """A NumPy complex128 trajectory: ``step(t, g, w, state) -> (w, state)`` per leaf."""
    out = {}
    for k, w in params.items():
        w = np.asarray(w, np.complex128)
        state: dict = {}
        trajectory = []
        for t, g in enumerate(np.asarray(grads[k], np.complex128), start=1):
            w, state = step(t, g, w, state)
            trajectory.append(w)
        out[k] = np.stack(trajectory)
    return out


def _amsgrad_step(t, g, w, s, lr=0.01, b1=0.9, b2=0.999, eps=1e-8):
    """PyTorch's and Keras' AMSGrad: the maximum of the raw v, debiased after it."""
    m = b1 * s.get("m", 0) + (1 - b1) * g
    v = b2 * s.get("v", 0) + (1 - b2) * np.abs(g) ** 2
    v_max = np.maximum(s.get("v_max", 0), v)
    step = (m / (1 - b1**t)) / (np.sqrt(v_max / (1 - b2**t)) + eps)
    return w - lr * step, {"m": m, "v": v, "v_max": v_max}


def _adadelta_step(t, g, w, s, lr=1.0, rho=0.9, eps=1e-6):
    """Zeiler's Adadelta with |g|**2 and |dx|**2 for the squares."""
    del t
    eg = rho * s.get("eg", 0) + (1 - rho) * np.abs(g) ** 2
    dx = np.sqrt(s.get("ed", 0) + eps) / np.sqrt(eg + eps) * g
    ed = rho * s.get("ed", 0) + (1 - rho) * np.abs(dx) ** 2
    return w - lr * dx, {"eg": eg, "ed": ed}


AGAINST_NUMPY = {
    "amsgrad": (gradopt.amsgrad(0.01), _amsgrad_step),
    "adadelta": (gradopt.adadelta(1.0, rho=0.9, eps=1e-6), _adadelta_step),
}


@pytest.mark.parametrize("name", sorted(AGAINST_NUMPY))
def test_complex_trajectory_equals_numpy_transcription(name):
    ours, step = AGAINST_NUMPY[name]
    params, grads = _complex_problem()
    got = jax.jit(_trajectory, static_argnums=0)(ours, params, grads)
    want = _numpy_run(step, params, grads)
    for k in params:
        np.testing.assert_allclose(np.asarray(got[k]), want[k], rtol=1e-5, atol=1e-6)
