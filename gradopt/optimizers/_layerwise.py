"""Layer-wise optimizers: lamb, lars, fromage, novograd.

Each rescales the step of every parameter leaf (a layer) by a per-leaf norm::

    lars     = chain(add_decayed_weights(wd), scale_by_trust_ratio(tc), lr, trace(momentum))
    lamb     = chain(adam's m_hat / (sqrt(v_hat) + eps), add_decayed_weights(wd),
                     scale_by_trust_ratio(), lr)
    fromage  = chain(scale_by_trust_ratio(min_norm), lr, rescale_params(1/sqrt(1+lr**2)))
    novograd = chain(scale_by_layerwise_rms(b2), add_decayed_weights(wd), trace(b1), lr)

The elementwise stages around the per-leaf ones are fused as usual.
"""

from __future__ import annotations

from gradopt.core._base import GradientTransformation
from gradopt.core._chain import chain, divide
from gradopt.core._checks import (
    check_flag,
    check_learning_rate,
    check_momentum,
    check_weight_decay,
)
from gradopt.optimizers._adam_variants import check_args
from gradopt.transforms._adaptive import root_mean_square
from gradopt.transforms._layerwise import (
    as_mask,
    check_mask,
    rescale_params,
    scale_by_layerwise_rms,
    scale_by_trust_ratio,
)
from gradopt.transforms._moments import bias_correction, ema
from gradopt.transforms._momentum import trace
from gradopt.transforms._real_only import real_only
from gradopt.transforms._scale import scale_by_learning_rate
from gradopt.transforms._weight_decay import add_decayed_weights


def lamb(
    learning_rate=1e-3,
    b1=0.9,
    b2=0.999,
    eps=1e-6,
    weight_decay=0.0,
    mask=None,
) -> GradientTransformation:
    r"""LAMB: layer-wise adaptive moments for large batches (You et al., 2020).

    With ``m_hat``, ``v_hat`` as in :func:`gradopt.adam`, for every leaf ``w``::

        r = m_hat / (sqrt(v_hat) + eps) + weight_decay * w
        w = w - learning_rate * (||w|| / ||r||) * r

    (the ratio is 1 where either norm is 0).

    Args:
      learning_rate: a non-negative number, a scalar array or a schedule.
      b1, b2: decay rates, in [0, 1).
      eps: > 0 (1e-6, the paper's).
      weight_decay: decoupled decay coefficient, >= 0.
      mask: which parameters to decay (see :func:`gradopt.add_decayed_weights`).

    Returns:
      ``chain(divide(chain(ema(b1), bias_correction(b1)), root_mean_square(b2,
      eps=eps, debias=True)), add_decayed_weights(weight_decay, mask=mask),
      scale_by_trust_ratio(), scale_by_learning_rate(learning_rate))``.

    Example:
      >>> import jax.numpy as jnp
      >>> import gradopt
      >>> opt = gradopt.lamb(0.1)
      >>> params = {"w": jnp.array([3.0, 4.0])}
      >>> updates, _ = opt.update({"w": jnp.array([1.0, -1.0])}, opt.init(params), params)
      >>> updates["w"].round(6)  # the step has the norm of the layer times the learning rate
      Array([-0.353553,  0.353553], dtype=float32)

    Note:
      How PyTorch, Keras and optax differ: optax.lamb has these names,
      defaults and rule, plus ``eps_root`` (0 by default; not offered here).
      The paper's ``phi`` clips the weight norm (identity here, as in optax
      and the reference TensorFlow code). Neither torch.optim nor Keras has
      LAMB. Leaves are the layers: ``gradopt.packed`` would merge them, so
      keep LAMB outside it.

    References:
      You, Li, Reddi, Hseu, Kumar, Bhojanapalli, Song, Demmel, Keutzer &
      Hsieh, Large batch optimization for deep learning: Training BERT in 76
      minutes, ICLR 2020, arXiv:1904.00962.
    """
    check_args("gradopt.lamb", learning_rate, b1=b1, b2=b2, eps=eps, weight_decay=weight_decay)
    return chain(
        divide(chain(ema(b1), bias_correction(b1)), root_mean_square(b2, eps=eps, debias=True)),
        add_decayed_weights(weight_decay, mask=mask),
        scale_by_trust_ratio(),
        scale_by_learning_rate(learning_rate),
    )


