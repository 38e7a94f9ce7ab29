"""Case 5 (optimizer-state bytes, bfloat16 moments and their loss curve) and case 6 (a sweep)."""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

import gradopt
from experiments import datasets
from experiments import models as study_models
from experiments.benchmarks import models
from experiments.benchmarks.timing import log


def _state_bytes(tx, params) -> int:
    shapes = jax.eval_shape(tx.init, params)
    return int(sum(np.prod(s.shape) * jnp.dtype(s.dtype).itemsize for s in jax.tree.leaves(shapes)))


def case_state_bytes():
    """Case 5: bytes of Adam state on the transformer tree, float32 and bfloat16 moments."""
    params, _, _ = models.transformer()
    n = sum(p.size for p in jax.tree.leaves(params))
    bf16 = jnp.bfloat16
    configs = {
        "optax adam": optax.adam(1e-3),
        "optax adam mu_dtype=bf16": optax.adam(1e-3, mu_dtype=bf16),
        "gradopt adam": gradopt.adam(1e-3),
        "gradopt adam mu_dtype=nu_dtype=bf16": gradopt.adam(1e-3, mu_dtype=bf16, nu_dtype=bf16),
        "gradopt.packed adam mu_dtype=nu_dtype=bf16": gradopt.packed(
            gradopt.adam(1e-3, mu_dtype=bf16, nu_dtype=bf16)
        ),
    }
    rows = []
    for impl, tx in configs.items():
        nbytes = _state_bytes(tx, params)
        log(f"case 5: {impl}: {nbytes / 2**20:.2f} MiB of state for {n:,} parameters")
        rows.append(
            {
                "case": "5",
                "name": f"Adam state bytes, transformer tree ({n:,} params)",
                "metric": "state bytes",
                "impl": impl,
                "bytes": nbytes,
                "bytes_per_param": nbytes / n,
            }
        )
    return rows


def digits_bf16_curve(*, steps: int, seed: int = 0):
    """Loss curve of Adam on the digits MLP with float32 vs bfloat16 moments."""
    data = datasets.load_digits(seed=seed)
    x = jnp.asarray(data.x_train, jnp.float32)
    y = jnp.asarray(data.y_train)
    params = study_models.init_mlp(jax.random.PRNGKey(seed), (x.shape[1], 64, 10), scale=1 / 8)

    def loss(p):
        return study_models.cross_entropy(study_models.mlp_apply(p, x, jnp.tanh), y)

    curves = {}
    for label, kwargs in (
        ("float32 state", {}),
        ("bfloat16 m and v", {"mu_dtype": jnp.bfloat16, "nu_dtype": jnp.bfloat16}),
    ):
        tx = gradopt.packed(gradopt.adam(1e-2, **kwargs))

        def body(carry, _, tx=tx):
            p, s = carry
            value, g = jax.value_and_grad(loss)(p)
            u, s = tx.update(g, s, p)
            return (gradopt.apply_updates(p, u), s), value

        _, values = jax.jit(
            lambda p, tx=tx, body=body: jax.lax.scan(body, (p, tx.init(p)), None, length=steps)
        )(params)
        curves[label] = np.asarray(values).tolist()
        log(f"case 5: digits MLP, {label}: loss {curves[label][0]:.4f} -> {curves[label][-1]:.4f}")
    return curves


def case_sweep(*, num_rates: int = 32, steps: int = 100, depth: int = 20):
    """Case 6: a sweep over learning rates: one vmapped program vs one compile per value."""
    params, data, loss = models.mlp(depth=depth, width=32, batch=32)
    rates = np.geomspace(1e-4, 1e-1, num_rates).astype(np.float32)

    def train(tx, params):
        def body(carry, _):
            p, s = carry
            value, g = jax.value_and_grad(loss)(p, data)
            u, s = tx.update(g, s, p)
            return (optax.apply_updates(p, u), s), value

        (_, _), values = jax.lax.scan(body, (params, tx.init(params)), None, length=steps)
        return values[-1]

    # A 40-leaf model gains nothing from packing; vmapping over the learning rate is the point.
    log(f"case 6: gradopt, one vmapped program over {num_rates} learning rates")
    start = time.perf_counter()
    sweep = jax.jit(jax.vmap(lambda lr: train(gradopt.adam(lr), params)))
    final_gradopt = np.asarray(jax.block_until_ready(sweep(jnp.asarray(rates))))
    gradopt_s = time.perf_counter() - start

    log(f"case 6: optax, one jit per learning rate ({num_rates} compiles)")
    start = time.perf_counter()
    final_optax = []
    for lr in rates:
        run = jax.jit(lambda p, lr=float(lr): train(optax.adam(lr), p))
        final_optax.append(float(jax.block_until_ready(run(params))))
    optax_s = time.perf_counter() - start
    log(f"case 6: gradopt {gradopt_s:.2f} s, optax {optax_s:.2f} s")
    agree = float(np.max(np.abs(final_gradopt - np.asarray(final_optax))))
    name = f"sweep of {num_rates} learning rates, MLP {depth} x 32, {steps} steps"
    return [
        {
            "case": "6",
            "name": name,
            "metric": "sweep wall",
            "impl": "gradopt (vmap over learning rates)",
            "median_ms": gradopt_s * 1e3,
            "reps": 1,
            "max_abs_final_loss_diff": agree,
        },
        {
            "case": "6",
            "name": name,
            "metric": "sweep wall",
            "impl": "optax",
            "median_ms": optax_s * 1e3,
            "reps": 1,
        },
    ]
