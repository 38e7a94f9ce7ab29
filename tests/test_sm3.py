"""SM3 against optax.sm3 (its trajectory on a tree without scalars: optax fails on
rank-0 leaves) and a NumPy transcription of SM3-II for the scalar and the 3-D leaf."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import optax
import pytest

import gradopt
from tests.match_optax import (
    assert_same_trajectory,
    grad_fn,
    mixed_tree,
    optax_trajectory,
    trajectory,
)


@pytest.mark.parametrize("momentum", [0.9, 0.0])
def test_sm3_equals_optax(momentum):
    p = {k: v for k, v in mixed_tree().items() if k != "s"}
    got = trajectory(gradopt.sm3(0.05, momentum), p)
    assert_same_trajectory(got, optax_trajectory(optax.sm3(0.05, momentum), p))


def _numpy_sm3(w, steps, lr, momentum):
    w = np.asarray(w, np.float64)
    mu = [np.zeros(n) for n in w.shape] if w.ndim >= 2 else [np.zeros_like(w)]
    nu, out = np.zeros_like(w), []
    for _ in range(steps):
        g = np.asarray(grad_fn(jnp.asarray(w, jnp.float32)), np.float64)
        if w.ndim >= 2:
            low = mu[0].reshape([-1] + [1] * (w.ndim - 1))
            for i in range(1, w.ndim):
                low = np.minimum(low, mu[i].reshape([1] * i + [-1] + [1] * (w.ndim - i - 1)))
        else:
            low = mu[0]
        acc = low + g**2
        up = np.where(acc > 0, g / np.sqrt(acc + 1e-8), 0.0)
        nu = momentum * nu + (1 - momentum) * up
        w = (w - lr * nu).astype(np.float32).astype(np.float64)
        if w.ndim >= 2:
            axes = range(w.ndim)
            mu = [acc.max(axis=tuple(j for j in axes if j != i)) for i in axes]
        else:
            mu = [acc]
        out.append(w)
    return out


def test_sm3_scalar_and_3d_leaves_follow_the_rule():
    p = mixed_tree()
    got = trajectory(gradopt.sm3(0.05), p, steps=50)
    for key in ("s", "t"):
        want = np.stack(_numpy_sm3(p[key], 50, 0.05, 0.9))
        np.testing.assert_allclose(np.asarray(got[key]), want, rtol=1e-5, atol=1e-5)


def test_state_is_one_accumulator_per_axis_index():
    state = gradopt.sm3(0.1).init(mixed_tree())[0]
    assert [m.shape for m in state.mu["t"]] == [(3,), (4,), (2,)]
    assert [m.shape for m in state.mu["v"]] == [(5,)]
