"""Registry entries for issue 17, part A: the optimizers people train with now.

Read by ``tests/registry.py``; the conformance battery, validation, laws,
fuzzing and robustness suites cover every entry here.
"""

from __future__ import annotations

import jax.numpy as jnp

import gradopt
from tests.registry import DECAY, NONNEGATIVE, POSITIVE, Convergence, Entry, Range

LR = (0.01, 0.1, 0.3)
SMALL_LR = (1e-3, 1e-2, 3e-2)
DECAYS = (0.0, 0.5, 0.9)


def _q(steps=300, then=None, **kwargs):
    return Convergence(kwargs, steps, then)


def _both(steps_q=300, steps_r=5000, **kwargs):
    return {"quadratic": _q(steps_q, **kwargs), "rosenbrock": _q(steps_r, **kwargs)}


def _b3_warmup(count):
    """A module-level schedule for AdEMAMix's b3: 0.9 rising to 0.999."""
    return 0.999 - 0.099 * jnp.exp(-0.01 * count.astype(jnp.float32))


ADAM_LIKE = {"learning_rate": NONNEGATIVE, "b1": DECAY, "b2": DECAY, "eps": POSITIVE}
WITH_ROOT = {**ADAM_LIKE, "eps_root": NONNEGATIVE}

ENTRIES = [
    # -- primitives ----------------------------------------------------------
    Entry(
        "scale_by_sign",
        gradopt.scale_by_sign,
        converges={"quadratic": _q(3000, then=1e-3)},
        supports_complex=False,
    ),
    Entry(
        "scale_by_lion",
        gradopt.scale_by_lion,
        sweepable={"b1": DECAYS, "b2": (0.5, 0.9, 0.99)},
        ranges={"b1": DECAY, "b2": DECAY},
        supports_complex=False,
    ),
    Entry(
        "scale_by_lion-bfloat16_state",
        gradopt.scale_by_lion,
        kwargs={"dtype": jnp.bfloat16},
        supports_complex=False,
    ),
    Entry(
        # no sweep: rho_t < 5 for the battery's first steps, where the output is 1
        "rectified_root_mean_square",
        gradopt.rectified_root_mean_square,
        ranges={
            "b2": DECAY,
            "eps": POSITIVE,
            "eps_root": NONNEGATIVE,
            "threshold": NONNEGATIVE,
        },
        supports_complex=True,
    ),
    Entry(
        "scale_by_belief",
        gradopt.scale_by_belief,
        sweepable={"b1": DECAYS, "b2": (0.5, 0.9, 0.999)},
        ranges={"b1": DECAY, "b2": DECAY, "eps": POSITIVE, "eps_root": NONNEGATIVE},
        flags=("nesterov",),
        supports_complex=True,
    ),
    Entry(
        "scale_by_yogi",
        gradopt.scale_by_yogi,
        sweepable={"b1": DECAYS, "b2": (0.5, 0.9, 0.999)},
        ranges={
            "b1": DECAY,
            "b2": DECAY,
            "eps": POSITIVE,
            "eps_root": NONNEGATIVE,
            "initial_accumulator_value": NONNEGATIVE,
        },
        supports_complex=True,
    ),
    Entry(
        "scale_by_adan",
        gradopt.scale_by_adan,
        sweepable={"b1": DECAYS, "b2": DECAYS, "b3": (0.5, 0.9, 0.99)},
        ranges={"b1": DECAY, "b2": DECAY, "b3": DECAY, "eps": POSITIVE, "eps_root": NONNEGATIVE},
        supports_complex=False,
    ),
    Entry(
        "scale_by_adopt",
        gradopt.scale_by_adopt,
        sweepable={"b1": DECAYS, "b2": (0.5, 0.9, 0.999)},
        ranges={"b1": DECAY, "b2": DECAY, "eps": POSITIVE},
        flags=("nesterov", "use_clipping"),
        supports_complex=True,
    ),
    Entry(
        "scale_by_ademamix",
        gradopt.scale_by_ademamix,
        sweepable={"b3": DECAYS, "alpha": (0.0, 2.0, 8.0)},
        ranges={
            "b1": DECAY,
            "b2": DECAY,
            "b3": DECAY,
            "alpha": NONNEGATIVE,
            "eps": POSITIVE,
            "eps_root": NONNEGATIVE,
        },
        callable_ok=("b3", "alpha"),
        supports_complex=True,
    ),
    # -- sign-based ----------------------------------------------------------
    Entry(
        "sign_sgd",
        gradopt.sign_sgd,
        optimizer=True,
        sweepable={"learning_rate": SMALL_LR},
        ranges={"learning_rate": NONNEGATIVE},
        callable_ok=("learning_rate",),
        converges={"quadratic": _q(3000, learning_rate=1e-3)},
        supports_complex=False,
    ),
    Entry(
        "signum",
        gradopt.signum,
        optimizer=True,
        sweepable={"learning_rate": SMALL_LR, "beta": DECAYS},
        ranges={"learning_rate": NONNEGATIVE, "beta": DECAY},
        callable_ok=("learning_rate",),
        converges={"quadratic": _q(3000, learning_rate=1e-3)},
        supports_complex=False,
    ),
    Entry(
        "lion",
        gradopt.lion,
        optimizer=True,
        needs_params=True,
        sweepable={"learning_rate": SMALL_LR, "b1": DECAYS, "weight_decay": (0.0, 0.1, 1.0)},
        ranges={
            "learning_rate": NONNEGATIVE,
            "b1": DECAY,
            "b2": DECAY,
            "weight_decay": NONNEGATIVE,
        },
        callable_ok=("learning_rate",),
        converges={"quadratic": _q(3000, learning_rate=1e-3, weight_decay=0.0)},
        supports_complex=False,
    ),
    Entry(
        "lion-bfloat16_moments",
        gradopt.lion,
        kwargs={"mu_dtype": jnp.bfloat16},
        needs_params=True,
        supports_complex=False,
    ),
    # -- Adam's descendants --------------------------------------------------
    Entry(
        "radam",
        gradopt.radam,
        optimizer=True,
        sweepable={"learning_rate": LR, "b2": (0.5, 0.9, 0.999)},
        ranges={**WITH_ROOT, "threshold": NONNEGATIVE},
        flags=("nesterov",),
        callable_ok=("learning_rate",),
        # the first steps are SGD steps (rho_t < 5): Rosenbrock needs a small rate
        converges={
            "quadratic": _q(learning_rate=0.05),
            "rosenbrock": _q(20_000, learning_rate=1e-3),
        },
        supports_complex=True,
    ),
    Entry(
        "radam-nesterov",
        gradopt.radam,
        kwargs={"nesterov": True, "b2": 0.99},
        supports_complex=True,
    ),
    Entry(
        "adabelief",
        gradopt.adabelief,
        optimizer=True,
        sweepable={"learning_rate": LR, "b1": DECAYS},
        ranges=WITH_ROOT,
        flags=("nesterov",),
        callable_ok=("learning_rate",),
        converges=_both(learning_rate=0.05),
        supports_complex=True,
    ),
    Entry(
        "yogi",
        gradopt.yogi,
        optimizer=True,
        sweepable={"learning_rate": LR, "b2": (0.5, 0.9, 0.999)},
        ranges=ADAM_LIKE,
        callable_ok=("learning_rate",),
        converges=_both(learning_rate=0.05),
        supports_complex=True,
    ),
    Entry(
        "adan",
        gradopt.adan,
        kwargs={"weight_decay": 1e-2},
        optimizer=True,
        needs_params=True,
        sweepable={"learning_rate": LR, "b2": DECAYS, "weight_decay": (0.0, 0.1, 1.0)},
        ranges={**WITH_ROOT, "b3": DECAY, "weight_decay": NONNEGATIVE},
        callable_ok=("learning_rate",),
        converges={
            "quadratic": _q(learning_rate=0.2, weight_decay=0.0),
            "rosenbrock": _q(5000, learning_rate=0.05, weight_decay=0.0),
        },
        supports_complex=False,
    ),
    Entry(
        "nadamw",
        gradopt.nadamw,
        optimizer=True,
        needs_params=True,
        sweepable={"learning_rate": LR, "b1": DECAYS},
        ranges={**ADAM_LIKE, "weight_decay": NONNEGATIVE},
        callable_ok=("learning_rate",),
        converges=_both(learning_rate=0.05, weight_decay=0.0),
        supports_complex=True,
    ),
    Entry(
        "adamaxw",
        gradopt.adamaxw,
        optimizer=True,
        needs_params=True,
        sweepable={"learning_rate": LR, "b1": DECAYS},
        ranges={**ADAM_LIKE, "weight_decay": NONNEGATIVE},
        callable_ok=("learning_rate",),
        converges=_both(learning_rate=0.05, weight_decay=0.0),
        supports_complex=True,
    ),
    Entry(
        "adopt",
        gradopt.adopt,
        optimizer=True,
        sweepable={"learning_rate": LR, "b1": DECAYS},
        ranges=ADAM_LIKE,
        flags=("nesterov", "use_clipping"),
        # no callable_ok check: ADOPT's first update is 0 whatever the rate
        converges={
            "quadratic": _q(learning_rate=0.05),
            "rosenbrock": _q(10_000, learning_rate=0.1),
        },
        supports_complex=True,
    ),
    Entry(
        "ademamix",
        gradopt.ademamix,
        optimizer=True,
        sweepable={"learning_rate": LR, "alpha": (0.0, 2.0, 8.0)},
        ranges={**WITH_ROOT, "b3": DECAY, "alpha": NONNEGATIVE, "weight_decay": NONNEGATIVE},
        callable_ok=("learning_rate", "b3", "alpha"),
        # the slow momentum (b3 = 0.9999) outlasts these runs: faster b3 on both problems
        converges={
            "quadratic": _q(learning_rate=0.05, b3=0.99),
            "rosenbrock": _q(10_000, learning_rate=0.02, b3=0.999),
        },
        supports_complex=True,
    ),
    Entry(
        "ademamix-schedule-bfloat16_moments",
        gradopt.ademamix,
        kwargs={"b3": _b3_warmup, "mu_dtype": jnp.bfloat16},
        # as ema-bfloat16_state: m1, m2 are complex64 for complex leaves
        supports_complex=None,
    ),
]

