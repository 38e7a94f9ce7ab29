"""Start N JAX processes on this machine: ``python -m gradopt.distributed.launch -n 2 -- CMD ...``.

Each process runs ``CMD`` with the environment that :func:`initialize` reads
(coordinator address on a free local port, number of processes, its id) and,
with ``--devices K``, ``K`` host devices of its own. The script calls
``gradopt.distributed.initialize()`` before it uses JAX; that calls
``jax.distributed.initialize`` (CPU collectives over gloo), after which
``jax.devices()`` lists the devices of every process and a mesh over them
spans the processes. Run without the launcher, ``initialize()`` does nothing,
so the same script also runs as one process.

The launcher forwards every line the processes print, prefixed with
``[process i]``. If a process exits with an error, the launcher stops the
others (SIGTERM, then SIGKILL after ``--grace`` seconds), repeats the failing
process's last lines on stderr (its traceback), and exits with its exit code.

A process that raises after ``initialize()`` exits at once (the excepthook
that ``initialize`` installs), so the launcher reports it within moments,
whether it raised before the first collective or between two; the others,
waiting for it in a collective, then fail too (gloo reports the closed
connection): the launcher names the process that failed *first* (by the time
its excepthook stamped, or when its output ended if it printed no stamp), not
the lowest index. ``--timeout`` bounds the
whole run; SIGTERM or Ctrl-C to the launcher stops every process too.

Example::

    python -m gradopt.distributed.launch -n 2 --devices 2 -- python train.py
"""

from __future__ import annotations

import argparse
import collections
import os
import signal
import socket
import subprocess
import sys
import threading
import time

from gradopt.distributed._process import (
    ENV_COORDINATOR,
    ENV_NUM_PROCESSES,
    ENV_PROCESS_ID,
    FAILURE_MARKER,
)

TAIL_LINES = 60


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _forward(rank: int, stream, tail: collections.deque, lock: threading.Lock, ended) -> None:
    """Forward one process's lines; at end of output, note the time in ``ended[rank]``."""
    for line in iter(stream.readline, ""):
        tail.append(line.rstrip("\n"))
        with lock:
            sys.stdout.write(
                f"[process {rank}] {line if line.endswith(chr(10)) else line + chr(10)}"
            )
            sys.stdout.flush()
    ended[rank] = time.time()
    stream.close()


def _stop(procs, grace: float) -> None:
    """SIGTERM every live process group, SIGKILL what is left after ``grace`` seconds."""
    for p in procs:
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
    deadline = time.monotonic() + grace
    for p in procs:
        try:
            p.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            p.wait(timeout=grace)


def _failed_at(tail, ended: float) -> float:
    """When a process failed: its excepthook's stamp, else when its output ended."""
    for line in reversed(tail):
        if line.startswith(FAILURE_MARKER) and " at " in line:
            try:
                return min(ended, float(line.rsplit(" at ", 1)[1].split(";")[0]))
            except ValueError:
                break
    return ended


def _first_failure(bad, tails, threads, ended):
    """Of the processes found failed in one poll, the one that failed first.

    Its excepthook's stamp when it raised, else the end of its output (a
    process killed by a signal or one that crashed prints no stamp).
    """
    if len(bad) == 1:
        return bad[0]
    for i, _ in bad:  # let the forwarders read the last lines (the stamp) first
        threads[i].join(timeout=1.0)
    inf = float("inf")
    return min(bad, key=lambda item: (_failed_at(tails[item[0]], ended.get(item[0], inf)), item[0]))


class _Stopped(Exception):
    """The launcher received SIGTERM."""


def _on_sigterm(signum, frame):
    del signum, frame
    raise _Stopped


def launch(
    command, n: int, *, devices: int | None = None, timeout: float | None = None, grace: float = 5.0
) -> int:
    """Run ``command`` (a list of strings) as ``n`` processes; return the exit code (0: all ok)."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"launch: `n` (the number of processes) must be an int >= 1, got {n!r}.")
    if not command:
        raise ValueError("launch: no command given; pass it after `--`, e.g. -- python train.py")
    if devices is not None and (not isinstance(devices, int) or devices < 1):
        raise ValueError(f"launch: `devices` must be an int >= 1, got {devices!r}.")
    address = f"127.0.0.1:{free_port()}"
    lock = threading.Lock()
    procs, tails, threads = [], [], []
    ended: dict[int, float] = {}
    for rank in range(n):
        env = dict(os.environ)
        env.update({ENV_COORDINATOR: address, ENV_NUM_PROCESSES: str(n), ENV_PROCESS_ID: str(rank)})
        env["PYTHONUNBUFFERED"] = "1"
        if devices is not None:
            flags = [f for f in env.get("XLA_FLAGS", "").split() if "device_count" not in f]
            flags.append(f"--xla_force_host_platform_device_count={devices}")
            env["XLA_FLAGS"] = " ".join(flags)
            env.setdefault("JAX_PLATFORMS", "cpu")
        proc = subprocess.Popen(
            command,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,  # its own process group, so it can be stopped as a whole
        )
        tail: collections.deque = collections.deque(maxlen=TAIL_LINES)
        thread = threading.Thread(
            target=_forward, args=(rank, proc.stdout, tail, lock, ended), daemon=True
        )
        thread.start()
        procs.append(proc)
        tails.append(tail)
        threads.append(thread)

    start = time.monotonic()
    failed, code = None, 0
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        while True:
            codes = [p.poll() for p in procs]
            bad = [(i, c) for i, c in enumerate(codes) if c not in (None, 0)]
            if bad:
                failed, code = _first_failure(bad, tails, threads, ended)
                break
            if all(c == 0 for c in codes):
                break
            if timeout is not None and time.monotonic() - start > timeout:
                failed, code = None, 124
                break
            time.sleep(0.05)
    except (_Stopped, KeyboardInterrupt):
        print(f"launch: interrupted; stopping all {n} processes.", file=sys.stderr)
        failed, code = None, 130
    finally:
        _stop(procs, grace)
        for thread in threads:
            thread.join(timeout=grace)
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    if code == 124 and failed is None:
        print(f"launch: timed out after {timeout:g} s; stopped all {n} processes.", file=sys.stderr)
    elif failed is not None:
        print(
            f"launch: process {failed} of {n} exited with code {code}; stopped the others. "
            f"Its last lines:\n" + "\n".join(f"  {line}" for line in tails[failed]),
            file=sys.stderr,
        )
    return int(code) if code is not None else 1


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if "--" in argv:
        split = argv.index("--")
        own, command = argv[:split], argv[split + 1 :]
    else:
        own, command = argv, []
    parser = argparse.ArgumentParser(
        prog="python -m gradopt.distributed.launch",
        description="Start N local JAX processes (jax.distributed over gloo) running a command.",
        epilog="Example: python -m gradopt.distributed.launch -n 2 --devices 2 -- python train.py",
    )
    parser.add_argument("-n", "--processes", type=int, required=True, help="number of processes")
    parser.add_argument("--devices", type=int, default=None, help="host devices per process")
    parser.add_argument("--timeout", type=float, default=None, help="seconds for the whole run")
    parser.add_argument(
        "--grace", type=float, default=5.0, help="seconds between SIGTERM and SIGKILL"
    )
    args = parser.parse_args(own)
    if not command:
        parser.error("no command: put it after `--`, e.g. -- python train.py")
    return launch(
        command, args.processes, devices=args.devices, timeout=args.timeout, grace=args.grace
    )


if __name__ == "__main__":
    sys.exit(main())
