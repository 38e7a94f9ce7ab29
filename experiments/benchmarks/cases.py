"""Cases 1-4 and 7: optimizer update and whole training step, step and compile time."""

from __future__ import annotations

import jax
import jax.numpy as jnp

import gradopt
from experiments.benchmarks import impls, models
from experiments.benchmarks.timing import (
    Stepper,
    array_passes,
    bytes_accessed,
    compile_seconds,
    interleaved,
    log,
    summary,
)


def _row(case, name, metric, impl, stats, **more):
    return {"case": case, "name": name, "metric": metric, "impl": impl, **stats, **more}


def _packed_params_runner(case, name, packed_step, params, batch_of, max_leaf_size=None):
    """Compile the ``gradopt.pack_params`` path; its row and its runner."""
    impl = impls.PACKED_PARAMS
    kwargs = {} if max_leaf_size is None else {"max_leaf_size": max_leaf_size}
    flat, unpack = gradopt.pack_params(params, **kwargs)
    tx = impls.packed_params_tx()
    state = tx.init(flat)
    log(f"case {case} {name}: compiling {impl}")
    seconds, compiled = compile_seconds(
        packed_step(tx), (flat, unpack), batch_of(unpack), state, donate_argnums=(0, 2)
    )
    log(f"case {case} {name}: {impl} compiled in {seconds:.2f} s")
    runner = Stepper(compiled, (flat, unpack), batch_of(unpack), state)
    return _row(case, name, "compile", impl, summary([seconds])), runner


def _compiled_facts(compiled, num_leaves: int, num_params: int) -> dict:
    """What XLA made of a step: array passes per leaf and bytes moved per parameter."""
    facts = {"array_passes_per_leaf": array_passes(compiled) / num_leaves}
    nbytes = bytes_accessed(compiled)
    if nbytes is not None:
        facts["hlo_bytes_per_param"] = nbytes / num_params
    return facts


def _time_jax(
    case,
    name,
    step_of,
    params,
    batch,
    *,
    reps,
    skip=(),
    torch_shapes=None,
    packed_step=None,
    extra_impls=None,
    extra_runners=None,
):
    """Compile (lower + compile) and time each JAX implementation (and torch), interleaved.

    ``packed_step(tx)``, when given, is the step of the ``gradopt.pack_params``
    path; its batch is ``batch`` (a training batch) or, for an update alone,
    the gradients packed like the parameters. ``extra_impls`` adds JAX
    implementations (name -> (tx, apply)); ``extra_runners`` adds runners timed
    in the same round-robin (the copy bandwidth).
    """
    rows, runners, facts = [], {}, {}
    num_leaves = len(jax.tree.leaves(params))
    num_params = sum(p.size for p in jax.tree.leaves(params))
    for impl, (tx, apply) in {**impls.jax_impls(), **(extra_impls or {})}.items():
        if impl in skip:
            log(f"case {case} {name}: skipping {impl} ({skip[impl]})")
            rows.append(_row(case, name, "compile", impl, {}, skipped=skip[impl]))
            continue
        log(f"case {case} {name}: compiling {impl}")
        state = tx.init(params)
        own = jax.tree.map(jnp.copy, params)
        seconds, compiled = compile_seconds(
            step_of(tx, apply), own, batch, state, donate_argnums=(0, 2)
        )
        if torch_shapes is not None:  # an update alone: the passes are the optimizer's
            facts[impl] = _compiled_facts(compiled, num_leaves, num_params)
        log(f"case {case} {name}: {impl} compiled in {seconds:.2f} s, {facts.get(impl, '')}")
        rows.append(_row(case, name, "compile", impl, summary([seconds]), **facts.get(impl, {})))
        runners[impl] = Stepper(compiled, own, batch, state)
    if packed_step is not None:
        update_only = torch_shapes is not None
        batch_of = (lambda u: u.pack(batch)) if update_only else (lambda u: batch)
        row, runners[impls.PACKED_PARAMS] = _packed_params_runner(
            case, name, packed_step, params, batch_of
        )
        rows.append(row)
    if torch_shapes is not None and impls.torch_available():
        runners.update(impls.torch_runners(torch_shapes))
    runners.update(extra_runners or {})
    log(f"case {case} {name}: timing {', '.join(runners)} ({reps} interleaved reps)")
    for impl, stats in interleaved(runners, reps=reps).items():
        rows.append(_row(case, name, "step", impl, stats, **facts.get(impl, {})))
    return rows


