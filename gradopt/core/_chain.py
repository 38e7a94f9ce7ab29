"""Composition: ``identity``, ``chain``, ``named_chain``, ``branch`` and ``divide``.

The data flow is explicit. In ``chain(a, b, c)`` every stage receives the
output of the stage before it and nothing else, so chains obey the laws of a
sequence: ``chain(a, chain(b, c))``, ``chain(chain(a, b), c)`` and
``chain(a, b, c)`` are the same optimizer, and a stage means the same thing in
``gradopt.chain`` and in ``optax.chain``. When a rule needs two functions of the
same input (Adam divides the bias-corrected first moment of ``g`` by the root
of the second moment of ``g``), ``branch`` feeds the input to both and joins
their outputs; ``divide(numerator, denominator)`` is the join that Adam, AdaMax
and Nadam use.

Consecutive elementwise stages (see :mod:`gradopt.core._elementwise`) are fused:
the chain runs them as one expression per leaf in one traversal of the tree.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp

from gradopt.core._base import (
    EmptyState,
    GradientTransformation,
    call_update,
    check_same_shapes,
    check_same_structure,
    transform,
)
from gradopt.core._checks import check_gradients
from gradopt.core._elementwise import Branch, Elementwise, Seq, elementwise, from_node, node_of, run
from gradopt.core._numerics import complex_dtype, compute_dtype, div_real, is_complex, real_dtype


def _check_transforms(transforms, where: str):
    for i, tx in enumerate(transforms):
        if not (callable(getattr(tx, "init", None)) and callable(getattr(tx, "update", None))):
            raise TypeError(
                f"{where}: argument {i} is {tx!r} of type {type(tx).__name__}, which is not a "
                "gradient transformation. Pass objects with `init` and `update` methods, such "
                "as gradopt.adam(1e-3) or any optax.GradientTransformation."
            )


def _run_stages(transforms, states, updates, params, extra):
    """Run the stages in order, fusing each run of consecutive elementwise stages."""
    new_states = list(states)
    i, n = 0, len(transforms)
    while i < n:
        if node_of(transforms[i]) is None:
            updates, new_states[i] = call_update(transforms[i], updates, states[i], params, extra)
            i += 1
            continue
        j = i
        while j < n and node_of(transforms[j]) is not None:
            j += 1
        group = Seq(tuple(node_of(tx) for tx in transforms[i:j]))
        updates, new_states[i:j] = run(group, updates, tuple(states[i:j]), params)
        i = j
    return updates, new_states


# ----------------------------------------------------------------------------
# identity


def _identity_init(params):
    del params
    return EmptyState()


def _identity_leaf(x, fields, ctx, p):
    del fields, ctx, p
    return x, {}


def _no_step(state):
    del state
    return None, {}


_IDENTITY = Elementwise("gradopt.identity", _identity_init, _no_step, _identity_leaf)


def identity() -> GradientTransformation:
    """The transform that returns the updates unchanged (state :class:`EmptyState`)."""
    return elementwise(_IDENTITY)


# ----------------------------------------------------------------------------
# chain and named_chain


def _chain_init(params, *, transforms):
    return tuple(tx.init(params) for tx in transforms)


def _chain_update(updates, state, params=None, *, transforms, **extra):
    updates = check_gradients(updates, params)
    updates, new_states = _run_stages(transforms, list(state), updates, params, extra)
    return updates, tuple(new_states)


def chain(*transforms) -> GradientTransformation:
    """Apply transforms in sequence; the state is the tuple of their states.

    Every stage receives the output of the stage before it, and nothing else:
    ``chain(a, chain(b, c))`` and ``chain(a, b, c)`` are the same optimizer.
    Extra keyword arguments given to ``update`` (``value=loss``, say) reach
    every stage that accepts ``**extra``; optax transforms that do not are
    called without them. Consecutive elementwise gradopt stages run fused, as
    one expression per parameter leaf.

    Example:
      >>> import jax.numpy as jnp, gradopt
      >>> tx = gradopt.chain(gradopt.clip_by_global_norm(2.5), gradopt.sgd(0.5))
      >>> state = tx.init({"w": jnp.zeros(2)})
      >>> updates, state = tx.update({"w": jnp.array([3.0, 4.0])}, state)
      >>> updates["w"]  # the gradient of norm 5 clipped to norm 2.5, times -0.5
      Array([-0.75, -1.  ], dtype=float32)
    """
    _check_transforms(transforms, "gradopt.chain")
    nodes = tuple(node_of(tx) for tx in transforms)
    if all(node is not None for node in nodes):
        return from_node(Seq(nodes))  # type: ignore[arg-type]
    return transform(_chain_init, _chain_update, transforms=tuple(transforms))


def _named_chain_init(params, *, names, transforms):
    return {name: tx.init(params) for name, tx in zip(names, transforms, strict=True)}


def _named_chain_update(updates, state, params=None, *, names, transforms, **extra):
    updates = check_gradients(updates, params)
    states = [state[name] for name in names]
    updates, new_states = _run_stages(transforms, states, updates, params, extra)
    return updates, dict(zip(names, new_states, strict=True))


def named_chain(*named_transforms: tuple[str, Any]) -> GradientTransformation:
    """Like :func:`chain`, with a name for every stage; the state is a dict by name.

    Example:
      >>> import jax.numpy as jnp, gradopt
      >>> tx = gradopt.named_chain(
      ...     ("clip", gradopt.clip_by_global_norm(1.0)), ("adam", gradopt.adam(1e-3)))
      >>> sorted(tx.init({"w": jnp.zeros(2)}))
      ['adam', 'clip']
    """
    for i, item in enumerate(named_transforms):
        if not (isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str)):
            raise TypeError(
                f"gradopt.named_chain: argument {i} is {item!r}; each argument must be a "
                "(name, transform) pair such as ('adam', gradopt.adam(1e-3))."
            )
    names = tuple(name for name, _ in named_transforms)
    if len(set(names)) != len(names):
        raise ValueError(f"gradopt.named_chain: stage names must be unique, got {list(names)}.")
    transforms = tuple(tx for _, tx in named_transforms)
    _check_transforms(transforms, "gradopt.named_chain")
    return transform(_named_chain_init, _named_chain_update, names=names, transforms=transforms)


# ----------------------------------------------------------------------------
# branch and divide


def _branch_init(params, *, transforms, join):
    del join
    return tuple(tx.init(params) for tx in transforms)


def _branch_update(updates, state, params=None, *, transforms, join, **extra):
    updates = check_gradients(updates, params)
    outs, new_states = [], []
    for tx, s in zip(transforms, state, strict=True):
        out, s = call_update(tx, updates, s, params, extra)
        outs.append(out)
        new_states.append(s)
    for out in outs[1:]:
        check_same_structure(out, outs[0], what="branch output", reference_what="first output")
        check_same_shapes(out, outs[0], what="branch output", reference_what="first output")
    joined = jax.tree.map(
        lambda u, *xs: _join_leaf(join, u, xs), updates, *outs, is_leaf=lambda x: x is None
    )
    return joined, tuple(new_states)


def _join_leaf(join, u, xs):
    if u is None:  # a None leaf of the parameters stays None
        return None
    u = jnp.asarray(u)
    c = compute_dtype(real_dtype(u.dtype))
    xs = tuple(jnp.asarray(x) for x in xs)
    return join(*(x.astype(complex_dtype(c) if is_complex(x.dtype) else c) for x in xs)).astype(
        u.dtype
    )


def branch(*transforms, join: Callable[..., Any]) -> GradientTransformation:
    """Feed the same input to every transform and join their outputs leaf by leaf.

    ``branch(a, b, join=f)`` outputs ``f(a(u), b(u))`` for every leaf; the
    state is the tuple of the branches' states. ``join`` is called on arrays
    in the compute dtype (float32 or wider) and should be a module-level
    function, so that equal configurations compare equal.

    Args:
      *transforms: two or more gradient transformations.
      join: an elementwise function of as many arrays as there are branches.
        Keyword only.

    Returns:
      A gradient transformation; fused into one expression per leaf when
      every branch is elementwise.
    """
    _check_transforms(transforms, "gradopt.branch")
    if len(transforms) < 2:
        raise ValueError(
            f"gradopt.branch: needs two or more transforms, got {len(transforms)}. A single "
            "transform needs no branch: use it directly."
        )
    if not callable(join):
        raise TypeError(
            f"gradopt.branch: join must be a function of {len(transforms)} arrays, got {join!r}."
        )
    nodes = tuple(node_of(tx) for tx in transforms)
    if all(node is not None for node in nodes):
        return from_node(Branch(nodes, join))  # type: ignore[arg-type]
    return transform(_branch_init, _branch_update, transforms=tuple(transforms), join=join)


def quotient(numerator, denominator):
    """``numerator / denominator``: the join of :func:`divide`.

    A complex numerator (a first moment of complex updates) over a real
    denominator (the root of a second moment) has both parts divided.
    """
    return div_real(numerator, denominator)


def divide(numerator, denominator) -> GradientTransformation:
    """``numerator(u) / denominator(u)``: two statistics of the same input, divided.

    Adam is ``chain(divide(chain(ema(b1), bias_correction(b1)),
    root_mean_square(b2, eps=eps, debias=True)), scale_by_learning_rate(lr))``:
    the bias-corrected first moment of ``g`` over ``sqrt(v_hat) + eps`` built
    from the same ``g``. Equal to ``branch(numerator, denominator, join=quotient)``.

    Args:
      numerator: a gradient transformation (e.g. a moving average).
      denominator: a gradient transformation whose output is positive (e.g.
        :func:`gradopt.root_mean_square`).

    Returns:
      A gradient transformation with state ``(numerator_state, denominator_state)``.
    """
    return branch(numerator, denominator, join=quotient)


_ = Mapping
