# The two commands the README promises: `make serve` and `make test`. Both set up .venv themselves.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: serve test lint venv parity-isa

$(BIN)/poolserve: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -U pip
	$(BIN)/pip install -q -e '.[export,load,extract,ray,client,dev]'
	touch $@

venv: $(BIN)/poolserve

serve: venv
	$(BIN)/poolserve serve

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: lint
	$(BIN)/pytest

# The parity tests (PyTorch vs onnxruntime) again with oneDNN capped at SSE4.1: a committed parity figure
# is one CPU's measurement, and this catches a test that compares it too tightly on a host whose every
# run has the same CPU. SSE4.1, not AVX2: on AVX2 hosts that cap changes nothing (bench/results/parity_isa.md).
parity-isa: venv
	ONEDNN_MAX_CPU_ISA=SSE41 $(BIN)/pytest tests/export -m parity -q
