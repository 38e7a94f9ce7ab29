"""Registry entries of issue 17, part B: Muon, Adafactor, schedule-free, Lookahead,
Prodigy, D-Adaptation, SAM, SM3, and their primitives."""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp

import gradopt
from tests.registry import DECAY, NONNEGATIVE, POSITIVE, Convergence, Entry, Range

LR_SWEEP = (0.01, 0.1, 0.3)


def _q(steps=300, then=None, **kwargs):
    return Convergence(kwargs, steps, then)


def _both(steps_q=300, steps_r=5000, **kwargs):
    return {"quadratic": _q(steps_q, **kwargs), "rosenbrock": _q(steps_r, **kwargs)}


def _partition_sgd_adam(learning_rate):
    """``partition``: matrices by SGD, every other leaf by Adam."""
    return gradopt.partition(
        {"sgd": gradopt.sgd(learning_rate), "adam": gradopt.adam(learning_rate)}, _by_rank
    )


def _by_rank(params):
    import jax

    return jax.tree.map(lambda p: "sgd" if jnp.ndim(p) == 2 else "adam", params)


def _decaying(count):
    """A module-level schedule ``0.5 * 0.99**count``: Muon's fixed-size steps settle.

    The steps sum to 50, so that tests/test_complex.py's parabola (a distance
    of 11 from its start) is within reach too."""
    return 0.5 * jnp.power(0.99, count.astype(jnp.float32))


ENTRIES = [
    # -- Muon and its primitives ---------------------------------------------
    Entry(
        "orthogonalize",
        gradopt.orthogonalize,
        sweepable={"eps": (1e-8, 1e-4, 1e-2)},
        ranges={"eps": POSITIVE},
        converges={"quadratic": _q(then=0.02)},
        supports_complex=True,
    ),
    Entry(
        "orthogonalize-per_step",
        gradopt.orthogonalize,
        kwargs={"coeffs": ((3.4445, -4.7750, 2.0315), (1.5, -0.5, 0.0)), "steps": 2},
        supports_complex=True,
    ),
    Entry(
        "scale_by_shape",
        gradopt.scale_by_shape,
        kwargs={"consistent_rms": 0.2},
        sweepable={"consistent_rms": (0.1, 0.2, 1.0)},
        ranges={"consistent_rms": NONNEGATIVE},
        supports_complex=True,
    ),
    Entry(
        "partition-sgd_adam",
        _partition_sgd_adam,
        kwargs={"learning_rate": 0.05},
        sweepable={"learning_rate": LR_SWEEP},
        converges={"quadratic": _q(learning_rate=0.05)},
        supports_complex=True,
    ),
    Entry(
        "muon",
        gradopt.muon,
        kwargs={"learning_rate": 0.02},
        optimizer=True,
        needs_params=False,
        sweepable={"learning_rate": LR_SWEEP, "beta": (0.5, 0.9, 0.95)},
        ranges={
            "learning_rate": NONNEGATIVE,
            "beta": DECAY,
            "eps": POSITIVE,
            "weight_decay": NONNEGATIVE,
            "adam_b1": DECAY,
            "adam_b2": DECAY,
            "adam_weight_decay": NONNEGATIVE,
            "adam_learning_rate": NONNEGATIVE,
            "consistent_rms": NONNEGATIVE,
        },
        flags=("nesterov",),
        callable_ok=("learning_rate", "adam_learning_rate"),
        converges={
            "quadratic": _q(600, learning_rate=_decaying),
            "rosenbrock": _q(5000, learning_rate=0.02),
        },
        supports_complex=True,
    ),
    Entry(
        "muon-weight_decay",
        gradopt.muon,
        kwargs={"learning_rate": 0.02, "weight_decay": 0.1, "adam_weight_decay": 0.1},
        needs_params=True,
        supports_complex=True,
    ),
]

