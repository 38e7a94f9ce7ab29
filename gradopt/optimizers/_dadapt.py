"""Learning-rate-free Adam: D-Adaptation (Defazio & Mishchenko, 2023) and Prodigy
(Mishchenko & Defazio, 2023).

Both estimate ``D``, the distance from the initial point to the solution, from
the gradients seen so far, and take Adam steps of size ``D * learning_rate``
(``learning_rate`` stays near 1). The estimate enters every statistic (the
moments are of ``D * g``), so each rule is one transform rather than a chain of
independent stages; the weight decay and the learning rate are applied inside
it, scaled by ``D``.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradopt.core._base import GradientTransformation, transform, tree_map
from gradopt.core._checks import (
    check_decay,
    check_eps,
    check_flag,
    check_learning_rate,
    check_scalar,
    check_weight_decay,
)
from gradopt.core._numerics import as_compute, increment, one_minus_power, saturate, zero_count
from gradopt.transforms._real_only import real_only

_REAL_ONLY = (
    "its distance estimate d is built from real inner products <g, x0 - x> (a complex "
    "form with Re <g, x0 - x> is not implemented)"
)

PyTree = Any


def _check_betas(where, betas):
    if not (isinstance(betas, (tuple, list)) and len(betas) == 2):
        raise TypeError(f"{where}: betas must be a pair (beta1, beta2), got {betas!r}.")
    check_decay(where, "betas[0]", betas[0])
    check_decay(where, "betas[1]", betas[1])


def _bias_correction(b1, b2, count):
    t = count.astype(jnp.float32)
    return jnp.sqrt(one_minus_power(b2, t, t)) / one_minus_power(b1, t, t)


def _sqrt(b):
    """``sqrt(b)`` and ``1 - sqrt(b)``: in double precision for a Python number, where
    ``1 - sqrt(0.999)`` would otherwise lose four of float32's seven digits."""
    if isinstance(b, (int, float)):
        r = math.sqrt(b)
        return jnp.asarray(r, jnp.float32), jnp.asarray(1.0 - r, jnp.float32)
    r = jnp.sqrt(jnp.asarray(b, jnp.float32))
    return r, 1 - r


def _vdot(a, b):
    leaves = [jnp.sum(as_compute(x) * as_compute(y)) for x, y in zip(a, b, strict=True)]
    return sum(leaves, jnp.zeros([], jnp.float32)).astype(jnp.float32)


def _l1(a):
    return sum((jnp.sum(jnp.abs(as_compute(x))) for x in a), jnp.zeros([], jnp.float32)).astype(
        jnp.float32
    )


def _zeros(params):
    return jax.tree.map(lambda p: jnp.zeros_like(jnp.asarray(p)), params)


def _flat(tree, treedef):
    return treedef.flatten_up_to(tree)


def _store(x, like):
    return saturate(x, x.dtype).astype(jnp.result_type(like))


# ----------------------------------------------------------------------------
# Prodigy


class ProdigyState(NamedTuple):
    """State of :func:`prodigy`: Adam's moments of ``D g``, the weighted sum ``s``,
    the initial point ``x0``, the estimate ``D`` and the numerator ``r``."""

    exp_avg: PyTree
    exp_avg_sq: PyTree
    grad_sum: PyTree
    params0: PyTree
    estim_lr: jax.Array
    numerator_weighted: jax.Array
    count: jax.Array  # type: ignore[assignment]  # the field shadows tuple.count


def _prodigy_init(params, **hyper):
    estim_lr0 = hyper["estim_lr0"]
    p0 = jax.tree.map(lambda p: jnp.array(p, dtype=jnp.result_type(p)), params)
    z = _zeros(params)
    return ProdigyState(
        z, _zeros(params), _zeros(params), p0,
        jnp.asarray(estim_lr0, jnp.float32), jnp.zeros([], jnp.float32), zero_count(),
    )  # fmt: skip


