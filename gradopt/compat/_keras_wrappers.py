"""Keras 3's two wrappers, ``LossScaleOptimizer`` and ``MultiOptimizer`` (with its
``OptimizerMap``), on gradopt's loss scaling and parameter groups (re-exported by
:mod:`gradopt.compat.keras`)."""

from __future__ import annotations

import re
from typing import Any, NamedTuple

import jax

from gradopt.compat._keras_common import leaf_path
from gradopt.compat._keras_common import where as _where
from gradopt.core._base import GradientTransformation, call_update, transform
from gradopt.core._chain import chain
from gradopt.core._checks import check_scalar
from gradopt.transforms._loss_scale import _init as _loss_scale_init
from gradopt.transforms._loss_scale import loss_scaling
from gradopt.transforms._partition import PartitionState, partition
from gradopt.transforms._scale import scale


def _is_transform(tx) -> bool:
    return callable(getattr(tx, "init", None)) and callable(getattr(tx, "update", None))


def _check_inner(where: str, key, opt) -> None:
    """Keras refuses a LossScaleOptimizer or a MultiOptimizer inside a MultiOptimizer."""
    if not _is_transform(opt):
        raise ValueError(
            f"{where}: the optimizer for {key!r} is {opt!r}, not a gradient transformation."
        )
    kind = getattr(opt.init, "fn", None)
    if kind is _loss_scale_init:
        raise ValueError(
            f"{where}: the optimizer for {key!r} is a loss_scale_optimizer; Keras refuses one "
            "inside a MultiOptimizer. Wrap the multi_optimizer in loss_scale_optimizer instead."
        )
    if kind is _multi_init:
        raise ValueError(
            f"{where}: the optimizer for {key!r} is a multi_optimizer; Keras refuses one inside "
            "a MultiOptimizer. Put its entries in this map."
        )


def loss_scale_optimizer(
    inner_optimizer, initial_scale=32768.0, dynamic_growth_steps=2000, name=None
):
    """``keras.optimizers.LossScaleOptimizer``: dynamic loss scaling around an optimizer.

    The gradients arrive multiplied by the scale ``S`` (multiply the loss by it with
    ``gradopt.scale_loss(loss, state)``). A step with a non-finite gradient is
    skipped and halves ``S``; a finite one divides the gradients by ``S`` and runs
    ``inner_optimizer``; after ``dynamic_growth_steps`` finite steps in a row ``S``
    doubles. ``gradopt.loss_scaling(inner_optimizer, initial_scale=...,
    growth_interval=dynamic_growth_steps)``.

    Args:
      inner_optimizer: any gradient transformation (a ``gradopt.compat.keras`` one).
      initial_scale: > 0. dynamic_growth_steps: an int >= 1. name: ignored.

    Returns:
      A gradient transformation whose state is ``gradopt.LossScaleState``.
    """
    where = _where("loss_scale_optimizer")
    if not _is_transform(inner_optimizer):
        raise TypeError(
            f"{where}: inner_optimizer is {inner_optimizer!r}, which is not a gradient "
            "transformation. Pass an optimizer such as gradopt.compat.keras.adam()."
        )
    check_scalar(where, "initial_scale", initial_scale, low=0.0, low_open=True, fix="Use 2.0**15.")
    if (
        isinstance(dynamic_growth_steps, bool)
        or not isinstance(dynamic_growth_steps, int)
        or dynamic_growth_steps < 1
    ):
        raise ValueError(
            f"{where}: dynamic_growth_steps must be an int >= 1, got {dynamic_growth_steps!r}."
        )
    return loss_scaling(
        inner_optimizer, initial_scale=initial_scale, growth_interval=dynamic_growth_steps
    )


class OptimizerMap(NamedTuple):
    """``keras.optimizers.OptimizerMap``: a default optimizer and ``{path pattern: optimizer}``.

    Called with a leaf's path (its keys joined by ``/``), it returns the optimizer of
    an exactly equal key, else of the one pattern that matches the whole path
    (``re.fullmatch``; two matching patterns raise a ValueError), else the default.
    """

    default_optimizer: Any
    optimizer_map: tuple

    def __call__(self, path: str):
        mapping = dict(self.optimizer_map)
        if path in mapping:
            return mapping[path]
        matching = [pattern for pattern in mapping if re.fullmatch(pattern, path)]
        if len(matching) > 1:
            raise ValueError(
                f"gradopt.compat.keras.optimizer_map: the patterns {matching} all match the "
                f"leaf {path!r}; Keras refuses that too. Make the patterns exclusive."
            )
        return mapping[matching[0]] if matching else self.default_optimizer


