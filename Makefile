# Two entry points for a fresh machine: `make demo` and `make test`.
# Both create the virtual environment if it is missing and install probssl into it.
# TORCH_SPEC pins the CPU build that lies on the development machines' disk; on your own
# machine override it (e.g. `make demo TORCH_SPEC=torch`) or install torch first.
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
PY := $(VENV)/bin/python

.PHONY: demo test lint docs clean-venv

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

demo: $(VENV)/.installed
	$(PY) -m probssl demo --out runs/demo

test: $(VENV)/.installed
	$(VENV)/bin/ruff check probssl tests examples
	$(VENV)/bin/mkdocs build --strict --quiet
	$(PY) -m pytest -q --durations=15

# the API reference (from the docstrings) and the guides, warnings as errors -> site/
docs: $(VENV)/.installed
	$(VENV)/bin/mkdocs build --strict

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check probssl tests

clean-venv:
	rm -rf $(VENV)
