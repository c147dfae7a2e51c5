# The front door. `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON_BIN ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python

# Image names and tags are defined here only; scripts and tests ask `make print-images`.
IMAGE_NAME ?= sagemaker-image-classifier
# -dirty: the build context differs from the commit (changed or untracked files where docker reads them).
TAG ?= $(shell git rev-parse --short=12 HEAD 2>/dev/null || echo dev)$(shell test -z "$$(git status --porcelain -- docker container_src .dockerignore 2>/dev/null)" || echo -dirty)
REGISTRY ?=
IMAGE_PREFIX := $(if $(REGISTRY),$(REGISTRY)/,)
TRAIN_IMAGE ?= $(IMAGE_PREFIX)$(IMAGE_NAME)-train:$(TAG)
SERVE_IMAGE ?= $(IMAGE_PREFIX)$(IMAGE_NAME)-serve:$(TAG)
# The slim serving image: no torch, ONNX Runtime (docker/requirements/serve-cpu.in).
SERVE_CPU_IMAGE ?= $(IMAGE_PREFIX)$(IMAGE_NAME)-serve-cpu:$(TAG)
# By digest: a tag can move, a digest names one image (the multi-platform index of 3.11-slim-bookworm).
BASE_IMAGE ?= public.ecr.aws/docker/library/python:3.11-slim-bookworm@sha256:2e32f7d302adc1c37428355c1e646897c0c53f4fd60b6a551245fb90ee129f91
# Extra `docker build` flags for every image, e.g. DOCKER_BUILD_FLAGS=--no-cache (what a CI retry does).
DOCKER_BUILD_FLAGS ?=
# The build context (holding docker/Dockerfile): this repository; the push and buildspec tests build
# small images through the same `make build` by pointing it elsewhere.
BUILD_CONTEXT ?= .
# ImageNet weights baked into the training image (space-separated torchvision model names).
WEIGHTS_MODELS ?= resnet50

DATA ?= build/sample-data
OUTPUT ?= build/output
# Tuning (scripts/tune.py): MODE=local runs local-mode jobs here, MODE=cloud a SageMaker tuning job
# (DATA an s3:// prefix, the training image `make push` recorded, AWS_REGION/SAGEMAKER_ROLE_ARN/S3_BUCKET set).
MODE ?= local
TUNE_OUTPUT ?= build/tuning
MAX_JOBS ?= 10
MAX_PARALLEL_JOBS ?= 2
TUNE_ARGS ?=
# `make train` trains with the last search's best hyperparameters when there are some (HP_FILE= to skip).
HP_FILE ?= $(wildcard $(TUNE_OUTPUT)/best_hyperparameters.json)
# demo's search: a few short trials of the small configuration that trains in CPU minutes (the cloud
# default is ResNet50 at 224; lr, batch size... sampled), then the demo trains DEMO_EPOCHS epochs with the best.
DEMO_TUNE_HP ?= --hp model-name=resnet18 --hp weights=none --hp fine-tune=full --hp image-size=64 \
                --hp augment=basic --hp epochs=2
DEMO_TUNE_JOBS ?= 4
DEMO_EPOCHS ?= 8

# The demo's job saves tensors often enough for the rules on its few steps (defaults suit long jobs).
DEMO_DEBUG_HP ?= --hp debugger-save-interval=4 --hp debugger-loss-interval=1
JOB ?= $(OUTPUT)



.PHONY: help setup lint format test test-unit test-integration docker-engine build print-images sample-data train demo tune \
        benchmark benchmark-debugger report lock clean push sbom teardown registry-server deploy query \
        benchmark-serving transform benchmark-transform benchmark-preprocessing mlflow-ui register

