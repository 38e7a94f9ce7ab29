"""gradopt.loss_scaling and gradopt.scale_loss: the rule transcribed step by step."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradopt

STEPS = 30
BAD = {3, 4, 11, 20}  # steps whose (scaled) gradient overflows


def _grads():
    rng = np.random.default_rng(0)
    g = rng.normal(size=(STEPS, 5)).astype(np.float32)
    return g


def _reference(grads, *, initial_scale, growth_interval, growth_factor=2.0, backoff_factor=0.5):
    """Adam (optax's form, float64) on the unscaled finite gradients, and the scale sequence."""
    scale, good = initial_scale, 0
    w = np.ones(5)
    m = np.zeros(5)
    v = np.zeros(5)
    t = 0
    scales = []
    for k in range(STEPS):
        if k in BAD:
            scale, good = scale * backoff_factor, 0
        else:
            g = grads[k].astype(np.float64)
            t += 1
            m = 0.9 * m + 0.1 * g
            v = 0.999 * v + 0.001 * g * g
            w = w - 0.01 * (m / (1 - 0.9**t)) / (np.sqrt(v / (1 - 0.999**t)) + 1e-8)
            if good == growth_interval - 1:
                scale, good = scale * growth_factor, 0
            else:
                good += 1
        scales.append(scale)
    return w, scales


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float16])
def test_loss_scaling_follows_the_rule(dtype):
    grads = _grads()
    tx = gradopt.loss_scaling(gradopt.adam(0.01), initial_scale=256.0, growth_interval=4)
    params = {"w": jnp.ones(5, dtype)}

    def loss(p, state, k):
        # a linear loss whose gradient is grads[k] (times S inside scale_loss), NaN on bad steps
        value = jnp.sum(p["w"].astype(jnp.float32) * jnp.asarray(grads)[k])
        value = value * jnp.where(jnp.isin(k, jnp.asarray(sorted(BAD))), jnp.inf, 1.0)
        return gradopt.scale_loss(value, state)

    @jax.jit
    def run(params):
        def step(carry, k):
            params, state = carry
            g = jax.grad(loss)(params, state, k)
            updates, state = tx.update(g, state, params)
            return (gradopt.apply_updates(params, updates), state), state.scale

        return jax.lax.scan(step, (params, tx.init(params)), jnp.arange(STEPS))

    (final, state), scales = run(params)
    want_w, want_scales = _reference(grads, initial_scale=256.0, growth_interval=4)
    np.testing.assert_array_equal(np.asarray(scales), np.asarray(want_scales, np.float32))
    tol = 2e-5 if dtype == jnp.float32 else 2e-3
    np.testing.assert_allclose(np.asarray(final["w"], np.float64), want_w, rtol=tol, atol=tol)
    # the inner optimizer took only the finite steps
    counts = [int(x) for x in jax.tree.leaves(state.inner_state) if x.dtype == jnp.int32]
    assert counts and set(counts) == {STEPS - len(BAD)}


def test_float16_gradients_that_underflow_unscaled_survive_with_a_scale():
    """float32 master weights, a float16 forward pass whose backward pass underflows
    (a gradient of 1e-8, below float16's smallest number): learned only when scaled."""
    params = {"w": jnp.ones(2, jnp.float32)}
    tx = gradopt.loss_scaling(gradopt.sgd(1.0), initial_scale=2.0**14, dynamic=False)
    state = tx.init(params)

    def forward(p):
        small = jnp.float16(1e-4)
        return jnp.sum((p["w"].astype(jnp.float16) * small) * small).astype(jnp.float32)

    unscaled = jax.grad(forward)(params)
    assert float(unscaled["w"][0]) == 0.0
    grads = jax.grad(lambda p: gradopt.scale_loss(forward(p), state))(params)
    updates, _ = tx.update(grads, state, params)
    np.testing.assert_allclose(np.asarray(updates["w"]), -1e-8, rtol=2e-3)


def test_static_scale_stays_and_skips_non_finite_steps():
    tx = gradopt.loss_scaling(gradopt.sgd(0.1), initial_scale=8.0, dynamic=False)
    params = {"w": jnp.ones(2)}
    state = tx.init(params)
    updates, state = tx.update({"w": jnp.array([jnp.nan, 8.0])}, state, params)
    chex.assert_trees_all_equal(updates, {"w": jnp.zeros(2)})
    updates, state = tx.update({"w": jnp.array([8.0, 16.0])}, state, params)
    chex.assert_trees_all_close(updates, {"w": jnp.array([-0.1, -0.2])})
    assert float(state.scale) == 8.0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"initial_scale": 0.0}, "initial_scale"),
        ({"growth_interval": 0}, "growth_interval"),
        ({"growth_factor": 1.0}, "growth_factor"),
        ({"backoff_factor": 1.0}, "backoff_factor"),
    ],
)
def test_invalid_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        gradopt.loss_scaling(gradopt.sgd(0.1), **kwargs)


def test_scale_loss_needs_a_loss_scale_in_the_state():
    with pytest.raises(ValueError, match="no loss scale"):
        gradopt.scale_loss(1.0, gradopt.sgd(0.1).init({"w": jnp.ones(1)}))
