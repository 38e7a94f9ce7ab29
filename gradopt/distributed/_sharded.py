"""ZeRO-1: the optimizer state sharded over a mesh axis (Rajbhandari et al., 2020, stage 1).

``sharded(tx, mesh, axis)`` keeps every per-parameter state leaf of ``tx`` as a
flat vector cut into N equal pieces, one per device of ``axis``: each device
stores about ``1/N`` of the state (scalars such as step counters stay whole).
A leaf of ``s`` entries is raveled and zero-padded to ``ceil(s / N) * N``
entries, so sizes that are not multiples of N are sharded too.

On update, the gradients (and parameters) are raveled and padded the same way,
``tx`` runs on the flat pieces (each device updates its own piece of the
state), and the updates are cut back to the parameters' shapes (XLA gathers
them where the parameters are replicated). For elementwise optimizers (SGD,
momentum, Adam, RMSprop, Adagrad, ...) the updates equal ``tx``'s; transforms
that look across entries see the padding zeros, which add nothing to norms and
sums.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jax.sharding import NamedSharding, PartitionSpec

from gradopt.core._base import GradientTransformation, call_update, check_same_structure
from gradopt.distributed._checks import check_mesh_axis, check_transform

_WHERE = "gradopt.distributed.sharded"


def _padded(size: int, n: int) -> int:
    return max(1, math.ceil(size / n)) * n


def _explicit(mesh) -> bool:
    return any(t == jax.sharding.AxisType.Explicit for t in mesh.axis_types)


def _lay_out(x, sharding):
    """Place (eagerly) or constrain (under a trace) ``x`` with ``sharding``.

    On an *Explicit* mesh axis the sharding is part of the array's type, so a
    traced value is moved with ``jax.reshard``; on an *Auto* axis it is a hint
    to XLA (``with_sharding_constraint``).
    """
    if not isinstance(x, jax.core.Tracer):
        return jax.device_put(x, sharding)
    if _explicit(sharding.mesh):
        return jax.reshard(x, sharding)
    return jax.lax.with_sharding_constraint(x, sharding)


def _to_flat(tree, n, sharding, whole):
    """Every leaf raveled, zero-padded to a multiple of ``n`` and cut over the axis.

    The leaf is first made whole (replicated): raveling or padding a leaf that
    is sharded on an Explicit axis is not defined when its size does not split
    evenly, and the gradients of data parallelism are replicated anyway.
    """

    def leaf(x):
        x = jnp.ravel(_lay_out(jnp.asarray(x), whole))
        return _lay_out(jnp.pad(x, (0, _padded(x.size, n) - x.size)), sharding)

    return jax.tree.map(leaf, tree)


def _from_flat(flat, like, whole):
    """The flat pieces gathered (replicated), cut to each leaf's size and shape."""

    def leaf(f, x):
        return _lay_out(f, whole)[: jnp.size(x)].reshape(jnp.shape(x))

    return jax.tree.map(leaf, flat, like)


def _shard_state(state, n, sharding):
    """Lay out the state leaves shaped like flat pieces (leading size a multiple of n)."""

    def leaf(x):
        if (
            isinstance(x, (jax.Array, jax.core.Tracer))
            and jnp.ndim(x) == 1
            and x.shape[0] % n == 0
            and x.size > 1
        ):
            return _lay_out(x, sharding)
        return x

    return jax.tree.map(leaf, state)


def sharded(tx, mesh, axis: str) -> GradientTransformation:
    """``tx`` with its optimizer state sharded over the mesh axis ``axis`` (ZeRO-1).

    Args:
      tx: any gradopt or optax transform.
      mesh: a ``jax.sharding.Mesh``.
      axis: the mesh axis to shard the state over (typically the data axis:
        every data-parallel device then keeps only its piece of the state).

    Returns:
      A ``GradientTransformation`` with ``tx``'s updates whose state leaves are
      flat vectors of ``ceil(s / N) * N`` entries, sharded over ``axis``.

    Example:
      >>> import jax, jax.numpy as jnp, gradopt
      >>> from gradopt.distributed import sharded
      >>> mesh = jax.make_mesh((jax.device_count(),), ("data",))
      >>> tx = sharded(gradopt.adam(1e-3), mesh, "data")
      >>> params = {"w": jnp.ones((5, 3)), "b": jnp.zeros(3)}
      >>> state = tx.init(params)
      >>> updates, state = tx.update(jax.tree.map(jnp.ones_like, params), state, params)

    References:
      Rajbhandari, Rasley, Ruwase & He, "ZeRO: Memory Optimizations Toward
      Training Trillion Parameter Models", SC 2020, arXiv:1910.02054 (stage 1).
    """
    check_transform(tx, _WHERE)
    n = check_mesh_axis(mesh, axis, _WHERE)
    sharding = NamedSharding(mesh, PartitionSpec(axis))
    whole = NamedSharding(mesh, PartitionSpec())

    def init(params):
        return _shard_state(tx.init(_to_flat(params, n, sharding, whole)), n, sharding)

    def update(updates, state, params=None, **extra):
        if params is not None:
            check_same_structure(params, updates, what="params", reference_what="updates")
        flat_params = None if params is None else _to_flat(params, n, sharding, whole)
        flat_updates = _to_flat(updates, n, sharding, whole)
        flat, state = call_update(tx, flat_updates, state, flat_params, extra)
        return _from_flat(flat, updates, whole), _shard_state(state, n, sharding)

    return GradientTransformation(init, update)
