"""Keras 3's Ftrl, Lion, Lamb and Adafactor, exactly (re-exported by :mod:`gradopt.compat.keras`).

Each rule reads the weights (FTRL solves for them, Lamb and Adafactor scale by their
norm), so it is one stage whose ``update`` needs ``params``; Keras' decoupled
``weight_decay`` (``w = w * (1 - weight_decay * lr)``) is applied to the weights the
rule reads, as Keras applies it before the step. The arguments shared by every Keras
optimizer are described in :mod:`gradopt.compat.keras`.
"""

from __future__ import annotations

import jax.numpy as jnp

from gradopt.compat._keras_common import (
    Shared,
    below_one,
    check_common,
    check_epsilon,
    keras_decay,
    keras_optimizer,
    keras_rule,
    safe_mean,
    square,
)
from gradopt.compat._keras_common import where as _where
from gradopt.core._checks import check_flag, check_scalar
from gradopt.core._numerics import saturate

# ----------------------------------------------------------------------------
# Ftrl


def _ftrl_init(p, *, path, initial_accumulator_value, **_):
    del path
    return (
        jnp.full(p.shape, initial_accumulator_value, jnp.float32),
        jnp.zeros(p.shape, jnp.float32),
    )


def _ftrl_step(g, w, slots, *, t, lr, path, power, l1, l2, l2_shrinkage, beta, weight_decay, **_):
    del t, path
    accum, linear0 = slots
    # Keras divides by lr: at lr = 0 it returns NaN; gradopt takes no step and keeps the slots
    live = lr > 0
    lr = jnp.where(live, lr, 1.0)
    w0, w = w, keras_decay(w, weight_decay, lr)
    l2 = l2 + beta / (2.0 * lr)
    grad_to_use = g + 2 * l2_shrinkage * w
    new_accum = saturate(accum + square(g), jnp.float32)
    linear = linear0 + (
        grad_to_use - (jnp.power(new_accum, power) - jnp.power(accum, power)) / lr * w
    )
    quadratic = jnp.power(new_accum, power) / lr + 2 * l2
    w_new = (jnp.clip(linear, -l1, l1) - linear) / quadratic
    return (
        jnp.where(live, w_new - w0, 0.0),
        (jnp.where(live, new_accum, accum), jnp.where(live, linear, linear0)),
    )


def ftrl(
    learning_rate=0.001,
    learning_rate_power=-0.5,
    initial_accumulator_value=0.1,
    l1_regularization_strength=0.0,
    l2_regularization_strength=0.0,
    l2_shrinkage_regularization_strength=0.0,
    beta=0.0,
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
    """``keras.optimizers.Ftrl`` (follow the regularized leader, McMahan et al.).

    With ``n`` the accumulated squared gradients (starting at
    ``initial_accumulator_value``), ``z`` the linear term, ``p = -learning_rate_power``::

        l2' = l2 + beta / (2 lr)
        g'  = g + 2 * l2_shrinkage * w
        n'  = n + g**2
        z   = z + g' - (n'**p - n**p) / lr * w
        w   = (clip(z, -l1, l1) - z) / (n'**p / lr + 2 l2');  n = n'

    Args:
      learning_rate: >= 0, a number or a schedule; at 0 the step is skipped (no
        change, slots kept) where Keras, dividing by it, returns NaN.
      learning_rate_power: <= 0. The others: initial_accumulator_value,
        l1_regularization_strength, l2_regularization_strength and
        l2_shrinkage_regularization_strength >= 0; beta a number.
      weight_decay, clipnorm, ...: see :mod:`gradopt.compat.keras`.

    Returns:
      A gradient transformation whose ``update`` needs ``params``.

    References:
      McMahan et al., Ad Click Prediction: a View from the Trenches, KDD 2013.
    """
    where = _where("ftrl")
    check_common(where, learning_rate, weight_decay)
    check_scalar(where, "learning_rate_power", learning_rate_power, high=0.0, fix="Use -0.5.")
    for arg, value in (
        ("initial_accumulator_value", initial_accumulator_value),
        ("l1_regularization_strength", l1_regularization_strength),
        ("l2_regularization_strength", l2_regularization_strength),
        ("l2_shrinkage_regularization_strength", l2_shrinkage_regularization_strength),
    ):
        check_scalar(where, arg, value, low=0.0, fix="Use 0.0 (Keras' default) or more.")
    check_scalar(where, "beta", beta, low=0.0, fix="Use 0.0 (FTRL's beta is >= 0).")
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
            _ftrl_init,
            _ftrl_step,
            lr,
            where=where,
            initial_accumulator_value=initial_accumulator_value,
            power=-learning_rate_power,
            l1=l1_regularization_strength,
            l2=l2_regularization_strength,
            l2_shrinkage=l2_shrinkage_regularization_strength,
            beta=beta,
            weight_decay=weight_decay,
        ),
        learning_rate,
        shared,
    )


# ----------------------------------------------------------------------------
# Lion


