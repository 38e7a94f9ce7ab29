"""Annealed gradient noise: variance schedule (statistical), determinism, independence."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradopt

N = 50_000  # noise samples per step and leaf
STEPS = 64


@jax.jit
def _noise_trajectory(eta, gamma):
    """The noise added at each of STEPS steps to two zero leaves (eta, gamma traced)."""
    tx = gradopt.add_gradient_noise(eta=eta, gamma=gamma, seed=7)
    zeros = {"a": jnp.zeros((N,)), "b": jnp.zeros((N // 2, 2))}

    def step(state, _):
        noise, state = tx.update(zeros, state)
        return state, noise

    return jax.lax.scan(step, tx.init(zeros), None, length=STEPS)


@pytest.mark.parametrize("eta", [0.01, 0.3, 1.0])
def test_variance_follows_schedule(eta):
    # For N i.i.d. normal samples, the sample variance s^2 has relative standard
    # deviation sqrt(2 / (N - 1)) ~= 0.0063 at N = 50,000; a 5-sigma band is 3.2 %.
    gamma = 0.55
    state, noise = _noise_trajectory(jnp.float32(eta), jnp.float32(gamma))
    tol = 5 * np.sqrt(2 / (N - 1))
    t = np.arange(STEPS)
    want = eta / (1.0 + t) ** gamma
    for leaf in jax.tree.leaves(noise):
        samples = np.asarray(leaf, np.float64).reshape(STEPS, -1)
        var = samples.var(axis=1, ddof=1)
        np.testing.assert_allclose(var, want, rtol=tol)
        # Means are zero within 5 standard errors.
        assert np.all(np.abs(samples.mean(axis=1)) < 5 * np.sqrt(want / N))
    assert int(state.count) == STEPS
    # gamma recovered by a log-log fit over all steps (each point good to ~0.6 %).
    var_a = np.asarray(noise["a"], np.float64).var(axis=1, ddof=1)
    slope = np.polyfit(np.log1p(t), np.log(var_a), 1)[0]
    assert slope == pytest.approx(-gamma, abs=0.02)


def test_leaves_and_steps_are_independent():
    _, noise = _noise_trajectory(jnp.float32(1.0), jnp.float32(0.55))
    a = np.asarray(noise["a"], np.float64)
    b = np.asarray(noise["b"], np.float64).reshape(STEPS, -1)
    bound = 5 / np.sqrt(N)  # correlation of independent samples: sd 1/sqrt(N)
    for t in (0, 1, STEPS - 1):
        assert abs(np.corrcoef(a[t], b[t])[0, 1]) < bound
    assert abs(np.corrcoef(a[0], a[1])[0, 1]) < bound  # fresh noise each step
    assert abs(np.corrcoef(b[0][: N // 2], b[0][N // 2 :])[0, 1]) < bound
    # Same shape leaves must not receive the same draw.
    tx = gradopt.add_gradient_noise(eta=1.0, seed=0)
    twins = {"x": jnp.zeros((1000,)), "y": jnp.zeros((1000,))}
    out, _ = tx.update(twins, tx.init(twins))
    assert not np.allclose(out["x"], out["y"])


def test_deterministic_given_seed():
    tree = {"w": jnp.ones((3, 4)), "b": jnp.ones((4,))}

    def run(seed, steps=3):
        tx = gradopt.add_gradient_noise(eta=0.3, seed=seed)
        state, outs = tx.init(tree), []
        for _ in range(steps):
            out, state = tx.update(tree, state)
            outs.append(out)
        return outs

    first, again, other = run(1), run(1), run(2)
    for x, y in zip(first, again, strict=True):
        chex.assert_trees_all_equal(x, y)
    assert not np.allclose(first[0]["w"], other[0]["w"])
    assert not np.allclose(first[0]["w"], first[1]["w"])


def test_adds_to_gradient_and_eta_zero_is_identity():
    tree = {"w": jnp.arange(6.0).reshape(2, 3)}
    tx = gradopt.add_gradient_noise(eta=0.0)
    out, state = tx.update(tree, tx.init(tree))
    chex.assert_trees_all_equal(out, tree)
    assert state.count.dtype == jnp.int32


def test_bfloat16():
    tx = gradopt.add_gradient_noise(eta=1.0, seed=3)
    tree = {"w": jnp.zeros((20_000,), jnp.bfloat16)}
    out, state = jax.jit(tx.update)(tree, tx.init(tree))
    assert out["w"].dtype == jnp.bfloat16
    chex.assert_tree_all_finite(out)
    # bfloat16 rounding (8 bits of mantissa) changes the variance by far less than
    # the 5-sigma sampling band of 5 * sqrt(2 / 20,000) = 5 %.
    assert np.var(np.asarray(out["w"], np.float64)) == pytest.approx(1.0, rel=0.05)
    out2, _ = jax.jit(tx.update)(out, state)
    assert out2["w"].dtype == jnp.bfloat16


def test_state_structure_stable_and_no_recompile():
    tx = gradopt.add_gradient_noise(eta=0.01)
    tree = {"w": jnp.ones((2,))}
    state = tx.init(tree)
    update = jax.jit(tx.update)
    _, s1 = update(tree, state)
    _, s2 = update(tree, s1)
    chex.assert_trees_all_equal_shapes_and_dtypes(state, s1, s2)
    assert update._cache_size() == 1


@pytest.mark.parametrize(
    "kwargs, error",
    [
        ({"eta": -0.1}, ValueError),
        ({"gamma": -1.0}, ValueError),
        ({"seed": 1.5}, TypeError),
        ({"seed": True}, TypeError),
        ({"eta": "big"}, TypeError),
    ],
)
def test_bad_arguments(kwargs, error):
    with pytest.raises(error, match="gradopt.add_gradient_noise"):
        gradopt.add_gradient_noise(**kwargs)
