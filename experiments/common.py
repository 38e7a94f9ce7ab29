"""Shared plumbing for the studies: command line, results folder, records, progress, summaries.

Every study is a module with ``run(settings) -> Result`` and ``main(argv=None)``.
``main`` parses the common command line (``--quick``, ``--smoke``, ``--seed``,
``--out``), runs the study, and writes under ``experiments/results/<name>/``:
PNG figures, the raw numbers (CSV/JSON), ``summary.md`` (versions, settings,
findings measured from the run) and ``result.json`` (what the main job reads).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import datetime
import json
import os
import platform
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

RESULTS_ROOT = Path(__file__).resolve().parent / "results"
MODES = ("full", "quick", "smoke")


@dataclasses.dataclass
class Settings:
    """What the command line chose: the study's name, mode, seed and output folder."""

    name: str
    mode: str
    seed: int
    out: Path
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def quick(self) -> bool:
        return self.mode != "full"

    def pick(self, full, quick, smoke=None):
        """The value for the current mode (``smoke`` defaults to ``quick``)."""
        if self.mode == "full":
            return full
        if self.mode == "smoke" and smoke is not None:
            return smoke
        return quick


@dataclasses.dataclass
class Result:
    """A finished study: its findings (sentences computed from the numbers) and files."""

    name: str
    title: str
    findings: list[str]
    headline: str
    figures: list[str] = dataclasses.field(default_factory=list)
    data: list[str] = dataclasses.field(default_factory=list)
    seconds: float = 0.0


def build_parser(name: str, description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=f"python -m experiments.{name}",
        description=description,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    speed = parser.add_mutually_exclusive_group()
    speed.add_argument(
        "--quick", action="store_true", help="the fast version (what `make demo` runs)"
    )
    speed.add_argument(
        "--smoke", action="store_true", help="an even smaller run, for the test suite only"
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help=f"output folder (default experiments/results/{name}/)",
    )
    return parser


def settings_from_args(name: str, args: argparse.Namespace, **extra: Any) -> Settings:
    mode = "smoke" if args.smoke else "quick" if args.quick else "full"
    out = Path(args.out) if args.out is not None else RESULTS_ROOT / name
    out.mkdir(parents=True, exist_ok=True)
    return Settings(name=name, mode=mode, seed=args.seed, out=out, extra=extra)


def main_for(
    name: str,
    description: str,
    run: Callable[[Settings], Result],
    argv: Sequence[str] | None = None,
    add_arguments: Callable[[argparse.ArgumentParser], None] | None = None,
) -> Result:
    """Parse the command line, run the study, write ``result.json`` and print where things are."""
    parser = build_parser(name, description)
    if add_arguments is not None:
        add_arguments(parser)
    args = parser.parse_args(argv)
    common = {"quick", "smoke", "seed", "out"}
    extra = {k: v for k, v in vars(args).items() if k not in common}
    settings = settings_from_args(name, args, **extra)
    use_agg()
    start = time.perf_counter()
    result = run(settings)
    result.seconds = time.perf_counter() - start
    write_json(settings.out / "result.json", dataclasses.asdict(result))
    print(f"[{name}] {result.headline}")
    for finding in result.findings:
        print(f"  - {finding}")
    print(f"[{name}] results in {settings.out} ({result.seconds:.1f} s)")
    return result


# ----------------------------------------------------------------------------
# records


def use_agg() -> None:
    import matplotlib

    matplotlib.use("Agg")


def cpu_model() -> str:
    """The CPU's model name (from /proc/cpuinfo where there is one)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def versions(extra: Sequence[str] = ()) -> dict[str, str]:
    """Versions of Python, the platform, the CPU, the studies' libraries and ``extra``."""
    import importlib.metadata as md

    out = {"python": sys.version.split()[0], "platform": platform.platform(), "cpu": cpu_model()}
    packages = ("gradopt", "jax", "jaxlib", "numpy", "matplotlib", "scikit-learn", "tqdm")
    for package in (*packages, *extra):
        try:
            out[package] = md.version(package)
        except md.PackageNotFoundError:
            out[package] = "not installed"
    try:
        import jax

        out["jax backend"] = jax.default_backend()
        out["devices"] = ", ".join(str(d) for d in jax.devices())
    except Exception as error:  # noqa: BLE001 - recording only
        out["jax backend"] = f"unavailable ({error})"
    out["cpu count"] = str(os.cpu_count())
    return out


def log(tag: str, message: str) -> None:
    """Print ``[tag HH:MM:SS] message`` at once (progress of long runs)."""
    print(f"[{tag} {time.strftime('%H:%M:%S')}] {message}", flush=True)


def progress(iterable: Iterable | None = None, *, desc: str, total: int | None = None, **kw):
    """A tqdm progress bar on stderr (silent when ``GRADOPT_NO_PROGRESS`` is set)."""
    from tqdm.auto import tqdm

    disable = bool(os.environ.get("GRADOPT_NO_PROGRESS"))
    return tqdm(iterable, desc=desc, total=total, leave=False, disable=disable, **kw)


def _jsonable(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "tolist"):
        return _jsonable(value.tolist())
    if isinstance(value, float) and value != value:
        return None
    return value


def write_json(path: Path, obj: Any) -> Path:
    path = Path(path)
    path.write_text(json.dumps(_jsonable(obj), indent=2, allow_nan=True) + "\n")
    return path


def write_csv(path: Path, rows: Sequence[dict[str, Any]]) -> Path:
    """Write dict rows (the union of their keys, in first-seen order) as CSV."""
    path = Path(path)
    fields: list[str] = []
    for row in rows:
        for key in row:
            if key not in fields:
                fields.append(key)
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: _fmt_csv(v) for k, v in row.items()})
    return path


