# `make demo` and `make test` set everything up on a fresh machine: a virtual environment
# in .venv with torch, then the package and its test tools.
#
# Which torch build: `pip install torch==2.13.0` takes whatever build the package index
# offers for this machine. On this project's CI machines the local pip configuration
# offers a CPU wheel; on a plain Linux machine PyPI offers a CUDA build (several GB). For
# the CPU build anywhere, point pip at PyTorch's CPU index:
#     make test TORCH_INDEX=https://download.pytorch.org/whl/cpu
# On a GPU machine, install your CUDA build of torch first, then `pip install -e .`.
PYTHON ?= python3
TORCH_INDEX ?=
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TORCH_OPTS := $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX),)

.PHONY: demo test quick lint format servers ui clean screenshots

$(STAMP): pyproject.toml constraints-cpu.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH_OPTS) -c constraints-cpu.txt torch==2.13.0
	$(BIN)/python -m pip install --quiet -c constraints-cpu.txt -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/qeuopt demo

# Servers the tests use (Debian's chromium for the rating page; PostgreSQL for many
# workers). Each script says why when it cannot install, and the tests that need it skip.
servers:
	-bash scripts/install-browser.sh
	-bash scripts/install-postgres.sh

lint: $(STAMP)
	$(BIN)/ruff check qeuopt tests benchmarks experiments
	$(BIN)/ruff format --check qeuopt tests benchmarks experiments

format: $(STAMP)
	$(BIN)/ruff check --fix qeuopt tests benchmarks experiments
	$(BIN)/ruff format qeuopt tests benchmarks experiments

test: $(STAMP) servers lint
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q

# The quick loop while working: everything but the long end-to-end tests.
quick: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q -m "not slow"

# The README's screenshots, taken by the tests that check what they show.
screenshots: $(STAMP)
	HF_HUB_OFFLINE=1 QEUOPT_SCREENSHOTS=docs $(BIN)/python -m pytest -q tests/test_newcomer.py
	HF_HUB_OFFLINE=1 QEUOPT_SCREENSHOT=docs/rate-page.png $(BIN)/python -m pytest -q tests/test_rate_page.py

ui: $(STAMP)
	$(BIN)/qeuopt ui

clean:
	rm -rf $(VENV) mlflow.db mlflow.db-journal mlflow.db.broken-* .mlflow.db.*.tmp optuna.db optuna.db-journal \
		ratings.db ratings.db-wal ratings.db-shm mlartifacts mlruns outputs demo .pytest_cache
	rm -f studies/*_confirm.toml studies/*_top*.toml
