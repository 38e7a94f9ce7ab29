"""Elementwise stages and how a chain fuses them into one pass per leaf.

Most primitives act on each coordinate on its own: a moving average, a bias
correction, a division by a root mean square, a learning rate. Such a stage is
described by an :class:`Elementwise` spec instead of a whole ``update``:

* ``init(params, **hyper) -> state``: the stage's state NamedTuple;
* ``step(state, **hyper) -> (ctx, scalars)``: the per-step scalar work, done
  once per step and not once per leaf (the step counter, ``1 / (1 - b1**t)``,
  a schedule's value); ``scalars`` are the new values of the state's scalar
  fields and ``ctx`` is what the leaves need;
* ``leaf(x, fields, ctx, p, **hyper) -> (x, fields)``: the arithmetic on one
  leaf, ``x`` the incoming update and ``fields`` the stage's per-leaf state
  (``leaf_fields``), all in the leaf's compute dtype (float32 or wider).

Stages compose into a small tree of nodes: :class:`Prim` (one spec),
:class:`Seq` (a chain) and :class:`Branch` (several stages fed the same input,
their outputs joined, as in :func:`divide`). :func:`run` executes such a tree
with a single traversal of the parameter tree: for every leaf it applies all
stages in order as one expression, and it casts to the storage dtypes only at
the end. The state is that of the unfused stages, nested as the chains are
nested, so fusing changes how the arithmetic is scheduled, never the state or
the meaning of a stage.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradopt.core._base import Bound, GradientTransformation, checked_update
from gradopt.core._checks import check_gradients
from gradopt.core._numerics import clamp, complex_dtype, compute_dtype, is_complex, real_dtype


class Elementwise(NamedTuple):
    """The spec of an elementwise stage (see the module docstring)."""

    name: str
    init: Callable[..., Any]
    step: Callable[..., tuple[Any, dict[str, Any]]]
    leaf: Callable[..., tuple[Any, dict[str, Any]]]
    leaf_fields: tuple[str, ...] = ()
    needs_params: Callable[..., bool] = lambda **hyper: False


def no_step(state, **hyper):
    """``step`` for a stage without per-step scalars."""
    del state, hyper
    return None, {}


# ----------------------------------------------------------------------------
# nodes


class Node:
    """A tree of elementwise stages; equal when built from equal stages."""

    _key: Any

    def init(self, params) -> Any:
        raise NotImplementedError

    def needs_params(self) -> bool:
        raise NotImplementedError

    def prepare(self, state, flatten) -> Any:
        """Per-step scalar work, and the state's per-leaf fields flattened."""
        raise NotImplementedError

    def dtypes(self, prep, i) -> list[Any]:
        """The storage dtypes of leaf ``i``'s state (to choose its compute dtype)."""
        raise NotImplementedError

    def leaf(self, x, prep, i, p) -> tuple[Any, Any]:
        """The arithmetic on leaf ``i``: ``(output, new per-leaf state)``."""
        raise NotImplementedError

    def finish(self, prep, news, unflatten) -> Any:
        """The new state from the per-step scalars and the new per-leaf fields."""
        raise NotImplementedError

    def view(self, prep, i) -> Any:
        """What leaf ``i`` needs of ``prep``: the per-step scalars and its own fields."""
        raise NotImplementedError

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self._key == other._key

    def __hash__(self) -> int:
        return hash(self._key)


class Prim(Node):
    """One elementwise stage: a spec and its hyperparameters."""

    def __init__(self, spec: Elementwise, hyper: dict[str, Any]):
        self.spec = spec
        self.hyper = hyper
        self._key = ("prim", spec.name, Bound(spec.leaf, **hyper)._key)

    def init(self, params):
        return self.spec.init(params, **self.hyper)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.hyper.items())
        return f"{self.spec.name}({args})"

    def needs_params(self) -> bool:
        return self.spec.needs_params(**self.hyper)

    def prepare(self, state, flatten):
        ctx, scalars = self.spec.step(state, **self.hyper)
        fields = {}
        for name in self.spec.leaf_fields:
            tree = getattr(state, name)
            fields[name] = None if tree is None else flatten(tree, f"{self.spec.name} state")
        return (state, ctx, scalars, fields)

    def dtypes(self, prep, i):
        return [v[i].dtype for v in prep[3].values() if v is not None]

    def view(self, prep, i):
        _, ctx, _, fields = prep
        return (None, ctx, None, {k: (None if v is None else [v[i]]) for k, v in fields.items()})

    def leaf(self, x, prep, i, p):
        _, ctx, _, fields = prep
        values = {k: (None if v is None else _as_kind(v[i], x.dtype)) for k, v in fields.items()}
        return self.spec.leaf(x, values, ctx, p, **self.hyper)

    def finish(self, prep, news, unflatten):
        state, _, scalars, fields = prep
        trees = {}
        for name, old in fields.items():
            if old is not None:
                stored = [store(n[name], o.dtype) for n, o in zip(news, old, strict=True)]
                trees[name] = unflatten(stored)
        return state._replace(**trees, **scalars)


