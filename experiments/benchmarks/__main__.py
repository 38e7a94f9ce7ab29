"""gradopt against optax and torch.optim: ``python -m experiments.benchmarks [--quick]``.

Writes ``experiments/results/benchmarks/benchmark{,-quick}.{json,md}`` (and the
digits loss curves of bfloat16 moments) with the machine, versions and the exact
command. torch is measured only where it is importable; it is not a
dependency of gradopt. The "default path" section compares plain
``gradopt.adam`` (no packing) with ``optax.adam`` and torch's fused Adam
against the issue's targets, with the machine's copy bandwidth measured in
the same round-robin and what XLA compiled (array passes per leaf).
"""

from __future__ import annotations

import datetime
import sys
import time

from experiments import common
from experiments.benchmarks import cases, impls, modern, preconditioners, state_and_sweep
from experiments.benchmarks.timing import log, machine

NAME = "benchmarks"
CASES = ("1", "2", "3", "4", "5", "6", "7", "8", "9")
OPTAX_5000_COMPILE = "quick mode: optax and plain gradopt take minutes to compile 5,000 leaves"
_COPIES = (impls.COPY_JAX, impls.COPY_TORCH)
_VERSIONS_SHOWN = ("python", "gradopt", "jax", "jaxlib", "optax", "numpy", "torch")


def add_ratios(rows):
    """ratio_vs_optax (and, for torch cases, ratio_vs_torch_fused) of every timed row."""
    base = {}
    for r in rows:
        if "median_ms" in r and r["impl"] in ("optax", "torch fused"):
            base[(r["case"], r["name"], r["metric"], r["impl"])] = r["median_ms"]
    for r in rows:
        if "median_ms" not in r or r["impl"] in _COPIES:
            continue
        for ref, key in (("optax", "ratio_vs_optax"), ("torch fused", "ratio_vs_torch_fused")):
            b = base.get((r["case"], r["name"], r["metric"], ref))
            if b:
                r[key] = r["median_ms"] / b
        if r["metric"] == "sweep wall" and r["impl"] != "optax":
            b = [x["median_ms"] for x in rows if x["name"] == r["name"] and x["impl"] == "optax"]
            r["speedup_vs_optax"] = b[0] / r["median_ms"]


def _find(rows, case, metric, impl, name_part=""):
    for r in rows:
        if (r["case"], r["metric"], r["impl"]) == (case, metric, impl) and name_part in r["name"]:
            return r
    return None


def _target(what, row, key, limit):
    value = None if row is None else row.get(key)
    met = None if value is None else value <= limit
    return {"target": what, "limit": limit, "measured": value, "met": met}


def default_path(rows) -> list[dict]:
    """The issue's targets for plain ``gradopt.adam``, measured from this run's rows."""
    big = _find(rows, "1", "step", "gradopt")
    many_compile = _find(rows, "2", "compile", "gradopt", "1,000 leaves")
    many_step = _find(rows, "2", "step", "gradopt", "1,000 leaves")
    targets = [
        _target("10 x 2M step / optax", big, "ratio_vs_optax", 0.9),
        _target("10 x 2M step / torch fused", big, "ratio_vs_torch_fused", 1.3),
        _target("1,000 x 1k compile / optax", many_compile, "ratio_vs_optax", 1.0),
        _target("1,000 x 1k step / optax", many_step, "ratio_vs_optax", 1.0),
    ]
    for optimizer in ("Lion", "AdEMAMix"):  # case 8: Adam's bar for the newer optimizers
        for tree in ("10 leaves", "1,000 leaves"):
            for metric in ("step", "compile"):
                row = _find(rows, "8", metric, "gradopt", f"{optimizer} update, {tree}")
                if row is not None:
                    label = f"{optimizer} {tree.split()[0]} leaves {metric} / optax"
                    targets.append(_target(label, row, "ratio_vs_optax", 1.0))
    return targets


