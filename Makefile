# Quick start: `make demo` (main job) and `make test` (the test suite). Both set up .venv first.
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.ecg-edge-installed

.PHONY: setup demo test bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml .ci/constraints.txt .ci/setup.sh
	bash .ci/setup.sh $(VENV)
	touch $@

demo: $(STAMP)
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/ecg-host demo

test: $(STAMP)
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python -m pytest -n 2 -q

bench: $(STAMP)
	$(BIN)/python tests/bench/bench_prepare.py

clean:
	rm -rf runs .pytest_cache
