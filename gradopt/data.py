"""Feeding gradients: batch, stochastic and mini-batch orders over a data set.

A small module, not a data-loading framework. The data set is any pytree of
arrays that share their leading axis (``{"x": x, "y": y}``, a tuple, one
array). Everything is index based: :func:`epoch_indices` returns the example
indices of one epoch as a fixed-shape integer array, so it can be computed
inside ``jax.jit`` and a whole epoch can run in ``jax.lax.scan``;
:func:`take` gathers a batch; :func:`batches` is the plain Python loop.

The three ways of feeding gradients are three batch sizes:

* batch (full-batch) gradient descent: ``batch_size=None``, one batch of all
  ``n`` examples;
* stochastic gradient descent: ``batch_size=1``, ``n`` batches of one example;
* mini-batch gradient descent: ``batch_size=B``.

The visiting order is one of:

* ``"sequential"``: ``0, 1, ..., n-1`` every epoch;
* ``"shuffle"``: sampling without replacement, a fresh uniformly random
  permutation every epoch, drawn from ``fold_in(key, epoch)``, so epochs
  differ and every run with the same key repeats them;
* ``"curriculum"``: easy to hard, by increasing ``scores`` (ties keep their
  index order). With ``num_bands=m`` the sorted order is cut into ``m``
  contiguous bands of (nearly) equal size, band ``j`` holding the positions
  ``i`` with ``floor(i * m / n) = j``, and the examples are shuffled within
  each band every epoch (the bands themselves stay easy to hard).

The last short batch: with ``drop_last=True`` an epoch has ``n // B`` batches
and the ``n % B`` examples left over (different ones every shuffled epoch) are
not visited. With ``drop_last=False`` (the default) it has ``ceil(n / B)``
batches; to keep shapes fixed, the last row of the index array is padded up to
``B`` entries with index 0 and the returned ``mask`` is False there. Weight the
per-example losses by the mask (``sum(mask * loss) / sum(mask)``) to get the
mean over the real examples of the short batch. :func:`batches`, which runs on
the host, yields the short batch with its true size instead.

References:
  Bengio, Louradour, Collobert, Weston, "Curriculum learning", ICML 2009.
  Goodfellow, Bengio, Courville, "Deep Learning", 2016, section 8.1.3 (batch
  and mini-batch algorithms, sampling without replacement).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gradopt.core._checks import check_choice

__all__ = ["EpochIndices", "batches", "epoch_indices", "num_batches", "num_examples", "take"]

ORDERS = ("sequential", "shuffle", "curriculum")


class EpochIndices(NamedTuple):
    """The batches of one epoch.

    Attributes:
      indices: int32 array of shape ``(num_batches, batch_size)``; row ``b``
        holds the example indices of batch ``b``.
      mask: bool array of the same shape; False only at the padding of a kept
        short last batch (always True with ``drop_last=True``).
    """

    indices: jax.Array
    mask: jax.Array


def _check_size(where: str, name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"gradopt.data.{where}: {name} must be a positive int, got {value!r}.")


def num_examples(data) -> int:
    """The common leading dimension of every leaf of ``data``."""
    sizes = {int(jnp.shape(leaf)[0]) for leaf in jax.tree.leaves(data) if jnp.ndim(leaf) > 0}
    if len(sizes) != 1 or any(jnp.ndim(leaf) == 0 for leaf in jax.tree.leaves(data)):
        shapes = jax.tree.map(jnp.shape, data)
        raise ValueError(
            "gradopt.data: every leaf of the data set must be an array with the same leading "
            f"(example) dimension; got shapes {shapes}."
        )
    return sizes.pop()


def num_batches(n: int, batch_size: int | None = None, *, drop_last: bool = False) -> int:
    """The number of batches in an epoch of ``n`` examples."""
    _check_size("num_batches", "n", n)
    b = n if batch_size is None else batch_size
    _check_size("num_batches", "batch_size", b)
    return n // b if drop_last else -(-n // b)


def _order(n, *, key, epoch, order, scores, num_bands):
    if order == "sequential":
        return jnp.arange(n, dtype=jnp.int32)
    if order == "curriculum" and num_bands is None:
        return jnp.argsort(scores, stable=True).astype(jnp.int32)
    if key is None:
        raise ValueError(
            f"gradopt.data.epoch_indices: order={order!r} needs a PRNG key "
            "(key=jax.random.key(0), say)."
        )
    epoch_key = jax.random.fold_in(key, epoch)
    if order == "shuffle":
        return jax.random.permutation(epoch_key, n).astype(jnp.int32)
    by_score = jnp.argsort(scores, stable=True).astype(jnp.int32)
    band = (jnp.arange(n) * num_bands) // n
    noise = jax.random.uniform(epoch_key, (n,))
    within = jnp.lexsort((noise, band))  # by band, then randomly within it
    return by_score[within]


def epoch_indices(
    n: int,
    batch_size: int | None = None,
    *,
    order: str = "sequential",
    key=None,
    epoch=0,
    scores=None,
    num_bands: int | None = None,
    drop_last: bool = False,
) -> EpochIndices:
    """The example indices of one epoch, as a fixed-shape array (jit-friendly).

    Args:
      n: the number of examples (a Python int: it fixes the shapes).
      batch_size: ``None`` for the full batch, 1 for stochastic, ``B`` for
        mini-batches.
      order: ``"sequential"``, ``"shuffle"`` or ``"curriculum"`` (see the
        module docstring).
      key: a JAX PRNG key; needed for ``"shuffle"`` and for a curriculum with
        ``num_bands``.
      epoch: the epoch number (an int or a traced int scalar); the epoch's
        randomness comes from ``jax.random.fold_in(key, epoch)``.
      scores: for ``"curriculum"``, an array of ``n`` difficulties, easy (low)
        first.
      num_bands: for ``"curriculum"``, shuffle within this many bands of equal
        size; None keeps the exact score order.
      drop_last: drop the short last batch instead of padding it.

    Returns:
      :class:`EpochIndices` ``(indices, mask)`` of shape ``(num_batches, B)``.

    Example:
      >>> import jax
      >>> import gradopt
      >>> ix = gradopt.data.epoch_indices(10, 4)  # 3 batches of 4, the last one padded
      >>> ix.indices
      Array([[0, 1, 2, 3],
             [4, 5, 6, 7],
             [8, 9, 0, 0]], dtype=int32)
      >>> ix.mask[-1]
      Array([ True,  True, False, False], dtype=bool)
      >>> shuffled = gradopt.data.epoch_indices(
      ...     10, 4, order="shuffle", key=jax.random.key(0), epoch=3, drop_last=True)
      >>> shuffled.indices.shape  # rows to scan over with jax.lax.scan
      (2, 4)
    """
    check_choice("gradopt.data.epoch_indices", "order", order, ORDERS)
    if not isinstance(drop_last, bool):
        raise TypeError(f"gradopt.data.epoch_indices: drop_last must be a bool, got {drop_last!r}.")
    _check_size("epoch_indices", "n", n)
    b = n if batch_size is None else batch_size
    _check_size("epoch_indices", "batch_size", b)
    if b > n:
        raise ValueError(
            f"gradopt.data.epoch_indices: batch_size={b} is larger than the data set (n={n}). "
            "Use batch_size=None for the full batch."
        )
    if order == "curriculum":
        if scores is None or jnp.shape(scores) != (n,):
            raise ValueError(
                "gradopt.data.epoch_indices: order='curriculum' needs scores, one difficulty "
                f"per example (shape ({n},)), got {None if scores is None else jnp.shape(scores)}."
            )
        if num_bands is not None:
            _check_size("epoch_indices", "num_bands", num_bands)
            if num_bands > n:
                raise ValueError(
                    f"gradopt.data.epoch_indices: num_bands={num_bands} exceeds n={n}."
                )
    elif scores is not None or num_bands is not None:
        raise ValueError(
            f"gradopt.data.epoch_indices: scores and num_bands are only used with "
            f"order='curriculum', got order={order!r}."
        )
    perm = _order(n, key=key, epoch=epoch, order=order, scores=scores, num_bands=num_bands)
    rows = num_batches(n, b, drop_last=drop_last)
    total = rows * b
    if total <= n:
        indices = perm[:total]
        mask = jnp.ones((total,), bool)
    else:
        pad = total - n
        indices = jnp.concatenate([perm, jnp.zeros((pad,), jnp.int32)])
        mask = jnp.concatenate([jnp.ones((n,), bool), jnp.zeros((pad,), bool)])
    return EpochIndices(indices.reshape(rows, b), mask.reshape(rows, b))


def take(data, indices):
    """Gather the examples ``indices`` (any integer array) from every leaf of ``data``.

    ``take(data, ix)`` has leaves ``leaf[ix]``; traceable, so it can run inside
    ``jax.lax.scan`` over the rows of :func:`epoch_indices`.
    """
    return jax.tree.map(lambda leaf: jnp.take(leaf, indices, axis=0), data)


def batches(
    data,
    batch_size: int | None = None,
    *,
    order: str = "sequential",
    key=None,
    epoch=0,
    scores=None,
    num_bands: int | None = None,
    drop_last: bool = False,
) -> Iterator[Any]:
    """Yield the batches of one epoch of ``data`` (a pytree of arrays), on the host.

    The same batches as :func:`epoch_indices` with the same arguments, except
    that a kept short last batch has its true size (no padding).

    Example:
      >>> import jax
      >>> import jax.numpy as jnp
      >>> import gradopt
      >>> data = {"x": jnp.arange(10.0), "y": jnp.arange(10)}
      >>> for batch in gradopt.data.batches(data, 4, order="shuffle", key=jax.random.key(0)):
      ...     print(batch["x"].shape)
      (4,)
      (4,)
      (2,)
    """
    n = num_examples(data)
    ix = epoch_indices(
        n,
        batch_size,
        order=order,
        key=key,
        epoch=epoch,
        scores=scores,
        num_bands=num_bands,
        drop_last=drop_last,
    )
    rows = np.asarray(ix.indices)
    mask = np.asarray(ix.mask)
    for row, valid in zip(rows, mask, strict=True):
        yield take(data, jnp.asarray(row[valid]))
