# Two commands do everything on a fresh Debian machine with Python >= 3.10:
#   make demo   set up, then run actnet on the built-in synthetic data set
#   make test   set up, then run the test suite (what CI runs)
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: setup test test-fast demo lint bench bench-prepare bench-loader models-table results

setup:
	@VENV=$(VENV) bash tools/setup.sh

test: setup
	$(BIN)/python -m pytest -q

test-fast: setup
	$(BIN)/python -m pytest -q -m "not slow"

demo: setup
	$(BIN)/actnet demo

lint: setup
	$(BIN)/ruff check actnet tests tools
	$(BIN)/ruff format --check actnet tests tools

bench: setup
	$(BIN)/actnet benchmark all --results docs/benchmarks.md

bench-prepare: setup
	$(BIN)/actnet benchmark prepare --results docs/benchmarks.md

bench-loader: setup
	$(BIN)/actnet benchmark loader --results docs/benchmarks.md

models-table: setup
	$(BIN)/python tools/model_table.py --out docs/models.md

results: setup
	$(BIN)/python tools/results.py
