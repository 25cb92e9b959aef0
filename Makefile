# Two commands set up a fresh machine (Python 3.11+ and Node 20+):
#   make demo   install, then run the shop example end to end on embedded defaults
#   make test   install, then lint, type-check and run the whole test suite (starts Azurite)
# `make wheels` builds devslice's two wheels into dist/: devslice (the command) and
# devslice-sdk (what a service imports); see pyproject.toml.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin

.PHONY: setup demo test lint bench docs wheels clean

# Both distributions editable, in one pip call: the local devslice-sdk meets devslice's pin.
$(BIN)/devslice: pyproject.toml sdk/pyproject.toml hatch_build.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ./sdk -e '.[test]'
	touch $@

node_modules/.bin/azurite: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

setup: $(BIN)/devslice node_modules/.bin/azurite

demo: setup
	cd examples/shop && ../../$(BIN)/python demo.py

lint: setup
	$(BIN)/ruff check src tests benchmarks examples hatch_build.py
	$(BIN)/mypy

test: lint
	DEVSLICE_REQUIRE_AZURITE=1 $(BIN)/python -m pytest -n 2 -q

docs: setup   # regenerate docs/config.md's key reference from the schema
	$(BIN)/python -m devslice.config.explain --write docs/config.md

wheels:   # dist/devslice-VERSION-*.whl and dist/devslice_sdk-VERSION-*.whl
	$(PYTHON) -m pip wheel --no-deps --wheel-dir dist . ./sdk

bench: setup
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) node_modules dist examples/shop/.devslice
