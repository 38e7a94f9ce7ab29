"""Guards against non-finite gradients: skip the step, count, give up; NaN checks for a loop."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradopt.core._base import call_update, transform
from gradopt.core._checks import check_choice
from gradopt.core._numerics import increment, zero_count

_WHERE = "gradopt.skip_nonfinite"


def all_finite(tree) -> jax.Array:
    """True (a boolean scalar array) if every entry of every leaf is finite.

    Traceable: use it inside a jitted step, or on the host as
    ``bool(gradopt.all_finite(loss))``. An empty tree is finite.
    """
    result = jnp.asarray(True)
    for leaf in jax.tree.leaves(tree):
        result = jnp.logical_and(result, jnp.all(jnp.isfinite(leaf)))
    return result


class SkipNonfiniteState(NamedTuple):
    """State of :func:`skip_nonfinite`.

    Attributes:
      inner_state: the wrapped optimizer's state (untouched by skipped steps).
      total_skipped: the number of skipped steps since ``init`` (int32).
      consecutive_skipped: skipped steps in a row up to now; 0 after a finite step.
      gave_up: True once ``consecutive_skipped`` has reached ``max_consecutive``;
        it stays True. Read it on the host with :func:`check_skips`.
    """

    inner_state: Any
    total_skipped: jax.Array
    consecutive_skipped: jax.Array
    gave_up: jax.Array


def _skip_init(params, *, inner, max_consecutive, on_give_up):
    del max_consecutive, on_give_up
    return SkipNonfiniteState(
        inner_state=inner.init(params),
        total_skipped=zero_count(),
        consecutive_skipped=zero_count(),
        gave_up=jnp.asarray(False),
    )


def _select(pred, on_true, on_false):
    return jax.tree.map(lambda a, b: jnp.where(pred, a, b), on_true, on_false)


def _skip_update(updates, state, params=None, *, inner, max_consecutive, on_give_up, **extra):
    finite = all_finite(updates)
    new_updates, new_inner = call_update(inner, updates, state.inner_state, params, extra)
    consecutive = jnp.where(finite, zero_count(), increment(state.consecutive_skipped))
    total = jnp.where(finite, state.total_skipped, increment(state.total_skipped))
    gave_up = state.gave_up
    if max_consecutive is not None:
        gave_up = jnp.logical_or(gave_up, consecutive >= max_consecutive)
    # A skipped step: zero updates, the wrapped state as it was. With
    # on_give_up="poison", once given up the step goes through as computed.
    take = finite if on_give_up == "report" else jnp.logical_or(finite, gave_up)
    zeros = jax.tree.map(jnp.zeros_like, new_updates)
    out_updates = _select(take, new_updates, zeros)
    out_inner = _select(take, new_inner, state.inner_state)
    return out_updates, SkipNonfiniteState(out_inner, total, consecutive, gave_up)


def skip_nonfinite(inner, *, max_consecutive: int | None = None, on_give_up: str = "report"):
    """Wrap an optimizer so that a step with a NaN or Inf gradient is skipped.

    For every step: if every entry of the incoming updates is finite, the
    wrapped optimizer's update is returned as usual; otherwise the step returns
    zero updates and the wrapped optimizer's state is kept exactly as it was
    (its step counter does not advance, its moments are not polluted), and the
    counters ``total_skipped`` and ``consecutive_skipped`` grow by one.

    After ``max_consecutive`` skipped steps in a row the guard gives up. Under
    ``jax.jit`` it cannot raise, so it reports: ``state.gave_up`` becomes True
    (and stays True). :func:`check_skips` (or :class:`TerminateOnNaN`) turns
    that into an exception on the host. What the step itself does then is
    chosen by ``on_give_up``:

    * ``"report"`` (default): keep skipping non-finite steps.
    * ``"poison"``: let non-finite steps through, so the parameters become NaN
      and any NaN check downstream sees the failure.

    The selection is done with ``jnp.where``: one compiled program serves
    finite and non-finite steps alike (no recompilation, works under ``vmap``),
    at the price of always computing the wrapped update.

    Args:
      inner: the optimizer to guard (any gradient transformation, optax's
        included).
      max_consecutive: the number of skipped steps in a row after which to
        give up, a positive int, or None (the default) never to give up.
      on_give_up: ``"report"`` or ``"poison"``, see above. Keyword only.

    Returns:
      A ``GradientTransformation`` whose state is :class:`SkipNonfiniteState`.

    Example:
      >>> import jax.numpy as jnp
      >>> import gradopt
      >>> tx = gradopt.skip_nonfinite(gradopt.adam(1e-3), max_consecutive=5)
      >>> params = {"w": jnp.ones(2)}
      >>> state = tx.init(params)
      >>> updates, state = tx.update({"w": jnp.array([jnp.nan, 1.0])}, state, params)
      >>> updates["w"], int(state.total_skipped)  # the step is skipped: a zero update
      (Array([0., 0.], dtype=float32), 1)
      >>> gradopt.check_skips(state)  # raises NonFiniteError after 5 bad steps in a row
    """
    if not (callable(getattr(inner, "init", None)) and callable(getattr(inner, "update", None))):
        raise TypeError(
            f"{_WHERE}: inner is {inner!r}, which is not a gradient transformation. Pass an "
            "optimizer such as gradopt.adam(1e-3)."
        )
    if max_consecutive is not None and (
        isinstance(max_consecutive, bool)
        or not isinstance(max_consecutive, int)
        or max_consecutive < 1
    ):
        raise ValueError(
            f"{_WHERE}: max_consecutive must be a positive int or None, got {max_consecutive!r}."
        )
    check_choice(_WHERE, "on_give_up", on_give_up, ("report", "poison"))
    return transform(
        _skip_init,
        _skip_update,
        inner=inner,
        max_consecutive=max_consecutive,
        on_give_up=on_give_up,
    )


class NonFiniteError(FloatingPointError):
    """Raised on the host when training has produced NaN or Inf values."""


def _find_skip_states(state) -> list[SkipNonfiniteState]:
    if isinstance(state, SkipNonfiniteState):
        return [state, *_find_skip_states(state.inner_state)]
    if isinstance(state, Mapping):
        children = list(state.values())
    elif isinstance(state, (tuple, list)):
        children = list(state)
    else:
        return []
    found = []
    for child in children:
        found.extend(_find_skip_states(child))
    return found


def check_skips(state) -> None:
    """Raise :class:`NonFiniteError` if a :func:`skip_nonfinite` guard in ``state`` gave up.

    Looks through nested optimizer states (tuples, dicts, NamedTuples) for
    every :class:`SkipNonfiniteState`. Call it on the host, between jitted
    steps; it reads a few scalars from the device. States batched by ``vmap``
    raise if any member gave up.
    """
    for s in _find_skip_states(state):
        if bool(jnp.any(s.gave_up)):
            raise NonFiniteError(
                f"gradopt.skip_nonfinite gave up after {int(jnp.max(s.consecutive_skipped))} "
                f"non-finite steps in a row ({int(jnp.max(s.total_skipped))} skipped in all). "
                "The gradients keep overflowing: lower the learning rate, clip the gradients "
                "(gradopt.clip_by_global_norm), or check the loss for log(0) or division by zero."
            )


class TerminateOnNaN:
    """A check for a training loop: stop when the loss (or a state) goes non-finite.

    The host-side counterpart of Keras' ``TerminateOnNaN`` callback: call it
    once per step or epoch with the loss (any pytree of numbers) and,
    optionally, the optimizer state. It returns True (or raises
    :class:`NonFiniteError` with ``raise_error=True``) when the loss contains a
    NaN or Inf, or when a :func:`skip_nonfinite` guard in the state gave up.

    Args:
      raise_error: raise instead of returning True. Keyword only.

    Attributes:
      stopped_step: the number of calls before the one that stopped, or None.

    Example:
      >>> import jax.numpy as jnp
      >>> import gradopt
      >>> terminate = gradopt.TerminateOnNaN()
      >>> for step, loss in enumerate([0.9, 0.5, float("nan"), 0.4]):
      ...     if terminate(jnp.float32(loss)):
      ...         break
      >>> step, terminate.stopped_step
      (2, 2)
    """

    def __init__(self, *, raise_error: bool = False):
        if not isinstance(raise_error, bool):
            raise TypeError(
                f"gradopt.TerminateOnNaN: raise_error must be a bool, got {raise_error!r}."
            )
        self.raise_error = raise_error
        self.step = 0
        self.stopped_step: int | None = None

    def __call__(self, loss, state=None) -> bool:
        step = self.step
        self.step += 1
        try:
            if not bool(all_finite(loss)):
                raise NonFiniteError(
                    f"gradopt.TerminateOnNaN: the loss is {loss!r} at step {step}."
                )
            if state is not None:
                check_skips(state)
        except NonFiniteError:
            self.stopped_step = step
            if self.raise_error:
                raise
            return True
        return False
