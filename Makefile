# One command to set up and run the main job (`make demo`), one to run the tests (`make test`).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# A CPU build of torch; set TORCH_SPEC (e.g. TORCH_SPEC=torch) to let pip choose another build.
TORCH_SPEC ?= torch==2.13.0
EXTRAS ?= all,dev

.PHONY: setup demo test lint clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q -e ".[$(EXTRAS)]"
	touch $@

setup: $(VENV)/.installed

demo: setup
	bash scripts/quickstart.sh

test: setup
	$(PY) -m pytest -q

lint: setup
	$(VENV)/bin/ruff check src tests tools bench
	$(VENV)/bin/ruff format --check src tests tools bench
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) mmretrieve-index .pytest_cache
