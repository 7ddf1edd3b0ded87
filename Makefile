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
# The demo's webhook receiver (a stand-in for a CRM) listens here: the port of the url in
# destinations/demo-webhook.yml.
DEMO_PORT := 8765
DEMO_RECEIVED = $(DEMO_DIR)/webhook/received.ndjson
# Python printing a fresh signing secret (whsec_ + base64 of 32 random bytes).
DEMO_NEW_SECRET := import base64, os; print('whsec_' + base64.b64encode(os.urandom(32)).decode())
# A date N days before DEMO_AS_OF, in Python: BSD date (macOS) has no `date -d`.
demo_days_before = $(shell $(PY) -c 'import datetime as d, sys; \
	print(d.date.fromisoformat(sys.argv[1]) - d.timedelta(days=int(sys.argv[2])))' $(DEMO_AS_OF) $(1))

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
	@# The nightly customer-360 feed: planned, then run by the scheduler at its 02:00 slot of
	@# DEMO_AS_OF (gzip CSV), and as Parquet right after it (`after: [customer-360]`), both into
	@# the bucket folder with their manifest and .DONE. The first tick records the schedules.
	$(BIN)/activator -w $(DEMO_DIR) plan customer-360 --as-of $(DEMO_AS_OF)T02:00:00Z
	$(BIN)/activator -w $(DEMO_DIR) scheduler --once --as-of $(DEMO_AS_OF)T01:00:00Z
	$(BIN)/activator -w $(DEMO_DIR) scheduler --once --as-of $(DEMO_AS_OF)T02:00:30Z
	ls -l $(DEMO_DIR)/bucket/customer-360
	$(BIN)/activator -w $(DEMO_DIR) status --as-of $(DEMO_AS_OF)T02:00:30Z
	@# Campaigns, sent as of two weeks and one week before DEMO_AS_OF so that the orders of the
	@# week after each send exist for the results. One shell, so that the trap stops the receiver
	@# even when a step fails; the signing secret is made afresh and is only in the environment.
	@set -e; \
	export DEMO_WEBHOOK_SECRET="$$($(PY) -c "$(DEMO_NEW_SECRET)")"; \
	$(PY) -m activator.demo.receiver --port $(DEMO_PORT) --secret-env DEMO_WEBHOOK_SECRET \
		--out $(DEMO_RECEIVED) & receiver=$$!; \
	trap 'set +x; kill $$receiver 2>/dev/null; wait $$receiver || true' EXIT; \
	trap 'exit 130' INT TERM; \
	until [ -f $(DEMO_RECEIVED) ]; do kill -0 $$receiver 2>/dev/null || exit 1; sleep 0.1; done; \
	set -x; \
	$(BIN)/activator -w $(DEMO_DIR) run vip-thank-you --as-of $(call demo_days_before,14); \
	$(BIN)/activator -w $(DEMO_DIR) plan first-order-follow-up --as-of $(call demo_days_before,14); \
	$(BIN)/activator -w $(DEMO_DIR) run first-order-follow-up --as-of $(call demo_days_before,14); \
	$(BIN)/activator -w $(DEMO_DIR) plan first-order-follow-up --as-of $(call demo_days_before,7); \
	$(BIN)/activator -w $(DEMO_DIR) run first-order-follow-up --as-of $(call demo_days_before,7); \
	$(BIN)/activator -w $(DEMO_DIR) runs first-order-follow-up; \
	$(BIN)/activator -w $(DEMO_DIR) status; \
	for campaign in vip-thank-you first-order-follow-up; do \
		$(BIN)/activator -w $(DEMO_DIR) campaign results $$campaign --conversion orders \
			--days 7 --as-of $(DEMO_AS_OF); \
	done; \
	ls -l $(DEMO_DIR)/outbox; \
	wc -l $(DEMO_RECEIVED)
	@# Journeys: both simulated over the 30 days before DEMO_AS_OF (nothing is sent), then the
	@# churn-prevention journey run weekly over the last four weeks, and its counters shown.
	$(BIN)/activator -w $(DEMO_DIR) journey simulate welcome-series \
		--start $(call demo_days_before,30) --days 30
	$(BIN)/activator -w $(DEMO_DIR) journey simulate churn-prevention \
		--start $(call demo_days_before,30) --days 30
	$(BIN)/activator -w $(DEMO_DIR) run churn-prevention --as-of $(call demo_days_before,28)
	$(BIN)/activator -w $(DEMO_DIR) run churn-prevention --as-of $(call demo_days_before,21)
	$(BIN)/activator -w $(DEMO_DIR) run churn-prevention --as-of $(call demo_days_before,14)
	$(BIN)/activator -w $(DEMO_DIR) run churn-prevention --as-of $(call demo_days_before,7)
	$(BIN)/activator -w $(DEMO_DIR) run churn-prevention --as-of $(DEMO_AS_OF)
	$(BIN)/activator -w $(DEMO_DIR) journey show churn-prevention --as-of $(DEMO_AS_OF)
	$(BIN)/activator -w $(DEMO_DIR) status --as-of $(DEMO_AS_OF)

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
