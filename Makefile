# regnn: `make demo` and `make test` each set up .venv on first use.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEMO_OUT ?= demo-output

.PHONY: demo test test-slow lint bench clean install

install: $(STAMP)

$(STAMP): pyproject.toml setup.py src/regnn/_mkl_shim.c constraints.txt
	@echo ">> setting up $(VENV) (first run installs pinned dependencies, ~2-3 min)"
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -c constraints.txt -e '.[dev,export]'
	@touch $(STAMP)

demo: $(STAMP)
	@echo ">> regnn demo -> $(DEMO_OUT)/"
	$(VENV)/bin/regnn demo --out $(DEMO_OUT)

test: $(STAMP)
	@echo ">> machine (CPU, vector extensions, cores, MKL branch)"
	@$(PY) -m regnn.mkl
	@echo ">> ruff + pytest (fast suite; slow checks: make test-slow)"
	$(VENV)/bin/ruff check src tests benchmarks examples
	$(PY) -m pytest -q -m "not slow"

test-slow: $(STAMP)
	$(PY) -m pytest -q -m slow

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks examples
	$(VENV)/bin/ruff format --check src tests benchmarks examples

bench: $(STAMP)
	@for b in benchmarks/bench_*.py; do echo ">> $$b"; $(PY) $$b || exit 1; done

clean:
	rm -rf $(DEMO_OUT) .pytest_cache build *.egg-info
