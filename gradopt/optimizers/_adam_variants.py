"""Adam's descendants: radam, adabelief, yogi, adan, nadamw, adamaxw, adopt, ademamix.

Each is a chain of elementwise primitives, fused into one expression per leaf::

    radam    = chain(divide(m_hat, rectified_root_mean_square(b2)), lr)
    adabelief= chain(scale_by_belief(b1, b2), lr)
    yogi     = chain(scale_by_yogi(b1, b2), lr)
    adan     = chain(scale_by_adan(b1, b2, b3), add_decayed_weights(wd), lr)
    nadamw   = chain(divide(scale_by_nesterov_ema(b1), root_mean_square(b2)),
                     add_decayed_weights(wd), lr)
    adamaxw  = chain(divide(m_hat, infinity_norm(b2, eps_inside_max=True)),
                     add_decayed_weights(wd), lr)
    adopt    = chain(scale_by_adopt(b1, b2), lr)
    ademamix = chain(scale_by_ademamix(b1, b2, b3, alpha), add_decayed_weights(wd), lr)

with ``m_hat = chain(ema(b1), bias_correction(b1))`` and ``lr`` the learning rate.
"""

from __future__ import annotations

from gradopt.core._base import GradientTransformation
from gradopt.core._chain import chain, divide
from gradopt.core._checks import (
    check_decay,
    check_dtype,
    check_eps,
    check_flag,
    check_learning_rate,
    check_weight_decay,
)
from gradopt.transforms._adaptive import infinity_norm, root_mean_square
from gradopt.transforms._mixed_moments import (
    scale_by_adan,
    scale_by_ademamix,
    scale_by_adopt,
)
from gradopt.transforms._moments import bias_correction, ema, scale_by_nesterov_ema
from gradopt.transforms._real_only import real_only
from gradopt.transforms._scale import scale_by_learning_rate
from gradopt.transforms._second_moments import (
    check_eps_root,
    rectified_root_mean_square,
    scale_by_belief,
    scale_by_yogi,
)
from gradopt.transforms._weight_decay import add_decayed_weights


def check_args(where, learning_rate=None, **named):
    """Validate a named optimizer's arguments by their names, naming the optimizer."""
    if learning_rate is not None:
        check_learning_rate(where, learning_rate)
    for name, value in named.items():
        if name.startswith("b") and name[1:].isdigit() or name in ("beta", "momentum"):
            if not callable(value):
                check_decay(where, name, value)
        elif name == "eps":
            check_eps(where, value)
        elif name == "eps_root":
            check_eps_root(where, value)
        elif name == "weight_decay":
            check_weight_decay(where, value)
        elif name.endswith("dtype"):
            check_dtype(where, value, name)
        elif name in ("nesterov", "use_clipping"):
            check_flag(where, name, value)
        else:
            raise AssertionError(name)


def _first_moment(b1, nesterov, dtype=None):
    """``m_hat``: Adam's bias-corrected EMA, or its Nesterov form."""
    if nesterov:
        return scale_by_nesterov_ema(b1, momentum_decay=None, dtype=dtype)
    return chain(ema(b1, dtype=dtype), bias_correction(b1))


