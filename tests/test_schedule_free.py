"""Schedule-free SGD/AdamW: optax.contrib's trajectories (constant learning rate),
and a NumPy transcription of the paper's rule with the linear warm-up."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import gradopt
from tests.match_optax import (
    assert_same_trajectory,
    grad_fn,
    mixed_tree,
    optax_trajectory,
    trajectory,
)

CASES = {
    "sgd-decay-power": (
        "sgd",
        {"learning_rate": 0.02, "b1": 0.8, "weight_decay": 0.01, "weight_lr_power": 1.0},
    ),
    "adamw": ("adamw", {"learning_rate": 0.02, "b1": 0.95, "b2": 0.99, "weight_decay": 0.05}),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_schedule_free_equals_optax_contrib(case):
    name, kw = CASES[case]
    got = trajectory(getattr(gradopt, f"schedule_free_{name}")(**kw))
    want = optax_trajectory(getattr(optax.contrib, f"schedule_free_{name}")(**kw))
    assert_same_trajectory(got, want)


def _numpy_schedule_free_adamw(w, steps, lr, warmup, b1, b2, eps, wd, p=2.0):
    """The paper's Algorithm 1 (AdamW form), float64, on a dict of arrays."""
    y = {k: np.asarray(v, np.float64) for k, v in w.items()}
    z = {k: v.copy() for k, v in y.items()}
    x = {k: v.copy() for k, v in y.items()}
    v2 = {k: np.zeros_like(v) for k, v in y.items()}
    lr_max, weight_sum, out = 0.0, 0.0, []
    for t in range(1, steps + 1):
        lr_t = lr * min(1.0, t / warmup)
        g = {k: np.asarray(a, np.float64) for k, a in grad_fn(y).items()}
        lr_max = max(lr_max, lr_t)
        weight_sum += lr_max**p
        c = lr_max**p / weight_sum
        for k in y:
            v2[k] = b2 * v2[k] + (1 - b2) * g[k] ** 2
            step = g[k] / (np.sqrt(v2[k] / (1 - b2**t)) + eps) + wd * y[k]
            z[k] = z[k] - lr_t * step
            x[k] = (1 - c) * x[k] + c * z[k]
            y[k] = (1 - b1) * z[k] + b1 * x[k]
        out.append(({k: a.copy() for k, a in y.items()}, {k: a.copy() for k, a in x.items()}))
    return out


def test_schedule_free_adamw_with_warmup_is_the_papers_rule():
    w = {k: v for k, v in mixed_tree().items() if k != "n"}
    kw = {
        "learning_rate": 0.05,
        "warmup_steps": 10,
        "b1": 0.9,
        "b2": 0.99,
        "eps": 1e-8,
        "weight_decay": 0.01,
    }
    opt = gradopt.schedule_free_adamw(**kw)
    want = _numpy_schedule_free_adamw(w, 60, 0.05, 10, 0.9, 0.99, 1e-8, 0.01)
    state = opt.init(w)
    step = jax.jit(opt.update)
    for y_want, x_want in want:
        u, state = step(grad_fn(w), state, w)
        w = gradopt.apply_updates(w, u)
        x = gradopt.schedule_free_eval_params(state, w)
        for k in w:
            np.testing.assert_allclose(np.asarray(w[k]), y_want[k], rtol=1e-5, atol=1e-5)
            np.testing.assert_allclose(np.asarray(x[k]), x_want[k], rtol=1e-5, atol=1e-5)


def test_eval_params_needs_a_schedule_free_state():
    with pytest.raises(ValueError, match="ScheduleFreeState"):
        gradopt.schedule_free_eval_params(gradopt.adam().init(jnp.ones(2)), jnp.ones(2))
    state = gradopt.chain(gradopt.clip(1.0), gradopt.schedule_free_sgd()).init(jnp.ones(2))
    assert gradopt.schedule_free_eval_params(state, jnp.ones(2)).shape == (2,)


def test_bad_arguments():
    with pytest.raises(ValueError, match="b1"):
        gradopt.schedule_free_sgd(b1=0.0)
    with pytest.raises(ValueError, match="warmup_steps"):
        gradopt.schedule_free_adamw(warmup_steps=0)
    with pytest.raises(TypeError, match="base_optimizer"):
        gradopt.schedule_free(object(), 0.1)
