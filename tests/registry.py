"""One registry of every gradient transformation gradopt exports.

The conformance battery (``tests/test_conformance.py``), the validation
properties (``tests/test_validation.py``) and the public-API coverage check
read this list. Behaviour differences are expressed as capability flags on the
entry, never as skip-lists keyed by name.

How to add a transform (one entry each)
---------------------------------------
Add an :class:`Entry` to the ``ENTRIES`` list of your area's
``tests/registry_<area>.py`` (primitives, named optimizers, wrappers and compat
modules all take the same entries; the file imports ``Entry`` from here, and
this module appends every such file's ``ENTRIES`` to ``REGISTRY``)::

    Entry(
        "clip_by_global_norm",               # unique id; "compat.torch.adam" for compat
        gradopt.clip_by_global_norm,         # factory: **kwargs -> transform
        kwargs={"max_norm": 1.0},            # a typical configuration
        sweepable={"max_norm": (0.1, 1.0, 3.0)},  # hyperparameters the battery vmaps over
        ranges={"max_norm": Range(0.0, None, low_open=True)},  # what construction accepts
    )

``name`` is the public name (``"adam"``, ``"compat.torch.adam"``), optionally
followed by ``-variant`` for a further configuration of the same factory
(``"sgd-nesterov-weight_decay"``). The battery checks that every public
callable of ``gradopt``, ``gradopt.compat.torch`` and ``gradopt.compat.keras``
has an entry under its public name; helpers that are not transform factories
go in ``NOT_TRANSFORMS`` at the bottom of this file instead.

Fields that matter (all optional except name and factory):

* ``kwargs``: the configuration the battery builds with ``entry.make()``.
* ``needs_params``: ``update`` needs ``params`` (decayed weights, for instance);
  the battery passes them only to entries with this flag, so every other entry
  is also checked to work with ``params=None``.
* ``extra_args``: keyword arguments every ``update`` call receives
  (``{"value": jnp.asarray(1.0)}`` for a transform that reads the loss).
  Such entries are not placed inside ``optax.chain``, which drops extra
  arguments for transforms that are not optax's own. In the convergence runs a
  ``value`` argument receives the current loss.
* ``sweepable``: hyperparameter -> three or more values; the battery builds the
  transform inside ``jax.vmap`` over them and compares with a Python loop.
  Values must be valid concrete values too.
* ``ranges``: hyperparameter -> :class:`Range` that construction accepts;
  values outside must raise a ValueError naming the argument and the value.
  ``flags``: boolean keyword-only switches (a non-bool raises TypeError).
  ``callable_ok``: arguments that also accept a schedule (a callable).
* ``converges``: problem name (``"quadratic"``, ``"rosenbrock"``) ->
  :class:`Convergence` with tuned hyperparameters. Primitives that do not take
  a learning rate set ``then_learning_rate`` to be followed by
  ``scale_by_learning_rate``.
* ``stochastic``: the updates are random (drawn from a key in the state); the
  convergence check is then on the mean of the last iterates.
* ``low_precision``: False if the transform is not meant for bfloat16 params.
* ``static_args``: integer arguments that decide the state's shapes (Adafactor's
  ``min_dim_size_to_factor``); ``inject_hyperparams`` must keep them static.
* ``optimizer``: a named optimizer (the validation properties run on these).
* ``supports_complex``: complex parameters (``docs/complex.md``), one flag per entry:

  - ``True``: the transform has a complex form (first moments complex, second
    moments ``|g|**2`` real). The conformance battery runs
    ``check_transform(..., complex_params=True)`` on complex64 copies of the
    parameters, the fuzz suite draws complex trees for it, and a named
    optimizer (``optimizer=True``) also gets the six checks of
    ``tests/test_complex.py`` (parabola and Rosenbrock in complex64, extra
    keywords, ``optax.inject_hyperparams``, dtypes, ``lax.cond``,
    ``optax.MultiSteps``).
  - ``False``: real parameters only. The factory must refuse complex
    parameters at ``init`` with a TypeError naming it and saying "supports
    real parameters only" (wrap the transform in ``gradopt.real_only(tx,
    name="gradopt.<name>")``); the battery checks exactly that.
  - ``None`` (the default): not decided yet; no complex check runs.
* ``sharded_init``: False where ``init`` still builds some per-leaf state with
  plain ``jnp`` constructors, on the default device rather than where the
  parameter lives (a known gap; ``tests/dist_scripts/init_sharding.py`` checks
  every other entry).
* ``matrices_only``: the transform refuses parameters that are not 2-D
  matrices (``compat.torch.muon``, as torch's Muon); the suites that feed
  trees of mixed shapes feed it matrices only, or skip it.
* ``reevaluates``: the transform evaluates the loss's gradient itself (LBFGS
  through ``extra_args["value_fn"]``); fed gradients that are not that
  gradient, it may legitimately not move, so the suites check finiteness only.
* ``schedule_lr``: False if the compat entry's learning rate cannot be a
  schedule (torch reads it once, or never from a scheduler).
* ``needs_objective``: ``update`` reads the loss itself (``value_fn=`` or
  ``residual_fn=`` in ``extra_args``, see ``gradopt/transforms/_objective.py``);
  checks that call ``update`` with a gradient alone do not apply to it.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

import gradopt
import gradopt.compat.keras
import gradopt.compat.torch


class Range(NamedTuple):
    """An interval of allowed values: ``[low, high]``, ``None`` for unbounded."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False


