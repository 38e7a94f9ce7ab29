"""DiLoCo (Douillard et al., 2023) against a NumPy float64 transcription of Algorithm 1,
and the identity with synchronous data parallelism at ``H = 1``.

Worker ``i`` minimises its own least-squares problem (so the workers really
differ), on a nested tree. The mesh layout runs in its own process
(tests/dist_scripts/easgd_mesh.py).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradopt
from gradopt import distributed as dist
from tests.test_distributed_easgd import (
    flat,
    loss_fn,
    make_problem,
    np_grad,
    unflat_like,
    worker_tree,
)


def reference(x0, data, k, *, steps, h, lr, wd, outer_lr, mu, fragments=None):
    """NumPy float64: DiLoCo with AdamW inner steps and Nesterov SGD outer steps.

    ``fragments``: Streaming DiLoCo, a list of index arrays into the flat
    parameters; fragment ``p`` takes its outer step after the inner steps
    ``t`` with ``(t + p h // P) % h == 0``. Returns the workers' flat
    parameters and theta after ``steps`` inner steps.
    """
    shape = worker_tree(x0, 0)
    theta = flat(shape)  # every worker starts at theta (stack_workers)
    x = [theta.copy() for _ in range(k)]
    m = [np.zeros_like(theta) for _ in range(k)]
    v = [np.zeros_like(theta) for _ in range(k)]
    velocity = np.zeros_like(theta)
    b1, b2, eps = 0.9, 0.999, 1e-8
    for t in range(1, steps + 1):
        for i in range(k):  # the inner optimizer: AdamW (Loshchilov & Hutter)
            g = flat(np_grad(unflat_like(x[i], shape), data, i))
            m[i] = b1 * m[i] + (1 - b1) * g
            v[i] = b2 * v[i] + (1 - b2) * g**2
            m_hat, v_hat = m[i] / (1 - b1**t), v[i] / (1 - b2**t)
            x[i] = x[i] - lr * (m_hat / (np.sqrt(v_hat) + eps) + wd * x[i])
        parts = fragments or [np.arange(theta.size)]
        for p, f in enumerate(parts):
            if (t + p * h // len(parts)) % h:
                continue
            # the outer step on fragment f: Delta as a gradient, Nesterov (PyTorch form)
            delta = np.mean([theta[f] - x[i][f] for i in range(k)], axis=0)
            velocity[f] = mu * velocity[f] + delta
            theta[f] = theta[f] - outer_lr * (delta + mu * velocity[f])
            for i in range(k):
                x[i][f] = theta[f]
    return np.stack(x), theta


def run(tx, params, data, steps):
    state = tx.init(params)
    step = dist.worker_step(loss_fn, tx)
    batch = jax.tree.map(jnp.asarray, data)
    for _ in range(steps):
        params, state, _ = step(params, state, batch)
    return params, state


@pytest.mark.parametrize("h", [1, 3])
def test_matches_numpy_reference_with_the_papers_outer_step(x64, h):
    k, steps = 3, 10
    data, x0 = make_problem(k, seed=11 + h)
    params = dist.stack_workers(worker_tree(x0, 0), k)
    tx = dist.diloco(gradopt.adamw(0.05, weight_decay=0.1), sync_every=h)  # outer: the default
    got, state = run(tx, params, data, steps)
    want_x, want_theta = reference(
        x0, data, k, steps=steps, h=h, lr=0.05, wd=0.1, outer_lr=0.7, mu=0.9
    )
    got_x = np.stack([flat(worker_tree(got, i)) for i in range(k)])
    np.testing.assert_allclose(got_x, want_x, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(flat(state.params), want_theta, rtol=1e-12, atol=1e-12)
    assert np.max(np.abs(want_theta - flat(worker_tree(x0, 0)))) > 1e-2  # theta moved


def test_streaming_fragments_match_numpy_reference(x64):
    """Two fragments (leaves dealt round-robin: k.t, then w), staggered by H / 2."""
    k, h, steps = 3, 4, 11
    data, x0 = make_problem(k, seed=21)
    start = worker_tree(x0, 0)
    tx = dist.diloco(gradopt.adamw(0.05, weight_decay=0.1), sync_every=h, fragments=2)
    got, state = run(tx, dist.stack_workers(start, k), data, steps)
    # flat() follows jax.tree.leaves: k.t (2 entries) first, then w (4 entries).
    fragments = [np.arange(0, 2), np.arange(2, 6)]
    want_x, want_theta = reference(
        x0, data, k, steps=steps, h=h, lr=0.05, wd=0.1, outer_lr=0.7, mu=0.9, fragments=fragments
    )
    got_x = np.stack([flat(worker_tree(got, i)) for i in range(k)])
    np.testing.assert_allclose(got_x, want_x, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(flat(state.params), want_theta, rtol=1e-12, atol=1e-12)
    assert len(state.outer) == 2  # one outer state per fragment


def test_streaming_fragments_sync_at_staggered_steps(x64):
    k, h = 2, 4
    data, x0 = make_problem(k, seed=8)
    tx = dist.diloco(gradopt.sgd(0.1), sync_every=h, fragments=2)
    params = dist.stack_workers(worker_tree(x0, 0), k)
    state = tx.init(params)
    step = dist.worker_step(loss_fn, tx)
    moved = []
    for _ in range(8):
        before = jax.tree.leaves(state.params)
        params, state, _ = step(params, state, jax.tree.map(jnp.asarray, data))
        after = jax.tree.leaves(state.params)
        moved.append([int(not np.array_equal(a, b)) for a, b in zip(before, after, strict=True)])
    # leaf 0 (k.t): fragment 0, after steps 4 and 8; leaf 1 (w): fragment 1, after 2 and 6
    assert moved == [[0, 0], [0, 1], [0, 0], [1, 0], [0, 0], [0, 1], [0, 0], [1, 0]]


def test_workers_differ_within_a_round_and_restart_from_theta(x64):
    k = 3
    data, x0 = make_problem(k, seed=5)
    params = dist.stack_workers(worker_tree(x0, 0), k)
    tx = dist.diloco(gradopt.sgd(0.1), sync_every=4)
    mid, _ = run(tx, params, data, 2)
    assert np.max(np.abs(flat(worker_tree(mid, 0)) - flat(worker_tree(mid, 1)))) > 1e-3
    end, state = run(tx, params, data, 4)
    for i in range(k):  # x_i + (theta - x_i) rounds to theta, at most 1 ulp off
        np.testing.assert_array_max_ulp(flat(worker_tree(end, i)), flat(state.params), maxulp=1)


@pytest.mark.parametrize(
    "make_inner",
    [
        lambda: gradopt.sgd(0.1),
        lambda: gradopt.sgd(0.05, momentum=0.9),
        lambda: gradopt.sgd(0.05, momentum=0.9, nesterov=True),
    ],
    ids=["sgd", "momentum", "nesterov"],
)
def test_one_inner_step_and_outer_sgd_1_is_synchronous_data_parallelism(x64, make_inner):
    k, m, steps = 4, 6, 8
    data, x0 = make_problem(k, seed=2, m=m)
    start = worker_tree(x0, 0)
    got, state = run(
        dist.diloco(make_inner(), gradopt.sgd(1.0), sync_every=1),
        dist.stack_workers(start, k),
        data,
        steps,
    )
    # Data parallelism as the library runs it: the k workers' examples are one batch
    # of k * m, split over a mesh axis; the gradient of the mean loss is averaged.
    # Worker i's loss is 0.5 mean_rows(r^2) + 0.5 |t - t_i|^2: over the k * m rows, the
    # second term is averaged with t_i repeated on each of worker i's m rows.
    mesh = jax.make_mesh((1,), ("data",))
    batch = {"a": data["a"].reshape(k * m, -1), "y": data["y"].reshape(k * m)}
    tbar = np.repeat(data["t"], m, axis=0)

    def dp_loss(p, b):
        r = b["a"] @ p["w"] - b["y"]
        return 0.5 * jnp.mean(r**2) + 0.5 * jnp.mean(
            jnp.sum((p["k"]["t"][None, :] - b["t"]) ** 2, -1)
        )

    dp = dist.data_parallel(dp_loss, make_inner(), mesh, "data")
    params, opt_state = dp.init(jax.tree.map(jnp.asarray, start))
    sharded_batch = dp.shard_batch({**batch, "t": tbar})
    for _ in range(steps):
        params, opt_state, _ = dp.step(params, opt_state, sharded_batch)
    np.testing.assert_allclose(flat(state.params), flat(params), rtol=1e-12, atol=1e-13)
    for i in range(k):
        np.testing.assert_allclose(flat(worker_tree(got, i)), flat(params), rtol=1e-12, atol=1e-13)


def test_bad_arguments_name_themselves():
    with pytest.raises(ValueError, match="`sync_every` must be an integer >= 1, got 0"):
        dist.diloco(gradopt.sgd(0.1), sync_every=0)
    with pytest.raises(TypeError, match="`inner`"):
        dist.diloco("adamw", sync_every=4)
    with pytest.raises(TypeError, match="`outer`"):
        dist.diloco(gradopt.sgd(0.1), outer=0.7, sync_every=4)
    with pytest.raises(ValueError, match="`fragments` = 3 but the parameters have only 2 leaves"):
        dist.diloco(gradopt.sgd(0.1), sync_every=2, fragments=3).init(
            dist.stack_workers({"w": jnp.zeros(3), "b": jnp.zeros(())}, 2)
        )
    with pytest.raises(ValueError, match="`fragments` must be an integer >= 1"):
        dist.diloco(gradopt.sgd(0.1), sync_every=2, fragments=0)
    with pytest.raises(ValueError, match="leading worker axis"):
        dist.diloco(gradopt.sgd(0.1), sync_every=2).init({"w": jnp.zeros(3), "b": jnp.zeros(())})


def test_bfloat16_parameters_keep_their_dtype_and_one_program_serves_every_step():
    k = 2
    start = {"w": jnp.asarray([0.5, -1.0, 2.0], jnp.bfloat16), "b": jnp.zeros((), jnp.bfloat16)}
    tx = dist.diloco(gradopt.adamw(0.05), sync_every=2, fragments=2)
    params = dist.stack_workers(start, k)
    state = tx.init(params)
    step = dist.worker_step(
        lambda p, x: jnp.mean(
            (x @ p["w"].astype(jnp.float32) + p["b"].astype(jnp.float32) - 1) ** 2
        ),
        tx,
    )
    batch = jnp.ones((k, 4, 3), jnp.float32)
    for _ in range(4):
        params, state, losses = step(params, state, batch)
    assert step._cache_size() == 1  # the round's two kinds of step are one program
    for tree in (params, state.params):
        assert {x.dtype for x in jax.tree.leaves(tree)} == {jnp.dtype(jnp.bfloat16)}
        assert all(bool(jnp.all(jnp.isfinite(x))) for x in jax.tree.leaves(tree))
    assert not np.array_equal(np.asarray(state.params["w"], np.float32), [0.5, -1.0, 2.0])
