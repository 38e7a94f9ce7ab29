"""Shampoo and SOAP against NumPy float64 transcriptions of their papers' algorithms;
Sophia against ``optax.contrib.sophia``.

Gradients come from a fixed function of the parameters (a matrix least-squares
term plus a sine), so the trajectories feed back as in training.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import gradopt
from gradopt.transforms._matrix_roots import inverse_root_eigh, inverse_root_newton

_rng = np.random.default_rng(1)
A = _rng.normal(size=(3, 3))
B = _rng.normal(size=(3, 3))
C = _rng.normal(size=(3, 3))


def grad_np(w):
    return A.T @ (A @ w @ B - C) @ B.T + 0.3 * np.sin(w)


def grad_jax(w):
    a, b, c = (jnp.asarray(x, jnp.float32) for x in (A, B, C))
    return a.T @ (a @ w @ b - c) @ b.T + 0.3 * jnp.sin(w)


W0 = _rng.normal(size=(3, 3))  # square: both factors full rank (see test_soap...)
V0 = _rng.normal(size=(5,))


def run(opt, steps):
    """Trajectory of ``{"w": 3x3, "v": vector}``; the vector's gradient is ``v - 1``."""

    @jax.jit
    def step(params, state):
        grads = {"w": grad_jax(params["w"]), "v": params["v"] - 1.0}
        updates, state = opt.update(grads, state, params)
        return gradopt.apply_updates(params, updates), state

    params = {"w": jnp.asarray(W0, jnp.float32), "v": jnp.asarray(V0, jnp.float32)}
    state, out = opt.init(params), []
    for _ in range(steps):
        params, state = step(params, state)
        out.append(params)
    return out, state


def root_np(m, p, eps):
    w, v = np.linalg.eigh(m + eps * np.eye(len(m)))
    return (v * np.maximum(w, eps) ** (-1.0 / p)) @ v.T


def shampoo_np(steps, lr, eps, k, block):
    """Algorithm 1 of Gupta et al. (2018) per block, L_0 = R_0 = 0 with eps I in the
    root; roots refreshed at steps 1, 1 + k, ...; the vector takes the plain gradient."""
    w, v = W0.copy(), V0.copy()
    rows = [(i, min(i + block, 3)) for i in range(0, 3, block)]
    cols = [(j, min(j + block, 3)) for j in range(0, 3, block)]
    stats = {(r, c): [np.zeros((r[1] - r[0],) * 2), np.zeros((c[1] - c[0],) * 2), None, None]
             for r in rows for c in cols}  # fmt: skip
    out = []
    for t in range(1, steps + 1):
        g = grad_np(w)
        step = np.zeros_like(w)
        for (r, c), s in stats.items():
            gb = g[r[0] : r[1], c[0] : c[1]]
            s[0] += gb @ gb.T
            s[1] += gb.T @ gb
            if (t - 1) % k == 0:
                s[2], s[3] = root_np(s[0], 4, eps), root_np(s[1], 4, eps)
            step[r[0] : r[1], c[0] : c[1]] = s[2] @ gb @ s[3]
        w = w - lr * step
        v = v - lr * (v - 1.0)
        out.append((w.copy(), v.copy()))
    return out


@pytest.mark.parametrize(("k", "block"), [(1, 8), (3, 2)], ids=["k1-one_block", "k3-blocks"])
def test_shampoo_matches_numpy_algorithm(k, block):
    opt = gradopt.shampoo(
        0.05, b1=0.0, eps=1e-4, block_size=block, precondition_every=k, graft="none"
    )
    ours, _ = run(opt, 12)
    for params, (w, v) in zip(ours, shampoo_np(12, 0.05, 1e-4, k, block), strict=True):
        np.testing.assert_allclose(params["w"], w, rtol=2e-4, atol=2e-5)
        np.testing.assert_allclose(params["v"], v, rtol=2e-5, atol=1e-6)


def test_one_block_is_the_full_kronecker_preconditioner():
    """k = 1, one block, no grafting: vec(P) = ((L + eps I) kron (R + eps I))^(-1/4) vec(G)."""
    eps = 1e-3
    opt = gradopt.shampoo(1.0, b1=0.0, eps=eps, graft="none")
    w = {"w": jnp.zeros((3, 4))}
    state = opt.init(w)
    grads = [_rng.normal(size=(3, 4)) for _ in range(3)]
    lhs, rhs = np.zeros((3, 3)), np.zeros((4, 4))
    for g in grads:
        updates, state = opt.update({"w": jnp.asarray(g, jnp.float32)}, state)
        lhs, rhs = lhs + g @ g.T, rhs + g.T @ g
    full = np.kron(lhs + eps * np.eye(3), rhs + eps * np.eye(4))
    expected = -(root_np(full, 4, 0.0) @ g.reshape(-1)).reshape(3, 4)
    np.testing.assert_allclose(updates["w"], expected, rtol=1e-5, atol=1e-6)


def test_refresh_only_every_k_steps():
    opt = gradopt.shampoo(0.01, precondition_every=3)
    _, state = run(opt, 2)
    _, state3 = run(opt, 3)
    _, state4 = run(opt, 4)
    blk = lambda s: s[0].blocks["w"][0]  # noqa: E731
    np.testing.assert_array_equal(blk(state).left_root, blk(state3).left_root)
    assert not np.allclose(blk(state3).left_root, blk(state4).left_root)