DECAY = Range(0.0, 1.0, high_open=True)  # b1, b2, rho, momentum: [0, 1)
POSITIVE = Range(0.0, None, low_open=True)  # eps: (0, inf)
NONNEGATIVE = Range(0.0, None)  # learning rates, weight decay: [0, inf)


class Convergence(NamedTuple):
    """Tuned settings under which an entry solves a test problem.

    Attributes:
      kwargs: overrides of the entry's ``kwargs`` (tuned learning rate, ...).
      steps: number of steps.
      then_learning_rate: for primitives without a learning rate: follow the
        transform by ``scale_by_learning_rate(then_learning_rate)``.
    """

    kwargs: Mapping[str, Any]
    steps: int
    then_learning_rate: float | None = None


@dataclasses.dataclass(frozen=True)
class Entry:
    """One transform factory and what the battery may assume about it."""

    name: str
    factory: Callable[..., Any]
    kwargs: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    needs_params: bool = False
    extra_args: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    sweepable: Mapping[str, tuple[float, ...]] = dataclasses.field(default_factory=dict)
    ranges: Mapping[str, Range] = dataclasses.field(default_factory=dict)
    flags: tuple[str, ...] = ()
    callable_ok: tuple[str, ...] = ()
    converges: Mapping[str, Convergence] = dataclasses.field(default_factory=dict)
    stochastic: bool = False
    low_precision: bool = True
    static_args: tuple[str, ...] = ()  # ints that fix the state's shapes: static under inject
    optimizer: bool = False
    supports_complex: bool | None = None
    matrices_only: bool = False
    schedule_lr: bool = True
    reevaluates: bool = False
    needs_objective: bool = False
    sharded_init: bool = True

    def make(self, **overrides):
        """Build the transform with the entry's kwargs updated by ``overrides``."""
        return self.factory(**{**self.kwargs, **overrides})

    def update(self, tx, updates, state, params):
        """Call ``tx.update`` the way this entry needs (params, extra arguments)."""
        return tx.update(updates, state, params if self.needs_params else None, **self.extra_args)

    def __repr__(self) -> str:  # short ids in test reports
        return self.name


def as_matrices(entry: Entry, tree):
    """``tree`` for ``entry``: unchanged, or with every leaf made 2-D for a
    ``matrices_only`` entry (a scalar becomes ``(1, 1)``, a vector ``(1, n)``)."""
    if not entry.matrices_only:
        return tree
    return jax.tree.map(
        lambda x: jnp.reshape(jnp.asarray(x), (-1, jnp.shape(x)[-1]) if jnp.ndim(x) else (1, 1)),
        tree,
    )


def _schedule(count):
    """A module-level schedule: ``0.1 * 0.99**count`` (a float32 scalar)."""
    return 0.1 * jnp.power(0.99, count.astype(jnp.float32))


# ----------------------------------------------------------------------------
# The registry. Keep it in the order of the modules; one entry per configuration
# worth checking (a factory may appear several times under different names).

LR_SWEEP = (0.01, 0.1, 0.3)
DECAY_SWEEP = (0.0, 0.5, 0.9)

