"""A sweep compiled once: 29 learning rates x nine optimizers in one vmapped, jitted program.

gradopt optimizers accept traced hyperparameters, so the optimizer is built
inside the function that ``jax.vmap`` maps over the learning rate. The task is
softmax regression on scikit-learn's digits with a small L2 penalty
(full-batch training loss). The penalty gives the problem a minimiser: the
digits training set is linearly separable, so without it the loss only tends
to 0 as the weights grow, every adaptive method reaches a float32 loss of
exactly 0 at any learning rate past a threshold, and the "best" learning rate
is the top of whatever grid is used. With it, too small a rate does not get
there in the given steps and too large a one oscillates or diverges, so the
best learning rate lies inside the grid (1e-4 to 1e3, a quarter decade apart),
which the study checks. The whole grid, every optimizer and every learning
rate, is one ``jax.jit`` program; the study compares its wall time with the
same sweep run one configuration at a time (one compiled function per
optimizer, called once per learning rate), checks that both give the same
losses, and draws a heat map of the final loss against the learning rate for
each optimizer.

Run: ``python -m experiments.sweep [--quick]``.
"""

from __future__ import annotations

import functools
import time

import numpy as np

from experiments import common, datasets

NAME = "sweep"
L2 = 1e-3  # the penalty 0.5 * L2 * ||w||^2 (not on the bias)
LOG10_LR_RANGE = (-4.0, 3.0)


def make_problem(n_train: int, seed: int):
    import jax.numpy as jnp

    data = datasets.load_digits(seed=seed)
    x = jnp.asarray(data.x_train[:n_train])
    y = jnp.asarray(data.y_train[:n_train])
    return x, y


def loss_fn(params, x, y):
    import jax
    import jax.numpy as jnp

    logits = x @ params["w"] + params["b"][None, :]
    logp = jax.nn.log_softmax(logits, axis=-1)
    nll = -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=1))
    return nll + 0.5 * L2 * jnp.sum(jnp.square(params["w"]))


def train(learning_rate, *, name, x, y, steps):
    """Full-batch training from zero weights; returns the loss curve (steps + 1,)."""
    import jax
    import jax.numpy as jnp

    import gradopt

    params = {
        "w": jnp.zeros((x.shape[1], 10), jnp.float32),
        "b": jnp.zeros((10,), jnp.float32),
    }
    tx = common.optimizer(name, learning_rate)
    value_and_grad = jax.value_and_grad(loss_fn)

    def step(carry, _):
        params, state = carry
        value, grads = value_and_grad(params, x, y)
        updates, state = tx.update(grads, state, params)
        return (gradopt.apply_updates(params, updates), state), value

    (params, _), losses = jax.lax.scan(step, (params, tx.init(params)), None, length=steps)
    return jnp.concatenate([losses, loss_fn(params, x, y)[None]])


def learning_rates(n: int) -> np.ndarray:
    return np.logspace(*LOG10_LR_RANGE, n).astype(np.float32)


def sweep_vmapped(names, lrs, *, x, y, steps):
    """Every optimizer and learning rate in one jitted program: curves, first and second call."""
    import jax
    import jax.numpy as jnp

    def all_configs(lrs):
        return {
            n: jax.vmap(functools.partial(train, name=n, x=x, y=y, steps=steps))(lrs) for n in names
        }

    compiled = jax.jit(all_configs)
    t0 = time.perf_counter()
    curves = jax.block_until_ready(compiled(jnp.asarray(lrs)))
    t_first = time.perf_counter() - t0
    t0 = time.perf_counter()
    jax.block_until_ready(compiled(jnp.asarray(lrs)))
    t_again = time.perf_counter() - t0
    return {n: np.asarray(c) for n, c in curves.items()}, t_first, t_again


def sweep_one_at_a_time(names, lrs, *, x, y, steps):
    """The same sweep with one compiled function per optimizer, called once per rate."""
    import jax
    import jax.numpy as jnp

    sequential = {}
    t0 = time.perf_counter()
    bar = common.progress(total=len(names) * len(lrs), desc="sweep one at a time")
    for n in names:
        one = jax.jit(functools.partial(train, name=n, x=x, y=y, steps=steps))
        out = []
        for lr in lrs:
            out.append(np.asarray(jax.block_until_ready(one(jnp.asarray(lr)))))
            bar.update()
        sequential[n] = np.stack(out)
    bar.close()
    return sequential, time.perf_counter() - t0


