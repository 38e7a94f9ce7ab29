"""The Adam family: adam, adamw, amsgrad, adamax, nadam.

Each is a :func:`gradopt.chain` of weight decay, a quotient of two statistics
of the same gradient, and the learning rate. ``adam`` reads::

    chain(add_decayed_weights(weight_decay),
          divide(chain(ema(b1), bias_correction(b1)),            # m_hat
                 root_mean_square(b2, eps=eps, debias=True)),    # sqrt(v_hat) + eps
          scale_by_learning_rate(learning_rate))

The chain fuses these elementwise stages into one expression per leaf.
"""

from __future__ import annotations

from gradopt.core._base import GradientTransformation
from gradopt.core._chain import chain, divide
from gradopt.core._checks import (
    check_decay,
    check_dtype,
    check_eps,
    check_flag,
    check_learning_rate,
    check_weight_decay,
)
from gradopt.transforms._adaptive import infinity_norm, root_mean_square
from gradopt.transforms._moments import bias_correction, ema, scale_by_nesterov_ema
from gradopt.transforms._scale import scale_by_learning_rate
from gradopt.transforms._weight_decay import add_decayed_weights, with_l2


def _check_common(where, learning_rate, b1, b2, eps, weight_decay=0.0):
    check_learning_rate(where, learning_rate)
    check_decay(where, "b1", b1)
    check_decay(where, "b2", b2)
    check_eps(where, eps)
    check_weight_decay(where, weight_decay)


def _adam_core(b1, b2, eps, mu_dtype, nu_dtype, amsgrad=False):
    """``m_hat / (sqrt(v_hat) + eps)``, both statistics of the same gradient."""
    return divide(
        chain(ema(b1, dtype=mu_dtype), bias_correction(b1)),
        root_mean_square(b2, eps=eps, debias=True, amsgrad=amsgrad, dtype=nu_dtype),
    )


def _adam_with_l2(where, learning_rate, b1, b2, eps, weight_decay, mu_dtype, nu_dtype, amsgrad):
    """Validate, then ``chain(add_decayed_weights(wd), adam core, learning rate)``."""
    _check_common(where, learning_rate, b1, b2, eps, weight_decay)
    check_dtype(where, mu_dtype, "mu_dtype")
    check_dtype(where, nu_dtype, "nu_dtype")
    return with_l2(
        weight_decay,
        _adam_core(b1, b2, eps, mu_dtype, nu_dtype, amsgrad=amsgrad),
        scale_by_learning_rate(learning_rate),
    )


def adam(
    learning_rate=1e-3,
    b1=0.9,
    b2=0.999,
    eps=1e-8,
    *,
    weight_decay=0.0,
    mu_dtype=None,
    nu_dtype=None,
) -> GradientTransformation:
    r"""Adam (Kingma & Ba, 2015).

    With ``g = grad + weight_decay * w`` (coupled L2, off by default) and
    ``t`` the 1-based step::

        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g**2
        m_hat = m / (1 - b1**t)
        v_hat = v / (1 - b2**t)
        w = w - learning_rate * m_hat / (sqrt(v_hat) + eps)

    Args:
      learning_rate: a non-negative number, a scalar array or a schedule.
      b1, b2: decay rates of the moments, in [0, 1).
      eps: > 0, outside the square root.
      weight_decay: coupled L2 coefficient (for decoupled decay use :func:`adamw`).
      mu_dtype, nu_dtype: storage dtypes of ``m`` and ``v`` (None: each
        parameter's dtype); the arithmetic is in float32 or wider.

    Returns:
      ``chain(add_decayed_weights(weight_decay), divide(chain(ema(b1),
      bias_correction(b1)), root_mean_square(b2, eps=eps, debias=True)),
      scale_by_learning_rate(learning_rate))``.

    Example:
      >>> import jax.numpy as jnp
      >>> import gradopt
      >>> opt = gradopt.adam(1e-3)
      >>> params = {"w": jnp.array([1.0, -2.0])}
      >>> state = opt.init(params)
      >>> updates, state = opt.update({"w": jnp.array([0.5, -3.0])}, state)
      >>> updates["w"]  # the first step is -learning_rate * sign(g)
      Array([-0.001,  0.001], dtype=float32)

    Note:
      How PyTorch, Keras and optax differ. PyTorch and optax use these
      defaults and this eps placement. Keras uses epsilon 1e-7 and adds it to
      ``sqrt(v)`` before the bias correction of ``v`` (the "eps hat" of the
      paper's section 2), which is ``eps = epsilon / sqrt(1 - b2**t)`` in the
      rule above.

    References:
      Kingma & Ba, Adam: A method for stochastic optimization, ICLR 2015,
      arXiv:1412.6980.
    """
    return _adam_with_l2(
        "gradopt.adam", learning_rate, b1, b2, eps, weight_decay, mu_dtype, nu_dtype, False
    )


