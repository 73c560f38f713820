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
# ARCH=modern trains kata 16's model; NPROC=n runs n processes (DDP, or FSDP2 with FSDP=1).
TRAINER = $(if $(NPROC),$(PY) -m torch.distributed.run --standalone --nproc_per_node=$(NPROC),$(PY))

.DEFAULT_GOAL := help
.PHONY: help train sample microgpt test kata status hint watch grade handout \
	check notebooks bench ablate scaling tokenizers mutate lint setup data clean

help: ## list the targets
	@echo "gpt-katas: build a GPT from scratch, one tested idea at a time."
	@echo
	@awk 'BEGIN {FS = ":.*## "} /^[a-z][a-z_-]*:.*## / {printf "  make %-10s %s\n", $$1, $$2}' $(MAKEFILE_LIST)
	@echo
	@echo "Options: IMPL=katas|solutions  REF=01-07 (those katas from the reference)  K=NN"
	@echo "         DATA_MIRROR=dir (copy the data from dir instead of downloading it)"
	@echo "         ARCH=modern (train/sample kata 16's RMSNorm+RoPE+SwiGLU+GQA model, same size)"

# --- run the models -------------------------------------------------------------------

train: setup data ## train a GPT on tiny Shakespeare, then print samples (PRESET=cpu|tiny|small|medium STEPS= BATCH= LR= DROPOUT= EVAL_INTERVAL= PATIENCE= SEED= OUT= DEVICE= THREADS= RESUME=1 OVERWRITE=1 COMPILE=1 ARCH=gpt2|modern NPROC=n FSDP=1 TOKENIZER=char|bpe BPE_VOCAB=768)
	@$(PROGRAM_ENV) $(TRAINER) scripts/train.py $(call flag,PRESET,--preset) $(call flag,STEPS,--steps) \
		$(call flag,ARCH,--arch) $(call yes,FSDP,--fsdp) \
		$(call flag,BATCH,--batch) $(call flag,LR,--lr) $(call flag,DROPOUT,--dropout) \
		$(call flag,EVAL_INTERVAL,--eval-interval) $(call flag,PATIENCE,--patience) \
		$(call flag,SEED,--seed) $(call flag,OUT,--out) $(call flag,DEVICE,--device) \
		$(call flag,THREADS,--threads) $(call yes,RESUME,--resume) $(call yes,COMPILE,--compile) \
		$(call yes,OVERWRITE,--overwrite) $(call flag,TOKENIZER,--tokenizer) \
		$(call flag,BPE_VOCAB,--bpe-vocab)

sample: setup ## make the trained GPT write (PROMPT= TEMPERATURE= TOP_K=n|all TOP_P= N_TOKENS= SEED= SHOW_TOP=5 OUT= CHECKPOINT= ARCH=modern)
	@$(PROGRAM_ENV) $(PY) scripts/sample.py $(call flag,OUT,--out) $(call flag,ARCH,--arch) \
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

status: setup ## the progress table for every kata (cached: reruns only what changed)
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

.PHONY: grade-class
grade-class: setup data ## grade every learner: LEARNERS=dir (of checkouts) or file (of clone URLs)
	@test -n "$(LEARNERS)" || { echo "usage: make grade-class LEARNERS=dir-or-file-of-urls [K=NN]"; exit 2; }
	@$(PY) -m harness.grade --class $(LEARNERS) $(if $(K),--kata $(K)) \
		$(if $(HIDDEN_SPECS),--hidden-specs $(HIDDEN_SPECS))

handout: setup ## build the learners' repository, without solutions/, into DEST=dir
	@test -n "$(DEST)" || { echo "usage: make handout DEST=dir"; exit 2; }
	@$(PY) -m harness.handout $(DEST)

# --- maintain -------------------------------------------------------------------------

check: setup data ## the repository's own verification (what CI runs)
	@$(PY) -m harness check

notebooks: setup data ## check every lesson notebook: stored as its source builds it, runs on the solutions (nbval)
	@$(PY) -m pytest --nbval-lax --impl=solutions --nbval-sanitize-with harness/nbval_sanitize.cfg \
		tests/test_notebooks.py katas/*/*.ipynb

mutate: setup data ## mutation testing of the solutions against their specs, slow (K=03 or K=01-04)
	@nice $(PY) scripts/mutate.py $(if $(K),--kata $(K))

bench: setup data ## benchmarks: microGPT training speed, CPU GPT training, modern generation, BPE training -> bench/results/
	@$(PROGRAM_ENV) $(PY) bench/microgpt.py $(call flag,STEPS,--steps) $(call flag,SEED,--seed)
	@$(PROGRAM_ENV) $(PY) bench/train_cpu.py
	@$(PROGRAM_ENV) $(PY) bench/kv_cache.py
	@$(PROGRAM_ENV) $(PY) bench/parts.py
	@$(PROGRAM_ENV) $(PY) bench/generation.py
	@$(PROGRAM_ENV) $(PY) bench/bpe_train.py

ablate: setup data ## GPT-2 parts against their 2026 replacements, 3 seeds each -> bench/results/ablate.* (QUICK=1 DEVICE=)
	@$(PROGRAM_ENV) $(PY) bench/ablate.py $(call yes,QUICK,--quick) $(call flag,DEVICE,--device)

scaling: setup data ## loss against model size and data, with the fitted power law -> bench/results/scaling.* (QUICK=1 DEVICE=)
	@$(PROGRAM_ENV) $(PY) bench/scaling.py $(call yes,QUICK,--quick) $(call flag,DEVICE,--device)

tokenizers: setup data ## the same GPT on characters and on BPE, compared in bits per character (QUICK=1 THREADS=)
	@$(PROGRAM_ENV) nice $(PY) bench/tokenizers.py $(call yes,QUICK,--quick) $(call flag,THREADS,--threads)

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
	rm -rf $(VENV) .hints.json .status-cache.json runs grade grade-class .ruff_cache .hypothesis
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
