"""Schedule-free SGD and AdamW (Defazio et al., 2024)::

    schedule_free_sgd   = schedule_free(chain(add_decayed_weights(weight_decay),
                                              scale_by_learning_rate(lr_t)), lr_t, b1)
    schedule_free_adamw = schedule_free(chain(scale_by_rms(b2, eps=eps, debias=True),
                                              add_decayed_weights(weight_decay),
                                              scale_by_learning_rate(lr_t)), lr_t, b1)

with ``lr_t = learning_rate * min(1, t / warmup_steps)`` (``t`` 1-based).
"""

from __future__ import annotations

import jax.numpy as jnp

from gradopt.core._base import Bound, GradientTransformation
from gradopt.core._chain import chain
from gradopt.core._checks import check_decay, check_eps, check_weight_decay
from gradopt.transforms._adaptive import scale_by_rms
from gradopt.transforms._scale import scale_by_learning_rate
from gradopt.transforms._schedule_free import check_sf, schedule_free
from gradopt.transforms._weight_decay import add_decayed_weights


def linear_warmup(count, *, peak, warmup_steps):
    """``peak * min(1, (count + 1) / warmup_steps)``: the schedule-free warm-up."""
    t = count.astype(jnp.float32) + 1.0
    return peak * jnp.minimum(1.0, t / warmup_steps)


def _lr(where, learning_rate, warmup_steps):
    if warmup_steps is None:
        return learning_rate
    if isinstance(warmup_steps, bool) or not isinstance(warmup_steps, int) or warmup_steps < 1:
        raise ValueError(
            f"{where}: warmup_steps must be None or a positive int, got {warmup_steps!r}."
        )
    if callable(learning_rate):
        raise TypeError(
            f"{where}: with warmup_steps, learning_rate must be a number (the peak), got a "
            "schedule. Build the warm-up into your schedule and pass warmup_steps=None."
        )
    return Bound(linear_warmup, peak=learning_rate, warmup_steps=warmup_steps)


def schedule_free_sgd(
    learning_rate=1.0,
    warmup_steps=None,
    b1=0.9,
    *,
    weight_decay=None,
    weight_lr_power=2.0,
    state_dtype=None,
) -> GradientTransformation:
    r"""Schedule-free SGD (Defazio et al., 2024).

    With ``lr_t = learning_rate * min(1, t / warmup_steps)`` (``t`` 1-based),
    ``c_{t+1} = lr_max,t**2 / sum_{i<=t} lr_max,i**2`` (``lr_max,t`` the largest
    learning rate so far; the power is ``weight_lr_power``)::

        y_t     = (1 - b1) z_t + b1 x_t                  # the parameters held
        z_{t+1} = z_t - lr_t * (grad f(y_t) + weight_decay * y_t)
        x_{t+1} = (1 - c_{t+1}) x_t + c_{t+1} z_{t+1}    # evaluate here

    No learning-rate decay is needed: ``x`` is an average of the ``z`` that
    weights recent iterates as a decaying schedule would.

    Args:
      learning_rate: the (peak) learning rate >= 0, or a schedule when
        ``warmup_steps`` is None.
      warmup_steps: None or the length of the linear warm-up (a positive int).
      b1: the interpolation ``beta`` in (0, 1).
      weight_decay: None or >= 0, evaluated at ``y``. Keyword only (as every
        gradopt weight decay), and so are the arguments after it.
      weight_lr_power: ``p`` >= 0 of the averaging weights.
      state_dtype: storage dtype of ``z``.

    Returns:
      A gradient transformation with state :class:`gradopt.ScheduleFreeState`;
      ``update`` needs ``params``. Evaluate at :func:`gradopt.schedule_free_eval_params`.

    Example:
      >>> import jax.numpy as jnp, gradopt
      >>> opt = gradopt.schedule_free_sgd(0.5)
      >>> y = {"w": jnp.array([2.0])}
      >>> state = opt.init(y)
      >>> u, state = opt.update({"w": 2 * y["w"]}, state, y)  # f = w**2
      >>> gradopt.apply_updates(y, u)["w"]  # z_1 = 0 and x_1 = z_1, so y_1 = 0
      Array([0.], dtype=float32)

    Note:
      How PyTorch, Keras and optax differ. optax.contrib.schedule_free_sgd has
      these names and defaults, and the same trajectory without warm-up (the
      tests' reference). With warm-up, optax's base step at ``t`` uses
      ``learning_rate * (t - 1) / warmup_steps`` (its first step is zero)
      while its averaging weight uses ``learning_rate * t / warmup_steps``;
      gradopt uses ``t / warmup_steps`` for both, as the paper (the weight is
      that of the step taken) and the authors' PyTorch code
      (``SGDScheduleFree``, which is not part of torch.optim) do. Keras has no
      schedule-free optimizer.

    References:
      Defazio, Yang, Mehta, Mishchenko, Khaled & Cutkosky, The road less
      scheduled, NeurIPS 2024, arXiv:2405.15682.
    """
    where = "gradopt.schedule_free_sgd"
    check_sf(where, learning_rate, b1, weight_lr_power, state_dtype)
    if weight_decay is not None:
        check_weight_decay(where, weight_decay)
    lr = _lr(where, learning_rate, warmup_steps)
    base = chain(
        add_decayed_weights(0.0 if weight_decay is None else weight_decay),
        scale_by_learning_rate(lr),
    )
    return schedule_free(base, lr, b1, weight_lr_power, state_dtype)


