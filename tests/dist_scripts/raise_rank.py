"""Under the launcher: one process raises, before the first all-reduce or between two.

Usage: raise_rank.py before|between RANK. The other process goes on to its
next all-reduce, where it would wait for the failed one forever. The failing
process prints ``RAISING <time>`` first, so the test can measure how long the
launcher takes to report it.
"""

import sys
import time

import gradopt
from gradopt import distributed as dist

dist.initialize()

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

mode, failing = sys.argv[1], int(sys.argv[2])
me = jax.process_index()
mesh = jax.make_mesh((jax.device_count(),), ("data",))
dp = dist.data_parallel(lambda w, b: jnp.mean((b @ w) ** 2), gradopt.sgd(0.1), mesh, "data")
w, state = dp.init(np.ones(3, np.float32))
batch = dp.shard_batch(np.ones((4, 3), np.float32))


def fail():
    print(f"RAISING {time.time()}", flush=True)
    raise RuntimeError(f"boom in process {me}")


if mode == "before" and me == failing:
    fail()
w, state, _ = jax.block_until_ready(dp.step(w, state, batch))
print("first step done", flush=True)
if mode == "between" and me == failing:
    fail()
w, state, _ = jax.block_until_ready(dp.step(w, state, batch))
print("second step done", flush=True)
