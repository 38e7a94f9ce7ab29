"""The forms of momentum: Nesterov look-ahead vs change of variables, learning rate
inside vs outside the velocity, and Adadelta's defaults descending."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import gradopt
from tests import references as ref

STEPS = 100
MU = 0.9
LR = 0.05
SHAPES = {"w": (3, 4), "b": (4,), "nested": {"k": (2, 2, 2)}}


def initial_params() -> dict:
    rng = np.random.default_rng(1)
    return ref.tree_map(lambda shape: rng.normal(size=shape), SHAPES)


def grad_leaf_np(w):
    return 0.8 * (w - 0.5) + 0.3 * np.sin(2.0 * w)


def grad_leaf(w):
    return 0.8 * (w - 0.5) + 0.3 * jnp.sin(2.0 * w)


def grad(tree):
    return jax.tree.map(grad_leaf, tree)


def as_jax(tree, dtype):
    return jax.tree.map(lambda x: jnp.asarray(x, dtype), tree)


def stack(trajectory):
    return jax.tree.map(lambda *xs: np.stack(xs), *trajectory)


def scan(step, carry, steps=STEPS):
    """Run ``step(carry) -> (carry, output)`` ``steps`` times in one jitted scan."""
    return jax.jit(lambda c: jax.lax.scan(lambda c, _: step(c), c, None, length=steps))(carry)


# ----------------------------------------------------------------------------
# (a) Nesterov: look-ahead form == change-of-variables form


def nesterov_trajectories(dtype):
    params = as_jax(initial_params(), dtype)

    lookahead = gradopt.heavy_ball(LR, MU)

    def lookahead_step(carry):
        w, s = carry
        point = gradopt.lookahead_params(w, s, MU)  # w - mu*u
        u, s = lookahead.update(grad(point), s, w)
        w = gradopt.apply_updates(w, u)
        # the change-of-variables iterate is the look-ahead point w - mu*u
        return (w, s), gradopt.lookahead_params(w, s, MU)

    changed = gradopt.chain(gradopt.trace(MU, nesterov=True), gradopt.scale_by_learning_rate(LR))

    def changed_step(carry):
        w, s = carry
        u, s = changed.update(grad(w), s, w)
        w = gradopt.apply_updates(w, u)
        return (w, s), w

    _, a = scan(lookahead_step, (params, lookahead.init(params)))
    _, b = scan(changed_step, (params, changed.init(params)))
    return a, b


def test_nesterov_forms_agree_float64(x64):
    del x64
    a, b = nesterov_trajectories(jnp.float64)
    chex.assert_trees_all_close(a, b, rtol=1e-12, atol=1e-12)
    assert np.max(np.abs(np.asarray(a["w"][-1]) - initial_params()["w"])) > 0.1


def test_nesterov_forms_agree_float32():
    a, b = nesterov_trajectories(jnp.float32)
    chex.assert_tree_all_finite(a)
    chex.assert_trees_all_close(a, b, rtol=1e-5, atol=1e-6)


def test_lookahead_form_matches_book_algorithm(x64):
    del x64
    params = as_jax(initial_params(), jnp.float64)
    opt = gradopt.heavy_ball(LR, MU)

    def step(carry):
        w, s = carry
        u, s = opt.update(grad(gradopt.lookahead_params(w, s, MU)), s, w)
        w = gradopt.apply_updates(w, u)
        return (w, s), w

    _, got = scan(step, (params, opt.init(params)))
    want = stack(
        ref.run(ref.nesterov_lookahead(LR, MU, grad_leaf_np), initial_params(), lambda t: t, STEPS)
    )
    chex.assert_trees_all_close(got, want, rtol=1e-12, atol=1e-12)


def test_lookahead_params_needs_a_heavy_ball_state():
    params = {"w": jnp.ones(3)}
    state = gradopt.sgd(0.1, 0.9).init(params)
    with pytest.raises(ValueError, match="HeavyBallState"):
        gradopt.lookahead_params(params, state, 0.9)
    # found inside a chain, and the point is w - mu*u
    opt = gradopt.chain(gradopt.scale(1.0), gradopt.sgd(0.1, 0.9, classic_momentum=True))
    state = opt.init(params)
    _, state = opt.update({"w": jnp.ones(3)}, state, params)
    point = gradopt.lookahead_params(params, state, 0.9)
    np.testing.assert_allclose(point["w"], 1.0 - 0.9 * 0.1, rtol=1e-6)


# ----------------------------------------------------------------------------
# (b) learning rate inside vs outside the velocity


def lr_form_trajectories(learning_rate):
    params = as_jax(initial_params(), jnp.float64)
    inside = gradopt.heavy_ball(learning_rate, MU)
    outside = gradopt.chain(gradopt.trace(MU), gradopt.scale_by_learning_rate(learning_rate))

    def runner(opt):
        def step(carry):
            w, s = carry
            u, s = opt.update(grad(w), s, w)
            w = gradopt.apply_updates(w, u)
            return (w, s), w

        return scan(step, (params, opt.init(params)))[1]

    return runner(inside), runner(outside)


def test_lr_inside_equals_outside_for_a_constant_learning_rate(x64):
    del x64
    inside, outside = lr_form_trajectories(LR)
    chex.assert_trees_all_close(inside, outside, rtol=1e-12, atol=1e-12)


def schedule_np(count):
    return 0.1 * 0.9**count


def schedule_jax(count):
    return 0.1 * 0.9 ** count.astype(jnp.float64)


def test_lr_inside_differs_from_outside_when_the_learning_rate_changes(x64):
    del x64
    inside, outside = lr_form_trajectories(schedule_jax)
    params = initial_params()
    want_inside = stack(ref.run(ref.sgd(schedule_np, MU, classic=True), params, _grad_np, STEPS))
    want_outside = stack(ref.run(ref.sgd(schedule_np, MU), params, _grad_np, STEPS))
    chex.assert_trees_all_close(inside, want_inside, rtol=1e-11, atol=1e-12)
    chex.assert_trees_all_close(outside, want_outside, rtol=1e-11, atol=1e-12)
    # The difference is the one the formulas predict: the first step is the same
    # (lr_0 g_1), and at the second step the classic velocity still carries
    # mu*lr_0*g_1 where the PyTorch form has mu*lr_1*g_1, so
    # w_inside - w_outside = -mu * g_1 * (lr_0 - lr_1).
    diff = jax.tree.map(lambda a, b: np.asarray(a) - np.asarray(b), inside, outside)
    np.testing.assert_allclose(diff["w"][0], 0.0, atol=1e-15)
    g1 = grad_leaf_np(params["w"])
    predicted = -MU * g1 * (schedule_np(0) - schedule_np(1))
    np.testing.assert_allclose(diff["w"][1], predicted, rtol=1e-10, atol=1e-15)
    assert np.max(np.abs(diff["w"][1])) > 1e-3
    # and it persists over the run rather than being a rounding effect
    assert np.max(np.abs(diff["w"][-1])) > 1e-3


def _grad_np(tree):
    return ref.tree_map(grad_leaf_np, tree)


# ----------------------------------------------------------------------------
# (c) Adadelta with its defaults descends


def quadratic_loss(w):
    scales = jnp.asarray([1.0, 3.0, 10.0])
    return 0.5 * jnp.sum(scales * jnp.square(w - jnp.asarray([1.0, -2.0, 0.5])))


def run_loss(opt, steps=300):
    w0 = jnp.zeros(3)

    def step(carry):
        w, s = carry
        u, s = opt.update(jax.grad(quadratic_loss)(w), s, w)
        w = optax.apply_updates(w, u)
        return (w, s), quadratic_loss(w)

    _, losses = scan(step, (w0, opt.init(w0)), steps)
    return float(quadratic_loss(w0)), np.asarray(losses)


def test_adadelta_defaults_descend():
    start, losses = run_loss(gradopt.adadelta())
    assert np.all(np.isfinite(losses))
    assert losses[-1] < 0.9 * start, (start, losses[-1])
    assert np.all(np.diff(losses[:50]) < 0)  # monotone at first, on a convex quadratic


def test_optax_adadelta_defaults_ascend():
    """A fact about the peer: optax 0.2.8's adadelta() has no learning rate and no
    sign flip, so its defaults climb the loss (gradopt.adadelta() is the fix)."""
    start, losses = run_loss(optax.adadelta())
    assert losses[-1] > start, (start, losses[-1])