def schedule_free_adamw(
    learning_rate=0.0025,
    warmup_steps=None,
    b1=0.9,
    b2=0.999,
    eps=1e-8,
    *,
    weight_decay=0.0,
    weight_lr_power=2.0,
    state_dtype=None,
) -> GradientTransformation:
    r"""Schedule-free AdamW (Defazio et al., 2024).

    As :func:`schedule_free_sgd`, with the base step Adam's without momentum::

        v       = b2 * v + (1 - b2) * g**2,  v_hat = v / (1 - b2**t)     # g at y_t
        z_{t+1} = z_t - lr_t * (g / (sqrt(v_hat) + eps) + weight_decay * y_t)

    Args:
      learning_rate: the (peak) learning rate >= 0 (0.0025), or a schedule when
        ``warmup_steps`` is None.
      warmup_steps: None or the length of the linear warm-up.
      b1: the interpolation ``beta`` in (0, 1).
      b2: the second moment's decay rate, in [0, 1).
      eps: > 0, outside the square root.
      weight_decay: decoupled decay >= 0, evaluated at ``y``. Keyword only, and
        so are the arguments after it.
      weight_lr_power: ``p`` >= 0 of the averaging weights.
      state_dtype: storage dtype of ``z``.

    Returns:
      A gradient transformation with state :class:`gradopt.ScheduleFreeState`.

    Note:
      How PyTorch, Keras and optax differ. optax.contrib.schedule_free_adamw
      has these names and defaults and the same trajectory without warm-up
      (see :func:`schedule_free_sgd` for the warm-up's off-by-one). The
      authors' PyTorch ``AdamWScheduleFree`` folds the bias correction into
      the learning rate and adds the weight decay at ``y`` as here.

    References:
      Defazio et al., The road less scheduled, NeurIPS 2024, arXiv:2405.15682.
    """
    where = "gradopt.schedule_free_adamw"
    check_sf(where, learning_rate, b1, weight_lr_power, state_dtype)
    check_decay(where, "b2", b2)
    check_eps(where, eps)
    check_weight_decay(where, weight_decay)
    lr = _lr(where, learning_rate, warmup_steps)
    base = chain(
        scale_by_rms(b2, eps=eps, debias=True),
        add_decayed_weights(weight_decay),
        scale_by_learning_rate(lr),
    )
    return schedule_free(base, lr, b1, weight_lr_power, state_dtype)
