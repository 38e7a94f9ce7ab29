"""Validation of hyperparameters at construction time.

Concrete values (Python numbers, concrete arrays) are checked and a bad one
raises a ValueError or TypeError that names the argument, the value given, the
allowed range and the fix. Traced values (inside ``jax.jit`` or ``jax.vmap``)
cannot be inspected and are accepted as they are.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import numpy as np


def concrete_value(value: Any) -> float | None:
    """The float value of a concrete scalar, or None if it is traced."""
    if isinstance(value, jax.core.Tracer):
        return None
    try:
        array = np.asarray(value)
    except Exception:  # noqa: BLE001 - unknown objects are reported by the caller
        return None
    if array.shape != () or not (np.issubdtype(array.dtype, np.number) or array.dtype == bool):
        return None
    return float(array)


def _is_number_like(value: Any) -> bool:
    if isinstance(value, (bool, str, bytes)) or value is None:
        return False
    if isinstance(value, (int, float)):
        return True
    shape = getattr(value, "shape", None)
    dtype = getattr(value, "dtype", None)
    return shape is not None and dtype is not None and np.issubdtype(np.dtype(dtype), np.number)


def check_scalar(
    where: str,
    name: str,
    value: Any,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
    fix: str = "",
) -> None:
    """Check that ``value`` is a real scalar in the given interval.

    Args:
      where: the public function being built, e.g. ``"gradopt.adam"``.
      name: the argument's name.
      value: a Python number, a scalar array, or a traced scalar.
      low, high: bounds; ``None`` for unbounded.
      low_open, high_open: exclude the bound itself.
      fix: a hint appended to the message, e.g. ``"use 0.9"``.
    """
    if not _is_number_like(value):
        raise TypeError(
            f"{where}: {name} must be a real number or a scalar JAX array, got {value!r} of "
            f"type {type(value).__name__}."
        )
    if getattr(value, "shape", ()) != () and not isinstance(value, jax.core.Tracer):
        raise ValueError(
            f"{where}: {name} must be a scalar, got an array of shape {value.shape}. To sweep "
            "over several values, build the optimizer inside jax.vmap."
        )
    x = concrete_value(value)
    if x is None:
        return
    ok = not math.isnan(x)
    if ok and low is not None:
        ok = x > low if low_open else x >= low
    if ok and high is not None:
        ok = x < high if high_open else x <= high
    if not ok:
        left = "(" if low_open else "["
        right = ")" if high_open else "]"
        lo = "-inf" if low is None else f"{low:g}"
        hi = "inf" if high is None else f"{high:g}"
        hint = f" {fix}" if fix else ""
        raise ValueError(
            f"{where}: {name} must be in {left}{lo}, {hi}{right}, got {value!r}.{hint}"
        )


def check_learning_rate(where: str, value: Any, name: str = "learning_rate") -> None:
    """A learning rate is a non-negative scalar or a schedule (a callable of the step)."""
    if callable(value):
        return
    if not _is_number_like(value):
        raise TypeError(
            f"{where}: {name} must be a non-negative number, a scalar JAX array or a schedule "
            f"(a callable step -> value), got {value!r} of type {type(value).__name__}."
        )
    check_scalar(
        where,
        name,
        value,
        low=0.0,
        fix="Learning rates are non-negative; the sign of the "
        "step lives in the transforms. To ascend, use maximize=True where offered.",
    )


def check_flag(where: str, name: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise TypeError(f"{where}: {name} must be True or False, got {value!r}.")


def check_choice(where: str, name: str, value: Any, allowed: tuple[Any, ...]) -> None:
    if value not in allowed:
        raise ValueError(
            f"{where}: {name} must be one of {', '.join(map(repr, allowed))}, got {value!r}."
        )
