"""``torch.optim.Muon``: momentum orthogonalised by a Newton–Schulz iteration, for matrices."""

from __future__ import annotations

import math
import numbers
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gradopt.compat._torch_common import _below_one, _decoupled, _non_negative, _positive, _where
from gradopt.core._base import EmptyState, GradientTransformation, transform, tree_map
from gradopt.core._chain import chain
from gradopt.core._checks import check_flag, check_learning_rate, check_scalar
from gradopt.core._numerics import as_compute
from gradopt.transforms._scale import scale_by_learning_rate

DEFAULT_NS_COEFFICIENTS = (3.4445, -4.775, 2.0315)
_ADJUSTMENTS = (None, "original", "match_rms_adamw")


def _check_matrices(tree, where):
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        if jnp.ndim(leaf) != 2:
            raise ValueError(
                f"{where} only supports 2-D parameters (as torch.optim.Muon), but the leaf at "
                f"{jax.tree_util.keystr(path) or '(root)'} has shape {jnp.shape(leaf)}. Optimize "
                "biases, embeddings and other non-matrix leaves with another optimizer "
                "(AdamW, say) through parameter groups."
            )


# ----------------------------------------------------------------------------
# momentum, in torch's lerp form


class TorchMuonMomentumState(NamedTuple):
    """The momentum buffer ``B`` of :func:`muon`."""

    buf: Any


def _lerp(start, end, weight):
    """torch's ``start.lerp(end, weight)`` for a scalar weight (two formulas either side of 0.5)."""
    w = jnp.asarray(weight, start.dtype)
    return jnp.where(jnp.abs(w) < 0.5, start + w * (end - start), end - (end - start) * (1 - w))


def _momentum_init(params, *, momentum, nesterov):
    del momentum, nesterov
    _check_matrices(params, _where("muon"))
    return TorchMuonMomentumState(
        buf=jax.tree.map(lambda p: jnp.zeros_like(jnp.asarray(p)), params)
    )


def _momentum_update(updates, state, params=None, *, momentum, nesterov, **extra):
    del params, extra
    _check_matrices(updates, _where("muon"))

    def leaf(g, b):
        g, b = as_compute(g), as_compute(b)
        b = _lerp(b, g, 1 - momentum)
        return (_lerp(g, b, momentum) if nesterov else b), b

    out = tree_map(leaf, updates, state.buf)
    treedef = jax.tree.structure(updates)
    parts = treedef.flatten_up_to(out)
    new_updates = treedef.unflatten(
        [
            u.astype(jnp.result_type(g))
            for (u, _), g in zip(parts, treedef.flatten_up_to(updates), strict=True)
        ]
    )
    buf = jax.tree.map(
        lambda new, old: new.astype(old.dtype), treedef.unflatten([b for _, b in parts]), state.buf
    )
    return new_updates, TorchMuonMomentumState(buf=buf)


def _torch_muon_momentum(momentum, nesterov) -> GradientTransformation:
    """``B = lerp(B, g, 1 - momentum)``; output ``lerp(g, B, momentum)`` (Nesterov) or ``B``."""
    return transform(_momentum_init, _momentum_update, momentum=momentum, nesterov=nesterov)


# ----------------------------------------------------------------------------
# Newton–Schulz, in bfloat16 as torch computes it


_EXACT_LIMIT = 1 << 16  # multiply-adds per product below which torch's order is reproduced


def _split(value: float) -> tuple[float, float]:
    """``value`` (rounded to float32) as ``hi + lo``, ``hi`` with 16 significant bits.

    ``hi * x`` and ``lo * x`` are then exact in float32 for a bfloat16 ``x``.
    """
    v = float(np.float32(value))
    hi = _round_bits(v, 16)
    return hi, float(np.float32(v - hi))


def _round_bits(value: float, bits: int) -> float:
    mantissa, exponent = math.frexp(value)
    return math.ldexp(math.floor(mantissa * 2**bits), exponent - bits)


