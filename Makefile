# The one way to run the checks, used by CI and people alike.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST := $(VENV)/bin/pytest

.PHONY: venv system-deps image lint format docs helm-docs promtool chart-readme test test-unit test-integration test-e2e test-e2e-versions kube-versions \
	cluster-binaries demo bench clean

## The Kubernetes release of the cluster binaries, the e2e tests and the demo, e.g.
## `make test-e2e KUBE_VERSION=v1.35.4` (or 1.35.4); empty: the script's default (v1.37.2), which CI uses.
KUBE_VERSION ?=
ifneq ($(strip $(KUBE_VERSION)),)
override KUBE_VERSION := v$(patsubst v%,%,$(strip $(KUBE_VERSION)))
export KUBE_VERSION
endif
## The releases `make test-e2e-versions` runs the e2e suite on: the newest patch of each of the four newest
## minors the Go module proxy served when last measured (`make kube-versions` prints today's).
KUBE_VERSIONS ?= v1.37.2 v1.36.3 v1.35.4 v1.34.4

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

venv: $(VENV)/.installed

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

format: venv
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

## The documentation site (mkdocs.yml), built strictly into a temporary directory: a broken link or
## anchor, or a page missing from the nav, fails. `$(VENV)/bin/mkdocs serve` shows it while editing.
docs: venv
	d="$$(mktemp -d)" && trap 'rm -rf "$$d"' EXIT && \
	  NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --site-dir "$$d"

## Builds (or finds in ~/.cache/kube-autorollout) helm-docs, which writes the chart README.
helm-docs:
	scripts/install-helm-docs.sh

## Builds (or finds in ~/.cache/kube-autorollout) promtool, which checks and unit-tests the chart's alerts
## (the first build takes several minutes, niced).
promtool:
	scripts/install-promtool.sh

## Rewrites charts/kube-autorollout/README.md from its README.md.gotmpl and the `# --` comments of values.yaml.
chart-readme:
	"$$(scripts/install-helm-docs.sh | tail -1)/helm-docs" --chart-search-root charts --log-level warning

## Debian packages the tests and the demo run (docker-registry, htpasswd; buildah, mmdebstrap, runc for
## the image; containerd, CNI plugins, iptables, busybox-static for the real node); nothing when present.
system-deps:
	scripts/install-system-deps.sh

## Builds (or finds in ~/.cache/kube-autorollout/image) the product image from the Dockerfile with buildah, on a
## Debian python3 base made with mmdebstrap; prints its name in the harness's buildah storage.
image: system-deps venv
	nice $(PY) -m tests.harness.image

## Builds (or finds in ~/.cache/kube-autorollout) etcd, kube-apiserver, kube-controller-manager, kubelet, kubectl, helm.
cluster-binaries:
	scripts/install-cluster-binaries.sh

# The whole suite: lint, type check, the docs site, unit, registry integration and control-plane e2e tests.
test: system-deps lint docs cluster-binaries helm-docs promtool
	$(PYTEST) -m "unit or integration or e2e"

test-unit: venv
	$(PYTEST) -m unit -q

test-integration: system-deps venv helm-docs promtool
	$(PYTEST) -m integration

test-e2e: system-deps venv cluster-binaries
	$(PYTEST) -m e2e

## The e2e suite on each release of KUBE_VERSIONS in turn (each build ~9 min the first time), then a summary.
test-e2e-versions: system-deps venv
	PYTEST=$(PYTEST) scripts/e2e-versions.sh $(KUBE_VERSIONS)

## The newest patch release of the four newest Kubernetes minors the Go module proxy serves now.
kube-versions:
	@scripts/install-cluster-binaries.sh --newest-minors 4

demo: system-deps venv cluster-binaries
	$(PY) scripts/demo.py

## Every table of docs/benchmarks.md (about 45 min on 2 cores; best on an idle machine), then the docs.
bench: system-deps venv cluster-binaries
	bench/install-upstream.sh
	$(PY) -m bench.reconcile
	$(PY) -m bench.upstream
	$(PY) -m bench.upstream --workloads 1000 --images 200 --out upstream-1000
	$(PY) -m bench.reconcile --scales 500 --rollout-rounds 3 --out rollouts --profile bench/results/rollouts-profile.txt
	$(PY) -m bench.reconcile --policy-variant 10000 --repeat 9 --out reconcile-policy
	$(PY) -m bench.push_events
	$(PY) -m bench.push
	$(PY) -m bench.planning --out planning
	$(PY) -m bench.admission
	$(PY) -m bench.admission_profile --out admission-profile
	$(PY) -m bench.startup
	$(PY) -m bench.idle
	$(PY) -m bench.report

## A quick side-by-side comparison with the upstream binary (about 4 min once that is built; the
## build itself takes several minutes the first time), after the 100-workload reconcile test.
bench-quick: system-deps venv cluster-binaries
	bench/install-upstream.sh >/dev/null
	$(PYTEST) tests/e2e/test_bench_quick.py -q
	$(PY) -m bench.quick

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache build site *.egg-info
