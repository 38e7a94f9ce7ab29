"""Clipping by value, per-leaf norm and global norm, against NumPy float64 references."""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradopt


def _tree(seed=0, scale=3.0):
    rng = np.random.default_rng(seed)
    return {
        "w": (scale * rng.standard_normal((4, 3))).astype(np.float32),
        "b": (scale * rng.standard_normal(3)).astype(np.float32),
        "nested": [(scale * rng.standard_normal((2, 2, 2))).astype(np.float32)],
    }


def _np_leaves(tree):
    return [np.asarray(x, np.float64) for x in jax.tree.leaves(tree)]


def _apply(tx, updates):
    state = tx.init(updates)
    out, _ = tx.update(updates, state)
    return out


@functools.partial(jax.jit, static_argnums=0)
def _run_traced(make, threshold, updates):
    """One compilation per transform for every threshold (the threshold is traced)."""
    tx = make(threshold)
    return tx.update(updates, tx.init(updates))[0]


THRESHOLDS = [0.0, 0.1, 1.0, 5.0, 1e3]


def test_clip_by_value():
    tree = _tree()
    for max_delta in THRESHOLDS:
        out = _run_traced(gradopt.clip, jnp.float32(max_delta), tree)
        want = jax.tree.map(lambda x, m=max_delta: np.clip(np.float64(x), -m, m), tree)
        chex.assert_trees_all_close(out, want, rtol=0, atol=1e-7)


def test_clip_by_norm_per_leaf():
    tree = _tree(1)
    for max_norm in THRESHOLDS:
        out = _run_traced(gradopt.clip_by_norm, jnp.float32(max_norm), tree)

        def ref(x, m=max_norm):
            x = np.float64(x)
            return x * min(1.0, m / np.linalg.norm(x.ravel()))

        chex.assert_trees_all_close(out, jax.tree.map(ref, tree), rtol=1e-6, atol=1e-7)
        for leaf in jax.tree.leaves(out):
            assert np.linalg.norm(np.float64(leaf).ravel()) <= max_norm * (1 + 1e-6)


def test_clip_by_global_norm():
    tree = _tree(2)
    g = np.sqrt(sum(np.sum(x**2) for x in _np_leaves(tree)))
    for max_norm in THRESHOLDS:
        out = _run_traced(gradopt.clip_by_global_norm, jnp.float32(max_norm), tree)
        factor = min(1.0, max_norm / g)
        want = jax.tree.map(lambda x, f=factor: np.float64(x) * f, tree)
        chex.assert_trees_all_close(out, want, rtol=1e-6, atol=1e-7)
        # The direction is kept and the norm is min(g, max_norm).
        got = np.sqrt(sum(np.sum(x**2) for x in _np_leaves(out)))
        assert got == pytest.approx(min(g, max_norm), rel=1e-6, abs=1e-7)


def test_global_norm_matches_numpy_and_mixed_dtypes():
    tree = _tree(3)
    g = np.sqrt(sum(np.sum(x**2) for x in _np_leaves(tree)))
    assert float(gradopt.global_norm(tree)) == pytest.approx(g, rel=1e-6)
    bf = jax.tree.map(lambda x: jnp.asarray(x, jnp.bfloat16), tree)
    norm = gradopt.global_norm(bf)
    assert norm.dtype == jnp.float32
    g_bf = np.sqrt(sum(np.sum(np.float64(x) ** 2) for x in jax.tree.leaves(bf)))
    assert float(norm) == pytest.approx(g_bf, rel=1e-6)
    assert float(gradopt.global_norm({})) == 0.0


@pytest.mark.parametrize(
    "tx", [gradopt.clip(1.0), gradopt.clip_by_norm(1.0), gradopt.clip_by_global_norm(1.0)]
)
def test_zero_gradients_stay_zero(tx):
    zeros = jax.tree.map(np.zeros_like, _tree())
    out = _apply(tx, zeros)
    chex.assert_trees_all_equal(out, zeros)
    chex.assert_tree_all_finite(out)


