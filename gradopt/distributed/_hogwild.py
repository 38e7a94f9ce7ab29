"""Hogwild! (Niu, Recht, Ré & Wright, NIPS 2011): lock-free SGD on shared memory.

``n_workers`` threads share one float64 parameter vector, as in the paper.
Each runs a compiled loop (Numba, ``nogil``: see ``_hogwild_kernel``) that
visits examples of a sparse problem and updates only the coordinates each
example touches, without any lock. The loop releases Python's GIL, so the
threads run on separate cores. ``serial_sgd`` runs the same compiled loop with
one worker in the calling thread: the baseline differs only in parallelism.

Numba is imported on the first run, not with ``gradopt``: install the
``gradopt[distributed]`` extra to use Hogwild!.
"""

from __future__ import annotations

import dataclasses
import math
import queue
import threading
import time
import traceback
from types import ModuleType
from typing import Any

import numpy as np

from gradopt.core._checks import check_scalar
from gradopt.distributed._async_common import Telemetry, WorkerFailedError, check_positive_int
from gradopt.distributed._sparse_problems import (  # noqa: F401 - re-exported
    SparseProblem,
    degrees,
    initial_params,
    matrix_completion_problem,
    objective,
    sparse_logistic_problem,
    sparsity_figures,
)

_KERNEL: ModuleType | None = None
_WARM: set[str] = set()
_WARM_LOCK = threading.Lock()


def _kernel_module() -> ModuleType:
    global _KERNEL
    if _KERNEL is None:
        try:
            from gradopt.distributed import _hogwild_kernel
        except ImportError as error:
            if error.name not in ("numba", "llvmlite"):
                raise
            raise ImportError(
                "gradopt.distributed.hogwild and serial_sgd run a loop compiled by Numba, "
                f"which could not be imported ({error}). Install the extra: "
                "pip install 'gradopt[distributed]' (or pip install numba)."
            ) from error
        _KERNEL = _hogwild_kernel
    return _KERNEL


def _fixed_args(problem: SparseProblem) -> tuple:
    """The problem's arrays as the compiled loops take them (contiguous, int64/float64)."""
    degree = degrees(problem)
    f64, i64 = np.float64, np.int64
    targets = np.ascontiguousarray(problem.targets, f64)
    if problem.kind == "logistic":
        return (
            np.ascontiguousarray(problem.indptr, i64),
            np.ascontiguousarray(problem.indices, i64),
            np.ascontiguousarray(problem.values, f64),
            targets,
            degree,
            float(problem.reg),
        )
    return (
        np.ascontiguousarray(problem.rows, i64),
        np.ascontiguousarray(problem.cols, i64),
        targets,
        degree,
        float(problem.reg),
        int(problem.rank),
        int(problem.n_rows),
    )


def _loop(problem: SparseProblem, fixed: tuple) -> tuple[Any, float]:
    """The compiled loop for the problem's kind and the seconds spent compiling or
    loading it from Numba's disk cache now (0.0 once done in this process)."""
    kernel = _kernel_module()
    loop = kernel.logistic_loop if problem.kind == "logistic" else kernel.completion_loop
    with _WARM_LOCK:
        if problem.kind in _WARM:
            return loop, 0.0
        start = time.perf_counter()
        no_picks, ints = np.zeros(0, np.int64), np.zeros(kernel.STRIDE, np.int64)
        w = initial_params(problem)
        loop(*fixed, w, no_picks, np.ones(1), 1, ints, 0, ints, 1, ints, -1)
        _WARM.add(problem.kind)
        return loop, time.perf_counter() - start


def worker_examples(problem: SparseProblem, n_workers: int, per_worker: int, seed: int) -> list:
    """The examples each worker visits, in order (documented on :func:`hogwild`)."""
    n = problem.n_examples
    return [np.random.default_rng([seed, me]).integers(0, n, per_worker) for me in range(n_workers)]


def step_sizes(problem, n_workers, per_worker, learning_rate, decay) -> np.ndarray:
    """``learning_rate * decay**epoch`` for every epoch the run reaches."""
    epochs = ((per_worker - 1) * n_workers) // problem.n_examples + 1
    return learning_rate * decay ** np.arange(epochs, dtype=np.float64)


