"""Keras 3's Adam, AdamW, Adamax and Nadam, exactly (re-exported by :mod:`gradopt.compat.keras`,
whose docstring describes the conventions and the arguments every Keras optimizer shares)."""

from __future__ import annotations

import jax.numpy as jnp

from gradopt.compat._keras_common import (
    Shared,
    below_one,
    check_common,
    check_epsilon,
    finish,
    keras_optimizer,
)
from gradopt.compat._keras_common import where as _where
from gradopt.core._base import Bound
from gradopt.core._chain import chain, divide
from gradopt.core._checks import check_flag
from gradopt.transforms._adaptive import infinity_norm, root_mean_square
from gradopt.transforms._moments import bias_correction, ema, scale_by_nesterov_ema
from gradopt.transforms._scale import scale_by_learning_rate


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
    below_one(where, "beta_1", beta_1)
    below_one(where, "beta_2", beta_2)
    check_epsilon(where, epsilon)


def _adam(where, learning_rate, beta_1, beta_2, epsilon, amsgrad, weight_decay, shared):
    check_common(where, learning_rate, weight_decay)
    _check_betas(where, beta_1, beta_2, epsilon)
    check_flag(where, "amsgrad", amsgrad)
    factor = Bound(_adam_step_factor, beta_1=beta_1, beta_2=beta_2)
    rule = [
        divide(ema(beta_1), root_mean_square(beta_2, eps=epsilon, amsgrad=amsgrad)),
        scale_by_learning_rate(factor, flip_sign=False),
    ]
    return keras_optimizer(where, lambda lr: finish(rule, lr, weight_decay), learning_rate, shared)


def adam(
    learning_rate=0.001,
    beta_1=0.9,
    beta_2=0.999,
    epsilon=1e-07,
    amsgrad=False,
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
    shared = Shared(
        clipnorm,
        clipvalue,
        global_clipnorm,
        use_ema,
        ema_momentum,
        ema_overwrite_frequency,
        loss_scale_factor,
        gradient_accumulation_steps,
    )
    return _adam(
        _where("adam"), learning_rate, beta_1, beta_2, epsilon, amsgrad, weight_decay, shared
    )


def adamw(
    learning_rate=0.001,
    weight_decay=0.004,
    beta_1=0.9,
    beta_2=0.999,
    epsilon=1e-07,
    amsgrad=False,
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
    shared = Shared(
        clipnorm,
        clipvalue,
        global_clipnorm,
        use_ema,
        ema_momentum,
        ema_overwrite_frequency,
        loss_scale_factor,
        gradient_accumulation_steps,
    )
    return _adam(where, learning_rate, beta_1, beta_2, epsilon, amsgrad, weight_decay, shared)


def adamax(
    learning_rate=0.001,
    beta_1=0.9,
    beta_2=0.999,
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
    check_common(where, learning_rate, weight_decay)
    _check_betas(where, beta_1, beta_2, epsilon)
    rule = [
        divide(
            chain(ema(beta_1), bias_correction(beta_1)),
            infinity_norm(beta_2, eps=epsilon, eps_inside_max=False),
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


def nadam(
    learning_rate=0.001,
    beta_1=0.9,
    beta_2=0.999,
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
    check_common(where, learning_rate, weight_decay)
    _check_betas(where, beta_1, beta_2, epsilon)
    rule = [
        divide(
            scale_by_nesterov_ema(beta_1, momentum_decay=1.0),
            root_mean_square(beta_2, eps=epsilon, debias=True),
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
