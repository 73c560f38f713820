# gpt-katas: every command a learner, an instructor or a maintainer needs.
# `make` alone lists them. Each target sets up .venv first if it is missing or stale.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt

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
PROGRAM_ENV := $(if $(call given,IMPL),GPT_KATAS_IMPL=$(IMPL)) $(if $(REF),GPT_KATAS_REF=$(REF)) \
	$(call yes,RECORD,GPT_KATAS_RECORD=1)
# Benchmarks write under runs/bench/; RECORD=1 (a maintainer's full run) writes bench/results/.
# ARCH=modern trains kata 16's model; NPROC=n runs n processes (DDP, or FSDP2 with FSDP=1).

.DEFAULT_GOAL := help
.PHONY: help train speedrun sample microgpt test kata status hint watch grade handout \
	posttrain posttrain-base posttrain-sft posttrain-dpo posttrain-grpo posttrain-bench chat \
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

train: setup data ## train a GPT on tiny Shakespeare, then print samples (PRESET=<a file in configs/> STEPS= BATCH= LR= DROPOUT= EVAL_INTERVAL= PATIENCE= SEED= OUT= DEVICE= THREADS= RESUME=1 OVERWRITE=1 COMPILE=1 ARCH=gpt2|modern MLP=moe N_EXPERT=8 TOP_K=2 NPROC=n FSDP=1 TOKENIZER=char|bpe BPE_VOCAB=768 OPTIM=adamw|muon)
	@$(PROGRAM_ENV) $(PY) scripts/train.py $(call flag,PRESET,--preset) $(call flag,STEPS,--steps) \
		$(call flag,ARCH,--arch) $(call flag,NPROC,--nproc) $(call yes,FSDP,--fsdp) $(call flag,OPTIM,--optim) \
		$(call flag,BATCH,--batch) $(call flag,LR,--lr) $(call flag,DROPOUT,--dropout) \
		$(call flag,EVAL_INTERVAL,--eval-interval) $(call flag,PATIENCE,--patience) \
		$(call flag,SEED,--seed) $(call flag,OUT,--out) $(call flag,DEVICE,--device) \
		$(call flag,THREADS,--threads) $(call yes,RESUME,--resume) $(call yes,COMPILE,--compile) \
		$(call yes,OVERWRITE,--overwrite) $(call flag,TOKENIZER,--tokenizer) \
		$(call flag,BPE_VOCAB,--bpe-vocab) $(call flag,MLP,--mlp) $(call flag,N_EXPERT,--n-expert) \
		$(call flag,TOP_K,--top-k)

speedrun: setup data ## the fastest recipe here to nanoGPT's quality: stops at val <= 1.88 (CPU) or 1.47 (GPU), prints the time (TARGET= PRESET= ARCH= OPTIM= COMPILE=1 DEVICE= THREADS= OUT=)
	@$(PROGRAM_ENV) $(PY) scripts/speedrun.py $(call flag,TARGET,--target-val) \
		$(call flag,PRESET,--preset) $(call flag,ARCH,--arch) $(call flag,OPTIM,--optim) \
		$(call yes,COMPILE,--compile) $(call flag,DEVICE,--device) $(call flag,THREADS,--threads) \
		$(call flag,OUT,--out)

sample: setup ## make the trained GPT write (PROMPT= TEMPERATURE= TOP_K=n|all TOP_P= N_TOKENS= SEED= SHOW_TOP=5 OUT= CHECKPOINT= ARCH=modern MLP=moe TOKENIZER=bpe)
	@$(PROGRAM_ENV) $(PY) scripts/sample.py $(call flag,OUT,--out) $(call flag,ARCH,--arch) \
		$(call flag,MLP,--mlp) $(call flag,TOKENIZER,--tokenizer) \
		$(call flag,CHECKPOINT,--checkpoint) $(call flag,PROMPT,--prompt) \
		$(call flag,TEMPERATURE,--temperature) $(call flag,TOP_K,--top-k) \
		$(call flag,TOP_P,--top-p) $(call flag,N_TOKENS,--n-tokens) $(call flag,SEED,--seed) \
		$(call flag,SHOW_TOP,--show-top) $(call flag,DEVICE,--device)

microgpt: setup data ## train the pure-Python microGPT on names, print 20 new names (STEPS= SEED= TEMPERATURE=)
	@$(PROGRAM_ENV) $(PY) scripts/microgpt.py $(call flag,STEPS,--steps) $(call flag,SEED,--seed) \
		$(call flag,TEMPERATURE,--temperature)

# --- the post-training track (katas 20-22): base -> SFT -> DPO and -> GRPO, then chat --
# Each stage reads the one before it in OUT (default runs/posttrain) and writes its own folder.
TRACK = $(call flag,OUT,--out) $(if $(call yes,QUICK,1),--config configs/posttrain-tiny.json) \
	$(call flag,SEED,--seed) $(call flag,DEVICE,--device) $(call flag,THREADS,--threads) \
	$(call yes,OVERWRITE,--overwrite)
STAGE_FLAGS = $(TRACK) $(call flag,STEPS,--steps) $(call flag,BATCH,--batch) $(call flag,LR,--lr)
GRPO_FLAGS = $(call flag,GROUP,--group) $(call flag,PROMPTS,--prompts) $(call flag,KL,--kl) \
	$(call flag,TEMPERATURE,--temperature) $(call flag,CLIP,--clip) \
	$(call flag,AGGREGATION,--aggregation)

