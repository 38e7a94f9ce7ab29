"""Muon: momentum orthogonalised by Newton--Schulz, for the matrices; AdamW for the rest.

``muon`` reads::

    partition({"muon": chain(scale_by_nesterov_ema(beta), orthogonalize(ns_coeffs, ns_steps),
                             scale_by_shape(), add_decayed_weights(weight_decay),
                             scale_by_learning_rate(learning_rate)),
               "adam": chain(divide(scale_by_nesterov_ema(adam_b1),
                                    root_mean_square(adam_b2, eps=eps, debias=True)),
                             add_decayed_weights(adam_weight_decay),
                             scale_by_learning_rate(adam_learning_rate))},
              labels)    # "muon" for 2-D leaves that adam_mask does not name
"""

from __future__ import annotations

import jax

from gradopt.core._base import Bound, GradientTransformation
from gradopt.core._chain import chain, divide
from gradopt.core._checks import (
    check_decay,
    check_dtype,
    check_eps,
    check_flag,
    check_learning_rate,
    check_scalar,
    check_weight_decay,
)
from gradopt.transforms._adaptive import root_mean_square
from gradopt.transforms._moments import bias_correction, ema, scale_by_nesterov_ema
from gradopt.transforms._orthogonalize import (
    NS_COEFFS,
    orthogonalize,
    per_step_coeffs,
    scale_by_shape,
)
from gradopt.transforms._partition import MaskedNode, partition
from gradopt.transforms._scale import scale_by_learning_rate
from gradopt.transforms._weight_decay import add_decayed_weights


def _momentum(beta, nesterov, dtype):
    if nesterov:
        return scale_by_nesterov_ema(beta, momentum_decay=None, dtype=dtype)
    return chain(ema(beta, dtype=dtype), bias_correction(beta))


def muon_labels(params, *, adam_mask=None):
    """``"muon"`` for every 2-D leaf that ``adam_mask`` does not name, else ``"adam"``."""
    mask = adam_mask(params) if callable(adam_mask) else adam_mask
    if mask is None:
        return jax.tree.map(lambda p: "muon" if jax.numpy.ndim(p) == 2 else "adam", params)
    return jax.tree.map(
        lambda p, m: "muon" if jax.numpy.ndim(p) == 2 and not m else "adam", params, mask
    )


def _restrict_mask(params, *, mask):
    """A full mask tree cut down to the leaves that ``params`` (a partition's part) has."""
    return jax.tree.map(
        lambda p, m: p if p is None or isinstance(p, MaskedNode) else m,
        params,
        mask,
        is_leaf=lambda x: x is None or isinstance(x, MaskedNode),
    )


