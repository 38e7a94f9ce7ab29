"""Which optimizer should I use? Every named optimizer of gradopt on three small tasks.

The AlgoPerf way of scoring, in miniature. Three tasks: softmax classification
of scikit-learn's digits with a one-hidden-layer MLP; the same data with a
deeper MLP with batch normalisation; and a one-block character-level
transformer language model on a text every Python installation has (the
standard library's ``LICENSE.txt``; the ``argparse`` source as a fallback). Each
optimizer runs with its own defaults except the learning rate, which is tuned
on a log grid: the grid is one ``jax.vmap`` over learning rates, so each
optimizer and task is one compiled program. Training is full batch (a fixed
set of examples or text windows), so the curves are deterministic training
losses. Per task the target is the median over optimizers of the best final
loss; the scores are the steps each optimizer needs to reach it (at its best
learning rate) and its best final loss. Optimizers that need more than the
gradient are handled: ``polyak_sgd`` gets ``value=loss`` (its grid is the
largest step), wrappers are run around AdamW (``cautious``) or skipped when
they need a second gradient (``sam``) or another optimizer (``lookahead``).
Schedule-free optimizers are scored at the point where they take gradients.

Run: ``python -m experiments.zoo [--quick] [--all]`` (``--quick`` runs one
optimizer of each kind on small tasks; ``--all`` every optimizer, also with ``--quick``).
"""

from __future__ import annotations

import argparse
import functools
import os
import sysconfig
import time
from pathlib import Path

import numpy as np

from experiments import common, datasets

NAME = "zoo"

# Every named optimizer; names gradopt does not have (yet) are skipped.
CLASSICS = ("sgd", "momentum", "nesterov", "adagrad", "adadelta", "rmsprop")
ADAM = ("adam", "adamw", "amsgrad", "adamax", "nadam")
MODERN_A = (
    "lion", "lamb", "lars", "radam", "adabelief", "yogi", "novograd", "adan",
    "sign_sgd", "signum", "fromage", "polyak_sgd", "nadamw", "adamaxw", "adopt",
    "ademamix", "cautious_adamw",
)  # fmt: skip
MODERN_B = (
    "adafactor", "sm3", "muon", "schedule_free_sgd", "schedule_free_adamw",
    "prodigy", "dadapt_adamw",
)  # fmt: skip
ALL_NAMES = CLASSICS + ADAM + MODERN_A + MODERN_B
# --quick (make demo): one of each kind, so that it compiles in about a minute
QUICK_NAMES = (
    "sgd", "momentum", "adam", "adamw", "lion", "lamb", "radam", "adan", "adopt",
    "ademamix", "schedule_free_adamw", "muon", "prodigy",
)  # fmt: skip
SKIPPED = {
    "sam": "needs a second gradient per step (the two-gradient loop)",
    "lookahead": "wraps another optimizer",
}


def make_optimizer(name: str, learning_rate):
    """The optimizer ``name`` with learning rate ``learning_rate`` (a traced scalar), or None."""
    import gradopt

    if name in ("sgd", "momentum", "nesterov"):
        return common.optimizer(name, learning_rate)
    if name == "cautious_adamw":
        return gradopt.cautious(gradopt.adamw(learning_rate))
    if name == "polyak_sgd":
        return gradopt.polyak_sgd(max_learning_rate=learning_rate)
    factory = getattr(gradopt, name, None)
    if factory is None:
        return None
    return factory(learning_rate)


def available(names) -> tuple[list[str], dict[str, str]]:
    """The names that build here, and why the others are left out."""
    out, missing = [], {}
    for n in names:
        try:
            tx = make_optimizer(n, 0.01)
        except Exception as error:  # noqa: BLE001 - reported in the summary
            missing[n] = f"does not build with a learning rate alone ({error})"
            continue
        if tx is None:
            missing[n] = "not in this gradopt"
        else:
            out.append(n)
    return out, missing


# ----------------------------------------------------------------------------
# tasks


def _dense(key, fan_in, fan_out):
    import jax
    import jax.numpy as jnp

    w = jax.random.normal(key, (fan_in, fan_out), jnp.float32) * fan_in**-0.5
    return {"w": w, "b": jnp.zeros((fan_out,), jnp.float32)}


