"""Every example of docs/distributed.md runs as written, on 8 simulated devices.

The blocks are marked ``<!-- test: NAME -->``. The synchronous ones run in one
process with 8 host devices (tests/dist_scripts/docs_examples.py, in page
order, blocking on each step as the page says); ``train.py`` runs under the
launcher as 2 processes of 4 devices with no ``--timeout``; the asynchronous
ones run in one process, in page order (they continue each other), Ray and
the Hogwild! processes included.
"""

import ast
import re
import tempfile
from pathlib import Path

import numpy as np
import pytest

from tests.dist_helpers import ROOT, launcher_results, run_launcher, run_script

PAGE = ROOT / "docs" / "distributed.md"
SYNCHRONOUS = ["init-sharding", "data-parallel", "zero-1", "easgd", "diloco"]
ASYNCHRONOUS = ["async-simulator", "delay-tolerant", "async-ray", "hogwild"]
LAUNCHED = ["launcher-train"]


def test_every_python_block_is_marked_and_run():
    text = PAGE.read_text()
    blocks = len(re.findall(r"^```python$", text, re.MULTILINE))
    markers = re.findall(r"<!-- test: ([\w-]+) -->\s*```python\n", text)
    assert len(markers) == blocks, "a ```python block of distributed.md has no test marker"
    assert sorted(markers) == sorted(SYNCHRONOUS + ASYNCHRONOUS + LAUNCHED)


@pytest.fixture(scope="module")
def synchronous():
    return run_script("docs_examples", *SYNCHRONOUS, n_devices=8, timeout=300)


def test_init_keeps_the_sharding(synchronous):
    assert synchronous["init-sharding"]["stdout"] == "2 {P('data', None)}\n"


def test_data_parallel_trains(synchronous):
    out = synchronous["data-parallel"]
    assert out["stdout"].startswith("loss ") and out["vars"]["value"] < 0.2


def test_zero_1_holds_an_eighth_and_its_ten_updates_are_adams_bitwise(synchronous):
    plain, split = map(int, synchronous["zero-1"]["stdout"].split()[:2])
    assert split <= plain / 8 + 64, (plain, split)
    assert synchronous["zero-1"]["vars"]["same"] is True


def test_easgd_and_eamsgd_centers_move(synchronous):
    lines = synchronous["easgd"]["stdout"].splitlines()
    assert len(lines) == 2
    for line in lines:
        center = np.array(line.strip("[]").split(), float)
        assert center.shape == (4,) and np.all(np.isfinite(center)) and np.any(center != 0)


def test_diloco_finds_the_least_squares_weights(synchronous):
    theta = np.array(synchronous["diloco"]["stdout"].strip().strip("[]").split(), float)
    np.testing.assert_allclose(theta, [1.0, -2.0, 0.5, 3.0], atol=0.05)


def _block(marker):
    text = PAGE.read_text()
    return re.search(rf"<!-- test: {marker} -->\s*```python\n(.*?)```", text, re.DOTALL).group(1)


def test_launcher_example_runs_as_two_processes_of_four_devices():
    code = _block("launcher-train")
    ast.parse(code)
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "train.py"
        script.write_text(code)
        proc = run_launcher(
            str(script.with_suffix("")),
            processes=2,
            devices=4,
            timeout=150,
            launcher_timeout=False,
        )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    lines = [line for line in proc.stdout.splitlines() if re.match(r"\[process \d\] \d \[", line)]
    assert sorted(line[len("[process 0] ") :].split(" ", 1)[0] for line in lines) == ["0", "1"]
    weights = {line.split(" ", 3)[3] for line in lines}
    assert len(weights) == 1, lines  # both processes hold the same replicated parameters
    assert launcher_results(proc.stdout) == {}


def test_asynchronous_examples_run_in_page_order():
    result = run_script("docs_examples", *ASYNCHRONOUS, n_devices=8, timeout=300)
    first = result["async-simulator"]["stdout"].splitlines()
    assert first[0].startswith("[50, 50, 50, 50] {0: ")
    order, rows = (ast.literal_eval(part + "]") for part in first[1][:-1].split("] ", 1))
    assert len(order) == 8 and set(order) <= {0, 1, 2, 3} and len(rows) == 4
    assert result["delay-tolerant"]["stdout"].strip().endswith("50: 150}")
    assert float(result["async-ray"]["stdout"]) >= 0
    sparsity, throughput = result["hogwild"]["stdout"].splitlines()
    assert "Omega" in sparsity
    rate, objective, serial, compile_seconds = map(float, throughput.split())
    assert rate > 0 and compile_seconds >= 0 and abs(objective - serial) <= 0.05 * serial
