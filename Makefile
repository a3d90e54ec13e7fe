# PromptRepro — see README.md. `make test` and `make reproduce-table1` each set up a fresh machine.
SHELL := /bin/bash
SWIFT ?= swift
PROFILE ?= smoke
# Sweep split: WORKERS (default: one single-threaded worker per core; `sweep --help`) and THREADS (total).
WORKERS ?=
THREADS ?=
# Where runs find data: data/ (made by fetch-data) unless DATA_DIR is given.
DATA_DIR ?= data
# data/ is filled on first use; another DATA_DIR is used as it is.
DATA_DEP := $(if $(filter data,$(DATA_DIR)),data/.fetched,)
DB ?= runs/promptrepro.sqlite
# MODEL_DIR=<dir with t5-small/, t5-base/, …> overrides the HF-cache lookup of model columns.
ifneq ($(MODEL_DIR),)
export PROMPTREPRO_MODEL_DIR := $(abspath $(MODEL_DIR))
endif
PROMPTREPRO_SHARED ?= $(abspath ../shared)
export PROMPTREPRO_SHARED

APT_PACKAGES := libopenblas-dev libsqlite3-dev gnuplot-nox pkg-config
BIN := .build/release/promptrepro

.PHONY: all deps build test test-threads test-avx512-emulated bench bench-e2e reproduce-table1 protocol-study reference-venv trajectories interop-check fetch-data manifests report figures bench-reference slurm-sweep slurm-test fuzz fuzz-build fixtures clean help

all: build

help:
	@echo "make reproduce-table1   run DPT Table 1 in PROFILE=$(PROFILE) (installs deps, builds)"
	@echo "make test               install deps, build, run every test"
	@echo "make test-threads       the numeric, model and method tests with 1 and 3 threads (TEST_THREADS=)"
	@echo "make test-avx512-emulated  every test on the AVX-512 code paths, emulated by SIMDe (hosts without AVX-512)"
	@echo "make bench              benchmark JSON to stdout and Reports/bench.json"
	@echo "make bench-e2e [EPOCHS=1 ROUNDS=4]  one few-shot DPT run end to end vs PyTorch pipelines, Reports/bench-e2e.json"
	@echo "make deps               apt-get install $(APT_PACKAGES) when missing"
	@echo "make build              release build of $(BIN)"
	@echo "make fetch-data [SOURCE=dir]  official archives (or a mirror) into data/, verified against Baselines/data.lock"
	@echo "make manifests          few-shot manifests for k = 8/16/32 x seeds 1-3 (committed under Baselines/manifests)"
	@echo "make report [PROFILE=]  every paper table (Markdown + LaTeX) and figure into Reports/"
	@echo "make figures            the paper figures only"
	@echo "make protocol-study     the protocol-variant study (smoke): papers' selection vs dev, generation vs rank"
	@echo "make bench-reference    the pinned PyTorch venv the benchmark compares against ($(BENCH_VENV))"
	@echo "make reference-venv     the pinned torch/transformers/peft venv for the fixture scripts ($(REF_VENV))"
	@echo "make trajectories       regenerate the PyTorch training-trajectory fixtures (scripts/make_trajectories.py)"
	@echo "make interop-check      PromptRepro adapters loaded by PEFT itself give the same logits (needs reference-venv)"
	@echo "make slurm-sweep SPEC=  a sweep through a SLURM job array (shards + merge)"
	@echo "make slurm-test         a single-node SLURM cluster running a small sweep end to end"
	@echo "make fuzz [FUZZ_RUNS=]  libFuzzer targets: safetensors header, dataset readers, tokenizer.json"
	@echo "make fuzz-build         build the fuzz targets only"
	@echo "make fixtures           export the embedded smoke backbones in Hugging Face format"
	@echo "make clean              remove build outputs"

