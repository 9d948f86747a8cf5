# gridmap: the two commands are `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: help demo test lint bench venv db clean

## help: list the targets
help:
	@grep -E '^## ' $(MAKEFILE_LIST) | sed -e 's/^## /  /'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	@# setuptools' editable install warns "for your information" on every install; quiet it.
	PYTHONWARNINGS=ignore::UserWarning $(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

## venv: create .venv and install the project with its development tools
venv: $(STAMP)

## demo: database, sample subdistrict, demo accounts, server on 127.0.0.1:8000 (ARGS=--stop-db …)
demo: venv
	$(BIN)/gridmap demo $(ARGS)

## test: quality gates, then the whole test suite against a real PostGIS, Chromium and GDAL
## (TEST_WORKERS=0: in one process; default: one per core, at most 4)
TEST_WORKERS ?= auto
test: lint
	bash maps/install_browser.sh $(BIN)/python
	bash tests/install_gdal.sh
	@# Two passes, both always run: most tests in parallel processes, a whole file each
	@# (module fixtures are made once, tests run in file order), each worker on a PostgreSQL
	@# of its own (tests/conftest.py); then the tests holding a time budget, alone.
	$(BIN)/pytest -n $(TEST_WORKERS) --maxprocesses=4 --dist loadfile -m "not serial"; parallel=$$?; \
	$(BIN)/pytest -m serial; serial=$$?; \
	test $$parallel -eq 0 -a $$serial -eq 0

## lint: ruff, formatting, mypy on gis/, and the layering contract
lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

## bench: every benchmark, baselines in the same run (python -m bench --help: sizes, times)
bench: venv
	$(BIN)/python -m bench

## db: start the embedded PostgreSQL + PostGIS (no-op with GRIDMAP_DATABASE_URL)
db: venv
	$(BIN)/gridmap db start

## clean: remove .venv and the tool caches (the database in .gridmap stays)
clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
