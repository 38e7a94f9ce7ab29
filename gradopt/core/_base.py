"""The transform protocol: ``GradientTransformation``, ``identity``, ``chain``,
``named_chain`` and ``apply_updates``.

Every transform in gradopt is a pair of pure functions. ``init(params)`` builds
an immutable state pytree; ``update(updates, state, params=None, **extra)``
returns the transformed updates and the next state. Hyperparameters are bound
to module-level functions with :class:`Bound`, which compares by value, so two
optimizers built with the same arguments are equal and hash alike (passing one
as a static argument of ``jax.jit`` does not recompile).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradopt.core._checks import check_gradients
from gradopt.core._numerics import compute_dtype, is_complex

PyTree = Any
Params = Any
Updates = Any
State = Any


class GradientTransformation(NamedTuple):
    """A pair of pure functions ``(init, update)``; duck-compatible with optax.

    Attributes:
      init: ``init(params) -> state``.
      update: ``update(updates, state, params=None, **extra) -> (updates, state)``.
    """

    init: Callable[..., State]
    update: Callable[..., tuple[Updates, State]]


def _value_key(value: Any) -> Any:
    """A hashable key that is equal for equal hyperparameters.

    Python scalars and strings compare by type and value, tuples element by
    element; anything else (arrays, tracers, closures) by identity, which is
    stable because the :class:`Bound` holding it keeps it alive.
    """
    if value is None or isinstance(value, (bool, int, float, complex, str)):
        return (type(value).__name__, value)
    if isinstance(value, tuple):
        return (type(value).__name__, tuple(_value_key(v) for v in value))
    if isinstance(value, Mapping):
        return ("mapping", tuple(sorted((str(k), _value_key(v)) for k, v in value.items())))
    try:
        hash(value)
    except TypeError:  # arrays and tracers
        return ("id", id(value))
    return ("obj", value)


class Bound:
    """A module-level function with keyword arguments bound to it.

    Unlike ``functools.partial``, two ``Bound`` objects are equal when they bind
    the same function to equal arguments. gradopt builds every ``init`` and
    ``update`` this way, so equal configurations are equal optimizers.
    """

    __slots__ = ("fn", "kwargs", "_key", "__weakref__")  # jax.jit(tx.update) needs a weakref

    def __init__(self, fn: Callable[..., Any], /, **kwargs: Any):
        self.fn = fn
        self.kwargs = kwargs
        self._key = (fn, tuple(sorted((k, _value_key(v)) for k, v in kwargs.items())))

    def __call__(self, *args: Any, **extra: Any) -> Any:
        return self.fn(*args, **extra, **self.kwargs)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Bound) and self._key == other._key

    def __hash__(self) -> int:
        return hash(self._key)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.kwargs.items())
        return f"{self.fn.__name__}({args})"


def transform(init_fn: Callable[..., State], update_fn: Callable[..., Any], **hyper: Any):
    """Build a ``GradientTransformation`` from two module-level functions.

    ``init_fn(params, **hyper)`` and ``update_fn(updates, state, params, **extra,
    **hyper)`` receive the hyperparameters as keyword arguments. ``update_fn``
    must accept ``**extra`` and ignore what it does not use.
    """
    init = Bound(init_fn, **hyper)
    return GradientTransformation(init, Bound(_checked, fn=Bound(update_fn, **hyper), init=init))


# ----------------------------------------------------------------------------
# calling a stage, and checking a state against what init builds


class EmptyState(NamedTuple):
    """The state of a transform that keeps none."""


def _accepts_extra(update: Callable[..., Any]) -> bool:
    """True if ``update`` takes ``**kwargs`` (gradopt and optax's extra-args transforms)."""
    if isinstance(update, Bound):
        return True
    try:
        parameters = inspect.signature(update).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters)


def call_update(tx, updates, state, params, extra: Mapping[str, Any]):
    """Call ``tx.update``, passing the extra arguments only if it accepts them."""
    if extra and _accepts_extra(tx.update):
        return tx.update(updates, state, params, **extra)
    return tx.update(updates, state, params)


_depth = [0]  # > 0 while a gradopt update runs: nested stages skip the state check
_expected_cache: dict[Any, Any] = {}


def _signature(tree, with_dtypes: bool):
    """Tree structure and, with ``with_dtypes``, the leaves' dtypes.

    Shapes are left to the per-leaf checks of the updates, which name the leaf.
    """
    leaves, treedef = jax.tree.flatten(tree)
    return treedef, tuple(str(jnp.result_type(x)) if with_dtypes else None for x in leaves)


def _expected_state(init, like, with_dtypes: bool):
    key_like = (
        jax.tree.structure(like),
        tuple((jnp.shape(x), str(jnp.result_type(x))) for x in jax.tree.leaves(like)),
    )
    try:
        key = (init, key_like, with_dtypes)
        hash(key)
    except TypeError:
        key = None
    if key is not None and key in _expected_cache:
        return _expected_cache[key]
    abstract = jax.eval_shape(init, like)
    sig = _signature(abstract, with_dtypes)
    if key is not None:
        if len(_expected_cache) > 512:
            _expected_cache.clear()
        _expected_cache[key] = sig
    return sig


