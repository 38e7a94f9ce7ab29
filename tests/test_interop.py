"""Interoperability with optax and flax, both ways.

gradopt transforms are duck-compatible with ``optax.GradientTransformation``:
they go inside ``optax.chain``, optax transforms go inside ``gradopt.chain``,
and optax utilities (``apply_updates``, ``MultiSteps``, ``masked``,
``inject_hyperparams``) and flax's ``TrainState`` accept a gradopt optimizer.
Each composition is compared with the pure-optax or pure-gradopt result.

optax 0.2.8 is not written for strict dtype promotion (``optax.adam`` raises
``1 - b1**count`` mixes a float with an int32), so the optax side of each
comparison runs under ``jax.numpy_dtype_promotion("standard")``.
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax.training import train_state

import gradopt

N_STEPS = 8


def params_tree():
    return {"w": jnp.asarray([[0.5, -1.0], [2.0, 0.25]]), "b": (jnp.asarray([0.1, -0.3, 0.7]),)}


def grads_list(n=N_STEPS, seed=1):
    rng = np.random.default_rng(seed)
    leaves, treedef = jax.tree.flatten(params_tree())
    return [
        jax.tree.unflatten(
            treedef, [jnp.asarray(rng.normal(size=x.shape) * 3.0, jnp.float32) for x in leaves]
        )
        for _ in range(n)
    ]


def run(tx, grads=None, params=None, jit=False):
    """All updates of ``tx`` on a fixed gradient sequence, params updated as it goes."""
    params = params_tree() if params is None else params
    state = tx.init(params)
    update = jax.jit(tx.update) if jit else tx.update
    out = []
    for g in grads or grads_list():
        u, state = update(g, state, params)
        params = optax.apply_updates(params, u)
        out.append(u)
    return out, params


def standard(fn, *args):
    with jax.numpy_dtype_promotion("standard"):
        return fn(*args)


# ----------------------------------------------------------------------------
# gradopt inside optax.chain


@pytest.mark.parametrize(
    ("mixed", "pure"),
    [
        (
            lambda: optax.chain(optax.clip_by_global_norm(1.0), gradopt.adam(0.01)),
            lambda: optax.chain(optax.clip_by_global_norm(1.0), optax.adam(0.01)),
        ),
        (
            lambda: optax.chain(gradopt.trace(0.9), optax.scale(-0.05)),
            lambda: optax.chain(optax.trace(0.9), optax.scale(-0.05)),
        ),
        (
            lambda: optax.chain(gradopt.sgd(0.05, momentum=0.9, nesterov=True), optax.scale(2.0)),
            lambda: optax.chain(optax.sgd(0.05, momentum=0.9, nesterov=True), optax.scale(2.0)),
        ),
    ],
    ids=["clip-adam", "trace-scale", "sgd_nesterov-scale"],
)
def test_gradopt_inside_optax_chain_matches_pure_optax(mixed, pure):
    got, _ = run(mixed())
    expected, _ = standard(run, pure())
    chex.assert_trees_all_close(got, expected, rtol=2e-5, atol=1e-7)


def test_gradopt_inside_optax_chain_under_jit():
    tx = optax.chain(optax.clip(0.5), gradopt.adamw(0.01, weight_decay=0.1))
    pure = optax.chain(optax.clip(0.5), optax.adamw(0.01, weight_decay=0.1))
    p = params_tree()
    g = grads_list(1)[0]
    got = jax.jit(tx.update)(g, tx.init(p), p)[0]
    expected = standard(lambda: pure.update(g, pure.init(p), p)[0])
    chex.assert_trees_all_close(got, expected, rtol=2e-5)


# ----------------------------------------------------------------------------
# optax inside gradopt.chain


@pytest.mark.parametrize(
    ("mixed", "pure"),
    [
        (
            lambda: gradopt.chain(optax.clip_by_global_norm(1.0), gradopt.adam(0.01)),
            lambda: gradopt.chain(gradopt.clip_by_global_norm(1.0), gradopt.adam(0.01)),
        ),
        (
            lambda: gradopt.chain(optax.trace(0.9), gradopt.scale_by_learning_rate(0.05)),
            lambda: gradopt.chain(gradopt.trace(0.9), gradopt.scale_by_learning_rate(0.05)),
        ),
        (
            lambda: gradopt.chain(optax.scale_by_adam(), gradopt.scale_by_learning_rate(0.01)),
            lambda: gradopt.adam(0.01),
        ),
        (
            lambda: gradopt.chain(
                optax.add_decayed_weights(0.1), optax.scale_by_adam(), optax.scale(-0.01)
            ),
            lambda: gradopt.chain(gradopt.add_decayed_weights(0.1), gradopt.adam(0.01)),
        ),
    ],
    ids=["clip-adam", "trace-lr", "scale_by_adam-lr", "decay-adam"],
)
def test_optax_inside_gradopt_chain_matches_pure_gradopt(mixed, pure):
    got, _ = standard(run, mixed())
    expected, _ = run(pure())
    chex.assert_trees_all_close(got, expected, rtol=2e-5, atol=1e-7)


def test_optax_stage_without_extra_arguments_inside_gradopt_chain_with_value():
    tx = gradopt.chain(
        optax.scale(2.0), gradopt.sgd(0.1), gradopt.reduce_on_plateau(factor=0.5, patience=0)
    )
    p, g = params_tree(), grads_list(1)[0]
    state = tx.init(p)
    u1, state = tx.update(g, state, p, value=jnp.asarray(1.0))
    u2, state = tx.update(g, state, p, value=jnp.asarray(1.0))
    chex.assert_trees_all_close(u1, jax.tree.map(lambda x: -0.2 * x, g), rtol=1e-6)
    chex.assert_trees_all_close(u2, jax.tree.map(lambda x: -0.1 * x, g), rtol=1e-6)


# ----------------------------------------------------------------------------
# gradopt where optax code expects an optax optimizer


def test_optax_multisteps_accepts_a_gradopt_optimizer():
    k = 2
    grads = grads_list()
    multi = optax.MultiSteps(gradopt.adam(0.01), every_k_schedule=k)
    got, _ = standard(run, multi, grads, None, True)  # MultiSteps mixes int32 and float32
    # reference: plain gradopt adam on the mean of every k gradients, zero updates between
    inner = gradopt.adam(0.01)
    p = params_tree()
    state = inner.init(p)
    for i in range(0, len(grads), k):
        mean = jax.tree.map(lambda *xs: sum(xs) / k, *grads[i : i + k])
        u, state = inner.update(mean, state)
        for j in range(k - 1):
            chex.assert_trees_all_close(got[i + j], jax.tree.map(jnp.zeros_like, u))
        chex.assert_trees_all_close(got[i + k - 1], u, rtol=1e-5, atol=1e-7)


def test_optax_masked_wraps_a_gradopt_optimizer():
    mask = {"w": True, "b": (False,)}
    got, _ = run(optax.masked(gradopt.adam(0.01), mask))
    adam, _ = run(gradopt.adam(0.01))
    for g_in, u_masked, u_adam in zip(grads_list(), got, adam, strict=True):
        chex.assert_trees_all_close(u_masked["w"], u_adam["w"], rtol=1e-6)
        chex.assert_trees_all_close(u_masked["b"], g_in["b"])  # passed through


def test_optax_inject_hyperparams_builds_a_gradopt_optimizer_from_traced_values():
    tx = optax.inject_hyperparams(gradopt.adam)(learning_rate=0.01, b1=0.8)
    got, _ = run(tx)
    expected, _ = run(gradopt.adam(0.01, b1=0.8))
    chex.assert_trees_all_close(got, expected, rtol=1e-5, atol=1e-7)


# ----------------------------------------------------------------------------
# flax TrainState


def _loss(params, batch):
    x, y = batch
    pred = x @ params["w"] + params["b"][0][None, :2]
    return jnp.mean((pred - y) ** 2)


def _batch():
    rng = np.random.default_rng(3)
    return jnp.asarray(rng.normal(size=(5, 2)), jnp.float32), jnp.asarray(
        rng.normal(size=(5, 2)), jnp.float32
    )


def test_flax_train_state_with_a_gradopt_optimizer():
    traces = []

    @jax.jit
    def train_step(state, batch):
        traces.append(None)
        grads = jax.grad(_loss)(state.params, batch)
        return state.apply_gradients(grads=grads)

    batch = _batch()
    state = train_state.TrainState.create(
        apply_fn=None, params=params_tree(), tx=gradopt.adam(0.05)
    )
    for _ in range(5):
        state = train_step(state, batch)
    assert int(state.step) == 5

    # reference: the same loop written directly against gradopt
    opt = gradopt.adam(0.05)
    params = params_tree()
    opt_state = opt.init(params)
    for _ in range(5):
        updates, opt_state = opt.update(jax.grad(_loss)(params, batch), opt_state, params)
        params = gradopt.apply_updates(params, updates)
    chex.assert_trees_all_close(state.params, params, rtol=1e-5, atol=1e-7)
    chex.assert_trees_all_close(state.opt_state, opt_state, rtol=1e-5, atol=1e-7)
    assert _loss(state.params, batch) < _loss(params_tree(), batch)

    # tx is a static field of TrainState: an equal optimizer built again reuses the compilation
    again = train_state.TrainState.create(
        apply_fn=None, params=params_tree(), tx=gradopt.adam(0.05)
    )
    train_step(again, batch)
    assert len(traces) == 1
