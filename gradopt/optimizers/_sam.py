"""Sharpness-aware minimisation (Foret, Kleiner, Mobahi & Neyshabur, 2021)."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradopt.core._base import GradientTransformation, call_update, transform, tree_map
from gradopt.core._chain import chain
from gradopt.core._checks import check_flag
from gradopt.core._numerics import as_compute, increment, wider, zero_count
from gradopt.transforms._ascent import normalize_by_global_norm
from gradopt.transforms._scale import scale


class SAMState(NamedTuple):
    """State of :func:`sam`.

    Attributes:
      count: the number of updates seen (int32, saturating); every
        ``sync_period``-th is an outer step.
      opt_state: the outer optimizer's state.
      adv_state: the adversarial (ascent) optimizer's state.
      cache: the outer parameters ``w`` while the adversarial steps run
        (None in ``opaque_mode``).
    """

    count: jax.Array  # type: ignore[assignment]  # the field shadows tuple.count
    opt_state: Any
    adv_state: Any
    cache: Any


def _is_tx(tx):
    return callable(getattr(tx, "init", None)) and callable(getattr(tx, "update", None))


def _sam_init(params, *, optimizer, adv_optimizer, sync_period, reset_state, opaque_mode):
    del sync_period, reset_state
    cache = None if opaque_mode else jax.tree.map(lambda p: jnp.array(p), params)
    return SAMState(zero_count(), optimizer.init(params), adv_optimizer.init(params), cache)


def _select(flag, a, b):
    return jax.tree.map(lambda x, y: jnp.where(flag, x, y), a, b)


def _negate(tree):
    return jax.tree.map(lambda u: -jnp.asarray(u), tree)


def _sam_update(
    updates, state, params=None, *, optimizer, adv_optimizer, sync_period, reset_state,
    opaque_mode, grad_fn=None, **extra,
):  # fmt: skip
    if params is None:
        raise ValueError("gradopt.sam needs the parameters: call update(updates, state, params).")
    if opaque_mode:
        return _opaque(updates, state, params, optimizer, adv_optimizer, sync_period,
                       reset_state, grad_fn, extra)  # fmt: skip
    phase = state.count % jnp.asarray(sync_period, jnp.int32)
    first, last = phase == 0, phase == sync_period - 1
    adv_updates, adv_state = call_update(adv_optimizer, updates, state.adv_state, params, extra)
    adv_updates = _negate(adv_updates)
    cache = _select(first, params, state.cache)  # the outer parameters w
    opt_updates, opt_state = call_update(optimizer, updates, state.opt_state, cache, extra)

    def back_and_step(c, p, u):  # from the adversarial point back to w, then the step
        c, p, u = jnp.asarray(c), jnp.asarray(p), jnp.asarray(u)
        d = wider(c.dtype, p.dtype, u.dtype)
        return (c.astype(d) - p.astype(d) + as_compute(u).astype(d)).astype(u.dtype)

    outer = tree_map(back_and_step, cache, params, opt_updates, what="params", rest_what="updates")
    out = _select(last, outer, adv_updates)
    fresh = adv_optimizer.init(params) if reset_state else state.adv_state
    adv_state = _select(last, fresh, adv_state)
    opt_state = _select(last, opt_state, state.opt_state)
    return out, SAMState(increment(state.count), opt_state, adv_state, cache)


def _opaque(updates, state, params, optimizer, adv_optimizer, k, reset_state, grad_fn, extra):
    if grad_fn is None:
        raise ValueError(
            "gradopt.sam(opaque_mode=True) needs grad_fn: call update(grads, state, params, "
            "grad_fn=lambda params, i: the gradient at params)."
        )
    adv_params, adv_grads, adv_state = params, updates, state.adv_state
    for i in range(k - 1):
        step, adv_state = call_update(adv_optimizer, adv_grads, adv_state, adv_params, extra)
        adv_params = jax.tree.map(lambda p, u: p - jnp.asarray(u).astype(p.dtype), adv_params, step)
        adv_grads = grad_fn(adv_params, i)
    if reset_state:
        adv_state = adv_optimizer.init(params)
    out, opt_state = call_update(optimizer, adv_grads, state.opt_state, params, extra)
    return out, SAMState(increment(state.count), opt_state, adv_state, None)


def sam(
    optimizer,
    adv_optimizer=None,
    sync_period: int = 2,
    *,
    reset_state: bool = True,
    opaque_mode: bool = False,
) -> GradientTransformation:
    r"""Sharpness-aware minimisation (Foret et al., 2021) around an outer optimizer.

    SAM minimises ``max_{|e| <= rho} f(w + e)``. Its step needs two gradients::

        g   = grad f(w)
        e   = rho * g / |g|                 # gradopt.sam_ascent(rho)
        g_a = grad f(w + e)                 # the gradient at the adversarial point
        w   = w + optimizer(g_a)

    The two-gradient loop, written out with the ascent step as a transform::

        ascent = gradopt.sam_ascent(0.05)
        g = jax.grad(loss)(w)
        e, _ = ascent.update(g, ascent.init(w))
        g_a = jax.grad(loss)(gradopt.apply_updates(w, e))
        updates, state = opt.update(g_a, state, w)
        w = gradopt.apply_updates(w, updates)

    ``sam(optimizer)`` packs that loop into an ordinary one-gradient-per-call
    optimizer: with ``sync_period = 2`` (the paper), the odd calls move the
    parameters to ``w + e`` (``adv_optimizer``'s update, negated: the default
    ``chain(normalize_by_global_norm(), scale(-0.05))`` gives ``+rho g / |g|``),
    and the even calls, given the gradient there, return to ``w`` and take
    the outer step. A larger ``sync_period`` takes ``sync_period - 1`` ascent
    steps. With ``opaque_mode=True`` every call takes a whole SAM step and
    needs ``grad_fn(params, i)`` as an extra argument of ``update`` (for
    models with side effects such as batch statistics).

    Args:
      optimizer: the outer optimizer.
      adv_optimizer: the ascent optimizer in descent form (negated by SAM);
        None for ``chain(normalize_by_global_norm(), scale(-0.05))``, the paper's
        ``rho = 0.05`` (optax's examples write ``sgd(rho)``, the same step).
      sync_period: calls per outer step, an int >= 1 (2).
      reset_state: re-initialise ``adv_optimizer``'s state after each outer step.
      opaque_mode: one whole SAM step per call (needs ``grad_fn``).

    Returns:
      A gradient transformation with state :class:`SAMState`; ``update``
      needs ``params``.

    Example:
      >>> import jax, jax.numpy as jnp, gradopt
      >>> loss = lambda w: jnp.sum(w**2)
      >>> opt = gradopt.sam(gradopt.sgd(0.1))
      >>> w = jnp.array([3.0, 4.0])
      >>> state = opt.init(w)
      >>> u, state = opt.update(jax.grad(loss)(w), state, w)    # to w + 0.05 g/|g|
      >>> w_adv = gradopt.apply_updates(w, u)
      >>> u, state = opt.update(jax.grad(loss)(w_adv), state, w_adv)  # back, and step
      >>> gradopt.apply_updates(w_adv, u)   # w - 0.1 * 2 * (w + 0.05 * w / |w|)
      Array([2.394, 3.192], dtype=float32)

    Note:
      How PyTorch, Keras and optax differ. ``optax.contrib.sam`` (the tests'
      reference: equal trajectories) has these arguments (``adv_optimizer``
      required, the booleans positional) and a ``batch_axis_name`` for pmap,
      which gradopt does not take (average ``grad_fn``'s gradients yourself).
      Neither torch.optim nor Keras 3 has SAM; the authors' PyTorch recipe
      calls ``first_step`` and ``second_step`` around two backward passes,
      which is the loop above.

    References:
      Foret, Kleiner, Mobahi & Neyshabur, Sharpness-aware minimization for
      efficiently improving generalization, ICLR 2021, arXiv:2010.01412.
    """
    where = "gradopt.sam"
    if adv_optimizer is None:
        adv_optimizer = chain(normalize_by_global_norm(), scale(-0.05))
    for name, tx in (("optimizer", optimizer), ("adv_optimizer", adv_optimizer)):
        if not _is_tx(tx):
            raise TypeError(f"{where}: {name} is {tx!r}, which is not a gradient transformation.")
    if isinstance(sync_period, bool) or not isinstance(sync_period, int) or sync_period < 1:
        raise ValueError(f"{where}: sync_period must be an int >= 1, got {sync_period!r}. Use 2.")
    check_flag(where, "reset_state", reset_state)
    check_flag(where, "opaque_mode", opaque_mode)
    return transform(
        _sam_init, _sam_update, optimizer=optimizer, adv_optimizer=adv_optimizer,
        sync_period=sync_period, reset_state=reset_state, opaque_mode=opaque_mode,
    )  # fmt: skip