def check_state(init, state, updates, params) -> None:
    """Raise a ValueError unless ``state`` is shaped as ``init`` builds it.

    Compares the tree structure (which includes the state's NamedTuple types)
    and, when ``params`` are given, the dtypes with those of ``init(params)``
    (evaluated abstractly, once per configuration and tree). Shapes are checked
    leaf by leaf where the updates meet the state, naming the leaf.
    """
    like = updates if params is None else params
    # complex updates without params: the dtypes too, so that a state built from
    # real parameters is refused here rather than mixed with complex numbers
    with_dtypes = params is not None or any(
        is_complex(jnp.result_type(x)) for x in jax.tree.leaves(updates)
    )
    want_def, want = _expected_state(init, like, with_dtypes)
    got_def, got = _signature(state, with_dtypes)
    if got_def != want_def or got != want:
        name = getattr(getattr(init, "fn", None), "__name__", repr(init))
        raise ValueError(
            "The optimizer state does not match what this optimizer's init builds "
            f"(init: {name}) for {'params' if params is not None else 'updates'} of structure "
            f"{jax.tree.structure(like)}.\n  state given: {got_def}\n  init builds: {want_def}\n"
            + ("" if got_def != want_def else f"  leaves given: {got}\n  init's leaves: {want}\n")
            + (
                "Complex updates need the state init builds from the complex parameters. "
                if with_dtypes and params is None
                else ""
            )
            + "Pass the state returned by this optimizer's own init(params) (or by its "
            "previous update); a state of another optimizer or configuration cannot be reused."
        )


def checked_update(fn, init, updates, state, params=None, **extra):
    """Run ``fn`` after checking ``state`` against ``init``, once per outermost call."""
    if _depth[0] == 0:
        updates = check_gradients(updates, params)
        check_state(init, state, updates, params)
    _depth[0] += 1
    try:
        return fn(updates, state, params, **extra)
    finally:
        _depth[0] -= 1


def _checked(updates, state, params=None, *, fn, init, **extra):
    return checked_update(fn, init, updates, state, params, **extra)


# ----------------------------------------------------------------------------
# trees


def check_same_structure(tree, reference, *, what: str, reference_what: str) -> None:
    """Raise a ValueError that shows both structures if the trees differ."""
    got = jax.tree.structure(tree)
    want = jax.tree.structure(reference)
    if got != want:  # type: ignore[operator]  # PyTreeDef defines == and != at run time
        raise ValueError(
            f"The {what} tree does not match the {reference_what} tree.\n"
            f"  {what}: {got}\n  {reference_what}: {want}\n"
            "Pass a tree with the same structure as the parameters the optimizer was "
            "initialised with."
        )


def check_same_shapes(tree, reference, *, what: str, reference_what: str) -> None:
    """Raise a ValueError naming the first leaf whose shape differs between two trees."""
    paths = jax.tree_util.tree_flatten_with_path(tree)[0]
    for (path, leaf), ref in zip(paths, jax.tree.leaves(reference), strict=True):
        got, want = jnp.shape(leaf), jnp.shape(ref)
        if got != want:
            raise ValueError(
                f"The {what} leaf at {jax.tree_util.keystr(path) or '(root)'} has shape {got}, "
                f"but the {reference_what} leaf there has shape {want}. Pass {what} with the "
                "shapes of the parameters the optimizer was initialised with."
            )


def tree_map(
    fn: Callable[..., Any],
    tree,
    *rest,
    what: str = "updates",
    rest_what: str = "state",
    same_shapes: bool = True,
):
    """``jax.tree.map`` that first checks every tree against ``tree``.

    The structures must be equal, and, unless ``same_shapes=False`` (a mask of
    booleans, say), so must the shapes of corresponding leaves; a mismatch
    raises a ValueError that names both. Updates and grads must be floating
    point (:func:`gradopt.core._checks.check_gradients`); Python scalar leaves are
    turned into arrays.
    """
    if what in ("updates", "grads"):
        tree = check_gradients(tree, what=what)
    if same_shapes:
        rest = tuple(jax.tree.map(_scalar_as_array, other) for other in rest)
    for other in rest:
        check_same_structure(tree, other, what=what, reference_what=rest_what)
        if same_shapes:
            check_same_shapes(tree, other, what=what, reference_what=rest_what)
    return jax.tree.map(fn, tree, *rest)


def _scalar_as_array(x):
    """A Python int or float leaf as an array; anything else unchanged."""
    if isinstance(x, (int, float)) and not isinstance(x, bool):
        return jnp.asarray(x)
    return x


def apply_updates(params: Params, updates: Updates) -> Params:
    """Return ``params + updates``, each result cast to its parameter's dtype.

    Complex parameters take complex (or real) updates; a complex update for a
    real parameter raises a TypeError (it would drop the imaginary part).

    The sign lives in the transforms: a descent step's updates are already
    negative multiples of the gradient. Structures and leaf shapes must match
    (a ValueError names the first leaf that differs; JAX would broadcast).
    """
    check_same_structure(updates, params, what="updates", reference_what="params")
    check_same_shapes(updates, params, what="updates", reference_what="params")

    def add(p, u):
        if p is None:
            return None
        p = jnp.asarray(p)
        if is_complex(jnp.result_type(u)) and not is_complex(p.dtype):
            raise TypeError(
                f"apply_updates: a complex update ({jnp.result_type(u).name}) for a real "
                f"parameter ({p.dtype.name}) would drop its imaginary part. Give the "
                "optimizer gradients of the parameters' own dtypes (a real loss of real "
                "parameters has real gradients)."
            )
        return (p.astype(compute_dtype(p.dtype)) + u.astype(compute_dtype(p.dtype))).astype(p.dtype)

    return jax.tree.map(add, params, updates, is_leaf=lambda x: x is None)
