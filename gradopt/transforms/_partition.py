"""Parameter groups: ``partition``, ``masked``, ``freeze`` and ``set_to_zero``.

A group is a set of parameter leaves that one transform handles. The transform
of a group sees only the group's leaves: every other leaf of the parameters,
the updates and its own state is replaced by an empty node (:class:`MaskedNode`,
a pytree with no leaves), so its state holds nothing for them. This is how a
PyTorch ``param_groups`` list (a larger learning rate for the head, no weight
decay for biases and norms) is written in gradopt; see ``docs/migration.md``.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradopt.core._base import EmptyState, GradientTransformation, call_update, transform

_PARTITION = "gradopt.partition"
_MASKED = "gradopt.masked"


class MaskedNode(NamedTuple):
    """Stands for a leaf that a group does not own: a pytree node with no leaves."""


class MaskedState(NamedTuple):
    """State of :func:`masked`: the inner transform's state over the masked tree."""

    inner_state: Any


class PartitionState(NamedTuple):
    """State of :func:`partition`: one :class:`MaskedState` per label, in a dict."""

    inner_states: Any


def _is_transform(tx) -> bool:
    return callable(getattr(tx, "init", None)) and callable(getattr(tx, "update", None))


def _resolve(tree_or_fn, like):
    """A mask or labels tree: ``tree_or_fn(like)`` if it is a function, else itself."""
    return tree_or_fn(like) if callable(tree_or_fn) else tree_or_fn


def _mask_tree(tree, mask):
    """``tree`` with every leaf (or subtree) whose mask entry is False replaced by a
    :class:`MaskedNode`. ``mask`` may be a prefix of ``tree``."""
    return jax.tree.map(lambda m, sub: sub if m else MaskedNode(), mask, tree)


def _check_mask(where, mask, like, what: str) -> None:
    try:
        jax.tree.map(lambda m, sub: None, mask, like)
    except ValueError as error:
        raise ValueError(
            f"{where}: the {what} tree {jax.tree.structure(mask)} is not a prefix of the "
            f"parameters' tree {jax.tree.structure(like)}. Give one {what} entry per parameter "
            f"leaf (or per subtree), or a function params -> {what} tree."
        ) from error


def _masked_init(params, *, inner, mask):
    m = _resolve(mask, params)
    _check_mask(_MASKED, m, params, "mask")
    _check_bool_mask(m)
    return MaskedState(inner.init(_mask_tree(params, m)))


def _check_bool_mask(mask) -> None:
    for leaf in jax.tree.leaves(mask):
        if not isinstance(leaf, (bool, jnp.bool_)):
            raise TypeError(
                f"{_MASKED}: mask leaves must be Python booleans (True: the inner transform "
                f"handles the leaf), got {leaf!r} of type {type(leaf).__name__}."
            )


def _masked_update(updates, state, params=None, *, inner, mask, **extra):
    m = _resolve(mask, updates)
    _check_mask(_MASKED, m, updates, "mask")
    inner_params = None if params is None else _mask_tree(params, m)
    new, inner_state = call_update(
        inner, _mask_tree(updates, m), state.inner_state, inner_params, extra
    )
    out = jax.tree.map(lambda keep, n, u: n if keep else u, m, new, updates)
    return out, MaskedState(inner_state)


def masked(inner, mask) -> GradientTransformation:
    """Apply ``inner`` to the leaves where ``mask`` is True; pass the others through.

    ``inner`` sees a tree in which every leaf outside the mask is an empty
    :class:`MaskedNode`, so it keeps no state for them. The same as
    ``optax.masked(inner, mask)``.

    Args:
      inner: the transform for the masked leaves (gradopt's or optax's).
      mask: a tree of booleans with the structure of the parameters (or a
        prefix of it: one boolean for a whole subtree), or a function
        ``params -> mask`` (called with the updates in ``update``).

    Returns:
      A gradient transformation whose state is :class:`MaskedState`.

    Example:
      >>> import jax.numpy as jnp, gradopt
      >>> params = {"w": jnp.ones(2), "b": jnp.ones(2)}
      >>> tx = gradopt.masked(gradopt.add_decayed_weights(0.5), {"w": True, "b": False})
      >>> updates, _ = tx.update({"w": jnp.zeros(2), "b": jnp.zeros(2)}, tx.init(params), params)
      >>> updates["w"], updates["b"]  # decay on w only
      (Array([0.5, 0.5], dtype=float32), Array([0., 0.], dtype=float32))
    """
    if not _is_transform(inner):
        raise TypeError(
            f"{_MASKED}: inner is {inner!r}, which is not a gradient transformation. Pass an "
            "optimizer such as gradopt.add_decayed_weights(1e-4)."
        )
    return transform(_masked_init, _masked_update, inner=inner, mask=mask)


def _set_to_zero_init(params):
    del params
    return EmptyState()


def _set_to_zero_update(updates, state, params=None, **extra):
    del params, extra
    return jax.tree.map(jnp.zeros_like, updates), state


