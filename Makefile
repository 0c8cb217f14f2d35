# Sealtrail. The two commands: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
TS_SDK   := sdk/typescript
TS_STAMP := $(TS_SDK)/node_modules/.sealtrail-lock-sha256

.PHONY: install test test-all fuzz test-chaos soak lint demo bench clean services-up services-down

install: $(STAMP)
	@$(BIN)/python native/install.py

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	@touch $(STAMP)

## Unit, contract, integration and end-to-end tests; starts and stops real PostgreSQL and Kafka.
test: install
	$(BIN)/python -m pytest -m "not slow" --timeout=900 -q --durations=30

## The fuzz tests (tests/fuzz) with more examples per operation and parser than the bounded default.
fuzz: install
	SEALTRAIL_FUZZ_EXAMPLES=$${SEALTRAIL_FUZZ_EXAMPLES:-200} $(BIN)/python -m pytest tests/fuzz --timeout=3600 -q -s

## Everything, the long-running suites included.
test-all: install
	$(BIN)/python -m pytest --timeout=3600 -q

## Fault injection on the whole pipeline, 30 faults of each kind (the fast run does 2 of each).
test-chaos: install
	SEALTRAIL_CHAOS_FAULTS=30 $(BIN)/python -m pytest tests/chaos --timeout=7200 -q -s

## The pipeline at 60% of its measured rate for SEALTRAIL_SOAK_SECONDS (600); bench/results/soak.{txt,png}.
soak: install
	$(BIN)/python bench/soak.py

lint: install $(TS_STAMP)
	$(BIN)/ruff check sealtrail services tests bench
	$(BIN)/mypy
	cd $(TS_SDK) && node_modules/.bin/tsc --noEmit -p .

## The TypeScript SDK's npm dependencies, from its lock file, without install scripts (tests/e2e runs its tests).
$(TS_STAMP): $(TS_SDK)/package-lock.json
	cd $(TS_SDK) && npm ci --ignore-scripts --no-audit --no-fund
	sha256sum $(TS_SDK)/package-lock.json | cut -d' ' -f1 | tr -d '\n' > $@

demo: install
	$(BIN)/sealtrail demo

bench: install
	$(BIN)/python bench/bench_logcore.py

services-up:
	@deploy/local/up $(if $(ALL),--all)

services-down:
	@deploy/local/down

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis build *.egg-info
