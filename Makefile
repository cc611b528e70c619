# Two commands do all set-up on a fresh machine:
#   make demo   backupbot end to end on the embedded defaults
#   make test   lint, type check and the full test suite (real PostgreSQL, S3 server, Slack stand-in)
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint bench system-deps clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

system-deps:
	@bash scripts/install-system-deps.sh

demo: system-deps $(STAMP)
	$(BIN)/python -m backupbot.devkit.demo .demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: system-deps lint
	$(BIN)/mypy
	$(BIN)/python -m pytest

bench: system-deps $(STAMP)
	$(BIN)/python bench/targets.py --size-gb 1

clean:
	rm -rf .demo .pytest_cache .ruff_cache
