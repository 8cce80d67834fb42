# twinsync — see README.md. `make help` lists the targets.

SHELL := /usr/bin/env bash -o pipefail
.SHELLFLAGS := -ec

LOCALBIN := $(CURDIR)/bin
CONTROLLER_TOOLS_VERSION := $(shell awk '/sigs.k8s.io\/controller-tools/ {print $$NF}' hack/tools/go.mod)
CONTROLLER_GEN := $(LOCALBIN)/controller-gen-$(CONTROLLER_TOOLS_VERSION)

# Go packages whose markers generate CRDs, RBAC and webhooks.
GEN_PATHS := paths="./api/..." paths="./controllers/..."

# Flags for `go test` in `make test`; override for a subset, e.g.
# make test TEST_PKGS=./pkg/twin/...
TEST_PKGS ?= ./...
TEST_FLAGS ?= -count=1 -timeout 30m

.PHONY: help
help: ## List the targets.
	@awk 'BEGIN {FS = ":.*##"} /^[a-zA-Z_-]+:.*?##/ { printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2 }' $(MAKEFILE_LIST)

##@ Development

.PHONY: manifests
manifests: $(CONTROLLER_GEN) ## Generate CRDs and RBAC into config/.
	$(CONTROLLER_GEN) rbac:roleName=manager-role crd webhook $(GEN_PATHS) \
		output:crd:artifacts:config=config/crd/bases \
		output:rbac:artifacts:config=config/rbac \
		output:webhook:artifacts:config=config/webhook

.PHONY: generate
generate: $(CONTROLLER_GEN) ## Generate deepcopy code.
	$(CONTROLLER_GEN) object:headerFile=hack/boilerplate.go.txt paths="./api/..."

.PHONY: fmt
fmt: ## Run gofmt on the code.
	gofmt -w $$(git ls-files '*.go')

.PHONY: vet
vet: ## Run go vet.
	go vet ./...

.PHONY: verify
verify: manifests generate ## Fail when generated files are stale or gofmt/go vet complain.
	@stale=$$(git status --porcelain -- config/crd config/rbac config/webhook api); \
	if [ -n "$$stale" ]; then echo "generated files are stale; run 'make manifests generate' and commit:"; echo "$$stale"; git diff --stat -- config api; exit 1; fi
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt would change:"; echo "$$unformatted"; exit 1; fi
	go vet ./...

.PHONY: envtest
envtest: ## Build (once) etcd and kube-apiserver for envtest and print their directory.
	@hack/envtest.sh

.PHONY: test
test: verify ## Run all tests against a real kube-apiserver and etcd.
	KUBEBUILDER_ASSETS="$$(hack/envtest.sh)" go test $(TEST_FLAGS) $(TEST_PKGS)

.PHONY: bench
bench: ## Run the Go benchmarks (see docs/benchmarks.md).
	KUBEBUILDER_ASSETS="$$(hack/envtest.sh)" go test -run '^$$' -bench . -benchmem ./...

##@ Build

.PHONY: build
build: ## Build the manager, hub and device simulator into bin/.
	go build -o $(LOCALBIN)/manager ./cmd/manager
	go build -o $(LOCALBIN)/hub ./cmd/hub
	go build -o $(LOCALBIN)/devicesim ./cmd/devicesim

$(CONTROLLER_GEN):
	mkdir -p $(LOCALBIN)
	cd hack/tools && GOFLAGS=-mod=mod go build -o $(CONTROLLER_GEN) sigs.k8s.io/controller-tools/cmd/controller-gen
