"""``torch.optim.ASGD``: SGD with a decaying step size and a running average of the iterates."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradopt.compat._torch_common import _assemble, _non_negative, _where
from gradopt.core._checks import check_flag, check_learning_rate
from gradopt.core._elementwise import Elementwise, elementwise
from gradopt.core._numerics import cast, increment, scalar_dtype, state_zeros, zero_count


class TorchAsgdState(NamedTuple):
    """State of :func:`asgd`'s rule.

    Attributes:
      ax: the running average of the parameters (torch's ``state["ax"]``);
        read it with :func:`asgd_average`.
      count: the number of steps taken.
    """

    ax: Any
    count: jax.Array  # type: ignore[assignment]  # the field shadows tuple.count


def _asgd_init(params, *, lr, lambd, alpha, t0):
    del lr, lambd, alpha, t0
    return TorchAsgdState(ax=state_zeros(params, None), count=zero_count())


def _asgd_step(state, *, lr, lambd, alpha, t0):
    """``eta`` and ``mu`` of step ``t = count + 1``, computed as torch does after step ``t - 1``."""
    dtype = scalar_dtype()
    k = state.count.astype(dtype)  # = t - 1
    if callable(lr):  # torch reads the group's lr one step late (before the scheduler steps)
        rate = jnp.asarray(lr(jnp.maximum(state.count - 1, 0))).astype(dtype)
    else:
        rate = jnp.asarray(lr, dtype)
    eta = rate / (1 + lambd * rate * k) ** alpha
    mu = 1 / jnp.maximum(1.0, k - t0)
    return (eta, mu), {"count": increment(state.count)}


def _asgd_leaf(x, fields, ctx, p, *, lr, lambd, alpha, t0):
    del lr, alpha, t0
    eta, mu = (cast(v, x) for v in ctx)
    w = jnp.asarray(p).astype(x.dtype)
    new = w * (1 - cast(lambd, x) * eta) - eta * x
    ax = fields["ax"]
    ax = jnp.where(mu == 1, new, ax + (new - ax) * mu)
    return new - w, {"ax": ax}


_ASGD = Elementwise(
    "gradopt.compat.torch.asgd's rule",
    _asgd_init,
    _asgd_step,
    _asgd_leaf,
    ("ax",),
    needs_params=lambda **hyper: True,
)


def asgd(
    lr=0.01,
    lambd=0.0001,
    alpha=0.75,
    t0=1000000.0,
    weight_decay=0,
    maximize=False,
):
    """``torch.optim.ASGD``: averaged stochastic gradient descent.

    With ``g`` the gradient (negated if ``maximize``) plus ``weight_decay * w``
    and ``t`` the 1-based step::

        eta_t = lr / (1 + lambd * lr * (t - 1)) ** alpha
        mu_t  = 1 / max(1, t - 1 - t0)
        w     = w * (1 - lambd * eta_t) - eta_t * g
        ax    = w  if mu_t == 1  else  ax + mu_t * (w - ax)

    The parameters follow SGD with the decaying step ``eta_t`` (and a decay
    ``lambd``); ``ax``, the average of the iterates from step ``t0 + 1`` on
    (before that it is the last iterate), is the estimate Polyak and Juditsky
    average. Read it with :func:`asgd_average`. One elementwise stage after the
    coupled weight decay; its ``update`` needs ``params``.

    Args:
      lr: >= 0, or a schedule (read one step late, as torch reads a
        scheduler's rate when it computes the next ``eta``).
      lambd: the decay term, >= 0.
      alpha: the power of the step-size decay, >= 0.
      t0: the step after which averaging starts, >= 0.
      weight_decay: coupled L2 coefficient, >= 0.
      maximize: ascend instead of descend.

    Returns:
      A gradient transformation with state ``(ax, count)``; ``update`` needs ``params``.

    Example:
      >>> import jax.numpy as jnp
      >>> from gradopt.compat import torch as torch_compat
      >>> opt = torch_compat.asgd(lr=0.1, t0=0.0)
      >>> params = {"w": jnp.array([1.0, -2.0])}
      >>> state = opt.init(params)
      >>> updates, state = opt.update({"w": jnp.array([1.0, 1.0])}, state, params)
      >>> [round(float(x), 5) for x in torch_compat.asgd_average(state)["w"]]  # the first iterate
      [0.89999, -2.09998]

    Note:
      torch keeps ``eta`` and ``mu`` as float32 tensors computed in double;
      here they are computed in float32 (64-bit mode: float64). optax and Keras
      have no ASGD; gradopt's averaged-parameters wrapper keeps the same kind
      of average around any optimizer.

    References:
      Polyak and Juditsky, Acceleration of Stochastic Approximation by
      Averaging, SIAM J. Control Optim., 1992. Bottou, Stochastic Gradient
      Descent Tricks, 2012.
    """
    where = _where("asgd")
    check_learning_rate(where, lr, "lr")
    for name, value in (("lambd", lambd), ("alpha", alpha), ("t0", t0)):
        _non_negative(where, name, value)
    _non_negative(where, "weight_decay", weight_decay)
    check_flag(where, "maximize", maximize)
    rule = [elementwise(_ASGD, lr=lr, lambd=lambd, alpha=alpha, t0=t0)]
    return _assemble(rule, weight_decay=weight_decay, maximize=maximize)


def asgd_average(state):
    """The running average ``ax`` of the parameters, from the state of :func:`asgd`.

    Args:
      state: the state returned by ``asgd(...).init`` or ``.update`` (alone or
        nested in a larger chain with a single ASGD).

    Returns:
      The tree of averaged parameters (torch's ``optimizer.state[p]["ax"]``).

    Raises:
      ValueError: if the state holds no ASGD state, or several.
    """
    found = []

    def visit(node):
        if isinstance(node, TorchAsgdState):
            found.append(node.ax)
        elif isinstance(node, (tuple, list)):
            for child in node:
                visit(child)
        elif isinstance(node, dict):
            for child in node.values():
                visit(child)

    visit(state)
    if len(found) != 1:
        raise ValueError(
            "gradopt.compat.torch.asgd_average: expected the state of one "
            f"gradopt.compat.torch.asgd optimizer, found {len(found)} ASGD states. Pass the "
            "state returned by asgd(...).init or .update."
        )
    return found[0]
