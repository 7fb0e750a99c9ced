# The README's two commands: `make demo` runs the main job, `make test` runs lint and the tests.
# Both create (or reuse) the project's virtual environment in .venv and install what they need;
# the install is redone only when pyproject.toml changes.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip install --progress-bar off
# The binaries the tests of deploy/ops run (tests/deploy/ops): fetched once into the venv, and
# again only when the script that fetches them changes. `make demo` needs none of them.
TOOLS  := $(BIN)/promtool $(BIN)/kustomize

.PHONY: demo test lint clean

demo: $(VENV)/.installed
	$(BIN)/reidstream demo

test: $(VENV)/.installed-dev $(TOOLS)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(PIP) -e '.[demo]'
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(PIP) -e '.[dev,demo]'
	touch $@ $(VENV)/.installed

$(TOOLS): deploy/ops/tools/fetch-tool.sh | $(BIN)/python
	bash deploy/ops/tools/fetch-tool.sh $(@F) $@

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info
