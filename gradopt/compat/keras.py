"""Keras 3's optimizers, exactly, as chains of gradopt's primitives.

Argument names, order and defaults are those of ``keras.optimizers`` 3.15 (the
arguments shared by every Keras optimizer, ``clipnorm``, ``use_ema``,
``gradient_accumulation_steps``, ``name`` and so on, are left out: compose
gradopt's own transforms for those). ``learning_rate`` may be a number or a
schedule ``step -> value``, evaluated at the number of previous steps as Keras
evaluates a ``LearningRateSchedule`` at ``optimizer.iterations``.

Keras conventions that differ from PyTorch's, all reproduced here:

* ``epsilon`` defaults to 1e-7 and sits inside the square root for Adagrad and
  RMSprop (``sqrt(v + epsilon)``), outside it for Adam, Adamax and Nadam.
* Momentum keeps the learning rate inside the velocity (SGD and RMSprop:
  ``m = momentum * m - lr * g``).
* Adam folds both bias corrections into the step size,
  ``lr * sqrt(1 - b2**t) / (1 - b1**t)``, and adds ``epsilon`` to the
  uncorrected ``sqrt(v)``.
* Nadam's momentum schedule is ``mu_t = b1 * (1 - 0.5 * 0.96**t)`` (PyTorch's
  with ``momentum_decay=1``, not 0.004).
* ``weight_decay`` (None by default, 0.004 for AdamW) is decoupled for every
  optimizer: ``w = w - lr * weight_decay * w`` before the step.

Example:
  >>> import jax.numpy as jnp
  >>> from gradopt.compat import keras as keras_compat
  >>> opt = keras_compat.rmsprop(learning_rate=1e-3, momentum=0.9)
  >>> params = {"w": jnp.array([1.0, -2.0])}
  >>> updates, state = opt.update({"w": jnp.array([1.0, -1.0])}, opt.init(params), params)
  >>> updates["w"].dtype
  dtype('float32')
"""

from __future__ import annotations

import functools

import jax.numpy as jnp
import numpy as np

from gradopt.core._base import Bound, GradientTransformation
from gradopt.core._chain import chain, divide
from gradopt.core._checks import check_flag, check_learning_rate, check_scalar, concrete_value
from gradopt.transforms._adaptive import (
    infinity_norm,
    root_mean_square,
    scale_by_adadelta,
    scale_by_rms,
    scale_by_sum_of_squares,
)
from gradopt.transforms._moments import bias_correction, ema, scale_by_nesterov_ema
from gradopt.transforms._momentum import heavy_ball, trace
from gradopt.transforms._real_only import real_only
from gradopt.transforms._scale import scale_by_learning_rate
from gradopt.transforms._weight_decay import add_decayed_weights

__all__ = ["adadelta", "adagrad", "adam", "adamax", "adamw", "nadam", "rmsprop", "sgd"]


def _where(name: str) -> str:
    return f"gradopt.compat.keras.{name}"


_REAL_ONLY = "Keras 3 optimizers take real variables only"


def _real_only(factory):
    """Make ``factory`` refuse complex parameters at init, naming itself (``docs/complex.md``)."""

    @functools.wraps(factory)
    def build(*args, **kwargs) -> GradientTransformation:
        tx = factory(*args, **kwargs)
        return real_only(tx, name=_where(factory.__name__), reason=_REAL_ONLY)

    return build


def _check_common(where: str, learning_rate, weight_decay) -> None:
    check_learning_rate(where, learning_rate)
    if weight_decay is not None:
        check_scalar(
            where,
            "weight_decay",
            weight_decay,
            low=0.0,
            fix="Use None (Keras' default) or a non-negative number.",
        )


def _epsilon(where: str, value, name: str = "epsilon") -> None:
    check_scalar(
        where, name, value, low=0.0, low_open=True, fix="Use a small positive value such as 1e-7."
    )


def _below_one(where: str, name: str, value) -> None:
    check_scalar(
        where,
        name,
        value,
        low=0.0,
        high=1.0,
        high_open=True,
        fix=f"gradopt needs {name} in [0, 1) (at 1 the average never forgets); Keras' "
        "defaults are 0.9 and 0.999.",
    )


def _decay(weight_decay, learning_rate) -> list:
    """Keras' decoupled decay ``w = w * (1 - weight_decay * lr)`` as a chain stage.

    Keras forms the factor in float32 (``1 - float32(wd * float32(lr))``); for a
    constant rate the coefficient is adjusted so that ``lr * wd`` is exactly
    the decay Keras applies (the rounding would otherwise drift by up to 1e-5
    relative over 200 steps).
    """
    if weight_decay is None:
        return []
    lr_value, wd_value = concrete_value(learning_rate), concrete_value(weight_decay)
    if lr_value and wd_value is not None and not callable(learning_rate):
        one = np.float32(1.0)
        factor = one - np.float32(wd_value) * np.float32(lr_value)
        weight_decay = (1.0 - float(factor)) / lr_value
    return [add_decayed_weights(weight_decay)]


