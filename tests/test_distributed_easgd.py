"""Synchronous EASGD / EAMSGD against NumPy float64 transcriptions of the paper's formulas.

Zhang, Choromanska & LeCun (2015), eqs. 5-6 and Algorithms 1-2 with all workers
exchanging at once every ``tau`` steps. Worker ``i`` minimises its own
least-squares problem (so the workers really differ); the tree is nested.
The mesh layout runs in its own process (tests/dist_scripts/easgd_mesh.py).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradopt
from gradopt import distributed as dist
from tests.dist_helpers import run_script

STEPS = 30


def make_problem(p, seed=0, d=4, m=6):
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(p, m, d))
    y = rng.normal(size=(p, m))
    t = rng.normal(size=(p, 2))
    x0 = {"w": rng.normal(size=(p, d)), "k": {"t": rng.normal(size=(p, 2))}}
    return {"a": a, "y": y, "t": t}, x0


def loss_fn(params, data):
    r = data["a"] @ params["w"] - data["y"]
    return 0.5 * jnp.mean(r**2) + 0.5 * jnp.sum((params["k"]["t"] - data["t"]) ** 2)


def np_grad(x, data, i):
    """The gradient of worker i's loss at x (dict of float64 arrays), from the formula."""
    a, y, t = data["a"][i], data["y"][i], data["t"][i]
    return {"w": a.T @ (a @ x["w"] - y) / a.shape[0], "k": {"t": x["k"]["t"] - t}}


def flat(tree):
    return np.concatenate([np.ravel(np.asarray(v, np.float64)) for v in jax.tree.leaves(tree)])


def unflat_like(vec, tree):
    leaves, treedef = jax.tree.flatten(tree)
    out, at = [], 0
    for leaf in leaves:
        size = np.size(leaf)
        out.append(vec[at : at + size].reshape(np.shape(leaf)))
        at += size
    return jax.tree.unflatten(treedef, out)


def worker_tree(x0, i):
    return jax.tree.map(lambda v: np.asarray(v[i], np.float64), x0)


def reference(x0, data, p, *, alpha, tau, local, eta, delta=0.0):
    """NumPy float64: returns (workers' flat params, center) after STEPS steps.

    local: "sgd", "adam" (Kingma & Ba, defaults) or "nesterov" (EAMSGD's step).
    """
    shape = worker_tree(x0, 0)
    x = [flat(worker_tree(x0, i)) for i in range(p)]
    c = np.mean(x, axis=0)  # the workers differ: the center starts at their mean
    m = [np.zeros_like(c) for _ in range(p)]
    v = [np.zeros_like(c) for _ in range(p)]
    for step in range(STEPS):
        e = [alpha * (x[i] - c) if step % tau == 0 else np.zeros_like(c) for i in range(p)]
        for i in range(p):
            if local == "nesterov":
                g = flat(np_grad(unflat_like(x[i] + delta * v[i], shape), data, i))
                v[i] = delta * v[i] - eta * g
                x[i] = x[i] - e[i] + v[i]
                continue
            g = flat(np_grad(unflat_like(x[i], shape), data, i))
            if local == "sgd":
                u = -eta * g
            else:
                b1, b2, eps, t = 0.9, 0.999, 1e-8, step + 1
                m[i] = b1 * m[i] + (1 - b1) * g
                v[i] = b2 * v[i] + (1 - b2) * g**2
                u = -eta * (m[i] / (1 - b1**t)) / (np.sqrt(v[i] / (1 - b2**t)) + eps)
            x[i] = x[i] - e[i] + u
        c = c + sum(e)
    return np.stack(x), c


def run(tx, x0, data):
    params = jax.tree.map(jnp.asarray, x0)
    state = tx.init(params)
    step = dist.worker_step(loss_fn, tx)
    batch = jax.tree.map(jnp.asarray, data)
    for _ in range(STEPS):
        params, state, _ = step(params, state, batch)
    workers = np.stack([flat(worker_tree(params, i)) for i in range(len(data["a"]))])
    return workers, flat(state.center), params, state


