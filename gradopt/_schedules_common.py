"""Helpers shared by the schedules: dtypes, step conversion and argument checks."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from gradopt._checks import check_scalar, concrete_value

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


def count_reached(count: jax.Array, boundaries: tuple) -> jax.Array:
    """How many of ``boundaries`` are <= ``count`` (elementwise), as int32."""
    reached = jnp.zeros(jnp.shape(count), jnp.int32)
    for b in boundaries:
        reached = reached + (as_float(count) >= as_float(b)).astype(jnp.int32)
    return reached


def shift_steps(count, offset):
    """``max(count - offset, 0)``: an int32 step for an integer offset, else a float one."""
    if isinstance(offset, (int, np.integer)):
        return jnp.maximum(jnp.asarray(count, jnp.int32) - offset, 0)
    return jnp.maximum(as_float(count) - as_float(offset), 0.0)
