# The two commands a fresh machine needs: `make demo` and `make test`. Everything else is on the way.
SHELL := /bin/bash
.DEFAULT_GOAL := help
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell sha256sum requirements/dev.txt pyproject.toml 2>/dev/null | sha256sum | cut -c1-12)
CLUSTER_DIR ?= .cluster

.PHONY: help jaeger deps demo test unit fuzz integration lint lint-action typecheck check cluster cluster-down bench lock venv clean

help:  ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

venv: $(STAMP)  ## the virtualenv with every locked dependency (hash-checked)
$(STAMP): requirements/dev.txt pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check --require-hashes -r requirements/dev.txt
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	@rm -f $(VENV)/.installed-* && touch $@

INSTALL_SCRIPTS = hack/install-prometheus.sh hack/install-pushgateway.sh hack/install-docker.sh \
	hack/docker-base-image.sh hack/install-action-tools.sh hack/install-prism.sh hack/install-netns-tools.sh \
	hack/install-postgres.sh hack/install-bind.sh

deps: venv  ## everything the tests start: cluster binaries, Prometheus, Docker and the action tools
	bash hack/deps.sh $(INSTALL_SCRIPTS)  # the Go builds (hack/build-all.sh, two at a time) beside the Debian installs

jaeger:  ## build the real Jaeger the trace test sends to (opt-in: ~30 min on 2 cores; the test is not run without it)
	BLUEGREEN_BUILD_JAEGER=1 bash hack/build-jaeger.sh

demo: venv  ## start the local cluster and run a full blue-green release on it (real pods where root allows; DEMO_FLAGS=--stand-in: never)
	$(PYTHON) hack/localcluster.py up --dir $(CLUSTER_DIR) >/dev/null
	$(BIN)/python -m hack.demo --kubeconfig $(CLUSTER_DIR)/kubeconfig $(DEMO_FLAGS)

test: deps  ## unit and integration tests (integration on a real local cluster started for the run)
	$(BIN)/pytest tests --durations=15

unit: venv  ## the fast tests of pure logic only
	$(BIN)/pytest tests/unit

fuzz: deps  ## the input fuzz suite (Hypothesis, derandomized): the validation layer, then the local cluster
	$(BIN)/pytest tests/fuzz

lint: venv  ## ruff and mypy (strict)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy $(wildcard bluegreen tests hack bench entrypoint.py)

TOOLS := $(or $(BLUEGREEN_CACHE),$(HOME)/.cache/bluegreen)/tools/bin
WORKFLOWS := .github/workflows/*.yml examples/workflows/*.yml
lint-action:  ## actionlint, hadolint, check-jsonschema and zizmor on action.yml, the Dockerfile and workflows
	bash hack/install-action-tools.sh
	$(TOOLS)/actionlint $(WORKFLOWS)
	$(TOOLS)/hadolint Dockerfile
	$(TOOLS)/check-jsonschema --builtin-schema vendor.github-actions action.yml
	$(TOOLS)/check-jsonschema --builtin-schema vendor.github-workflows $(WORKFLOWS)
	$(TOOLS)/zizmor --offline --config .github/zizmor.yml $(WORKFLOWS)

check: lint lint-action test  ## what CI runs

cluster:  ## start the local cluster; kubeconfig in .cluster/kubeconfig
	$(PYTHON) hack/localcluster.py up --dir $(CLUSTER_DIR)

cluster-down:  ## stop the local cluster and remove its data
	$(PYTHON) hack/localcluster.py down --dir $(CLUSTER_DIR)

bench: venv  ## benchmarks on a local cluster: medians and ratios, no pass/fail
	$(PYTHON) hack/localcluster.py up --dir $(CLUSTER_DIR) >/dev/null
	@for b in bench/*.py; do echo "== $$b"; $(BIN)/python $$b --kubeconfig $(CLUSTER_DIR)/kubeconfig || exit 1; done

lock:  ## re-make the hash-pinned lock files from pyproject.toml (needs uv)
	uv pip compile -q pyproject.toml --generate-hashes --python-version 3.11 --python-platform x86_64-manylinux_2_28 -o requirements/runtime.txt
	uv pip compile -q pyproject.toml --extra otel --generate-hashes --python-version 3.11 --python-platform x86_64-manylinux_2_28 -o requirements/otel.txt
	uv pip compile -q pyproject.toml --extra otel --extra dev --generate-hashes --python-version 3.11 --python-platform x86_64-manylinux_2_28 -o requirements/dev.txt

clean: cluster-down  ## remove the virtualenv and cluster state (the binary cache stays)
	rm -rf $(VENV) $(CLUSTER_DIR)
