"""Hyperparameters held in the optimizer state: readable, writable, schedulable."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gradopt.core._base import GradientTransformation, call_update, transform
from gradopt.core._numerics import increment, zero_count

_WHERE = "gradopt.inject_hyperparams"


class InjectHyperparamsState(NamedTuple):
    """State of an optimizer built by :func:`inject_hyperparams`.

    Attributes:
      count: the number of updates so far (int32); schedules are evaluated at it.
      hyperparams: a dict from name to the scalar array used by the *last*
        update (after ``init``: the value for the first update). Read it for
        logging; change it between steps with :func:`set_hyperparams`.
      inner_state: the state of the optimizer built from those values.
    """

    count: jax.Array  # type: ignore[assignment]  # the field shadows tuple.count
    hyperparams: dict[str, jax.Array]
    inner_state: Any


def _is_numeric(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, (int, float)):
        return True
    dtype = getattr(value, "dtype", None)
    return (
        getattr(value, "shape", None) == ()
        and dtype is not None
        and np.issubdtype(np.dtype(dtype), np.number)
        and not np.issubdtype(np.dtype(dtype), np.bool_)
    )


def _as_array(value, dtype):
    return jnp.asarray(value).astype(dtype)


def _inject_init(params, *, factory, static, numeric, schedules, dtype):
    values = {name: _as_array(v, dtype) for name, v in numeric}
    count = zero_count()
    for name, schedule in schedules:
        values[name] = _as_array(schedule(count), dtype)

    def inner_init(values, params):
        return factory(**dict(static), **values).init(params)

    # Traced values, as in update: gradopt's factories build the same stages for
    # every value, but a user's factory may branch on a concrete zero, and the
    # state must not change structure between init and update. The params are closed over, not
    # passed: the state is then built with their shardings (only their shapes
    # and shardings are read; a jit argument would leave the state on one device).
    inner_state = jax.jit(lambda values: inner_init(values, params))(values)
    return InjectHyperparamsState(count, values, inner_state)


def _inject_update(
    updates, state, params=None, *, factory, static, numeric, schedules, dtype, **extra
):
    del numeric
    values = dict(state.hyperparams)
    for name, schedule in schedules:
        values[name] = _as_array(schedule(state.count), dtype)
    inner = factory(**dict(static), **values)
    updates, inner_state = call_update(inner, updates, state.inner_state, params, extra)
    return updates, InjectHyperparamsState(increment(state.count), values, inner_state)


def inject_hyperparams(
    factory: Callable[..., Any],
    *,
    static_args: tuple[str, ...] = (),
    hyperparam_dtype=jnp.float32,
) -> Callable[..., GradientTransformation]:
    """Make an optimizer factory's numeric hyperparameters part of its state.

    ``inject_hyperparams(gradopt.adam)(learning_rate=1e-3, b1=0.9)`` behaves
    like ``gradopt.adam(learning_rate=1e-3, b1=0.9)``, but keeps ``learning_rate``
    and ``b1`` in ``state.hyperparams`` as scalar arrays. ``update`` rebuilds
    the optimizer from those arrays inside the traced function (gradopt
    transforms accept traced hyperparameters), so:

    * the current values can be read for logging (``state.hyperparams["b1"]``);
    * they can be changed between steps with :func:`set_hyperparams` (or
      ``state._replace(hyperparams=...)`` with arrays of the same dtype) without
      recompiling the jitted step;
    * any of them can be driven by a schedule: pass a callable ``step -> value``
      instead of a number and it is evaluated at the update count ``t`` (0 for
      the first update) on every step, ``value_t = schedule(t)``; the state
      holds the value used by the last update.

    Which arguments are injected: Python ``int`` and ``float`` values, scalar
    numeric arrays and callables (schedules). Booleans, strings, dtypes, tuples
    and everything else are passed to ``factory`` unchanged and stay static;
    so are the names listed in ``static_args`` (an int that fixes a shape, say).
    The factory's own defaults for arguments not given stay static too. Injected
    values are cast to ``hyperparam_dtype`` (float32), so a factory that needs
    an integer must receive it through ``static_args``.

    Args:
      factory: a function returning a gradient transformation, e.g.
        ``gradopt.adam`` or ``gradopt.sgd``.
      static_args: names of numeric arguments to keep static. Keyword only.
      hyperparam_dtype: the dtype of the injected arrays. Keyword only.

    Returns:
      A function with ``factory``'s keyword arguments returning a
      ``GradientTransformation`` whose state is :class:`InjectHyperparamsState`.

    Example:
      >>> import jax.numpy as jnp
      >>> import gradopt
      >>> tx = gradopt.inject_hyperparams(gradopt.sgd)(
      ...     learning_rate=gradopt.schedules.cosine(0.1, 1000), momentum=0.9)
      >>> state = tx.init({"w": jnp.zeros(2)})
      >>> state = gradopt.set_hyperparams(state, momentum=0.5)  # no recompile
      >>> state.hyperparams["momentum"]
      Array(0.5, dtype=float32)

    Note:
      Writing a value that a schedule drives has no lasting effect: the next
      update evaluates the schedule again.
    """
    if not callable(factory):
        raise TypeError(
            f"{_WHERE}: factory must be a callable returning a gradient transformation (such "
            f"as gradopt.adam), got {factory!r}."
        )
    if isinstance(static_args, str) or not all(isinstance(n, str) for n in static_args):
        raise TypeError(f"{_WHERE}: static_args must be a tuple of names, got {static_args!r}.")
    dtype = jnp.dtype(hyperparam_dtype)

    @functools.wraps(factory)
    def build(*args, **hyperparams) -> GradientTransformation:
        if args:
            raise TypeError(
                f"{_WHERE}({getattr(factory, '__name__', factory)!r}): pass the hyperparameters "
                f"by keyword (learning_rate=..., ...), got {len(args)} positional argument(s)."
            )
        static, numeric, schedules = [], [], []
        for name in sorted(hyperparams):
            value = hyperparams[name]
            if name in static_args:
                static.append((name, value))
            elif callable(value):
                schedules.append((name, value))
            elif _is_numeric(value):
                numeric.append((name, value))
            else:
                static.append((name, value))
        # Build once with concrete values (schedules at step 0) so that bad
        # arguments fail here, at construction.
        first = {name: schedule(zero_count()) for name, schedule in schedules}
        factory(**{**hyperparams, **first})
        return transform(
            _inject_init,
            _inject_update,
            factory=factory,
            static=tuple(static),
            numeric=tuple(numeric),
            schedules=tuple(schedules),
            dtype=dtype.name,
        )

    return build


def set_hyperparams(state, **values):
    """Return ``state`` with new values for injected hyperparameters.

    Finds the :class:`InjectHyperparamsState` in ``state`` (at the top or nested
    in tuples, dicts and NamedTuples; every one that has all the given names)
    and replaces the named values, cast to the dtype and shape already there so
    the jitted step does not recompile.

    Raises:
      KeyError: if no injected state holds all the given names.
    """
    found = [False]

    def visit(s):
        if isinstance(s, InjectHyperparamsState):
            inner = visit(s.inner_state)
            if set(values) <= set(s.hyperparams):
                found[0] = True
                new = dict(s.hyperparams)
                for name, v in values.items():
                    old = s.hyperparams[name]
                    new[name] = jnp.broadcast_to(jnp.asarray(v).astype(old.dtype), old.shape)
                return s._replace(hyperparams=new, inner_state=inner)
            return s._replace(inner_state=inner)
        if isinstance(s, Mapping):
            return type(s)({k: visit(v) for k, v in s.items()})
        if isinstance(s, tuple) and hasattr(s, "_fields"):
            return type(s)(*(visit(v) for v in s))
        if isinstance(s, (tuple, list)):
            return type(s)(visit(v) for v in s)
        return s

    new_state = visit(state)
    if not found[0]:
        raise KeyError(
            f"gradopt.set_hyperparams: no injected hyperparameters named {sorted(values)} in "
            "this state. Build the optimizer with gradopt.inject_hyperparams(...) and pass "
            "names given to it; read state.hyperparams to see them."
        )
    return new_state
