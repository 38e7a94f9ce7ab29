"""SGD with the Polyak step size: polyak_sgd."""

from __future__ import annotations

from gradopt.core._base import GradientTransformation
from gradopt.core._chain import chain
from gradopt.core._checks import check_learning_rate
from gradopt.transforms._polyak import scale_by_polyak
from gradopt.transforms._real_only import real_only
from gradopt.transforms._scale import scale_by_learning_rate


def polyak_sgd(
    max_learning_rate=1.0, scaling=1.0, f_min=0.0, eps=0.0, variant: str = "sps"
) -> GradientTransformation:
    r"""SGD with the stochastic Polyak step size (Loizou et al., 2021).

    With ``f`` the loss at ``w`` (passed as ``update(..., value=f)``) and
    ``c = scaling``::

        gamma = min((f - f_min) / (c * ||g||**2 + eps / c), c * max_learning_rate)
        w = w - gamma * g

    (``gamma = 0`` where ``c**2 * ||g||**2 + eps`` is 0; ``variant="sps+"``
    uses ``max(f - f_min, 0)``).

    Args:
      max_learning_rate: the largest step ``gamma_b``, >= 0.
      scaling: the constant ``c`` of the paper, a non-negative number, a
        scalar array or a schedule.
      f_min: a lower bound of the loss (0 for models that interpolate the data).
      eps: >= 0, added to the squared norm.
      variant: ``"sps"`` or ``"sps+"``.

    Returns:
      ``chain(scale_by_learning_rate(scaling), scale_by_polyak(f_min,
      max_learning_rate, eps, variant))``; its ``update`` needs ``value=``.

    Example:
      >>> import jax.numpy as jnp
      >>> import gradopt
      >>> opt = gradopt.polyak_sgd()
      >>> w = {"w": jnp.array([2.0, -1.0])}  # f(w) = 0.5 |w|**2, g = w
      >>> updates, _ = opt.update(w, opt.init(w), value=jnp.asarray(2.5))
      >>> updates["w"]  # (2.5 / 5) * g: halfway to the minimum
      Array([-1. ,  0.5], dtype=float32)

    Note:
      How PyTorch, Keras and optax differ: optax.polyak_sgd is this chain
      with these names and defaults. It caps the step at ``c *
      max_learning_rate`` rather than the paper's ``gamma_b`` (equal for the
      default ``c = 1``). Neither torch.optim nor Keras has it.

    References:
      Loizou, Vaswani, Laradji & Lacoste-Julien, Stochastic Polyak step-size
      for SGD: An adaptive learning rate for fast convergence, AISTATS 2021,
      arXiv:2002.10542.
    """
    check_learning_rate("gradopt.polyak_sgd", scaling, "scaling")
    return real_only(
        chain(
            scale_by_learning_rate(scaling),
            scale_by_polyak(f_min, max_learning_rate, eps, variant),
        ),
        name="gradopt.polyak_sgd",
        reason="the Polyak step size is defined for real parameters (as optax.polyak_sgd)",
    )