def _fmt_csv(value: Any) -> Any:
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float):
        return repr(value)
    return value


def fmt(x: float, digits: int = 3) -> str:
    """A compact number: 0.0123 -> '1.23e-02', 12.5 -> '12.5', nan/inf kept."""
    x = float(x)
    if x != x:
        return "nan"
    if x in (float("inf"), float("-inf")):
        return "inf" if x > 0 else "-inf"
    if x != 0 and (abs(x) < 1e-2 or abs(x) >= 1e4):
        return f"{x:.{digits - 1}e}"
    return f"{x:.{digits}g}"


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(str(h) for h in header) + " |"]
    lines.append("|" + "|".join("---" for _ in header) + "|")
    for row in rows:
        lines.append("| " + " | ".join(str(c) for c in row) + " |")
    return "\n".join(lines)


def write_summary(
    settings: Settings,
    title: str,
    *,
    intro: str,
    study_settings: dict[str, Any],
    findings: Sequence[str],
    tables: Sequence[tuple[str, str]] = (),
    figures: Sequence[str] = (),
    data: Sequence[str] = (),
) -> Path:
    """Write ``summary.md``: what was run, the findings, tables, figures, versions and settings."""
    lines = [f"# {title}", "", intro.strip(), "", "## Findings (measured in this run)", ""]
    lines += [f"- {f}" for f in findings]
    for heading, table in tables:
        lines += ["", f"## {heading}", "", table]
    if figures:
        lines += ["", "## Figures", ""]
        lines += [f"![{Path(f).stem}]({Path(f).name})" for f in figures]
    if data:
        lines += ["", "## Raw numbers", ""]
        lines += [f"- `{Path(d).name}`" for d in data]
    run_settings = {
        "mode": settings.mode,
        "seed": settings.seed,
        "date (UTC)": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M"),
        **study_settings,
        **{k: v for k, v in settings.extra.items() if v is not None},
    }
    lines += ["", "## Settings", "", markdown_table(["setting", "value"], run_settings.items())]
    lines += ["", "## Versions", "", markdown_table(["package", "version"], versions().items())]
    path = settings.out / "summary.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def save_figure(fig, settings: Settings, name: str, dpi: int = 110) -> str:
    import matplotlib.pyplot as plt

    path = settings.out / f"{name}.png"
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return str(path)