def _default_path_lines(record) -> list[str]:
    rows, targets = record["rows"], record["default_path"]
    if not targets:
        return []
    lines = ["", "## Default path: plain `gradopt.adam` (no packing), donated step", ""]
    table = []
    for t in targets:
        verdict = {True: "met", False: "not met", None: "not measured"}[t["met"]]
        measured = "" if t["measured"] is None else f"{t['measured']:.2f}"
        table.append([t["target"], f"<= {t['limit']}", measured, verdict])
    lines.append(common.markdown_table(["target", "limit", "measured", "verdict"], table))
    facts = []
    for impl in ("gradopt", "optax", impls.ONE_EXPRESSION, "torch fused", *_COPIES):
        r = _find(rows, "1", "step", impl)
        if r is None or "median_ms" not in r:
            continue
        passes = r.get("array_passes_per_leaf")
        nbytes = r.get("hlo_bytes_per_param")
        facts.append(
            [
                impl,
                f"{r['median_ms']:.3g} ms",
                "" if passes is None else f"{passes:g}",
                "" if nbytes is None else f"{nbytes:.0f}",
                f"{r['gb_per_s']:.1f} GB/s ({r['fraction_of_copy']:.0%})"
                if "gb_per_s" in r
                else "",
            ]
        )
    if facts:
        lines += [
            "",
            "10 leaves x 2M float32: XLA's array passes per leaf (loops over arrays in the",
            "compiled step) and bytes per parameter (its cost analysis; it counts a dynamic",
            "slice as reading its whole operand, so packed rows elsewhere overstate) against",
            "the 28 bytes Adam must move; GB/s counts those 28 bytes (8 per entry for the",
            "copies), as a fraction of the faster copy.",
            "",
            common.markdown_table(
                ["implementation", "step", "array passes / leaf", "HLO bytes / param", "GB/s"],
                facts,
            ),
        ]
    return lines


def _fmt(r):
    if "skipped" in r:
        head = f"| {r['case']} | {r['name']} | {r['metric']} | {r['impl']}"
        return f"{head} | skipped: {r['skipped']} | | | |"
    if r["metric"] == "state bytes":
        value = f"{r['bytes'] / 2**20:.2f} MiB ({r['bytes_per_param']:.1f} B/param)"
        return f"| {r['case']} | {r['name']} | {r['metric']} | {r['impl']} | {value} | | | |"
    unit, scale = ("s", 1e-3) if r["metric"] in ("compile", "sweep wall") else ("ms", 1.0)
    med = f"{r['median_ms'] * scale:.3g} {unit}"
    spread = (
        f"{r['q1_ms'] * scale:.3g}-{r['q3_ms'] * scale:.3g}" if r.get("reps", 1) > 1 else "1 run"
    )
    ratio = f"{r['ratio_vs_optax']:.2f}" if "ratio_vs_optax" in r else ""
    if "ratio_vs_torch_fused" in r:
        ratio += f" (vs torch fused {r['ratio_vs_torch_fused']:.2f})"
    if "speedup_vs_optax" in r:
        ratio = f"{r['speedup_vs_optax']:.1f}x faster"
    notes = []
    if "array_passes_per_leaf" in r and r["metric"] == "compile":
        notes.append(f"{r['array_passes_per_leaf']:g} passes/leaf")
    if "hlo_bytes_per_param" in r and r["metric"] == "compile":
        notes.append(f"{r['hlo_bytes_per_param']:.0f} B/param")
    if "fraction_of_copy" in r:
        notes.append(f"{r['gb_per_s']:.1f} GB/s = {r['fraction_of_copy']:.0%} of copy")
    return (
        f"| {r['case']} | {r['name']} | {r['metric']} | {r['impl']} | {med} | {spread} | {ratio} "
        f"| {'; '.join(notes)} |"
    )


