"""Schedule-free learning (Defazio et al., 2024) as a wrapper around a base optimizer.

The base optimizer (without momentum) moves the sequence ``z``; the parameters the
caller holds are the interpolation ``y`` at which gradients are taken; the
averaged sequence ``x``, where the model is evaluated, is recovered from ``y``
and ``z`` (:func:`schedule_free_eval_params`), so only ``z`` is stored. The rule
is on :func:`gradopt.schedule_free_sgd`.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradopt.core._base import Bound, GradientTransformation, call_update, transform, tree_map
from gradopt.core._checks import check_dtype, check_learning_rate, check_scalar
from gradopt.core._elementwise import Node, from_node, node_of, store
from gradopt.core._numerics import as_compute, increment, scalar_dtype, wider, zero_count


class ScheduleFreeState(NamedTuple):
    """State of :func:`schedule_free`.

    Attributes:
      b1: the interpolation weight ``beta`` (kept for :func:`schedule_free_eval_params`).
      weight_sum: ``sum_i lr_max,i ** weight_lr_power`` so far.
      max_lr: the largest learning rate so far.
      count: the number of updates seen (int32, saturating).
      base_optimizer_state: the base optimizer's state.
      z: the base optimizer's iterate ``z``.
    """

    b1: jax.Array
    weight_sum: jax.Array
    max_lr: jax.Array
    count: jax.Array  # type: ignore[assignment]  # the field shadows tuple.count
    base_optimizer_state: Any
    z: Any


def _sf_init(params, *, base_optimizer, learning_rate, b1, weight_lr_power, state_dtype):
    del learning_rate, weight_lr_power
    s = scalar_dtype()
    z = jax.tree.map(lambda p: jnp.array(p, dtype=state_dtype or jnp.result_type(p)), params)
    return ScheduleFreeState(
        b1=jnp.asarray(b1, s),
        weight_sum=jnp.zeros([], s),
        max_lr=jnp.zeros([], s),
        count=zero_count(),
        base_optimizer_state=base_optimizer.init(params),
        z=z,
    )


def _averaging_weight(state, learning_rate, weight_lr_power):
    """``(lr_max, sum of weights, c)`` of this step, from the state's running values."""
    s = state.max_lr.dtype
    lr = learning_rate(state.count) if callable(learning_rate) else learning_rate
    max_lr = jnp.maximum(state.max_lr, jnp.asarray(lr).astype(s))
    weight = max_lr ** jnp.asarray(weight_lr_power).astype(s)
    weight_sum = state.weight_sum + weight
    c = jnp.where(weight_sum > 0, weight / jnp.where(weight_sum > 0, weight_sum, 1), 0.0)
    c = jnp.where(jnp.isnan(weight) | jnp.isnan(weight_sum), jnp.nan, c)
    return max_lr, weight_sum, c


def _sf_update(
    updates,
    state,
    params=None,
    *,
    base_optimizer,
    learning_rate,
    b1,
    weight_lr_power,
    state_dtype,
    **extra,
):
    del state_dtype
    if params is None:
        raise ValueError(
            "gradopt.schedule_free needs the parameters (the interpolation y): call "
            "update(updates, state, params)."
        )
    max_lr, weight_sum, c = _averaging_weight(state, learning_rate, weight_lr_power)
    base_updates, base_state = call_update(
        base_optimizer, updates, state.base_optimizer_state, params, extra
    )

    def leaf(y, z, u):
        y, z = jnp.asarray(y), jnp.asarray(z)
        d = wider(y.dtype, z.dtype, jnp.result_type(u))
        yc, zc, uc = y.astype(d), z.astype(d), as_compute(u).astype(d)
        beta, ct = jnp.asarray(b1).astype(d), c.astype(d)
        z_new = (zc + uc).astype(z.dtype).astype(d)
        x = (yc - (1 - beta) * zc) / beta  # the average, recovered from y and z
        x = (1 - ct) * x + ct * z_new
        y_new = beta * x + (1 - beta) * z_new
        return (y_new - yc).astype(y.dtype), z_new.astype(z.dtype)

    pairs = tree_map(leaf, params, state.z, base_updates, what="params", rest_what="state")
    treedef = jax.tree.structure(params)
    flat = treedef.flatten_up_to(pairs)
    out = jax.tree.unflatten(treedef, [p[0] for p in flat])
    z = jax.tree.unflatten(treedef, [p[1] for p in flat])
    return out, ScheduleFreeState(
        state.b1, weight_sum, max_lr, increment(state.count), base_state, z
    )