help:
	@echo "make setup             dev venv ($(VENV)) with the pinned host packages"
	@echo "make test              every test, Docker included (installs/starts the engine when needed)"
	@echo "make test-unit         lint, then unit tests only (no Docker)"
	@echo "make lint              ruff check and ruff format --check (make format fixes what it can)"
	@echo "make build             build the training image and the two serving images ($(TRAIN_IMAGE), $(SERVE_IMAGE), $(SERVE_CPU_IMAGE)); DOCKER_BUILD_FLAGS=... for docker build"
	@echo "make print-images      image references, one per line: train, serve, serve-cpu"
	@echo "make sample-data       generate the sample image set in $(DATA)"
	@echo "make train             local-mode training job on DATA (HP='--hp NAME=VALUE ...')"
	@echo "make tune              search hyperparameters (MODE=local|cloud, MAX_JOBS=$(MAX_JOBS)) -> $(TUNE_OUTPUT)"
	@echo "make push              push the three images to ECR (or REGISTRY=host:port); digests, labels, SBOMs -> build/"
	@echo "make sbom              CycloneDX SBOM of each built image (Python + Debian packages) -> build/sbom-*.cdx.json"
	@echo "make deploy            serve a model (MODE=local: localhost:8080; MODE=cloud: a SageMaker endpoint)"
	@echo "make query             classify QUERY_IMAGES with the deployed model (MODE=local|cloud)"
	@echo "make transform         classify every image under TRANSFORM_INPUT without an endpoint (MODE=local|cloud)"
	@echo "make teardown          delete the cloud endpoint, its config and model; say what is left (S3, ECR)"
	@echo "make register          register MODEL_DATA with its evaluation on EVALUATE_ON; champion only if not worse"
	@echo "make mlflow-ui         MLflow UI on 127.0.0.1:$(MLFLOW_PORT): every run, its metrics, the registry"
	@echo "make demo              build, sample data, small local search, train with its best, print test accuracy"
	@echo "make report            HTML report of a job's training: curves, debugger rules, profiling (JOB=$(JOB))"
	@echo "make benchmark         data-loader benchmark (prints the speed-up ratio)"
	@echo "make benchmark-debugger step-time overhead of the smdebug hook"
	@echo "make benchmark-serving serving latency/throughput vs TorchServe (table for the README)"
	@echo "make benchmark-transform local Batch Transform vs a local endpoint queried image by image"
	@echo "make benchmark-preprocessing what each crafted cheap image costs, before/after issue 21, and served"
	@echo "make clean             remove build outputs (keeps the wheelhouse and images)"

$(VENV)/.installed: pyproject.toml requirements/host.lock requirements/test.lock container_src/pyproject.toml docker/requirements/train-nodeps.txt
	@command -v $(PYTHON_BIN) >/dev/null || { echo "error: $(PYTHON_BIN) not found; install Python 3.11"; exit 1; }
	$(PYTHON_BIN) -m venv $(VENV)
	# Hash-checked installs: every package is the very file the lock names (make lock regenerates it).
	# host.lock: what the commands run; test.lock: what the tests add (pyproject.toml's [test] group).
	$(PY) -m pip install --quiet --require-hashes -r requirements/host.lock -r requirements/test.lock
	# smdebug (rules and report on the host) declares protobuf<=3.20.3: installed without its requirements.
	$(PY) -m pip install --quiet --require-hashes --no-deps -r docker/requirements/train-nodeps.txt
	# pip refuses editable installs in hash-checking mode: the project's own packages come last, with
	# no dependencies (all locked above) and built by the locked setuptools, not a fresh download.
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e . -e container_src
	@touch $@

setup: $(VENV)/.installed

docker-engine:
	@scripts/ensure_docker.sh

build: setup docker-engine
	$(PY) scripts/fetch_weights.py $(WEIGHTS_MODELS)
	BASE_IMAGE=$(BASE_IMAGE) PYTHON=$(PY) DOCKER_BUILD_FLAGS="$(DOCKER_BUILD_FLAGS)" CONTEXT=$(BUILD_CONTEXT) \
		docker/build.sh train $(TRAIN_IMAGE)
	BASE_IMAGE=$(BASE_IMAGE) PYTHON=$(PY) DOCKER_BUILD_FLAGS="$(DOCKER_BUILD_FLAGS)" CONTEXT=$(BUILD_CONTEXT) \
		docker/build.sh serve $(SERVE_IMAGE)
	BASE_IMAGE=$(BASE_IMAGE) PYTHON=$(PY) DOCKER_BUILD_FLAGS="$(DOCKER_BUILD_FLAGS)" CONTEXT=$(BUILD_CONTEXT) \
		docker/build.sh serve-cpu $(SERVE_CPU_IMAGE)