@dataclasses.dataclass
class HogwildResult:
    """What a Hogwild! or serial SGD run returns.

    Attributes:
      params: the final parameters (float64).
      objective: the final objective (:func:`objective`).
      seconds: wall time of the updates, from a common start to the last worker's end.
      updates_per_second: all workers' updates divided by ``seconds``.
      telemetry: the updates per worker (``pushes``) and the histogram of the
        sampled updates' delays (updates by the other workers between an update's
        read and its write; every ``sample_delays_every``-th update is sampled).
      compile_seconds: time this call spent compiling the loop or loading it from
        Numba's disk cache (0.0 once done in this process); not part of ``seconds``.
      cpu_seconds: per worker, the CPU time its thread got during its loop: below
        ``seconds`` when the machine's other work took the core away.
    """

    params: np.ndarray
    objective: float
    seconds: float
    updates_per_second: float
    telemetry: Telemetry
    compile_seconds: float = 0.0
    cpu_seconds: list[float] = dataclasses.field(default_factory=list)


def _check(where, problem, n_workers, n_updates, learning_rate, decay, sample_delays_every):
    if not isinstance(problem, SparseProblem):
        raise TypeError(
            f"{where}: problem must be a SparseProblem (from sparse_logistic_problem or "
            f"matrix_completion_problem), got {type(problem).__name__}."
        )
    n_workers = check_positive_int(where, "n_workers", n_workers)
    n_updates = check_positive_int(where, "n_updates", n_updates, low=n_workers)
    check_scalar(where, "learning_rate", learning_rate, low=0.0, low_open=True)
    check_scalar(where, "decay", decay, low=0.0, high=1.0, low_open=True, fix="0.9 is usual.")
    check_positive_int(where, "sample_delays_every", sample_delays_every)
    return n_workers, n_updates


