"""torch.optim's optimizers, exactly, as chains of gradopt's primitives.

Argument names, order and defaults are those of ``torch.optim`` 2.13 (the
``params`` argument aside: a gradopt optimizer is built before it sees the
parameters; the implementation switches ``foreach``, ``fused``,
``capturable`` and ``differentiable`` have no counterpart). Arguments are
validated under the conditions torch.optim uses, and where gradopt needs more
(``eps > 0``, decay rates and momentum below 1, finite values) it refuses here,
naming the argument as you wrote it (``alpha``, ``betas[1]``, ``eps``).

Every optimizer is ``chain(<maximize>, <coupled weight decay>, chain(<rule>))``:
``maximize=True`` negates the gradient first, and torch's ``weight_decay``
(except AdamW's and ``decoupled_weight_decay=True``) adds ``weight_decay * w``
to the gradient before anything else, so the statistics of the inner chain are
built from the decayed gradient, as in torch.

Example:
  >>> import jax.numpy as jnp
  >>> from gradopt.compat import torch as torch_compat
  >>> params = {"w": jnp.array([1.0, -2.0])}
  >>> opt = torch_compat.sgd(lr=0.1, momentum=0.9, nesterov=True)
  >>> state = opt.init(params)
  >>> updates, state = opt.update({"w": jnp.array([1.0, -1.0])}, state, params)
  >>> updates["w"]  # torch's first step: v = g, then -lr * (g + momentum * v)
  Array([-0.19,  0.19], dtype=float32)
"""

from __future__ import annotations

import functools

import jax.numpy as jnp

from gradopt.compat import swa_utils as swa_utils  # torch.optim.swa_utils
from gradopt.compat._torch_adafactor import adafactor
from gradopt.compat._torch_asgd import asgd, asgd_average
from gradopt.compat._torch_common import (
    _assemble,
    _below_one,
    _check_betas,
    _decoupled,
    _is_zero,
    _non_negative,
    _positive,
    _where,
)
from gradopt.compat._torch_lbfgs import lbfgs
from gradopt.compat._torch_muon import muon
from gradopt.compat._torch_radam import radam
from gradopt.compat._torch_rprop import rprop
from gradopt.compat._torch_sparse_adam import sparse_adam
from gradopt.core._base import Bound
from gradopt.core._chain import chain, divide
from gradopt.core._checks import check_flag, check_learning_rate, check_scalar
from gradopt.transforms._adaptive import (
    infinity_norm,
    root_mean_square,
    scale_by_adadelta,
    scale_by_rms,
    scale_by_sum_of_squares,
)
from gradopt.transforms._moments import bias_correction, ema, scale_by_nesterov_ema
from gradopt.transforms._momentum import trace
from gradopt.transforms._real_only import real_only
from gradopt.transforms._scale import scale_by_learning_rate

__all__ = [
    "adadelta",
    "adafactor",
    "adagrad",
    "adam",
    "adamax",
    "adamw",
    "asgd",
    "asgd_average",
    "lbfgs",
    "muon",
    "nadam",
    "radam",
    "rmsprop",
    "rprop",
    "sgd",
    "sparse_adam",
]


def sgd(lr=0.001, momentum=0, dampening=0, weight_decay=0, nesterov=False, *, maximize=False):
    """``torch.optim.SGD``.

    With ``g`` the gradient (negated if ``maximize``) plus ``weight_decay * w``::

        v = g                                  (first step, no dampening)
        v = momentum * v + (1 - dampening) * g (later steps)
        d = g + momentum * v  if nesterov  else v      (d = g when momentum == 0)
        w = w - lr * d

    Chain: ``trace(momentum, dampening=dampening, nesterov=nesterov,
    dampen_first_step=False)`` then ``scale_by_learning_rate(lr)``.

    Args:
      lr: learning rate, >= 0.
      momentum: in [0, 1) (torch accepts 1 and more).
      dampening: in [0, 1].
      weight_decay: coupled L2 coefficient, >= 0.
      nesterov: Nesterov momentum; needs momentum > 0 and dampening == 0.
      maximize: ascend instead of descend.

    Returns:
      A gradient transformation; its ``update`` needs ``params`` when
      ``weight_decay`` is not 0.
    """
    where = _where("sgd")
    check_learning_rate(where, lr, "lr")
    _below_one(where, "momentum", momentum)
    _non_negative(where, "weight_decay", weight_decay)
    check_scalar(where, "dampening", dampening, low=0.0, high=1.0, fix="Use 0 (torch's default).")
    check_flag(where, "nesterov", nesterov)
    check_flag(where, "maximize", maximize)
    if nesterov and (_is_zero(momentum) or not _is_zero(dampening)):
        raise ValueError(
            f"{where}: nesterov=True needs momentum > 0 and dampening == 0, got "
            f"momentum={momentum!r}, dampening={dampening!r}. Set momentum (0.9 is usual) "
            "and dampening=0, or use nesterov=False."
        )
    # A velocity is kept even for momentum 0 (where v = g and torch keeps no
    # buffer) so that the state's structure does not depend on the value;
    # torch ignores dampening when momentum is 0, and so does this.
    if _is_zero(momentum):
        dampening = 0.0
    rule = [
        trace(momentum, dampening=dampening, nesterov=nesterov, dampen_first_step=False),
        scale_by_learning_rate(lr),
    ]
    return _assemble(rule, weight_decay=weight_decay, maximize=maximize)