def _prodigy_update(
    updates, state, params=None, *, learning_rate, betas, beta3, eps, estim_lr0,
    estim_lr_coef, weight_decay, safeguard_warmup, **extra,
):  # fmt: skip
    del extra
    if params is None:
        raise ValueError(
            "gradopt.prodigy needs the parameters: call update(updates, state, params)."
        )
    b1, b2 = betas
    b3 = _sqrt(b2)[0] if beta3 is None else jnp.asarray(beta3, jnp.float32)
    count = increment(state.count)
    lr = learning_rate(state.count) if callable(learning_rate) else learning_rate
    d = state.estim_lr
    d0 = jnp.asarray(estim_lr0, jnp.float32)
    dlr = d * jnp.asarray(lr, jnp.float32) * _bias_correction(b1, b2, count)
    treedef = jax.tree.structure(updates)
    g = [as_compute(x) for x in _flat(tree_map(lambda u: u, updates), treedef)]
    p = [as_compute(x) for x in _flat(params, treedef)]
    p0 = [as_compute(x) for x in _flat(state.params0, treedef)]
    ea, eas, s = (_flat(t, treedef) for t in (state.exp_avg, state.exp_avg_sq, state.grad_sum))
    numerator_acum = _vdot(g, [a - b for a, b in zip(p0, p, strict=True)])
    new_ea, new_eas, new_s, out = [], [], [], []
    scale_s = d / d0 if safeguard_warmup else dlr / d0
    for gi, eai, easi, si in zip(g, ea, eas, s, strict=True):
        c = gi.dtype
        dg = d.astype(c) * gi
        new_ea.append(b1 * as_compute(eai) + (1 - b1) * dg)
        new_eas.append(saturate(b2 * as_compute(easi) + (1 - b2) * saturate(dg * dg, c), c))
        new_s.append(b3.astype(c) * as_compute(si) + scale_s.astype(c) * dg)
    numerator = b3 * state.numerator_weighted + d / d0 * dlr * numerator_acum
    denominator = _l1(new_s)
    estimate = (
        jnp.asarray(estim_lr_coef, jnp.float32)
        * numerator
        / jnp.where(denominator > 0, denominator, 1)
    )
    new_d = jnp.where(denominator > 0, jnp.maximum(d, estimate), d)
    for gi, pi, m, v in zip(g, p, new_ea, new_eas, strict=True):
        c = gi.dtype
        step = m / (jnp.sqrt(v) + new_d.astype(c) * eps) + weight_decay * pi
        out.append(-dlr.astype(c) * step)
    u_leaves = _flat(updates, treedef)
    unflat = lambda xs, like: jax.tree.unflatten(  # noqa: E731
        treedef, [_store(x, y) for x, y in zip(xs, _flat(like, treedef), strict=True)]
    )
    new_state = ProdigyState(
        unflat(new_ea, state.exp_avg), unflat(new_eas, state.exp_avg_sq),
        unflat(new_s, state.grad_sum), state.params0, new_d, numerator, count,
    )  # fmt: skip
    return jax.tree.unflatten(
        treedef, [o.astype(jnp.result_type(u)) for o, u in zip(out, u_leaves, strict=True)]
    ), new_state


