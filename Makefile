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

.PHONY: install demo test lint chromium
install: $(STAMP)

# Options after ARGS, e.g. make demo ARGS="--sandbox-port 18765 --webhook-port 18766 --ui-port 13000"
demo: $(STAMP)
	$(BIN)/alumni demo $(ARGS)

test: $(STAMP) chromium
	$(BIN)/ruff check alumni_orchestration tests
	$(BIN)/lint-imports
	$(BIN)/pytest

# The browser test drives Debian's headless Chromium through its chromedriver.
chromium:
	command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
		(apt-get update -qq && apt-get install -y -qq chromium chromium-driver)

lint: $(STAMP)
	$(BIN)/ruff check alumni_orchestration tests
