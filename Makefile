# The two commands the README documents: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

.PHONY: install demo test lint
install: $(STAMP)

demo: $(STAMP)
	$(BIN)/alumni demo

test: $(STAMP)
	$(BIN)/ruff check alumni_orchestration tests
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check alumni_orchestration tests
