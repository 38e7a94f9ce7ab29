"""What every ``gradopt.compat.keras`` optimizer shares: argument checks, Keras' decoupled
weight decay, and the arguments of Keras' base optimizer (clipping, loss scale factor,
gradient accumulation, EMA of the weights), built on gradopt's wrappers."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gradopt.core._base import Bound, GradientTransformation, check_same_structure, transform
from gradopt.core._chain import chain
from gradopt.core._checks import check_flag, check_learning_rate, check_scalar, concrete_value
from gradopt.core._numerics import increment, place_like, saturate, zero_count
from gradopt.transforms._accumulate import accumulate
from gradopt.transforms._averaging import average_parameters
from gradopt.transforms._clipping import clip, clip_by_global_norm, clip_by_norm
from gradopt.transforms._real_only import real_only
from gradopt.transforms._scale import scale, scale_by_learning_rate
from gradopt.transforms._weight_decay import add_decayed_weights

REAL_ONLY = "Keras 3 optimizers take real variables only"


def where(name: str) -> str:
    return f"gradopt.compat.keras.{name}"


def check_common(where: str, learning_rate, weight_decay) -> None:
    check_learning_rate(where, learning_rate)
    if weight_decay is not None:
        check_scalar(
            where,
            "weight_decay",
            weight_decay,
            low=0.0,
            fix="Use None (Keras' default) or a non-negative number.",
        )


def check_epsilon(where: str, value, name: str = "epsilon") -> None:
    check_scalar(
        where, name, value, low=0.0, low_open=True, fix="Use a small positive value such as 1e-7."
    )


def below_one(where: str, name: str, value) -> None:
    check_scalar(
        where,
        name,
        value,
        low=0.0,
        high=1.0,
        high_open=True,
        fix=f"gradopt needs {name} in [0, 1) (at 1 the average never forgets); Keras' "
        "defaults are 0.9 and 0.999.",
    )


def check_int(where: str, name: str, value, low: int, fix: str = "") -> None:
    """An int >= ``low``: a TypeError for what is not a real number, a ValueError else."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{where}: {name} must be an int >= {low}, got {value!r}. {fix}".strip())
    if not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"{where}: {name} must be an int >= {low}, got {value!r}. {fix}".strip())


def decay_stage(weight_decay, learning_rate) -> list:
    """Keras' decoupled decay ``w = w * (1 - weight_decay * lr)`` as a chain stage.

    Keras forms the factor in float32 (``1 - float32(wd * float32(lr))``); for a
    constant rate the coefficient is adjusted so that ``lr * wd`` is exactly
    the decay Keras applies (the rounding would otherwise drift by up to 1e-5
    relative over 200 steps).
    """
    if weight_decay is None:
        return []
    lr_value, wd_value = concrete_value(learning_rate), concrete_value(weight_decay)
    if lr_value and wd_value is not None and not callable(learning_rate):
        one = np.float32(1.0)
        factor = one - np.float32(wd_value) * np.float32(lr_value)
        weight_decay = (1.0 - float(factor)) / lr_value
    return [add_decayed_weights(weight_decay)]


def finish(rule, learning_rate, weight_decay) -> GradientTransformation:
    """``rule``, Keras' decoupled weight decay if any, then ``-learning_rate``."""
    decay = decay_stage(weight_decay, learning_rate)
    return chain(*rule, *decay, scale_by_learning_rate(learning_rate))


def learning_rate_at(count, *, learning_rate):
    """A constant rate or a schedule's value at ``count``."""
    return learning_rate(count) if callable(learning_rate) else learning_rate


# ----------------------------------------------------------------------------
# Keras' base-optimizer arguments


class Shared(NamedTuple):
    """The arguments every Keras optimizer takes from ``keras.optimizers.Optimizer``."""

    clipnorm: Any = None
    clipvalue: Any = None
    global_clipnorm: Any = None
    use_ema: bool = False
    ema_momentum: Any = 0.99
    ema_overwrite_frequency: Any = None
    loss_scale_factor: Any = None
    gradient_accumulation_steps: Any = None


def _on(value) -> bool:
    """Keras switches clipping on for a value that is not None and > 0 (a traced one: on)."""
    if value is None:
        return False
    x = concrete_value(value)
    return x is None or x > 0


