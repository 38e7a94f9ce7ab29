"""Asynchronous EASGD / EAMSGD against NumPy transcriptions of Algorithms 1 and 2.

Zhang, Choromanska & LeCun (2015), Algorithm 1 (worker ``i``)::

    x <- x^i
    if tau divides t^i:  x^i <- x^i - alpha (x - x~);  x~ <- x~ + alpha (x - x~)
    x^i <- x^i - eta g(x)                    # EAMSGD: v <- delta v - eta g(x + delta v); x^i += v

The gradient is taken at the read ``x``, before the exchange. The simulator's
telemetry (the worker of every tick and the rows of every mini-batch) fixes the
interleaving; the reference replays it.
"""

import jax.numpy as jnp
import numpy as np
import pytest

import gradopt
from gradopt import distributed as gd

RNG = np.random.default_rng(3)
X = RNG.normal(size=(48, 5))
Y = (RNG.random(48) > 0.5).astype(np.float64)


def logistic(p, x, y):
    z = x @ p["w"] + p["b"]
    return jnp.mean(jnp.logaddexp(0.0, z) - y * z)


def np_grad(w, x, y):
    """The logistic loss's gradient at ``w = (weights, bias)``, from the formula."""
    r = (1.0 / (1.0 + np.exp(-(x @ w[:-1] + w[-1]))) - y) / len(y)
    return np.concatenate([x.T @ r, [r.sum()]])


def algorithm_1_and_2(order, batches, shards, *, alpha, tau, eta, delta, w0):
    """NumPy float64: the center and each worker after replaying ``order``."""
    n = len(shards)
    center = w0.copy()
    x = [w0.copy() for _ in range(n)]
    v = [np.zeros_like(w0) for _ in range(n)]
    t = [0] * n
    for i in order:
        rows = batches[i][t[i]]
        xb, yb = shards[i] if rows is None else (shards[i][0][rows], shards[i][1][rows])
        read = x[i].copy()
        if t[i] % tau == 0:
            e = alpha * (read - center)
            x[i] = x[i] - e
            center = center + e
        v[i] = delta * v[i] - eta * np_grad(read + delta * v[i], xb, yb)
        x[i] = x[i] + v[i]
        t[i] += 1
    return center, x


def flat(p):
    return np.concatenate([np.asarray(p["w"]), [np.asarray(p["b"])]])


@pytest.mark.parametrize("n_workers", [1, 2])
@pytest.mark.parametrize("local", ["easgd", "eamsgd"])
def test_matches_the_papers_algorithm_under_the_recorded_interleaving(x64, n_workers, local):
    alpha, tau, eta, steps = 0.3, 3, 0.5, 24
    delta = 0.8 if local == "eamsgd" else 0.0
    if local == "eamsgd":
        algo = gd.async_eamsgd(eta, momentum=delta, alpha=alpha, tau=tau)
    else:
        algo = gd.async_easgd(gradopt.sgd(eta), alpha=alpha, tau=tau)
    shards = [(X[i::n_workers], Y[i::n_workers]) for i in range(n_workers)]
    w0 = np.linspace(-0.5, 0.5, 6)
    p0 = {"w": jnp.asarray(w0[:-1]), "b": jnp.asarray(w0[-1])}
    res = gd.simulate(
        algo, p0, logistic, shards, n_workers=n_workers, steps=steps, batch_size=8, seed=4
    )
    order, batches = res.telemetry.order, res.telemetry.batches
    assert len(order) == n_workers * steps and [len(b) for b in batches] == [steps] * n_workers
    if n_workers == 2:  # a real interleaving, not one worker after the other
        assert order[:steps] != [order[0]] * steps and order != sorted(order)
    center, workers = algorithm_1_and_2(
        order, batches, shards, alpha=alpha, tau=tau, eta=eta, delta=delta, w0=w0
    )
    np.testing.assert_allclose(flat(res.params), center, rtol=1e-12, atol=1e-14)
    for got, want in zip(res.workers, workers, strict=True):
        np.testing.assert_allclose(flat(got), want, rtol=1e-12, atol=1e-14)
    assert np.max(np.abs(center - w0)) > 1e-2  # the center moved


def test_n_workers_times_alpha_above_one_is_refused_where_n_workers_is_known():
    algo = gd.async_easgd(gradopt.sgd(0.1), alpha=0.3, tau=1)  # alpha <= 1: fine alone
    shards = [(X[i::4], Y[i::4]) for i in range(4)]
    p0 = {"w": jnp.zeros(5), "b": jnp.zeros(())}
    with pytest.raises(ValueError, match=r"n_workers \* alpha = 1\.2 > 1.*alpha <= 1 / n_workers"):
        gd.simulate(algo, p0, logistic, shards, n_workers=4, steps=1)
    with pytest.raises(ValueError, match="n_workers = 4"):
        gd.simulate(gd.async_eamsgd(0.1, alpha=0.3), p0, logistic, shards, n_workers=4, steps=1)