REGISTRY: list[Entry] = [
    # -- protocol ------------------------------------------------------------
    Entry("identity", gradopt.identity, supports_complex=True),
    # -- scaling -------------------------------------------------------------
    Entry(
        "scale",
        gradopt.scale,
        kwargs={"factor": -0.1},
        sweepable={"factor": (-0.5, 0.1, 2.0)},
        ranges={"factor": Range()},
        converges={"quadratic": Convergence({"factor": -0.1}, 200)},
        supports_complex=True,
    ),
    Entry(
        "scale_by_learning_rate",
        gradopt.scale_by_learning_rate,
        kwargs={"learning_rate": 0.1},
        sweepable={"learning_rate": LR_SWEEP},
        ranges={"learning_rate": NONNEGATIVE},
        flags=("flip_sign",),
        callable_ok=("learning_rate",),
        converges={"quadratic": Convergence({"learning_rate": 0.1}, 200)},
        supports_complex=True,
    ),
    Entry(
        "scale_by_learning_rate-schedule",
        gradopt.scale_by_learning_rate,
        kwargs={"learning_rate": _schedule},
        supports_complex=True,
    ),
]


def _mask(params):
    """A module-level mask: decay every leaf but the first (in tree order)."""
    leaves, treedef = jax.tree.flatten(params)
    return jax.tree.unflatten(treedef, [i > 0 for i in range(len(leaves))])


def _mean_of_two(a, b):
    """A module-level join: the mean of two branch outputs."""
    return 0.5 * (a + b)


def _branch_mean(decay):
    """``branch(identity(), ema(decay), join=mean)``: the input averaged with its EMA."""
    return gradopt.branch(gradopt.identity(), gradopt.ema(decay), join=_mean_of_two)


def _q(steps=300, then=None, **kwargs):
    """Shorthand for a :class:`Convergence`."""
    return Convergence(kwargs, steps, then)


