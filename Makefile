# The README's two commands: `make run` and `make test`. Both set up .venv on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
RUN_STAMP := $(VENV)/.run-stamp

.PHONY: run test lint bench bench-console console-screenshots fuzz clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

# What running needs (Relay and the dev broker), not the test and bench toolchain.
$(RUN_STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[devbroker]'
	touch $(RUN_STAMP)

run: $(RUN_STAMP)
	$(BIN)/relay dev

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# Throughput and latency of Relay against a bare aiohttp app (bench/README.md); about 8 minutes.
bench: $(STAMP)
	$(BIN)/python -m bench $(BENCH_ARGS)

# The console's pages over a generated topic: 1,000,000 events and 100,000 dead letters on a
# dev broker, the index built from them, each page timed through HTTP (README: Console).
bench-console: $(STAMP)
	$(BIN)/python -m bench.console $(BENCH_ARGS)

# The README's console screenshots (docs/console/*.png), taken by the browser tests.
console-screenshots: $(STAMP)
	RELAY_TEST_BROKERS=tansu RELAY_CONSOLE_SCREENSHOTS=docs/console $(BIN)/pytest \
		tests/test_console_browser.py -q -k filters -p no:cacheprovider

# The fuzz suite in long mode: 100,000 hostile requests over HTTP (tests/fuzz), then its
# figures: requests, 4xx by code, 5xx, accepted forgeries, RSS before and after; re-spellings
# of signed requests (RELAY_FUZZ_EXAMPLES per instance) and their counts; the hostile-cost
# table (CPU, RSS, authentic latency; RELAY_FUZZ_HOSTILE_REQUESTS per kind and profile, each
# kind stopped after RELAY_FUZZ_HOSTILE_BUDGET_S); the decoder's properties over arbitrary
# and mutated records (RELAY_FUZZ_RECORDS examples each, five times as many records through
# the installed relay-events distribution) and their outcome counts. Override with those,
# RELAY_FUZZ_REQUESTS, RELAY_FUZZ_SEED, RELAY_TEST_BROKERS.
FUZZ_ENV := RELAY_FUZZ_REQUESTS=$${RELAY_FUZZ_REQUESTS:-100000} \
	RELAY_FUZZ_EXAMPLES=$${RELAY_FUZZ_EXAMPLES:-2000} \
	RELAY_FUZZ_RECORDS=$${RELAY_FUZZ_RECORDS:-5000} \
	RELAY_FUZZ_HOSTILE_REQUESTS=$${RELAY_FUZZ_HOSTILE_REQUESTS:-500} \
	RELAY_FUZZ_HOSTILE_BUDGET_S=$${RELAY_FUZZ_HOSTILE_BUDGET_S:-30} \
	RELAY_TEST_BROKERS=$${RELAY_TEST_BROKERS:-tansu}
fuzz: $(STAMP)
	$(FUZZ_ENV) $(BIN)/pytest tests/fuzz -q -p no:logging $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache .mypy_cache
