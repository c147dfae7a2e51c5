# The front door. `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON_BIN ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python

# Image names and tags are defined here only; scripts and tests ask `make print-images`.
IMAGE_NAME ?= sagemaker-image-classifier
TAG ?= $(shell git rev-parse --short=12 HEAD 2>/dev/null || echo dev)$(shell git diff --quiet HEAD -- docker container_src 2>/dev/null || echo -dirty)
REGISTRY ?=
IMAGE_PREFIX := $(if $(REGISTRY),$(REGISTRY)/,)
TRAIN_IMAGE ?= $(IMAGE_PREFIX)$(IMAGE_NAME)-train:$(TAG)
BASE_IMAGE ?= public.ecr.aws/docker/library/python:3.11-slim-bookworm
# ImageNet weights baked into the training image (space-separated torchvision model names).
WEIGHTS_MODELS ?= resnet50

DATA ?= build/sample-data
OUTPUT ?= build/output
# The small configuration that trains in CPU minutes (tests, CI, demo); the cloud default is ResNet50 at 224.
DEMO_HP ?= --hp model-name=resnet18 --hp weights=none --hp fine-tune=full --hp image-size=64 \
           --hp epochs=8 --hp batch-size=32 --hp lr=0.003 --hp augment=basic

export SAGEMAKER_SUPPRESS_V2_WARNING=1

.PHONY: help setup test test-unit test-integration docker-engine build print-images sample-data train demo \
        benchmark lock clean

help:
	@echo "make setup             dev venv ($(VENV)) with the pinned host packages"
	@echo "make test              every test, Docker included (installs/starts the engine when needed)"
	@echo "make test-unit         unit tests only (no Docker)"
	@echo "make build             build the training image ($(TRAIN_IMAGE))"
	@echo "make print-images      image references, one per line, training image first"
	@echo "make sample-data       generate the sample image set in $(DATA)"
	@echo "make train             local-mode training job on DATA (HP='--hp NAME=VALUE ...')"
	@echo "make demo              build, sample data, train locally, print test accuracy"
	@echo "make benchmark         data-loader benchmark (prints the speed-up ratio)"
	@echo "make clean             remove build outputs (keeps the wheelhouse and images)"

$(VENV)/.installed: pyproject.toml requirements/host.lock container_src/pyproject.toml
	@command -v $(PYTHON_BIN) >/dev/null || { echo "error: $(PYTHON_BIN) not found; install Python 3.11"; exit 1; }
	$(PYTHON_BIN) -m venv $(VENV)
	$(PY) -m pip install --quiet -c requirements/host.lock -e . -e container_src
	@touch $@

setup: $(VENV)/.installed

docker-engine:
	@scripts/ensure_docker.sh

build: setup docker-engine
	$(PY) scripts/fetch_weights.py $(WEIGHTS_MODELS)
	BASE_IMAGE=$(BASE_IMAGE) PYTHON=$(PY) docker/build.sh train $(TRAIN_IMAGE)

print-images:
	@echo $(TRAIN_IMAGE)

sample-data: setup
	$(PY) scripts/make_sample_data.py $(DATA)

train: setup
	$(PY) scripts/train.py --local --data $(DATA) --output-dir $(OUTPUT) --image $(TRAIN_IMAGE) $(HP)

demo: build
	@test -d $(DATA) || $(PY) scripts/make_sample_data.py $(DATA)
	$(PY) scripts/train.py --local --data $(DATA) --output-dir $(OUTPUT) --image $(TRAIN_IMAGE) $(DEMO_HP)
	@$(PY) scripts/show_model.py $(OUTPUT)/model.tar.gz

test-unit: setup
	$(PY) -m pytest tests/unit -q

test-integration: build
	TRAIN_IMAGE=$(TRAIN_IMAGE) $(PY) -m pytest tests/integration -q

test: build
	TRAIN_IMAGE=$(TRAIN_IMAGE) $(PY) -m pytest tests -q

benchmark: setup
	$(PY) benchmarks/data_loader.py

lock: setup
	$(PY) docker/lock.py

clean:
	rm -rf $(OUTPUT) build/sample-data build/weights .pytest_cache
	docker image prune -f >/dev/null 2>&1 || true