def lars(
    learning_rate=1.0,
    weight_decay=0.0,
    weight_decay_mask=True,
    trust_coefficient=0.001,
    eps=0.0,
    trust_ratio_mask=True,
    momentum=0.9,
    nesterov: bool = False,
) -> GradientTransformation:
    r"""LARS: layer-wise adaptive rate scaling (You, Gitman & Ginsburg, 2017).

    For every leaf ``w``, with the learning rate inside the velocity::

        d = g + weight_decay * w
        v = momentum * v + learning_rate * trust_coefficient * ||w|| / (||d|| + eps) * d
        w = w - v

    (the ratio is 1 where either norm is 0; Nesterov: ``w = w - (d' + momentum * v)``
    with ``d'`` the scaled ``d``).

    Args:
      learning_rate: a non-negative number, a scalar array or a schedule.
      weight_decay: coupled decay coefficient, >= 0 (``beta`` in the paper).
      weight_decay_mask: True (every leaf), a tree of Python bools or a callable.
      trust_coefficient: ``eta`` in the paper, > 0 (0.001).
      eps: >= 0, added to the norm of ``d``.
      trust_ratio_mask: which leaves get the trust ratio (True: every leaf).
      momentum: in [0, 1).
      nesterov: Nesterov momentum (needs ``momentum > 0``).

    Returns:
      ``chain(add_decayed_weights(weight_decay, mask=weight_decay_mask),
      scale_by_trust_ratio(trust_coefficient=trust_coefficient, eps=eps,
      mask=trust_ratio_mask), scale_by_learning_rate(learning_rate),
      trace(momentum, nesterov=nesterov))``.

    Example:
      >>> import jax.numpy as jnp
      >>> import gradopt
      >>> opt = gradopt.lars(1.0, trust_coefficient=0.01)
      >>> params = {"w": jnp.array([3.0, 4.0])}
      >>> updates, _ = opt.update({"w": jnp.array([1.0, -1.0])}, opt.init(params), params)
      >>> updates["w"]  # 0.01 * ||w|| / ||g|| * g
      Array([-0.03535534,  0.03535534], dtype=float32)

    Note:
      How PyTorch, Keras and optax differ: optax.lars has these names,
      defaults and rule (learning rate inside the momentum, as in the paper's
      algorithm). Neither torch.optim nor Keras has LARS.

    References:
      You, Gitman & Ginsburg, Large batch training of convolutional networks,
      2017, arXiv:1708.03888.
    """
    where = "gradopt.lars"
    check_learning_rate(where, learning_rate)
    check_weight_decay(where, weight_decay)
    check_mask(where, "weight_decay_mask", weight_decay_mask)
    check_momentum(where, momentum)
    check_flag(where, "nesterov", nesterov)
    return chain(
        add_decayed_weights(weight_decay, mask=as_mask(weight_decay_mask)),
        scale_by_trust_ratio(trust_coefficient=trust_coefficient, eps=eps, mask=trust_ratio_mask),
        scale_by_learning_rate(learning_rate),
        trace(momentum, nesterov=nesterov),
    )