def _product(x, y):
    """``x @ y`` for bfloat16 matrices, summed in float32 in torch's order on CPU.

    Each product of two bfloat16 numbers is exact in float32. torch's kernel
    keeps four partial sums (inner index ``k`` modulo 4, each summed in
    increasing ``k``) and adds them in order at the end. Large products use
    XLA's own float32 accumulation (torch blocks those differently anyway).
    """
    f32 = jnp.float32
    x, y = x.astype(f32), y.astype(f32)
    if x.shape[0] * x.shape[1] * y.shape[1] > _EXACT_LIMIT:
        return jnp.matmul(x, y, preferred_element_type=f32)
    lanes = []
    for lane in range(min(4, x.shape[1])):
        total = x[:, lane : lane + 1] * y[lane : lane + 1, :]
        for k in range(lane + 4, x.shape[1], 4):
            total = total + x[:, k : k + 1] * y[k : k + 1, :]
        lanes.append(total)
    total = lanes[0]
    for partial in lanes[1:]:
        total = total + partial
    return total


def _scaled_sum(beta: float, c, s):
    """``beta * c + s`` with one float32 rounding (torch's fused ``addmm``), ``c`` bfloat16.

    ``beta = hi + lo`` with both products exact; ``hi * c + s`` is summed
    error-free (Knuth's TwoSum) and the small remainder added last.
    """
    hi, lo = _split(beta)
    a, b = hi * c, s
    total = a + b
    bb = total - a
    error = (a - (total - bb)) + (b - bb)
    return total + (error + lo * c)


def _torch_newton_schulz(g, coefficients, steps, eps):
    """torch's quintic Newton–Schulz iteration on one matrix, in bfloat16.

    ``G = X X^T``, ``U = b G + c (G G)`` and ``X = a X + U X`` are each summed
    in float32 and rounded to bfloat16 once, as torch's bfloat16 ``mm`` and
    ``addmm`` do on CPU: the inner sums run in four interleaved partial sums and
    ``beta * C`` joins ``alpha * (A B)`` in one fused rounding (checked bit
    for bit against torch on random matrices of the tested shapes).
    """
    a, b, c = coefficients
    bf16, f32 = jnp.bfloat16, jnp.float32
    x = jnp.asarray(g).astype(bf16)
    tall = x.shape[0] > x.shape[1]
    if tall:
        x = x.T
    norm = jnp.sqrt(jnp.sum(jnp.square(x.astype(f32)))).astype(bf16)
    norm = jnp.maximum(norm, jnp.asarray(eps, f32).astype(bf16))
    x = (x.astype(f32) / norm.astype(f32)).astype(bf16)
    c32 = float(np.float32(c))
    for _ in range(steps):
        gram = _product(x, x.T).astype(bf16)
        update = _scaled_sum(b, gram.astype(f32), c32 * _product(gram, gram)).astype(bf16)
        x = _scaled_sum(a, x.astype(f32), _product(update, x)).astype(bf16)
    return x.T if tall else x


def _ns_init(params, **hyper):
    del params, hyper
    return EmptyState()


def _ns_update(updates, state, params=None, *, coefficients, steps, eps, adjust_lr_fn, **extra):
    del params, extra

    def leaf(u):
        rows, cols = jnp.shape(u)
        if adjust_lr_fn == "match_rms_adamw":
            ratio = 0.2 * math.sqrt(max(rows, cols))
        else:
            ratio = math.sqrt(max(1, rows / cols))
        o = _torch_newton_schulz(u, coefficients, steps, eps).astype(jnp.float32)
        return (o * ratio).astype(jnp.result_type(u))

    _check_matrices(updates, _where("muon"))
    return tree_map(leaf, updates), state


def _torch_orthogonalize(coefficients, steps, eps, adjust_lr_fn) -> GradientTransformation:
    """Newton–Schulz orthogonalisation of each matrix, times torch's shape-dependent lr ratio."""
    return transform(
        _ns_init,
        _ns_update,
        coefficients=coefficients,
        steps=steps,
        eps=eps,
        adjust_lr_fn=adjust_lr_fn,
    )