def muon(
    learning_rate=0.02,
    ns_coeffs=NS_COEFFS,
    ns_steps: int = 5,
    beta=0.95,
    eps=1e-8,
    *,
    weight_decay=0.0,
    weight_decay_mask=None,
    mu_dtype=None,
    nesterov: bool = True,
    adam_b1=0.9,
    adam_b2=0.999,
    adam_weight_decay=0.0,
    adam_learning_rate=None,
    consistent_rms=None,
    adam_mask=None,
) -> GradientTransformation:
    r"""Muon: MomentUm Orthogonalized by Newton--Schulz (Jordan et al., 2024).

    For a matrix ``W`` of shape ``(fan_in, fan_out)`` with gradient ``G`` and
    ``t`` the 1-based step (Nesterov form, the default)::

        M = beta * M + (1 - beta) * G
        M_hat = beta * M / (1 - beta**(t+1)) + (1 - beta) * G / (1 - beta**t)
        X = M_hat / (|M_hat|_F + eps)                  # transposed if fan_in > fan_out
        X = a X + (b X X^T + c (X X^T)^2) X            # ns_steps times: X ~ U V^T
        W = W - learning_rate * (sqrt(max(1, fan_out / fan_in)) * X + weight_decay * W)

    Every other leaf (scalars, vectors, tensors of rank 3 and more, and the
    matrices ``adam_mask`` names) takes an AdamW step with ``adam_b1``,
    ``adam_b2``, ``eps``, ``adam_weight_decay`` and ``adam_learning_rate``
    (Nesterov's first moment as well when ``nesterov``).

    Args:
      learning_rate: a non-negative number, a scalar array or a schedule (0.02,
        Jordan's default; optax has none).
      ns_coeffs: the Newton--Schulz polynomial's ``(a, b, c)``, or one triple per step.
      ns_steps: the number of Newton--Schulz steps (a Python int, 5).
      beta: the momentum's decay rate, in [0, 1).
      eps: > 0, added to the Frobenius norm and to AdamW's denominator.
      weight_decay: decoupled decay of the Muon matrices, >= 0. Keyword only, as
        every gradopt weight decay, and so are the arguments after it (optax
        takes them positionally).
      weight_decay_mask: which Muon matrices to decay: a tree of bools like
        the parameters, or a callable that receives the tree of Muon leaves
        (None elsewhere) and returns such a tree.
      mu_dtype: storage dtype of both first moments (None: the parameter's).
      nesterov: Nesterov momentum in both parts (True, as in optax).
      adam_b1, adam_b2: AdamW's decay rates, in [0, 1).
      adam_weight_decay: AdamW's decoupled decay, >= 0.
      adam_learning_rate: AdamW's learning rate (None: ``learning_rate``).
      consistent_rms: None (width scaling) or a target RMS for
        ``sqrt(max(fan_in, fan_out)) * consistent_rms`` (see :func:`gradopt.scale_by_shape`).
      adam_mask: a tree of bools like the parameters (or a callable ``params ->
        tree``): matrices marked True go to AdamW too (embeddings and the output
        layer, as Jordan recommends).

    Returns:
      ``partition({"muon": ..., "adam": ...}, muon_labels)``; the state is a ``PartitionState``
      whose ``inner_states`` has those two keys.

    Example:
      >>> import jax.numpy as jnp, gradopt
      >>> opt = gradopt.muon(0.02)
      >>> params = {"w": jnp.ones((3, 2)), "b": jnp.zeros(2)}
      >>> state = opt.init(params)
      >>> grads = {"w": jnp.array([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]]), "b": jnp.ones(2)}
      >>> updates, state = opt.update(grads, state, params)
      >>> bool(jnp.allclose(updates["w"][:2], -0.02 * jnp.eye(2), rtol=0.3))
      True
      >>> updates["b"]  # Nesterov AdamW: -learning_rate * (1 + b1 / (1 + b1)) * sign(g)
      Array([-0.0294..., -0.0294...], dtype=float32)

    Note:
      How PyTorch, Keras and optax differ. optax.contrib.muon (the reference
      of the tests: equal trajectories) has these argument names and defaults
      and, in addition, ``adaptive``, ``preconditioning`` other than the
      Frobenius norm, ``adam_eps_root``, presets by name, and
      ``muon_weight_dimension_numbers`` to reshape tensors of rank 3 or more
      into matrices; gradopt routes those tensors to AdamW (or orthogonalise
      them as stacks of matrices with :func:`gradopt.orthogonalize`) and
      names the AdamW matrices with ``adam_mask``. gradopt computes the
      iteration in float32 for bfloat16 parameters; optax in the parameter's
      dtype. ``torch.optim.Muon`` (PyTorch 2.9+) handles only 2-D parameters
      and scales by ``0.2 * sqrt(max(A, B))`` by default ("match_rms_adamw",
      ``consistent_rms=0.2`` here). Keras 3 ``Muon`` uses the same iteration.

    References:
      Jordan, Jin, Boza, You, Cesista, Newhouse & Bernstein, Muon: an
      optimizer for hidden layers in neural networks, 2024,
      https://kellerjordan.github.io/posts/muon/. Liu et al., Muon is scalable
      for LLM training, 2025, arXiv:2502.16982.
    """
    where = "gradopt.muon"
    check_learning_rate(where, learning_rate)
    per_step_coeffs(where, ns_coeffs, ns_steps)
    check_decay(where, "beta", beta)
    check_eps(where, eps)
    check_weight_decay(where, weight_decay)
    check_dtype(where, mu_dtype, "mu_dtype")
    check_flag(where, "nesterov", nesterov)
    check_decay(where, "adam_b1", adam_b1)
    check_decay(where, "adam_b2", adam_b2)
    check_scalar(
        where, "adam_weight_decay", adam_weight_decay, low=0.0, fix="Use 0.0 to switch it off."
    )
    if adam_learning_rate is None:
        adam_learning_rate = learning_rate
    else:
        check_learning_rate(where, adam_learning_rate, "adam_learning_rate")
    if weight_decay_mask is not None and not callable(weight_decay_mask):
        weight_decay_mask = Bound(_restrict_mask, mask=weight_decay_mask)
    matrices = chain(
        _momentum(beta, nesterov, mu_dtype),
        orthogonalize(ns_coeffs, ns_steps, eps),
        scale_by_shape(consistent_rms),
        add_decayed_weights(weight_decay, mask=weight_decay_mask),
        scale_by_learning_rate(learning_rate),
    )
    others = chain(
        divide(
            _momentum(adam_b1, nesterov, mu_dtype), root_mean_square(adam_b2, eps=eps, debias=True)
        ),
        add_decayed_weights(adam_weight_decay),
        scale_by_learning_rate(adam_learning_rate),
    )
    return partition({"muon": matrices, "adam": others}, Bound(muon_labels, adam_mask=adam_mask))
