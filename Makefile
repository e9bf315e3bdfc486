# Set-up and entry points. `make demo` and `make test` do all the set-up on a fresh machine (README).
#
# SET picks the library set: `x86` (constraints.txt, every extra) or `jetpack6` (constraints-jetpack6.txt: the
# versions JetPack 6.1/6.2 users have, on its Python 3.10; chosen by default on a Jetson). CI runs `make test
# SET=jetpack6 PYTHON=<python3.10>` on x86 with PyPI's wheels of those versions; on a Jetson the same command takes
# NVIDIA's CUDA builds from the Jetson AI Lab index and sees JetPack's TensorRT (README, "Jetson (JetPack 6)").
# `serve` (constraints-serve.txt): a Triton serving machine's set, for `emoedge serve` (PyTriton needs numpy < 2;
# README, "Serving with Triton"). Each constraints file is resolved for its set's Python (PYTHON_VERSIONS: set-up
# refuses another interpreter in one line) by `make constraints` (tools/constraints.py).
PYTHON ?= python3
JETSON := $(wildcard /etc/nv_tegra_release)
SET ?= $(if $(JETSON),jetpack6,x86)

ifeq ($(SET),jetpack6)
VENV ?= .venv-jetpack6
CONSTRAINTS ?= constraints-jetpack6.txt
# No Model Optimizer in this set (it needs onnxruntime >= 1.22): FP16/INT8 ONNX conversion happens on x86, so no
# `export` extra; onnxslim is the one export package the ONNX export needs.
EXTRAS ?= train,runtime,explain,dev
EXTRA_PACKAGES ?= onnxslim
TESTS ?= tests/runtime tests/service tests/backends tests/evaluation tests/model tests/test_runtime_only.py \
	tests/export/test_export_onnx.py tests/export/test_export_tensorrt.py tests/export/test_tensorrt_fixes.py tests/bench \
	tests/export/test_engine_compat.py tests/gpu/test_gpu_data.py tests/training/test_training_distributed.py \
	tests/test_architecture.py
PYTHON_VERSIONS ?= 3.10
# On a Jetson: JetPack's TensorRT lives in the system Python, and CUDA builds of torch come from NVIDIA's index.
VENV_FLAGS ?= $(if $(JETSON),--system-site-packages,)
PIP_INDEX ?= $(if $(JETSON),--index-url https://pypi.jetson-ai-lab.io/jp6/cu126,)
else ifeq ($(SET),serve)
VENV ?= .venv-serve
CONSTRAINTS ?= constraints-serve.txt
# A Triton server's set: PyTriton needs numpy < 2 (constraints-serve.txt); onnxslim for the tests' ONNX exports.
EXTRAS ?= train,runtime,serve,dev
EXTRA_PACKAGES ?= onnxslim
TESTS ?= tests/serve tests/backends/test_backend_triton.py tests/export/test_export_triton.py
PYTHON_VERSIONS ?= 3.11
VENV_FLAGS ?=
PIP_INDEX ?=
else ifeq ($(SET),x86)
VENV ?= .venv
CONSTRAINTS ?= constraints.txt
EXTRAS ?= train,export,runtime,explain,triton,dev
EXTRA_PACKAGES ?=
TESTS ?=
PYTHON_VERSIONS ?= 3.11 3.12 3.13
VENV_FLAGS ?=
PIP_INDEX ?=
else
$(error SET=$(SET): expected x86, jetpack6 or serve)
endif

PY := $(VENV)/bin/python
PIP := $(PY) -m pip install --quiet $(PIP_INDEX) -c $(CONSTRAINTS)
TOOLS := build/venv-tools

.PHONY: setup demo lint test bench gpu-check constraints check-constraints set clean

setup: $(VENV)/.installed

# Ultralytics goes in with --no-deps: its own requirements would add opencv-python beside opencv-python-headless,
# two builds of the same cv2 module.
$(VENV)/.installed: pyproject.toml $(CONSTRAINTS)
	@$(PYTHON) tools/require_python.py $(SET) $(CONSTRAINTS) $(PYTHON_VERSIONS)
	$(PYTHON) -m venv $(VENV_FLAGS) $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PIP) -e ".[$(EXTRAS)]" $(EXTRA_PACKAGES)
	$(PIP) --no-deps ultralytics
	touch $@

demo: setup
	$(VENV)/bin/emoedge demo demo

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/vermin --quiet --no-tips --eval-annotations --target=3.10- --violations emoedge

test: lint
	$(PY) -m pytest -q $(TESTS)

bench: setup
	$(PY) benchmarks/train_throughput.py

# On a GPU machine (desktop or Jetson): the GPU tests with EMOEDGE_REQUIRE_GPU=1 and `emoedge bench` of the edge and
# paper models on every backend present, in under 10 minutes, into benchmarks/results/gpu-<GPU name>/
# (benchmarks/gpu_check.py). Without a CUDA GPU it fails at once, in one line naming what it checked.
gpu-check: setup
	$(PY) benchmarks/gpu_check.py

# Re-resolve every constraints file for its set's Python and platforms (tools/constraints.py, with uv), then check
# them; any interpreter runs it. uv comes from PyPI into a venv of its own, at constraints.txt's version.
constraints: $(TOOLS)/.installed
	$(TOOLS)/bin/python tools/constraints.py write
	$(TOOLS)/bin/python tools/constraints.py check

check-constraints: $(TOOLS)/.installed
	$(TOOLS)/bin/python tools/constraints.py check

$(TOOLS)/.installed: constraints.txt
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install --quiet -c constraints.txt uv
	touch $@

# What SET installs, for tests/test_constraints.py (which holds tools/constraints.py's sets to the same).
set:
	@echo "CONSTRAINTS=$(CONSTRAINTS)"; echo "EXTRAS=$(EXTRAS)"; echo "EXTRA_PACKAGES=$(EXTRA_PACKAGES)"; \
	echo "PYTHON_VERSIONS=$(PYTHON_VERSIONS)"

clean:
	rm -rf .venv .venv-jetpack6 .venv-serve $(TOOLS) demo runs .pytest_cache
