"""SOAP: Adam in the eigenbasis of Shampoo's factors (see :func:`gradopt.soap` for the rule).

Each leaf of two or more dimensions is viewed as a matrix ``(prod(shape[:-1]),
shape[-1])``; a side longer than ``max_precond_dim`` keeps the identity as its
basis. Scalars, vectors and leaves with a dimension of 1 run plain Adam. The
bases start as the identity (the first step is Adam's) and are refreshed
(``eigh`` of the factors, after the step) every ``precondition_every`` steps
inside a ``lax.cond``.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from gradopt.core._base import GradientTransformation, check_same_shapes, transform
from gradopt.core._checks import check_decay, check_eps
from gradopt.core._numerics import as_compute, increment, saturate, zero_count
from gradopt.transforms._matrix_roots import eigenbasis, matrix_shape
from gradopt.transforms._real_only import real_only
from gradopt.transforms._shampoo import _int


class SoapState(NamedTuple):
    """State of :func:`scale_by_soap`.

    Attributes:
      count: steps taken (int32, saturating).
      mu: first moment, in the parameters' coordinates (float32, leaf shape).
      nu: second moment, in the rotated coordinates (float32, leaf shape).
      left, right: Shampoo's factors ``L``, ``R`` per leaf (``(0, 0)`` if unused).
      left_basis, right_basis: their eigenvectors ``Q_L``, ``Q_R``.
    """

    count: jax.Array  # type: ignore[assignment]
    mu: object
    nu: object
    left: object
    right: object
    left_basis: object
    right_basis: object


def _sides(p, max_precond_dim):
    """``(matrix shape, rows used, cols used)``; a side is 0 when it keeps the identity."""
    shape = matrix_shape(jnp.shape(p))
    if shape is None:
        return None, 0, 0
    m, n = shape
    return shape, (m if m <= max_precond_dim else 0), (n if n <= max_precond_dim else 0)


def _soap_init(params, *, max_precond_dim, **hyper):
    del hyper

    def zeros(p):
        return jnp.zeros(jnp.shape(p), jnp.float32)

    def square(p, side, eye):
        k = _sides(p, max_precond_dim)[side]
        return jnp.eye(k) if eye else jnp.zeros((k, k), jnp.float32)

    return SoapState(
        count=zero_count(),
        mu=jax.tree.map(zeros, params),
        nu=jax.tree.map(zeros, params),
        left=jax.tree.map(lambda p: square(p, 1, False), params),
        right=jax.tree.map(lambda p: square(p, 2, False), params),
        left_basis=jax.tree.map(lambda p: square(p, 1, True), params),
        right_basis=jax.tree.map(lambda p: square(p, 2, True), params),
    )


def _rotate(x, ql, qr, forward):
    """``Q_L^T X Q_R`` (forward) or ``Q_L X Q_R^T``; an empty basis is the identity."""
    if ql.shape[0]:
        x = (ql.T @ x) if forward else (ql @ x)
    if qr.shape[0]:
        x = (x @ qr) if forward else (x @ qr.T)
    return x


def _soap_update(
    updates, state, params=None, *, b1, b2, eps, shampoo_beta, precondition_every,
    max_precond_dim, **extra,
):  # fmt: skip
    del params, extra
    check_same_shapes(updates, state.mu, what="updates", reference_what="state")
    count = increment(state.count)
    t = count.astype(jnp.float32)
    refresh = (state.count % precondition_every) == 0
    leaves, treedef = jax.tree.flatten(updates)
    fields = [treedef.flatten_up_to(f) for f in state[1:]]
    grads, lefts, rights = [], [], []
    for g, left, right in zip(leaves, fields[2], fields[3], strict=True):
        g = as_compute(g).astype(jnp.float32)
        shape = matrix_shape(jnp.shape(g))
        if shape is not None:
            gm = g.reshape(shape)
            if left.shape[0]:
                new = shampoo_beta * left + (1.0 - shampoo_beta) * gm @ gm.T
                left = jnp.where(jnp.all(jnp.isfinite(new)), new, left)  # overflow: skipped
            if right.shape[0]:
                new = shampoo_beta * right + (1.0 - shampoo_beta) * gm.T @ gm
                right = jnp.where(jnp.all(jnp.isfinite(new)), new, right)
        grads.append(g)
        lefts.append(left)
        rights.append(right)

    def fresh(_):
        return [eigenbasis(a) if a.shape[0] else a for a in lefts], [
            eigenbasis(a) if a.shape[0] else a for a in rights
        ]

    def keep(_):
        return list(fields[4]), list(fields[5])

    # the step uses the current bases; the factors then refresh them (Algorithm 3)
    qls, qrs = fields[4], fields[5]
    out, mus, nus = [], [], []
    for g, mu, nu, ql, qr, u in zip(grads, fields[0], fields[1], qls, qrs, leaves, strict=True):
        shape = matrix_shape(jnp.shape(g)) or (1, g.size)
        mu = b1 * mu + (1.0 - b1) * g
        g_rot = _rotate(g.reshape(shape), ql, qr, True)
        m_rot = _rotate(mu.reshape(shape), ql, qr, True)
        nu = saturate(b2 * nu + (1.0 - b2) * (g_rot * g_rot).reshape(jnp.shape(g)), jnp.float32)
        m_hat = m_rot / (1.0 - b1**t)
        root_v_hat = jnp.sqrt(nu.reshape(shape)) / jnp.sqrt(1.0 - b2**t)  # no overflow
        n_rot = m_hat / (root_v_hat + eps)
        direction = _rotate(n_rot, ql, qr, False).reshape(jnp.shape(g))
        out.append(direction.astype(u.dtype))
        mus.append(mu)
        nus.append(nu)
    qls, qrs = jax.lax.cond(refresh, fresh, keep, None)
    unflat = treedef.unflatten
    new_state = SoapState(
        count, unflat(mus), unflat(nus), unflat(lefts), unflat(rights), unflat(qls), unflat(qrs)
    )
    return unflat(out), new_state


SOAP_REAL_ONLY = (
    "its eigenbases are those of the real statistics G G^T and G^T G; the complex form "
    "(Hermitian statistics, unitary bases) is not implemented"
)


def scale_by_soap(
    b1=0.95,
    b2=0.95,
    eps=1e-8,
    *,
    shampoo_beta=None,
    precondition_every: int = 10,
    max_precond_dim: int = 10000,
) -> GradientTransformation:
    """Adam's step computed in the eigenbasis of Shampoo's factors; see :func:`gradopt.soap`.

    Args:
      b1, b2: Adam's decay rates, in [0, 1).
      eps: Adam's epsilon, > 0.
      shampoo_beta: decay of the factors ``L``, ``R`` in [0, 1) (None: ``b2``).
      precondition_every: refresh the eigenbases every this many steps.
      max_precond_dim: a side longer than this keeps the identity basis.
    """
    where = "gradopt.scale_by_soap"
    check_decay(where, "b1", b1)
    check_decay(where, "b2", b2)
    check_eps(where, eps)
    if shampoo_beta is None:
        shampoo_beta = b2
    check_decay(where, "shampoo_beta", shampoo_beta)
    _int(where, "precondition_every", precondition_every)
    _int(where, "max_precond_dim", max_precond_dim)
    return real_only(
        transform(
            _soap_init,
            _soap_update,
            b1=b1,
            b2=b2,
            eps=eps,
            shampoo_beta=shampoo_beta,
            precondition_every=precondition_every,
            max_precond_dim=max_precond_dim,
        ),
        name=where,
        reason=SOAP_REAL_ONLY,
    )
