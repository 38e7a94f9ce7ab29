"""Parallel and distributed SGD.

Synchronous training on JAX's own engines (meshes, ``jit`` with shardings,
``shard_map``, ``jax.distributed``: data parallelism, ZeRO-1, EASGD, DiLoCo)
and asynchronous training on parameter servers (Ray actors) and shared
memory (Hogwild!). The update rules are pure
functions of arrays shared by every back end; the engines only move arrays.

Importing this package needs only JAX; the Ray back end imports Ray when it is
used (install the ``gradopt[distributed]`` extra).
"""

from gradopt.distributed._elastic import elastic_difference, elastic_exchange  # noqa: I001

# -- synchronous (data parallelism, ZeRO-1, EASGD over a mesh axis) ---------
# isort: split
# -- asynchronous (simulator, Downpour, async EASGD, delay-tolerant AdaGrad, Hogwild!) --
from gradopt.distributed._async_common import (
    AsyncResult,
    ServerCheckpoint,
    Telemetry,
    WorkerFailedError,
)
from gradopt.distributed._async_easgd import async_eamsgd, async_easgd
from gradopt.distributed._data_parallel import DataParallel, data_parallel, pairwise_sum
from gradopt.distributed._delay_tolerant import (
    DelayTolerantAdagradState,
    DelayTolerantRead,
    backlog_since,
    delay_tolerant_adagrad,
)
from gradopt.distributed._diloco import DilocoState, diloco
from gradopt.distributed._downpour import downpour
from gradopt.distributed._easgd import (
    EamsgdState,
    EasgdState,
    ElasticTransformation,
    eamsgd,
    easgd,
    stack_workers,
    worker_step,
)
from gradopt.distributed._hogwild import (
    HogwildResult,
    SparseProblem,
    hogwild,
    matrix_completion_problem,
    serial_sgd,
    sparse_logistic_problem,
    sparsity_figures,
)
from gradopt.distributed._process import initialize
from gradopt.distributed._ray_backend import run_ray
from gradopt.distributed._sharded import sharded
from gradopt.distributed._simulator import simulate

__all__ = [
    # synchronous
    "DataParallel",
    "data_parallel",
    "pairwise_sum",
    "EasgdState",
    "EamsgdState",
    "ElasticTransformation",
    "easgd",
    "eamsgd",
    "stack_workers",
    "worker_step",
    "DilocoState",
    "diloco",
    "sharded",
    "initialize",
    "elastic_difference",
    "elastic_exchange",
    # asynchronous
    "AsyncResult",
    "DelayTolerantAdagradState",
    "DelayTolerantRead",
    "ServerCheckpoint",
    "Telemetry",
    "WorkerFailedError",
    "async_easgd",
    "backlog_since",
    "delay_tolerant_adagrad",
    "downpour",
    "async_eamsgd",
    "HogwildResult",
    "SparseProblem",
    "hogwild",
    "matrix_completion_problem",
    "serial_sgd",
    "sparse_logistic_problem",
    "sparsity_figures",
    "run_ray",
    "simulate",
]