def optimizer_map(default_optimizer, optimizer_map=None) -> OptimizerMap:
    """``keras.optimizers.OptimizerMap(default_optimizer, optimizer_map)`` for
    :func:`multi_optimizer`.

    Args:
      default_optimizer: the optimizer of every leaf no key matches.
      optimizer_map: None or a dict ``{path or regular expression: optimizer}``.

    Returns:
      An :class:`OptimizerMap` (a function of a leaf's path).
    """
    where = _where("optimizer_map")
    if not _is_transform(default_optimizer):
        raise TypeError(
            f"{where}: default_optimizer must be a gradient transformation, got "
            f"{default_optimizer!r}."
        )
    if optimizer_map is not None and not isinstance(optimizer_map, dict):
        raise TypeError(f"{where}: optimizer_map must be a dictionary, got {optimizer_map!r}.")
    for key, opt in (optimizer_map or {}).items():
        if not isinstance(key, str):
            raise ValueError(f"{where}: keys must be strings, got {key!r}.")
        _check_inner(where, key, opt)
    return OptimizerMap(default_optimizer, tuple((optimizer_map or {}).items()))


def _groups(tree, selector):
    """A partition with a group per distinct optimizer the selector picks (None for a
    tree without leaves)."""
    distinct: list[Any] = []

    def label(path, _):
        opt = selector(leaf_path(path))
        _check_inner("gradopt.compat.keras.multi_optimizer", leaf_path(path), opt)
        for i, known in enumerate(distinct):
            if known == opt:
                return i
        distinct.append(opt)
        return len(distinct) - 1

    labels = jax.tree_util.tree_map_with_path(label, tree)
    if not distinct:
        # a tree with no leaves has no group: no optimizer runs, as in Keras with no
        # variables (partition itself refuses an empty map, a mistake when written by hand)
        return None
    return partition(dict(enumerate(distinct)), labels)


def _multi_init(params, *, selector):
    groups = _groups(params, selector)
    return PartitionState({}) if groups is None else groups.init(params)


def _multi_update(updates, state, params=None, *, selector, **extra):
    groups = _groups(updates, selector)
    if groups is None:
        return updates, state
    return call_update(groups, updates, state, params, extra)


def multi_optimizer(optimizer_map, loss_scale_factor=None, name=None) -> GradientTransformation:
    """``keras.optimizers.MultiOptimizer``: an optimizer per leaf, chosen by its path.

    ``optimizer_map`` is an :func:`optimizer_map` or a function ``path -> optimizer``
    (Keras passes the variable; gradopt passes its path, the keys joined by ``/``).
    The leaves that get equal optimizers form a group of :func:`gradopt.partition`
    with its own state (a group's ``global_clipnorm`` sees its own leaves, as in
    Keras).

    Args:
      optimizer_map: an :class:`OptimizerMap` or a callable of the leaf's path.
      loss_scale_factor: None, or the factor the gradients are divided by. Keras sets it
        on every inner optimizer, replacing theirs; here it divides the gradients in
        front of them, so leave the inner optimizers' ``loss_scale_factor`` at None.
      name: ignored.

    Returns:
      A gradient transformation whose state is ``gradopt.PartitionState``.
    """
    where = _where("multi_optimizer")
    if not callable(optimizer_map):
        raise TypeError(
            f"{where}: optimizer_map must be gradopt.compat.keras.optimizer_map(...) or a "
            f"function path -> optimizer, got {optimizer_map!r}."
        )
    tx = transform(_multi_init, _multi_update, selector=optimizer_map)
    if loss_scale_factor is None:
        return tx
    check_scalar(where, "loss_scale_factor", loss_scale_factor, low=0.0, low_open=True)
    return chain(scale(1.0 / loss_scale_factor), tx)
