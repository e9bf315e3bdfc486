# Set-up and entry points. `make demo` and `make test` do all the set-up on a fresh machine (README).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
EXTRAS ?= train,export,runtime,dev

.PHONY: setup demo lint test bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e ".[$(EXTRAS)]"
	$(PY) -m pip install --quiet -c constraints.txt --no-deps ultralytics
	touch $@

demo: setup
	$(VENV)/bin/emoedge demo demo

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/vermin --quiet --no-tips --eval-annotations --target=3.10- --violations emoedge

test: lint
	$(PY) -m pytest -q

bench: setup
	$(PY) benchmarks/train_throughput.py

clean:
	rm -rf $(VENV) demo runs .pytest_cache
