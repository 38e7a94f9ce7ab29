"""``torch.optim.swa_utils``: ``AveragedModel`` and ``SWALR``, on gradopt's averaged parameters.

PyTorch keeps the average in a copy of the model, ``AveragedModel(model,
multi_avg_fn=...)``, and the training loop calls ``update_parameters(model)`` after
the optimizer steps it wants averaged. In gradopt the average lives in the
optimizer's state: :func:`averaged_model` wraps an optimizer with
:func:`gradopt.average_parameters`, its ``start`` and ``every`` saying which steps
the loop would have averaged, and ``gradopt.averaged_params(state)`` is the averaged
model's parameters. :func:`swalr` is ``SWALR``'s learning rate as a schedule.

Example:
  >>> import jax.numpy as jnp, gradopt
  >>> from gradopt.compat import swa_utils, torch as torch_compat
  >>> # SGD; from step 100 on: average after every step, anneal the rate to 0.01
  >>> rate = swa_utils.swalr(0.05, swa_lr=0.01, anneal_epochs=20, start=100)
  >>> opt = swa_utils.averaged_model(torch_compat.sgd(lr=rate, momentum=0.9), start=100)
  >>> params = {"w": jnp.ones(3)}
  >>> state = opt.init(params)
  >>> swa_params = gradopt.averaged_params(state)  # evaluate with these
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax.numpy as jnp

from gradopt.core._base import Bound, GradientTransformation
from gradopt.core._checks import check_choice, check_scalar
from gradopt.core._numerics import scalar_dtype
from gradopt.transforms._averaging import average_parameters

__all__ = [
    "averaged_model",
    "get_ema_multi_avg_fn",
    "get_swa_multi_avg_fn",
    "swalr",
]

_WHERE = "gradopt.compat.swa_utils"


class EmaAverage(NamedTuple):
    """The exponential average of ``get_ema_multi_avg_fn(decay)``."""

    decay: float


class SwaAverage(NamedTuple):
    """The equal-weight average of ``get_swa_multi_avg_fn()`` (AveragedModel's default)."""


def get_ema_multi_avg_fn(decay=0.999) -> EmaAverage:
    """``torch.optim.swa_utils.get_ema_multi_avg_fn``: ``a = a + (1 - decay) (w - a)``.

    Args:
      decay: in [0, 1] (PyTorch's range).
    """
    check_scalar(
        f"{_WHERE}.get_ema_multi_avg_fn", "decay", decay, low=0.0, high=1.0, fix="Use 0.999."
    )
    return EmaAverage(decay)


def get_swa_multi_avg_fn() -> SwaAverage:
    """``torch.optim.swa_utils.get_swa_multi_avg_fn``: ``a = a + (w - a) / (n + 1)``."""
    return SwaAverage()


def averaged_model(
    optimizer, multi_avg_fn=None, *, start: int = 0, every: int = 1
) -> GradientTransformation:
    """``AveragedModel``: ``optimizer`` with the average of its iterates in its state.

    The first averaged iterate is copied (PyTorch's ``n_averaged == 0``); then the
    exponential (``multi_avg_fn=get_ema_multi_avg_fn(decay)``) or equal-weight
    (``None``, the default, or ``get_swa_multi_avg_fn()``) average. The loop of
    PyTorch that calls ``update_parameters`` after the optimizer step of every index
    ``k >= start`` with ``(k - start) % every == 0`` (``k`` from 0) is this wrapper.
    Read the averaged parameters with ``gradopt.averaged_params(state)``; the
    optimizer's own trajectory is unchanged. (Buffers, ``use_buffers`` and
    ``update_bn`` concern modules and have no counterpart here.)

    Args:
      optimizer: the optimizer whose iterates are averaged.
      multi_avg_fn: None, :func:`get_swa_multi_avg_fn` or :func:`get_ema_multi_avg_fn`.
      start: the first step averaged, an int >= 0. Keyword only.
      every: average one step in ``every``. Keyword only.

    Returns:
      ``gradopt.average_parameters(optimizer, decay=..., start=start, every=every)``;
      its ``update`` needs ``params``.
    """
    if multi_avg_fn is None or isinstance(multi_avg_fn, SwaAverage):
        decay = None
    elif isinstance(multi_avg_fn, EmaAverage):
        decay = multi_avg_fn.decay
    else:
        raise TypeError(
            f"{_WHERE}.averaged_model: multi_avg_fn must be None, get_swa_multi_avg_fn() or "
            f"get_ema_multi_avg_fn(decay), got {multi_avg_fn!r}. A custom averaging function "
            "cannot be traced from PyTorch code: write it as a gradopt transform."
        )
    return average_parameters(optimizer, decay=decay, start=start, every=every)


def _swalr(count, *, lr, swa_lr, anneal_epochs, cosine, start):
    k = jnp.maximum(jnp.asarray(count).astype(scalar_dtype()) - start, 0)
    t = jnp.clip(k / max(1, anneal_epochs), 0.0, 1.0)
    if anneal_epochs == 0:
        t = jnp.ones_like(t)
    alpha = (1 - jnp.cos(math.pi * t)) / 2 if cosine else t
    return swa_lr * alpha + lr * (1 - alpha)


def swalr(lr, swa_lr, anneal_epochs=10, anneal_strategy="cos", *, start: int = 0):
    """``SWALR``'s learning rate as a schedule ``count -> rate``.

    With ``k = max(count - start, 0)`` the number of ``SWALR.step()`` calls so far
    and ``lr`` the optimizer's rate when the scheduler is built::

        t = min(k / max(1, anneal_epochs), 1)          (1 at once when anneal_epochs == 0)
        alpha = (1 - cos(pi t)) / 2   ("cos")   or   t   ("linear")
        rate = swa_lr * alpha + lr * (1 - alpha)

    PyTorch reaches the same value recursively from the rate in ``param_groups``.
    ``count`` counts scheduler steps: for one ``SWALR.step()`` per epoch, evaluate
    it at ``count // steps_per_epoch``.

    Args:
      lr: the rate before annealing, >= 0. swa_lr: the rate annealed to, >= 0.
      anneal_epochs: an int >= 0. anneal_strategy: ``"cos"`` or ``"linear"``.
      start: the count at which the scheduler starts stepping. Keyword only.

    Returns:
      A schedule (a :class:`gradopt.Bound` of the step count).
    """
    where = f"{_WHERE}.swalr"
    check_scalar(where, "lr", lr, low=0.0)
    check_scalar(where, "swa_lr", swa_lr, low=0.0)
    check_choice(where, "anneal_strategy", anneal_strategy, ("cos", "linear"))
    if isinstance(anneal_epochs, bool) or not isinstance(anneal_epochs, int) or anneal_epochs < 0:
        raise ValueError(
            f"{where}: anneal_epochs must be equal or greater than 0 (an int), got "
            f"{anneal_epochs!r}."
        )
    if isinstance(start, bool) or not isinstance(start, int) or start < 0:
        raise ValueError(f"{where}: start must be an int >= 0, got {start!r}.")
    return Bound(
        _swalr,
        lr=lr,
        swa_lr=swa_lr,
        anneal_epochs=anneal_epochs,
        cosine=anneal_strategy == "cos",
        start=start,
    )
