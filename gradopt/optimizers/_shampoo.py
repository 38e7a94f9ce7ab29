"""Kronecker-factored preconditioners: Shampoo, and SOAP (Adam in Shampoo's eigenbasis)."""

from __future__ import annotations

from gradopt.core._base import GradientTransformation
from gradopt.core._chain import chain
from gradopt.core._checks import check_decay, check_learning_rate, check_weight_decay
from gradopt.transforms._moments import bias_correction, ema
from gradopt.transforms._real_only import real_only
from gradopt.transforms._scale import scale_by_learning_rate
from gradopt.transforms._shampoo import SHAMPOO_REAL_ONLY, scale_by_shampoo
from gradopt.transforms._soap import SOAP_REAL_ONLY, scale_by_soap
from gradopt.transforms._weight_decay import add_decayed_weights


def shampoo(
    learning_rate=1e-3,
    b1=0.9,
    beta2=1.0,
    eps=1e-6,
    *,
    block_size: int = 128,
    precondition_every: int = 1,
    start_preconditioning_step: int = 1,
    graft: str = "adam",
    graft_b2=0.999,
    graft_eps=1e-8,
    root: str = "eigh",
    weight_decay=0.0,
) -> GradientTransformation:
    r"""Shampoo (Gupta, Koren & Singer, 2018), blocked and grafted (Anil et al., 2020).

    For each 2-D block ``G`` (``m x n``) of a leaf viewed as a matrix, at step ``t``::

        L = beta2 * L + w * G G^T          # m x m;  w = 1 if beta2 == 1 (the paper's sums)
        R = beta2 * R + w * G^T G          # n x n;  else w = 1 - beta2
        every k steps:  L_r = (L + eps I)^(-1/4),  R_r = (R + eps I)^(-1/4)   # eigh or Newton
        P = L_r G R_r
        graft (per leaf):  P = P * |A| / |P|,  A = the graft's step
                           adam: g / (sqrt(v_hat) + graft_eps),
                                 v = graft_b2 v + (1 - graft_b2) g^2;   sgd: g
        D = P if t >= start_preconditioning_step else A
        m = b1 m + (1 - b1) D;   u = m / (1 - b1^t)
        w = w - learning_rate * (u + weight_decay * w)

    Leaves of three or more dimensions are viewed as ``(prod(shape[:-1]),
    shape[-1])``; scalars, vectors and leaves with a side of 1 take the
    diagonal fallback ``D = A``.

    Cost per step: ``2 m n (m + n)`` flops per block for the statistics and
    ``2 m n (m + n)`` for the product; on refresh steps one ``eigh`` per
    factor (``~10 m^3``), inside a ``lax.cond`` so that other steps skip it.
    Memory per block ``2 (m^2 + n^2)`` floats (statistics and roots), plus the
    graft's ``v`` and the momentum (one float each per parameter): with
    ``block_size = b`` at most ``4 b`` floats per parameter on top of Adam's 2.

    Args:
      learning_rate: a non-negative number or schedule.
      b1: momentum on the grafted direction, in [0, 1).
      beta2: decay of the statistics, in [0, 1]; 1 sums them as in the paper.
      eps: ridge added to each statistic before its root, > 0 (the paper's
        ``L_0 = eps I``).
      block_size: largest side of a block. Keyword only, as are the rest.
      precondition_every: recompute the roots every ``k`` steps.
      start_preconditioning_step: the first step that uses the roots.
      graft: ``"adam"``, ``"sgd"`` or ``"none"``.
      graft_b2, graft_eps: the Adam graft's decay and epsilon.
      root: ``"eigh"`` or ``"newton"`` (coupled Newton iterations).
      weight_decay: decoupled decay, >= 0.

    Returns:
      ``chain(scale_by_shampoo(...), ema(b1), bias_correction(b1),
      add_decayed_weights(weight_decay), scale_by_learning_rate(learning_rate))``.

    Example:
      >>> import jax.numpy as jnp, gradopt
      >>> opt = gradopt.shampoo(0.1, b1=0.0, graft="none")
      >>> w = jnp.ones((2, 2))
      >>> updates, _ = opt.update(jnp.eye(2), opt.init(w), w)
      >>> updates.round(3)  # L = R = I: the root of (1 + 1e-6) I is ~1
      Array([[-0.1, -0. ],
             [-0. , -0.1]], dtype=float32)

    Note:
      optax ships Shampoo only outside its core (``optax.contrib`` has none in
      0.2.8); PyTorch and Keras ship none. The reference implementation of
      distributed Shampoo (Anil et al.) also offers a diagonal statistic for
      large dimensions, other exponents and Nesterov momentum; here momentum
      follows the graft, as there.

      Complex parameters are refused at ``init`` (TypeError): the complex
      form, with Hermitian statistics ``G G^H``, is not implemented (docs:
      Complex parameters).

    References:
      Gupta, Koren & Singer, Shampoo: Preconditioned stochastic tensor
      optimization, ICML 2018, arXiv:1802.09568; Anil, Gupta, Koren, Regan &
      Singer, Scalable second order optimization for deep learning, 2020,
      arXiv:2002.09018; Agarwal, Anil, Hazan, Koren & Zhang, Disentangling
      adaptive gradient methods from learning rates, 2020, arXiv:2002.11803
      (grafting); Guo & Higham, A Schur-Newton method for the matrix p-th
      root and its inverse, SIAM J. Matrix Anal. Appl. 2006.
    """
    where = "gradopt.shampoo"
    check_learning_rate(where, learning_rate)
    check_decay(where, "b1", b1)
    check_weight_decay(where, weight_decay)
    tx = chain(
        scale_by_shampoo(
            block_size,
            beta2,
            eps,
            precondition_every=precondition_every,
            start_preconditioning_step=start_preconditioning_step,
            graft=graft,
            graft_b2=graft_b2,
            graft_eps=graft_eps,
            root=root,
        ),
        ema(b1),
        bias_correction(b1),
        add_decayed_weights(weight_decay),
        scale_by_learning_rate(learning_rate),
    )
    return real_only(tx, name=where, reason=SHAMPOO_REAL_ONLY)


