"""The transform protocol: identity, chain, named_chain, apply_updates, the ``grads``
and extra keyword arguments a chain passes to its stages, tree-mismatch errors,
and equality of configurations (no recompilation for equal optimizers)."""

from __future__ import annotations

import functools
import subprocess
import sys
from typing import Any, NamedTuple

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import gradopt
from gradopt.core._base import transform


def params_tree(dtype=jnp.float32):
    return {"a": jnp.asarray([1.0, -2.0, 3.0], dtype), "b": (jnp.asarray([[0.5, 4.0]], dtype),)}


def grads_tree(dtype=jnp.float32):
    return {"a": jnp.asarray([0.1, 0.2, -0.3], dtype), "b": (jnp.asarray([[-1.0, 2.0]], dtype),)}


def times(tree, factor):
    return jax.tree.map(lambda x: x * factor, tree)


# ----------------------------------------------------------------------------
# a probe stage that records what the chain passes to it


class ProbeState(NamedTuple):
    grads: Any  # the ``grads`` keyword seen by the last update
    value: jax.Array  # the ``value`` keyword seen by the last update (-1 if none)
    params_seen: jax.Array  # 1 if params were passed


def _probe_init(params):
    return ProbeState(
        grads=jax.tree.map(jnp.zeros_like, params),
        value=jnp.asarray(-1.0),
        params_seen=jnp.asarray(0),
    )


def _probe_update(updates, state, params=None, **extra):
    grads = extra.get("grads")
    if grads is None:
        grads = jax.tree.map(lambda u: jnp.full_like(u, jnp.nan), updates)
    value = jnp.asarray(extra.get("value", -1.0), jnp.float32)
    return updates, ProbeState(grads, value, jnp.asarray(int(params is not None)))


def probe():
    """Passes the updates through; its state records the keywords it received."""
    return transform(_probe_init, _probe_update)


def optax_style_scale(factor):
    """An optax-style transform whose ``update`` takes no extra keyword arguments."""

    def init(params):
        del params
        return optax.EmptyState()

    def update(updates, state, params=None):
        del params
        return times(updates, factor), state

    return optax.GradientTransformation(init, update)


# ----------------------------------------------------------------------------
# identity, chain, named_chain


def test_identity_returns_updates_unchanged_with_empty_state():
    tx = gradopt.identity()
    g, p = grads_tree(), params_tree()
    state = tx.init(p)
    assert state == gradopt.EmptyState()
    updates, new_state = jax.jit(tx.update)(g, state, p)
    chex.assert_trees_all_equal(updates, g)
    assert new_state == gradopt.EmptyState()


def test_chain_applies_stages_in_order_and_keeps_a_tuple_of_states():
    tx = gradopt.chain(gradopt.scale(2.0), gradopt.trace(0.5), gradopt.scale_by_learning_rate(0.1))
    g, p = grads_tree(), params_tree()
    state = tx.init(p)
    assert isinstance(state, tuple) and len(state) == 3
    u1, state = tx.update(g, state)
    u2, state = tx.update(g, state)
    # v1 = 2g, v2 = 0.5 * 2g + 2g = 3g; updates are -0.1 * v
    chex.assert_trees_all_close(u1, times(g, -0.2), rtol=1e-6)
    chex.assert_trees_all_close(u2, times(g, -0.3), rtol=1e-6)
    chex.assert_trees_all_close(state[1].velocity, times(g, 3.0), rtol=1e-6)


def test_empty_chain_is_the_identity():
    tx = gradopt.chain()
    g = grads_tree()
    updates, state = tx.update(g, tx.init(params_tree()))
    chex.assert_trees_all_equal(updates, g)
    assert state == ()


def test_chain_rejects_what_is_not_a_transform():
    with pytest.raises(TypeError, match=r"argument 1 is 0\.1 of type float"):
        gradopt.chain(gradopt.scale(2.0), 0.1)


def test_chain_rejects_a_foreign_state():
    tx = gradopt.chain(gradopt.scale(2.0), gradopt.trace(0.9))
    with pytest.raises(ValueError, match="does not match what this optimizer's init builds"):
        tx.update(grads_tree(), (gradopt.EmptyState(),))


