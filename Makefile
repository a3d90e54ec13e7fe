# PromptRepro — see README.md. `make test` and `make reproduce-table1` each set up a fresh machine.
SHELL := /bin/bash
SWIFT ?= swift
PROFILE ?= smoke
WORKERS ?= 2
THREADS ?=
# Where runs find data: data/ (made by fetch-data) unless DATA_DIR is given.
DATA_DIR ?= data
DB ?= runs/promptrepro.sqlite
# MODEL_DIR=<dir with t5-small/, t5-base/, …> overrides the HF-cache lookup of model columns.
ifneq ($(MODEL_DIR),)
export PROMPTREPRO_MODEL_DIR := $(abspath $(MODEL_DIR))
endif
PROMPTREPRO_SHARED ?= $(abspath ../shared)
export PROMPTREPRO_SHARED

APT_PACKAGES := libopenblas-dev libsqlite3-dev gnuplot-nox pkg-config
BIN := .build/release/promptrepro

.PHONY: all deps build test bench reproduce-table1 fetch-data manifests report figures clean help

all: build

help:
	@echo "make reproduce-table1   run DPT Table 1 in PROFILE=$(PROFILE) (installs deps, builds)"
	@echo "make test               install deps, build, run every test"
	@echo "make bench              benchmark JSON to stdout and Reports/bench.json"
	@echo "make deps               apt-get install $(APT_PACKAGES) when missing"
	@echo "make build              release build of $(BIN)"
	@echo "make fetch-data [SOURCE=dir]  official archives (or a mirror) into data/, verified against Baselines/data.lock"

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

bench: build
	@mkdir -p Reports
	$(BIN) bench $(if $(THREADS),--threads $(THREADS)) --out Reports/bench.json

# DPT Table 1 in PROFILE (smoke: embedded backbone, default; cpu: HF-cache checkpoints; paper).
# Resumable: rerunning skips finished runs. Writes Reports/table1.md and Reports/table3.md.
reproduce-table1: build $(DATA_DIR)/.fetched
	$(BIN) sweep table1 --profile $(PROFILE) --workers $(WORKERS) --db $(DB) --data-dir $(DATA_DIR) $(if $(THREADS),--threads $(THREADS))
	$(BIN) report table1 table3 --profile $(PROFILE) --db $(DB)
	$(BIN) results table1 --profile $(PROFILE) --db $(DB) --format md | head -5

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

# Every paper table from the store (or Baselines/results when there is none).
report: build
	$(BIN) figures --profile $(PROFILE) --db $(DB)
	$(BIN) report --profile $(PROFILE) --db $(DB)

figures: build
	$(BIN) figures --profile $(PROFILE) --db $(DB)

clean:
	rm -rf .build
