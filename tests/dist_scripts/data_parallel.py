"""Data parallelism on this process's host devices; prints the final params' bytes.

Run by tests/test_distributed_data_parallel.py with 1, 2, 4 and 8 host devices,
and as 2 processes x 2 devices under gradopt.distributed.launch: 100 Adam steps
of a small tanh network with
``deterministic=True`` (blocking on every step: back-to-back all-reduces on
simulated devices can deadlock), plus one plain (non-deterministic) SGD step
compared with the single-device full-batch gradient.
"""

import json

import gradopt
from gradopt.distributed import data_parallel, initialize

initialize()  # joins the other processes under gradopt.distributed.launch; else a no-op

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

jax.config.update("jax_numpy_dtype_promotion", "strict")
jax.config.update("jax_numpy_rank_promotion", "raise")


def loss_fn(params, batch):
    hidden = jnp.tanh(batch["x"] @ params["w1"] + params["b1"][None, :])
    return jnp.mean((hidden @ params["w2"] - batch["y"]) ** 2)


def problem(seed=0, n=64):
    rng = np.random.default_rng(seed)
    params = {
        "w1": (rng.normal(size=(5, 8)) * 0.5).astype(np.float32),
        "b1": np.zeros(8, np.float32),
        "w2": (rng.normal(size=8) * 0.5).astype(np.float32),
    }
    x = rng.normal(size=(n, 5)).astype(np.float32)
    y = np.sin(x.sum(axis=1)).astype(np.float32)
    return params, {"x": x, "y": y}


def main():
    mesh = jax.make_mesh((jax.device_count(),), ("data",))
    params0, batch = problem()
    tx = gradopt.adam(1e-2)
    dp = data_parallel(loss_fn, tx, mesh, "data", deterministic=True, chunks=8)
    params, state = dp.init(params0)
    data = dp.shard_batch(batch)
    losses = []
    for _ in range(100):
        params, state, loss = jax.block_until_ready(dp.step(params, state, data))
        losses.append(float(loss))
    final = {k: np.asarray(v.addressable_data(0)).tobytes().hex() for k, v in params.items()}

    # Plain data parallelism: one SGD step with learning rate 1 is minus the mean gradient.
    plain = data_parallel(loss_fn, gradopt.sgd(1.0), mesh, "data")
    p, s = plain.init(params0)
    p1, _, _ = jax.block_until_ready(plain.step(p, s, plain.shard_batch(batch)))
    want = jax.grad(loss_fn)(jax.tree.map(jnp.asarray, params0), jax.tree.map(jnp.asarray, batch))
    errors = {
        k: float(
            np.max(
                np.abs((params0[k] - np.asarray(p1[k].addressable_data(0))) - np.asarray(want[k]))
            )
            / np.max(np.abs(np.asarray(want[k])))
        )
        for k in params0
    }
    print(
        "RESULT "
        + json.dumps(
            {
                "devices": jax.device_count(),
                "process": jax.process_index(),
                "final": final,
                "losses": [losses[0], losses[-1]],
                "plain_rel_error": errors,
            }
        )
    )


main()