def muon(
    lr=0.001,
    weight_decay=0.1,
    momentum=0.95,
    nesterov=True,
    ns_coefficients=DEFAULT_NS_COEFFICIENTS,
    eps=1e-07,
    ns_steps=5,
    adjust_lr_fn=None,
):
    """``torch.optim.Muon``: for 2-D parameters, the orthogonalised momentum.

    With ``g`` the gradient of an ``A x B`` matrix, ``mu = momentum`` and
    ``NS`` the Newton–Schulz iteration below::

        buf = buf + (1 - mu) * (g - buf)
        u   = g + mu * (buf - g)   if nesterov  else  buf
        O   = NS(u)
        w   = w * (1 - lr * weight_decay)
        w   = w - lr * ratio * O,  ratio = sqrt(max(1, A / B))   (None, "original")
                                   ratio = 0.2 * sqrt(max(A, B)) ("match_rms_adamw")

    ``NS``: ``X = u / max(|u|_F, eps)`` (transposed if ``A > B``), then
    ``ns_steps`` times ``G = X X^T``, ``X = a X + (b G + c G G) X`` with
    ``(a, b, c) = ns_coefficients``, in bfloat16 as torch computes it.
    Chain: momentum, orthogonalisation (with the ratio), the decoupled
    ``add_decayed_weights``, ``scale_by_learning_rate(lr)``.

    Args:
      lr: >= 0, or a schedule. weight_decay: decoupled, >= 0.
      momentum: in [0, 1) (torch accepts 1 and more).
      nesterov: use the Nesterov look-ahead ``lerp(g, buf, momentum)``.
      ns_coefficients: the three coefficients ``(a, b, c)``.
      eps: > 0, the floor of the Frobenius norm.
      ns_steps: the number of iterations, an integer in [0, 100).
      adjust_lr_fn: None or ``"original"`` (Keller Jordan's ratio) or
        ``"match_rms_adamw"`` (Moonshot's).

    Returns:
      A gradient transformation; ``init`` raises a ValueError for a parameter
      that is not a matrix (as torch's constructor does); ``update`` needs
      ``params`` when ``weight_decay`` is not 0.

    Example:
      >>> import jax.numpy as jnp
      >>> from gradopt.compat import torch as torch_compat
      >>> opt = torch_compat.muon(lr=0.1, weight_decay=0.0)
      >>> params = {"w": jnp.zeros((2, 2))}
      >>> updates, _ = opt.update({"w": jnp.eye(2)}, opt.init(params), params)
      >>> bool(jnp.allclose(updates["w"], -0.1 * jnp.eye(2), atol=0.03))  # ~ -lr * I
      True

    Note:
      The momentum is an exponential average (torch's ``lerp``), not the
      ``B = mu B + g`` of torch's docstring (after the normalisation inside
      the iteration the two differ only by rounding); the quintic iteration's
      output is close to, not exactly, the orthogonal factor ``U V^T``. optax's
      ``contrib.muon`` and Keras' ``Muon`` send non-matrix leaves to AdamW
      instead of refusing them, and scale differently.

    References:
      Jordan et al., Muon: An optimizer for hidden layers in neural networks,
      2024, https://kellerjordan.github.io/posts/muon/. Liu et al., Muon is
      Scalable for LLM Training, 2025, arXiv:2502.16982.
    """
    where = _where("muon")
    check_learning_rate(where, lr, "lr")
    _non_negative(where, "weight_decay", weight_decay)
    _below_one(where, "momentum", momentum)
    check_flag(where, "nesterov", nesterov)
    if not (isinstance(ns_coefficients, (tuple, list)) and len(ns_coefficients) == 3):
        raise ValueError(
            f"{where}: ns_coefficients must be three numbers (a, b, c), got {ns_coefficients!r}."
        )
    for i, value in enumerate(ns_coefficients):
        if not isinstance(value, numbers.Real) or isinstance(value, bool):
            raise TypeError(
                f"{where}: ns_coefficients[{i}] must be a Python number, got {value!r}."
            )
        check_scalar(where, f"ns_coefficients[{i}]", value)
    _positive(where, "eps", eps)
    if isinstance(ns_steps, bool) or not isinstance(ns_steps, numbers.Real):
        raise TypeError(f"{where}: ns_steps must be an integer in [0, 100), got {ns_steps!r}.")
    if not (math.isfinite(ns_steps) and ns_steps == int(ns_steps) and 0 <= ns_steps < 100):
        raise ValueError(
            f"{where}: ns_steps must be an integer in [0, 100), got {ns_steps!r}. torch refuses "
            "100 or more; 5 is the default."
        )
    if adjust_lr_fn not in _ADJUSTMENTS:
        raise ValueError(
            f"{where}: adjust_lr_fn must be one of None, 'original', 'match_rms_adamw', "
            f"got {adjust_lr_fn!r}."
        )
    coefficients = tuple(float(v) for v in ns_coefficients)
    return chain(
        _torch_muon_momentum(momentum, nesterov),
        _torch_orthogonalize(coefficients, int(ns_steps), eps, adjust_lr_fn),
        *_decoupled(weight_decay, True, lr),
        scale_by_learning_rate(lr),
    )
