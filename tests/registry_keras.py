"""Registry entries of issue 16's Keras side: parameter groups, averaged parameters,
loss scaling, and ``gradopt.compat.keras`` (its entries replace the generic compat ones)."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

import gradopt
from gradopt.compat import keras as keras_compat
from tests.registry import POSITIVE, Convergence, Entry, Range


def _by_rank(params):
    """A module-level labels function: "matrix" for leaves of rank >= 2, "other" else."""
    return jax.tree.map(lambda p: "matrix" if jnp.ndim(p) >= 2 else "other", params)


def _matrices(params):
    """A module-level mask: True for leaves of rank >= 2."""
    return jax.tree.map(lambda p: jnp.ndim(p) >= 2, params)


def _q(steps=300, **kwargs):
    return Convergence(kwargs, steps)


ENTRIES = [
    # -- parameter groups ----------------------------------------------------
    Entry(
        "partition",
        gradopt.partition,
        kwargs={
            "transforms": {"matrix": gradopt.adam(0.05), "other": gradopt.sgd(0.05)},
            "labels": _by_rank,
        },
        converges={
            "quadratic": _q(transforms={"matrix": gradopt.adam(0.05), "other": gradopt.sgd(0.1)})
        },
        supports_complex=True,
    ),
    Entry(
        "masked",
        gradopt.masked,
        kwargs={"inner": gradopt.adam(0.05), "mask": _matrices},
        supports_complex=True,
    ),
    Entry("freeze", gradopt.freeze, kwargs={"mask": _matrices}, supports_complex=True),
    Entry("set_to_zero", gradopt.set_to_zero, supports_complex=True),
    # -- averaged parameters -------------------------------------------------
    Entry(
        "average_parameters",
        gradopt.average_parameters,
        kwargs={"inner": gradopt.adam(0.05), "decay": 0.9, "overwrite_every": 2},
        needs_params=True,
        # the overwrite makes the average (and so the decay) reach the updates
        sweepable={"decay": (0.0, 0.5, 0.99)},
        ranges={"decay": Range(0.0, 1.0)},
        converges={"quadratic": _q(600, inner=gradopt.adam(0.05), overwrite_every=50)},
        supports_complex=True,
    ),
    Entry(
        "average_parameters-swa-overwrite",
        gradopt.average_parameters,
        kwargs={"inner": gradopt.sgd(0.05), "start": 1, "every": 2, "overwrite_every": 3},
        needs_params=True,
        supports_complex=True,
    ),
    # -- loss scaling --------------------------------------------------------
    Entry(
        "loss_scaling",
        gradopt.loss_scaling,
        kwargs={"inner": gradopt.adam(0.05), "initial_scale": 4.0, "growth_interval": 2},
        sweepable={"initial_scale": (1.0, 8.0, 1024.0), "growth_factor": (1.5, 2.0, 4.0)},
        ranges={
            "initial_scale": POSITIVE,
            "growth_factor": Range(1.0, None, low_open=True),
            "backoff_factor": Range(0.0, 1.0, low_open=True, high_open=True),
        },
        flags=("dynamic",),
        converges={"quadratic": _q(inner=gradopt.adam(0.05), initial_scale=1.0, dynamic=False)},
        supports_complex=True,
    ),
]

# -- gradopt.compat.keras ---------------------------------------------------


def _keras(name, needs_params=True, **kwargs):
    return Entry(
        f"compat.keras.{name}",
        getattr(keras_compat, name.split("-")[0]),
        kwargs={"learning_rate": 0.01, **kwargs},
        needs_params=needs_params,
        supports_complex=False,  # Keras 3 optimizers take real variables only
    )


ENTRIES += [
    _keras("ftrl"),
    _keras("lion"),
    _keras("lamb"),
    _keras("adafactor"),
    _keras("muon"),
    _keras("schedule_free_adamw"),
    _keras(
        "adam-shared",
        clipnorm=1.0,
        use_ema=True,
        ema_overwrite_frequency=3,
        loss_scale_factor=2.0,
    ),
]


# Accumulation and the two wrappers have cyclic counters (calls since the last step,
# finite steps since the scale changed) that reset rather than saturate, and the
# wrappers take an optimizer instead of a learning rate: their entries build them
# through these module-level factories (which take the learning rate), so the
# int32-saturation and schedule checks meant for named optimizers pass them by.


def _keras_accumulating(name, learning_rate=0.01, **kwargs):
    return getattr(keras_compat, name)(learning_rate=learning_rate, **kwargs)


def _keras_loss_scale(learning_rate=0.01, initial_scale=4.0):
    return keras_compat.loss_scale_optimizer(
        keras_compat.adam(learning_rate), initial_scale=initial_scale
    )


def _keras_multi(learning_rate=0.01, loss_scale_factor=None):
    return keras_compat.multi_optimizer(
        keras_compat.optimizer_map(
            keras_compat.adam(learning_rate), {"w": keras_compat.lion(learning_rate)}
        ),
        loss_scale_factor=loss_scale_factor,
    )


ENTRIES += [
    Entry(
        "keras_shared-sgd-accumulate",
        _keras_accumulating,
        kwargs={
            "name": "sgd",
            "momentum": 0.9,
            "global_clipnorm": 1.0,
            "gradient_accumulation_steps": 2,
            "loss_scale_factor": 2.0,
        },
        # refuses complex (compat.keras.sgd); the entry name is not the error's name
        supports_complex=None,
    ),
    # these two refuse complex through their inner compat.keras optimizers, whose names
    # the error gives: no flag
    Entry("compat.keras.loss_scale_optimizer", _keras_loss_scale),
    Entry("compat.keras.multi_optimizer", _keras_multi, needs_params=True),
]

NOT_TRANSFORMS = {
    "averaged_params",
    "scale_loss",
    "compat.keras.OptimizerMap",
    "compat.keras.optimizer_map",
    "compat.keras.schedule_free_eval_params",
    # the coverage check reads bare names
    "optimizer_map",
    "schedule_free_eval_params",
}


# Keras' Adafactor keeps row and column factors, built on the default device
# (as gradopt.adafactor's): see Entry.sharded_init.
ENTRIES = [
    dataclasses.replace(e, sharded_init=e.name.split("-")[0] != "compat.keras.adafactor")
    for e in ENTRIES
]