def test_named_chain_matches_chain_and_keys_state_by_name():
    g, p = grads_tree(), params_tree()
    named = gradopt.named_chain(("momentum", gradopt.trace(0.9)), ("lr", gradopt.scale(-0.1)))
    plain = gradopt.chain(gradopt.trace(0.9), gradopt.scale(-0.1))
    ns, ps = named.init(p), plain.init(p)
    assert set(ns) == {"momentum", "lr"}
    for _ in range(3):
        nu, ns = named.update(g, ns)
        pu, ps = plain.update(g, ps)
        chex.assert_trees_all_close(nu, pu)
    chex.assert_trees_all_close(ns["momentum"], ps[0])


def test_named_chain_argument_errors():
    with pytest.raises(ValueError, match=r"stage names must be unique, got \['a', 'a'\]"):
        gradopt.named_chain(("a", gradopt.identity()), ("a", gradopt.identity()))
    with pytest.raises(TypeError, match="must be a \\(name, transform\\) pair"):
        gradopt.named_chain(gradopt.identity())
    with pytest.raises(TypeError, match="not a gradient transformation"):
        gradopt.named_chain(("a", "adam"))
    tx = gradopt.named_chain(("a", gradopt.identity()))
    with pytest.raises(ValueError, match=r"state given: PyTreeDef\(\{'b'"):
        tx.update(grads_tree(), {"b": gradopt.EmptyState()})


# ----------------------------------------------------------------------------
# what the chain passes to its stages


def no_hidden_grads(state_of_probe):
    return all(np.isnan(x).all() for x in jax.tree.leaves(state_of_probe.grads))


@pytest.mark.parametrize("named", [False, True], ids=["chain", "named_chain"])
def test_stages_receive_only_the_output_of_the_stage_before(named):
    g, p = grads_tree(), params_tree()
    stages = [gradopt.scale(2.0), probe(), gradopt.scale(3.0), probe()]
    if named:
        tx = gradopt.named_chain(*[(str(i), s) for i, s in enumerate(stages)])
        key = lambda i: str(i)  # noqa: E731
    else:
        tx = gradopt.chain(*stages)
        key = lambda i: i  # noqa: E731
    updates, state = tx.update(g, tx.init(p))
    chex.assert_trees_all_close(updates, times(g, 6.0))
    # no side channel: the chain passes no ``grads`` keyword to its stages
    assert no_hidden_grads(state[key(1)]) and no_hidden_grads(state[key(3)])


def test_a_nested_chain_passes_no_hidden_keyword_either():
    g, p = grads_tree(), params_tree()
    inner = gradopt.chain(gradopt.scale(3.0), probe())
    tx = gradopt.chain(gradopt.scale(2.0), inner, probe())
    updates, state = jax.jit(tx.update)(g, tx.init(p))
    chex.assert_trees_all_close(updates, times(g, 6.0))
    assert no_hidden_grads(state[1][1]) and no_hidden_grads(state[2])


def test_a_stage_alone_sees_no_grads_keyword():
    g = grads_tree()
    tx = probe()
    _, state = tx.update(g, tx.init(params_tree()))
    assert no_hidden_grads(state)


def test_extra_keyword_arguments_reach_the_stages_that_accept_them():
    g, p = grads_tree(), params_tree()
    tx = gradopt.chain(
        optax_style_scale(2.0),  # takes no extra arguments: called without them
        probe(),
        gradopt.named_chain(("inner", probe())),
        optax.scale(0.5),
    )
    updates, state = tx.update(g, tx.init(p), p, value=jnp.asarray(3.5))
    chex.assert_trees_all_close(updates, g)
    assert float(state[1].value) == 3.5
    assert float(state[2]["inner"].value) == 3.5
    assert int(state[1].params_seen) == 1
    # without the keyword, stages see their defaults
    _, state = tx.update(g, tx.init(p))
    assert float(state[1].value) == -1.0
    assert int(state[1].params_seen) == 0


