"""SM3 (Anil, Gupta, Koren & Singer, 2019): ``chain(scale_by_sm3(momentum),
scale_by_learning_rate(learning_rate))``."""

from __future__ import annotations

from gradopt.core._base import GradientTransformation
from gradopt.core._chain import chain
from gradopt.core._checks import check_learning_rate, check_momentum
from gradopt.transforms._real_only import real_only
from gradopt.transforms._scale import scale_by_learning_rate
from gradopt.transforms._sm3 import scale_by_sm3


def sm3(learning_rate, momentum=0.9) -> GradientTransformation:
    r"""SM3: memory-efficient adaptive optimisation (Anil et al., 2019; SM3-II).

    For an ``n x m`` matrix ``W`` (a tensor: one accumulator per index of each
    axis), with row accumulators ``r`` and column accumulators ``c``::

        acc_ij = min(r_i, c_j) + g_ij**2
        r_i = max_j acc_ij;   c_j = max_i acc_ij
        nu = momentum * nu + (1 - momentum) * g / sqrt(acc + 1e-8)   # 0 where acc = 0
        W = W - learning_rate * nu

    Vectors and scalars keep a full accumulator ``acc = acc + g**2`` (Adagrad).
    The accumulators need ``n + m`` numbers per matrix instead of Adagrad's
    ``n m``.

    Args:
      learning_rate: >= 0, a number, a scalar array or a schedule.
      momentum: the decay rate of ``nu``, in [0, 1) (0.9).

    Returns:
      ``chain(scale_by_sm3(momentum), scale_by_learning_rate(learning_rate))``.

    Example:
      >>> import jax.numpy as jnp, gradopt
      >>> opt = gradopt.sm3(0.1, momentum=0.0)
      >>> params = {"w": jnp.zeros((2, 3))}
      >>> state = opt.init(params)
      >>> [m.shape for m in state[0].mu["w"]]   # 2 + 3 numbers, not 6
      [(2,), (3,)]
      >>> u, state = opt.update({"w": jnp.full((2, 3), 2.0)}, state)
      >>> u["w"][0]   # the first step is -learning_rate * sign(g)
      Array([-0.1, -0.1, -0.1], dtype=float32)

    Note:
      How PyTorch, Keras and optax differ. optax.sm3 (the tests' reference:
      equal trajectories) has these names and defaults but fails on scalar
      parameters (it indexes the accumulator list of a rank-0 leaf), which
      gradopt gives a full accumulator as it does vectors. The paper's SM3 has
      no momentum term of this form (its experiments use heavy-ball momentum
      0.9); optax and gradopt average the scaled updates. Neither torch.optim
      nor Keras 3 has SM3.

    References:
      Anil, Gupta, Koren & Singer, Memory-efficient adaptive optimization,
      NeurIPS 2019, arXiv:1901.11150.
    """
    check_learning_rate("gradopt.sm3", learning_rate)
    check_momentum("gradopt.sm3", momentum)
    return real_only(
        chain(scale_by_sm3(momentum), scale_by_learning_rate(learning_rate)),
        name="gradopt.sm3",
        reason="its cover-set maxima are defined on real squares (as optax.sm3)",
    )