# Installs the system packages that are missing (root, or sudo when available).
deps:
	@missing=""; for p in $(APT_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "deps: installing$$missing"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=""; elif command -v sudo >/dev/null; then SUDO=sudo; \
	  else echo "deps: need root or sudo to install:$$missing" >&2; exit 1; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	else echo "deps: all present ($(APT_PACKAGES))"; fi

build: deps
	$(SWIFT) build -c release --product promptrepro

test: deps
	bash scripts/run-tests.sh

# The numeric, model and method tests again with other thread counts, as on hosts with other core
# counts (results are bit-identical for a given thread count, and no test may assume two threads;
# a test that needs a thread count sets its own). CI runs it after `make test`.
TEST_THREADS ?= 1 3
test-threads: deps
	@for t in $(TEST_THREADS); do \
	  echo "test-threads: PROMPTREPRO_THREADS=$$t"; \
	  PROMPTREPRO_THREADS=$$t bash scripts/run-tests.sh --filter '^(TensorTests|ModelTests|MethodTests)\.' || exit 1; \
	done

# The whole suite on the AVX-512 code paths (GEMM kernel, softmax and dropout passes) with their
# intrinsics emulated by SIMDe, for hosts without AVX-512 (bits, not speed): a scratch copy in
# .build-avx512emu. Installs libsimde-dev when missing. CI runs it after `make test-threads`.
test-avx512-emulated: deps
	bash scripts/avx512-emulated-tests.sh

# Side-by-side benchmark: PromptRepro and PyTorch + transformers (venv made by bench-reference)
# in one invocation, with ratios. QUICK=1: t5-small only; SHAPES=t5-base (comma-separated, of
# t5-small, t5-base, t5-large): those shapes only. Writes Reports/bench.json.
BENCH_VENV ?= .venv-bench
bench: build bench-reference
	@mkdir -p Reports
	$(BIN) bench $(if $(QUICK),--quick) $(if $(SHAPES),--shapes $(SHAPES)) $(if $(THREADS),--threads $(THREADS)) --reference $(BENCH_VENV)/bin/python --out Reports/bench.json

# End to end (issue #21): one complete few-shot DPT run (CB k=32, n=100 r=10, eval every epoch on
# the 56 validation rows, greedy decoding, random-init t5-small) by `promptrepro train`, with the
# opt-in levers, against scripts/bench_e2e_reference.py's DPT-code pipeline (pad to max length)
# and its dynamic-padding variant, interleaved per round (even rounds in reverse order, so an even
# number of rounds is balanced). EPOCHS=1 ROUNDS=4 take 10–26 minutes on 2 busy cores (a round
# 2.5–6.5, mostly PyTorch's). Data: the shared folder's when present, else DATA_DIR. Writes
# Reports/bench-e2e.json.
EPOCHS ?= 1
ROUNDS ?= 4
E2E_DATA := $(if $(wildcard $(PROMPTREPRO_SHARED)/data/superglue/cb/val.jsonl),$(PROMPTREPRO_SHARED)/data,$(DATA_DIR))
bench-e2e: build bench-reference $(if $(filter data,$(E2E_DATA)),$(DATA_DEP),)
	@mkdir -p Reports
	$(BIN) bench-e2e --reference $(BENCH_VENV)/bin/python --epochs $(EPOCHS) --rounds $(ROUNDS) --threads $(or $(THREADS),2) --data-dir $(E2E_DATA) --out Reports/bench-e2e.json >/dev/null

# A venv with torch (CPU use) + transformers from PyPI for the reference benchmark.
bench-reference: $(BENCH_VENV)/.ready
$(BENCH_VENV)/.ready:
	python3 -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/pip install -q --upgrade pip
	$(BENCH_VENV)/bin/pip install -q torch==2.15.0 transformers==5.24.0 safetensors==0.8.0
	@touch $@

# Pinned versions for the fixture scripts (trajectories, parity cases, PEFT interop); never needed by make test.
REF_VENV ?= .venv-ref
reference-venv: $(REF_VENV)/.ready
$(REF_VENV)/.ready:
	python3 -m venv $(REF_VENV)
	$(REF_VENV)/bin/pip install -q --upgrade pip
	$(REF_VENV)/bin/pip install -q torch==2.15.0 transformers==5.24.0 peft==0.21.2 safetensors==0.8.0 numpy
	@touch $@

trajectories: reference-venv
	$(REF_VENV)/bin/python scripts/make_trajectories.py

# PromptRepro → PEFT round trip on the embedded backbones (not part of CI; needs reference-venv).
interop-check: build reference-venv
	PY=$(REF_VENV)/bin/python bash scripts/interop-check.sh

# DPT Table 1 in PROFILE (smoke: embedded backbone, default; cpu: HF-cache checkpoints; paper).
# Resumable: rerunning skips finished runs. Writes Reports/table1.md and Reports/table3.md.
reproduce-table1: build $(DATA_DEP)
	$(BIN) sweep table1 --profile $(PROFILE) $(if $(WORKERS),--workers $(WORKERS)) --db $(DB) --data-dir $(DATA_DIR) $(if $(THREADS),--threads $(THREADS))
	$(BIN) report table1 table3 --profile $(PROFILE) --db $(DB) --data-dir $(DATA_DIR)
	@echo ""; cat Reports/table1.md
	@echo ""; echo "Per-cell results with every metric: $(BIN) results table1 --profile $(PROFILE) --db $(DB)"

# data/ on a fresh machine: copy from ../shared/data when present (CI), else the official archives.
data/.fetched:
	@if [ -d "$(PROMPTREPRO_SHARED)/data" ]; then SOURCE="$(PROMPTREPRO_SHARED)/data" bash scripts/fetch-data.sh; else bash scripts/fetch-data.sh; fi
	@touch $@

# Official archives into data/, or SOURCE=<dir> to copy from a mirror; verified against Baselines/data.lock.
fetch-data:
	SOURCE="$(SOURCE)" bash scripts/fetch-data.sh

# Few-shot manifests for the paper settings (k = 8/16/32 × seeds 1-3 × every task).
manifests: build
	$(BIN) sample --task all --k 8,16,32 --seeds 1,2,3 --data-dir $(if $(DATA),$(DATA),$(PROMPTREPRO_SHARED)/data)

# Protocol variants side by side (issue #20): sweep the study's smoke profile into its own store,
# check every run finished, and render its table from those runs into runs/protocol-study/.
PS_DB ?= runs/protocol-study.sqlite
protocol-study: build $(DATA_DEP)
	$(BIN) sweep protocol-study --profile $(PROFILE) $(if $(WORKERS),--workers $(WORKERS)) --db $(PS_DB) --data-dir $(DATA_DIR)
	@n=$$($(BIN) results protocol-study --profile $(PROFILE) --db $(PS_DB) --format csv | grep -c ",best,accuracy,"); \
	  [ "$$n" -eq 12 ] || { echo "protocol-study: expected 12 finished cells, got $$n" >&2; exit 1; }
	$(BIN) results protocol-study --profile $(PROFILE) --db $(PS_DB)
	$(BIN) report protocol-study --profile $(PROFILE) --db $(PS_DB) --out-dir runs/protocol-study --data-dir $(DATA_DIR)

# Every paper table from the store (or Baselines/results when there is none); the reference rows
# read the validation labels under DATA_DIR.
report: build $(DATA_DEP)
	$(BIN) figures --profile $(PROFILE) --db $(DB)
	$(BIN) report --profile $(PROFILE) --db $(DB) --data-dir $(DATA_DIR)

figures: build
	$(BIN) figures --profile $(PROFILE) --db $(DB)

# SLURM scale-out: SPEC=<spec> PROFILE=smoke TASKS=2 (one array task per shard store, merged after).
slurm-sweep: build $(DATA_DEP)
	SPEC="$(SPEC)" PROFILE="$(PROFILE)" TASKS="$(or $(TASKS),2)" DB="$(DB)" DATA_DIR="$(DATA_DIR)" bash scripts/slurm-sweep.sh

# A single-node SLURM cluster here (Debian packages), then a small sweep through it end to end.
slurm-test: build $(DATA_DEP)
	bash scripts/slurm-local.sh start
	@trap 'bash scripts/slurm-local.sh stop' EXIT; \
	rm -rf runs/slurm/slurm-mini-smoke runs/slurm-test.sqlite; \
	SPEC=Baselines/specs/tests/slurm-mini.yaml PROFILE=smoke TASKS=2 DB=runs/slurm-test.sqlite DATA_DIR="$(DATA_DIR)" bash scripts/slurm-sweep.sh; \
	n=$$($(BIN) results slurm-mini --profile smoke --db runs/slurm-test.sqlite --format csv | grep -c ",best,accuracy,"); \
	echo "slurm-test: $$n of 4 cells finished through a SLURM job array"; test "$$n" -eq 4

# libFuzzer targets (swiftc -sanitize=fuzzer): safetensors header, dataset readers, tokenizer.json.
FUZZ_RUNS ?= 1000000
FUZZ_FLAGS := -sanitize=fuzzer,address -parse-as-library -O
fuzz-build:
	@mkdir -p .build/fuzz fuzz/crashes
	swiftc $(FUZZ_FLAGS) -module-name FuzzSafetensors fuzz/safetensors_header.swift Sources/Models/SafeTensorsHeader.swift -o .build/fuzz/safetensors
	swiftc $(FUZZ_FLAGS) -module-name FuzzReaders fuzz/jsonl_readers.swift Sources/Tasks/Readers.swift Sources/Support/PyText.swift -o .build/fuzz/jsonl
	swiftc $(FUZZ_FLAGS) -module-name FuzzTokenizer fuzz/tokenizer_json.swift Sources/Models/Tokenizers/*.swift Sources/Support/PyText.swift Sources/Support/Links.swift -o .build/fuzz/tokenizer

fuzz: fuzz-build
	@for t in safetensors jsonl tokenizer; do \
	  rm -rf .build/fuzz/corpus-$$t; mkdir -p .build/fuzz/corpus-$$t; cp fuzz/corpus/$$t/* .build/fuzz/corpus-$$t/; \
	  .build/fuzz/$$t -runs=$(FUZZ_RUNS) -max_len=4096 -rss_limit_mb=4096 -artifact_prefix=fuzz/crashes/$$t- .build/fuzz/corpus-$$t \
	    > .build/fuzz/$$t.log 2>&1 || { tail -30 .build/fuzz/$$t.log; echo "fuzz: $$t FAILED (crash input in fuzz/crashes/)"; exit 1; }; \
	  echo "fuzz: $$t $$(grep -o 'Done [0-9]* runs in [0-9]* second(s)' .build/fuzz/$$t.log), no crash"; \
	done

# The embedded smoke backbones in HF format under fixtures/embedded (made by our own code).
fixtures: build
	$(BIN) export-embedded --out fixtures/embedded

clean:
	rm -rf .build
