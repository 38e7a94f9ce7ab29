"""Case 8: the default path of Lion, AdEMAMix (and schedule-free AdamW) against optax.

Plain ``gradopt.lion`` and ``gradopt.ademamix`` (fused chains, no packing) and
``optax.lion`` / ``optax.contrib.ademamix`` with the same arguments: compile time
(one ``lower`` + ``compile`` of a fresh optimizer, the median of 5 on the
10-leaf tree) and the donated step, interleaved, on 10 leaves of
2M and 1,000 leaves of 1k float32 parameters. The bar is Adam's: at most 1.0x
optax's step and compile.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax
import optax.contrib

import gradopt
from experiments.benchmarks import impls, models
from experiments.benchmarks.timing import (
    Stepper,
    array_passes,
    compile_seconds,
    interleaved,
    log,
    summary,
)

LEARNING_RATE = 1e-4


def pairs() -> dict:
    """optimizer -> {implementation: (tx, apply)}: gradopt and optax with equal arguments."""
    return {
        "Lion": {
            "optax": (optax.lion(LEARNING_RATE), optax.apply_updates),
            "gradopt": (gradopt.lion(LEARNING_RATE), gradopt.apply_updates),
        },
        "AdEMAMix": {
            "optax": (optax.contrib.ademamix(LEARNING_RATE), optax.apply_updates),
            "gradopt": (gradopt.ademamix(LEARNING_RATE), gradopt.apply_updates),
        },
        # not one of the bar rows: shows the fused schedule-free path
        "Schedule-free AdamW": {
            "optax": (optax.contrib.schedule_free_adamw(LEARNING_RATE), optax.apply_updates),
            "gradopt": (gradopt.schedule_free_adamw(LEARNING_RATE), gradopt.apply_updates),
        },
    }


def case_modern(*, reps: int, smoke: bool = False, seed: int = 0) -> list[dict]:
    rows = []
    trees = [(10, 20_000 if smoke else 2_000_000), (100 if smoke else 1_000, 1_000)]
    for num_leaves, leaf_size in trees:
        params, grads = models.flat_tree(num_leaves, leaf_size, seed=seed)
        for optimizer, impls_ in pairs().items():
            name = f"{optimizer} update, {num_leaves:,} leaves x {leaf_size:,}"
            runners = {}
            # a compile of ~0.1 s varies by 10% from run to run: the median of
            # several, each of a fresh optimizer (nothing traced is reused); one
            # for the 1,000-leaf tree, whose compile takes seconds
            compiles = 1 if num_leaves > 100 else 5
            for impl, (tx, _apply) in impls_.items():
                log(f"case 8 {name}: compiling {impl} ({compiles}x)")
                state = tx.init(params)
                own = jax.tree.map(jnp.copy, params)
                times = []
                for _ in range(compiles):
                    fresh, fresh_apply = pairs()[optimizer][impl]
                    seconds, compiled = compile_seconds(
                        impls.update_step(fresh, fresh_apply), own, grads, state,
                        donate_argnums=(0, 2),
                    )  # fmt: skip
                    times.append(seconds)
                passes = array_passes(compiled) / num_leaves
                rows.append(
                    {
                        "case": "8",
                        "name": name,
                        "metric": "compile",
                        "impl": impl,
                        **summary(times),
                        "array_passes_per_leaf": passes,
                    }
                )
                runners[impl] = Stepper(compiled, own, grads, state)
            log(f"case 8 {name}: timing {', '.join(runners)} ({reps} interleaved reps)")
            for impl, stats in interleaved(runners, reps=reps).items():
                rows.append({"case": "8", "name": name, "metric": "step", "impl": impl, **stats})
    return rows