def curve_gap(a, b) -> float:
    """The largest relative difference between two loss curves (both non-finite: agreement).

    Chaotic, large-lr runs amplify float32 rounding differences between the
    batched and the single program.
    """
    both_bad = ~np.isfinite(a) & ~np.isfinite(b)
    gap = np.abs(a - b) / (np.abs(b) + 1e-6)
    return float(np.max(np.where(both_bad, 0.0, np.nan_to_num(gap, nan=np.inf))))


def compare(curves, sequential, names, lrs) -> dict:
    """Per-configuration gaps between the vmapped and the one-at-a-time curves, summarised."""
    gaps = {
        n: np.asarray([curve_gap(a, b) for a, b in zip(curves[n], sequential[n], strict=True)])
        for n in names
    }
    every = np.concatenate(list(gaps.values()))
    worst = max(names, key=lambda n: gaps[n].max())
    bad_lrs = [lrs[i] for n in names for i in np.nonzero(gaps[n] > 1e-4)[0]]
    return {
        "gaps": gaps,
        "count": every.size,
        "agree": int(np.sum(every <= 1e-4)),
        "median": float(np.median(every)),
        "max": float(np.max(every)),
        "worst": worst,
        "worst_lr": float(lrs[int(np.argmax(gaps[worst]))]),
        "min_bad_lr": float(min(bad_lrs)) if bad_lrs else float("nan"),
    }


def best_per_optimizer(final, names, lrs, start_loss) -> list[dict]:
    """Best learning rate per optimizer, whether it lies inside the grid, the rates that help."""
    best = []
    for n in names:
        f = np.where(np.isfinite(final[n]), final[n], np.inf)
        j = int(np.argmin(f))
        ok = lrs[f < start_loss]
        best.append(
            {
                "optimizer": n,
                "index": j,
                "lr": float(lrs[j]),
                "loss": float(f[j]),
                "interior": 0 < j < len(lrs) - 1,
                "span": f"{ok.min():.1e} – {ok.max():.1e}" if ok.size else "none",
                "helping": int(ok.size),
            }
        )
    return best


def write_numbers(settings, names, lrs, final, gaps, timing) -> list[str]:
    rows = [
        {
            "optimizer": n,
            "learning_rate": float(lr),
            "final_loss": float(f),
            "relative_gap_vs_one_at_a_time": g,
        }
        for n in names
        for lr, f, g in zip(lrs, final[n], gaps[n], strict=True)
    ]
    return [
        str(common.write_csv(settings.out / "sweep.csv", rows)),
        str(common.write_json(settings.out / "timing.json", timing)),
    ]


def draw_heat_map(settings, names, lrs, final, best, start_loss, steps, t_first, t_sequential):
    import matplotlib.pyplot as plt

    grid = np.stack([final[n] for n in names])
    shown = np.log10(np.where(np.isfinite(grid), np.clip(grid, 1e-6, None), np.nan))
    shown = np.where(grid > start_loss, np.nan, shown)
    fig, ax = plt.subplots(figsize=(11, 0.45 * len(names) + 1.8))
    cmap = plt.get_cmap("viridis").with_extremes(bad="0.85")
    image = ax.imshow(shown, aspect="auto", cmap=cmap, interpolation="nearest")
    ax.set_yticks(range(len(names)), names)
    decades = [i for i, lr in enumerate(lrs) if abs(np.log10(lr) - round(np.log10(lr))) < 1e-3]
    ticks = decades if len(decades) >= 2 else np.linspace(0, len(lrs) - 1, 2).astype(int)
    ax.set_xticks(ticks, [f"{lrs[i]:.0e}" for i in ticks])
    ax.set_xlabel("learning rate")
    for i, b in enumerate(best):
        ax.plot(b["index"], i, "r*" if b["interior"] else "rx", ms=10, mec="white", mew=0.8)
    fig.colorbar(image, ax=ax, label="log10 final training loss (grey: diverged / above start)")
    inside = sum(b["interior"] for b in best)
    edge = "" if inside == len(best) else " (x: best at the grid's edge)"
    ax.set_title(
        f"{len(names)} optimizers x {len(lrs)} learning rates, {steps} full-batch steps, one "
        f"program: {t_first:.1f} s vs {t_sequential:.1f} s one at a time\n"
        f"softmax regression + L2 {L2:g}; star: best learning rate, inside the grid for "
        f"{inside} of {len(best)}{edge}",
        fontsize=10,
    )
    return [common.save_figure(fig, settings, "sweep")]