def fromage(learning_rate=1e-2, min_norm=1e-6) -> GradientTransformation:
    r"""Fromage: Frobenius matched gradient descent (Bernstein et al., 2020).

    For every leaf ``w``::

        w = (w - learning_rate * ||w|| / ||g|| * g) / sqrt(1 + learning_rate**2)

    with both norms at least ``min_norm``.

    Args:
      learning_rate: a non-negative number or scalar array (0.01, the
        paper's). Schedules are not accepted: the rescaling depends on the
        rate; wrap with :func:`gradopt.inject_hyperparams` to change it.
      min_norm: the smallest norm used, >= 0.

    Returns:
      ``chain(scale_by_trust_ratio(min_norm), scale_by_learning_rate(learning_rate),
      rescale_params(1 / sqrt(1 + learning_rate**2)))``.

    Example:
      >>> import jax.numpy as jnp
      >>> import gradopt
      >>> opt = gradopt.fromage(0.1)
      >>> params = {"w": jnp.array([3.0, 4.0])}
      >>> updates, _ = opt.update({"w": jnp.array([0.0, 2.0])}, opt.init(params), params)
      >>> gradopt.apply_updates(params, updates)["w"].round(4)  # (w - 0.1 * 5/2 * g) / sqrt(1.01)
      Array([2.9851, 3.4826], dtype=float32)

    Note:
      How PyTorch, Keras and optax differ: optax.fromage has these names,
      defaults and rule (and also takes a schedule). Neither torch.optim nor
      Keras has Fromage.

    References:
      Bernstein, Vahdat, Yue & Liu, On the distance between two neural
      networks and the stability of learning, NeurIPS 2020, arXiv:2002.03432.
    """
    where = "gradopt.fromage"
    if callable(learning_rate):
        raise TypeError(
            f"{where}: learning_rate must be a number or a scalar array, got the schedule "
            f"{learning_rate!r}; Fromage's rescaling depends on the rate. Use "
            "gradopt.inject_hyperparams(gradopt.fromage) to change it between steps."
        )
    check_learning_rate(where, learning_rate)
    factor = 1 / (1 + learning_rate**2) ** 0.5
    return real_only(
        chain(
            scale_by_trust_ratio(min_norm=min_norm),
            scale_by_learning_rate(learning_rate),
            rescale_params(factor),
        ),
        name="gradopt.fromage",
        reason="its rescaling of the parameters is defined on real numbers (as optax.fromage)",
    )


def novograd(
    learning_rate=1e-3,
    b1=0.9,
    b2=0.25,
    eps=1e-6,
    eps_root=0.0,
    weight_decay=0.0,
) -> GradientTransformation:
    r"""NovoGrad: layer-wise second moments with decoupled decay (Ginsburg et al., 2019).

    For every leaf ``w``, with ``v = ||g||**2`` at the first step::

        v = b2 * v + (1 - b2) * ||g||**2
        m = b1 * m + g / (sqrt(v + eps_root) + eps) + weight_decay * w
        w = w - learning_rate * m

    Args:
      learning_rate: a non-negative number, a scalar array or a schedule.
      b1: the momentum, in [0, 1).
      b2: the decay rate of ``v``, in [0, 1) (optax's 0.25; the paper uses 0.98).
      eps: > 0, outside the square root.
      eps_root: >= 0, inside the square root.
      weight_decay: coefficient, >= 0, added inside the momentum.

    Returns:
      ``chain(scale_by_layerwise_rms(b2, eps=eps, eps_root=eps_root),
      add_decayed_weights(weight_decay), trace(b1), scale_by_learning_rate(learning_rate))``.

    Example:
      >>> import jax.numpy as jnp
      >>> import gradopt
      >>> opt = gradopt.novograd(0.1)
      >>> updates, _ = opt.update({"w": jnp.array([3.0, -4.0])}, opt.init({"w": jnp.zeros(2)}))
      >>> updates["w"].round(6)  # -0.1 * g / ||g||
      Array([-0.06,  0.08], dtype=float32)

    Note:
      How PyTorch, Keras and optax differ: optax.novograd has these names,
      defaults and rule. The paper's experiments use ``b1 = 0.95, b2 = 0.98``.
      Neither torch.optim nor Keras has NovoGrad.

    References:
      Ginsburg, Castonguay, Hrinchuk, Kuchaiev, Lavrukhin, Leary, Li, Nguyen,
      Zhang & Cohen, Stochastic gradient methods with layer-wise adaptive
      moments for training of deep networks, 2019, arXiv:1905.11286.
    """
    check_args(
        "gradopt.novograd",
        learning_rate,
        b1=b1,
        b2=b2,
        eps=eps,
        eps_root=eps_root,
        weight_decay=weight_decay,
    )
    return chain(
        scale_by_layerwise_rms(b2, eps=eps, eps_root=eps_root),
        add_decayed_weights(weight_decay),
        trace(b1),
        scale_by_learning_rate(learning_rate),
    )
