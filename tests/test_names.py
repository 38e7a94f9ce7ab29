"""One name per concept: keyword-only weight decay, ``inner_state``, ``mu_dtype``."""

import inspect

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradopt

_OPTIMIZERS = [
    "sgd",
    "adagrad",
    "adadelta",
    "rmsprop",
    "adam",
    "adamw",
    "amsgrad",
    "adamax",
    "nadam",
]


@pytest.mark.parametrize("name", _OPTIMIZERS)
def test_weight_decay_is_keyword_only(name):
    parameter = inspect.signature(getattr(gradopt, name)).parameters["weight_decay"]
    assert parameter.kind is inspect.Parameter.KEYWORD_ONLY, name


def test_adamw_rejects_a_positional_weight_decay():
    with pytest.raises(TypeError):
        gradopt.adamw(1e-3, 0.9, 0.999, 1e-8, 0.1)  # type: ignore[misc]


def test_every_wrapper_state_names_its_inner_state_inner_state():
    wrappers = [
        gradopt.PackedState,
        gradopt.AccumulateState,
        gradopt.SkipNonfiniteState,
        gradopt.InjectHyperparamsState,
    ]
    for state in wrappers:
        assert "inner_state" in state._fields, state
        assert "inner" not in state._fields, state


def test_adamax_stores_m_in_mu_dtype_and_matches_float32():
    params = {"w": jnp.array([1.0, -2.0, 0.5], jnp.float32)}
    grads = {"w": jnp.array([0.3, -1.0, 2.0], jnp.float32)}
    low, full = gradopt.adamax(1e-2, mu_dtype=jnp.bfloat16), gradopt.adamax(1e-2)
    s_low, s_full = low.init(params), full.init(params)
    for _ in range(3):
        u_low, s_low = low.update(grads, s_low, params)
        u_full, s_full = full.update(grads, s_full, params)
    dtypes = sorted(leaf.dtype.name for leaf in jax.tree.leaves(s_low) if leaf.shape == (3,))
    assert dtypes == ["bfloat16", "float32"]  # m in bfloat16, u in the parameter's dtype
    assert u_low["w"].dtype == jnp.float32
    np.testing.assert_allclose(u_low["w"], u_full["w"], rtol=2e-2)


def test_adamax_rejects_a_non_float_mu_dtype():
    with pytest.raises(TypeError, match="mu_dtype|dtype"):
        gradopt.adamax(mu_dtype=jnp.int32)