def schedule_free(
    base_optimizer, learning_rate, b1=0.9, weight_lr_power=2.0, state_dtype=None
) -> GradientTransformation:
    """Make a base optimizer schedule-free (Defazio et al., 2024).

    With ``lr_t`` the learning rate of step ``t`` (the one the base optimizer
    uses: give the same number or schedule), ``c_{t+1} = lr_max,t ** p /
    sum_{i<=t} lr_max,i ** p`` (``p = weight_lr_power``), ``Delta_t`` the base
    optimizer's update at ``y_t`` and ``x`` recovered from ``y`` and ``z``::

        z_{t+1} = z_t + Delta_t
        x_{t+1} = (1 - c_{t+1}) x_t + c_{t+1} z_{t+1}
        y_{t+1} = b1 x_{t+1} + (1 - b1) z_{t+1}

    The caller's parameters are ``y``; evaluate the model at
    :func:`schedule_free_eval_params`. The base optimizer should have no
    momentum (the interpolation replaces it).

    Args:
      base_optimizer: a gradient transformation (SGD, Adam with ``b1=0``, ...).
      learning_rate: the base optimizer's learning rate, a number or a schedule
        (evaluated at the 0-based step, as gradopt's learning rates are).
      b1: the interpolation weight ``beta`` in (0, 1) (0.9).
      weight_lr_power: ``p`` >= 0 of the averaging weights (2.0).
      state_dtype: storage dtype of ``z`` (None: the parameter's dtype).

    Returns:
      A gradient transformation with state :class:`ScheduleFreeState`; its
      ``update`` needs ``params``.
    """
    where = "gradopt.schedule_free"
    if not (
        callable(getattr(base_optimizer, "init", None))
        and callable(getattr(base_optimizer, "update", None))
    ):
        raise TypeError(
            f"{where}: base_optimizer is {base_optimizer!r}, which is not a gradient "
            "transformation. Pass one such as gradopt.sgd(1.0)."
        )
    check_sf(where, learning_rate, b1, weight_lr_power, state_dtype)
    base_node = node_of(base_optimizer)
    if base_node is not None:  # an elementwise base: one fused expression per leaf
        return from_node(
            ScheduleFreeNode(base_node, learning_rate, b1, weight_lr_power, state_dtype)
        )
    return transform(
        _sf_init,
        _sf_update,
        base_optimizer=base_optimizer,
        learning_rate=learning_rate,
        b1=b1,
        weight_lr_power=weight_lr_power,
        state_dtype=state_dtype,
    )