def prodigy(
    learning_rate=1.0,
    betas=(0.9, 0.999),
    beta3=None,
    eps=1e-8,
    estim_lr0=1e-6,
    estim_lr_coef=1.0,
    *,
    weight_decay=0.0,
    safeguard_warmup: bool = False,
) -> GradientTransformation:
    r"""Prodigy (Mishchenko & Defazio, 2023): Adam with a learned step size ``D``.

    With ``lr_t`` the learning-rate multiplier (about 1), ``beta3 =
    sqrt(beta2)`` by default, ``x0`` the initial parameters, ``d_0 =
    estim_lr0`` and ``d_lr = d_t * lr_t * sqrt(1 - beta2**t) / (1 - beta1**t)``::

        m = beta1 m + (1 - beta1) d_t g                 v = beta2 v + (1 - beta2) d_t**2 g**2
        r = beta3 r + (d_t / d_0) d_lr <g, x0 - x>      s = beta3 s + (d_lr / d_0) d_t g
        d_{t+1} = max(d_t, estim_lr_coef * r / |s|_1)
        x = x - d_lr * (m / (sqrt(v) + d_{t+1} eps) + weight_decay * x)

    ``safeguard_warmup`` uses ``d_t / d_0`` in place of ``d_lr / d_0`` in ``s``.

    Args:
      learning_rate: the multiplier ``lr_t`` >= 0 (1.0), a number or a schedule.
      betas: ``(beta1, beta2)``, each in [0, 1).
      beta3: the decay of ``r`` and ``s`` in [0, 1), or None for ``sqrt(beta2)``.
      eps: > 0, scaled by ``d``.
      estim_lr0: the initial estimate ``d_0`` > 0 (1e-6).
      estim_lr_coef: multiplies the estimate, >= 0 (1.0).
      weight_decay: >= 0, decoupled, scaled by ``d_lr``. Keyword only (as every
        gradopt weight decay).
      safeguard_warmup: see above. Keyword only.

    Returns:
      A gradient transformation with state :class:`ProdigyState`; ``update``
      needs ``params``.

    Example:
      >>> import jax.numpy as jnp, gradopt
      >>> opt = gradopt.prodigy()
      >>> w = {"w": jnp.array([1.0, -1.0])}
      >>> state = opt.init(w)
      >>> u, state = opt.update({"w": jnp.array([1.0, -1.0])}, state, w)
      >>> bool(jnp.allclose(u["w"], jnp.array([-1e-6, 1e-6])))  # -d_0 * sign(g): d starts tiny
      True

    Note:
      How PyTorch, Keras and optax differ. optax.contrib.prodigy has these names and
      defaults and takes ``safeguard_warmup`` positionally; its trajectories agree with
      gradopt's to 1e-3, not 1e-5, because optax computes ``1 - beta2**t`` in float32
      (losing up to four digits for ``beta2 = 0.999``) and ``d`` carries that error on, so
      the tests hold gradopt to a NumPy float64 transcription of the rule (to 1e-5). optax
      transcribes the authors' PyTorch ``prodigyopt.Prodigy`` (not part of torch.optim),
      which also has ``decouple`` and ``use_bias_correction`` switches (here: decoupled,
      with the bias correction). gradopt keeps ``d`` when every gradient so far was zero
      (``|s|_1 = 0``), where optax divides 0 by 0. Keras has no Prodigy.

    References:
      Mishchenko & Defazio, Prodigy: An expeditiously adaptive parameter-free
      learner, ICML 2024, arXiv:2306.06101.
    """
    where = "gradopt.prodigy"
    check_learning_rate(where, learning_rate)
    _check_betas(where, betas)
    if beta3 is not None:
        check_decay(where, "beta3", beta3)
    check_eps(where, eps)
    check_scalar(where, "estim_lr0", estim_lr0, low=0.0, low_open=True, fix="Use 1e-6.")
    check_scalar(where, "estim_lr_coef", estim_lr_coef, low=0.0, fix="Use 1.0.")
    check_weight_decay(where, weight_decay)
    check_flag(where, "safeguard_warmup", safeguard_warmup)
    tx = transform(
        _prodigy_init, _prodigy_update, learning_rate=learning_rate, betas=tuple(betas),
        beta3=beta3, eps=eps, estim_lr0=estim_lr0, estim_lr_coef=estim_lr_coef,
        weight_decay=weight_decay, safeguard_warmup=safeguard_warmup,
    )  # fmt: skip
    return real_only(tx, name=where, reason=_REAL_ONLY)


# ----------------------------------------------------------------------------
# D-Adaptation (Adam form)


class DAdaptAdamWState(NamedTuple):
    """State of :func:`dadapt_adamw`: Adam's moments (the first of ``d g``), the
    weighted sum ``s``, the estimate ``d`` and the numerator ``r``."""

    exp_avg: PyTree
    exp_avg_sq: PyTree
    grad_sum: PyTree
    estim_lr: jax.Array
    numerator_weighted: jax.Array
    count: jax.Array  # type: ignore[assignment]  # the field shadows tuple.count


def _dadapt_init(params, **hyper):
    return DAdaptAdamWState(
        _zeros(params), _zeros(params), _zeros(params),
        jnp.asarray(hyper["estim_lr0"], jnp.float32), jnp.zeros([], jnp.float32), zero_count(),
    )  # fmt: skip


