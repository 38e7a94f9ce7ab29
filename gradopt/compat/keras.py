"""Keras 3's optimizers, exactly, as chains of gradopt's primitives.

Argument names, order and defaults are those of ``keras.optimizers`` 3.15.
``learning_rate`` may be a number or a schedule ``step -> value``, evaluated at
the number of previous steps as Keras evaluates a ``LearningRateSchedule`` at
``optimizer.iterations``.

Every optimizer also takes the arguments of Keras' base optimizer, with Keras'
meaning, built on gradopt's wrappers (in Keras' order):

* ``loss_scale_factor``: the gradients are divided by it (the loss was
  multiplied by it); ``gradopt.scale``.
* ``gradient_accumulation_steps`` (None or >= 2): one step every k calls with
  the mean gradient; ``gradopt.accumulate``. A schedule is evaluated at the
  number of calls, as in Keras.
* ``clipnorm`` (per leaf), ``global_clipnorm``, ``clipvalue``: at most one, off
  when None or <= 0; ``gradopt.clip_by_norm``, ``clip_by_global_norm``, ``clip``.
* ``use_ema``, ``ema_momentum``, ``ema_overwrite_frequency``: an exponential
  average of the weights after every call, the first one copied, and the weights
  overwritten by it every ``ema_overwrite_frequency`` calls;
  ``gradopt.average_parameters`` (read the average with
  ``gradopt.averaged_params(state)``; ``update`` then needs ``params``). Not
  supported together with ``gradient_accumulation_steps`` (a ValueError).
* ``name`` is accepted and ignored.

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

from gradopt.compat._keras_adam import adam, adamax, adamw, nadam
from gradopt.compat._keras_common import (
    Shared,
    below_one,
    check_common,
    check_epsilon,
    finish,
    keras_optimizer,
)
from gradopt.compat._keras_common import where as _where
from gradopt.compat._keras_more import adafactor, ftrl, lamb, lion
from gradopt.compat._keras_muon import muon, schedule_free_adamw, schedule_free_eval_params
from gradopt.compat._keras_wrappers import (
    OptimizerMap,
    loss_scale_optimizer,
    multi_optimizer,
    optimizer_map,
)
from gradopt.core._chain import chain
from gradopt.core._checks import check_flag, check_scalar, concrete_value
from gradopt.transforms._adaptive import (
    scale_by_adadelta,
    scale_by_rms,
    scale_by_sum_of_squares,
)
from gradopt.transforms._momentum import heavy_ball, trace
from gradopt.transforms._scale import scale_by_learning_rate

__all__ = [
    "OptimizerMap",
    "adadelta",
    "adafactor",
    "adagrad",
    "adam",
    "adamax",
    "adamw",
    "ftrl",
    "lamb",
    "lion",
    "loss_scale_optimizer",
    "multi_optimizer",
    "muon",
    "nadam",
    "optimizer_map",
    "rmsprop",
    "schedule_free_adamw",
    "schedule_free_eval_params",
    "sgd",
]


def _momentum_with_decay(where, learning_rate, momentum, weight_decay) -> None:
    """Keras decays with the current rate outside its velocity; with a schedule that
    cannot be folded into one chain, with a constant rate it is the same step."""
    if weight_decay is not None and callable(learning_rate):
        raise ValueError(
            f"{where}: momentum={momentum!r} with weight_decay={weight_decay!r} needs a "
            "constant learning_rate here, got a schedule. Use a number, or compose "
            "gradopt.heavy_ball and gradopt.add_decayed_weights yourself."
        )


def sgd(
    learning_rate=0.01,
    momentum=0.0,
    nesterov=False,
    weight_decay=None,
    clipnorm=None,
    clipvalue=None,
    global_clipnorm=None,
    use_ema=False,
    ema_momentum=0.99,
    ema_overwrite_frequency=None,
    loss_scale_factor=None,
    gradient_accumulation_steps=None,
    name=None,
):
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
    check_common(where, learning_rate, weight_decay)
    below_one(where, "momentum", momentum)
    check_flag(where, "nesterov", nesterov)
    # A velocity is kept for momentum 0 too (it then holds -lr * g), so that the
    # state's structure does not depend on the value.
    if concrete_value(momentum) != 0.0:
        _momentum_with_decay(where, learning_rate, momentum, weight_decay)
    else:
        nesterov = False  # Keras accepts Nesterov with zero momentum: plain SGD

    def build(lr):
        if weight_decay is None:
            return chain(scale_by_learning_rate(lr), trace(momentum, nesterov=nesterov))
        return finish([trace(momentum, nesterov=nesterov)], lr, weight_decay)

    return keras_optimizer(
        where,
        build,
        learning_rate,
        Shared(
            clipnorm,
            clipvalue,
            global_clipnorm,
            use_ema,
            ema_momentum,
            ema_overwrite_frequency,
            loss_scale_factor,
            gradient_accumulation_steps,
        ),
    )


def adagrad(
    learning_rate=0.001,
    initial_accumulator_value=0.1,
    epsilon=1e-07,
    weight_decay=None,
    clipnorm=None,
    clipvalue=None,
    global_clipnorm=None,
    use_ema=False,
    ema_momentum=0.99,
    ema_overwrite_frequency=None,
    loss_scale_factor=None,
    gradient_accumulation_steps=None,
    name=None,
):
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
    check_common(where, learning_rate, weight_decay)
    check_scalar(
        where,
        "initial_accumulator_value",
        initial_accumulator_value,
        low=0.0,
        fix="Use 0.1 (Keras' default).",
    )
    check_epsilon(where, epsilon)
    rule = [
        scale_by_sum_of_squares(
            eps=epsilon,
            initial_accumulator_value=initial_accumulator_value,
            eps_inside_sqrt=True,
        )
    ]
    return keras_optimizer(
        where,
        lambda lr: finish(rule, lr, weight_decay),
        learning_rate,
        Shared(
            clipnorm,
            clipvalue,
            global_clipnorm,
            use_ema,
            ema_momentum,
            ema_overwrite_frequency,
            loss_scale_factor,
            gradient_accumulation_steps,
        ),
    )


def adadelta(
    learning_rate=0.001,
    rho=0.95,
    epsilon=1e-07,
    weight_decay=None,
    clipnorm=None,
    clipvalue=None,
    global_clipnorm=None,
    use_ema=False,
    ema_momentum=0.99,
    ema_overwrite_frequency=None,
    loss_scale_factor=None,
    gradient_accumulation_steps=None,
    name=None,
):
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
    check_common(where, learning_rate, weight_decay)
    below_one(where, "rho", rho)
    check_epsilon(where, epsilon)
    rule = [scale_by_adadelta(rho, eps=epsilon)]
    return keras_optimizer(
        where,
        lambda lr: finish(rule, lr, weight_decay),
        learning_rate,
        Shared(
            clipnorm,
            clipvalue,
            global_clipnorm,
            use_ema,
            ema_momentum,
            ema_overwrite_frequency,
            loss_scale_factor,
            gradient_accumulation_steps,
        ),
    )


def rmsprop(
    learning_rate=0.001,
    rho=0.9,
    momentum=0.0,
    epsilon=1e-07,
    centered=False,
    weight_decay=None,
    clipnorm=None,
    clipvalue=None,
    global_clipnorm=None,
    use_ema=False,
    ema_momentum=0.99,
    ema_overwrite_frequency=None,
    loss_scale_factor=None,
    gradient_accumulation_steps=None,
    name=None,
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
    check_common(where, learning_rate, weight_decay)
    below_one(where, "rho", rho)
    below_one(where, "momentum", momentum)
    check_epsilon(where, epsilon)
    check_flag(where, "centered", centered)
    rule = [scale_by_rms(rho, eps=epsilon, eps_inside_sqrt=True, centered=centered)]
    if concrete_value(momentum) != 0.0:
        _momentum_with_decay(where, learning_rate, momentum, weight_decay)

    def build(lr):
        if weight_decay is None:
            return chain(*rule, heavy_ball(lr, momentum))
        return finish([*rule, trace(momentum)], lr, weight_decay)

    return keras_optimizer(
        where,
        build,
        learning_rate,
        Shared(
            clipnorm,
            clipvalue,
            global_clipnorm,
            use_ema,
            ema_momentum,
            ema_overwrite_frequency,
            loss_scale_factor,
            gradient_accumulation_steps,
        ),
    )