def findings_of(names, lrs, best, cmp, start_loss, t_first, t_again, t_sequential) -> list[str]:
    inside = [b["optimizer"] for b in best if b["interior"]]
    at_edge = [f"{b['optimizer']} ({b['lr']:.0e})" for b in best if not b["interior"]]
    winner = min(best, key=lambda b: b["loss"])
    widest = max(best, key=lambda b: b["helping"])
    return [
        f"{len(names) * len(lrs)} configurations in one jitted program: {t_first:.2f} s "
        f"including compilation ({t_again:.2f} s when called again); one at a time: "
        f"{t_sequential:.2f} s, {t_sequential / t_first:.1f}x slower.",
        f"vmapped and one-at-a-time loss curves agree to 1e-4 (relative, every step) in "
        f"{cmp['agree']} of {cmp['count']} configurations; the median gap is "
        f"{cmp['median']:.2g}, the largest {cmp['max']:.2g} ({cmp['worst']} at lr "
        f"{cmp['worst_lr']:.2g}; learning rates with a gap above 1e-4 are all >= "
        f"{cmp['min_bad_lr']:.2g}).",
        f"The best learning rate lies inside the grid [{lrs[0]:.0e}, {lrs[-1]:.0e}] for "
        f"{len(inside)} of {len(best)} optimizers"
        + (f"; at its edge for {', '.join(at_edge)}." if at_edge else "."),
        f"Lowest final loss: {winner['optimizer']} at lr {winner['lr']:.2e} "
        f"({common.fmt(winner['loss'])}); start loss {start_loss:.3g}.",
        f"Widest range of learning rates that reduce the loss: {widest['optimizer']} "
        f"({widest['span']}).",
    ]


def run(settings: common.Settings) -> common.Result:
    n_lr = settings.pick(29, 29, 4)
    steps = settings.pick(300, 60, 10)
    n_train = settings.pick(1347, 256, 64)
    names = common.OPTIMIZER_NAMES if settings.mode != "smoke" else ("sgd", "adam")
    lrs = learning_rates(n_lr)
    x, y = make_problem(n_train, settings.seed)
    problem = {"x": x, "y": y, "steps": steps}

    curves, t_first, t_again = sweep_vmapped(names, lrs, **problem)
    sequential, t_sequential = sweep_one_at_a_time(names, lrs, **problem)
    cmp = compare(curves, sequential, names, lrs)
    final = {n: curves[n][:, -1] for n in names}
    start_loss = float(curves[names[0]][0, 0])
    best = best_per_optimizer(final, names, lrs, start_loss)

    timing = {
        "configurations": len(names) * n_lr,
        "steps": steps,
        "examples": n_train,
        "vmapped_first_call_s (compile + run)": t_first,
        "vmapped_second_call_s (run)": t_again,
        "one_at_a_time_s (compile per optimizer + runs)": t_sequential,
        "configurations agreeing to 1e-4 relative": cmp["agree"],
        "largest relative difference vmapped vs sequential": cmp["max"],
    }
    data = write_numbers(settings, names, lrs, final, cmp["gaps"], timing)
    figures = draw_heat_map(
        settings, names, lrs, final, best, start_loss, steps, t_first, t_sequential
    )
    findings = findings_of(names, lrs, best, cmp, start_loss, t_first, t_again, t_sequential)
    winner = min(best, key=lambda b: b["loss"])
    headline = (
        f"{len(names) * n_lr} configs: one program {t_first:.1f} s vs one at a time "
        f"{t_sequential:.1f} s ({t_sequential / t_first:.1f}x); best {winner['optimizer']} at "
        f"lr {winner['lr']:.2e}; best lr inside the grid for "
        f"{sum(b['interior'] for b in best)} of {len(best)}"
    )
    table_rows = [
        [b["optimizer"], f"{b['lr']:.2e}", common.fmt(b["loss"]), b["interior"], b["span"]]
        for b in best
    ]
    common.write_summary(
        settings,
        "A sweep compiled once",
        intro=__doc__.split("Run:")[0],
        study_settings={
            "learning rates": f"{n_lr} log-spaced in [{lrs[0]:.0e}, {lrs[-1]:.1e}]",
            "steps": steps,
            "training examples": n_train,
            "L2 penalty on the weights": L2,
        },
        findings=findings,
        tables=[
            (
                "Best learning rate per optimizer",
                common.markdown_table(
                    ["optimizer", "best lr", "final loss", "inside the grid", "lrs that help"],
                    table_rows,
                ),
            ),
            ("Timing", common.markdown_table(["", "value"], timing.items())),
        ],
        figures=figures,
        data=data,
    )
    return common.Result(NAME, "Sweep compiled once", findings, headline, figures, data)


def main(argv=None) -> common.Result:
    return common.main_for(NAME, __doc__, run, argv)


if __name__ == "__main__":
    main()
