"""Joining a multi-process run started by ``python -m gradopt.distributed.launch``."""

from __future__ import annotations

import os
import sys
import time

ENV_COORDINATOR = "GRADOPT_COORDINATOR"
ENV_NUM_PROCESSES = "GRADOPT_NUM_PROCESSES"
ENV_PROCESS_ID = "GRADOPT_PROCESS_ID"
ENV_INIT_TIMEOUT = "GRADOPT_INIT_TIMEOUT"


FAILURE_MARKER = "gradopt.distributed: process"


def _exit_on_uncaught(previous):
    """An excepthook: print the traceback as usual, then leave at once with code 1.

    Without it, a process that raises stays alive at exit (JAX's distributed
    shutdown waits for the other processes), while the others wait for it in
    their next collective: the run hangs instead of failing.
    """

    def hook(kind, value, tb):
        stamp = time.time()
        try:
            previous(kind, value, tb)
            rank = os.environ.get(ENV_PROCESS_ID, "?")
            print(
                f"{FAILURE_MARKER} {rank} raised {kind.__name__} at {stamp:.6f}; exiting with 1",
                file=sys.stderr,
            )
            sys.stderr.flush()
            sys.stdout.flush()
        finally:
            os._exit(1)

    return hook


def initialize() -> bool:
    """Join the processes started by the launcher; a no-op (returns False) outside it.

    Call it at the top of a script, before JAX is used. Reads the environment
    that ``python -m gradopt.distributed.launch`` sets and calls
    ``jax.distributed.initialize`` with CPU collectives over gloo.

    It also installs an excepthook: an exception that nothing catches prints
    its traceback and ends the process at once with exit code 1 (skipping
    ``atexit`` handlers, JAX's distributed shutdown among them, which would
    wait for the other processes). The launcher sees the exit code, names
    this process and stops the others, instead of the run hanging in the
    others' next collective.

    Returns:
      True if this process joined a multi-process run.
    """
    if ENV_COORDINATOR not in os.environ:
        return False
    import jax

    if not getattr(sys.excepthook, "_gradopt", False):
        sys.excepthook = _exit_on_uncaught(sys.excepthook)
        sys.excepthook._gradopt = True  # type: ignore[attr-defined]

    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(
        coordinator_address=os.environ[ENV_COORDINATOR],
        num_processes=int(os.environ[ENV_NUM_PROCESSES]),
        process_id=int(os.environ[ENV_PROCESS_ID]),
        initialization_timeout=int(os.environ.get(ENV_INIT_TIMEOUT, "60")),
    )
    return True
