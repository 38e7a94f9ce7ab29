"""Delay-tolerant AdaGrad (McMahan & Streeter, 2014) against a NumPy transcription of the paper."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradopt
from gradopt import distributed as gd

RNG = np.random.default_rng(1)
A = RNG.normal(size=(7, 7)) / 3
H = A @ A.T + 0.1 * np.eye(7)  # a convex quadratic 0.5 x'Hx - b'x
B = RNG.normal(size=7)


def np_grad(x):
    return H @ x - B


class NumpyAdaptiveRevision:
    """AdaptiveRevision, per coordinate, float64, written from the paper's formulas."""

    def __init__(self, n, alpha, z0, eps):
        self.alpha, self.eps = alpha, eps
        self.z = np.full(n, z0)
        self.zmax = np.full(n, z0)
        self.gbar = np.zeros(n)
        self.eta = alpha / (np.sqrt(self.zmax) + eps)
        self.x = np.zeros(n)
        self.max_was_active = False

    def read(self):
        return self.x.copy(), self.gbar.copy()

    def update(self, g, gbar_old):
        g_bck = self.gbar - gbar_old
        eta_old = self.eta
        self.z = self.z + g**2 + 2 * g * g_bck
        self.zmax = np.maximum(self.zmax, self.z)
        self.max_was_active |= bool(np.any(self.z < self.zmax))
        self.eta = self.alpha / (np.sqrt(self.zmax) + self.eps)
        self.x = self.x - self.eta * g - (self.eta - eta_old) * g_bck
        self.gbar = self.gbar + g


def split(x):  # a nested pytree over the 7 coordinates
    return {"a": x[:3], "b": {"c": x[3:].reshape(2, 2)}}


def join(tree):
    return np.concatenate([np.ravel(tree["a"]), np.ravel(tree["b"]["c"])])


@pytest.mark.parametrize("eps", [0.0, 1e-3])
def test_matches_the_numpy_reference_under_random_delays(x64, eps):
    alpha, z0, steps = 0.4, 0.5, 100
    delays = np.random.default_rng(2).integers(0, 12, size=steps)
    noise = np.random.default_rng(3).normal(size=(steps, 7))
    ref = NumpyAdaptiveRevision(7, alpha, z0, eps)
    ref_reads = [ref.read()]
    tx = gd.delay_tolerant_adagrad(alpha, z0, eps)
    x = split(jnp.zeros(7, jnp.float64))
    state = tx.init(x)
    reads = [(x, tx.read(state))]
    for t in range(steps):
        d = min(int(delays[t]), t)
        xr, gbar_r = ref_reads[t - d]
        ref.update(np_grad(xr) + noise[t], gbar_r)
        ref_reads.append(ref.read())

        x_read, snapshot = reads[t - d]
        g = split(jnp.asarray(np_grad(join(x_read)) + noise[t]))
        u, state = tx.update(g, state, x, **gd.backlog_since(state, snapshot))
        x = gradopt.apply_updates(x, u)
        reads.append((x, tx.read(state)))
    np.testing.assert_allclose(join(x), ref.x, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(join(state.max_z), ref.zmax, rtol=1e-12)
    np.testing.assert_allclose(join(state.grad_sum), ref.gbar, rtol=1e-12, atol=1e-13)
    assert ref.max_was_active  # z fell below z' at some step: the test exercises the max


def test_downpour_with_a_fixed_read_delay_matches_the_reference(x64):
    alpha, z0, steps, delay = 0.3, 1.0, 60, 9
    ref = NumpyAdaptiveRevision(7, alpha, z0, 0.0)
    reads = [ref.read()]
    for t in range(steps):
        xr, gbar_r = reads[max(0, t - delay)]
        ref.update(np_grad(xr), gbar_r)
        reads.append(ref.read())
    h, b = jnp.asarray(H), jnp.asarray(B)

    def loss(p, dummy):
        del dummy
        x = jnp.concatenate([p["a"], p["b"]["c"].ravel()])
        return 0.5 * x @ h @ x - b @ x

    res = gd.simulate(
        gd.downpour(gd.delay_tolerant_adagrad(alpha, z0)),
        split(jnp.zeros(7, jnp.float64)),
        loss,
        [np.zeros(1)],
        n_workers=1,
        steps=steps,
        read_delay=delay,
        n_shards=2,
    )
    np.testing.assert_allclose(join(res.params), ref.x, rtol=1e-11, atol=1e-12)
    assert res.telemetry.delays[delay] == steps - delay


def test_zero_delay_is_adagrad_bitwise():
    lr, z0, eps = 0.2, 0.1, 1e-10
    dt, ada = gd.delay_tolerant_adagrad(lr, z0, eps), gradopt.adagrad(lr, z0, eps)
    x = {"a": jnp.zeros(3, jnp.float32), "b": jnp.ones((2, 2), jnp.float32)}
    xs, sd, sa = x, dt.init(x), ada.init(x)
    rng = np.random.default_rng(4)
    for _ in range(40):
        g = jax.tree.map(lambda p: jnp.asarray(rng.normal(size=p.shape), jnp.float32), x)
        ud, sd = dt.update(g, sd, xs)
        ua, sa = ada.update(g, sa, xs)
        assert jax.tree.all(jax.tree.map(lambda u, v: np.array_equal(u, v), ud, ua))
        xs = gradopt.apply_updates(xs, ud)
    # jitted, with an explicit zero backlog and the current rate as the rate read
    zero = jax.tree.map(jnp.zeros_like, x)
    jd = jax.jit(lambda g, s: dt.update(g, s, x, backlog=zero))
    ja = jax.jit(lambda g, s: ada.update(g, s, x))
    sd, sa = dt.init(x), ada.init(x)
    for _ in range(100):
        g = jax.tree.map(lambda p: jnp.asarray(rng.normal(size=p.shape), jnp.float32), x)
        (ud, sd), (ua, sa) = jd(g, sd), ja(g, sa)
        assert jax.tree.all(jax.tree.map(lambda u, v: np.array_equal(u, v), ud, ua))
    # and through the simulator: one replica, no delay
    rs = [
        gd.simulate(
            gd.downpour(tx),
            x,
            lambda p, y: jnp.sum((p["a"] - y[0]) ** 2) + jnp.sum(p["b"] ** 2),
            [np.ones((4, 3), np.float32)],
            n_workers=1,
            steps=30,
            batch_size=1,
        ).params
        for tx in (dt, ada)
    ]
    assert jax.tree.all(jax.tree.map(lambda u, v: np.array_equal(u, v), *rs))


def test_jit_and_state_structure_are_stable():
    tx = gd.delay_tolerant_adagrad(0.1)
    x = jnp.zeros(4)
    state = tx.init(x)
    snapshot = tx.read(state)
    u, new = jax.jit(lambda g, s, r: tx.update(g, s, x, **gd.backlog_since(s, r)))(
        jnp.ones(4), state, snapshot
    )
    assert jax.tree.structure(new) == jax.tree.structure(state)
    assert u.dtype == x.dtype


def test_bad_arguments():
    with pytest.raises(ValueError, match="learning_rate"):
        gd.delay_tolerant_adagrad(0.0)
    with pytest.raises(TypeError, match="schedule"):
        gd.delay_tolerant_adagrad(lambda t: 0.1)
    with pytest.raises(ValueError, match="eps"):
        gd.delay_tolerant_adagrad(0.1, eps=-1.0)
