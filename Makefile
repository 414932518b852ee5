# The README's two commands are `make run` and `make test`; both build what they need.
PYTHON ?= python3
VENV := .venv
TOOLS := .venv-tools
PORT ?= 8900
PY313 := $(shell pyenv prefix 3.13.0 2>/dev/null)
# Lambda puts the layer's python/ folder on sys.path; locally the same folder plus the repo root.
export PYTHONPATH := $(CURDIR)/layers/klineo/python:$(CURDIR)

.PHONY: run test test-fast lint simulator build validate bench clean openapi ts-client ts-client-deps .chromium .docker sam-local sam-local-down

$(VENV)/.installed: requirements/app.txt requirements/emulators.txt requirements/dev.txt layers/klineo/python/requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -r requirements/dev.txt
	touch $@

$(TOOLS)/.installed: requirements/tools.txt
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --upgrade pip
	$(TOOLS)/bin/pip install --quiet -r requirements/tools.txt
	touch $@

## make run: the whole backend on 127.0.0.1 (moto, Binance simulator, HTTP API, scheduler)
run: $(VENV)/.installed
	$(VENV)/bin/python -m local.stack

## make test: every test (unit, integration, e2e, TypeScript client, sam local invoke) plus ruff and cfn-lint
test: $(VENV)/.installed $(TOOLS)/.installed .chromium ts-client-deps .docker
	$(VENV)/bin/ruff check .
	PATH="$(PY313)/bin:$$PATH" CFN_LINT=$(TOOLS)/bin/cfn-lint $(VENV)/bin/python -m pytest

## make test-fast: ruff and the unit tests, without those that start processes or cfn-lint (under a minute)
test-fast: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/python -m pytest -q -m "not slow" tests/unit

# The API page test opens /docs in headless Chromium; Debian's package, installed once (CI runs as root).
.chromium:
	command -v chromium >/dev/null || (apt-get update && apt-get install -y --no-install-recommends chromium)

# The sam-local tests need a Docker daemon: Docker Desktop, or Debian's docker.io and dockerd (CI runs as root).
.docker:
	sh local/sam_local/docker-up.sh

## make sam-local: moto + the Binance simulator in docker, functions built for this CPU, for `sam local invoke`
sam-local: $(VENV)/.installed $(TOOLS)/.installed .docker
	PATH="$(PY313)/bin:$$PATH" $(VENV)/bin/python -m local.sam_local up

## make sam-local-down: remove sam-local's emulator container and docker network
sam-local-down: $(VENV)/.installed
	$(VENV)/bin/python -m local.sam_local down

## make openapi: regenerate openapi.json from the functions' resolvers (a test checks it is current)
openapi: $(VENV)/.installed
	$(VENV)/bin/python -m local.openapi

TS_CLIENT := clients/typescript

## make ts-client-deps: the TypeScript client's node packages, exactly as package-lock.json pins them
ts-client-deps: $(TS_CLIENT)/node_modules/.installed

$(TS_CLIENT)/node_modules/.installed: $(TS_CLIENT)/package.json $(TS_CLIENT)/package-lock.json
	cd $(TS_CLIENT) && npm ci --no-audit --no-fund
	touch $@

## make ts-client: regenerate openapi.json, then the TypeScript client's types from it (a test checks both)
ts-client: openapi ts-client-deps
	cd $(TS_CLIENT) && npm run generate

## make simulator PORT=8900: the Binance simulator alone, in the foreground
simulator: $(VENV)/.installed
	$(VENV)/bin/python -m local.binance_sim --port $(PORT)

validate: $(TOOLS)/.installed
	$(TOOLS)/bin/cfn-lint template.yaml
	$(TOOLS)/bin/sam validate --lint --region ap-northeast-1

## make build: `sam build` with the runtime's interpreter (python3.13 from pyenv) first on PATH, then
## every .py of the build precompiled: Lambda's code folders are read-only, so without shipped
## bytecode each cold start compiles the layer again. unchecked-hash: zip timestamps would make
## timestamp-checked bytecode stale. botocore's endpoints and our services' models are written into
## the layer without what our clients never read (klineo.store.botocore_data).
build: $(TOOLS)/.installed
	PATH="$(PY313)/bin:$$PATH" $(TOOLS)/bin/sam build
	PYTHONPATH=.aws-sam/build/KlineoLayer/python $(PY313)/bin/python -m klineo.store.botocore_data \
		.aws-sam/build/KlineoLayer/python
	$(PY313)/bin/python -m compileall -q -j 0 --invalidation-mode unchecked-hash .aws-sam/build

BENCH := .venv-bench
# The benchmarks run on the functions' runtime, python3.13 (pyenv), when it is there.
BENCH_PYTHON := $(if $(PY313),$(PY313)/bin/python,$(PYTHON))

$(BENCH)/.installed: bench/requirements.txt layers/klineo/python/requirements.txt
	$(BENCH_PYTHON) -m venv $(BENCH)
	$(BENCH)/bin/pip install --quiet --upgrade pip
	$(BENCH)/bin/pip install --quiet -r bench/requirements.txt
	touch $@

## make bench: every benchmark, peers (ccxt, python-binance, Binance's SDKs) in their own venv
bench: $(BENCH)/.installed
	$(BENCH)/bin/python -m bench

clean:
	rm -rf $(VENV) $(TOOLS) $(BENCH) .aws-sam .sam-local
