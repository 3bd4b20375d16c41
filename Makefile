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

# Reinstall whenever the pins change (constraints.txt pins every transitive package).
# llama-cpp-python builds from source the first time (about 6 minutes on 2 cores); pip caches the wheel afterwards.
$(STAMP): pyproject.toml constraints.txt | $(PY)
	$(PY) -m pip install --quiet -c constraints.txt -e '.[dev]'
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
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
prometheus:
	@command -v prometheus >/dev/null || { \
	  export DEBIAN_FRONTEND=noninteractive; \
	  $(SUDO) apt-get install -y --no-install-recommends prometheus \
	  || { $(SUDO) apt-get update && $(SUDO) apt-get install -y --no-install-recommends prometheus; }; }

test: check prometheus
	$(PY) -m pytest

bench: install
	$(PY) -m bench.run
	$(PY) -m bench.embed

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
