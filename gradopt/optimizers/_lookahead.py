"""Lookahead (Zhang, Lucas, Hinton & Ba, 2019): k fast steps, then the slow weights
move a fraction ``alpha`` of the way to the fast ones, and the fast weights restart there.

The caller's parameters are the fast weights; the slow weights live in the
state (one copy of the parameters), so any optimizer becomes Lookahead's inner
optimizer without a special parameter type.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradopt.core._base import GradientTransformation, call_update, transform, tree_map
from gradopt.core._checks import check_flag, check_scalar, concrete_value
from gradopt.core._numerics import as_compute, increment, wider


class LookaheadState(NamedTuple):
    """State of :func:`lookahead`.

    Attributes:
      fast_state: the inner (fast) optimizer's state.
      slow: the slow weights ``phi`` (in the parameters' dtypes).
      count: the number of updates seen (int32, saturating); a synchronisation
        follows every ``k``-th.
    """

    fast_state: Any
    slow: Any
    count: jax.Array  # type: ignore[assignment]  # the field shadows tuple.count


def _la_init(params, *, fast_optimizer, sync_period, slow_step_size, reset_state):
    del sync_period, slow_step_size, reset_state
    slow = jax.tree.map(lambda p: jnp.array(p, dtype=jnp.result_type(p)), params)
    return LookaheadState(fast_optimizer.init(params), slow, jnp.zeros([], jnp.int32))


def _la_update(
    updates,
    state,
    params=None,
    *,
    fast_optimizer,
    sync_period,
    slow_step_size,
    reset_state,
    **extra,
):
    if params is None:
        raise ValueError(
            "gradopt.lookahead needs the parameters (the fast weights): call "
            "update(updates, state, params)."
        )
    updates, fast_state = call_update(fast_optimizer, updates, state.fast_state, params, extra)
    count = increment(state.count)
    sync = count % jnp.asarray(sync_period, jnp.int32) == 0

    def leaf(w, u, phi):
        w, phi = jnp.asarray(w), jnp.asarray(phi)
        u = jnp.asarray(u)
        d = wider(w.dtype, u.dtype, phi.dtype)
        fast = w.astype(d) + as_compute(u).astype(d)  # theta_{t,k}
        alpha = jnp.asarray(slow_step_size).astype(d)
        new_slow = phi.astype(d) + alpha * (fast - phi.astype(d))
        out = jnp.where(sync, new_slow - w.astype(d), as_compute(u).astype(d))
        return out.astype(u.dtype), jnp.where(sync, new_slow, phi.astype(d)).astype(phi.dtype)

    pairs = tree_map(leaf, params, updates, state.slow, what="params", rest_what="updates")
    treedef = jax.tree.structure(params)
    flat = treedef.flatten_up_to(pairs)
    out = jax.tree.unflatten(treedef, [p[0] for p in flat])
    slow = jax.tree.unflatten(treedef, [p[1] for p in flat])
    if reset_state:
        fresh = fast_optimizer.init(params)
        fast_state = jax.tree.map(lambda c, f: jnp.where(sync, f, c), fast_state, fresh)
    return out, LookaheadState(fast_state, slow, count)


def lookahead(
    fast_optimizer, sync_period=6, slow_step_size=0.5, *, reset_state: bool = False
) -> GradientTransformation:
    r"""Lookahead (Zhang et al., 2019) around a fast optimizer.

    With ``A`` the fast optimizer, ``k = sync_period`` and ``alpha =
    slow_step_size``, starting from ``theta_0 = phi_0 = w_0``::

        theta_{t,i} = theta_{t,i-1} + A(grad f(theta_{t,i-1}))     i = 1..k
        phi_{t+1}   = phi_t + alpha * (theta_{t,k} - phi_t)
        theta_{t+1,0} = phi_{t+1}

    The parameters passed to ``update`` are the fast weights ``theta``; at
    each synchronisation (every ``k``-th call) the update lands them on the new
    slow weights. Evaluate the model at :func:`lookahead_slow_params`.

    Args:
      fast_optimizer: the inner optimizer ``A`` (any gradient transformation).
      sync_period: ``k``, fast steps per synchronisation (an int >= 1; 6).
      slow_step_size: ``alpha`` in [0, 1] (0.5).
      reset_state: re-initialise the fast optimizer's state at each
        synchronisation. Keyword only.

    Returns:
      A gradient transformation with state :class:`LookaheadState`; ``update``
      needs ``params``.

    Example:
      >>> import jax.numpy as jnp, gradopt
      >>> opt = gradopt.lookahead(gradopt.sgd(1.0), sync_period=2, slow_step_size=0.5)
      >>> w = jnp.array([0.0])
      >>> state = opt.init(w)
      >>> for g in (1.0, 1.0):  # two fast steps to -2, then halfway back from 0
      ...     u, state = opt.update(jnp.array([g]), state, w)
      ...     w = gradopt.apply_updates(w, u)
      >>> w, gradopt.lookahead_slow_params(state)
      (Array([-1.], dtype=float32), Array([-1.], dtype=float32))

    Note:
      How PyTorch, Keras and optax differ. ``optax.lookahead`` (the tests'
      reference: the same fast and slow weights after every step) takes
      ``sync_period`` and ``slow_step_size`` without defaults and keeps both
      weights in a ``LookaheadParams`` pair the caller must hold; gradopt keeps
      the slow weights in the state and takes the paper's ``k = 6``
      (its experiments use 5 or 10) and ``alpha = 0.5``. Neither torch.optim
      nor Keras 3 has Lookahead (TensorFlow Addons' had ``sync_period=6``,
      ``slow_step_size=0.5``, as here).

    References:
      Zhang, Lucas, Hinton & Ba, Lookahead optimizer: k steps forward, 1 step
      back, NeurIPS 2019, arXiv:1907.08610.
    """
    where = "gradopt.lookahead"
    if not (
        callable(getattr(fast_optimizer, "init", None))
        and callable(getattr(fast_optimizer, "update", None))
    ):
        raise TypeError(
            f"{where}: fast_optimizer is {fast_optimizer!r}, which is not a gradient "
            "transformation. Pass one such as gradopt.adam(1e-3)."
        )
    if isinstance(sync_period, bool) or not (
        isinstance(sync_period, int)
        or isinstance(sync_period, jax.core.Tracer)
        or concrete_value(sync_period) is not None
    ):
        raise TypeError(f"{where}: sync_period must be an int >= 1, got {sync_period!r}.")
    k = concrete_value(sync_period)
    if k is not None and (k < 1 or k != int(k)):
        raise ValueError(
            f"{where}: sync_period must be an int >= 1, got {sync_period!r}. The paper uses 5 "
            "to 10."
        )
    check_scalar(where, "slow_step_size", slow_step_size, low=0.0, high=1.0, fix="Use 0.5.")
    check_flag(where, "reset_state", reset_state)
    return transform(
        _la_init,
        _la_update,
        fast_optimizer=fast_optimizer,
        sync_period=sync_period,
        slow_step_size=slow_step_size,
        reset_state=reset_state,
    )


def lookahead_slow_params(opt_state):
    """The slow weights ``phi`` of the first :class:`LookaheadState` in ``opt_state``.

    Searches tuples, lists and dicts in order, as :func:`gradopt.lookahead_params`
    (Nesterov's look-ahead point, a different method) does for its state.
    """
    found = _find(opt_state)
    if found is None:
        raise ValueError(
            "gradopt.lookahead_slow_params: opt_state contains no LookaheadState. Pass the "
            "state of gradopt.lookahead(...)."
        )
    return found.slow


def _find(state):
    if isinstance(state, LookaheadState):
        return state
    if isinstance(state, (tuple, list, dict)):
        for child in state.values() if isinstance(state, dict) else state:
            found = _find(child)
            if found is not None:
                return found
    return None
