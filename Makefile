# gpt-katas: every command a learner, an instructor or a maintainer needs.
# `make` alone lists them. Each target sets up .venv first if it is missing or stale.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
TORCH  := torch==2.13.0

IMPL ?= katas
REF  ?=
K    ?=
HARNESS := $(PY) -m harness --impl $(IMPL) $(if $(REF),--ref $(REF))

.DEFAULT_GOAL := help
.PHONY: help setup data test kata status hint watch check lint format clean

help: ## list the targets
	@echo "gpt-katas: build a GPT from scratch, one tested idea at a time."
	@echo
	@awk 'BEGIN {FS = ":.*## "} /^[a-z][a-z_-]*:.*## / {printf "  make %-10s %s\n", $$1, $$2}' $(MAKEFILE_LIST)
	@echo
	@echo "Options: IMPL=solutions (run the specs on the reference), REF=01-07 (take those katas"
	@echo "from the reference), K=NN (pick a kata), DATA_MIRROR=dir (copy data, no download)."

setup: $(VENV)/.installed ## create .venv and install pinned dependencies (idempotent)

$(VENV)/.installed: pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check $(TORCH)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $@

data: setup ## fetch and verify names.txt and tinyshakespeare.txt (DATA_MIRROR=dir to copy)
	@$(PY) -m data $(if $(DATA_MIRROR),--mirror $(DATA_MIRROR))

test: setup ## run the katas in order; stop at the first one that fails
	@$(HARNESS) test

kata: setup ## run one kata verbosely: make kata K=03
	@$(HARNESS) kata $(K)

status: setup ## progress table for every kata
	@$(HARNESS) status

hint: setup ## next hint for a kata: make hint K=03 (RESET=1 starts over)
	@$(HARNESS) hint $(K) $(if $(RESET),--reset)

watch: setup ## rerun the current kata whenever a file under katas/ changes
	@$(HARNESS) watch

check: setup data ## the repository's own verification (what CI runs)
	@$(PY) -m harness check

lint: setup ## ruff
	@$(PY) -m ruff check .

format: setup ## ruff format and import sorting
	@$(PY) -m ruff check --fix --select I .

clean: ## remove the venv, caches and run outputs (keeps data/ and your katas)
	rm -rf $(VENV) .hints.json runs grade .ruff_cache .hypothesis
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
