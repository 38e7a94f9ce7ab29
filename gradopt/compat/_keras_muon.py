"""Keras 3's Muon and ScheduleFreeAdamW, exactly (re-exported by :mod:`gradopt.compat.keras`)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import jax.numpy as jnp

from gradopt.compat._keras_common import (
    KerasRuleState,
    Shared,
    below_one,
    check_common,
    check_epsilon,
    check_int,
    keras_decay,
    keras_optimizer,
    keras_rule,
    square,
)
from gradopt.compat._keras_common import where as _where
from gradopt.core._checks import check_flag, check_scalar

# ----------------------------------------------------------------------------
# Muon


def _use_adamw(shape, path, exclude_layers, exclude_embeddings) -> bool:
    """Keras' choice: AdamW for every leaf that is not 2-D, or whose path is excluded."""
    if len(shape) != 2:
        return True
    if exclude_embeddings and "embedding" in path.lower():
        return True
    return any(re.search(pattern, path) for pattern in exclude_layers)


def _muon_init(p, *, path, exclude_layers, exclude_embeddings, **_):
    m = jnp.zeros(p.shape, jnp.float32)
    adamw = _use_adamw(p.shape, path, exclude_layers, exclude_embeddings)
    return (m, jnp.zeros(p.shape if adamw else (), jnp.float32))


def _transpose(x):
    return jnp.swapaxes(x, -1, -2)


def _frobenius(x):
    """``||x||_F`` over the last two axes, scaled by the largest entry (no overflow)."""
    top = jnp.max(jnp.abs(x), axis=(-2, -1), keepdims=True, initial=0.0)
    safe = jnp.where(top > 0, top, 1.0)
    return top * jnp.sqrt(jnp.sum(jnp.square(x / safe), axis=(-2, -1), keepdims=True))


def newton_schulz(x, steps, a, b, c):
    """Keras' quintic Newton–Schulz iteration towards the orthogonal factor of ``x``."""
    tall = x.shape[-2] > x.shape[-1]
    if tall:
        x = _transpose(x)
    x = x / (_frobenius(x) + 1e-7)
    for _ in range(steps):
        gram = x @ _transpose(x)
        x = a * x + (b * gram + c * gram @ gram) @ x
    return _transpose(x) if tall else x


def _muon_step(
    g,
    w,
    slots,
    *,
    t,
    lr,
    path,
    exclude_layers,
    exclude_embeddings,
    adam_beta_1,
    adam_beta_2,
    epsilon,
    adam_lr_ratio,
    adam_weight_decay,
    weight_decay,
    momentum,
    nesterov,
    ns_steps,
    muon_a,
    muon_b,
    muon_c,
    rms_rate,
    **_,
):
    m, v = slots
    w0 = w
    if _use_adamw(w.shape, path, exclude_layers, exclude_embeddings):
        if adam_weight_decay is not None:
            w = w - w * jnp.float32(adam_weight_decay) * lr
        lr_adam = lr * adam_lr_ratio
        b1_power = jnp.power(jnp.float32(adam_beta_1), t)
        b2_power = jnp.power(jnp.float32(adam_beta_2), t)
        alpha = lr_adam * jnp.sqrt(1 - b2_power) / (1 - b1_power)
        m = m + (g - m) * (1 - adam_beta_1)
        v = v + (square(g) - v) * (1 - adam_beta_2)
        return (w - w0) - m * alpha / (jnp.sqrt(v) + epsilon), (m, v)
    if weight_decay is not None:
        w = w - w * jnp.float32(weight_decay) * lr
    m = m + (g + m * (momentum - 1))
    direction = g + momentum * m if nesterov else m
    update = lr * newton_schulz(direction, ns_steps, muon_a, muon_b, muon_c)
    if rms_rate is not None:
        update = update * jnp.sqrt(jnp.float32(max(w.shape[0], w.shape[1]))) * rms_rate
    return (w - w0) - update, (m, v)


