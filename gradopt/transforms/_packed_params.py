"""Packed parameters: the model reads its leaves out of a few flat buffers.

:func:`gradopt.packed` keeps the optimizer *state* packed, but the gradients
still arrive as one array per leaf and the updates still go back as one array
per leaf. :func:`pack_params` goes one step further: the parameters themselves
live in the packed form, the loss reads them through ``unpack``, and
``jax.grad`` with respect to the packed form returns a packed gradient. The
optimizer and ``apply_updates`` then run on a handful of flat arrays, one
fused elementwise pass for the whole model.

Layout (the same as :func:`gradopt.packed`'s): every leaf with at most
``max_leaf_size`` entries is raveled into one 1-D buffer per dtype, in the
tree's leaf order; bigger leaves stay as they are. The packed form is the
plain pytree ``{"big": (leaf, ...), "packed": (buffer, ...)}``.

``unpack`` cuts the small leaves out with ``dynamic_slice`` at start offsets
that it carries as int32 pytree leaves. Passed to the jitted function as an
argument, the offsets are runtime values and slices of equal shape share one
compiled kernel (with constant offsets every slice is a kernel of its own and
compile time grows with the number of leaves; hiding constants behind
``jax.lax.optimization_barrier`` does not help on XLA:CPU, which removes the
barrier before fusion). The backward pass is a ``jax.custom_vjp`` that
concatenates the leaves' cotangents straight into the buffers: one
concatenation per dtype instead of the transpose of every slice (a zero
buffer updated once per leaf).
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from gradopt.core._checks import check_scalar
from gradopt.transforms._packed import _DEFAULT_MAX_LEAF_SIZE, _Layout, _layout, _pack


def _packed_slots(layout: _Layout):
    return [s for s in layout.slots if s[0] == "packed"]


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _cut(layout: _Layout, buffers, offsets):
    """The small leaves of ``layout``, in order, cut out of ``buffers``."""
    pieces = []
    for start, (_, b, _, size, shape) in zip(offsets, _packed_slots(layout), strict=True):
        piece = jax.lax.dynamic_slice(buffers[b], (start,), (size,))
        pieces.append(piece.reshape(shape))
    return tuple(pieces)


def _cut_fwd(layout, buffers, offsets):
    return _cut(layout, buffers, offsets), None


def _cut_bwd(layout, _, cotangents):
    parts: list[list[Any]] = [[] for _ in layout.dtypes]
    for ct, (_, b, _, _, _) in zip(cotangents, _packed_slots(layout), strict=True):
        parts[b].append(jnp.ravel(ct).astype(layout.dtypes[b]))
    buffers = tuple(p[0] if len(p) == 1 else jnp.concatenate(p) for p in parts)
    return buffers, None


_cut.defvjp(_cut_fwd, _cut_bwd)


@jax.tree_util.register_pytree_node_class
class Unpack:
    """Turns the packed parameters of :func:`pack_params` back into the tree.

    Calling it, ``unpack(flat)``, returns the parameter tree (differentiable:
    the gradient with respect to ``flat`` is packed like ``flat``);
    ``unpack.pack(tree)`` packs a tree of the same structure (a checkpoint, or
    gradients computed on the plain tree).

    ``unpack`` is itself a pytree whose leaves are the leaves' start offsets
    (int32 scalars) and whose static part is the layout. Pass it to the jitted
    function as an argument: the offsets are then runtime values and leaves of
    equal shape share one compiled slicing kernel. (Closed over, it works the
    same, but every offset becomes a constant and a kernel of its own, which
    makes compile time grow with the number of leaves.)
    """

    def __init__(self, layout: _Layout, offsets=None):
        self._layout = layout
        if offsets is None:
            offsets = tuple(jnp.asarray(s[2], jnp.int32) for s in _packed_slots(layout))
        self.offsets = tuple(offsets)

    def tree_flatten(self):
        return self.offsets, self._layout

    @classmethod
    def tree_unflatten(cls, layout, offsets):
        return cls(layout, offsets)

    def __repr__(self):
        n = len(self.offsets)
        return f"Unpack({n} packed leaves in {len(self._layout.dtypes)} buffers)"

    def _check(self, flat):
        layout = self._layout
        sizes = [0] * len(layout.dtypes)
        for _, b, start, size, _ in _packed_slots(layout):
            sizes[b] = start + size
        n_big = len(layout.slots) - len(_packed_slots(layout))
        want = f"{{'big': {n_big} arrays, 'packed': buffers of sizes {sizes} ({layout.dtypes})}}"
        ok = isinstance(flat, dict) and set(flat) == {"big", "packed"}
        ok = ok and len(flat["big"]) == n_big and len(flat["packed"]) == len(sizes)
        ok = ok and all(
            np.shape(buf) == (n,) and jnp.result_type(buf).name == dt
            for buf, n, dt in zip(flat["packed"], sizes, layout.dtypes, strict=True)
        )
        if not ok:
            got = jax.tree.map(lambda x: f"{jnp.result_type(x).name}{list(np.shape(x))}", flat)
            raise ValueError(
                f"gradopt.pack_params: unpack expected the packed parameters {want}, got {got}. "
                "Pass the packed form returned by the pack_params call that made this unpack "
                "(or an update of it), not the parameter tree; unpack.pack(tree) packs a tree."
            )

    def __call__(self, flat):
        self._check(flat)
        small = iter(_cut(self._layout, tuple(flat["packed"]), self.offsets))
        big = iter(flat["big"])
        leaves = [next(big) if s[0] == "big" else next(small) for s in self._layout.slots]
        return jax.tree.unflatten(self._layout.treedef, leaves)

    def pack(self, tree):
        """The packed form of ``tree``, which must have the original structure."""
        leaves = jax.tree.leaves(tree)
        if jax.tree.structure(tree) != self._layout.treedef or len(leaves) != len(
            self._layout.slots
        ):
            raise ValueError(
                f"gradopt.pack_params: unpack.pack got a tree of structure "
                f"{jax.tree.structure(tree)}; expected {self._layout.treedef}."
            )
        return _pack(tree, self._layout)


def pack_params(params, *, max_leaf_size: int = _DEFAULT_MAX_LEAF_SIZE):
    """Pack the parameters into flat buffers that the loss reads through ``unpack``.

    With the parameters held packed, ``jax.grad`` of ``loss(unpack(flat))``
    with respect to ``flat`` is packed like ``flat``, so any elementwise
    optimizer (``tx.init(flat)``, ``tx.update(grads, state, flat)``) and
    ``gradopt.apply_updates`` run on a few flat arrays instead of one array
    per leaf. The numbers are those of the plain tree, to float32 rounding.

    Args:
      params: the parameter tree.
      max_leaf_size: leaves with more entries than this stay as they are
        instead of being packed. Keyword only.

    Returns:
      ``(flat, unpack)``: the packed parameters, the plain pytree
      ``{"big": (leaf, ...), "packed": (buffer, ...)}`` with one 1-D buffer per
      dtype, and an :class:`Unpack` whose call ``unpack(flat)`` gives the tree
      back (and whose ``unpack.pack(tree)`` packs a tree like ``params``).

    Example:
      >>> import jax
      >>> import jax.numpy as jnp
      >>> import gradopt
      >>> params = {"b": jnp.zeros(2), "w": jnp.ones((3, 2))}
      >>> def loss(p, x):
      ...     return jnp.sum((x @ p["w"]) ** 2) + jnp.sum(p["b"] ** 2)
      >>> flat, unpack = gradopt.pack_params(params)
      >>> opt = gradopt.adam(1e-3)
      >>> state = opt.init(flat)
      >>> @jax.jit
      ... def step(flat, unpack, state, x):
      ...     grads = jax.grad(lambda f: loss(unpack(f), x))(flat)
      ...     updates, state = opt.update(grads, state, flat)
      ...     return gradopt.apply_updates(flat, updates), state
      >>> flat, state = step(flat, unpack, state, jnp.ones((4, 3)))
      >>> jax.tree.map(jnp.shape, unpack(flat))
      {'b': (2,), 'w': (3, 2)}

    Note:
      Transforms that need each leaf's own structure (``clip_by_norm``, masks
      given as trees) see buffers, not leaves; use them on the plain tree or
      with :func:`gradopt.packed`. Pass ``unpack`` to the jitted step as an
      argument (``step(flat, unpack, state, batch)``): it is a pytree of int32
      offsets, and as runtime values they let leaves of equal shape share one
      compiled slicing kernel (closed over, the offsets become constants and
      compile time grows with the number of leaves). The gradient is one
      concatenation per dtype.
    """
    if isinstance(max_leaf_size, bool) or not isinstance(max_leaf_size, int):
        raise TypeError(
            f"gradopt.pack_params: max_leaf_size must be an int, got {max_leaf_size!r}. "
            f"Pass e.g. max_leaf_size={_DEFAULT_MAX_LEAF_SIZE}."
        )
    check_scalar("gradopt.pack_params", "max_leaf_size", max_leaf_size, low=0)
    layout = _layout(params, max_leaf_size)
    return _pack(params, layout), Unpack(layout)
