"""Validation of hyperparameters at construction time.

Concrete values (Python numbers, concrete arrays) are checked and a bad one
raises a ValueError or TypeError that names the argument, the value given, the
allowed range and the fix. Traced values (inside ``jax.jit`` or ``jax.vmap``)
cannot be inspected and are accepted as they are.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import jax
import jax.numpy as jnp
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
    """A real number: a Python int or float, or an array of a real numeric dtype."""
    if isinstance(value, (bool, str, bytes)) or value is None:
        return False
    if isinstance(value, (int, float)):
        return True
    shape = getattr(value, "shape", None)
    dtype = getattr(value, "dtype", None)
    if shape is None or dtype is None:
        return False
    dtype = np.dtype(dtype)
    return np.issubdtype(dtype, np.number) and not np.issubdtype(dtype, np.complexfloating)


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
            f"type {type(value).__name__}.{_complex_hint(value)}"
        )
    if getattr(value, "shape", ()) != () and not isinstance(value, jax.core.Tracer):
        raise ValueError(
            f"{where}: {name} must be a scalar, got an array of shape {value.shape}. To sweep "
            "over several values, build the optimizer inside jax.vmap."
        )
    x = concrete_value(value)
    if x is None:
        return
    hint = f" {fix}" if fix else ""
    interval = _interval(low, high, low_open, high_open)
    if not math.isfinite(x):
        raise ValueError(
            f"{where}: {name} must be a finite number in {interval}, got {value!r}.{hint}"
        )
    ok = not math.isnan(x)
    if ok and low is not None:
        ok = x > low if low_open else x >= low
    if ok and high is not None:
        ok = x < high if high_open else x <= high
    if not ok:
        raise ValueError(f"{where}: {name} must be in {interval}, got {value!r}.{hint}")


def _interval(low, high, low_open: bool, high_open: bool) -> str:
    """``[0, 1)``, ``(0, inf)``: an unbounded side is open."""
    left = "(" if low_open or low is None else "["
    right = ")" if high_open or high is None else "]"
    lo = "-inf" if low is None else f"{low:g}"
    hi = "inf" if high is None else f"{high:g}"
    return f"{left}{lo}, {hi}{right}"


def _complex_hint(value: Any) -> str:
    """For a complex value: hyperparameters stay real for complex parameters too."""
    dtype = getattr(value, "dtype", None)
    is_complex = isinstance(value, complex) or (
        dtype is not None and np.issubdtype(np.dtype(dtype), np.complexfloating)
    )
    if not is_complex:
        return ""
    return (
        " Hyperparameters are real, also for complex parameters; optax.inject_hyperparams "
        "casts them to the parameters' complex dtype unless given "
        "hyperparam_dtype=jnp.float32 (gradopt.inject_hyperparams keeps float32)."
    )


def check_learning_rate(where: str, value: Any, name: str = "learning_rate") -> None:
    """A learning rate is a non-negative scalar or a schedule (a callable of the step)."""
    if callable(value):
        return
    if not _is_number_like(value):
        raise TypeError(
            f"{where}: {name} must be a non-negative number, a scalar JAX array or a schedule "
            f"(a callable step -> value), got {value!r} of type {type(value).__name__}."
            f"{_complex_hint(value)}"
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


# ----------------------------------------------------------------------------
# gradients


@functools.lru_cache(maxsize=64)
def _is_float(dtype) -> bool:
    return bool(jnp.issubdtype(dtype, jnp.inexact))


@functools.lru_cache(maxsize=64)
def _is_complex(dtype) -> bool:
    return bool(jnp.issubdtype(dtype, jnp.complexfloating))


def check_gradients(updates: Any, params: Any = None, *, what: str = "updates") -> Any:
    """Check a gradient tree; return it with Python scalar leaves as arrays.

    Every leaf must have a floating or complex dtype: an integer, unsigned or
    boolean gradient raises a TypeError naming the leaf, its dtype and the fix
    (an integer update cannot hold a fraction of a step, so computing with it
    would silently round). With ``params`` of the same tree structure, each
    leaf must have its parameter's shape (a ValueError naming the leaf and both
    shapes; JAX would otherwise broadcast), and a complex gradient needs a
    complex parameter and the other way round (a TypeError). Checks run at
    trace time and cost nothing in the compiled step.
    """
    leaves, treedef = jax.tree_util.tree_flatten_with_path(updates)
    converted = False
    for i, (path, leaf) in enumerate(leaves):
        if isinstance(leaf, (int, float)) and not isinstance(leaf, bool):
            leaves[i] = (path, jnp.asarray(leaf))
            converted = True
        dtype = jnp.dtype(bool) if isinstance(leaf, bool) else getattr(leaves[i][1], "dtype", None)
        if dtype is not None and not _is_float(dtype):
            where = jax.tree_util.keystr(path) or "(root)"
            raise TypeError(
                f"The {what} leaf at {where} has dtype {jnp.dtype(dtype).name}, but gradients "
                "must be floating point (float16, bfloat16, float32 or float64) or complex "
                "(complex64 or complex128): an integer or "
                "boolean gradient would round every fractional step. Cast the gradients to the "
                "parameters' dtypes first: jax.tree.map(lambda g, p: g.astype(p.dtype), grads, "
                "params)."
            )
    if converted:
        updates = jax.tree_util.tree_unflatten(treedef, [leaf for _, leaf in leaves])
    if params is not None and jax.tree.structure(params) == treedef:  # type: ignore[operator]
        for (path, leaf), p in zip(leaves, jax.tree.leaves(params), strict=True):
            got, want = jnp.shape(leaf), jnp.shape(p)
            if got != want:
                raise ValueError(
                    f"The {what} leaf at {jax.tree_util.keystr(path) or '(root)'} has shape "
                    f"{got}, but the params leaf there has shape {want}. Pass {what} with the "
                    "shapes of the parameters (JAX would broadcast them silently)."
                )
            if p is not None and leaf is not None:
                _check_same_kind(what, path, leaf, p)
    return updates


def _check_same_kind(what, path, leaf, param) -> None:
    """A complex gradient needs a complex parameter, and a complex parameter a complex gradient."""
    g_dtype, p_dtype = jnp.result_type(leaf), jnp.result_type(param)
    if _is_complex(g_dtype) == _is_complex(p_dtype):
        return
    where = jax.tree_util.keystr(path) or "(root)"
    raise TypeError(
        f"The {what} leaf at {where} has dtype {jnp.dtype(g_dtype).name}, but the params leaf "
        f"there has dtype {jnp.dtype(p_dtype).name}: a complex gradient needs a complex "
        "parameter and a complex parameter a complex gradient. For a real loss of complex "
        "parameters pass jax.tree.map(jnp.conj, grads), the gradients jax.grad returns, "
        "conjugated (see the docs' section 'Complex parameters'); to optimise real "
        "parameters, make the loss real-valued in them."
    )


def refuse_complex(where: str, params: Any, reason: str = "") -> None:
    """Raise a TypeError if ``params`` (or updates) hold a complex leaf: ``where`` is real only.

    Rules without a complex form (sign-based steps, Rprop, ...) call this in
    ``init`` (and at trace time in ``update``) through :func:`gradopt.real_only`.
    """
    for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
        if leaf is None:
            continue
        dtype = jnp.result_type(leaf)
        if _is_complex(dtype):
            why = f" ({reason})" if reason else ""
            raise TypeError(
                f"{where} supports real parameters only{why}, but the leaf at "
                f"{jax.tree_util.keystr(path) or '(root)'} has dtype {jnp.dtype(dtype).name}. "
                "Optimise complex parameters with an optimizer that supports them (sgd, "
                "adagrad, rmsprop, adam, adamw, nadamw, radam, adabelief, lamb, adafactor, "
                "muon, ...; see the docs' section 'Complex parameters'), or split each "
                "complex parameter into its real "
                "and imaginary parts as two real parameters."
            )


_DECAY_FIX = "Decay rates lie in [0, 1): 0.9 and 0.999 are the usual values."


def check_decay(where: str, name: str, value) -> None:
    """A decay rate (b1, b2, rho, ...) must lie in [0, 1)."""
    check_scalar(where, name, value, low=0.0, high=1.0, high_open=True, fix=_DECAY_FIX)


def check_eps(where: str, value, name: str = "eps") -> None:
    """An eps must be a positive number."""
    check_scalar(
        where, name, value, low=0.0, low_open=True, fix="Use a small positive value such as 1e-8."
    )


def check_dtype(where: str, dtype, name: str = "dtype") -> None:
    if dtype is None:
        return
    try:
        ok = jnp.issubdtype(jnp.dtype(dtype), jnp.floating)
    except TypeError:
        ok = False
    if not ok:
        raise TypeError(
            f"{where}: {name} must be None or a floating dtype such as jnp.bfloat16 or "
            f"jnp.float32, got {dtype!r}."
        )


_MOMENTUM_FIX = "Momentum lies in [0, 1): 0.9 is the usual value."


def check_momentum(where: str, value, name: str = "momentum") -> None:
    check_scalar(where, name, value, low=0.0, high=1.0, high_open=True, fix=_MOMENTUM_FIX)


def check_dampening(where: str, value) -> None:
    check_scalar(
        where,
        "dampening",
        value,
        low=0.0,
        high=1.0,
        fix="Dampening lies in [0, 1]; 0 (no dampening) is the usual value.",
    )


def check_nesterov(where: str, momentum, dampening) -> None:
    """Nesterov momentum needs a positive momentum and no dampening."""
    m = concrete_value(momentum)
    if m is not None and m == 0:
        raise ValueError(
            f"{where}: nesterov=True needs momentum > 0, got momentum={momentum!r}. Set "
            "momentum (0.9 is usual) or use nesterov=False."
        )
    d = concrete_value(dampening)
    if d is not None and d != 0:
        raise ValueError(
            f"{where}: nesterov=True needs dampening == 0 (as in PyTorch), got "
            f"dampening={dampening!r}. Use dampening=0.0 or nesterov=False."
        )


def check_weight_decay(where: str, value) -> None:
    check_scalar(
        where,
        "weight_decay",
        value,
        low=0.0,
        fix="Weight decay is non-negative; use 0.0 to switch it off.",
    )
