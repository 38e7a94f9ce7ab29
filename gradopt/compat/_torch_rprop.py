"""``torch.optim.Rprop``: a step size per coordinate, grown or shrunk by the gradient's sign."""

from __future__ import annotations

from gradopt.compat._torch_common import _assemble, _where
from gradopt.core._checks import check_flag, check_learning_rate, check_scalar, concrete_value
from gradopt.transforms._rprop import scale_by_rprop
from gradopt.transforms._scale import scale


def _pair(where, name, value) -> tuple:
    if not (isinstance(value, (tuple, list)) and len(value) == 2):
        raise TypeError(f"{where}: {name} must be a pair of numbers, got {value!r}.")
    return tuple(value)


def rprop(lr=0.01, etas=(0.5, 1.2), step_sizes=(1e-06, 50), *, maximize=False):
    """``torch.optim.Rprop`` (resilient backpropagation, the iRprop- variant).

    With ``g`` the gradient (negated if ``maximize``), ``(eta_minus, eta_plus) =
    etas``, ``(s_min, s_max) = step_sizes`` and every step size ``s`` starting
    at ``lr``::

        c = sign(g * g_prev)
        s = clip(s * (eta_plus if c > 0 else eta_minus if c < 0 else 1), s_min, s_max)
        g = 0                             where c < 0
        w = w - sign(g) * s
        g_prev = g

    Chain: ``scale_by_rprop(lr, eta_minus=..., eta_plus=..., min_step_size=...,
    max_step_size=...)`` then ``scale(-1)``. ``lr`` only sets the initial step
    sizes, as in torch (a torch scheduler changing ``lr`` later has no effect).

    Args:
      lr: the initial step size, >= 0 (a number, not a schedule).
      etas: ``(eta_minus, eta_plus)`` with ``0 < eta_minus < 1 < eta_plus``.
      step_sizes: ``(s_min, s_max)``, the bounds of the step sizes, with
        ``0 <= s_min <= s_max``.
      maximize: ascend instead of descend.

    Returns:
      A gradient transformation with state ``(prev, step_size)`` per leaf.

    Example:
      >>> import jax.numpy as jnp
      >>> from gradopt.compat import torch as torch_compat
      >>> opt = torch_compat.rprop(lr=0.1)
      >>> params = {"w": jnp.array([1.0, -2.0])}
      >>> updates, _ = opt.update({"w": jnp.array([3.0, 0.0])}, opt.init(params), params)
      >>> [round(float(x) + 0.0, 6) for x in updates["w"]]  # only the sign counts: -lr * sign(g)
      [-0.1, 0.0]

    Note:
      Riedmiller and Braun's original Rprop also undoes the previous step
      after a sign change (backtracking); torch (and this function) skip the
      step instead, which is Igel and Hüsken's iRprop-. optax has no Rprop;
      Keras neither.

    References:
      Riedmiller and Braun, A Direct Adaptive Method for Faster Backpropagation
      Learning: The RPROP Algorithm, ICNN 1993. Igel and Hüsken, Improving the
      Rprop Learning Algorithm, 2000.
    """
    where = _where("rprop")
    if callable(lr):
        raise TypeError(
            f"{where}: lr must be a number (it only sets the initial step sizes, as in "
            f"torch), got the callable {lr!r}."
        )
    check_learning_rate(where, lr, "lr")
    etaminus, etaplus = _pair(where, "etas", etas)
    check_scalar(
        where,
        "etas[0]",
        etaminus,
        low=0.0,
        high=1.0,
        low_open=True,
        high_open=True,
        fix="torch.optim requires 0 < etas[0] < 1 < etas[1]; (0.5, 1.2) is usual.",
    )
    check_scalar(
        where,
        "etas[1]",
        etaplus,
        low=1.0,
        low_open=True,
        fix="torch.optim requires 0 < etas[0] < 1 < etas[1]; (0.5, 1.2) is usual.",
    )
    low, high = _pair(where, "step_sizes", step_sizes)
    check_scalar(where, "step_sizes[0]", low, low=0.0, fix="The smallest step size is >= 0.")
    check_scalar(where, "step_sizes[1]", high, low=0.0, fix="The largest step size is >= 0.")
    lo, hi = concrete_value(low), concrete_value(high)
    if lo is not None and hi is not None and lo > hi:
        raise ValueError(
            f"{where}: step_sizes must be (min, max) with min <= max, got {step_sizes!r}."
        )
    check_flag(where, "maximize", maximize)
    rule = [
        scale_by_rprop(
            lr, eta_minus=etaminus, eta_plus=etaplus, min_step_size=low, max_step_size=high
        ),
        scale(-1.0),
    ]
    return _assemble(rule, weight_decay=0, maximize=maximize, coupled=False)
