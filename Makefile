# The two set-up commands of the README: `make demo` and `make test`.
# Both create .venv and install the pinned dependencies on first use.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test lint bench clean

$(STAMP): requirements/lock.txt pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch first and pinned: a CPU build; an unpinned torch would pull a CUDA build.
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -r requirements/lock.txt
	$(BIN)/pip install -q --no-deps -e .
	touch $@

install: $(STAMP)

demo: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/python -m sluice.demo

lint: $(STAMP)
	$(BIN)/ruff check src tests bench examples
	$(BIN)/ruff format --check src tests bench examples
	$(BIN)/mypy --strict src/ tests/
	PYTHONPATH=src $(BIN)/lint-imports --no-logo

test: lint
	HF_HUB_OFFLINE=1 $(BIN)/pytest -q
	# The reference app's own gates (docs/testing.md): its golden suite and snapshot, after its
	# models and index (training is skipped once done). JUnit XML for CI in build/.
	HF_HUB_OFFLINE=1 $(BIN)/sluice train examples/triage --quiet
	HF_HUB_OFFLINE=1 $(BIN)/sluice index build examples/triage --quiet
	HF_HUB_OFFLINE=1 $(BIN)/sluice test examples/triage --junit build/sluice-test.xml

# Every benchmark in bench/, scaled to finish in under 15 minutes on 2 cores (docs/benchmarks.md
# has the times of each line and the full-size commands). scale uses the running PostgreSQL
# (SLUICE_BENCH_POSTGRES, default postgresql://postgres@127.0.0.1:5432/test).
bench: $(STAMP)
	command -v wrk >/dev/null || (apt-get update -q && apt-get install -y -q wrk)
	HF_HUB_OFFLINE=1 $(BIN)/python bench/runtime.py --events 5000 --repeat 3
	HF_HUB_OFFLINE=1 $(BIN)/python bench/ingress.py --seconds 3 --repeat 3
	HF_HUB_OFFLINE=1 $(BIN)/python bench/triage.py --tickets 3000 --baseline 600
	HF_HUB_OFFLINE=1 $(BIN)/python bench/models.py
	HF_HUB_OFFLINE=1 $(BIN)/python bench/retrieval.py --embedders wordllama
	HF_HUB_OFFLINE=1 $(BIN)/python bench/pii.py
	HF_HUB_OFFLINE=1 $(BIN)/python bench/http_client.py
	HF_HUB_OFFLINE=1 $(BIN)/python bench/gateway.py
	HF_HUB_OFFLINE=1 $(BIN)/python bench/scale.py --events 3000
	HF_HUB_OFFLINE=1 $(BIN)/python bench/telemetry.py --repeat 3
	HF_HUB_OFFLINE=1 $(BIN)/python bench/spans.py
	HF_HUB_OFFLINE=1 $(BIN)/python bench/cache_kv.py
	HF_HUB_OFFLINE=1 $(BIN)/python bench/case_study.py
	HF_HUB_OFFLINE=1 $(BIN)/python bench/apikeys.py
	HF_HUB_OFFLINE=1 $(BIN)/python bench/slow_clients.py --seconds 3 --rounds 1

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