def _run(problem, n_workers, n_updates, learning_rate, decay, seed, every, timeout, fail_at):
    fixed = _fixed_args(problem)
    loop, compile_seconds = _loop(problem, fixed)
    per_worker = n_updates // n_workers
    picks = worker_examples(problem, n_workers, per_worker, seed)
    steps = step_sizes(problem, n_workers, per_worker, float(learning_rate), float(decay))
    w = initial_params(problem, seed)
    counters = np.zeros(n_workers * _kernel_module().STRIDE, np.int64)
    stop = np.zeros(1, np.int64)
    delays = [np.zeros((per_worker + every - 1) // every, np.int64) for _ in range(n_workers)]

    def work(me: int) -> tuple[float, float, int, float]:
        start, cpu = time.monotonic(), time.thread_time()
        done = loop(
            *fixed, w, picks[me], steps, n_workers, counters, me, delays[me], every, stop,
            fail_at.get(me, -1),
        )  # fmt: skip
        return start, time.monotonic(), int(done), time.thread_time() - cpu

    if timeout is None:  # serial: this thread
        spans, failure = {0: work(0)}, None
    else:
        spans, failure = _in_threads(work, n_workers, stop, timeout)
    pushes = [int(counters[me * _kernel_module().STRIDE]) for me in range(n_workers)]
    sampled = np.concatenate(
        [d[: (p + every - 1) // every] for d, p in zip(delays, pushes, strict=True)]
    )
    hist = np.bincount(sampled)
    telemetry = Telemetry({int(d): int(c) for d, c in enumerate(hist) if c}, pushes)
    seconds = math.nan
    if len(spans) == n_workers:
        seconds = max(s[1] for s in spans.values()) - min(s[0] for s in spans.values())
    cpu = [spans[me][3] if me in spans else math.nan for me in range(n_workers)]
    rate = sum(pushes) / seconds if seconds > 0 else math.nan
    result = HogwildResult(w, objective(problem, w), seconds, rate, telemetry, compile_seconds, cpu)
    if isinstance(failure, WorkerFailedError):
        failure.result = result
    if failure is not None:
        raise failure
    return result


def _in_threads(work, n_workers: int, stop: np.ndarray, timeout: float) -> tuple[dict, Any]:
    """Run ``work(me)`` in ``n_workers`` threads released together; every join bounded.

    Returns the finished workers' spans and the first failure (``None`` if none);
    on a failure or the timeout, ``stop`` is raised and every thread joined.
    """
    where = "gradopt.distributed.hogwild"
    barrier = threading.Barrier(n_workers)
    results: queue.SimpleQueue = queue.SimpleQueue()

    def body(me: int) -> None:
        try:
            barrier.wait(timeout=60)
            results.put(("done", me, work(me)))
        except BaseException:  # noqa: BLE001 - reported to the caller, which raises
            results.put(("error", me, traceback.format_exc()))

    threads = [
        threading.Thread(target=body, args=(me,), name=f"hogwild-worker-{me}", daemon=True)
        for me in range(n_workers)
    ]
    spans: dict[int, tuple] = {}
    failure: BaseException | None = None
    deadline = time.monotonic() + timeout
    for t in threads:
        t.start()
    while len(spans) < n_workers and failure is None:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            failure = TimeoutError(f"{where}: the workers took more than timeout={timeout} s.")
            break
        try:
            kind, me, payload = results.get(timeout=min(remaining, 1.0))
        except queue.Empty:
            continue
        if kind == "error":
            failure = WorkerFailedError(f"{where}: worker {me} failed:\n{payload}", me)
        else:
            spans[me] = payload
    stop[0] = 1  # the loops read it every 1024 updates
    for t in threads:
        t.join(timeout=10)
    stuck = [t.name for t in threads if t.is_alive()]
    if stuck:
        raise RuntimeError(f"{where}: {stuck} did not stop within 10 s of the stop request.")
    return spans, failure


def serial_sgd(
    problem: SparseProblem,
    *,
    n_updates: int,
    learning_rate: float,
    decay: float = 0.9,
    seed: int = 0,
    sample_delays_every: int = 64,
) -> HogwildResult:
    """Serial SGD, the baseline of :func:`hogwild`: the same compiled loop, one worker.

    Visits the examples of worker 0 of :func:`hogwild` with the same ``seed``,
    so that ``hogwild(n_workers=1)`` gives the same parameters, bit for bit.
    Runs in the calling thread. Arguments as for :func:`hogwild`.
    """
    where = "gradopt.distributed.serial_sgd"
    _, n_updates = _check(where, problem, 1, n_updates, learning_rate, decay, sample_delays_every)
    return _run(problem, 1, n_updates, learning_rate, decay, seed, sample_delays_every, None, {})


def hogwild(
    problem: SparseProblem,
    *,
    n_workers: int,
    n_updates: int,
    learning_rate: float,
    decay: float = 0.9,
    seed: int = 0,
    timeout: float = 300.0,
    sample_delays_every: int = 64,
    _inject_failure: tuple[int, int] | None = None,
) -> HogwildResult:
    """Hogwild!: ``n_workers`` threads run lock-free SGD on one shared vector.

    Worker ``i`` takes ``n_updates // n_workers`` steps on the examples
    ``np.random.default_rng([seed, i]).integers(0, |E|, n_updates // n_workers)``,
    in that order. For each example ``e`` it reads ``w_e`` (the coordinates
    ``e`` touches), computes ``g = grad f_e(w_e)`` and, coordinate by
    coordinate, writes ``w_v <- w_v - step * g_v`` over whatever ``w_v`` holds
    then, without a lock. ``step = learning_rate * decay**epoch``, an epoch
    being ``|E|`` updates of all workers together (the paper's backoff).

    The loop is compiled by Numba and releases the GIL, so the threads run in
    parallel. The first run in a process compiles it, or loads it from Numba's
    disk cache (``compile_seconds`` of the result, not counted in ``seconds``).

    Args:
      problem: from :func:`sparse_logistic_problem` or :func:`matrix_completion_problem`.
      n_workers: threads (>= 1).
      n_updates: total updates (>= n_workers).
      learning_rate: the initial step, > 0.
      decay: the step's factor per epoch, in (0, 1].
      seed: seeds the initial point and every worker's examples.
      timeout: seconds before the workers are stopped and ``TimeoutError`` raised.
      sample_delays_every: the telemetry measures the delay of every this-many-th
        update of each worker (reading the other workers' counters costs a
        cache-line transfer; 1 measures all).

    Returns:
      A :class:`HogwildResult`. A worker whose loop raises makes the run raise
      :class:`WorkerFailedError` naming it, after every worker has stopped; its
      ``result`` holds the parameters and the updates per worker at the stop
      (timings ``nan``). The timeout raises ``TimeoutError``, also after the stop.

    Note:
      Each coordinate's update is a plain read-modify-write, not an atomic
      add: two workers writing one coordinate at once can lose one write,
      which the paper's analysis (atomic component-wise adds) does not allow
      and lock-free implementations commonly accept.

    References:
      Niu, Recht, Ré & Wright, Hogwild!: A Lock-Free Approach to Parallelizing
      Stochastic Gradient Descent, NIPS 2011, arXiv:1106.5730.
    """
    where = "gradopt.distributed.hogwild"
    n_workers, n_updates = _check(
        where, problem, n_workers, n_updates, learning_rate, decay, sample_delays_every
    )
    check_scalar(where, "timeout", timeout, low=0.0, low_open=True)
    fail_at = dict([_inject_failure]) if _inject_failure else {}
    return _run(
        problem, n_workers, n_updates, learning_rate, decay, seed, sample_delays_every,
        float(timeout), fail_at,
    )  # fmt: skip
