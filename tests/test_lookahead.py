"""Lookahead against optax.lookahead: the same fast and slow weights after every step."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import gradopt
from tests.match_optax import assert_same_trajectory, grad_fn, mixed_tree


def _optax_run(fast, k, alpha, reset, steps):
    tx = optax.lookahead(fast, k, alpha, reset_state=reset)
    p = optax.LookaheadParams.init_synced(mixed_tree())

    def step(c, _):
        p, s = c
        u, s = tx.update(grad_fn(p.fast), s, p)
        p = optax.apply_updates(p, u)
        return (p, s), (p.fast, p.slow)

    with jax.numpy_dtype_promotion("standard"):
        _, out = jax.jit(lambda p: jax.lax.scan(step, (p, tx.init(p)), None, length=steps))(p)
    return out


def _gradopt_run(fast, k, alpha, reset, steps):
    tx = gradopt.lookahead(fast, k, alpha, reset_state=reset)

    def step(c, _):
        p, s = c
        u, s = tx.update(grad_fn(p), s, p)
        p = gradopt.apply_updates(p, u)
        return (p, s), (p, gradopt.lookahead_slow_params(s))

    p = mixed_tree()
    _, out = jax.jit(lambda p: jax.lax.scan(step, (p, tx.init(p)), None, length=steps))(p)
    return out


@pytest.mark.parametrize(
    ("k", "alpha", "reset"), [(5, 0.5, False), (3, 0.8, True)], ids=["k5", "k3-reset"]
)
def test_lookahead_equals_optax(k, alpha, reset):
    fast_g = gradopt.sgd(0.02, momentum=0.9)
    fast_o = optax.sgd(0.02, momentum=0.9)
    fast, slow = _gradopt_run(fast_g, k, alpha, reset, 200)
    want_fast, want_slow = _optax_run(fast_o, k, alpha, reset, 200)
    assert_same_trajectory(fast, want_fast)
    assert_same_trajectory(slow, want_slow)


def test_fast_equals_slow_after_each_sync():
    fast, slow = _gradopt_run(gradopt.sgd(0.1, momentum=0.9), 4, 0.5, False, 12)
    for i in (3, 7, 11):
        for a, b in zip(jax.tree.leaves(fast), jax.tree.leaves(slow), strict=True):
            np.testing.assert_array_equal(np.asarray(a[i]), np.asarray(b[i]))


def test_bad_arguments():
    with pytest.raises(ValueError, match="sync_period"):
        gradopt.lookahead(gradopt.sgd(0.1), 0)
    with pytest.raises(ValueError, match="slow_step_size"):
        gradopt.lookahead(gradopt.sgd(0.1), 5, 1.5)
    with pytest.raises(ValueError, match="LookaheadState"):
        gradopt.lookahead_slow_params(gradopt.sgd(0.1).init(jnp.ones(1)))