ENTRIES += [
    # -- Adafactor and its primitives ----------------------------------------
    Entry(
        "scale_by_factored_rms",
        gradopt.scale_by_factored_rms,
        kwargs={"min_dim_size_to_factor": 1},
        sweepable={"decay_rate": (0.5, 0.8, 1.0)},
        ranges={"decay_rate": NONNEGATIVE, "step_offset": NONNEGATIVE, "eps": POSITIVE},
        flags=("factored",),
        supports_complex=True,
    ),
    Entry(
        "clip_by_block_rms",
        gradopt.clip_by_block_rms,
        kwargs={"threshold": 1.0},
        sweepable={"threshold": (0.1, 0.5, 1.0)},
        ranges={"threshold": POSITIVE},
        supports_complex=True,
    ),
    Entry(
        "scale_by_param_block_rms",
        gradopt.scale_by_param_block_rms,
        needs_params=True,
        sweepable={"min_scale": (0.1, 1.0, 10.0)},
        ranges={"min_scale": NONNEGATIVE},
        supports_complex=True,
    ),
    Entry(
        "adafactor",
        gradopt.adafactor,
        kwargs={"learning_rate": 0.1},
        optimizer=True,
        static_args=("min_dim_size_to_factor",),
        needs_params=True,
        sweepable={"learning_rate": LR_SWEEP, "decay_rate": (0.5, 0.8, 1.0)},
        ranges={
            "learning_rate": NONNEGATIVE,
            "decay_rate": NONNEGATIVE,
            "decay_offset": NONNEGATIVE,
            "clipping_threshold": POSITIVE,
            "momentum": DECAY,
            "weight_decay_rate": NONNEGATIVE,
            "eps": POSITIVE,
        },
        flags=("multiply_by_parameter_scale", "factored"),
        callable_ok=("learning_rate",),
        converges={
            "quadratic": _q(600, learning_rate=_decaying, multiply_by_parameter_scale=False)
        },
        supports_complex=True,
    ),
    Entry(
        "adafactor-factored",
        gradopt.adafactor,
        kwargs={"learning_rate": 0.1, "min_dim_size_to_factor": 1},
        needs_params=True,
        sweepable={"learning_rate": LR_SWEEP},
        converges={
            "quadratic": _q(
                600,
                learning_rate=_decaying,
                multiply_by_parameter_scale=False,
                min_dim_size_to_factor=1,
            )
        },
        supports_complex=True,
    ),
    Entry(
        "adafactor-momentum-weight_decay",
        gradopt.adafactor,
        kwargs={"momentum": 0.9, "weight_decay_rate": 1e-3, "min_dim_size_to_factor": 1},
        needs_params=True,
        sweepable={"momentum": (0.0, 0.5, 0.9)},
        supports_complex=True,
    ),
]

SF_RANGES = {
    "learning_rate": NONNEGATIVE,
    "b1": Range(0.0, 1.0, low_open=True, high_open=True),
    "weight_lr_power": NONNEGATIVE,
}

ENTRIES += [
    # -- schedule-free -------------------------------------------------------
    Entry(
        "schedule_free",
        gradopt.schedule_free,
        kwargs={"base_optimizer": gradopt.sgd(0.1), "learning_rate": 0.1},
        needs_params=True,
        sweepable={"b1": (0.5, 0.8, 0.9)},
        ranges=SF_RANGES,
        callable_ok=("learning_rate",),
        converges={"quadratic": _q(base_optimizer=gradopt.sgd(0.1), learning_rate=0.1)},
        supports_complex=True,
    ),
    Entry(
        "schedule_free_sgd",
        gradopt.schedule_free_sgd,
        kwargs={"learning_rate": 0.1},
        optimizer=True,
        needs_params=True,
        sweepable={"learning_rate": LR_SWEEP, "b1": (0.5, 0.8, 0.9)},
        ranges={**SF_RANGES, "weight_decay": NONNEGATIVE},
        callable_ok=("learning_rate",),
        converges={"quadratic": _q(learning_rate=0.1)},
        supports_complex=True,
    ),
    Entry(
        "schedule_free_sgd-warmup-weight_decay",
        gradopt.schedule_free_sgd,
        kwargs={"learning_rate": 0.1, "warmup_steps": 5, "weight_decay": 1e-3},
        needs_params=True,
        sweepable={"learning_rate": LR_SWEEP},
        supports_complex=True,
    ),
    Entry(
        "schedule_free_adamw",
        gradopt.schedule_free_adamw,
        kwargs={"learning_rate": 0.05},
        optimizer=True,
        needs_params=True,
        sweepable={"learning_rate": LR_SWEEP, "b2": (0.5, 0.9, 0.999)},
        ranges={**SF_RANGES, "b2": DECAY, "eps": POSITIVE, "weight_decay": NONNEGATIVE},
        callable_ok=("learning_rate",),
        converges={"quadratic": _q(3000, learning_rate=0.02)},
        supports_complex=True,
    ),
]

ENTRIES += [
    # -- Lookahead -----------------------------------------------------------
    Entry(
        "lookahead",
        gradopt.lookahead,
        kwargs={"fast_optimizer": gradopt.adam(0.05), "sync_period": 2},
        needs_params=True,
        sweepable={"slow_step_size": (0.2, 0.5, 0.8)},
        ranges={"slow_step_size": Range(0.0, 1.0)},
        flags=("reset_state",),
        converges={"quadratic": _q(fast_optimizer=gradopt.adam(0.05), sync_period=5)},
        supports_complex=True,
    ),
    Entry(
        "lookahead-reset_state",
        gradopt.lookahead,
        kwargs={"fast_optimizer": gradopt.sgd(0.05, momentum=0.9), "reset_state": True},
        needs_params=True,
        supports_complex=True,
    ),
]