def set_to_zero() -> GradientTransformation:
    """Replace every update by zeros (state :class:`EmptyState`): the leaves do not move.

    Example:
      >>> import jax.numpy as jnp, gradopt
      >>> tx = gradopt.set_to_zero()
      >>> tx.update({"w": jnp.ones(2)}, tx.init({"w": jnp.ones(2)}))[0]["w"]
      Array([0., 0.], dtype=float32)
    """
    return transform(_set_to_zero_init, _set_to_zero_update)


def freeze(mask) -> GradientTransformation:
    """Freeze the leaves where ``mask`` is True (their updates are zero); the others pass.

    ``masked(set_to_zero(), mask)``; put it in front of an optimizer, or after it,
    in a :func:`gradopt.chain`. In front, a frozen leaf's moments still see zero
    gradients; wrap the optimizer in :func:`masked` with the inverted mask to keep
    no state for frozen leaves.

    Args:
      mask: a tree of booleans (or a prefix, or a function ``params -> mask``).

    Example:
      >>> import jax.numpy as jnp, gradopt
      >>> params = {"embed": jnp.ones(2), "head": jnp.ones(2)}
      >>> tx = gradopt.chain(gradopt.sgd(0.1), gradopt.freeze({"embed": True, "head": False}))
      >>> updates, _ = tx.update({"embed": jnp.ones(2), "head": jnp.ones(2)}, tx.init(params))
      >>> updates["embed"], updates["head"]
      (Array([0., 0.], dtype=float32), Array([-0.1, -0.1], dtype=float32))
    """
    return masked(set_to_zero(), mask)


def _labels_mask(labels, group):
    return jax.tree.map(lambda label: label == group, labels)


def _check_labels(labels, like, transforms) -> None:
    _check_mask(_PARTITION, labels, like, "labels")
    found = set(jax.tree.leaves(labels))
    missing = found - set(transforms)
    if missing:
        raise ValueError(
            f"{_PARTITION}: the labels {sorted(map(repr, missing))} have no transform. The "
            f"transforms are given for {sorted(map(repr, transforms))}; add a transform for "
            "every label that occurs in the labels tree."
        )


def _partition_init(params, *, transforms, labels):
    tree = _resolve(labels, params)
    _check_labels(tree, params, transforms)
    return PartitionState(
        {g: masked(tx, _labels_mask(tree, g)).init(params) for g, tx in transforms.items()}
    )


def _partition_update(updates, state, params=None, *, transforms, labels, **extra):
    tree = _resolve(labels, updates)
    _check_labels(tree, updates, transforms)
    new_states = {}
    for group, tx in transforms.items():
        group_tx = masked(tx, _labels_mask(tree, group))
        updates, new_states[group] = call_update(
            group_tx, updates, state.inner_states[group], params, extra
        )
    return updates, PartitionState(new_states)


def partition(
    transforms: Mapping[Hashable, Any], labels: Any | Callable[[Any], Any]
) -> GradientTransformation:
    """Parameter groups: a transform per label, each applied to its labelled leaves only.

    Every leaf of the parameters has a label; the transform of that label
    handles the leaf and sees only the leaves of its own group (see
    :func:`masked`); the state is one state per group. The same as
    ``optax.partition(transforms, labels)``. A PyTorch ``param_groups`` list
    is a partition: one label per group, one optimizer per label.

    Args:
      transforms: a mapping ``label -> transform``.
      labels: a tree of labels with the structure of the parameters (or a prefix
        of it), or a function ``params -> labels`` (called with the updates in
        ``update``). Every label must have a transform.

    Returns:
      A gradient transformation whose state is :class:`PartitionState`.

    Example:
      >>> import jax.numpy as jnp, gradopt
      >>> params = {"w": jnp.ones(2), "b": jnp.ones(2)}
      >>> tx = gradopt.partition(
      ...     {"decay": gradopt.adamw(0.1, weight_decay=0.01), "no_decay": gradopt.adam(0.1)},
      ...     {"w": "decay", "b": "no_decay"},
      ... )
      >>> state = tx.init(params)
      >>> updates, state = tx.update({"w": jnp.ones(2), "b": jnp.ones(2)}, state, params)
      >>> sorted(state.inner_states)
      ['decay', 'no_decay']
    """
    if not isinstance(transforms, Mapping) or not transforms:
        raise TypeError(
            f"{_PARTITION}: transforms must be a non-empty mapping label -> transform, got "
            f"{transforms!r}. Example: {{'decay': gradopt.adamw(1e-3), 'no_decay': "
            "gradopt.adam(1e-3)}."
        )
    for label, tx in transforms.items():
        if not _is_transform(tx):
            raise TypeError(
                f"{_PARTITION}: the transform for label {label!r} is {tx!r}, which is not a "
                "gradient transformation."
            )
    return transform(_partition_init, _partition_update, transforms=dict(transforms), labels=labels)