def adamw(
    learning_rate=1e-3,
    b1=0.9,
    b2=0.999,
    eps=1e-8,
    *,
    weight_decay=1e-2,
    mask=None,
    mu_dtype=None,
    nu_dtype=None,
) -> GradientTransformation:
    r"""AdamW: Adam with decoupled weight decay (Loshchilov & Hutter, 2019).

    With ``m_hat``, ``v_hat`` as in :func:`adam` (built from the raw gradient)::

        w = w - learning_rate * (m_hat / (sqrt(v_hat) + eps) + weight_decay * w)

    The paper writes ``w = w - eta_t * (alpha * m_hat / (sqrt(v_hat) + eps) +
    lambda * w)`` with a schedule multiplier ``eta_t``. Here, as in PyTorch,
    Keras and optax, the decay is multiplied by the learning rate itself: with
    ``learning_rate = alpha * eta_t`` the two agree for ``lambda = alpha *
    weight_decay``, and the decay follows any learning-rate schedule as the
    paper's does.

    Args:
      learning_rate: a non-negative number, a scalar array or a schedule.
      b1, b2: decay rates of the moments, in [0, 1).
      eps: > 0.
      weight_decay: decoupled decay coefficient, >= 0 (PyTorch's default 1e-2).
        Keyword only, as in every gradopt optimizer.
      mask: which parameters to decay (see :func:`gradopt.add_decayed_weights`).
      mu_dtype, nu_dtype: storage dtypes of the moments.

    Returns:
      ``chain(divide(chain(ema(b1), bias_correction(b1)), root_mean_square(b2,
      eps=eps, debias=True)), add_decayed_weights(weight_decay),
      scale_by_learning_rate(...))``.

    Note:
      How PyTorch, Keras and optax differ: all three place the decay as here;
      the default weight decay is 1e-2 in PyTorch, 0.004 in Keras and 1e-4 in
      optax; Keras' epsilon is 1e-7 (see :func:`adam`).

    References:
      Loshchilov & Hutter, Decoupled weight decay regularization, ICLR 2019,
      arXiv:1711.05101.
    """
    where = "gradopt.adamw"
    _check_common(where, learning_rate, b1, b2, eps, weight_decay)
    check_dtype(where, mu_dtype, "mu_dtype")
    check_dtype(where, nu_dtype, "nu_dtype")
    return chain(
        _adam_core(b1, b2, eps, mu_dtype, nu_dtype),
        add_decayed_weights(weight_decay, mask=mask),
        scale_by_learning_rate(learning_rate),
    )


def amsgrad(
    learning_rate=1e-3,
    b1=0.9,
    b2=0.999,
    eps=1e-8,
    *,
    weight_decay=0.0,
    mu_dtype=None,
    nu_dtype=None,
) -> GradientTransformation:
    r"""AMSGrad (Reddi, Kale & Kumar, 2018): Adam with a non-decreasing second moment.

    With ``m``, ``v`` as in :func:`adam`::

        v_max = max(v_max, v)
        w = w - learning_rate * (m / (1 - b1**t)) / (sqrt(v_max / (1 - b2**t)) + eps)

    Args:
      learning_rate: a non-negative number, a scalar array or a schedule.
      b1, b2: decay rates of the moments, in [0, 1).
      eps: > 0.
      weight_decay: coupled L2 coefficient, >= 0.
      mu_dtype, nu_dtype: storage dtypes of the moments.

    Returns:
      :func:`adam`'s chain with ``root_mean_square(b2, eps=eps, debias=True,
      amsgrad=True)``.

    Note:
      The paper's algorithm has no bias correction; this one keeps Adam's, as
      PyTorch (``Adam(amsgrad=True)``) and Keras (``amsgrad=True``) do, taking
      the maximum of the raw ``v`` and debiasing it. optax.amsgrad takes the
      maximum of the debiased ``v`` instead.

    References:
      Reddi, Kale & Kumar, On the convergence of Adam and beyond, ICLR 2018,
      arXiv:1904.09237.
    """
    return _adam_with_l2(
        "gradopt.amsgrad", learning_rate, b1, b2, eps, weight_decay, mu_dtype, nu_dtype, True
    )


