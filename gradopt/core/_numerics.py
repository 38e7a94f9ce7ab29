"""Numerics shared by the transforms: compute dtypes, hyperparameters as arrays,
saturating step counters, per-step scalars, state leaves built like the parameters.

Every transform computes in float32 or wider (``compute_dtype``), keeps its step
counters in int32 saturating at the maximum (``increment``), and builds its
per-parameter state with each parameter's shape and sharding (``full_like``).

Complex parameters (``docs/complex.md``): a statistic of ``g`` itself (a first
moment, a velocity) is complex like the parameter; a statistic of ``|g|**2``
(a second moment, a sum of squares, an infinity norm) is real, stored in the
parameter's real dtype (``real_dtype``: float32 for complex64). ``abs_sq``,
``mul_real`` and ``div_real`` are the operations that meet the two kinds; on
real arrays they are the plain ``x * x``, ``x * r`` and ``x / r``.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

_INT32_MAX = 2**31 - 1


def is_complex(dtype) -> bool:
    """True for complex64 and complex128."""
    return bool(jnp.issubdtype(jnp.dtype(dtype), jnp.complexfloating))


def real_dtype(dtype) -> jnp.dtype:
    """The dtype of the real and imaginary parts of a complex dtype; a real dtype unchanged."""
    dtype = jnp.dtype(dtype)
    if is_complex(dtype):
        return jnp.dtype(jnp.float64) if dtype.itemsize == 16 else jnp.dtype(jnp.float32)
    return dtype


def complex_dtype(dtype) -> jnp.dtype:
    """The complex dtype whose parts have at least ``dtype``'s precision.

    float64 gives complex128; float32, bfloat16 and float16 give complex64
    (JAX has no complex bfloat16 or float16); a complex dtype is unchanged.
    """
    dtype = jnp.dtype(dtype)
    if is_complex(dtype):
        return dtype
    return jnp.dtype(jnp.complex128) if dtype.itemsize == 8 else jnp.dtype(jnp.complex64)


def compute_dtype(dtype) -> jnp.dtype:
    """The dtype arithmetic is done in: float32 for low-precision floats, else ``dtype``."""
    dtype = jnp.dtype(dtype)
    if jnp.issubdtype(dtype, jnp.floating):
        # Not jnp.promote_types: it refuses bfloat16 -> float32 under strict promotion.
        return jnp.dtype(jnp.float32) if dtype.itemsize < 4 else dtype
    return dtype


def as_compute(x):
    """Upcast an array to its compute dtype (bfloat16 and float16 to float32)."""
    x = jnp.asarray(x)
    return x.astype(compute_dtype(x.dtype))


def hyper(value, like):
    """A hyperparameter (Python number or scalar array) as an array of ``like``'s dtype.

    Python numbers stay weakly typed; arrays are cast, so a float32 traced
    learning rate may multiply a float64 update under strict dtype promotion.
    """
    if isinstance(value, (int, float)):
        return value
    return jnp.asarray(value).astype(jnp.result_type(like))


def increment(count):
    """``count + 1`` for an int32 step counter, saturating at the int32 maximum."""
    count = jnp.asarray(count, jnp.int32)
    return count + (count < _INT32_MAX).astype(jnp.int32)  # no jnp.where: no nested jit


def zero_count():
    return jnp.zeros([], jnp.int32)


def statistic_dtype(leaf_dtype, dtype=None, *, real: bool = False) -> jnp.dtype:
    """The storage dtype of a per-parameter statistic of a leaf of ``leaf_dtype``.

    ``real=False`` (a statistic of ``g``: a moving average, a velocity): ``dtype``
    or the leaf's dtype; for a complex leaf a real ``dtype`` sets the precision
    of the complex storage (bfloat16 -> complex64, see :func:`complex_dtype`).
    ``real=True`` (a statistic of ``|g|**2``): ``dtype`` or the leaf's real dtype.
    """
    leaf_dtype = jnp.dtype(leaf_dtype)
    if real:
        return jnp.dtype(dtype) if dtype is not None else real_dtype(leaf_dtype)
    if dtype is None:
        return leaf_dtype
    return complex_dtype(dtype) if is_complex(leaf_dtype) else jnp.dtype(dtype)


def full_like(params, value, dtype=None, *, real: bool = False):
    """``value`` with each leaf's shape and sharding, in ``dtype`` (None: the leaf's dtype).

    Every ``init`` builds its per-parameter state with this, so a state leaf
    lives where its parameter lives (same sharding, same devices) instead of on
    the default device. Works for arrays, tracers and Python scalar leaves.
    The dtype of each leaf is :func:`statistic_dtype` of the parameter's dtype
    (``real=True``: a real statistic, also for complex parameters).
    """

    def leaf(p):
        out = jax.lax.full_like(p, value, statistic_dtype(jnp.result_type(p), dtype, real=real))
        # Traced (an init under jit that closes over concrete sharded params):
        # full_like drops the sharding there, so constrain it explicitly.
        concrete = isinstance(p, jax.Array) and not isinstance(p, jax.core.Tracer)
        if concrete and isinstance(out, jax.core.Tracer) and len(p.sharding.device_set) > 1:
            out = jax.lax.with_sharding_constraint(out, p.sharding)
        return out

    return jax.tree.map(leaf, params)


def place_like(tree, like):
    """Put every leaf of ``tree`` shaped like the array ``like`` where ``like`` lives.

    For an ``init`` that builds per-leaf state with plain ``jnp`` constructors:
    the leaves of the parameter's shape get the parameter's sharding (under
    ``jit``, as a sharding constraint). Other leaves, and Python scalars or
    tracers as ``like``, are returned unchanged.
    """
    if not isinstance(like, jax.Array) or isinstance(like, jax.core.Tracer):
        return tree

    def leaf(x):
        if jnp.shape(x) != like.shape:
            return x
        if isinstance(x, jax.core.Tracer):
            if len(like.sharding.device_set) > 1:
                return jax.lax.with_sharding_constraint(x, like.sharding)
            return x
        return jax.device_put(x, like.sharding)

    return jax.tree.map(leaf, tree)


def zeros_like(params, dtype=None, *, real: bool = False):
    """Zeros with each leaf's shape and sharding, in ``dtype`` if given, else the leaf's dtype."""
    return full_like(params, 0, dtype, real=real)


def wider(*dtypes) -> jnp.dtype:
    """The widest compute dtype among ``dtypes`` (float32 at least; floats before integers)."""
    return max(
        (compute_dtype(d) for d in dtypes),
        key=lambda d: (jnp.issubdtype(d, jnp.floating), jnp.dtype(d).itemsize),
    )


def saturate(x, dtype):
    """``min(x, largest finite value of dtype)``: squares and their sums saturate.

    A finite gradient above ``sqrt(max)`` (1.8e19 in float32 and bfloat16) has
    a square that overflows to inf; the second-moment statistics keep the
    dtype's largest finite value instead (as step counters saturate), so they
    stay finite and decay back at their rate. NaN stays NaN.
    """
    return jnp.minimum(x, jnp.finfo(dtype).max.astype(x.dtype))


def root_of_max(dtype) -> float:
    """``sqrt`` of the largest finite value of ``dtype``, a little below, as a Python float."""
    return math.sqrt(float(jnp.finfo(dtype).max)) * (1 - 2**-20)


def one_minus(decay, like):
    """``1 - decay`` as a scalar of ``like``'s dtype, computed in double for Python numbers."""
    if isinstance(decay, (int, float)):
        return 1.0 - decay
    return 1 - hyper(decay, like)