@pytest.mark.parametrize("p", [3, 4])
@pytest.mark.parametrize("tau", [1, 3])
@pytest.mark.parametrize("local", ["sgd", "adam", "nesterov"])
def test_matches_numpy_reference(x64, p, tau, local):
    data, x0 = make_problem(p, seed=p + tau)
    alpha = 0.9 / p
    if local == "nesterov":
        eta, delta = 0.05, 0.9
        tx = dist.eamsgd(eta, momentum=delta, alpha=alpha, tau=tau)
    else:
        eta, delta = (0.1 if local == "sgd" else 0.05), 0.0
        inner = gradopt.sgd(eta) if local == "sgd" else gradopt.adam(eta)
        tx = dist.easgd(inner, alpha=alpha, tau=tau)
    want_x, want_c = reference(x0, data, p, alpha=alpha, tau=tau, local=local, eta=eta, delta=delta)
    got_x, got_c, _, _ = run(tx, x0, data)
    np.testing.assert_allclose(got_x, want_x, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(got_c, want_c, rtol=1e-12, atol=1e-12)
    assert np.max(np.abs(want_x[0] - want_x[1])) > 1e-3  # the workers really differ


def test_alpha_zero_is_p_independent_runs():
    data, x0 = make_problem(3, seed=7)
    x0 = jax.tree.map(lambda v: v.astype(np.float32), x0)
    data = jax.tree.map(lambda v: v.astype(np.float32), data)
    got_x, got_c, params, _ = run(dist.easgd(gradopt.adam(0.05), alpha=0.0, tau=1), x0, data)
    tx = gradopt.adam(0.05)

    @jax.jit
    def alone(x, s, d):
        u, s = tx.update(jax.grad(loss_fn)(x, d), s, x)
        return gradopt.apply_updates(x, u), s

    for i in range(3):
        x = jax.tree.map(lambda v, i=i: jnp.asarray(v[i]), x0)
        d = jax.tree.map(lambda v, i=i: jnp.asarray(v[i]), data)
        s = tx.init(x)
        for _ in range(STEPS):
            x, s = alone(x, s, d)
        np.testing.assert_allclose(got_x[i], flat(x), rtol=2e-6, atol=1e-7)
    mean = np.mean([flat(worker_tree(x0, i)) for i in range(3)], axis=0)
    np.testing.assert_allclose(got_c, mean, rtol=1e-6, atol=1e-7)  # the center never moves


@pytest.mark.parametrize(
    "make",
    [
        lambda: dist.easgd(gradopt.sgd(0.1), alpha=0.1),
        lambda: dist.eamsgd(0.1, momentum=0.5, alpha=0.1),
    ],
)
def test_center_starts_at_the_workers_mean_and_exactly_at_equal_workers(make):
    tx = make()
    same = dist.stack_workers({"w": jnp.asarray([0.1, -0.3, 7.0], jnp.float32)}, 3)
    np.testing.assert_array_equal(tx.init(same).center["w"], same["w"][0])  # bitwise
    differ = {"w": jnp.asarray([[1.0, 2.0], [2.0, 4.0], [6.0, 0.0]], jnp.float32)}
    np.testing.assert_allclose(tx.init(differ).center["w"], [3.0, 2.0], rtol=1e-7)


def test_exchange_conserves_the_sum_and_equals_the_moving_average_form(x64):
    p, alpha = 4, 0.2
    data, x0 = make_problem(p, seed=3)
    # sgd(0): the step is the exchange alone.
    tx = dist.easgd(gradopt.sgd(0.0), alpha=alpha, tau=1)
    params = jax.tree.map(jnp.asarray, x0)
    state = tx.init(params)
    center = jax.tree.map(lambda v: v + 0.5, state.center)  # a center away from worker 0
    state = state._replace(center=center)
    grads = jax.tree.map(jnp.zeros_like, params)
    updates, new_state = tx.update(grads, state, params)
    new_params = gradopt.apply_updates(params, updates)
    before = sum(flat(worker_tree(params, i)) for i in range(p)) + flat(center)
    after = sum(flat(worker_tree(new_params, i)) for i in range(p)) + flat(new_state.center)
    np.testing.assert_allclose(after, before, rtol=1e-14, atol=1e-14)
    beta = p * alpha
    mean = np.mean([flat(worker_tree(params, i)) for i in range(p)], axis=0)
    moving_average = (1 - beta) * flat(center) + beta * mean
    np.testing.assert_allclose(flat(new_state.center), moving_average, rtol=1e-14, atol=1e-14)


def test_exchange_happens_only_every_tau_steps(x64):
    data, x0 = make_problem(3, seed=1)
    tx = dist.easgd(gradopt.sgd(0.1), alpha=0.3, tau=4)
    params = jax.tree.map(jnp.asarray, x0)
    state = tx.init(params)
    step = dist.worker_step(loss_fn, tx)
    centers = []
    for _ in range(9):
        params, state, _ = step(params, state, jax.tree.map(jnp.asarray, data))
        centers.append(flat(state.center))
    moved = [not np.array_equal(centers[i], centers[i - 1]) for i in range(1, 9)]
    assert moved == [False, False, False, True, False, False, False, True]


def test_on_a_mesh_matches_the_unsharded_run():
    result = run_script("easgd_mesh", n_devices=4)
    # The same arithmetic compiled for one device and partitioned over four:
    # XLA may contract multiply-adds differently in the two programs, so after
    # 12 Adam steps the parameters (of order 0.5) agree to a few float32 ulps.
    assert result["max_diff"] <= 2e-7, result
    assert result["inner_shards"] == [[1, 4]] * 4, result  # one worker's state per device
    assert result["center_replicated"], result
    assert result["diloco_max_diff"] <= 2e-7, result  # DiLoCo (12 AdamW steps, H = 3) likewise
    assert result["diloco_inner_shards"] == [[1, 4]] * 4, result
    assert result["theta_replicated"], result
