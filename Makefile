# Two commands for a fresh machine (Python 3.11 and PyPI are all they need):
#   make run    install, then start the product on its embedded default
#   make test   install, then run the whole test suite
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test lint install

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

run: install
	$(BIN)/python -m starter run

test: install
	$(BIN)/python -m pytest -n 2

# Style, types and the architecture's import rules (pyproject.toml); CI runs it before the tests.
lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports
