# Two commands on a fresh machine: `make demo` and `make test` (see README).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip

.PHONY: demo test bench install-examples install-dev clean

# torch first, from its pinned CPU wheel, so no extra pulls a multi-GB CUDA build.
$(VENV)/.base:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q torch==2.13.0
	touch $@

$(VENV)/.examples: $(VENV)/.base pyproject.toml
	$(PIP) install -q -e '.[examples]'
	touch $@

$(VENV)/.dev: $(VENV)/.base pyproject.toml
	$(PIP) install -q -e '.[examples,dev]'
	touch $@

install-examples: $(VENV)/.examples
install-dev: $(VENV)/.dev

demo: $(VENV)/.examples
	$(VENV)/bin/attnflows demo

test: $(VENV)/.dev
	$(PY) -m pytest -q

bench: $(VENV)/.dev
	$(PY) -m benchmarks

clean:
	rm -rf $(VENV) artifacts demo_runs