def _adagrad_lr(count, *, lr, lr_decay):
    """torch's Adagrad step size ``lr / (1 + (t - 1) * lr_decay)``; ``count = t - 1``.

    ``lr`` may itself be a schedule (torch's LR scheduler setting the group's
    ``lr``): it is evaluated at the same ``count``.
    """
    t = jnp.asarray(count).astype(jnp.float32)
    rate = lr(count) if callable(lr) else lr
    return rate / (1 + t * lr_decay)


def adagrad(
    lr=0.01,
    lr_decay=0,
    weight_decay=0,
    initial_accumulator_value=0,
    eps=1e-10,
    *,
    maximize=False,
):
    """``torch.optim.Adagrad``.

    With ``g`` the gradient (negated if ``maximize``) plus ``weight_decay * w``,
    ``t`` the 1-based step and ``G`` starting at ``initial_accumulator_value``::

        G = G + g**2
        w = w - lr / (1 + (t - 1) * lr_decay) * g / (sqrt(G) + eps)

    Chain: ``scale_by_sum_of_squares(eps=eps, initial_accumulator_value=...)``
    then ``scale_by_learning_rate`` (with the decaying step size as a schedule
    when ``lr_decay`` is not 0).

    Args:
      lr, lr_decay, weight_decay, initial_accumulator_value: all >= 0. eps: > 0.
        ``lr`` may be a schedule; with ``lr_decay`` the two multiply.
      maximize: ascend instead of descend.

    Returns:
      A gradient transformation.
    """
    where = _where("adagrad")
    check_learning_rate(where, lr, "lr")
    for name, value in (
        ("lr_decay", lr_decay),
        ("weight_decay", weight_decay),
        ("initial_accumulator_value", initial_accumulator_value),
    ):
        _non_negative(where, name, value)
    _positive(where, "eps", eps)
    check_flag(where, "maximize", maximize)
    step_size = lr if _is_zero(lr_decay) else Bound(_adagrad_lr, lr=lr, lr_decay=lr_decay)
    rule = [
        scale_by_sum_of_squares(
            eps=eps, initial_accumulator_value=initial_accumulator_value, eps_inside_sqrt=False
        ),
        scale_by_learning_rate(step_size),
    ]
    return _assemble(rule, weight_decay=weight_decay, maximize=maximize)


def adadelta(lr=1.0, rho=0.9, eps=1e-06, weight_decay=0, *, maximize=False):
    """``torch.optim.Adadelta``.

    With ``g`` the gradient (negated if ``maximize``) plus ``weight_decay * w``::

        E[g**2]  = rho * E[g**2] + (1 - rho) * g**2
        dx       = sqrt(E[dx**2] + eps) / sqrt(E[g**2] + eps) * g
        E[dx**2] = rho * E[dx**2] + (1 - rho) * dx**2
        w        = w - lr * dx

    Chain: ``scale_by_adadelta(rho, eps=eps)`` then ``scale_by_learning_rate(lr)``.

    Args:
      lr: >= 0. rho: in [0, 1) (torch accepts 1). eps: > 0 (torch accepts 0).
      weight_decay: >= 0. maximize: ascend instead of descend.

    Returns:
      A gradient transformation.
    """
    where = _where("adadelta")
    check_learning_rate(where, lr, "lr")
    _below_one(where, "rho", rho)
    _positive(where, "eps", eps)
    _non_negative(where, "weight_decay", weight_decay)
    check_flag(where, "maximize", maximize)
    rule = [scale_by_adadelta(rho, eps=eps), scale_by_learning_rate(lr)]
    return _assemble(rule, weight_decay=weight_decay, maximize=maximize)