def radam(
    learning_rate=1e-3,
    b1=0.9,
    b2=0.999,
    eps=1e-8,
    eps_root=0.0,
    threshold=5.0,
    *,
    nesterov: bool = False,
) -> GradientTransformation:
    r"""RAdam: Adam with the variance of its adaptive step rectified (Liu et al., 2020).

    With ``m_hat``, ``v_hat`` as in :func:`gradopt.adam`, ``rho_inf = 2/(1-b2) - 1``
    and ``t`` the 1-based step::

        rho_t = rho_inf - 2 t b2**t / (1 - b2**t)
        r_t   = sqrt((rho_t - 4)(rho_t - 2) rho_inf / ((rho_inf - 4)(rho_inf - 2) rho_t))
        w = w - learning_rate * r_t * m_hat / (sqrt(v_hat + eps_root) + eps)   if rho_t >= threshold
        w = w - learning_rate * m_hat                                          otherwise

    Args:
      learning_rate: a non-negative number, a scalar array or a schedule.
      b1, b2: decay rates of the moments, in [0, 1).
      eps: > 0, outside the square root.
      eps_root: >= 0, inside the square root.
      threshold: the smallest ``rho_t`` for the adaptive step, >= 0 (5: the
        authors' code; 4, or anything below, is the paper's ``rho_t > 4``).
      nesterov: the Nesterov form of ``m_hat`` (see :func:`nadamw`).

    Returns:
      ``chain(divide(chain(ema(b1), bias_correction(b1)),
      rectified_root_mean_square(b2, eps=eps, eps_root=eps_root,
      threshold=threshold)), scale_by_learning_rate(learning_rate))``.

    Example:
      >>> import jax.numpy as jnp
      >>> import gradopt
      >>> opt = gradopt.radam(0.1)
      >>> updates, _ = opt.update({"w": jnp.array([2.0, -4.0])}, opt.init({"w": jnp.zeros(2)}))
      >>> updates["w"].round(6)  # rho_1 < 5: the first steps are SGD with momentum
      Array([-0.2,  0.4], dtype=float32)

    Note:
      How PyTorch, Keras and optax differ: optax.radam has these names,
      defaults and rule, but evaluates ``rho_t`` in float32 from ``b2**t``,
      which loses three digits for ``b2`` near 1 (``rho_6 = 6.0005`` instead
      of 5.9942 for ``b2 = 0.999``); gradopt computes ``1 - b2**t`` with
      ``expm1`` in float32 (float64 under x64), so with ``b2 = 0.999`` the
      first rectified steps differ from optax's by up to 0.2% (tested against
      the paper's rule in float64). For ``b2 <= 0.95`` the two agree to
      float32 rounding. PyTorch's RAdam also uses 5 as the threshold (it
      writes ``rho_t > 5``) and ``eps`` outside the root; Keras has none.

    References:
      Liu, Jiang, He, Chen, Liu, Gao & Han, On the variance of the adaptive
      learning rate and beyond, ICLR 2020, arXiv:1908.03265.
    """
    check_args(
        "gradopt.radam", learning_rate, b1=b1, b2=b2, eps=eps, eps_root=eps_root, nesterov=nesterov
    )
    return chain(
        divide(
            _first_moment(b1, nesterov),
            rectified_root_mean_square(b2, eps=eps, eps_root=eps_root, threshold=threshold),
        ),
        scale_by_learning_rate(learning_rate),
    )


def adabelief(
    learning_rate=1e-3,
    b1=0.9,
    b2=0.999,
    eps=1e-16,
    eps_root=1e-16,
    *,
    nesterov: bool = False,
) -> GradientTransformation:
    r"""AdaBelief: Adam with the second moment of ``g - m`` (Zhuang et al., 2020).

    ::

        m = b1 * m + (1 - b1) * g
        s = b2 * s + (1 - b2) * (g - m)**2 + eps_root
        w = w - learning_rate * (m / (1 - b1**t)) / (sqrt(s / (1 - b2**t)) + eps)

    Args:
      learning_rate: a non-negative number, a scalar array or a schedule.
      b1, b2: decay rates, in [0, 1).
      eps: > 0, outside the square root (the paper's 1e-16).
      eps_root: >= 0, added to ``s`` at every step (the paper's eps in ``s_t``).
      nesterov: the Nesterov form of ``m_hat`` (see :func:`nadamw`).

    Returns:
      ``chain(scale_by_belief(b1, b2, eps=eps, eps_root=eps_root),
      scale_by_learning_rate(learning_rate))``.

    Example:
      >>> import jax.numpy as jnp
      >>> import gradopt
      >>> opt = gradopt.adabelief(1e-3)
      >>> updates, _ = opt.update({"w": jnp.array([2.0, -4.0])}, opt.init({"w": jnp.zeros(2)}))
      >>> updates["w"]  # sign(g) * learning_rate / 0.9 at the first step
      Array([-0.00111111,  0.00111111], dtype=float32)

    Note:
      How PyTorch, Keras and optax differ: optax.adabelief has these names,
      defaults and rule. The authors' PyTorch package adds eps inside ``s``
      as here; neither torch.optim nor Keras has AdaBelief.

    References:
      Zhuang, Tang, Ding, Tatikonda, Dvornek, Papademetris & Duncan,
      AdaBelief optimizer: Adapting stepsizes by the belief in observed
      gradients, NeurIPS 2020, arXiv:2010.07468.
    """
    check_args(
        "gradopt.adabelief",
        learning_rate,
        b1=b1,
        b2=b2,
        eps=eps,
        eps_root=eps_root,
        nesterov=nesterov,
    )
    return chain(
        scale_by_belief(b1, b2, eps=eps, eps_root=eps_root, nesterov=nesterov),
        scale_by_learning_rate(learning_rate),
    )


