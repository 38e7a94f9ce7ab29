"""Trajectories of two optimizers on the same problem, for the optax comparisons.

The problem is a tree of mixed shapes (a scalar, a vector, two matrices, a
3-D tensor) with the gradient ``(w - 5) + 0.3 sin(3 w)``: smooth, non-linear,
and far enough from its minimum over 200 steps that both libraries' rounding
stays at the float32 level instead of being amplified near the optimum. Each
trajectory is one ``lax.scan`` (one compile per optimizer).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


def mixed_tree():
    k = jax.random.split(jax.random.PRNGKey(0), 4)
    return {
        "s": jnp.asarray(0.7, jnp.float32),
        "v": jax.random.normal(k[0], (5,)),
        "m": jax.random.normal(k[1], (4, 6)),
        "t": jax.random.normal(k[2], (3, 4, 2)),
        "n": {"m2": jax.random.normal(k[3], (7, 3))},
    }


def grad_fn(params):
    return jax.tree.map(lambda x: (x - 5.0) + 0.3 * jnp.sin(3.0 * x), params)


def loss_fn(params):
    return sum(
        jnp.sum(0.5 * (x - 5.0) ** 2 - 0.1 * jnp.cos(3.0 * x)) for x in jax.tree.leaves(params)
    )


def trajectory(tx, params=None, steps: int = 200, *, value: bool = False):
    """Stacked parameters after each of ``steps`` updates (leaves of shape (steps, ...))."""
    params = mixed_tree() if params is None else params

    def step(carry, _):
        p, s = carry
        extra = {"value": loss_fn(p)} if value else {}
        u, s = tx.update(grad_fn(p), s, p, **extra)
        p = jax.tree.map(lambda a, b: a + b, p, u)
        return (p, s), p

    _, out = jax.jit(lambda p: jax.lax.scan(step, (p, tx.init(p)), None, length=steps))(params)
    return out


def optax_trajectory(tx, params=None, steps: int = 200, *, value: bool = False):
    """:func:`trajectory` under standard dtype promotion (some optax code needs it)."""
    with jax.numpy_dtype_promotion("standard"):
        return trajectory(tx, params, steps, value=value)


def assert_same_trajectory(got, want, rtol=1e-5, atol=1e-5):
    """Every parameter after every step equal within ``rtol`` (``atol`` for values near 0)."""
    for (path, a), b in zip(
        jax.tree_util.tree_flatten_with_path(got)[0], jax.tree.leaves(want), strict=True
    ):
        np.testing.assert_allclose(
            np.asarray(a), np.asarray(b), rtol=rtol, atol=atol, err_msg=jax.tree_util.keystr(path)
        )