def test_reduce_on_plateau_gets_value_through_a_chain():
    tx = gradopt.chain(gradopt.sgd(1.0), gradopt.reduce_on_plateau(factor=0.5, patience=0))
    g, p = grads_tree(), params_tree()
    state = tx.init(p)
    u1, state = tx.update(g, state, value=jnp.asarray(1.0))
    u2, state = tx.update(g, state, value=jnp.asarray(2.0))  # no improvement: halve
    chex.assert_trees_all_close(u1, times(g, -1.0))
    chex.assert_trees_all_close(u2, times(g, -0.5))


# ----------------------------------------------------------------------------
# tree mismatch


@pytest.mark.parametrize(
    "make",
    [
        lambda: gradopt.adam(1e-3),
        lambda: gradopt.sgd(0.1, momentum=0.9),
        lambda: gradopt.trace(0.9),
        lambda: gradopt.scale_by_rms(0.9, eps=1e-8),
    ],
    ids=["adam", "sgd-momentum", "trace", "scale_by_rms"],
)
def test_mismatched_gradient_tree_raises_and_shows_both_structures(make):
    tx = make()
    p = params_tree()
    state = tx.init(p)
    bad = {"a": jnp.ones(3), "c": jnp.ones(2)}
    with pytest.raises(ValueError) as info:
        tx.update(bad, state)
    message = str(info.value)
    assert str(jax.tree.structure(bad)) in message
    # the state given holds trees of the parameters' structure, shown in the message
    assert str(jax.tree.structure(p)).removeprefix("PyTreeDef(")[:-1] in message
    with pytest.raises(ValueError, match="does not match"):
        jax.jit(tx.update)(bad, state)


@pytest.mark.parametrize(
    "make",
    [
        lambda: gradopt.adam(1e-3),
        lambda: gradopt.sgd(0.1, momentum=0.9),
        lambda: gradopt.adagrad(0.1),
        lambda: gradopt.adamw(1e-3, mask={"a": True, "b": {"c": False}}),
    ],
    ids=["adam", "sgd-momentum", "adagrad", "adamw-masked"],
)
def test_gradient_leaf_of_the_wrong_shape_raises_naming_the_leaf(make):
    tx = make()
    p = {"a": jnp.ones(3), "b": {"c": jnp.ones((2, 2))}}
    state = tx.init(p)
    bad = {"a": jnp.ones(3), "b": {"c": jnp.ones((2, 3))}}
    with pytest.raises(ValueError, match=r"\['b'\]\['c'\] has shape \(2, 3\).*shape \(2, 2\)"):
        tx.update(bad, state, p)
    updates, _ = tx.update(p, state, p)  # the right shapes still pass, masks included
    chex.assert_trees_all_equal_shapes(updates, p)


def test_apply_updates_mismatch_shows_both_structures():
    p = params_tree()
    bad = [jnp.ones(3)]
    with pytest.raises(ValueError) as info:
        gradopt.apply_updates(p, bad)
    assert str(jax.tree.structure(bad)) in str(info.value)
    assert str(jax.tree.structure(p)) in str(info.value)


# ----------------------------------------------------------------------------
# apply_updates


def test_apply_updates_adds_and_casts_to_each_parameter_dtype():
    p = {"lo": jnp.asarray([1.0, 2.0], jnp.bfloat16), "hi": jnp.asarray([1.0, 2.0], jnp.float32)}
    u = {
        "lo": jnp.asarray([0.001, -0.5], jnp.float32),
        "hi": jnp.asarray([0.25, 1.0], jnp.bfloat16),
    }
    new = gradopt.apply_updates(p, u)
    assert new["lo"].dtype == jnp.bfloat16 and new["hi"].dtype == jnp.float32
    # the sum is formed in float32 and rounded once to bfloat16
    expected_lo = (np.array([1.0, 2.0], np.float32) + np.array([0.001, -0.5], np.float32)).astype(
        jnp.bfloat16
    )
    np.testing.assert_array_equal(np.asarray(new["lo"]), expected_lo)
    np.testing.assert_allclose(np.asarray(new["hi"]), [1.25, 3.0])


