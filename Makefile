# `make demo` and `make test` set everything up on a fresh machine: a virtual
# environment in .venv with the CPU build of torch (constraints-cpu.txt), then the
# package and its test tools. On a GPU machine, install with plain `pip install -e .`
# to get your CUDA build of torch instead.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test ui clean

$(STAMP): pyproject.toml constraints-cpu.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints-cpu.txt torch==2.13.0
	$(BIN)/python -m pip install --quiet -c constraints-cpu.txt -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/qeuopt demo

test: $(STAMP)
	bash scripts/install-browser.sh  # Debian's chromium for the rating page's browser test
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q

ui: $(STAMP)
	$(BIN)/qeuopt ui

clean:
	rm -rf $(VENV) mlflow.db optuna.db mlartifacts outputs .pytest_cache
