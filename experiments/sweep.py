"""A sweep compiled once: 32 learning rates x nine optimizers in one vmapped, jitted program.

gradopt optimizers accept traced hyperparameters, so the optimizer is built
inside the function that ``jax.vmap`` maps over the learning rate. The task is
softmax regression on scikit-learn's digits (full-batch training loss). The
whole grid, every optimizer and every learning rate, is one ``jax.jit``
program; the study compares its wall time with the same sweep run one
configuration at a time (one compiled function per optimizer, called once per
learning rate), checks that both give the same losses, and draws a heat map of
the final loss against the learning rate for each optimizer.

Run: ``python -m experiments.sweep [--quick]``.
"""

from __future__ import annotations

import functools
import time

import numpy as np

from experiments import common, datasets

NAME = "sweep"


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
    return -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=1))


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


def run(settings: common.Settings) -> common.Result:
    import jax
    import jax.numpy as jnp
    import matplotlib.pyplot as plt

    n_lr = settings.pick(32, 32, 4)
    steps = settings.pick(300, 60, 10)
    n_train = settings.pick(1347, 256, 64)
    names = common.OPTIMIZER_NAMES if settings.mode != "smoke" else ("sgd", "adam")
    lrs = np.logspace(-4, 1, n_lr).astype(np.float32)
    x, y = make_problem(n_train, settings.seed)

    def all_configs(lrs):
        return {
            n: jax.vmap(functools.partial(train, name=n, x=x, y=y, steps=steps))(lrs) for n in names
        }

    compiled = jax.jit(all_configs)
    t0 = time.perf_counter()
    curves = jax.block_until_ready(compiled(jnp.asarray(lrs)))
    t_vmap_first = time.perf_counter() - t0
    t0 = time.perf_counter()
    jax.block_until_ready(compiled(jnp.asarray(lrs)))
    t_vmap_again = time.perf_counter() - t0
    curves = {n: np.asarray(c) for n, c in curves.items()}

    # The same sweep, one configuration at a time.
    sequential = {}
    t0 = time.perf_counter()
    bar = common.progress(total=len(names) * n_lr, desc="sweep one at a time")
    for n in names:
        one = jax.jit(functools.partial(train, name=n, x=x, y=y, steps=steps))
        out = []
        for lr in lrs:
            out.append(np.asarray(jax.block_until_ready(one(jnp.asarray(lr)))))
            bar.update()
        sequential[n] = np.stack(out)
    bar.close()
    t_sequential = time.perf_counter() - t0

    final = {n: curves[n][:, -1] for n in names}
    start_loss = float(curves[names[0]][0, 0])

    # Per configuration: the largest relative difference between the two loss curves
    # (both non-finite at a step counts as agreement). Chaotic, large-lr runs amplify
    # float32 rounding differences between the batched and the single program.
    def curve_gap(a, b):
        both_bad = ~np.isfinite(a) & ~np.isfinite(b)
        gap = np.abs(a - b) / (np.abs(b) + 1e-6)
        return float(np.max(np.where(both_bad, 0.0, np.nan_to_num(gap, nan=np.inf))))

    gaps = {
        n: np.asarray([curve_gap(a, b) for a, b in zip(curves[n], sequential[n], strict=True)])
        for n in names
    }
    all_gaps = np.concatenate(list(gaps.values()))
    agree = int(np.sum(all_gaps <= 1e-4))
    max_diff = float(np.max(all_gaps))
    worst_name = max(names, key=lambda n: gaps[n].max())
    worst_index = int(np.argmax(gaps[worst_name]))
    bad_lrs = [lrs[i] for n in names for i in np.nonzero(gaps[n] > 1e-4)[0]]
    min_bad_lr = float(min(bad_lrs)) if bad_lrs else float("nan")
    rows = []
    for n in names:
        for lr, f, g in zip(lrs, final[n], gaps[n], strict=True):
            rows.append(
                {
                    "optimizer": n,
                    "learning_rate": float(lr),
                    "final_loss": float(f),
                    "relative_gap_vs_one_at_a_time": g,
                }
            )
    data = [str(common.write_csv(settings.out / "sweep.csv", rows))]
    timing = {
        "configurations": len(names) * n_lr,
        "steps": steps,
        "examples": n_train,
        "vmapped_first_call_s (compile + run)": t_vmap_first,
        "vmapped_second_call_s (run)": t_vmap_again,
        "one_at_a_time_s (compile per optimizer + runs)": t_sequential,
        "configurations agreeing to 1e-4 relative": agree,
        "largest relative difference vmapped vs sequential": max_diff,
    }
    data.append(str(common.write_json(settings.out / "timing.json", timing)))

    # --- heat map
    grid = np.stack([final[n] for n in names])
    shown = np.log10(np.where(np.isfinite(grid), np.clip(grid, 1e-6, None), np.nan))
    shown = np.where(grid > start_loss, np.nan, shown)
    fig, ax = plt.subplots(figsize=(11, 0.45 * len(names) + 1.8))
    cmap = plt.get_cmap("viridis").with_extremes(bad="0.85")
    image = ax.imshow(shown, aspect="auto", cmap=cmap, interpolation="nearest")
    ax.set_yticks(range(len(names)), names)
    ticks = np.linspace(0, n_lr - 1, min(n_lr, 8)).round().astype(int)
    ax.set_xticks(ticks, [f"{lrs[i]:.0e}" for i in ticks])
    ax.set_xlabel("learning rate")
    for i, n in enumerate(names):
        j = int(np.nanargmin(np.where(np.isfinite(final[n]), final[n], np.inf)))
        ax.plot(j, i, "r*", ms=8)
    fig.colorbar(image, ax=ax, label="log10 final training loss (grey: diverged / above start)")
    ax.set_title(
        f"{len(names)} optimizers x {n_lr} learning rates, {steps} full-batch steps, one program: "
        f"{t_vmap_first:.1f} s vs {t_sequential:.1f} s one at a time"
    )
    figures = [common.save_figure(fig, settings, "sweep")]

    # --- findings
    findings = [
        f"{len(names) * n_lr} configurations in one jitted program: {t_vmap_first:.2f} s "
        f"including compilation ({t_vmap_again:.2f} s when called again); one at a time: "
        f"{t_sequential:.2f} s, {t_sequential / t_vmap_first:.1f}x slower.",
        f"vmapped and one-at-a-time loss curves agree to 1e-4 (relative, every step) in "
        f"{agree} of {all_gaps.size} configurations; the median gap is "
        f"{float(np.median(all_gaps)):.2g}, the largest {max_diff:.2g} ({worst_name} at lr "
        f"{lrs[worst_index]:.2g}; learning rates with a gap above 1e-4 are all >= "
        f"{min_bad_lr:.2g}).",
    ]
    table_rows = []
    for n in names:
        f = np.where(np.isfinite(final[n]), final[n], np.inf)
        j = int(np.argmin(f))
        ok = lrs[f < start_loss]
        span = f"{ok.min():.1e} – {ok.max():.1e}" if ok.size else "none"
        table_rows.append([n, f"{lrs[j]:.2e}", common.fmt(f[j]), span])
    best_row = min(table_rows, key=lambda r: float(r[2]))
    findings.append(
        f"Lowest final loss: {best_row[0]} at lr {best_row[1]} ({best_row[2]}); start loss "
        f"{start_loss:.3g}."
    )
    widest = max(
        names, key=lambda n: np.sum(np.where(np.isfinite(final[n]), final[n], np.inf) < start_loss)
    )
    span = table_rows[names.index(widest)][3]
    findings.append(f"Widest range of learning rates that reduce the loss: {widest} ({span}).")
    headline = (
        f"{len(names) * n_lr} configs: one program {t_vmap_first:.1f} s vs one at a time "
        f"{t_sequential:.1f} s ({t_sequential / t_vmap_first:.1f}x); best {best_row[0]} at "
        f"lr {best_row[1]}"
    )
    common.write_summary(
        settings,
        "A sweep compiled once",
        intro=__doc__.split("Run:")[0],
        study_settings={
            "learning rates": f"{n_lr} log-spaced in [{lrs[0]:.0e}, {lrs[-1]:.1e}]",
            "steps": steps,
            "training examples": n_train,
        },
        findings=findings,
        tables=[
            (
                "Best learning rate per optimizer",
                common.markdown_table(
                    ["optimizer", "best lr", "final loss", "lrs that reduce the loss"], table_rows
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
