# client-go-demo: every command a user or CI needs.
#
# The local control plane is built from Go modules in hack/localcluster and
# keeps its state (certificates, kubeconfigs, etcd data, logs) in .localcluster/.

SHELL        := /bin/bash
.SHELLFLAGS  := -eu -o pipefail -c
DEMOS        := restclient clientset dynamicclient discoveryclient reflector \
                reflector/watch reflector/informer reflector/controller
# K8S picks the control plane's Kubernetes minor version: 1.37 (the default,
# the release our client-go v0.37.2 belongs to), 1.36 or 1.35. Each is built
# from its own go.mod in hack/localcluster (go.mod, go.1.36.mod, go.1.35.mod)
# with -modfile, into a binary of its own, and keeps its state in a directory
# of its own: 1.37 in bin/localcluster and .localcluster/ as always, 1.36 in
# bin/localcluster-1.36 and .localcluster-1.36/. They share the ports, so one
# runs at a time; localcluster up says which one holds them.
K8S          ?= 1.37
K8S_VERSIONS := 1.35 1.36 1.37
# The patch release of each: the newest k8s.io/kubernetes the module proxy
# served on 2026-11-27.
PATCH_1.35   := v1.35.4
PATCH_1.36   := v1.36.3
PATCH_1.37   := v1.37.2
K8S_VERSION  := $(PATCH_$(K8S))
$(if $(K8S_VERSION),,$(error K8S=$(K8S) is not one of $(K8S_VERSIONS)))
ifeq ($(K8S),1.37)
SUFFIX       :=
MODFILE      :=
else
SUFFIX       := -$(K8S)
MODFILE      := -modfile=go.$(K8S).mod
endif
STATE        := $(CURDIR)/.localcluster$(SUFFIX)
LOCALCLUSTER := $(CURDIR)/bin/localcluster$(SUFFIX)
KUBECONFIG_LOCAL := $(STATE)/admin.kubeconfig
KUBECTL      := $(CURDIR)/bin/kubectl$(SUFFIX)
# The real version, as a release build of Kubernetes sets it.
VERSION_PKG  := k8s.io/component-base/version
# -s -w: no symbol table or DWARF; links the 250 MB binary in 18 s instead of 31.
LDFLAGS      := -s -w -X $(VERSION_PKG).gitVersion=$(K8S_VERSION) -X $(VERSION_PKG).gitMajor=1 \
                -X $(VERSION_PKG).gitMinor=$(word 2,$(subst ., ,$(K8S))) -X $(VERSION_PKG).gitTreeState=clean \
                -X $(VERSION_PKG).buildDate=2026-11-01T00:00:00Z
STATICCHECK  := honnef.co/go/tools/cmd/staticcheck@v0.8.2

.DEFAULT_GOAL := help
# run-<demo> is a pattern rule, so it cannot be .PHONY (make skips implicit
# rules for phony targets); no file of that name exists.
.PHONY: help demo test test-demos test-matrix lint images cluster-up cluster-down cluster-restart-apiserver cluster-compact localcluster kubectl

help: ## List the targets
	@grep -E '^[a-zA-Z_%-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{sub(/%/, "<demo>", $$1); printf "  make %-28s %s\n", $$1, $$2}'

# go build -v names each package it compiles; progress.awk prints the line
# below once something has to be compiled (at once when the binary is
# missing), then a line every 250 packages, and nothing at all when the
# build is up to date.
localcluster: ## Build the control plane of K8S (default 1.37) into bin/localcluster[-1.3x]; minutes cold, seconds warm
	@cd hack/localcluster && go build $(MODFILE) -v -ldflags '$(LDFLAGS)' -o $(LOCALCLUSTER) . 2>&1 | \
	  awk -v pkgs=. -v first=$$([ -e $(LOCALCLUSTER) ] || echo 1) -v what='Building Kubernetes $(K8S_VERSION): kube-apiserver, kube-controller-manager, kube-scheduler, etcd and kwok from Go modules into $(notdir $(LOCALCLUSTER)) (first build: about 7 minutes on 2 idle cores, longer on a busy machine; later builds: seconds)' -f progress.awk

kubectl: ## Build kubectl of the K8S release from the same Kubernetes module (bin/kubectl[-1.3x]), for the tests that compare with it
	@cd hack/localcluster && go build $(MODFILE) -v -ldflags '$(LDFLAGS)' -o $(KUBECTL) k8s.io/kubernetes/cmd/kubectl 2>&1 | \
	  awk -v pkgs=k8s.io/kubernetes/cmd/kubectl -v first=$$([ -e $(KUBECTL) ] || echo 1) -v what='Building kubectl $(K8S_VERSION) from Go modules into bin/$(notdir $(KUBECTL)) (first build: about 1 minute on 2 cores once the control plane is built; later builds: seconds)' -f progress.awk

cluster-up: localcluster ## Start etcd, kube-apiserver, controller-manager, scheduler and a kwok node of K8S (1.37; K8S=1.35 or 1.36); return when ready
	@$(LOCALCLUSTER) -dir $(STATE) up

cluster-down: ## Stop every control plane process of K8S and remove its state (.localcluster/, .localcluster-1.3x/)
	@if [ -x $(LOCALCLUSTER) ]; then $(LOCALCLUSTER) -dir $(STATE) down; else rm -rf $(STATE); fi

cluster-restart-apiserver: localcluster ## Restart kube-apiserver alone; etcd keeps its data
	@$(LOCALCLUSTER) -dir $(STATE) restart-apiserver

cluster-compact: localcluster ## Compact etcd up to its current revision
	@$(LOCALCLUSTER) -dir $(STATE) compact