def markdown(record) -> str:
    m = record["machine"]
    shown = {k: m["versions"].get(k) for k in _VERSIONS_SHOWN}
    lines = [
        f"# gradopt benchmark ({record['mode']})",
        "",
        f"Command: `{record['command']}`  ",
        f"Started {record['started_utc']}, took {record['wall_s']:.0f} s.  ",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['device']}; 1-min load average at start "
        f"{m['load_average_1min_at_start']}.  ",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in shown.items()) + ".",
        "",
        "Medians of interleaved repetitions (round-robin over implementations, after warm-up,",
        "`block_until_ready`); spread is the interquartile range. Compile time is one",
        "`lower` + `compile`. Ratio: this implementation / optax (lower is better).",
        "",
        "| case | what | metric | implementation | median | IQR | ratio vs optax | notes |",
        "|---|---|---|---|---|---|---|---|",
    ]
    lines += [_fmt(r) for r in record["rows"]]
    lines += _default_path_lines(record)
    if record.get("digits_bf16"):
        lines += ["", "Digits MLP, Adam(1e-2), full batch: loss at steps 0 / 25% / 50% / end", ""]
        for label, curve in record["digits_bf16"].items():
            k = len(curve)
            pts = " / ".join(f"{curve[i]:.4f}" for i in (0, k // 4, k // 2, k - 1))
            lines.append(f"- {label}: {pts}")
    return "\n".join(lines) + "\n"


def _add_arguments(parser) -> None:
    parser.add_argument("--cases", default=",".join(CASES), help="comma-separated, e.g. 1,2,6")
    parser.add_argument(
        "--reps", type=int, default=None, help="timed repetitions per implementation"
    )


def run_cases(settings: common.Settings, chosen: set[str], reps: int) -> dict:
    """Every chosen case's rows (and the bfloat16 loss curves of case 5)."""
    quick, smoke, seed = settings.quick, settings.mode == "smoke", settings.seed
    out: dict = {"rows": []}
    rows = out["rows"]
    if chosen & {"1", "4"}:
        size = 20_000 if smoke else 2_000_000
        rows += cases.case_update("1", 10, size, reps=reps, seed=seed, reference=True)
    if chosen & {"2", "4"}:
        rows += cases.case_update("2", 100 if smoke else 1_000, 1_000, reps=reps, seed=seed)
        if not smoke:
            skip = {"optax": OPTAX_5000_COMPILE, "gradopt": OPTAX_5000_COMPILE} if quick else {}
            rows += cases.case_update("2", 5_000, 200, reps=reps, skip=skip, seed=seed)
    if chosen & {"3", "4"}:
        rows += cases.case_train_mlp(reps=reps)
        if quick:
            log("case 3: quick mode: transformer with 4 blocks instead of 12 (compile time)")
        rows += cases.case_train_transformer(reps=reps, blocks=4 if quick else 12)
    if "5" in chosen:
        rows += state_and_sweep.case_state_bytes()
        out["digits_bf16"] = state_and_sweep.digits_bf16_curve(steps=200 if quick else 1000)
    if "6" in chosen:
        rows += state_and_sweep.case_sweep(num_rates=32, steps=50 if quick else 200)
    if "7" in chosen:
        rows += cases.case_gpu(reps=reps)
    if "8" in chosen:
        rows += modern.case_modern(reps=reps, smoke=smoke, seed=seed)
    if "9" in chosen:
        depth, width = (2, 16) if smoke else (8, 64) if quick else (32, 128)
        # transformer: (blocks, d, vocab)
        transformer = None if smoke else (2, 64, 256) if quick else (4, 128, 512)
        rows += preconditioners.case_preconditioners(
            reps=reps, depth=depth, width=width, transformer=transformer
        )
    return out


def main(argv=None):
    parser = common.build_parser(NAME, __doc__)
    _add_arguments(parser)
    args = parser.parse_args(argv)
    settings = common.settings_from_args(NAME, args)
    smoke = settings.mode == "smoke"
    chosen = set(args.cases.split(","))
    if smoke and args.cases == ",".join(CASES):
        chosen = {"1", "2"}  # the harness end to end on small trees, for the test suite
    reps = args.reps or settings.pick(21, 5, 2)
    started = time.time()
    record = {
        "mode": settings.mode,
        "command": "python -m experiments.benchmarks "
        + " ".join(argv if argv is not None else sys.argv[1:]),
        "started_utc": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(),
    }
    log(f"machine: {record['machine']['cpu']}, {record['machine']['cores']} cores; reps={reps}")
    record.update(run_cases(settings, chosen, reps))
    add_ratios(record["rows"])
    record["default_path"] = default_path(record["rows"])
    record["wall_s"] = time.time() - started
    stem = {"full": "benchmark", "quick": "benchmark-quick", "smoke": "benchmark-smoke"}
    path = settings.out / stem[settings.mode]
    common.write_json(path.with_suffix(".json"), record)
    table = markdown(record)
    path.with_suffix(".md").write_text(table)
    print(table, flush=True)
    log(f"wrote {path}.json and .md")
    return record


if __name__ == "__main__":
    main()
