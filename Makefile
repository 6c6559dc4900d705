# iommubench: `make bench` runs the main sweep, `make test` the tests. Both install first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
NATIVE := $(shell find src/iommubench/core/native -name '*.c' -o -name '*.h' -o -name '*.def' -o -name '*.py')
CONFIG ?= bench/default.yaml

.PHONY: install test check bench lint ceiling peer docs clean

install: $(STAMP)

$(STAMP): pyproject.toml $(NATIVE)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

# The full suite (CI).
test: install
	$(PY) -m pytest -q

# The quick loop: every test not marked slow (no worker processes beyond one short point, no
# compiles), spread over the CPUs (pytest-xdist); under a minute on 2 CPUs. The full suite
# stays in one process: its concurrency tests pin workers to CPUs and must not share them.
check: install
	$(PY) -m pytest -q -m "not slow" -n auto

lint: install
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/ruff format --check src tests bench

bench: install
	$(VENV)/bin/iommubench run $(CONFIG) --report

# The parameter table of docs/configuration.md, regenerated from src/iommubench/spec/parameters.py.
docs: install
	$(PY) -c 'from iommubench.spec import parameters; parameters.update_readme(parameters.DOCS_TABLE)'

# The single-worker ceiling: the harness beside a minimal hand-written C loop.
ceiling: install
	$(PY) bench/ceiling.py

# The harness's spinlocks beside Concurrency Kit's (installs libck-dev when it can).
peer: install
	$(PY) bench/peer/peer.py

clean:
	rm -rf $(VENV) build src/*.egg-info src/iommubench/_core*.so
