"""Draw the schedules gallery of the documentation: every schedule in
``gradopt.schedules``, learning rate against step.

Run by hand after changing a schedule (needs matplotlib, in the
``experiments`` extra):

    .venv/bin/python docs/scripts/schedules_figure.py   # after `make install`

It writes ``docs/img/schedules.png``. Only the public API is used.
"""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from gradopt import schedules  # noqa: E402

STEPS = 300
OUT = Path(__file__).resolve().parent.parent / "img" / "schedules.png"

# (title, schedule); every schedule starts at or peaks near 0.1.
GALLERY = [
    ("constant(0.1)", schedules.constant(0.1)),
    ("linear(0.1, 0.01, 200)", schedules.linear(0.1, 0.01, 200)),
    (
        "piecewise_constant((100, 200),\n(0.1, 0.05, 0.01))",
        schedules.piecewise_constant((100, 200), (0.1, 0.05, 0.01)),
    ),
    ("step(0.1, 60, gamma=0.5)", schedules.step(0.1, 60, gamma=0.5)),
    ("multistep(0.1, (80, 160, 240), 0.5)", schedules.multistep(0.1, (80, 160, 240), 0.5)),
    ("exponential(0.1, 0.5, 100)", schedules.exponential(0.1, 0.5, 100)),
    (
        "exponential(0.1, 0.5, 100,\nstaircase=True)",
        schedules.exponential(0.1, 0.5, 100, staircase=True),
    ),
    ("inverse_time(0.1, 1.0, 50)", schedules.inverse_time(0.1, 1.0, 50)),
    ("polynomial(0.1, 0.0, 300, power=2)", schedules.polynomial(0.1, 0.0, 300, power=2.0)),
    ("cosine(0.1, 300)", schedules.cosine(0.1, 300)),
    (
        "cosine_with_restarts(0.1, 50,\nperiod_mult=2)",
        schedules.cosine_with_restarts(0.1, 50, period_mult=2.0),
    ),
    ("warmup(cosine(0.1, 250), 50)", schedules.warmup(schedules.cosine(0.1, 250), 50)),
    ("onecycle(0.1, 300)", schedules.onecycle(0.1, 300)),
    (
        "join([linear(0, 0.1, 50),\nconstant(0.1), cosine(0.1, 150)], (50, 150))",
        schedules.join(
            [schedules.linear(0.0, 0.1, 50), schedules.constant(0.1), schedules.cosine(0.1, 150)],
            (50, 150),
        ),
    ),
    (
        "product(0.1, step(1, 100, 0.5),\ncosine(1, 300, 0.5))",
        schedules.product(0.1, schedules.step(1.0, 100, 0.5), schedules.cosine(1.0, 300, 0.5)),
    ),
    (
        "from_callable(0.1 * (1 + sin(k / 15)) / 2)",
        schedules.from_callable(lambda k: 0.1 * (1 + jnp.sin(k / 15.0)) / 2),
    ),
]


def main() -> None:
    steps = jnp.arange(STEPS)
    cols = 4
    rows = -(-len(GALLERY) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(13, 2.5 * rows), sharex=True)
    for ax, (title, schedule) in zip(axes.flat, GALLERY, strict=False):
        values = jax.jit(jax.vmap(schedule))(steps)
        ax.plot(steps, values, lw=1.6, color="tab:blue")
        ax.set_title(title, fontsize=8.5)
        ax.set_ylim(bottom=0.0)
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(GALLERY) :]:
        ax.set_visible(False)
    for ax in axes[-1]:
        ax.set_xlabel("step", fontsize=8)
    fig.suptitle("gradopt.schedules: learning rate against step", fontsize=11)
    fig.tight_layout()
    OUT.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(OUT, dpi=80)
    print(f"wrote {OUT} ({OUT.stat().st_size // 1024} KB)")


if __name__ == "__main__":
    main()
