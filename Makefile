# Every target sets itself up on a fresh machine: a virtual environment in .venv with the package.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: setup quickstart test docs benchmark lint clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

setup: $(BIN)/python
	# torch 2.13.0 is a CPU wheel where available; otherwise whatever torch pip resolves.
	$(BIN)/python -m pip install -q "torch==2.13.0" || $(BIN)/python -m pip install -q torch
	$(BIN)/python -m pip install -q -e ".[test]"

quickstart: setup
	$(BIN)/groove-sc quickstart --out groove_quickstart

test: setup
	$(BIN)/python -m pytest -q -p no:cacheprovider tests src/groove_sc

docs: setup
	$(BIN)/python -m pip install -q -e ".[test,docs]"
	$(BIN)/python -m sphinx -W --keep-going -b html docs docs/_build/html

benchmark: setup
	$(BIN)/groove-sc benchmark --config benchmarks/configs/simulation_grid.yaml --out docs/benchmark/results.csv

lint: setup
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

clean:
	rm -rf $(VENV) docs/_build groove_quickstart