class Seq(Node):
    """Stages applied one after another (the elementwise form of a chain)."""

    def __init__(self, children: tuple[Node, ...]):
        self.children = children
        self._key = ("seq", children)

    def init(self, params):
        return tuple(c.init(params) for c in self.children)

    def __repr__(self) -> str:
        return f"chain({', '.join(map(repr, self.children))})"

    def needs_params(self) -> bool:
        return any(c.needs_params() for c in self.children)

    def prepare(self, state, flatten):
        _check_tuple(state, len(self.children), "chain")
        return tuple(c.prepare(s, flatten) for c, s in zip(self.children, state, strict=False))

    def dtypes(self, prep, i):
        return [d for c, p in zip(self.children, prep, strict=False) for d in c.dtypes(p, i)]

    def view(self, prep, i):
        return tuple(c.view(p, i) for c, p in zip(self.children, prep, strict=True))

    def leaf(self, x, prep, i, p):
        news = []
        for c, cp in zip(self.children, prep, strict=False):
            x, n = c.leaf(x, cp, i, p)
            news.append(n)
        return x, tuple(news)

    def finish(self, prep, news, unflatten):
        return tuple(
            c.finish(cp, [n[k] for n in news], unflatten)
            for k, (c, cp) in enumerate(zip(self.children, prep, strict=False))
        )


class Branch(Seq):
    """Stages that all receive the same input; ``join`` combines their outputs."""

    def __init__(self, children: tuple[Node, ...], join: Callable[..., Any]):
        super().__init__(children)
        self.join = join
        self._key = ("branch", children, join)

    def __repr__(self) -> str:
        inner = ", ".join(map(repr, self.children))
        return f"branch({inner}, join={getattr(self.join, '__name__', self.join)})"

    def prepare(self, state, flatten):
        _check_tuple(state, len(self.children), "branch")
        return tuple(c.prepare(s, flatten) for c, s in zip(self.children, state, strict=False))

    def leaf(self, x, prep, i, p):
        outs, news = [], []
        for c, cp in zip(self.children, prep, strict=False):
            o, n = c.leaf(x, cp, i, p)
            outs.append(o)
            news.append(n)
        return self.join(*outs), tuple(news)


def _as_kind(field, like_dtype):
    """A state field in the compute precision of ``like_dtype``, keeping its own kind.

    A complex field (a first moment of complex updates) is computed in the
    complex dtype of that precision, a real one (a second moment) in the real
    dtype: a real statistic is never turned complex, nor the other way round.
    """
    precision = real_dtype(like_dtype)
    return field.astype(complex_dtype(precision) if is_complex(field.dtype) else precision)


def store(x, dtype):
    """``x`` cast to a state's storage dtype, saturating at its largest finite value.

    A statistic computed in float32 for float16 storage (or a velocity that
    outgrows the dtype) keeps the largest finite value instead of becoming
    inf; NaN stays NaN. A complex value for a real state (built by ``init``
    from real parameters) raises a TypeError instead of dropping its
    imaginary part.
    """
    if is_complex(x.dtype) and not is_complex(dtype):
        raise TypeError(
            f"complex updates ({x.dtype.name}) met a real optimizer state "
            f"({jnp.dtype(dtype).name}) "
            "built by init from real parameters. Initialise the optimizer with the complex "
            "parameters it will train: opt.init(params)."
        )
    if x.dtype != dtype and jnp.issubdtype(dtype, jnp.floating):
        x = clamp(x, float(jnp.finfo(dtype).max))
    return x.astype(dtype)


def _check_tuple(state, n, what):
    if not isinstance(state, tuple) or len(state) != n:
        raise ValueError(
            f"a {what} of {n} stages got a state of type {type(state).__name__}"
            f"{f' with {len(state)} entries' if isinstance(state, tuple) else ''}. Pass the "
            "state returned by this optimizer's own init (or by its previous update)."
        )


