# judgecal task runner. `make demo` and `make test` are all a fresh machine needs.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DEMO_DB ?= demo.duckdb
export LITELLM_LOCAL_MODEL_COST_MAP := True

CONTRACTS := .venv-contracts
.PHONY: install demo test contracts check lint format typecheck bench clean

# Nothing is installed into $(PYTHON) itself (a distribution's Python refuses that, PEP 668):
# the virtualenv is made with the standard library's venv (Debian: apt-get install python3-venv)
# and uv is bootstrapped inside it.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check uv
	$(BIN)/python -m uv pip install --quiet --python $(BIN)/python --compile-bytecode -e '.[dev,serve,inspect]'
	touch $(STAMP)

install: $(STAMP)

## The main job: an offline audit of two real judges (GPT-4 and ChatGPT, recorded in both
## presentation orders) against expert labels on 200 MT-Bench pairs, into an embedded DuckDB,
## with an HTML report per judge in audit/ (ChatGPT cascaded to GPT-4 where it abstains);
## then a pointwise audit: ChatGPT's 1-5 scores on six criteria for 1,056 HANNA stories against
## three raters each.
demo: $(STAMP)
	rm -rf $(DEMO_DB) $(DEMO_DB).wal audit
	$(BIN)/judgecal run --rubric pairwise_helpfulness --items examples/mtbench/items.jsonl \
		--model replay/examples/mtbench/gpt4.replay.jsonl --db $(DEMO_DB) --run-id gpt4
	$(BIN)/judgecal run --rubric pairwise_helpfulness --items examples/mtbench/items.jsonl \
		--model replay/examples/mtbench/chatgpt.replay.jsonl --db $(DEMO_DB) --run-id chatgpt
	$(BIN)/judgecal labels import examples/mtbench/labels.jsonl --db $(DEMO_DB)
	$(BIN)/judgecal audit --run gpt4 --db $(DEMO_DB) --out audit/gpt4
	$(BIN)/judgecal audit --run chatgpt --db $(DEMO_DB) --out audit/chatgpt --fallback-run gpt4 --alpha 0.2
	$(BIN)/judgecal agree --run gpt4 --db $(DEMO_DB)
	$(BIN)/judgecal run --rubric story_quality --items examples/hanna/items.jsonl \
		--model replay/examples/hanna/chatgpt.replay.jsonl --db $(DEMO_DB) --run-id hanna-chatgpt
	$(BIN)/judgecal labels import examples/hanna/labels.jsonl --db $(DEMO_DB) --dataset hanna/items
	$(BIN)/judgecal audit --run hanna-chatgpt --db $(DEMO_DB) --out audit/hanna-chatgpt

test: $(STAMP)
	$(BIN)/python -m pytest

## Contract tests against the real trainer libraries (TRL's GRPOTrainer, verl's loader and
## reward managers) in their own environment: they pull in PyTorch (CPU is enough).
contracts: $(STAMP)
	test -x $(CONTRACTS)/bin/python || $(BIN)/python -m uv venv --quiet --python $(BIN)/python $(CONTRACTS)
	$(BIN)/python -m uv pip install --quiet --python $(CONTRACTS)/bin/python -e '.[dev,serve,inspect]' \
		'trl>=1.16' 'verl>=0.9'
	# OpenRLHF's agent executor alone: its full dependency set builds flash-attn from source
	$(BIN)/python -m uv pip install --quiet --python $(CONTRACTS)/bin/python --no-deps 'openrlhf==0.11.2'
	$(CONTRACTS)/bin/python -m pytest -p no:cacheprovider tests/contracts

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

typecheck: $(STAMP)
	$(BIN)/mypy

check: lint typecheck test

bench: $(STAMP)
	$(BIN)/python bench/pipeline.py
	$(BIN)/python bench/agreement.py
	$(BIN)/python bench/rewards.py
	$(BIN)/python bench/local_judge.py
	$(BIN)/python bench/service.py
	$(BIN)/python bench/items.py

clean:
	rm -rf $(VENV) $(CONTRACTS) .mypy_cache .ruff_cache .pytest_cache $(DEMO_DB) $(DEMO_DB).wal
