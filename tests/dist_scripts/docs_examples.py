"""Run ``python`` blocks of docs/distributed.md as written, in one namespace, in order.

Usage: docs_examples.py MARKER [MARKER ...]. A block is the fenced ``python``
code after ``<!-- test: MARKER -->``. Run with ``__name__ == "__main__"`` (the
Hogwild! example guards its spawned workers with it). Prints one RESULT line:
for each block, what it printed and its variables that are numbers, strings,
booleans or arrays of at most 64 entries (as lists).
"""

import contextlib
import io
import json
import re
import sys
from pathlib import Path

PAGE = Path(__file__).resolve().parents[2] / "docs" / "distributed.md"


def block(marker: str) -> str:
    text = PAGE.read_text()
    match = re.search(rf"<!-- test: {re.escape(marker)} -->\s*```python\n(.*?)```", text, re.DOTALL)
    if match is None:
        raise SystemExit(f"no ```python block after <!-- test: {marker} --> in {PAGE}")
    return match.group(1)


def simple(namespace: dict) -> dict:
    import numpy as np

    out = {}
    for name, value in namespace.items():
        if name.startswith("_"):
            continue
        if isinstance(value, (bool, int, float, str)):
            out[name] = value
        elif hasattr(value, "shape") and hasattr(value, "dtype"):
            try:
                array = np.asarray(value)
            except Exception:  # noqa: BLE001, S112 - not fetchable (another process's shards)
                continue
            if array.size <= 64 and array.dtype.kind in "biuf":
                out[name] = array.tolist()
    return out


def main(markers):
    namespace: dict = {"__name__": "__main__"}
    report = {}
    for marker in markers:
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            exec(compile(block(marker), f"distributed.md[{marker}]", "exec"), namespace)  # noqa: S102
        report[marker] = {"stdout": printed.getvalue(), "vars": simple(namespace)}
    print("RESULT " + json.dumps(report))


if __name__ == "__main__":
    main(sys.argv[1:])