def _finish(rule, learning_rate, weight_decay) -> GradientTransformation:
    """``rule``, Keras' decoupled weight decay if any, then ``-learning_rate``."""
    decay = _decay(weight_decay, learning_rate)
    return chain(*rule, *decay, scale_by_learning_rate(learning_rate))


def _momentum_with_decay(where, learning_rate, momentum, weight_decay) -> None:
    """Keras decays with the current rate outside its velocity; with a schedule that
    cannot be folded into one chain, with a constant rate it is the same step."""
    if weight_decay is not None and callable(learning_rate):
        raise ValueError(
            f"{where}: momentum={momentum!r} with weight_decay={weight_decay!r} needs a "
            "constant learning_rate here, got a schedule. Use a number, or compose "
            "gradopt.heavy_ball and gradopt.add_decayed_weights yourself."
        )


@_real_only
def sgd(learning_rate=0.01, momentum=0.0, nesterov=False, weight_decay=None):
    """``keras.optimizers.SGD``.

    With ``g`` the gradient and ``lr`` the current learning rate::

        w = w - lr * weight_decay * w            (weight_decay not None)
        m = momentum * m - lr * g                (m starts at 0)
        w = w + momentum * m - lr * g  if nesterov  else  w + m
        w = w - lr * g                           (momentum == 0)

    The learning rate sits inside the velocity. Chain:
    ``scale_by_learning_rate(learning_rate)`` then ``trace(momentum,
    nesterov=nesterov)`` (whose velocity is then Keras' ``m``). With
    ``weight_decay`` and momentum the learning rate must be constant; the chain
    is then ``trace``, ``add_decayed_weights``, ``scale_by_learning_rate``.

    Args:
      learning_rate: a non-negative number or a schedule.
      momentum: in [0, 1) (Keras accepts 1.0, a velocity that never decays).
      nesterov: Nesterov momentum.
      weight_decay: None or >= 0.

    Returns:
      A gradient transformation.
    """
    where = _where("sgd")
    _check_common(where, learning_rate, weight_decay)
    _below_one(where, "momentum", momentum)
    check_flag(where, "nesterov", nesterov)
    # A velocity is kept for momentum 0 too (it then holds -lr * g), so that the
    # state's structure does not depend on the value.
    if concrete_value(momentum) != 0.0:
        _momentum_with_decay(where, learning_rate, momentum, weight_decay)
    if weight_decay is None:
        return chain(scale_by_learning_rate(learning_rate), trace(momentum, nesterov=nesterov))
    return _finish([trace(momentum, nesterov=nesterov)], learning_rate, weight_decay)


@_real_only
def adagrad(learning_rate=0.001, initial_accumulator_value=0.1, epsilon=1e-07, weight_decay=None):
    """``keras.optimizers.Adagrad``.

    ``G`` starts at ``initial_accumulator_value``; epsilon inside the root::

        G = G + g**2
        w = w - lr * g / sqrt(G + epsilon)

    Chain: ``scale_by_sum_of_squares(eps=epsilon, initial_accumulator_value=...,
    eps_inside_sqrt=True)``, the weight decay if any, ``scale_by_learning_rate``.

    Args:
      learning_rate: a non-negative number or a schedule.
      initial_accumulator_value: >= 0. epsilon: > 0. weight_decay: None or >= 0.

    Returns:
      A gradient transformation.
    """
    where = _where("adagrad")
    _check_common(where, learning_rate, weight_decay)
    check_scalar(
        where,
        "initial_accumulator_value",
        initial_accumulator_value,
        low=0.0,
        fix="Use 0.1 (Keras' default).",
    )
    _epsilon(where, epsilon)
    rule = [
        scale_by_sum_of_squares(
            eps=epsilon,
            initial_accumulator_value=initial_accumulator_value,
            eps_inside_sqrt=True,
        )
    ]
    return _finish(rule, learning_rate, weight_decay)


