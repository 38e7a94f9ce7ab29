# One Makefile for the README, CI and developers. Every target sets up .venv
# from pyproject.toml (pinned by constraints.txt) on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
PYTEST_FLAGS ?=
JOBS ?= 2

.PHONY: install test test-all fuzz demo figures bench bench-quick docs lint typecheck record clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e ".[test,experiments,docs,dev,distributed]"
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q -n $(JOBS) $(PYTEST_FLAGS)

test-all: $(STAMP)
	GRADOPT_TEST_ALL=1 GRADOPT_TEST_XLA_DEFAULTS=1 $(PY) -m pytest -q -n $(JOBS) --runslow $(PYTEST_FLAGS)

# Hypothesis over every registry entry with the `fuzz` profile (tests/conftest.py);
# prints the number of examples run. `make test` runs the small derandomized profile.
fuzz: $(STAMP)
	GRADOPT_TEST_ALL=1 $(PY) -m pytest -q tests/test_fuzz.py --hypothesis-profile=fuzz -p no:xdist $(PYTEST_FLAGS)

# The main job: the quick version of every study; results under experiments/results/.
demo: $(STAMP)
	$(PY) -m experiments.demo

# Refresh the small figures that the README and the docs show (tracked in docs/figures/).
figures: $(STAMP)
	$(PY) -m experiments.demo --figures-to docs/figures

# Reference trajectories from torch.optim and Keras 3 (run by hand; see tests/fixtures/README.md).
RECORD_VENV := .venv-record
record:
	$(PYTHON) -m venv $(RECORD_VENV)
	$(RECORD_VENV)/bin/pip install --quiet torch==2.13.0 keras==3.15.1 numpy jax==0.10.2 jaxlib==0.10.2
	@for script in tests/fixtures/record_*.py; do echo "== $$script"; KERAS_BACKEND=torch $(RECORD_VENV)/bin/python $$script || exit 1; done

# torch.optim is timed only if importable (not a dependency): .venv/bin/pip install torch==2.13.0
bench: $(STAMP)
	$(PY) -m experiments.benchmarks

bench-quick: $(STAMP)
	$(PY) -m experiments.benchmarks --quick

docs: $(STAMP)
	$(PY) -m mkdocs build --strict

lint: $(STAMP)
	$(PY) -m ruff check gradopt tests experiments
	$(PY) -m ruff format --check gradopt tests experiments

typecheck: $(STAMP)
	$(PY) -m mypy

clean:
	rm -rf $(VENV) experiments/results site
