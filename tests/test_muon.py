"""Muon, ``orthogonalize``, ``newton_schulz``, ``scale_by_shape`` and ``partition``.

References: optax.contrib.muon's trajectory with the same arguments; the
Newton--Schulz polynomial transcribed in NumPy float64.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import gradopt
from tests.match_optax import (
    assert_same_trajectory,
    mixed_tree,
    optax_trajectory,
    trajectory,
)

CASES = {
    "defaults": {"learning_rate": 0.005},
    "plain-momentum-decay": {
        "learning_rate": 0.01,
        "nesterov": False,
        "weight_decay": 0.1,
        "adam_weight_decay": 0.05,
        "beta": 0.9,
        "ns_steps": 3,
        "consistent_rms": 0.2,
        "adam_learning_rate": 0.003,
        "adam_b1": 0.8,
        "adam_b2": 0.99,
    },
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_muon_equals_optax_contrib_muon(case):
    kw = CASES[case]
    assert_same_trajectory(
        trajectory(gradopt.muon(**kw)), optax_trajectory(optax.contrib.muon(**kw))
    )


def _ns_numpy(x, coeffs, steps, eps):
    x = np.asarray(x, np.float64)
    t = x.shape[0] > x.shape[1]
    if t:
        x = x.T
    x = x / (np.linalg.norm(x) + eps)
    per_step = coeffs if isinstance(coeffs[0], tuple) else (coeffs,) * steps
    for a, b, c in per_step:
        s = x @ x.T
        x = a * x + (b * s + c * s @ s) @ x
    return x.T if t else x


def test_newton_schulz_is_the_polynomial_iteration():
    rng = np.random.default_rng(0)
    coeffs = (3.0, -3.2, 1.2)
    for shape in [(4, 6), (7, 3), (2, 5, 3)]:  # wide, tall (transposed), a stack
        x = rng.normal(size=shape).astype(np.float32)
        got = gradopt.newton_schulz(jnp.asarray(x), coeffs, steps=4, eps=1e-7)
        want = np.stack([_ns_numpy(m, coeffs, 4, 1e-7) for m in x.reshape(-1, *shape[-2:])])
        np.testing.assert_allclose(np.asarray(got), want.reshape(shape), rtol=2e-5, atol=2e-6)


def test_newton_schulz_with_classic_cubic_coefficients_converges_to_the_polar_factor():
    x = np.random.default_rng(1).normal(size=(5, 3))
    u, _, vt = np.linalg.svd(x, full_matrices=False)
    got = gradopt.newton_schulz(jnp.asarray(x, jnp.float32), (1.5, -0.5, 0.0), steps=30)
    np.testing.assert_allclose(np.asarray(got), u @ vt, atol=1e-4)


def test_per_step_coefficients_and_their_count():
    coeffs = ((3.0, -3.2, 1.2), (1.5, -0.5, 0.0))
    x = np.random.default_rng(2).normal(size=(3, 4))
    y = _ns_numpy(x, coeffs, 2, 1e-8)
    got = gradopt.newton_schulz(jnp.asarray(x, jnp.float32), coeffs, steps=2)
    np.testing.assert_allclose(np.asarray(got), y, rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="ns_steps=3"):
        gradopt.orthogonalize(coeffs, steps=3)
    with pytest.raises(TypeError, match="ns_coeffs"):
        gradopt.orthogonalize((1.0, 2.0))
    with pytest.raises(ValueError, match="ns_steps"):
        gradopt.muon(ns_steps=-1)


def test_orthogonalize_leaves_vectors_and_scalars_unchanged():
    tx = gradopt.orthogonalize()
    u = {"s": jnp.asarray(2.0), "v": jnp.arange(3.0), "m": jnp.eye(2) * 3.0}
    out, _ = tx.update(u, tx.init(u))
    assert out["s"] == 2.0 and np.array_equal(np.asarray(out["v"]), np.arange(3.0))
    assert np.allclose(np.asarray(out["m"]), np.eye(2), atol=0.3)


def test_muon_adam_mask_sends_named_matrices_to_adamw():
    params = {"emb": jnp.ones((3, 4)), "w": jnp.ones((3, 4))}
    opt = gradopt.muon(0.01, nesterov=False, adam_mask={"emb": True, "w": False})
    state = opt.init(params)
    shapes = {k: [jnp.shape(x) for x in jax.tree.leaves(v)] for k, v in state.inner_states.items()}
    assert shapes["adam"].count((3, 4)) == 2 and shapes["muon"].count((3, 4)) == 1  # m, v; mu
    grads = {"emb": jnp.full((3, 4), 0.5), "w": jnp.full((3, 4), 0.5)}
    upd, _ = opt.update(grads, state, params)
    np.testing.assert_allclose(np.asarray(upd["emb"]), -0.01, rtol=1e-5)  # Adam's first step
    assert not np.allclose(np.asarray(upd["w"]), -0.01)


def test_muon_weight_decay_mask_tree():
    params = {"a": jnp.ones((2, 2)), "b": jnp.ones((2, 2)), "c": jnp.ones(2)}
    mask = {"a": True, "b": False, "c": True}
    opt = gradopt.muon(0.1, weight_decay=1.0, weight_decay_mask=mask)
    zero = {k: jnp.zeros_like(v) for k, v in params.items()}
    upd, _ = opt.update(zero, opt.init(params), params)
    np.testing.assert_allclose(np.asarray(upd["a"]), -0.1)  # -lr * wd * w
    np.testing.assert_allclose(np.asarray(upd["b"]), 0.0)


def test_partition_labels_must_have_transforms():
    tx = gradopt.partition({"a": gradopt.sgd(0.1)}, {"w": "a", "b": "z"})
    with pytest.raises(ValueError, match="'z'"):
        tx.init({"w": jnp.ones(2), "b": jnp.ones(2)})
    with pytest.raises(TypeError, match="mapping"):
        gradopt.partition([gradopt.sgd(0.1)], {"w": "a"})


def test_scale_by_shape_width_and_consistent_rms():
    u = {"m": jnp.ones((2, 8)), "v": jnp.ones(3)}
    tx = gradopt.scale_by_shape()
    out, _ = tx.update(u, tx.init(u))
    np.testing.assert_allclose(np.asarray(out["m"]), 2.0)  # sqrt(8 / 2)
    np.testing.assert_allclose(np.asarray(out["v"]), 1.0)
    tx = gradopt.scale_by_shape(0.2)
    out, _ = tx.update(u, tx.init(u))
    np.testing.assert_allclose(np.asarray(out["m"]), 0.2 * np.sqrt(8.0), rtol=1e-6)


def test_muon_on_the_mixed_tree_keeps_shapes():
    p = mixed_tree()
    out = trajectory(gradopt.muon(0.01), p, steps=2)
    assert {k: np.shape(v)[1:] for k, v in out.items() if k != "n"} == {
        k: np.shape(v) for k, v in p.items() if k != "n"
    }


@pytest.mark.parametrize("shape", [(0, 3), (1, 0, 2), (0, 2, 2)])
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.complex64])
def test_orthogonalize_passes_empty_matrices_through(shape, dtype):
    """A leaf with no entries gives an update with no entries (a stack with a zero
    side used to fail reshaping to (-1, rows, cols))."""
    tx = gradopt.orthogonalize()
    grads = {"empty": jnp.zeros(shape, dtype), "m": jnp.eye(2, dtype=dtype)}
    updates, _ = tx.update(grads, tx.init(grads))
    assert updates["empty"].shape == shape and updates["empty"].dtype == dtype
    expected, _ = tx.update({"m": grads["m"]}, tx.init({"m": grads["m"]}))
    np.testing.assert_array_equal(updates["m"], expected["m"])