REGISTRY += [
    # -- momentum ------------------------------------------------------------
    Entry(
        "trace",
        gradopt.trace,
        kwargs={"momentum": 0.9},
        sweepable={"momentum": DECAY_SWEEP, "dampening": (0.0, 0.3, 0.6)},
        ranges={"momentum": DECAY, "dampening": Range(0.0, 1.0)},
        flags=("nesterov", "dampen_first_step"),
        converges={"quadratic": _q(then=0.02, momentum=0.9)},
        supports_complex=True,
    ),
    Entry(
        "trace-nesterov",
        gradopt.trace,
        kwargs={"momentum": 0.9, "nesterov": True, "dampen_first_step": False},
        converges={"quadratic": _q(then=0.02, momentum=0.9, nesterov=True)},
        supports_complex=True,
    ),
    Entry(
        "heavy_ball",
        gradopt.heavy_ball,
        kwargs={"learning_rate": 0.1, "momentum": 0.9},
        sweepable={"learning_rate": LR_SWEEP, "momentum": DECAY_SWEEP},
        ranges={"learning_rate": NONNEGATIVE, "momentum": DECAY},
        callable_ok=("learning_rate",),
        converges={"quadratic": _q(learning_rate=0.02, momentum=0.9)},
        supports_complex=True,
    ),
    Entry(
        "heavy_ball-schedule",
        gradopt.heavy_ball,
        kwargs={"learning_rate": _schedule, "momentum": 0.5},
        supports_complex=True,
    ),
    # -- moments -------------------------------------------------------------
    Entry(
        "ema",
        gradopt.ema,
        kwargs={"decay": 0.9},
        sweepable={"decay": DECAY_SWEEP},
        ranges={"decay": DECAY},
        converges={"quadratic": _q(then=0.02, decay=0.9)},
        supports_complex=True,
    ),
    Entry(
        "ema-bfloat16_state",
        gradopt.ema,
        kwargs={"decay": 0.9, "dtype": jnp.bfloat16},
        # complex leaves store m in complex64 (JAX has no complex bfloat16), so on the
        # real axis the complex run is not this bfloat16 one: tests/test_complex.py
        # checks the low-precision options on complex parameters instead
        supports_complex=None,
    ),
    Entry(
        "ema_of_squares",
        gradopt.ema_of_squares,
        kwargs={"decay": 0.999},
        sweepable={"decay": DECAY_SWEEP},
        ranges={"decay": DECAY},
        supports_complex=True,
    ),
    Entry(
        "bias_correction",
        gradopt.bias_correction,
        kwargs={"decay": 0.9},
        sweepable={"decay": DECAY_SWEEP},
        ranges={"decay": DECAY},
        supports_complex=True,
    ),
    Entry(
        "scale_by_nesterov_ema",
        gradopt.scale_by_nesterov_ema,
        kwargs={"b1": 0.9},
        sweepable={"b1": DECAY_SWEEP, "momentum_decay": (0.0, 0.004, 0.5)},
        ranges={"b1": DECAY, "momentum_decay": NONNEGATIVE},
        supports_complex=True,
    ),
    Entry(
        "scale_by_nesterov_ema-constant",
        gradopt.scale_by_nesterov_ema,
        kwargs={"b1": 0.9, "momentum_decay": None},
        supports_complex=True,
    ),
    # -- adaptive scaling ----------------------------------------------------
    Entry(
        "scale_by_sum_of_squares",
        gradopt.scale_by_sum_of_squares,
        sweepable={"eps": (0.1, 1.0, 10.0), "initial_accumulator_value": (0.0, 0.1, 1.0)},
        ranges={"eps": POSITIVE, "initial_accumulator_value": NONNEGATIVE},
        flags=("eps_inside_sqrt",),
        converges={"quadratic": _q(then=0.5)},
        supports_complex=True,
    ),
    Entry(
        "scale_by_sum_of_squares-eps_inside_sqrt",
        gradopt.scale_by_sum_of_squares,
        kwargs={"eps_inside_sqrt": True, "initial_accumulator_value": 0.1},
        supports_complex=True,
    ),
    Entry(
        "scale_by_rms",
        gradopt.scale_by_rms,
        kwargs={"decay": 0.9, "eps": 1e-8},
        sweepable={"decay": DECAY_SWEEP, "eps": (0.1, 1.0, 10.0)},
        ranges={"decay": DECAY, "eps": POSITIVE},
        flags=("eps_inside_sqrt", "centered", "debias", "amsgrad"),
        converges={"quadratic": _q(3000, then=1e-3, decay=0.9, eps=1e-8)},
        supports_complex=True,
    ),
    Entry(
        "scale_by_rms-centered-eps_inside_sqrt",
        gradopt.scale_by_rms,
        kwargs={"decay": 0.9, "eps": 1e-6, "centered": True, "eps_inside_sqrt": True},
        sweepable={"decay": DECAY_SWEEP},
        supports_complex=True,
    ),
    Entry(
        "scale_by_rms-debias-amsgrad",
        gradopt.scale_by_rms,
        kwargs={"decay": 0.999, "eps": 1e-8, "debias": True, "amsgrad": True},
        sweepable={"decay": DECAY_SWEEP},
        supports_complex=True,
    ),
    Entry(
        "root_mean_square",
        gradopt.root_mean_square,
        kwargs={"decay": 0.9, "eps": 1e-8},
        sweepable={"decay": DECAY_SWEEP, "eps": (0.1, 1.0, 10.0)},
        ranges={"decay": DECAY, "eps": POSITIVE},
        flags=("eps_inside_sqrt", "centered", "debias", "amsgrad"),
        supports_complex=True,
    ),
    Entry(
        # Centred and debiased, the first step's variance g**2 - g**2 is exactly 0,
        # so sqrt(var) is the root of a rounding error (~2e-5 for g ~ 1) that jit
        # and eager round differently; eps inside the root keeps the kit's jit vs
        # no-jit comparison meaningful.
        "root_mean_square-debias-centered",
        gradopt.root_mean_square,
        kwargs={
            "decay": 0.99,
            "eps": 1e-4,
            "debias": True,
            "centered": True,
            "eps_inside_sqrt": True,
        },
        supports_complex=True,
    ),
    Entry(
        "divide",
        gradopt.divide,
        kwargs={
            "numerator": gradopt.chain(gradopt.ema(0.9), gradopt.bias_correction(0.9)),
            "denominator": gradopt.root_mean_square(0.999, eps=1e-8, debias=True),
        },
        converges={"quadratic": _q(then=0.05)},
        supports_complex=True,
    ),
    Entry(
        # A denominator that is not elementwise: the unfused path, where each branch's
        # output is in the update's dtype. eps is 1e-3 so that it survives float16
        # (1e-8 rounds to 0 there and 0/0 is NaN; the fused path keeps float32
        # intermediates and has no such limit).
        "divide-opaque",
        gradopt.divide,
        kwargs={
            "numerator": gradopt.ema(0.9),
            "denominator": gradopt.chain(
                gradopt.root_mean_square(0.999, eps=1e-3), gradopt.clip_by_global_norm(1e6)
            ),
        },
        supports_complex=True,
    ),
    Entry(
        "branch",
        _branch_mean,
        kwargs={"decay": 0.5},
        sweepable={"decay": DECAY_SWEEP},
        supports_complex=True,
    ),
    Entry(
        "scale_by_adadelta",
        gradopt.scale_by_adadelta,
        kwargs={"rho": 0.9, "eps": 1e-6},
        sweepable={"rho": DECAY_SWEEP, "eps": (1e-4, 1e-2, 1.0)},
        ranges={"rho": DECAY, "eps": POSITIVE},
        converges={"quadratic": _q(3000, then=1.0, rho=0.95, eps=1e-3)},
        supports_complex=True,
    ),
    Entry(
        "scale_by_max_norm",
        gradopt.scale_by_max_norm,
        kwargs={"decay": 0.999, "eps": 1e-8},
        sweepable={"decay": DECAY_SWEEP, "eps": (0.1, 1.0, 10.0)},
        ranges={"decay": DECAY, "eps": POSITIVE},
        flags=("eps_inside_max",),
        converges={"quadratic": _q(400, then=0.1, decay=0.999, eps=1e-8)},
        supports_complex=True,
    ),
    Entry(
        "infinity_norm",
        gradopt.infinity_norm,
        kwargs={"decay": 0.999, "eps": 1e-8},
        sweepable={"decay": DECAY_SWEEP},
        ranges={"decay": DECAY, "eps": POSITIVE},
        flags=("eps_inside_max",),
        supports_complex=True,
    ),
    Entry(
        "scale_by_max_norm-eps_inside_max",
        gradopt.scale_by_max_norm,
        kwargs={"decay": 0.999, "eps": 1e-8, "eps_inside_max": True},
        supports_complex=True,
    ),
    # -- weight decay --------------------------------------------------------
    Entry(
        "add_decayed_weights",
        gradopt.add_decayed_weights,
        kwargs={"weight_decay": 0.1},
        needs_params=True,
        sweepable={"weight_decay": (0.0, 0.1, 1.0)},
        ranges={"weight_decay": NONNEGATIVE},
        supports_complex=True,
    ),
    Entry(
        "add_decayed_weights-mask",
        gradopt.add_decayed_weights,
        kwargs={"weight_decay": 0.1, "mask": _mask},
        needs_params=True,
        supports_complex=True,
    ),
]