def check_shared(where: str, shared: Shared) -> None:
    """Keras' checks of its base arguments (and the types gradopt needs)."""
    clips = [shared.clipnorm, shared.clipvalue, shared.global_clipnorm]
    for name, value in zip(("clipnorm", "clipvalue", "global_clipnorm"), clips, strict=True):
        if value is not None:
            check_scalar(where, name, value, fix="Use None (no clipping) or a positive number.")
    if sum(v is not None for v in clips) > 1:
        raise ValueError(
            f"{where}: only one of clipnorm, clipvalue and global_clipnorm can be set (as in "
            f"Keras), got clipnorm={shared.clipnorm!r}, clipvalue={shared.clipvalue!r}, "
            f"global_clipnorm={shared.global_clipnorm!r}."
        )
    check_flag(where, "use_ema", shared.use_ema)
    # checked even without use_ema (Keras ignores it then): a bad value is a mistake either way
    check_scalar(where, "ema_momentum", shared.ema_momentum, low=0.0, high=1.0, fix="Use 0.99.")
    if shared.use_ema:
        freq = shared.ema_overwrite_frequency
        if freq and (isinstance(freq, bool) or not isinstance(freq, int) or freq < 1):
            raise ValueError(
                f"{where}: ema_overwrite_frequency must be an integer >= 1 or None (as in "
                f"Keras), got {freq!r}."
            )
    if shared.loss_scale_factor is not None:
        check_scalar(
            where,
            "loss_scale_factor",
            shared.loss_scale_factor,
            low=0.0,
            low_open=True,
            fix="Use None or the factor the loss was multiplied by.",
        )
    steps = shared.gradient_accumulation_steps
    if steps:
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 2:
            raise ValueError(
                f"{where}: gradient_accumulation_steps must be an integer >= 2 or None (as in "
                f"Keras), got {steps!r}."
            )
        if shared.use_ema and shared.ema_overwrite_frequency:
            raise ValueError(
                f"{where}: gradient_accumulation_steps={steps!r} together with use_ema=True "
                f"and ema_overwrite_frequency={shared.ema_overwrite_frequency!r} is not "
                "supported by gradopt (Keras overwrites on every call of an accumulation "
                "cycle). Drop one of the three, or compose gradopt.accumulate and "
                "gradopt.average_parameters yourself."
            )


def _rate_of_calls(count, *, learning_rate, steps):
    """Keras evaluates a schedule at the number of calls, ``k * count + k - 1`` for the
    ``count``-th accumulated step of ``k`` calls."""
    calls = jnp.asarray(count).astype(jnp.int32) * steps + (steps - 1)
    return learning_rate(calls)


def rate_for(learning_rate, shared: Shared):
    """The learning rate as the optimizer's own step counter must see it."""
    steps = shared.gradient_accumulation_steps
    if steps and callable(learning_rate):
        return Bound(_rate_of_calls, learning_rate=learning_rate, steps=steps)
    return learning_rate


def _keras_ema_decay(count, *, momentum, steps):
    """Keras copies the weights into the average while its step count is 0 (``steps``
    calls with accumulation), then decays by ``momentum``."""
    return jnp.where(jnp.asarray(count) < steps, 0.0, momentum)


def wrap_shared(core, shared: Shared) -> GradientTransformation:
    """Keras' order: divide by the loss scale factor; accumulate; clip; (the rule, with
    the weight decay); then the average of the weights after every call."""
    stages = []
    if _on(shared.clipnorm):
        stages.append(clip_by_norm(shared.clipnorm))
    elif _on(shared.global_clipnorm):
        stages.append(clip_by_global_norm(shared.global_clipnorm))
    elif _on(shared.clipvalue):
        stages.append(clip(shared.clipvalue))
    tx = chain(*stages, core) if stages else core
    steps = shared.gradient_accumulation_steps
    if steps:
        tx = accumulate(tx, steps)
    if shared.loss_scale_factor is not None:
        tx = chain(scale(1.0 / shared.loss_scale_factor), tx)
    if shared.use_ema:
        decay = shared.ema_momentum
        if steps:
            decay = Bound(_keras_ema_decay, momentum=decay, steps=steps)
        tx = average_parameters(
            tx, decay=decay, overwrite_every=shared.ema_overwrite_frequency or None
        )
    return tx


def keras_optimizer(where: str, build, learning_rate, shared: Shared) -> GradientTransformation:
    """Check the shared arguments, build the rule with the rate its counter sees, wrap it."""
    check_shared(where, shared)
    tx = wrap_shared(build(rate_for(learning_rate, shared)), shared)
    return real_only(tx, name=where, reason=REAL_ONLY)


