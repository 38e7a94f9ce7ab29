"""``partition``: different transforms for different parameters, chosen by a label per leaf.

Each transform sees only the leaves that carry its label (the others are
``None`` in the tree it receives, so it keeps no state for them); the outputs
are merged back into one tree. Muon uses it to send matrices to the
Newton--Schulz step and every other leaf to AdamW.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax

from gradopt.core._base import GradientTransformation, call_update, transform
from gradopt.core._checks import check_gradients


def _is_none(x) -> bool:
    return x is None


def _labels(tree, labels):
    """The flat list of labels (None where ``tree`` has a None leaf) and the treedef."""
    resolved = labels(tree) if callable(labels) else labels
    leaves, treedef = jax.tree.flatten(tree, is_leaf=_is_none)
    names = jax.tree.leaves(resolved, is_leaf=_is_none)
    if len(names) != len(leaves):
        raise ValueError(
            f"gradopt.partition: the labels tree has {len(names)} leaves but the parameters "
            f"have {len(leaves)}.\n  labels: {jax.tree.structure(resolved)}\n  params: "
            f"{jax.tree.structure(tree)}\nGive one label per parameter leaf (or a callable "
            "params -> such a tree)."
        )
    return [None if x is None else n for x, n in zip(leaves, names, strict=True)], leaves, treedef


def _only(label, names, leaves, treedef):
    return jax.tree.unflatten(
        treedef, [x if n == label else None for x, n in zip(leaves, names, strict=True)]
    )


def _check_names(names, transforms):
    unknown = sorted({n for n in names if n is not None and n not in transforms}, key=str)
    if unknown:
        raise ValueError(
            f"gradopt.partition: labels {unknown} have no transform; the transforms are "
            f"labelled {sorted(transforms)}. Add a transform for each label used."
        )


def _partition_init(params, *, transforms, labels):
    names, leaves, treedef = _labels(params, labels)
    _check_names(names, transforms)
    return {k: tx.init(_only(k, names, leaves, treedef)) for k, tx in transforms.items()}


def _partition_update(updates, state, params=None, *, transforms, labels, **extra):
    updates = check_gradients(updates, params)
    names, leaves, treedef = _labels(updates if params is None else params, labels)
    _check_names(names, transforms)
    u_leaves = jax.tree.flatten(updates, is_leaf=_is_none)[0]
    p_leaves = None if params is None else jax.tree.flatten(params, is_leaf=_is_none)[0]
    out = list(u_leaves)
    new_state = {}
    for k, tx in transforms.items():
        sub_u = _only(k, names, u_leaves, treedef)
        if sub_u is None:  # the parameters are one leaf, of another label
            new_state[k] = state[k]
            continue
        sub_p = None if p_leaves is None else _only(k, names, p_leaves, treedef)
        sub_out, new_state[k] = call_update(tx, sub_u, state[k], sub_p, extra)
        for i, x in enumerate(jax.tree.flatten(sub_out, is_leaf=_is_none)[0]):
            if names[i] == k:
                out[i] = x
    return jax.tree.unflatten(treedef, out), new_state


def partition(transforms: Mapping[str, Any], labels) -> GradientTransformation:
    """Apply ``transforms[label]`` to the leaves labelled ``label``.

    Args:
      transforms: a mapping ``label -> gradient transformation``.
      labels: a tree of labels with the parameters' structure, or a callable
        ``params -> such a tree`` (called on the parameters in ``init`` and on
        the parameters, or the updates when none are given, in ``update``;
        it should depend on shapes only). Prefer a module-level function, so
        that equal configurations compare equal.

    Returns:
      A gradient transformation whose state is a dict ``label -> state``; each
      inner state covers only that label's leaves.

    Example:
      >>> import jax.numpy as jnp, gradopt
      >>> tx = gradopt.partition(
      ...     {"fast": gradopt.sgd(1.0), "frozen": gradopt.scale(0.0)},
      ...     {"w": "fast", "b": "frozen"})
      >>> params = {"w": jnp.ones(2), "b": jnp.ones(2)}
      >>> updates, _ = tx.update({"w": jnp.ones(2), "b": jnp.ones(2)}, tx.init(params))
      >>> updates["w"], updates["b"]
      (Array([-1., -1.], dtype=float32), Array([0., 0.], dtype=float32))

    Note:
      Like ``optax.partition`` (formerly ``multi_transform``), except that the
      leaves a transform does not own are ``None`` rather than optax's
      ``MaskedNode``.
    """
    if not isinstance(transforms, Mapping) or not transforms:
        raise TypeError(
            f"gradopt.partition: transforms must be a non-empty mapping label -> transform, "
            f"got {transforms!r}."
        )
    for k, tx in transforms.items():
        if not (callable(getattr(tx, "init", None)) and callable(getattr(tx, "update", None))):
            raise TypeError(
                f"gradopt.partition: transforms[{k!r}] is {tx!r}, which is not a gradient "
                "transformation."
            )
    return transform(_partition_init, _partition_update, transforms=dict(transforms), labels=labels)