class ScheduleFreeNode(Node):
    """Schedule-free around an elementwise base, fused: the base's stages and the
    interpolation run as one expression per leaf (the state is the unfused one)."""

    needs_params_message = (
        "gradopt.schedule_free needs the parameters (the interpolation y): call "
        "update(updates, state, params)."
    )

    def __init__(self, base, learning_rate, b1, weight_lr_power, state_dtype):
        self.base = base
        self.hyper = {
            "learning_rate": learning_rate,
            "b1": b1,
            "weight_lr_power": weight_lr_power,
            "state_dtype": state_dtype,
        }
        self._key = ("schedule_free", base, Bound(_sf_init, **self.hyper)._key)

    def __repr__(self) -> str:
        return f"schedule_free({self.base!r})"

    def init(self, params):
        return _sf_init(params, base_optimizer=from_node(self.base), **self.hyper)

    def needs_params(self) -> bool:
        return True

    def prepare(self, state, flatten):
        if not isinstance(state, ScheduleFreeState):
            raise ValueError(
                f"gradopt.schedule_free got a state of type {type(state).__name__}. Pass the "
                "state returned by this optimizer's own init (or by its previous update)."
            )
        scalars = _averaging_weight(
            state, self.hyper["learning_rate"], self.hyper["weight_lr_power"]
        )
        beta = jnp.asarray(self.hyper["b1"]).astype(state.max_lr.dtype)
        base = self.base.prepare(state.base_optimizer_state, flatten)
        return (state, scalars, (scalars[2], beta), base, flatten(state.z, "schedule_free z"))

    def dtypes(self, prep, i):
        return [*self.base.dtypes(prep[3], i), prep[4][i].dtype]

    def view(self, prep, i):
        return (prep[2], self.base.view(prep[3], i), [prep[4][i]])

    def leaf(self, x, prep, i, p):
        (c, beta), base, zs = prep
        u, base_new = self.base.leaf(x, base, i, p)
        z = zs[i]
        d = u.dtype
        y, zc, beta, c = jnp.asarray(p).astype(d), z.astype(d), beta.astype(d), c.astype(d)
        z_new = (zc + u).astype(z.dtype).astype(d)  # z as stored
        average = (y - (1 - beta) * zc) / beta  # x, recovered from y and z
        average = (1 - c) * average + c * z_new
        return beta * average + (1 - beta) * z_new - y, (base_new, z_new)

    def finish(self, prep, news, unflatten):
        state, (max_lr, weight_sum, _), _, base, zs = prep
        base_state = self.base.finish(base, [n[0] for n in news], unflatten)
        z = unflatten([store(n[1], old.dtype) for n, old in zip(news, zs, strict=True)])
        return ScheduleFreeState(
            state.b1, weight_sum, max_lr, increment(state.count), base_state, z
        )


def check_sf(where, learning_rate, b1, weight_lr_power, state_dtype):
    check_learning_rate(where, learning_rate)
    check_scalar(
        where,
        "b1",
        b1,
        low=0.0,
        high=1.0,
        low_open=True,
        high_open=True,
        fix="b1 is the interpolation weight, in (0, 1): 0.9 is usual (it is divided by).",
    )
    check_scalar(where, "weight_lr_power", weight_lr_power, low=0.0, fix="2.0 is the paper's.")
    check_dtype(where, state_dtype, "state_dtype")


def schedule_free_eval_params(state, params):
    """The averaged iterate ``x = (y - (1 - b1) z) / b1`` at which to evaluate the model.

    Args:
      state: the state of a schedule-free optimizer (a :class:`ScheduleFreeState`,
        or a chain's state that contains one).
      params: the parameters ``y`` the optimizer updates.

    Returns:
      A tree like ``params``, in each parameter's dtype.

    Example:
      >>> import jax.numpy as jnp, gradopt
      >>> opt = gradopt.schedule_free_sgd(1.0)
      >>> y = {"w": jnp.array([2.0])}
      >>> state = opt.init(y)
      >>> u, state = opt.update({"w": jnp.array([1.0])}, state, y)
      >>> y = gradopt.apply_updates(y, u)
      >>> gradopt.schedule_free_eval_params(state, y)["w"]  # x_1 = z_1 = 2 - 1
      Array([1.], dtype=float32)
    """
    found = _find(state)
    if found is None:
        raise ValueError(
            "gradopt.schedule_free_eval_params: the state contains no ScheduleFreeState. Pass "
            "the state of gradopt.schedule_free(...), schedule_free_sgd or schedule_free_adamw."
        )

    def leaf(y, z):
        y, z = jnp.asarray(y), jnp.asarray(z)
        d = wider(y.dtype, z.dtype)
        beta = found.b1.astype(d)
        return ((y.astype(d) - (1 - beta) * z.astype(d)) / beta).astype(y.dtype)

    return tree_map(leaf, params, found.z, what="params", rest_what="z")


def _find(state):
    if isinstance(state, ScheduleFreeState):
        return state
    children = state.values() if isinstance(state, dict) else state
    if isinstance(state, (tuple, list, dict)):
        for child in children:
            found = _find(child)
            if found is not None:
                return found
    return None
