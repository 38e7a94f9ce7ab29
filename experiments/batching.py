"""Batch vs stochastic vs mini-batch gradient descent on scikit-learn's digits.

A softmax classifier (64 -> 10) and a small MLP (64 -> 32 -> 10, ReLU) are
trained with plain SGD (the same learning rate for every batch size) by full
batch gradient descent, pure stochastic gradient descent (one example per
step) and mini-batches of 8, 32, 128 and 512, in the order of
``gradopt.data`` with a fresh shuffle every epoch. The training loss is
recorded after every epoch against the epoch and against the wall-clock time
(compilation excluded). A second experiment sorts the training set by class,
as data files often are, and compares mini-batches of 32 visited in that
sequential order with shuffled mini-batches.

Run: ``python -m experiments.batching [--quick] [--dataset mnist --data-dir PATH]``.
"""

from __future__ import annotations

import dataclasses
import time

import jax
import jax.numpy as jnp
import numpy as np

import gradopt
from experiments import common, datasets, models

NAME = "batching"
BATCH_SIZES = (None, 1, 8, 32, 128, 512)
LEARNING_RATE = {"softmax": 0.1, "mlp": 0.05}


def label(batch_size) -> str:
    return (
        "full batch" if batch_size is None else "SGD (1)" if batch_size == 1 else f"B={batch_size}"
    )


def loss_fn(params, x, y, mask):
    return models.cross_entropy(models.mlp_apply(params, x), y, mask)


def train(model, data, batch_size, order, epochs, seed):
    """Train one configuration; returns per-epoch training loss and wall-clock seconds."""
    x, y = jnp.asarray(data.x_train), jnp.asarray(data.y_train)
    sizes = (data.num_features, 10) if model == "softmax" else (data.num_features, 32, 10)
    params = models.init_mlp(jax.random.key(seed), sizes)
    tx = gradopt.sgd(LEARNING_RATE[model])
    state = tx.init(params)
    key = jax.random.key(seed + 1)
    n = len(data.x_train)
    fn = models.epoch_fn(loss_fn, tx, n, batch_size, order=order)
    fn = fn.lower(params, state, key, 0, x, y).compile()  # compile outside the timed loop
    full_loss = jax.jit(lambda p: loss_fn(p, x, y, None))
    losses, times, elapsed = [float(full_loss(params))], [0.0], 0.0
    for epoch in range(epochs):
        t0 = time.perf_counter()
        params, state, _ = fn(params, state, key, epoch, x, y)
        jax.block_until_ready(params)
        elapsed += time.perf_counter() - t0
        losses.append(float(full_loss(params)))
        times.append(elapsed)
    test_acc = models.accuracy(models.mlp_apply(params, jnp.asarray(data.x_test)), data.y_test)
    return np.asarray(losses), np.asarray(times), test_acc


def load_data(settings):
    data = datasets.load(
        settings.extra.get("dataset", "digits"), settings.extra.get("data_dir"), seed=settings.seed
    )
    return data.subset(settings.pick(None, None, 256), settings.pick(None, 2000, 100))


def train_all(data, model_names, batch_sizes, epochs, seed):
    """Every (model, batch size) on shuffled data, and B=32 in both orders on class-sorted data.

    Returns ``runs`` keyed by ``(model, batch_size, order, data)`` and the CSV rows.
    """
    runs, rows = {}, []
    order_by_class = np.argsort(data.y_train, kind="stable")
    sorted_data = dataclasses.replace(
        data, x_train=data.x_train[order_by_class], y_train=data.y_train[order_by_class]
    )
    jobs = [(m, b, "shuffle", "as loaded") for m in model_names for b in batch_sizes]
    jobs += [(m, 32, o, "sorted") for m in model_names for o in ("sequential", "shuffle")]
    for key in common.progress(jobs, desc="batching"):
        model, batch_size, order, which = key
        source = sorted_data if which == "sorted" else data
        losses, times, acc = train(model, source, batch_size, order, epochs, seed)
        runs[key] = (losses, times, acc)
        for epoch, (loss, t) in enumerate(zip(losses, times, strict=True)):
            rows.append(
                {
                    "model": model,
                    "batch_size": "full" if batch_size is None else batch_size,
                    "order": order,
                    "data": key[3],
                    "epoch": epoch,
                    "seconds": t,
                    "train_loss": loss,
                    "test_accuracy": acc if epoch == epochs else None,
                }
            )
    return runs, rows