print-images:
	@echo $(TRAIN_IMAGE)
	@echo $(SERVE_IMAGE)
	@echo $(SERVE_CPU_IMAGE)

# ---- cloud (issue 6): push, MODE=cloud targets, teardown. AWS settings come from the environment
# (classifier_host/settings.py: AWS_REGION, SAGEMAKER_ROLE_ARN, S3_BUCKET...); scripts fail fast naming a missing one.
# Pushes the three images (ECR, or REGISTRY=host:port) and records their digests in build/images.json,
# which the cloud targets read so jobs and endpoints run an exact digest.
IMAGES_FILE ?= build/images.json
push: setup docker-engine
	$(PY) scripts/push_images.py $(if $(REGISTRY),--registry $(REGISTRY)) --output $(IMAGES_FILE) \
		train=$(TRAIN_IMAGE) serve=$(SERVE_IMAGE) serve-cpu=$(SERVE_CPU_IMAGE)

# MODE=cloud training options (see `scripts/train.py --help`), e.g. CLOUD_TRAIN_ARGS='--spot --debugger project'.
CLOUD_TRAIN_ARGS ?=

# MODE=cloud deploy options (see `scripts/deploy.py --help`), e.g. CLOUD_DEPLOY_ARGS='--autoscale 1:4 --data-capture'.
CLOUD_DEPLOY_ARGS ?=
QUERY_IMAGES ?= $(DATA)/test

# local: serve $(OUTPUT)/model.tar.gz on localhost:8080 until Ctrl-C. cloud: an endpoint for the last
# training job (recorded by `make train MODE=cloud`), recorded for `make query` and `make teardown`.
deploy: setup
	@case "$(MODE)" in local|cloud) ;; *) echo "error: MODE=$(MODE); use MODE=local or MODE=cloud"; exit 2;; esac
	SERVE_IMAGE=$(SERVE_IMAGE) SERVE_CPU_IMAGE=$(SERVE_CPU_IMAGE) \
		$(PY) scripts/deploy.py $(if $(filter local,$(MODE)),--local --model-data $(OUTPUT)/model.tar.gz,$(CLOUD_DEPLOY_ARGS))

query: setup
	@case "$(MODE)" in local|cloud) ;; *) echo "error: MODE=$(MODE); use MODE=local or MODE=cloud"; exit 2;; esac
	$(if $(filter cloud,$(MODE)),endpoint=$$($(PY) scripts/records.py recorded endpoint) &&) \
	$(PY) scripts/query.py $(if $(filter local,$(MODE)),--url http://localhost:8080,--endpoint "$$endpoint") $(QUERY_IMAGES)

# Batch inference without an endpoint. local: TRANSFORM_INPUT (a folder) with $(OUTPUT)/model.tar.gz in
# SageMaker local mode; cloud: a Batch Transform job over TRANSFORM_INPUT (an s3:// prefix) with the last
# training job's model. Results (predictions.jsonl, summary.json) in TRANSFORM_OUTPUT.
TRANSFORM_INPUT ?= $(DATA)/test
TRANSFORM_OUTPUT ?= build/transform
TRANSFORM_ARGS ?=
transform: setup
	@case "$(MODE)" in local|cloud) ;; *) echo "error: MODE=$(MODE); use MODE=local or MODE=cloud"; exit 2;; esac
	SERVE_IMAGE=$(SERVE_IMAGE) SERVE_CPU_IMAGE=$(SERVE_CPU_IMAGE) $(PY) scripts/transform.py \
		$(if $(filter local,$(MODE)),--local --model-data $(OUTPUT)/model.tar.gz) \
		--input $(TRANSFORM_INPUT) --output $(TRANSFORM_OUTPUT) $(TRANSFORM_ARGS)

teardown: setup
	$(PY) scripts/teardown.py

