# Two commands matter: `make run` and `make test`. Both set everything up on a fresh machine.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

export EHC_DATA_DIR ?= $(CURDIR)/var
# The suite runs in two processes (one per core here), a test file per worker at a time, so each file's
# database fixtures are built once; PYTEST_WORKERS=0 runs it in one process.
PYTEST_WORKERS ?= 2

.PHONY: run test bench soak fuzz system-deps install clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# Debian packages the tests need (a real browser and CJK fonts; openssl and curl for the interop
# and integration-guide tests; a Java runtime for the Spark backend of `ehc mpi link`; pdftoppm to
# read printed PDF labels back); installed only when missing.
system-deps:
	@if ! command -v chromium >/dev/null 2>&1 || ! fc-list 2>/dev/null | grep -qi 'Noto Sans CJK' \
	    || ! command -v curl >/dev/null 2>&1 || ! command -v openssl >/dev/null 2>&1 \
	    || ! command -v java >/dev/null 2>&1 || ! command -v pdftoppm >/dev/null 2>&1; then \
	  echo "installing chromium, fonts-noto-cjk, curl, openssl, poppler-utils and a Java runtime from Debian"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-noto-cjk curl openssl \
	    poppler-utils default-jre-headless; \
	fi

# `make run` also starts the two payment services (docs/sandboxes.md) in the background, with their data
# under $(EHC_DATA_DIR), before the demo (which gives a few residents bills to pay when they answer);
# they stop when `ehc serve` (port 8000) exits. One shell, so the trap sees both process ids.
INSURANCE_PORT ?= 8701
BANK_PORT      ?= 8702
run: $(STAMP)
	$(BIN)/ehc keys init --if-missing
	$(BIN)/ehc migrate
	@set -e; insurer=; bank=; \
	trap 'kill $$insurer $$bank 2>/dev/null || true' EXIT; trap 'exit 130' INT TERM; \
	export EHC_INSURANCE_URL=http://127.0.0.1:$(INSURANCE_PORT) EHC_BANK_URL=http://127.0.0.1:$(BANK_PORT); \
	$(BIN)/ehc sandbox insurance --port $(INSURANCE_PORT) --data "$(EHC_DATA_DIR)/sandbox-insurance" & insurer=$$!; \
	$(BIN)/ehc sandbox bank --port $(BANK_PORT) --data "$(EHC_DATA_DIR)/sandbox-bank" \
	  --callback-url http://127.0.0.1:8000/api/v1/payments/callbacks/bank & bank=$$!; \
	$(BIN)/ehc demo --if-empty --wait-for-payments 30; \
	$(BIN)/ehc serve

test: $(STAMP) system-deps
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python bench/run.py

# Ten minutes of a mixed workload at 70% of the measured peak on PostgreSQL: errors, memory, latency
# drift (bench/soak.py; SOAK_SECONDS=N for another length). Writes its section of docs/benchmarks.md.
soak: $(STAMP)
	$(BIN)/python bench/soak.py

# The long fuzzing run: schemathesis with every phase, every caller over every operation, on SQLite and
# PostgreSQL, and the parsers' property tests at many more examples. FUZZ_EXAMPLES (per operation),
# FUZZ_STEPS (stateful), FUZZ_PHASES, FUZZ_SEED and FUZZ_PARSER_EXAMPLES tune it.
FUZZ_EXAMPLES ?= 20
FUZZ_PARSER_EXAMPLES ?= 20000
fuzz: $(STAMP)
	FUZZ_LONG=1 FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) FUZZ_PARSER_EXAMPLES=$(FUZZ_PARSER_EXAMPLES) \
	  $(BIN)/python -m pytest -p no:randomly -s tests/test_schemathesis.py tests/test_fuzz_parsers.py $(PYTEST_ARGS)

clean:
	rm -rf var .pytest_cache test-artifacts
