"""Bad input to the synchronous algorithms on 2 host devices: print each error message.

Run by tests/test_distributed_data_parallel.py; every case must raise, and the
test checks the type and that the message names the argument.
"""

import json

import jax
import jax.numpy as jnp

import gradopt
from gradopt import distributed as dist

mesh = jax.make_mesh((2,), ("data",))


def loss(w, b):
    return jnp.mean((b["x"] @ w - b["y"]) ** 2)


def odd_batch():
    dp = dist.data_parallel(loss, gradopt.sgd(0.1), mesh, "data")
    w, s = dp.init(jnp.zeros(3))
    batch = {"x": jnp.ones((5, 3)), "y": jnp.ones(5)}
    dp.step(w, s, batch)


def odd_chunks():
    dist.data_parallel(loss, gradopt.sgd(0.1), mesh, "data", deterministic=True, chunks=3)


CASES = {
    "missing_axis": lambda: dist.data_parallel(loss, gradopt.sgd(0.1), mesh, "batch"),
    "not_a_mesh": lambda: dist.data_parallel(loss, gradopt.sgd(0.1), "mesh", "data"),
    "not_a_transform": lambda: dist.data_parallel(loss, gradopt.sgd, mesh, "data"),
    "batch_not_divisible": odd_batch,
    "chunks_not_multiple": odd_chunks,
}


def extra_cases():
    """Cases of the other synchronous algorithms, when they exist."""
    cases = {}
    if hasattr(dist, "easgd"):
        two = {"w": jnp.zeros((2, 3))}
        cases["tau_zero"] = lambda: dist.easgd(gradopt.sgd(0.1), alpha=0.1, tau=0)
        cases["alpha_negative"] = lambda: dist.easgd(gradopt.sgd(0.1), alpha=-0.1)
        cases["p_alpha_above_one"] = lambda: dist.easgd(gradopt.sgd(0.1), alpha=0.6).init(two)
        cases["easgd_not_a_transform"] = lambda: dist.easgd("sgd", alpha=0.1)
        cases["easgd_missing_axis"] = lambda: dist.easgd(
            gradopt.sgd(0.1), alpha=0.1, mesh=mesh, axis="workers"
        )
        cases["eamsgd_tau_zero"] = lambda: dist.eamsgd(0.1, momentum=0.9, alpha=0.1, tau=0)
    if hasattr(dist, "sharded"):
        cases["sharded_missing_axis"] = lambda: dist.sharded(gradopt.adam(0.1), mesh, "model")
        cases["sharded_not_a_transform"] = lambda: dist.sharded(None, mesh, "data")
    return cases


out = {}
for name, case in {**CASES, **extra_cases()}.items():
    try:
        case()
    except (TypeError, ValueError) as error:
        out[name] = [type(error).__name__, str(error)]
    else:
        out[name] = ["no error", ""]
print("RESULT " + json.dumps(out))
