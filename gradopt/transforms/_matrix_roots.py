"""Matrix functions for the Kronecker-factored preconditioners: inverse p-th roots
(by ``eigh``, or by coupled Newton iterations), eigenbases, and the blocking of
a parameter leaf into 2-D blocks.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp


def inverse_root_eigh(a, p, eps):
    """``(A + eps I)^(-1/p)`` of a symmetric PSD matrix by its eigendecomposition.

    Eigenvalues below 0 (rounding) are clipped to 0 before ``eps`` is added.
    """
    w, v = jnp.linalg.eigh(a)
    w = jnp.maximum(w, 0.0) + eps
    return (v * (w ** (-1.0 / p))[None, :]) @ v.T


def inverse_root_newton(a, p, eps, iterations: int = 30, tol=1e-6):
    """``(A + eps I)^(-1/p)`` by the coupled Newton iteration (Guo & Higham, 2006).

    With ``z = (1 + p) / (2 |A|_F)``, ``M_0 = z A``, ``X_0 = z^(1/p) I``::

        T_k = ((p + 1) I - M_k) / p
        X_{k+1} = X_k T_k,   M_{k+1} = T_k^p M_k      (M_k -> I, X_k -> A^(-1/p))

    Stops after ``iterations`` steps or when ``max |M_k - I| < tol``. Only
    matrix products: cheaper than ``eigh`` on accelerators, less accurate for
    ill-conditioned ``A`` (the ``eps`` ridge bounds the condition number).
    """
    n = a.shape[0]
    eye = jnp.eye(n, dtype=a.dtype)
    a = a + eps * eye
    z = (1.0 + p) / (2.0 * jnp.linalg.norm(a))
    m0, x0 = z * a, z ** (1.0 / p) * eye

    def cond(c):
        k, m, _ = c
        return (k < iterations) & (jnp.max(jnp.abs(m - eye)) >= tol)

    def body(c):
        k, m, x = c
        t = ((p + 1.0) * eye - m) / p
        return k + 1, jnp.linalg.matrix_power(t, p) @ m, x @ t

    _, _, x = jax.lax.while_loop(cond, body, (jnp.zeros([], jnp.int32), m0, x0))
    return x


def eigenbasis(a):
    """The eigenvectors of a symmetric matrix (columns, ascending eigenvalues)."""
    return jnp.linalg.eigh(a)[1]


# ----------------------------------------------------------------------------
# blocking


def matrix_shape(shape: tuple[int, ...]) -> tuple[int, int] | None:
    """The 2-D view of a leaf: ``(prod(shape[:-1]), shape[-1])``; None for
    scalars, vectors and leaves with a dimension of 1 (handled diagonally)."""
    if len(shape) < 2:
        return None
    rows, cols = math.prod(shape[:-1]), shape[-1]
    if rows <= 1 or cols <= 1:
        return None
    return rows, cols


def splits(n: int, block_size: int) -> list[tuple[int, int]]:
    """``[(start, stop), ...]`` cutting ``range(n)`` into pieces of at most ``block_size``."""
    return [(i, min(i + block_size, n)) for i in range(0, n, block_size)]


def blocks_of(shape: tuple[int, int], block_size: int) -> list[tuple[tuple[int, int], ...]]:
    """Row and column ranges of every block of a matrix, row-major."""
    return [(r, c) for r in splits(shape[0], block_size) for c in splits(shape[1], block_size)]


def cut(matrix, blocks):
    return [matrix[r0:r1, c0:c1] for (r0, r1), (c0, c1) in blocks]


def join(pieces, shape, blocks):
    """Inverse of :func:`cut`: assemble row-major blocks into a matrix."""
    ncols = len({c for _, c in blocks})
    rows = [jnp.concatenate(pieces[i : i + ncols], axis=1) for i in range(0, len(pieces), ncols)]
    del shape
    return jnp.concatenate(rows, axis=0)
