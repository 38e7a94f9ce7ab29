"""gradopt.scale_by_rprop against a NumPy float64 transcription of iRprop-."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradopt


def _reference(grads, initial, eta_minus, eta_plus, low, high):
    """iRprop- (Igel and Hüsken 2000), written from the paper's update rule, in float64."""
    prev = np.zeros_like(grads[0], np.float64)
    step = np.full_like(prev, initial)
    outs = []
    for g in grads:
        g = np.asarray(g, np.float64).copy()
        c = g * prev
        step = np.where(c > 0, np.minimum(step * eta_plus, high), step)
        step = np.where(c < 0, np.maximum(step * eta_minus, low), step)
        g[c < 0] = 0.0
        outs.append(np.sign(g) * step)
        prev = g
    return np.stack(outs)


def test_matches_the_reference_over_many_steps():
    rng = np.random.default_rng(0)
    # a slowly drifting mean plus noise: long runs of one sign and sign changes, some zeros
    grads = rng.normal(size=(150, 3, 4)) + np.linspace(1.0, -1.0, 150)[:, None, None]
    grads[rng.uniform(size=grads.shape) < 0.1] = 0.0
    grads = grads.astype(np.float32)
    kwargs = dict(eta_minus=0.3, eta_plus=1.5, min_step_size=1e-3, max_step_size=0.5)
    tx = gradopt.scale_by_rprop(0.01, **kwargs)

    def step(state, g):
        u, state = tx.update({"w": g}, state)
        return state, u["w"]

    _, got = jax.lax.scan(step, tx.init({"w": jnp.zeros((3, 4))}), jnp.asarray(grads))
    want = _reference(grads, 0.01, 0.3, 1.5, 1e-3, 0.5)
    np.testing.assert_allclose(np.asarray(got), want, rtol=2e-6, atol=0)
    assert np.any(want == 0.5) and np.any(want == 1e-3)  # both bounds were reached


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"eta_minus": 1.0}, "eta_minus"),
        ({"eta_plus": 1.0}, "eta_plus"),
        ({"min_step_size": 1.0, "max_step_size": 0.5}, "min_step_size"),
        ({"max_step_size": -1.0}, "max_step_size"),
    ],
)
def test_invalid_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        gradopt.scale_by_rprop(0.01, **kwargs)