# The SBOMs of the local images without pushing (make push writes the same files for what it pushes).
sbom: setup docker-engine
	$(PY) scripts/sbom.py $(TRAIN_IMAGE) $(dir $(IMAGES_FILE))sbom-train.cdx.json
	$(PY) scripts/sbom.py $(SERVE_IMAGE) $(dir $(IMAGES_FILE))sbom-serve.cdx.json
	$(PY) scripts/sbom.py $(SERVE_CPU_IMAGE) $(dir $(IMAGES_FILE))sbom-serve-cpu.cdx.json

registry-server:
	@scripts/ensure_registry.sh

sample-data: setup
	$(PY) scripts/make_sample_data.py $(DATA)

train: setup
	@case "$(MODE)" in local|cloud) ;; *) echo "error: MODE=$(MODE); use MODE=local or MODE=cloud"; exit 2;; esac
	$(PY) scripts/train.py $(if $(filter local,$(MODE)),--local --image $(TRAIN_IMAGE),$(CLOUD_TRAIN_ARGS)) \
		--data $(DATA) --output-dir $(OUTPUT) $(if $(HP_FILE),--hyperparameters-file $(HP_FILE)) $(HP)

tune: setup
	@case "$(MODE)" in local|cloud) ;; *) echo "error: MODE=$(MODE); use MODE=local or MODE=cloud"; exit 2;; esac
	$(PY) scripts/tune.py $(if $(filter local,$(MODE)),--local) --data $(DATA) --max-jobs $(MAX_JOBS) \
		--max-parallel-jobs $(MAX_PARALLEL_JOBS) --output-dir $(TUNE_OUTPUT) --image $(TRAIN_IMAGE) $(HP) $(TUNE_ARGS)

