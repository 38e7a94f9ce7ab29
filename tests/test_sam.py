"""SAM against optax.contrib.sam (transparent and opaque modes), and the two-gradient
loop written with ``sam_ascent``."""

from __future__ import annotations

import jax
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


@pytest.mark.parametrize(("k", "reset"), [(2, True), (3, False)], ids=["k2", "k3-keep"])
def test_sam_equals_optax_contrib_sam(k, reset):
    got = gradopt.sam(
        gradopt.sgd(0.02, momentum=0.9),
        gradopt.chain(gradopt.normalize_by_global_norm(), gradopt.sgd(0.05, momentum=0.5)),
        k,
        reset_state=reset,
    )
    want = optax.contrib.sam(
        optax.sgd(0.02, momentum=0.9),
        optax.chain(optax.contrib.normalize(), optax.sgd(0.05, momentum=0.5)),
        k,
        reset,
    )
    assert_same_trajectory(trajectory(got), optax_trajectory(want))


def test_opaque_mode_equals_optax():
    def run(tx, std):
        p = mixed_tree()

        def step(c, _):
            p, s = c
            u, s = tx.update(grad_fn(p), s, p, grad_fn=lambda q, i: grad_fn(q))
            p = jax.tree.map(lambda a, b: a + b, p, u)
            return (p, s), p

        f = jax.jit(lambda p: jax.lax.scan(step, (p, tx.init(p)), None, length=100)[1])
        if std:
            with jax.numpy_dtype_promotion("standard"):
                return f(p)
        return f(p)

    got = run(gradopt.sam(gradopt.sgd(0.02, momentum=0.9), opaque_mode=True), False)
    adv = optax.chain(optax.contrib.normalize(), optax.sgd(0.05))
    want = run(optax.contrib.sam(optax.sgd(0.02, momentum=0.9), adv, opaque_mode=True), True)
    assert_same_trajectory(got, want)


def test_the_two_gradient_loop_is_the_papers_step():
    loss = lambda w: jnp.sum(jnp.sin(w) + 0.5 * w**2)  # noqa: E731
    w = jnp.array([1.0, -2.0, 0.5])
    ascent, opt = gradopt.sam_ascent(0.05), gradopt.sgd(0.1)
    state = opt.init(w)
    g = jax.grad(loss)(w)
    e, _ = ascent.update(g, ascent.init(w))
    u, state = opt.update(jax.grad(loss)(gradopt.apply_updates(w, e)), state, w)
    wn, gn = np.asarray(w, np.float64), np.asarray(g, np.float64)
    wa = wn + 0.05 * gn / np.linalg.norm(gn)
    want = wn - 0.1 * (np.cos(wa) + wa)
    np.testing.assert_allclose(np.asarray(gradopt.apply_updates(w, u)), want, rtol=1e-6)


def test_zero_gradient_is_not_nan():
    tx = gradopt.normalize_by_global_norm()
    out, _ = tx.update({"w": jnp.zeros(2)}, tx.init({"w": jnp.zeros(2)}))
    assert np.array_equal(np.asarray(out["w"]), np.zeros(2))


def test_bad_arguments():
    with pytest.raises(ValueError, match="sync_period"):
        gradopt.sam(gradopt.sgd(0.1), sync_period=0)
    with pytest.raises(ValueError, match="rho"):
        gradopt.sam_ascent(-1.0)
    with pytest.raises(ValueError, match="grad_fn"):
        tx = gradopt.sam(gradopt.sgd(0.1), opaque_mode=True)
        tx.update(jnp.ones(2), tx.init(jnp.ones(2)), jnp.ones(2))
