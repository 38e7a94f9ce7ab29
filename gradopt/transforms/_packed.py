"""The packed execution path: many small leaves share one buffer and one kernel.

XLA emits one kernel per leaf for every elementwise stage of an optimizer, and
on CPU its compile time grows with the number of *distinct* kernels. With
hundreds or thousands of small parameter leaves (deep narrow networks, layer
norms, biases) the optimizer then costs more than the model, in step time and
in compile time. :func:`packed` wraps any chain of elementwise transforms so
that it runs on a few flat buffers instead:

* leaves with at most ``max_leaf_size`` entries are packed, by dtype, into one
  1-D buffer per dtype; bigger leaves stay as they are (they already make one
  large kernel, and copying them would only add memory traffic);
* the inner transform's state is built on, and kept in, that packed form from
  one step to the next (it is never re-concatenated);
* the updates are cut back into leaves with slices whose offsets are stored in
  the state as int32 scalars, so that XLA sees slices of equal size as one
  kernel and compiles it once (constant offsets make every slice a kernel of
  its own).

What packs: every transform that treats each entry on its own (moments,
bias correction, RMS and sum-of-squares scaling, momentum, learning rates
and schedules, decoupled or coupled weight decay without a mask, value
clipping, noise) and transforms that reduce over the whole tree
(``clip_by_global_norm``: the norm of the buffers is the norm of the tree).
What does not: per-leaf structure. ``clip_by_norm`` would see a buffer rather
than a leaf, and a ``mask`` tree does not match the packed tree; place such
stages outside, ``chain(clip_by_norm(1.0), packed(adam(1e-3)))``.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gradopt.core._base import (
    GradientTransformation,
    State,
    call_update,
    check_same_structure,
    transform,
)
from gradopt.core._checks import check_scalar

_DEFAULT_MAX_LEAF_SIZE = 1 << 16


class PackedState(NamedTuple):
    """State of :func:`packed`.

    Attributes:
      inner_state: the inner transform's state, built on the packed tree (the
        same field name as in the states of the other wrappers: accumulate,
        skip_nonfinite, inject_hyperparams).
      offsets: one int32 scalar per packed leaf, its start in its buffer.
    """

    inner_state: State
    offsets: tuple


class _Layout(NamedTuple):
    """Where each leaf of a tree lives in the packed tree (all static)."""

    treedef: Any
    dtypes: tuple  # one buffer per dtype name, in this order
    slots: tuple  # per leaf: ("big", index) or ("packed", buffer index, start, size, shape)


def _layout(tree, max_leaf_size: int) -> _Layout:
    leaves, treedef = jax.tree.flatten(tree)
    dtypes: list[str] = []
    fill: dict[str, int] = {}
    slots: list[tuple] = []
    n_big = 0
    for leaf in leaves:
        shape = tuple(np.shape(leaf))
        size = int(np.prod(shape, dtype=np.int64))
        dtype = jnp.result_type(leaf).name
        if size > max_leaf_size:
            slots.append(("big", n_big))
            n_big += 1
            continue
        if dtype not in fill:
            fill[dtype] = 0
            dtypes.append(dtype)
        slots.append(("packed", dtypes.index(dtype), fill[dtype], size, shape))
        fill[dtype] += size
    return _Layout(treedef, tuple(dtypes), tuple(slots))


def _pack(tree, layout: _Layout):
    """The packed tree ``{"big": (...), "packed": (...)}`` of ``tree``."""
    leaves = layout.treedef.flatten_up_to(tree)
    big = []
    parts: list[list[Any]] = [[] for _ in layout.dtypes]
    for leaf, slot in zip(leaves, layout.slots, strict=True):
        if slot[0] == "big":
            big.append(leaf)
        else:
            parts[slot[1]].append(jnp.ravel(leaf).astype(layout.dtypes[slot[1]]))
    buffers = tuple(p[0] if len(p) == 1 else jnp.concatenate(p) for p in parts)
    return {"big": tuple(big), "packed": buffers}


def _unpack(packed_tree, layout: _Layout, offsets):
    """The tree of ``layout`` cut out of a packed tree."""
    big, buffers = packed_tree["big"], packed_tree["packed"]
    leaves = []
    k = 0
    for slot in layout.slots:
        if slot[0] == "big":
            leaves.append(big[slot[1]])
            continue
        _, b, _, size, shape = slot
        piece = jax.lax.dynamic_slice_in_dim(buffers[b], offsets[k], size)
        leaves.append(piece.reshape(shape))
        k += 1
    return jax.tree.unflatten(layout.treedef, leaves)


def _offsets(layout: _Layout):
    return tuple(jnp.asarray(s[2], jnp.int32) for s in layout.slots if s[0] == "packed")


def _packed_init(params, *, inner, max_leaf_size):
    layout = _layout(params, max_leaf_size)
    return PackedState(inner_state=inner.init(_pack(params, layout)), offsets=_offsets(layout))


def _packed_update(updates, state, params=None, *, inner, max_leaf_size, **extra):
    if not isinstance(state, PackedState):
        raise ValueError(
            f"gradopt.packed got a state of type {type(state).__name__}; pass the state "
            "returned by this optimizer's own init (or by its previous update)."
        )
    layout = _layout(updates, max_leaf_size)
    if len(state.offsets) != sum(s[0] == "packed" for s in layout.slots):
        raise ValueError(
            f"gradopt.packed: the state packs {len(state.offsets)} leaves but the updates tree "
            f"{layout.treedef} packs {sum(s[0] == 'packed' for s in layout.slots)}. Pass updates "
            "with the structure and shapes of the parameters the optimizer was initialised with."
        )
    if params is not None:
        check_same_structure(params, updates, what="params", reference_what="updates")
        params = _pack(params, layout)
    new_updates, inner_state = call_update(
        inner, _pack(updates, layout), state.inner_state, params, extra
    )
    out = _unpack(new_updates, layout, state.offsets)
    return out, PackedState(inner_state=inner_state, offsets=state.offsets)


def packed(
    inner: GradientTransformation, *, max_leaf_size: int = _DEFAULT_MAX_LEAF_SIZE
) -> GradientTransformation:
    """Run ``inner`` on packed buffers: one per dtype for all small leaves.

    The result is a transform like any other (same ``init``/``update``
    protocol, same numbers as ``inner`` to float32 rounding) whose step and
    compile time no longer grow with the number of small leaves. Use it for
    models with many parameter leaves; it changes nothing for a few large ones.

    Args:
      inner: a gradient transformation made of elementwise stages (any gradopt
        optimizer, ``gradopt.chain`` of them, or an optax transform), or one
        that reduces over the whole tree such as ``clip_by_global_norm``.
      max_leaf_size: leaves with more entries than this are passed to
        ``inner`` as they are instead of being packed. Keyword only.

    Returns:
      A ``GradientTransformation`` whose state is a :class:`PackedState`.

    Example:
      >>> import jax.numpy as jnp
      >>> import gradopt
      >>> params = {"b": jnp.zeros(2), "w": jnp.ones((2, 2))}
      >>> grads = {"b": jnp.ones(2), "w": -jnp.ones((2, 2))}
      >>> opt = gradopt.packed(gradopt.adam(1e-3))
      >>> state = opt.init(params)  # one float32 buffer of 6 entries holds m, one v
      >>> updates, state = opt.update(grads, state, params)
      >>> gradopt.apply_updates(params, updates)["b"]  # the same numbers as plain adam
      Array([-0.001, -0.001], dtype=float32)

    Note:
      Transforms that need each leaf's own structure do not pack: per-leaf
      norms (``clip_by_norm``) and masks given as trees. Place them outside,
      e.g. ``chain(clip_by_norm(1.0), packed(adam(1e-3)))``. The packed state
      stores the leaves' offsets as int32 scalars, so that slices of equal size
      compile to one shared kernel.
    """
    if not (callable(getattr(inner, "init", None)) and callable(getattr(inner, "update", None))):
        raise TypeError(
            f"gradopt.packed: inner is {inner!r} of type {type(inner).__name__}, which is not a "
            "gradient transformation. Pass e.g. gradopt.adam(1e-3)."
        )
    if isinstance(max_leaf_size, bool) or not isinstance(max_leaf_size, int):
        raise TypeError(
            f"gradopt.packed: max_leaf_size must be an int, got {max_leaf_size!r}. "
            f"Pass e.g. max_leaf_size={_DEFAULT_MAX_LEAF_SIZE}."
        )
    check_scalar("gradopt.packed", "max_leaf_size", max_leaf_size, low=0)
    return transform(_packed_init, _packed_update, inner=inner, max_leaf_size=max_leaf_size)
