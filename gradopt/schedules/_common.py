"""Helpers shared by the schedules: dtypes, step conversion and argument checks."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from gradopt.core._checks import check_scalar, concrete_value

STEPS_FIX = "Pass a positive number of steps, e.g. 1000."


def float_dtype() -> jnp.dtype:
    """float32, or float64 when 64-bit mode is on."""
    return jax.dtypes.canonicalize_dtype(jnp.float64)


def as_float(x: Any) -> jax.Array:
    """A number, array or tracer as an array of :func:`float_dtype`."""
    return jnp.asarray(x).astype(float_dtype())


def check_positive(where: str, name: str, value: Any, fix: str = "") -> None:
    check_scalar(where, name, value, low=0.0, low_open=True, fix=fix)


def check_nonnegative(where: str, name: str, value: Any, fix: str = "") -> None:
    check_scalar(where, name, value, low=0.0, fix=fix)


def check_boundaries(where: str, name: str, values: Any, *, strict: bool) -> tuple:
    """A sequence of step boundaries (non-negative, increasing where concrete), as a tuple."""
    if not isinstance(values, Sequence) or isinstance(values, str):
        raise TypeError(
            f"{where}: {name} must be a list or tuple of steps, got {values!r} of type "
            f"{type(values).__name__}. Pass e.g. {name}=(100, 200)."
        )
    values = tuple(values)
    for i, b in enumerate(values):
        check_nonnegative(where, f"{name}[{i}]", b, fix="Steps are counted from 0.")
    concrete = [concrete_value(b) for b in values]
    for i in range(1, len(values)):
        a, b = concrete[i - 1], concrete[i]
        if a is not None and b is not None and (b < a or (strict and b == a)):
            order = "strictly increasing" if strict else "non-decreasing"
            raise ValueError(
                f"{where}: {name} must be {order}, got {name}[{i - 1}]={values[i - 1]!r} and "
                f"{name}[{i}]={values[i]!r}. Sort the {name}."
            )
    return values


def _small_int(x: Any) -> bool:
    """A concrete Python or NumPy integer that fits in int32."""
    return isinstance(x, (int, np.integer)) and not isinstance(x, bool) and abs(int(x)) < 2**31


def _int_steps(count: Any) -> jax.Array | None:
    """``count`` as an integer array if it is one (a Python int, an int array), else None."""
    if isinstance(count, bool):
        return None
    if isinstance(count, (int, np.integer)):
        return jnp.asarray(count, jnp.int32) if _small_int(count) else None
    c = jnp.asarray(count)
    return c if jnp.issubdtype(c.dtype, jnp.integer) else None


def floor_div(count: Any, steps: Any) -> jax.Array:
    """``floor(count / steps)`` as a float array, exact at every multiple of ``steps``.

    For an integer step and an integer ``steps`` this is integer division. For
    anything else the float quotient is corrected with exact products: under
    ``jax.jit`` XLA divides by a constant by multiplying with its reciprocal,
    which lands a hair below the integer at about a third of the multiples
    (``41 * (1/41) < 1`` in float32), so a plain ``floor`` would step one step late.
    """
    c = _int_steps(count)
    if c is not None and _small_int(steps) and steps > 0:
        return as_float(jnp.floor_divide(c, jnp.asarray(steps, c.dtype)))
    k, s = as_float(count), as_float(steps)
    q = jnp.floor(k / s)
    q = jnp.where(q * s > k, q - 1.0, q)
    return jnp.where((q + 1.0) * s <= k, q + 1.0, q)


def ceil_div(count: Any, steps: Any) -> jax.Array:
    """``ceil(count / steps)`` as a float array, exact like :func:`floor_div`."""
    c = _int_steps(count)
    return -floor_div(-(c if c is not None else as_float(count)), steps)


def mod_steps(count: Any, period: Any) -> jax.Array:
    """``count mod period`` as a float array, reduced in integers where both are integers.

    A float32 step loses the phase of a periodic schedule once it exceeds
    2**24; reducing the integer step first keeps it exact at any step.
    """
    c = _int_steps(count)
    if c is not None and _small_int(period) and period > 0:
        return as_float(jnp.remainder(c, jnp.asarray(period, c.dtype)))
    k = as_float(count)
    return k - as_float(period) * floor_div(k, period)


def count_reached(count: jax.Array, boundaries: tuple) -> jax.Array:
    """How many of ``boundaries`` are <= ``count`` (elementwise), as int32.

    Integer steps are compared with integer boundaries in integers (exact at
    any step); anything else in floats.
    """
    c = _int_steps(count)
    reached = jnp.zeros(jnp.shape(count), jnp.int32)
    for b in boundaries:
        if c is not None and _small_int(b):
            hit = c >= jnp.asarray(b, c.dtype)
        else:
            hit = as_float(count) >= as_float(b)
        reached = reached + hit.astype(jnp.int32)
    return reached


def shift_steps(count, offset):
    """``max(count - offset, 0)``: an int32 step for an integer offset, else a float one."""
    if isinstance(offset, (int, np.integer)):
        return jnp.maximum(jnp.asarray(count, jnp.int32) - offset, 0)
    return jnp.maximum(as_float(count) - as_float(offset), 0.0)