def yogi(learning_rate=1e-2, b1=0.9, b2=0.999, eps=1e-3) -> GradientTransformation:
    r"""Yogi: Adam with an additive second moment (Zaheer et al., 2018).

    With ``m`` and ``v`` both started at 1e-6::

        m = b1 * m + (1 - b1) * g
        v = v - (1 - b2) * sign(v - g**2) * g**2
        w = w - learning_rate * (m / (1 - b1**t)) / (sqrt(v / (1 - b2**t)) + eps)

    ``v`` moves towards ``g**2`` by at most ``(1 - b2) * g**2`` a step, so a
    burst of large gradients raises it less abruptly than Adam's average.

    Args:
      learning_rate: a non-negative number, a scalar array or a schedule
        (1e-2, the paper's).
      b1, b2: decay rates, in [0, 1).
      eps: > 0 (1e-3, the paper's).

    Returns:
      ``chain(scale_by_yogi(b1, b2, eps=eps), scale_by_learning_rate(learning_rate))``.

    Example:
      >>> import jax.numpy as jnp
      >>> import gradopt
      >>> opt = gradopt.yogi(0.01)
      >>> updates, _ = opt.update({"w": jnp.array([2.0, -4.0])}, opt.init({"w": jnp.zeros(2)}))
      >>> updates["w"]
      Array([-0.0099938 ,  0.00999717], dtype=float32)

    Note:
      How PyTorch, Keras and optax differ. The paper's algorithm starts
      ``m`` and ``v`` at 0 and has no bias correction; optax.yogi (and the
      TensorFlow Addons Yogi) correct the bias as Adam does and start both
      moments at 1e-6, and so does gradopt, which equals optax.yogi.
      ``gradopt.scale_by_yogi(initial_accumulator_value=0.0)`` starts them
      at 0. Neither torch.optim nor Keras has Yogi.

    References:
      Zaheer, Reddi, Sachan, Kale & Kumar, Adaptive methods for nonconvex
      optimization, NeurIPS 2018.
    """
    check_args("gradopt.yogi", learning_rate, b1=b1, b2=b2, eps=eps)
    return chain(scale_by_yogi(b1, b2, eps=eps), scale_by_learning_rate(learning_rate))


def adan(
    learning_rate=1e-3,
    b1=0.98,
    b2=0.92,
    b3=0.99,
    eps=1e-8,
    eps_root=1e-8,
    weight_decay=0.0,
    mask=None,
) -> GradientTransformation:
    r"""Adan: adaptive Nesterov momentum (Xie et al., 2022).

    With ``d = g_t - g_{t-1}`` (0 at the first step), decay rates ``b = 1 -
    beta`` of the paper's ``beta``, and hats for the bias corrections
    ``1 / (1 - b**t)``::

        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * d
        n = b3 * n + (1 - b3) * (g + b2 * d)**2
        w = w - learning_rate * ((m_hat + b2 * v_hat) / (sqrt(n_hat + eps_root) + eps)
                                 + weight_decay * w)

    Args:
      learning_rate: a non-negative number, a scalar array or a schedule.
      b1, b2, b3: decay rates (``1 - beta1``, ``1 - beta2``, ``1 - beta3`` of
        the paper), in [0, 1).
      eps: > 0, outside the square root.
      eps_root: >= 0, inside the square root.
      weight_decay: decoupled decay coefficient, >= 0.
      mask: which parameters to decay (see :func:`gradopt.add_decayed_weights`).

    Returns:
      ``chain(scale_by_adan(b1, b2, b3, eps=eps, eps_root=eps_root),
      add_decayed_weights(weight_decay, mask=mask),
      scale_by_learning_rate(learning_rate))``.

    Example:
      >>> import jax.numpy as jnp
      >>> import gradopt
      >>> opt = gradopt.adan(0.1)
      >>> params = {"w": jnp.zeros(2)}
      >>> updates, _ = opt.update({"w": jnp.array([2.0, -4.0])}, opt.init(params), params)
      >>> updates["w"].round(6)
      Array([-0.1,  0.1], dtype=float32)

    Note:
      How PyTorch, Keras and optax differ. gradopt follows the paper and the
      authors' PyTorch code: the difference ``v`` enters the update and the
      square with the weight ``1 - beta2 = b2`` (0.92). optax.adan uses
      ``1 - b2`` (0.08) in both places, a different optimizer for the same
      arguments; its trajectory differs from gradopt's unless ``b2 = 0.5``.
      The paper's weight decay is proximal, ``w = (w - lr * u) / (1 + lr *
      weight_decay)``; gradopt, like optax and the authors' ``no_prox``
      option, decouples it as AdamW does. Neither torch.optim nor Keras has
      Adan.

    References:
      Xie, Zhou, Li, Lin & Yan, Adan: Adaptive Nesterov momentum algorithm
      for faster optimizing deep models, 2022, arXiv:2208.06677 (TPAMI 2024).
    """
    check_args(
        "gradopt.adan",
        learning_rate,
        b1=b1,
        b2=b2,
        b3=b3,
        eps=eps,
        eps_root=eps_root,
        weight_decay=weight_decay,
    )
    return real_only(
        chain(
            scale_by_adan(b1, b2, b3, eps=eps, eps_root=eps_root),
            add_decayed_weights(weight_decay, mask=mask),
            scale_by_learning_rate(learning_rate),
        ),
        name="gradopt.adan",
        reason="its gradient-difference moments are defined on real numbers (as optax.adan)",
    )


