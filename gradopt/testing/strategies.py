"""Hypothesis strategies for random parameter and gradient trees.

Importing this module needs ``hypothesis`` (``pip install hypothesis``);
``import gradopt`` and ``import gradopt.testing`` do not.

Example:
  >>> from hypothesis import given, settings
  >>> from gradopt.testing import strategies
  >>> @settings(max_examples=5, deadline=None)
  ... @given(params=strategies.trees())
  ... def test_init_keeps_structure(params):
  ...     import jax, gradopt
  ...     state = gradopt.sgd(0.1, momentum=0.9).init(params)
  ...     assert len(jax.tree.leaves(state)) >= len(jax.tree.leaves(params))
  >>> test_init_keeps_structure()
"""

from __future__ import annotations

from typing import Any

try:
    from hypothesis import strategies as st
    from hypothesis.extra import numpy as hnp
except ModuleNotFoundError as e:  # pragma: no cover - exercised in a subprocess test
    raise ImportError(
        "gradopt.testing.strategies needs hypothesis, which gradopt itself does not depend "
        "on. Install it with `pip install hypothesis` (or `pip install 'gradopt[test]'`)."
    ) from e

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["arrays", "complex_dtypes", "float_dtypes", "gradients", "leaves", "trees"]

_KEYS = ("a", "b", "bias", "w", "layer_0", "z")


def float_dtypes(*, float64: bool | None = None) -> st.SearchStrategy:
    """float16, bfloat16, float32 and, if ``float64`` (default: when JAX runs with
    ``jax_enable_x64``), float64."""
    if float64 is None:
        float64 = bool(jax.config.read("jax_enable_x64"))
    names = [jnp.float16, jnp.bfloat16, jnp.float32] + ([jnp.float64] if float64 else [])
    return st.sampled_from([jnp.dtype(d) for d in names])


def complex_dtypes(*, complex128: bool | None = None) -> st.SearchStrategy:
    """complex64 and, if ``complex128`` (default: when JAX runs with ``jax_enable_x64``),
    complex128. Combine with :func:`float_dtypes` for mixed trees:
    ``st.one_of(float_dtypes(), complex_dtypes())``."""
    if complex128 is None:
        complex128 = bool(jax.config.read("jax_enable_x64"))
    names = [jnp.complex64] + ([jnp.complex128] if complex128 else [])
    return st.sampled_from([jnp.dtype(d) for d in names])


def _is_complex(dtype) -> bool:
    return bool(jnp.issubdtype(dtype, jnp.complexfloating))


def _elements(low: float, high: float) -> st.SearchStrategy:
    return st.floats(low, high, width=32, allow_nan=False, allow_subnormal=False)


def arrays(
    dtype: Any = None,
    *,
    shape: tuple[int, ...] | None = None,
    max_dims: int = 3,
    max_side: int = 3,
    allow_empty: bool = True,
    min_value: float = -10.0,
    max_value: float = 10.0,
) -> st.SearchStrategy:
    """JAX arrays of a random (or the given) shape and float or complex dtype.

    Args:
      dtype: a dtype, a strategy of dtypes, or None for any of :func:`float_dtypes`.
        A complex dtype (:func:`complex_dtypes`) gets independent real and
        imaginary parts, each in ``[min_value, max_value]``.
      shape: a fixed shape; by default 0 to ``max_dims`` dimensions of 0 (if
        ``allow_empty``) to ``max_side`` elements, so 0-d and zero-size arrays occur.
      min_value, max_value: the range of the values (drawn in float32, then
        rounded to ``dtype``; keep them inside the dtype's range).
    """
    if dtype is None:
        dtypes = float_dtypes()
    elif isinstance(dtype, st.SearchStrategy):
        dtypes = dtype.map(jnp.dtype)
    else:
        dtypes = st.just(jnp.dtype(dtype))
    if shape is None:
        shapes = hnp.array_shapes(
            min_dims=0, max_dims=max_dims, min_side=0 if allow_empty else 1, max_side=max_side
        )
    else:
        shapes = st.just(tuple(shape))
    elements = _elements(min_value, max_value)
    values = hnp.arrays(np.float32, shapes, elements=elements)

    def build(vd):
        x, d = vd
        if not _is_complex(d):
            return st.just(jnp.asarray(x).astype(d))
        imag = hnp.arrays(np.float32, x.shape, elements=elements)
        return imag.map(lambda y: jax.lax.complex(jnp.asarray(x), jnp.asarray(y)).astype(d))

    return st.tuples(values, dtypes).flatmap(build)


def leaves(
    dtype: Any = None,
    *,
    none: bool = True,
    python_scalars: bool = True,
    allow_empty: bool = True,
    min_value: float = -10.0,
    max_value: float = 10.0,
) -> st.SearchStrategy:
    """One parameter leaf: an array (0-d, zero-size or not), a Python float, or None."""
    parts = [
        arrays(dtype, allow_empty=allow_empty, min_value=min_value, max_value=max_value),
        arrays(dtype, shape=(), min_value=min_value, max_value=max_value),
    ]
    if python_scalars:
        parts.append(_elements(min_value, max_value))
    if none:
        parts.append(st.none())
    return st.one_of(*parts)


def trees(
    leaf: st.SearchStrategy | None = None,
    *,
    max_leaves: int = 6,
    allow_empty: bool = True,
) -> st.SearchStrategy:
    """Nested dicts, lists and tuples of leaves (by default :func:`leaves`).

    ``allow_empty`` allows empty containers and zero-size arrays (then a tree may
    have no elements at all).
    """
    leaf = leaves(allow_empty=allow_empty) if leaf is None else leaf
    low = 0 if allow_empty else 1

    def extend(children):
        return st.one_of(
            st.dictionaries(st.sampled_from(_KEYS), children, min_size=low, max_size=3),
            st.lists(children, min_size=low, max_size=3),
            st.lists(children, min_size=low, max_size=3).map(tuple),
        )

    return st.recursive(leaf, extend, max_leaves=max_leaves)


@st.composite
def gradients(draw, params, *, min_value: float = -10.0, max_value: float = 10.0):
    """A gradient tree for ``params``: same structure, shapes and dtypes.

    A Python-float parameter gets a float32 0-d gradient (what ``jax.grad``
    returns for it); ``None`` stays ``None``; a complex parameter gets a
    complex gradient with independent real and imaginary parts.
    """

    def one(p):
        dtype = jnp.float32 if isinstance(p, float) else jnp.result_type(p)
        elements = _elements(min_value, max_value)
        values = jnp.asarray(draw(hnp.arrays(np.float32, jnp.shape(p), elements=elements)))
        if _is_complex(dtype):
            imag = jnp.asarray(draw(hnp.arrays(np.float32, jnp.shape(p), elements=elements)))
            return jax.lax.complex(values, imag).astype(dtype)
        return values.astype(dtype)

    return jax.tree.map(one, params)
