# The two commands of the README:
#   make report   run the main job: install, get the data, execute the notebooks, export the report
#   make test     install the test tools and run every test, notebooks included
# Both build a virtual environment in .venv with the pinned requirements.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
export HW3_DATA ?= $(CURDIR)/data
# One BLAS thread: two-thread runs on small matrices stall at random on these machines.
export OPENBLAS_NUM_THREADS ?= 1
export OMP_NUM_THREADS ?= 1
export MPLBACKEND ?= Agg

.PHONY: report test install install-dev data clean

$(VENV)/.main: requirements.txt pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "hw3lib needs Python 3.11 or newer, found " + sys.version.split()[0]'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -e .
	touch $@

$(VENV)/.dev: $(VENV)/.main requirements-dev.txt
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

install: $(VENV)/.main
install-dev: $(VENV)/.dev

data: $(VENV)/.main
	$(PY) -m hw3lib download "$(HW3_DATA)"

report: data
	$(PY) -m hw3lib report

test: $(VENV)/.dev data
	$(PY) -m pytest --nbval --nbval-current-env --nbval-sanitize-with notebooks/sanitize.cfg

clean:
	rm -rf $(VENV) report/*.html report/*.pdf
