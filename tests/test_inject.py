"""inject_hyperparams: values in the state, writable without recompiling, schedules on any."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradopt

STEPS = 12


def _params():
    rng = np.random.default_rng(0)
    return {"w": jnp.asarray(rng.standard_normal((3, 2)), jnp.float32), "b": jnp.zeros(2)}


def _grad(params):
    # Gradient of sum(w^4)/4 + sum((b - 1)^2)/2, so the trajectory depends on params.
    return {"w": params["w"] ** 3, "b": params["b"] - 1.0}


def _np_sgd(params, lrs, mus):
    """NumPy float64 SGD with momentum, v = mu_t v + g, w -= lr_t v, per step values."""
    p = jax.tree.map(np.float64, params)
    v = jax.tree.map(np.zeros_like, p)
    for lr, mu in zip(lrs, mus, strict=True):
        g = _grad(p)
        v = jax.tree.map(lambda v, g, mu=mu: mu * v + g, v, g)
        p = jax.tree.map(lambda p, v, lr=lr: p - lr * v, p, v)
    return p


def _run(tx, params, steps, state=None, step_fn=None):
    step_fn = step_fn or jax.jit(tx.update)
    state = tx.init(params) if state is None else state
    for _ in range(steps):
        updates, state = step_fn(_grad(params), state, params)
        params = gradopt.apply_updates(params, updates)
    return params, state, step_fn


def test_sgd_matches_reference_and_values_are_readable():
    tx = gradopt.inject_hyperparams(gradopt.sgd)(learning_rate=0.05, momentum=0.9)
    params, state, _ = _run(tx, _params(), STEPS)
    want = _np_sgd(_params(), [0.05] * STEPS, [0.9] * STEPS)
    chex.assert_trees_all_close(params, want, rtol=2e-5, atol=1e-6)
    assert set(state.hyperparams) == {"learning_rate", "momentum"}
    assert state.hyperparams["momentum"].dtype == jnp.float32
    assert float(state.hyperparams["learning_rate"]) == pytest.approx(0.05)
    assert int(state.count) == STEPS


def test_writing_between_steps_does_not_recompile():
    tx = gradopt.inject_hyperparams(gradopt.sgd)(learning_rate=0.05, momentum=0.0)
    params, state, step = _run(tx, _params(), 4)
    state = gradopt.set_hyperparams(state, learning_rate=0.02, momentum=0.5)
    params, state, _ = _run(tx, params, 4, state, step)
    state = state._replace(hyperparams={**state.hyperparams, "momentum": jnp.float32(0.8)})
    params, state, _ = _run(tx, params, 4, state, step)
    assert step._cache_size() == 1  # one compilation for all three settings
    want = _np_sgd(_params(), [0.05] * 4 + [0.02] * 8, [0.0] * 4 + [0.5] * 4 + [0.8] * 4)
    chex.assert_trees_all_close(params, want, rtol=2e-5, atol=1e-6)
    assert float(state.hyperparams["momentum"]) == pytest.approx(0.8)


def test_schedule_drives_momentum():
    mu_schedule = gradopt.schedules.from_callable(
        lambda t: 0.5 + 0.4 * (t >= 5).astype(jnp.float32)
    )
    lr_schedule = gradopt.schedules.cosine(0.1, STEPS)
    tx = gradopt.inject_hyperparams(gradopt.sgd)(learning_rate=lr_schedule, momentum=mu_schedule)
    params, state, step = _run(tx, _params(), STEPS)
    t = np.arange(STEPS)
    lrs = 0.1 * (1 + np.cos(np.pi * t / STEPS)) / 2
    mus = 0.5 + 0.4 * (t >= 5)
    chex.assert_trees_all_close(params, _np_sgd(_params(), lrs, mus), rtol=2e-5, atol=1e-6)
    # The state holds the values used by the last update.
    assert float(state.hyperparams["momentum"]) == pytest.approx(0.9)
    assert float(state.hyperparams["learning_rate"]) == pytest.approx(lrs[-1], rel=1e-5)
    assert step._cache_size() == 1


def test_adam_with_scheduled_learning_rate():
    schedule = gradopt.schedules.from_callable(lambda t: 0.01 / (1.0 + t.astype(jnp.float32)))
    tx = gradopt.inject_hyperparams(gradopt.adam)(learning_rate=schedule, b1=0.8, b2=0.99)
    params, _, _ = _run(tx, _params(), STEPS)
    p = jax.tree.map(np.float64, _params())
    m = jax.tree.map(np.zeros_like, p)
    v = jax.tree.map(np.zeros_like, p)
    for t in range(1, STEPS + 1):
        g = _grad(p)
        m = jax.tree.map(lambda m, g: 0.8 * m + 0.2 * g, m, g)
        v = jax.tree.map(lambda v, g: 0.99 * v + 0.01 * g**2, v, g)
        lr = 0.01 / t

        def step(p, m, v, t=t, lr=lr):
            return p - lr * (m / (1 - 0.8**t)) / (np.sqrt(v / (1 - 0.99**t)) + 1e-8)

        p = jax.tree.map(step, p, m, v)
    chex.assert_trees_all_close(params, p, rtol=2e-5, atol=1e-6)


def test_static_arguments_stay_static():
    tx = gradopt.inject_hyperparams(gradopt.sgd)(learning_rate=0.1, momentum=0.9, nesterov=True)
    state = tx.init(_params())
    assert set(state.hyperparams) == {"learning_rate", "momentum"}
    tx = gradopt.inject_hyperparams(gradopt.sgd, static_args=("momentum",))(
        learning_rate=0.1, momentum=0.9
    )
    assert set(tx.init(_params()).hyperparams) == {"learning_rate"}


def test_under_vmap_and_equal_configurations():
    make = gradopt.inject_hyperparams(gradopt.scale_by_learning_rate)
    assert make(learning_rate=0.1) == make(learning_rate=0.1)
    tx = make(learning_rate=0.1)
    params = _params()

    def run(lr):
        state = gradopt.set_hyperparams(tx.init(params), learning_rate=lr)
        return tx.update(_grad(params), state)[0]

    out = jax.vmap(run)(jnp.array([0.1, 0.2]))
    g = _grad(params)
    chex.assert_trees_all_close(
        jax.tree.map(lambda x: x[1], out), jax.tree.map(lambda x: -0.2 * x, g)
    )


def test_nested_in_chain_and_set_hyperparams_finds_it():
    tx = gradopt.chain(
        gradopt.clip_by_global_norm(10.0),
        gradopt.inject_hyperparams(gradopt.sgd)(learning_rate=0.1),
    )
    state = tx.init(_params())
    state = gradopt.set_hyperparams(state, learning_rate=0.3)
    assert float(state[1].hyperparams["learning_rate"]) == pytest.approx(0.3)
    updates, _ = tx.update(_grad(_params()), state, _params())
    chex.assert_trees_all_close(
        updates, jax.tree.map(lambda g: -0.3 * g, _grad(_params())), rtol=1e-6
    )
    with pytest.raises(KeyError, match="no injected hyperparameters"):
        gradopt.set_hyperparams(state, beta=0.1)


def test_bad_arguments_fail_at_construction():
    make = gradopt.inject_hyperparams(gradopt.sgd)
    with pytest.raises(ValueError, match="learning_rate"):
        make(learning_rate=-1.0)
    with pytest.raises(TypeError, match="by keyword"):
        make(0.1)
    with pytest.raises(TypeError, match="factory"):
        gradopt.inject_hyperparams(3)