demo: build
	@test -d $(DATA) || $(PY) scripts/make_sample_data.py $(DATA)
	$(PY) scripts/tune.py --local --data $(DATA) --max-jobs $(DEMO_TUNE_JOBS) --output-dir $(OUTPUT)/tuning \
		--image $(TRAIN_IMAGE) $(DEMO_TUNE_HP)
	@echo "search plot: $(OUTPUT)/tuning/tuning.png  (all trials: $(OUTPUT)/tuning/trials.csv)"
	$(PY) scripts/train.py --local --data $(DATA) --output-dir $(OUTPUT) --image $(TRAIN_IMAGE) \
		--hyperparameters-file $(OUTPUT)/tuning/best_hyperparameters.json --hp epochs=$(DEMO_EPOCHS) $(DEMO_DEBUG_HP)
	@$(PY) scripts/show_model.py $(OUTPUT)/model.tar.gz
	@$(PY) scripts/report.py $(OUTPUT)
	@# Serve the model in local mode (on the image its metadata.json calls for: serve-cpu when it has ONNX
	@# exports), classify one test image per class, tear the endpoint down. The image names go along, so
	@# deploy.py serves the images built above even if the tree changed since (the tag follows the tree).
	SERVE_IMAGE=$(SERVE_IMAGE) SERVE_CPU_IMAGE=$(SERVE_CPU_IMAGE) $(PY) scripts/deploy.py --local \
		--model-data $(OUTPUT)/model.tar.gz --query $(DATA)/test/*/*_0000.jpg
	@# Register the model with its evaluation on the test split (champion only if not worse than the last one).
	SERVE_IMAGE=$(SERVE_IMAGE) SERVE_CPU_IMAGE=$(SERVE_CPU_IMAGE) $(PY) scripts/register.py \
		--model-data $(OUTPUT)/model.tar.gz --evaluate-on $(DATA)/test
	@echo "runs, metrics and the registry: make mlflow-ui (http://127.0.0.1:$(MLFLOW_PORT))"

# MLflow's UI on the tracking store (build/mlflow/ unless MLFLOW_TRACKING_URI says otherwise), from a venv of
# its own (requirements/mlflow-ui.lock: the full mlflow package, ~900 MB, made on first use).
MLFLOW_UI_VENV ?= build/mlflow-ui-venv
MLFLOW_PORT ?= 5000
$(MLFLOW_UI_VENV)/.installed: requirements/mlflow-ui.lock
	$(PYTHON_BIN) -m venv $(MLFLOW_UI_VENV)
	$(MLFLOW_UI_VENV)/bin/pip install --quiet --no-deps --require-hashes -r requirements/mlflow-ui.lock
	@touch $@

MODEL_DATA ?= $(OUTPUT)/model.tar.gz
EVALUATE_ON ?= $(DATA)/test
register: setup
	$(PY) scripts/register.py --model-data $(MODEL_DATA) --evaluate-on $(EVALUATE_ON) $(REGISTER_ARGS)

mlflow-ui: $(MLFLOW_UI_VENV)/.installed
	@mkdir -p build/mlflow/artifacts
	$(MLFLOW_UI_VENV)/bin/mlflow ui --backend-store-uri "$${MLFLOW_TRACKING_URI:-sqlite:///$(CURDIR)/build/mlflow/mlflow.db}" \
		--host 127.0.0.1 --port $(MLFLOW_PORT)

# ruff ([tool.ruff] in pyproject.toml): a lint finding or an unformatted file fails the tests; `make format` fixes both.
lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: setup
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

test-unit: lint
	$(PY) -m pytest tests/unit -q

test-integration: build registry-server
	TRAIN_IMAGE=$(TRAIN_IMAGE) SERVE_IMAGE=$(SERVE_IMAGE) SERVE_CPU_IMAGE=$(SERVE_CPU_IMAGE) $(PY) -m pytest tests/integration -q

test: lint build registry-server
	TRAIN_IMAGE=$(TRAIN_IMAGE) SERVE_IMAGE=$(SERVE_IMAGE) SERVE_CPU_IMAGE=$(SERVE_CPU_IMAGE) $(PY) -m pytest tests -q

# JOB: a job folder (model.tar.gz / output.tar.gz, local or downloaded from S3), or an --output-dir
# of scripts/train.py (its last job). Rules, curves, utilisation -> JOB/report.html.
report: setup
	$(PY) scripts/report.py $(JOB)

benchmark: setup
	$(PY) benchmarks/data_loader.py

benchmark-debugger: setup
	$(PY) benchmarks/debugger_overhead.py

# Serving latency/throughput at concurrency 1/4/16, batching on/off, against TorchServe 0.12 (its own
# venv under build/); needs the serving image (make build) and a JRE for TorchServe.
# BENCH_ARGS: --explain (what explanations cost), --attack, --against REF (see the script's docstring).
BENCH_ARGS ?=
benchmark-serving: setup
	SERVE_IMAGE=$(SERVE_IMAGE) SERVE_CPU_IMAGE=$(SERVE_CPU_IMAGE) $(PY) benchmarks/serving.py $(BENCH_ARGS)

# scripts/transform.py --local against a local endpoint queried one image at a time, over DATA/test with
# OUTPUT's model (make demo first).
benchmark-transform: setup
	SERVE_IMAGE=$(SERVE_IMAGE) SERVE_CPU_IMAGE=$(SERVE_CPU_IMAGE) $(PY) benchmarks/transform.py \
		--model-data $(OUTPUT)/model.tar.gz --data $(DATA)/test

# Each crafted cheap request (tests/image_cases.py) through the eval preprocessing, this checkout's vs
# 221f319's (before issue 21), parity on the sample set, then served by both images (make build first).
benchmark-preprocessing: setup
	SERVE_IMAGE=$(SERVE_IMAGE) SERVE_CPU_IMAGE=$(SERVE_CPU_IMAGE) $(PY) benchmarks/preprocessing.py --serve $(BENCH_ARGS)

# Regenerates the hashed locks (docker/requirements/*.txt, requirements/{host,sbom}.lock), keeping the
# versions already locked; LOCK_ARGS=--upgrade re-resolves them all.
LOCK_ARGS ?=
lock:
	$(PYTHON_BIN) docker/lock.py $(LOCK_ARGS)

clean:
	rm -rf $(OUTPUT) build/sample-data build/weights .pytest_cache
	docker image prune -f >/dev/null 2>&1 || true