@_real_only
def adadelta(learning_rate=0.001, rho=0.95, epsilon=1e-07, weight_decay=None):
    """``keras.optimizers.Adadelta``.

    ::

        E[g**2]  = rho * E[g**2] + (1 - rho) * g**2
        dx       = sqrt(E[dx**2] + epsilon) / sqrt(E[g**2] + epsilon) * g
        E[dx**2] = rho * E[dx**2] + (1 - rho) * dx**2
        w        = w - lr * dx

    The same rule as PyTorch's; the defaults differ (lr 0.001, rho 0.95,
    epsilon 1e-7). Chain: ``scale_by_adadelta(rho, eps=epsilon)``, the weight
    decay if any, ``scale_by_learning_rate``.

    Args:
      learning_rate: a non-negative number or a schedule.
      rho: in [0, 1). epsilon: > 0. weight_decay: None or >= 0.

    Returns:
      A gradient transformation.
    """
    where = _where("adadelta")
    _check_common(where, learning_rate, weight_decay)
    _below_one(where, "rho", rho)
    _epsilon(where, epsilon)
    return _finish([scale_by_adadelta(rho, eps=epsilon)], learning_rate, weight_decay)


@_real_only
def rmsprop(
    learning_rate=0.001, rho=0.9, momentum=0.0, epsilon=1e-07, centered=False, weight_decay=None
):
    """``keras.optimizers.RMSprop``.

    epsilon inside the square root, learning rate inside the momentum::

        v  = rho * v + (1 - rho) * g**2
        gm = rho * gm + (1 - rho) * g                          (centered only)
        x  = lr * g / sqrt(v - gm**2 + epsilon)  if centered  else  lr * g / sqrt(v + epsilon)
        m  = momentum * m + x;   w = w - m                      (momentum > 0)
        w  = w - x                                              (momentum == 0)

    Chain: ``scale_by_rms(rho, eps=epsilon, eps_inside_sqrt=True,
    centered=centered)`` then ``heavy_ball(learning_rate, momentum)`` (or
    ``scale_by_learning_rate`` without momentum). With ``weight_decay`` and
    momentum the learning rate must be constant and moves outside the velocity
    (``trace``, ``add_decayed_weights``, ``scale_by_learning_rate``): the same
    step.

    Args:
      learning_rate: a non-negative number or a schedule.
      rho: in [0, 1). momentum: in [0, 1). epsilon: > 0.
      centered: divide by the estimated standard deviation.
      weight_decay: None or >= 0.

    Returns:
      A gradient transformation.
    """
    where = _where("rmsprop")
    _check_common(where, learning_rate, weight_decay)
    _below_one(where, "rho", rho)
    _below_one(where, "momentum", momentum)
    _epsilon(where, epsilon)
    check_flag(where, "centered", centered)
    rule = [scale_by_rms(rho, eps=epsilon, eps_inside_sqrt=True, centered=centered)]
    if concrete_value(momentum) != 0.0:
        _momentum_with_decay(where, learning_rate, momentum, weight_decay)
    if weight_decay is None:
        return chain(*rule, heavy_ball(learning_rate, momentum))
    return _finish([*rule, trace(momentum)], learning_rate, weight_decay)


def _keras_power(beta, t):
    """``beta**t`` in float32 as Keras computes it (beta rounded to float32 first)."""
    return jnp.power(jnp.asarray(beta, jnp.float32), t)


def _adam_step_factor(count, *, beta_1, beta_2):
    """Keras Adam's ``sqrt(1 - b2**t) / (1 - b1**t)``, ``t = count + 1``, in float32.

    ``t`` is formed in float32 (``count + 1`` in int32 would wrap at the saturated count).
    """
    t = jnp.asarray(count).astype(jnp.float32) + 1.0
    return jnp.sqrt(1 - _keras_power(beta_2, t)) / (1 - _keras_power(beta_1, t))


def _check_betas(where, beta_1, beta_2, epsilon) -> None:
    _below_one(where, "beta_1", beta_1)
    _below_one(where, "beta_2", beta_2)
    _epsilon(where, epsilon)


def _adam(where, learning_rate, beta_1, beta_2, epsilon, amsgrad, weight_decay):
    _check_common(where, learning_rate, weight_decay)
    _check_betas(where, beta_1, beta_2, epsilon)
    check_flag(where, "amsgrad", amsgrad)
    factor = Bound(_adam_step_factor, beta_1=beta_1, beta_2=beta_2)
    rule = [
        divide(ema(beta_1), root_mean_square(beta_2, eps=epsilon, amsgrad=amsgrad)),
        scale_by_learning_rate(factor, flip_sign=False),
    ]
    return _finish(rule, learning_rate, weight_decay)