def test_apply_updates_keeps_float64(x64):
    p = {"w": jnp.asarray([1.0, 2.0], jnp.float64)}
    new = gradopt.apply_updates(p, {"w": jnp.asarray([1e-12, 0.0], jnp.float32)})
    assert new["w"].dtype == jnp.float64
    assert float(new["w"][0]) == 1.0 + np.float64(np.float32(1e-12))


def test_apply_updates_leaves_none_leaves_alone():
    p = {"w": jnp.asarray([1.0, 2.0]), "frozen": None}
    new = jax.jit(gradopt.apply_updates)(p, {"w": jnp.asarray([0.5, 0.5]), "frozen": None})
    assert new["frozen"] is None
    np.testing.assert_allclose(np.asarray(new["w"]), [1.5, 2.5])


def test_apply_updates_is_optax_compatible():
    p, u = params_tree(), grads_tree()
    chex.assert_trees_all_close(gradopt.apply_updates(p, u), optax.apply_updates(p, u))


# ----------------------------------------------------------------------------
# equality of configurations and compilation


def test_equal_configurations_are_equal_and_hash_alike():
    pairs = [
        (gradopt.adam(1e-3), gradopt.adam(learning_rate=1e-3)),
        (gradopt.sgd(0.1, momentum=0.9), gradopt.sgd(0.1, 0.9)),
        (
            gradopt.chain(gradopt.clip_by_global_norm(1.0), gradopt.adamw(1e-3)),
            gradopt.chain(gradopt.clip_by_global_norm(1.0), gradopt.adamw(1e-3)),
        ),
        (
            gradopt.named_chain(("a", gradopt.scale(2.0))),
            gradopt.named_chain(("a", gradopt.scale(2.0))),
        ),
        (gradopt.identity(), gradopt.identity()),
    ]
    for a, b in pairs:
        assert a == b
        assert hash(a) == hash(b)


def test_different_configurations_differ():
    variants = [
        gradopt.adam(1e-3),
        gradopt.adam(2e-3),
        gradopt.adam(1e-3, b1=0.8),
        gradopt.adamw(1e-3),
        gradopt.sgd(1e-3),
        gradopt.sgd(1e-3, momentum=0.9),
        gradopt.sgd(1e-3, momentum=0.9, nesterov=True),
        gradopt.chain(gradopt.adam(1e-3)),
        gradopt.named_chain(("adam", gradopt.adam(1e-3))),
        gradopt.named_chain(("opt", gradopt.adam(1e-3))),
    ]
    for i, a in enumerate(variants):
        for b in variants[i + 1 :]:
            assert a != b, (a, b)
    assert len({hash(v) for v in variants}) == len(variants)


def test_array_hyperparameters_compare_by_identity():
    lr = jnp.asarray(1e-3)
    assert gradopt.adam(lr) == gradopt.adam(lr)
    assert gradopt.adam(lr) != gradopt.adam(jnp.asarray(1e-3))


def _count_compilations(opts):
    traces = []

    @functools.partial(jax.jit, static_argnums=0)
    def step(opt, grads, state):
        traces.append(None)
        return opt.update(grads, state)

    g = grads_tree()
    for opt in opts:
        step(opt, g, opt.init(params_tree()))
    return len(traces)


def test_equal_optimizers_as_static_jit_argument_compile_once():
    assert _count_compilations([gradopt.adam(1e-3), gradopt.adam(1e-3)]) == 1
    assert _count_compilations([gradopt.adam(1e-3), gradopt.adam(2e-3)]) == 2


def test_optax_recompiles_for_equal_optimizers_built_twice():
    """optax's transforms are closures compared by identity: the same arguments
    built twice are different static arguments, so the step is compiled twice."""
    assert optax.adam(1e-3) != optax.adam(1e-3)
    with jax.numpy_dtype_promotion("standard"):  # optax.adam mixes float and int32
        assert _count_compilations([optax.adam(1e-3), optax.adam(1e-3)]) == 2


def test_compat_modules_are_reachable_after_a_plain_import():
    # A fresh interpreter: in this one other tests have imported gradopt.compat already.
    code = "import gradopt; print(gradopt.compat.torch.adam(lr=1e-3), gradopt.compat.keras.adam())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "GradientTransformation" in out.stdout
