"""The Ray back end: a parameter server sharded over Ray actors, workers as Ray actors.

Each server shard actor holds some parameter leaves and runs
:class:`ServerShard` (the algorithm's pure server rule); each worker actor runs
:class:`WorkerLoop` on its own data shard. Only NumPy arrays travel between
actors. Ray is imported when :func:`run_ray` is called (``pip install
gradopt[distributed]``).
"""

from __future__ import annotations

import sys
import time
import warnings

import numpy as np

from gradopt.distributed._async_common import (
    AsyncResult,
    BatchSampler,
    ServerShard,
    Telemetry,
    WorkerFailedError,
    WorkerLoop,
    check_positive_int,
    check_shards,
    to_numpy,
)
from gradopt.distributed._simulator import (
    build_server,
    check_algorithm,
    check_workers,
    checkpoint_of,
)


def _import_ray():
    try:
        import ray
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError(
            "gradopt.distributed.run_ray needs Ray: pip install 'gradopt[distributed]'."
        ) from error
    return ray


def _unpack(blob, driver_path):
    """Unpickle user objects after adding the driver's ``sys.path`` (test modules, scripts)."""
    from ray import cloudpickle

    sys.path.extend(p for p in driver_path if p not in sys.path)
    return cloudpickle.loads(blob)


class _ShardServer:
    """Actor body: one server shard."""

    def __init__(self, blob, driver_path, leaves, state, clock):
        algorithm = _unpack(blob, driver_path)
        self.shard = ServerShard(algorithm, leaves, state, clock)

    def read(self):
        leaves, clock, extra = self.shard.read()
        return [np.asarray(x) for x in leaves], clock, to_numpy(extra)

    def push(self, payload, extra, worker, read_clock):
        return self.shard.push(payload, extra, worker, read_clock)

    def snapshot(self):
        return self.shard.snapshot()

    def ready(self):
        return True

    def telemetry(self):
        return dict(self.shard.delays), dict(self.shard.pushes)


class _RemoteServer:
    """The worker's view of the sharded server (blocking calls with a timeout)."""

    def __init__(self, ray, handles, timeout):
        self.ray, self.handles, self.timeout = ray, handles, timeout

    def read(self):
        return self.ray.get([h.read.remote() for h in self.handles], timeout=self.timeout)

    def push(self, payloads, extras, worker, clocks):
        refs = [
            h.push.remote(p, e, worker, c)
            for h, p, e, c in zip(self.handles, payloads, extras, clocks, strict=True)
        ]
        self.ray.get(refs, timeout=self.timeout)


class _Worker:
    """Actor body: one worker (model replica)."""

    def __init__(self, blob, driver_path, index, params, shard, batch_size, seed, groups, handles):
        import ray

        algorithm, loss_fn = _unpack(blob, driver_path)
        sampler = BatchSampler(shard, batch_size, seed, index)
        self.loop = WorkerLoop(algorithm, index, params, algorithm.worker_step_fn(loss_fn), sampler)
        self.groups = groups
        self.server = _RemoteServer(ray, handles, timeout=60.0)

    def ready(self):
        return True

    def run(self, steps):
        for _ in range(steps):
            self.loop.tick(self.server, self.groups)
        return to_numpy(self.loop.params())


