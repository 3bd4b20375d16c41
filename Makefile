# quantserve — two commands set up a fresh machine: `make serve` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export CMAKE_BUILD_PARALLEL_LEVEL ?= $(shell nproc)

.PHONY: install serve test check format bench clean prometheus

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# Reinstall whenever the dependency pins change. llama-cpp-python builds from source
# the first time (about 6 minutes on 2 cores); pip caches the wheel afterwards.
$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

serve: install
	$(VENV)/bin/quantserve serve

check: install
	$(VENV)/bin/ruff format --check server models clients tests bench
	$(VENV)/bin/ruff check server models clients tests bench
	$(VENV)/bin/mypy

format: install
	$(VENV)/bin/ruff format server models clients tests bench
	$(VENV)/bin/ruff check --fix server models clients tests bench

# The observability tests scrape a real Prometheus (Debian's package); install it if missing.
prometheus:
	@command -v prometheus >/dev/null || { \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get install -y --no-install-recommends prometheus \
	  || { apt-get update && apt-get install -y --no-install-recommends prometheus; }; }

test: check prometheus
	$(PY) -m pytest

bench: install
	$(PY) -m bench.run

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
