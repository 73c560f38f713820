# gpt-katas: every command a learner, an instructor or a maintainer needs.
# `make` alone lists them. Each target sets up .venv first if it is missing or stale.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
TORCH  := torch==2.13.0

# Specs run on your code (IMPL=katas) unless told otherwise; REF=01-07 takes those katas
# from the reference. Programs (train, sample, microgpt) run the reference unless IMPL is given.
IMPL ?= katas
REF  ?=
HARNESS := $(PY) -m harness --impl $(IMPL) $(if $(REF),--ref $(REF))

# A setting reaches a program only when given on the command line or in the environment,
# so each program's own defaults (and each preset's config file) decide the rest.
given = $(filter command line environment,$(origin $(1)))
flag  = $(if $(call given,$(1)),$(2) "$$$(1)")
yes   = $(if $(filter-out 0 no false,$($(1))),$(2))
PROGRAM_ENV := $(if $(call given,IMPL),GPT_KATAS_IMPL=$(IMPL)) $(if $(REF),GPT_KATAS_REF=$(REF))

.DEFAULT_GOAL := help
.PHONY: help train sample microgpt test kata status hint watch grade handout \
	check notebooks bench lint setup data clean mutate

help: ## list the targets
	@echo "gpt-katas: build a GPT from scratch, one tested idea at a time."
	@echo
	@awk 'BEGIN {FS = ":.*## "} /^[a-z][a-z_-]*:.*## / {printf "  make %-10s %s\n", $$1, $$2}' $(MAKEFILE_LIST)
	@echo
	@echo "Options: IMPL=katas|solutions  REF=01-07 (those katas from the reference)  K=NN"
	@echo "         DATA_MIRROR=dir (copy the data from dir instead of downloading it)"

# --- run the models -------------------------------------------------------------------

train: setup data ## train a GPT on tiny Shakespeare, then print samples (PRESET=cpu|tiny|small|medium STEPS= BATCH= LR= DROPOUT= EVAL_INTERVAL= PATIENCE= SEED= OUT= DEVICE= THREADS= RESUME=1 COMPILE=1)
	@$(PROGRAM_ENV) $(PY) scripts/train.py $(call flag,PRESET,--preset) $(call flag,STEPS,--steps) \
		$(call flag,BATCH,--batch) $(call flag,LR,--lr) $(call flag,DROPOUT,--dropout) \
		$(call flag,EVAL_INTERVAL,--eval-interval) $(call flag,PATIENCE,--patience) \
		$(call flag,SEED,--seed) $(call flag,OUT,--out) $(call flag,DEVICE,--device) \
		$(call flag,THREADS,--threads) $(call yes,RESUME,--resume) $(call yes,COMPILE,--compile)

sample: setup ## make the trained GPT write (PROMPT= TEMPERATURE= TOP_K= TOP_P= N_TOKENS= SEED= SHOW_TOP=5 OUT= CHECKPOINT=)
	@$(PROGRAM_ENV) $(PY) scripts/sample.py $(call flag,OUT,--out) \
		$(call flag,CHECKPOINT,--checkpoint) $(call flag,PROMPT,--prompt) \
		$(call flag,TEMPERATURE,--temperature) $(call flag,TOP_K,--top-k) \
		$(call flag,TOP_P,--top-p) $(call flag,N_TOKENS,--n-tokens) $(call flag,SEED,--seed) \
		$(call flag,SHOW_TOP,--show-top) $(call flag,DEVICE,--device)

microgpt: setup data ## train the pure-Python microGPT on names, print 20 new names (STEPS= SEED= TEMPERATURE=)
	@$(PROGRAM_ENV) $(PY) scripts/microgpt.py $(call flag,STEPS,--steps) $(call flag,SEED,--seed) \
		$(call flag,TEMPERATURE,--temperature)

# --- learn ----------------------------------------------------------------------------

test: setup ## run the katas in order; stop at the first one that fails
	@$(HARNESS) test

kata: setup ## run one kata, every spec, verbosely: make kata K=03
	@$(HARNESS) kata $(K)

status: setup ## the progress table for every kata
	@$(HARNESS) status

hint: setup ## the next hint for a kata: make hint K=03 (RESET=1 starts over)
	@$(HARNESS) hint $(K) $(if $(RESET),--reset)

watch: setup ## rerun the current kata whenever a file under katas/ changes
	@$(HARNESS) watch

# --- teach ----------------------------------------------------------------------------

grade: setup data ## grade the katas into grade/ (STRICT=1 HIDDEN_SPECS=dir K=NN LEARNER=dir TRUSTED_REF=rev)
	@$(PY) -m harness.grade --impl $(IMPL) $(if $(K),--kata $(K)) \
		$(if $(HIDDEN_SPECS),--hidden-specs $(HIDDEN_SPECS)) $(if $(LEARNER),--learner $(LEARNER)) \
		$(if $(TRUSTED_REF),--trusted-ref $(TRUSTED_REF)) $(if $(STRICT),--strict)

handout: setup ## build the learners' repository, without solutions/, into DEST=dir
	@test -n "$(DEST)" || { echo "usage: make handout DEST=dir"; exit 2; }
	@$(PY) -m harness.handout $(DEST)

# --- maintain -------------------------------------------------------------------------

check: setup data ## the repository's own verification (what CI runs)
	@$(PY) -m harness check

notebooks: setup data ## run the lesson notebooks against the solutions (nbval)
	@$(PY) -m pytest --nbval-lax --impl=solutions \
		--nbval-sanitize-with harness/nbval_sanitize.cfg katas/*/*.ipynb

mutate: setup data ## mutation testing of the solutions against their specs, slow (K=03 or K=01-04)
	@nice $(PY) scripts/mutate.py $(if $(K),--kata $(K))

bench: setup data ## benchmarks: microGPT training speed, CPU GPT training -> bench/results/
	@$(PROGRAM_ENV) $(PY) bench/microgpt.py $(call flag,STEPS,--steps) $(call flag,SEED,--seed)
	@$(PROGRAM_ENV) $(PY) bench/train_cpu.py

lint: setup ## ruff
	@$(PY) -m ruff check .

setup: $(VENV)/.installed ## create .venv and install the pinned dependencies (idempotent)

$(VENV)/.installed: pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check $(TORCH)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $@

data: setup ## fetch and sha256-check names.txt and tinyshakespeare.txt (DATA_MIRROR=dir)
	@$(PY) -m data $(if $(DATA_MIRROR),--mirror $(DATA_MIRROR))

clean: ## remove the venv, caches and run outputs (keeps data/ and your katas)
	rm -rf $(VENV) .hints.json runs grade .ruff_cache .hypothesis
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