ENTRIES += [
    # -- learning-rate-free Adam ---------------------------------------------
    Entry(
        "prodigy",
        gradopt.prodigy,
        optimizer=True,
        needs_params=True,
        sweepable={"learning_rate": (0.5, 1.0, 2.0), "estim_lr0": (1e-6, 1e-4, 1e-2)},
        ranges={
            "learning_rate": NONNEGATIVE,
            "beta3": DECAY,
            "eps": POSITIVE,
            "estim_lr0": POSITIVE,
            "estim_lr_coef": NONNEGATIVE,
            "weight_decay": NONNEGATIVE,
        },
        flags=("safeguard_warmup",),
        callable_ok=("learning_rate",),
        converges={"quadratic": _q(1000)},
        supports_complex=False,
    ),
    Entry(
        "prodigy-safeguard_warmup-weight_decay",
        gradopt.prodigy,
        kwargs={"safeguard_warmup": True, "weight_decay": 1e-2, "betas": (0.8, 0.99)},
        needs_params=True,
        supports_complex=False,
    ),
    Entry(
        "dadapt_adamw",
        gradopt.dadapt_adamw,
        optimizer=True,
        needs_params=True,
        sweepable={"learning_rate": (0.5, 1.0, 2.0), "estim_lr0": (1e-6, 1e-4, 1e-2)},
        ranges={
            "learning_rate": NONNEGATIVE,
            "eps": POSITIVE,
            "estim_lr0": POSITIVE,
            "weight_decay": NONNEGATIVE,
        },
        callable_ok=("learning_rate",),
        converges={"quadratic": _q(1000)},
        supports_complex=False,
    ),
]

ENTRIES += [
    # -- SAM -----------------------------------------------------------------
    Entry("normalize_by_global_norm", gradopt.normalize_by_global_norm, supports_complex=True),
    Entry(
        "sam_ascent",
        gradopt.sam_ascent,
        kwargs={"rho": 0.05},
        sweepable={"rho": (0.01, 0.05, 0.5)},
        ranges={"rho": NONNEGATIVE},
        supports_complex=True,
    ),
    Entry(
        "sam",
        gradopt.sam,
        kwargs={"optimizer": gradopt.sgd(0.05)},
        needs_params=True,
        flags=("reset_state", "opaque_mode"),
        # the normalised ascent keeps |e| = rho at the minimum: SAM settles within ~rho
        converges={
            "quadratic": _q(
                600,
                optimizer=gradopt.sgd(0.05),
                adv_optimizer=gradopt.chain(gradopt.normalize_by_global_norm(), gradopt.sgd(0.01)),
            )
        },
        supports_complex=True,
    ),
    Entry(
        "sam-adam-keep_state",
        gradopt.sam,
        kwargs={"optimizer": gradopt.adam(0.05), "reset_state": False},
        needs_params=True,
        supports_complex=True,
    ),
]

ENTRIES += [
    # -- SM3 -----------------------------------------------------------------
    Entry(
        "scale_by_sm3",
        gradopt.scale_by_sm3,
        sweepable={"b1": (0.0, 0.5, 0.9), "b2": (0.5, 0.9, 1.0)},
        ranges={"b1": DECAY, "b2": Range(0.0, 1.0), "eps": POSITIVE},
        converges={"quadratic": _q(then=0.5)},
        supports_complex=False,
    ),
    Entry(
        "sm3",
        gradopt.sm3,
        kwargs={"learning_rate": 0.1},
        optimizer=True,
        sweepable={"learning_rate": LR_SWEEP, "momentum": (0.0, 0.5, 0.9)},
        ranges={"learning_rate": NONNEGATIVE, "momentum": DECAY},
        callable_ok=("learning_rate",),
        converges={"quadratic": _q(learning_rate=0.5)},
        supports_complex=False,
    ),
]

NOT_TRANSFORMS = {"newton_schulz", "schedule_free_eval_params", "lookahead_slow_params"}


# Adafactor's and SM3's per-leaf statistics are built with plain jnp
# constructors (default device): see Entry.sharded_init.
_DEFAULT_DEVICE_INIT = ("adafactor", "scale_by_factored_rms", "sm3", "scale_by_sm3")
ENTRIES = [
    dataclasses.replace(e, sharded_init=False)
    if e.name.split("-")[0] in _DEFAULT_DEVICE_INIT
    else e
    for e in ENTRIES
]
