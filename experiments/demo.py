"""The main job: the quick version of every study, then a summary table.

``make demo`` runs ``python -m experiments.demo``. Each study writes its
figures, raw numbers and ``summary.md`` under ``experiments/results/<name>/``;
this job then prints, per study, the headline findings measured in the run and
where the files are, and writes the same table to
``experiments/results/summary.md``.

Options: ``--only valley,gallery`` runs a subset; ``--full`` runs the full
versions instead of the quick ones; ``--figures-to docs/figures`` also copies
the figures the README and the documentation show, downscaled to a small PNG.
"""

from __future__ import annotations

import argparse
import importlib
import shutil
import sys
import time
import traceback
from pathlib import Path

from experiments import common

STUDIES = (
    "valley",
    "gallery",
    "batching",
    "challenge",
    "strategies",
    "sweep",
    "zoo",
    "schedules",
    "parallel",
    "async_sgd",  # needs the gradopt[distributed] extra (Ray)
    "hogwild",  # needs the gradopt[distributed] extra (Numba)
    "second_order",
)
# Figures shown by the README and the documentation: (study, file) -> name under --figures-to.
SHOWN = {
    ("valley", "valley_gd.png"): "valley_gd.png",
    ("valley", "valley_momentum_adam.png"): "valley_momentum_adam.png",
    ("gallery", "gallery.png"): "gallery.png",
    ("gallery", "saddle.gif"): "saddle.gif",
    ("batching", "batching.png"): "batching.png",
    ("challenge", "challenge.png"): "challenge.png",
    ("strategies", "strategies.png"): "strategies.png",
    ("sweep", "sweep.png"): "sweep.png",
    ("zoo", "zoo.png"): "zoo.png",
    ("zoo", "zoo_curves.png"): "zoo_curves.png",
    ("schedules", "schedules.png"): "schedules.png",
    ("parallel", "parallel.png"): "parallel.png",
    ("async_sgd", "async_sgd.png"): "async_sgd.png",
    ("hogwild", "hogwild.png"): "hogwild.png",
    ("second_order", "second_order.png"): "second_order.png",
    ("second_order", "second_order_valley.png"): "second_order_valley.png",
}


def parse(argv):
    parser = argparse.ArgumentParser(
        prog="python -m experiments.demo",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    speed = parser.add_mutually_exclusive_group()
    speed.add_argument("--full", action="store_true", help="run the full studies (slow)")
    speed.add_argument("--smoke", action="store_true", help="tiny runs, for the test suite")
    parser.add_argument("--only", default=None, help=f"comma-separated subset of {STUDIES}")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--out", type=Path, default=None, help="results root (default experiments/results/)"
    )
    parser.add_argument(
        "--figures-to",
        type=Path,
        default=None,
        help="also copy the figures shown in the README/docs here, downscaled",
    )
    return parser.parse_args(argv)


def shrink_png(src: Path, dst: Path, max_width: int = 1000) -> None:
    """Copy a PNG downscaled to ``max_width`` and palette-quantised (line plots stay sharp)."""
    from PIL import Image

    with Image.open(src) as image:
        image = image.convert("RGB")
        if image.width > max_width:
            height = round(image.height * max_width / image.width)
            image = image.resize((max_width, height), Image.LANCZOS)
        image.quantize(colors=192, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(
            dst, optimize=True
        )


def _shown_path(path: Path) -> str:
    """``path`` relative to the working directory when it is inside it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def main(argv=None) -> int:
    args = parse(argv)
    root = args.out if args.out is not None else common.RESULTS_ROOT
    names = STUDIES if args.only is None else tuple(s.strip() for s in args.only.split(","))
    unknown = [n for n in names if n not in STUDIES]
    if unknown:
        print(f"Unknown studies {unknown}; choose from {list(STUDIES)}.", file=sys.stderr)
        return 2
    mode = [] if args.full else ["--smoke"] if args.smoke else ["--quick"]
    results, failed = [], []
    start = time.perf_counter()
    for i, name in enumerate(names):
        print(f"\n=== [{i + 1}/{len(names)}] {name} ===", flush=True)
        module = importlib.import_module(f"experiments.{name}")
        argv_study = [*mode, "--seed", str(args.seed), "--out", str(root / name)]
        try:
            results.append(module.main(argv_study))
        except Exception:  # noqa: BLE001 - report every study, then fail at the end
            traceback.print_exc()
            failed.append(name)
    total = time.perf_counter() - start

    rows = [
        [r.name, f"{r.seconds:.0f} s", r.headline, f"{_shown_path(root / r.name)}/"]
        for r in results
    ]
    rows += [[n, "—", "FAILED (see the traceback above)", ""] for n in failed]
    table = common.markdown_table(["study", "time", "headline (measured)", "files"], rows)
    findings = "\n\n".join(
        f"### {r.title}\n\n" + "\n".join(f"- {f}" for f in r.findings) for r in results
    )
    summary = (
        f"# gradopt studies ({'full' if args.full else 'smoke' if args.smoke else 'quick'})\n\n"
        f"{table}\n\nTotal time {total:.0f} s on {common.versions()['cpu count']} CPU core(s).\n\n"
        f"{findings}\n"
    )
    root.mkdir(parents=True, exist_ok=True)
    (root / "summary.md").write_text(summary)

    print("\n" + "=" * 80)
    print(table)
    print(f"\nTotal {total:.0f} s. Per-study summaries and figures:")
    for r in results:
        for figure in r.figures:
            print(f"  {figure}")
    print(f"Summary table: {root / 'summary.md'}")

    if args.figures_to is not None:
        args.figures_to.mkdir(parents=True, exist_ok=True)
        for (study, file), target in SHOWN.items():
            src = root / study / file
            if not src.exists():
                continue
            dst = args.figures_to / target
            if src.suffix == ".png":
                shrink_png(src, dst)
            else:
                shutil.copyfile(src, dst)
            print(f"  copied {dst} ({dst.stat().st_size // 1024} KB)")
    if failed:
        print(f"FAILED: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
