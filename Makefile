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

.PHONY: all build test unit lint fmt-check vet verify fuzz-seeds clean discover

all: build

build: ## Build every binary into _output/bin.
	$(GO) build -o $(BIN)/ ./cmd/...

test: verify unit ## What CI runs: formatting, vet, lint, unit tests with -race (fuzz seed corpora included).

unit:
	$(GO) test -race -count=1 $(PKGS)

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
