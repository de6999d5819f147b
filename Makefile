# The two commands: `make poems` (the main job) and `make test`. Both install what is
# missing first: a virtual environment with torch pinned to 2.13.0 (the CPU build on this
# machine's disk; elsewhere pick the build you need) and this package with its dev extras.
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cksum < pyproject.toml | cut -d' ' -f1)

.PHONY: poems test install lint

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

poems: $(STAMP)
	$(VENV)/bin/lm run pipelines/tang.yaml

test: $(STAMP)
	$(PY) -m pytest -q -rs

lint: $(STAMP)
	$(VENV)/bin/ruff check lm tests bench
