"""gradopt against optax and torch.optim: ``python -m experiments.benchmarks [--quick]``.

Writes ``experiments/results/benchmarks/benchmark{,-quick}.{json,md}`` (and the
digits loss curves of bfloat16 moments) with the machine, versions and the exact
command. torch is measured only where it is importable; it is not a
dependency of gradopt.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import time
from pathlib import Path

from experiments.benchmarks import cases, state_and_sweep
from experiments.benchmarks.timing import log, machine

OUT = Path(__file__).resolve().parents[1] / "results" / "benchmarks"
CASES = ("1", "2", "3", "4", "5", "6", "7")
OPTAX_5000_COMPILE = "quick mode: optax and plain gradopt take minutes to compile 5,000 leaves"


def add_ratios(rows):
    """ratio_vs_optax (and, for torch cases, ratio_vs_torch_fused) of every timed row."""
    base = {}
    for r in rows:
        if "median_ms" in r and r["impl"] in ("optax", "torch fused"):
            base[(r["case"], r["name"], r["metric"], r["impl"])] = r["median_ms"]
    for r in rows:
        if "median_ms" not in r:
            continue
        for ref, key in (("optax", "ratio_vs_optax"), ("torch fused", "ratio_vs_torch_fused")):
            b = base.get((r["case"], r["name"], r["metric"], ref))
            if b:
                r[key] = r["median_ms"] / b
        if r["metric"] == "sweep wall" and r["impl"] != "optax":
            b = [x["median_ms"] for x in rows if x["name"] == r["name"] and x["impl"] == "optax"]
            r["speedup_vs_optax"] = b[0] / r["median_ms"]


def _fmt(r):
    if "skipped" in r:
        head = f"| {r['case']} | {r['name']} | {r['metric']} | {r['impl']}"
        return f"{head} | skipped: {r['skipped']} | | |"
    if r["metric"] == "state bytes":
        value = f"{r['bytes'] / 2**20:.2f} MiB ({r['bytes_per_param']:.1f} B/param)"
        return f"| {r['case']} | {r['name']} | {r['metric']} | {r['impl']} | {value} | | |"
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
    if "fraction_of_copy" in r:
        ratio += f" {r['gb_per_s']:.0f} GB/s = {r['fraction_of_copy']:.0%} of copy"
    return (
        f"| {r['case']} | {r['name']} | {r['metric']} | {r['impl']} | {med} | {spread} | {ratio} |"
    )


def markdown(record) -> str:
    m = record["machine"]
    lines = [
        f"# gradopt benchmark ({record['mode']})",
        "",
        f"Command: `{record['command']}`  ",
        f"Started {record['started_utc']}, took {record['wall_s']:.0f} s.  ",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['device']}; 1-min load average at start "
        f"{m['load_average_1min_at_start']}.  ",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in m["versions"].items()) + ".",
        "",
        "Medians of interleaved repetitions (round-robin over implementations, after warm-up,",
        "`block_until_ready`); spread is the interquartile range. Compile time is one",
        "`lower` + `compile`. Ratio: this implementation / optax (lower is better).",
        "",
        "| case | what | metric | implementation | median | IQR | ratio vs optax |",
        "|---|---|---|---|---|---|---|",
    ]
    lines += [_fmt(r) for r in record["rows"]]
    if record.get("digits_bf16"):
        lines += ["", "Digits MLP, Adam(1e-2), full batch: loss at steps 0 / 25% / 50% / end", ""]
        for label, curve in record["digits_bf16"].items():
            k = len(curve)
            pts = " / ".join(f"{curve[i]:.4f}" for i in (0, k // 4, k // 2, k - 1))
            lines.append(f"- {label}: {pts}")
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m experiments.benchmarks", description=__doc__)
    parser.add_argument(
        "--quick", action="store_true", help="fewer repetitions; skips slow compiles"
    )
    parser.add_argument("--cases", default=",".join(CASES), help="comma-separated, e.g. 1,2,6")
    parser.add_argument(
        "--reps", type=int, default=None, help="timed repetitions per implementation"
    )
    args = parser.parse_args(argv)
    chosen = set(args.cases.split(","))
    reps = args.reps or (5 if args.quick else 21)
    started = time.time()
    record = {
        "mode": "quick" if args.quick else "full",
        "command": "python -m experiments.benchmarks "
        + " ".join(argv if argv is not None else sys.argv[1:]),
        "started_utc": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(),
        "rows": [],
    }
    log(f"machine: {record['machine']['cpu']}, {record['machine']['cores']} cores; reps={reps}")
    rows = record["rows"]
    if chosen & {"1", "4"}:
        rows += cases.case_update("1", 10, 2_000_000, reps=reps)
    if chosen & {"2", "4"}:
        rows += cases.case_update("2", 1_000, 1_000, reps=reps)
        skip = {"optax": OPTAX_5000_COMPILE, "gradopt": OPTAX_5000_COMPILE} if args.quick else {}
        rows += cases.case_update("2", 5_000, 200, reps=reps, skip=skip)
    if chosen & {"3", "4"}:
        rows += cases.case_train_mlp(reps=reps)
        if args.quick:
            log("case 3: quick mode: transformer with 4 blocks instead of 12 (compile time)")
        rows += cases.case_train_transformer(reps=reps, blocks=4 if args.quick else 12)
    if "5" in chosen:
        rows += state_and_sweep.case_state_bytes()
        record["digits_bf16"] = state_and_sweep.digits_bf16_curve(steps=200 if args.quick else 1000)
    if "6" in chosen:
        rows += state_and_sweep.case_sweep(num_rates=32, steps=50 if args.quick else 200)
    if "7" in chosen:
        rows += cases.case_gpu(reps=reps)
    add_ratios(rows)
    record["wall_s"] = time.time() - started
    OUT.mkdir(parents=True, exist_ok=True)
    stem = "benchmark-quick" if args.quick else "benchmark"
    (OUT / f"{stem}.json").write_text(json.dumps(record, indent=1))
    table = markdown(record)
    (OUT / f"{stem}.md").write_text(table)
    print(table, flush=True)
    log(f"wrote {OUT / stem}.json and .md")


if __name__ == "__main__":
    main()