@_real_only
def adam(
    learning_rate=0.001,
    beta_1=0.9,
    beta_2=0.999,
    epsilon=1e-07,
    amsgrad=False,
    weight_decay=None,
):
    """``keras.optimizers.Adam``.

    ::

        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g**2
        v_hat = max(v_hat, v)                          (amsgrad; used in place of v)
        w = w - lr * sqrt(1 - b2**t) / (1 - b1**t) * m / (sqrt(v) + epsilon)

    epsilon is added to the uncorrected ``sqrt(v)`` (the "epsilon hat" of
    Kingma & Ba, section 2), so it weighs ``1/sqrt(1 - b2**t)`` times more
    than PyTorch's early on. The powers ``b**t`` are taken in float32, as
    Keras does. Chain: ``divide(ema(beta_1), root_mean_square(beta_2,
    eps=epsilon, amsgrad=amsgrad))``, the step factor as a schedule in
    ``scale_by_learning_rate(..., flip_sign=False)``, the weight decay if any,
    ``scale_by_learning_rate(learning_rate)``.

    Args:
      learning_rate: a non-negative number or a schedule.
      beta_1, beta_2: in [0, 1). epsilon: > 0.
      amsgrad: use the running maximum of ``v``.
      weight_decay: None or >= 0 (decoupled).

    Returns:
      A gradient transformation.
    """
    return _adam(_where("adam"), learning_rate, beta_1, beta_2, epsilon, amsgrad, weight_decay)


@_real_only
def adamw(
    learning_rate=0.001,
    weight_decay=0.004,
    beta_1=0.9,
    beta_2=0.999,
    epsilon=1e-07,
    amsgrad=False,
):
    """``keras.optimizers.AdamW``: :func:`adam` with ``weight_decay=0.004``.

    ``w = w - lr * weight_decay * w`` then Adam's step (see :func:`adam`).
    Note the argument order: ``weight_decay`` comes second, as in Keras.

    Args:
      learning_rate: a non-negative number or a schedule.
      weight_decay: >= 0; None is refused, as Keras refuses it.
      beta_1, beta_2: in [0, 1). epsilon: > 0. amsgrad: running maximum of ``v``.

    Returns:
      A gradient transformation; its ``update`` needs ``params``.
    """
    where = _where("adamw")
    if weight_decay is None:
        raise ValueError(
            f"{where}: weight_decay must be a number, got None. Use 0.004 (Keras' default), "
            "or gradopt.compat.keras.adam for no decay."
        )
    return _adam(where, learning_rate, beta_1, beta_2, epsilon, amsgrad, weight_decay)


@_real_only
def adamax(learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-07, weight_decay=None):
    """``keras.optimizers.Adamax``.

    epsilon outside the maximum (PyTorch puts it inside)::

        m = b1 * m + (1 - b1) * g
        u = max(b2 * u, |g|)
        w = w - lr * m / ((1 - b1**t) * (u + epsilon))

    Chain: ``ema(beta_1)``, ``bias_correction(beta_1)``,
    ``infinity_norm(beta_2, eps=epsilon)`` (divided into), the weight decay if any,
    ``scale_by_learning_rate``.

    Args:
      learning_rate: a non-negative number or a schedule.
      beta_1, beta_2: in [0, 1). epsilon: > 0. weight_decay: None or >= 0.

    Returns:
      A gradient transformation.
    """
    where = _where("adamax")
    _check_common(where, learning_rate, weight_decay)
    _check_betas(where, beta_1, beta_2, epsilon)
    rule = [
        divide(
            chain(ema(beta_1), bias_correction(beta_1)),
            infinity_norm(beta_2, eps=epsilon, eps_inside_max=False),
        )
    ]
    return _finish(rule, learning_rate, weight_decay)


@_real_only
def nadam(learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-07, weight_decay=None):
    """``keras.optimizers.Nadam``.

    With ``mu_t = b1 * (1 - 0.5 * 0.96**t)``::

        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g**2
        n = mu_{t+1} * m / (1 - mu_1...mu_{t+1}) + (1 - mu_t) * g / (1 - mu_1...mu_t)
        w = w - lr * n / (sqrt(v / (1 - b2**t)) + epsilon)

    Keras' schedule has no ``momentum_decay`` (PyTorch's ``0.96**(t * 0.004)``
    becomes ``0.96**t`` here). Chain: ``scale_by_nesterov_ema(beta_1,
    momentum_decay=1.0)`` divided by ``root_mean_square(beta_2, eps=epsilon, debias=True)``,
    the weight decay if any, ``scale_by_learning_rate``.

    Args:
      learning_rate: a non-negative number or a schedule.
      beta_1, beta_2: in [0, 1). epsilon: > 0. weight_decay: None or >= 0.

    Returns:
      A gradient transformation.

    References:
      Dozat, Incorporating Nesterov Momentum into Adam, ICLR workshop, 2016.
    """
    where = _where("nadam")
    _check_common(where, learning_rate, weight_decay)
    _check_betas(where, beta_1, beta_2, epsilon)
    rule = [
        divide(
            scale_by_nesterov_ema(beta_1, momentum_decay=1.0),
            root_mean_square(beta_2, eps=epsilon, debias=True),
        )
    ]
    return _finish(rule, learning_rate, weight_decay)
