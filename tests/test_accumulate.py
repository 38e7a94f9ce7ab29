"""accumulate: k mini-batch steps with mean reduction equal one full-batch step."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradopt

K, B, CYCLES = 4, 5, 3  # 4 mini-batches of 5 examples, 3 optimizer steps


def _data():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((CYCLES, K * B, 3)).astype(np.float32)
    y = (x @ np.array([1.0, -2.0, 0.5], np.float32) + 0.3).astype(np.float32)
    return jnp.asarray(x), jnp.asarray(y)


def _loss(params, x, y):
    pred = x @ params["w"] + params["b"]
    return jnp.mean((pred - y) ** 2)


def _params():
    return {"w": jnp.zeros(3), "b": jnp.zeros(())}


def _run_full(inner, x, y):
    def step(carry, batch):
        params, state = carry
        g = jax.grad(_loss)(params, *batch)
        u, state = inner.update(g, state, params)
        return (gradopt.apply_updates(params, u), state), params

    params = _params()
    (params, _), _ = jax.lax.scan(step, (params, inner.init(params)), (x, y))
    return params


def _run_accumulated(tx, x, y):
    xs = x.reshape(CYCLES * K, B, 3)
    ys = y.reshape(CYCLES * K, B)

    def step(carry, batch):
        params, state = carry
        g = jax.grad(_loss)(params, *batch)
        u, state = tx.update(g, state, params)
        return (gradopt.apply_updates(params, u), state), (u, state)

    params = _params()
    (params, state), trace = jax.lax.scan(step, (params, tx.init(params)), (xs, ys))
    return params, state, trace


@pytest.mark.parametrize(
    "make", [lambda: gradopt.sgd(0.1), lambda: gradopt.adam(0.05)], ids=["sgd", "adam"]
)
def test_equals_full_batch_gradient_descent(make):
    x, y = _data()
    want = jax.jit(_run_full, static_argnums=0)(make(), x, y)
    got, state, (updates, states) = jax.jit(_run_accumulated, static_argnums=0)(
        gradopt.accumulate(make(), K), x, y
    )
    chex.assert_trees_all_close(got, want, rtol=1e-5, atol=1e-6)
    # Zero updates in between; one inner step every K-th call.
    emitted = np.arange(CYCLES * K) % K == K - 1
    for leaf in jax.tree.leaves(updates):
        assert np.all(leaf[~emitted] == 0)
        assert np.all(np.any(leaf[emitted].reshape(CYCLES, -1) != 0, axis=1))
    np.testing.assert_array_equal(states.mini_step, (np.arange(CYCLES * K) + 1) % K)
    np.testing.assert_array_equal(states.count, (np.arange(CYCLES * K) + 1) // K)
    # The inner state only changes on the K-th call.
    for leaf in jax.tree.leaves(states.inner_state):
        leaf = np.asarray(leaf)
        changed = np.any((leaf[1:] != leaf[:-1]).reshape(len(leaf) - 1, -1), axis=1)
        assert not np.any(changed[~emitted[1:]])
    assert int(state.count) == CYCLES


def test_sum_reduction_against_numpy():
    rng = np.random.default_rng(2)
    grads = rng.standard_normal((2 * K, 4)).astype(np.float32)
    tx = gradopt.accumulate(gradopt.scale_by_learning_rate(0.5), K, reduction="sum")
    state = tx.init(jnp.zeros(4))
    update = jax.jit(tx.update)
    outs = []
    for g in grads:
        u, state = update(jnp.asarray(g), state)
        outs.append(np.asarray(u))
    want = np.zeros((2 * K, 4))
    for c in range(2):
        want[c * K + K - 1] = -0.5 * grads[c * K : (c + 1) * K].astype(np.float64).sum(axis=0)
    np.testing.assert_allclose(np.stack(outs), want, rtol=1e-6, atol=1e-7)
    assert update._cache_size() == 1  # emitting and waiting calls share one program


def test_every_k_one_is_the_inner_optimizer():
    g = {"w": jnp.arange(3.0), "b": jnp.ones(())}
    inner = gradopt.adam(0.1)
    tx = gradopt.accumulate(inner, 1)

    @jax.jit
    def both(g):
        return tx.update(g, tx.init(g), g)[0], inner.update(g, inner.init(g), g)[0]

    u, want = both(g)
    chex.assert_trees_all_close(u, want, rtol=1e-6)


def test_bfloat16_accumulates_in_float32():
    tx = gradopt.accumulate(gradopt.identity(), 4)
    g = {"w": jnp.full((3,), 1.0 + 2.0**-7, jnp.bfloat16)}  # exactly representable
    state = tx.init(g)
    assert state.acc["w"].dtype == jnp.float32
    for _ in range(4):
        u, state = tx.update(g, state)
    assert u["w"].dtype == jnp.bfloat16
    np.testing.assert_array_equal(np.asarray(u["w"], np.float32), 1.0 + 2.0**-7)


def _grads_seen_update(updates, state, params=None, **extra):
    return extra.get("grads", updates), state


def test_in_chain_the_inner_stage_sees_the_accumulated_gradient():
    # Inside a chain every stage gets the chain's raw input as `grads`; the inner
    # optimizer of accumulate must get the accumulated gradient instead.
    seen = gradopt.GradientTransformation(lambda p: gradopt.EmptyState(), _grads_seen_update)
    tx = gradopt.chain(gradopt.scale(2.0), gradopt.accumulate(seen, 2))
    p = {"w": jnp.zeros(2)}
    state = tx.init(p)
    _, state = tx.update({"w": jnp.array([1.0, -1.0])}, state, p)
    u, state = tx.update({"w": jnp.array([3.0, -3.0])}, state, p)
    np.testing.assert_allclose(u["w"], [4.0, -4.0])  # mean of 2*g over the two calls


@pytest.mark.parametrize(
    "kwargs, error",
    [
        ({"every_k": 0}, ValueError),
        ({"every_k": 2.0}, ValueError),
        ({"every_k": 2, "reduction": "max"}, ValueError),
    ],
)
def test_bad_arguments(kwargs, error):
    with pytest.raises(error, match="gradopt.accumulate"):
        gradopt.accumulate(gradopt.sgd(0.1), **kwargs)
    with pytest.raises(TypeError, match="gradopt.accumulate"):
        gradopt.accumulate("sgd", 2)
