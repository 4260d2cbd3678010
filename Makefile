# levelup: the README's two commands are `make demo` and `make test`.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test venv lint clean

# The CPU wheel of torch goes in first: the package asks only for a range (torch>=2.6),
# which the installed 2.13.0 satisfies, so pip never pulls a multi-GB CUDA build.
$(STAMP): pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

# The published ANI-1x ensemble ships in the torchani 2.2.4 wheel on PyPI; fetch it once into
# levelup's cache so that tests and studies never need the network afterwards.
ANI1X := $(VENV)/.ani1x-fetched
$(ANI1X): $(STAMP)
	$(BIN)/levelup --quiet pretrained ani-1x --download-only
	touch $(ANI1X)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/levelup demo --out runs/demo

lint: $(STAMP)
	$(BIN)/ruff check src tests bench examples

test: $(STAMP) $(ANI1X)
	$(BIN)/ruff check src tests bench examples
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) runs build src/*.egg-info
