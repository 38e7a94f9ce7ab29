"""Joining a multi-process run started by ``python -m gradopt.distributed.launch``."""

from __future__ import annotations

import os

ENV_COORDINATOR = "GRADOPT_COORDINATOR"
ENV_NUM_PROCESSES = "GRADOPT_NUM_PROCESSES"
ENV_PROCESS_ID = "GRADOPT_PROCESS_ID"
ENV_INIT_TIMEOUT = "GRADOPT_INIT_TIMEOUT"


def initialize() -> bool:
    """Join the processes started by the launcher; a no-op (returns False) outside it.

    Call it at the top of a script, before JAX is used. Reads the environment
    that ``python -m gradopt.distributed.launch`` sets and calls
    ``jax.distributed.initialize`` with CPU collectives over gloo.

    Returns:
      True if this process joined a multi-process run.
    """
    if ENV_COORDINATOR not in os.environ:
        return False
    import jax

    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(
        coordinator_address=os.environ[ENV_COORDINATOR],
        num_processes=int(os.environ[ENV_NUM_PROCESSES]),
        process_id=int(os.environ[ENV_PROCESS_ID]),
        initialization_timeout=int(os.environ.get(ENV_INIT_TIMEOUT, "60")),
    )
    return True