def _cross_entropy(logits, y):
    import jax
    import jax.numpy as jnp

    logp = jax.nn.log_softmax(logits, axis=-1)
    return -jnp.mean(jnp.take_along_axis(logp, y[..., None], axis=-1))


def mlp_task(x, y, hidden, *, batch_norm: bool):
    """``(init, loss)`` of an MLP classifier (ReLU; with batch norm before each ReLU)."""
    import jax
    import jax.numpy as jnp

    sizes = (x.shape[1], *hidden, 10)

    def init(key):
        keys = jax.random.split(key, len(sizes) - 1)
        layers = [_dense(k, a, b) for k, a, b in zip(keys, sizes[:-1], sizes[1:], strict=True)]
        if batch_norm:
            for layer in layers[:-1]:
                layer["scale"] = jnp.ones_like(layer["b"])
        return layers

    def loss(params):
        h = x
        for i, layer in enumerate(params):
            h = h @ layer["w"] + layer["b"][None, :]
            if i < len(params) - 1:
                if batch_norm:  # batch statistics (full batch: train mode is the model)
                    mean = jnp.mean(h, axis=0, keepdims=True)
                    var = jnp.var(h, axis=0, keepdims=True)
                    h = (h - mean) * jax.lax.rsqrt(var + 1e-5) * layer["scale"][None, :]
                    h = h + layer["b"][None, :]
                h = jax.nn.relu(h)
        return _cross_entropy(h, y)

    return init, loss


def load_text() -> tuple[str, str]:
    """A text every Python has: the standard library's LICENSE.txt (or argparse's source)."""
    path = Path(sysconfig.get_path("stdlib")) / "LICENSE.txt"
    if not path.exists():
        path = Path(argparse.__file__)
    return path.read_text(errors="replace"), path.name


def char_windows(text: str, n: int, length: int, seed: int):
    """``n`` random windows of ``length + 1`` characters as int32 ids, and the vocabulary size."""
    chars = sorted(set(text))
    ids = np.asarray([chars.index(c) for c in text], np.int32)
    rng = np.random.default_rng(seed)
    starts = rng.integers(0, len(ids) - length - 1, n)
    return np.stack([ids[s : s + length + 1] for s in starts]), len(chars)


