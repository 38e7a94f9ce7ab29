"""Adafactor (Shazeer & Stern, 2018): factored second moments, update clipping,
relative step sizes. ``adafactor`` reads::

    chain(scale_by_factored_rms(factored, decay_rate, decay_offset, min_dim_size_to_factor, eps),
          clip_by_block_rms(clipping_threshold),          # when not None
          scale_by_learning_rate(learning_rate, flip_sign=False),   # when not None
          scale_by_param_block_rms(),                     # multiply_by_parameter_scale
          ema(momentum),                                  # when not None
          add_decayed_weights(weight_decay_rate, mask),   # when not None
          scale(-1))
"""

from __future__ import annotations

import jax.numpy as jnp

from gradopt.core._base import GradientTransformation
from gradopt.core._chain import chain
from gradopt.core._checks import (
    check_dtype,
    check_flag,
    check_learning_rate,
    check_momentum,
    check_scalar,
)
from gradopt.transforms._factored import (
    _check_factored,
    clip_by_block_rms,
    scale_by_factored_rms,
    scale_by_param_block_rms,
)
from gradopt.transforms._moments import ema
from gradopt.transforms._scale import scale, scale_by_learning_rate
from gradopt.transforms._weight_decay import add_decayed_weights


def adafactor(
    learning_rate=None,
    min_dim_size_to_factor: int = 128,
    decay_rate=0.8,
    decay_offset=0,
    *,
    multiply_by_parameter_scale: bool = True,
    clipping_threshold=1.0,
    momentum=None,
    dtype_momentum=None,
    weight_decay_rate=None,
    eps=1e-30,
    factored: bool = True,
    weight_decay_mask=None,
) -> GradientTransformation:
    r"""Adafactor (Shazeer & Stern, 2018).

    With ``t`` the 1-based step (counted from ``decay_offset``), ``beta_t = 1 -
    t**(-decay_rate)`` and ``G2 = G**2 + eps``. For a leaf whose two largest
    axes both have at least ``min_dim_size_to_factor`` entries (an ``n x m``
    matrix, say; batch axes are kept)::

        R = beta_t * R + (1 - beta_t) * mean(G2, axis=1)       # n row means
        C = beta_t * C + (1 - beta_t) * mean(G2, axis=0)       # m column means
        U = G / sqrt(R C^T / mean(R))

    and for every other leaf ``V = beta_t V + (1 - beta_t) G2``, ``U = G /
    sqrt(V)``. Then::

        U = U / max(1, RMS(U) / clipping_threshold)            # update clipping
        U = learning_rate * max(1e-3, RMS(W)) * U              # relative step size
        M = momentum * M + (1 - momentum) * U; U = M           # optional
        W = W - (U + weight_decay_rate * W)                    # decay optional

    Args:
      learning_rate: None (the step is the parameter's RMS alone), a number, a
        scalar array or a schedule. The paper's relative step is
        ``min(1e-2, 1/sqrt(t))``: pass it as a schedule.
      min_dim_size_to_factor: factor only leaves whose two largest axes both have
        at least this many entries (an int, 128).
      decay_rate: the exponent ``c`` of ``beta_t = 1 - t**(-c)``, >= 0 (0.8).
      decay_offset: the step the decay schedule counts from, >= 0 (fine-tuning);
        the steps before it take ``beta_t = 0``, as the first step does.
      multiply_by_parameter_scale: the relative step (scale by ``max(1e-3,
        RMS(W))``). Keyword only, as every switch.
      clipping_threshold: ``d`` > 0 of the update clipping, or None for none.
      momentum: None (no first moment, the paper's default) or ``beta_1`` in [0, 1).
      dtype_momentum: storage dtype of the first moment (None: float32, optax's
        default ``jnp.float32``).
      weight_decay_rate: None or >= 0, added after the learning rate (not
        multiplied by it).
      eps: > 0, added to ``G**2`` (1e-30).
      factored: factor the second moments.
      weight_decay_mask: which parameters to decay (see
        :func:`gradopt.add_decayed_weights`).

    Returns:
      The chain in this module's docstring; ``update`` needs ``params`` when
      ``multiply_by_parameter_scale`` (the default) or a weight decay is on.

    Example:
      >>> import jax.numpy as jnp, gradopt
      >>> opt = gradopt.adafactor(0.1, min_dim_size_to_factor=2)
      >>> params = {"w": jnp.ones((2, 3))}
      >>> state = opt.init(params)
      >>> [x.shape for x in (state[0].v_row["w"], state[0].v_col["w"])]  # n + m numbers
      [(2,), (3,)]
      >>> updates, state = opt.update({"w": jnp.full((2, 3), 5.0)}, state, params)
      >>> updates["w"]  # the first step is -learning_rate * RMS(w) * sign(g)
      Array([[-0.1, -0.1, -0.1],
             [-0.1, -0.1, -0.1]], dtype=float32)

    Note:
      How PyTorch, Keras and optax differ. optax.adafactor (the reference of
      the tests: equal trajectories) has these names and defaults; it factors
      the two largest axes of every leaf (not necessarily the last two), as
      here, except before ``decay_offset``: optax raises a count below its
      ``step_offset`` to a negative power (NaN); here those steps are first steps.
      PyTorch (``torch.optim.Adafactor``, 2.5+) follows the paper with a
      learning rate 1e-2 and ``beta2_decay=-0.8``, keeps no momentum and
      factors the last two axes, and uses the parameter RMS only with
      ``maximize``-free relative steps of its own form; Keras'
      ``Adafactor`` uses ``learning_rate=1e-3``, ``beta_2_decay=-0.8``,
      ``epsilon_1=1e-30``, ``epsilon_2=1e-3``, ``clip_threshold=1.0`` and
      ``relative_step=True`` with the schedule ``min(lr, 1/sqrt(t))``.

    References:
      Shazeer & Stern, Adafactor: Adaptive learning rates with sublinear memory
      cost, ICML 2018, arXiv:1804.04235.
    """
    where = "gradopt.adafactor"
    if learning_rate is not None:
        check_learning_rate(where, learning_rate)
    _check_factored(
        where,
        factored,
        decay_rate,
        decay_offset,
        min_dim_size_to_factor,
        eps,
        {"step_offset": "decay_offset"},
    )
    check_flag(where, "multiply_by_parameter_scale", multiply_by_parameter_scale)
    if clipping_threshold is not None:
        check_scalar(
            where,
            "clipping_threshold",
            clipping_threshold,
            low=0.0,
            low_open=True,
            fix="1.0 is the paper's; None switches clipping off.",
        )
    if momentum is not None:
        check_momentum(where, momentum)
    check_dtype(where, dtype_momentum, "dtype_momentum")
    if weight_decay_rate is not None:
        check_scalar(
            where,
            "weight_decay_rate",
            weight_decay_rate,
            low=0.0,
            fix="Use None or 0.0 to switch it off.",
        )
    stages = [
        scale_by_factored_rms(factored, decay_rate, decay_offset, min_dim_size_to_factor, eps)
    ]
    if clipping_threshold is not None:
        stages.append(clip_by_block_rms(clipping_threshold))
    if learning_rate is not None:
        stages.append(scale_by_learning_rate(learning_rate, flip_sign=False))
    if multiply_by_parameter_scale:
        stages.append(scale_by_param_block_rms())
    if momentum is not None:
        stages.append(ema(momentum, dtype=dtype_momentum or jnp.float32))
    if weight_decay_rate is not None:
        stages.append(add_decayed_weights(weight_decay_rate, mask=weight_decay_mask))
    stages.append(scale(-1.0))
    return chain(*stages)
