"""Run a helper script of ``tests/dist_scripts/`` in its own process with N host devices.

``XLA_FLAGS=--xla_force_host_platform_device_count=N`` only takes effect before
JAX starts, so every test that needs a mesh runs its script in a fresh
interpreter, bounded by a timeout. The script prints one JSON line starting
with ``RESULT `` that the test reads back.
"""

from __future__ import annotations

import json
import os
import pathlib
import signal
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
SCRIPTS = ROOT / "tests" / "dist_scripts"


def script_env(n_devices: int) -> dict[str, str]:
    """The environment of a child process with ``n_devices`` host devices."""
    env = dict(os.environ)
    # the suite's other XLA flags (tests/conftest.py) carry over
    flags = [f for f in env.get("XLA_FLAGS", "").split() if "device_count" not in f]
    env["XLA_FLAGS"] = " ".join([*flags, f"--xla_force_host_platform_device_count={n_devices}"])
    env["JAX_PLATFORMS"] = "cpu"
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


def run_script(name: str, *args: str, n_devices: int, timeout: float = 120.0):
    """Run ``tests/dist_scripts/<name>.py`` with ``n_devices`` devices; return its RESULT."""
    proc = subprocess.run(
        [sys.executable, "-W", "error", str(SCRIPTS / f"{name}.py"), *args],
        env=script_env(n_devices),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if proc.returncode != 0:
        raise AssertionError(
            f"{name}.py {' '.join(args)} with {n_devices} devices exited with {proc.returncode}:\n"
            f"--- stdout\n{proc.stdout[-4000:]}\n--- stderr\n{proc.stderr[-4000:]}"
        )
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT ") :])
    raise AssertionError(f"{name}.py printed no RESULT line:\n{proc.stdout[-4000:]}")


def run_launcher(
    script: str,
    *args: str,
    processes: int,
    devices: int,
    timeout: float = 180.0,
    launcher_timeout: bool = True,
):
    """``python -m gradopt.distributed.launch -n P --devices D -- python script``; returns the
    completed process (stdout: the forwarded lines, stderr: the launcher's summary).

    ``launcher_timeout=False`` passes no ``--timeout`` to the launcher: the run
    must end by itself. Either way the test bounds it by ``timeout`` seconds;
    past it, the launcher gets SIGTERM (it stops its processes) and the test fails.
    """
    env = script_env(1)  # the launcher replaces the device count with each process's
    own = ["--timeout", str(timeout - 20)] if launcher_timeout else []
    command = [
        sys.executable,
        "-m",
        "gradopt.distributed.launch",
        "-n",
        str(processes),
        "--devices",
        str(devices),
        *own,
        "--",
        sys.executable,
        "-W",
        "error",
        str(SCRIPTS / f"{script}.py"),
        *args,
    ]
    proc = subprocess.Popen(
        command, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGTERM)  # the launcher stops its processes, then exits
        try:
            stdout, stderr = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            stdout, stderr = proc.communicate()
        raise AssertionError(
            f"the launcher did not end within {timeout} s:\n--- stdout\n{stdout[-3000:]}\n"
            f"--- stderr\n{stderr[-3000:]}"
        ) from None
    return subprocess.CompletedProcess(command, proc.returncode, stdout, stderr)


def launcher_results(stdout: str) -> dict[int, dict]:
    """The RESULT line of every process in the launcher's forwarded output, by process."""
    out = {}
    for line in stdout.splitlines():
        if line.startswith("[process ") and "] RESULT " in line:
            rank = int(line[len("[process ") : line.index("]")])
            out[rank] = json.loads(line.split("] RESULT ", 1)[1])
    return out