def muon(
    learning_rate=0.001,
    adam_beta_1=0.9,
    adam_beta_2=0.999,
    adam_weight_decay=0.004,
    epsilon=1e-07,
    weight_decay=0.004,
    clipnorm=None,
    clipvalue=None,
    global_clipnorm=None,
    use_ema=False,
    ema_momentum=0.99,
    ema_overwrite_frequency=None,
    loss_scale_factor=None,
    gradient_accumulation_steps=None,
    name=None,
    exclude_layers=None,
    exclude_embeddings=True,
    muon_a=3.4445,
    muon_b=-4.775,
    muon_c=2.0315,
    adam_lr_ratio=1,
    momentum=0.95,
    ns_steps=5,
    nesterov=True,
    rms_rate=0.2,
):
    """``keras.optimizers.Muon``: 2-D leaves by Muon, the others by AdamW.

    A leaf goes to AdamW when it is not 2-D, when ``exclude_embeddings`` and its path
    (its keys joined by ``/``, e.g. ``"dense/kernel"``) contains ``"embedding"``, or
    when a pattern of ``exclude_layers`` is found in its path (``re.search``). Muon::

        w = w - lr * weight_decay * w
        m = momentum * m + g
        d = g + momentum * m  if nesterov  else  m
        O = NS(d)       (ns_steps quintic Newton–Schulz steps with muon_a, muon_b, muon_c)
        w = w - lr * O * sqrt(max(rows, cols)) * rms_rate     (rms_rate None: no factor)

    AdamW (Keras' form, step size ``lr * adam_lr_ratio``, decay ``adam_weight_decay``
    with the unscaled ``lr``)::

        m = m + (g - m)(1 - b1);  v = v + (g**2 - v)(1 - b2)
        w = w - lr * adam_lr_ratio * sqrt(1 - b2**t) / (1 - b1**t) * m / (sqrt(v) + epsilon)

    Args:
      learning_rate: a non-negative number or a schedule.
      adam_beta_1, adam_beta_2, momentum: in [0, 1). epsilon: > 0.
      adam_weight_decay, weight_decay: None or >= 0.
      exclude_layers: None or a list of regular expressions. exclude_embeddings: a bool.
      muon_a, muon_b, muon_c: the Newton–Schulz coefficients. adam_lr_ratio: >= 0.
      ns_steps: an int >= 0. nesterov: a bool. rms_rate: None or >= 0.
      clipnorm, ...: see :mod:`gradopt.compat.keras`.

    Returns:
      A gradient transformation whose ``update`` needs ``params``.

    References:
      Jordan et al., Muon: An optimizer for hidden layers in neural networks, 2024;
      Liu et al., Muon is Scalable for LLM Training, 2025, arXiv:2502.16982.
    """
    where = _where("muon")
    check_common(where, learning_rate, weight_decay)
    if adam_weight_decay is not None:
        check_scalar(where, "adam_weight_decay", adam_weight_decay, low=0.0, fix="Use 0.004.")
    below_one(where, "adam_beta_1", adam_beta_1)
    below_one(where, "adam_beta_2", adam_beta_2)
    below_one(where, "momentum", momentum)
    check_epsilon(where, epsilon)
    for arg, value in (("muon_a", muon_a), ("muon_b", muon_b), ("muon_c", muon_c)):
        check_scalar(where, arg, value, fix="Use Keras' defaults 3.4445, -4.775, 2.0315.")
    check_scalar(where, "adam_lr_ratio", adam_lr_ratio, low=0.0, fix="Use 1.")
    if rms_rate is not None:
        check_scalar(where, "rms_rate", rms_rate, low=0.0, fix="Use 0.2 or None.")
    check_int(where, "ns_steps", ns_steps, 0, "Use 5.")
    check_flag(where, "nesterov", nesterov)
    check_flag(where, "exclude_embeddings", exclude_embeddings)
    layers = tuple(exclude_layers or ())
    for pattern in layers:
        if not isinstance(pattern, str):
            raise TypeError(
                f"{where}: exclude_layers must be a list of regular expressions (str), got "
                f"{exclude_layers!r}."
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
    hyper = dict(
        where=where,
        exclude_layers=layers,
        exclude_embeddings=exclude_embeddings,
        adam_beta_1=adam_beta_1,
        adam_beta_2=adam_beta_2,
        epsilon=epsilon,
        adam_lr_ratio=adam_lr_ratio,
        adam_weight_decay=adam_weight_decay,
        weight_decay=weight_decay,
        momentum=momentum,
        nesterov=nesterov,
        ns_steps=ns_steps,
        muon_a=muon_a,
        muon_b=muon_b,
        muon_c=muon_c,
        rms_rate=rms_rate,
    )
    return keras_optimizer(
        where, lambda lr: keras_rule(_muon_init, _muon_step, lr, **hyper), learning_rate, shared
    )


# ----------------------------------------------------------------------------
# ScheduleFreeAdamW


def _sf_init(p, *, path, **_):
    del path
    return (p.astype(jnp.float32), jnp.zeros(p.shape, jnp.float32))


def _sf_step(g, w, slots, *, t, lr, path, beta_1, beta_2, epsilon, warmup_steps, weight_decay, **_):
    del path
    z_old, v = slots
    y0 = y = w
    beta_1, beta_2 = jnp.float32(beta_1), jnp.float32(beta_2)  # Keras casts them first
    y = keras_decay(y, weight_decay, lr)
    if warmup_steps > 0:
        lr = lr * jnp.minimum(t / jnp.float32(warmup_steps), 1.0)
    v = v + (square(g) - v) * (1 - beta_2)
    denom = jnp.sqrt(v) / jnp.sqrt(1 - jnp.power(beta_2, t)) + jnp.float32(epsilon)
    z = z_old - lr * g / denom
    weight = 1.0 / t
    x_old = (y - (1 - beta_1) * z_old) / beta_1
    x_new = (1 - weight) * x_old + weight * z
    y_new = (1 - beta_1) * z + beta_1 * x_new
    return y_new - y0, (z, v)


def schedule_free_adamw(
    learning_rate=0.0025,
    beta_1=0.9,
    beta_2=0.999,
    epsilon=1e-08,
    warmup_steps=0,
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
    """``keras.optimizers.ScheduleFreeAdamW`` (Defazio et al.).

    The parameters are Keras' ``y``, where the gradient is taken; the state keeps
    ``z`` (starting at the initial weights) and Adam's ``v``. With ``t`` the step,
    ``lr_t = lr * min(t / warmup_steps, 1)`` (``warmup_steps > 0``)::

        v = v + (g**2 - v)(1 - b2)
        z' = z - lr_t * g / (sqrt(v / (1 - b2**t)) + epsilon)
        x  = (y - (1 - b1) z) / b1;   x' = (1 - 1/t) x + z' / t
        y  = (1 - b1) z' + b1 x';  z = z'

    Evaluate the model at ``x``: :func:`schedule_free_eval_params` returns it.

    Args:
      learning_rate: a non-negative number or a schedule.
      beta_1: in (0, 1). beta_2: in [0, 1). epsilon: > 0. warmup_steps: an int >= 0.
      weight_decay, clipnorm, ...: see :mod:`gradopt.compat.keras`.

    Returns:
      A gradient transformation whose ``update`` needs ``params``.

    References:
      Defazio et al., The Road Less Scheduled, NeurIPS 2024, arXiv:2405.15682.
    """
    where = _where("schedule_free_adamw")
    check_common(where, learning_rate, weight_decay)
    check_scalar(
        where,
        "beta_1",
        beta_1,
        low=0.0,
        high=1.0,
        low_open=True,
        high_open=True,
        fix="x is recovered by dividing by beta_1; use 0.9.",
    )
    below_one(where, "beta_2", beta_2)
    check_epsilon(where, epsilon)
    check_int(where, "warmup_steps", warmup_steps, 0, "Use 0 (no warm-up).")
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
    return keras_optimizer(
        where,
        lambda lr: keras_rule(
            _sf_init,
            _sf_step,
            lr,
            where=where,
            beta_1=beta_1,
            beta_2=beta_2,
            epsilon=epsilon,
            warmup_steps=warmup_steps,
            weight_decay=weight_decay,
            schedule_free=True,
        ),
        learning_rate,
        shared,
    )


def _find_sf(state) -> list[Any]:
    if isinstance(state, KerasRuleState):
        return [state]
    if isinstance(state, Mapping):
        children = list(state.values())
    elif isinstance(state, (tuple, list)):
        children = list(state)
    else:
        return []
    return [found for child in children for found in _find_sf(child)]


def schedule_free_eval_params(params, state, beta_1=0.9):
    """The point ``x = (y - (1 - beta_1) z) / beta_1`` at which to evaluate the model.

    Args:
      params: the current parameters (Keras' ``y``).
      state: the state of :func:`schedule_free_adamw` (or of a chain holding it).
      beta_1: the ``beta_1`` the optimizer was built with.

    Returns:
      ``x`` with the structure and dtypes of ``params``.

    Example:
      >>> import jax.numpy as jnp
      >>> from gradopt.compat import keras as keras_compat
      >>> opt = keras_compat.schedule_free_adamw(learning_rate=0.1)
      >>> params = {"w": jnp.array([1.0])}
      >>> state = opt.init(params)
      >>> keras_compat.schedule_free_eval_params(params, state)["w"]  # x = y = z at the start
      Array([1.], dtype=float32)
    """
    import jax

    found = _find_sf(state)
    if not found:
        raise ValueError(
            "gradopt.compat.keras.schedule_free_eval_params: the state holds no "
            "schedule_free_adamw state; pass the state of schedule_free_adamw(...)."
        )
    z = jax.tree.map(lambda p, s: s[0], params, found[0].slots)
    return jax.tree.map(
        lambda y, z: ((y.astype(jnp.float32) - (1 - beta_1) * z) / beta_1).astype(y.dtype),
        params,
        z,
    )
