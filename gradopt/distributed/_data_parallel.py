"""Synchronous data parallelism over a mesh axis, with an optional deterministic reduction.

Every device holds the parameters (replicated) and its slice of the batch; each
computes the gradient of the mean loss over its slice, the gradients are
averaged over the axis, and every device applies the same optimizer step::

    g = (1 / N) * sum_i grad L_i(x)        # L_i: mean loss over device i's slice
    u, s = tx.update(g, s, x);  x = x + u

Pitfall handled here: inside ``shard_map`` the gradient of a *replicated*
parameter with respect to a per-device loss is already summed over the axis
(the transpose of the implicit broadcast is a ``psum``); averaging it again
scales the step by N. The step therefore marks the parameters as varying over
the axis first (``jax.lax.pcast(..., to="varying")``), so every device gets its
own local gradient, and then reduces once.

``deterministic=True`` fixes the reduction order: the batch is cut into a fixed
number of ``chunks`` (independent of the number of devices); each device
computes the gradient of every chunk it holds, one chunk at a time, the
per-chunk gradients are gathered in chunk order (an exact ``psum`` of buffers
in which every slot has one non-zero term), and every device sums them with the
same pairwise tree. The result then does not depend on how many
devices share the work: 1, 2, 4 or 8 devices give bitwise the same parameters.
The price: the all-reduce carries ``chunks`` gradient copies instead of one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax.sharding import NamedSharding, PartitionSpec

from gradopt.core._base import apply_updates
from gradopt.core._numerics import compute_dtype
from gradopt.distributed._checks import check_mesh_axis, check_positive_int, check_transform

_WHERE = "gradopt.distributed.data_parallel"


class DataParallel(NamedTuple):
    """What :func:`data_parallel` returns.

    Attributes:
      init: ``init(params) -> (params, opt_state)``: the parameters replicated
        over the mesh and the optimizer state built from them.
      step: ``step(params, opt_state, batch) -> (params, opt_state, loss)``,
        jitted; ``loss`` is the mean loss over the whole batch.
      shard_batch: ``shard_batch(batch)``: a host batch (arrays whose leading
        dimension is the global batch size) placed over the axis.
      grads: ``grads(params, batch) -> (loss, grads)``, jitted: the reduced
        mean loss and gradient alone (what ``step`` feeds to ``tx``).
    """

    init: Callable[[Any], tuple[Any, Any]]
    step: Callable[[Any, Any, Any], tuple[Any, Any, jax.Array]]
    shard_batch: Callable[[Any], Any]
    grads: Callable[[Any, Any], tuple[jax.Array, Any]]


def pairwise_sum(x):
    """Sum over the leading axis by a fixed pairwise tree: ``((x0 + x1) + (x2 + x3)) + ...``.

    The order depends only on ``x.shape[0]``, never on how ``x`` was computed or
    where it lives, which is what makes the deterministic reduction repeatable.
    """
    parts = [x[i] for i in range(x.shape[0])]
    while len(parts) > 1:
        paired = [parts[i] + parts[i + 1] for i in range(0, len(parts) - 1, 2)]
        parts = paired + ([parts[-1]] if len(parts) % 2 else [])
    return parts[0]


def _place(tree, mesh, spec):
    """Put host (or single-device) arrays on ``mesh`` with ``spec``; works across processes."""
    sharding = NamedSharding(mesh, spec)

    def leaf(x):
        if isinstance(x, jax.Array) and x.is_fully_addressable and len(x.devices()) > 1:
            return jax.device_put(x, sharding)
        host = jax.device_get(x)
        host = jnp.asarray(host) if not hasattr(host, "shape") else host
        return jax.make_array_from_callback(jnp.shape(host), sharding, lambda index: host[index])

    return jax.tree.map(leaf, tree)


def _check_batch(batch, multiple: int, what: str):
    for path, leaf in jax.tree_util.tree_flatten_with_path(batch)[0]:
        shape = jnp.shape(leaf)
        if not shape or shape[0] % multiple:
            raise ValueError(
                f"{_WHERE}: the `batch` leaf at {jax.tree_util.keystr(path) or '(root)'} has "
                f"shape {shape}; its leading (batch) dimension must be divisible by {what} "
                f"= {multiple}. Drop or pad examples to a multiple of {multiple}."
            )


def data_parallel(
    loss_fn: Callable[[Any, Any], jax.Array],
    tx,
    mesh,
    axis: str = "data",
    *,
    deterministic: bool = False,
    chunks: int = 8,
) -> DataParallel:
    """A data-parallel training step over the mesh axis ``axis``.

    The batch is sharded over ``axis``, the parameters are replicated, the
    gradient of the mean loss is averaged over the axis and ``tx`` (any gradopt
    or optax transform, :func:`gradopt.distributed.sharded` included) updates
    the parameters: ``x <- x + tx(mean_i grad L_i(x))``.

    Args:
      loss_fn: ``loss_fn(params, batch) -> scalar``, the *mean* loss over the
        examples of ``batch``.
      tx: the optimizer (a ``GradientTransformation``).
      mesh: a ``jax.sharding.Mesh`` (it may span several processes).
      axis: the mesh axis the batch is split over.
      deterministic: fix the reduction order (see the module docstring), so that
        the result is bitwise the same for any number of devices that divides
        ``chunks``.
      chunks: with ``deterministic=True``, the fixed number of batch chunks
        (a multiple of the axis size; the batch a multiple of ``chunks``).

    Returns:
      A :class:`DataParallel` ``(init, step, shard_batch, grads)``.

    Example:
      >>> import jax, jax.numpy as jnp, gradopt
      >>> from gradopt.distributed import data_parallel
      >>> mesh = jax.make_mesh((jax.device_count(),), ("data",))
      >>> loss = lambda w, b: jnp.mean((b["x"] @ w - b["y"]) ** 2)
      >>> dp = data_parallel(loss, gradopt.adam(0.1), mesh, "data", deterministic=True)
      >>> w, state = dp.init(jnp.zeros(3))
      >>> batch = dp.shard_batch({"x": jnp.ones((16, 3)), "y": jnp.ones(16)})
      >>> w, state, value = dp.step(w, state, batch)
    """
    if not callable(loss_fn):
        raise TypeError(
            f"{_WHERE}: `loss_fn` must be callable (params, batch) -> loss, got {loss_fn!r}."
        )
    check_transform(tx, _WHERE)
    n = check_mesh_axis(mesh, axis, _WHERE)
    if not isinstance(deterministic, bool):
        raise TypeError(f"{_WHERE}: `deterministic` must be a bool, got {deterministic!r}.")
    if deterministic:
        check_positive_int(chunks, "chunks", _WHERE)
        if chunks % n:
            raise ValueError(
                f"{_WHERE}: `chunks` = {chunks} is not a multiple of the size {n} of mesh axis "
                f"{axis!r}. Pass chunks as a multiple of every device count you compare "
                "(8 covers 1, 2, 4 and 8 devices)."
            )

    def local_grads(params, batch):
        # Varying copy of the replicated params: the gradient below is then this
        # device's own, not already summed over the axis.
        params = jax.lax.pcast(params, axis, to="varying")
        grad_fn = jax.value_and_grad(loss_fn)
        if not deterministic:
            loss, grads = grad_fn(params, batch)
            return jax.lax.pmean(loss, axis), jax.lax.pmean(grads, axis)
        per_device = chunks // n
        split = jax.tree.map(lambda b: b.reshape(per_device, -1, *b.shape[1:]), batch)
        losses, grads = jax.lax.map(lambda chunk: grad_fn(params, chunk), split)
        first = jax.lax.axis_index(axis) * per_device

        def mean(x):
            # Gather every chunk's value in chunk order: each device writes its
            # chunks into a zero buffer and the buffers are summed; every slot has
            # one non-zero term, so the sum is exact whatever order it runs in.
            buffer = jnp.zeros((chunks, *x.shape[1:]), x.dtype)
            gathered = jax.lax.psum(jax.lax.dynamic_update_slice_in_dim(buffer, x, first, 0), axis)
            total = pairwise_sum(gathered.astype(compute_dtype(x.dtype)))
            return (total / chunks).astype(x.dtype)

        return mean(losses), jax.tree.map(mean, grads)

    reduce = jax.shard_map(
        local_grads,
        mesh=mesh,
        in_specs=(PartitionSpec(), PartitionSpec(axis)),
        out_specs=(PartitionSpec(), PartitionSpec()),
    )

    def update(grads, opt_state, params):
        updates, opt_state = tx.update(grads, opt_state, params)
        return apply_updates(params, updates), opt_state

    multiple, what = (chunks, "`chunks`") if deterministic else (n, "the axis size")

    @jax.jit
    def fused_step(params, opt_state, batch):
        _check_batch(batch, multiple, what)
        loss, grads = reduce(params, batch)
        return (*update(grads, opt_state, params), loss)

    # Deterministic: the gradient program above, then the optimizer step as a
    # single-device program on one local device, its result copied to the
    # others. XLA simplifies the same elementwise update differently when it
    # partitions it over several devices (``a / b`` may become ``a * (1 / b)``),
    # which changes the last bit; one single-device program is the same for any
    # number of devices and processes.
    gradient_program = jax.jit(reduce)
    update_program = jax.jit(update)
    replicated = NamedSharding(mesh, PartitionSpec())

    def on_one_device(tree):
        def leaf(x):
            if not isinstance(x, jax.Array):
                return x
            if not x.sharding.is_fully_replicated:
                raise ValueError(
                    f"{_WHERE}: with deterministic=True the optimizer step runs on one device, "
                    f"but a state leaf of shape {x.shape} is sharded ({x.sharding}). Use "
                    "deterministic=False with gradopt.distributed.sharded(tx, ...)."
                )
            return x.addressable_data(0)

        return jax.tree.map(leaf, tree)

    def replicate(x):
        copies = [jax.device_put(x, d) for d in replicated.addressable_devices]
        return jax.make_array_from_single_device_arrays(x.shape, replicated, copies)

    def split_step(params, opt_state, batch):
        _check_batch(batch, multiple, what)
        loss, grads = gradient_program(params, batch)
        params, opt_state = update_program(*on_one_device((grads, opt_state, params)))
        return jax.tree.map(replicate, params), opt_state, loss

    step = split_step if deterministic else fused_step

    def init(params):
        params = _place(params, mesh, PartitionSpec())
        return params, tx.init(params)

    def shard_batch(batch):
        _check_batch(batch, multiple, what)
        return _place(batch, mesh, PartitionSpec(axis))

    return DataParallel(init, step, shard_batch, gradient_program)