def test_grafting_takes_the_graft_norm_and_start_step():
    g = _rng.normal(size=(3, 4)).astype(np.float32)
    w = jnp.zeros((3, 4))
    sgd = gradopt.shampoo(1.0, b1=0.0, graft="sgd")
    u, _ = sgd.update(jnp.asarray(g), sgd.init(w), w)
    np.testing.assert_allclose(np.linalg.norm(u), np.linalg.norm(g), rtol=1e-5)
    late = gradopt.shampoo(1.0, b1=0.0, graft="adam", start_preconditioning_step=2)
    u, _ = late.update(jnp.asarray(g), late.init(w), w)
    np.testing.assert_allclose(u, -g / (np.abs(g) + 1e-8), rtol=1e-5)  # Adam's first step


def test_coupled_newton_root_matches_eigh():
    m = _rng.normal(size=(5, 5))
    m = jnp.asarray(m @ m.T, jnp.float32)
    np.testing.assert_allclose(
        inverse_root_newton(m, 4, 1e-3), inverse_root_eigh(m, 4, 1e-3), rtol=2e-3, atol=2e-4
    )
    ours, _ = run(gradopt.shampoo(0.05, b1=0.0, eps=1e-4, graft="none", root="newton"), 5)
    ref = shampoo_np(5, 0.05, 1e-4, 1, 8)
    np.testing.assert_allclose(ours[-1]["w"], ref[-1][0], rtol=5e-3, atol=5e-4)


def soap_np(steps, lr, b1, b2, eps, k):
    """Algorithm 3 of Vyas et al. (2024): the step in the current bases (the identity at
    first), then the factors, then an eigh refresh after steps 1, 1 + k, ...; the
    vector runs Adam."""
    w, v = W0.copy(), V0.copy()
    lf, rf = np.zeros((3, 3)), np.zeros((3, 3))
    m, nu = np.zeros_like(w), np.zeros_like(w)
    mv, nv = np.zeros_like(v), np.zeros_like(v)
    ql, qr = np.eye(3), np.eye(3)
    out = []
    for t in range(1, steps + 1):
        g = grad_np(w)
        m = b1 * m + (1 - b1) * g
        g_rot, m_rot = ql.T @ g @ qr, ql.T @ m @ qr
        nu = b2 * nu + (1 - b2) * g_rot**2
        n_rot = (m_rot / (1 - b1**t)) / (np.sqrt(nu / (1 - b2**t)) + eps)
        w = w - lr * ql @ n_rot @ qr.T
        lf, rf = b2 * lf + (1 - b2) * g @ g.T, b2 * rf + (1 - b2) * g.T @ g
        if (t - 1) % k == 0:
            ql, qr = np.linalg.eigh(lf)[1], np.linalg.eigh(rf)[1]
        gv = v - 1.0
        mv, nv = b1 * mv + (1 - b1) * gv, b2 * nv + (1 - b2) * gv**2
        v = v - lr * (mv / (1 - b1**t)) / (np.sqrt(nv / (1 - b2**t)) + eps)
        out.append((w.copy(), v.copy()))
    return out


def test_soap_matches_numpy_algorithm():
    """On a square matrix, whose factors have full rank: in the null space of a
    rank-deficient factor, float32 rounding is scaled up to +-1 by Adam's
    normalisation, and float32 and float64 runs part ways."""
    ours, _ = run(gradopt.soap(0.02, precondition_every=3), 12)
    for params, (w, v) in zip(ours, soap_np(12, 0.02, 0.95, 0.95, 1e-8, 3), strict=True):
        np.testing.assert_allclose(params["w"], w, rtol=1e-3, atol=1e-4)
        np.testing.assert_allclose(params["v"], v, rtol=1e-5, atol=1e-6)


# ----------------------------------------------------------------------------
# Sophia against optax.contrib.sophia


def sophia_loss(p):
    return jnp.sum(0.5 * jnp.asarray([1.0, 4.0, 9.0]) * p["a"] ** 2) + jnp.sum(jnp.cosh(p["b"]))


def test_sophia_equals_optax():
    kwargs = {"learning_rate": 0.05, "update_interval": 3, "gamma": 0.05, "weight_decay": 1e-3}
    params0 = {"a": jnp.asarray([1.0, -2.0, 0.5]), "b": jnp.asarray([[0.3, -1.0], [2.0, 0.1]])}

    def trajectory(opt, key):
        @jax.jit
        def step(params, state):
            grads = jax.grad(sophia_loss)(params)
            updates, state = opt.update(grads, state, params, **{key: sophia_loss})
            return gradopt.apply_updates(params, updates), state

        params, state, out = params0, opt.init(params0), []
        for _ in range(25):
            params, state = step(params, state)
            out.append(params)
        return out

    ours = trajectory(gradopt.sophia(**kwargs), "value_fn")
    with jax.numpy_dtype_promotion("standard"):  # optax's bias correction mixes int and float
        theirs = trajectory(optax.contrib.sophia(**kwargs), "obj_fn")
    for a, b in zip(ours, theirs, strict=True):
        for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
            np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6)
    assert float(sophia_loss(ours[-1])) < float(sophia_loss(params0)) / 2


def test_sophia_gnb_estimator_is_batch_times_squared_sampled_gradient():
    def sampled(p, key):
        return jnp.sum(p * jax.random.normal(key, p.shape))

    opt = gradopt.sophia(0.1, b2=0.5, estimator="gnb", gnb_batch_size=8.0, weight_decay=0.0)
    w = jnp.asarray([1.0, 2.0])
    _, state = opt.update(jnp.ones(2), opt.init(w), w, sampled_value_fn=sampled)
    _, sub = jax.random.split(jax.random.PRNGKey(0))
    g = np.asarray(jax.random.normal(sub, (2,)))
    np.testing.assert_allclose(state[0].nu, 0.5 * 8.0 * g * g, rtol=1e-6)