def rmsprop(
    lr=0.01,
    alpha=0.99,
    eps=1e-08,
    weight_decay=0,
    momentum=0,
    centered=False,
    maximize=False,
):
    """``torch.optim.RMSprop``.

    With ``g`` the gradient (negated if ``maximize``) plus ``weight_decay * w``::

        v   = alpha * v + (1 - alpha) * g**2
        gm  = alpha * gm + (1 - alpha) * g                   (centered only)
        a   = sqrt(v - gm**2) + eps  if centered  else  sqrt(v) + eps
        buf = momentum * buf + g / a;   w = w - lr * buf     (momentum > 0)
        w   = w - lr * g / a                                 (momentum == 0)

    eps is outside the square root and the learning rate outside the momentum
    buffer. Chain: ``scale_by_rms(alpha, eps=eps, centered=centered)``,
    ``trace(momentum)`` when momentum > 0, ``scale_by_learning_rate(lr)``.

    Args:
      lr, weight_decay: >= 0. alpha, momentum: in [0, 1) (torch accepts 1 and
        more). eps: > 0 (torch accepts 0).
      centered: divide by the estimated standard deviation instead of the RMS.
      maximize: ascend instead of descend.

    Returns:
      A gradient transformation.
    """
    where = _where("rmsprop")
    check_learning_rate(where, lr, "lr")
    _positive(where, "eps", eps)
    _below_one(where, "momentum", momentum)
    _non_negative(where, "weight_decay", weight_decay)
    _below_one(where, "alpha", alpha)
    check_flag(where, "centered", centered)
    check_flag(where, "maximize", maximize)
    rule = [
        scale_by_rms(alpha, eps=eps, eps_inside_sqrt=False, centered=centered),
        trace(momentum),  # kept for momentum 0 too (v = s), so the state's structure is fixed
        scale_by_learning_rate(lr),
    ]
    return _assemble(rule, weight_decay=weight_decay, maximize=maximize)


def _adam(where, lr, betas, eps, weight_decay, amsgrad, maximize, decoupled):
    check_learning_rate(where, lr, "lr")
    _positive(where, "eps", eps)
    b1, b2 = _check_betas(where, betas)
    _non_negative(where, "weight_decay", weight_decay)
    check_flag(where, "amsgrad", amsgrad)
    check_flag(where, "maximize", maximize)
    check_flag(where, "decoupled_weight_decay", decoupled)
    rule = [
        divide(
            chain(ema(b1), bias_correction(b1)),
            root_mean_square(b2, eps=eps, debias=True, amsgrad=amsgrad),
        ),
        *_decoupled(weight_decay, decoupled, lr),
        scale_by_learning_rate(lr),
    ]
    return _assemble(rule, weight_decay=weight_decay, maximize=maximize, coupled=not decoupled)


def adam(
    lr=0.001,
    betas=(0.9, 0.999),
    eps=1e-08,
    weight_decay=0,
    amsgrad=False,
    *,
    maximize=False,
    decoupled_weight_decay=False,
):
    """``torch.optim.Adam``.

    With ``g`` the gradient (negated if ``maximize``), plus ``weight_decay * w``
    unless ``decoupled_weight_decay``, ``(b1, b2) = betas`` and ``t`` the step::

        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g**2
        v_max = max(v_max, v)                          (amsgrad; used in place of v)
        w = w * (1 - lr * weight_decay)                (decoupled only)
        w = w - lr * (m / (1 - b1**t)) / (sqrt(v / (1 - b2**t)) + eps)

    eps is added after the bias correction of ``v`` (optax's convention; Keras
    adds it before). Chain: ``divide(chain(ema(b1), bias_correction(b1)),
    root_mean_square(b2, eps=eps, debias=True, amsgrad=amsgrad))``, the
    decoupled ``add_decayed_weights`` if any, ``scale_by_learning_rate(lr)``.

    Args:
      lr: >= 0. betas: each in [0, 1). eps: > 0. weight_decay: >= 0.
      amsgrad: use the running maximum of ``v``.
      maximize: ascend instead of descend.
      decoupled_weight_decay: AdamW's decay instead of L2 on the gradient.

    Returns:
      A gradient transformation.
    """
    return _adam(
        _where("adam"), lr, betas, eps, weight_decay, amsgrad, maximize, decoupled_weight_decay
    )


def adamw(
    lr=0.001,
    betas=(0.9, 0.999),
    eps=1e-08,
    weight_decay=0.01,
    amsgrad=False,
    *,
    maximize=False,
):
    """``torch.optim.AdamW``: :func:`adam` with ``decoupled_weight_decay=True``.

    ``w = w * (1 - lr * weight_decay)`` then Adam's step (see :func:`adam`); the
    decay is scaled by the learning rate but not by the adaptive denominator.

    Args:
      lr: >= 0. betas: each in [0, 1). eps: > 0. weight_decay: >= 0.
      amsgrad: use the running maximum of ``v``. maximize: ascend.

    Returns:
      A gradient transformation; its ``update`` needs ``params``.
    """
    return _adam(_where("adamw"), lr, betas, eps, weight_decay, amsgrad, maximize, True)