def nadamw(
    learning_rate=1e-3,
    b1=0.9,
    b2=0.999,
    eps=1e-8,
    mu_dtype=None,
    weight_decay=1e-4,
    mask=None,
) -> GradientTransformation:
    r"""NAdamW: Nesterov's Adam with decoupled weight decay (Dozat, 2016; Loshchilov & Hutter).

    With ``v_hat`` as in :func:`gradopt.adam` and a constant momentum ``b1``::

        m = b1 * m + (1 - b1) * g
        m_bar = b1 * m / (1 - b1**(t+1)) + (1 - b1) * g / (1 - b1**t)
        w = w - learning_rate * (m_bar / (sqrt(v_hat) + eps) + weight_decay * w)

    Args:
      learning_rate: a non-negative number, a scalar array or a schedule.
      b1, b2: decay rates, in [0, 1).
      eps: > 0.
      mu_dtype: storage dtype of ``m``.
      weight_decay: decoupled decay coefficient, >= 0 (optax's 1e-4).
      mask: which parameters to decay (see :func:`gradopt.add_decayed_weights`).

    Returns:
      ``chain(divide(scale_by_nesterov_ema(b1, momentum_decay=None),
      root_mean_square(b2, eps=eps, debias=True)), add_decayed_weights(
      weight_decay, mask=mask), scale_by_learning_rate(learning_rate))``.

    Example:
      >>> import jax.numpy as jnp
      >>> import gradopt
      >>> opt = gradopt.nadamw(1e-3, weight_decay=0.0)
      >>> params = {"w": jnp.zeros(2)}
      >>> updates, _ = opt.update({"w": jnp.array([2.0, -4.0])}, opt.init(params), params)
      >>> updates["w"]
      Array([-0.00147368,  0.00147368], dtype=float32)

    Note:
      How PyTorch, Keras and optax differ: optax.nadamw (``adamw(...,
      nesterov=True)``) is this rule with these names and defaults.
      PyTorch's ``NAdam(decoupled_weight_decay=True)`` and Keras' Nadam use
      Dozat's momentum schedule instead (:func:`gradopt.nadam`).

    References:
      Dozat, Incorporating Nesterov momentum into Adam, ICLR 2016 workshop;
      Loshchilov & Hutter, Decoupled weight decay regularization, ICLR 2019,
      arXiv:1711.05101.
    """
    check_args(
        "gradopt.nadamw",
        learning_rate,
        b1=b1,
        b2=b2,
        eps=eps,
        mu_dtype=mu_dtype,
        weight_decay=weight_decay,
    )
    return chain(
        divide(_first_moment(b1, True, mu_dtype), root_mean_square(b2, eps=eps, debias=True)),
        add_decayed_weights(weight_decay, mask=mask),
        scale_by_learning_rate(learning_rate),
    )


