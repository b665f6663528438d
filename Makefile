# The commands the README documents: `make demo`, `make test` and, for a developer's loop, `make test-fast`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

.PHONY: install demo test test-fast lint chromium
install: $(STAMP)

# Options after ARGS, e.g. make demo ARGS="--sandbox-port 18765 --webhook-port 18766 --ui-port 13000"
demo: $(STAMP)
	$(BIN)/alumni demo $(ARGS)

# Two pytest-xdist workers (the machine's two cores), each module on one worker (its module fixtures are built
# once), in tests/conftest.py's order: the longest first. (--dist loadgroup does not group under pytest 9.)
# `make test` prints the 30 slowest tests, so that the suite's cost stays in sight.
XDIST := -n 2 --dist loadfile --no-loadscope-reorder

test: $(STAMP) chromium
	$(BIN)/ruff check alumni_orchestration tests
	$(BIN)/lint-imports
	$(BIN)/pytest $(XDIST) --durations=30

# The fast tier: every test not marked slow (no generated association, no dbt, no Dagster or server
# subprocess); tests/tiers.py says what makes a test slow. CI runs `make test`, which runs everything.
test-fast: $(STAMP)
	$(BIN)/ruff check alumni_orchestration tests
	$(BIN)/lint-imports
	$(BIN)/pytest $(XDIST) -m "not slow"

# The browser test drives Debian's headless Chromium through its chromedriver.
chromium:
	command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
		(apt-get update -qq && apt-get install -y -qq chromium chromium-driver)

lint: $(STAMP)
	$(BIN)/ruff check alumni_orchestration tests
