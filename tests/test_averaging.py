"""gradopt.average_parameters against a NumPy float64 transcription of the averages."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradopt

STEPS = 60
LR, MOMENTUM = 0.05, 0.9


def _problem():
    rng = np.random.default_rng(0)
    params = {"a": rng.normal(size=(3, 2)), "b": rng.normal(size=(4,))}
    grads = {k: rng.normal(size=(STEPS, *v.shape)) for k, v in params.items()}
    return params, grads


def _run(tx, params, grads):
    """Parameters after every step and the final state, one ``lax.scan`` in float32."""
    params = jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), params)
    grads = jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), grads)

    def step(carry, g):
        params, state = carry
        updates, state = tx.update(g, state, params)
        params = gradopt.apply_updates(params, updates)
        return (params, state), params

    (_, state), trajectory = jax.jit(lambda p, g: jax.lax.scan(step, (p, tx.init(p)), g))(
        params, grads
    )
    return trajectory, state


def _reference(params, grads, *, decay=None, start=0, every=1, overwrite_every=None):
    """SGD with momentum (torch's form) in float64, then the average as written in the paper."""
    w = {k: v.copy() for k, v in params.items()}
    m = {k: np.zeros_like(v) for k, v in params.items()}
    avg = {k: v.copy() for k, v in params.items()}
    n = 0
    trajectory = []
    for t in range(STEPS):
        for k in w:
            m[k] = MOMENTUM * m[k] + grads[k][t]
            w[k] = w[k] - LR * m[k]
        if t >= start and (t - start) % every == 0:
            for k in w:
                if n == 0:
                    avg[k] = w[k].copy()
                elif decay is None:
                    avg[k] = (n * avg[k] + w[k]) / (n + 1)
                else:
                    avg[k] = decay * avg[k] + (1 - decay) * w[k]
            n += 1
        if overwrite_every and (t + 1) % overwrite_every == 0 and n > 0:
            w = {k: v.copy() for k, v in avg.items()}
        trajectory.append({k: v.copy() for k, v in w.items()})
    return trajectory, avg


CASES = {
    "ema": {"decay": 0.9},
    "swa": {"start": 10, "every": 3},
    "ema-overwrite": {"decay": 0.8, "overwrite_every": 7},
    "swa-overwrite": {"start": 5, "overwrite_every": 20},
}


@pytest.mark.parametrize("case", list(CASES))
def test_average_follows_the_formula(case):
    params, grads = _problem()
    kwargs = CASES[case]
    tx = gradopt.average_parameters(gradopt.sgd(LR, momentum=MOMENTUM), **kwargs)
    trajectory, state = _run(tx, params, grads)
    want_trajectory, want_avg = _reference(params, grads, **kwargs)
    chex.assert_trees_all_close(gradopt.averaged_params(state), want_avg, rtol=2e-5, atol=2e-5)
    final = jax.tree.map(lambda x: x[-1], trajectory)
    chex.assert_trees_all_close(final, want_trajectory[-1], rtol=2e-5, atol=2e-5)


def test_without_overwrite_the_inner_trajectory_is_unchanged():
    params, grads = _problem()
    inner = gradopt.adam(0.01)
    plain, _ = _run(inner, params, grads)
    for kwargs in ({"decay": 0.99}, {"start": 3, "every": 2}):
        averaged, state = _run(gradopt.average_parameters(inner, **kwargs), params, grads)
        chex.assert_trees_all_equal(averaged, plain)
        # and the average is not the last iterate
        assert not np.allclose(gradopt.averaged_params(state)["a"], plain["a"][-1])


def test_decay_as_a_schedule():
    """A decay of 0 for the first 10 steps, then 0.9: the average restarts at step 10."""
    params, grads = _problem()
    tx = gradopt.average_parameters(
        gradopt.sgd(LR, momentum=MOMENTUM), decay=lambda count: jnp.where(count < 10, 0.0, 0.9)
    )
    _, state = _run(tx, params, grads)
    _, want = _reference(params, {k: v for k, v in grads.items()}, decay=0.9, start=9)
    chex.assert_trees_all_close(gradopt.averaged_params(state), want, rtol=2e-5, atol=2e-5)


def test_averaged_params_before_any_step_are_the_initial_ones():
    params = {"w": jnp.arange(3.0)}
    tx = gradopt.chain(gradopt.average_parameters(gradopt.sgd(0.1), start=5))
    chex.assert_trees_all_equal(gradopt.averaged_params(tx.init(params)), params)


def test_bfloat16_parameters_keep_a_float32_average():
    params = {"w": jnp.ones(3, jnp.bfloat16)}
    state = gradopt.average_parameters(gradopt.sgd(0.1), decay=0.999).init(params)
    assert gradopt.averaged_params(state)["w"].dtype == jnp.float32


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"decay": 1.5}, "decay"),
        ({"decay": -0.1}, "decay"),
        ({"start": -1}, "start"),
        ({"every": 0}, "every"),
        ({"overwrite_every": 0}, "overwrite_every"),
        ({"every": 1.5}, "every"),
    ],
)
def test_invalid_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        gradopt.average_parameters(gradopt.sgd(0.1), **kwargs)


def test_needs_params_and_an_average_in_the_state():
    tx = gradopt.average_parameters(gradopt.sgd(0.1))
    params = {"w": jnp.ones(2)}
    with pytest.raises(ValueError, match="needs the parameters"):
        tx.update(params, tx.init(params))
    with pytest.raises(ValueError, match="no average"):
        gradopt.averaged_params(gradopt.sgd(0.1).init(params))