def _injected_adam(**kwargs):
    """``inject_hyperparams(adam)``: the wrapper's factory returns a factory."""
    return gradopt.inject_hyperparams(gradopt.adam)(**kwargs)


def _both(steps_q=300, steps_r=5000, **kwargs):
    """The same tuned settings on the quadratic and on Rosenbrock."""
    return {"quadratic": _q(steps_q, **kwargs), "rosenbrock": _q(steps_r, **kwargs)}


ADAM_RANGES = {
    "learning_rate": NONNEGATIVE,
    "b1": DECAY,
    "b2": DECAY,
    "eps": POSITIVE,
    "weight_decay": NONNEGATIVE,
}

REGISTRY += [
    # -- named optimizers ----------------------------------------------------
    Entry(
        "sgd",
        gradopt.sgd,
        kwargs={"learning_rate": 0.1},
        optimizer=True,
        sweepable={"learning_rate": LR_SWEEP},
        ranges={
            "learning_rate": NONNEGATIVE,
            "momentum": DECAY,
            "dampening": Range(0.0, 1.0),
            "weight_decay": NONNEGATIVE,
        },
        flags=("nesterov", "classic_momentum"),
        callable_ok=("learning_rate",),
        converges={
            "quadratic": _q(learning_rate=0.1),
            # with momentum (the plain step needs 20,000 steps on this one, and does not
            # reach the complex Rosenbrock of tests/test_complex.py in 10,000)
            "rosenbrock": _q(5000, learning_rate=1e-3, momentum=0.9),
        },
        supports_complex=True,
    ),
    Entry(
        "sgd-nesterov-weight_decay",
        gradopt.sgd,
        kwargs={"learning_rate": 0.1, "momentum": 0.9, "nesterov": True, "weight_decay": 1e-2},
        needs_params=True,
        sweepable={"learning_rate": LR_SWEEP, "momentum": (0.3, 0.6, 0.9)},
        converges={
            "quadratic": _q(learning_rate=0.02, momentum=0.9, weight_decay=0.0),
            "rosenbrock": _q(5000, learning_rate=1e-3, momentum=0.9, weight_decay=0.0),
        },
        supports_complex=True,
    ),
    Entry(
        "sgd-dampening",
        gradopt.sgd,
        kwargs={"learning_rate": 0.1, "momentum": 0.9, "dampening": 0.5, "weight_decay": 0.1},
        needs_params=True,
        sweepable={"dampening": (0.0, 0.3, 0.6), "weight_decay": (0.1, 0.2, 0.3)},
        supports_complex=True,
    ),
    Entry(
        "sgd-classic_momentum",
        gradopt.sgd,
        kwargs={"learning_rate": 0.1, "momentum": 0.9, "classic_momentum": True},
        converges=_both(learning_rate=2e-3, momentum=0.9, classic_momentum=True),
        supports_complex=True,
    ),
    Entry(
        "adagrad",
        gradopt.adagrad,
        optimizer=True,
        sweepable={"learning_rate": LR_SWEEP, "initial_accumulator_value": (0.0, 0.1, 1.0)},
        ranges={
            "learning_rate": NONNEGATIVE,
            "initial_accumulator_value": NONNEGATIVE,
            "eps": POSITIVE,
            "weight_decay": NONNEGATIVE,
        },
        flags=("eps_inside_sqrt",),
        callable_ok=("learning_rate",),
        converges=_both(learning_rate=0.5),
        supports_complex=True,
    ),
    Entry(
        "adadelta",
        gradopt.adadelta,
        optimizer=True,
        sweepable={"learning_rate": LR_SWEEP, "rho": DECAY_SWEEP},
        ranges={
            "learning_rate": NONNEGATIVE,
            "rho": DECAY,
            "eps": POSITIVE,
            "weight_decay": NONNEGATIVE,
        },
        callable_ok=("learning_rate",),
        # Rosenbrock: Adadelta stalls or diverges within 20k steps at any eps tried
        converges={"quadratic": _q(3000, learning_rate=1.0, eps=1e-3)},
        supports_complex=True,
    ),
    Entry(
        "rmsprop",
        gradopt.rmsprop,
        kwargs={"learning_rate": 1e-3},
        optimizer=True,
        sweepable={"learning_rate": LR_SWEEP, "decay": DECAY_SWEEP},
        ranges={
            "learning_rate": NONNEGATIVE,
            "decay": DECAY,
            "eps": POSITIVE,
            "momentum": DECAY,
            "weight_decay": NONNEGATIVE,
        },
        flags=("centered", "nesterov", "eps_inside_sqrt"),
        callable_ok=("learning_rate",),
        # 2e-3: at 1e-3 the parabola of tests/test_complex.py (11 away) is out of reach
        # in 10,000 steps
        converges=_both(3000, 5000, learning_rate=2e-3),
        supports_complex=True,
    ),
    Entry(
        "rmsprop-centered-momentum",
        gradopt.rmsprop,
        kwargs={"learning_rate": 1e-3, "centered": True, "momentum": 0.9, "weight_decay": 1e-2},
        needs_params=True,
        sweepable={"momentum": (0.3, 0.6, 0.9)},
        converges=_both(learning_rate=1e-3, centered=True, momentum=0.9, weight_decay=0.0),
        supports_complex=True,
    ),
    Entry(
        "adam",
        gradopt.adam,
        optimizer=True,
        sweepable={"learning_rate": LR_SWEEP, "b1": DECAY_SWEEP, "b2": (0.5, 0.9, 0.999)},
        ranges=ADAM_RANGES,
        callable_ok=("learning_rate",),
        converges=_both(learning_rate=0.05),
        supports_complex=True,
    ),
    Entry(
        "adam-bfloat16_moments",
        gradopt.adam,
        kwargs={"mu_dtype": jnp.bfloat16, "nu_dtype": jnp.bfloat16},
        # as ema-bfloat16_state: m is complex64 for complex leaves (tests/test_complex.py)
        supports_complex=None,
    ),
    Entry(
        "adamw",
        gradopt.adamw,
        optimizer=True,
        sweepable={"learning_rate": LR_SWEEP, "weight_decay": (0.1, 0.5, 1.0)},
        ranges=ADAM_RANGES,
        callable_ok=("learning_rate",),
        needs_params=True,
        converges=_both(learning_rate=0.05, weight_decay=1e-4),
        supports_complex=True,
    ),
    Entry(
        "amsgrad",
        gradopt.amsgrad,
        optimizer=True,
        sweepable={"learning_rate": LR_SWEEP, "b2": (0.5, 0.9, 0.999)},
        ranges=ADAM_RANGES,
        callable_ok=("learning_rate",),
        converges=_both(learning_rate=0.05),
        supports_complex=True,
    ),
    Entry(
        "adamax",
        gradopt.adamax,
        optimizer=True,
        sweepable={"learning_rate": LR_SWEEP, "b1": DECAY_SWEEP},
        ranges=ADAM_RANGES,
        flags=("eps_inside_max",),
        callable_ok=("learning_rate",),
        converges=_both(learning_rate=0.05),
        supports_complex=True,
    ),
    Entry(
        "nadam",
        gradopt.nadam,
        optimizer=True,
        sweepable={"learning_rate": LR_SWEEP, "b1": DECAY_SWEEP},
        ranges={**ADAM_RANGES, "momentum_decay": NONNEGATIVE},
        callable_ok=("learning_rate",),
        # at 0.05 Nadam ends Rosenbrock oscillating (losses up to 1.6 in the last
        # 500 steps; the final loss 0.9e-3 to 1.2e-3 depends on rounding): 0.02 settles
        converges={
            "quadratic": _q(300, learning_rate=0.05),
            "rosenbrock": _q(5000, learning_rate=0.02),
        },
        supports_complex=True,
    ),
    # -- clipping, noise, guards, wrappers -----------------------------------
    Entry(
        "clip",
        gradopt.clip,
        kwargs={"max_delta": 0.5},
        sweepable={"max_delta": (0.1, 0.5, 1.0)},
        ranges={"max_delta": NONNEGATIVE},
        supports_complex=True,
    ),
    Entry(
        "clip_by_norm",
        gradopt.clip_by_norm,
        kwargs={"max_norm": 0.5},
        sweepable={"max_norm": (0.1, 0.5, 1.0)},
        ranges={"max_norm": NONNEGATIVE},
        supports_complex=True,
    ),
    Entry(
        "clip_by_global_norm",
        gradopt.clip_by_global_norm,
        kwargs={"max_norm": 1.0},
        sweepable={"max_norm": (0.1, 0.5, 1.0)},
        ranges={"max_norm": NONNEGATIVE},
        supports_complex=True,
    ),
    Entry(
        "add_gradient_noise",
        gradopt.add_gradient_noise,
        kwargs={"eta": 0.01, "seed": 0},
        stochastic=True,
        sweepable={"eta": (0.01, 0.1, 1.0), "gamma": (0.0, 0.55, 1.0)},
        ranges={"eta": NONNEGATIVE, "gamma": NONNEGATIVE},
        converges={"quadratic": _q(1000, then=0.05, eta=0.01)},
        supports_complex=True,
    ),
    Entry(
        "skip_nonfinite",
        gradopt.skip_nonfinite,
        kwargs={"inner": gradopt.adam(0.05), "max_consecutive": 3},
        converges={"quadratic": _q(inner=gradopt.adam(0.05))},
        supports_complex=True,
    ),
    Entry(
        "accumulate",
        gradopt.accumulate,
        kwargs={"inner": gradopt.sgd(0.1, momentum=0.9), "every_k": 2},
        converges={"quadratic": _q(600, inner=gradopt.sgd(0.05, momentum=0.5))},
        supports_complex=True,
    ),
    Entry(
        "inject_hyperparams",
        _injected_adam,
        kwargs={"learning_rate": 1e-2, "b1": 0.9},
        sweepable={"learning_rate": LR_SWEEP, "b1": DECAY_SWEEP},
        converges=_both(learning_rate=0.05),
        supports_complex=True,
    ),
    Entry(
        "reduce_on_plateau",
        gradopt.reduce_on_plateau,
        kwargs={"factor": 0.5, "patience": 0},
        extra_args={"value": jnp.asarray(1.0)},
        sweepable={"factor": (0.1, 0.5, 0.9)},
        ranges={"factor": Range(0.0, 1.0, high_open=True), "min_scale": Range(0.0, 1.0)},
        supports_complex=True,
    ),
    Entry(
        "real_only",
        gradopt.real_only,
        kwargs={"inner": gradopt.sgd(0.1, momentum=0.9), "name": "gradopt.real_only"},
        supports_complex=False,
    ),
    Entry(
        "packed",
        gradopt.packed,
        kwargs={"inner": gradopt.adam(0.01)},
        converges={"quadratic": _q(inner=gradopt.adam(0.05))},
        supports_complex=True,
    ),
    Entry(
        "packed-clip-adamw",
        gradopt.packed,
        kwargs={"inner": gradopt.chain(gradopt.clip_by_global_norm(1.0), gradopt.adamw(0.01))},
        needs_params=True,
        supports_complex=True,
    ),
    # -- compat: exact PyTorch and Keras conventions -------------------------
    *[
        Entry(
            f"compat.{lib}.{name}",
            getattr(module, name),
            kwargs={lr: 0.01},
            # one sweep per library: the compat modules share the primitives' code paths
            sweepable={lr: LR_SWEEP} if name == "adam" else {},
            needs_params=name == "adamw",
            supports_complex=False,
        )
        for lib, module, lr in (
            ("torch", gradopt.compat.torch, "lr"),
            ("keras", gradopt.compat.keras, "learning_rate"),
        )
        for name in module.__all__
    ],
]


