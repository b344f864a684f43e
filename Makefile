# The two commands of the README, and the helpers they stand on.
#   make demo   - install, migrate, seed and run the example project (SQLite + local disk)
#   make test   - install and run the whole test suite on SQLite, then on a throwaway PostgreSQL

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: demo test lint docs test-sqlite test-postgres test-matrix bench bench-quick install dist clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[s3,example,test,docs,bench,worker]"
	touch $@

install: $(VENV)/.installed

# Demo mode: DEBUG on and HTTP Basic auth for curl -u (the example project says so on every start).
DEMO_ENV = DJANGO_DEBUG=1 DJANGO_API_BASIC_AUTH=1

demo: install
	cd example_project && $(DEMO_ENV) ../$(BIN)/python manage.py migrate --noinput
	cd example_project && $(DEMO_ENV) ../$(BIN)/python manage.py seed_demo --base-url http://$(HOST):$(PORT)
	cd example_project && $(DEMO_ENV) ../$(BIN)/python manage.py runserver $(HOST):$(PORT)

test: lint docs test-sqlite test-postgres

# The documentation site; warnings (broken links, pages missing from the nav) are errors, and so is
# a code fence glued to a line of text, which the build itself lets through (docs/tools/check_fences.py).
docs: install
	$(BIN)/python docs/tools/check_fences.py docs
	$(BIN)/mkdocs build --strict --site-dir site

lint: install
	$(BIN)/ruff check src tests example_project docs/tools benchmarks
	$(BIN)/ruff format --check src tests example_project docs/tools benchmarks
	$(BIN)/mypy

# pytest exits 5 when it collects no test (e.g. a PYTEST_ARGS filter that matches
# nothing): say so plainly instead of failing with a bare status.
# Two processes (pytest-xdist), each test module on one of them: the suite spends much of its time
# waiting on servers and subprocesses. PYTEST_WORKERS=0 runs it in one process.
PYTEST_WORKERS ?= 2
PYTEST = $(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist loadfile
NO_TESTS_OK = rc=$$?; if [ $$rc -eq 5 ]; then echo "pytest collected no tests"; exit 0; fi; exit $$rc

test-sqlite: install
	$(PYTEST) $(PYTEST_ARGS); $(NO_TESTS_OK)

# The memory bound tests (marked slow) run their own SQLite process; once is enough. So are the tests
# that touch no database (marked no_database).
test-postgres: install
	$(BIN)/python -m tests.pgcluster -- $(PYTEST) -m "not slow and not no_database" $(PYTEST_ARGS); $(NO_TESTS_OK)

# CI's share of tox's matrix beyond `make test`: Django 4.2 on this Python, the installed wheel on SQLite
# without the slow tests (tox.ini's django42-ci; docs/development.md says how to run the rest).
test-matrix: install
	$(BIN)/tox -e django42-ci -- -n $(PYTEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

# The benchmark suite (figures only; see docs/benchmarks.md). bench-quick is CI's small run.
bench: install
	$(BIN)/python benchmarks/run.py

bench-quick: install
	$(BIN)/python benchmarks/run.py --quick

dist: install
	$(BIN)/python -m pip install --quiet build
	$(BIN)/python -m build --outdir dist .

clean:
	rm -rf $(VENV) build dist .tox .pytest_cache src/*.egg-info