def transformer_task(windows, vocab: int, d: int, heads: int):
    """``(init, loss)`` of a one-block causal transformer language model (pre-LN)."""
    import jax
    import jax.numpy as jnp

    length = windows.shape[1] - 1
    inputs, targets = jnp.asarray(windows[:, :-1]), jnp.asarray(windows[:, 1:])

    def init(key):
        k = jax.random.split(key, 6)
        return {
            "embed": jax.random.normal(k[0], (vocab, d), jnp.float32) * 0.1,
            "pos": jax.random.normal(k[1], (length, d), jnp.float32) * 0.1,
            "qkv": _dense(k[2], d, 3 * d),
            "proj": _dense(k[3], d, d),
            "up": _dense(k[4], d, 2 * d),
            "down": _dense(k[5], 2 * d, d),
            "ln": {"g1": jnp.ones(d), "g2": jnp.ones(d), "g3": jnp.ones(d)},
            "out_bias": jnp.zeros(vocab),
        }

    def norm(h, g):
        h = h - jnp.mean(h, axis=-1, keepdims=True)
        return h * jax.lax.rsqrt(jnp.mean(h * h, axis=-1, keepdims=True) + 1e-5) * g[None, None]

    def loss(p):
        h = p["embed"][inputs] + p["pos"][None]
        a = norm(h, p["ln"]["g1"]) @ p["qkv"]["w"] + p["qkv"]["b"][None, None]
        q, k, v = (t.reshape(*t.shape[:2], heads, d // heads) for t in jnp.split(a, 3, -1))
        scores = jnp.einsum("bqhc,bkhc->bhqk", q, k) / jnp.sqrt(d // heads)
        causal = jnp.tril(jnp.ones((length, length), bool))
        scores = jnp.where(causal[None, None], scores, -1e9)
        att = jnp.einsum("bhqk,bkhc->bqhc", jax.nn.softmax(scores, -1), v).reshape(h.shape)
        h = h + att @ p["proj"]["w"] + p["proj"]["b"][None, None]
        m = jax.nn.gelu(norm(h, p["ln"]["g2"]) @ p["up"]["w"] + p["up"]["b"][None, None])
        h = h + m @ p["down"]["w"] + p["down"]["b"][None, None]
        logits = norm(h, p["ln"]["g3"]) @ p["embed"].T + p["out_bias"][None, None]
        return _cross_entropy(logits, targets)

    return init, loss


def make_tasks(settings: common.Settings) -> dict:
    import jax.numpy as jnp

    n = settings.pick(1347, 512, 64)
    data = datasets.load_digits(seed=settings.seed)
    x, y = jnp.asarray(data.x_train[:n]), jnp.asarray(data.y_train[:n])
    text, source = load_text()
    windows, vocab = char_windows(
        text, settings.pick(256, 64, 8), settings.pick(64, 32, 8), settings.seed
    )
    return {
        "digits MLP": (*mlp_task(x, y, (settings.pick(64, 32, 8),), batch_norm=False), "digits"),
        "deep MLP + batch norm": (
            *mlp_task(x, y, (settings.pick(64, 32, 8),) * settings.pick(4, 3, 2), batch_norm=True),
            "digits",
        ),
        "char transformer": (
            *transformer_task(windows, vocab, settings.pick(64, 32, 8), 2),
            f"{source} ({len(text)} characters, vocabulary {vocab})",
        ),
    }


# ----------------------------------------------------------------------------
# training: one compiled program per optimizer and task, vmapped over the grid


def train(learning_rate, *, name, init, loss, steps, seed):
    import jax
    import jax.numpy as jnp

    import gradopt

    params = init(jax.random.key(seed))
    tx = make_optimizer(name, learning_rate)
    value_and_grad = jax.value_and_grad(loss)

    def step(carry, _):
        params, state = carry
        value, grads = value_and_grad(params)
        updates, state = tx.update(grads, state, params, value=value)
        return (gradopt.apply_updates(params, updates), state), value

    (params, _), losses = jax.lax.scan(step, (params, tx.init(params)), None, length=steps)
    return jnp.concatenate([losses, loss(params)[None]])


def run_grid(names, task, lrs, steps, seed):
    """Every optimizer in ``names`` over the grid, as one jitted program for the task.

    One program for all optimizers compiles about 2.7x faster than one per
    optimizer (measured on this project's machine). If it fails to trace, each
    optimizer is run on its own and those that fail are reported.
    """
    import jax
    import jax.numpy as jnp

    init, loss, _ = task

    def one(name):
        return jax.vmap(
            functools.partial(train, name=name, init=init, loss=loss, steps=steps, seed=seed)
        )

    t0 = time.perf_counter()
    failed = {}
    try:
        out = jax.jit(lambda lr: {n: one(n)(lr) for n in names})(jnp.asarray(lrs))
        curves = {n: np.asarray(c) for n, c in jax.block_until_ready(out).items()}
    except Exception:  # noqa: BLE001 - find the culprits one by one
        curves = {}
        for n in names:
            try:
                curves[n] = np.asarray(jax.block_until_ready(jax.jit(one(n))(jnp.asarray(lrs))))
            except Exception as error:  # noqa: BLE001 - reported in the summary
                failed[n] = f"failed on this task: {type(error).__name__}: {str(error)[:120]}"
    return curves, failed, time.perf_counter() - t0


def score(curves: dict, lrs) -> dict:
    """Per optimizer: best learning rate, its curve and final loss (non-finite: inf)."""
    out = {}
    for n, c in curves.items():
        final = np.where(np.isfinite(c[:, -1]), c[:, -1], np.inf)
        j = int(np.argmin(final))
        loss = float(final[j]) + 0.0  # -0.0 (a negated zero loss) shown as 0
        out[n] = {"lr": float(lrs[j]), "final": loss, "curve": c[j], "index": j}
    return out


def steps_to(curve, target) -> int | None:
    hit = np.nonzero(np.isfinite(curve) & (curve <= target))[0]
    return int(hit[0]) if hit.size else None


# ----------------------------------------------------------------------------
# figures and summary


def draw(settings, names, tasks, best, targets, steps) -> list[str]:
    import matplotlib.pyplot as plt

    task_names = list(tasks)
    floor = 1e-7  # a loss of exactly 0 (float32 underflow) counts as 1e-7
    ratio = np.asarray(
        [[max(best[t][n]["final"], floor) / max(min(b["final"] for b in best[t].values()), floor)
          for t in task_names] for n in names]
    )  # fmt: skip
    shown = np.log10(np.where(np.isfinite(ratio), ratio, np.nan))
    order = np.argsort(np.nanmean(np.where(np.isfinite(shown), shown, 3.0), axis=1))
    fig, ax = plt.subplots(figsize=(7.5, 0.32 * len(names) + 1.6))
    cmap = plt.get_cmap("viridis_r").with_extremes(bad="0.8")
    image = ax.imshow(shown[order], aspect="auto", cmap=cmap, vmin=0, vmax=1.5)
    ax.set_yticks(range(len(names)), [names[i] for i in order])
    ax.set_xticks(range(len(task_names)), task_names)
    for r, i in enumerate(order):
        for c, t in enumerate(task_names):
            s = steps_to(best[t][names[i]]["curve"], targets[t])
            dark = np.nan_to_num(shown[i, c], nan=2) > 0.75
            label = "—" if s is None else str(s)
            color = "white" if dark else "black"
            ax.text(c, r, label, ha="center", va="center", fontsize=7, color=color)
    fig.colorbar(image, ax=ax, label="log10(best final loss / best of all)")
    ax.set_title(
        f"{len(names)} optimizers, learning rate tuned per task, {steps} steps\n"
        "numbers: steps to the task's target (median best final loss); —: never",
        fontsize=9,
    )
    files = [common.save_figure(fig, settings, "zoo")]

    fig, axes = plt.subplots(1, len(task_names), figsize=(4.2 * len(task_names), 3.4))
    for ax, t in zip(np.atleast_1d(axes), task_names, strict=True):
        top = sorted(best[t], key=lambda n: best[t][n]["final"])[:5]
        shown_names = top + (["adamw"] if "adamw" in best[t] and "adamw" not in top else [])
        for n in shown_names:
            b = best[t][n]
            style = "--" if n not in top else "-"
            ax.plot(b["curve"], style, lw=1.3, label=f"{n} (lr {b['lr']:.0e})")
        ax.axhline(targets[t], color="0.4", lw=0.8, ls=":")
        ax.set_yscale("log")
        ax.set_title(t, fontsize=10)
        ax.set_xlabel("step")
        ax.legend(fontsize=7)
    np.atleast_1d(axes)[0].set_ylabel("training loss (best lr)")
    fig.suptitle("The best five per task (AdamW dashed when not among them; dotted: target)")
    fig.tight_layout()
    files.append(common.save_figure(fig, settings, "zoo_curves"))
    return files


def run(settings: common.Settings) -> common.Result:
    chosen = settings.pick(ALL_NAMES, QUICK_NAMES, ("sgd", "adamw", "lion"))
    if settings.extra.get("all"):
        chosen = ALL_NAMES
    names, missing = available(chosen)
    lrs = np.logspace(
        *settings.pick((-5.0, 2.0), (-4.0, 1.0), (-3.0, -1.0)),
        settings.pick(15, 6, 2),
    ).astype(np.float32)
    steps = settings.pick(400, 60, 4)
    tasks = make_tasks(settings)
    best, seconds, rows = {}, {}, []
    for t, task in tasks.items():
        common.log(NAME, f"{t}: {len(names)} optimizers x {len(lrs)} learning rates, one program")
        curves, failed, seconds[t] = run_grid(names, task, lrs, steps, settings.seed)
        missing.update(failed)
        best[t] = score(curves, lrs)
        for n, c_n in curves.items():
            for lr, c in zip(lrs, c_n, strict=True):
                rows.append({"task": t, "optimizer": n, "learning_rate": float(lr),
                             "final_loss": float(c[-1])})  # fmt: skip
    tasks = {t: task for t, task in tasks.items() if best[t]}  # every optimizer failed: dropped
    names = [n for n in names if all(n in best[t] for t in tasks)]
    if not tasks or not names:
        raise RuntimeError(f"No optimizer ran on every task: {missing}")
    targets = {t: float(np.median([b["final"] for b in best[t].values()])) for t in tasks}

    table, wins = [], {}
    for n in names:
        cells = []
        for t in tasks:
            b = best[t][n]
            s = steps_to(b["curve"], targets[t])
            edge = "*" if b["index"] in (0, len(lrs) - 1) else ""
            cells.append(
                f"{common.fmt(b['final'])} / {'—' if s is None else s} / {b['lr']:.0e}{edge}"
            )
        ranks = [sorted(best[t], key=lambda m: best[t][m]["final"]).index(n) + 1 for t in tasks]
        table.append([n, *cells, f"{np.mean(ranks):.1f}"])
        wins[n] = float(np.mean(ranks))
    table.sort(key=lambda r: float(r[-1]))
    leader = min(wins, key=wins.get)
    findings = [
        f"{len(names)} optimizers x {len(tasks)} tasks x {len(lrs)} learning rates "
        f"({lrs[0]:.0e} to {lrs[-1]:.0e}), {steps} full-batch steps each; "
        f"{sum(seconds.values()):.0f} s including one compilation per task"
        + (
            ""
            if settings.mode == "full" or settings.extra.get("all")
            else " (quick: one optimizer of each kind; the full run and --all have all)"
        )
        + ".",
        f"Best mean rank over the tasks: {leader} ({wins[leader]:.1f}); "
        f"AdamW: {wins.get('adamw', float('nan')):.1f}; "
        f"Adam: {wins.get('adam', float('nan')):.1f}.",
    ]
    for t in tasks:
        first = min(best[t], key=lambda n: best[t][n]["final"])
        fast = min(
            (n for n in names if steps_to(best[t][n]["curve"], targets[t]) is not None),
            key=lambda n: steps_to(best[t][n]["curve"], targets[t]),
        )
        findings.append(
            f"{t}: lowest final loss {first} ({common.fmt(best[t][first]['final'])} at lr "
            f"{best[t][first]['lr']:.0e}); first to the target {common.fmt(targets[t])}: {fast} "
            f"({steps_to(best[t][fast]['curve'], targets[t])} steps); AdamW "
            f"{common.fmt(best[t]['adamw']['final']) if 'adamw' in best[t] else 'n/a'}."
        )
    if missing:
        findings.append(
            "Not run: " + "; ".join(f"{n} ({why})" for n, why in {**missing, **SKIPPED}.items())
        )
    np.savez(
        settings.out / "curves.npz",
        **{f"{t}|{n}": best[t][n]["curve"] for t in tasks for n in names},
    )
    figures = draw(settings, names, tasks, best, targets, steps)
    data = [str(common.write_csv(settings.out / "zoo.csv", rows))]
    data.append(
        str(common.write_json(settings.out / "targets.json", {"targets": targets, "lrs": lrs}))
    )
    header = ["optimizer", *[f"{t}: loss / steps to target / lr" for t in tasks], "mean rank"]
    note = (
        "Each cell: the best final training loss over the grid, the steps to the task's "
        "target at that learning rate (—: never), and the learning rate (*: at the grid's "
        "edge, so the optimizer may do better outside it). Sorted by the mean rank over "
        "the tasks.\n\n"
    )
    common.write_summary(
        settings,
        "Which optimizer should I use? The zoo",
        intro=__doc__.split("Run:")[0],
        study_settings={
            "learning rates": f"{len(lrs)} log-spaced in [{lrs[0]:.0e}, {lrs[-1]:.0e}]",
            "steps": steps,
            **{f"task: {t}": task[2] for t, task in tasks.items()},
            "targets (median best final loss)": {t: round(v, 4) for t, v in targets.items()},
            "cpu count": os.cpu_count(),
        },
        findings=findings,
        tables=[
            (
                "Best learning rate per optimizer and task",
                note + common.markdown_table(header, table),
            )
        ],
        figures=figures,
        data=data,
    )
    headline = (
        f"{len(names)} optimizers x {len(tasks)} tasks; best mean rank {leader} "
        f"({wins[leader]:.1f}), AdamW {wins.get('adamw', float('nan')):.1f}"
    )
    return common.Result(
        NAME, "Which optimizer should I use? The zoo", findings, headline, figures, data
    )


def _arguments(parser) -> None:
    parser.add_argument(
        "--all", action="store_true", help="every optimizer, also with --quick (small tasks)"
    )


def main(argv=None) -> common.Result:
    return common.main_for(NAME, __doc__, run, argv, add_arguments=_arguments)


if __name__ == "__main__":
    main()