posttrain: setup data ## the whole track: pretrain, SFT, DPO, GRPO, each with its held-out accuracy (OUT= SEED= OVERWRITE=1 QUICK=1)
	@$(PROGRAM_ENV) $(PY) scripts/base_train.py $(TRACK)
	@$(PROGRAM_ENV) $(PY) scripts/chat_sft.py $(TRACK)
	@$(PROGRAM_ENV) $(PY) scripts/chat_dpo.py $(TRACK)
	@$(PROGRAM_ENV) $(PY) scripts/chat_grpo.py $(TRACK)

posttrain-base: setup data ## the track's base model: kata 16's model on the train names (STEPS= BATCH= LR= RESUME=1 OUT= SEED= OVERWRITE=1)
	@$(PROGRAM_ENV) $(PY) scripts/base_train.py $(STAGE_FLAGS) $(call yes,RESUME,--resume)

posttrain-sft: setup data ## SFT of the base model on the tasks (kata 20) (STEPS= BATCH= LR= OUT= SEED= OVERWRITE=1)
	@$(PROGRAM_ENV) $(PY) scripts/chat_sft.py $(STAGE_FLAGS)

posttrain-dpo: setup data ## DPO of the SFT model on its own wrong replies (kata 21) (BETA= PAIRS= STEPS= LR= OVERWRITE=1)
	@$(PROGRAM_ENV) $(PY) scripts/chat_dpo.py $(STAGE_FLAGS) $(call flag,BETA,--beta) \
		$(call flag,PAIRS,--pairs) $(call flag,TEMPERATURE,--temperature)

posttrain-grpo: setup data ## GRPO of the SFT model with the tasks' checker as reward (kata 22) (GROUP= PROMPTS= KL= AGGREGATION=grpo|dr_grpo|dapo STEPS= LR= OVERWRITE=1)
	@$(PROGRAM_ENV) $(PY) scripts/chat_grpo.py $(STAGE_FLAGS) $(GRPO_FLAGS)

chat: setup ## talk to the trained assistant: "reverse olivia", "count a in anna" (STAGE=sft|dpo|grpo OUT= TEMPERATURE= TOP_K= SEED=)
	@$(PROGRAM_ENV) $(PY) scripts/chat_cli.py $(call flag,OUT,--out) $(call flag,STAGE,--stage) \
		$(call flag,CHECKPOINT,--checkpoint) $(call flag,TEMPERATURE,--temperature) \
		$(call flag,TOP_K,--top-k) $(call flag,SEED,--seed) $(call flag,DEVICE,--device)

posttrain-bench: setup data ## the track's table: 4 stages x 3 seeds, held-out accuracy and minutes -> runs/bench/posttrain.* (QUICK=1 PARALLEL=1 RECORD=1: bench/results/)
	@$(PROGRAM_ENV) $(PY) bench/posttrain.py $(call yes,QUICK,--quick) $(call yes,PARALLEL,--parallel) \
		$(call flag,DEVICE,--device) $(call flag,THREADS,--threads)

# --- learn ----------------------------------------------------------------------------

# A ladder in progress makes `make test` exit 1 (CI and instructors read that status), and
# make then adds its own `*** [test] Error 1` line, which no recipe can drop without dropping
# the status too (a `-` prefix or .IGNORE would pass an unfinished ladder). So the harness's
# last line says, just before it, that this is the normal state of an unfinished kata.
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

bench: setup data ## benchmarks: microGPT training speed, CPU GPT training, modern/GPT-2 throughput, where the training loop's time goes, modern generation, BPE training -> runs/bench/ (RECORD=1: bench/results/)
	@$(PROGRAM_ENV) $(PY) bench/microgpt.py $(call flag,STEPS,--steps) $(call flag,SEED,--seed)
	@$(PROGRAM_ENV) $(PY) bench/train_cpu.py
	@$(PROGRAM_ENV) $(PY) bench/throughput.py
	@$(PROGRAM_ENV) $(PY) bench/loop_profile.py
	@$(PROGRAM_ENV) $(PY) bench/kv_cache.py
	@$(PROGRAM_ENV) $(PY) bench/parts.py
	@$(PROGRAM_ENV) $(PY) bench/generation.py
	@$(PROGRAM_ENV) $(PY) bench/bpe_train.py

ablate: setup data ## GPT-2 parts against their 2026 replacements, 3 seeds each -> runs/bench/ablate.* (QUICK=1 DEVICE= RECORD=1: bench/results/)
	@$(PROGRAM_ENV) $(PY) bench/ablate.py $(call yes,QUICK,--quick) $(call flag,DEVICE,--device)

scaling: setup data ## loss against model size and data, with the fitted power law -> runs/bench/scaling.* (QUICK=1 DEVICE= RECORD=1)
	@$(PROGRAM_ENV) $(PY) bench/scaling.py $(call yes,QUICK,--quick) $(call flag,DEVICE,--device)

tokenizers: setup data ## the same GPT on characters and on BPE, compared in bits per character -> runs/bench/ (QUICK=1 THREADS= RECORD=1)
	@$(PROGRAM_ENV) nice $(PY) bench/tokenizers.py $(call yes,QUICK,--quick) $(call flag,THREADS,--threads)

lint: setup ## ruff's linter and formatter (both part of make check)
	@$(PY) -m ruff check .
	@$(PY) -m ruff format --check .

setup: $(VENV)/.installed ## create .venv and install the pinned dependencies (idempotent)

$(VENV)/.installed: pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) torch
	$(PIP) -e '.[maintainer]'
	@touch $@

data: setup ## fetch and sha256-check names.txt and tinyshakespeare.txt (DATA_MIRROR=dir)
	@$(PY) -m harness.data $(if $(DATA_MIRROR),--mirror $(DATA_MIRROR))

clean: ## remove the venv, caches and run outputs (keeps data/ and your katas)
	rm -rf $(VENV) .hints.json .status-cache.json runs grade grade-class .ruff_cache .hypothesis
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
