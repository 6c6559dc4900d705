# iommubench: `make bench` runs the main sweep, `make test` the tests. Both install first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
NATIVE := $(shell find src/iommubench/core/native -name '*.c' -o -name '*.h' -o -name '*.def' -o -name '*.py')
CONFIG ?= bench/default.yaml

.PHONY: install test bench lint ceiling peer docs clean

install: $(STAMP)

$(STAMP): pyproject.toml $(NATIVE)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

test: install
	$(PY) -m pytest -q

lint: install
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/ruff format --check src tests bench

bench: install
	$(VENV)/bin/iommubench run $(CONFIG) --report

# The README's parameter table, regenerated from src/iommubench/parameters.py.
docs: install
	$(PY) -c 'from iommubench import parameters; parameters.update_readme("README.md")'

# The single-worker ceiling: the harness beside a minimal hand-written C loop.
ceiling: install
	$(PY) bench/ceiling.py

# The harness's spinlocks beside Concurrency Kit's (installs libck-dev when it can).
peer: install
	$(PY) bench/peer/peer.py

clean:
	rm -rf $(VENV) build src/*.egg-info src/iommubench/_core*.so