def _load_parts() -> tuple[list[Entry], set[str]]:
    """Entries and helper names from every ``tests/registry_<area>.py`` file.

    Each such file defines ``ENTRIES`` (a list of :class:`Entry`) and optionally
    ``NOT_TRANSFORMS``; it imports ``Entry`` and friends from this module. Keeping
    each area's entries in its own file lets several areas grow at once. A part's
    entry named ``compat.<lib>.<name>`` replaces the generic compat entry above.
    """
    entries: list[Entry] = []
    helpers: set[str] = set()
    for path in sorted(Path(__file__).parent.glob("registry_*.py")):
        part = importlib.import_module(f"tests.{path.stem}")
        entries += part.ENTRIES
        helpers |= set(getattr(part, "NOT_TRANSFORMS", ()))
    return entries, helpers


_PART_ENTRIES, _PART_HELPERS = _load_parts()
_REPLACED = {e.name for e in _PART_ENTRIES if e.name.startswith("compat.")}
# (a generic compat entry whose name a part lists in NOT_TRANSFORMS is dropped too)
REGISTRY = [
    e
    for e in REGISTRY
    if e.name not in _REPLACED | _PART_HELPERS
    and not (e.name.startswith("compat.") and e.name.rsplit(".", 1)[-1] in _PART_HELPERS)
] + _PART_ENTRIES

