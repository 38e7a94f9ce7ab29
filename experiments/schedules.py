"""The schedules gallery: every schedule in ``gradopt.schedules``, learning rate against step.

Each schedule is evaluated with one jitted, vmapped call over all steps (a
traced step, as inside a training loop). The summary checks, from the
values, a few properties that the formulas promise: warm-up reaches its peak
at the end of the warm-up, staircase exponential decay is constant between
boundaries, cosine ends at its final value, and restarts return to the peak.

Run: ``python -m experiments.schedules [--quick]``.
"""

from __future__ import annotations

import numpy as np

from experiments import common

NAME = "schedules"
STEPS = 300


def gallery():
    """(title, schedule) pairs; every schedule starts at or peaks near 0.1."""
    import jax.numpy as jnp

    from gradopt import schedules

    return [
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
                [
                    schedules.linear(0.0, 0.1, 50),
                    schedules.constant(0.1),
                    schedules.cosine(0.1, 150),
                ],
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


def evaluate(named) -> dict:
    """Every schedule's value at steps 0 .. STEPS - 1 (one jitted, vmapped call each)."""
    import jax
    import jax.numpy as jnp

    steps = jnp.arange(STEPS)
    return {
        title: np.asarray(jax.jit(jax.vmap(schedule))(steps), np.float64)
        for title, schedule in common.progress(named, desc="schedules")
    }


def draw(settings, named, values) -> list[str]:
    """One small panel per schedule, four to a row."""
    import matplotlib.pyplot as plt

    cols = 4
    rows = -(-len(named) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(13, 2.5 * rows), sharex=True)
    for ax, (title, _) in zip(axes.flat, named, strict=False):
        ax.plot(np.arange(STEPS), values[title], lw=1.6, color="tab:blue")
        ax.set_title(title, fontsize=8.5)
        ax.set_ylim(bottom=0.0)
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(named) :]:
        ax.set_visible(False)
    for ax in axes[-1]:
        ax.set_xlabel("step", fontsize=8)
    fig.suptitle("gradopt.schedules: learning rate against step", fontsize=11)
    fig.tight_layout()
    return [common.save_figure(fig, settings, "schedules", dpi=80)]


def write_numbers(settings, named, values) -> list[str]:
    rows_csv = [
        {"step": k, **{title.replace("\n", " "): values[title][k] for title, _ in named}}
        for k in range(STEPS)
    ]
    return [str(common.write_csv(settings.out / "schedules.csv", rows_csv))]


def findings_of(values) -> list[str]:
    """Checks measured on the drawn values (peaks, distinct values, restarts)."""
    by_prefix = {title.split("(")[0]: v for title, v in values.items() if "staircase" not in title}
    stair = next(v for t, v in values.items() if "staircase" in t)
    warm = by_prefix["warmup"]
    restarts = by_prefix["cosine_with_restarts"]
    return [
        f"warmup peaks at step {int(np.argmax(warm))} (warm-up of 50 steps) with "
        f"{warm.max():.4g}, then follows the cosine down to {warm[-1]:.3g}.",
        f"staircase exponential takes {len(np.unique(stair[:STEPS]))} distinct values over "
        f"{STEPS} steps (boundaries every 100), continuous takes "
        f"{len(np.unique(by_prefix['exponential']))}.",
        f"cosine(0.1, 300) ends at {by_prefix['cosine'][-1]:.3g} at step {STEPS - 1}; "
        f"onecycle peaks at step {int(np.argmax(by_prefix['onecycle']))}.",
        "cosine_with_restarts returns to its peak at steps "
        + ", ".join(str(k) for k in np.flatnonzero(np.isclose(restarts, restarts.max()))),
    ]


def run(settings: common.Settings) -> common.Result:
    named = gallery()
    values = evaluate(named)
    figures = draw(settings, named, values)
    data = write_numbers(settings, named, values)
    findings = findings_of(values)
    headline = f"{len(named)} schedules drawn; " + findings[0].split(",")[0]
    common.write_summary(
        settings,
        "Learning-rate schedules",
        intro=__doc__.split("Run:")[0],
        study_settings={"steps": STEPS},
        findings=findings,
        figures=figures,
        data=data,
    )
    return common.Result(NAME, "Schedules gallery", findings, headline, figures, data)


def main(argv=None) -> common.Result:
    return common.main_for(NAME, __doc__, run, argv)


if __name__ == "__main__":
    main()
