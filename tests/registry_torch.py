"""Registry entries for the torch.optim optimizers of issue 16 (``gradopt.compat.torch``).

Each replaces the generic ``compat.torch.<name>`` entry of ``tests/registry.py``
with the arguments and capabilities the optimizer needs.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

import gradopt
import gradopt.compat.torch as torch_compat
from tests.registry import DECAY, NONNEGATIVE, POSITIVE, Convergence, Entry, Range


def _half_sum_of_squares(params):
    """A module-level loss for LBFGS's ``value_fn``: ``0.5 * |w|^2`` over every leaf."""
    return 0.5 * sum(
        jnp.sum(jnp.square(jnp.asarray(x, jnp.float32))) for x in jax.tree.leaves(params)
    )


LR_SWEEP = (0.01, 0.1, 0.3)

ENTRIES = [
    # -- the primitive behind compat.torch.rprop --------------------------------
    Entry(
        "scale_by_rprop",
        gradopt.scale_by_rprop,
        kwargs={"initial_step_size": 0.01},
        sweepable={"initial_step_size": (0.01, 0.05, 0.1)},
        ranges={
            "initial_step_size": NONNEGATIVE,
            "eta_minus": Range(0.0, 1.0, low_open=True, high_open=True),
            "eta_plus": Range(1.0, None, low_open=True),
        },  # min_step_size <= max_step_size couples two arguments: tests/test_rprop.py
        converges={"quadratic": Convergence({"initial_step_size": 0.01}, 300, 1.0)},
        supports_complex=False,
    ),
    Entry(
        "compat.torch.asgd",
        torch_compat.asgd,
        kwargs={"lr": 0.01},
        needs_params=True,
        sweepable={"lr": LR_SWEEP},
        ranges={
            "lr": NONNEGATIVE,
            "lambd": NONNEGATIVE,
            "alpha": NONNEGATIVE,
            "t0": NONNEGATIVE,
            "weight_decay": NONNEGATIVE,
        },
        flags=("maximize",),
        callable_ok=("lr",),
        supports_complex=False,
    ),
    Entry(
        "compat.torch.rprop",
        torch_compat.rprop,
        kwargs={"lr": 0.01},
        sweepable={"lr": LR_SWEEP},
        ranges={"lr": NONNEGATIVE},
        flags=("maximize",),
        schedule_lr=False,
        supports_complex=False,
    ),
    Entry(
        "compat.torch.radam",
        torch_compat.radam,
        kwargs={"lr": 0.01},
        sweepable={"lr": LR_SWEEP},
        ranges={"lr": NONNEGATIVE, "eps": POSITIVE, "weight_decay": NONNEGATIVE},
        flags=("decoupled_weight_decay", "maximize"),
        callable_ok=("lr",),
        supports_complex=False,
    ),
    Entry(
        "compat.torch.radam-decoupled",
        torch_compat.radam,
        kwargs={"lr": 0.01, "weight_decay": 0.01, "decoupled_weight_decay": True},
        needs_params=True,
        supports_complex=False,
    ),
    Entry(
        "compat.torch.adafactor",
        torch_compat.adafactor,
        kwargs={"lr": 0.01},
        needs_params=True,
        sweepable={"lr": LR_SWEEP},
        ranges={
            "lr": NONNEGATIVE,
            "beta2_decay": Range(None, 0.0),
            "d": Range(1.0, None),
            "weight_decay": NONNEGATIVE,
        },
        flags=("maximize",),
        callable_ok=("lr",),
        supports_complex=False,
    ),
    Entry(
        "compat.torch.sparse_adam",
        torch_compat.sparse_adam,
        kwargs={"lr": 0.01},
        sweepable={"lr": LR_SWEEP},
        ranges={"lr": Range(0.0, None, low_open=True), "eps": POSITIVE},
        flags=("maximize",),
        callable_ok=("lr",),
        supports_complex=False,
    ),
    Entry(
        "compat.torch.muon",
        torch_compat.muon,
        kwargs={"lr": 0.01},
        needs_params=True,
        sweepable={"lr": LR_SWEEP},
        ranges={
            "lr": NONNEGATIVE,
            "weight_decay": NONNEGATIVE,
            "momentum": DECAY,
            "eps": POSITIVE,
        },
        flags=("nesterov",),
        callable_ok=("lr",),
        matrices_only=True,
        supports_complex=False,
    ),
    Entry(
        "compat.torch.lbfgs",
        torch_compat.lbfgs,
        kwargs={"lr": 0.1, "max_iter": 3},
        needs_params=True,
        extra_args={"value_fn": _half_sum_of_squares},
        reevaluates=True,
        ranges={"lr": NONNEGATIVE, "tolerance_grad": NONNEGATIVE, "tolerance_change": NONNEGATIVE},
        schedule_lr=False,
        supports_complex=False,
    ),
]

NOT_TRANSFORMS = {"asgd_average"}
