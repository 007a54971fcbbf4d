# ginn-lab: two commands from a fresh clone -> `make reproduce` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
export DVC_NO_ANALYTICS := 1
export PIP_DISABLE_PIP_VERSION_CHECK := 1
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: install lint test test-slow test-all reproduce bench clean-outputs help mutation

help:
	@echo "make reproduce  - set up .venv if needed, then run the whole pipeline with dvc repro"
	@echo "make test       - set up .venv if needed, then ruff (lint + format check) and the default (fast) test suite"
	@echo "make test-slow  - the slow science checks (pytest -m slow)"
	@echo "make bench      - benchmarks -> benchmarks/RESULTS.md"
	@echo "make mutation   - mutmut over nets, engine_spec, statistics, fixed_point, theory.ginn, propagation, gauge_observables (<1 h on 2 cores)"
	@echo "make mutation-rest - mutmut over the other science modules (hours; scope and score: docs/mutation.md)"

# Set-up is skipped while pyproject.toml is unchanged. Where the machine offers a local CPU wheel
# of torch 2.13.0 it is installed first, so the resolver does not fetch a multi-GB CUDA build;
# elsewhere the resolver picks torch as usual (set PIP_INDEX_URL / PIP_EXTRA_INDEX_URL to choose).
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install -q --upgrade pip 2>/dev/null || true
	@$(BIN)/python -m pip install -q --no-deps --no-index "torch==2.13.0" 2>/dev/null \
		&& echo "torch: local CPU wheel 2.13.0" || echo "torch: resolved from the package index"
	$(BIN)/python -m pip install -q -e ".[dev]" 2>&1 | grep -v "is ignored: it is neither" || true
	@$(BIN)/python -c "import torch, mlflow, hydra, dvc; print('environment ok: torch', torch.__version__)"
	@touch $@

install: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# Two pytest-xdist workers (the 2 cores CI has), --dist worksteal: an idle worker takes queued tests from the
# other, so the long tests do not pile up at the end of one worker. The session smoke pipeline (tests/conftest.py)
# is built once, in the background by the controller, while the workers run the other tests.
# PYTEST_ARGS: more pytest options (.ci/run passes --durations=25).
PYTEST_WORKERS ?= 2
PYTEST_ARGS ?=
test: lint
	$(BIN)/python -m pytest -q -n $(PYTEST_WORKERS) --dist worksteal $(PYTEST_ARGS)

# The slow checks on the same two workers (several of them wait on subprocesses or are single-threaded).
test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow -n $(PYTEST_WORKERS) --dist worksteal $(PYTEST_ARGS)

test-all: $(STAMP)
	$(BIN)/python -m pytest -q -m "slow or not slow"

reproduce: $(STAMP)
	$(BIN)/dvc repro
	@$(BIN)/dvc status

bench: $(STAMP)
	$(BIN)/python benchmarks/run.py

clean-outputs:
	rm -rf outputs/runs outputs/multirun

# Mutation testing (docs/mutation.md): [tool.mutmut] in pyproject.toml sets the sources and the fast test
# selection. MUTANTS picks mutants by name pattern. `make mutation` (default MUTANTS) is the scope measured to
# finish in under an hour on 2 cores (~45 min from per-module measurements on a shared machine);
# `make mutation-rest` runs the other modules (MUTANTS_REST: several hours; one_loop and ensemble measured
# on samples only); `make mutation MUTANTS='pipeline.*'` runs everything. One thread per child: mutmut forks
# after torch is imported, and torch's thread pool deadlocks in forked children otherwise.
MUTANTS ?= pipeline.nets.* pipeline.dynamics.engine_spec.* pipeline.dynamics.statistics.* pipeline.theory.fixed_point.* pipeline.theory.ginn.* pipeline.theory.propagation.* pipeline.training.gauge_observables.*
MUTANTS_REST ?= pipeline.activations.* pipeline.theory.gauge.* pipeline.theory.mean_field.* pipeline.theory.predictions.* pipeline.theory.finite_width.* pipeline.theory.quadrature.* pipeline.theory.tables.* pipeline.theory.gaussian.* pipeline.theory.critical.* pipeline.theory.one_loop.* pipeline.dynamics.ensemble.*
.PHONY: mutation-rest
mutation: $(STAMP)
	OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 $(BIN)/mutmut run --max-children 2 $(foreach m,$(MUTANTS),"$(m)")
	@OMP_NUM_THREADS=1 $(BIN)/mutmut results | sed 's/.*: //' | sort | uniq -c

mutation-rest: $(STAMP)
	@$(MAKE) --no-print-directory mutation MUTANTS='$(MUTANTS_REST)'

# The real MLflow UI in a headless chromium (tests/ui): needs `pip install -e ".[ui]"` and the distribution's
# chromium (apt-get install chromium); skips with the reason where either is missing. GINN_UI_SCREENSHOTS=<dir>
# keeps the screenshots.
.PHONY: test-ui
test-ui: $(STAMP)
	$(BIN)/python -m pytest -q -m ui