def adamaxw(
    learning_rate=2e-3,
    b1=0.9,
    b2=0.999,
    eps=1e-8,
    weight_decay=1e-4,
    mask=None,
) -> GradientTransformation:
    r"""AdaMaxW: AdaMax with decoupled weight decay.

    With ``m_hat`` as in :func:`gradopt.adam`::

        u = max(b2 * u, |g| + eps)
        w = w - learning_rate * (m_hat / u + weight_decay * w)

    Args:
      learning_rate: a non-negative number, a scalar array or a schedule
        (2e-3, AdaMax's default in the Adam paper).
      b1, b2: decay rates, in [0, 1).
      eps: > 0, inside the maximum as in optax and PyTorch.
      weight_decay: decoupled decay coefficient, >= 0 (optax's 1e-4).
      mask: which parameters to decay (see :func:`gradopt.add_decayed_weights`).

    Returns:
      ``chain(divide(chain(ema(b1), bias_correction(b1)), infinity_norm(b2,
      eps=eps, eps_inside_max=True)), add_decayed_weights(weight_decay,
      mask=mask), scale_by_learning_rate(learning_rate))``.

    Example:
      >>> import jax.numpy as jnp
      >>> import gradopt
      >>> opt = gradopt.adamaxw(0.1, weight_decay=0.0)
      >>> params = {"w": jnp.zeros(2)}
      >>> updates, _ = opt.update({"w": jnp.array([2.0, -4.0])}, opt.init(params), params)
      >>> updates["w"].round(6)
      Array([-0.1,  0.1], dtype=float32)

    Note:
      How PyTorch, Keras and optax differ: optax.adamaxw is this rule with
      these names and defaults (its learning rate has none). PyTorch's Adamax
      and Keras' AdaMax have coupled (L2) decay only; :func:`gradopt.adamax`
      is their rule.

    References:
      Kingma & Ba, Adam: A method for stochastic optimization, ICLR 2015
      (section 7.1), arXiv:1412.6980; Loshchilov & Hutter, Decoupled weight
      decay regularization, ICLR 2019, arXiv:1711.05101.
    """
    check_args("gradopt.adamaxw", learning_rate, b1=b1, b2=b2, eps=eps, weight_decay=weight_decay)
    return chain(
        divide(_first_moment(b1, False), infinity_norm(b2, eps=eps, eps_inside_max=True)),
        add_decayed_weights(weight_decay, mask=mask),
        scale_by_learning_rate(learning_rate),
    )


def adopt(
    learning_rate=1e-3,
    b1=0.9,
    b2=0.9999,
    eps=1e-6,
    mu_dtype=None,
    *,
    nesterov: bool = False,
    use_clipping: bool = True,
) -> GradientTransformation:
    r"""ADOPT: Adam that converges with any b2 (Taniguchi et al., 2024).

    The second moment of the *previous* steps normalises the gradient before
    the momentum averages it. With ``v = g_0**2`` set at the first step
    (which does not move the parameters) and ``t >= 1``::

        m = b1 * m + (1 - b1) * clip(g / max(sqrt(v), eps), c_t)
        w = w - learning_rate * m
        v = b2 * v + (1 - b2) * g**2

    ``clip(x, c)`` limits ``x`` to ``[-c, c]``, with ``c_t = t**0.25``.

    Args:
      learning_rate: a non-negative number, a scalar array or a schedule.
      b1, b2: decay rates, in [0, 1) (the paper's 0.9 and 0.9999).
      eps: > 0, the smallest denominator (the paper's 1e-6).
      mu_dtype: storage dtype of ``m``.
      nesterov: step by ``b1 * m + (1 - b1) * clip(...)`` instead of ``m``.
      use_clipping: clip as above (the paper's stable variant); False
        divides only. For another bound ``c_t`` use
        ``chain(scale_by_adopt(..., clip_value_fn=f), scale_by_learning_rate(lr))``.

    Returns:
      ``chain(scale_by_adopt(b1, b2, eps=eps, ...), scale_by_learning_rate(learning_rate))``.

    Example:
      >>> import jax.numpy as jnp
      >>> import gradopt
      >>> opt = gradopt.adopt(0.1)
      >>> state = opt.init({"w": jnp.zeros(2)})
      >>> g = {"w": jnp.array([2.0, -4.0])}
      >>> updates, state = opt.update(g, state)  # the first step only sets v = g**2
      >>> updates["w"]
      Array([-0., -0.], dtype=float32)
      >>> updates, state = opt.update(g, state)
      >>> updates["w"]  # -0.1 * (1 - 0.9) * g / |g|
      Array([-0.01,  0.01], dtype=float32)

    Note:
      How PyTorch, Keras and optax differ: optax.contrib.adopt has these
      names, defaults and rule (the first update is zero); its
      ``clip_value_fn`` is an argument of :func:`gradopt.scale_by_adopt`
      only, since ``inject_hyperparams`` would take a function for a
      schedule. The authors'
      PyTorch code does the same. Neither torch.optim nor Keras has ADOPT.

    References:
      Taniguchi, Harada, Minegishi, Oshima, Jeong, Nagahara, Iiyama, Suzuki,
      Iwasawa & Matsuo, ADOPT: Modified Adam can converge with any beta2
      with the optimal rate, NeurIPS 2024, arXiv:2411.02853.
    """
    check_args(
        "gradopt.adopt",
        learning_rate,
        b1=b1,
        b2=b2,
        eps=eps,
        mu_dtype=mu_dtype,
        nesterov=nesterov,
        use_clipping=use_clipping,
    )
    return chain(
        scale_by_adopt(
            b1,
            b2,
            eps=eps,
            nesterov=nesterov,
            use_clipping=use_clipping,
            dtype=mu_dtype,
        ),
        scale_by_learning_rate(learning_rate),
    )