# ----------------------------------------------------------------------------
# optimizers by name, and trajectories on two-dimensional surfaces

OPTIMIZER_NAMES = (
    "sgd",
    "momentum",
    "nesterov",
    "adagrad",
    "adadelta",
    "rmsprop",
    "adam",
    "adamax",
    "nadam",
)


def optimizer(name: str, learning_rate, **kwargs):
    """A gradopt optimizer by its short name; ``learning_rate`` may be a traced scalar.

    ``momentum`` and ``nesterov`` are ``gradopt.sgd`` with momentum 0.9 (or
    ``kwargs["momentum"]``); the others are the gradopt functions of that name
    with their paper defaults.
    """
    import gradopt

    if name == "sgd":
        return gradopt.sgd(learning_rate, **kwargs)
    if name == "momentum":
        return gradopt.sgd(learning_rate, momentum=kwargs.pop("momentum", 0.9), **kwargs)
    if name == "nesterov":
        return gradopt.sgd(
            learning_rate, momentum=kwargs.pop("momentum", 0.9), nesterov=True, **kwargs
        )
    if name not in OPTIMIZER_NAMES and not hasattr(gradopt, name):
        raise ValueError(f"Unknown optimizer {name!r}; choose one of {list(OPTIMIZER_NAMES)}.")
    return getattr(gradopt, name)(learning_rate, **kwargs)


def trajectory(tx, loss_fn, start, steps: int):
    """Run ``steps`` updates of ``tx`` on ``loss_fn`` from ``start`` in one compiled scan.

    Returns ``(points, losses)`` as NumPy arrays of shapes ``(steps + 1, dim)``
    and ``(steps + 1,)``; the first entry is the start.
    """
    import jax
    import jax.numpy as jnp
    import numpy as np

    import gradopt

    x0 = jnp.asarray(start, jnp.float32)
    value_and_grad = jax.value_and_grad(loss_fn)

    @jax.jit
    def go(x0):
        def step(carry, _):
            x, state = carry
            value, grad = value_and_grad(x)
            updates, state = tx.update(grad, state, x, value=value)
            x_next = gradopt.apply_updates(x, updates)
            return (x_next, state), (x_next, loss_fn(x_next))

        (_, _), (xs, losses) = jax.lax.scan(step, (x0, tx.init(x0)), None, length=steps)
        return xs, losses

    xs, losses = go(x0)
    points = np.concatenate([np.asarray(x0)[None, :], np.asarray(xs)], axis=0)
    values = np.concatenate([np.asarray(loss_fn(x0))[None], np.asarray(losses)], axis=0)
    return points, values


def sweep_trajectories(make_tx, loss_fn, start, steps: int, learning_rates):
    """Trajectories for several learning rates in one vmapped, jitted scan.

    ``make_tx(learning_rate)`` builds the optimizer (with a traced learning
    rate). Returns ``(points, losses)`` of shapes ``(len(learning_rates),
    steps + 1, dim)`` and ``(len(learning_rates), steps + 1)``.
    """
    import jax
    import jax.numpy as jnp
    import numpy as np

    import gradopt

    x0 = jnp.asarray(start, jnp.float32)
    value_and_grad = jax.value_and_grad(loss_fn)

    def one(lr):
        tx = make_tx(lr)

        def step(carry, _):
            x, state = carry
            value, grad = value_and_grad(x)
            updates, state = tx.update(grad, state, x, value=value)
            x = gradopt.apply_updates(x, updates)
            return (x, state), x

        _, xs = jax.lax.scan(step, (x0, tx.init(x0)), None, length=steps)
        return jnp.concatenate([x0[None, :], xs], axis=0)

    points = np.asarray(jax.jit(jax.vmap(one))(jnp.asarray(learning_rates, jnp.float32)))
    losses = np.asarray(jax.vmap(jax.vmap(loss_fn))(jnp.asarray(points)))
    return points, losses
