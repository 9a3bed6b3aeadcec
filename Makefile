VENV ?= .venv
PY := $(VENV)/bin/python
export RDS_HA_TABLE ?= rds-ha

.PHONY: setup demo test lint typecheck clean

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

setup: $(VENV)/.installed

demo: setup
	$(VENV)/bin/rds-ha demo

test: setup
	$(PY) -m pytest -n 2

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check functions tests
	$(VENV)/bin/mypy
	$(VENV)/bin/cfn-lint template.yaml

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
