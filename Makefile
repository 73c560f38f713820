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
.PHONY: help setup data test kata status hint watch check lint format clean grade handout

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

# Lesson notebooks (katas/NN_name/*.ipynb): run against the solutions, checked by nbval.
# Rebuild them after editing their sources: $(PY) scripts/build_notebooks.py [NN ...]
.PHONY: notebooks
notebooks: setup data ## run the lesson notebooks against the solutions and check them (nbval)
	$(PY) -m pytest --nbval-lax --impl=solutions --nbval-sanitize-with harness/nbval_sanitize.cfg katas/*/*.ipynb

# microGPT (kata 08): the reference unless IMPL=katas is given; REF=01-07 mixes as in the specs.
STEPS       ?= 1000
SEED        ?= 42
TEMPERATURE ?= 0.5
MICROGPT_ENV := $(if $(filter command line environment,$(origin IMPL)),GPT_KATAS_IMPL=$(IMPL)) \
	$(if $(REF),GPT_KATAS_REF=$(REF))
.PHONY: microgpt bench

microgpt: setup data ## train microGPT on names, print the loss curve and 20 names (STEPS= SEED= TEMPERATURE=)
	@$(MICROGPT_ENV) $(PY) scripts/microgpt.py --steps $(STEPS) --seed $(SEED) --temperature $(TEMPERATURE)

bench: setup data ## time microGPT's training: steps/s, total, final loss -> bench/results/microgpt.json
	@$(MICROGPT_ENV) $(PY) bench/microgpt.py --steps $(STEPS) --seed $(SEED)

grade: setup data ## grade the katas as CI does -> grade/ (STRICT=1, HIDDEN_SPECS=dir, K=NN)
	@$(PY) -m harness.grade --impl $(IMPL) $(if $(K),--kata $(K)) \
		$(if $(HIDDEN_SPECS),--hidden-specs $(HIDDEN_SPECS)) $(if $(LEARNER),--learner $(LEARNER)) \
		$(if $(TRUSTED_REF),--trusted-ref $(TRUSTED_REF)) $(if $(STRICT),--strict)

handout: setup ## build the learners' repository, without solutions/, into DEST=dir
	@test -n "$(DEST)" || { echo "usage: make handout DEST=dir"; exit 2; }
	@$(PY) -m harness.handout $(DEST)

# Shakespeare (kata 12): the reference trainer unless IMPL=katas is given. Only settings given
# on the command line (or in the environment) are passed, so each preset's file decides the rest.
given = $(filter command line environment,$(origin $(1)))
flag = $(if $(call given,$(1)),$(2) "$$$(1)")
yes = $(if $(filter-out 0 no false,$($(1))),$(2))
TRAIN_ENV := $(if $(call given,IMPL),GPT_KATAS_IMPL=$(IMPL)) $(if $(REF),GPT_KATAS_REF=$(REF))
.PHONY: train sample

train: setup data ## train the GPT on tiny Shakespeare, then print samples (PRESET=tiny|small|medium|cpu STEPS= BATCH= LR= DROPOUT= OUT= RESUME=1)
	@$(TRAIN_ENV) $(PY) scripts/train.py $(call flag,PRESET,--preset) $(call flag,STEPS,--steps) \
		$(call flag,BATCH,--batch) $(call flag,LR,--lr) $(call flag,DROPOUT,--dropout) \
		$(call flag,EVAL_INTERVAL,--eval-interval) $(call flag,PATIENCE,--patience) \
		$(call flag,SEED,--seed) $(call flag,OUT,--out) $(call flag,DEVICE,--device) \
		$(call flag,THREADS,--threads) $(call yes,RESUME,--resume) $(call yes,COMPILE,--compile)

sample: setup ## generate from the best checkpoint (PROMPT= TEMPERATURE= TOP_K= TOP_P= N_TOKENS= SEED= SHOW_TOP=5 OUT=)
	@$(TRAIN_ENV) $(PY) scripts/sample.py $(call flag,OUT,--out) $(call flag,CHECKPOINT,--checkpoint) \
		$(call flag,PROMPT,--prompt) $(call flag,TEMPERATURE,--temperature) \
		$(call flag,TOP_K,--top-k) $(call flag,TOP_P,--top-p) $(call flag,N_TOKENS,--n-tokens) \
		$(call flag,SEED,--seed) $(call flag,SHOW_TOP,--show-top) $(call flag,DEVICE,--device)
