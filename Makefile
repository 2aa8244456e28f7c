# lanepaint developer entry points. `make demo` and `make test` work on a fresh clone.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.lanepaint-setup
EXTRAS := segmentation,generation,vla,orchestrator,dev
PIP := $(BIN)/python -m pip --disable-pip-version-check -q

.PHONY: setup demo test lint clean help

help:
	@echo "make demo   set up .venv and run the tiny end-to-end demo on a synthetic clip (CPU)"
	@echo "make test   set up .venv and run the test suite"
	@echo "make setup  create or refresh .venv (idempotent; seconds when nothing changed)"
	@echo "make lint   ruff over the project"

setup: $(STAMP)

# Rebuilt only when the dependency declarations change.
$(STAMP): pyproject.toml constraints.txt requirements/segmentation-nodeps.txt
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(PIP) install -c constraints.txt "torch==2.13.0"
	$(PIP) install -c constraints.txt -e ".[$(EXTRAS)]"
	$(PIP) install --no-deps -c constraints.txt -r requirements/segmentation-nodeps.txt
	$(BIN)/python scripts/check_env.py
	@touch $(STAMP)

demo: setup
	$(BIN)/lanepaint demo

test: setup
	$(BIN)/python -m pytest

lint: setup
	$(BIN)/python -m ruff check .

clean:
	rm -rf $(VENV) outputs .pytest_cache
