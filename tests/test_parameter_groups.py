"""gradopt.partition, masked, freeze and set_to_zero against optax's with the same arguments."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import gradopt

STEPS = 40


def _params():
    rng = np.random.default_rng(0)
    return {
        "dense": {
            "kernel": jnp.asarray(rng.normal(size=(3, 2)), jnp.float32),
            "bias": jnp.asarray(rng.normal(size=(2,)), jnp.float32),
        },
        "norm": {"scale": jnp.asarray(rng.normal(size=(2,)), jnp.float32)},
    }


def _grads():
    """``STEPS`` gradient trees stacked on a leading axis (for ``lax.scan``)."""
    rng = np.random.default_rng(1)
    return jax.tree.map(
        lambda x: jnp.asarray(rng.normal(size=(STEPS, *x.shape)), jnp.float32), _params()
    )


def _run(tx, params, grads):
    """The parameters after every step (stacked), one ``lax.scan``."""

    def step(carry, g):
        params, state = carry
        updates, state = tx.update(g, state, params)
        params = optax.apply_updates(params, updates)
        return (params, state), params

    return jax.jit(lambda p, g: jax.lax.scan(step, (p, tx.init(p)), g)[1])(params, grads)


def _labels(params):
    """No weight decay for biases and norms: a torch user's second param group."""
    return jax.tree_util.tree_map_with_path(
        lambda path, _: "no_decay" if "bias" in str(path) or "norm" in str(path) else "decay",
        params,
    )


LABEL_TREE = {"dense": {"kernel": "decay", "bias": "no_decay"}, "norm": "no_decay"}  # a prefix


@pytest.mark.parametrize("labels", [_labels, LABEL_TREE], ids=["function", "prefix-tree"])
@pytest.mark.parametrize("inner", ["gradopt", "optax"])
def test_partition_follows_optax_partition(labels, inner):
    if inner == "gradopt":
        groups = {
            "decay": gradopt.adamw(0.01, weight_decay=0.1),
            "no_decay": gradopt.sgd(0.1, momentum=0.9),
        }
    else:
        # (optax's adam does not trace under the tests' strict dtype promotion)
        groups = {
            "decay": optax.chain(optax.add_decayed_weights(0.1), optax.sgd(0.01, momentum=0.5)),
            "no_decay": optax.sgd(0.1, momentum=0.9),
        }
    params, grads = _params(), _grads()
    got = _run(gradopt.partition(groups, labels), params, grads)
    want = _run(optax.partition(groups, labels), params, grads)
    chex.assert_trees_all_close(got, want, rtol=1e-6, atol=1e-7)
    # the groups differ: the same optimizer for every leaf is another trajectory
    other = _run(gradopt.adamw(0.01, weight_decay=0.1), params, grads)
    assert not np.allclose(other["norm"]["scale"][-1], got["norm"]["scale"][-1])


def test_each_group_keeps_state_for_its_own_leaves_only():
    params = _params()
    tx = gradopt.partition({"decay": gradopt.adam(0.1), "no_decay": gradopt.set_to_zero()}, _labels)
    state = tx.init(params)
    adam_leaves = jax.tree.leaves(state.inner_states["decay"])
    # adam's two moments for the kernel (3 x 2) and a step count: nothing for bias or norm
    assert sorted(int(np.size(x)) for x in adam_leaves if np.size(x) > 1) == [6, 6]
    assert jax.tree.leaves(state.inner_states["no_decay"]) == []


@pytest.mark.parametrize(
    "mask",
    [
        {"dense": {"kernel": True, "bias": False}, "norm": {"scale": False}},
        {"dense": True, "norm": False},
    ],
)
def test_masked_follows_optax_masked(mask):
    params, grads = _params(), _grads()
    inner = gradopt.chain(gradopt.add_decayed_weights(0.1), gradopt.adam(0.05))
    got = _run(gradopt.chain(gradopt.masked(inner, mask), gradopt.scale(0.5)), params, grads)
    want = _run(optax.chain(optax.masked(inner, mask), optax.scale(0.5)), params, grads)
    chex.assert_trees_all_close(got, want, rtol=1e-6, atol=1e-7)


def test_freeze_and_set_to_zero_follow_optax():
    params, grads = _params(), _grads()
    mask = {"dense": {"kernel": False, "bias": True}, "norm": True}
    got = _run(gradopt.chain(gradopt.sgd(0.1), gradopt.freeze(mask)), params, grads)
    want = _run(optax.chain(optax.sgd(0.1), optax.freeze(mask)), params, grads)
    chex.assert_trees_all_close(got, want)
    np.testing.assert_array_equal(got["norm"]["scale"][-1], params["norm"]["scale"])
    assert not np.allclose(got["dense"]["kernel"][-1], params["dense"]["kernel"])
    zero = gradopt.set_to_zero()
    chex.assert_trees_all_equal(
        zero.update(params, zero.init(params))[0], optax.set_to_zero().update(params, None)[0]
    )


def test_a_label_without_a_transform_is_refused():
    tx = gradopt.partition({"decay": gradopt.adam(0.1)}, _labels)
    with pytest.raises(ValueError, match="no_decay"):
        tx.init(_params())


def test_labels_of_the_wrong_structure_are_refused():
    tx = gradopt.partition({"a": gradopt.adam(0.1)}, {"x": "a"})
    with pytest.raises(ValueError, match="prefix"):
        tx.init(_params())


@pytest.mark.parametrize("bad", [None, {}, {"a": 1.0}])
def test_transforms_must_be_a_mapping_of_transforms(bad):
    with pytest.raises(TypeError, match="partition"):
        gradopt.partition(bad, _labels)


def test_masked_refuses_a_mask_that_is_not_boolean():
    tx = gradopt.masked(gradopt.adam(0.1), {"dense": 1, "norm": 0})
    with pytest.raises(TypeError, match="booleans"):
        tx.init(_params())


def test_a_group_is_the_same_optimizer_run_on_its_leaves_alone():
    """torch's param_groups: a group's global-norm clipping and step count see only its
    leaves, so the partition equals each group's optimizer run on its subtree alone."""
    from gradopt.compat import torch as torch_compat

    params, grads = _params(), _grads()
    groups = {
        "decay": gradopt.chain(gradopt.clip_by_global_norm(0.5), torch_compat.adamw(lr=1e-2)),
        "no_decay": gradopt.chain(
            gradopt.clip_by_global_norm(0.5), torch_compat.adamw(lr=1e-1, weight_decay=0.0)
        ),
    }
    got = _run(gradopt.partition(groups, LABEL_TREE), params, grads)
    kernel = _run(groups["decay"], params["dense"]["kernel"], grads["dense"]["kernel"])
    rest = _run(
        groups["no_decay"],
        (params["dense"]["bias"], params["norm"]),
        (grads["dense"]["bias"], grads["norm"]),
    )
    chex.assert_trees_all_close(got["dense"]["kernel"], kernel, rtol=1e-6, atol=1e-7)
    chex.assert_trees_all_close((got["dense"]["bias"], got["norm"]), rest, rtol=1e-6, atol=1e-7)