def draw(settings, runs, model_names, batch_sizes, epochs) -> list[str]:
    """Loss against epochs and wall-clock per batch size; order on class-sorted data."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(
        len(model_names), 3, figsize=(15, 4.2 * len(model_names)), squeeze=False
    )
    for r, model in enumerate(model_names):
        for i, b in enumerate(batch_sizes):
            losses, times, _ = runs[(model, b, "shuffle", "as loaded")]
            axes[r, 0].semilogy(
                range(epochs + 1), losses, "o-", ms=3, color=f"C{i}", label=label(b)
            )
            axes[r, 1].semilogy(times[1:], losses[1:], "o-", ms=3, color=f"C{i}", label=label(b))
        axes[r, 0].set_xlabel("epoch")
        axes[r, 1].set_xlabel("wall-clock seconds (compilation excluded)")
        axes[r, 0].set_ylabel(f"{model}: training loss")
        axes[r, 0].legend(fontsize=7)
        axes[r, 0].set_title(f"{model}, SGD lr={LEARNING_RATE[model]}: loss vs epochs", fontsize=9)
        axes[r, 1].set_title(f"{model}: loss vs wall-clock", fontsize=9)
        for order, color in (("sequential", "C3"), ("shuffle", "C0")):
            losses, _, acc = runs[(model, 32, order, "sorted")]
            axes[r, 2].semilogy(
                losses, "o-", ms=3, color=color, label=f"{order} (test acc {acc:.2f})"
            )
        axes[r, 2].set_title(f"{model}, B=32 on class-sorted data: order", fontsize=9)
        axes[r, 2].set_xlabel("epoch")
        axes[r, 2].legend(fontsize=7)
    return [common.save_figure(fig, settings, "batching")]


def model_findings(runs, model, batch_sizes, epochs):
    """One model's findings, its table rows, and the batch size first to the target loss."""
    findings, table = [], []
    finals = {b: runs[(model, b, "shuffle", "as loaded")][0][-1] for b in batch_sizes}
    best_final = min(finals.values())
    start_loss = runs[(model, batch_sizes[0], "shuffle", "as loaded")][0][0]
    target = float(np.sqrt(start_loss * best_final))  # halfway on a log scale
    reach = {}
    for b in batch_sizes:
        losses, times, acc = runs[(model, b, "shuffle", "as loaded")]
        hit = np.nonzero(losses[1:] <= target)[0]
        reach[b] = times[1:][hit[0]] if hit.size else None
        table.append(
            [
                model,
                label(b),
                common.fmt(losses[-1]),
                f"{acc:.3f}",
                f"{times[-1]:.2f}",
                f"{reach[b]:.2f}" if reach[b] is not None else "—",
            ]
        )
    per_epoch = sorted(batch_sizes, key=lambda b: finals[b])
    findings.append(
        f"{model}: after {epochs} epochs, lowest training loss with {label(per_epoch[0])} "
        f"({common.fmt(finals[per_epoch[0]])}), highest with {label(per_epoch[-1])} "
        f"({common.fmt(finals[per_epoch[-1]])})."
    )
    reached = {b: t for b, t in reach.items() if t is not None}
    fastest = None
    if reached:
        fastest = min(reached, key=reached.get)
        findings.append(
            f"{model}: first to reach loss {common.fmt(target)} (halfway, on a log scale, "
            "from the start to the best final loss) in "
            f"wall-clock time: {label(fastest)} ({reached[fastest]:.2f} s); never reached by "
            + (", ".join(label(b) for b in batch_sizes if b not in reached) or "none")
            + "."
        )
    seq = runs[(model, 32, "sequential", "sorted")]
    shf = runs[(model, 32, "shuffle", "sorted")]
    findings.append(
        f"{model}, B=32 on class-sorted data: sequential order ends at training loss "
        f"{common.fmt(seq[0][-1])} (test accuracy {seq[2]:.3f}), shuffled at "
        f"{common.fmt(shf[0][-1])} ({shf[2]:.3f})."
    )
    return findings, table, (None if fastest is None else label(fastest))


def run(settings: common.Settings) -> common.Result:
    data = load_data(settings)
    epochs = settings.pick(30, 8, 2)
    batch_sizes = BATCH_SIZES if settings.mode != "smoke" else (None, 32)
    model_names = ("softmax", "mlp") if settings.mode != "smoke" else ("softmax",)
    batch_sizes = tuple(b for b in batch_sizes if b is None or b <= len(data.x_train))

    runs, rows = train_all(data, model_names, batch_sizes, epochs, settings.seed)
    data_files = [str(common.write_csv(settings.out / "batching.csv", rows))]
    figures = draw(settings, runs, model_names, batch_sizes, epochs)

    findings, table, fastest_by_model = [], [], {}
    for model in model_names:
        more, rows_of_model, fastest = model_findings(runs, model, batch_sizes, epochs)
        findings += more
        table += rows_of_model
        if fastest is not None:
            fastest_by_model[model] = fastest
    last = model_names[-1]
    seq, shf = runs[(last, 32, "sequential", "sorted")], runs[(last, 32, "shuffle", "sorted")]
    headline = (
        "fastest to the target loss in wall-clock: "
        + ", ".join(f"{m} {b}" for m, b in fastest_by_model.items())
        + f"; {last} on class-sorted data, B=32, test accuracy sequential {seq[2]:.2f} vs "
        f"shuffled {shf[2]:.2f}"
    )
    common.write_summary(
        settings,
        "Batch, stochastic and mini-batch gradient descent",
        intro=__doc__.split("Run:")[0],
        study_settings={
            "dataset": data.name,
            "training examples": len(data.x_train),
            "epochs": epochs,
            "learning rates": LEARNING_RATE,
        },
        findings=findings,
        tables=[
            (
                "Final numbers (shuffled order)",
                common.markdown_table(
                    ["model", "batch", "train loss", "test acc", "seconds", "s to target"], table
                ),
            )
        ],
        figures=figures,
        data=data_files,
    )
    return common.Result(
        NAME, "Batch vs stochastic vs mini-batch", findings, headline, figures, data_files
    )


def main(argv=None) -> common.Result:
    return common.main_for(NAME, __doc__, run, argv, add_arguments=datasets.add_dataset_arguments)


if __name__ == "__main__":
    main()