def one_minus_power(decay, count, like):
    """``1 - decay ** count`` in ``like``'s dtype, accurate when ``decay`` is close to 1.

    Evaluated as ``-expm1(count * log(decay))``; for a Python ``decay`` the
    logarithm is taken in double precision, so float32 keeps ~7 digits of the
    small difference instead of those left after rounding ``decay`` itself.
    """
    dtype = jnp.result_type(like)
    t = jnp.asarray(count).astype(dtype)
    if isinstance(decay, (int, float)):
        if decay == 0:
            return jnp.ones([], dtype)
        return -jnp.expm1(t * math.log(decay))
    d = hyper(decay, like)
    return jnp.where(d == 0, jnp.ones([], dtype), -jnp.expm1(t * jnp.log(d)))


def state_zeros(params, dtype, *, real: bool = False):
    """Zeros shaped like ``params``, stored in ``dtype`` (None: each leaf's dtype).

    ``real=True`` for a statistic of ``|g|**2``: real even for complex parameters.
    """
    return zeros_like(params, dtype, real=real)


def scalar_dtype():
    """float64 when 64-bit mode is on, else float32: the dtype of per-step scalars."""
    return jax.dtypes.canonicalize_dtype(jnp.float64)


def cast(value, like):
    """A hyperparameter or ctx scalar in ``like``'s dtype (Python numbers stay weak)."""
    if value is None or isinstance(value, (int, float)):
        return value
    return jnp.asarray(value).astype(like.dtype)


def clamp(x, bound):
    """``x`` limited to ``[-bound, bound]`` (``bound`` a Python float), NaN kept.

    A complex ``x`` has its real and imaginary parts limited. ``lax.clamp``
    rather than ``jnp.clip``: the latter is a jitted function, and a nested jit
    per leaf makes a program with many leaves slower to compile.
    """
    if is_complex(x.dtype):
        return jax.lax.complex(clamp(jnp.real(x), bound), clamp(jnp.imag(x), bound))
    return jax.lax.clamp(jnp.asarray(-bound, x.dtype), x, jnp.asarray(bound, x.dtype))


def abs_sq(x):
    """``|x|**2`` as a real array: ``x * x`` for real ``x``, ``re**2 + im**2`` for complex."""
    if is_complex(x.dtype):
        re, im = jnp.real(x), jnp.imag(x)
        return re * re + im * im
    return x * x


def mul_real(x, r):
    """``x * r`` for a real ``r``; a complex ``x`` has both parts multiplied by ``r``."""
    if is_complex(jnp.result_type(x)) and not is_complex(jnp.result_type(r)):
        return jax.lax.complex(jnp.real(x) * r, jnp.imag(x) * r)
    return x * r


def div_real(x, r):
    """``x / r`` for a real ``r``; a complex ``x`` has both parts divided by ``r``."""
    if is_complex(jnp.result_type(x)) and not is_complex(jnp.result_type(r)):
        return jax.lax.complex(jnp.real(x) / r, jnp.imag(x) / r)
    return x / r


def real_like(x):
    """A zero-cost stand-in of ``x``'s real dtype for :func:`hyper` and :func:`cast`."""
    dtype = real_dtype(jnp.result_type(x))
    return jax.ShapeDtypeStruct((), dtype) if dtype != jnp.result_type(x) else x
