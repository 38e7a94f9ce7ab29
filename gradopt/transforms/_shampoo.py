"""Shampoo's Kronecker-factored preconditioner (see :func:`gradopt.shampoo` for the rule).

Every leaf of two or more dimensions is viewed as a matrix ``(prod(shape[:-1]),
shape[-1])`` and cut into blocks of at most ``block_size`` x ``block_size``;
each block ``G`` keeps ``L`` (rows x rows) and ``R`` (cols x cols) and their
inverse fourth roots, refreshed every ``precondition_every`` steps inside a
``lax.cond`` (the root work runs only on refresh steps). Scalars, vectors and
leaves with a dimension of 1 take the diagonal fallback: the graft's step (or
the gradient without grafting).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from gradopt.core._base import GradientTransformation, check_same_shapes, transform
from gradopt.core._checks import check_choice, check_decay, check_eps, check_scalar
from gradopt.core._numerics import as_compute, increment, saturate, zero_count
from gradopt.transforms._matrix_roots import (
    blocks_of,
    cut,
    inverse_root_eigh,
    inverse_root_newton,
    join,
    matrix_shape,
)
from gradopt.transforms._real_only import real_only


class ShampooBlock(NamedTuple):
    """Statistics and inverse roots of one 2-D block."""

    left: jax.Array
    right: jax.Array
    left_root: jax.Array
    right_root: jax.Array


class ShampooState(NamedTuple):
    """State of :func:`scale_by_shampoo`.

    Attributes:
      count: steps taken (int32, saturating).
      blocks: per leaf, a tuple of :class:`ShampooBlock` (empty for leaves on
        the diagonal fallback).
      graft_nu: the graft's second moment (Adam grafting; zeros of shape ``()``
        per leaf otherwise).
    """

    count: jax.Array  # type: ignore[assignment]
    blocks: object
    graft_nu: object


def _leaf_blocks(p, block_size):
    shape = matrix_shape(jnp.shape(p))
    return [] if shape is None else blocks_of(shape, block_size)


def _shampoo_init(params, *, block_size, graft, **hyper):
    del hyper

    def leaf(p):
        out = []
        for (r0, r1), (c0, c1) in _leaf_blocks(p, block_size):
            m, n = r1 - r0, c1 - c0
            zl, zr = jnp.zeros((m, m), jnp.float32), jnp.zeros((n, n), jnp.float32)
            out.append(ShampooBlock(zl, zr, jnp.eye(m), jnp.eye(n)))
        return tuple(out)

    def nu(p):
        shape = jnp.shape(p) if graft == "adam" else ()
        return jnp.zeros(shape, jnp.float32)

    return ShampooState(
        count=zero_count(),
        blocks=jax.tree.map(leaf, params),
        graft_nu=jax.tree.map(nu, params),
    )


def _shampoo_update(
    updates, state, params=None, *, block_size, beta2, eps, precondition_every,
    start_preconditioning_step, graft, graft_b2, graft_eps, root, **extra,
):  # fmt: skip
    del params, extra
    if graft == "adam":  # the graft's moment has the leaves' shapes: name a mismatch
        check_same_shapes(updates, state.graft_nu, what="updates", reference_what="state")
    count = increment(state.count)
    t = count.astype(jnp.float32)
    weight = jnp.where(jnp.asarray(beta2) == 1.0, 1.0, 1.0 - beta2)  # beta2 = 1: the paper's sums
    refresh = (state.count % precondition_every) == 0
    invert = inverse_root_eigh if root == "eigh" else inverse_root_newton
    leaves, treedef = jax.tree.flatten(updates)
    block_states = treedef.flatten_up_to(state.blocks)
    nus = treedef.flatten_up_to(state.graft_nu)

    # 1. statistics of every block
    grads, new_stats = [], []
    for g, blocks, p in zip(leaves, block_states, leaves, strict=True):
        g = as_compute(g).astype(jnp.float32)
        grads.append(g)
        shape = matrix_shape(jnp.shape(p))
        stats = []
        if shape is not None:
            for b, piece in zip(
                blocks, cut(g.reshape(shape), _leaf_blocks(p, block_size)), strict=True
            ):
                left = beta2 * b.left + weight * piece @ piece.T
                right = beta2 * b.right + weight * piece.T @ piece
                ok = jnp.all(jnp.isfinite(left)) & jnp.all(jnp.isfinite(right))
                # a statistic that overflows is not accumulated (the step still runs)
                stats.append((jnp.where(ok, left, b.left), jnp.where(ok, right, b.right)))
        new_stats.append(stats)

    # 2. inverse fourth roots, only on refresh steps
    def roots(_):
        return [[(invert(lft, 4, eps), invert(rgt, 4, eps)) for lft, rgt in s] for s in new_stats]

    def keep(_):
        return [[(b.left_root, b.right_root) for b in blocks] for blocks in block_states]

    new_roots = jax.lax.cond(refresh, roots, keep, None)

    # 3. precondition, graft, assemble
    out, out_blocks, out_nu = [], [], []
    preconditioning = count >= start_preconditioning_step
    for g, stats, rts, nu, u in zip(grads, new_stats, new_roots, nus, leaves, strict=True):
        if graft == "adam":
            nu = saturate(graft_b2 * nu + (1.0 - graft_b2) * g * g, jnp.float32)
            graft_dir = g / (jnp.sqrt(nu) / jnp.sqrt(1.0 - graft_b2**t) + graft_eps)
        else:
            graft_dir = g
        shape = matrix_shape(jnp.shape(u))
        if shape is None:
            direction = graft_dir
        else:
            bl = _leaf_blocks(u, block_size)
            pieces = [
                lr @ piece @ rr
                for (lr, rr), piece in zip(rts, cut(g.reshape(shape), bl), strict=True)
            ]
            pre = join(pieces, shape, bl).reshape(jnp.shape(u))
            if graft != "none":
                norm = jnp.sqrt(jnp.sum(pre * pre))
                pre = pre * (
                    jnp.sqrt(jnp.sum(graft_dir * graft_dir)) / jnp.where(norm > 0, norm, 1.0)
                )
            direction = jnp.where(preconditioning, pre, graft_dir)
        out.append(direction.astype(u.dtype))
        out_blocks.append(tuple(
            ShampooBlock(lft, rgt, lr, rr) for (lft, rgt), (lr, rr) in zip(stats, rts, strict=True)
        ))  # fmt: skip
        out_nu.append(nu)
    new_state = ShampooState(
        count=count,
        blocks=treedef.unflatten(out_blocks),
        graft_nu=treedef.unflatten(out_nu),
    )
    return treedef.unflatten(out), new_state


SHAMPOO_REAL_ONLY = (
    "its statistics G G^T and their inverse roots are real matrices; the complex form "
    "(Hermitian G G^H) is not implemented"
)


def scale_by_shampoo(
    block_size: int = 128,
    beta2=1.0,
    eps=1e-6,
    *,
    precondition_every: int = 1,
    start_preconditioning_step: int = 1,
    graft: str = "adam",
    graft_b2=0.999,
    graft_eps=1e-8,
    root: str = "eigh",
) -> GradientTransformation:
    """Precondition each 2-D block by ``L^(-1/4) G R^(-1/4)``; see :func:`gradopt.shampoo`.

    Args:
      block_size: largest side of a block, an int >= 1.
      beta2: decay of the statistics in [0, 1]; 1 sums them (the paper).
      eps: ``eps I`` added to each statistic before the root, > 0.
      precondition_every: recompute the roots every this many steps (int >= 1).
      start_preconditioning_step: the first step that uses the roots; before
        it, the graft's step (int >= 1).
      graft: ``"adam"`` (RMS-normalised gradient, bias-corrected), ``"sgd"``
        (the gradient) or ``"none"``: the per-leaf norm the step takes.
      graft_b2, graft_eps: the Adam graft's decay and epsilon.
      root: ``"eigh"`` (exact) or ``"newton"`` (coupled Newton iterations).
    """
    where = "gradopt.scale_by_shampoo"
    _int(where, "block_size", block_size)
    check_scalar(where, "beta2", beta2, low=0.0, high=1.0, fix="Use 1.0 (sums) or 0.999.")
    check_eps(where, eps)
    _int(where, "precondition_every", precondition_every)
    _int(where, "start_preconditioning_step", start_preconditioning_step)
    check_choice(where, "graft", graft, ("adam", "sgd", "none"))
    check_decay(where, "graft_b2", graft_b2)
    check_eps(where, graft_eps, "graft_eps")
    check_choice(where, "root", root, ("eigh", "newton"))
    return real_only(
        transform(
            _shampoo_init,
            _shampoo_update,
            block_size=block_size,
            beta2=beta2,
            eps=eps,
            precondition_every=precondition_every,
            start_preconditioning_step=start_preconditioning_step,
            graft=graft,
            graft_b2=graft_b2,
            graft_eps=graft_eps,
            root=root,
        ),
        name=where,
        reason=SHAMPOO_REAL_ONLY,
    )


def _int(where, name, value, low=1):
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{where}: {name} must be an int >= {low}, got {value!r}.")
    if value < low:
        raise ValueError(f"{where}: {name} must be >= {low}, got {value}.")