# ----------------------------------------------------------------------------
# running a node: one traversal of the tree


def _flattener(treedef, shapes):
    def flatten(tree, what):
        leaves, got = jax.tree.flatten(tree)
        if got != treedef:
            raise ValueError(
                f"The {what} tree does not match the updates tree.\n  {what}: {got}\n"
                f"  updates: {treedef}\nPass the state returned by this optimizer's own init "
                "for parameters of this structure."
            )
        for i, (leaf, shape) in enumerate(zip(leaves, shapes, strict=False)):
            if jnp.shape(leaf) != shape:
                raise ValueError(
                    f"The updates leaf at {_paths(treedef)[i]} has shape {shape}, but the "
                    f"{what} leaf there has shape {jnp.shape(leaf)}. Pass updates with the "
                    "shapes of the parameters the optimizer was initialised with."
                )
        return leaves

    return flatten


def _paths(treedef):
    dummy = jax.tree.unflatten(treedef, list(range(treedef.num_leaves)))
    return [
        jax.tree_util.keystr(p) or "(root)"
        for p, _ in jax.tree_util.tree_flatten_with_path(dummy)[0]
    ]


def run(node: Node, updates, state, params):
    """Apply ``node`` to ``updates``: one expression per leaf, one pass over the tree."""
    updates = check_gradients(updates, params)
    leaves, treedef = jax.tree.flatten(updates)
    leaves = [jnp.asarray(u) for u in leaves]
    shapes = [u.shape for u in leaves]
    flatten = _flattener(treedef, shapes)
    if node.needs_params():
        if params is None:
            raise ValueError(
                getattr(
                    node,
                    "needs_params_message",
                    "This optimizer decays the weights and needs the parameters: call "
                    "update(updates, state, params) with the current parameters.",
                )
            )
        p_leaves = flatten(params, "params")
    else:
        p_leaves = [None] * len(leaves)
    prep = node.prepare(state, flatten)
    outs, news = [], []
    for i, (u, p) in enumerate(zip(leaves, p_leaves, strict=False)):
        # the precision of the widest of the update and the state (complex or real)
        c = compute_dtype(real_dtype(u.dtype))
        for d in node.dtypes(prep, i):
            d = compute_dtype(real_dtype(d))
            if d.itemsize > c.itemsize:
                c = d
        if is_complex(u.dtype):
            c = complex_dtype(c)
        x, new = _leaf_program(node, u.astype(c), node.view(prep, i), p)
        # an update too large for a float16 / bfloat16 leaf saturates, as the statistics do
        outs.append(store(x, u.dtype))
        news.append(new)
    new_state = node.finish(prep, news, lambda xs: jax.tree.unflatten(treedef, xs))
    return jax.tree.unflatten(treedef, outs), new_state


@functools.partial(jax.jit, static_argnums=0)
def _leaf_program(node, x, view, p):
    """One leaf's arithmetic, traced once per node and leaf signature.

    Leaves of equal shape and dtype share the traced program (a call to one
    function in the lowered module), so the tracing and lowering work grows
    with the number of distinct leaf signatures, not with the number of leaves;
    XLA inlines the calls and fuses each leaf as before.
    """
    return node.leaf(x, view, 0, p)


def _ew_init(params, *, node):
    return node.init(params)


def _ew_update(updates, state, params=None, *, node, **extra):
    del extra
    return checked_update(
        lambda u, s, p: run(node, u, s, p), Bound(_ew_init, node=node), updates, state, params
    )


def from_node(node: Node) -> GradientTransformation:
    """The gradient transformation that runs ``node``."""
    return GradientTransformation(Bound(_ew_init, node=node), Bound(_ew_update, node=node))


def elementwise(spec: Elementwise, **hyper) -> GradientTransformation:
    """A gradient transformation for one elementwise stage."""
    return from_node(Prim(spec, hyper))


def node_of(tx) -> Node | None:
    """The node of an elementwise gradopt transform, else None (optax's, wrappers...)."""
    update = getattr(tx, "update", None)
    if isinstance(update, Bound) and update.fn is _ew_update:
        return update.kwargs["node"]
    return None


__all__ = [
    "Elementwise", "Prim", "Seq", "Branch", "run", "elementwise", "from_node", "node_of", "store",
]  # fmt: skip
