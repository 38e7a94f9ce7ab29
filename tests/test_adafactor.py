"""Adafactor and its primitives against optax.adafactor's trajectory."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import gradopt
from tests.match_optax import assert_same_trajectory, mixed_tree, optax_trajectory, trajectory

CASES = {
    # factors the (4, 6) and (7, 3) matrices and the (3, 4, 2) tensor over its axes 0 and 1
    "factored-3d": {"learning_rate": 0.01, "min_dim_size_to_factor": 3},
    "momentum-decay-offset": {
        "learning_rate": 0.02,
        "min_dim_size_to_factor": 2,
        "momentum": 0.9,
        "weight_decay_rate": 1e-3,
        "clipping_threshold": None,
        "decay_rate": 0.7,
        "decay_offset": 3,
    },
    "unfactored-absolute-step": {
        "learning_rate": 0.01,
        "multiply_by_parameter_scale": False,
        "factored": False,
    },
}


def _started_at(tx, step):
    """``tx`` whose ``init`` sets every int32 step counter of its state to ``step``."""

    def init(params):
        def start(x):
            is_counter = jnp.result_type(x) == jnp.int32 and jnp.ndim(x) == 0
            return jnp.full_like(x, step) if is_counter else x

        return jax.tree.map(start, tx.init(params))

    return type(tx)(init, tx.update)


@pytest.mark.parametrize("case", sorted(CASES))
def test_adafactor_equals_optax(case):
    kw = CASES[case]
    # optax's t = count - step_offset + 1 is <= 0 before the offset, where t**(-c) is NaN:
    # both start at the offset (the steps before it are tested below)
    start = kw.get("decay_offset", 0)
    got = trajectory(_started_at(gradopt.adafactor(**kw), start))
    want = optax_trajectory(_started_at(optax.adafactor(**kw), start))
    assert all(bool(jnp.all(jnp.isfinite(x))) for x in jax.tree.leaves(want))
    assert_same_trajectory(got, want)


def test_steps_before_the_decay_offset_are_first_steps():
    """count < decay_offset: beta_t = 0, so V = |G|**2 + eps (it was NaN, as optax's)."""
    params = {"r": jnp.asarray([1.0, -2.0]), "z": jnp.asarray([0.5 + 1j, -3j], jnp.complex64)}
    grads = [
        {"r": jnp.asarray([0.3, -4.0]), "z": jnp.asarray([1 - 2j, 0.25], jnp.complex64)},
        {"r": jnp.asarray([-5.0, 0.01]), "z": jnp.asarray([3j, -1 + 1j], jnp.complex64)},
    ]
    opt = gradopt.adafactor(
        0.1, decay_offset=9.5, multiply_by_parameter_scale=False, clipping_threshold=None
    )
    state = opt.init(params)
    for g in grads:
        upd, state = opt.update(g, state, params)
        for name in params:
            x = np.asarray(g[name], np.complex128)
            want = -0.1 * x / np.sqrt(np.abs(x) ** 2 + 1e-30)
            np.testing.assert_allclose(np.asarray(upd[name]), want, rtol=1e-6)


def test_factored_state_is_rows_and_columns_of_the_two_largest_axes():
    params = mixed_tree()
    state = gradopt.adafactor(min_dim_size_to_factor=3).init(params)[0]
    assert state.v_row["m"].shape == (4,) and state.v_col["m"].shape == (6,)
    assert state.v_row["t"].shape == (3, 2) and state.v_col["t"].shape == (4, 2)
    assert state.v["m"].shape == (1,) and state.v["v"].shape == (5,) and state.v["s"].shape == ()
    small = gradopt.adafactor().init(params)[0]  # default 128: nothing is factored here
    assert small.v["m"].shape == (4, 6)


def test_first_step_with_the_default_learning_rate_none():
    """``learning_rate=None``: the first step is ``-RMS(w) * G / |G|`` clipped to RMS 1."""
    w = jnp.asarray([[3.0, -4.0], [0.0, 1.0]])
    g = jnp.asarray([[1.0, -2.0], [0.5, 0.25]])
    opt = gradopt.adafactor()
    upd, _ = opt.update(g, opt.init(w), w)
    rms_w = np.sqrt(np.mean(np.square(np.asarray(w))))
    u = np.asarray(g) / np.sqrt(np.asarray(g) ** 2 + 1e-30)  # beta_1 = 0: V = G**2 + eps
    u = u / max(1.0, np.sqrt(np.mean(u**2)))
    np.testing.assert_allclose(np.asarray(upd), -rms_w * u, rtol=1e-6)


def test_extreme_gradient_keeps_a_finite_update():
    w = {"m": jnp.ones((4, 3))}
    opt = gradopt.adafactor(0.1, min_dim_size_to_factor=2)
    state = opt.init(w)
    for scale in (1e30, 1.0):
        upd, state = opt.update({"m": jnp.full((4, 3), scale)}, state, w)
        assert bool(jnp.all(jnp.isfinite(upd["m"])))
    assert all(bool(jnp.all(jnp.isfinite(x))) for x in jax.tree.leaves(state))


def test_bad_arguments():
    with pytest.raises(ValueError, match="clipping_threshold"):
        gradopt.adafactor(clipping_threshold=0.0)
    with pytest.raises(TypeError, match="min_dim_size_to_factor"):
        gradopt.adafactor(min_dim_size_to_factor=1.5)
    with pytest.raises(ValueError, match="decay_offset"):
        gradopt.adafactor(decay_offset=-1)