NOT_TRANSFORMS = {"quarter_power"}


def _skip_first(params):
    """A module-level mask: every leaf but the first (in tree order)."""
    import jax

    leaves, treedef = jax.tree.flatten(params)
    return jax.tree.unflatten(treedef, [i > 0 for i in range(len(leaves))])


ENTRIES += [
    # -- layer-wise ----------------------------------------------------------
    Entry(
        "scale_by_trust_ratio",
        gradopt.scale_by_trust_ratio,
        needs_params=True,
        sweepable={"trust_coefficient": (0.1, 1.0, 2.0)},
        ranges={"min_norm": NONNEGATIVE, "trust_coefficient": POSITIVE, "eps": NONNEGATIVE},
        supports_complex=True,
    ),
    Entry(
        "scale_by_trust_ratio-mask",
        gradopt.scale_by_trust_ratio,
        kwargs={"mask": _skip_first, "min_norm": 1e-6},
        needs_params=True,
        supports_complex=True,
    ),
    Entry(
        "scale_by_layerwise_rms",
        gradopt.scale_by_layerwise_rms,
        sweepable={"b2": DECAYS, "eps": (0.1, 1.0, 10.0)},
        ranges={"b2": DECAY, "eps": POSITIVE, "eps_root": NONNEGATIVE},
        supports_complex=True,
    ),
    Entry(
        "rescale_params",
        gradopt.rescale_params,
        kwargs={"factor": 0.9},
        needs_params=True,
        sweepable={"factor": (0.5, 0.9, 1.5)},
        ranges={"factor": POSITIVE},
        supports_complex=True,
    ),
    Entry(
        "lamb",
        gradopt.lamb,
        optimizer=True,
        sweepable={"learning_rate": SMALL_LR, "b1": DECAYS},
        needs_params=True,
        ranges={**ADAM_LIKE, "weight_decay": NONNEGATIVE},
        callable_ok=("learning_rate",),
        converges={"quadratic": _q(1000, learning_rate=0.01)},
        supports_complex=True,
    ),
    Entry(
        "lars",
        gradopt.lars,
        kwargs={"learning_rate": 1.0, "weight_decay": 1e-3},
        optimizer=True,
        needs_params=True,
        sweepable={"learning_rate": LR, "trust_coefficient": (0.001, 0.01, 0.1)},
        ranges={
            "learning_rate": NONNEGATIVE,
            "weight_decay": NONNEGATIVE,
            "trust_coefficient": POSITIVE,
            "eps": NONNEGATIVE,
            "momentum": DECAY,
        },
        flags=("nesterov",),
        callable_ok=("learning_rate",),
        converges={"quadratic": _q(1000, learning_rate=10.0, weight_decay=0.0)},
        supports_complex=True,
    ),
    Entry(
        "lars-masks",
        gradopt.lars,
        kwargs={
            "weight_decay": 1e-2,
            "weight_decay_mask": _skip_first,
            "trust_ratio_mask": _skip_first,
        },
        needs_params=True,
        supports_complex=True,
    ),
    Entry(
        "fromage",
        gradopt.fromage,
        optimizer=True,
        needs_params=True,
        sweepable={"learning_rate": SMALL_LR, "min_norm": (0.0, 1e-6, 0.1)},
        ranges={"learning_rate": NONNEGATIVE, "min_norm": NONNEGATIVE},
        supports_complex=False,
    ),
    Entry(
        "novograd",
        gradopt.novograd,
        kwargs={"weight_decay": 1e-3},
        optimizer=True,
        needs_params=True,
        sweepable={"learning_rate": SMALL_LR, "b1": DECAYS, "b2": DECAYS},
        ranges={**WITH_ROOT, "weight_decay": NONNEGATIVE},
        callable_ok=("learning_rate",),
        converges={"quadratic": _q(3000, learning_rate=0.005, weight_decay=0.0)},
        supports_complex=True,
    ),
    # -- Polyak step size ----------------------------------------------------
    Entry(
        "scale_by_polyak",
        gradopt.scale_by_polyak,
        extra_args={"value": jnp.asarray(1.0)},
        sweepable={"max_learning_rate": (0.1, 0.5, 1.0), "f_min": (-1.0, 0.0, 0.5)},
        ranges={"f_min": Range(), "max_learning_rate": NONNEGATIVE, "eps": NONNEGATIVE},
        supports_complex=False,
    ),
    Entry(
        "polyak_sgd",
        gradopt.polyak_sgd,
        optimizer=True,
        extra_args={"value": jnp.asarray(1.0)},
        sweepable={"max_learning_rate": (0.1, 0.5, 1.0), "scaling": (0.5, 1.0, 2.0)},
        ranges={
            "max_learning_rate": NONNEGATIVE,
            "scaling": NONNEGATIVE,
            "f_min": Range(),
            "eps": NONNEGATIVE,
        },
        callable_ok=("scaling",),
        converges={"quadratic": _q(300, max_learning_rate=1.0)},
        supports_complex=False,
    ),
    # -- cautious ------------------------------------------------------------
    Entry(
        "cautious",
        gradopt.cautious,
        kwargs={"inner": gradopt.adamw(1e-2)},
        needs_params=True,
        converges={"quadratic": _q(inner=gradopt.adam(0.05))},
        supports_complex=True,
    ),
    Entry(
        "cautious-lion", gradopt.cautious, kwargs={"inner": gradopt.lion(1e-3, weight_decay=0.0)}
    ),
]