demo: cluster-up ## Run every demo, in order, against the local control plane (of K8S)
	@for d in $(DEMOS); do \
	  [ -d $$d ] || continue; \
	  printf '\n==================== %s ====================\n' $$d; \
	  KUBECONFIG=$(KUBECONFIG_LOCAL) go run ./$$d || exit 1; \
	done

run-%: cluster-up ## Run one demo, e.g. make run-restclient ARGS='-v=6', make run-reflector/watch
	@KUBECONFIG=$(KUBECONFIG_LOCAL) go run ./$* $(ARGS)

# A pattern without a slash matches only a target's file part, so the demos
# under reflector/ need a rule of their own.
run-reflector/%: cluster-up
	@KUBECONFIG=$(KUBECONFIG_LOCAL) go run ./reflector/$* $(ARGS)

lint: ## gofmt, go vet and staticcheck, for both modules (go vet of hack/localcluster with the go.mod of K8S)
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go'); exit 1; }
	go vet ./...
	go run $(STATICCHECK) ./...
	cd hack/localcluster && go vet $(MODFILE) . && go run $(STATICCHECK) .

# make test starts the control plane if it is not running and stops it again
# afterwards only if it started it. Its exit status is the tests'.
# (Not grep -q: it exits at the first match, status then dies of SIGPIPE,
# and under pipefail a running cluster would look stopped and be taken down.)
# The packages share one API server. Those that touch something
# cluster-wide (the CRDs of dynamicclient and discoveryclient -crd, the RBAC
# manifest's ClusterRole, the discovery document the README shows) run one
# after another (-p 1): $(SERIAL). The others touch only namespaces of their
# own and start their private control planes on ports of their own, so they
# run in two more go test processes beside those, as the control plane's
# own tests do: the demos built on the Reflector, and the rest (any new
# package lands there). Their output follows when all are done.
# Lint is a prerequisite, not a $(MAKE) in the recipe, so `make -n test`
# stays a dry run (make runs recipe lines that hold $(MAKE) even with -n).
TEST_ENV := DEMO_TEST_REQUIRE_CLUSTER=1 LOCALCLUSTER_KUBECONFIG=$(KUBECONFIG_LOCAL) \
            KUBECONFIG=$(KUBECONFIG_LOCAL) LOCALCLUSTER=$(LOCALCLUSTER) KUBECTL=$(KUBECTL)
SERIAL   := . ./dynamicclient ./discoveryclient
BESIDE   := $(addprefix ./,$(filter reflector/%,$(DEMOS)))
GO_TEST  := go test -p 1 -race -count=1 -timeout 30m
# The three go test processes below need the same dependencies, with -race
# and (for the demos the README test builds) without. With an empty build
# cache each would compile them at the same time; compiled once first, with
# both cores, they find them in the cache. No package here is a main
# package, so nothing is linked: about 3 s when the cache is warm.
PRECOMPILE := deps=$$(go list -deps -test ./... | grep -v '^client-go-demo'); \
              echo "compiling the tests' dependencies (minutes the first time, seconds later)"; \
              go build -race $$deps && go build $$deps
# RUN_TESTS runs the tests against the control plane of K8S; with $(1) = 1
# the control plane's own tests (hack/localcluster) run beside them.
define RUN_TESTS
was_up=0; $(LOCALCLUSTER) -dir $(STATE) status | grep 'kube-apiserver' >/dev/null && was_up=1; \
$(LOCALCLUSTER) -dir $(STATE) up; \
$(PRECOMPILE); \
status=0; lc=; \
if [ $(1) = 1 ]; then \
  (cd hack/localcluster && LOCALCLUSTER_DIR=$(STATE) go test $(MODFILE) -count=1 -timeout 20m -ldflags '$(LDFLAGS)' . > $(STATE)/localcluster-test.log 2>&1) & lc=$$!; \
fi; \
($(TEST_ENV) $(GO_TEST) $(BESIDE) > $(STATE)/beside-test.log 2>&1) & beside=$$!; \
rest=$$(go list $(SERIAL) $(BESIDE) | sort | comm -13 - <(go list ./... | sort)); \
($(TEST_ENV) $(GO_TEST) $$rest > $(STATE)/rest-test.log 2>&1) & others=$$!; \
$(TEST_ENV) $(GO_TEST) $(SERIAL) || status=$$?; \
wait $$others || status=$$?; cat $(STATE)/rest-test.log; \
wait $$beside || status=$$?; cat $(STATE)/beside-test.log; \
if [ -n "$$lc" ]; then wait $$lc || status=$$?; cat $(STATE)/localcluster-test.log; fi; \
if [ $$was_up -eq 0 ]; then $(LOCALCLUSTER) -dir $(STATE) down; fi; \
exit $$status
endef
test: lint localcluster kubectl ## lint, then every test against the local control plane (K8S=1.36 for another version)
	@$(call RUN_TESTS,1)

test-demos: localcluster kubectl ## The demo tests alone (no lint, not the control plane's own tests) against K8S
	@$(call RUN_TESTS,0)

test-matrix: ## The demo tests against 1.35, 1.36 and 1.37 in turn, then a table demo x version
	@hack/test-matrix.sh $(K8S_VERSIONS)

images: ## Render image/*.dot to the pictures the README shows (needs Graphviz: apt-get install graphviz)
	@command -v dot >/dev/null || { echo "make images needs Graphviz's dot: apt-get install graphviz"; exit 1; }
	dot -Tjpg -Gdpi=110 image/group-version-resource.dot -o image/group-version-resource.jpeg
	dot -Tpng -Gdpi=110 image/reflector.dot -o image/reflector.png
	dot -Tpng -Gdpi=110 image/informer.dot -o image/informer.png