def run_ray(
    algorithm,
    params,
    loss_fn,
    shards,
    *,
    n_workers: int,
    steps: int,
    batch_size: int | None = None,
    seed: int = 0,
    n_shards: int = 2,
    warm_start: int = 0,
    eval_fn=None,
    eval_interval: float = 0.5,
    resume=None,
    on_failure: str = "raise",
    timeout: float = 600.0,
) -> AsyncResult:
    """Run an asynchronous algorithm on Ray: ``n_shards`` server actors, ``n_workers`` workers.

    Uses the running Ray instance (``ray.init(...)`` first; a local one is
    started if none is). Each worker runs ``steps`` local steps on its shard
    with the same seeded batches as :func:`simulate`; the interleaving is
    whatever the machine gives. Every actor is killed when the run ends.

    Args:
      algorithm: as in :func:`gradopt.distributed.simulate`, and so are
        ``params``, ``loss_fn``, ``shards``, ``n_workers``, ``steps``,
        ``batch_size``, ``seed``, ``warm_start`` and ``resume``.
      n_shards: server actors (>= 1; the leaves are split between them).
      eval_fn: ``eval_fn(server_params) -> float``, called by the driver about
        every ``eval_interval`` seconds and at the end.
      on_failure: ``"raise"``: a worker that raises or dies stops the run with
        :class:`WorkerFailedError` (its ``result`` holds the server's intact
        state); ``"continue"``: the run goes on without that worker
        (``telemetry.failed`` lists it).
      timeout: seconds before the run is stopped with a ``TimeoutError``.

    Returns:
      An :class:`AsyncResult`.
    """
    where = "gradopt.distributed.run_ray"
    check_algorithm(where, algorithm)
    data = check_shards(where, shards, n_workers)
    check_workers(where, algorithm, n_workers)
    steps = check_positive_int(where, "steps", steps)
    warm_start = check_positive_int(where, "warm_start", warm_start, low=0)
    if on_failure not in ("raise", "continue"):
        raise ValueError(f"{where}: on_failure must be 'raise' or 'continue', got {on_failure!r}.")
    ray = _import_ray()
    if not ray.is_initialized():
        with warnings.catch_warnings():  # Ray forks + execs its daemons; JAX warns on fork
            warnings.filterwarnings("ignore", r"os\.fork\(\) was called", RuntimeWarning)
            ray.init(include_dashboard=False, log_to_driver=False)
    local, groups, treedef = build_server(where, algorithm, params, n_shards, resume)
    server_cls = ray.remote(num_cpus=0)(_ShardServer)
    worker_cls = ray.remote(num_cpus=0, max_restarts=0)(_Worker)
    from ray import cloudpickle

    path = list(sys.path)
    handles = [server_cls.remote(cloudpickle.dumps(algorithm), path, *s.snapshot()) for s in local]
    blob = cloudpickle.dumps((algorithm, loss_fn))
    start = to_numpy(params if resume is None else _gather(ray, handles, groups, treedef))
    workers = [
        worker_cls.remote(blob, path, i, start, data[i], batch_size, seed, groups, handles)
        for i in range(n_workers)
    ]
    history: list[dict] = []
    failed: list[int] = []
    final: dict[int, object] = {}
    t0 = time.perf_counter()
    try:  # wall time counts from when every actor is up (JAX imported, data received)
        ray.get([a.ready.remote() for a in handles + workers], timeout=timeout)
    except Exception:  # noqa: BLE001 - a worker that fails to start is reported by the loop
        pass
    t0 = time.perf_counter()

    def evaluate():
        if eval_fn is None:
            return
        current = _gather(ray, handles, groups, treedef)
        clocks = ray.get([h.telemetry.remote() for h in handles[:1]], timeout=60)
        pushes = sum(clocks[0][1].values())
        history.append(
            {
                "updates": pushes,
                "pushes": pushes,
                "seconds": time.perf_counter() - t0,
                "metric": float(eval_fn(current)),
            }
        )

    def snapshot_result():
        snaps = ray.get([h.snapshot.remote() for h in handles], timeout=60)
        delays, pushes = ray.get(handles[0].telemetry.remote(), timeout=60)
        telemetry = Telemetry(
            dict(sorted(delays.items())), [pushes.get(i, 0) for i in range(n_workers)], failed
        )
        server_params = treedef.unflatten(_ordered([s[0] for s in snaps], groups))
        return AsyncResult(
            server_params,
            [final.get(i) for i in range(n_workers)],
            telemetry,
            history,
            checkpoint_of(snaps, groups, treedef),
        )

    try:
        pending = {}
        warm = min(warm_start, steps)
        if warm:  # worker 0 alone first; the others start when it is done
            pending[workers[0].run.remote(warm)] = (0, steps - warm)
        else:
            for i, w in enumerate(workers):
                pending[w.run.remote(steps)] = (i, 0)
        evaluate()
        last_eval = time.perf_counter()
        while pending:
            if time.perf_counter() - t0 > timeout:
                raise TimeoutError(f"{where}: the run took more than timeout={timeout} s.")
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=eval_interval)
            for ref in ready:
                i, rest = pending.pop(ref)
                try:
                    final[i] = ray.get(ref, timeout=60)
                except Exception as error:  # noqa: BLE001 - a worker's error, re-raised below
                    if on_failure == "continue":
                        failed.append(i)
                        continue
                    result = snapshot_result()
                    raise WorkerFailedError(
                        f"{where}: worker {i} failed: {type(error).__name__}: {error}", i, result
                    ) from error
                if warm and i == 0:  # the warm start is over
                    warm = 0
                    if rest:
                        pending[workers[0].run.remote(rest)] = (0, 0)
                    for j, w in enumerate(workers[1:], start=1):
                        pending[w.run.remote(steps)] = (j, 0)
            if eval_fn is not None and time.perf_counter() - last_eval >= eval_interval:
                evaluate()
                last_eval = time.perf_counter()
        evaluate()
        return snapshot_result()
    finally:
        for actor in workers + handles:
            try:
                ray.kill(actor, no_restart=True)
            except Exception:  # noqa: BLE001, S110 - already gone
                pass


def _ordered(shard_leaves, groups):
    leaves = [None] * sum(len(g) for g in groups)
    for g, xs in zip(groups, shard_leaves, strict=True):
        for i, x in zip(g, xs, strict=True):
            leaves[i] = x
    return leaves


def _gather(ray, handles, groups, treedef):
    reads = ray.get([h.read.remote() for h in handles], timeout=60)
    return treedef.unflatten(_ordered([r[0] for r in reads], groups))