def _lion_init(p, *, path, **_):
    del path
    return jnp.zeros(p.shape, jnp.float32)


def _lion_step(g, w, m, *, t, lr, path, beta_1, beta_2, weight_decay, **_):
    del t, path
    decay = keras_decay(w, weight_decay, lr) - w
    c = m * beta_1 + g * (1 - beta_1)
    return decay - jnp.sign(c) * lr, m * beta_2 + g * (1 - beta_2)


def lion(
    learning_rate=0.001,
    beta_1=0.9,
    beta_2=0.99,
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
    """``keras.optimizers.Lion`` (evolved sign momentum, Chen et al.)::

        w = w - lr * sign(b1 * m + (1 - b1) * g)
        m = b2 * m + (1 - b2) * g

    Args:
      learning_rate: a non-negative number or a schedule. beta_1: in (0, 1) (Keras
      refuses 0, which is signSGD, and accepts 1, which gradopt refuses). beta_2: in [0, 1).
      weight_decay, clipnorm, ...: see :mod:`gradopt.compat.keras`.

    Returns:
      A gradient transformation whose ``update`` needs ``params``.

    References:
      Chen et al., Symbolic Discovery of Optimization Algorithms, 2023, arXiv:2302.06675.
    """
    where = _where("lion")
    check_common(where, learning_rate, weight_decay)
    check_scalar(
        where,
        "beta_1",
        beta_1,
        low=0.0,
        high=1.0,
        high_open=True,
        low_open=True,
        fix="Use beta_1 in (0, 1) such as 0.9 (0 would be signSGD; Keras also takes 1, "
        "which ignores the current gradient, and gradopt does not).",
    )
    below_one(where, "beta_2", beta_2)
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
            _lion_init,
            _lion_step,
            lr,
            where=where,
            beta_1=beta_1,
            beta_2=beta_2,
            weight_decay=weight_decay,
        ),
        learning_rate,
        shared,
    )


# ----------------------------------------------------------------------------
# Lamb


def _norm(x):
    """The Frobenius norm, scaled by the largest entry first so that it cannot overflow
    (0 for a leaf with no entries)."""
    top = jnp.max(jnp.abs(x), initial=0.0)
    safe = jnp.where(top > 0, top, 1.0)
    return jnp.where(top > 0, top * jnp.sqrt(jnp.sum(jnp.square(x / safe))), 0.0)


def _two_zeros(p, *, path, **_):
    del path
    return (jnp.zeros(p.shape, jnp.float32), jnp.zeros(p.shape, jnp.float32))


def _power(beta, t):
    return jnp.power(jnp.asarray(beta, jnp.float32), t)


def _lamb_step(g, w, slots, *, t, lr, path, beta_1, beta_2, epsilon, weight_decay, **_):
    del path
    m, v = slots
    w0, w = w, keras_decay(w, weight_decay, lr)
    m = m + (g - m) * (1 - beta_1)
    v = v + (square(g) - v) * (1 - beta_2)
    m_hat = m / (1.0 - _power(beta_1, t))
    update = m_hat / (jnp.sqrt(v) / jnp.sqrt(1.0 - _power(beta_2, t)) + epsilon)
    w_norm = _norm(w)
    g_norm = _norm(update)
    safe = jnp.where(g_norm > 0, g_norm, 1.0)
    ratio = jnp.where(w_norm > 0, jnp.where(g_norm > 0, w_norm / safe, 1.0), 1.0)
    return (w - w0) - ratio * lr * update, (m, v)


def lamb(
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
    """``keras.optimizers.Lamb`` (layer-wise adaptive moments, You et al.).

    Adam's bias-corrected step ``u = m_hat / (sqrt(v_hat) + epsilon)`` scaled per
    leaf by the trust ratio::

        r = ||w|| / ||u||   (1 if either norm is 0)
        w = w - lr * r * u

    Keras' ``weight_decay`` is its usual decoupled decay before the step (not the
    decay inside ``u`` of the paper).

    Args:
      learning_rate: a non-negative number or a schedule.
      beta_1, beta_2: in [0, 1). epsilon: > 0.
      weight_decay, clipnorm, ...: see :mod:`gradopt.compat.keras`.

    Returns:
      A gradient transformation whose ``update`` needs ``params``.

    References:
      You et al., Large Batch Optimization for Deep Learning: Training BERT in 76
      minutes, ICLR 2020, arXiv:1904.00962.
    """
    where = _where("lamb")
    check_common(where, learning_rate, weight_decay)
    below_one(where, "beta_1", beta_1)
    below_one(where, "beta_2", beta_2)
    check_epsilon(where, epsilon)
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
            _two_zeros,
            _lamb_step,
            lr,
            where=where,
            beta_1=beta_1,
            beta_2=beta_2,
            epsilon=epsilon,
            weight_decay=weight_decay,
        ),
        learning_rate,
        shared,
    )


# ----------------------------------------------------------------------------
# Adafactor