# ----------------------------------------------------------------------------
# rules that read the parameters (FTRL, Lamb, Adafactor, Muon, schedule-free AdamW)


class KerasRuleState(NamedTuple):
    """State of a Keras rule that reads the weights: the step count and per-leaf slots."""

    count: jax.Array  # type: ignore[assignment]  # the field shadows tuple.count
    slots: Any


def leaf_path(path) -> str:
    """A leaf's path as Keras writes a variable's: the keys joined by ``/``."""
    parts = []
    for key in path:
        for attr in ("key", "name", "idx"):
            if hasattr(key, attr):
                parts.append(str(getattr(key, attr)))
                break
        else:
            parts.append(str(key))
    return "/".join(parts)


def square(g):
    """``g**2``, saturating at float32's largest value instead of overflowing (an extreme
    but finite gradient must not turn the statistics into inf; see docs/guarantees.md)."""
    return saturate(g * g, jnp.float32)


def safe_mean(x, axis=None, keepdims=False):
    """``mean(x)`` as a sum of ``x / n``: no overflow for entries near float32's maximum."""
    n = x.size if axis is None else x.shape[axis]
    return jnp.sum(x / n, axis=axis, keepdims=keepdims)


def keras_decay(w, weight_decay, lr):
    """Keras' decay on the torch backend: ``w * (1 - weight_decay * lr)``, the factor in float32."""
    if weight_decay is None:
        return w
    return w * (1 - jnp.asarray(weight_decay, jnp.float32) * lr)


def _store(delta, dtype):
    """``delta`` in ``dtype``, saturating at its largest finite value (a float16 or
    bfloat16 leaf's change may exceed the dtype's range, which would round to inf)."""
    if not jnp.issubdtype(dtype, jnp.floating):
        return delta.astype(dtype)
    top = float(jnp.finfo(dtype).max)
    return jnp.clip(delta, -top, top).astype(dtype)


def _rule_init(params, *, init_leaf, step_leaf, learning_rate, hyper):
    del step_leaf, learning_rate
    slots = jax.tree_util.tree_map_with_path(
        lambda path, p: place_like(init_leaf(jnp.asarray(p), path=leaf_path(path), **hyper), p),
        params,
    )
    return KerasRuleState(zero_count(), slots)


def _rule_update(
    updates, state, params=None, *, init_leaf, step_leaf, learning_rate, hyper, **extra
):
    del init_leaf, extra
    where_ = hyper.get("where", "gradopt.compat.keras")
    if params is None:
        raise ValueError(
            f"{where_}: update needs the parameters (the rule reads the weights): call "
            "tx.update(grads, state, params)."
        )
    check_same_structure(updates, params, what="updates", reference_what="params")
    t = jnp.asarray(state.count).astype(jnp.float32) + 1.0
    lr = jnp.asarray(learning_rate_at(state.count, learning_rate=learning_rate)).astype(jnp.float32)
    paths_and_grads, treedef = jax.tree_util.tree_flatten_with_path(updates)
    slots = treedef.flatten_up_to(state.slots)
    out, new_slots = [], []
    for (path, g), p, slot in zip(paths_and_grads, jax.tree.leaves(params), slots, strict=True):
        p = jnp.asarray(p)
        w = p.astype(jnp.float32)
        delta, slot = step_leaf(
            jnp.asarray(g).astype(jnp.float32), w, slot, t=t, lr=lr, path=leaf_path(path), **hyper
        )
        out.append(_store(delta, jnp.asarray(g).dtype))
        new_slots.append(slot)
    return (
        jax.tree.unflatten(treedef, out),
        KerasRuleState(increment(state.count), jax.tree.unflatten(treedef, new_slots)),
    )


def keras_rule(init_leaf, step_leaf, learning_rate, **hyper) -> GradientTransformation:
    """A stage that runs ``step_leaf(g, w, slots, t=, lr=, path=, **hyper) -> (delta, slots)``
    on every leaf (float32, ``t`` the 1-based step, ``lr`` the rate at this step) and
    returns the deltas, the change of the weights (``w_new - w`` for a rule that solves
    for the new weights, ``-lr * step`` plus the decay for an additive one, which keeps
    steps far below ``w``'s resolution); its ``update`` needs ``params``."""
    return transform(
        _rule_init,
        _rule_update,
        init_leaf=init_leaf,
        step_leaf=step_leaf,
        learning_rate=learning_rate,
        hyper=hyper,
    )