def adamax(lr=0.002, betas=(0.9, 0.999), eps=1e-08, weight_decay=0, *, maximize=False):
    """``torch.optim.Adamax``.

    With ``g`` the gradient (negated if ``maximize``) plus ``weight_decay * w``::

        m = b1 * m + (1 - b1) * g
        u = max(b2 * u, |g| + eps)          (eps inside the maximum)
        w = w - lr / (1 - b1**t) * m / u

    Chain: ``divide(chain(ema(b1), bias_correction(b1)), infinity_norm(b2,
    eps=eps, eps_inside_max=True)``, ``scale_by_learning_rate(lr)``.

    Args:
      lr: >= 0. betas: each in [0, 1). eps: > 0. weight_decay: >= 0.
      maximize: ascend instead of descend.

    Returns:
      A gradient transformation.
    """
    where = _where("adamax")
    check_learning_rate(where, lr, "lr")
    _positive(where, "eps", eps)
    b1, b2 = _check_betas(where, betas)
    _non_negative(where, "weight_decay", weight_decay)
    check_flag(where, "maximize", maximize)
    rule = [
        divide(
            chain(ema(b1), bias_correction(b1)), infinity_norm(b2, eps=eps, eps_inside_max=True)
        ),
        scale_by_learning_rate(lr),
    ]
    return _assemble(rule, weight_decay=weight_decay, maximize=maximize)


def nadam(
    lr=0.002,
    betas=(0.9, 0.999),
    eps=1e-08,
    weight_decay=0,
    momentum_decay=0.004,
    decoupled_weight_decay=False,
    *,
    maximize=False,
):
    """``torch.optim.NAdam``.

    With ``g`` the gradient (negated if ``maximize``), plus ``weight_decay * w``
    unless ``decoupled_weight_decay``, and
    ``mu_t = b1 * (1 - 0.5 * 0.96**(t * momentum_decay))``::

        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g**2
        n = mu_{t+1} * m / (1 - mu_1...mu_{t+1}) + (1 - mu_t) * g / (1 - mu_1...mu_t)
        w = w * (1 - lr * weight_decay)                (decoupled only)
        w = w - lr * n / (sqrt(v / (1 - b2**t)) + eps)

    Chain: ``divide(scale_by_nesterov_ema(b1, momentum_decay=momentum_decay),
    root_mean_square(b2, eps=eps, debias=True))``, the decoupled
    ``add_decayed_weights`` if any, ``scale_by_learning_rate(lr)``.

    Args:
      lr: >= 0. betas: each in [0, 1). eps: > 0.
      weight_decay, momentum_decay: >= 0.
      decoupled_weight_decay: AdamW-style decay instead of L2 on the gradient.
      maximize: ascend instead of descend.

    Returns:
      A gradient transformation.

    References:
      Dozat, Incorporating Nesterov Momentum into Adam, ICLR workshop, 2016.
    """
    where = _where("nadam")
    check_learning_rate(where, lr, "lr")
    _positive(where, "eps", eps)
    b1, b2 = _check_betas(where, betas)
    _non_negative(where, "weight_decay", weight_decay)
    _non_negative(where, "momentum_decay", momentum_decay)
    check_flag(where, "decoupled_weight_decay", decoupled_weight_decay)
    check_flag(where, "maximize", maximize)
    rule = [
        divide(
            scale_by_nesterov_ema(b1, momentum_decay=momentum_decay),
            root_mean_square(b2, eps=eps, debias=True),
        ),
        *_decoupled(weight_decay, decoupled_weight_decay, lr),
        scale_by_learning_rate(lr),
    ]
    return _assemble(
        rule, weight_decay=weight_decay, maximize=maximize, coupled=not decoupled_weight_decay
    )


# torch.optim steps a complex parameter as a pair of real numbers
# (torch.view_as_real), which this module does not reproduce: every optimizer
# here refuses complex parameters at init, naming itself (docs/complex.md).
_REAL_ONLY = (
    "torch.optim steps a complex parameter as pairs of real numbers "
    "(torch.view_as_real), which this module does not reproduce"
)


def _real_only(factory):
    """Make ``factory`` refuse complex parameters at init, naming itself."""

    @functools.wraps(factory)
    def build(*args, **kwargs):
        return real_only(factory(*args, **kwargs), name=_where(factory.__name__), reason=_REAL_ONLY)

    return build


for _name in __all__:
    if _name != "asgd_average":  # an accessor, not an optimizer
        globals()[_name] = _real_only(globals()[_name])
