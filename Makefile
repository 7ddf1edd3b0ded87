# Everyday tasks. `make demo` and `make test` are the two set-up commands of the README:
# each creates .venv when it is missing and installs the locked dependencies into it.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check
BIN    := $(VENV)/bin
# requirements.lock pins every package (all extras and dev tools) to versions known to work
# together; installs use it as constraints so each target installs only what it needs.
LOCK   := requirements.lock
# Every extra the tests exercise: engines, file stores, PGP.
EXTRAS := dev,postgres,spark,s3,gcs,azure,sftp,pgp
DEMO_DIR ?= demo
DEMO_CUSTOMERS ?= 20000
# One as-of date for the data and the previews, so segment counts are those of the data's day.
DEMO_AS_OF ?= $(shell date -u +%Y-%m-%d)
DEMO_SEGMENTS ?= new-customers first-time-buyers vip-customers lapsing-high-value at-risk \
	sms-reachable

.PHONY: demo test test-fast lint format lock bench clean

$(VENV)/.base: pyproject.toml $(LOCK)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q -c $(LOCK) -e .
	touch $@

$(VENV)/.dev: $(VENV)/.base
	$(PIP) install -q -c $(LOCK) -e '.[$(EXTRAS)]'
	touch $@

demo: $(VENV)/.base
	rm -rf $(DEMO_DIR)
	$(BIN)/activator init $(DEMO_DIR) --demo --customers $(DEMO_CUSTOMERS) --seed 42 \
		--as-of $(DEMO_AS_OF)
	$(BIN)/activator -w $(DEMO_DIR) validate
	$(BIN)/activator -w $(DEMO_DIR) apply
	$(BIN)/activator -w $(DEMO_DIR) status
	for segment in $(DEMO_SEGMENTS); do \
		$(BIN)/activator -w $(DEMO_DIR) segment preview $$segment --as-of $(DEMO_AS_OF) \
			--limit 3 || exit 1; \
	done
	$(BIN)/activator -w $(DEMO_DIR) run customer-360 --as-of $(DEMO_AS_OF)
	ls -l $(DEMO_DIR)/outbox

# Azurite (the Azure Blob emulator the file-store tests run) from npm, at the locked versions.
AZURITE := tests/fixtures/azurite
$(VENV)/.azurite: $(AZURITE)/package.json $(AZURITE)/package-lock.json | $(VENV)/.base
	npm ci --prefix $(AZURITE) --no-audit --no-fund
	touch $@

# pytest's exit code 5 (no tests selected) is not a failure.
test: $(VENV)/.dev $(VENV)/.azurite
	$(BIN)/pytest || test $$? -eq 5

test-fast: $(VENV)/.dev $(VENV)/.azurite
	$(BIN)/pytest -m "not slow and not spark and not postgres"

lint: $(VENV)/.dev
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

format: $(VENV)/.dev
	$(BIN)/ruff check --fix src tests bench
	$(BIN)/ruff format src tests bench

# Re-resolve the lock (needs network access to the package index and `uv`).
lock:
	uv pip compile pyproject.toml --all-extras --python-version 3.11 --no-annotate -o $(LOCK)

bench: $(VENV)/.dev
	$(PY) bench/generate_demo.py --customers 1000000

clean:
	rm -rf $(VENV) $(DEMO_DIR) .pytest_cache .mypy_cache .ruff_cache
