# gpudra — build, test and demo entry points. `make test` is what CI runs.
SHELL := /bin/bash
GO ?= go
# go-nvml's cgo prologue warns about every deprecated NVML symbol; the
# warnings say nothing about our code.
export CGO_ENABLED := 1
export CGO_CFLAGS := -Wno-deprecated-declarations
BIN := _output/bin
TOOLS := -modfile=hack/tools/go.mod
PKGS := ./...

.PHONY: all build test unit crash e2e lint fmt-check vet verify prebuild clean discover demo bench soak

all: build

build: ## Build every binary into _output/bin.
	$(GO) build -o $(BIN)/ ./cmd/...

test: prebuild verify unit crash e2e ## What CI runs: formatting, vet, lint, unit + integration tests (-race, fuzz seeds), 50 crash-injection runs (+30 in dynamic MIG mode, +20 with time-slicing and MPS), e2e on a local cluster.

# Kubernetes, containerd, runc and Helm built from Go modules (cached by
# version; minutes when cold, instant when cached). Built here rather than
# inside a test so a cold build does not eat a test's timeout.
prebuild:
	hack/install-deps.sh
	hack/localcluster/build.sh >/dev/null
	hack/helm/build.sh >/dev/null

unit:
	$(GO) test -race -count=1 -timeout 30m $(PKGS)

# Crash injection: the plugin built with failpoints, killed at random steps
# of prepare and unprepare (make soak runs 1,000).
CRASH_RUNS ?= 50
CRASH_DYNAMIC_RUNS ?= 30
CRASH_SHARING_RUNS ?= 20
crash: build
	$(GO) build -tags failpoints -o _output/bin/failpoints/gpudra-kubelet-plugin ./cmd/gpudra-kubelet-plugin
	set -o pipefail; _output/bin/gpudra bench crash --plugin=_output/bin/failpoints/gpudra-kubelet-plugin --runs=$(CRASH_RUNS) --repo=. | tail -n 20
	set -o pipefail; _output/bin/gpudra bench crash --plugin=_output/bin/failpoints/gpudra-kubelet-plugin --runs=$(CRASH_DYNAMIC_RUNS) --dynamic-mig --repo=. | tail -n 20
	set -o pipefail; _output/bin/gpudra bench crash --plugin=_output/bin/failpoints/gpudra-kubelet-plugin --runs=$(CRASH_SHARING_RUNS) --sharing=$(CURDIR)/_output/bin/gpudra-sim-mps --repo=. | tail -n 20

# End-to-end suite: a real single-node cluster (needs root), the chart
# installed, workloads asserting on what containers saw.
e2e: build
	$(GO) build -tags failpoints -o _output/bin/failpoints/gpudra-kubelet-plugin-failpoints ./cmd/gpudra-kubelet-plugin
	$(GO) test -tags e2e -count=1 -timeout 40m -v ./test/e2e/... 2>&1 | tee _output/e2e.log | grep -E '^(=== RUN|--- |PASS|FAIL|ok|panic)|_test.go:'; exit $${PIPESTATUS[0]}

bench: ## Benchmarks of BENCHMARKS.md (about 5 minutes): startup, prepare/unprepare, allocation.
	hack/bench.sh

soak: ## Long runs (about 45 minutes): 1,000 crash-injection runs, 10,000 prepare/unprepare cycles, 5 minutes of fuzzing per target.
	hack/soak.sh

demo: ## Start a local cluster with gpudra on a simulated DGX H100 and run GPU workloads.
	hack/demo.sh

verify: fmt-check vet lint

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' | grep -v '^hack/tools/')); \
	if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet $(PKGS)

lint:
	$(GO) tool $(TOOLS) golangci-lint run $(PKGS)

discover: ## Print the ResourceSlices of a simulated DGX H100 node.
	$(GO) run ./cmd/gpudra discover --sim-profile=dgxh100 --node-name=node-a -o yaml

clean:
	rm -rf _output