def _dadapt_update(
    updates, state, params=None, *, learning_rate, betas, eps, estim_lr0, weight_decay, **extra
):
    del extra, estim_lr0
    if params is None:
        raise ValueError(
            "gradopt.dadapt_adamw needs the parameters: call update(updates, state, params)."
        )
    b1, b2 = betas
    sb2, one_minus_sb2 = _sqrt(b2)
    count = increment(state.count)
    lr = learning_rate(state.count) if callable(learning_rate) else learning_rate
    dlr = state.estim_lr * jnp.asarray(lr, jnp.float32) * _bias_correction(b1, b2, count)
    treedef = jax.tree.structure(updates)
    g = [as_compute(x) for x in _flat(tree_map(lambda u: u, updates), treedef)]
    p = [as_compute(x) for x in _flat(params, treedef)]
    ea, eas, s = (_flat(t, treedef) for t in (state.exp_avg, state.exp_avg_sq, state.grad_sum))
    weighted = [
        as_compute(si) / (jnp.sqrt(as_compute(v)) + eps) for si, v in zip(s, eas, strict=True)
    ]
    numerator_acum = _vdot(g, weighted)
    new_ea, new_eas, new_s = [], [], []
    for gi, eai, easi, si in zip(g, ea, eas, s, strict=True):
        c = gi.dtype
        new_ea.append(b1 * as_compute(eai) + (1 - b1) * dlr.astype(c) * gi)
        new_eas.append(saturate(b2 * as_compute(easi) + (1 - b2) * saturate(gi * gi, c), c))
        new_s.append(sb2.astype(c) * as_compute(si) + one_minus_sb2.astype(c) * dlr.astype(c) * gi)
    l1 = _l1(new_s)
    numerator = sb2 * state.numerator_weighted + one_minus_sb2 * dlr * numerator_acum
    estimate = numerator / jnp.where(l1 > 0, one_minus_sb2 * l1, 1)
    new_d = jnp.where(l1 > 0, jnp.maximum(state.estim_lr, estimate), state.estim_lr)
    out = [
        -weight_decay * dlr.astype(gi.dtype) * pi - m / (jnp.sqrt(v) + eps)
        for gi, pi, m, v in zip(g, p, new_ea, new_eas, strict=True)
    ]
    u_leaves = _flat(updates, treedef)
    unflat = lambda xs, like: jax.tree.unflatten(  # noqa: E731
        treedef, [_store(x, y) for x, y in zip(xs, _flat(like, treedef), strict=True)]
    )
    new_state = DAdaptAdamWState(
        unflat(new_ea, state.exp_avg), unflat(new_eas, state.exp_avg_sq),
        unflat(new_s, state.grad_sum), new_d, numerator, count,
    )  # fmt: skip
    return jax.tree.unflatten(
        treedef, [o.astype(jnp.result_type(u)) for o, u in zip(out, u_leaves, strict=True)]
    ), new_state


def dadapt_adamw(
    learning_rate=1.0, betas=(0.9, 0.999), eps=1e-8, estim_lr0=1e-6, *, weight_decay=0.0
) -> GradientTransformation:
    r"""D-Adaptation for AdamW (Defazio & Mishchenko, 2023).

    With ``d_lr = d_t * lr_t * sqrt(1 - beta2**t) / (1 - beta1**t)`` and
    ``b = sqrt(beta2)``::

        r = b r + (1 - b) d_lr <g, s / (sqrt(v) + eps)>       # s, v before this step
        m = beta1 m + (1 - beta1) d_lr g                       v = beta2 v + (1 - beta2) g**2
        s = b s + (1 - b) d_lr g
        d_{t+1} = max(d_t, r / ((1 - b) |s|_1))
        x = x - m / (sqrt(v) + eps) - weight_decay * d_lr * x

    Args:
      learning_rate: the multiplier ``lr_t`` >= 0 (1.0), a number or a schedule.
      betas: ``(beta1, beta2)``, each in [0, 1).
      eps: > 0.
      estim_lr0: the initial estimate ``d_0`` > 0 (1e-6).
      weight_decay: >= 0, decoupled, scaled by ``d_lr``. Keyword only.

    Returns:
      A gradient transformation with state :class:`DAdaptAdamWState`; ``update``
      needs ``params``.

    Note:
      How PyTorch, Keras and optax differ. optax.contrib.dadapt_adamw has these names and
      defaults, and agrees to 1e-3 (float32 ``1 - beta2**t`` and ``1 - sqrt(beta2)`` in
      optax, as for :func:`prodigy`; the tests hold gradopt to a NumPy transcription to
      1e-5); it transcribes the authors' PyTorch ``dadaptation.DAdaptAdam`` (not part of
      torch.optim), whose ``decouple=True`` this is. gradopt keeps ``d`` while ``|s|_1 = 0``
      (all gradients zero), where optax divides 0 by 0. Keras has no D-Adaptation.

    References:
      Defazio & Mishchenko, Learning-rate-free learning by D-Adaptation, ICML
      2023, arXiv:2301.07733.
    """
    where = "gradopt.dadapt_adamw"
    check_learning_rate(where, learning_rate)
    _check_betas(where, betas)
    check_eps(where, eps)
    check_scalar(where, "estim_lr0", estim_lr0, low=0.0, low_open=True, fix="Use 1e-6.")
    check_weight_decay(where, weight_decay)
    tx = transform(
        _dadapt_init, _dadapt_update, learning_rate=learning_rate, betas=tuple(betas), eps=eps,
        estim_lr0=estim_lr0, weight_decay=weight_decay,
    )  # fmt: skip
    return real_only(tx, name=where, reason=_REAL_ONLY)