def adamax(
    learning_rate=2e-3,
    b1=0.9,
    b2=0.999,
    eps=1e-8,
    *,
    eps_inside_max: bool = False,
    weight_decay=0.0,
    mu_dtype=None,
) -> GradientTransformation:
    r"""AdaMax (Kingma & Ba, 2015, section 7.1): Adam with the infinity norm.

    With ``m`` as in :func:`adam`::

        u = max(b2 * u, |g|)
        w = w - learning_rate * (m / (1 - b1**t)) / (u + eps)

    Args:
      learning_rate: a non-negative number, a scalar array or a schedule
        (2e-3, the paper's default).
      b1, b2: decay rates, in [0, 1).
      eps: > 0. The paper has none (``u`` is only zero where every gradient
        so far was zero); it is added so that such coordinates stay finite.
      eps_inside_max: ``u = max(b2 * u, |g| + eps)`` and divide by ``u``, as
        PyTorch does.
      weight_decay: coupled L2 coefficient, >= 0.
      mu_dtype: storage dtype of ``m`` (None: each parameter's dtype), as in
        :func:`adam`; ``u`` is kept in the parameter's dtype.

    Returns:
      ``chain(add_decayed_weights(weight_decay), divide(chain(ema(b1),
      bias_correction(b1)), infinity_norm(b2, eps=eps)),
      scale_by_learning_rate(learning_rate))``.

    Note:
      How PyTorch, Keras and optax differ. PyTorch: learning rate 2e-3, eps
      1e-8 inside the maximum. Keras: learning rate 1e-3, epsilon 1e-7 added
      to ``u``, as here. optax: eps 1e-8 inside the maximum, like PyTorch
      (``optax.tree_utils`` ``tree_update_infinity_moment``).

    References:
      Kingma & Ba, Adam: A method for stochastic optimization, ICLR 2015,
      arXiv:1412.6980.
    """
    where = "gradopt.adamax"
    _check_common(where, learning_rate, b1, b2, eps, weight_decay)
    check_flag(where, "eps_inside_max", eps_inside_max)
    check_dtype(where, mu_dtype, "mu_dtype")
    return with_l2(
        weight_decay,
        divide(
            chain(ema(b1, dtype=mu_dtype), bias_correction(b1)),
            infinity_norm(b2, eps=eps, eps_inside_max=eps_inside_max),
        ),
        scale_by_learning_rate(learning_rate),
    )


def nadam(
    learning_rate=2e-3,
    b1=0.9,
    b2=0.999,
    eps=1e-8,
    *,
    momentum_decay=0.004,
    weight_decay=0.0,
    mu_dtype=None,
    nu_dtype=None,
) -> GradientTransformation:
    r"""Nadam: Adam with Nesterov momentum (Dozat, 2016).

    With the momentum schedule ``mu_t = b1 * (1 - 0.5 * 0.96**(t * momentum_decay))``
    and ``v_hat`` as in :func:`adam`::

        m = b1 * m + (1 - b1) * g
        m_bar = mu_{t+1} * m / (1 - prod_{i<=t+1} mu_i)
                + (1 - mu_t) * g / (1 - prod_{i<=t} mu_i)
        w = w - learning_rate * m_bar / (sqrt(v_hat) + eps)

    Args:
      learning_rate: a non-negative number, a scalar array or a schedule (2e-3).
      b1, b2: decay rates, in [0, 1).
      eps: > 0.
      momentum_decay: the schedule's rate (0.004, i.e. ``0.96**(t/250)`` as in
        the paper), or None for the constant ``mu_t = b1``.
      weight_decay: coupled L2 coefficient, >= 0.
      mu_dtype, nu_dtype: storage dtypes of the moments.

    Returns:
      ``chain(add_decayed_weights(weight_decay), divide(scale_by_nesterov_ema(b1,
      momentum_decay=momentum_decay), root_mean_square(b2, eps=eps, debias=True)),
      scale_by_learning_rate(learning_rate))``.

    Note:
      How PyTorch, Keras and optax differ. PyTorch (learning rate 2e-3,
      ``momentum_decay=4e-3``) and Keras (learning rate 1e-3, epsilon 1e-7)
      use this scheduled form, Keras with ``0.96**t`` in place of
      ``0.96**(t * 0.004)`` (``momentum_decay=1.0`` here). optax.nadam uses
      the constant ``mu_t = b1`` (``momentum_decay=None`` here).

    References:
      Dozat, Incorporating Nesterov momentum into Adam, ICLR 2016 workshop.
    """
    where = "gradopt.nadam"
    _check_common(where, learning_rate, b1, b2, eps, weight_decay)
    check_dtype(where, mu_dtype, "mu_dtype")
    check_dtype(where, nu_dtype, "nu_dtype")
    return with_l2(
        weight_decay,
        divide(
            scale_by_nesterov_ema(b1, momentum_decay=momentum_decay, dtype=mu_dtype),
            root_mean_square(b2, eps=eps, debias=True, dtype=nu_dtype),
        ),
        scale_by_learning_rate(learning_rate),
    )
