# twinsync — see README.md. `make help` lists the targets.

SHELL := /usr/bin/env bash -o pipefail
.SHELLFLAGS := -ec

LOCALBIN := $(CURDIR)/bin
CONTROLLER_TOOLS_VERSION := $(shell awk '/sigs.k8s.io\/controller-tools/ {print $$NF}' hack/tools/go.mod)
CONTROLLER_GEN := $(LOCALBIN)/controller-gen-$(CONTROLLER_TOOLS_VERSION)
KUSTOMIZE_VERSION := $(shell awk '$$1 == "sigs.k8s.io/kustomize/kustomize/v5" {print $$2}' hack/kustomize/go.mod)
KUSTOMIZE := $(LOCALBIN)/kustomize-$(KUSTOMIZE_VERSION)
# config/default takes the CRDs from config/crd/bases, outside its own root.
KUSTOMIZE_BUILD := $(KUSTOMIZE) build

# Images built by `make docker-build` and set by `make build-installer`.
REGISTRY ?= ghcr.io/twinsync
TAG ?= latest
IMG ?= $(REGISTRY)/manager:$(TAG)
HUB_IMG ?= $(REGISTRY)/hub:$(TAG)
DEVICESIM_IMG ?= $(REGISTRY)/devicesim:$(TAG)
CONTAINER_TOOL ?= docker

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

.PHONY: demo
demo: build ## Play the device twin tutorial on a local control plane and hub, then stop.
	KUBEBUILDER_ASSETS="$$(hack/envtest.sh)" go run ./test/e2e/localstack demo --bin-dir $(LOCALBIN)

.PHONY: run
run: build ## Keep a local control plane, hub and manager up; prints how to use it.
	KUBEBUILDER_ASSETS="$$(hack/envtest.sh)" go run ./test/e2e/localstack run --bin-dir $(LOCALBIN)

##@ Deployment

.PHONY: build-installer
build-installer: $(KUSTOMIZE) ## Write dist/install.yaml: CRDs, RBAC and the manager, images set to IMG.
	mkdir -p dist
	rm -rf dist/.config && cp -r config dist/.config
	cd dist/.config/manager && $(KUSTOMIZE) edit set image controller=$(IMG)
	$(KUSTOMIZE_BUILD) dist/.config/default > dist/install.yaml
	rm -rf dist/.config
	@echo "wrote dist/install.yaml"

.PHONY: hub-secrets
hub-secrets: ## Create the embedded hub's CA and keys for config/hub (once; kept out of git).
	hack/hub-secrets.sh

.PHONY: docker-build
docker-build: ## Build the manager, hub and device simulator images.
	$(CONTAINER_TOOL) build -t $(IMG) -f Dockerfile .
	$(CONTAINER_TOOL) build -t $(HUB_IMG) -f Dockerfile.hub .
	$(CONTAINER_TOOL) build -t $(DEVICESIM_IMG) -f cmd/devicesim/Dockerfile .

.PHONY: kustomize
kustomize: $(KUSTOMIZE) ## Build kustomize into bin/ from the Go module proxy.

$(KUSTOMIZE):
	mkdir -p $(LOCALBIN)
	cd hack/kustomize && GOFLAGS=-mod=mod go build -o $(KUSTOMIZE) sigs.k8s.io/kustomize/kustomize/v5

$(CONTROLLER_GEN):
	mkdir -p $(LOCALBIN)
	cd hack/tools && GOFLAGS=-mod=mod go build -o $(CONTROLLER_GEN) sigs.k8s.io/controller-tools/cmd/controller-gen