def ademamix(
    learning_rate=1e-3,
    b1=0.9,
    b2=0.999,
    b3=0.9999,
    alpha=5.0,
    eps=1e-8,
    eps_root=0.0,
    mu_dtype=None,
    weight_decay=0.0,
    mask=None,
) -> GradientTransformation:
    r"""AdEMAMix: Adam with a second, slow momentum (Pagliardini et al., 2024).

    ::

        m1 = b1 * m1 + (1 - b1) * g
        m2 = b3 * m2 + (1 - b3) * g
        v  = b2 * v  + (1 - b2) * g**2
        w = w - learning_rate * ((m1 / (1 - b1**t) + alpha * m2)
                                 / (sqrt(v / (1 - b2**t) + eps_root) + eps) + weight_decay * w)

    The slow momentum ``m2`` is not bias corrected: it fills slowly, which
    the paper pairs with warm-up schedules for ``alpha`` and ``b3`` (pass
    them as schedules of the 0-based step).

    Args:
      learning_rate: a non-negative number, a scalar array or a schedule.
      b1, b2: decay rates of ``m1`` and ``v``, in [0, 1).
      b3: decay rate of ``m2``, in [0, 1), or a schedule.
      alpha: weight of ``m2``, >= 0, or a schedule.
      eps: > 0, outside the square root.
      eps_root: >= 0, inside the square root.
      mu_dtype: storage dtype of ``m1``, ``m2`` and ``v``.
      weight_decay: decoupled decay coefficient, >= 0.
      mask: which parameters to decay (see :func:`gradopt.add_decayed_weights`).

    Returns:
      ``chain(scale_by_ademamix(b1, b2, b3, alpha, eps=eps, eps_root=eps_root),
      add_decayed_weights(weight_decay, mask=mask), scale_by_learning_rate(learning_rate))``.

    Example:
      >>> import jax.numpy as jnp
      >>> import gradopt
      >>> opt = gradopt.ademamix(1e-3)
      >>> params = {"w": jnp.zeros(2)}
      >>> updates, _ = opt.update({"w": jnp.array([2.0, -4.0])}, opt.init(params), params)
      >>> updates["w"]  # (1 + 5 * 1e-4) * -learning_rate * sign(g)
      Array([-0.0010005,  0.0010005], dtype=float32)

    Note:
      How PyTorch, Keras and optax differ: optax.contrib.ademamix has these
      names, defaults and rule. Neither torch.optim nor Keras has AdEMAMix.

    References:
      Pagliardini, Ablin & Grangier, The AdEMAMix optimizer: Better, faster,
      older, 2024, arXiv:2409.03137.
    """
    check_args(
        "gradopt.ademamix",
        learning_rate,
        b1=b1,
        b2=b2,
        b3=b3,
        eps=eps,
        eps_root=eps_root,
        mu_dtype=mu_dtype,
        weight_decay=weight_decay,
    )
    return chain(
        scale_by_ademamix(b1, b2, b3, alpha, eps=eps, eps_root=eps_root, dtype=mu_dtype),
        add_decayed_weights(weight_decay, mask=mask),
        scale_by_learning_rate(learning_rate),
    )