def add_bandwidth(rows, num_params: int) -> None:
    """GB/s of every step row of a case with copy rows, and its fraction of the best copy.

    Adam rows count the 28 bytes per parameter it must move at least; copy
    rows count 8 bytes per entry (read and write).
    """
    copies = [r for r in rows if r["impl"] in (impls.COPY_JAX, impls.COPY_TORCH)]
    if not copies:
        return
    for r in rows:
        if r["metric"] != "step" or "median_ms" not in r:
            continue
        per = impls.COPY_BYTES_PER_ENTRY if r in copies else impls.ADAM_BYTES_PER_PARAM
        r["gb_per_s"] = per * num_params / (r["median_ms"] * 1e-3) / 1e9
    best_copy = max(r["gb_per_s"] for r in copies)
    for r in rows:
        if "gb_per_s" in r:
            r["fraction_of_copy"] = r["gb_per_s"] / best_copy


def case_update(case, num_leaves, leaf_size, *, reps, skip=(), seed=0, reference=False):
    """Cases 1 and 2: one Adam update applied to a tree of equal vectors.

    With ``reference=True`` (case 1) the hand-written one-expression Adam and
    the machine's copy bandwidth (an in-place add over as many entries) are
    timed in the same round-robin.
    """
    name = f"Adam update, {num_leaves:,} leaves x {leaf_size:,}"
    params, grads = models.flat_tree(num_leaves, leaf_size, seed=seed)
    shapes = [(leaf_size,)] * num_leaves
    extra_impls, extra_runners = {}, {}
    if reference:
        extra_impls = {impls.ONE_EXPRESSION: (impls.one_expression_adam(), gradopt.apply_updates)}
        extra_runners = impls.copy_runners(num_leaves * leaf_size)
    rows = _time_jax(
        case,
        name,
        impls.update_step,
        params,
        grads,
        reps=reps,
        skip=skip,
        torch_shapes=shapes,
        packed_step=impls.packed_params_update_step,
        extra_impls=extra_impls,
        extra_runners=extra_runners,
    )
    add_bandwidth(rows, num_leaves * leaf_size)
    return rows


def case_train_mlp(*, reps, depth=300):
    params, data, loss = models.mlp(depth=depth)
    name = f"training step, MLP {depth} layers x 64 ({2 * depth} leaves)"
    return _time_jax(
        "3",
        name,
        lambda tx, ap: impls.train_step(tx, ap, loss),
        params,
        data,
        reps=reps,
        packed_step=lambda tx: impls.packed_params_train_step(tx, loss),
    )


def case_train_transformer(*, reps, blocks=12):
    params, tokens, loss = models.transformer(blocks=blocks)
    leaves = len(jax.tree.leaves(params))
    name = f"training step, transformer {blocks} blocks d=128 ({leaves} leaves)"
    return _time_jax(
        "3",
        name,
        lambda tx, ap: impls.train_step(tx, ap, loss),
        params,
        tokens,
        reps=reps,
        packed_step=lambda tx: impls.packed_params_train_step(tx, loss),
    )


def case_gpu(*, reps):
    """Case 7: a 1B-parameter tree on a GPU, with the device's copy bandwidth measured alongside."""
    device = jax.devices()[0]
    if device.platform != "gpu":
        reason = f"no GPU: jax.devices()[0] is {device.platform}"
        log(f"case 7: skipped ({reason})")
        return [_row("7", "GPU, 1B parameters", "step", "all", {}, skipped=reason)]
    rows = []
    params, grads = models.flat_tree(16, 1 << 26)  # 16 x 64M = 1.07B parameters
    n = sum(p.size for p in jax.tree.leaves(params))
    copy = jax.jit(lambda t: jax.tree.map(lambda x: x * 1.0, t))
    copy_runner = lambda: jax.block_until_ready(copy(params))  # noqa: E731
    runners = {"copy": copy_runner}
    for impl, (tx, apply) in impls.jax_impls().items():
        state = tx.init(params)
        own = jax.tree.map(jnp.copy, params)
        _, compiled = compile_seconds(
            impls.update_step(tx, apply), own, grads, state, donate_argnums=(0, 2)
        )
        runners[impl] = Stepper(compiled, own, grads, state)
    results = interleaved(runners, reps=reps)
    copy_gbs = 8 * n / (results["copy"]["median_ms"] * 1e-3) / 1e9
    for impl, stats in results.items():
        moved = 8 * n if impl == "copy" else 28 * n  # Adam: read p, g, m, v; write p, m, v
        gbs = moved / (stats["median_ms"] * 1e-3) / 1e9
        rows.append(
            _row(
                "7",
                "GPU Adam update, 16 leaves x 64M",
                "step",
                impl,
                stats,
                gb_per_s=gbs,
                fraction_of_copy=gbs / copy_gbs,
            )
        )
    return rows