def _adafactor_init(p, *, path, **_):
    del path
    if p.ndim < 2:
        r = c = jnp.zeros((), jnp.float32)
    else:
        r = jnp.zeros(p.shape[:-1], jnp.float32)
        c = jnp.zeros(p.shape[:-2] + p.shape[-1:], jnp.float32)
    return (r, c, jnp.zeros(p.shape, jnp.float32))


def _rms(x):
    """The root mean square (0 for a leaf with no entries, where Keras' mean is NaN)."""
    if x.size == 0:
        return jnp.zeros((), jnp.float32)
    return _norm(x) / jnp.sqrt(jnp.float32(x.size))


def _adafactor_step(
    g,
    w,
    slots,
    *,
    t,
    lr,
    path,
    beta_2_decay,
    epsilon_1,
    epsilon_2,
    clip_threshold,
    weight_decay,
    **_,
):
    del path
    r, c, v = slots
    w0, w = w, keras_decay(w, weight_decay, lr)
    rho = jnp.minimum(lr, 1 / jnp.sqrt(t))
    alpha = jnp.maximum(jnp.float32(epsilon_2), _rms(w)) * rho
    g2 = saturate(square(g) + epsilon_1, jnp.float32)
    b2 = 1 - jnp.power(t, jnp.float32(beta_2_decay))
    if w.ndim >= 2:
        r = b2 * r + (1 - b2) * safe_mean(g2, axis=-1)
        c = b2 * c + (1 - b2) * safe_mean(g2, axis=-2)
        mean_r = safe_mean(r, axis=-1, keepdims=True)
        # a / b is a * (1 / b) on the CPU, and 1 / b is flushed to 0 for b near float32's
        # maximum: both are scaled down by 2**-64 there (exactly; elsewhere by 1)
        s = jnp.where(mean_r > 1e30, jnp.float32(2.0**-64), jnp.float32(1.0))
        v = ((r * s) / (mean_r * s))[..., None] * c[..., None, :]
        # the product underflows to 0 when one row's statistics are ~1e-70 of another's
        # (an extreme gradient elsewhere); the floor keeps g / sqrt(v) finite there
        v = jnp.maximum(v, jnp.float32(max(epsilon_1, 1e-30)))
    else:
        v = b2 * v + (1 - b2) * g2
    u = g / jnp.sqrt(v)
    u_hat = u / jnp.maximum(1.0, _rms(u) / clip_threshold)
    return (w - w0) - alpha * u_hat, (r, c, v)


def adafactor(
    learning_rate=0.001,
    beta_2_decay=-0.8,
    epsilon_1=1e-30,
    epsilon_2=0.001,
    clip_threshold=1.0,
    relative_step=True,
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
    """``keras.optimizers.Adafactor`` with Keras' conventions (Shazeer & Stern).

    With ``t`` the step (from 1) and ``G = g**2 + epsilon_1``::

        b2    = 1 - t**beta_2_decay
        rho   = min(lr, 1 / sqrt(t));   alpha = max(epsilon_2, RMS(w)) * rho
        R = b2 R + (1 - b2) mean(G, -1);  C = b2 C + (1 - b2) mean(G, -2)
        V = R / mean(R, -1) (outer) C               (leaves of rank >= 2: the last two
        V = b2 V + (1 - b2) G                         dimensions factored; others not)
        u = g / sqrt(V);  w = w - alpha * u / max(1, RMS(u) / clip_threshold)

    Keras always caps the step size at ``1 / sqrt(t)`` (``rho``), so
    ``relative_step`` changes nothing in Keras 3.15 and is accepted for its name.
    PyTorch's Adafactor differs (``gradopt.compat.torch.adafactor``).

    Args:
      learning_rate: a non-negative number or a schedule. beta_2_decay: <= 0.
      epsilon_1, epsilon_2: >= 0. clip_threshold: > 0. relative_step: a bool.
      weight_decay, clipnorm, ...: see :mod:`gradopt.compat.keras`.

    Returns:
      A gradient transformation whose ``update`` needs ``params``.

    References:
      Shazeer and Stern, Adafactor: Adaptive Learning Rates with Sublinear Memory
      Cost, ICML 2018, arXiv:1804.04235.
    """
    where = _where("adafactor")
    check_common(where, learning_rate, weight_decay)
    check_scalar(where, "beta_2_decay", beta_2_decay, high=0.0, fix="Use -0.8.")
    check_scalar(where, "epsilon_1", epsilon_1, low=0.0, fix="Use 1e-30.")
    check_scalar(where, "epsilon_2", epsilon_2, low=0.0, fix="Use 1e-3.")
    check_scalar(where, "clip_threshold", clip_threshold, low=0.0, low_open=True, fix="Use 1.0.")
    check_flag(where, "relative_step", relative_step)
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
            _adafactor_init,
            _adafactor_step,
            lr,
            where=where,
            beta_2_decay=beta_2_decay,
            epsilon_1=epsilon_1,
            epsilon_2=epsilon_2,
            clip_threshold=clip_threshold,
            weight_decay=weight_decay,
        ),
        learning_rate,
        shared,
    )