@pytest.mark.parametrize(
    "tx", [gradopt.clip(1.0), gradopt.clip_by_norm(1.0), gradopt.clip_by_global_norm(1.0)]
)
def test_bfloat16_dtype_kept(tx):
    tree = jax.tree.map(lambda x: jnp.asarray(x, jnp.bfloat16), _tree())
    out = _apply(tx, tree)
    chex.assert_trees_all_equal_dtypes(out, tree)
    want = _apply(tx, jax.tree.map(lambda x: x.astype(jnp.float32), tree))
    chex.assert_trees_all_close(
        jax.tree.map(lambda x: x.astype(jnp.float32), out), want, rtol=1e-2, atol=1e-2
    )


def test_float64(x64):
    tree = jax.tree.map(np.float64, _tree(4))
    out = _apply(gradopt.clip_by_global_norm(1.0), tree)
    g = np.sqrt(sum(np.sum(x**2) for x in _np_leaves(tree)))
    chex.assert_trees_all_equal_dtypes(out, tree)
    chex.assert_trees_all_close(out, jax.tree.map(lambda x: x / g, tree), rtol=1e-12)


def test_nonfinite_handling_documented_behaviour():
    tree = {"a": jnp.array([1.0, jnp.inf, -jnp.inf, jnp.nan]), "b": jnp.array([3.0, 4.0])}
    out = _apply(gradopt.clip(2.0), tree)
    np.testing.assert_array_equal(out["a"][:3], [1.0, 2.0, -2.0])
    assert np.isnan(out["a"][3])
    out = _apply(gradopt.clip_by_norm(1.0), tree)
    assert np.all(np.isnan(out["a"]))
    np.testing.assert_allclose(out["b"], [0.6, 0.8], rtol=1e-6)  # other leaves unaffected
    out = _apply(gradopt.clip_by_global_norm(1.0), tree)
    assert all(np.all(np.isnan(x)) for x in jax.tree.leaves(out))
    only_inf = {"a": jnp.array([1.0, jnp.inf]), "b": jnp.array([3.0, 4.0])}
    out = _apply(gradopt.clip_by_global_norm(1.0), only_inf)
    assert all(np.all(np.isnan(x)) for x in jax.tree.leaves(out))


def test_traced_threshold_under_vmap():
    tree = _tree(5)
    run = jax.vmap(lambda m: _run_traced.__wrapped__(gradopt.clip_by_global_norm, m, tree))
    out = run(jnp.array([0.5, 2.0]))
    g = np.sqrt(sum(np.sum(x**2) for x in _np_leaves(tree)))
    for i, m in enumerate([0.5, 2.0]):
        want = jax.tree.map(lambda x, m=m: np.float64(x) * min(1.0, m / g), tree)
        chex.assert_trees_all_close(jax.tree.map(lambda x, i=i: x[i], out), want, rtol=1e-6)


def test_in_chain_and_equal_configurations():
    assert gradopt.clip_by_global_norm(1.0) == gradopt.clip_by_global_norm(1.0)
    assert gradopt.clip(1.0) != gradopt.clip(2.0)
    tx = gradopt.chain(gradopt.clip_by_global_norm(1.0), gradopt.scale_by_learning_rate(0.5))
    tree = _tree(6)
    out = _apply(tx, tree)
    g = np.sqrt(sum(np.sum(x**2) for x in _np_leaves(tree)))
    chex.assert_trees_all_close(
        out, jax.tree.map(lambda x: -0.5 * np.float64(x) / g, tree), rtol=1e-6
    )


@pytest.mark.parametrize(
    "make, arg",
    [
        (gradopt.clip, "max_delta"),
        (gradopt.clip_by_norm, "max_norm"),
        (gradopt.clip_by_global_norm, "max_norm"),
    ],
)
def test_bad_arguments(make, arg):
    with pytest.raises(ValueError, match=arg):
        make(-1.0)
    with pytest.raises(TypeError, match=arg):
        make("1")