def soap(
    learning_rate=3e-3,
    b1=0.95,
    b2=0.95,
    eps=1e-8,
    *,
    shampoo_beta=None,
    precondition_every: int = 10,
    max_precond_dim: int = 10000,
    weight_decay=0.0,
) -> GradientTransformation:
    r"""SOAP (Vyas et al., 2024): Adam in the eigenbasis of Shampoo's preconditioner.

    For each leaf viewed as a matrix ``G`` (``m x n``), at step ``t``::

        M = b1 M + (1 - b1) G                                     # in the parameters' basis
        G' = Q_L^T G Q_R,  M' = Q_L^T M Q_R                        # rotate (Q = I at first)
        V = b2 V + (1 - b2) G' * G'                                # in the rotated basis
        N' = (M' / (1 - b1^t)) / (sqrt(V / (1 - b2^t)) + eps)
        w = w - learning_rate * (Q_L N' Q_R^T + weight_decay * w)
        L = s L + (1 - s) G G^T,   R = s R + (1 - s) G^T G       # s = shampoo_beta
        if (t - 1) % k == 0:  Q_L, Q_R = eigenvectors of L, R     # eigh, for the next steps

    A side longer than ``max_precond_dim`` keeps the identity; scalars and
    vectors run Adam.

    Cost per step: four ``m x n`` by ``m x m`` / ``n x n`` products for the
    rotations, two for the factors; on refresh steps one ``eigh`` per factor
    (inside a ``lax.cond``). Memory: ``m^2 + n^2`` twice (factors and bases)
    plus Adam's two moments.

    Args:
      learning_rate: a non-negative number or schedule.
      b1, b2: Adam's decay rates, in [0, 1) (the paper's defaults 0.95, 0.95).
      eps: Adam's epsilon, > 0.
      shampoo_beta: decay of ``L`` and ``R`` (None: ``b2``). Keyword only, as are the rest.
      precondition_every: refresh the eigenbases every ``k`` steps (paper: 10).
      max_precond_dim: the largest side that gets a basis.
      weight_decay: decoupled decay, >= 0.

    Returns:
      ``chain(scale_by_soap(...), add_decayed_weights(weight_decay),
      scale_by_learning_rate(learning_rate))``.

    Example:
      >>> import jax.numpy as jnp, gradopt
      >>> opt = gradopt.soap(0.1)
      >>> w = jnp.zeros((2, 3))
      >>> g = jnp.array([[1.0, 0.0, 0.0], [0.0, 2.0, 0.0]])
      >>> updates, _ = opt.update(g, opt.init(w), w)
      >>> updates.round(3)  # the first step is Adam's: -lr * sign(g)
      Array([[-0.1, -0. , -0. ],
             [-0. , -0.1, -0. ]], dtype=float32)

    Note:
      The order is the paper's Algorithm 3. Its code refreshes the bases by
      one power-iteration step and a QR decomposition after the first
      eigendecomposition, and skips the update on the first step; here every
      refresh is an ``eigh`` and the first step is Adam's (identity bases).
      ``V`` is kept across a change of basis, as in the paper. optax, PyTorch
      and Keras ship no SOAP.

      Complex parameters are refused at ``init`` (TypeError): the complex
      form, with Hermitian statistics and unitary bases, is not implemented
      (docs: Complex parameters).

    References:
      Vyas, Morwani, Zhao, Shapira, Brandfonbrener, Janson & Kakade, SOAP:
      Improving and stabilizing Shampoo using Adam, 2024, arXiv:2409.11321.
    """
    where = "gradopt.soap"
    check_learning_rate(where, learning_rate)
    check_weight_decay(where, weight_decay)
    tx = chain(
        scale_by_soap(
            b1,
            b2,
            eps,
            shampoo_beta=shampoo_beta,
            precondition_every=precondition_every,
            max_precond_dim=max_precond_dim,
        ),
        add_decayed_weights(weight_decay),
        scale_by_learning_rate(learning_rate),
    )
    return real_only(tx, name=where, reason=SOAP_REAL_ONLY)
