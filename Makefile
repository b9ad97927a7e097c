# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: install demo test lint typecheck bench bench-delivery run clean constraints

$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "ingest needs Python 3.11 or newer (found %s); set PYTHON=python3.11" % sys.version.split()[0])'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[test,postgres]'
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(BIN)/ingest demo

test: install
	$(BIN)/python -m pytest -q

lint: install
	$(BIN)/ruff check ingest tests bench
	$(BIN)/mypy ingest

bench: install
	$(BIN)/python bench/run.py

# Alerts/s through the outbox to a local webhook receiver (~3 min; QUICK=1: a smoke run).
bench-delivery: install
	$(BIN)/python bench/delivery.py $(if $(QUICK),--quick)

# Polling N loopback feeds against the reader library (QUICK=1: N = 100 and 1,000 only;
# N=10,000 takes a long while).
.PHONY: bench-poll
bench-poll: install
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[bench]'
	$(BIN)/python bench/poll.py $(if $(QUICK),--quick)

# Entries/s through the whole pipeline with 1, 2 and 3 `ingest run` instances on one
# PostgreSQL database (127.0.0.1:5432), SQLite beside them (~6 min; QUICK=1: a smoke run).
.PHONY: bench-fleet
bench-fleet: install
	$(BIN)/python bench/fleet.py $(if $(QUICK),--quick)

run: install
	$(BIN)/ingest run --config seeds/ingest.yaml

# Refresh the pinned versions after a deliberate upgrade (then run `make test`).
constraints: install
	$(BIN)/python -m pip freeze --exclude-editable | grep -v '^-e' > constraints.txt

clean:
	rm -rf $(VENV) data .pytest_cache .ruff_cache .mypy_cache
