# The one task runner. `make demo` and `make test` are the two commands of the README:
# each creates the virtual environment, installs the project, fetches and starts what it
# needs, then runs. Running either again reuses the venv, the jars and the running services.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck unit kafka postgres infra stop venv bench clean

venv: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade "pip>=24"
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev,postgres]'
	@touch $@

kafka:
	@infra/kafka/start

postgres:
	@infra/postgres/start >/dev/null

infra: kafka postgres

stop:
	-@infra/kafka/stop
	-@infra/postgres/stop

demo: venv kafka
	$(BIN)/cehub demo

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check ledger producers consumers schemas verification

typecheck: venv
	$(BIN)/mypy

unit: venv
	$(BIN)/python -m pytest -m "not kafka and not postgres" -q

# The whole suite: lint, types, then every test against the real Kafka and PostgreSQL.
test: venv kafka postgres lint typecheck
	CEHUB_TEST_POSTGRES_URL="$$(cat infra/postgres/var/$${CEHUB_PG_PORT:-55432}/url)" \
	  $(BIN)/python -m pytest -q

bench: venv kafka postgres
	CEHUB_TEST_POSTGRES_URL="$$(cat infra/postgres/var/$${CEHUB_PG_PORT:-55432}/url)" \
	  $(BIN)/python -m benchmarks

clean: stop
	rm -rf $(VENV) infra/kafka/var infra/postgres/var var
