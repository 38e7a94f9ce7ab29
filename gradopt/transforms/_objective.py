"""The objective-function protocol of the transforms that evaluate the loss themselves.

Line searches and second-order methods need more than the gradient: they call
the objective at other points. They follow optax's protocol of extra update
arguments::

    updates, state = opt.update(grad, state, params, value=loss, grad=grad,
                                value_fn=loss_fn, **fn_kwargs)

* ``value``: the loss at ``params`` (a scalar);
* ``grad``: its gradient at ``params`` (a tree like ``params``);
* ``value_fn``: the loss, ``value_fn(params, **fn_kwargs) -> scalar``,
  differentiable by JAX;
* ``residual_fn`` (least-squares methods): ``residual_fn(params, **fn_kwargs)
  -> r``, an array, for the loss ``0.5 * |r|^2``;
* any other keyword whose name is a parameter of ``value_fn`` (or
  ``residual_fn``), such as a mini-batch ``batch=...``, is passed on to it.

Other stages of a :func:`gradopt.chain` ignore these arguments.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp

from gradopt.core._numerics import as_compute

_PROTOCOL = ("value", "grad", "value_fn", "residual_fn")


def fn_kwargs(fn: Callable[..., Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """The extra arguments that ``fn`` takes by name (besides the parameters)."""
    try:
        names = set(inspect.signature(fn).parameters)
    except (TypeError, ValueError):
        names = set()
    return {k: v for k, v in extra.items() if k in names and k not in _PROTOCOL}


def require(where: str, name: str, extra: Mapping[str, Any]) -> Any:
    """``extra[name]``, or a TypeError that shows how to call the update."""
    if extra.get(name) is None:
        raise TypeError(
            f"{where}: update needs the keyword argument {name}= (got "
            f"{sorted(extra) or 'none'}). Call it as opt.update(grad, state, params, "
            "value=loss, grad=grad, value_fn=loss_fn) (least-squares methods: "
            "residual_fn=residuals); see gradopt.transforms._objective for the protocol."
        )
    return extra[name]


def require_params(where: str, params: Any) -> None:
    if params is None:
        raise ValueError(
            f"{where} needs the parameters: call update(grads, state, params, ...) with the "
            "current parameters (it evaluates the objective around them)."
        )


def tree_vdot(a, b):
    """``sum_leaves Re <a, b>`` in float32 or wider: a real number.

    For complex leaves this is ``Re sum conj(a_i) b_i``, the inner product of
    the realified vectors ``(Re a, Im a)`` and ``(Re b, Im b)``: the one the
    methods built on it (L-BFGS, the line search) need; on real leaves it is
    the ordinary dot product. Leaves of several precisions sum in the widest
    one (float64 where a leaf is float64 or complex128).
    """
    parts = [
        jnp.real(jnp.vdot(as_compute(x), as_compute(y)))
        for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
    ]
    if not parts:
        return jnp.zeros([])
    dtype = max((p.dtype for p in parts), key=lambda d: d.itemsize)
    return sum((p.astype(dtype) for p in parts[1:]), parts[0].astype(dtype))


def tree_axpy(a, x, y):
    """``a * x + y`` leaf by leaf, in ``y``'s dtypes."""
    return jax.tree.map(
        lambda u, v: (as_compute(a) * as_compute(u) + as_compute(v)).astype(v.dtype), x, y
    )


def add_counts(total, k):
    """``total + k`` for int32 counters, saturating at the int32 maximum."""
    top = jnp.iinfo(jnp.int32).max
    k = jnp.asarray(k, jnp.int32)
    return jnp.where(total > top - k, top, total + k).astype(jnp.int32)