BY_NAME: dict[str, Entry] = {e.name: e for e in REGISTRY}
if len(BY_NAME) != len(REGISTRY):
    raise ValueError("tests/registry.py: entry names must be unique")

# Every entry: primitives, wrappers, named optimizers and their variants.
# `make test` runs the shared batteries on the named optimizers (gradopt.optimizers
# and gradopt.compat) at their base configuration, to stay inside its time budget:
# the primitives run inside those chains there, and through their own test files.
# `make test-all` and `make fuzz` (GRADOPT_TEST_ALL=1) run every entry.
FULL_REGISTRY: list[Entry] = list(REGISTRY)
_NAMED = ("gradopt.optimizers.", "gradopt.compat.")
if os.environ.get("GRADOPT_TEST_ALL") != "1":
    REGISTRY = [
        e for e in REGISTRY if "-" not in e.name and e.factory.__module__.startswith(_NAMED)
    ]

# Public names of gradopt that are not transform factories (classes, states,
# combinators, helpers). Every other public callable must have an entry.
NOT_TRANSFORMS = frozenset(
    {
        "all_finite",
        "apply_updates",
        "check_skips",
        "global_norm",
        "set_hyperparams",
        "lookahead_params",
        "chain",
        "named_chain",
        "pack_params",
        "quotient",
    }
    | _PART_HELPERS
)
