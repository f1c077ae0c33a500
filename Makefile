# The two set-up commands: `make demo` and `make test`. Both create or refresh .venv.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
# CPU build of torch for machines without a GPU; a venv that already has torch keeps it.
TORCH_SPEC ?= torch==2.13.0

.PHONY: venv demo test lint bench clean

venv:
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -c "import torch" 2>/dev/null || $(PIP) install --quiet "$(TORCH_SPEC)"
	@$(PIP) install --quiet -e ".[dev]"

demo: venv
	$(PY) hub_scripts/demo.py $(if $(DATA_DIR),--data_dir "$(DATA_DIR)") $(if $(DATASET),--dataset "$(DATASET)") $(if $(BACKBONE),--backbone "$(BACKBONE)") --output_dir demo_output

test: venv
	$(PY) -m pytest -q tests

lint: venv
	$(VENV)/bin/ruff check at2seld hub_scripts tests benchmarks

bench: venv
	@$(PIP) install --quiet -e ".[dev,bench]"
	$(PY) benchmarks/run_all.py

clean:
	rm -rf $(VENV) demo_output .pytest_cache
